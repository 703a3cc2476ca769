"""Metrics, accumulated over the whole validation set.

Protocol: a ``Metric`` has ``reset()``, ``update(pred, targ)`` (called with the model's raw output
and the target of every validation batch) and ``value``. A plain function ``f(pred, targ) -> tensor``
passed as a metric is wrapped in ``AvgMetric``, which averages it weighted by batch size (exact for
per-item means such as accuracy). Metrics that are not per-item means (F1, AUC, R2, RMSE...) keep
what they need across batches and compute once at the end.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["Metric", "AvgMetric", "to_metric", "accuracy", "error_rate"]


class Metric:
    """Base class for metrics accumulated over a validation pass."""

    @property
    def name(self) -> str:
        """Column name shown in the training table."""
        return type(self).__name__.lower()

    def reset(self) -> None:
        """Forget what was accumulated (called before each validation pass)."""

    def update(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        """Accumulate one batch."""
        raise NotImplementedError

    @property
    def value(self) -> float | None:
        """The metric over everything accumulated since ``reset``."""
        raise NotImplementedError


class AvgMetric(Metric):
    """Wraps ``func(pred, targ)`` and averages it over items (weighted by batch size)."""

    def __init__(self, func: Callable) -> None:
        self.func = func
        self.total, self.count = 0.0, 0

    @property
    def name(self) -> str:
        """The function's name."""
        return getattr(self.func, "__name__", type(self.func).__name__)

    def reset(self) -> None:
        """Zero the running sum."""
        self.total, self.count = 0.0, 0

    def update(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        """Add this batch's value times its size."""
        bs = targ.shape[0] if targ.ndim else 1
        self.total += float(self.func(pred, targ)) * bs
        self.count += bs

    @property
    def value(self) -> float | None:
        """Mean over all items seen."""
        return self.total / self.count if self.count else None


def to_metric(m: Any) -> Metric:
    """Turn a metric instance, a Metric subclass or a plain function into a ``Metric``."""
    if isinstance(m, Metric):
        return m
    if isinstance(m, type) and issubclass(m, Metric):
        return m()
    if callable(m):
        return AvgMetric(m)
    raise TypeError(f"{m!r} is not a metric: pass a function f(pred, targ) or a Metric instance.")


def accuracy(inp: torch.Tensor, targ: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Fraction of items whose argmax prediction equals the target."""
    pred = inp.argmax(dim=axis)
    return (pred == targ.view_as(pred) if pred.numel() == targ.numel() else pred == targ).float().mean()


def error_rate(inp: torch.Tensor, targ: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """1 - accuracy."""
    return 1 - accuracy(inp, targ, axis=axis)
