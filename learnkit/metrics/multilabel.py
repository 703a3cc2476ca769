"""Multi-label metrics: thresholded accuracy and fastai's scikit-learn wrappers (average precision, ROC AUC)."""
from __future__ import annotations

from typing import Any

import torch

from ..metric_funcs import average_precision_score, roc_auc_score
from .base import AccumMetric, ActivationType, _flatten_check, skm_to_fastai

__all__ = ["accuracy_multi", "APScoreMulti", "RocAucMulti"]


def accuracy_multi(inp: torch.Tensor, targ: torch.Tensor, thresh: float = 0.5, sigmoid: bool = True) -> torch.Tensor:
    """Multi-label accuracy: fraction of (item, label) decisions ``sigmoid(inp) > thresh`` equal to the multi-hot target."""
    inp, targ = _flatten_check(inp, targ, "accuracy_multi")
    if sigmoid:
        inp = inp.sigmoid()
    return ((inp > thresh) == targ.bool()).float().mean()


def APScoreMulti(sigmoid: bool = True, average: str | None = "macro", pos_label: int = 1,
                 sample_weight: Any = None) -> AccumMetric:
    """Average precision for multi-label problems (fastai's; scikit-learn's ``average_precision_score``)."""
    activation = ActivationType.Sigmoid if sigmoid else ActivationType.No
    return skm_to_fastai(average_precision_score, activation=activation, flatten=False, average=average,
                         pos_label=pos_label, sample_weight=sample_weight)


def RocAucMulti(sigmoid: bool = True, average: str | None = "macro", sample_weight: Any = None,
                max_fpr: float | None = None) -> AccumMetric:
    """ROC AUC for multi-label problems, one per label averaged (fastai's; scikit-learn's ``roc_auc_score``)."""
    activation = ActivationType.Sigmoid if sigmoid else ActivationType.No
    return skm_to_fastai(roc_auc_score, activation=activation, flatten=False, average=average,
                         sample_weight=sample_weight, max_fpr=max_fpr)
