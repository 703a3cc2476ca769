"""fastai's ``DataLoader`` semantics: the examples and asserts of fastai's nbs/02_data.load.ipynb, ported."""
import random
import string

import numpy as np
import pytest
import torch
from fastcore.basics import stop
from torch.utils.data import IterableDataset, default_collate, default_convert

from learnkit.basics import DataLoader, L, SkipItemException, fa_collate, fa_convert, first, noop, set_seed, tensor

letters = list(string.ascii_lowercase)


def eq_type(a, b):
    """fastai's test_eq_type: equal, with the same types all the way down."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, (list, tuple, L)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            eq_type(x, y)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), (a, b)
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b)
    else:
        assert a == b


def shuffled(a, b):
    """fastai's test_shuffled: the same elements, not in the same order."""
    a, b = list(a), list(b)
    assert a != b and sorted(a) == sorted(b)


def test_fa_collate_keeps_container_types():
    t = [(1, (2, 3)), (1, (2, 3))]
    res = fa_collate(t)
    ref = default_collate(t)
    assert torch.equal(res[0], ref[0]) and [torch.equal(a, b) for a, b in zip(res[1], ref[1])] == [True, True]
    assert [type(o) for o in res] == [torch.Tensor, tuple]
    t = [(1, (2, (3, 4))), (1, (2, (3, 4)))]
    res = fa_collate(t)
    assert [type(o) for o in res] == [torch.Tensor, tuple] and [type(o) for o in res[1]] == [torch.Tensor, tuple]
    assert torch.equal(res[1][1][1], tensor([4, 4]))


def test_fa_convert_keeps_container_types():
    t0 = np.array([1, 2])
    t = [t0, (t0, t0)]
    res = fa_convert(t)
    assert [type(o) for o in res] == [torch.Tensor, tuple]
    assert torch.equal(res[1][0], default_convert(t)[1][0])


def test_collate_error_names_the_mismatch():
    dl = DataLoader([torch.rand(3, 5, 6), torch.rand(3, 5, 6), torch.rand(3, 6, 4)], bs=3)
    with pytest.raises(RuntimeError, match=r"item 0 has shape \(3, 5, 6\) but of item 2 has shape \(3, 6, 4\)"):
        first(dl)


class RandDL(DataLoader):
    def create_item(self, s):
        r = random.random()
        return r if r < 0.95 else stop()


def test_stream_of_unknown_length_from_create_item():
    set_seed(0)
    items = L(RandDL())
    assert len(items) > 0 and all(isinstance(o, float) and o < 0.95 for o in items)
    assert all(n == 4 for n in L(RandDL(bs=4, drop_last=True)).map(len))
    dl = RandDL(bs=4, num_workers=2, drop_last=True)
    lens = L(dl).map(len)
    assert all(n == 4 for n in lens)
    with pytest.raises(TypeError):
        len(RandDL())


def test_create_item_as_argument():
    def _rand_item(s):
        r = random.random()
        return r if r < 0.95 else stop()
    set_seed(1)
    got = L(DataLoader(create_item=_rand_item))
    assert all(isinstance(o, float) and o < 0.95 for o in got)


def test_unbatched_when_bs_is_none():
    ds1 = DataLoader(letters)
    assert list(L(ds1)) == letters
    assert len(ds1) == 26
    shuffled(L(DataLoader(letters, shuffle=True)), letters)
    ds1 = DataLoader(letters, indexed=False)
    assert list(L(ds1)) == letters and len(ds1) == 26
    t2 = L(tensor([0, 1, 2]), tensor([3, 4, 5]))
    eq_type(list(DataLoader(t2)), list(t2))
    t3 = L(np.array([0, 1, 2], dtype=np.int64), np.array([3, 4, 5], dtype=np.int64))
    eq_type(list(DataLoader(t3)), list(t3.map(tensor)))
    ds4 = DataLoader(t3, create_batch=noop, after_iter=lambda: setattr(t3, "f", 1))
    eq_type(list(ds4), list(t3))
    assert t3.f == 1


def twoepochs(d):
    return " ".join("".join(list(o)) for _ in range(2) for o in d)


def test_batched_sources():
    ds1 = DataLoader(letters, bs=4, drop_last=True, num_workers=0)
    assert twoepochs(ds1) == "abcd efgh ijkl mnop qrst uvwx abcd efgh ijkl mnop qrst uvwx"
    ds1 = DataLoader(letters, 4, num_workers=2)
    assert twoepochs(ds1) == "abcd efgh ijkl mnop qrst uvwx yz abcd efgh ijkl mnop qrst uvwx yz"
    ds1 = DataLoader(range(12), bs=4, num_workers=2)
    eq_type(list(ds1), [tensor([0, 1, 2, 3]), tensor([4, 5, 6, 7]), tensor([8, 9, 10, 11])])
    t3 = L()
    ds1 = DataLoader([str(i) for i in range(11)], bs=4, after_iter=lambda: setattr(t3, "f", 2))
    eq_type(list(ds1), [["0", "1", "2", "3"], ["4", "5", "6", "7"], ["8", "9", "10"]])
    assert t3.f == 2
    it = iter(DataLoader(map(noop, range(20)), bs=4, num_workers=1))
    eq_type([next(it) for _ in range(3)], [tensor([0, 1, 2, 3]), tensor([4, 5, 6, 7]), tensor([8, 9, 10, 11])])


class DummyIterableDataset(IterableDataset):
    def __iter__(self):
        yield from range(11)


def test_iterable_dataset_several_passes():
    ds1 = DataLoader(DummyIterableDataset(), bs=4)
    for _ in range(3):
        eq_type(list(ds1), [tensor([0, 1, 2, 3]), tensor([4, 5, 6, 7]), tensor([8, 9, 10])])
    ds1 = DataLoader(DummyIterableDataset(), bs=4, drop_last=True)
    for _ in range(3):
        eq_type(list(ds1), [tensor([0, 1, 2, 3]), tensor([4, 5, 6, 7])])


class SlowList(list):
    """fastai's SleepyDL: items that take varying time, so workers finish out of order."""

    def __getitem__(self, i):
        if i % 3 == 0:
            torch.randn(200, 200) @ torch.randn(200, 200)
        return super().__getitem__(i)


def test_order_kept_with_workers_and_shuffle_differs_each_epoch():
    t = SlowList(letters)
    for nw in (0, 2):
        assert list(DataLoader(t, num_workers=nw)) == letters
    dl = DataLoader(t, shuffle=True, num_workers=1)
    first_epoch = list(dl)
    shuffled(first_epoch, letters)
    shuffled(first_epoch, list(dl))
    batches = list(DataLoader(list(range(50)), bs=32, shuffle=True, num_workers=2))
    assert [len(b) for b in batches] == [32, 18] and sorted(torch.cat(batches).tolist()) == list(range(50))


def test_shuffle_reproducible_under_set_seed():
    def run():
        set_seed(42)
        dl = DataLoader(list(range(30)), bs=8, shuffle=True)
        return [torch.cat(list(dl)).tolist() for _ in range(2)]
    a, b = run(), run()
    assert a == b and a[0] != a[1] and a[0] != list(range(30))
    set_seed(43)
    assert torch.cat(list(DataLoader(list(range(30)), bs=8, shuffle=True))).tolist() != a[0]


def test_same_batches_with_and_without_workers_under_a_seed():
    set_seed(3)
    plain = [b.tolist() for b in DataLoader(list(range(40)), bs=8, shuffle=True)]
    set_seed(3)
    workers = [b.tolist() for b in DataLoader(list(range(40)), bs=8, shuffle=True, num_workers=2)]
    assert plain == workers


def test_after_batch_and_attribute_delegation():
    t = tensor(1, 2)
    tdl = DataLoader([t] * 8, bs=4, num_workers=2, after_batch=lambda b: b * 10)
    b = first(tdl)
    assert b.shape == (4, 2) and torch.equal(b[0], tensor(10, 20))
    assert torch.equal(tdl.pop(), tensor(1, 2))  # unknown attributes are the dataset's
    with pytest.raises(AttributeError, match="nor has its dataset"):
        tdl.not_an_attribute


class AdamantDL(DataLoader):
    def get_idxs(self):
        r = random.randint(0, self.n - 1)
        return [r] * self.n


def test_get_idxs_drawn_once_for_all_workers():
    assert torch.cat(tuple(AdamantDL(list(range(50)), bs=16, num_workers=2))).unique().numel() == 1


def test_hooks_in_order_and_skip_item():
    calls = []

    class Hooked(DataLoader):
        def before_iter(self):
            calls.append("before_iter")

        def after_item(self, x):
            if x == 3:
                raise SkipItemException()
            return x * 2

        def before_batch(self, b):
            calls.append(len(b))
            return b

        def after_iter(self):
            calls.append("after_iter")

    dl = Hooked(range(7), bs=3)
    assert [b.tolist() for b in dl] == [[0, 2, 4], [8, 10, 12]]
    assert calls == ["before_iter", 3, 3, "after_iter"]


def test_n_len_and_new_keep_hooks():
    dl = DataLoader(letters, bs=5, after_item=str.upper)
    assert (dl.n, len(dl)) == (26, 6)
    assert len(DataLoader(letters, bs=5, drop_last=True)) == 5
    dl2 = dl.new(bs=13)
    assert ["".join(b) for b in dl2] == [string.ascii_uppercase[:13], string.ascii_uppercase[13:]]
    assert len(DataLoader(map(noop, range(10)), bs=3, n=10)) == 4
    assert DataLoader(map(noop, range(10)), n=10).n == 10


def test_list_of_tuples_batches_as_tuples():
    ds = L(enumerate(string.ascii_lowercase))
    set_seed(0)
    batches = list(DataLoader(ds, batch_size=6, shuffle=True))
    assert len(batches) == 5 and [len(b[0]) for b in batches] == [6, 6, 6, 6, 2]
    x, y = batches[0]
    assert isinstance(x, torch.Tensor) and isinstance(y, tuple)
    assert [letters[i] for i in x.tolist()] == list(y)


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="drop_last=True needs a batch size"):
        DataLoader(letters, drop_last=True)
    with pytest.raises(ValueError, match="shuffle=True needs a dataset that can be indexed"):
        DataLoader(map(noop, letters), shuffle=True)
    with pytest.raises(ValueError, match=r"positive integer, got 0 \(or None"):
        DataLoader(letters, bs=0)
    with pytest.raises(ValueError, match="no batch"):
        DataLoader([], bs=4).one_batch()


def test_one_batch_without_workers():
    dl = DataLoader(list(range(10)), bs=4, num_workers=2)
    assert dl.one_batch().tolist() == [0, 1, 2, 3] and dl.num_workers == 2
