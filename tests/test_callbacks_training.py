"""GradientAccumulation, GradientClip and TerminateOnNaNCallback on a real Learner, against hand-made references."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.callback.core import Callback
from learnkit.callback.progress import ProgressCallback
from learnkit.callback.training import BnFreeze, GradientAccumulation, GradientClip, TerminateOnNaNCallback
from learnkit.data.core import DataLoaders
from learnkit.learner import Learner
from learnkit.losses import CrossEntropyLossFlat
from learnkit.optimizer import SGD


pytestmark = pytest.mark.usefixtures("one_thread")


def make_xy(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return x, (x[:, 0] - x[:, 2] > 0).long()


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))


def make_learner(bs, cbs=None, loss_func=None, lr=0.1, n=32):
    x, y = make_xy()
    x, y = x[:n], y[:n]
    dls = DataLoaders(TorchDataLoader(TensorDataset(x, y), batch_size=bs, shuffle=False),  # fixed order
                      TorchDataLoader(TensorDataset(x[:8], y[:8]), batch_size=8), device="cpu")
    learn = Learner(dls, make_model(), loss_func=loss_func or CrossEntropyLossFlat(), opt_func=SGD, lr=lr, cbs=cbs)
    learn.remove_cb(ProgressCallback)
    return learn


class CountSteps(Callback):
    order = 50

    def __init__(self):
        self.steps = 0

    def after_step(self):
        self.steps += 1


def sgd_reference(n_items, lr=0.1):
    """Weights after one plain SGD step on the mean loss over the first ``n_items`` items."""
    model = make_model()
    x, y = make_xy()
    F.cross_entropy(model(x[:n_items]), y[:n_items]).backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad
    return model


def test_gradient_accumulation_equals_one_big_batch():
    steps = CountSteps()
    learn = make_learner(bs=8, cbs=[GradientAccumulation(n_acc=32), steps])
    with learn.no_logging():
        learn.fit(1)
    assert steps.steps == 1
    ref = sgd_reference(32)
    for p, q in zip(learn.model.parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    # the recorded loss is the true one: the first smoothed loss is the first batch's unscaled loss
    x, y = make_xy()
    first = F.cross_entropy(make_model()(x[:8]), y[:8]).item()
    assert learn.recorder.losses[0] == pytest.approx(first, rel=1e-5)


def test_gradient_accumulation_overshoot_is_exact_mean():
    # batches of 12, 12, 8 with n_acc=20: one step on the mean over the first 24 items, the last 8 dropped
    steps = CountSteps()
    learn = make_learner(bs=12, cbs=[GradientAccumulation(n_acc=20), steps])
    with learn.no_logging():
        learn.fit(1)
    assert steps.steps == 1
    ref = sgd_reference(24)
    for p, q in zip(learn.model.parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert all(p.grad is None or not p.grad.any() for p in learn.model.parameters())  # partial accumulation dropped


def test_without_accumulation_steps_every_batch():
    steps = CountSteps()
    learn = make_learner(bs=8, cbs=[steps])
    with learn.no_logging():
        learn.fit(1)
    assert steps.steps == 4


class GradNorm(Callback):
    """Measures the global gradient norm right after GradientClip (order 11)."""

    order = 12

    def __init__(self):
        self.norms = []

    def before_step(self):
        grads = [p.grad.flatten() for p in self.learn.model.parameters() if p.grad is not None]
        self.norms.append(torch.cat(grads).norm().item())


def test_gradient_clip_bounds_the_norm():
    norms = GradNorm()
    clip = GradientClip(max_norm=0.05)
    learn = make_learner(bs=8, cbs=[clip, norms])
    with learn.no_logging():
        learn.fit(1)
    assert len(norms.norms) == 4
    assert all(n == pytest.approx(0.05, rel=1e-4) for n in norms.norms)  # every raw norm was larger: clipped to max
    assert clip.total_norm.item() > 0.05
    # the first step's clipped gradient is the raw one scaled by max_norm / raw_norm
    model, (x, y) = make_model(), make_xy()
    F.cross_entropy(model(x[:8]), y[:8]).backward()
    raw = torch.cat([p.grad.flatten() for p in model.parameters()])
    ref = [p.detach() - 0.1 * p.grad * 0.05 / raw.norm() for p in model.parameters()]
    fresh = make_learner(bs=8, cbs=[GradientClip(max_norm=0.05)], n=8)
    with fresh.no_logging():
        fresh.fit(1)
    for p, r in zip(fresh.model.parameters(), ref):
        assert torch.allclose(p, r, atol=1e-6)


def test_gradient_clip_leaves_small_gradients_alone():
    norms = GradNorm()
    learn = make_learner(bs=8, cbs=[GradientClip(max_norm=1e6), norms])
    with learn.no_logging():
        learn.fit(1)
    raw_model, (x, y) = make_model(), make_xy()
    F.cross_entropy(raw_model(x[:8]), y[:8]).backward()
    raw = torch.cat([p.grad.flatten() for p in raw_model.parameters()]).norm().item()
    assert norms.norms[0] == pytest.approx(raw, rel=1e-5)


class NaNOnCall:
    """Cross-entropy that returns NaN from call number ``bad`` on (counting from 1)."""

    reduction = "mean"

    def __init__(self, bad):
        self.bad, self.calls = bad, 0

    def __call__(self, pred, targ):
        self.calls += 1
        loss = F.cross_entropy(pred, targ)
        return loss * float("nan") if self.calls >= self.bad else loss


def test_terminate_on_nan_stops_before_the_weights_are_hit():
    weights = []

    class Keep(Callback):
        def after_step(self):
            weights.append([p.detach().clone() for p in self.learn.model.parameters()])
    learn = make_learner(bs=8, loss_func=NaNOnCall(bad=3), cbs=[TerminateOnNaNCallback(), Keep()])
    with learn.no_logging():
        learn.fit(3)
    assert learn.train_iter == 2  # the third batch was the NaN one: the fit stopped inside it
    assert len(weights) == 2 and learn.recorder.values == []
    for p, w in zip(learn.model.parameters(), weights[-1]):
        assert torch.equal(p, w) and torch.isfinite(p).all()
    assert isinstance(learn.terminate_on_nan, TerminateOnNaNCallback)


def test_terminate_on_inf_in_validation():
    # 4 training batches then validation: the 5th loss call is the first validation batch
    loss = NaNOnCall(bad=5)
    learn = make_learner(bs=8, loss_func=loss, cbs=[TerminateOnNaNCallback()])
    with learn.no_logging():
        learn.fit(2)
    assert learn.epoch == 0 and learn.recorder.values == [] and loss.calls == 5


def test_without_terminate_nan_the_default_guard_stops_and_can_be_removed():
    learn = make_learner(bs=8, loss_func=NaNOnCall(bad=3))
    with learn.no_logging(), pytest.warns(RuntimeWarning, match="epoch 0, batch 2"):
        learn.fit(1)
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())
    learn = make_learner(bs=8, loss_func=NaNOnCall(bad=3))
    learn.remove_cb(learn.finite_loss_guard)  # opting out: the NaN then reaches the weights
    with learn.no_logging():
        learn.fit(1)
    assert not all(torch.isfinite(p).all() for p in learn.model.parameters())
    assert math.isnan(learn.recorder.values[0][0])


def test_accumulation_and_clip_compose():
    # accumulate 32 items then clip the mean gradient: one step of norm max_norm
    norms = GradNorm()
    learn = make_learner(bs=8, cbs=[GradientAccumulation(32), GradientClip(max_norm=0.01), norms])
    with learn.no_logging():
        learn.fit(1)
    assert len(norms.norms) == 1 and norms.norms[0] == pytest.approx(0.01, rel=1e-4)
    model = copy.deepcopy(make_model())
    x, y = make_xy()
    F.cross_entropy(model(x), y).backward()
    g = torch.cat([p.grad.flatten() for p in model.parameters()])
    for p, q in zip(learn.model.parameters(), model.parameters()):
        assert torch.allclose(p, q.detach() - 0.1 * q.grad * 0.01 / g.norm(), atol=1e-6)


def _bn_learner(cbs):
    """Body (Linear + BatchNorm) and head (Linear + BatchNorm) in two parameter groups, body frozen."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), nn.Sequential(nn.Linear(4, 2), nn.BatchNorm1d(2)))
    x, y = make_xy(64)
    x = x * 3 + 5  # batch statistics far from the initial running ones
    dls = DataLoaders(TorchDataLoader(TensorDataset(x, y), batch_size=16), TorchDataLoader(TensorDataset(x, y), batch_size=16),
                      device="cpu")
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), opt_func=SGD, lr=0.01, cbs=cbs, train_bn=False,
                    splitter=lambda m: [list(m[0].parameters()), list(m[1].parameters())])
    learn.remove_cb(ProgressCallback)
    learn.freeze()
    return learn


def _running(bn):
    return bn.running_mean.clone(), bn.running_var.clone()


@pytest.mark.parametrize("keep", [False, True])
def test_bn_freeze_keeps_frozen_statistics_and_lets_the_head_learn_its_own(keep):
    learn = _bn_learner(BnFreeze(keep_after_unfreeze=keep))
    body_bn, head_bn = learn.model[0][1], learn.model[1][1]
    body0, head0 = _running(body_bn), _running(head_bn)
    with learn.no_logging():
        learn.fit(1)
    assert all(torch.equal(a, b) for a, b in zip(_running(body_bn), body0))  # frozen body: statistics untouched
    assert not torch.equal(_running(head_bn)[0], head0[0])  # trainable head: statistics updated
    learn.unfreeze()
    with learn.no_logging():
        learn.fit(1)
    moved = not torch.equal(_running(body_bn)[0], body0[0])
    assert moved is not keep  # after unfreeze: kept only with keep_after_unfreeze
    assert body_bn.weight.requires_grad  # affine weights train either way


def test_without_bn_freeze_frozen_batchnorm_statistics_drift():
    learn = _bn_learner(None)
    body0 = _running(learn.model[0][1])
    with learn.no_logging():
        learn.fit(1)
    assert not torch.equal(_running(learn.model[0][1])[0], body0[0])
