"""MixUp and CutMix: train on blends of pairs of items, and on the matching blend of their losses.

During training only (``run_valid = False``: validation, ``validate``, ``get_preds`` and metrics never see
them), each batch is paired with a shuffled copy of itself:

- ``MixUp(alpha)``: per item, ``lam ~ Beta(alpha, alpha)`` taken as ``max(lam, 1 - lam)`` (fastai's rule:
  the original item dominates); inputs become ``lam * x + (1 - lam) * x_shuffled``.
- ``CutMix(alpha)``: one ``lam ~ Beta(alpha, alpha)`` per batch gives a box of area ``(1 - lam) * H * W``
  (clipped at the image border) pasted from the shuffled images; ``lam`` becomes ``1 - box area / (H * W)``.

With integer (class) targets the learner's loss function is left in place: in ``after_loss`` the callback
recomputes it per item (reduction ``'none'``) against both targets and sets ``loss_grad`` to
``reduce(lam * loss(pred, y) + (1 - lam) * loss(pred, y_shuffled))`` with the loss's own reduction, so it
works with any classification loss that has a ``reduction`` attribute (``CrossEntropyLossFlat``,
``LabelSmoothingCrossEntropy``, ``nn.CrossEntropyLoss``...) or takes a ``reduction=`` argument. With float
targets (multi-hot, soft labels) the targets themselves are blended the same way, as fastai does.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from .core import Callback

__all__ = ["MixHandler", "MixUp", "CutMix"]


def _unsqueeze_to(lam: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``lam`` (bs,) or () shaped to broadcast over ``t`` (bs, ...)."""
    return lam.reshape(-1, *([1] * (t.ndim - 1))) if lam.ndim else lam


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


class MixHandler(Callback):
    """Base of MixUp and CutMix: keeps the shuffled targets and ``lam`` and blends the loss (training only)."""

    run_valid = False

    def __init__(self, alpha: float = 0.5) -> None:
        if alpha <= 0:
            raise ValueError(f"{type(self).__name__}(alpha={alpha!r}): alpha parametrises Beta(alpha, alpha) and must "
                             f"be > 0 (e.g. 0.4 for MixUp, 1.0 for CutMix).")
        self.alpha = alpha
        self.distrib = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
        self.lam: torch.Tensor | None = None
        self.yb1: tuple = ()
        self._mix_loss = False

    def _pair(self) -> torch.Tensor:
        """A random permutation pairing each item with another (on the inputs' device)."""
        x = self.learn.xb[0]
        return torch.randperm(x.shape[0], device=x.device)

    def _set_targets(self, shuffle: torch.Tensor, lam: torch.Tensor) -> None:
        """Keep the shuffled targets for the loss (class indices), or blend float targets right away."""
        yb = self.learn.yb
        self.yb1 = tuple(y[shuffle] for y in yb)
        self._mix_loss = bool(yb) and all(not torch.is_floating_point(y) for y in yb)
        if yb and not self._mix_loss:
            self.learn.yb = tuple(torch.lerp(y1.float(), y.float(), _unsqueeze_to(lam, y).to(y.device)) if
                                  torch.is_floating_point(y) else y for y, y1 in zip(yb, self.yb1))
        self.lam = lam

    def after_loss(self) -> None:
        """Replace the loss with ``reduce(lam * loss(pred, y) + (1 - lam) * loss(pred, y_shuffled))``."""
        learn = self.learn
        if not self._mix_loss or not learn.yb:
            return
        lf = learn.loss_func
        reduction = getattr(lf, "reduction", None)
        per_item = self._per_item(lf, reduction)
        l0 = per_item(learn.pred, *learn.yb)
        l1 = per_item(learn.pred, *self.yb1)
        bs = self.yb1[0].shape[0]
        if l0.ndim == 0 or l0.numel() % bs:
            raise ValueError(f"{type(self).__name__}: {type(lf).__name__} with reduction='none' gave a loss of shape "
                             f"{tuple(l0.shape)} for a batch of {bs} items; mixing needs per-item (or per-element) "
                             f"losses. Use a loss such as CrossEntropyLossFlat.")
        lam = self.lam.to(l0.dtype)
        if lam.ndim:
            lam = lam.reshape(bs, 1).expand(bs, l0.numel() // bs).reshape(l0.shape)
        loss = _reduce(torch.lerp(l1, l0, lam), reduction or "mean")
        learn.loss_grad = loss
        learn.loss = loss.detach()

    def _per_item(self, lf: Callable, reduction: str | None) -> Callable[..., torch.Tensor]:
        if reduction is not None:
            def f(pred: Any, *yb: Any) -> torch.Tensor:
                lf.reduction = "none"
                try:
                    return lf(pred, *yb)
                finally:
                    lf.reduction = reduction
            return f
        try:
            takes = "reduction" in inspect.signature(lf).parameters
        except (TypeError, ValueError):
            takes = False
        if takes:
            return lambda pred, *yb: lf(pred, *yb, reduction="none")
        raise TypeError(f"{type(self).__name__} needs per-item losses, but the loss {lf!r} has no `reduction` attribute "
                        f"or argument: use a learnkit or torch.nn loss (e.g. CrossEntropyLossFlat()).")


class MixUp(MixHandler):
    """MixUp (Zhang et al. 2017): blend each training item with another, ``lam ~ Beta(alpha, alpha)`` per item."""

    def __init__(self, alpha: float = 0.4) -> None:
        super().__init__(alpha)

    def before_batch(self) -> None:
        """Blend the inputs; keep the partner targets and ``lam``."""
        xb = self.learn.xb
        x = xb[0]
        bs = x.shape[0]
        lam = self.distrib.sample((bs,)).to(x.device)
        lam = torch.maximum(lam, 1 - lam)
        shuffle = self._pair()
        self.learn.xb = tuple(torch.lerp(v[shuffle], v, _unsqueeze_to(lam, v).to(v.dtype))
                              if torch.is_floating_point(v) else v for v in xb)
        self._set_targets(shuffle, lam)


class CutMix(MixHandler):
    """CutMix (Yun et al. 2019): paste one random box from a shuffled batch; ``lam`` is the share left uncovered."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__(alpha)

    def rand_bbox(self, W: int, H: int, lam: torch.Tensor) -> tuple[int, int, int, int]:
        """Box ``(x1, y1, x2, y2)`` of side ``sqrt(1 - lam)`` of the image's, centred uniformly, clipped to the image."""
        cut_rat = float(torch.sqrt(1.0 - lam))
        cut_w, cut_h = round(W * cut_rat), round(H * cut_rat)
        cx, cy = int(torch.randint(0, W, (1,))), int(torch.randint(0, H, (1,)))
        x1, x2 = min(max(cx - cut_w // 2, 0), W), min(max(cx + cut_w // 2, 0), W)
        y1, y2 = min(max(cy - cut_h // 2, 0), H), min(max(cy + cut_h // 2, 0), H)
        return x1, y1, x2, y2

    def before_batch(self) -> None:
        """Paste a box of the shuffled images into the batch; keep the partner targets and the box's ``lam``."""
        xb = self.learn.xb
        x = xb[0]
        if x.ndim < 3:
            raise ValueError(f"CutMix needs image-like inputs (bs, C, H, W), got shape {tuple(x.shape)}; use MixUp for "
                             f"other inputs.")
        H, W = x.shape[-2:]
        shuffle = self._pair()
        x1, y1, x2, y2 = self.rand_bbox(W, H, self.distrib.sample())
        x = x.clone()  # the loader's tensor may be shared (e.g. the batch kept by a callback)
        x[..., y1:y2, x1:x2] = x[shuffle][..., y1:y2, x1:x2]
        self.box = (x1, y1, x2, y2)
        lam = torch.tensor(1 - (x2 - x1) * (y2 - y1) / float(W * H), device=x.device)
        self.learn.xb = (x, *xb[1:])
        self._set_targets(shuffle, lam)
