"""Explanations for batches the model or the training step can't take (wrong channel count, an unreduced loss)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["channel_mismatch", "check_loss_is_scalar"]


def channel_mismatch(model: nn.Module, xb: Sequence[Any]) -> str | None:
    """Why the model's first convolution can't take the batch's first input, or None when the channels agree."""
    first = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    x = xb[0] if len(xb) else None
    if first is None or not isinstance(x, torch.Tensor) or x.ndim != first[1].weight.ndim:
        return None
    name, conv = first
    have, want = int(x.shape[1]), conv.in_channels
    if have == want:
        return None
    if have == 1 and want == 3:
        fix = ("read the images as RGB (ImageBlock() / PILImage, the default, instead of PILImageBW), or build the "
               "learner for one channel: vision_learner(dls, arch, n_in=1)")
    else:
        fix = f"build the learner for them (vision_learner(dls, arch, n_in={have})), or convert the images"
    return (f"The batch's images have {have} channel(s) (shape {tuple(x.shape)}) but the model's first layer "
            f"({name or type(conv).__name__}: {conv}) takes {want}: {fix}.")


def check_loss_is_scalar(loss: torch.Tensor, loss_func: Callable) -> None:
    """Refuse a training loss that is not one number (a loss built with ``reduction='none'``), naming its shape."""
    if loss.numel() != 1:
        name = getattr(loss_func, "__name__", type(loss_func).__name__)
        raise ValueError(f"The loss function {name} returned a tensor of shape {tuple(loss.shape)}, not one number, "
                         f"so there is nothing to backpropagate: it must average over the batch (e.g. "
                         f"nn.CrossEntropyLoss() with its default reduction='mean', or end it with .mean()). learnkit "
                         f"asks for per-item losses itself where it needs them (get_preds(with_loss=True)).")
