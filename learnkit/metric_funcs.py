"""The scikit-learn / SciPy scores fastai's metrics wrap, written with NumPy (neither library is a dependency).

Same signatures and results as ``sklearn.metrics.average_precision_score``, ``roc_auc_score`` (binary and
multi-label), ``r2_score`` and ``scipy.stats.pearsonr(...)[0]`` / ``spearmanr(...)[0]`` on 1-d data. Inputs
may be NumPy arrays, tensors or lists.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["average_precision_score", "roc_auc_score", "r2_score", "pearsonr", "spearmanr"]

_AVERAGES = (None, "micro", "macro", "weighted", "samples")


def _np(a: Any, dtype: Any = np.float64) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=dtype)


def _curve(y: np.ndarray, s: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted true and false positive counts at each distinct score, from the highest score down."""
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    w = np.ones_like(s) if w is None else w[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]  # last position of each distinct score
    tps = np.cumsum(y * w)[last]
    fps = np.cumsum((1 - y) * w)[last]
    return tps, fps


def _binary_ap(y: np.ndarray, s: np.ndarray, w: np.ndarray | None) -> float:
    tps, fps = _curve(y, s, w)
    precision = tps / (tps + fps)
    recall = tps / tps[-1] if tps[-1] > 0 else np.ones_like(tps)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def _binary_auc(y: np.ndarray, s: np.ndarray, w: np.ndarray | None, max_fpr: float | None) -> float:
    if np.unique(y).size != 2:
        raise ValueError("roc_auc_score: only one class is present in y_true, so ROC AUC is not defined; validate "
                         "on a set holding positives and negatives.")
    tps, fps = _curve(y, s, w)
    tpr, fpr = np.r_[0.0, tps / tps[-1]], np.r_[0.0, fps / fps[-1]]
    if max_fpr is None or max_fpr == 1:
        return _trapezoid(fpr, tpr)
    if not 0 < max_fpr <= 1:
        raise ValueError(f"roc_auc_score: max_fpr={max_fpr} must be in (0, 1].")
    stop = np.searchsorted(fpr, max_fpr, "right")
    tpr = np.r_[tpr[:stop], np.interp(max_fpr, fpr[stop - 1:stop + 1], tpr[stop - 1:stop + 1])]
    fpr = np.r_[fpr[:stop], max_fpr]
    partial = _trapezoid(fpr, tpr)
    min_area, max_area = 0.5 * max_fpr ** 2, max_fpr
    return 0.5 * (1 + (partial - min_area) / (max_area - min_area))  # McClish's standardisation, as scikit-learn


def _averaged(score: Any, y: np.ndarray, s: np.ndarray, average: str | None, w: np.ndarray | None,
              name: str) -> Any:
    """A binary score, or its per-label average for multi-label ``(n, labels)`` inputs (scikit-learn's rules)."""
    if average not in _AVERAGES:
        raise ValueError(f"{name}(average={average!r}): use one of {_AVERAGES}.")
    if y.ndim == 1:
        if s.ndim == 2 and s.shape[1] == 1:
            s = s[:, 0]
        if s.ndim != 1:
            raise ValueError(f"{name}: y_true is 1-d but y_score has shape {s.shape}; for multi-class scores use "
                             f"RocAuc() / a one-hot y_true, or pass one score per item.")
        return score(y, s, w)
    if y.shape != s.shape:
        raise ValueError(f"{name}: y_true of shape {y.shape} and y_score of shape {s.shape} differ; multi-label "
                         f"inputs are (items, labels) both.")
    if average == "micro":
        return score(y.ravel(), s.ravel(), None if w is None else np.repeat(w, y.shape[1]))
    if average == "samples":
        return float(np.average([score(y[i], s[i], None) for i in range(y.shape[0])], weights=w))
    scores = np.array([score(y[:, j], s[:, j], w) for j in range(y.shape[1])])
    if average is None:
        return scores
    weights = None
    if average == "weighted":
        weights = (y * (1 if w is None else w[:, None])).sum(0)
        if weights.sum() == 0:
            return 0.0
    return float(np.average(scores, weights=weights))


def average_precision_score(y_true: Any, y_score: Any, average: str | None = "macro", pos_label: int = 1,
                            sample_weight: Any = None) -> Any:
    """Average precision ``sum_n (R_n - R_{n-1}) P_n`` (scikit-learn's), binary or per label for multi-label targets."""
    y, s = _np(y_true), _np(y_score)
    w = None if sample_weight is None else _np(sample_weight)
    y = (y == pos_label).astype(np.float64) if y.ndim == 1 else y
    return _averaged(_binary_ap, y, s, average, w, "average_precision_score")


def roc_auc_score(y_true: Any, y_score: Any, average: str | None = "macro", sample_weight: Any = None,
                  max_fpr: float | None = None) -> Any:
    """Area under the ROC curve (scikit-learn's), binary or per label for multi-label targets; ``max_fpr`` gives the standardised partial AUC."""
    y, s = _np(y_true), _np(y_score)
    w = None if sample_weight is None else _np(sample_weight)
    if y.ndim == 1:
        labels = np.unique(y)
        if labels.size > 2:
            raise ValueError(f"roc_auc_score: y_true holds {labels.size} classes; for multi-class problems use "
                             f"RocAuc(), for multi-label ones pass one-hot targets of shape (items, labels).")
        y = (y == labels.max()).astype(np.float64)
    return _averaged(lambda a, b, c: _binary_auc(a, b, c, max_fpr), y, s, average, w, "roc_auc_score")


def r2_score(y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (scikit-learn's; outputs of 2-d targets averaged uniformly)."""
    y, p = _np(y_true), _np(y_pred)
    if y.shape != p.shape:
        raise ValueError(f"r2_score: y_true of shape {y.shape} and y_pred of shape {p.shape} differ.")
    y, p = (y[:, None], p[:, None]) if y.ndim == 1 else (y, p)
    w = np.ones((y.shape[0], 1)) if sample_weight is None else _np(sample_weight)[:, None]
    ss_res = (w * (y - p) ** 2).sum(0)
    ss_tot = (w * (y - np.average(y, axis=0, weights=w[:, 0])) ** 2).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
    return float(r2.mean())


def pearsonr(x: Any, y: Any) -> float:
    """Pearson's correlation coefficient of two 1-d samples (``scipy.stats.pearsonr(x, y)[0]``)."""
    x, y = _np(x).ravel(), _np(y).ravel()
    if x.size != y.size or x.size < 2:
        raise ValueError(f"pearsonr needs two samples of the same length >= 2, got {x.size} and {y.size}.")
    xm, ym = x - x.mean(), y - y.mean()
    den = np.sqrt((xm ** 2).sum() * (ym ** 2).sum())
    return float(np.clip((xm * ym).sum() / den, -1.0, 1.0)) if den > 0 else float("nan")


def _ranks(a: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    first = np.r_[True, sorted_a[1:] != sorted_a[:-1]]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], a.size]
    ranks = np.empty(a.size)
    ranks[order] = ((starts + ends + 1) / 2)[group]
    return ranks


def spearmanr(a: Any, b: Any = None, axis: int = 0, nan_policy: str = "propagate") -> float:
    """Spearman's rank correlation of two 1-d samples (``scipy.stats.spearmanr(a, b)[0]``); ``nan_policy`` as SciPy's."""
    if nan_policy not in ("propagate", "raise", "omit"):
        raise ValueError(f"spearmanr(nan_policy={nan_policy!r}): use 'propagate', 'raise' or 'omit'.")
    a = _np(a)
    if b is None:
        if a.ndim != 2 or a.shape[1 - axis] != 2:
            raise ValueError("spearmanr with b=None needs a 2-d array of two variables.")
        a, b = np.moveaxis(a, axis, 0).T
    b = _np(b)
    if a.ndim > 1 or b.ndim > 1:
        raise ValueError(f"spearmanr: a of shape {a.shape} and b of shape {b.shape} must be 1-d samples here "
                         f"(flatten=True in SpearmanCorrCoef does it).")
    nan = np.isnan(a) | np.isnan(b)
    if nan.any():
        if nan_policy == "raise":
            raise ValueError("spearmanr: the input contains NaN (nan_policy='raise').")
        if nan_policy == "propagate":
            return float("nan")
        a, b = a[~nan], b[~nan]
    return pearsonr(_ranks(a), _ranks(b))
