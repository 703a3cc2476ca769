"""fastai's ``SubwordTokenizer`` (``SentencePieceTokenizer``): a SentencePiece model learned from the training
texts, trained and kept in memory (``sentencepiece`` is an optional dependency: ``pip install "learnkit[text]"``)."""
from __future__ import annotations

import hashlib
import io
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from ..utils import Path, atomic_write
from .core import _apply_rules, text_spec_tok

__all__ = ["SentencePieceTokenizer", "SubwordTokenizer"]

#: languages whose alphabets SentencePiece should cover almost entirely (fastai's ``eu_langs``)
EU_LANGS = ["bg", "cs", "da", "de", "el", "en", "es", "et", "fi", "fr", "ga", "hr", "hu", "it", "lt", "lv", "mt",
            "nl", "pl", "pt", "ro", "sk", "sl", "sv"]


def _sentencepiece() -> Any:
    try:
        import sentencepiece
    except ImportError as e:
        raise ImportError('SubwordTokenizer needs the sentencepiece library: pip install "learnkit[text]" '
                          '(or pip install sentencepiece).') from e
    return sentencepiece


class SentencePieceTokenizer:
    """Subword pieces from a SentencePiece model: ``setup(texts)`` learns one (or ``sp_model=`` loads a file).

    Call it on an iterable of texts for an iterator of piece lists, as fastai's. The model is trained in memory;
    ``cache_dir`` (fastai writes ``tmp/spm.model`` by default) is only written when you pass it.
    """

    def __init__(self, lang: str = "en", special_toks: Sequence[str] | None = None,
                 sp_model: str | os.PathLike | None = None, vocab_sz: int | None = None, max_vocab_sz: int = 30000,
                 model_type: str = "unigram", char_coverage: float | None = None,
                 cache_dir: str | os.PathLike | None = None) -> None:
        self.lang, self.vocab_sz, self.max_vocab_sz, self.model_type = lang, vocab_sz, max_vocab_sz, model_type
        self.char_coverage = char_coverage if char_coverage is not None else (0.99999 if lang in EU_LANGS else 0.9998)
        self.special_toks = list(text_spec_tok if special_toks is None else special_toks)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.sp_model: Path | None = None
        self.model_sha: str | None = None  # identifies the learned model (part of the tokenizer cache's key)
        self._sp: Any = None
        self._proto: bytes | None = None
        if sp_model is not None:
            self.sp_model = Path(sp_model)
            if not self.sp_model.is_file():
                raise FileNotFoundError(f"sp_model: no SentencePiece model at {self.sp_model}.")
            self._load(self.sp_model.read_bytes())

    def _load(self, proto: bytes) -> None:
        self._sp = _sentencepiece().SentencePieceProcessor(model_proto=proto)
        self._proto = proto
        self.model_sha = hashlib.sha256(proto).hexdigest()

    def _get_vocab_sz(self, texts: Sequence[str]) -> int:
        """fastai's guess: a quarter of the distinct words, a multiple of 8, between 29 and ``max_vocab_sz``."""
        cnt: Counter = Counter()
        for t in texts:
            cnt.update(t.split())
            if len(cnt) // 4 > self.max_vocab_sz:
                return self.max_vocab_sz
        res = len(cnt) // 4
        res += -res % 8
        return max(res, 29)

    def setup(self, items: Iterable[str], rules: Sequence[Callable[[str], str]] | None = None) -> dict:
        """Learn the SentencePiece model from ``items`` (after ``rules``); nothing to do when it has one."""
        if self._sp is None:
            texts = [_apply_rules(str(t), rules or []) for t in items]
            if not texts:
                raise ValueError("SubwordTokenizer.setup needs at least one text to learn its pieces from.")
            self._load(self._train(texts))
        return {"sp_model": self.sp_model}

    def _train(self, texts: list[str]) -> bytes:
        vocab_sz = self.vocab_sz if self.vocab_sz is not None else self._get_vocab_sz(texts)
        model = io.BytesIO()
        _sentencepiece().SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_sz,
            character_coverage=self.char_coverage, model_type=self.model_type, unk_id=len(self.special_toks),
            pad_id=-1, bos_id=-1, eos_id=-1, minloglevel=2, hard_vocab_limit=False,
            user_defined_symbols=["\u2581" + s for s in self.special_toks])
        proto = model.getvalue()
        if self.cache_dir is not None:
            self.sp_model = self.cache_dir / "spm.model"
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with atomic_write(self.sp_model, "wb") as f:
                f.write(proto)
        return proto

    def __call__(self, items: Iterable[str]) -> Iterator[list[str]]:
        """The pieces of each text (learning the model from ``items`` first if there is none yet)."""
        items = list(items)
        if self._sp is None:
            self.setup(items)
        for t in items:
            yield self._sp.encode_as_pieces(t)

    def __getstate__(self) -> dict:
        return dict(self.__dict__, _sp=None)  # the processor is rebuilt from the model's bytes

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if state.get("_proto") is not None:
            self._load(state["_proto"])

    def __repr__(self) -> str:
        size = self._sp.get_piece_size() if self._sp is not None else None
        return f"SubwordTokenizer(vocab_sz={self.vocab_sz}, model_type={self.model_type!r}, pieces={size})"


#: fastai's name for it
SubwordTokenizer = SentencePieceTokenizer
