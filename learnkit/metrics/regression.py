"""Regression metrics: errors (mse, rmse, mae, msle, exp_rmspe), R2 and correlations over the whole set."""
from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

from ..metric_funcs import pearsonr, r2_score, spearmanr
from .base import AccumMetric, _flatten_check

__all__ = ["mse", "rmse", "mae", "msle", "exp_rmspe", "R2Score", "PearsonCorrCoef", "SpearmanCorrCoef"]


def _reg_flat(inp: torch.Tensor, targ: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    inp, targ = _flatten_check(inp, targ, name)
    return inp.float(), targ.float()


def mse(inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    inp, targ = _reg_flat(inp, targ, "mse")
    return F.mse_loss(inp, targ)


def rmse(inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
    """Root mean squared error (as a metric: over the whole set, not averaged per batch)."""
    inp, targ = _reg_flat(inp, targ, "rmse")
    return torch.sqrt(F.mse_loss(inp, targ))


def mae(inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    inp, targ = _reg_flat(inp, targ, "mae")
    return (inp - targ).abs().mean()


def msle(inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
    """Mean squared logarithmic error: mean of ``(log(1 + inp) - log(1 + targ))**2``."""
    inp, targ = _reg_flat(inp, targ, "msle")
    return F.mse_loss(torch.log1p(inp), torch.log1p(targ))


def exp_rmspe(inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
    """Root mean squared percentage error of ``exp(inp)`` against ``exp(targ)`` (log-scale targets; over the whole set)."""
    inp, targ = _reg_flat(inp, targ, "exp_rmspe")
    inp, targ = torch.exp(inp), torch.exp(targ)
    return torch.sqrt((((targ - inp) / targ) ** 2).mean())


class R2Score(AccumMetric):
    """R2 score over the whole set, as fastai's ``R2Score``: scikit-learn's ``r2_score`` on the flattened predictions and targets.

    Multi-column targets are flattened too (one score over every value), as fastai computes it.
    """

    def __init__(self, sample_weight: Any = None) -> None:
        super().__init__(r2_score, to_np=True, invert_arg=True, sample_weight=sample_weight)


def PearsonCorrCoef(dim_argmax: int | None = None, **kwargs: Any) -> AccumMetric:
    """Pearson correlation coefficient of predictions and targets over the set (fastai's; SciPy's ``pearsonr``)."""
    return AccumMetric(pearsonr, invert_arg=False, dim_argmax=dim_argmax, **kwargs)


def SpearmanCorrCoef(dim_argmax: int | None = None, axis: int = 0, nan_policy: str = "propagate",
                     **kwargs: Any) -> AccumMetric:
    """Spearman rank correlation of predictions and targets over the set (fastai's; SciPy's ``spearmanr``)."""
    return AccumMetric(functools.partial(spearmanr, axis=axis, nan_policy=nan_policy), invert_arg=False,
                       dim_argmax=dim_argmax, **kwargs)
