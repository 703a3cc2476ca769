"""What a Keras / plain-PyTorch user does first: one-hot labels, a callback reading the epoch's metrics,
predict over plain torch loaders with nn.CrossEntropyLoss, restore_best_weights, ReduceLROnPlateau(factor=0.1)."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.callback.core import Callback
from learnkit.callback.progress import ProgressCallback
from learnkit.callback.tracker import EarlyStoppingCallback, ReduceLROnPlateau
from learnkit.data.blocks import CategoryBlock
from learnkit.data.core import DataLoaders
from learnkit.learner import Learner
from learnkit.losses import CrossEntropyLossFlat
from learnkit.metrics import accuracy
from learnkit.optimizer import SGD
from learnkit.tabular.data import TabularDataLoaders
from learnkit.vision.data import ImageDataLoaders

pytestmark = pytest.mark.usefixtures("one_thread")


def blobs(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    return x, (x[:, 0] + x[:, 1] > 0).long()


def plain_learner(tmp_path, loss_func=None, cbs=None, lr=0.05, metrics=None):
    x, y = blobs()
    dls = DataLoaders(TorchDataLoader(TensorDataset(x[:64], y[:64]), batch_size=16, shuffle=True),
                      TorchDataLoader(TensorDataset(x[64:], y[64:]), batch_size=16), device="cpu")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    learn = Learner(dls, model, loss_func=loss_func or nn.CrossEntropyLoss(), opt_func=SGD, lr=lr, cbs=cbs,
                    metrics=metrics, path=tmp_path)
    learn.remove_cb(ProgressCallback)
    return learn


# -- one-hot labels (to_categorical)

def to_categorical(ids, k):
    """Keras' to_categorical: float32 one-hot rows."""
    return np.eye(k, dtype="float32")[ids]


def test_image_from_arrays_one_hot_rows_are_single_label():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 8, 8), dtype=np.uint8)
    ids = np.arange(40) % 3
    dls = ImageDataLoaders.from_arrays(x, to_categorical(ids, 4), valid_pct=0.25, seed=0, bs=8, device="cpu")
    assert dls.vocab == [0, 1, 2, 3]  # the 4th column (no row uses it) still gets its class
    _, yb = dls.one_batch()
    assert yb.ndim == 1 and yb.dtype == torch.int64  # class ids, not a multi-label 0/1 matrix
    got = sorted(int(dls.train.dataset[i][1]) for i in range(len(dls.train.dataset))) + \
        sorted(int(dls.valid.dataset[i][1]) for i in range(len(dls.valid.dataset)))
    assert sorted(got) == sorted(ids.tolist())
    named = ImageDataLoaders.from_arrays(x, to_categorical(ids, 3), vocab=["a", "b", "c"], valid_pct=0.25, seed=0,
                                         bs=8, device="cpu")
    assert named.vocab == ["a", "b", "c"]
    with pytest.raises(ValueError, match="3 columns but vocab has 2"):
        ImageDataLoaders.from_arrays(x, to_categorical(ids, 3), vocab=["a", "b"], bs=8, device="cpu")
    # two 1s in a row: a genuine multi-label problem stays one
    multi = to_categorical(ids, 3)
    multi[0, (ids[0] + 1) % 3] = 1
    mdls = ImageDataLoaders.from_arrays(x, multi, valid_pct=0.25, seed=0, bs=8, device="cpu")
    assert mdls.one_batch()[1].shape == (8, 3)


def test_tabular_from_arrays_one_hot_rows_are_single_label():
    x, y = blobs(200)
    dls = TabularDataLoaders.from_arrays(x.numpy(), to_categorical(y.numpy(), 2), valid_pct=0.2, seed=0, bs=32)
    assert dls.vocab == [0, 1]
    yb = dls.one_batch()[-1]
    assert yb.shape[0] == 32 and yb.numel() == 32  # one class id per row


# -- a plain callback reading this epoch's metrics

class KerasStyleLog(Callback):
    """Order 0 (the default): runs before the Recorder's order 50 in every other event."""

    def before_fit(self):
        self.rows, self.logs = [], []

    def after_epoch(self):
        self.rows.append(list(self.learn.recorder.values[-1]))
        self.logs.append(dict(self.learn.recorder.logs))


def test_plain_callback_reads_the_epochs_values_in_after_epoch(tmp_path):
    cb = KerasStyleLog()
    learn = plain_learner(tmp_path, cbs=[cb], metrics=[accuracy])
    learn.fit(3)
    assert cb.rows == learn.recorder.values  # this epoch's row, not the previous one (nor an IndexError)
    assert [list(d) for d in cb.logs] == [["train_loss", "valid_loss", "accuracy"]] * 3
    assert [d["valid_loss"] for d in cb.logs] == [row[1] for row in learn.recorder.values]
    assert cb.logs[-1]["accuracy"] == learn.recorder.values[-1][2]


# -- predict with PyTorch's own loss

def test_predict_with_nn_cross_entropy_matches_cross_entropy_loss_flat(tmp_path):
    learn = plain_learner(tmp_path, loss_func=nn.CrossEntropyLoss())
    learn.fit(2)
    item = torch.tensor([1.5, 1.0])
    decoded, idx, probs = learn.predict(item)
    assert probs.shape == (2,) and float(probs.sum()) == pytest.approx(1, abs=1e-6) and bool((probs >= 0).all())
    assert int(idx) == int(probs.argmax()) == int(decoded) == 1  # x0 + x1 > 0: class 1
    learn.loss_func = CrossEntropyLossFlat()
    d2, i2, p2 = learn.predict(item)
    assert torch.allclose(p2, probs) and int(i2) == int(idx)
    preds, _ = learn.get_preds()
    assert torch.allclose(preds.sum(1), torch.ones(len(preds)))  # get_preds gives probabilities too
    learn.loss_func = nn.BCEWithLogitsLoss()
    _, dec, p = learn.predict(item)
    assert torch.equal(dec, p > 0.5) and bool(((p > 0) & (p < 1)).all())


# -- EarlyStoppingCallback(restore_best_weights=True)

class FakeValid(Callback):
    """After the Recorder, before the trackers: the epoch's valid_loss from a crafted sequence; keeps the weights."""

    order = 55

    def __init__(self, seq):
        self.seq = seq

    def before_fit(self):
        self.weights = []

    def after_epoch(self):
        self.learn.recorder.values[-1][1] = self.seq[self.learn.epoch]
        self.weights.append({k: v.detach().clone() for k, v in self.learn.model.state_dict().items()})


def test_early_stopping_restores_the_best_weights(tmp_path):
    fake = FakeValid([1.0, 0.5, 0.7, 0.8, 0.9, 1.0])
    learn = plain_learner(tmp_path, cbs=[fake, EarlyStoppingCallback(patience=2, restore_best_weights=True)])
    learn.fit(6)
    assert len(learn.recorder.values) == 4  # epochs 2 and 3 don't improve on epoch 1: stop after epoch 3
    state = learn.model.state_dict()
    assert all(torch.equal(state[k], fake.weights[1][k]) for k in state)  # epoch 1's weights, the best
    assert not all(torch.equal(state[k], fake.weights[3][k]) for k in state)
    assert not (tmp_path / "models").exists()  # kept in memory, nothing written
    # without the option the last weights stay (fastai's behaviour)
    fake = FakeValid([1.0, 0.5, 0.7, 0.8])
    learn = plain_learner(tmp_path, cbs=[fake, EarlyStoppingCallback(patience=2)])
    learn.fit(4)
    state = learn.model.state_dict()
    assert all(torch.equal(state[k], fake.weights[-1][k]) for k in state)


# -- ReduceLROnPlateau: fastai's factor and Keras' factor

class LrLog(Callback):
    order = 70

    def before_fit(self):
        self.lrs = []

    def after_epoch(self):
        self.lrs.append(self.learn.opt.param_groups[-1]["lr"])


@pytest.mark.parametrize("factor", [10., 0.1])
def test_reduce_lr_on_plateau_takes_both_factor_meanings(tmp_path, factor):
    log = LrLog()
    learn = plain_learner(tmp_path, lr=0.1, cbs=[FakeValid([1.0, 1.1, 1.2, 0.5]),
                                                 ReduceLROnPlateau(patience=1, factor=factor), log])
    learn.fit(4)
    assert log.lrs == pytest.approx([0.1, 0.01, 0.001, 0.001])  # a tenth at each plateau, either way


@pytest.mark.parametrize("factor", [1, 0, -2.])
def test_reduce_lr_on_plateau_refuses_a_factor_that_reduces_nothing(factor):
    with pytest.raises(ValueError, match=r"factor > 1 to divide.*0 < factor < 1 to multiply"):
        ReduceLROnPlateau(factor=factor)
