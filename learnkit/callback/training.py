"""Callbacks that change how a training step happens: gradient accumulation, gradient clipping, stopping on NaN."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .core import Callback, CancelBatchException, CancelFitException, CancelTrainException, CancelValidException

__all__ = ["GradientAccumulation", "GradientClip", "TerminateOnNaNCallback", "BnFreeze", "ShortEpochCallback"]


def _batch_size(learn: Any) -> int:
    """Items in the current batch (from the first target, else the first input)."""
    for b in (learn.yb, learn.xb):
        if b and isinstance(b[0], torch.Tensor) and b[0].ndim:
            return b[0].shape[0]
    raise ValueError("Can't tell the batch size: the batch's first target (or input) is not a tensor with a batch "
                     "dimension.")


def _params_with_grad(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for g in opt.param_groups for p in g["params"] if p.grad is not None]


class GradientAccumulation(Callback):
    """Steps the optimizer only once ``n_acc`` items have been seen, as one step on a batch that big.

    Each batch's loss is scaled by ``bs / n_acc`` so the gradients add up to the gradient of the mean loss
    over the items seen; when the accumulated count overshoots ``n_acc`` (batch sizes that don't divide it)
    the gradients are rescaled before the step, so it is exactly the mean over the items accumulated. The
    reported loss is unchanged. A partial accumulation left at the end of a fit is dropped.
    Needs a loss that averages over the batch (``reduction='mean'``).
    """

    order = 6  # before MixedPrecision (10): a skipped step must not unscale the gradients
    run_valid = False

    def __init__(self, n_acc: int = 32) -> None:
        if n_acc < 1:
            raise ValueError(f"GradientAccumulation(n_acc={n_acc}): n_acc is a number of items, at least 1.")
        self.n_acc = n_acc
        self.count = 0

    def before_fit(self) -> None:
        """Start counting from zero with clean gradients."""
        self.count = 0
        self.learn.opt.zero_grad()

    def after_loss(self) -> None:
        """Scale the loss used for the backward pass by ``bs / n_acc``."""
        self.learn.loss_grad = self.learn.loss_grad * (_batch_size(self.learn) / self.n_acc)

    def before_step(self) -> None:
        """Skip the step (and the zeroing of gradients) until ``n_acc`` items are accumulated."""
        self.count += _batch_size(self.learn)
        if self.count < self.n_acc:
            raise CancelBatchException()
        if self.count != self.n_acc:  # overshoot: gradients hold sum / n_acc, make them sum / count
            with torch.no_grad():
                for p in _params_with_grad(self.learn.opt):
                    p.grad.mul_(self.n_acc / self.count)
        self.count = 0

    def after_fit(self) -> None:
        """Drop a partial accumulation."""
        self.count = 0
        if self.learn.opt is not None:
            self.learn.opt.zero_grad()


class GradientClip(Callback):
    """Clips the gradients' global ``norm_type`` norm to ``max_norm`` before each step (``clip_grad_norm_``).

    Runs after ``MixedPrecision`` (order 10) has unscaled the gradients, so it clips the true gradients.
    ``total_norm`` holds the norm before clipping (a tensor, read it only when you need it).
    """

    order = 11
    run_valid = False

    def __init__(self, max_norm: float = 1., norm_type: float = 2.) -> None:
        self.max_norm, self.norm_type = max_norm, norm_type
        self.total_norm: torch.Tensor | None = None

    def before_step(self) -> None:
        """Clip the gradients of the optimizer's parameters."""
        params = _params_with_grad(self.learn.opt)
        if params:
            self.total_norm = nn.utils.clip_grad_norm_(params, self.max_norm, norm_type=self.norm_type)


class TerminateOnNaNCallback(Callback):
    """Stops the fit (``CancelFitException``) as soon as a batch's loss is NaN or infinite, before it reaches the weights.

    The check runs right after the loss (one device sync per batch), so the weights keep their last finite
    values.
    """

    order = -9

    @property
    def name(self) -> str:
        """Reachable as ``learn.terminate_on_nan``."""
        return "terminate_on_nan"

    def after_loss(self) -> None:
        """Raise ``CancelFitException`` on a non-finite loss."""
        loss = self.learn.loss
        if loss is not None and not bool(torch.isfinite(loss).all()):
            phase = "training" if self.learn.training else "validation"
            print(f"Loss is {float(loss.detach().float().mean())} at epoch {self.learn.epoch}, {phase} batch "
                  f"{self.learn.iter}: stopping the fit.")
            raise CancelFitException()


class BnFreeze(Callback):
    """Keeps the running statistics of frozen batch-norm layers fixed while training (fastai's ``BnFreeze``).

    Pair it with ``train_bn=False`` so that freezing the body freezes its batch-norm layers too: they
    are put in eval mode for each training phase, while the new head's layers keep learning their
    statistics. With ``keep_after_unfreeze=True`` the layers that were frozen once keep their
    pretrained statistics after ``unfreeze()`` as well (their affine weights still train), which is
    Keras' advice for fine-tuning and what works on a few hundred images, where batch statistics are
    too noisy to replace the pretrained ones.
    """

    order = 1  # right after the loop has put the model in training mode

    def __init__(self, keep_after_unfreeze: bool = False) -> None:
        self.keep_after_unfreeze = keep_after_unfreeze
        self._kept: set[int] = set()

    def before_train(self) -> None:
        """Put the frozen (or once-frozen) batch-norm layers back in eval mode for this training phase."""
        for m in self.learn.model.modules():
            if not isinstance(m, nn.modules.batchnorm._BatchNorm):
                continue
            frozen = not any(p.requires_grad for p in m.parameters(recurse=False))
            if frozen and self.keep_after_unfreeze:
                self._kept.add(id(m))
            if frozen or id(m) in self._kept:
                m.eval()


class ShortEpochCallback(Callback):
    """Run only the first ``pct`` of each epoch's batches (and of validation when ``short_valid``), for quick checks (fastai's)."""

    def __init__(self, pct: float = 0.01, short_valid: bool = True) -> None:
        if not 0 < pct <= 1:
            raise ValueError(f"ShortEpochCallback(pct={pct!r}): pct is the fraction of each epoch to run, in (0, 1].")
        self.pct, self.short_valid = pct, short_valid

    def after_batch(self) -> None:
        """Cancel the rest of the phase once ``pct`` of its batches are done."""
        learn = self.learn
        n = learn.n_iter
        if not n or learn.iter / n < self.pct:
            return
        if learn.training:
            raise CancelTrainException()
        if self.short_valid:
            raise CancelValidException()
