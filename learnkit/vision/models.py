"""Small layers that vision heads are made of: concat pooling and a sigmoid squashed into a range.

They are plain ``nn.Module``s with fastai's names, so a head printed here reads like fastai's.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["AdaptiveConcatPool2d", "SigmoidRange", "sigmoid_range"]


class AdaptiveConcatPool2d(nn.Module):
    """Adaptive max pooling and adaptive average pooling, concatenated on the channels (max first, as fastai)."""

    def __init__(self, size: int | Sequence[int] | None = None) -> None:
        super().__init__()
        self.size = size or 1
        self.ap = nn.AdaptiveAvgPool2d(self.size)
        self.mp = nn.AdaptiveMaxPool2d(self.size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 2C, size, size)."""
        return torch.cat([self.mp(x), self.ap(x)], 1)


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
