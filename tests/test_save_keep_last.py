"""SaveModelCallback(keep_last=k): only the last k checkpoints stay, and only files this fit wrote are deleted."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.callback.core import Callback
from learnkit.callback.progress import ProgressCallback
from learnkit.callback.tracker import SaveModelCallback
from learnkit.data.core import DataLoaders
from learnkit.learner import Learner
from learnkit.losses import CrossEntropyLossFlat
from learnkit.optimizer import SGD

pytestmark = pytest.mark.usefixtures("one_thread")


def make_learner(tmp_path, cbs=None):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 2, generator=g)
    y = (x[:, 0] > 0).long()
    dls = DataLoaders(TorchDataLoader(TensorDataset(x[:32], y[:32]), batch_size=16, shuffle=True),
                      TorchDataLoader(TensorDataset(x[32:], y[32:]), batch_size=16), device="cpu")
    torch.manual_seed(0)
    learn = Learner(dls, nn.Linear(2, 2), loss_func=CrossEntropyLossFlat(), opt_func=SGD, lr=0.1, cbs=cbs,
                    path=tmp_path)
    learn.remove_cb(ProgressCallback)
    return learn


class FakeValid(Callback):
    """After the Recorder, before the trackers: the epoch's valid_loss becomes seq[epoch]."""

    order = 55

    def __init__(self, seq):
        self.seq = seq

    def after_epoch(self):
        self.learn.recorder.values[-1][1] = self.seq[self.learn.epoch]


class Snapshot(Callback):
    order = 56

    def before_fit(self):
        self.weights = []

    def after_epoch(self):
        self.weights.append({k: v.detach().clone() for k, v in self.learn.model.state_dict().items()})


def files(tmp_path):
    return sorted(p.name for p in (tmp_path / "models").iterdir())


def test_every_epoch_keeps_the_last_k_and_no_user_file_goes(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    for name in ("model.pth", "mine.pth", "model_9.pth", "model_1.txt"):  # the user's, never written by the fit
        (models / name).write_bytes(b"user data")
    snap = Snapshot()
    learn = make_learner(tmp_path, cbs=[snap, SaveModelCallback(every_epoch=True, keep_last=2)])
    learn.fit(5)
    assert files(tmp_path) == ["mine.pth", "model.pth", "model_1.txt", "model_3.pth", "model_4.pth", "model_9.pth"]
    for name in ("model.pth", "mine.pth", "model_9.pth", "model_1.txt"):
        assert (models / name).read_bytes() == b"user data"
    for epoch in (3, 4):
        saved = torch.load(models / f"model_{epoch}.pth", weights_only=True)["model"]
        assert all(torch.equal(v, snap.weights[epoch][k]) for k, v in saved.items())


def test_every_n_epochs_and_keep_one(tmp_path):
    learn = make_learner(tmp_path, cbs=[SaveModelCallback(every_epoch=2, keep_last=1, fname="ck")])
    learn.fit(5)  # saves at epochs 0, 2, 4
    assert files(tmp_path) == ["ck_4.pth"]


def test_best_mode_keeps_the_last_k_bests_and_loads_the_best(tmp_path):
    snap = Snapshot()
    learn = make_learner(tmp_path, cbs=[FakeValid([0.5, 0.4, 0.6, 0.3, 0.35]), snap,
                                        SaveModelCallback(keep_last=2)])
    learn.fit(5)  # improvements at epochs 0, 1, 3
    assert files(tmp_path) == ["model_1.pth", "model_3.pth"]
    for k, v in learn.model.state_dict().items():  # the best epoch's weights are back
        assert torch.equal(v, snap.weights[3][k])
    assert not torch.equal(snap.weights[3]["weight"], snap.weights[4]["weight"])


def test_a_file_replaced_since_the_fit_wrote_it_is_not_deleted(tmp_path):
    class Replace(Callback):
        order = 70  # after SaveModelCallback wrote model_0

        def after_epoch(self):
            if self.learn.epoch == 0:
                p = tmp_path / "models" / "model_0.pth"
                p.unlink()
                p.write_bytes(b"someone else's")

    learn = make_learner(tmp_path, cbs=[SaveModelCallback(every_epoch=True, keep_last=1), Replace()])
    learn.fit(3)
    assert files(tmp_path) == ["model_0.pth", "model_2.pth"]
    assert (tmp_path / "models" / "model_0.pth").read_bytes() == b"someone else's"


def test_a_second_fit_counts_afresh(tmp_path):
    learn = make_learner(tmp_path, cbs=[SaveModelCallback(every_epoch=True, keep_last=2)])
    learn.fit(3)
    learn.fit(1)  # rewrites model_0: this fit's file; model_1 and model_2 are the first fit's, and stay
    assert files(tmp_path) == ["model_0.pth", "model_1.pth", "model_2.pth"]


def test_bad_keep_last(tmp_path):
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="keep_last"):
            SaveModelCallback(every_epoch=True, keep_last=bad)
    with pytest.raises(ValueError, match="at_end"):
        SaveModelCallback(at_end=True, keep_last=2)
    with pytest.raises(ValueError, match="every_n_batches"):
        SaveModelCallback(every_n_batches=3, keep_last=2)
    SaveModelCallback(every_n_batches=3, every_epoch=True, keep_last=2)  # the epoch files are kept
