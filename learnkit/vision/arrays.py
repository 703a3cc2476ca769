"""In-memory image data for ``ImageDataLoaders.from_arrays``: array layouts, labels, and the items DataBlock reads.

Every image becomes one HWC uint8 array (what an image file decodes to), so the rest of the pipeline
(``ImageBlock``'s PIL step, item transforms, ``IntToFloatTensor``) runs exactly as for files, and a single
array given to ``predict`` or ``test_dl`` goes the same way.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..data.arrays import as_numpy

__all__ = ["ArrayItems", "images_to_nhwc"]


def images_to_nhwc(x: Any, name: str = "x") -> np.ndarray:
    """N,H,W / N,H,W,C / N,C,H,W images (uint8, integers 0-255 or floats in [0, 1]) -> N,H,W,C uint8.

    When both 4-D layouts fit (e.g. N,3,32,3), a tensor is read as N,C,H,W (torch's layout), an array as N,H,W,C.
    """
    channels_first = isinstance(x, torch.Tensor)
    a = as_numpy(x, name)
    if a.ndim == 3:
        a = a[..., None]
    elif a.ndim == 4 and a.shape[1] in (1, 3) and (a.shape[-1] not in (1, 3) or channels_first):
        a = a.transpose(0, 2, 3, 1)  # N,C,H,W -> N,H,W,C
    if a.ndim != 4 or a.shape[-1] not in (1, 3) or not len(a):
        raise ValueError(f"from_arrays: {name} has shape {tuple(a.shape)}; expected N,H,W (grey), N,H,W,C or "
                         f"N,C,H,W with C 1 or 3 and N >= 1. A flat N x 784 table of pixels: "
                         f"{name}.reshape(-1, 28, 28).")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    lo, hi = float(a.min()), float(a.max())
    if a.dtype.kind == "f":
        if lo < 0 or hi > 1:
            raise ValueError(f"from_arrays: {name} is float with values in [{lo:.3g}, {hi:.3g}]; float images must be "
                             f"in [0, 1] (they are scaled by 255). Divide 0-255 values by 255, or pass uint8.")
        return np.rint(a * 255.0).astype(np.uint8)
    if a.dtype.kind in "iu":
        if lo < 0 or hi > 255:
            raise ValueError(f"from_arrays: {name} holds integers in [{lo:g}, {hi:g}]; integer pixels must be 0-255.")
        return a.astype(np.uint8)
    raise TypeError(f"from_arrays: {name} has dtype {a.dtype}; pass uint8, integer 0-255 or float [0, 1] pixels.")


class ArrayItems(Sequence):
    """Items ``(image, label)`` over one N,H,W,C uint8 array and a list of labels (what ``DataBlock`` indexes)."""

    def __init__(self, images: np.ndarray, labels: list) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple:  # type: ignore[override]
        img = self.images[i]
        return (img[..., 0] if img.shape[-1] == 1 else img), self.labels[i]

    def __repr__(self) -> str:
        return f"ArrayItems({len(self)} images of {self.images.shape[1:]})"
