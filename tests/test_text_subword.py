"""SubwordTokenizer (SentencePiece, fastai's chapter-10 example): pieces learned in memory, special tokens kept,
smaller vocabularies give more pieces, a saved model reloads, and it runs inside TextDataLoaders."""
import pickle

import pandas as pd
import pytest

from learnkit.basics import L, coll_repr, first
from learnkit.samples import sample_path
from learnkit.text.core import Tokenizer
from learnkit.text.data import TextDataLoaders
from learnkit.text.subword import SubwordTokenizer


@pytest.fixture(scope="module")
def texts() -> list:
    return list(pd.read_csv(sample_path("imdb_tiny") / "texts.csv").text)


def _words(pieces: list) -> str:
    return "".join(pieces).replace("\u2581", " ").strip()


def test_pieces_are_learned_in_memory_and_spell_the_text(texts, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sp = SubwordTokenizer(vocab_sz=400)
    sp.setup(texts)
    pieces = first(sp([texts[1]]))
    assert _words(pieces) == " ".join(texts[1].split())  # the pieces spell the text again
    assert all(p in sp._sp.id_to_piece(list(range(sp._sp.get_piece_size()))) for p in pieces)
    assert list(tmp_path.iterdir()) == []  # fastai writes tmp/spm.model; nothing is written here
    big = SubwordTokenizer(vocab_sz=1000)
    big.setup(texts)
    assert len(first(big([texts[1]]))) < len(pieces)  # a bigger vocab: fewer, longer pieces
    assert first(sp(["xxbos xxmaj hello"]))[:2] == ["\u2581xxbos", "\u2581xxmaj"]  # special tokens stay whole


def test_vocab_size_guess_and_errors(texts):
    sp = SubwordTokenizer()
    n = sp._get_vocab_sz(texts)
    assert n % 8 == 0 and n == pytest.approx(len({w for t in texts for w in t.split()}) / 4, abs=8)
    assert SubwordTokenizer(max_vocab_sz=50)._get_vocab_sz(texts) == 50
    with pytest.raises(FileNotFoundError, match="no SentencePiece model at"):
        SubwordTokenizer(sp_model="missing.model")
    with pytest.raises(ValueError, match="at least one text"):
        SubwordTokenizer().setup([])


def test_saved_model_reloads_and_pickles(texts, tmp_path):
    sp = SubwordTokenizer(vocab_sz=300, cache_dir=tmp_path / "spm")
    sp.setup(texts)
    assert sp.setup(["ignored"])["sp_model"] == tmp_path / "spm" / "spm.model"  # already learned: kept
    again = SubwordTokenizer(sp_model=tmp_path / "spm" / "spm.model")
    copy = pickle.loads(pickle.dumps(sp))  # what a tokenizing worker process receives
    want = first(sp([texts[2]]))
    assert first(again([texts[2]])) == want and first(copy([texts[2]])) == want
    assert again.model_sha == sp.model_sha


def test_text_loaders_with_subwords_and_the_books_helpers(texts):
    df = pd.read_csv(sample_path("imdb_tiny") / "texts.csv")
    sp = SubwordTokenizer(vocab_sz=300)
    dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_col="is_valid", bs=8,
                                  tok_tfm=sp)
    vocab = dls.vocab[0]
    assert sp.model_sha is not None  # learned from the training texts when the loaders were built
    assert "\u2581xxbos" in vocab and vocab[:2] == ["xxunk", "xxpad"]
    x, y = dls.train.one_batch()
    assert x.shape[0] == 8 and y.shape == (8,)
    pieces = Tokenizer(sp)(df.text[0])
    assert pieces[:2] == ["\u2581xxbos", "\u2581xxmaj"] and len(pieces) > len(df.text[0].split())
    toks = L(texts[:3]).map(Tokenizer(sp))  # the book's idiom
    assert len(toks) == 3 and coll_repr(toks[0], 3).startswith(f"(#{len(toks[0])}) ['\u2581xxbos'")
