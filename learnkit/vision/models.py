"""Small layers that vision heads are made of: concat pooling and a sigmoid squashed into a range.

They are plain ``nn.Module``s with fastai's names, so a head printed here reads like fastai's.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..layers import SigmoidRange, sigmoid_range

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
