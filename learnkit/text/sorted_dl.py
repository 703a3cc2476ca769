"""fastai's ``SortedDL``: a ``DataLoader`` that reads items longest first (validation), or shuffled in chunks of
similar length with the longest batch first (training), so padded batches waste little."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..data.core import DataLoader

__all__ = ["SortedDL"]


def _default_sort(x: Any) -> int:
    return len(x[0])


class SortedDL(DataLoader):
    """Items in the order of ``sort_func`` (default: the length of the first value), longest first.

    ``res``: ``sort_func`` of every item, if known (it saves a pass over the dataset). With ``shuffle``, items are
    shuffled, sorted within chunks of ``50 * bs``, batched, and the batches shuffled, the longest one first (so a
    batch too big for memory fails at once). fastai's; a learnkit DataLoader otherwise (``before_batch=``,
    ``create_batch=``, workers...).
    """

    def __init__(self, dataset: Any = None, sort_func: Callable | None = None, res: Sequence | None = None,
                 bs: int | None = 64, **kwargs: Any) -> None:
        super().__init__(dataset, bs=bs, **kwargs)
        self.sort_func = _default_sort if sort_func is None else sort_func
        self._set_res(res)

    def _set_res(self, res: Sequence | None) -> None:
        n = self.n or 0
        self.res = [self.sort_func(self.do_item(i)) for i in range(n)] if res is None else list(res)
        if len(self.res) != n:
            raise ValueError(f"SortedDL: res has {len(self.res)} values for {n} items; give one per item, or None.")
        self.idx_max = int(np.argmax(self.res)) if self.res else 0

    def get_idxs(self) -> Any:
        """Longest first; with ``shuffle``, ``shuffle_fn``'s order."""
        idxs = super().get_idxs()
        if self.shuffle:
            return idxs
        return sorted(idxs, key=lambda i: self.res[i], reverse=True)

    def shuffle_fn(self, idxs: Sequence) -> list:
        """Random order, sorted within chunks of ``50 * bs``; batches shuffled, the longest batch first."""
        idxs = np.random.permutation(len(self.dataset))
        at = int(np.where(idxs == self.idx_max)[0][0])
        idxs[0], idxs[at] = idxs[at], idxs[0]
        sz = (self.bs or 1) * 50
        chunks = [sorted(idxs[i:i + sz], key=lambda i: self.res[i], reverse=True) for i in range(0, len(idxs), sz)]
        ordered = [int(i) for c in chunks for i in c]
        bs = self.bs or 1
        batches = [ordered[i:i + bs] for i in range(0, len(ordered), bs)]
        if len(batches) <= 2:
            return [i for b in batches for i in b]
        middle = [batches[1:-1][j] for j in np.random.permutation(len(batches) - 2)]
        return [i for b in [batches[0], *middle, batches[-1]] for i in b]

    def new(self, dataset: Any = None, val_res: Sequence | None = None, **kwargs: Any) -> "SortedDL":
        """A copy with attributes changed; still sorted (``val_res``: the sort values of a new ``dataset``)."""
        res = kwargs.pop("res", None)
        val_res = res if val_res is None else val_res
        dl = super().new(dataset, **kwargs)
        out = SortedDL.__new__(SortedDL)
        out.__dict__.update(dl.__dict__)
        out.sort_func = self.sort_func
        out._set_res(val_res if val_res is not None else (self.res if dataset is None else None))
        return out
