"""Loss functions that flatten their inputs, and know how to turn outputs into probabilities and decisions.

Every loss here has ``activation(out)`` (logits -> probabilities, used by ``get_preds``) and
``decodes(out)`` (probabilities -> the decision, used by ``predict``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CrossEntropyLossFlat", "BCEWithLogitsLossFlat", "MSELossFlat", "loss_for_kind"]


class CrossEntropyLossFlat(nn.Module):
    """Cross-entropy over ``axis`` with all other dimensions flattened (classification, segmentation)."""

    def __init__(self, axis: int = -1, weight: torch.Tensor | None = None, ignore_index: int = -100,
                 reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.axis, self.ignore_index, self.reduction, self.label_smoothing = axis, ignore_index, reduction, label_smoothing
        self.register_buffer("weight", weight)

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        """Loss of logits ``inp`` against integer targets ``targ``."""
        if self.axis != -1 and inp.ndim > 2:
            inp = inp.transpose(self.axis, -1).contiguous()
        inp = inp.reshape(-1, inp.shape[-1])
        return F.cross_entropy(inp, targ.reshape(-1).long(), weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)

    def activation(self, out: torch.Tensor) -> torch.Tensor:
        """Softmax over the class axis."""
        return F.softmax(out, dim=self.axis)

    def decodes(self, out: torch.Tensor) -> torch.Tensor:
        """Argmax over the class axis."""
        return out.argmax(dim=self.axis)


class BCEWithLogitsLossFlat(nn.Module):
    """Binary cross-entropy on logits, for multi-label targets; decodes with a threshold."""

    def __init__(self, axis: int = -1, weight: torch.Tensor | None = None, reduction: str = "mean",
                 pos_weight: torch.Tensor | None = None, thresh: float = 0.5) -> None:
        super().__init__()
        self.axis, self.reduction, self.thresh = axis, reduction, thresh
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        """Loss of logits against float (multi-hot) targets of the same shape."""
        return F.binary_cross_entropy_with_logits(inp, targ.float().view_as(inp), weight=self.weight,
                                                  pos_weight=self.pos_weight, reduction=self.reduction)

    def activation(self, out: torch.Tensor) -> torch.Tensor:
        """Sigmoid."""
        return torch.sigmoid(out)

    def decodes(self, out: torch.Tensor) -> torch.Tensor:
        """Probabilities above ``thresh``."""
        return out > self.thresh


class MSELossFlat(nn.Module):
    """Mean squared error with prediction and target flattened to the same shape."""

    def __init__(self, axis: int = -1, reduction: str = "mean") -> None:
        super().__init__()
        self.axis, self.reduction = axis, reduction

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        """Squared error, with a clear error when sizes differ."""
        if inp.numel() != targ.numel():
            raise ValueError(f"MSELossFlat: prediction shape {tuple(inp.shape)} and target shape {tuple(targ.shape)} "
                             f"hold different numbers of values; check the model's n_out.")
        return F.mse_loss(inp.reshape(-1).float(), targ.reshape(-1).float(), reduction=self.reduction)

    def activation(self, out: torch.Tensor) -> torch.Tensor:
        """Identity."""
        return out

    def decodes(self, out: torch.Tensor) -> torch.Tensor:
        """Identity."""
        return out


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
