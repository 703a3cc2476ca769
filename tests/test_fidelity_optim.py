"""fastai's optimizers (RMSProp, QHAdam, Larc, Lamb, SGD's decouple_wd): fastai's notebook examples and a reference
implementation of fastai's update rules (written here from fastai.optimizer's documented callbacks)."""
import math

import pytest
import torch

from learnkit.basics import SGD, Adam, Lamb, Larc, QHAdam, RAdam, RMSProp


def tst_param(val, grad=None):
    """fastai's test helper: a bare tensor with a gradient set."""
    res = torch.tensor(val).float()
    res.grad = torch.tensor([v / 10 for v in val] if grad is None else grad).float()
    return res


def close(a, b, eps=1e-5):
    assert torch.allclose(torch.as_tensor(a).float(), torch.as_tensor(b).float(), atol=eps), (a, b)


# -- fastai's examples (nbs/12_optimizer), bare tensors as params as fastai's tests pass them

def test_rmsprop_fastai_examples():
    params = tst_param([1, 2, 3], [0.1, 0.2, 0.3])
    opt = RMSProp(params, lr=0.1)
    opt.step()
    close(params, [0., 1., 2.])
    opt.step()
    step = -0.1 * 0.1 / (math.sqrt((0.01 * 0.99 + 0.01) * 0.1 ** 2) + 1e-8)
    close(params, [step, 1 + step, 2 + step])

    params = tst_param([1, 2, 3], [0.1, 0.2, 0.3])
    opt = RMSProp(params, lr=0.1, mom=0.9)
    opt.step()
    close(params, [0., 1., 2.])
    opt.step()
    step = -0.1 * (0.1 + 0.9 * 0.1) / (math.sqrt((0.01 * 0.99 + 0.01) * 0.1 ** 2) + 1e-8)
    close(params, [step, 1 + step, 2 + step])


def test_qhadam_fastai_example():
    params = tst_param([1, 2, 3], [0.1, 0.2, 0.3])
    opt = QHAdam(params, lr=0.1)
    opt.step()
    step = -0.1 * (((1 - 0.7) * 0.1) + (0.7 * 0.1)) / (math.sqrt(((1 - 1.0) * 0.1 ** 2) + (1.0 * 0.1 ** 2)) + 1e-8)
    close(params, [1 + step, 2 + step, 3 + step])
    opt.step()
    close(params, [1 + 2 * step, 2 + 2 * step, 3 + 2 * step], eps=1e-3)


def test_larc_fastai_examples():
    params = [tst_param([1, 2, 3], [0.1, 0.2, 0.3]), tst_param([1, 2, 3], [0.01, 0.02, 0.03])]
    opt = Larc(params, lr=0.1)
    opt.step()
    close(opt.state[params[0]]["local_lr"], 0.02)  # below lr: not clipped
    close(opt.state[params[1]]["local_lr"], 0.1)  # 0.2 > lr: clipped
    close(params[0], [0.998, 1.996, 2.994])
    close(params[1], [0.999, 1.998, 2.997])

    params = [tst_param([1, 2, 3], [0.1, 0.2, 0.3]), tst_param([1, 2, 3], [0.01, 0.02, 0.03])]
    opt = Larc(params, lr=0.1, clip=False)
    opt.step()
    close(opt.state[params[0]]["local_lr"], 0.02)
    close(opt.state[params[1]]["local_lr"], 0.2)
    close(params[0], [0.998, 1.996, 2.994])
    close(params[1], [0.998, 1.996, 2.994])


def test_lamb_fastai_example():
    params = tst_param([1, 2, 3], [0.1, 0.2, 0.3])
    Lamb(params, lr=0.1).step()
    close(params, [0.7840, 1.7840, 2.7840], eps=1e-3)


def test_sgd_fastai_examples_and_decouple_wd():
    params = [tst_param([float(i)]) for i in range(4)]
    opt = SGD(params, lr=0.1)
    opt.step()
    close([p.item() for p in params], [i * 0.99 for i in range(4)])
    opt.step()
    close([p.item() for p in params], [i * 0.98 for i in range(4)])

    params = [tst_param([float(i)]) for i in range(4)]
    opt = SGD(params, lr=0.1, mom=0.9)
    opt.step()
    opt.step()
    close([p.item() for p in params], [i * (1 - 0.1 * (0.1 + 0.1 * 1.9)) for i in range(4)])

    # true weight decay (fastai's default): p * (1 - lr*wd) - lr*g = 0.99i - 0.01i
    params = [tst_param([float(i)]) for i in range(4)]
    SGD(params, lr=0.1, mom=0.9, wd=0.1).step()
    close([p.item() for p in params], [i * 0.98 for i in range(4)])
    assert SGD(params, lr=0.1, wd=0.1).param_groups[0]["weight_decay"] == 0.1  # restored after each step
    # L2: g + wd*p = 0.1i + 0.1i -> p - 0.1 * 0.2i
    params = [tst_param([float(i)]) for i in range(4)]
    SGD(params, lr=0.1, mom=0.9, wd=0.1, decouple_wd=False).step()
    close([p.item() for p in params], [i * 0.98 for i in range(4)])
    params = [tst_param([2.0], [0.0])]
    SGD(params, lr=0.1, wd=0.1, decouple_wd=False).step()
    SGD(q := [tst_param([2.0], [0.0])], lr=0.1, wd=0.1).step()
    close(params[0], [2.0 - 0.1 * 0.1 * 2.0])
    close(q[0], [2.0 * (1 - 0.1 * 0.1)])


# -- a reference implementation of fastai's callbacks, compared over several steps with weight decay

def _ref_steps(kind, p0, grads, lr, wd, decouple_wd, **hp):
    """fastai's Optimizer: weight_decay / l2_reg, then average_grad, average_sqr_grad, step_stat, the step."""
    p = p0.clone().double()
    grad_avg = torch.zeros_like(p)
    sqr_avg = torch.zeros_like(p)
    for step, g in enumerate(grads, start=1):
        g = g.double().clone()
        if wd:
            if decouple_wd:
                p = p * (1 - lr * wd)
            else:
                g = g + wd * p
        mom, sqr_mom, eps = hp.get("mom", 0.), hp.get("sqr_mom", 0.), hp["eps"]
        if kind == "rmsprop":
            if mom:
                grad_avg = grad_avg * mom + g
            sqr_avg = sqr_avg * sqr_mom + (1 - sqr_mom) * g * g
            p = p - lr * (grad_avg if mom else g) / (sqr_avg.sqrt() + eps)
        elif kind in ("qhadam", "lamb"):
            grad_avg = grad_avg * mom + (1 - mom) * g
            sqr_avg = sqr_avg * sqr_mom + (1 - sqr_mom) * g * g
            d1, d2 = 1 - mom ** step, 1 - sqr_mom ** step
            if kind == "qhadam":
                nu_1, nu_2 = hp["nu_1"], hp["nu_2"]
                num = (1 - nu_1) * g + nu_1 * grad_avg / d1
                p = p - lr * num / (((1 - nu_2) * g * g + nu_2 * sqr_avg / d2).sqrt() + eps)
            else:
                s = (grad_avg / d1) / ((sqr_avg / d2).sqrt() + eps)
                r1, r2 = p.pow(2).mean().sqrt(), s.pow(2).mean().sqrt()
                q = 1 if r1 == 0 or r2 == 0 else min(float(r1 / r2), 10)
                p = p - lr * q * s
        elif kind == "larc":
            if mom:
                grad_avg = grad_avg * mom + g
            pn, gn = p.norm(), g.norm()
            local = lr * hp["trust_coeff"] * pn / (gn + pn * wd + eps)
            local = min(lr, float(local)) if hp["clip"] else float(local)
            p = p - local * (grad_avg if mom else g)
    return p


CASES = [
    ("rmsprop", RMSProp, dict(sqr_mom=0.99, mom=0.0, eps=1e-8)),
    ("rmsprop", RMSProp, dict(sqr_mom=0.9, mom=0.8, eps=1e-8)),
    ("qhadam", QHAdam, dict(mom=0.9, sqr_mom=0.99, nu_1=0.7, nu_2=0.8, eps=1e-8)),
    ("lamb", Lamb, dict(mom=0.9, sqr_mom=0.99, eps=1e-5)),
    ("larc", Larc, dict(mom=0.9, clip=True, trust_coeff=0.02, eps=1e-8)),
    ("larc", Larc, dict(mom=0.0, clip=False, trust_coeff=0.5, eps=1e-8)),
]


@pytest.mark.parametrize("decouple_wd", [True, False])
@pytest.mark.parametrize("kind,cls,hp", CASES)
def test_steps_equal_fastai_rules(kind, cls, hp, decouple_wd):
    gen = torch.Generator().manual_seed(0)
    p0 = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    grads = [torch.randn(3, 4, generator=gen, dtype=torch.float64) for _ in range(5)]
    p = torch.nn.Parameter(p0.clone())
    opt = cls((q for q in [p]), lr=0.05, wd=0.1, decouple_wd=decouple_wd, **hp)  # a generator as params
    for g in grads:
        p.grad = g.clone()
        opt.step()
    ref = _ref_steps(kind, p0, grads, lr=0.05, wd=0.1, decouple_wd=decouple_wd, **hp)
    torch.testing.assert_close(p.detach(), ref, rtol=1e-9, atol=1e-10)


def test_params_bare_tensor_generator_and_empty():
    w = torch.nn.Parameter(torch.ones(3))
    for f in (Adam, SGD, RAdam, RMSProp, QHAdam, Larc, Lamb):
        for params in (w, (x for x in [w])):
            opt = f(params, lr=0.1)
            assert [q for g in opt.param_groups for q in g["params"]] == [w], f
        used = (x for x in [w])
        list(used)
        with pytest.raises(ValueError, match="no parameters"):
            f(used, lr=0.1)
    before = w.detach().clone()
    w.grad = torch.ones(3)
    Adam(w, lr=0.1).step()  # a bare tensor is one parameter, updated (not iterated row by row)
    assert (w.detach() < before).all()


def test_fit_one_cycle_schedules_the_new_optimizers():
    from learnkit.callback.schedule import get_hyper, set_hyper
    w = torch.nn.Parameter(torch.ones(2))
    for opt in (RMSProp([w], mom=0.9), Larc([w]), QHAdam([w]), Lamb([w])):
        set_hyper(opt, "mom", 0.85)
        set_hyper(opt, "wd", 0.2)
        assert get_hyper(opt, "mom") == [0.85] and get_hyper(opt, "wd") == [0.2]


@pytest.mark.parametrize("cls", [RMSProp, QHAdam, Larc, Lamb])
def test_learner_trains_with_the_new_optimizers(cls, tmp_path):
    from functools import partial

    from torch import nn

    from learnkit.basics import DataLoader, DataLoaders, Learner, MSELossFlat
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 3, generator=g)
    y = x @ torch.tensor([[1.], [-2.], [0.5]]) + 0.3
    ds = list(zip(x, y))
    dls = DataLoaders(DataLoader(ds[:96], bs=16, shuffle=True), DataLoader(ds[96:], bs=32))
    torch.manual_seed(0)
    opt_func = partial(Larc, trust_coeff=1.0) if cls is Larc else cls  # fastai's 0.02 is tuned for deep nets
    learn = Learner(dls, nn.Linear(3, 1), loss_func=MSELossFlat(), opt_func=opt_func, path=tmp_path)
    with learn.no_bar():
        before = learn.validate()[0]
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(4, 0.2)
        after = learn.validate()[0]
    assert isinstance(learn.opt, cls)
    assert after < before / 2, (before, after)  # layer-wise trust ratios (Larc, Lamb) move a tiny net slowly
