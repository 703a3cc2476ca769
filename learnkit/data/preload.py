"""Device-resident data: decode and item-transform a split once, then serve batches by indexing its tensors.

For data sets that fit in device memory (Imagenette's 9,469 training images at 128 px are 465 MB of
uint8), the per-epoch cost of JPEG decoding and per-item transforms disappears: each batch is an
``index_select`` on the device, and the random augmentation moves to the batch transforms
(``RandomResizedCropGPU``, ``Flip``, ``aug_transforms``), which draw anew for every batch.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import torch

from .transforms import TRAIN

if TYPE_CHECKING:
    from .core import DataLoader

__all__ = ["check_preloadable", "collect", "n_batches", "preloaded_batches"]


def check_preloadable(dl: "DataLoader") -> None:
    """Refuse a training loader whose item transforms draw at random: a preloaded copy would freeze one draw."""
    if dl.split_idx != TRAIN:
        return
    frozen = [t for t in dl.item_tfms if getattr(t, "random_in_training", False) and t.split_idx in (None, TRAIN)]
    if frozen:
        names = ", ".join(repr(t) for t in frozen)
        raise ValueError(
            f"preload() decodes each training item once, so the random item transform(s) {names} would draw once "
            f"and never again. Use deterministic item transforms (e.g. item_tfms=Resize(160, method='squish')) and "
            f"draw per batch on the device instead: batch_tfms=[RandomResizedCropGPU(128, min_scale=0.35), Flip()] "
            f"or aug_transforms(size=128, min_scale=0.35).")


def collect(batches: Iterable, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Concatenate ``batches`` (tuples of tensors, in order) into one tensor per value, on ``device``."""
    parts: list[list[torch.Tensor]] = []
    for b in batches:
        b = tuple(b) if isinstance(b, (tuple, list)) else (b,)
        for i, v in enumerate(b):
            if not isinstance(v, torch.Tensor):
                raise TypeError(f"preload() keeps tensors, but value {i} of a batch is a {type(v).__name__}: every "
                                f"block must produce tensors (images, categories, masks, numbers).")
        parts.append(list(b))
    if not parts:
        raise ValueError("preload(): there were no batches to keep (empty dataset).")
    return tuple(torch.cat(vals).to(device) for vals in zip(*parts))


def n_batches(n: int, bs: int, drop_last: bool) -> int:
    """Batches per epoch over ``n`` items (a last partial batch dropped only when there is a full one)."""
    return n // bs if drop_last and n > bs else -(-n // bs)


def preloaded_batches(tensors: tuple[torch.Tensor, ...], bs: int, shuffle: bool,
                      drop_last: bool) -> Iterator[tuple[torch.Tensor, ...]]:
    """Batches of ``bs`` rows of ``tensors`` (a fresh permutation each call when ``shuffle``), on their device."""
    n = tensors[0].shape[0]
    order = torch.randperm(n, device=tensors[0].device) if shuffle else None
    for i in range(n_batches(n, bs, drop_last)):
        if order is None:  # copies: a batch transform or callback changing a batch in place can't reach the data
            yield tuple(t[i * bs:(i + 1) * bs].clone() for t in tensors)
        else:
            idx = order[i * bs:(i + 1) * bs]
            yield tuple(t.index_select(0, idx) for t in tensors)
