"""Text loaders: LM streams (targets shifted by one, across batch boundaries), bucketed padding, factories."""
import numpy as np
import pandas as pd
import pytest
import torch

from learnkit.data.block import DataBlock
from learnkit.data.blocks import CategoryBlock, RegressionBlock
from learnkit.data.getters import ColReader
from learnkit.data.splitters import ColSplitter
from learnkit.samples import sample_path
from learnkit.text import core
from learnkit.text.core import BaseTokenizer, Tokenizer, lowercase
from learnkit.text.data import TextBlock, TextDataLoaders
from learnkit.text.loaders import LMDataLoader, SortedTextDL, pad_batch


@pytest.fixture(scope="module")
def imdb() -> pd.DataFrame:
    return pd.read_csv(sample_path("imdb_tiny") / "texts.csv")


def _imdb_folders(root, df):
    """fastai's IMDB layout (train/pos, train/neg, test/pos, test/neg) from the sample's CSV."""
    for i, r in df.iterrows():
        d = root / ("test" if r.is_valid else "train") / ("pos" if r.label == "positive" else "neg")
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i}.txt").write_text(r.text, encoding="utf8")
    return root


def test_lm_batches_are_shifted_streams_across_boundaries():
    ids = [list(range(s, s + n)) for s, n in ((0, 7), (100, 13), (200, 5), (300, 21))]
    dl = LMDataLoader(ids, bs=3, seq_len=4, shuffle=False, device="cpu")
    batches = list(dl)
    assert len(batches) == len(dl) == -(-((46 - 1) // 3) // 4)
    xs = torch.cat([b[0] for b in batches], dim=1)
    ys = torch.cat([b[1] for b in batches], dim=1)
    stream = torch.tensor([t for o in ids for t in o])
    bl = (len(stream) - 1) // 3
    for r in range(3):  # row r of consecutive batches continues one stream
        assert torch.equal(xs[r], stream[r * bl:(r + 1) * bl])
        assert torch.equal(ys[r], stream[r * bl + 1:(r + 1) * bl + 1])
    assert all(b[0].shape == b[1].shape for b in batches) and batches[0][0].shape == (3, 4)
    assert set(xs.flatten().tolist()) | set(ys.flatten().tolist()) == set(stream.tolist())  # every token


def test_lm_shuffles_text_order_each_epoch_and_backwards():
    ids = [[i] * 5 for i in range(30)]
    dl = LMDataLoader(ids, bs=2, seq_len=10, shuffle=True, device="cpu")
    a, b = (torch.cat([x for x, _ in dl], 1) for _ in range(2))
    assert not torch.equal(a, b) and set(a.flatten().tolist()) == set(b.flatten().tolist()) == set(range(30))
    back = LMDataLoader([[1, 2, 3, 4, 5]], bs=1, seq_len=10, backwards=True, device="cpu")
    x, y = next(iter(back))
    assert x.tolist() == [[5, 4, 3, 2]] and y.tolist() == [[4, 3, 2, 1]]
    with pytest.raises(ValueError, match="smaller bs"):
        LMDataLoader([[1, 2]], bs=4)


def test_pad_batch_pads_first_or_last():
    assert pad_batch([[5, 6], [7]], pad_idx=1).tolist() == [[5, 6], [1, 7]]
    assert pad_batch([[5, 6], [7]], pad_idx=0, pad_first=False).tolist() == [[5, 6], [7, 0]]


def test_sorted_batches_pad_at_start_with_similar_lengths():
    rng = np.random.default_rng(0)
    lens = rng.integers(3, 200, size=400)
    ids = [[2] + [10] * (int(n) - 1) for n in lens]
    ys = list(rng.integers(0, 2, size=400))
    valid = SortedTextDL(ids, ys, bs=16, shuffle=False, device="cpu", pad_idx=1, pad_first=True)
    got = [x for x, _ in valid]
    widths = [x.shape[1] for x in got]
    assert widths == sorted(widths, reverse=True) and sum(len(x) for x in got) == 400  # sorted, nothing dropped
    for x in got:
        real = (x != 1).sum(1)
        assert (x[:, -1] != 1).all()  # padding at the start: every row ends with a real token
        assert torch.equal(x[torch.arange(len(x)), x.shape[1] - real], torch.full((len(x),), 2))  # starts with BOS
    train = SortedTextDL(ids, ys, bs=16, shuffle=True, device="cpu", pad_idx=1)
    spreads, seen = [], []
    for x, _ in train:
        real = (x != 1).sum(1)
        spreads.append((real.max() - real.min()).item())
        seen.append(len(x))
    assert all(n == 16 for n in seen) and len(seen) == len(train) == 25
    assert np.mean(spreads) < 0.15 * (lens.max() - lens.min())  # buckets of similar length
    assert [b for b in train.get_idxs()] != [b for b in train.get_idxs()]  # a new order each epoch


def test_from_df_classifier(imdb):
    dls = TextDataLoaders.from_df(imdb, text_col="text", label_col="label", valid_col="is_valid", bs=16)
    text_vocab, label_vocab = dls.vocab
    assert label_vocab == ["negative", "positive"] and dls.c == 2
    assert text_vocab[:9] == core.text_spec_tok and len(text_vocab) % 8 == 0
    assert dls.train.n == 160 and dls.valid.n == 40
    x, y = dls.one_batch()
    assert x.dtype == torch.long and y.dtype == torch.long and x.shape[0] == 16 and (x[:, -1] != 1).all()
    df = dls.valid.show_batch(max_n=3, show=False)
    assert list(df.columns) == ["text", "category"] and df.text[0].startswith("xxbos")
    assert set(df.category) <= {"negative", "positive"}
    tdl = dls.test_dl(["I loved it!", "Terrible film, I hated it"])
    (xt,) = next(iter(tdl))
    expected = " ".join(t if t in text_vocab else "xxunk" for t in core.tokenize1("Terrible film, I hated it"))
    assert xt.shape[0] == 2 and dls.encoder.decode(xt[1]) == expected  # in the order given, pads dropped


def test_from_df_reads_any_column_names(imdb):
    odd = imdb.rename(columns={"text": "review text", "label": "class"})
    dls = TextDataLoaders.from_df(odd, text_col="review text", label_col="class", valid_col="is_valid", bs=16)
    ref = TextDataLoaders.from_df(imdb, text_col="text", label_col="label", valid_col="is_valid", bs=16)
    assert dls.vocab == ref.vocab and dls.texts[1][1] == ref.texts[1][1]


def test_from_df_language_model_and_shared_vocab(imdb):
    lm = TextDataLoaders.from_df(imdb, text_col="text", is_lm=True, valid_col="is_valid", bs=8, seq_len=20)
    x, y = lm.one_batch()
    assert x.shape == y.shape == (8, 20) and torch.equal(x[:, 1:], y[:, :-1])
    assert lm.vocab[:2] == ["xxunk", "xxpad"] and lm.c == len(lm.vocab)
    assert list(lm.show_batch(max_n=2, show=False).columns) == ["text", "text_"]
    clas = TextDataLoaders.from_df(imdb, text_col="text", label_col="label", valid_col="is_valid",
                                   text_vocab=lm.vocab, bs=8)
    assert clas.vocab[0] == lm.vocab


def test_from_folder_imdb_layout_and_csv(tmp_path, imdb):
    root = _imdb_folders(tmp_path / "imdb", imdb)
    (root / "unsup").mkdir()  # fastai's IMDB also has unlabelled reviews: the classifier ignores them
    for i in range(5):
        (root / "unsup" / f"{i}_0.txt").write_text(f"an unlabelled review number {i}", encoding="utf8")
    dls = TextDataLoaders.from_folders(root, valid="test", bs=16)
    assert dls.vocab[1] == ["neg", "pos"] and dls.train.n == 160 and dls.valid.n == 40
    assert "unlabelled" not in dls.vocab[0]
    assert TextDataLoaders.from_folders.__func__ is TextDataLoaders.from_folder.__func__
    imdb.to_csv(tmp_path / "texts.csv", index=False)
    csv = TextDataLoaders.from_csv(tmp_path, csv_fname="texts.csv", text_col="text", label_col="label",
                                   valid_col="is_valid", bs=16)
    assert csv.train.n == 160 and csv.vocab[1] == ["negative", "positive"]
    split = TextDataLoaders.from_df(imdb, text_col="text", label_col="label", valid_col="is_valid", bs=16,
                                    tok_tfm=BaseTokenizer())  # fastai passes tok_tfm as the word tokenizer
    assert "don't" in split.vocab[0] and "n't" not in split.vocab[0] and "n't" in csv.vocab[0]
    # the same words whichever way the texts come in (ties in frequency keep the order the texts were read)
    assert set(csv.vocab[0]) == set(dls.vocab[0]) and csv.vocab[0][:9] == dls.vocab[0][:9]


def test_text_block_inside_data_block_is_cached(imdb):
    calls = []

    def counting(t):
        calls.append(1)
        return t

    tok = Tokenizer(rules=[counting, lowercase])
    dblock = DataBlock(blocks=(TextBlock.from_df("text", tok_tfm=tok, seq_len=40), CategoryBlock),
                       get_x=ColReader("text"), get_y=ColReader("label"), splitter=ColSplitter("is_valid"))
    first = dblock.dataloaders(imdb, bs=8)
    n = len(calls)
    assert n == 200  # every text tokenized once (the vocab set-up and the encoding share the work)
    second = dblock.dataloaders(imdb, bs=8)
    assert len(calls) == n  # same texts, same rules: not tokenized again
    assert second.vocab == first.vocab and isinstance(second, TextDataLoaders)


def test_data_block_summary_with_a_text_block(imdb, capsys):
    dblock = DataBlock(blocks=(TextBlock.from_df("text", seq_len=40), CategoryBlock), get_x=ColReader("text"),
                       get_y=ColReader("label"), splitter=ColSplitter("is_valid"))
    dblock.summary(imdb, bs=4)
    out = capsys.readouterr().out
    n_valid = int(imdb.is_valid.sum())
    assert f"{len(imdb) - n_valid} train, {n_valid} valid" in out
    vocab = dblock.dataloaders(imdb, bs=4).vocab
    assert f"TextBlock vocab ({len(vocab[0])})" in out and "['negative', 'positive']" in out
    lines = out.splitlines()
    assert "    _EncodeText -> Tensor(shape=(" in out  # the sample walked through the text steps
    batch = lines[lines.index("A training batch of 4") + 1]
    assert batch.startswith("  (Tensor(shape=(4, ") and batch.endswith("Tensor(shape=(4,), dtype=torch.int64))")
    assert out.rstrip().endswith("All steps ran.")
    bad = DataBlock(blocks=(TextBlock.from_df("text"), CategoryBlock), get_x=ColReader("txt"),
                    get_y=ColReader("label"), splitter=ColSplitter("is_valid"))
    with pytest.raises(RuntimeError, match="txt"):
        bad.summary(imdb)


def test_with_encoder_reencodes_same_splits(imdb):
    class CharEncoder:
        pad_idx, pad_first, vocab = 0, False, None

        def encode(self, texts):
            return [[ord(c) % 200 + 1 for c in t[:30]] for t in texts]

        def decode(self, ids):
            return "".join(chr(i) for i in ids)

        def spec(self):
            return {"type": "char"}

    dls = TextDataLoaders.from_df(imdb, text_col="text", label_col="label", valid_col="is_valid", bs=16)
    re = dls.with_encoder(CharEncoder())
    assert re.train.n == dls.train.n and re.valid.n == dls.valid.n and re.c == 2 and re.train.bs == 16
    x, y = next(iter(re.valid))
    assert x.shape[1] == 30 and re.valid.pad_idx == 0 and not re.valid.pad_first
    labels = [sorted(torch.cat([yb for _, yb in d.valid]).tolist()) for d in (re, dls)]
    assert labels[0] == labels[1]


def test_multi_label_and_regression_targets():
    df = pd.DataFrame({"text": [f"movie {i} was {'good' if i % 2 else 'bad'}" for i in range(40)],
                       "tags": [("pos" if i % 2 else "neg") + (";long" if i % 3 else "") for i in range(40)],
                       "score": [float(i % 5) for i in range(40)]})
    multi = TextDataLoaders.from_df(df, text_col="text", label_col="tags", label_delim=";", bs=8, seed=0)
    x, y = multi.one_batch()
    assert multi.vocab[1] == ["long", "neg", "pos"] and y.shape == (8, 3) and y.dtype == torch.float32
    assert set(y.sum(1).tolist()) <= {1.0, 2.0}
    reg = TextDataLoaders.from_df(df, text_col="text", label_col="score", y_block=RegressionBlock(), bs=8, seed=0)
    x, y = reg.one_batch()
    assert y.shape == (8,) and y.dtype == torch.float32 and reg.c == 1 and set(y.tolist()) <= {0., 1., 2., 3., 4.}
