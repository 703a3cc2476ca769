"""fastai-style ``Datasets(items, tfms=...)`` loaders: ``test_dl``, ``weighted_dataloaders``, ``partial_dataloaders``
(fastai's nbs/03_data.core and nbs/14a_callback.data examples, ported)."""
import numpy as np
import pytest
import torch

from learnkit.basics import Datasets, TfmdLists, set_seed
from learnkit.data.blocks import Categorize
from learnkit.data import mid
from learnkit.data.partial import PartialDL
from learnkit.data.imbalance import WeightedDL


def _dsets():
    items = [str(i) for i in range(10)]
    return Datasets(items, [[lambda o: int(o), lambda x: x * 2], [lambda o: int(o) % 2, Categorize()]],
                    splits=[list(range(8)), [8, 9]])


def test_types_recorded_at_setup_and_infer_idx():
    tl = _dsets().tls[0]
    assert tl.types == [str, int, int]
    assert (tl.infer_idx("3"), tl.infer_idx(3)) == (0, 1)
    assert tl.infer("3") == tl.infer(3) == 6
    with pytest.raises(TypeError, match="got a float"):
        tl.infer_idx(3.5)


def test_test_dl_runs_the_validation_transforms_from_the_items_type():
    dls = _dsets().dataloaders(bs=4)
    assert [b[0].tolist() for b in dls.test_dl(["3", "4", "5"])] == [[6, 8, 10]]
    assert [b[0].tolist() for b in dls.test_dl([3, 4, 5])] == [[6, 8, 10]]  # already ints: int() skipped
    assert [b[0].tolist() for b in dls.test_dl([6, 8], rm_type_tfms=2)] == [[6, 8]]
    (b,) = list(dls.test_dl(["3", "4", "5"], with_labels=True))
    assert b[0].tolist() == [6, 8, 10] and b[1].tolist() == [1, 0, 1]  # '3' -> odd -> vocab index of 1
    tdl = dls.test_dl([str(i) for i in range(7)], bs=3)
    assert [len(b[0]) for b in tdl] == [3, 3, 1] and not tdl.shuffle


def test_test_set_on_tfmdlists_and_datasets():
    dsets = _dsets()
    tl = mid.test_set(dsets.tls[0], [1, 2])
    assert isinstance(tl, mid.TfmdLists) and list(tl) == [2, 4]
    ts = mid.test_set(dsets, ["1", "2"], with_labels=True)
    assert ts[0] == (2, 1) and ts[1] == (4, 0)


def test_datasets_of_plain_items():
    dsets = Datasets(torch.arange(5).float())
    assert dsets[3] == (torch.tensor(3.0),) and len(dsets.train) == 5 and len(dsets.valid) == 0


def test_weighted_dataloaders_draw_by_weight():
    n = 160
    dsets = Datasets(torch.arange(n).float())
    set_seed(0)
    dls = dsets.weighted_dataloaders(wgts=range(n), bs=16)
    assert isinstance(dls.train, WeightedDL) and len(dls.train) == 10
    drawn = torch.cat([b[0] for _ in range(5) for b in dls.train])
    assert len(drawn) == 5 * n and 0.0 not in drawn.tolist()  # weight 0: item 0 never drawn
    # weights proportional to i: the mean draw is sum(i^2)/sum(i) = (2n-1)/3 = 106.3; uniform gives 79.5
    assert abs(drawn.mean().item() - (2 * n - 1) / 3) < 6
    with pytest.raises(ValueError, match="one weight per training item"):
        dsets.weighted_dataloaders(wgts=range(n - 1), bs=16)


def test_partial_dataloaders_read_partial_n_items_per_epoch():
    n = 160
    dsets = Datasets(torch.arange(n).float(), splits=[list(range(120)), list(range(120, 160))])
    set_seed(1)
    dls = dsets.partial_dataloaders(partial_n=32, bs=16)
    assert isinstance(dls[0], PartialDL) and len(dls[0]) == 2
    epochs = [torch.cat([b[0] for b in dls[0]]) for _ in range(2)]
    for e in epochs:
        assert len(e) == 32 and len(set(e.tolist())) == 32 and e.max() < 120
    assert set(epochs[0].tolist()) != set(epochs[1].tolist())  # a new draw each epoch
    assert len(dls[1]) == 3 and sum(len(b[0]) for b in dls[1]) == 40  # validation whole
    assert len(dls[0].new(shuffle=False, drop_last=False)) == 8  # fastai's new(): every item
    set_seed(1)
    again = dsets.partial_dataloaders(partial_n=32, bs=16)
    assert torch.equal(torch.cat([b[0] for b in again[0]]), epochs[0])
    with pytest.raises(ValueError, match="partial_n must be a positive"):
        PartialDL(list(range(5)), bs=2, partial_n=-1)
    assert np.isclose(float(PartialDL(list(range(5)), bs=2, partial_n=50).partial_n), 5)
