"""Device-resident data: decode and item-transform a split once, then serve batches by indexing its tensors.

For data sets that fit in device memory (Imagenette's 9,469 training images at 128 px are 465 MB of
uint8), the per-epoch cost of JPEG decoding and per-item transforms disappears: each batch is an
``index_select`` on the device, and the random augmentation moves to the batch transforms
(``RandomResizedCropGPU``, ``Flip``, ``aug_transforms``), which draw anew for every batch.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

import torch
from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler
from torch.utils.data import DataLoader as TorchDataLoader

from .transforms import TRAIN

__all__ = ["check_preloadable", "collect", "n_batches", "preload_order", "preloaded_batches"]


class _Loader(Protocol):
    """What ``check_preloadable`` reads of a loader (``data/core.py``'s DataLoader: this module stays below it)."""

    split_idx: int | None
    item_tfms: Sequence[Any]


def check_preloadable(dl: _Loader) -> None:
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


def collect(batches: Iterable, n: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Copy ``batches`` (tuples of tensors, in order, ``n`` rows in all) into one tensor per value on ``device``.

    The output is allocated once on ``device`` and filled batch by batch, so the host never holds more than a batch.
    """
    out: tuple[torch.Tensor, ...] | None = None
    row = 0
    for b in batches:
        b = tuple(b) if isinstance(b, (tuple, list)) else (b,)
        for i, v in enumerate(b):
            if not isinstance(v, torch.Tensor):
                raise TypeError(f"preload() keeps tensors, but value {i} of a batch is a {type(v).__name__}: every "
                                f"block must produce tensors (images, categories, masks, numbers).")
        if out is None:
            out = tuple(torch.empty((n, *v.shape[1:]), dtype=v.dtype, device=device) for v in b)
        k = len(b[0])
        for dst, v in zip(out, b):
            dst[row:row + k].copy_(v)
        row += k
    if out is None or row != n:
        raise ValueError(f"preload(): the loader gave {row} items where its dataset has {n}.")
    return out


def preload_order(torch_dl: TorchDataLoader) -> bool:
    """Whether a wrapped torch loader shuffles (True) or reads in order (False); other samplers can't be preloaded."""
    if isinstance(torch_dl.sampler, RandomSampler) and type(torch_dl.batch_sampler) is BatchSampler:
        return True
    if isinstance(torch_dl.sampler, SequentialSampler) and type(torch_dl.batch_sampler) is BatchSampler:
        return False
    raise ValueError(f"preload() serves batches in order or shuffled: it can't follow this torch loader's "
                     f"{type(torch_dl.sampler).__name__} / {type(torch_dl.batch_sampler).__name__}. Leave the "
                     f"loader un-preloaded, or build it with shuffle=True/False and no sampler.")


def n_batches(n: int, bs: int, drop_last: bool) -> int:
    """Batches per epoch over ``n`` items (a last partial batch dropped only when there is a full one)."""
    return n // bs if drop_last and n > bs else -(-n // bs)


def preloaded_batches(tensors: tuple[torch.Tensor, ...], bs: int, shuffle: bool,
                      drop_last: bool) -> Iterator[tuple[torch.Tensor, ...]]:
    """Batches of ``bs`` rows of ``tensors`` (a fresh permutation each call when ``shuffle``), on their device.

    A batch never shares memory with ``tensors``, so changing it in place can't reach the kept data: shuffled
    batches are slices of this epoch's permuted copy (one gather per tensor), ordered ones are copied slices.
    """
    n = tensors[0].shape[0]
    if shuffle:
        order = torch.randperm(n, device=tensors[0].device)
        tensors = tuple(t[order] for t in tensors)
    for i in range(n_batches(n, bs, drop_last)):
        s = slice(i * bs, (i + 1) * bs)
        yield tuple(t[s] if shuffle else t[s].clone() for t in tensors)
