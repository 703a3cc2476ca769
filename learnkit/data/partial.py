"""fastai's ``PartialDL``: each epoch reads ``partial_n`` items drawn at random, for quick runs on big datasets."""
from __future__ import annotations

from typing import Any

import numpy as np

from .core import DataLoader, DataLoaders, attach_addon

__all__ = ["PartialDL", "partial_dataloaders"]


class PartialDL(DataLoader):
    """A loader that reads ``partial_n`` random items (without replacement) per epoch; all of them when None.

    As fastai's, ``new()`` (what ``get_preds``/``validate`` use) gives an ordinary loader over every item.
    """

    def __init__(self, dataset: Any = None, bs: int | None = None, partial_n: int | None = None, **kwargs: Any) -> None:
        super().__init__(dataset, bs=bs, **kwargs)
        if partial_n is not None and (isinstance(partial_n, bool) or not isinstance(partial_n, int) or partial_n <= 0):
            raise ValueError(f"PartialDL: partial_n must be a positive number of items, got {partial_n!r}.")
        self.partial_n = min(partial_n, self.n) if partial_n else None

    def get_idxs(self) -> Any:
        """``partial_n`` distinct indices in random order (NumPy's generator, seeded by ``set_seed``)."""
        if self.partial_n is None:
            return super().get_idxs()
        return list(np.random.choice(self.n, self.partial_n, replace=False))

    def __len__(self) -> int:
        if self.partial_n is None:
            return super().__len__()
        n, bs = self.partial_n, self.bs or 1
        return n // bs + (0 if self.drop_last or n % bs == 0 else 1)


def partial_dataloaders(dsets: Any, partial_n: int, bs: int = 64, **kwargs: Any) -> DataLoaders:
    """fastai's ``Datasets.partial_dataloaders``: a ``PartialDL`` of ``partial_n`` items per epoch for training."""
    extra = [{}] * (dsets.n_subsets - 1)
    return dsets.dataloaders(bs=bs, dl_type=PartialDL, dl_kwargs=({"partial_n": partial_n}, *extra), **kwargs)


attach_addon("partial_dataloaders", partial_dataloaders)
