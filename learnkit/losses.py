"""Loss functions that flatten their inputs, and know how to turn outputs into probabilities and decisions.

Every loss here is an ``nn.Module`` with ``activation(out)`` (logits -> probabilities, used by
``get_preds``) and ``decodes(out)`` (probabilities -> the decision, used by ``predict``). The ``*Flat``
losses accept outputs with extra dimensions (segmentation, sequences): the class axis is ``axis`` and
every other dimension is flattened into the batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_loss

__all__ = [
    "CrossEntropyLossFlat", "BCEWithLogitsLossFlat", "BCELossFlat", "MSELossFlat", "L1LossFlat",
    "LabelSmoothingCrossEntropy",
    "LabelSmoothingCrossEntropyFlat", "FocalLoss", "FocalLossFlat", "DiceLoss", "loss_for_kind",
]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(cls_name: str, reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{cls_name}(reduction={reduction!r}): use one of {_REDUCTIONS}.")
    return reduction


def _flatten_classes(inp: torch.Tensor, targ: torch.Tensor, axis: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits with the class axis last, flattened to ``(n, n_classes)``, and integer targets flattened to ``(n,)``."""
    if inp.ndim > 2 and axis not in (-1, inp.ndim - 1):
        inp = inp.movedim(axis, -1)
    inp = inp.reshape(-1, inp.shape[-1])
    targ = targ.reshape(-1)
    if targ.shape[0] != inp.shape[0]:
        raise ValueError(f"{name}: {inp.shape[0]} predictions (output {tuple(inp.shape)} with classes on axis {axis}) "
                         f"but {targ.shape[0]} targets: targets must be class indices, one per prediction "
                         f"(not one-hot); check the model's output shape and the loss's axis.")
    return inp, targ.long()


class _Loss(nn.Module):
    """Base of learnkit's losses: ``get_config()`` gives the JSON-safe constructor arguments export stores."""

    _config: tuple[str, ...] = ()

    def get_config(self) -> dict:
        """Constructor keyword arguments that rebuild this loss for inference (class weights are not kept)."""
        return {k: getattr(self, k) for k in self._config}


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


@register_loss
class CrossEntropyLossFlat(_Loss):
    """Cross-entropy over ``axis`` with all other dimensions flattened (classification, segmentation)."""

    _config = ("axis", "ignore_index", "reduction", "label_smoothing")

    def __init__(self, axis: int = -1, weight: torch.Tensor | None = None, ignore_index: int = -100,
                 reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.axis, self.ignore_index, self.label_smoothing = axis, ignore_index, label_smoothing
        self.reduction = _check_reduction(type(self).__name__, reduction)
        self.register_buffer("weight", weight)

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        """Loss of logits ``inp`` against integer targets ``targ``."""
        inp, targ = _flatten_classes(inp, targ, self.axis, type(self).__name__)
        return F.cross_entropy(inp, targ, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)

    def activation(self, out: torch.Tensor) -> torch.Tensor:
        """Softmax over the class axis."""
        return F.softmax(out, dim=self.axis)

    def decodes(self, out: torch.Tensor) -> torch.Tensor:
        """Argmax over the class axis."""
        return out.argmax(dim=self.axis)


@register_loss
class BCEWithLogitsLossFlat(_Loss):
    """Binary cross-entropy on logits, for multi-label targets; decodes with a threshold."""

    _config = ("axis", "reduction", "thresh")

    def __init__(self, axis: int = -1, weight: torch.Tensor | None = None, reduction: str = "mean",
                 pos_weight: torch.Tensor | None = None, thresh: float = 0.5) -> None:
        super().__init__()
        self.axis, self.thresh = axis, thresh
        self.reduction = _check_reduction(type(self).__name__, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        """Loss of logits against float (multi-hot) targets of the same shape."""
        if inp.numel() != targ.numel():
            raise ValueError(f"BCEWithLogitsLossFlat: output shape {tuple(inp.shape)} and target shape "
                             f"{tuple(targ.shape)} hold different numbers of values; targets must be multi-hot "
                             f"(one 0/1 per output), check the model's n_out.")
        return F.binary_cross_entropy_with_logits(inp, targ.float().view_as(inp), weight=self.weight,
                                                  pos_weight=self.pos_weight, reduction=self.reduction)

    def activation(self, out: torch.Tensor) -> torch.Tensor:
        """Sigmoid."""
        return torch.sigmoid(out)

    def decodes(self, out: torch.Tensor) -> torch.Tensor:
        """Probabilities above ``thresh``."""
        return out > self.thresh


@register_loss
class BCELossFlat(_Loss):
    """``nn.BCELoss`` on probabilities with input and target flattened (fastai's); integer targets are made float.

    The model must end with a sigmoid (``activation`` is the identity); ``decodes`` thresholds at ``thresh``.
    """

    _config = ("axis", "reduction", "floatify", "thresh")

    def __init__(self, axis: int = -1, weight: torch.Tensor | None = None, reduction: str = "mean",
                 floatify: bool = True, thresh: float = 0.5) -> None:
        super().__init__()
        self.axis, self.floatify, self.thresh = axis, floatify, thresh
        self.reduction = _check_reduction(type(self).__name__, reduction)
        self.register_buffer("weight", weight)

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy of probabilities ``inp`` against 0/1 targets with as many values."""
        if inp.numel() != targ.numel():
            raise ValueError(f"BCELossFlat: output shape {tuple(inp.shape)} and target shape {tuple(targ.shape)} hold "
                             f"different numbers of values; targets must hold one 0/1 per output.")
        if inp.ndim > 1 and targ.ndim == inp.ndim:
            inp, targ = inp.transpose(self.axis, -1), targ.transpose(self.axis, -1)
        targ = targ.reshape(-1)
        return F.binary_cross_entropy(inp.reshape(-1), targ.float() if self.floatify else targ, weight=self.weight,
                                      reduction=self.reduction)

    def activation(self, out: torch.Tensor) -> torch.Tensor:
        """Identity: the outputs are already probabilities."""
        return out

    def decodes(self, out: torch.Tensor) -> torch.Tensor:
        """Probabilities above ``thresh``."""
        return out > self.thresh


class _RegressionLossFlat(_Loss):
    """Shared body of the flattened regression losses: check sizes, flatten, compare as floats."""

    _config = ("axis", "reduction")

    def __init__(self, axis: int = -1, reduction: str = "mean") -> None:
        super().__init__()
        self.axis = axis
        self.reduction = _check_reduction(type(self).__name__, reduction)

    def _flat(self, inp: torch.Tensor, targ: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if inp.numel() != targ.numel():
            raise ValueError(f"{type(self).__name__}: prediction shape {tuple(inp.shape)} and target shape "
                             f"{tuple(targ.shape)} hold different numbers of values; check the model's n_out.")
        return inp.reshape(-1).float(), targ.reshape(-1).float()

    def activation(self, out: torch.Tensor) -> torch.Tensor:
        """Identity."""
        return out

    def decodes(self, out: torch.Tensor) -> torch.Tensor:
        """Identity."""
        return out


@register_loss
class MSELossFlat(_RegressionLossFlat):
    """Mean squared error with prediction and target flattened to the same shape."""

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        """Squared error, with a clear error when sizes differ."""
        return F.mse_loss(*self._flat(inp, targ), reduction=self.reduction)


@register_loss
class L1LossFlat(_RegressionLossFlat):
    """Mean absolute error with prediction and target flattened to the same shape."""

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        """Absolute error, with a clear error when sizes differ."""
        return F.l1_loss(*self._flat(inp, targ), reduction=self.reduction)


@register_loss
class LabelSmoothingCrossEntropy(_Loss):
    """Cross-entropy against targets smoothed by ``eps`` (fastai's formula); classes on dimension 1.

    ``loss = eps/c * sum_j(-log p_j) + (1 - eps) * nll(log p, target)``, reduced by ``reduction``
    (``'mean'`` averages the first term over items and uses ``nll``'s weighted mean for the second).
    """

    _config = ("eps", "reduction")

    def __init__(self, eps: float = 0.1, weight: torch.Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__()
        self.eps = eps
        self.reduction = _check_reduction(type(self).__name__, reduction)
        self.register_buffer("weight", weight)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Smoothed cross-entropy of logits ``output`` (n, c, ...) against integer ``target`` (n, ...)."""
        c = output.shape[1]
        log_preds = F.log_softmax(output, dim=1)
        if self.reduction == "sum":
            smooth = -log_preds.sum()
        else:
            smooth = -log_preds.sum(dim=1)
            if self.reduction == "mean":
                smooth = smooth.mean()
        nll = F.nll_loss(log_preds, target.long(), weight=self.weight, reduction=self.reduction)
        return smooth * self.eps / c + (1 - self.eps) * nll

    def activation(self, out: torch.Tensor) -> torch.Tensor:
        """Softmax over the classes."""
        return F.softmax(out, dim=1)

    def decodes(self, out: torch.Tensor) -> torch.Tensor:
        """Argmax over the classes."""
        return out.argmax(dim=1)


class _FlatClassLoss(_Loss):
    """Wraps a per-item classification loss ``self.func`` (classes on dim 1) to take classes on ``axis``."""

    axis: int
    func: nn.Module

    @property
    def reduction(self) -> str:
        """The reduction of the wrapped loss (``get_preds(with_loss=True)`` sets it to ``'none'``)."""
        return self.func.reduction

    @reduction.setter
    def reduction(self, value: str) -> None:
        self.func.reduction = _check_reduction(type(self).__name__, value)

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        """The wrapped loss of logits against integer targets, classes on ``axis``."""
        return self.func(*_flatten_classes(inp, targ, self.axis, type(self).__name__))

    def activation(self, out: torch.Tensor) -> torch.Tensor:
        """Softmax over the class axis."""
        return F.softmax(out, dim=self.axis)

    def decodes(self, out: torch.Tensor) -> torch.Tensor:
        """Argmax over the class axis."""
        return out.argmax(dim=self.axis)


@register_loss
class LabelSmoothingCrossEntropyFlat(_FlatClassLoss):
    """``LabelSmoothingCrossEntropy`` over ``axis`` with every other dimension flattened."""

    _config = ("eps", "reduction", "axis")

    def __init__(self, eps: float = 0.1, weight: torch.Tensor | None = None, reduction: str = "mean",
                 axis: int = -1) -> None:
        super().__init__()
        self.axis = axis
        self.func = LabelSmoothingCrossEntropy(eps=eps, weight=weight, reduction=reduction)

    @property
    def eps(self) -> float:
        """The smoothing amount."""
        return self.func.eps


@register_loss
class FocalLoss(_Loss):
    """Focal loss ``w_y * (1 - p_y)**gamma * -log(p_y)`` (Lin et al.) on logits, classes on dimension 1.

    ``p_y`` is the softmax probability of the target class. Unlike fastai, a class ``weight`` scales the
    loss but does not distort ``p_y`` (fastai computes ``p_y`` from the weighted cross-entropy).
    ``'mean'`` is the plain mean over items.
    """

    _config = ("gamma", "reduction")

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__()
        self.gamma = gamma
        self.reduction = _check_reduction(type(self).__name__, reduction)
        self.register_buffer("weight", weight)

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        """Focal loss of logits ``inp`` (n, c, ...) against integer ``targ`` (n, ...)."""
        targ = targ.long()
        logp_t = F.log_softmax(inp, dim=1).gather(1, targ.unsqueeze(1)).squeeze(1)
        loss = -(1 - logp_t.exp()) ** self.gamma * logp_t
        if self.weight is not None:
            loss = loss * self.weight[targ]
        return _reduce(loss, self.reduction)

    def activation(self, out: torch.Tensor) -> torch.Tensor:
        """Softmax over the classes."""
        return F.softmax(out, dim=1)

    def decodes(self, out: torch.Tensor) -> torch.Tensor:
        """Argmax over the classes."""
        return out.argmax(dim=1)


@register_loss
class FocalLossFlat(_FlatClassLoss):
    """``FocalLoss`` over ``axis`` with every other dimension flattened (down-weights easy examples)."""

    _config = ("gamma", "axis", "reduction")

    def __init__(self, gamma: float = 2.0, axis: int = -1, weight: torch.Tensor | None = None,
                 reduction: str = "mean") -> None:
        super().__init__()
        self.axis = axis
        self.func = FocalLoss(gamma=gamma, weight=weight, reduction=reduction)

    @property
    def gamma(self) -> float:
        """The focusing parameter (0 gives plain cross-entropy)."""
        return self.func.gamma


@register_loss
class DiceLoss(_Loss):
    """``1 - dice`` per item and class for segmentation, from softmax probabilities and integer masks (fastai's formula).

    ``dice = (2 * sum(p * t) + smooth) / (sum(p + t) + smooth)`` over the spatial dimensions, where ``t`` is
    the one-hot target (``sum(p**2 + t)`` in the union when ``square_in_union``); the (items, classes)
    losses are then reduced by ``reduction`` (``'sum'`` by default, as fastai).
    """

    _config = ("axis", "smooth", "reduction", "square_in_union")

    def __init__(self, axis: int = 1, smooth: float = 1e-6, reduction: str = "sum",
                 square_in_union: bool = False) -> None:
        super().__init__()
        self.axis, self.smooth, self.square_in_union = axis, smooth, square_in_union
        self.reduction = _check_reduction(type(self).__name__, reduction)

    def forward(self, pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        """Dice loss of logits ``pred`` (classes on ``axis``) against integer masks ``targ`` (``pred`` without that axis)."""
        axis = self.axis % pred.ndim
        expected = pred.shape[:axis] + pred.shape[axis + 1:]
        if targ.shape != expected:
            raise ValueError(f"DiceLoss: output shape {tuple(pred.shape)} (classes on axis {self.axis}) needs integer "
                             f"targets of shape {tuple(expected)}, got {tuple(targ.shape)}; targets must be class "
                             f"indices, not one-hot.")
        probs = self.activation(pred).movedim(axis, 1)
        onehot = F.one_hot(targ.long(), probs.shape[1]).movedim(-1, 1).to(probs.dtype)
        sum_dims = list(range(2, probs.ndim))
        inter = (probs * onehot).sum(dim=sum_dims)
        union = ((probs ** 2 if self.square_in_union else probs) + onehot).sum(dim=sum_dims)
        loss = 1 - (2.0 * inter + self.smooth) / (union + self.smooth)
        return _reduce(loss, self.reduction)

    def activation(self, out: torch.Tensor) -> torch.Tensor:
        """Softmax over the class axis."""
        return F.softmax(out, dim=self.axis)

    def decodes(self, out: torch.Tensor) -> torch.Tensor:
        """Argmax over the class axis."""
        return out.argmax(dim=self.axis)


def loss_for_kind(kind: str) -> nn.Module:
    """The default loss for a target block's kind (what ``Learner`` uses when ``loss_func`` is None)."""
    table = {
        "category": lambda: CrossEntropyLossFlat(),
        "multicategory": lambda: BCEWithLogitsLossFlat(),
        "regression": lambda: MSELossFlat(),
        "mask": lambda: CrossEntropyLossFlat(axis=1),
    }
    if kind not in table:
        raise ValueError(f"No default loss for a target of kind {kind!r}: pass loss_func= to the Learner.")
    return table[kind]()
