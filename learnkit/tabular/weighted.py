"""``TabWeightedDL``: a tabular loader drawing its training rows with replacement, with probabilities ``wgts`` (fastai's)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..data.preload import preloaded_batches
from .core import TabularPandas, attach_loaders
from .data import TabDataLoader, TabularDataLoaders

__all__ = ["TabWeightedDL", "weighted_dataloaders"]


class TabWeightedDL(TabDataLoader):
    """A ``TabDataLoader`` whose shuffled epochs draw ``len(dataset)`` rows with replacement, row ``i`` with
    probability ``wgts[i] / sum(wgts)``; unshuffled it reads the rows in order, as fastai's."""

    def __init__(self, dataset: Any, bs: int = 16, wgts: Sequence[float] | None = None, shuffle: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(dataset, bs=bs, shuffle=shuffle, **kwargs)
        n = len(dataset)
        w = np.ones(n, dtype=np.float64) if wgts is None else np.asarray(wgts, dtype=np.float64).reshape(-1)
        if len(w) != n:
            raise ValueError(f"TabWeightedDL: got {len(w)} weights for {n} rows; pass one weight per row of the "
                             f"split (the training rows for weighted_dataloaders).")
        if (w < 0).any() or not np.isfinite(w).all() or (n and w.sum() <= 0):
            raise ValueError("TabWeightedDL: weights must be finite, non-negative and not all zero.")
        self.wgts = w / w.sum() if n else w

    def get_idxs(self) -> list[int]:
        """The row order of one epoch: weighted draws with replacement when shuffled, else ``0..n-1``."""
        n = len(self.dataset)
        if n == 0:
            return []
        if not self.shuffle:
            return list(range(n))
        return torch.multinomial(torch.from_numpy(self.wgts), n, replacement=True).tolist()

    def __iter__(self) -> Iterator[tuple]:
        if not self.shuffle:
            yield from super().__iter__()
            return
        cats, conts, ys = self._data()
        idx = torch.as_tensor(self.get_idxs(), dtype=torch.int64, device=cats.device)
        tensors = (cats[idx],) + ((conts[idx],) if self.with_cont else ()) + ((ys[idx],) if ys is not None else ())
        yield from preloaded_batches(tensors, self.bs, False, self.drop_last)

    def new(self, dataset: Any = None, **kwargs: Any) -> TabDataLoader:
        """A copy with some attributes changed; the weights stay when the rows do."""
        wgts = kwargs.pop("wgts", None)
        base = super().new(dataset, **kwargs)
        if wgts is None and dataset is not None and dataset is not self.dataset:
            return base
        return TabWeightedDL(base.dataset, bs=base.bs, wgts=self.wgts if wgts is None else wgts, shuffle=base.shuffle,
                             drop_last=base.drop_last, device=base.device, with_cont=base.with_cont,
                             split_idx=base.split_idx)


def weighted_dataloaders(to: TabularPandas, wgts: Sequence[float], bs: int = 64, val_bs: int | None = None,
                         device: Any = None, path: Any = ".", with_cont: bool = True) -> TabularDataLoaders:
    """fastai's ``to.weighted_dataloaders(wgts)``: training rows drawn with ``wgts`` (one per training row)."""
    dls = to.dataloaders(bs=bs, val_bs=val_bs, device=device, path=path, with_cont=with_cont)
    train = dls.train
    weighted = TabWeightedDL(train.dataset, bs=bs, wgts=wgts, shuffle=True, drop_last=train.drop_last,
                             device=train.device, with_cont=with_cont, split_idx=train.split_idx)
    return TabularDataLoaders(weighted, dls.valid, path=path)


attach_loaders("weighted_dataloaders", weighted_dataloaders)
