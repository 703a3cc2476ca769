"""fastai's callback optimizer (book chapter 16): ``Optimizer(params, cbs, **defaults)`` and its stepper functions.

A stepper is ``f(p, **state_and_hypers)``; it updates ``p`` in place and may return a dict merged into the
parameter's state (``opt.state[p]``), which later steppers and later steps receive as keyword arguments.
``Optimizer`` is a ``torch.optim.Optimizer``: its hyper-parameters sit in each parameter group under fastai's
names (``lr``, ``mom``, ``sqr_mom``, ``wd``, ``eps``...), so learnkit's ``Learner(opt_func=partial(Optimizer,
cbs=[...]))``, its schedules, ``Lookahead`` and checkpoints work with it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from .optim_fastai import as_params

__all__ = ["Optimizer", "sgd_step", "weight_decay", "l2_reg", "average_grad", "average_sqr_grad", "momentum_step",
           "rms_prop_step", "step_stat", "debias", "adam_step"]


def _group_dicts(params: Any) -> list[dict]:
    """fastai's ``params``: tensors (one group), lists of tensors (one group each) or torch's group dicts."""
    if isinstance(params, (list, tuple)) and params and all(isinstance(g, (list, tuple)) for g in params):
        params = [{"params": list(g)} for g in params]
    params = as_params(params, "Optimizer")
    if not any(isinstance(g, dict) for g in params):
        return [{"params": params}]
    return [g if isinstance(g, dict) else {"params": [g]} for g in params]


class Optimizer(torch.optim.Optimizer):
    """Updates ``params`` by running the stepper functions ``cbs`` on each parameter with a gradient, in order.

    ``defaults`` (merged over each stepper's ``defaults`` attribute) become every group's hyper-parameters.
    """

    def __init__(self, params: Any, cbs: Callable | Iterable[Callable], train_bn: bool = True,
                 **defaults: Any) -> None:
        self.cbs = [cbs] if callable(cbs) else list(cbs)
        self.train_bn, self.frozen_idx = train_bn, 0
        merged: dict[str, Any] = {}
        for cb in self.cbs:
            merged.update(getattr(cb, "defaults", None) or {})
        merged.update(defaults)
        groups = [{**merged, **g} for g in _group_dicts(params)]
        super().__init__(groups, merged)

    @property
    def param_lists(self) -> list[list[torch.Tensor]]:
        """The parameters of each group (fastai's ``param_lists``)."""
        return [g["params"] for g in self.param_groups]

    @property
    def hypers(self) -> list[dict[str, Any]]:
        """Each group's hyper-parameters (a copy: change them with ``set_hyper``)."""
        return [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]

    def set_hyper(self, k: str, v: Any) -> None:
        """Set hyper-parameter ``k``: one value for all groups, one per group, or a slice spread over the groups."""
        n = len(self.param_groups)
        if isinstance(v, slice):
            if v.start:
                step = (v.stop / v.start) ** (1 / (n - 1)) if n > 1 else 1.
                v = [v.start * step ** i for i in range(n)] if n > 1 else [v.stop]
            else:
                v = [v.stop / 10] * (n - 1) + [v.stop]
        vals = list(v) if isinstance(v, (list, tuple)) else [v]
        if len(vals) == 1:
            vals = vals * n
        if len(vals) != n:
            raise ValueError(f"Trying to set {len(vals)} values for {k} but there are {n} parameter groups.")
        for g, x in zip(self.param_groups, vals):
            g[k] = x

    def set_hypers(self, **kwargs: Any) -> None:
        """``set_hyper`` for each keyword."""
        for k, v in kwargs.items():
            self.set_hyper(k, v)

    def all_params(self, n: slice | int = slice(None), with_grad: bool = False) -> list[tuple]:
        """``(p, group params, state, hypers)`` for the parameters of groups ``n`` (only those with a grad if asked)."""
        groups = self.param_groups[n] if isinstance(n, slice) else [self.param_groups[n]]
        res = [(p, g["params"], self.state[p], g) for g in groups for p in g["params"]]
        return [o for o in res if o[0].grad is not None] if with_grad else res

    def freeze_to(self, n: int) -> None:
        """Train only groups ``n`` onwards (parameters whose state has ``force_train`` stay trainable)."""
        self.frozen_idx = n if n >= 0 else len(self.param_groups) + n
        for p, _, state, _ in self.all_params(slice(n, None)):
            p.requires_grad_(True)
        for p, _, state, _ in self.all_params(slice(None, n)):
            p.requires_grad_(state.get("force_train", False))

    def freeze(self) -> None:
        """Train only the last group."""
        if len(self.param_groups) < 2:
            raise ValueError("freeze needs at least two parameter groups (pass params as a list of lists).")
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        """Train every group."""
        self.freeze_to(0)

    def clear_state(self) -> None:
        """Forget the running averages (keeping ``force_train`` and ``do_wd``)."""
        for p, _, state, _ in self.all_params():
            self.state[p] = {k: state[k] for k in ("force_train", "do_wd") if k in state}

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zero the gradients in place (fastai's), or drop them with ``set_to_none=True``."""
        for p, *_ in self.all_params(with_grad=True):
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_()
                p.grad.zero_()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Run every stepper on every parameter with a gradient, passing it the parameter's state and hypers."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for p, _, state, g in self.all_params(with_grad=True):
            hyper = {k: v for k, v in g.items() if k != "params"}
            for cb in self.cbs:
                new = cb(p, **{**state, **hyper})
                if isinstance(new, dict):
                    state.update(new)
        return loss

    def __repr__(self) -> str:
        names = [getattr(c, "__name__", None) or getattr(getattr(c, "func", None), "__name__", repr(c)) for c in self.cbs]
        return f"Optimizer(cbs={names}, hypers={self.hypers})"


def sgd_step(p: torch.Tensor, lr: float, **kwargs: Any) -> None:
    """Plain SGD: ``p -= lr * grad``."""
    p.data.add_(p.grad.data, alpha=-lr)


def weight_decay(p: torch.Tensor, lr: float, wd: float, do_wd: bool = True, **kwargs: Any) -> None:
    """Decoupled weight decay: ``p *= 1 - lr*wd``."""
    if do_wd and wd != 0:
        p.data.mul_(1 - lr * wd)


weight_decay.defaults = dict(wd=0.)


def l2_reg(p: torch.Tensor, lr: float, wd: float, do_wd: bool = True, **kwargs: Any) -> None:
    """L2 regularization: add ``wd * p`` to the gradient."""
    if do_wd and wd != 0:
        p.grad.data.add_(p.data, alpha=wd)


l2_reg.defaults = dict(wd=0.)


def average_grad(p: torch.Tensor, mom: float, dampening: bool = False, grad_avg: torch.Tensor | None = None,
                 **kwargs: Any) -> dict:
    """Running average of the gradients in ``state['grad_avg']``: ``mom*avg + (1-mom if dampening else 1)*grad``."""
    if grad_avg is None:
        grad_avg = torch.zeros_like(p.grad.data)
    damp = 1 - mom if dampening else 1.
    grad_avg.mul_(mom).add_(p.grad.data, alpha=damp)
    return {"grad_avg": grad_avg}


average_grad.defaults = dict(mom=0.9)


def average_sqr_grad(p: torch.Tensor, sqr_mom: float, dampening: bool = True, sqr_avg: torch.Tensor | None = None,
                     **kwargs: Any) -> dict:
    """Running average of the squared gradients in ``state['sqr_avg']``."""
    if sqr_avg is None:
        sqr_avg = torch.zeros_like(p.grad.data)
    damp = 1 - sqr_mom if dampening else 1.
    sqr_avg.mul_(sqr_mom).addcmul_(p.grad.data, p.grad.data, value=damp)
    return {"sqr_avg": sqr_avg}


average_sqr_grad.defaults = dict(sqr_mom=0.99)


def momentum_step(p: torch.Tensor, lr: float, grad_avg: torch.Tensor, **kwargs: Any) -> None:
    """SGD with momentum: ``p -= lr * grad_avg``."""
    p.data.add_(grad_avg, alpha=-lr)


def rms_prop_step(p: torch.Tensor, lr: float, sqr_avg: torch.Tensor, eps: float,
                  grad_avg: torch.Tensor | None = None, **kwargs: Any) -> None:
    """RMSProp: ``p -= lr * (grad_avg or grad) / (sqrt(sqr_avg) + eps)``."""
    denom = sqr_avg.sqrt().add_(eps)
    p.data.addcdiv_(grad_avg if grad_avg is not None else p.grad, denom, value=-lr)


rms_prop_step.defaults = dict(eps=1e-8)


def step_stat(p: torch.Tensor, step: int = 0, **kwargs: Any) -> dict:
    """Count this parameter's steps in ``state['step']``."""
    return {"step": step + 1}


def debias(mom: float, damp: float, step: int) -> float:
    """The bias correction of a running average started at 0: ``damp * (1 - mom**step) / (1 - mom)``."""
    return damp * (1 - mom ** step) / (1 - mom)


def adam_step(p: torch.Tensor, lr: float, mom: float, step: int, sqr_mom: float, grad_avg: torch.Tensor,
              sqr_avg: torch.Tensor, eps: float, **kwargs: Any) -> torch.Tensor:
    """Adam's step from the debiased averages (use after ``average_grad(dampening=True)``, ``average_sqr_grad``, ``step_stat``)."""
    debias1 = debias(mom, 1 - mom, step)
    debias2 = debias(sqr_mom, 1 - sqr_mom, step)
    p.data.addcdiv_(grad_avg, (sqr_avg / debias2).sqrt() + eps, value=-lr / debias1)
    return p


adam_step.defaults = dict(eps=1e-5)
