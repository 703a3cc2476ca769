"""Small layers shared by every domain (layer 0: plain torch).

``sigmoid_range``/``SigmoidRange`` squash outputs into ``y_range`` (vision heads, tabular and
collaborative-filtering models); ``LinBnDrop`` is the MLP block of vision heads and tabular models;
fastai's names.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["SigmoidRange", "sigmoid_range", "batchnorm1d", "LinBnDrop"]


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


def batchnorm1d(nf: int) -> nn.BatchNorm1d:
    """``nn.BatchNorm1d`` with fastai's init: weight 1, bias 1e-3."""
    bn = nn.BatchNorm1d(nf)
    with torch.no_grad():
        bn.weight.fill_(1.0)
        bn.bias.fill_(1e-3)
    return bn


class LinBnDrop(nn.Sequential):
    """BatchNorm1d, dropout, linear (no bias after a BN) and activation in fastai's order (``lin_first``: linear first)."""

    def __init__(self, n_in: int, n_out: int, bn: bool = True, p: float = 0.0, act: nn.Module | None = None,
                 lin_first: bool = False) -> None:
        layers: list[nn.Module] = [batchnorm1d(n_out if lin_first else n_in)] if bn else []
        if p != 0:
            layers.append(nn.Dropout(p))
        lin: list[nn.Module] = [nn.Linear(n_in, n_out, bias=not bn)]
        if act is not None:
            lin.append(act)
        super().__init__(*(lin + layers if lin_first else layers + lin))
