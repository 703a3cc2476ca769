"""Language-model metrics: perplexity."""
from __future__ import annotations

import torch

from .loss import AvgLoss

__all__ = ["Perplexity", "perplexity"]


class Perplexity(AvgLoss):
    """Perplexity of a language model: ``exp`` of the mean cross-entropy loss over the set (fastai's)."""

    @property
    def name(self) -> str:
        """fastai's column name."""
        return "perplexity"

    @property
    def value(self) -> float | None:
        """``exp(mean loss)``."""
        return float(torch.exp(torch.as_tensor(float(self.total) / self.count))) if self.count else None


perplexity = Perplexity()
