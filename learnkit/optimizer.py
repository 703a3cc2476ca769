"""Optimizers: plain ``torch.optim`` classes with fastai's defaults.

An ``opt_func`` is any callable ``opt_func(param_groups, lr=...) -> torch.optim.Optimizer``:
these functions, or any ``torch.optim`` class itself.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["Adam", "SGD"]


def Adam(params: Iterable, lr: float = 1e-3, mom: float = 0.9, sqr_mom: float = 0.99, eps: float = 1e-5,
         wd: float = 0.01, decouple_wd: bool = True, **kwargs) -> torch.optim.Optimizer:
    """Adam with fastai's defaults (betas 0.9/0.99, eps 1e-5) and decoupled weight decay (AdamW)."""
    cls = torch.optim.AdamW if decouple_wd else torch.optim.Adam
    return cls(params, lr=lr, betas=(mom, sqr_mom), eps=eps, weight_decay=wd, **kwargs)


def SGD(params: Iterable, lr: float = 1e-3, mom: float = 0.0, wd: float = 0.0, **kwargs) -> torch.optim.Optimizer:
    """Stochastic gradient descent with optional momentum and weight decay."""
    return torch.optim.SGD(params, lr=lr, momentum=mom, weight_decay=wd, **kwargs)
