"""Prediction-time callbacks: ``MCDropoutCallback`` keeps dropout on during validation (Monte Carlo dropout)."""
from __future__ import annotations

from torch import nn

from .core import Callback
from .hook import flatten_model

__all__ = ["MCDropoutCallback"]


def _dropouts(model: nn.Module) -> list[nn.Module]:
    return [m for m in flatten_model(model) if "dropout" in type(m).__name__.lower()]


class MCDropoutCallback(Callback):
    """Turn the model's dropout layers back to training mode while validating or predicting (fastai's).

    ``learn.get_preds(cbs=[MCDropoutCallback()])`` run several times gives a spread of predictions.
    """

    def before_validate(self) -> None:
        """Dropout layers to train mode."""
        for m in _dropouts(self.learn.model):
            m.train()

    def after_validate(self) -> None:
        """Dropout layers back to eval mode."""
        for m in _dropouts(self.learn.model):
            m.eval()
