"""fastai's ``TfmdLists`` with ``.dataloaders`` (apart from data/mid.py, which the loaders' module imports)."""
from __future__ import annotations

from typing import Any

from .core import DataLoaders
from .mid import TfmdLists as _TfmdLists
from .transforms import infer_kind

__all__ = ["TfmdLists"]


class TfmdLists(_TfmdLists):
    """Items plus a ``Pipeline`` applied lazily on indexing, with splits and ``dataloaders`` (fastai's)."""

    def dataloaders(self, bs: int = 64, after_item: Any = None, after_batch: Any = None, num_workers: int = 0,
                    device: Any = None, **kwargs: Any) -> DataLoaders:
        """Training and validation ``DataLoaders`` over the splits; a tuple item (``fastuple``) is a sample of values."""
        train, valid = self.train, self.valid
        sample = train[0] if len(train) else None
        vals = tuple(sample) if isinstance(sample, tuple) else (sample,)
        kinds = tuple(infer_kind(v) for v in vals) if sample is not None else None
        n_inp = 1 if len(vals) == 1 else len(vals) - 1  # fastai's: all values but the last are inputs
        return DataLoaders.from_dsets(train, valid, bs=bs, num_workers=num_workers, device=device,
                                      item_tfms=after_item, batch_tfms=after_batch, kinds=kinds, n_inp=n_inp, **kwargs)
