"""Test-time augmentation: average predictions over augmented passes, blended with one plain pass (fastai's rule).

``tta(learn, ds_idx=1, dl=None, n=4, item_tfms=None, batch_tfms=None, beta=0.25, use_max=False)`` reads the
loader in dataset order ``n`` times with the *training* transforms switched on (``split_idx=0``: random crops,
flips, batch augmentation) and once as validation does, then returns ``(preds, targs)`` with

- ``preds = (1 - beta) * mean(aug passes) + beta * plain`` (``torch.lerp(aug, plain, beta)``, as fastai);
- ``beta=None``: ``preds`` is the pair ``(mean of aug passes, plain)``;
- ``use_max=True``: ``preds`` is the element-wise max over the plain pass and the max of the aug passes.

``item_tfms`` / ``batch_tfms`` replace the loader's user transforms for the augmented passes (``DataLoader.new``).
Predictions are the loss's activation (probabilities for classification), on the CPU.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .data.core import DataLoader
from .data.transforms import TRAIN, VALID

if TYPE_CHECKING:  # pragma: no cover
    from .learner import Learner

__all__ = ["tta"]


def tta(learn: Learner, ds_idx: int = 1, dl: Any = None, n: int = 4, item_tfms: Any = None, batch_tfms: Any = None,
        beta: float | None = 0.25, use_max: bool = False) -> tuple[Any, torch.Tensor]:
    """Predictions with test-time augmentation over loader ``ds_idx`` (or ``dl``): ``(preds, targs)``; see the module doc."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"tta(n={n!r}): n is the number of augmented passes, an integer >= 1.")
    if beta is not None and not 0.0 <= beta <= 1.0:
        raise ValueError(f"tta(beta={beta!r}): beta is the weight of the plain pass, in [0, 1] (or None to get both).")
    base = learn.dls[ds_idx] if dl is None else dl
    if not isinstance(base, DataLoader) or base.torch_dl_given is not None:
        raise TypeError(f"tta needs a learnkit DataLoader built from blocks (it switches the loader to its training "
                        f"transforms), got {type(base).__name__}. Build the data with DataBlock / ImageDataLoaders, "
                        f"or call get_preds for a plain pass.")
    plain_dl = base.new(shuffle=False, drop_last=False, split_idx=VALID)
    aug_dl = base.new(shuffle=False, drop_last=False, split_idx=TRAIN)
    if item_tfms is not None or batch_tfms is not None:
        aug_dl = aug_dl.new(item_tfms=item_tfms, batch_tfms=batch_tfms)
    with learn.no_bar():
        passes = [learn.get_preds(dl=aug_dl)[0] for _ in range(n)]
        preds, targs = learn.get_preds(dl=plain_dl)
    aug = torch.stack(passes)
    aug = aug.max(0)[0] if use_max else aug.mean(0)
    if use_max:
        return torch.stack([preds, aug]).max(0)[0], targs
    if beta is None:
        return (aug, preds), targs
    return torch.lerp(aug, preds, beta), targs
