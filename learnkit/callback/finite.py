"""FiniteLossGuard: a default callback that stops a fit whose loss or gradients turn NaN or infinite, before the step."""

from __future__ import annotations

import math
import warnings

import torch

from .core import Callback, CancelFitException
from .training import TerminateOnNaNCallback

__all__ = ["FiniteLossGuard", "all_finite"]


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether every value of ``tensors`` is finite: one fused kernel per device and dtype, one host read."""
    groups: dict[tuple, list[torch.Tensor]] = {}
    for t in tensors:
        t = t.coalesce().values() if t.is_sparse else t
        if t.is_floating_point():
            groups.setdefault((t.device, t.dtype), []).append(t.detach())
    flags = []
    for (device, _), ts in groups.items():
        # the GradScaler's own kernel, with a scale of 1: sets found to 1 on any NaN/inf, values unchanged
        found, one = torch.zeros(1, device=device), torch.ones(1, device=device)
        torch._amp_foreach_non_finite_check_and_unscale_(ts, found, one)
        flags.append(found)
    if not flags:
        return True
    first = flags[0].device
    return not bool(torch.cat([f.to(first) for f in flags]).any())


class FiniteLossGuard(Callback):
    """Warns once (naming the epoch and batch) and stops the fit when a training loss or gradient is NaN or infinite.

    Before every optimizer step (after ``MixedPrecision`` unscaled and ``GradientClip`` clipped the gradients)
    one fused check of the loss and all gradients, one host read: a non-finite value skips the step and stops
    the fit, so the weights keep their last finite values. With a ``GradScaler`` (CUDA float16) the scaler's own
    check stands: it skips overflowing steps and lowers its scale, and the fit goes on. The loss alone is also
    checked after the forward pass (at once on the CPU; on an accelerator on the device, read once per epoch),
    which catches a NaN loss whose steps the scaler keeps skipping. ``TerminateOnNaNCallback`` replaces that loss
    check (it stops at once on any device); the gradient check stays.
    """

    order = 12  # before_step after MixedPrecision (10) and GradientClip (11)
    _off = False  # get_preds / validate run without before_fit
    _first_bad: torch.Tensor | None = None

    def before_fit(self) -> None:
        """Switch off when ``TerminateOnNaNCallback`` is present (it does the per-batch check itself)."""
        self._off = any(isinstance(c, TerminateOnNaNCallback) for c in self.learn.cbs)

    def before_train(self) -> None:
        """Reset the device-side index of the first non-finite batch."""
        self._first_bad = None

    def after_loss(self) -> None:
        """Check the loss: at once on the CPU, on the device otherwise."""
        loss = self.learn.loss
        if self._off or not self.learn.training or loss is None:
            return
        if loss.device.type == "cpu":
            ok = math.isfinite(loss.item()) if loss.numel() == 1 else bool(torch.isfinite(loss).all())  # ~1 us
            if not ok:
                self._stop(self.learn.iter, float(loss.float().mean()))
            return
        bad = ~torch.isfinite(loss).all()
        it = torch.tensor(self.learn.iter, device=loss.device)
        if self._first_bad is None:
            self._first_bad = torch.where(bad, it, torch.full_like(it, -1))
        else:
            self._first_bad = torch.where(bad & (self._first_bad < 0), it, self._first_bad)

    def before_step(self) -> None:
        """Skip the step and stop the fit when the loss or a gradient is not finite (one host read)."""
        learn = self.learn
        scaler = getattr(learn, "scaler", None)
        if scaler is not None and scaler.is_enabled():
            return  # the GradScaler checked the unscaled gradients: this step runs only when they were finite
        tensors = [p.grad for g in learn.opt.param_groups for p in g["params"] if p.grad is not None]
        if learn.loss is not None:
            tensors.append(learn.loss)
        if tensors and not all_finite(tensors):
            learn.opt.zero_grad()
            self._stop(learn.iter, None, what="loss or gradients")

    def after_train(self) -> None:
        """On an accelerator: one read of the device-side flag per epoch."""
        if not self._off and self._first_bad is not None:
            first = int(self._first_bad)
            if first >= 0:
                self._stop(first, None)

    def _stop(self, batch: int, value: float | None, what: str = "loss") -> None:
        got = "" if value is None else f" ({value})"
        skipped = " (this batch's step skipped: the weights are those before it)" if what != "loss" else ""
        warnings.warn(f"The training {what} is not finite{got} at epoch {self.learn.epoch}, batch {batch}: "
                      f"stopping the fit{skipped}. Lower the learning rate, check the inputs and labels for NaN/inf, or "
                      f"use gradient clipping (GradientClip).", RuntimeWarning, stacklevel=2)
        raise CancelFitException()
