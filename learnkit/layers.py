"""Small layers shared by every domain (layer 0: plain torch).

``sigmoid_range``/``SigmoidRange`` squash outputs into ``y_range`` (vision heads, tabular and
collaborative-filtering models); fastai's names.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["SigmoidRange", "sigmoid_range"]


def sigmoid_range(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Sigmoid of ``x`` scaled to the open interval ``(low, high)``."""
    return torch.sigmoid(x) * (high - low) + low


class SigmoidRange(nn.Module):
    """Layer form of ``sigmoid_range``: squashes its input into ``(low, high)`` (fastai's ``y_range``)."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        if not high > low:
            raise ValueError(f"SigmoidRange(low={low}, high={high}): high must be greater than low "
                             f"(y_range is (low, high), e.g. y_range=(0.5, 5.5)).")
        self.low, self.high = float(low), float(high)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Squash ``x`` into ``(low, high)``."""
        return sigmoid_range(x, self.low, self.high)

    def extra_repr(self) -> str:
        return f"low={self.low}, high={self.high}"
