"""DataBlock: a recipe (blocks, getters, splitter, transforms) that turns a source into DataLoaders."""
from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from pathlib import Path as _PathBase
from typing import Any

import numpy as np
import torch

from .blocks import TransformBlock, resolve_block
from .core import DataLoader, DataLoaders, Datasets, _block_tfms
from .leak_checks import warn_split_overlap
from .hf import hf_rows, is_hf_dataset, is_hf_stream, stream_dataloaders
from .splitters import RandomSplitter, check_splits
from .transforms import TRAIN, Transform, sort_by_order

__all__ = ["DataBlock"]


def _default_blocks() -> tuple:
    # the API's default (ImageBlock, CategoryBlock); imported here to keep the data layer free of vision at import time
    from ..vision.core import ImageBlock
    from .blocks import CategoryBlock
    return (ImageBlock, CategoryBlock)


def _as_list(x: Any) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


class DataBlock:
    """Recipe for DataLoaders: what the values are (blocks), how to get them, how to split, how to augment."""

    def __init__(self, blocks: Sequence | None = None, get_items: Callable | None = None, get_x: Any = None,
                 get_y: Any = None, splitter: Callable | None = None, item_tfms: Any = None, batch_tfms: Any = None,
                 n_inp: int | None = None, getters: Sequence[Callable | None] | None = None) -> None:
        self.block_specs = _as_list(blocks) if blocks is not None else list(_default_blocks())
        if len(self.block_specs) < 1:
            raise ValueError("DataBlock needs at least one block, e.g. blocks=(ImageBlock, CategoryBlock).")
        self.n_inp = n_inp if n_inp is not None else max(1, len(self.block_specs) - 1)
        self.get_items = get_items
        self.splitter = splitter if splitter is not None else RandomSplitter()
        self._splitter_given = splitter is not None  # else a DatasetDict's own splits are used
        self.item_tfms = _as_list(item_tfms)
        self.batch_tfms = _as_list(batch_tfms)
        n = len(self.block_specs)
        if getters is not None:
            if len(getters) != n:
                raise ValueError(f"getters has {len(getters)} entries but there are {n} blocks: give one per block.")
            self.getters = list(getters)
        else:
            self.getters = [None] * n
            for fns, start, count, name in ((get_x, 0, self.n_inp, "get_x"), (get_y, self.n_inp, n - self.n_inp, "get_y")):
                if fns is None:
                    continue
                fns = _as_list(fns)
                if len(fns) != count:
                    raise ValueError(f"{name} has {len(fns)} function(s) but there are {count} "
                                     f"{'input' if name == 'get_x' else 'target'} block(s) (n_inp={self.n_inp}): "
                                     f"give one per block.")
                self.getters[start:start + count] = fns

    # -- building
    def _new_blocks(self) -> list[TransformBlock]:
        # fresh block instances per call, so vocabularies learned for one source don't leak into another
        return [resolve_block(b) for b in self.block_specs]

    def _items(self, source: Any) -> Any:
        if self.get_items is None and is_hf_dataset(source):
            return hf_rows(source)  # rows of a datasets.Dataset / DatasetDict, read lazily
        items = self.get_items(source) if self.get_items is not None else source
        if items is None or len(items) == 0:
            where = f" in {source}" if isinstance(source, (str, _PathBase)) else ""
            hint = (" Check the path, and that the folder holds files with a known extension (get_image_files looks "
                    "for .jpg, .png, ...)." if where else " Check the source you passed.")
            raise ValueError(f"DataBlock found no items{where}.{hint}")
        return items

    def datasets(self, source: Any, verbose: bool = False) -> Datasets:
        """Items from ``source`` -> split -> a ``Datasets`` with vocabularies learned on the training split."""
        blocks = self._new_blocks()
        items = self._items(source)
        presplit = getattr(items, "presplit", False) and not getattr(self, "_splitter_given", True)
        splits = check_splits(items.splits() if presplit else self.splitter(items), len(items), self.splitter)
        train, valid, extra = splits[0], splits[1], splits[2:]  # a third split is the test set
        if not train:
            raise ValueError(f"The splitter {self.splitter!r} put none of the {len(items)} items in the training set: "
                             f"check its arguments (e.g. train_name/valid_name, valid_pct).")
        warn_split_overlap(items, self.getters[0] if self.getters else None, splits)
        if hasattr(items, "setup_blocks"):  # ClassLabel names become the vocabulary, in their order
            items.setup_blocks(self.getters, blocks)
        pipelines = [([g] if g is not None else []) + b.type_tfms for g, b in zip(self.getters, blocks)]
        dsets = Datasets(items, pipelines, splits=(train, valid, *extra), kinds=[b.kind for b in blocks],
                         n_inp=self.n_inp, blocks=blocks, getters=self.getters)
        dsets.setup()
        if verbose:
            print(f"{len(items)} items: {len(train)} train, {len(valid)} valid"
                  + "".join(f", {len(e)} test" for e in extra))
        return dsets

    def dataloaders(self, source: Any, bs: int = 64, num_workers: int | None = None,
                    device: torch.device | str | None = None, shuffle: bool = True,
                    path: str | os.PathLike | None = None, verbose: bool = False, val_bs: int | None = None,
                    **kwargs: Any) -> DataLoaders:
        """Build the training and validation DataLoaders for ``source`` (``path``: the source folder by default)."""
        if is_hf_stream(source):  # a streaming datasets.IterableDataset: length unknown
            return stream_dataloaders(self, source, bs=bs, val_bs=val_bs, num_workers=num_workers, device=device,
                                      path=path or ".", **kwargs)
        dsets = self.datasets(source, verbose=verbose)
        if path is None:
            path = source if isinstance(source, (str, _PathBase)) and os.path.isdir(source) else "."
        own = _own_batcher(dsets.blocks)
        if own is not None:  # blocks that batch their own way (text: LM streams, length-sorted batches)
            return own.build_dataloaders(dsets, bs=bs, val_bs=val_bs, device=device, shuffle=shuffle, path=path,
                                         **kwargs)
        item_tfms, batch_tfms = self._stage_tfms(dsets.blocks)
        common = dict(num_workers=num_workers, device=device, kinds=dsets.kinds, n_inp=dsets.n_inp,
                      blocks=dsets.blocks, item_tfms=item_tfms, batch_tfms=batch_tfms, **kwargs)
        train = DataLoader(dsets.train, bs=bs, shuffle=shuffle, **{"drop_last": shuffle, **common})
        evals = [DataLoader(dsets.subset(i), bs=val_bs or bs, shuffle=False, drop_last=False, **common)
                 for i in range(1, len(dsets.splits))]  # valid, then test when the splitter made one
        return DataLoaders(train, *evals, path=path, getters=self.getters)

    def weighted_dataloaders(self, source: Any, wgts: Any = None, bs: int = 64, verbose: bool = False,
                             **kwargs: Any) -> DataLoaders:
        """``dataloaders`` whose training loader draws by weight (fastai's): ``wgts`` has one weight per item of
        ``source`` (fastai's; the training items' are used) or per training item, or is ``'balanced'`` (every class
        equally often) or None (uniform, with replacement); see ``WeightedDL``."""
        dls = self.dataloaders(source, bs=bs, verbose=verbose, **kwargs)
        if wgts is not None and not isinstance(wgts, str):
            w, train = np.asarray(wgts, dtype=float), dls.train.dataset
            n_items = len(train.dsets.items)
            if w.ndim == 1 and len(w) == n_items:
                w = w[train.idxs]  # fastai: one weight per item, the training split's kept
            elif w.ndim != 1 or len(w) != len(train):
                raise ValueError(f"weighted_dataloaders: {w.size} weights for {n_items} items ({len(train)} in "
                                 f"training); give one weight per item of the source (or per training item).")
            wgts = w
        return dls.weighted(wgts)

    def new(self, item_tfms: Any = None, batch_tfms: Any = None) -> "DataBlock":
        """A copy of this recipe with other ``item_tfms`` and ``batch_tfms`` (None: none besides the blocks' own)."""
        res = copy.copy(self)
        res.item_tfms, res.batch_tfms = _as_list(item_tfms), _as_list(batch_tfms)
        return res

    def _stage_tfms(self, blocks: list[TransformBlock]) -> tuple[list[Transform], list[Transform]]:
        return (sort_by_order(_block_tfms(blocks, "item_tfms") + self.item_tfms),
                sort_by_order(_block_tfms(blocks, "batch_tfms") + self.batch_tfms))

    # -- debugging
    def summary(self, source: Any, bs: int = 4, show_batch: bool = False, **kwargs: Any) -> None:
        """Walk one item through every step, printing each result, and say exactly which step breaks."""
        def step(name: str, fn: Callable, *args: Any) -> Any:
            try:
                return fn(*args)
            except Exception as e:
                print(f"  FAILED at: {name}\n  {type(e).__name__}: {e}")
                raise RuntimeError(f"DataBlock.summary: the step '{name}' failed ({type(e).__name__}: {e}). "
                                   f"Fix that step and run summary again.") from e

        print("Collecting items")
        items = step("get_items", self._items, source)
        print(f"  found {len(items)} items; first: {_short(items.iloc[0] if hasattr(items, 'iloc') else items[0])}")
        dsets = step("building the Datasets (split, vocab setup)", self.datasets, source)
        print("Split: " + ", ".join(f"{len(s)} {n}" for n, s in zip(("train", "valid", "test"), dsets.splits)))
        own = _own_batcher(dsets.blocks)
        if own is not None:  # a block that batches its own way (text) learns its vocab when it builds the loaders
            print(f"{own.name} builds the loaders (bs={bs})")
            dls = step(f"{own.name}: building the loaders",
                       lambda: own.build_dataloaders(dsets, bs=bs, shuffle=False, **kwargs))
        for b in dsets.blocks:
            if b.vocab is not None:
                print(f"  {b.name} vocab ({len(b.vocab)}): {_short(b.vocab)}")
        if dsets.vocab is not None:
            from .imbalance import label_counts
            for i, name in zip(range(len(dsets.splits)), ("train", "valid", "test")):
                print(f"  label counts ({name}): {_short(label_counts(dsets, i))}")
        i0 = dsets.splits[0][0]
        item = dsets._item(i0)
        print(f"\nBuilding one sample from item {_short(item)}")
        sample = []
        for k, (pipe, block) in enumerate(zip(dsets.pipelines, dsets.blocks)):
            x = item
            print(f"  value {k} ({block.name}, kind {block.kind!r})")
            for f in pipe:
                x = step(f"{block.name}: {_name(f)}", f, x)
                print(f"    {_name(f)} -> {_short(x)}")
            sample.append(x)
        if own is not None:
            b = step("one training batch", dls.train.one_batch)
            print(f"\nA training batch of {bs}\n  {_short(b)}\n\nAll steps ran.")
            if show_batch:
                dls.show_batch(max_n=bs)
            return
        item_tfms, batch_tfms = self._stage_tfms(dsets.blocks)
        s = tuple(sample)
        print("\nItem transforms (training split)")
        for t in item_tfms:
            s = step(f"item transform {t!r}", t, s, dsets.kinds, TRAIN)
            print(f"  {t!r} -> {_short(s)}")
        print(f"\nCollating a batch of {bs}")
        dl = DataLoader(dsets.train, bs=bs, shuffle=False, num_workers=0, kinds=dsets.kinds, n_inp=dsets.n_inp,
                        blocks=dsets.blocks, item_tfms=item_tfms, batch_tfms=[], **kwargs)
        b = step("collating a batch (items must all have the same size)", lambda: next(iter(dl)))
        print(f"  {_short(b)}")
        print("\nBatch transforms (on the device)")
        for t in batch_tfms:
            b = step(f"batch transform {t!r}", t, b, dsets.kinds, TRAIN)
            print(f"  {t!r} -> {_short(b)}")
        print("\nAll steps ran.")
        if show_batch:
            dl.batch_tfms = batch_tfms
            dl.show_batch()


def _own_batcher(blocks: Sequence[TransformBlock]) -> TransformBlock | None:
    """The block that builds its own loaders (text: LM streams, length-sorted batches), if any."""
    return next((b for b in blocks if hasattr(b, "build_dataloaders")), None)


def _name(f: Any) -> str:
    return getattr(f, "__qualname__", None) or type(f).__name__


def _short(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"Tensor(shape={tuple(x.shape)}, dtype={x.dtype})"
    if isinstance(x, tuple):
        return "(" + ", ".join(_short(v) for v in x) + ")"
    if hasattr(x, "size") and isinstance(getattr(x, "mode", None), str):  # a PIL image
        return f"{type(x).__name__}(mode={x.mode}, size={x.size})"
    if hasattr(x, "to_dict") and hasattr(x, "index"):  # a DataFrame row
        x = x.to_dict()
    r = repr(x)
    return r if len(r) < 120 else r[:117] + "..."
