"""Optimizers: plain ``torch.optim`` classes with fastai's defaults, and the ``Lookahead`` wrapper.

An ``opt_func`` is any callable ``opt_func(param_groups, lr=...) -> torch.optim.Optimizer``:
these functions, or any ``torch.optim`` class itself. Schedules set ``group['lr']`` and the momentum
(``momentum_key`` says where it lives) on ``opt.param_groups``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from .optim_fastai import Lamb, Larc, QHAdam, RMSProp, as_params, closure_loss

__all__ = ["Adam", "SGD", "RAdam", "RMSProp", "QHAdam", "Larc", "Lamb", "Lookahead", "ranger", "momentum_key"]


def _all_cuda_floats(params: list) -> bool:
    """True when every parameter (plain or in param-group dicts) is a floating-point CUDA tensor."""
    ps = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
    return bool(ps) and all(isinstance(p, torch.Tensor) and p.is_cuda and p.is_floating_point() for p in ps)


def Adam(params: Iterable, lr: float = 1e-3, mom: float = 0.9, sqr_mom: float = 0.99, eps: float = 1e-5,
         wd: float = 0.01, decouple_wd: bool = True, fused: bool | None = None, **kwargs: Any) -> torch.optim.Optimizer:
    """Adam with fastai's defaults (betas 0.9/0.99, eps 1e-5) and decoupled weight decay (AdamW).

    ``fused=None`` uses torch's fused kernel (one launch for all parameters) when every parameter is on CUDA.
    """
    cls = torch.optim.AdamW if decouple_wd else torch.optim.Adam
    params = as_params(params, "Adam")
    if fused is None:
        fused = _all_cuda_floats(params) or None
    if fused:
        kwargs["fused"] = True
    return cls(params, lr=lr, betas=(mom, sqr_mom), eps=eps, weight_decay=wd, **kwargs)


class _SGDW(torch.optim.SGD):
    """torch's SGD with decoupled weight decay: ``p *= 1 - lr*wd`` before each step (group ``weight_decay``)."""

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Decay the weights that have a gradient, then torch's SGD step without its L2 term."""
        loss = closure_loss(closure)
        saved = [g["weight_decay"] for g in self.param_groups]
        try:
            for g, wd in zip(self.param_groups, saved):
                if wd != 0:
                    ps = [p for p in g["params"] if p.grad is not None]
                    if ps:
                        torch._foreach_mul_(ps, 1 - g["lr"] * wd)
                g["weight_decay"] = 0.0
            super().step()
        finally:
            for g, wd in zip(self.param_groups, saved):
                g["weight_decay"] = wd
        return loss


def SGD(params: Iterable, lr: float = 1e-3, mom: float = 0.0, wd: float = 0.0, decouple_wd: bool = True,
        **kwargs: Any) -> torch.optim.Optimizer:
    """Stochastic gradient descent with optional momentum; weight decay decoupled (fastai's default) or L2 (``decouple_wd=False``)."""
    cls = _SGDW if decouple_wd else torch.optim.SGD
    return cls(as_params(params, "SGD"), lr=lr, momentum=mom, weight_decay=wd, **kwargs)


def RAdam(params: Iterable, lr: float = 1e-3, mom: float = 0.9, sqr_mom: float = 0.99, eps: float = 1e-5,
          wd: float = 0., decouple_wd: bool = True, **kwargs: Any) -> torch.optim.Optimizer:
    """Rectified Adam (``torch.optim.RAdam``) with fastai's defaults; ``decouple_wd`` gives AdamW-style decay."""
    return torch.optim.RAdam(as_params(params, "RAdam"), lr=lr, betas=(mom, sqr_mom), eps=eps, weight_decay=wd,
                             decoupled_weight_decay=decouple_wd, **kwargs)


class Lookahead(torch.optim.Optimizer):
    """Lookahead (Zhang et al. 2019) around any optimizer: every ``k`` steps, slow weights move ``alpha`` of the
    way to the fast ones and the fast weights restart from them.

    It *is* a ``torch.optim.Optimizer`` sharing ``param_groups`` and ``state`` with the wrapped ``opt``,
    so a scheduler setting ``group['lr']`` (learnkit's or ``torch.optim.lr_scheduler``) drives the inner
    optimizer. Slow weights are taken from the parameters just before their first step.
    ``state_dict()`` is the inner optimizer's plus a ``'lookahead'`` entry (step count, slow weights).
    """

    def __init__(self, opt: torch.optim.Optimizer, k: int = 6, alpha: float = 0.5) -> None:
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"Lookahead wraps a torch.optim.Optimizer, got {type(opt).__name__}: build the inner "
                            f"optimizer first, e.g. Lookahead(RAdam(params, lr=1e-3)).")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"Lookahead(k={k!r}): k is the number of inner steps between syncs, an integer >= 1.")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"Lookahead(alpha={alpha!r}): alpha is the slow weights' step fraction, in [0, 1].")
        self.opt, self.k, self.alpha = opt, k, alpha
        super().__init__(opt.param_groups, opt.defaults)  # validates; the group dicts are the inner ones
        self._share()
        self.count = 0
        self.slow: dict[torch.Tensor, torch.Tensor] = {}

    def _share(self) -> None:
        """Point ``param_groups`` and ``state`` at the inner optimizer's (again after it loads a state)."""
        self.param_groups = self.opt.param_groups
        self.state = self.opt.state

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One inner step; every ``k``-th, pull the slow weights toward the fast ones and reset the fast ones to them."""
        params = self._params()
        for p in params:
            if p not in self.slow:
                self.slow[p] = p.detach().clone()
        if closure is not None:
            with torch.enable_grad():
                loss = self.opt.step(closure)
        else:
            loss = self.opt.step()
        self.count += 1
        if self.count % self.k == 0:
            for p in params:
                slow = self.slow[p]
                slow.add_(p.detach() - slow, alpha=self.alpha)
                p.copy_(slow)
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The inner optimizer's state dict plus ``'lookahead'``: ``k``, ``alpha``, ``count`` and slow weights by param index."""
        sd = self.opt.state_dict()
        slow = {i: self.slow[p].clone() for i, p in enumerate(self._params()) if p in self.slow}
        sd["lookahead"] = {"k": self.k, "alpha": self.alpha, "count": self.count, "slow": slow}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load what ``state_dict`` wrote (a plain inner state dict also works: slow weights restart from the params)."""
        state_dict = dict(state_dict)
        la = state_dict.pop("lookahead", None)
        self.opt.load_state_dict(state_dict)
        self._share()
        self.slow = {}
        self.count = 0
        if la is not None:
            self.count = int(la["count"])
            params = self._params()
            for i, t in la["slow"].items():
                p = params[int(i)]
                self.slow[p] = t.detach().to(device=p.device, dtype=p.dtype).clone()

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, opt={self.opt!r})"


def ranger(params: Iterable, lr: float = 1e-3, mom: float = 0.95, sqr_mom: float = 0.99, eps: float = 1e-6,
           wd: float = 0.01, decouple_wd: bool = True, k: int = 6, alpha: float = 0.5,
           **kwargs: Any) -> Lookahead:
    """Ranger: ``Lookahead(RAdam(...))`` with fastai's defaults."""
    return Lookahead(RAdam(params, lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd, decouple_wd=decouple_wd, **kwargs),
                     k=k, alpha=alpha)


def momentum_key(opt: torch.optim.Optimizer) -> tuple[str, int | None]:
    """Where ``opt`` keeps its momentum in a parameter group: ``('betas', 0)`` (Adam-likes) or ``('momentum', None)`` (SGD, RMSprop)."""
    groups = opt.param_groups
    if groups and all("betas" in g for g in groups):
        return ("betas", 0)
    if groups and all("momentum" in g for g in groups):
        return ("momentum", None)
    raise ValueError(f"{type(opt).__name__} has no momentum hyper-parameter (no 'betas' or 'momentum' in its "
                     f"parameter groups): only its lr can be scheduled; use Adam, RAdam or SGD to also schedule momentum.")
