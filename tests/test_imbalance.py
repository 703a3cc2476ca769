"""Imbalanced classes: label counts, class_weights('balanced') (scikit-learn's formula), WeightedDL / dls.weighted."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader as TorchDL
from torch.utils.data import TensorDataset

from learnkit.basics import (CategoryBlock, CrossEntropyLossFlat, DataBlock, DataLoaders, IndexSplitter,
                             RegressionBlock, WeightedDL,
                             class_weights, label_counts)
from learnkit.data.getters import ColReader
from learnkit.tabular.data import TabularDataLoaders
from learnkit.vision.data import ImageDataLoaders


def skewed(n0: int = 90, n1: int = 10, nv: int = 10):
    """Tiny images with n0 items of class 0 and n1 of class 1 for training, nv of each for validation."""
    rng = np.random.default_rng(0)
    y = np.array([0] * n0 + [1] * n1)
    yv = np.array([0, 1] * (nv // 2))
    x = rng.integers(0, 255, (len(y), 4, 4), dtype=np.uint8)
    xv = rng.integers(0, 255, (len(yv), 4, 4), dtype=np.uint8)
    return ImageDataLoaders.from_arrays(x, y, valid=(xv, yv), bs=10, num_workers=0)


def test_label_counts_and_balanced_class_weights():
    dls = skewed()
    assert label_counts(dls) == {0: 90, 1: 10} and label_counts(dls, ds_idx=1) == {0: 5, 1: 5}
    w = class_weights(dls)
    assert torch.allclose(w, torch.tensor([100 / (2 * 90), 100 / (2 * 10)]))  # n_samples / (n_classes * count)
    assert w.device == dls.device and torch.equal(class_weights(dls, None), torch.ones(2))
    loss = CrossEntropyLossFlat(weight=w)
    pred, targ = torch.zeros(2, 2), torch.tensor([0, 1])
    assert float(loss(pred, targ)) == pytest.approx(float(np.log(2)))  # weighted mean of equal per-item losses
    with pytest.raises(ValueError, match="'balanced' or None"):
        class_weights(dls, "sqrt")


def test_balanced_weights_need_every_class_in_training():
    df = pd.DataFrame({"x": range(6), "y": ["a", "a", "a", "b", "b", "c"]})
    dblock = DataBlock(blocks=(RegressionBlock, CategoryBlock(vocab=["a", "b", "c"])), get_x=ColReader("x"),
                       get_y=ColReader("y"), splitter=IndexSplitter([5]))
    dls = dblock.dataloaders(df, bs=2, num_workers=0)
    assert label_counts(dls) == {"a": 3, "b": 2, "c": 0}
    with pytest.raises(ValueError, match=r"\['c'\] have no training items"):
        class_weights(dls)
    torch.manual_seed(0)
    wdls = dblock.weighted_dataloaders(df, wgts=[0, 0, 0, 0, 1], bs=5, num_workers=0)  # fastai's name
    assert isinstance(wdls.train, WeightedDL) and torch.cat([b[1] for b in wdls.train]).tolist() == [1] * 5
    # fastai's form: one weight per item of the source (item 5 is the validation one), the training ones used
    fdls = dblock.weighted_dataloaders(df, wgts=[0, 0, 1, 0, 0, 5], bs=5, num_workers=0)
    assert torch.cat([b[1] for b in fdls.train]).tolist() == [0] * 5  # only item 2 ('a') has weight
    with pytest.raises(ValueError, match="3 weights for 6 items"):
        dblock.weighted_dataloaders(df, wgts=[1, 1, 1], num_workers=0)


def test_weighted_dl_oversamples_the_rare_class_and_reads_whole_when_not_shuffling():
    torch.manual_seed(0)
    dls = skewed().weighted("balanced")
    train = dls.train
    assert isinstance(train, WeightedDL) and len(train) == 10 and len(dls.valid.dataset) == 10
    ys = torch.cat([b[1] for _ in range(10) for b in train]).float()
    assert len(ys) == 1000 and abs(ys.mean().item() - 0.5) < 0.06  # 10% of the items, half of the draws
    whole = train.new(shuffle=False)
    assert not isinstance(whole, WeightedDL) and torch.cat([b[1] for b in whole]).tolist() == [0] * 90 + [1] * 10
    assert isinstance(train.new(bs=20), WeightedDL) and len(train.new(bs=20)) == 5
    with pytest.raises(ValueError, match="3 weights for 100 items"):
        skewed().weighted([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="can't be preloaded"):
        train.preload()
    pre = skewed()
    pre.train.preload()
    torch.manual_seed(0)
    ys = torch.cat([b[1] for _ in range(10) for b in pre.weighted().train]).float()
    assert abs(ys.mean().item() - 0.5) < 0.06  # drawn by weight, not the preloaded copy shuffled


def test_weighted_dl_follows_given_weights():
    torch.manual_seed(0)
    X, Y = torch.arange(4).float()[:, None], torch.tensor([0, 1, 2, 3])
    dl = WeightedDL(TensorDataset(X, Y), bs=4, wgts=[0.0, 0.0, 1.0, 3.0], num_workers=0, device="cpu")
    ys = torch.cat([b[1] for _ in range(250) for b in dl])
    counts = torch.bincount(ys, minlength=4)
    assert counts[:2].sum() == 0 and abs(counts[3].item() / len(ys) - 0.75) < 0.04


def test_summary_prints_label_counts_per_split(capsys):
    dls = skewed()
    df = dls.summary()
    out = capsys.readouterr().out
    assert "100 train, 10 valid items" in out
    assert df.to_dict() == {"train": {0: 90, 1: 10}, "valid": {0: 5, 1: 5}}
    g = torch.Generator().manual_seed(0)
    X, Y = torch.randn(12, 2, generator=g), torch.tensor([0] * 9 + [1] * 3)
    plain = DataLoaders(TorchDL(TensorDataset(X, Y), batch_size=4), TorchDL(TensorDataset(X, Y), batch_size=4))
    assert label_counts(plain) == {0: 9, 1: 3}
    tab = TabularDataLoaders.from_arrays(X.numpy(), Y.numpy(), valid=(X[:4].numpy(), Y[:4].numpy()))
    assert label_counts(tab) == {0: 9, 1: 3} and torch.allclose(class_weights(tab), torch.tensor([12 / 18, 12 / 6]))
    with pytest.raises(TypeError, match=r"TabDataLoader.*weight=class_weights\(dls\)"):
        tab.weighted()


def test_datablock_summary_shows_label_counts(capsys):
    df = pd.DataFrame({"x": range(8), "y": ["a"] * 6 + ["b"] * 2})
    dblock = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("x"), get_y=ColReader("y"),
                       splitter=IndexSplitter([0, 7]))
    dblock.summary(df, bs=2)
    out = capsys.readouterr().out
    assert "label counts (train): {'a': 5, 'b': 1}" in out and "label counts (valid): {'a': 1, 'b': 1}" in out
