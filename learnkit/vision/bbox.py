"""Bounding-box batch helpers as fastai's: ``clip_remove_empty`` and the ``bb_pad`` collate step."""
from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["clip_remove_empty", "bb_pad"]


def clip_remove_empty(bbox: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip boxes (``x0, y0, x1, y1`` scaled to [-1, 1]) to the image and drop the empty ones with their labels."""
    bbox = torch.clamp(bbox, -1, 1)
    empty = (bbox[..., 2] - bbox[..., 0]) * (bbox[..., 3] - bbox[..., 1]) <= 0.
    return bbox[~empty], label[~empty]


def bb_pad(samples: Sequence[tuple], pad_idx: int = 0) -> list[tuple]:
    """``(image, boxes, labels)`` samples with clipped, non-empty boxes, padded to the same count with zero boxes
    and ``pad_idx`` labels (so they stack into one batch)."""
    samples = [(s[0], *clip_remove_empty(*s[1:])) for s in samples]
    max_len = max(len(s[2]) for s in samples)

    def _f(img: torch.Tensor, bbox: torch.Tensor, lbl: torch.Tensor) -> tuple:
        bbox = torch.cat([bbox, bbox.new_zeros(max_len - bbox.shape[0], 4)])
        lbl = torch.cat([lbl, lbl.new_zeros(max_len - lbl.shape[0]) + pad_idx])
        return img, bbox, lbl
    return [_f(*s) for s in samples]
