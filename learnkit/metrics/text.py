"""Language-model metrics: perplexity and corpus BLEU."""
from __future__ import annotations

import math
from collections import Counter
from typing import Any

import torch

from .base import Metric
from .loss import AvgLoss

__all__ = ["Perplexity", "perplexity", "CorpusBLEUMetric"]


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


def _ngrams(seq: list, n: int) -> list[tuple]:
    return [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]


class CorpusBLEUMetric(Metric):
    """BLEU-4 over the whole validation corpus (fastai's): token ids from ``pred.argmax(axis)`` against the targets.

    Clipped n-gram precisions for n = 1..4 are summed over every sentence; a sentence with no match at some n
    counts 1/2, 1/4, ... instead (exponential smoothing); short output is penalised by ``exp(1 - targ/pred)``.
    ``vocab_sz`` is accepted for fastai's signature (n-grams here are tuples, so it needs no bound).
    """

    def __init__(self, vocab_sz: int = 5000, axis: int = -1) -> None:
        self.vocab_sz, self.axis = vocab_sz, axis
        self.reset()

    @property
    def name(self) -> str:
        """fastai's column name."""
        return "CorpusBLEU"

    def reset(self) -> None:
        """Forget the counts."""
        self.pred_len, self.targ_len, self.corrects, self.counts = 0, 0, [0.0] * 4, [0] * 4

    def accumulate(self, learn: Any) -> None:
        """Add a validation batch (``learn.pred``, ``learn.yb[0]``); training batches are skipped."""
        if getattr(learn, "training", False):
            return
        self.update(learn.pred, learn.yb[0])

    def update(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        """Add the sentences of ``pred`` (scores over the vocabulary) and ``targ`` (token ids)."""
        for p, t in zip(pred.argmax(dim=self.axis).tolist(), targ.tolist()):
            self.pred_len += len(p)
            self.targ_len += len(t)
            smooth = 1
            for n in range(1, 5):
                pg, tg = Counter(_ngrams(p, n)), Counter(_ngrams(t, n))
                correct = sum(min(c, tg[g]) for g, c in pg.items())
                if correct == 0:
                    smooth *= 2
                    correct = 1 / smooth
                self.corrects[n - 1] += correct
                self.counts[n - 1] += max(len(p) - n + 1, 0)

    @property
    def value(self) -> float | None:
        """The corpus BLEU score in [0, 1] (None before any sentence)."""
        if self.pred_len == 0:
            return None
        if min(self.counts) == 0:
            return 0.0
        precs = [c / t for c, t in zip(self.corrects, self.counts)]
        penalty = math.exp(1 - self.targ_len / self.pred_len) if self.pred_len < self.targ_len else 1.0
        return penalty * math.prod(precs) ** 0.25
