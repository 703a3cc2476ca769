"""Progressive resizing: train on smaller images early in a fit and grow them to full size (epoch by epoch).

``ProgressiveResize`` resizes the training *batch* on the device (``F.interpolate``) at the start of each
batch; the loaders keep producing full-size images, so no worker restarts and validation always runs
at full size. The size is fixed per epoch: from ``start_size`` until ``start`` (a fraction of the
epochs), growing linearly to the full size by ``finish``, rounded down to a multiple of ``increase_by``
(a few distinct sizes, so ``torch.compile`` recompiles only a few times). Most of the speed-up is on a
GPU, where the model, not the loader, is the bottleneck.

To change what the loaders produce instead (as the lessons do between fits), assign new loaders:
``learn.dls = dls.new(item_tfms=Resize(224))`` (``DataLoaders.new`` keeps the blocks' transforms and the
added normalisation), then call ``fit``/``fine_tune`` again.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .core import Callback

__all__ = ["ProgressiveResize"]


def _pair(size: int | float | tuple) -> tuple:
    return tuple(size) if isinstance(size, (tuple, list)) else (size, size)


class ProgressiveResize(Callback):
    """Train at ``start_size`` first, growing to ``end_size`` (default: the batches' own size) by ``finish``."""

    order = -5  # before MixUp/CutMix (order 0) and mixed precision: they see the resized batch
    run_valid = False

    def __init__(self, start_size: int | float | tuple = 0.5, end_size: int | tuple | None = None,
                 start: float = 0.0, finish: float = 0.75, increase_by: int = 8, mode: str = "bilinear",
                 antialias: bool = True) -> None:
        if not 0.0 <= start <= finish <= 1.0:
            raise ValueError(f"ProgressiveResize(start={start}, finish={finish}): need 0 <= start <= finish <= 1 "
                             f"(fractions of the epochs).")
        if increase_by < 1:
            raise ValueError(f"ProgressiveResize(increase_by={increase_by}): the size step is a number of pixels >= 1.")
        self.start_size, self.end_size = start_size, end_size
        self.start, self.finish, self.increase_by = start, finish, increase_by
        self.mode, self.antialias = mode, antialias
        self.size: tuple[int, int] | None = None  # the training size of the current epoch
        self.sizes: list[tuple[int, int] | None] = []  # one entry per epoch of the last fit

    def before_fit(self) -> None:
        """Forget the sizes of the previous fit."""
        self.sizes = []

    def before_epoch(self) -> None:
        """Pick this epoch's training size (None: full size, or not known until the first batch)."""
        self.size = None
        self._epoch_pct = self.learn.epoch / max(1, self.learn.n_epoch)

    def _target(self, full: tuple[int, int]) -> tuple[int, int]:
        end = _pair(self.end_size) if self.end_size is not None else full
        start = tuple(int(round(s * f)) if isinstance(s, float) else int(s) for s, f in zip(_pair(self.start_size), end))
        pct = self._epoch_pct
        if pct >= self.finish:
            return tuple(int(e) for e in end)
        frac = 0.0 if pct <= self.start or self.finish == self.start else (pct - self.start) / (self.finish - self.start)
        step = self.increase_by
        return tuple(min(int(e), max(step, int((s + frac * (e - s)) // step * step))) for s, e in zip(start, end))

    def before_batch(self) -> None:
        """Resize the image inputs of this training batch to the epoch's size."""
        xb = self.learn.xb
        x = xb[0] if xb else None
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            return
        if self.size is None:
            self.size = self._target(tuple(x.shape[-2:]))
            self.sizes.append(self.size)
        if tuple(x.shape[-2:]) == self.size:
            return
        fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and \
            not x.is_contiguous() else torch.contiguous_format
        kw = dict(align_corners=False, antialias=self.antialias) if self.mode in ("bilinear", "bicubic") else {}
        self.learn.xb = tuple(F.interpolate(v, size=self.size, mode=self.mode, **kw).contiguous(memory_format=fmt)
                              if isinstance(v, torch.Tensor) and v.ndim == 4 and torch.is_floating_point(v) else v
                              for v in xb)
        hw = tuple(x.shape[-2:])
        if any(isinstance(y, torch.Tensor) and y.ndim >= 3 and tuple(y.shape[-2:]) == hw for y in self.learn.yb):
            self.learn.yb = tuple(_resize_mask(y, self.size) if isinstance(y, torch.Tensor) and y.ndim >= 3
                                  and tuple(y.shape[-2:]) == hw else y for y in self.learn.yb)


def _resize_mask(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A (B, H, W) integer mask resized by nearest neighbour (segmentation targets follow the images)."""
    return F.interpolate(y.unsqueeze(1).float(), size=size, mode="nearest").squeeze(1).to(y.dtype)
