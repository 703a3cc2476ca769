"""L1/L2 penalties added to the training loss, with the meaning Keras gives them (``keras.regularizers.L1L2``).

Not weight decay: ``wd=`` (``Learner``, ``fit``) is decoupled weight decay (AdamW-style, the weights shrink
by ``lr * wd`` each step, outside the gradient). Here the penalty ``l1 * sum(|w|) + l2 * sum(w**2)`` is part
of the loss, so its gradient goes through the optimizer (Adam rescales it like any gradient).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from .core import Callback

__all__ = ["L1L2Regularizer", "weight_params"]


def weight_params(model: nn.Module) -> list[nn.Parameter]:
    """The trainable weight matrices and kernels of ``model`` (parameters with 2+ dimensions: no biases, no norms)."""
    return [p for p in model.parameters() if p.requires_grad and p.ndim > 1]


class L1L2Regularizer(Callback):
    """Adds ``l1 * sum(|w|) + l2 * sum(w**2)`` over ``params(model)`` (default: weights only) to each training loss.

    Keras' ``L1L2(l1, l2)`` put on every layer's kernel: no ``1/2`` factor, the sum (not the mean) over weights.
    The training loss in the table includes the penalty (as Keras reports it); the validation loss does not.
    """

    order, run_valid = 5, False  # before callbacks that scale the loss for the backward pass

    def __init__(self, l1: float = 0.0, l2: float = 0.0,
                 params: Callable[[nn.Module], Iterable[nn.Parameter]] = weight_params) -> None:
        if l1 < 0 or l2 < 0:
            raise ValueError(f"L1L2Regularizer: l1={l1} and l2={l2} must be >= 0.")
        self.l1, self.l2, self.params = float(l1), float(l2), params

    def penalty(self) -> torch.Tensor:
        """The current penalty (a scalar tensor with gradient)."""
        ps = list(self.params(self.learn.model))
        if not ps:
            return torch.zeros((), device=self.learn._model_device())
        total = torch.zeros((), device=ps[0].device, dtype=torch.float32)
        for p in ps:
            if self.l1:
                total = total + self.l1 * p.abs().sum()
            if self.l2:
                total = total + self.l2 * p.pow(2).sum()
        return total

    def after_loss(self) -> None:
        """Add the penalty to the training loss (backpropagated and logged)."""
        learn = self.learn
        if not learn.training or learn.loss_grad is None or not (self.l1 or self.l2):
            return
        learn.loss_grad = learn.loss_grad + self.penalty()
        learn.loss = learn.loss_grad.detach()

    def __repr__(self) -> str:
        return f"L1L2Regularizer(l1={self.l1}, l2={self.l2})"
