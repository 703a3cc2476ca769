"""Trackers on a real Learner: early stopping, saving/reloading the best model, reducing the lr on a plateau.

A helper callback overwrites the recorded value of each epoch with a crafted sequence, so the epoch at
which a tracker acts is known in advance.
"""
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.callback.core import Callback
from learnkit.callback.progress import ProgressCallback
from learnkit.callback.tracker import (EarlyStoppingCallback, ReduceLROnPlateau, SaveModelCallback, TrackerCallback,
                                       infer_comp)
from learnkit.data.core import DataLoaders
from learnkit.learner import Learner
from learnkit.losses import CrossEntropyLossFlat
from learnkit.metrics import accuracy
from learnkit.optimizer import SGD


pytestmark = pytest.mark.usefixtures("one_thread")


def make_learner(tmp_path, cbs=None, metrics=None, splitter=None, lr=0.05):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 2, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    dls = DataLoaders(TorchDataLoader(TensorDataset(x[:64], y[:64]), batch_size=16, shuffle=True),
                      TorchDataLoader(TensorDataset(x[64:], y[64:]), batch_size=16), device="cpu")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    kw = {} if splitter is None else {"splitter": splitter}
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), opt_func=SGD, lr=lr, cbs=cbs, metrics=metrics,
                    path=tmp_path, **kw)
    learn.remove_cb(ProgressCallback)
    return learn


class FakeValues(Callback):
    """After the Recorder (50) and before the trackers (60): replace column ``col`` of the epoch's values."""

    order = 55

    def __init__(self, seq, col=1):
        self.seq, self.col = list(seq), col

    def after_epoch(self):
        self.learn.recorder.values[-1][self.col] = self.seq[self.learn.epoch]


class Snapshot(Callback):
    """Keeps a copy of the weights (and last group's lr) at the end of every epoch, before any tracker acts."""

    order = 56

    def __init__(self):
        self.weights, self.lrs = [], []

    def before_fit(self):
        self.weights, self.lrs = [], []

    def after_epoch(self):
        self.weights.append({k: v.detach().clone() for k, v in self.learn.model.state_dict().items()})


class LrLog(Callback):
    """Records every group's lr after the trackers ran."""

    order = 70

    def __init__(self):
        self.lrs = []

    def after_epoch(self):
        self.lrs.append([g["lr"] for g in self.learn.opt.param_groups])


def fit(learn, n):
    with learn.no_logging():
        learn.fit(n)


# -- direction and names

def test_infer_comp_from_names():
    for name in ("valid_loss", "train_loss", "error_rate", "rmse", "mae", "mse", "exp_rmspe"):
        assert infer_comp(name) is np.less, name
    for name in ("accuracy", "f1_score", "roc_auc_score", "dice", "r2_score", "precision_score", "recall_score",
                 "foreground_acc", "jaccard_coeff", "matthews_corrcoef"):
        assert infer_comp(name) is np.greater, name
    with pytest.raises(ValueError, match="comp=np.less .* comp=np.greater"):
        infer_comp("wobble")
    with pytest.raises(ValueError, match="both"):
        infer_comp("accuracy_loss")


def test_unknown_monitor_lists_recorded_names(tmp_path):
    learn = make_learner(tmp_path, cbs=EarlyStoppingCallback(monitor="valid_los"), metrics=accuracy)
    with pytest.raises(ValueError, match=r"\['train_loss', 'valid_loss', 'accuracy'\]"):
        fit(learn, 1)


def test_uninferable_metric_needs_comp(tmp_path):
    def wobble(pred, targ):
        return pred.mean()
    learn = make_learner(tmp_path, cbs=EarlyStoppingCallback(monitor="wobble"), metrics=wobble)
    with pytest.raises(ValueError, match="pass comp=np.less"):
        fit(learn, 1)
    learn = make_learner(tmp_path, cbs=[FakeValues([0.1, 0.3, 0.2, 0.0], col=2),
                                        EarlyStoppingCallback(monitor="wobble", comp=np.greater)], metrics=wobble)
    fit(learn, 4)
    assert len(learn.recorder.values) == 3  # best 0.3 at epoch 1, no gain at epoch 2 -> stop


# -- early stopping

def test_early_stopping_stops_at_the_right_epoch(tmp_path):
    seq = [1.0, 0.8, 0.9, 0.85, 0.7, 0.6]
    learn = make_learner(tmp_path, cbs=[FakeValues(seq), EarlyStoppingCallback(patience=2)])
    fit(learn, 6)
    # best 0.8 at epoch 1; epochs 2 and 3 don't improve -> stops after epoch 3
    assert [v[1] for v in learn.recorder.values] == seq[:4]
    assert learn.early_stopping.best == 0.8 and learn.early_stopping.wait == 2


def test_early_stopping_min_delta(tmp_path):
    seq = [1.0, 0.95, 0.93, 0.5]
    learn = make_learner(tmp_path, cbs=[FakeValues(seq), EarlyStoppingCallback(min_delta=0.1, patience=2)])
    fit(learn, 4)
    assert len(learn.recorder.values) == 3  # 0.95 and 0.93 are not 0.1 below 1.0
    learn = make_learner(tmp_path, cbs=[FakeValues(seq), EarlyStoppingCallback(patience=2)])
    fit(learn, 4)
    assert len(learn.recorder.values) == 4


def test_early_stopping_on_a_higher_is_better_metric(tmp_path):
    seq = [0.5, 0.6, 0.6, 0.9]
    learn = make_learner(tmp_path, metrics=accuracy,
                         cbs=[FakeValues(seq, col=2), EarlyStoppingCallback(monitor="accuracy", patience=1)])
    fit(learn, 4)
    assert len(learn.recorder.values) == 3  # 0.6 does not beat 0.6


def test_reset_on_fit_false_keeps_best_across_fits(tmp_path):
    es = EarlyStoppingCallback(patience=1, reset_on_fit=False)
    learn = make_learner(tmp_path, cbs=[FakeValues([0.5, 0.4, 0.45]), es])
    fit(learn, 3)
    assert es.best == 0.4
    learn.remove_cb(FakeValues).add_cb(FakeValues([0.45, 0.3]))
    fit(learn, 2)  # 0.45 is worse than the 0.4 kept from the last fit -> stops at once
    assert len(learn.recorder.values) == 1


# -- saving the best model

def test_save_model_reloads_best_weights(tmp_path):
    seq = [0.9, 0.5, 0.7, 0.8]
    snap = Snapshot()
    learn = make_learner(tmp_path, cbs=[FakeValues(seq), snap, SaveModelCallback()])
    fit(learn, 4)
    assert (tmp_path / "models" / "model.pth").exists()
    final = learn.model.state_dict()
    for k, v in final.items():
        assert torch.equal(v, snap.weights[1][k])  # epoch 1 had the best value
        assert not torch.equal(v, snap.weights[3][k])  # training did move the weights afterwards
    assert learn.save_model.best == 0.5


def test_save_model_with_early_stopping_reloads_best(tmp_path):
    seq = [0.9, 0.5, 0.7, 0.8, 0.1]
    snap = Snapshot()
    learn = make_learner(tmp_path, cbs=[FakeValues(seq), snap, SaveModelCallback(fname="best"),
                                        EarlyStoppingCallback(patience=2)])
    fit(learn, 5)
    assert len(learn.recorder.values) == 4
    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, snap.weights[1][k])


def test_save_model_every_epoch_and_at_end(tmp_path):
    snap = Snapshot()
    learn = make_learner(tmp_path, cbs=[snap, SaveModelCallback(every_epoch=True)])
    fit(learn, 3)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["model_0.pth", "model_1.pth", "model_2.pth"]
    saved = torch.load(tmp_path / "models" / "model_1.pth", weights_only=True)["model"]
    for k, v in saved.items():
        assert torch.equal(v, snap.weights[1][k])
    for k, v in learn.model.state_dict().items():  # nothing reloaded
        assert torch.equal(v, snap.weights[2][k])

    learn = make_learner(tmp_path, cbs=[FakeValues([0.1, 0.5, 0.6]), SaveModelCallback(fname="end", at_end=True)])
    fit(learn, 3)
    saved = torch.load(tmp_path / "models" / "end.pth", weights_only=True)["model"]
    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, saved[k])
    with pytest.raises(ValueError, match="pick one"):
        SaveModelCallback(every_epoch=True, at_end=True)


# -- reducing the lr

def test_reduce_lr_on_plateau_divides_every_group(tmp_path):
    seq = [1.0, 1.1, 1.2, 0.5, 0.6, 0.7]
    log = LrLog()

    def split(m):
        return [list(m[0].parameters()), list(m[2].parameters())]
    learn = make_learner(tmp_path, splitter=split,
                         cbs=[FakeValues(seq), ReduceLROnPlateau(patience=1, factor=10., min_lr=1e-4), log])
    learn.lr = slice(0.01, 0.1)
    fit(learn, 6)
    body = [r[0] for r in log.lrs]
    head = [r[1] for r in log.lrs]
    # epochs 1, 2 don't improve: /10 each; epoch 3 improves; epochs 4, 5: /10 each, floored at min_lr
    assert head == pytest.approx([0.1, 0.01, 0.001, 0.001, 1e-4, 1e-4])
    assert body == pytest.approx([0.01, 0.001, 1e-4, 1e-4, 1e-4, 1e-4])
    assert isinstance(learn.reduce_lr_on_plateau, ReduceLROnPlateau)


def test_reduce_lr_patience(tmp_path):
    log = LrLog()
    learn = make_learner(tmp_path, cbs=[FakeValues([1.0, 1.1, 1.2, 1.3, 1.4]), ReduceLROnPlateau(patience=2, factor=2.),
                                        log], lr=0.08)
    fit(learn, 5)
    assert [r[0] for r in log.lrs] == pytest.approx([0.08, 0.08, 0.04, 0.04, 0.02])


# -- lr_find leaves the trackers alone

def test_trackers_sit_out_lr_find(tmp_path):
    learn = make_learner(tmp_path, cbs=[SaveModelCallback(), EarlyStoppingCallback(), ReduceLROnPlateau()])
    learn.lr_find(num_it=8, show_plot=False, suggest_funcs=None)
    assert not (tmp_path / "models").exists()
    fit(learn, 1)  # and they work in the next fit
    assert (tmp_path / "models" / "model.pth").exists()


def test_tracker_base_records_best(tmp_path):
    tr = TrackerCallback(monitor="train_loss")
    learn = make_learner(tmp_path, cbs=[FakeValues([3.0, 2.0, 2.5], col=0), tr])
    fit(learn, 3)
    assert tr.best == 2.0 and tr.new_best is False and tr.comp is np.less
