"""Datasets, DataLoader, DataLoaders and DataBlock on generic (non-image) data."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.data.block import DataBlock
from learnkit.data.blocks import CategoryBlock, MultiCategoryBlock, RegressionBlock, TransformBlock
from learnkit.data.core import DataLoader, DataLoaders, Datasets
from learnkit.data.splitters import ColSplitter, IndexSplitter, RandomSplitter
from learnkit.data.transforms import Transform


def _vec_block() -> TransformBlock:
    return TransformBlock("generic", type_tfms=[lambda r: np.asarray(r, dtype=np.float32)])


def _df(n: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                         "label": ["cat" if i % 2 else "dog" for i in range(n)],
                         "tags": ["x;y" if i % 3 == 0 else "y" for i in range(n)],
                         "target": np.arange(n, dtype=float),
                         "is_valid": [i >= n - 5 for i in range(n)]})


def _block(df, y_block=CategoryBlock, get_y=lambda r: r["label"], **kw) -> DataBlock:
    return DataBlock(blocks=(_vec_block, y_block), get_x=lambda r: [r["a"], r["b"]], get_y=get_y,
                     splitter=ColSplitter("is_valid"), **kw)


def test_datablock_category_vocab_splits_and_batches():
    df = _df()
    dls = _block(df).dataloaders(df, bs=4, num_workers=0, device="cpu")
    assert dls.vocab == ["cat", "dog"] and dls.c == 2
    assert len(dls.train.dataset) == 15 and len(dls.valid.dataset) == 5
    x, y = dls.valid.one_batch()
    assert x.shape == (4, 2) and x.dtype == torch.float32
    assert y.dtype == torch.long
    # valid is not shuffled: first valid row is row 15 (odd -> cat -> 0)
    assert torch.allclose(x[0], torch.tensor([df.a[15], df.b[15]], dtype=torch.float32))
    assert y.tolist() == [0, 1, 0, 1]
    assert len(dls.train) == 3  # 15 items, bs 4, drop_last on the shuffled training loader
    assert len(dls.valid) == 2
    assert dls.kinds == ("generic", "category") and dls.n_inp == 1


def test_decode_batch_gives_labels():
    df = _df()
    dls = _block(df).dataloaders(df, bs=5, num_workers=0, device="cpu")
    decoded = dls.valid.decode_batch(dls.valid.one_batch())
    assert [d[1] for d in decoded] == ["cat", "dog", "cat", "dog", "cat"]


def test_multicategory_and_regression_targets():
    df = _df()
    dls = _block(df, MultiCategoryBlock, get_y=lambda r: r["tags"].split(";")).dataloaders(df, bs=5, num_workers=0)
    assert dls.vocab == ["x", "y"]
    _, y = dls.valid.one_batch()
    assert y.dtype == torch.float32 and y.shape == (5, 2)
    assert y[0].tolist() == [1.0, 1.0]  # row 15: 15 % 3 == 0 -> "x;y"
    dls = _block(df, RegressionBlock, get_y=lambda r: r["target"]).dataloaders(df, bs=5, num_workers=0)
    _, y = dls.valid.one_batch()
    assert y.tolist() == [15.0, 16.0, 17.0, 18.0, 19.0] and dls.c == 1


def test_unseen_validation_label_is_a_clear_error():
    df = _df()
    df.loc[19, "label"] = "bird"
    with pytest.raises(ValueError, match=r"never seen in the training set: 'bird' \(1 items\)"):
        _block(df).dataloaders(df, num_workers=0)


def test_given_vocab_keeps_order_and_allows_unseen():
    df = _df()
    dls = _block(df, lambda: CategoryBlock(vocab=["dog", "cat", "bird"], sort=False)).dataloaders(df, bs=5,
                                                                                                   num_workers=0)
    assert dls.vocab == ["dog", "cat", "bird"] and dls.c == 3
    assert dls.valid.one_batch()[1].tolist() == [1, 0, 1, 0, 1]
    # as fastai, a given vocab is sorted unless sort=False
    dls = _block(df, lambda: CategoryBlock(vocab=["dog", "cat", "bird"])).dataloaders(df, bs=5, num_workers=0)
    assert dls.vocab == ["bird", "cat", "dog"]


def test_empty_source_and_empty_train_split_errors():
    with pytest.raises(ValueError, match="no items"):
        _block(_df()).dataloaders(_df().iloc[:0], num_workers=0)
    df = _df()
    db = DataBlock(blocks=(_vec_block, CategoryBlock), get_x=lambda r: [r["a"]], get_y=lambda r: r["label"],
                   splitter=IndexSplitter(list(range(20))))
    with pytest.raises(ValueError, match="none of the 20 items in the training set"):
        db.dataloaders(df, num_workers=0)


def test_getter_count_mismatch_is_explained():
    with pytest.raises(ValueError, match="get_y has 2 function"):
        DataBlock(blocks=(_vec_block, CategoryBlock), get_y=[str, str])


class AddOne(Transform):
    """Item transform on generic values, training split only."""
    split_idx = 0

    def encode_generic(self, x):
        return x + 1


class Double(Transform):
    """Batch transform with a decode."""
    order = 50

    def encode_generic(self, x):
        return x * 2

    def decode_generic(self, x):
        return x / 2


def test_item_and_batch_transforms_respect_split_and_decode():
    df = _df()
    db = _block(df, item_tfms=AddOne(), batch_tfms=Double())
    dls = db.dataloaders(df, bs=5, num_workers=0, shuffle=False)
    x_tr, _ = dls.train.one_batch()
    x_va, _ = dls.valid.one_batch()
    raw_tr = torch.tensor(df[["a", "b"]].values[:5], dtype=torch.float32)
    raw_va = torch.tensor(df[["a", "b"]].values[15:20], dtype=torch.float32)
    assert torch.allclose(x_tr, (raw_tr + 1) * 2)  # train: item tfm then batch tfm
    assert torch.allclose(x_va, raw_va * 2)  # valid: train-only item tfm skipped
    dec = dls.valid.decode_batch((x_va, torch.zeros(5, dtype=torch.long)))
    assert torch.allclose(dec[0][0], raw_va[0])


def test_workers_give_the_same_batches():
    df = _df(40)
    db = _block(df)
    b0 = db.dataloaders(df, bs=8, num_workers=0, shuffle=False).train.one_batch()
    b2 = db.dataloaders(df, bs=8, num_workers=2, shuffle=False).train.one_batch()
    assert all(torch.equal(a, b) for a, b in zip(b0, b2))


def test_plain_torch_loaders_are_accepted():
    x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    dls = DataLoaders(TorchDataLoader(TensorDataset(x, y), batch_size=4),
                      TorchDataLoader(TensorDataset(x, y), batch_size=5), device="cpu")
    xb, yb = dls.valid.one_batch()
    assert torch.equal(xb, x[:5]) and torch.equal(yb, y[:5])
    assert len(dls.train) == 3 and dls.n_inp == 1 and dls.vocab is None
    with pytest.raises(ValueError, match="test_dl needs DataLoaders built from blocks"):
        dls.test_dl([x[0]])


def test_from_dsets_and_new():
    df = _df()
    dsets = _block(df).datasets(df)
    dls = DataLoaders.from_dsets(dsets.train, dsets.valid, bs=5, device="cpu")
    assert dls.vocab == ["cat", "dog"] and len(dls.valid) == 1
    assert dls.train.one_batch()[0].shape == (5, 2)
    dls2 = dls.new(bs=3)
    assert dls2.train.bs == 3 and dls2.valid.one_batch()[0].shape == (3, 2) and dls.train.bs == 5
    assert len(dsets.valid) == 5 and isinstance(dsets, Datasets)


def test_test_dl_applies_get_x_to_rows_and_skips_it_for_raw_values():
    df = _df()
    dls = _block(df).dataloaders(df, bs=4, num_workers=0)
    tdl = dls.test_dl(df.iloc[:3])
    (xb,) = tdl.one_batch()
    assert torch.allclose(xb, torch.tensor(df[["a", "b"]].values[:3], dtype=torch.float32))
    tdl = dls.test_dl([np.array([1.0, 2.0])])
    assert tdl.one_batch()[0].tolist() == [[1.0, 2.0]]
    tdl = dls.test_dl(df.iloc[15:], with_labels=True)
    xb, yb = tdl.one_batch()
    assert yb.tolist() == [0, 1, 0, 1]


def test_uneven_sizes_error_suggests_resize():
    ds = [(torch.zeros(3, 4, 4 + i % 2, dtype=torch.uint8), 0) for i in range(4)]
    dl = DataLoader(ds, bs=4, num_workers=0, kinds=("image", "category"), device="cpu")
    with pytest.raises(RuntimeError, match="Resize"):
        dl.one_batch()


def test_random_splitter_datablock_is_reproducible():
    df = _df()
    db = DataBlock(blocks=(_vec_block, CategoryBlock), get_x=lambda r: [r["a"]], get_y=lambda r: r["label"],
                   splitter=RandomSplitter(valid_pct=0.25, seed=3))
    a, b = db.datasets(df), db.datasets(df)
    assert a.splits[1] == b.splits[1] and len(a.splits[1]) == 5


def test_summary_names_the_failing_step(capsys):
    df = _df()
    db = DataBlock(blocks=(_vec_block, CategoryBlock), get_x=lambda r: [r["missing_col"]],
                   get_y=lambda r: r["label"], splitter=ColSplitter("is_valid"))
    with pytest.raises(RuntimeError, match="step"):
        db.summary(df)
    out = capsys.readouterr().out
    assert "FAILED at" in out and "missing_col" in out
    _block(df).summary(df)
    assert "All steps ran." in capsys.readouterr().out
