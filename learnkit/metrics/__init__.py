"""Metrics, accumulated over the whole validation set.

Protocol: a ``Metric`` has ``reset()``, ``update(pred, targ)`` (called with the model's raw output
and the target of every validation batch) or fastai's ``accumulate(learn)``, ``value`` and ``name``. A plain function
``f(pred, targ) -> tensor`` passed as a metric is wrapped by ``to_metric``:

- per-item means (``accuracy``, ``error_rate``, ``mae``...) go in ``AvgMetric``, which averages them
  weighted by batch size: exact over the whole set;
- the learnkit functions that are *not* per-item means (``rmse``, ``exp_rmspe``, ``foreground_acc``)
  get a metric that keeps what it needs across batches and computes once at the end, so
  ``rmse`` is ``sqrt(mean of all squared errors)``, not a mean of per-batch RMSEs. Wrap your own such
  function in ``AccumMetric(func)`` for the same.

Classification scores (``F1Score``, ``Precision``, ``Recall``, ``BalancedAccuracy``,
``MatthewsCorrCoef``) accumulate a confusion matrix with torch on the model's device (no sync per
batch) and follow scikit-learn's formulas (zero divisions give 0); ``RocAuc`` computes the exact
AUC from ranks, ties counted half. Running values stay on the device and are read back once, in ``value``.

One module per topic, all re-exported here: ``base`` (the protocol and wrappers), ``classification``,
``multilabel``, ``regression``, ``segmentation``, ``text``, ``loss`` (metrics read from the loss) and ``convert``
(``to_metric``).
"""
from .base import AccumMetric, ActivationType, AvgMetric, Metric, skm_to_fastai
from .classification import (BalancedAccuracy, F1Score, FBeta, MatthewsCorrCoef, Precision, Recall, RocAuc, RocAucBinary,
                             accuracy, error_rate, top_k_accuracy)
from .convert import to_metric
from .loss import AvgLoss, LossMetric, LossMetrics
from .multilabel import APScoreMulti, RocAucMulti, accuracy_multi
from .regression import PearsonCorrCoef, R2Score, SpearmanCorrCoef, exp_rmspe, mae, mse, msle, rmse
from .segmentation import Dice, DiceMulti, JaccardCoeff, JaccardCoeffMulti, foreground_acc
from .text import CorpusBLEUMetric, Perplexity, perplexity

__all__ = [
    "Metric", "AvgMetric", "AccumMetric", "to_metric", "ActivationType", "skm_to_fastai",
    "APScoreMulti", "RocAucMulti", "PearsonCorrCoef", "SpearmanCorrCoef", "JaccardCoeffMulti",
    "LossMetric", "LossMetrics", "AvgLoss", "Perplexity", "perplexity", "CorpusBLEUMetric",
    "accuracy", "error_rate", "top_k_accuracy", "accuracy_multi",
    "FBeta", "F1Score", "Precision", "Recall", "BalancedAccuracy", "MatthewsCorrCoef", "RocAuc", "RocAucBinary",
    "mse", "rmse", "mae", "msle", "exp_rmspe", "R2Score",
    "foreground_acc", "Dice", "DiceMulti", "JaccardCoeff",
]
