"""Segmentation metrics: foreground accuracy, Dice and Jaccard (binary and per class), summed over the set."""
from __future__ import annotations

from collections.abc import Callable

import torch

from .base import Metric, _flatten_check

__all__ = ["foreground_acc", "Dice", "JaccardCoeff", "DiceMulti", "JaccardCoeffMulti"]


def _fg_counts(inp: torch.Tensor, targ: torch.Tensor, bkg_idx: int, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    if targ.ndim == inp.ndim:  # masks stored as (n, 1, h, w)
        targ = targ.squeeze(1)
    pred, targ = _flatten_check(inp.argmax(dim=axis), targ, "foreground_acc")
    mask = targ != bkg_idx
    return (pred[mask] == targ[mask]).sum(), mask.sum()


def foreground_acc(inp: torch.Tensor, targ: torch.Tensor, bkg_idx: int = 0, axis: int = 1) -> torch.Tensor:
    """Pixel accuracy ignoring the background class ``bkg_idx`` (as a metric: over every pixel of the set)."""
    correct, total = _fg_counts(inp, targ, bkg_idx, axis)
    return correct.float() / total


class _ForegroundAcc(Metric):
    """``foreground_acc`` accumulated exactly: correct foreground pixels / foreground pixels over the whole set."""

    def __init__(self, bkg_idx: int = 0, axis: int = 1) -> None:
        self.bkg_idx, self.axis = bkg_idx, axis
        self.reset()

    @property
    def name(self) -> str:
        """The function's name."""
        return "foreground_acc"

    def reset(self) -> None:
        """Zero the counts."""
        self.correct: torch.Tensor | int = 0
        self.total: torch.Tensor | int = 0

    def update(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        """Add this batch's counts."""
        c, t = _fg_counts(pred.detach(), targ.detach(), self.bkg_idx, self.axis)
        self.correct, self.total = c + self.correct, t + self.total

    @property
    def value(self) -> float | None:
        """Correct over total foreground pixels."""
        total = int(self.total)
        return int(self.correct) / total if total else None


class Dice(Metric):
    """Dice coefficient ``2|P∩T| / (|P| + |T|)`` for binary segmentation, from intersections and unions summed over the set."""

    def __init__(self, axis: int = 1) -> None:
        self.axis = axis
        self.reset()

    @property
    def name(self) -> str:
        """fastai's column name."""
        return "dice"

    def reset(self) -> None:
        """Zero the sums."""
        self.inter: torch.Tensor | int = 0
        self.union: torch.Tensor | int = 0

    def update(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        """Add this batch's intersection and ``|P| + |T|``."""
        if targ.ndim == pred.ndim:
            targ = targ.squeeze(1)
        p, t = _flatten_check(pred.detach().argmax(dim=self.axis), targ.detach(), self.name)
        self.inter = (p * t).sum() + self.inter
        self.union = (p + t).sum() + self.union

    @property
    def value(self) -> float | None:
        """``2 * inter / union`` (None when both are empty)."""
        union = float(self.union)
        return 2.0 * float(self.inter) / union if union > 0 else None


class JaccardCoeff(Dice):
    """Jaccard index ``|P∩T| / |P∪T|`` for binary segmentation, over the whole set."""

    @property
    def name(self) -> str:
        """fastai's column name."""
        return "jaccard_coeff"

    @property
    def value(self) -> float | None:
        """``inter / (union - inter)``."""
        union, inter = float(self.union), float(self.inter)
        return inter / (union - inter) if union > 0 else None


class DiceMulti(Metric):
    """Mean over classes of each class's Dice coefficient (classes absent from predictions and targets skipped)."""

    def __init__(self, axis: int = 1) -> None:
        self.axis = axis
        self.reset()

    @property
    def name(self) -> str:
        """fastai's column name."""
        return "dice_multi"

    def reset(self) -> None:
        """Zero the per-class sums."""
        self.inter: torch.Tensor | None = None
        self.union: torch.Tensor | None = None

    def update(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        """Add this batch's per-class intersections and ``|P_c| + |T_c|``."""
        if targ.ndim == pred.ndim:
            targ = targ.squeeze(1)
        c = pred.shape[self.axis]
        p, t = _flatten_check(pred.detach().argmax(dim=self.axis), targ.detach().long(), self.name)
        if self.inter is None:
            self.inter = torch.zeros(c, dtype=torch.long, device=p.device)
            self.union = torch.zeros(c, dtype=torch.long, device=p.device)
        ok = (t >= 0) & (t < c)
        self.inter += torch.bincount(t[(p == t) & ok], minlength=c)[:c]
        self.union += torch.bincount(p, minlength=c)[:c] + torch.bincount(t[ok], minlength=c)[:c]

    @staticmethod
    def _score(inter: torch.Tensor, union: torch.Tensor) -> torch.Tensor:
        return 2 * inter / union

    @property
    def value(self) -> float | None:
        """Mean of the per-class score (``2 * inter_c / union_c``) over classes with a non-empty union."""
        if self.inter is None:
            return None
        inter, union = self.inter.double().cpu(), self.union.double().cpu()
        seen = union > 0
        return float(self._score(inter[seen], union[seen]).mean()) if seen.any() else None


class JaccardCoeffMulti(DiceMulti):
    """Mean over classes of each class's Jaccard index ``inter_c / (union_c - inter_c)`` (mIoU), fastai's."""

    @property
    def name(self) -> str:
        """fastai's column name."""
        return "jaccard_coeff_multi"

    @staticmethod
    def _score(inter: torch.Tensor, union: torch.Tensor) -> torch.Tensor:
        return inter / (union - inter)


def _foreground_metric(f: Callable) -> Metric:
    """``foreground_acc`` or a ``partial`` of it (``bkg_idx=``, ``axis=``) -> its exact accumulating metric."""
    return _ForegroundAcc(**getattr(f, "keywords", {}))
