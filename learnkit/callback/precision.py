"""Mixed precision (``torch.autocast`` + ``GradScaler``) and memory-format helpers behind ``learn.to_fp16()`` & co.

- ``to_fp16()``: float16 autocast with a ``GradScaler`` on CUDA. Elsewhere float16 autocast is slow or
  unsupported, so it trains in bfloat16 autocast on that device instead and warns once saying so.
- ``to_bf16()``: bfloat16 autocast (CPU or GPU); bfloat16 has float32's range, so no loss scaling.
  A model with recurrent layers (``nn.LSTM``...) on a CPU whose oneDNN has no bfloat16 RNN kernel (no
  AVX512-BF16) trains in float32 instead, with a warning: torch would fail in the forward pass.
- ``to_fp32()``: back to full precision.
"""
from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .core import Callback, CancelStepException

if TYPE_CHECKING:  # pragma: no cover
    from ..learner import Learner

__all__ = ["MixedPrecision", "to_fp16", "to_bf16", "to_fp32", "to_channels_last", "test_overflow", "grad_overflow"]

_HALF = (torch.float16, torch.bfloat16)


@functools.cache
def cpu_bf16_rnn_supported() -> bool:
    """Whether this CPU runs an ``nn.LSTM`` under bfloat16 autocast (oneDNN needs AVX512-BF16 for it); probed once."""
    lstm = nn.LSTM(4, 4)
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(2, 1, 4))
    except RuntimeError:
        return False
    return True


def _to_float(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.float() if x.dtype in _HALF else x
    if isinstance(x, (tuple, list)):
        return type(x)(_to_float(o) for o in x)
    return x


class MixedPrecision(Callback):
    """Runs forward pass and loss under ``torch.autocast``; scales the loss with a ``GradScaler`` for CUDA float16.

    ``amp_mode``: ``'fp16'`` or ``'bf16'``. ``scaler_kwargs`` go to ``torch.amp.GradScaler`` (CUDA fp16 only).
    The model's output is cast back to float32 before the loss and metrics see it.
    """

    order = 10
    fp16_devices: tuple[str, ...] = ("cuda",)  # where 'fp16' means float16 + GradScaler (elsewhere: bfloat16)

    def __init__(self, amp_mode: str = "fp16", **scaler_kwargs: Any) -> None:
        if amp_mode not in ("fp16", "bf16"):
            raise ValueError(f"MixedPrecision(amp_mode={amp_mode!r}): use 'fp16' or 'bf16'.")
        self.amp_mode, self.scaler_kwargs = amp_mode, scaler_kwargs
        self.autocast: torch.autocast | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self.dtype: torch.dtype | None = None
        self._entered = self._skipped = self._stepped = self._warned = False
        self._device_type: str | None = None

    def _setup(self) -> None:
        params = next(self.learn.model.parameters(), None)
        device = params.device if params is not None else torch.device(self.learn.dls.device)
        if device.type == self._device_type and self.autocast is not None:
            return
        self._device_type = device.type
        if self.amp_mode == "fp16" and device.type in self.fp16_devices:
            self.dtype = torch.float16
            self.scaler = torch.amp.GradScaler(device.type, **self.scaler_kwargs)
        else:
            if self.amp_mode == "fp16" and not self._warned:
                warnings.warn(f"to_fp16(): float16 mixed precision needs a CUDA GPU; on this {device.type} device "
                              f"learnkit trains in bfloat16 autocast instead (same memory saving, no loss scaling "
                              f"needed). Call to_bf16() to ask for that directly, or to_fp32() for full precision.",
                              UserWarning, stacklevel=2)
                self._warned = True
            self.dtype, self.scaler = torch.bfloat16, None
            if device.type == "cpu" and any(isinstance(m, nn.RNNBase) for m in self.learn.model.modules()) \
                    and not cpu_bf16_rnn_supported():
                warnings.warn("bfloat16 autocast can't run this model's recurrent layers on this CPU (its oneDNN has "
                              "no bfloat16 RNN kernel: no AVX512-BF16), so learnkit trains in float32 here.",
                              UserWarning, stacklevel=2)
                self.dtype = torch.float32
        self.autocast = torch.autocast(device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)
        self.learn.scaler = self.scaler

    def before_fit(self) -> None:
        """Choose the autocast dtype (and scaler) for the model's device."""
        self._exit()  # a fit interrupted by an error (e.g. KeyboardInterrupt) may have left autocast on
        self._setup()

    def before_validate(self) -> None:
        """Also set up for ``validate``/``get_preds`` called outside ``fit``."""
        self._setup()

    def before_batch(self) -> None:
        """Enter autocast for the forward pass and the loss."""
        self.autocast.__enter__()
        self._entered = True

    def after_pred(self) -> None:
        """Loss and metrics get float32 outputs."""
        learn = self.learn
        learn.pred = _to_float(learn.pred)

    def after_loss(self) -> None:
        """Leave autocast before the backward pass."""
        self._exit()

    def after_cancel_batch(self) -> None:
        """Leave autocast if the batch was cancelled inside it."""
        self._exit()

    def _exit(self) -> None:
        if self._entered:
            self.autocast.__exit__(None, None, None)
            self._entered = False

    def before_backward(self) -> None:
        """Scale the loss (CUDA float16) so small gradients don't underflow."""
        if self.scaler is not None:
            self.learn.loss_grad = self.scaler.scale(self.learn.loss_grad)

    def before_step(self) -> None:
        """Unscale the gradients; skip the step (``CancelStepException``) when they overflowed."""
        if self.scaler is None:
            return
        self._skipped, self._stepped = True, True
        self.scaler.step(self)  # calls self.step() only when the gradients are finite
        if self._skipped:
            raise CancelStepException()

    def after_step(self) -> None:
        """Update the loss scale (only after the scaler checked this batch's gradients)."""
        if self._stepped:
            self.scaler.update()
            self._stepped = False

    # the GradScaler treats this callback as the optimizer: it unscales these groups and calls step() if finite
    @property
    def param_groups(self) -> list[dict]:
        """The real optimizer's parameter groups (for ``GradScaler.unscale_``)."""
        return self.learn.opt.param_groups

    def step(self, *args: Any, **kwargs: Any) -> None:
        """Called by ``GradScaler.step`` when the gradients are finite: the learner then steps for real."""
        self._skipped = False

    def after_fit(self) -> None:
        """Leave autocast if a fit ended inside it."""
        self._exit()


def _replace_precision(learn: "Learner", cb: MixedPrecision | None) -> "Learner":
    old = [c for c in learn.cbs if isinstance(c, MixedPrecision)]
    for c in old:
        c._exit()
    learn.remove_cbs(old)
    if cb is not None:
        learn.add_cb(cb)
    return learn


def to_fp16(learn: "Learner", **scaler_kwargs: Any) -> "Learner":
    """Train in float16 mixed precision on CUDA (bfloat16 autocast elsewhere, with a warning); returns ``learn``."""
    return _replace_precision(learn, MixedPrecision("fp16", **scaler_kwargs))


def to_bf16(learn: "Learner") -> "Learner":
    """Train in bfloat16 autocast (CPU or GPU); returns ``learn``."""
    return _replace_precision(learn, MixedPrecision("bf16"))


def to_fp32(learn: "Learner") -> "Learner":
    """Back to full float32 precision; returns ``learn``."""
    if hasattr(learn, "scaler"):
        learn.scaler = None
    return _replace_precision(learn, None)


def to_channels_last(learn: "Learner") -> "Learner":
    """Store the model's 4-d weights channels-last (faster convolutions on recent GPUs); returns ``learn``."""
    learn.model.to(memory_format=torch.channels_last)
    return learn


def test_overflow(x: torch.Tensor) -> bool:
    """Whether ``x`` holds an infinity or a NaN (fastai's overflow check for half-precision gradients)."""
    s = float(x.float().sum())
    return s == float("inf") or s == float("-inf") or s != s


test_overflow.__test__ = False  # not a pytest test, despite its (fastai's) name


def grad_overflow(pgs: list) -> bool:
    """Whether any gradient of the parameter lists ``pgs`` overflowed."""
    return any(p.grad is not None and test_overflow(p.grad.data) for pg in pgs for p in pg)
