"""Metrics read from the loss: the averaged loss and named attributes of a combined loss (fastai's AvgLoss,
LossMetric)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import AvgMetric, _bs

__all__ = ["AvgLoss", "LossMetric", "LossMetrics"]


class AvgLoss(AvgMetric):
    """The loss averaged over the set, weighted by batch size (fastai's)."""

    def __init__(self) -> None:
        self.reset()

    @property
    def name(self) -> str:
        """fastai's column name."""
        return "loss"

    def accumulate(self, learn: Any) -> None:
        """Add ``learn.loss`` times the batch size."""
        self._add(learn.loss.mean(), _bs(learn.yb[0]))


class LossMetric(AvgMetric):
    """The attribute ``attr`` of the loss function (e.g. one term of a combined loss) averaged over the set, named ``nm``."""

    def __init__(self, attr: str, nm: str | None = None) -> None:
        self.attr, self.nm = attr, nm
        self.reset()

    @property
    def name(self) -> str:
        """``nm``, else ``attr``."""
        return self.attr if self.nm is None else self.nm

    def accumulate(self, learn: Any) -> None:
        """Add ``loss_func.<attr>`` (0 when missing) times the batch size."""
        self._add(getattr(learn.loss_func, self.attr, 0), _bs(learn.yb[0]))


def LossMetrics(attrs: str | Sequence[str], nms: str | Sequence[str] | None = None) -> list[LossMetric]:
    """One ``LossMetric`` per attribute in ``attrs`` (a list or a comma-separated string), named by ``nms``."""
    if isinstance(attrs, str):
        attrs = attrs.split(",")
    nms = attrs if nms is None else nms.split(",") if isinstance(nms, str) else nms
    return [LossMetric(a.strip(), n.strip()) for a, n in zip(attrs, nms)]
