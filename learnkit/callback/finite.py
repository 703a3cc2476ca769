"""FiniteLossGuard: a default callback that stops a fit whose training loss turns NaN or infinite, with a warning."""

from __future__ import annotations

import math
import warnings

import torch

from .core import Callback, CancelFitException
from .training import TerminateOnNaNCallback

__all__ = ["FiniteLossGuard"]


class FiniteLossGuard(Callback):
    """Warns once (naming the epoch and batch) and stops the fit when a training loss is NaN or infinite.

    On the CPU each batch is checked before the step (reading a CPU scalar costs no sync), so the weights keep
    their last finite values. On an accelerator the check stays on the device (no sync per batch): the index
    of the first non-finite batch is kept there and read once at the end of each training phase.
    Give ``TerminateOnNaNCallback`` to check every batch before the step on any device.
    """

    order = -9
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

    def after_train(self) -> None:
        """On an accelerator: one read of the device-side flag per epoch."""
        if not self._off and self._first_bad is not None:
            first = int(self._first_bad)
            if first >= 0:
                self._stop(first, None)

    def _stop(self, batch: int, value: float | None) -> None:
        got = "" if value is None else f" ({value})"
        warnings.warn(f"The training loss is not finite{got} at epoch {self.learn.epoch}, batch {batch}: "
                      f"stopping the fit. Lower the learning rate, check the inputs and labels for NaN/inf, or "
                      f"use gradient clipping (GradientClip).", RuntimeWarning, stacklevel=2)
        raise CancelFitException()
