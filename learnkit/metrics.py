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
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .metric_funcs import average_precision_score, pearsonr, r2_score, roc_auc_score, spearmanr

__all__ = [
    "Metric", "AvgMetric", "AccumMetric", "to_metric", "ActivationType", "skm_to_fastai",
    "APScoreMulti", "RocAucMulti", "PearsonCorrCoef", "SpearmanCorrCoef", "JaccardCoeffMulti",
    "LossMetric", "LossMetrics", "AvgLoss", "Perplexity", "perplexity",
    "accuracy", "error_rate", "top_k_accuracy", "accuracy_multi",
    "FBeta", "F1Score", "Precision", "Recall", "BalancedAccuracy", "MatthewsCorrCoef", "RocAuc", "RocAucBinary",
    "mse", "rmse", "mae", "msle", "exp_rmspe", "R2Score",
    "foreground_acc", "Dice", "DiceMulti", "JaccardCoeff",
]

_AVERAGES = ("binary", "macro", "micro", "weighted")


# -- the protocol

class Metric:
    """Base class for metrics accumulated over a validation pass.

    Two ways to write one: learnkit's ``update(pred, targ)``, or fastai's ``accumulate(learn)`` reading
    ``learn.pred``, ``learn.yb`` (``learn.y``), ``learn.loss``. The Recorder calls ``accumulate(learn)``,
    which by default calls ``update(learn.pred, *learn.yb)``.
    """

    @property
    def name(self) -> str:
        """Column name shown in the training table: the class name in snake case without a ``Metric`` suffix (fastai's)."""
        return _camel2snake(re.sub(r"Metric$", "", type(self).__name__) or "metric")

    def reset(self) -> None:
        """Forget what was accumulated (called before each validation pass)."""

    def accumulate(self, learn: Any) -> None:
        """Accumulate the learner's current batch (fastai's entry point)."""
        self.update(learn.pred, *learn.yb)

    def update(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        """Accumulate one batch."""
        raise NotImplementedError(f"{type(self).__name__} defines neither update(pred, targ) nor accumulate(learn).")

    @property
    def value(self) -> float | None:
        """The metric over everything accumulated since ``reset``."""
        raise NotImplementedError


def _camel2snake(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def _func_name(func: Callable) -> str:
    base = func.func if isinstance(func, functools.partial) else func
    return getattr(base, "__name__", type(base).__name__)


def _bs(targ: torch.Tensor) -> int:
    return targ.shape[0] if isinstance(targ, torch.Tensor) and targ.ndim else 1


def _acc_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float32 if t.device.type == "mps" else torch.float64  # MPS has no float64


class AvgMetric(Metric):
    """Wraps ``func(pred, targ)`` and averages it over items (weighted by batch size)."""

    def __init__(self, func: Callable) -> None:
        self.func = func
        self.total: float | torch.Tensor = 0.0
        self.count = 0

    @property
    def name(self) -> str:
        """The function's name (the wrapped function's for a ``functools.partial``)."""
        return _func_name(self.func)

    def reset(self) -> None:
        """Zero the running sum."""
        self.total, self.count = 0.0, 0

    def update(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        """Add this batch's value times its size (kept on the device: no sync per batch)."""
        self._add(self.func(pred, targ), _bs(targ))

    def _add(self, v: Any, bs: int) -> None:
        """Add a batch value ``v`` weighted by its size ``bs`` (a tensor stays on its device)."""
        if isinstance(v, torch.Tensor):
            v = v.detach().to(_acc_dtype(v))
        self.total = v * bs + self.total
        self.count += bs

    @property
    def value(self) -> float | None:
        """Mean over all items seen."""
        return float(self.total) / self.count if self.count else None


class ActivationType:
    """The activations ``AccumMetric`` can apply to predictions before storing them (fastai's)."""

    No, Sigmoid, Softmax, BinarySoftmax = "no", "sigmoid", "softmax", "binary_softmax"


def _scalar(v: Any) -> Any:
    """A one-value result (tensor, NumPy scalar, number) as a float; anything else unchanged."""
    if isinstance(v, (torch.Tensor, np.ndarray, np.generic)) and np.size(v) == 1:
        return float(v.item() if hasattr(v, "item") else v)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


class AccumMetric(Metric):
    """Keeps every batch's predictions and targets and computes ``func(all_preds, all_targs)`` once, at the end (fastai's).

    Before storing, predictions go through ``activation`` (an ``ActivationType``; softmax over ``dim_argmax``),
    else an argmax over ``dim_argmax`` when given, then ``>= thresh`` when ``thresh`` is set; both are
    flattened when ``flatten``. ``to_np`` hands NumPy arrays to ``func``; ``invert_arg`` calls
    ``func(targs, preds)`` (scikit-learn's order); other keyword arguments go to ``func``.
    ``name`` defaults to the function's name. Called directly, ``metric(preds, targs)`` scores one batch.
    """

    def __init__(self, func: Callable, dim_argmax: int | None = None, activation: str = ActivationType.No,
                 thresh: float | None = None, to_np: bool = False, invert_arg: bool = False, flatten: bool = True,
                 name: str | None = None, **kwargs: Any) -> None:
        acts = (ActivationType.No, ActivationType.Sigmoid, ActivationType.Softmax, ActivationType.BinarySoftmax)
        if activation not in acts:
            raise ValueError(f"AccumMetric(activation={activation!r}): use one of {acts} (ActivationType.*).")
        self.func, self.dim_argmax, self.activation, self.thresh = func, dim_argmax, activation, thresh
        self.to_np, self.invert_args, self.flatten, self.kwargs, self._name = to_np, invert_arg, flatten, kwargs, name
        self.reset()

    @property
    def name(self) -> str:
        """The given name, else the function's."""
        return self._name or _func_name(self.func)

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def reset(self) -> None:
        """Drop the stored batches."""
        self.preds: list[torch.Tensor] = []
        self.targs: list[torch.Tensor] = []

    def _activate(self, pred: torch.Tensor) -> torch.Tensor:
        if self.activation in (ActivationType.Softmax, ActivationType.BinarySoftmax):
            pred = F.softmax(pred, dim=-1 if self.dim_argmax is None else self.dim_argmax)
            if self.activation == ActivationType.BinarySoftmax:
                pred = pred[:, -1]
        elif self.activation == ActivationType.Sigmoid:
            pred = torch.sigmoid(pred)
        elif self.dim_argmax is not None:
            pred = pred.argmax(dim=self.dim_argmax)
        if self.thresh:
            pred = pred >= self.thresh
        return pred

    def accumulate(self, learn: Any) -> None:
        """Store the learner's predictions (activated as configured) and first target."""
        self.update(learn.pred, learn.yb[0])

    def update(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        """Store this batch (activated as configured, detached)."""
        self.accum_values(self._activate(pred.detach()), targ)

    def accum_values(self, preds: torch.Tensor, targs: torch.Tensor, learn: Any = None) -> None:
        """Store ``preds`` and ``targs`` as they are (flattened when ``flatten``)."""
        preds, targs = preds.detach(), targs.detach()
        if self.flatten:
            preds, targs = _flatten_check(preds, targs, self.name)
        self.preds.append(preds)
        self.targs.append(targs)

    def __call__(self, preds: torch.Tensor, targs: torch.Tensor) -> Any:
        """The metric on one batch (what was stored before is dropped)."""
        self.reset()
        self.accum_values(preds, targs)
        return self.value

    @property
    def value(self) -> Any:
        """``func`` over the concatenation of every stored batch (a float when it is one number)."""
        if not self.preds:
            return None
        preds, targs = torch.cat(self.preds), torch.cat(self.targs)
        if self.to_np:
            preds, targs = preds.cpu().numpy(), targs.cpu().numpy()
        args = (targs, preds) if self.invert_args else (preds, targs)
        return _scalar(self.func(*args, **self.kwargs))


def skm_to_fastai(func: Callable, is_class: bool = True, thresh: float | None = None, axis: int = -1,
                  activation: str | None = None, **kwargs: Any) -> AccumMetric:
    """Wrap ``func(y_true, y_pred, **kwargs)`` (scikit-learn's signature) as a metric, as fastai does.

    Classification (``is_class``): an argmax over ``axis``, or with ``thresh`` a sigmoid then ``>= thresh``.
    Regression: predictions as they are. Arrays handed to ``func`` are NumPy.
    """
    dim_argmax = axis if is_class and thresh is None else None
    if activation is None:
        activation = ActivationType.Sigmoid if (is_class and thresh is not None) else ActivationType.No
    return AccumMetric(func, dim_argmax=dim_argmax, activation=activation, thresh=thresh, to_np=True,
                       invert_arg=True, **kwargs)


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


# -- helpers

def _flatten_check(inp: torch.Tensor, targ: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Both flattened to 1-d, with a clear error when they hold different numbers of values."""
    if inp.numel() != targ.numel():
        raise ValueError(f"{name}: predictions of shape {tuple(inp.shape)} and targets of shape {tuple(targ.shape)} "
                         f"hold different numbers of values; check the model's output size and the metric's axis.")
    return inp.reshape(-1), targ.reshape(-1)


def _decisions(pred: torch.Tensor, targ: torch.Tensor, axis: int, name: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Class decisions and targets, flattened, plus the number of classes the predictions can take.

    Scores with one more dimension than the targets: argmax over ``axis``. One float per target: a
    binary logit, positive when > 0. One integer per target: already class indices.
    """
    if pred.ndim == targ.ndim + 1:
        n_classes = pred.shape[axis]
        dec = pred.argmax(dim=axis)
    elif pred.numel() == targ.numel():
        if pred.is_floating_point():
            dec, n_classes = (pred > 0).long(), 2
        else:
            dec, n_classes = pred.long(), 0  # grown from the data below
    else:
        raise ValueError(f"{name}: predictions of shape {tuple(pred.shape)} don't match targets of shape "
                         f"{tuple(targ.shape)}: pass class scores (n, n_classes) with integer targets (n,), or one "
                         f"logit per target for a binary problem.")
    dec, targ = _flatten_check(dec, targ, name)
    if targ.is_floating_point():
        targ = targ.round()
    return dec.long(), targ.long(), n_classes


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` with 0 where ``den`` is 0 (scikit-learn's ``zero_division`` default)."""
    return torch.where(den > 0, num / den.clamp(min=1e-300), torch.zeros_like(num))


# -- classification: per-item means

def accuracy(inp: torch.Tensor, targ: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Fraction of items whose argmax prediction equals the target."""
    pred, targ = _flatten_check(inp.argmax(dim=axis), targ, "accuracy")
    return (pred == targ).float().mean()


def error_rate(inp: torch.Tensor, targ: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """1 - accuracy."""
    return 1 - accuracy(inp, targ, axis=axis)


def top_k_accuracy(inp: torch.Tensor, targ: torch.Tensor, k: int = 5, axis: int = -1) -> torch.Tensor:
    """Fraction of items whose target is among the ``k`` highest scores."""
    n_classes = inp.shape[axis]
    if k > n_classes:
        raise ValueError(f"top_k_accuracy(k={k}) needs at least k classes, but the predictions have {n_classes} "
                         f"on axis {axis}: use a smaller k, e.g. partial(top_k_accuracy, k={min(n_classes, 3)}).")
    top = inp.topk(k, dim=axis).indices
    targ = targ.reshape(top.shape[:axis % top.ndim] + (1,) + top.shape[axis % top.ndim + 1:])
    return (top == targ).any(dim=axis).float().mean()


def accuracy_multi(inp: torch.Tensor, targ: torch.Tensor, thresh: float = 0.5, sigmoid: bool = True) -> torch.Tensor:
    """Multi-label accuracy: fraction of (item, label) decisions ``sigmoid(inp) > thresh`` equal to the multi-hot target."""
    inp, targ = _flatten_check(inp, targ, "accuracy_multi")
    if sigmoid:
        inp = inp.sigmoid()
    return ((inp > thresh) == targ.bool()).float().mean()


# -- classification: from an accumulated confusion matrix

class _ConfusionMetric(Metric):
    """Accumulates the confusion matrix (rows: targets, columns: predictions) on the device."""

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis
        self.reset()

    def reset(self) -> None:
        """Empty the confusion matrix."""
        self.cm: torch.Tensor | None = None
        self.n_bad: torch.Tensor | int = 0

    def update(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        """Add this batch's (target, decision) counts."""
        dec, targ, n_classes = _decisions(pred.detach(), targ.detach(), self.axis, self.name)
        if not n_classes:  # integer decisions: classes seen so far (one sync, only for this rare input)
            n_classes = int(max(dec.max(), targ.max())) + 1 if dec.numel() else 1
        if self.cm is None:
            self.cm = torch.zeros(n_classes, n_classes, dtype=torch.long, device=dec.device)
        elif n_classes > self.cm.shape[0]:
            self.cm = F.pad(self.cm, (0, n_classes - self.cm.shape[0], 0, n_classes - self.cm.shape[0]))
        c = self.cm.shape[0]
        ok = (targ >= 0) & (targ < c)
        self.n_bad = (~ok).sum() + self.n_bad
        idx = targ.clamp(0, c - 1) * c + dec.clamp(0, c - 1)
        self.cm.view(-1).index_add_(0, idx, ok.long())

    def _counts(self) -> torch.Tensor | None:
        """The confusion matrix as float64 on the CPU, or None when nothing was seen."""
        if self.cm is None:
            return None
        if int(self.n_bad):
            raise ValueError(f"{self.name}: {int(self.n_bad)} targets are outside 0..{self.cm.shape[0] - 1}, the "
                             f"classes the model predicts; check the model's number of outputs (ignored/void "
                             f"labels such as -100 or 255 are not supported by this metric).")
        return self.cm.double().cpu()


class FBeta(_ConfusionMetric):
    """F-beta score over the whole set: ``(1+b^2)tp / ((1+b^2)tp + b^2 fn + fp)``, averaged as scikit-learn does.

    ``average``: ``'binary'`` (the ``pos_label`` class only; the labels seen must be at most two), ``'macro'``
    (plain mean over the labels), ``'micro'`` (from the summed counts), ``'weighted'`` (mean weighted by
    each label's number of targets). ``labels`` picks the classes averaged (default: every class seen
    in the targets or the predictions).
    """

    _score = "fbeta"

    def __init__(self, beta: float = 1.0, axis: int = -1, labels: Sequence[int] | None = None, pos_label: int = 1,
                 average: str = "binary") -> None:
        if average not in _AVERAGES:
            raise ValueError(f"{type(self).__name__}(average={average!r}): use one of {_AVERAGES}.")
        self.beta, self.labels, self.pos_label, self.average = beta, labels, pos_label, average
        super().__init__(axis)

    @property
    def name(self) -> str:
        """scikit-learn's function name, as fastai shows it."""
        return f"{self._score}_score"

    def _selected(self, tp: torch.Tensor, pred_sum: torch.Tensor, true_sum: torch.Tensor) -> list[int]:
        present = [i for i in range(len(tp)) if pred_sum[i] + true_sum[i] > 0]
        if self.average != "binary":
            return list(self.labels) if self.labels is not None else present
        if len(present) > 2:
            raise ValueError(f"{self.name}: the targets and predictions hold {len(present)} classes but "
                             f"average='binary' needs two: pass average='macro', 'micro' or 'weighted'.")
        if self.pos_label not in present and len(present) >= 2:
            raise ValueError(f"{self.name}: pos_label={self.pos_label} is not a valid label; it should be one of "
                             f"{present}.")
        return [self.pos_label]

    def _per_label(self, tp: torch.Tensor, pred_sum: torch.Tensor, true_sum: torch.Tensor) -> torch.Tensor:
        b2 = self.beta ** 2
        if self._score == "precision":
            return _safe_div(tp, pred_sum)
        if self._score == "recall":
            return _safe_div(tp, true_sum)
        return _safe_div((1 + b2) * tp, b2 * true_sum + pred_sum)  # = (1+b2)tp / ((1+b2)tp + b2 fn + fp)

    @property
    def value(self) -> float | None:
        """The averaged score over everything accumulated."""
        cm = self._counts()
        if cm is None:
            return None
        tp, pred_sum, true_sum = cm.diagonal(), cm.sum(0), cm.sum(1)
        sel = self._selected(tp, pred_sum, true_sum)
        if not sel:
            return None
        idx = torch.tensor(sel, dtype=torch.long)
        inside = idx < len(tp)  # asked-for labels the model can't predict have all counts 0
        pick = lambda t: torch.where(inside, t[idx.clamp(max=len(tp) - 1)], torch.zeros(len(sel), dtype=t.dtype))
        tp, pred_sum, true_sum = pick(tp), pick(pred_sum), pick(true_sum)
        if self.average == "micro":
            return float(self._per_label(tp.sum(), pred_sum.sum(), true_sum.sum()))
        scores = self._per_label(tp, pred_sum, true_sum)
        if self.average == "weighted":
            return float((scores * true_sum).sum() / true_sum.sum()) if true_sum.sum() > 0 else 0.0
        return float(scores.mean())


class F1Score(FBeta):
    """F1 score (harmonic mean of precision and recall) over the whole set; see ``FBeta`` for ``average``."""

    _score = "f1"

    def __init__(self, axis: int = -1, labels: Sequence[int] | None = None, pos_label: int = 1,
                 average: str = "binary") -> None:
        super().__init__(beta=1.0, axis=axis, labels=labels, pos_label=pos_label, average=average)


class Precision(FBeta):
    """Precision ``tp / (tp + fp)`` over the whole set; see ``FBeta`` for ``average``."""

    _score = "precision"

    def __init__(self, axis: int = -1, labels: Sequence[int] | None = None, pos_label: int = 1,
                 average: str = "binary") -> None:
        super().__init__(beta=1.0, axis=axis, labels=labels, pos_label=pos_label, average=average)


class Recall(FBeta):
    """Recall ``tp / (tp + fn)`` over the whole set; see ``FBeta`` for ``average``."""

    _score = "recall"

    def __init__(self, axis: int = -1, labels: Sequence[int] | None = None, pos_label: int = 1,
                 average: str = "binary") -> None:
        super().__init__(beta=1.0, axis=axis, labels=labels, pos_label=pos_label, average=average)


class BalancedAccuracy(_ConfusionMetric):
    """Mean recall over the classes present in the targets (scikit-learn's ``balanced_accuracy_score``)."""

    @property
    def name(self) -> str:
        """scikit-learn's function name."""
        return "balanced_accuracy_score"

    @property
    def value(self) -> float | None:
        """Mean per-class recall."""
        cm = self._counts()
        if cm is None:
            return None
        true_sum = cm.sum(1)
        present = true_sum > 0
        return float((cm.diagonal()[present] / true_sum[present]).mean()) if present.any() else None


class MatthewsCorrCoef(_ConfusionMetric):
    """Matthews correlation coefficient, multi-class form (scikit-learn's ``matthews_corrcoef``)."""

    @property
    def name(self) -> str:
        """scikit-learn's function name."""
        return "matthews_corrcoef"

    @property
    def value(self) -> float | None:
        """``cov(y, p) / sqrt(cov(y, y) cov(p, p))`` from the confusion matrix; 0 when undefined."""
        cm = self._counts()
        if cm is None:
            return None
        t_sum, p_sum = cm.sum(1), cm.sum(0)
        n, correct = cm.sum(), cm.trace()
        cov_yp = correct * n - t_sum @ p_sum
        cov_pp = n * n - p_sum @ p_sum
        cov_yy = n * n - t_sum @ t_sum
        return 0.0 if cov_yy * cov_pp == 0 else float(cov_yp / torch.sqrt(cov_yy * cov_pp))


# -- ROC AUC

def _average_ranks(s: torch.Tensor) -> torch.Tensor:
    """1-based ranks of ``s``, tied values sharing their average rank."""
    sorted_s, order = s.sort()
    _, inverse, counts = torch.unique_consecutive(sorted_s, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).to(torch.float64)
    group_rank = ends - (counts.to(torch.float64) - 1) / 2
    ranks = torch.empty_like(s, dtype=torch.float64)
    ranks[order] = group_rank[inverse]
    return ranks


def _binary_auc(y: torch.Tensor, score: torch.Tensor, what: str) -> float:
    """Exact ROC AUC (Mann-Whitney U with tied scores counted half) of boolean ``y`` against ``score``."""
    n_pos = int(y.sum())
    n_neg = y.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC AUC is undefined for {what}: only one class is present in the targets (it needs "
                         f"positives and negatives); validate on a set holding both.")
    ranks = _average_ranks(score.to(torch.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class RocAuc(Metric):
    """Area under the ROC curve over the whole set, exact (from ranks, ties counted half).

    - scores ``(n, 2)`` (or one logit per item): binary AUC of the positive class (fastai's ``RocAuc``
      raises here; learnkit computes it);
    - scores ``(n, c)`` with integer targets: one-vs-rest on softmax probabilities, averaged by
      ``average`` (``'macro'``, ``'weighted'`` by prevalence, or ``'micro'``); every class must occur;
    - multi-hot targets of the scores' shape: one AUC per label (multi-label), averaged likewise.
    """

    def __init__(self, axis: int = -1, average: str = "macro", multi_class: str = "ovr") -> None:
        if average not in ("macro", "weighted", "micro"):
            raise ValueError(f"{type(self).__name__}(average={average!r}): use 'macro', 'weighted' or 'micro'.")
        if multi_class != "ovr":
            raise ValueError(f"{type(self).__name__}(multi_class={multi_class!r}): only one-vs-rest ('ovr') is "
                             f"supported.")
        self.axis, self.average, self.multi_class = axis, average, multi_class
        self.reset()

    @property
    def name(self) -> str:
        """scikit-learn's function name, as fastai shows it."""
        return "roc_auc_score"

    def reset(self) -> None:
        """Drop the stored scores."""
        self.scores: list[torch.Tensor] = []
        self.targs: list[torch.Tensor] = []

    def update(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        """Store this batch's scores (class axis last) and targets."""
        pred, targ = pred.detach(), targ.detach()
        if pred.ndim == targ.ndim + 1:
            pred = pred.movedim(self.axis, -1)
            pred = pred.reshape(-1, pred.shape[-1])
            targ = targ.reshape(-1)
        elif pred.shape == targ.shape and pred.ndim >= 2 and pred.shape[-1] > 1:  # multi-label
            pred, targ = pred.reshape(-1, pred.shape[-1]), targ.reshape(-1, targ.shape[-1])
        else:  # one logit per item
            pred, targ = _flatten_check(pred, targ, self.name)
        self.scores.append(pred)
        self.targs.append(targ)

    def _check_classes(self, n_cols: int) -> None:
        """Hook for subclasses restricting the number of classes."""

    @property
    def value(self) -> float | None:
        """The averaged AUC over everything stored."""
        if not self.scores:
            return None
        s, y = torch.cat(self.scores).cpu(), torch.cat(self.targs).cpu()
        if s.ndim == 1:
            return _binary_auc(y.round().long() == 1, s, "the positive class")
        self._check_classes(s.shape[1])
        if s.shape == y.shape:  # multi-label: each column on its own, raw logits (AUC only needs their order)
            onehot = y.round().long() == 1
            what = "label {}"
        else:
            if s.shape[1] == 2:
                return _binary_auc(y.long() == 1, F.softmax(s.double(), dim=1)[:, 1], "class 1")
            onehot = F.one_hot(y.long(), s.shape[1]).bool()
            s = F.softmax(s.double(), dim=1)
            missing = [c for c in range(s.shape[1]) if not onehot[:, c].any()]
            if missing:
                raise ValueError(f"{self.name}: class(es) {missing} never occur in the validation targets, so "
                                 f"their one-vs-rest AUC is undefined; validate on a set holding every class.")
            what = "class {} (one-vs-rest)"
        if self.average == "micro":
            return _binary_auc(onehot.reshape(-1), s.reshape(-1), "the flattened labels")
        aucs = torch.tensor([_binary_auc(onehot[:, c], s[:, c], what.format(c)) for c in range(s.shape[1])],
                            dtype=torch.float64)
        if self.average == "weighted":
            w = onehot.sum(0).double()
            return float((aucs * w).sum() / w.sum())
        return float(aucs.mean())


class RocAucBinary(RocAuc):
    """ROC AUC for a binary problem: scores ``(n, 2)`` (softmax of class 1) or one logit per item."""

    def __init__(self, axis: int = -1, average: str = "macro") -> None:
        super().__init__(axis=axis, average=average)

    def _check_classes(self, n_cols: int) -> None:
        if n_cols != 2:
            raise ValueError(f"RocAucBinary needs two classes but the predictions have {n_cols} columns: use "
                             f"RocAuc() for multi-class or multi-label problems.")


# -- regression

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


# -- multi-label scores (fastai's skm_to_fastai wrappers)

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


# -- metrics read from the loss (fastai's AvgLoss, Perplexity, LossMetric)

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


class Perplexity(AvgLoss):
    """Perplexity of a language model: ``exp`` of the mean cross-entropy loss over the set (fastai's)."""

    @property
    def name(self) -> str:
        """fastai's column name."""
        return "perplexity"

    @property
    def value(self) -> float | None:
        """``exp(mean loss)``."""
        return float(torch.exp(torch.as_tensor(float(self.total) / self.count))) if self.count else None


perplexity = Perplexity()


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


# -- segmentation

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


# functions whose metric is not a per-item mean -> the Metric computing them exactly over the set
_EXACT: dict[Callable, Callable[[Callable], Metric]] = {
    rmse: AccumMetric,
    exp_rmspe: AccumMetric,
    foreground_acc: _foreground_metric,
}

