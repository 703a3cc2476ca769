"""fastai's mid-level data API: typed Transform dispatch, ItemTransform, Pipeline, TfmdLists, fastuple (issue 31)."""
import pytest

from learnkit.basics import Categorize, ItemTransform, Pipeline, TfmdLists, Transform, fastuple, L
from learnkit.vision.augment import Resize


class _Typed(Transform):
    def encodes(self, x: int): return x + 1
    def encodes(self, x: str): return x + "!"
    def decodes(self, x: int): return x - 1


def test_several_encodes_dispatch_on_type_and_tuples_elementwise():
    t = _Typed()
    assert t(1) == 2 and t("a") == "a!" and t(2.0) == 2.0
    assert t((1, "b", 2.0)) == (2, "b!", 2.0)
    assert t.decode(t(5)) == 5


def test_transform_decorator_and_class_decorator_add_encodes():
    @Transform
    def f(x: int): return x * 2
    assert f(3) == 6 and f("s") == "s" and f.name == "f"

    class A(Transform):
        pass

    @A
    def encodes(self, x: float): return x * 10
    assert A()(1.5) == 15.0 and A()(1) == 1


def test_split_idx_applies_on_its_split_only():
    t = Transform(lambda x: x + 1, split_idx=0)
    assert t(1) == 1 and t(1, split_idx=0) == 2 and t(1, split_idx=1) == 1


def test_state_kept_between_setups_and_calls():
    class Norm(Transform):
        def setups(self, items): self.m = sum(items) / len(items)
        def encodes(self, x): return x - self.m
        def decodes(self, x): return x + self.m
    t = Norm()
    t.setup([1, 2, 3, 6])
    assert t.m == 3 and t(5) == 2 and t.decode(2) == 5


def test_item_transform_sees_the_whole_tuple_and_fastuple_kept():
    class Swap(ItemTransform):
        def encodes(self, x): return (x[1], x[0])
    assert Swap()((1, 2)) == (2, 1)
    out = Swap()(fastuple(1, 2))
    assert out == (2, 1) and isinstance(out, fastuple)
    assert fastuple(1, 2) + 1 == (2, 3) and fastuple(1, 2) * fastuple(2, 3) == (2, 6)


def test_pipeline_composes_in_order_and_decodes_in_reverse():
    p = Pipeline([lambda x: x + 1, Transform(lambda x: x * 2, lambda x: x // 2)])
    assert p(3) == 8 and p.decode(8) == 4 and len(p) == 2


def test_tfmdlists_setup_on_training_split_only_and_indexing():
    items = ["cat", "dog", "cat", "bird", "dog"]
    tl = TfmdLists(items, [str.upper, Categorize()], splits=[[0, 1, 2], [3, 4]])
    assert tl.vocab == ["CAT", "DOG"]  # 'BIRD' is only in the validation split
    assert tl[0] == 0 and tl[[0, 1]] == [0, 1] and tl.train[1] == 1
    assert len(tl.train) == 3 and len(tl.valid) == 2 and tl.decode(tl[1]) == "DOG"
    mask = TfmdLists(items, [str.upper], splits=[[True, False, True, False, False], [False, True] + [False] * 3])
    assert list(mask.train) == ["CAT", "CAT"] and list(mask.valid) == ["DOG"]


def test_existing_kind_based_transforms_still_work():
    from PIL import Image
    x = Image.new("RGB", (30, 20))
    assert Resize(10)(x).size == (10, 10)
    assert isinstance(L([1, 2]), L)


def test_datasets_with_tfms_splits_decode_and_dataloaders():
    from learnkit.basics import Datasets
    items = list(range(10))
    dsets = Datasets(items, [[lambda x: x * 2], [lambda x: "odd" if x % 2 else "even", Categorize()]],
                     splits=[[0, 1, 2, 3, 4, 5, 6, 7], [8, 9]])
    assert dsets.n_inp == 1 and dsets.vocab == ["even", "odd"]
    assert dsets[3] == (6, 1) and dsets[[1, 2]] == [(2, 1), (4, 0)]
    assert len(dsets.train) == 8 and dsets.valid[1] == (18, 1)
    assert dsets.decode(dsets[3]) == (6, "odd")
    dls = dsets.dataloaders(bs=4, device="cpu")
    xb, yb = dls.valid.one_batch()
    assert xb.tolist() == [16, 18] and yb.tolist() == [0, 1]
    assert len(dls.train) == 2


def test_ls_returns_an_L_and_to_np(tmp_path):
    import numpy as np
    import torch
    from learnkit.basics import Path, to_np
    for n in ("b.txt", "a.txt"):
        (tmp_path / n).write_text("x")
    ls = Path(tmp_path).ls()
    assert isinstance(ls, L) and ls.sorted().attrgot("name") == ["a.txt", "b.txt"]
    out = to_np((torch.tensor([1, 2]), [torch.ones(2)]))
    assert isinstance(out[0], np.ndarray) and out[0].tolist() == [1, 2] and out[1][0].tolist() == [1.0, 1.0]
