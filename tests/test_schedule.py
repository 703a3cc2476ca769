"""Schedules, ParamScheduler, fit_one_cycle / fit_flat_cos / fit_sgdr / fine_tune, lr_find and its suggestions."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.callback.core import Callback
from learnkit.callback.progress import ProgressCallback
from learnkit.callback.schedule import (ParamScheduler, SchedCos, SchedExp, SchedLin, SchedNo, SchedPoly,
                                        combine_scheds, combined_cos, even_mults, get_hyper, minimum, set_hyper,
                                        slide, steep, valley)
from learnkit.data.core import DataLoaders
from learnkit.learner import Learner
from learnkit.losses import CrossEntropyLossFlat
from learnkit.metrics import accuracy
from learnkit.optimizer import SGD


pytestmark = pytest.mark.usefixtures("one_thread")


def make_dls(bs: int = 32, n_train: int = 256, n_valid: int = 64) -> DataLoaders:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_train + n_valid, 2, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    train = TorchDataLoader(TensorDataset(x[:n_train], y[:n_train]), batch_size=bs, shuffle=True)
    return DataLoaders(train, TorchDataLoader(TensorDataset(x[n_train:], y[n_train:]), batch_size=bs), device="cpu")


def make_learner(bs: int = 32, **kwargs) -> Learner:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    kwargs.setdefault("loss_func", CrossEntropyLossFlat())
    learn = Learner(make_dls(bs), model, **kwargs)
    learn.remove_cb(ProgressCallback)
    return learn


def two_groups(model: nn.Module) -> list:
    return [list(model[0].parameters()), list(model[2].parameters())]


class GroupHypers(Callback):
    """Records, per training batch, every group's lr and momentum, and whether the body is frozen, per fit."""

    order = 70
    run_valid = False

    def __init__(self):
        self.fits: list[dict] = []

    def before_fit(self):
        self.fits.append({"lrs": [], "moms": [], "body_trainable": self.learn.model[0].weight.requires_grad,
                          "n_epoch": self.n_epoch})

    def after_batch(self):
        self.fits[-1]["lrs"].append(get_hyper(self.opt, "lr"))
        self.fits[-1]["moms"].append(get_hyper(self.opt, "mom"))


# -- schedule functions

def test_schedule_functions():
    assert [SchedLin(1, 3)(p) for p in (0, 0.5, 1)] == [1, 2, 3]
    assert [SchedCos(1, 3)(p) for p in (0, 0.5, 1)] == pytest.approx([1, 2, 3])
    assert SchedCos(1, 3)(0.25) == pytest.approx(1 + (1 - math.cos(math.pi / 4)))
    assert [SchedNo(1, 3)(p) for p in (0, 1)] == [1, 1]
    assert [SchedExp(1e-4, 1)(p) for p in (0, 0.5, 1)] == pytest.approx([1e-4, 1e-2, 1])
    assert SchedPoly(0, 1, 2)(0.5) == pytest.approx(0.25)
    assert np.allclose(SchedLin([1, 10], [2, 20])(0.5), [1.5, 15])  # one value per parameter group
    with pytest.raises(ValueError, match="positive"):
        SchedExp(0, 1)


def test_combine_scheds():
    f = combine_scheds([0.3, 0.7], [SchedLin(0, 1), SchedLin(1, 0)])
    assert [f(p) for p in (0, 0.15, 0.3, 0.65, 1.0)] == pytest.approx([0, 0.5, 1, 0.5, 0])
    g = combined_cos(0.25, 1, 10, 0)
    assert (g(0), g(0.25), g(1)) == pytest.approx((1, 10, 0))
    assert combine_scheds([1.0, 0.0], [SchedLin(0, 1), SchedLin(5, 6)])(1.0) == 5  # empty phase: no division by 0
    with pytest.raises(ValueError, match="sum to 1"):
        combine_scheds([0.5, 0.6], [SchedNo(0, 0), SchedNo(0, 0)])


def test_even_mults_and_set_hyper():
    assert np.allclose(even_mults(1e-4, 1e-2, 3), [1e-4, 1e-3, 1e-2])
    opt = torch.optim.AdamW([{"params": [nn.Parameter(torch.zeros(1))]}, {"params": [nn.Parameter(torch.zeros(1))]}])
    set_hyper(opt, "lr", slice(1e-3))
    set_hyper(opt, "mom", [0.8, 0.9])
    set_hyper(opt, "wd", 0.2)
    assert get_hyper(opt, "lr") == pytest.approx([1e-4, 1e-3])
    assert [g["betas"] for g in opt.param_groups] == [(0.8, 0.999), (0.9, 0.999)]
    assert get_hyper(opt, "wd") == [0.2, 0.2]
    with pytest.raises(ValueError, match="3 values but the optimizer has 2 parameter groups"):
        set_hyper(opt, "lr", [1, 2, 3])
    sgd = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    set_hyper(sgd, "mom", 0.9)
    assert sgd.param_groups[0]["momentum"] == 0.9


# -- fit policies

def test_fit_one_cycle_lr_and_momentum_curves():
    rec = GroupHypers()
    learn = make_learner(bs=8, cbs=[rec])  # 32 batches per epoch
    with learn.no_logging():
        learn.fit_one_cycle(2, lr_max=1e-2)
    lrs = [v[0] for v in rec.fits[0]["lrs"]]
    moms = [v[0] for v in rec.fits[0]["moms"]]
    n = len(lrs)
    assert n == 64
    assert lrs[0] == pytest.approx(1e-2 / 25)  # starts at lr_max / div
    assert int(np.argmax(lrs)) == 16 and lrs[16] == pytest.approx(1e-2)  # peaks at pct_start
    assert lrs[-1] < 1e-2 / 500 and lrs[-1] > 1e-2 / 1e5  # ends near lr_max / div_final
    assert all(a < b for a, b in zip(lrs[:16], lrs[1:17])) and all(a > b for a, b in zip(lrs[16:], lrs[17:]))
    assert moms[0] == pytest.approx(0.95) and int(np.argmin(moms)) == 16 and moms[16] == pytest.approx(0.85)
    assert moms[-1] > 0.949  # momentum mirrors the lr
    expected = combined_cos(0.25, 1e-2 / 25, 1e-2, 1e-2 / 1e5)
    assert lrs == pytest.approx([expected(i / n) for i in range(n)], rel=1e-6)
    assert learn.recorder.hps["lr"] == pytest.approx(lrs) and learn.recorder.lrs == pytest.approx(lrs)


def test_fit_one_cycle_with_a_slice_and_sgd_momentum():
    rec = GroupHypers()
    learn = make_learner(cbs=[rec], splitter=two_groups, opt_func=SGD, metrics=accuracy)
    with learn.no_logging():
        learn.fit_one_cycle(2, lr_max=slice(1e-3, 1e-1), moms=(0.9, 0.8, 0.9))
    lrs = np.array(rec.fits[0]["lrs"])
    peak = int(np.argmax(lrs[:, 1]))
    assert lrs[peak] == pytest.approx([1e-3, 1e-1])  # body lo, head hi
    assert lrs[0] == pytest.approx([1e-3 / 25, 1e-1 / 25])
    assert min(m[0] for m in rec.fits[0]["moms"]) == pytest.approx(0.8)  # SGD's 'momentum' is scheduled
    assert learn.recorder.values[-1][2] > 0.85


def test_fit_one_cycle_defaults_to_learn_lr():
    rec = GroupHypers()
    learn = make_learner(cbs=[rec], lr=3e-3)
    with learn.no_logging():
        learn.fit_one_cycle(1)
    assert max(v[0] for v in rec.fits[0]["lrs"]) == pytest.approx(3e-3, rel=0.05)


def test_fit_flat_cos():
    rec = GroupHypers()
    learn = make_learner(bs=8, cbs=[rec])
    with learn.no_logging():
        learn.fit_flat_cos(1, lr=1e-2)
    lrs = [v[0] for v in rec.fits[0]["lrs"]]
    assert lrs[:25] == pytest.approx([1e-2] * 25)  # flat up to pct_start = 0.75 (batch 24 of 32)
    assert all(a > b for a, b in zip(lrs[24:], lrs[25:])) and lrs[-1] < 1e-3


def test_fit_sgdr_restarts():
    rec = GroupHypers()
    learn = make_learner(cbs=[rec])  # 8 batches per epoch
    with learn.no_logging():
        learn.fit_sgdr(2, 1, lr_max=1e-2)
    assert len(learn.recorder.values) == 3  # cycle lengths 1 + 2 epochs
    lrs = [v[0] for v in rec.fits[0]["lrs"]]
    assert lrs[0] == pytest.approx(1e-2) and lrs[8] == pytest.approx(1e-2)  # restart at the second cycle
    assert all(a > b for a, b in zip(lrs[:7], lrs[1:8])) and all(a > b for a, b in zip(lrs[8:-1], lrs[9:]))


def test_fine_tune_schedule():
    rec = GroupHypers()
    learn = make_learner(cbs=[rec], splitter=two_groups, metrics=accuracy)
    with learn.no_logging():
        learn.fine_tune(2, base_lr=0.1, freeze_epochs=1)
    frozen, unfrozen = rec.fits
    assert (frozen["n_epoch"], unfrozen["n_epoch"]) == (1, 2)
    assert not frozen["body_trainable"] and unfrozen["body_trainable"]
    n1, n2 = len(frozen["lrs"]), len(unfrozen["lrs"])
    lr1 = np.array([0.01, 0.1])
    f1 = combined_cos(0.99, lr1 / 25, lr1, lr1 / 1e5)
    assert np.allclose(frozen["lrs"], [f1(i / n1) for i in range(n1)])  # slice(base_lr), pct_start=0.99
    lr2 = np.array([0.05 / 100, 0.05])
    f2 = combined_cos(0.3, lr2 / 5, lr2, lr2 / 1e5)
    assert np.allclose(unfrozen["lrs"], [f2(i / n2) for i in range(n2)])  # slice(base_lr/2/lr_mult, base_lr/2), div=5
    assert learn.recorder.values[-1][2] > 0.85


# -- lr_find

def _state(learn):
    """Copies of the model's tensors, the optimizer's per-parameter state and its hyper-parameters."""
    model = {k: v.clone() for k, v in learn.model.state_dict().items()}
    opt = learn.opt.state_dict()
    state = {i: {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()} for i, s in opt["state"].items()}
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt["param_groups"]]
    return model, state, groups


def test_lr_find_restores_model_and_optimizer_exactly(capsys):
    learn = make_learner(bs=8, lr=1e-2)
    with learn.no_logging():
        learn.fit(1)
    capsys.readouterr()
    model0, opt0, groups0 = _state(learn)
    n_figs = len(plt.get_fignums())
    res = learn.lr_find(num_it=40)
    assert res._fields == ("valley",) and 1e-7 < res.valley < 10
    model1, opt1, groups1 = _state(learn)
    assert model0.keys() == model1.keys() and all(torch.equal(model0[k], model1[k]) for k in model0)
    assert opt0.keys() == opt1.keys()
    assert all(torch.equal(opt0[i][k], opt1[i][k]) if torch.is_tensor(opt0[i][k]) else opt0[i][k] == opt1[i][k]
               for i in opt0 for k in opt0[i])
    assert groups0 == groups1
    assert "train_loss" not in capsys.readouterr().out  # no epoch table
    assert len(plt.get_fignums()) == n_figs + 1  # the plot, not shown (Agg), left for the caller
    plt.close("all")
    lrs = learn.recorder.lrs
    assert len(lrs) == 40 and lrs[0] == pytest.approx(1e-7)
    assert np.allclose(np.diff(np.log(lrs)), math.log(1e8) / 40)  # exponential growth towards end_lr


def test_lr_find_suggestions_without_plot_and_stop_on_divergence():
    learn = make_learner(bs=8)
    res = learn.lr_find(num_it=60, show_plot=False, suggest_funcs=(valley, slide, minimum, steep))
    assert res._fields == ("valley", "slide", "minimum", "steep")
    assert all(isinstance(v, float) and 1e-7 <= v <= 10 for v in res)
    assert learn.opt is None  # it had none before
    learn.lr_find(start_lr=1e-3, end_lr=1e6, num_it=100, show_plot=False)
    assert len(learn.recorder.lrs) < 100  # the loss blew up: stopped early


def test_suggestion_functions_on_a_known_curve():
    lrs = np.logspace(-6, 0, 61)
    x = np.log10(lrs)
    losses = np.where(x < -2, 1 - np.tanh(x + 4), 1 - np.tanh(2) + (x + 2) ** 2)  # falls fastest at 1e-4, min at 1e-2
    i_min = int(np.argmin(losses))
    lr, (plr, ploss) = minimum(lrs, losses, 100)
    assert lr == pytest.approx(lrs[i_min] / 10) and ploss == pytest.approx(losses[i_min])
    lr, _ = steep(lrs, losses, 100)
    assert lr == pytest.approx(1e-4, rel=0.3)
    lr, (plr, ploss) = valley(lrs, losses, 100)
    assert lrs[i_min // 2 - 2] <= lr <= lrs[i_min // 2 + 2] and ploss == pytest.approx(losses[lrs == lr][0])
    lr, (plr, ploss) = slide(lrs, losses, 100)
    assert 1e-6 <= lr <= 1e-2 and ploss == pytest.approx(np.interp(np.log10(lr), x, losses))


def test_param_scheduler_is_inactive_during_validation():
    calls = []
    sched = ParamScheduler({"lr": lambda pos: calls.append(pos) or 1e-3})
    learn = make_learner()
    with learn.no_logging():
        learn.fit(1, cbs=sched)
    assert len(calls) == len(learn.dls.train)  # only training batches
    assert calls == pytest.approx([i / 8 for i in range(8)])
