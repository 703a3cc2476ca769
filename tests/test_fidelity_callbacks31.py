"""Issue 31: fastai's callback internals (13_callback.core), the callback optimizer (12_optimizer, book ch 16),
MCDropoutCallback and rnn_cbs; examples ported from fastai's notebooks."""
from __future__ import annotations

import warnings
from functools import partial

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader, TensorDataset

from learnkit.basics import (Callback, DataLoaders, GetAttr, Learner, MCDropoutCallback, Optimizer, adam_step,
                             average_grad, average_sqr_grad, debias, event, l2_reg, momentum_step, rms_prop_step,
                             sgd_step, step_stat, store_attr, weight_decay, Lookahead, CancelBatchException)
from learnkit.text.all import ModelResetter, RNNRegularizer, rnn_cbs

pytestmark = pytest.mark.usefixtures("one_thread")


class TstLearner:
    def __init__(self, a):
        self.a = a


def _dls(bs: int = 16, n: int = 128) -> DataLoaders:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n + 64, 2, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return DataLoaders(TorchDataLoader(TensorDataset(x[:n], y[:n]), batch_size=bs, shuffle=True),
                       TorchDataLoader(TensorDataset(x[n:], y[n:]), batch_size=bs), device="cpu")


def _model(p_drop: float = 0.) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(p_drop), nn.Linear(16, 2))


# -- callback core

def test_event_names():
    assert event.before_step == "before_step"
    assert event.after_batch == "after_batch"
    assert event.after_create == "after_create" and event.after_cancel_step == "after_cancel_step"


def test_call_by_event_name_and_constructor_handlers():
    class _T(Callback):
        def call_me(self):
            return "maybe"
    assert _T()("call_me") == "maybe"

    def cb(self):
        return "maybe"
    _t = Callback(before_fit=cb)
    assert _t(event.before_fit) == "maybe"
    assert _t("after_batch") is None  # no handler: nothing
    with pytest.raises(TypeError, match="unknown events"):
        Callback(before_fitt=cb)


def test_reads_learner_attributes_and_sets_its_own(capsys):
    class TstCallback(Callback):
        def batch_begin(self):
            print(self.a)
    learn, cb = TstLearner(1), TstCallback()
    cb.learn = learn
    cb("batch_begin")
    assert capsys.readouterr().out == "1\n"

    class TstCallback2(Callback):
        def batch_begin(self):
            self.a += 1
    learn, cb = TstLearner(1), TstCallback2()
    cb.learn = learn
    with pytest.warns(UserWarning, match=r"shadowing an attribute \(a\)"):
        cb("batch_begin")
    assert cb.a == 2 and cb.learn.a == 1

    class TstCallback3(Callback):
        def batch_begin(self):
            self.learn.a = self.a + 1
    learn, cb = TstLearner(1), TstCallback3()
    cb.learn = learn
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cb("batch_begin")
    assert cb.learn.a == 2


def test_error_names_callback_and_event():
    class TstCallback(Callback):
        def batch_begin(self):
            self.learn.a = 1 + "a"
    cb = TstCallback()
    cb.learn = TstLearner(1)
    with pytest.raises(TypeError, match=" in `TstCallback` when calling event `batch_begin`"):
        cb("batch_begin")

    class Cancels(Callback):
        def before_batch(self):
            raise CancelBatchException()
    with pytest.raises(CancelBatchException):  # cancels pass through untouched
        Cancels()("before_batch")


def test_name_property():
    class TstCallback(Callback):
        pass

    class ComplicatedNameCallback(Callback):
        pass
    assert TstCallback().name == "tst"
    assert ComplicatedNameCallback().name == "complicated_name"


def test_run_false_sits_out_the_fit_and_learner_call():
    class Counter(Callback):
        def __init__(self):
            self.n = 0

        def before_fit(self):
            self.run = self.n < 0  # sit out this fit

        def after_batch(self):
            self.n += 1
    c = Counter()
    learn = Learner(_dls(), _model(), nn.CrossEntropyLoss(), cbs=[c])
    with learn.no_logging(), learn.no_bar():
        learn.fit(1)
    assert c.n == 0 and c.run  # reset after the fit
    calls = []
    learn.add_cb(Callback(after_batch=lambda self: calls.append("ab")))
    learn("after_batch")
    assert calls == ["ab"]


def test_getattr_and_store_attr():
    class _C:
        def __init__(self, a, b, c=3):
            store_attr()

    o = _C(1, 2)
    assert (o.a, o.b, o.c) == (1, 2, 3)

    class Wrap(GetAttr):
        _default = "inner"

        def __init__(self, inner):
            self.inner = inner
    w = Wrap(TstLearner(5))
    assert w.a == 5


# -- the callback optimizer (12_optimizer)

def tst_param(val, grad=None):
    res = torch.tensor([val]).float()
    res.grad = torch.tensor([val / 10 if grad is None else grad]).float()
    return res


def test_optimizer_hypers_and_groups():
    params = [tst_param(i) for i in range(4)]
    opt = Optimizer(params, sgd_step, lr=0.1)
    assert opt.hypers == [{"lr": 0.1}]
    opt.set_hypers(lr=0.01)
    assert opt.hypers == [{"lr": 0.01}]
    opt = Optimizer([params[:2], params[2:]], sgd_step, lr=0.1)
    assert len(opt.param_lists) == 2 and opt.param_lists[1] == params[2:]
    opt.set_hyper("lr", slice(1e-3, 1e-1))
    assert [h["lr"] for h in opt.hypers] == pytest.approx([1e-3, 1e-1])
    opt.set_hyper("lr", slice(1e-1))
    assert [h["lr"] for h in opt.hypers] == pytest.approx([1e-2, 1e-1])
    with pytest.raises(ValueError, match="3 values for lr but there are 2"):
        opt.set_hyper("lr", [1, 2, 3])
    opt = Optimizer(params, [weight_decay, sgd_step], lr=0.1)  # the stepper's defaults fill in
    assert opt.hypers == [{"wd": 0.0, "lr": 0.1}]


def test_sgd_weight_decay_l2():
    params = [tst_param(i) for i in range(4)]
    opt = Optimizer(params, sgd_step, lr=0.1)
    opt.step()
    assert [p.item() for p in params] == pytest.approx([i * 0.99 for i in range(4)])
    opt.zero_grad()
    assert [p.grad.item() for p in params] == [0.0] * 4
    p = tst_param(1., 0.)
    Optimizer([p], weight_decay, lr=0.1, wd=0.1).step()
    assert p.item() == pytest.approx(0.99)
    p = tst_param(1., 0.)
    Optimizer([p], l2_reg, lr=0.1, wd=0.1).step()
    assert p.grad.item() == pytest.approx(0.1)


def test_average_grad_sqr_grad_momentum_rmsprop():
    p = tst_param([1, 2, 3], [4, 5, 6])
    state = {}
    state = average_grad(p, mom=0.9, **state)
    assert torch.allclose(state["grad_avg"], p.grad)
    state = average_grad(p, mom=0.9, **state)
    assert torch.allclose(state["grad_avg"], p.grad * 1.9)
    state = average_grad(p, mom=0.9, dampening=True)  # dampened: (1-mom)*grad
    assert torch.allclose(state["grad_avg"], 0.1 * p.grad)
    state = average_grad(p, mom=0.9, dampening=True, **state)
    assert torch.allclose(state["grad_avg"], (0.1 * 0.9 + 0.1) * p.grad)
    state = average_sqr_grad(p, sqr_mom=0.99)
    assert torch.allclose(state["sqr_avg"], 0.01 * p.grad.pow(2))
    state = average_sqr_grad(p, sqr_mom=0.99, dampening=False)
    assert torch.allclose(state["sqr_avg"], p.grad.pow(2))
    # momentum SGD through the Optimizer
    p = tst_param(1., 0.1)
    opt = Optimizer([p], [average_grad, momentum_step], lr=0.1, mom=0.9)
    opt.step()
    assert p.item() == pytest.approx(0.99)
    opt.step()
    assert p.item() == pytest.approx(0.99 - 0.1 * 0.19)
    # RMSProp
    p = tst_param(1., 0.1)
    opt = Optimizer([p], [average_sqr_grad, rms_prop_step], lr=0.01, sqr_mom=0.99)
    assert opt.hypers[0]["eps"] == 1e-8  # rms_prop_step's default
    opt.step()
    assert p.item() == pytest.approx(1 - 0.01 * 0.1 / ((0.01 * 0.01) ** 0.5 + 1e-8), rel=1e-5)  # 0.9


def test_adam_steppers_and_debias():
    assert debias(0.9, 0.1, 1) == pytest.approx(0.1)
    assert debias(0.9, 0.1, 2) == pytest.approx(0.1 * 1.9)
    p = tst_param(1., 0.1)
    opt = Optimizer([p], [partial(average_grad, dampening=True), average_sqr_grad, step_stat, adam_step],
                    lr=0.1, mom=0.9, sqr_mom=0.99, eps=1e-5)
    opt.step()
    assert opt.state[p]["step"] == 1
    assert p.item() == pytest.approx(1 - 0.1 * 0.1 / (0.1 + 1e-5), rel=1e-5)  # first step ~ lr * sign(grad)
    # the same as torch's Adam (eps outside the sqrt), over several steps
    q = torch.tensor([1.0], requires_grad=True)
    ref = torch.optim.Adam([q], lr=0.1, betas=(0.9, 0.99), eps=1e-5)
    p = torch.tensor([1.0])
    opt = Optimizer([p], [partial(average_grad, dampening=True), average_sqr_grad, step_stat, adam_step],
                    lr=0.1, mom=0.9, sqr_mom=0.99, eps=1e-5)
    for g in (0.1, -0.3, 0.2):
        p.grad = torch.tensor([g])
        q.grad = torch.tensor([g])
        opt.step()
        ref.step()
    assert p.item() == pytest.approx(q.item(), rel=1e-5)


def test_clear_state_and_state_dict_round_trip():
    p = tst_param(1., 0.1)
    opt = Optimizer([p], [average_grad, momentum_step], lr=0.1, mom=0.9)
    opt.step()
    sd = opt.state_dict()
    p2 = p.detach().clone()
    p2.grad = p.grad.clone()
    opt2 = Optimizer([p2], [average_grad, momentum_step], lr=0.1, mom=0.9)
    opt2.load_state_dict(sd)
    assert torch.allclose(opt2.state[p2]["grad_avg"], opt.state[p]["grad_avg"])
    opt.clear_state()
    assert opt.state[p] == {}


def test_learner_trains_with_the_callback_optimizer():
    dls = _dls()
    opt_func = partial(Optimizer, cbs=[average_grad, momentum_step], mom=0.9)
    learn = Learner(dls, _model(), nn.CrossEntropyLoss(), opt_func=opt_func, lr=0.1)
    with learn.no_logging(), learn.no_bar():
        learn.fit_one_cycle(3, 0.1)
    moms = learn.recorder.hps["mom"]
    assert min(moms) == pytest.approx(0.85, abs=1e-3) and max(moms) == pytest.approx(0.95, abs=1e-3)
    assert isinstance(learn.opt, Optimizer) and "grad_avg" in learn.opt.state[next(learn.model.parameters())]
    loss, = learn.validate()[:1]
    assert loss < 0.5  # learned: chance level is ln 2 = 0.69
    la = Lookahead(Optimizer(list(_model().parameters()), sgd_step, lr=0.1))
    assert la.param_groups[0]["lr"] == 0.1


# -- MCDropoutCallback, rnn_cbs

def test_mc_dropout_gives_varying_predictions():
    learn = Learner(_dls(), _model(p_drop=0.5), nn.CrossEntropyLoss())
    learn.model.eval()
    p1, _ = learn.get_preds()
    p2, _ = learn.get_preds()
    assert torch.equal(p1, p2)  # plain eval: deterministic
    torch.manual_seed(1)
    m1, _ = learn.get_preds(cbs=[MCDropoutCallback()])
    m2, _ = learn.get_preds(cbs=[MCDropoutCallback()])
    assert not torch.equal(m1, m2)
    assert not learn.model[2].training  # dropout back in eval mode
    assert not any(isinstance(c, MCDropoutCallback) for c in learn.cbs)


def test_rnn_cbs():
    cbs = rnn_cbs()  # fastai's: [ModelResetter(), RNNCallback()] + the regulariser when alpha or beta
    assert [type(c).__name__ for c in cbs] == ["ModelResetter", "RNNCallback"]
    cbs = rnn_cbs(alpha=2., beta=1.)
    assert [type(c).__name__ for c in cbs] == ["ModelResetter", "RNNCallback", "RNNRegularizer"]
    assert (cbs[2].alpha, cbs[2].beta) == (2., 1.)
