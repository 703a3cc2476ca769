"""DataLoader.preload(): item-transformed data decoded once and served from device tensors."""
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import SequentialSampler, TensorDataset, WeightedRandomSampler

from learnkit.data.block import DataBlock
from learnkit.data.blocks import CategoryBlock
from learnkit.data.core import DataLoader, DataLoaders
from learnkit.data.getters import get_image_files, parent_label
from learnkit.data.splitters import GrandparentSplitter
from learnkit.learner import Learner
from learnkit.metrics import accuracy
from learnkit.samples import sample_path
from learnkit.tabular.core import Categorify
from learnkit.tabular.data import TabularDataLoaders
from learnkit.utils import set_seed
from learnkit.vision.augment import Flip, RandomResizedCrop, Resize
from learnkit.vision.batch_augment import RandomResizedCropGPU
from learnkit.vision.core import ImageBlock, PILImageBW

pytestmark = pytest.mark.usefixtures("one_thread")

MNIST = sample_path("mnist_tiny")


def mnist_dls(item_tfms=None, batch_tfms=None, bs=32):
    dblock = DataBlock(blocks=(ImageBlock(cls=PILImageBW), CategoryBlock), get_items=get_image_files,
                       get_y=parent_label, splitter=GrandparentSplitter(),
                       item_tfms=item_tfms if item_tfms is not None else Resize(20, method="squish"),
                       batch_tfms=batch_tfms)
    return dblock.dataloaders(MNIST, bs=bs, num_workers=0)


def rows(batches):
    """Each (image bytes, label) pair of the batches, as hashable rows."""
    return [(x[i].cpu().numpy().tobytes(), int(y[i])) for x, y in batches for i in range(len(y))]


def test_preloaded_validation_yields_the_same_batches_in_order():
    plain = mnist_dls()
    pre = mnist_dls().preload()
    assert pre.valid.preloaded and pre.train.preloaded and not plain.valid.preloaded
    assert len(pre.valid) == len(plain.valid) and len(pre.train) == len(plain.train)
    for (x0, y0), (x1, y1) in zip(plain.valid, pre.valid, strict=True):
        assert x1.dtype == x0.dtype == torch.float32 and x1.shape == x0.shape  # block batch tfms still run
        assert torch.equal(x0, x1) and torch.equal(y0, y1)


def test_preloaded_training_epochs_are_fresh_permutations_keeping_pairs():
    plain, pre = mnist_dls(bs=64), mnist_dls(bs=64).preload()
    truth = dict(rows(plain.train.new(shuffle=False, drop_last=False)))
    n = len(plain.train.dataset)
    set_seed(0)
    epoch1, epoch2 = rows(pre.train), rows(pre.train)
    assert len(epoch1) == len(epoch2) == (n // 64) * 64  # drop_last: full batches only, as the plain loader
    assert len({r[0] for r in epoch1}) == len(epoch1)  # no item twice in an epoch
    assert all(truth[img] == label for img, label in epoch1 + epoch2)  # each image keeps its own label
    assert [r[0] for r in epoch1] != [r[0] for r in epoch2]  # reshuffled every epoch


def test_random_item_transforms_are_refused_on_the_training_split():
    with pytest.raises(ValueError, match=r"RandomResizedCrop.*draw once.*RandomResizedCropGPU"):
        mnist_dls(item_tfms=RandomResizedCrop(20)).preload()
    with pytest.raises(ValueError, match=r"Resize.*method='squish'"):
        mnist_dls(item_tfms=Resize(20)).train.preload()  # a crop at a random position
    dls = mnist_dls(item_tfms=RandomResizedCrop(20))
    dls.valid.preload()  # validation crops are centred: deterministic, fine
    assert dls.valid.preloaded and not dls.train.preloaded


def test_new_with_unchanged_arguments_keeps_the_device_copy():
    dls = mnist_dls().preload()
    assert dls.valid.new(item_tfms=None, split_idx=dls.valid.split_idx, shuffle=False).preloaded


def test_pickle_and_new_with_other_items_leave_the_device_copy_behind_and_still_load_the_same():
    dls = mnist_dls().preload()
    copy = pickle.loads(pickle.dumps(dls.valid))
    assert not copy.preloaded and not dls.valid.new(item_tfms=Resize(20, method="squish")).preloaded
    assert not dls.valid.new(dataset=dls.valid.dataset).preloaded
    for (x0, y0), (x1, y1) in zip(dls.valid, copy, strict=True):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)


def test_new_with_other_batching_shares_the_device_copy():
    dls = mnist_dls().preload()
    ordered = dls.train.new(shuffle=False, drop_last=False, bs=7)  # what get_preds and interpretation ask for
    assert ordered.preloaded and ordered._preloaded[0].data_ptr() == dls.train._preloaded[0].data_ptr()
    plain = mnist_dls().train.new(shuffle=False, drop_last=False, bs=7)
    assert len(ordered) == len(plain) == -(-len(plain.dataset) // 7)
    for (x0, y0), (x1, y1) in zip(plain, ordered, strict=True):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)


def test_learner_trains_on_preloaded_data_with_batch_augmentation():
    set_seed(0)
    dls = mnist_dls(item_tfms=Resize(28, method="squish"), batch_tfms=[RandomResizedCropGPU(24, min_scale=0.6), Flip()],
                    bs=8).preload()
    x, _ = dls.one_batch()
    assert x.shape[1:] == (1, 24, 24) and x.dtype == torch.float32
    model = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 12 * 12, 2))
    learn = Learner(dls, model, metrics=accuracy)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(4, 3e-3)
    assert learn.recorder.values[-1][2] > 0.8  # 3s vs 7s, 80 validation images: chance is 0.5


def test_changing_a_batch_in_place_leaves_the_kept_data_alone():
    dls = mnist_dls().preload()
    before = [t.clone() for t in dls.valid._preloaded]
    for dl in (dls.train, dls.valid):
        for x, y in dl:
            x.zero_(), y.zero_()
    assert all(torch.equal(a, b) for a, b in zip(before, dls.valid._preloaded))


def test_plain_torch_loaders_preload_as_they_would_load():
    x, y = torch.randn(50, 3), torch.arange(50) % 2
    ds = TensorDataset(x, y)
    dls = DataLoaders(TorchDataLoader(ds, batch_size=16, shuffle=True, drop_last=True), TorchDataLoader(ds, batch_size=16))
    dls.preload()
    assert len(dls.train) == 3 and len(dls.valid) == 4  # the torch loaders' drop_last, not a guess
    xs, ys = zip(*dls.valid)
    assert torch.equal(torch.cat(xs), x) and torch.equal(torch.cat(ys), y)  # in order, as the torch loader reads
    xt, yt = map(torch.cat, zip(*dls.train))
    idx = (xt[:, None] == x[None]).all(-1).float().argmax(1)  # where each served row comes from
    assert len(set(idx.tolist())) == 48 and torch.equal(x[idx], xt) and torch.equal(y[idx], yt)
    in_order = DataLoaders(TorchDataLoader(ds, batch_size=16), TorchDataLoader(ds, batch_size=16)).preload()
    assert len(in_order.train) == 4 and torch.equal(torch.cat([b[0] for b in in_order.train]), x)
    weighted = TorchDataLoader(ds, batch_size=16, sampler=WeightedRandomSampler(torch.ones(50), 50))
    with pytest.raises(ValueError, match="WeightedRandomSampler.*un-preloaded"):
        DataLoaders(weighted, TorchDataLoader(ds, batch_size=16)).preload()
    with pytest.raises(ValueError, match="custom sampler"):
        DataLoader(ds, bs=16, sampler=SequentialSampler(ds), num_workers=0).preload()


def test_tabular_loaders_take_preload():
    df = pd.DataFrame({"a": ["x", "y"] * 10, "b": np.arange(20.0), "t": [0, 1] * 10})
    dls = TabularDataLoaders.from_df(df, procs=[Categorify], cat_names=["a"], cont_names=["b"], y_names="t",
                                     valid_idx=[0, 1], bs=4, device="cpu")
    assert dls.preload() is dls and dls.train.preloaded and len(dls.valid) == 1


def test_an_empty_split_stays_empty():
    dls = mnist_dls()
    empty = dls.valid.new(dataset=[])
    assert not empty.preload().preloaded and list(empty) == []
