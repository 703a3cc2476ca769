"""Single-label classification metrics: per-item means (accuracy...) and scores from an accumulated confusion
matrix (F1, precision, recall, balanced accuracy, MCC) or from ranks (ROC AUC)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .base import Metric, _flatten_check

__all__ = ["accuracy", "error_rate", "top_k_accuracy", "FBeta", "F1Score", "Precision", "Recall", "BalancedAccuracy",
           "MatthewsCorrCoef", "RocAuc", "RocAucBinary"]

_AVERAGES = ("binary", "macro", "micro", "weighted")


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
