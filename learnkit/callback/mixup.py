"""MixUp and CutMix: train on blends of pairs of items, and on the matching blend of their losses.

During training only (``run_valid = False``: validation, ``validate``, ``get_preds`` and metrics never see
them), each batch is paired with a shuffled copy of itself:

- ``MixUp(alpha)``: per item, ``lam ~ Beta(alpha, alpha)`` taken as ``max(lam, 1 - lam)`` (fastai's rule:
  the original item dominates); inputs become ``lam * x + (1 - lam) * x_shuffled``.
- ``CutMix(alpha)``: one ``lam ~ Beta(alpha, alpha)`` per batch gives a box of area ``(1 - lam) * H * W``
  (clipped at the image border) pasted from the shuffled images; ``lam`` becomes ``1 - box area / (H * W)``.

With integer (class) targets the callback swaps in, for each training batch only (from ``after_pred`` until the
learner has called it; put back right after, whatever happens), a mixing loss built on the learner's own, so
each step evaluates the loss twice (against both targets) and never a third time:

- one ``lam`` for the batch (CutMix): ``lerp(loss(pred, y_shuffled), loss(pred, y), lam)``, each with the loss's
  own reduction (exact with ``ignore_index`` and class ``weight``);
- one ``lam`` per item (MixUp): per-element losses (reduction ``'none'``), ``lam``-weighted; with ``'mean'`` the
  sum is divided by the ``lam``-weighted count of valid targets (their class weights summed, ``ignore_index``
  left out), so at ``lam = 1`` it is exactly the plain loss.

It works with any classification loss that has a ``reduction`` attribute (``CrossEntropyLossFlat``,
``LabelSmoothingCrossEntropy``, ``nn.CrossEntropyLoss``...) or takes a ``reduction=`` argument. With float
targets (multi-hot, soft labels) the targets themselves are blended the same way, as fastai does.

Nothing here waits on the GPU: MixUp draws ``lam`` on the inputs' device (a Beta whose parameters live there,
made once per device); CutMix draws its box on the CPU (slicing needs host numbers) and keeps ``lam`` there,
used as a plain number.
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


def _weight(lam: torch.Tensor, t: torch.Tensor) -> Any:
    """``lam`` as a lerp weight for ``t``: a plain number when it is one per batch (kept on the CPU, no copy)."""
    return float(lam) if lam.ndim == 0 else _unsqueeze_to(lam, t).to(device=t.device, dtype=torch.float32)


def _valid_weight(lf: Any, y: torch.Tensor, bs: int, k: int) -> torch.Tensor:
    """Per item, what a 'mean' loss divides by: its ``k`` targets' class weights (1 each), ``ignore_index`` left out."""
    yi = y.reshape(bs, -1)
    if yi.shape[1] != k:  # not one target per loss element: plain element count
        return torch.full((bs,), float(k), device=y.device)
    ignore = getattr(lf, "ignore_index", None)
    valid = yi != ignore if isinstance(ignore, int) else torch.ones_like(yi, dtype=torch.bool)
    w = getattr(lf, "weight", None)
    if isinstance(w, torch.Tensor):
        ww = w.to(y.device)[yi.clamp(0, w.numel() - 1)]
        return torch.where(valid, ww, torch.zeros_like(ww)).sum(1)
    return valid.sum(1).to(torch.float32)


class MixHandler(Callback):
    """Base of MixUp and CutMix: keeps the shuffled targets and ``lam`` and blends the loss (training only)."""

    run_valid = False

    def __init__(self, alpha: float = 0.5) -> None:
        if alpha <= 0:
            raise ValueError(f"{type(self).__name__}(alpha={alpha!r}): alpha parametrises Beta(alpha, alpha) and must "
                             f"be > 0 (e.g. 0.4 for MixUp, 1.0 for CutMix).")
        self.alpha = alpha
        self.distrib = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
        self._cpu_distrib = self.distrib
        self._distribs: dict[torch.device, Any] = {}
        self.lam: torch.Tensor | None = None
        self.yb1: tuple = ()
        self._mix_loss = False
        self._orig_lf: Any = None

    def _beta(self, device: torch.device) -> Any:
        """``Beta(alpha, alpha)`` sampling on ``device`` (made once per device); a replaced ``distrib`` is used as is."""
        if self.distrib is not self._cpu_distrib or device.type == "cpu":
            return self.distrib
        d = self._distribs.get(device)
        if d is None:
            a = torch.tensor(float(self.alpha), device=device)
            d = self._distribs[device] = torch.distributions.Beta(a, a.clone(), validate_args=False)  # no sync
        return d

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
            self.learn.yb = tuple(torch.lerp(y1.float(), y.float(), _weight(lam, y)) if torch.is_floating_point(y)
                                  else y for y, y1 in zip(yb, self.yb1))
        self.lam = lam

    # -- the mixing loss, in place of the learner's for one training batch
    def after_pred(self) -> None:
        """Swap in the mixing loss for this batch's loss call (class targets only)."""
        learn = self.learn
        if self._mix_loss and learn.yb and learn.training:
            self._orig_lf = learn.loss_func
            learn.loss_func = self._mixed_loss

    def _restore(self) -> None:
        if self._orig_lf is not None:
            if self.learn.loss_func == self._mixed_loss:
                self.learn.loss_func = self._orig_lf
            self._orig_lf = None

    def after_loss(self) -> None:
        """Put the learner's loss function back (already done when the learner called the mixing loss)."""
        self._restore()

    def after_cancel_batch(self) -> None:
        """Put the loss function back when a callback cancelled the batch before the loss."""
        self._restore()

    def after_fit(self) -> None:
        """Never leave the mixing loss behind."""
        self._restore()

    def _mixed_loss(self, pred: Any, *yb: Any) -> torch.Tensor:
        """``lerp(loss(pred, y_shuffled), loss(pred, y), lam)``, reduced as the learner's loss reduces."""
        lf = self._orig_lf
        self._restore()  # first: the learner's own loss is back whatever happens below
        if lf is None:
            raise RuntimeError(f"{type(self).__name__}: the mixing loss was called outside its training batch.")
        return self._mix(lf, pred, yb)

    def _mix(self, lf: Callable, pred: Any, yb: tuple) -> torch.Tensor:
        reduction = getattr(lf, "reduction", None)
        lam = self.lam
        if lam.ndim == 0 and reduction in ("mean", "sum"):  # one lam (CutMix): each loss with its own reduction
            l0, l1 = lf(pred, *yb), lf(pred, *self.yb1)
            return torch.lerp(l1, l0, float(lam))
        per_item = self._per_item(lf, reduction)
        l0, l1 = per_item(pred, *yb), per_item(pred, *self.yb1)
        bs = self.yb1[0].shape[0]
        if l0.ndim == 0 or l0.numel() % bs:
            raise ValueError(f"{type(self).__name__}: {type(lf).__name__} with reduction='none' gave a loss of shape "
                             f"{tuple(l0.shape)} for a batch of {bs} items; mixing needs per-item (or per-element) "
                             f"losses. Use a loss such as CrossEntropyLossFlat.")
        lam = lam.to(device=l0.device, dtype=l0.dtype) if lam.ndim else lam.expand(bs).to(l0.device, l0.dtype)
        s0, s1 = l0.reshape(bs, -1).sum(1), l1.reshape(bs, -1).sum(1)
        if reduction == "sum":
            return torch.lerp(s1, s0, lam).sum()
        if reduction not in (None, "mean"):  # 'none': per element, lam-weighted
            k = l0.numel() // bs
            return torch.lerp(l1, l0, lam.reshape(bs, 1).expand(bs, k).reshape(l0.shape))
        n0, n1 = _valid_weight(lf, yb[0], bs, l0.numel() // bs), _valid_weight(lf, self.yb1[0], bs, l0.numel() // bs)
        return torch.lerp(s1, s0, lam).sum() / torch.lerp(n1, n0, lam).sum()

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
        lam = self._beta(x.device).sample((bs,)).to(x.device)  # already there: no copy
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
        lam = torch.tensor(1 - (x2 - x1) * (y2 - y1) / float(W * H))  # on the CPU: used as a plain number
        self.learn.xb = (x, *xb[1:])
        self._set_targets(shuffle, lam)
