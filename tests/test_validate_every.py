"""ValidateEvery on a real Learner: how many validations, at which steps, and the training state after each."""
import io

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.callback.core import Callback
from learnkit.callback.progress import ProgressCallback, TableWriter
from learnkit.callback.tracker import SaveModelCallback
from learnkit.callback.validate_every import ValidateEvery
from learnkit.data.core import DataLoaders
from learnkit.learner import Learner
from learnkit.losses import CrossEntropyLossFlat
from learnkit.metrics import accuracy
from learnkit.optimizer import SGD

pytestmark = pytest.mark.usefixtures("one_thread")


def make_learner(tmp_path, cbs=None, n_train=80, bs=16, metrics=accuracy, **kw):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_train + 32, 2, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    dls = DataLoaders(TorchDataLoader(TensorDataset(x[:n_train], y[:n_train]), batch_size=bs, shuffle=True),
                      TorchDataLoader(TensorDataset(x[n_train:], y[n_train:]), batch_size=16), device="cpu")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.1), nn.ReLU(), nn.Linear(8, 2))
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), opt_func=SGD, lr=0.1, cbs=cbs, metrics=metrics,
                    path=tmp_path, **kw)
    learn.remove_cb(ProgressCallback)
    return learn


class Watch(Callback):
    """Logs every phase start and, per training batch, the model's mode and the learner's phase flags."""

    order = 80  # after ValidateEvery: sees the state it leaves behind

    def before_fit(self):
        self.events, self.train_modes, self.batch_ok = [], [], []

    def before_train(self):
        self.events.append(("train", self.learn.epoch))

    def before_validate(self):
        self.events.append(("valid", self.learn.train_iter))

    def before_batch(self):
        if self.learn.training:
            self.train_modes.append(self.learn.model.training)

    def after_batch(self):
        learn = self.learn
        if learn.training:  # the training batch's own values, not the last validation batch's
            self.batch_ok.append(learn.dl is learn.dls.train and learn.xb[0].shape[0] == learn.yb[0].shape[0]
                                 and learn.pred.shape[0] == learn.xb[0].shape[0] and learn.model.training)


def test_validates_every_n_steps_and_at_epoch_ends(tmp_path):
    # 80 items / bs 16 = 5 steps per epoch; 3 epochs = steps 1..15; every 2 steps: 2, 4, 6, ..., 14
    watch, ve = Watch(), ValidateEvery(2)
    learn = make_learner(tmp_path, cbs=[ve, watch])
    learn.fit(3)
    valid_steps = [s for kind, s in watch.events if kind == "valid"]
    # mid-epoch at 2, 4 | 6, 8 | 12, 14; epoch ends at 5, 10 (also a multiple: its step row), 15
    assert valid_steps == [2, 4, 5, 6, 8, 10, 12, 14, 15]
    assert [row[0] for row in ve.values] == [2, 4, 6, 8, 10, 12, 14]
    assert [row[1] for row in ve.values] == [0, 0, 1, 1, 1, 2, 2]
    assert list(ve.history.columns) == ["step", "epoch", "train_loss", "valid_loss", "accuracy"]
    # the step validation that ends epoch 1 is that epoch's row in the recorder
    assert ve.values[4][3:] == pytest.approx(learn.recorder.values[1][1:])
    assert all(watch.train_modes) and len(watch.train_modes) == 15
    assert all(watch.batch_ok) and len(watch.batch_ok) == 15
    assert learn.train_iter == 15 and len(learn.recorder.losses) == 15


def test_mid_epoch_values_are_a_real_validation(tmp_path):
    ve = ValidateEvery(3)
    learn = make_learner(tmp_path, cbs=[ve])
    seen = {}

    class Grab(Callback):
        order = 90

        def after_batch(self):  # right after the step-3 validation: score the same weights ourselves
            if self.learn.training and self.learn.train_iter == 3:
                seen["weights"] = {k: v.clone() for k, v in self.learn.model.state_dict().items()}

    learn.fit(1, cbs=[Grab()])
    other = make_learner(tmp_path, metrics=accuracy)
    other.model.load_state_dict(seen["weights"])
    loss, acc = other.validate()
    step, epoch, train_loss, vloss, vacc = ve.values[0]
    assert (step, epoch) == (3, 0)
    assert vloss == pytest.approx(loss) and vacc == pytest.approx(acc)
    assert train_loss == pytest.approx(learn.recorder.losses[2])


def test_training_goes_on_exactly_as_without_mid_epoch_validation(tmp_path):
    # dropout in the model: a mid-epoch pass that left the model in eval mode, or drew random numbers
    # from the training stream (it doesn't: validation has no dropout), would change the weights
    torch.manual_seed(1)
    a = make_learner(tmp_path)
    torch.manual_seed(2)
    a.fit(2)
    b = make_learner(tmp_path, cbs=[ValidateEvery(1)])
    torch.manual_seed(2)
    b.fit(2)
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k
    assert a.recorder.values == b.recorder.values
    assert len(b.validate_every.values) == 10


def test_at_epoch_end_false_skips_and_reuses_the_last_step_validation(tmp_path):
    watch, ve = Watch(), ValidateEvery(2, at_epoch_end=False)
    learn = make_learner(tmp_path, cbs=[ve, watch])
    learn.fit(2)  # steps 1..10; validations at 2, 4 | 6, 8, 10 (10 ends epoch 1: it runs)
    assert [s for kind, s in watch.events if kind == "valid"] == [2, 4, 6, 8, 10]  # epoch 0's end (step 5) skipped
    assert [row[0] for row in ve.values] == [2, 4, 6, 8, 10]
    assert learn.recorder.values[0][1:] == pytest.approx(ve.values[1][3:])  # epoch 0's row: step 4's values
    assert learn.recorder.values[1][1:] == pytest.approx(ve.values[4][3:])


def test_train_metrics_are_not_mixed_with_mid_epoch_validation(tmp_path):
    a = make_learner(tmp_path)
    a.recorder.train_metrics = True
    torch.manual_seed(3)
    a.fit(1)
    b = make_learner(tmp_path, cbs=[ValidateEvery(2)])
    b.recorder.train_metrics = True
    torch.manual_seed(3)
    b.fit(1)
    assert b.recorder.values == a.recorder.values  # train_accuracy over the training batches only
    assert len(b.validate_every.values) == 2


def test_rows_printed_in_the_training_table(tmp_path):
    out = io.StringIO()
    learn = make_learner(tmp_path, cbs=[ValidateEvery(2)])
    learn.logger = TableWriter(out)
    learn.fit(1)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    assert [ln.split()[:2] for ln in lines[1:3]] == [["step", "2"], ["step", "4"]]
    assert lines[3].split()[0] == "0" and len(lines) == 4
    vl = learn.validate_every.values[0][3]
    assert float(lines[1].split()[3]) == pytest.approx(vl, abs=1e-6)


def test_progress_bar_survives_a_mid_epoch_validation(tmp_path):
    learn = make_learner(tmp_path, cbs=[ValidateEvery(2)])
    learn.add_cb(ProgressCallback(mininterval=0))
    bars = []

    class Count(Callback):
        order = 90

        def after_batch(self):
            if self.learn.training:
                bars.append(self.learn.progress.pbar.n)

    learn.fit(1, cbs=[Count()])
    assert bars == [1, 2, 3, 4, 5]  # the training bar keeps counting after each validation


def test_sits_out_validate_and_lr_find_and_checks_its_argument(tmp_path):
    ve = ValidateEvery(1)
    learn = make_learner(tmp_path, cbs=[ve])
    learn.validate()
    assert ve.values == []
    learn.fit(1)
    kept = [list(r) for r in ve.values]
    assert [r[0] for r in kept] == [1, 2, 3, 4, 5]
    learn.validate()
    learn.lr_find(num_it=20, show_plot=False, suggest_funcs=None)
    assert ve.values == kept  # neither validate nor lr_find adds a row or forgets the fit's
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n_steps"):
            ValidateEvery(bad)


def test_works_with_trackers_on_epoch_values(tmp_path):
    learn = make_learner(tmp_path, cbs=[ValidateEvery(2), SaveModelCallback(monitor="accuracy")])
    learn.fit(2)
    assert np.isfinite(learn.recorder.values[-1][1])
    assert (tmp_path / "models" / "model.pth").exists()
