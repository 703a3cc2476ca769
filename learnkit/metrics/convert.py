"""``to_metric``: what the learner does with whatever is passed in ``metrics=``."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .base import AccumMetric, AvgMetric, Metric
from .regression import exp_rmspe, rmse
from .segmentation import _foreground_metric, foreground_acc

__all__ = ["to_metric"]

# functions whose metric is not a per-item mean -> the Metric computing them exactly over the set
_EXACT: dict[Callable, Callable[[Callable], Metric]] = {
    rmse: AccumMetric,
    exp_rmspe: AccumMetric,
    foreground_acc: _foreground_metric,
}


def to_metric(m: Any) -> Metric:
    """Turn a metric instance, a Metric subclass or a plain function into a ``Metric`` (see the module doc)."""
    if isinstance(m, Metric):
        return m
    if isinstance(m, type) and issubclass(m, Metric):
        return m()
    if callable(m):
        base = m.func if isinstance(m, functools.partial) else m
        exact = _EXACT.get(base)
        return exact(m) if exact is not None else AvgMetric(m)
    raise TypeError(f"{m!r} is not a metric: pass a function f(pred, targ) or a Metric instance.")
