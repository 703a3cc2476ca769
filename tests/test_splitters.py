"""Tests for learnkit.data.splitters."""
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from learnkit.data.splitters import (ColSplitter, EndSplitter, FileSplitter, FuncSplitter, GrandparentSplitter,
                                     IndexSplitter, MaskSplitter, RandomSplitter, TrainTestSplitter)
from learnkit.utils import Path


def _is_partition(splits, n):
    t, v = splits
    assert all(type(i) is int for i in t + v)
    assert sorted(t + v) == list(range(n))


# ---- RandomSplitter
def test_random_splitter_sizes_and_partition():
    t, v = RandomSplitter(0.2, seed=0)(list(range(50)))
    assert len(v) == 10 and len(t) == 40
    _is_partition((t, v), 50)


def test_random_splitter_seeded_is_deterministic_and_leaves_global_state():
    torch.manual_seed(1)
    expected_next = torch.rand(3)
    torch.manual_seed(1)
    a = RandomSplitter(0.3, seed=42)(range(20))
    assert torch.equal(torch.rand(3), expected_next)  # the global generator was neither reseeded nor advanced
    assert RandomSplitter(0.3, seed=42)(range(20)) == a
    assert RandomSplitter(0.3, seed=43)(range(20)) != a


def test_random_splitter_matches_fastai_seeded_split():
    # fastai: torch.manual_seed(seed); randperm(n); valid = first cut
    torch.manual_seed(42)
    perm = torch.randperm(10).tolist()
    assert RandomSplitter(0.2, seed=42)(list("abcdefghij")) == (perm[2:], perm[:2])


def test_random_splitter_unseeded_follows_global_seed():
    torch.manual_seed(5)
    a = RandomSplitter()(range(30))
    torch.manual_seed(5)
    assert RandomSplitter()(range(30)) == a


def test_random_splitter_dataframe_edges_and_args():
    df = pd.DataFrame({"a": range(7)})
    _is_partition(RandomSplitter(0.29, seed=1)(df), 7)
    assert len(RandomSplitter(0.29, seed=1)(range(100))[1]) == 29  # no float-rounding loss
    assert RandomSplitter(0.0, seed=1)(range(5))[1] == []
    assert RandomSplitter(0.5, seed=1)([]) == ([], [])
    with pytest.raises(ValueError, match="valid_pct=1.5"):
        RandomSplitter(1.5)


# ---- TrainTestSplitter
def test_train_test_splitter_matches_sklearn_unstratified():
    # sklearn: train_test_split(np.arange(10), test_size=0.2, random_state=42) -> [5,0,7,2,9,4,3,6], [8,1]
    assert TrainTestSplitter(test_size=0.2, random_state=42)(range(10)) == ([5, 0, 7, 2, 9, 4, 3, 6], [8, 1])


def test_train_test_splitter_sizes():
    assert [len(s) for s in TrainTestSplitter(0.25, random_state=0)(range(10))] == [7, 3]  # ceil for test
    assert [len(s) for s in TrainTestSplitter(3, random_state=0)(range(10))] == [7, 3]
    assert [len(s) for s in TrainTestSplitter(None, train_size=0.65, random_state=0)(range(10))] == [6, 4]
    t, v = TrainTestSplitter(0.2, train_size=0.5, random_state=0)(range(10))
    assert (len(t), len(v)) == (5, 2) and not set(t) & set(v)
    assert TrainTestSplitter(0.3, shuffle=False)(range(10)) == (list(range(7)), [7, 8, 9])
    with pytest.raises(ValueError, match="more than the 10"):
        TrainTestSplitter(0.6, train_size=0.6)(range(10))
    with pytest.raises(ValueError, match="test_size=1.2"):
        TrainTestSplitter(1.2)(range(10))


def test_train_test_splitter_stratified_keeps_class_shares():
    y = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    t, v = TrainTestSplitter(0.2, random_state=0, stratify=y)(y)
    _is_partition((t, v), 100)
    counts = {c: sum(y[i] == c for i in v) for c in "abc"}
    assert counts == {"a": 12, "b": 6, "c": 2}
    assert TrainTestSplitter(0.2, random_state=0, stratify=y)(y) == (t, v)
    assert TrainTestSplitter(0.2, random_state=1, stratify=y)(y) != (t, v)


def test_train_test_splitter_stratified_uneven_and_errors():
    y = pd.Series([0] * 7 + [1] * 5)
    t, v = TrainTestSplitter(0.25, random_state=3, stratify=y)(range(12))
    assert len(v) == 3 and len(t) == 9 and {y[i] for i in v} == {0, 1}
    with pytest.raises(ValueError, match="single item"):
        TrainTestSplitter(0.5, stratify=[0, 0, 1])(range(3))
    with pytest.raises(ValueError, match="3 labels but there are 4"):
        TrainTestSplitter(0.5, stratify=[0, 0, 1])(range(4))
    with pytest.raises(ValueError, match="shuffle=True"):
        TrainTestSplitter(stratify=[0, 1], shuffle=False)


# ---- IndexSplitter, MaskSplitter, FuncSplitter, EndSplitter
def test_index_splitter():
    assert IndexSplitter([4, 1])(list("abcdef")) == ([0, 2, 3, 5], [4, 1])
    assert IndexSplitter(np.array([0]))(pd.DataFrame({"a": [1, 2]})) == ([1], [0])
    assert IndexSplitter(torch.tensor([2]))(range(3)) == ([0, 1], [2])
    with pytest.raises(IndexError, match=r"\[7\].*3 items"):
        IndexSplitter([1, 7])(range(3))
    with pytest.raises(TypeError, match="MaskSplitter"):
        IndexSplitter(np.array([True, False]))
    with pytest.raises(ValueError, match="more than once"):
        IndexSplitter([1, 1])


def test_mask_splitter():
    assert MaskSplitter([False, True, True, False])(list("abcd")) == ([0, 3], [1, 2])
    assert MaskSplitter(np.array([1, 0]))(range(2)) == ([1], [0])
    with pytest.raises(ValueError, match="3 entries but there are 2"):
        MaskSplitter([True, False, True])(range(2))
    with pytest.raises(TypeError, match="boolean mask"):
        MaskSplitter(["x", "y"])


def is_odd(o):
    return o % 2 == 1


def test_func_splitter_list_and_dataframe_rows():
    assert FuncSplitter(is_odd)(list(range(6))) == ([0, 2, 4], [1, 3, 5])
    df = pd.DataFrame({"name": ["a", "b", "c"], "fold": [0, 1, 0]})
    assert FuncSplitter(lambda r: r["fold"] == 1)(df) == ([0, 2], [1])
    assert pickle.loads(pickle.dumps(FuncSplitter(is_odd)))(range(3)) == ([0, 2], [1])


def test_end_splitter():
    assert EndSplitter(0.2)(range(10)) == (list(range(8)), [8, 9])
    assert EndSplitter(0.2, valid_last=False)(range(10)) == (list(range(2, 10)), [0, 1])
    assert EndSplitter(0.0)(range(4)) == ([0, 1, 2, 3], [])  # fastai's idxs[:-0] bug would empty training


# ---- GrandparentSplitter, FileSplitter, ColSplitter
def _paths(*rels):
    return [Path("/data") / r for r in rels]


def test_grandparent_splitter():
    items = _paths("train/cat/1.jpg", "valid/dog/2.jpg", "train/dog/3.jpg", "test/cat/4.jpg")
    assert GrandparentSplitter()(items) == ([0, 2], [1])  # test/ left out
    assert GrandparentSplitter("train", ["valid", "test"])([str(p) for p in items]) == ([0, 2], [1, 3])


def test_grandparent_splitter_names_folders_it_saw():
    items = _paths("train/cat/1.jpg", "val/dog/2.jpg", "val/cat/3.jpg")
    with pytest.raises(ValueError, match=r"valid_name='valid'.*'val' \(2 items\), 'train' \(1 items\).*"
                                         r"GrandparentSplitter\(valid_name='val'\)"):
        GrandparentSplitter()(items)
    assert GrandparentSplitter(valid_name="val")(items) == ([0], [1, 2])
    with pytest.raises(ValueError, match="train_name='training'"):
        GrandparentSplitter(train_name="training")(items)


def test_file_splitter(tmp_path):
    f = tmp_path / "valid.txt"
    f.write_text("2.jpg\n\n 4.jpg \n")
    items = _paths("a/1.jpg", "b/2.jpg", "c/3.jpg", "d/4.jpg")
    assert FileSplitter(f)(items) == ([0, 2], [1, 3])
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        FileSplitter(tmp_path / "nope.txt")


def test_col_splitter():
    df = pd.DataFrame({"f": list("abcd"), "is_valid": [True, False, True, False], "set": ["tr", "va", "te", "va"]})
    assert ColSplitter()(df) == ([1, 3], [0, 2])
    assert ColSplitter(1)(df) == ([1, 3], [0, 2])
    assert ColSplitter("set", on="va")(df) == ([0, 2], [1, 3])
    assert ColSplitter("set", on=["va", "te"])(df) == ([0], [1, 2, 3])
    assert ColSplitter()(pd.DataFrame({"is_valid": [0, 1]})) == ([0], [1])
    with pytest.raises(ValueError, match=r"'set' should hold True/False.*'te'.*on="):
        ColSplitter("set")(df)
    with pytest.raises(KeyError, match=r"'valid'.*\['f', 'is_valid', 'set'\]"):
        ColSplitter("valid")(df)
    with pytest.raises(TypeError, match="DataFrame"):
        ColSplitter()([1, 2])


def test_all_splitters_pickle_and_repr(tmp_path):
    f = tmp_path / "v.txt"
    f.write_text("x.jpg")
    for s in (RandomSplitter(0.1, seed=3), TrainTestSplitter(stratify=[0, 1]), IndexSplitter([0]),
              GrandparentSplitter(), MaskSplitter([True]), FileSplitter(f), ColSplitter(), EndSplitter()):
        s2 = pickle.loads(pickle.dumps(s))
        assert type(s2) is type(s) and repr(s2) == repr(s) and repr(s).startswith(type(s).__name__ + "(")


def test_empty_split_is_not_an_error_here():
    assert RandomSplitter(0.1, seed=0)(range(3))[1] == []
    assert IndexSplitter(range(3))(range(3))[0] == []
