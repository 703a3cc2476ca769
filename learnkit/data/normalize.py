"""Normalisation by mean and standard deviation: the image batch transform (tabular procs reuse the name).

``Normalize`` is a batch ``Transform`` (order 99) that computes ``(x - mean) / std`` per channel on
image batches and undoes it in ``decode``. It lives in the data layer so the vision and the tabular
domains share one class: ``TabularPandas`` recognises ``Normalize`` (the class or an instance) among its
procs and normalises the continuous columns with statistics of the training split.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..registry import register_transform
from .transforms import Transform

__all__ = ["Normalize"]


def _stats_tensor(v: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=torch.float64).detach().cpu().flatten()  # float64: configs keep the exact values
    if t.numel() == 0:
        raise ValueError(f"Normalize: {name} is empty.")
    return t


@register_transform
class Normalize(Transform):
    """Batch transform: ``(x - mean) / std`` per channel for images (kind 'image' only); ``decode`` undoes it.

    With ``mean``/``std`` left as None, they are computed once, over ``axes``, from the first batch
    this transform sees (as fastai does at setup), then kept.
    """

    order = 99

    def __init__(self, mean: Any = None, std: Any = None, axes: Sequence[int] = (0, 2, 3)) -> None:
        if (mean is None) != (std is None):
            raise ValueError("Normalize: give both mean and std, or neither (to compute them from the first batch).")
        self.axes = tuple(int(a) for a in axes)
        self.mean = None if mean is None else _stats_tensor(mean, "mean")
        self.std = None if std is None else _stats_tensor(std, "std")
        if self.std is not None:
            if self.mean.numel() != self.std.numel():
                raise ValueError(f"Normalize: mean has {self.mean.numel()} values but std has {self.std.numel()}.")
            if bool((self.std <= 0).any()):
                raise ValueError(f"Normalize: std must be positive, got {self.std.tolist()}.")
        self._cache: dict = {}

    @classmethod
    def from_stats(cls, mean: Any, std: Any, axes: Sequence[int] = (0, 2, 3)) -> "Normalize":
        """Normalize with the given per-channel statistics, e.g. ``Normalize.from_stats(*imagenet_stats)``."""
        return cls(mean, std, axes=axes)

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mean is None:
            self.mean = x.float().mean(dim=self.axes).detach().cpu().double().flatten()
            self.std = x.float().std(dim=self.axes).clamp_min(1e-7).detach().cpu().double().flatten()
            self._cache.clear()
        key = (x.device, x.dtype, x.ndim)
        if key not in self._cache:
            shape = [1] * x.ndim
            kept = [d for d in range(x.ndim) if d not in {a % x.ndim for a in self.axes}]
            n = self.mean.numel()
            if n > 1:
                if len(kept) != 1 or x.shape[kept[0]] != n:
                    raise ValueError(f"Normalize has {n} channel statistics but the batch has shape {tuple(x.shape)} "
                                     f"(axes={self.axes}). For grey (1-channel) images use one mean/std value, or "
                                     f"load the images in RGB (ImageBlock(cls=PILImage)).")
                shape[kept[0]] = n
            # cast on the CPU first: some devices (MPS) have no float64
            self._cache[key] = (self.mean.to(x.dtype).to(x.device).view(shape), self.std.to(x.dtype).to(x.device).view(shape))
        return self._cache[key]

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std on the batch's device and dtype."""
        if not x.is_floating_point():
            raise TypeError(f"Normalize got a {x.dtype} image batch: it needs floats. IntToFloatTensor (order 10) "
                            f"must run first; check the batch transforms' order.")
        mean, std = self._stats(x)
        return (x - mean) / std

    def decode_image(self, x: torch.Tensor) -> torch.Tensor:
        """x * std + mean."""
        if self.mean is None or not x.is_floating_point():
            return x
        mean, std = self._stats(x)
        return x * std + mean

    def get_config(self) -> dict:
        """Constructor arguments (the statistics as lists)."""
        return {"mean": None if self.mean is None else self.mean.tolist(),
                "std": None if self.std is None else self.std.tolist(), "axes": list(self.axes)}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"] = {}  # device copies are rebuilt where the transform runs
        return state
