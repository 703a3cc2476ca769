"""Optimizers: one step against hand computations and torch's own classes; Lookahead's slow weights by hand."""
import copy
import math

import pytest
import torch

from learnkit.optimizer import SGD, Adam, Lookahead, RAdam, momentum_key, ranger


def _param(values, grad):
    p = torch.nn.Parameter(torch.tensor(values))
    p.grad = torch.tensor(grad)
    return p


def test_adam_first_step_by_hand_and_equals_adamw():
    lr, wd, eps = 0.1, 0.01, 1e-5
    p = _param([1.0, -2.0, 0.5], [0.5, 0.25, -4.0])
    opt = Adam([p], lr=lr)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.param_groups[0]["betas"] == (0.9, 0.99) and opt.param_groups[0]["eps"] == eps
    opt.step()
    # first step: bias-corrected m = g, v = g^2 -> p * (1 - lr*wd) - lr * g / (|g| + eps)
    expected = [w * (1 - lr * wd) - lr * g / (abs(g) + eps) for w, g in zip([1.0, -2.0, 0.5], [0.5, 0.25, -4.0])]
    assert p.detach().tolist() == pytest.approx(expected, rel=1e-6)


def test_adam_several_steps_equal_torch_adamw():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    oa = Adam(a.parameters(), lr=0.01, wd=0.1)
    ob = torch.optim.AdamW(b.parameters(), lr=0.01, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.1)
    for _ in range(3):
        x = torch.randn(8, 4)
        for m, o in ((a, oa), (b, ob)):
            o.zero_grad()
            m(x).pow(2).mean().backward()
            o.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_adam_coupled_weight_decay_is_plain_adam():
    p = _param([1.0], [0.5])
    opt = Adam([p], lr=0.1, wd=0.5, decouple_wd=False)
    assert type(opt) is torch.optim.Adam
    opt.step()
    g = 0.5 + 0.5 * 1.0  # L2: the decay joins the gradient
    assert p.item() == pytest.approx(1.0 - 0.1 * g / (abs(g) + 1e-5), rel=1e-6)


def test_sgd_step_by_hand():
    p = _param([1.0, 2.0], [0.5, -1.0])
    opt = SGD([p], lr=0.1, mom=0.9, wd=0.0)
    opt.step()  # first momentum step: buf = g
    assert p.detach().tolist() == pytest.approx([1.0 - 0.05, 2.0 + 0.1])
    p.grad = torch.tensor([0.5, -1.0])
    opt.step()  # buf = 0.9 * g + g
    assert p.detach().tolist() == pytest.approx([0.95 - 0.1 * 0.95, 2.1 + 0.1 * 1.9])


def test_radam_defaults_and_first_steps():
    p = _param([1.0, -1.0], [0.3, -2.0])
    opt = RAdam([p], lr=0.1)
    assert isinstance(opt, torch.optim.RAdam)
    g = opt.param_groups[0]
    assert g["betas"] == (0.9, 0.99) and g["eps"] == 1e-5 and g["weight_decay"] == 0.0
    assert g["decoupled_weight_decay"] is True
    opt.step()  # rho_1 <= 5: no rectification, an SGD-with-momentum step on the bias-corrected average = g
    assert p.detach().tolist() == pytest.approx([1.0 - 0.03, -1.0 + 0.2], rel=1e-6)
    q = _param([1.0], [0.3])
    RAdam([q], lr=0.1, wd=0.5).step()  # decoupled: p * (1 - lr*wd) - lr * g
    assert q.item() == pytest.approx(1.0 * (1 - 0.05) - 0.03, rel=1e-6)


def test_radam_matches_torch_radam_over_steps():
    torch.manual_seed(1)
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    oa = RAdam(a.parameters(), lr=0.01, wd=0.01)
    ob = torch.optim.RAdam(b.parameters(), lr=0.01, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01,
                           decoupled_weight_decay=True)
    for _ in range(8):  # past step 5, where rectification starts
        x = torch.randn(4, 3)
        for m, o in ((a, oa), (b, ob)):
            o.zero_grad()
            m(x).sum().backward()
            o.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def _lookahead_sgd(k=3, alpha=0.5, lr=0.1):
    p = torch.nn.Parameter(torch.zeros(2))
    return p, Lookahead(torch.optim.SGD([p], lr=lr), k=k, alpha=alpha)


def _step(p, opt):
    opt.zero_grad()
    p.sum().backward()  # gradient 1 on every weight
    opt.step()


def test_lookahead_slow_weights_by_hand():
    p, opt = _lookahead_sgd(k=3, alpha=0.5, lr=0.1)
    seen = []
    for _ in range(7):
        _step(p, opt)
        seen.append(p[0].item())
    # fast: -0.1, -0.2, -0.3 -> sync: slow = 0 + 0.5 * (-0.3 - 0) = -0.15, fast = slow
    # then -0.25, -0.35, -0.45 -> slow = -0.15 + 0.5 * (-0.45 + 0.15) = -0.3; then -0.4
    assert seen == pytest.approx([-0.1, -0.2, -0.15, -0.25, -0.35, -0.3, -0.4])
    assert opt.count == 7


def test_lookahead_is_an_optimizer_sharing_groups_and_state():
    p, opt = _lookahead_sgd(k=2)
    assert isinstance(opt, torch.optim.Optimizer)
    assert opt.param_groups is opt.opt.param_groups
    opt.param_groups[0]["lr"] = 1.0  # what a schedule does
    _step(p, opt)
    assert p[0].item() == pytest.approx(-1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    _step(p, opt)
    sched.step()
    assert opt.opt.param_groups[0]["lr"] == pytest.approx(0.5)


def test_lookahead_state_dict_round_trip():
    torch.manual_seed(2)
    a = torch.nn.Linear(3, 2)
    b = copy.deepcopy(a)
    oa = ranger(a.parameters(), lr=0.05, k=3)
    xs = [torch.randn(5, 3) for _ in range(7)]

    def train(m, o, batches):
        for x in batches:
            o.zero_grad()
            m(x).pow(2).sum().backward()
            o.step()
    train(a, oa, xs[:5])  # mid-cycle: count 5, slow weights differ from the fast ones
    sd = copy.deepcopy(oa.state_dict())
    assert sd["lookahead"]["count"] == 5 and set(sd["lookahead"]["slow"]) == {0, 1}
    b.load_state_dict(a.state_dict())
    ob = ranger(b.parameters(), lr=0.05, k=3)
    ob.load_state_dict(sd)
    assert ob.param_groups is ob.opt.param_groups and ob.state is ob.opt.state
    train(a, oa, xs[5:])
    train(b, ob, xs[5:])  # step 6 syncs to the slow weights of step 3: equal only if both came back
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_lookahead_argument_errors():
    p = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(TypeError, match="Lookahead wraps"):
        Lookahead([p])
    with pytest.raises(ValueError, match="k=0"):
        Lookahead(torch.optim.SGD([p], lr=0.1), k=0)


def test_ranger_is_lookahead_radam_with_fastai_defaults():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = ranger([p], lr=0.01)
    assert isinstance(opt, Lookahead) and isinstance(opt.opt, torch.optim.RAdam)
    assert (opt.k, opt.alpha) == (6, 0.5)
    g = opt.param_groups[0]
    assert g["betas"] == (0.95, 0.99) and g["eps"] == 1e-6 and g["weight_decay"] == 0.01


def test_momentum_key():
    p = torch.nn.Parameter(torch.zeros(1))
    assert momentum_key(Adam([p])) == ("betas", 0)
    assert momentum_key(SGD([p], mom=0.9)) == ("momentum", None)
    assert momentum_key(ranger([p])) == ("betas", 0)
    with pytest.raises(ValueError, match="no momentum"):
        momentum_key(torch.optim.Adagrad([p]))


def test_opt_funcs_take_learner_style_param_groups():
    m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    groups = [{"params": list(m[0].parameters())}, {"params": list(m[1].parameters())}]
    for f in (Adam, SGD, RAdam, ranger):
        opt = f(copy.deepcopy(groups), lr=0.3)
        assert [g["lr"] for g in opt.param_groups] == [0.3, 0.3]
    assert math.isclose(Adam(groups, lr=0.3).param_groups[1]["weight_decay"], 0.01)


def test_ranger_trains_under_fit_one_cycle_and_saves(tmp_path):
    from torch.utils.data import DataLoader as TorchDataLoader
    from torch.utils.data import TensorDataset

    from learnkit.callback.progress import ProgressCallback
    from learnkit.data.core import DataLoaders
    from learnkit.learner import Learner
    from learnkit.losses import CrossEntropyLossFlat
    from learnkit.metrics import accuracy

    g = torch.Generator().manual_seed(0)
    x = torch.randn(320, 2, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    dls = DataLoaders(TorchDataLoader(TensorDataset(x[:256], y[:256]), batch_size=32, shuffle=True),
                      TorchDataLoader(TensorDataset(x[256:], y[256:]), batch_size=64), device="cpu")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), opt_func=ranger, metrics=accuracy, path=tmp_path)
    learn.remove_cb(ProgressCallback)
    with learn.no_logging():
        learn.fit_one_cycle(4, lr_max=0.3)
    assert isinstance(learn.opt, Lookahead)
    # the schedule reached the inner RAdam: its lr (annealed far below lr_max) and momentum (back up to 0.95)
    inner = learn.opt.opt.param_groups[-1]
    assert inner["lr"] == pytest.approx(learn.recorder.lrs[-1]) and inner["lr"] < 0.3 / 100
    assert inner["betas"][0] == pytest.approx(0.95, abs=1e-3)
    assert learn.recorder.values[-1][2] > 0.9  # it learned
    learn.save("ranger")
    sd = learn.opt.state_dict()
    fresh = Learner(dls, copy.deepcopy(model), loss_func=CrossEntropyLossFlat(), opt_func=ranger, path=tmp_path)
    fresh.load("ranger")
    loaded = fresh.opt.state_dict()
    assert loaded["lookahead"]["count"] == sd["lookahead"]["count"] == 4 * 8
    for i, t in sd["lookahead"]["slow"].items():
        assert torch.equal(loaded["lookahead"]["slow"][i], t)
