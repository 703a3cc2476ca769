"""Small layers shared by every domain (layer 0: plain torch).

``sigmoid_range``/``SigmoidRange`` squash outputs into ``y_range`` (vision heads, tabular and
collaborative-filtering models); ``LinBnDrop`` is the MLP block of vision heads and tabular models;
fastai's names.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["SigmoidRange", "sigmoid_range", "batchnorm1d", "LinBnDrop", "Identity", "Lambda", "Flatten", "View",
           "ResizeBatch", "SequentialEx", "MergeLayer", "in_channels", "Embedding", "trunc_normal_",
           "Module", "noop"]


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


class Identity(nn.Module):
    """Return the input unchanged (fastai's ``Identity``)."""

    def forward(self, x: Any) -> Any:
        """``x`` itself."""
        return x


class Lambda(nn.Module):
    """A layer from a function ``func`` (pass a module-level function, not a lambda, to keep the model picklable)."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        super().__init__()
        self.func = func

    def forward(self, x: Any) -> Any:
        """``func(x)``."""
        return self.func(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.func})"


class Flatten(nn.Module):
    """Flatten to ``(bs, -1)``, or to one dimension with ``full=True`` (fastai's)."""

    def __init__(self, full: bool = False) -> None:
        super().__init__()
        self.full = full

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` reshaped to ``(bs, -1)`` (``(-1,)`` when ``full``)."""
        return x.reshape(-1) if self.full else x.reshape(x.size(0), -1)

    def extra_repr(self) -> str:
        return f"full={self.full}"


class View(nn.Module):
    """Reshape ``x`` to ``size`` (fastai's ``View(*size)``)."""

    def __init__(self, *size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x.view(size)``."""
        return x.view(self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class ResizeBatch(View):
    """Reshape ``x`` to ``size``, keeping the batch dimension (fastai's ``ResizeBatch(*size)``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x.view((bs, *size))``."""
        return x.view((x.size(0), *self.size))


class MergeLayer(nn.Module):
    """Add (or concatenate on dim 1 when ``dense``) the input of the enclosing ``SequentialEx`` to ``x``.

    Inside a ``SequentialEx`` the block's input comes as ``orig``; alone, ``x.orig`` is read as fastai does.
    """

    def __init__(self, dense: bool = False) -> None:
        super().__init__()
        self.dense = dense

    def forward(self, x: torch.Tensor, orig: torch.Tensor | None = None) -> torch.Tensor:
        """``x + orig`` (``cat([x, orig], 1)`` when ``dense``)."""
        if orig is None:
            orig = getattr(x, "orig", None)
        if orig is None:
            raise ValueError("MergeLayer needs the block's input: use it inside a SequentialEx, or set x.orig.")
        return torch.cat([x, orig], dim=1) if self.dense else x + orig

    def extra_repr(self) -> str:
        return f"dense={self.dense}"


class SequentialEx(nn.Module):
    """Like ``nn.Sequential`` with ``ModuleList`` semantics; its ``MergeLayer``s get the block's input (fastai's)."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the layers in order, handing ``x`` to each ``MergeLayer``."""
        res = x
        for layer in self.layers:
            res = layer(res, x) if isinstance(layer, MergeLayer) else layer(res)
        return res

    def __getitem__(self, i: int) -> nn.Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def append(self, layer: nn.Module) -> nn.ModuleList:
        """Add ``layer`` at the end."""
        return self.layers.append(layer)

    def extend(self, layers: list[nn.Module]) -> nn.ModuleList:
        """Add ``layers`` at the end."""
        return self.layers.extend(layers)

    def insert(self, i: int, layer: nn.Module) -> None:
        """Insert ``layer`` before position ``i``."""
        self.layers.insert(i, layer)


def in_channels(m: nn.Module) -> int:
    """Input channels of the first layer of ``m`` with a 4-d weight (a 2-d conv), as fastai's ``in_channels``."""
    for layer in m.modules():
        w = getattr(layer, "weight", None)
        if isinstance(w, torch.Tensor) and w.ndim == 4:
            return int(w.shape[1])
    raise ValueError(f"No weight layer: {type(m).__name__} has no layer with a 4-d weight (a Conv2d) to read the "
                     f"input channels from.")


def trunc_normal_(x: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """Fill ``x`` in place with a normal(mean, std) truncated at two standard deviations (fastai's init)."""
    with torch.no_grad():
        return nn.init.trunc_normal_(x, mean=mean, std=std, a=mean - 2 * std, b=mean + 2 * std)


class Embedding(nn.Embedding):
    """``nn.Embedding(ni, nf)`` initialised as fastai's: truncated normal with standard deviation ``std``."""

    def __init__(self, ni: int, nf: int, std: float = 0.01) -> None:
        super().__init__(ni, nf)
        trunc_normal_(self.weight, std=std)


def noop(x: Any = None, *args: Any, **kwargs: Any) -> Any:
    """Do nothing: return ``x`` (fastai's ``noop``, e.g. an identity shortcut in a ResBlock)."""
    return x


class _ModuleMeta(type(nn.Module)):
    """Runs ``nn.Module.__init__`` before the subclass's ``__init__``."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = cls.__new__(cls)
        nn.Module.__init__(obj)
        obj.__init__(*args, **kwargs)
        return obj


class Module(nn.Module, metaclass=_ModuleMeta):
    """``nn.Module`` whose subclasses need not call ``super().__init__()`` (fastai's ``Module``)."""

    def __init__(self) -> None:
        pass
