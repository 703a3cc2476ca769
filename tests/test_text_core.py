"""fastai's text rules and tokenizer (its documented examples), vocab rules, numericalize round trips, the cache."""
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnkit.text.core import (BOS, EOS, PAD, TK_MAJ, TK_REP, TK_UP, TK_WREP, UNK, BaseTokenizer, Numericalize,
                                RegexTokenizer, TextEncoder, Tokenizer, decode_spec_tokens, fix_html, lowercase, make_vocab,
                                parallel_tokenize, replace_all_caps, replace_maj, replace_rep, replace_space,
                                replace_wrep, rm_useless_spaces, spec_add_spaces, text_spec_tok, tokenize1)


def test_rules_match_fastai_examples():
    assert spec_add_spaces("#fastai") == " # fastai"
    assert spec_add_spaces("/fastai") == " / fastai"
    assert spec_add_spaces("\\fastai") == " \\ fastai"
    assert rm_useless_spaces("a  b   c") == "a b c"
    assert replace_rep("aa") == "aa"
    assert replace_rep("aaaa") == f" {TK_REP} 4 a "
    assert replace_rep("I'm so excited!!!!!!!!") == f"I'm so excited {TK_REP} 8 ! "
    assert replace_wrep("ah ah") == "ah ah"
    assert replace_wrep("ah ah ah") == f" {TK_WREP} 3 ah "
    assert replace_wrep("ah ah   ah  ah") == f" {TK_WREP} 4 ah "
    assert replace_wrep("ah ah ah ah ") == f" {TK_WREP} 4 ah  "
    assert replace_wrep("ah ah ah ah.") == f" {TK_WREP} 4 ah ."
    assert replace_wrep("ah ah ahi") == "ah ah ahi"
    assert fix_html("#39;bli#146;") == "'bli'"
    assert fix_html("Sarah amp; Duck...") == "Sarah & Duck …"
    assert fix_html("a nbsp; #36;") == "a   $"
    assert fix_html('\\" <unk>') == f'" {UNK}'
    assert fix_html("quot;  @.@  @-@ ") == "' .-"
    assert fix_html("<br />text\\n") == "\ntext\n"
    assert replace_all_caps("I'M SHOUTING") == f"{TK_UP} i'm {TK_UP} shouting"
    assert replace_all_caps("I'm speaking normally") == "I'm speaking normally"
    assert replace_all_caps("I am speaking normally") == "i am speaking normally"
    assert replace_maj("Jeremy Howard") == f"{TK_MAJ} jeremy {TK_MAJ} howard"
    assert replace_maj("I don't think there is any maj here") == "i don't think there is any maj here"
    assert lowercase("  Hello ") == f"{BOS} hello"
    assert lowercase("x", add_bos=False, add_eos=True) == f"x {EOS}"
    assert replace_space("a b") == "a▁b"


def test_decode_spec_tokens_fastai_examples_and_round_trip():
    assert decode_spec_tokens(["xxmaj", "text"]) == ["Text"]  # fastai's four documented examples
    assert decode_spec_tokens(["xxup", "text"]) == ["TEXT"]
    assert decode_spec_tokens(["xxrep", "3", "a"]) == ["aaa"]
    assert decode_spec_tokens(["xxwrep", "3", "word"]) == ["word", "word", "word"]
    assert decode_spec_tokens(["xxrep", "3", "a", "b", "c"]) == ["aaa", "b", "c"]  # only the next word repeats
    assert decode_spec_tokens(["xxrep", "x", "y"]) == ["x", "y"]  # no count: the marker goes, the words stay
    toks = Tokenizer()("Jeremy said it's GREAT!!!! ah ah ah")
    assert decode_spec_tokens(toks[1:]) == ["Jeremy", "said", "it", "'s", "GREAT", "!!!!", "ah", "ah", "ah"]


def test_special_tokens_in_fastai_order():
    assert text_spec_tok == ["xxunk", "xxpad", "xxbos", "xxeos", "xxfld", "xxrep", "xxwrep", "xxup", "xxmaj"]


def test_word_tokenizer_splits_like_spacy_on_fastai_examples():
    tok = RegexTokenizer()
    assert tok.tokenize("The U.S. dollar $1 is $1.00.") == ["The", "U.S.", "dollar", "$", "1", "is", "$", "1.00", "."]
    assert tok(["This isn't the easiest text."]) == [["This", "is", "n't", "the", "easiest", "text", "."]]
    assert tok.tokenize("I can't, you're (maybe) well-known!") == \
        ["I", "ca", "n't", ",", "you", "'re", "(", "maybe", ")", "well", "-", "known", "!"]
    assert tok.tokenize("xxbos xxmaj hi") == ["xxbos", "xxmaj", "hi"]


def test_whitespace_other_than_one_space_is_a_token_as_in_spacy():
    tok = RegexTokenizer()
    assert tok.tokenize("a b") == ["a", "b"] and tok.tokenize(" a ") == ["a"]
    assert tok.tokenize("a  b") == ["a", " ", "b"]  # spaCy keeps the extra space
    assert tok.tokenize("b.\n\nThen x") == ["b", ".", "\n\n", "Then", "x"]
    assert tok.tokenize("a \nb") == ["a", "\n", "b"] and tok.tokenize("a\n b") == ["a", "\n ", "b"]
    # fastai's text tutorial: the imdb_sample review that starts its show_batch (<br /> -> "\n" by fix_html)
    text = "Raising Victor Vargas: A Review<br /><br />You know, Raising Victor Vargas is like sticking your hands"
    assert " ".join(Tokenizer()(text)) == ("xxbos xxmaj raising xxmaj victor xxmaj vargas : a xxmaj review \n\n "
                                          "xxmaj you know , xxmaj raising xxmaj victor xxmaj vargas is like sticking "
                                          "your hands")


def _spacy_whitespace_split(text: str) -> list[str]:
    """spaCy's tokenizer loop over whitespace (spacy/tokenizer.pyx), written out plainly as the reference."""
    out, start, in_ws = [], 0, False
    for i, ch in enumerate(text):
        if ch.isspace() != in_ws:
            if start < i:
                out.append(text[start:i])
            start = i + 1 if ch == " " else i
            in_ws = not in_ws
    if start < len(text):
        out.append(text[start:])
    return out


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab.,'(-!$ \n\t", max_size=30))
def test_chunks_and_their_fast_paths_agree_with_the_plain_rules(text):
    tok = RegexTokenizer()
    want = [t for c in _spacy_whitespace_split(text) for t in ([c] if c.isspace() else tok._chunk(c))]
    assert tok.tokenize(text) == want


def test_tokenize_with_rules_matches_fastai():
    assert tokenize1("This isn't a problem") == [BOS, TK_MAJ, "this", "is", "n't", "a", "problem"]
    assert tokenize1("This isn't a problem", tok=BaseTokenizer(), rules=[]) == ["This", "isn't", "a", "problem"]
    assert tokenize1("THIS isn't a problem", tok=BaseTokenizer(), rules=[replace_all_caps]) == \
        [TK_UP, "this", "isn't", "a", "problem"]
    tkn = Tokenizer()
    assert tkn("This isn't the easiest text to tokenize with fastai.") == \
        ["xxbos", "xxmaj", "this", "is", "n't", "the", "easiest", "text", "to", "tokenize", "with", "fastai", "."]
    assert " ".join(tkn("I'm suddenly SHOUTING FOR NO REASON")) == \
        "xxbos xxmaj i 'm suddenly xxup shouting xxup for xxup no xxup reason"


def test_parallel_tokenize_equals_serial():
    texts = [f"Text number {i}: it's GREAT!!! really really really great." for i in range(40)]
    serial = parallel_tokenize(texts, n_workers=0)
    pooled = parallel_tokenize(texts, n_workers=2, chunk_size=10)
    assert pooled == serial and len(serial) == 40 and serial[3][0] == 3  # fastai's (index, tokens) pairs
    assert serial[3][1][:4] == [BOS, TK_MAJ, "text", "number"]


def test_tokenizer_caches_by_content():
    calls = []

    def counting(t):
        calls.append(t)
        return t

    tkn = Tokenizer(rules=[counting, lowercase])
    texts = ["One text", "Another text", "A third"]
    first = tkn.tokenize(texts)
    assert len(calls) == 3
    again = Tokenizer(rules=[counting, lowercase]).tokenize(list(texts))  # same rules, same texts: no work
    assert again == first and len(calls) == 3
    tkn.tokenize(texts + ["new"])  # other content: tokenized
    assert len(calls) == 7


def test_make_vocab_follows_fastai():
    count = Counter(["a", "a", "a", "a", "b", "b", "c", "c", "d"])
    real = lambda v: [x for x in v if not x.startswith("xxfake")]  # noqa: E731
    v = make_vocab(count)
    assert real(v) == text_spec_tok + ["a"] and len(v) % 8 == 0
    assert set(real(make_vocab(count, min_freq=1))) == set(text_spec_tok + ["a", "b", "c", "d"])
    assert set(real(make_vocab(count, max_vocab=12, min_freq=1))) == set(text_spec_tok + ["a", "b", "c"])
    # most frequent first after the specials
    assert make_vocab(Counter({"x": 5, "y": 9, "z": 7}), min_freq=1)[9:12] == ["y", "z", "x"]


def test_numericalize_round_trip_and_unknown():
    num = Numericalize(min_freq=1)
    num.setup([["hello", "world", "hello"], ["world", "again"]])
    assert num.vocab[:2] == [UNK, PAD] and len(num.vocab) % 8 == 0
    ids = num(["hello", "again", "never-seen"])
    assert ids.dtype == torch.long and ids[-1].item() == 0
    assert num.decode(ids) == ["hello", "again", UNK]
    assert Numericalize(vocab=["xxunk", "xxpad", "a"]).vocab[:3] == ["xxunk", "xxpad", "a"]
    with pytest.raises(RuntimeError, match="no vocab"):
        Numericalize().ids(["a"])


def test_text_encoder_spec_round_trip():
    enc = TextEncoder(min_freq=1)
    texts = ["I loved this film.", "I hated this film!"]
    with pytest.raises(RuntimeError, match="no vocab yet"):
        enc.encode(texts)
    enc.setup(texts)
    ids = enc.encode(texts)
    assert enc.pad_idx == 1 and enc.pad_first
    assert enc.decode(ids[0]) == "xxbos i loved this film ."
    spec = enc.spec()
    back = TextEncoder.from_spec(spec)
    assert back.vocab == enc.vocab and back.encode(texts) == ids
    with pytest.raises(TypeError, match="RegexTokenizer"):
        TextEncoder(Tokenizer(BaseTokenizer())).spec()
