"""fastai's data transforms (nbs/05_data.transforms) and ShortEpochCallback / LRFinder: their examples ported."""
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from learnkit.basics import (AttrGetter, Categorize, CategoryBlock, CategoryMap, DataBlock, DataLoader, DataLoaders,
                             EncodedMultiCategorize, ItemGetter, Learner, LRFinder, MSELossFlat, MultiCategorize,
                             MultiCategoryBlock, OneHotEncode, RandomSplitter, RandomSubsetSplitter, RegressionSetup,
                             ShortEpochCallback, TransformBlock, get_files)
from learnkit.callback.core import Callback


def test_item_and_attr_getter_fastai_examples():
    assert ItemGetter(1)((1, 2, 3)) == 2
    assert ItemGetter(1)([1, 2, 3]) == 2
    assert ItemGetter(1)(np.array([1, 2, 3])) == 2
    assert list(AttrGetter("shape")(torch.randn([4, 5]))) == [4, 5]
    assert AttrGetter("shape", [0])([4, 5]) == [0]
    assert pickle.loads(pickle.dumps(ItemGetter("a")))({"a": 7}) == 7


def test_random_subset_splitter_fastai_example():
    items = list(range(100))
    splits = RandomSubsetSplitter(0.3, 0.1)(items)
    assert len(splits[0]) == 30 and len(splits[1]) == 10
    assert not set(splits[0]) & set(splits[1])
    a, b = RandomSubsetSplitter(0.3, 0.1, seed=42)(items), RandomSubsetSplitter(0.3, 0.1, seed=42)(items)
    assert a == b
    torch.manual_seed(42)  # fastai seeds torch's generator: the same permutation
    perm = torch.randperm(100).tolist()
    assert a == (perm[:30], perm[30:40])
    for bad in [(0, 0.1), (0.3, 1.0), (0.7, 0.4)]:
        with pytest.raises(ValueError):
            RandomSubsetSplitter(*bad)


def test_category_map_fastai_examples():
    t = CategoryMap([4, 2, 3, 4])
    assert t == [2, 3, 4] and t.o2i == {2: 0, 3: 1, 4: 2}
    assert t.map_objs([2, 3]) == [0, 1] and t.map_ids([0, 1]) == [2, 3]
    with pytest.raises(KeyError, match="5"):
        t.map_objs([5])
    t = CategoryMap([4, 2, 3, 4], sort=False)
    assert t == [4, 2, 3] and t.o2i == {4: 0, 2: 1, 3: 2}
    t = CategoryMap([4, 2, 3, 4], add_na=True)
    assert t == ["#na#", 2, 3, 4] and t.o2i == {"#na#": 0, 2: 1, 3: 2, 4: 3}
    assert t.o2i[99] == 0  # unknown values map to '#na#'
    t = CategoryMap(pd.Series([1, 2, 3, 4], dtype="category"))
    assert t == [1, 2, 3, 4] and t.o2i == {1: 0, 2: 1, 3: 2, 4: 3}
    col = pd.Series(pd.Categorical(["M", "H", "L", "M"], categories=["H", "M", "L"], ordered=True))
    t = CategoryMap(col)
    assert t == ["H", "M", "L"] and t.o2i == {"H": 0, "M": 1, "L": 2}
    col = pd.Series(pd.Categorical(["M", "H", "M"], categories=["H", "M", "L"], ordered=True))
    assert CategoryMap(col, strict=True) == ["H", "M"]
    assert CategoryMap(["b", float("nan"), "a"]) == ["a", "b"]  # missing values dropped
    assert CategoryMap(["a", "b"]) == ("a", "b") and CategoryMap(["a", "b"]) != ["a"]


def test_categorize_fastai_examples():
    cat = Categorize()
    cat.setups(["cat", "dog", "cat"])
    assert cat.vocab == ["cat", "dog"] and cat.c == 2
    assert cat("cat") == 0 and cat.encodes("dog") == 1
    assert cat.decode(1) == "dog" and cat.decodes(torch.tensor(0)) == "cat"
    with pytest.raises(KeyError, match="bird"):
        cat("bird")

    cat = Categorize(add_na=True)
    cat.setup(["cat", "dog", "cat"])
    assert cat.vocab == ["#na#", "cat", "dog"]
    assert cat("cat") == 1 and cat.decode(2) == "dog" and cat("bird") == 0

    cat = Categorize(vocab=["dog", "cat"], sort=False, add_na=True)
    cat.setup(["cat", "dog", "cat"])
    assert cat.vocab == ["#na#", "dog", "cat"]
    assert cat("dog") == 1 and cat.decode(2) == "cat"
    assert Categorize(vocab=["dog", "cat"]).vocab == ["cat", "dog"]  # a given vocab is sorted unless sort=False


def test_category_block_add_na_maps_unseen_validation_labels():
    df = pd.DataFrame({"x": np.arange(20.0), "y": ["a", "b"] * 9 + ["c", "c"]})
    vec = TransformBlock("generic", type_tfms=[lambda v: np.float32([v])])
    db = DataBlock(blocks=(vec, CategoryBlock(add_na=True)), get_x=lambda r: r["x"], get_y=lambda r: r["y"],
                   splitter=lambda items: (list(range(18)), [18, 19]))
    dls = db.dataloaders(df, bs=4, num_workers=0)
    assert dls.vocab == ["#na#", "a", "b"]
    assert dls.valid.one_batch()[1].tolist() == [0, 0]


def test_multi_categorize_one_hot_encode_fastai_examples():
    cat = MultiCategorize()
    cat.setup([["b", "c"], ["a"], ["a", "c"], []])
    assert cat.vocab == ["a", "b", "c"]
    assert torch.equal(cat(["a", "c"]), torch.tensor([0, 2])) and cat([]).numel() == 0
    assert cat.decode([1]) == ["b"] and cat.decode([0, 2]) == ["a", "c"]
    assert MultiCategorize(vocab=["c", "a"]).vocab == ["c", "a"]  # a given vocab keeps its order

    tfm = OneHotEncode(c=3)
    assert torch.equal(tfm([0, 2]), torch.tensor([1., 0, 1]))
    assert tfm.decode(torch.tensor([0, 1, 1])) == [1, 2]
    tfm = OneHotEncode()
    tfm.setups(cat)
    assert tfm.c == 3 and torch.equal(tfm(cat(["b"])), torch.tensor([0., 1, 0]))

    tfm = EncodedMultiCategorize(vocab=["a", "b", "c"])
    assert np.array_equal(tfm([1, 0, 1]), np.float32([1, 0, 1]))
    assert tfm.vocab == ["a", "b", "c"] and tfm.c == 3
    assert tfm.decode(torch.tensor([False, True, True])) == ["b", "c"]
    with pytest.raises(ValueError, match="shape"):
        tfm([1, 0])


def test_multi_category_block_still_multi_hot():
    df = pd.DataFrame({"x": np.arange(8.0), "y": ["a b", "b", "c", "a c", "a", "b c", "a", "c"]})
    vec = TransformBlock("generic", type_tfms=[lambda v: np.float32([v])])
    db = DataBlock(blocks=(vec, MultiCategoryBlock), get_x=lambda r: r["x"], get_y=lambda r: r["y"].split(),
                   splitter=lambda items: (list(range(6)), [6, 7]))
    dls = db.dataloaders(df, bs=2, num_workers=0)
    assert dls.vocab == ["a", "b", "c"]
    assert dls.valid.one_batch()[1].tolist() == [[1., 0, 0], [0, 0, 1]]


def test_regression_setup():
    tfm = RegressionSetup()
    assert tfm(3).dtype == np.float32 and float(tfm(3)) == 3.0
    tfm.setups([0, 1, 2])
    assert tfm.c == 1
    tfm = RegressionSetup()
    tfm.setups([[0, 1, 2], [3, 4, 5]])
    assert tfm.c == 3 and tfm.decodes(torch.tensor([1., 2, 3])) == (1.0, 2.0, 3.0) and tfm.decodes(torch.tensor(2.)) == 2.0
    assert RegressionSetup(c=2).c == 2


def test_get_files_missing_folder_returns_empty_list(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.txt").write_text("x")
    with pytest.warns(UserWarning, match="missing"):
        assert get_files(tmp_path, folders=["missing"]) == []
    with pytest.warns(UserWarning):
        assert [p.name for p in get_files(tmp_path, folders=["a", "missing"])] == ["1.txt"]


def _reg_dls(n=200, bs=10):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, generator=g)
    ds = list(zip(x, 3 * x))
    return DataLoaders(DataLoader(ds[:160], bs=bs, shuffle=True), DataLoader(ds[160:], bs=bs))


class _Count(Callback):
    order = -10  # before ShortEpochCallback, so the batch that triggers the cancel is counted

    def before_fit(self):
        self.train, self.valid = 0, 0

    def after_batch(self):
        if self.learn.training:
            self.train += 1
        else:
            self.valid += 1


def test_short_epoch_callback(tmp_path):
    count = _Count()
    learn = Learner(_reg_dls(), nn.Linear(1, 1), loss_func=MSELossFlat(), path=tmp_path,
                    cbs=[ShortEpochCallback(pct=0.2), count])
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=0.01)
    # 16 training batches: fastai stops after the batch where iter/n_iter >= pct (iter 4: 4/16 >= 0.2) -> 5 run
    assert count.train == 5
    assert count.valid == 2  # 4 validation batches: stops at iter 1 (1/4 >= 0.2)
    count2 = _Count()
    learn = Learner(_reg_dls(), nn.Linear(1, 1), loss_func=MSELossFlat(), path=tmp_path,
                    cbs=[ShortEpochCallback(pct=0.2, short_valid=False), count2])
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=0.01)
    assert count2.train == 5 and count2.valid == 4


def test_lr_finder_is_the_callback_behind_lr_find(tmp_path):
    learn = Learner(_reg_dls(), nn.Linear(1, 1), loss_func=MSELossFlat(), path=tmp_path)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, cbs=LRFinder(start_lr=1e-5, end_lr=1, num_it=10, stop_div=False))
    lrs = learn.recorder.lrs
    assert len(lrs) == 10 and lrs[0] == pytest.approx(1e-5) and lrs[-1] < 1 and lrs == sorted(lrs)
