"""fastai's text preprocessing: the default rules, special tokens, a spaCy-free word tokenizer, ``Tokenizer``
(parallel over chunks for big corpora, cached by content), ``Numericalize`` and the default text encoder.

A *text encoder* (see ``TextEncoder``) turns raw strings into lists of token ids: ``encode``, ``decode``,
``vocab``, ``pad_idx``, ``pad_first`` and a JSON-safe ``spec()``; the data layer only talks to that interface.
"""
from __future__ import annotations

import gc
import hashlib
import html
import os
import pickle
import re
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import chain, repeat
from types import SimpleNamespace
from typing import Any

import torch

__all__ = [
    "UNK", "PAD", "BOS", "EOS", "FLD", "TK_REP", "TK_WREP", "TK_UP", "TK_MAJ", "text_spec_tok",
    "text_proc_rules", "text_postproc_rules", "spec_add_spaces", "rm_useless_spaces", "replace_rep",
    "replace_wrep", "fix_html", "replace_all_caps", "replace_maj", "lowercase", "replace_space",
    "BaseTokenizer", "WordTokenizer", "RegexTokenizer", "tokenize1", "parallel_tokenize", "tokenize_texts",
    "Tokenizer", "make_vocab", "Numericalize", "TextEncoder", "decode_spec_tokens", "defaults",
]

UNK, PAD, BOS, EOS, FLD, TK_REP, TK_WREP, TK_UP, TK_MAJ = \
    "xxunk xxpad xxbos xxeos xxfld xxrep xxwrep xxup xxmaj".split()
#: fastai's special tokens, in fastai's order (their ids in every default vocab: xxunk 0, xxpad 1, xxbos 2...)
text_spec_tok = [UNK, PAD, BOS, EOS, FLD, TK_REP, TK_WREP, TK_UP, TK_MAJ]

# -- the rules (fastai.text.core: same regular expressions, same outputs)
_re_spec = re.compile(r"([/#\\])")
_re_space = re.compile(" {2,}")
_re_rep = re.compile(r"(\S)(\1{2,})")
_re_wrep = re.compile(r"(?:\s|^)(\w+)\s+((?:\1\s+)+)\1(\s|\W|$)")
_re_all_caps = re.compile(r"(\s|^)([A-Z]+[^a-z\s]*)(?=(\s|$))")
_re_maj = re.compile(r"(\s|^)([A-Z][^A-Z\s]*)(?=(\s|$))")


def spec_add_spaces(t: str) -> str:
    """Add spaces around / \\ and #."""
    return _re_spec.sub(r" \1 ", t)


def rm_useless_spaces(t: str) -> str:
    """Remove multiple spaces."""
    return _re_space.sub(" ", t)


def replace_rep(t: str) -> str:
    """Replace repetitions at the character level: cccc -> TK_REP 4 c."""
    def _sub(m: re.Match) -> str:
        c, cc = m.groups()
        return f" {TK_REP} {len(cc) + 1} {c} "
    return _re_rep.sub(_sub, t)


def replace_wrep(t: str) -> str:
    """Replace word repetitions: word word word word -> TK_WREP 4 word."""
    def _sub(m: re.Match) -> str:
        c, cc, e = m.groups()
        return f" {TK_WREP} {len(cc.split()) + 2} {c} {e}"
    return _re_wrep.sub(_sub, t)


def fix_html(x: str) -> str:
    """Various messy things seen in documents (html entities, <br />, literal \\n, wikitext's @-@)."""
    x = x.replace("#39;", "'").replace("amp;", "&").replace("#146;", "'").replace("nbsp;", " ").replace(
        "#36;", "$").replace("\\n", "\n").replace("quot;", "'").replace("<br />", "\n").replace(
        '\\"', '"').replace("<unk>", UNK).replace(" @.@ ", ".").replace(" @-@ ", "-").replace("...", " …")
    return html.unescape(x)


def replace_all_caps(t: str) -> str:
    """Replace tokens in ALL CAPS by their lower version and add TK_UP before."""
    def _sub(m: re.Match) -> str:
        tok = f"{TK_UP} " if len(m.groups()[1]) > 1 else ""
        return f"{m.groups()[0]}{tok}{m.groups()[1].lower()}"
    return _re_all_caps.sub(_sub, t)


def replace_maj(t: str) -> str:
    """Replace tokens that start with a capital by their lower version and add TK_MAJ before."""
    def _sub(m: re.Match) -> str:
        tok = f"{TK_MAJ} " if len(m.groups()[1]) > 1 else ""
        return f"{m.groups()[0]}{tok}{m.groups()[1].lower()}"
    return _re_maj.sub(_sub, t)


def lowercase(t: str, add_bos: bool = True, add_eos: bool = False) -> str:
    """Convert ``t`` to lowercase (and strip it), adding BOS (and EOS)."""
    return (f"{BOS} " if add_bos else "") + t.lower().strip() + (f" {EOS}" if add_eos else "")


def replace_space(t: str) -> str:
    """Replace embedded spaces in a token with the unicode '▁' so tokens join and split on spaces."""
    return t.replace(" ", "▁")


text_proc_rules = [fix_html, replace_rep, replace_wrep, spec_add_spaces, rm_useless_spaces, replace_all_caps,
                   replace_maj, lowercase]
text_postproc_rules = [replace_space]


#: fastai's ``defaults`` for text: ``Tokenizer`` reads its rules here when it is given none
defaults = SimpleNamespace(text_spec_tok=text_spec_tok, text_proc_rules=text_proc_rules,
                           text_postproc_rules=text_postproc_rules)


def decode_spec_tokens(tokens: Sequence[str]) -> list[str]:
    """Undo the special tokens in ``tokens`` (fastai's): ``xxmaj``/``xxup`` case the next word, ``xxrep n c``
    and ``xxwrep n w`` repeat it."""
    out: list[str] = []
    rule: str | None = None
    count: int | None = None
    for t in tokens:
        if t in (TK_MAJ, TK_UP, TK_REP, TK_WREP):
            rule, count = t, None
        elif rule is None:
            out.append(t)
        elif rule in (TK_MAJ, TK_UP):
            out.append(t[:1].upper() + t[1:].lower() if rule == TK_MAJ else t.upper())
            rule = None
        elif count is None:
            try:
                count = int(t)
            except ValueError:  # a repeat marker without its count: drop the marker, keep the word
                rule = None
                out.append(t)
        else:
            out.extend([t * count] if rule == TK_REP else [t] * count)
            rule, count = None, None
    return out


# -- word tokenizers: callables taking an iterable of texts and returning a list of token lists

class BaseTokenizer:
    """Basic tokenizer that just splits on ``split_char``."""

    def __init__(self, split_char: str = " ", **kwargs: Any) -> None:
        self.split_char = split_char

    def __call__(self, items: Iterable[str]) -> list[list[str]]:
        """Token lists of ``items``."""
        return [t.split(self.split_char) for t in items]


_PREFIX = "\"'“”‘’«»([{<$£€¥#*¿¡`~"
_SUFFIX = "\"'“”‘’«»)]}>.,!?;:%…*"
_CONTRACTION = re.compile(r"^(.+?)(n't|'s|'m|'re|'ve|'d|'ll)$", re.IGNORECASE)
_ABBREV = re.compile(r"^(?:[^\W\d_]\.){2,}$|^(?:mr|mrs|ms|dr|vs|etc|jr|sr|prof|inc|ltd)\.$",
                     re.IGNORECASE)
_INFIX = re.compile(r"(?<=[^\W\d_])(--|-|…|\.\.\.|[,;:!?])(?=[^\W\d_])")


_MEMO_SIZE = 1_000_000
# spaCy's first split: a single space separates; any other run of whitespace, less one leading space, is a token
_SEPARATOR = re.compile(r" (?!\s)| ?(\s+)")


class RegexTokenizer:
    """A spaCy-free English word tokenizer: splits like spaCy's on ordinary text ("don't" -> "do n't").

    Whitespace first (a single space separates; other whitespace, such as the "\n" of a <br />, is a token, as
    in spaCy), then per chunk: leading punctuation ("(", '"', "$"), trailing punctuation (".", ",", "!")
    except in abbreviations ("U.S.", "mr."), English contractions ("n't", "'s", "'re", ...), and hyphens or
    punctuation between letters ("well-known" -> "well - known"). Special tokens stay whole.
    """

    def __init__(self, lang: str = "en", special_toks: Sequence[str] | None = None, **kwargs: Any) -> None:
        if lang != "en":
            raise ValueError(f"RegexTokenizer knows English only (lang={lang!r}); for other languages pass a "
                             f"tokenizer of your own, e.g. tok=spaCy's via a small wrapper.")
        self.lang = lang
        self.special_toks = set(text_spec_tok if special_toks is None else special_toks)
        self._memo: dict[str, tuple[str, ...]] = {}  # chunk -> tokens: words repeat, so most chunks are split once

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_memo": {}}  # workers start with an empty memo

    def _chunk(self, s: str) -> list[str]:
        if s in self.special_toks:
            return [s]
        pre: list[str] = []
        post: list[str] = []
        while len(s) > 1 and s[0] in _PREFIX:
            pre.append(s[0])
            s = s[1:]
        while len(s) > 1 and not _ABBREV.match(s):
            if s[-1] in _SUFFIX:
                post.append(s[-1])
                s = s[:-1]
                continue
            m = _CONTRACTION.match(s)
            if m is None:
                break
            post.append(m.group(2))
            s = m.group(1)
        mid = [p for p in _INFIX.split(s) if p] if len(s) > 2 else [s]
        return pre + mid + post[::-1]

    def tokenize(self, text: str) -> list[str]:
        """The tokens of one text."""
        memo = self._memo
        chunks = [c for c in _SEPARATOR.split(text) if c]
        found = list(map(memo.get, chunks))
        if None in found:
            for i, toks in enumerate(found):
                if toks is None:  # (a chunk seen twice in this text is split once)
                    found[i] = memo.get(chunks[i]) or self._split(chunks[i])
        return list(chain.from_iterable(found))

    def _split(self, chunk: str) -> tuple[str, ...]:
        """The tokens of one chunk, remembered (a tuple of strs, which the garbage collector stops tracking)."""
        # whitespace is a token as in spaCy ("\n\n"); letters and digits alone have nothing to split off, and
        # letters then one closing mark ("movie.") split in two unless an abbreviation ("mr."): _chunk's result, faster
        if chunk.isspace() or chunk.isalnum():
            toks: tuple[str, ...] = (chunk,)
        elif chunk[-1] in _SUFFIX and chunk[:-1].isalnum() and not _ABBREV.match(chunk):
            toks = (chunk[:-1], chunk[-1])
        else:
            toks = tuple(self._chunk(chunk))
        if len(self._memo) < _MEMO_SIZE:
            self._memo[chunk] = toks
        return toks

    def __call__(self, items: Iterable[str]) -> list[list[str]]:
        """Token lists of ``items``."""
        return [self.tokenize(t) for t in items]


#: fastai's name for the default word tokenizer (spaCy there; a spaCy-free regex tokenizer here)
WordTokenizer = RegexTokenizer


def _apply_rules(text: str, rules: Sequence[Callable[[str], str]]) -> str:
    for r in rules:
        text = r(text)
    return text


def _tokenize_chunk(args: tuple) -> list[list[str]]:
    """Worker: rules, word tokenizer, post rules over one chunk of texts."""
    texts, tok, rules, post_rules = args
    out = [o if type(o) is list else list(o) for o in tok([_apply_rules(str(t), rules) for t in texts])]
    if not post_rules:
        return out
    # words repeat: post-process each distinct word once, and rewrite only the rows holding a word that changed
    changed = {w: p for w in set(chain.from_iterable(out)) if (p := _apply_rules(w, post_rules)) != w}
    if changed:
        out = [[changed.get(w, w) for w in o] if not changed.keys().isdisjoint(o) else o for o in out]
    return out


def _picklable(*objs: Any) -> bool:
    try:
        pickle.dumps(objs)
        return True
    except (pickle.PicklingError, AttributeError, TypeError):
        return False


#: corpora at or above this many characters are tokenized in a process pool (below, serially: starting workers
#: costs more than it saves)
PARALLEL_MIN_CHARS = 2_000_000


def parallel_tokenize(items: Sequence[str], tok: Any = None, rules: Sequence[Callable] | None = None,
                      n_workers: int | None = None, post_rules: Sequence[Callable] | None = None,
                      chunk_size: int = 2000) -> list[tuple[int, list[str]]]:
    """fastai's ``parallel_tokenize``: ``(index, tokens)`` for every text, in order (see ``_tokenize_all``)."""
    return list(enumerate(_tokenize_all(items, tok, rules, n_workers, post_rules, chunk_size)))


def _tokenize_all(items: Sequence[str], tok: Any = None, rules: Sequence[Callable] | None = None,
                  n_workers: int | None = None, post_rules: Sequence[Callable] | None = None,
                  chunk_size: int = 2000) -> list[list[str]]:
    """Tokens of every text, in order: rules, ``tok``, post rules; a process pool over chunks for big corpora."""
    tok = WordTokenizer() if tok is None else tok
    rules = list(defaults.text_proc_rules if rules is None else rules)
    post = list(defaults.text_postproc_rules if post_rules is None else post_rules)
    items = list(items)
    if n_workers is None:
        big = sum(len(str(t)) for t in items) >= PARALLEL_MIN_CHARS
        n_workers = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1) \
            if big else 0
    if n_workers > 1:  # at least one chunk per worker
        chunk_size = max(1, min(chunk_size, -(-len(items) // n_workers)))
    chunks = [items[i:i + chunk_size] for i in range(0, len(items), chunk_size)]
    if n_workers <= 1 or len(chunks) <= 1 or not _picklable(tok, rules, post):
        return [o for c in chunks for o in _tokenize_chunk((c, tok, rules, post))]
    import multiprocessing as mp
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as ex:
        results = ex.map(_tokenize_chunk, [(c, tok, rules, post) for c in chunks])
        return [o for r in results for o in r]


def tokenize1(text: str, tok: Any = None, rules: Sequence[Callable] | None = None,
              post_rules: Sequence[Callable] | None = None) -> list[str]:
    """Tokens of one text (rules, then ``tok``, then post rules)."""
    return _tokenize_all([text], tok=tok, rules=rules, post_rules=post_rules, n_workers=0)[0]


def tokenize_texts(texts: Sequence[str], n_workers: int | None = None, rules: Sequence[Callable] | None = None,
                   tok: Any = None) -> list[list[str]]:
    """Tokenize ``texts`` (in parallel when they are many)."""
    return _tokenize_all(texts, tok=tok, rules=rules, n_workers=n_workers)


# -- the cache: token lists of whole corpora, keyed by the texts' content and the tokenizer's settings

_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 8


def _content_key(texts: Sequence[str]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for t in texts:
        h.update(str(t).encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


class Tokenizer:
    """fastai's ``Tokenizer``: ``rules`` then the word tokenizer ``tok``; call it on a text for its tokens.

    ``tokenize(texts)`` does a whole corpus: in a process pool over chunks when it is big, and cached in memory
    by content, so building loaders twice from the same texts with the same tokenizer tokenizes them once.
    """

    def __init__(self, tok: Any = None, rules: Sequence[Callable] | None = None, counter: Counter | None = None,
                 lengths: dict | None = None, mode: str | None = None, sep: str = " ",
                 post_rules: Sequence[Callable] | None = None, n_workers: int | None = None) -> None:
        if isinstance(tok, type):
            tok = tok()
        self.tok = WordTokenizer() if tok is None else tok
        self.rules = list(defaults.text_proc_rules if rules is None else rules)
        self.post_rules = list(defaults.text_postproc_rules if post_rules is None else post_rules)
        self.counter, self.lengths, self.mode, self.sep, self.n_workers = counter, lengths, mode, sep, n_workers
        self.text_cols: list | None = None

    @classmethod
    def from_df(cls, text_cols: Any, tok: Any = None, rules: Sequence[Callable] | None = None, sep: str = " ",
                **kwargs: Any) -> "Tokenizer":
        """A tokenizer for the ``text_cols`` of a DataFrame (TextBlock.from_df reads the columns)."""
        res = cls(tok, rules=rules, mode="df", sep=sep, **kwargs)
        res.text_cols = list(text_cols) if isinstance(text_cols, (list, tuple)) else [text_cols]
        return res

    @classmethod
    def from_folder(cls, path: Any, tok: Any = None, rules: Sequence[Callable] | None = None,
                    **kwargs: Any) -> "Tokenizer":
        """A tokenizer for the text files under ``path`` (tokenized when the loaders are built, then cached)."""
        res = cls(tok, rules=rules, mode="folder", **kwargs)
        res.path = path
        return res

    def _key(self, texts: Sequence[str]) -> tuple:
        tok_state = tuple(sorted((k, repr(v)) for k, v in vars(self.tok).items() if not k.startswith("_"))) \
            if hasattr(self.tok, "__dict__") else ()
        return (type(self.tok), tok_state, tuple(self.rules), tuple(self.post_rules), _content_key(texts))

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """Token lists of ``texts`` (cached by content: a second call with the same texts does no work)."""
        return [list(t) for t in self._cached_tokens(texts)]

    def _cached_tokens(self, texts: Sequence[str]) -> list[tuple[str, ...]]:
        """The cache's (read-only) token tuples of ``texts``, tokenizing them on a miss."""
        texts = [str(t) for t in texts]
        key = self._key(texts)
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
        gc_was_on = gc.isenabled()
        gc.disable()  # ~a million new strings and lists, no cycles: the collector's passes would only cost time
        try:
            toks = [tuple(t) for t in _tokenize_all(texts, tok=self.tok, rules=self.rules,
                                                        post_rules=self.post_rules, n_workers=self.n_workers)]
        finally:
            if gc_was_on:
                gc.enable()
        _CACHE[key] = toks
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        return toks

    def setup(self, texts: Sequence[str]) -> None:
        """Let a word tokenizer that learns from the corpus (``SubwordTokenizer``) learn from ``texts``."""
        setup = getattr(self.tok, "setup", None)
        if callable(setup):
            setup([str(t) for t in texts], rules=self.rules)

    def __call__(self, text: str | tuple) -> list[str] | tuple:
        """Tokens of one text; a tuple of texts gives a tuple of token lists (as a fastai ``Transform``)."""
        if isinstance(text, tuple):
            return type(text)(_tokenize_chunk((list(text), self.tok, self.rules, self.post_rules)))
        return _tokenize_chunk(([text], self.tok, self.rules, self.post_rules))[0]

    def decode(self, toks: Sequence[str]) -> str:
        """Tokens -> one string joined by ``sep``."""
        return self.sep.join(toks)

    def __repr__(self) -> str:
        return f"Tokenizer({type(self.tok).__name__}, rules=[{', '.join(_rule_name(r) for r in self.rules)}])"


def _rule_name(r: Callable) -> str:
    return getattr(r, "__name__", type(r).__name__)


def make_vocab(count: Counter, min_freq: int = 3, max_vocab: int = 60000,
               special_toks: Sequence[str] | None = None) -> list[str]:
    """fastai's vocab: special tokens first, then tokens by frequency (>= min_freq), padded to a multiple of 8."""
    # most_common's order (by count, ties in first-seen order), sorting the keys alone: no (word, count) tuples,
    # whose allocation would set off a full garbage collection right after tokenizing a corpus
    by_count = sorted(count, key=count.__getitem__, reverse=True)[:max_vocab]
    vocab = [o for o in by_count if count[o] >= min_freq]
    for o in reversed(list(text_spec_tok if special_toks is None else special_toks)):
        if o in vocab:
            vocab.remove(o)
        vocab.insert(0, o)
    vocab = vocab[:max_vocab]
    return vocab + ["xxfake" for _ in range(0, 8 - len(vocab) % 8)]


class Numericalize:
    """Tokens -> ids with a vocabulary learned from the training texts (``make_vocab``); unknown -> xxunk (0)."""

    def __init__(self, vocab: Sequence[str] | None = None, min_freq: int = 3, max_vocab: int = 60000,
                 special_toks: Sequence[str] | None = None) -> None:
        self.min_freq, self.max_vocab, self.special_toks = min_freq, max_vocab, special_toks
        self.vocab: list[str] | None = None
        if vocab is not None:
            self._set(list(vocab))

    def _set(self, vocab: list[str]) -> None:
        self.vocab = vocab
        self.o2i = {v: k for k, v in enumerate(vocab) if v != "xxfake"}
        self.unk_idx = self.o2i.get(UNK, 0)

    def setup(self, tokens: Iterable[Sequence[str]]) -> None:
        """Build the vocab from the training token lists (kept as given when a vocab was passed)."""
        if self.vocab is None:
            count = Counter(t for toks in tokens for t in toks)
            self._set(make_vocab(count, self.min_freq, self.max_vocab, self.special_toks))

    def __call__(self, toks: Sequence[str]) -> torch.Tensor:
        """Tokens -> LongTensor of ids."""
        return torch.tensor(self.ids(toks), dtype=torch.long)

    def ids(self, toks: Sequence[str]) -> list[int]:
        """Tokens -> list of ids."""
        if self.vocab is None:
            raise RuntimeError("Numericalize has no vocab yet: setup() learns it from the training texts.")
        return list(map(self.o2i.get, toks, repeat(self.unk_idx)))

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Ids -> tokens."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return [self.vocab[int(i)] for i in ids]


def _rules_from_names(names: Sequence[str]) -> list[Callable]:
    known = {f.__name__: f for f in (*text_proc_rules, *text_postproc_rules)}
    missing = [n for n in names if n not in known]
    if missing:
        raise ValueError(f"The export uses text rules {missing}, which are not learnkit's built-in rules "
                         f"({sorted(known)}); only those can be rebuilt without pickle.")
    return [known[n] for n in names]


class TextEncoder:
    """The default text encoder: fastai's ``Tokenizer`` (rules + word tokenizer) then ``Numericalize``."""

    pad_first = True

    def __init__(self, tokenizer: Tokenizer | None = None, vocab: Sequence[str] | None = None, min_freq: int = 3,
                 max_vocab: int = 60000, special_toks: Sequence[str] | None = None) -> None:
        self.tokenizer = tokenizer if tokenizer is not None else Tokenizer()
        self.num = Numericalize(vocab, min_freq=min_freq, max_vocab=max_vocab, special_toks=special_toks)

    @property
    def vocab(self) -> list[str] | None:
        """The itos list (special tokens first)."""
        return self.num.vocab

    @property
    def pad_idx(self) -> int:
        """The id of xxpad."""
        return self.num.o2i.get(PAD, 1) if self.num.vocab is not None else 1

    def setup(self, texts: Iterable[str]) -> None:
        """Learn the vocab from the training texts (tokenized once; the tokens stay cached for ``encode``)."""
        if self.num.vocab is None:
            texts = list(texts)
            self.tokenizer.setup(texts)
            self.num.setup(self.tokenizer._cached_tokens(texts))

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text."""
        if self.num.vocab is None:
            raise RuntimeError("This text encoder has no vocab yet: setup(training_texts) learns it (building the "
                               "loaders does), or pass vocab=.")
        return [self.num.ids(t) for t in self.tokenizer._cached_tokens(texts)]

    def decode(self, ids: Sequence[int]) -> str:
        """The tokens of ``ids`` (without padding), joined by spaces."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        pad = self.pad_idx
        return self.tokenizer.decode(self.num.decode([i for i in ids if i != pad]))

    def spec(self) -> dict:
        """JSON-safe description: the rules' names and the vocab (``from_spec`` rebuilds the encoder)."""
        tok = self.tokenizer
        if not isinstance(tok.tok, RegexTokenizer):
            raise TypeError(f"This text encoder uses the word tokenizer {type(tok.tok).__name__}, which export can't "
                            f"describe as data: only learnkit's RegexTokenizer (the default) can be rebuilt.")
        return {"type": "fastai", "rules": [_rule_name(r) for r in tok.rules],
                "post_rules": [_rule_name(r) for r in tok.post_rules], "sep": tok.sep, "vocab": list(self.vocab)}

    @classmethod
    def from_spec(cls, spec: dict) -> "TextEncoder":
        """Rebuild an encoder from ``spec()``."""
        tok = Tokenizer(rules=_rules_from_names(spec["rules"]), post_rules=_rules_from_names(spec["post_rules"]),
                        sep=spec.get("sep", " "))
        return cls(tok, vocab=spec["vocab"])

    def __repr__(self) -> str:
        return f"TextEncoder({self.tokenizer!r}, vocab={len(self.vocab) if self.vocab else None})"
