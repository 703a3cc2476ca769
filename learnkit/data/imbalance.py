"""Imbalanced classes: label counts per split, ``class_weights`` for the loss, and ``WeightedDL`` for oversampling.

Targets are read without loading the inputs: a ``DataBlock`` split runs only the target's pipeline (no
image is decoded), a table split reads its ``ys`` tensor, a ``TensorDataset`` its last tensor. Any other
torch dataset is indexed item by item.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import WeightedRandomSampler

from .core import DataLoader, DataLoaders, _apply_pipeline, attach_addon

__all__ = ["item_targets", "label_counts", "class_weights", "WeightedDL", "split_summary"]


def _as_int(v: Any) -> Any:
    return int(v) if isinstance(v, (int, np.integer)) or (isinstance(v, torch.Tensor) and v.numel() == 1) else v


def item_targets(ds: Any) -> list:
    """The target of every item of dataset ``ds``, in order (class ids for a category target; rows for multi-label)."""
    dsets = getattr(ds, "dsets", None)
    if dsets is not None and hasattr(ds, "idxs"):  # a DataBlock split: the target pipeline only
        pipe = dsets.pipelines[dsets.n_inp]
        return [_as_int(_apply_pipeline(pipe, dsets._item(i))) for i in ds.idxs]
    ys = getattr(ds, "ys", None)
    if isinstance(ys, torch.Tensor):  # a table split
        ys = ys.reshape(len(ys), -1)
        return ys[:, 0].tolist() if ys.shape[1] == 1 else ys.tolist()
    tensors = getattr(ds, "tensors", None)
    if tensors:  # TensorDataset
        return [_as_int(v) for v in tensors[-1]]
    return [_as_int(ds[i][-1]) for i in range(len(ds))]


def _vocab(dls_or_dl: Any) -> list | None:
    v = getattr(dls_or_dl, "vocab", None)
    return list(v) if v is not None else None


def _split(data: Any, ds_idx: int) -> Any:
    """Split ``ds_idx`` of DataLoaders or a Datasets, or a loader's own dataset."""
    if hasattr(data, "loaders"):
        return data[ds_idx].dataset
    if hasattr(data, "splits"):
        return data.subset(ds_idx)
    return data.dataset


def label_counts(dls: Any, ds_idx: int = 0) -> dict:
    """``{label: number of items}`` of one split (default training), in vocabulary order; multi-label: positives.

    ``dls``: DataLoaders, a ``Datasets`` or one loader.
    """
    targets = item_targets(_split(dls, ds_idx))
    vocab = _vocab(dls)
    if targets and isinstance(targets[0], (list, torch.Tensor)):  # multi-hot rows
        sums = torch.as_tensor(np.asarray([np.asarray(t, dtype=float) for t in targets])).sum(0)
        names = vocab if vocab is not None else list(range(len(sums)))
        return {n: int(c) for n, c in zip(names, sums.tolist())}
    counts = Counter(targets)
    if vocab is None:
        return dict(sorted(counts.items(), key=lambda kv: str(kv[0])))
    if all(isinstance(k, int) for k in counts):
        return {v: counts.get(i, 0) for i, v in enumerate(vocab)}
    return {v: counts.get(v, 0) for v in vocab}


def class_weights(dls: Any, method: str | None = "balanced", ds_idx: int = 0) -> torch.Tensor:
    """One weight per class for the loss (``CrossEntropyLossFlat(weight=...)``), on the loaders' device.

    ``'balanced'`` is scikit-learn's formula: ``n_samples / (n_classes * count_of_class)`` over the training
    split, so rare classes weigh more and the weights average to 1 per item. ``None`` gives ones.
    """
    vocab = _vocab(dls)
    if vocab is None:
        raise ValueError("class_weights needs a classification target with a vocabulary (a CategoryBlock); these "
                         "loaders have none.")
    counts = label_counts(dls, ds_idx)
    c = torch.tensor([counts[v] for v in vocab], dtype=torch.float32)
    if method is None:
        w = torch.ones(len(vocab))
    elif method == "balanced":
        empty = [v for v, n in counts.items() if n == 0]
        if empty:
            raise ValueError(f"class_weights('balanced'): the class(es) {empty[:5]} have no training items, so their "
                             f"weight would be infinite. Drop them from the vocab or change the split.")
        w = c.sum() / (len(vocab) * c)
    else:
        raise ValueError(f"class_weights: method={method!r} is not known; use 'balanced' or None.")
    return w.to(getattr(dls, "device", "cpu"))


class WeightedDL(DataLoader):
    """A training loader drawing ``len(dataset)`` items per epoch with replacement, item ``i`` by weight ``wgts[i]``.

    fastai's ``WeightedDL``: it samples only while ``shuffle`` is on (training); ``dl.new(shuffle=False)``
    (what ``validate``/``get_preds`` use to read a split whole) reads every item once, in order.
    ``wgts=None`` weighs items equally (fastai's default); ``'balanced'`` weighs each item by
    ``1 / count of its class`` (every class drawn equally often).
    """

    def __init__(self, dataset: Any = None, bs: int = 64, wgts: Sequence[float] | str | None = None,
                 shuffle: bool = True, **kwargs: Any) -> None:
        super().__init__(dataset, bs=bs, shuffle=shuffle, **{"drop_last": shuffle, **kwargs})
        self.wgts = self._weights(wgts)

    def _weights(self, wgts: Any) -> torch.Tensor:
        n = len(self.dataset)
        if n == 0 and wgts is None:
            return torch.ones(0, dtype=torch.float64)  # an empty split (no validation items): nothing to draw
        if isinstance(wgts, str):
            if wgts != "balanced":
                raise ValueError(f"WeightedDL: wgts={wgts!r}; pass one weight per item or 'balanced'.")
            targets = item_targets(self.dataset)
            counts = Counter(targets)
            return torch.tensor([1.0 / counts[t] for t in targets], dtype=torch.float64)
        w = torch.ones(n, dtype=torch.float64) if wgts is None else torch.as_tensor(np.asarray(wgts, dtype=float))
        if w.ndim != 1 or len(w) != n:
            raise ValueError(f"WeightedDL: {w.numel()} weights for {n} items; give one weight per training item.")
        if bool((w < 0).any()) or not bool(w.sum() > 0):
            raise ValueError("WeightedDL: weights must be >= 0 with a positive sum.")
        return w

    def sampler(self) -> Any:
        """Weighted draws with replacement while shuffling; otherwise every item in order."""
        return WeightedRandomSampler(self.wgts, num_samples=len(self.dataset), replacement=True) \
            if self.shuffle else None

    def preload(self) -> "WeightedDL":
        """Refused: a preloaded copy is served in order or shuffled, not drawn by weight."""
        raise ValueError("WeightedDL can't be preloaded (preload() serves items in order or shuffled, not by weight): "
                         "use an ordinary loader with preload(), or WeightedDL without it.")

    def new(self, dataset: Any = None, **kwargs: Any) -> DataLoader:
        """A copy with attributes changed; still weighted while it keeps the items and shuffles."""
        dl = super().new(dataset, **kwargs)
        return WeightedDL.from_loader(dl, self.wgts) if dataset is None and dl.shuffle else dl

    @classmethod
    def from_loader(cls, dl: DataLoader, wgts: Any = "balanced") -> "WeightedDL":
        """``dl`` (a learnkit DataLoader: same items, transforms, device) drawing by weight."""
        if not isinstance(dl, DataLoader):
            raise TypeError(f"WeightedDL wraps learnkit DataLoaders; got a {type(dl).__name__}. For tables use "
                            f"TabWeightedDL (to.weighted_dataloaders(wgts)), or weigh the loss: "
                            f"loss_func=CrossEntropyLossFlat(weight=class_weights(dls)).")
        w = cls.__new__(cls)
        w.__dict__.update(dl.new(shuffle=True).__dict__)  # a fresh copy: its torch loader is built on first use
        w._preloaded = None  # a preloaded copy would be served shuffled, not drawn by weight
        w.wgts = w._weights(wgts)
        return w

    def __repr__(self) -> str:
        return f"WeightedDL({self.n} items, bs={self.bs}, device={self.device})"


def split_summary(dls: Any) -> pd.DataFrame:
    """Print each split's size and label counts; return the counts (one column per split) as a DataFrame."""
    names = ["train", "valid", "test"] + [f"split_{i}" for i in range(3, len(dls.loaders))]
    cols = {}
    for i, name in enumerate(names[:len(dls.loaders)]):
        try:
            cols[name] = label_counts(dls, i)
        except (TypeError, IndexError, KeyError, AttributeError):  # no readable targets (e.g. an unlabelled test)
            continue
    df = pd.DataFrame({k: v for k, v in cols.items() if v}).fillna(0).astype(int) if any(cols.values()) \
        else pd.DataFrame()
    sizes = ", ".join(f"{len(dl.dataset)} {name}" + ("" if name in cols else " (unlabelled)")
                      for name, dl in zip(names, dls.loaders))
    print(f"{type(dls).__name__}: {sizes} items")
    if len(df):
        df.index.name = "label"
        print(df.to_string())
    return df


def weighted_loaders(dls: DataLoaders, wgts: Any = "balanced") -> DataLoaders:
    """``dls`` with the training loader drawing by weight (``WeightedDL``); what ``DataLoaders.weighted`` runs."""
    return DataLoaders(WeightedDL.from_loader(dls.train, wgts), *dls.loaders[1:], path=dls.path, getters=dls.getters)


attach_addon("weighted", weighted_loaders)
attach_addon("summary", split_summary)


def datasets_weighted_dataloaders(dsets: Any, wgts: Any, bs: int = 64, **kwargs: Any) -> DataLoaders:
    """fastai's ``Datasets.weighted_dataloaders``: a ``WeightedDL`` for training (one weight per training item)."""
    extra = [{}] * (dsets.n_subsets - 1)
    return dsets.dataloaders(bs=bs, dl_type=WeightedDL, dl_kwargs=({"wgts": wgts}, *extra), **kwargs)


attach_addon("weighted_dataloaders", datasets_weighted_dataloaders)
