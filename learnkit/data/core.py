"""Datasets, DataLoader and DataLoaders: items in, batches of plain tensors on the device out.

``Datasets`` turns raw items into item-level values (a PIL image, a class index) with one pipeline
per block. ``DataLoader`` wraps ``torch.utils.data.DataLoader``: item transforms run per item in its
workers, batches are collated, moved to the device and run through the batch transforms there.
``DataLoaders`` holds a training and a validation loader plus what inference needs (``test_dl``).
"""
from __future__ import annotations

import gc
import os
import random
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path as _PathBase
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import Dataset, IterableDataset, default_collate

from ..utils import Path, default_device, to_device
from .blocks import EncodedMultiCategorize, MultiCategorize, TransformBlock, _present
from .load import HOOKS, LoopHooks
from .preload import check_preloadable, collect, n_batches, preload_order, preloaded_batches
from .transforms import TRAIN, VALID, Transform, apply_transforms, decode_transforms, sort_by_order

__all__ = ["Datasets", "TfmdSubset", "DataLoader", "DataLoaders", "RAW_INPUT_TYPES", "attach_addon"]

# Add-ons built on this module (data/imbalance.py: oversampling and split summaries) attach what some DataLoaders
# methods call, so this module imports none of them; ``learnkit.data`` imports every add-on when it loads.
_ADDONS: dict[str, Callable[..., Any]] = {}


def attach_addon(name: str, fn: Callable[..., Any]) -> None:
    """Make ``fn(dls, ...)`` what ``DataLoaders.<name>(...)`` runs (``'weighted'``, ``'summary'``)."""
    _ADDONS[name] = fn

# values a block's type transforms take directly (so test_dl / predict skip get_x for them)
RAW_INPUT_TYPES = (str, _PathBase, Image.Image, np.ndarray, torch.Tensor, bytes)


def _apply_pipeline(fns: Sequence[Callable], x: Any) -> Any:
    for f in fns:
        x = f(x)
    return x


def _default_workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        n = os.cpu_count() or 1
    return min(8, n)


class Datasets:
    """Raw items plus one pipeline (getter + type transforms) per block; indexable, split into train/valid."""

    def __init__(self, items: Sequence | None = None, pipelines: Sequence[Sequence[Callable]] | None = None,
                 splits: tuple | None = None,
                 kinds: Sequence[str] | None = None, n_inp: int | None = None,
                 blocks: Sequence[TransformBlock] | None = None, getters: Sequence[Callable | None] | None = None, tfms: Sequence | None = None,
                 tls: Sequence | None = None, do_setup: bool = True, split_idx: int | None = None, **kwargs: Any) -> None:
        if tfms is None and kinds is None and blocks is None and getters is None:
            tfms = pipelines  # fastai's Datasets(items, [[x tfms], [y tfms]], splits=...)
            if tfms is None and tls is None:
                tfms = [None]  # fastai's Datasets(items): the items as they are, one value each
        self.tls = None
        if tls is not None or tfms is not None:  # fastai's mode: one TfmdLists per value (data/mid.py)
            from .mid import TfmdLists
            self.tls = list(tls) if tls is not None else [
                TfmdLists(items, t, splits=splits, split_idx=split_idx, do_setup=do_setup) for t in tfms]
            self.items, self.split_idx = self.tls[0].items, split_idx
            self.n_inp = n_inp if n_inp is not None else (1 if len(self.tls) == 1 else len(self.tls) - 1)
            self.splits, self.blocks, self.kinds = self.tls[0].splits, None, None
            self.pipelines, self.getters = [], []
            return
        n_inp = 1 if n_inp is None else n_inp
        self.items = items
        self.pipelines = [list(p) for p in pipelines]
        self.splits = splits if splits is not None else (list(range(len(items))), [])
        self.kinds = tuple(kinds) if kinds is not None else ("generic",) * len(self.pipelines)
        self.n_inp, self.blocks = n_inp, list(blocks) if blocks is not None else None
        self.getters = list(getters) if getters is not None else [None] * len(self.pipelines)

    def __len__(self) -> int:
        return len(self.items)

    def _item(self, i: int) -> Any:
        it = self.items
        return it.iloc[i] if hasattr(it, "iloc") else it[i]

    def __getitem__(self, i: int) -> tuple:
        if self.tls is not None:
            res = tuple(tl[i] for tl in self.tls)
            return res if isinstance(i, (int, np.integer)) else list(zip(*res))
        item = self._item(i)
        return tuple(_apply_pipeline(p, item) for p in self.pipelines)

    @property
    def train(self) -> "TfmdSubset":
        """The training split."""
        return self.subset(0)

    @property
    def valid(self) -> "TfmdSubset":
        """The validation split."""
        return self.subset(1)

    def decode(self, o: tuple) -> tuple:
        """Undo each value's transforms (fastai's mode)."""
        return tuple(tl.decode(v) for v, tl in zip(o, self.tls or []))

    def dataloaders(self, bs: int = 64, after_item: Any = None, after_batch: Any = None, num_workers: int = 0,
                    device: Any = None, dl_type: type | None = None, dl_kwargs: Sequence[dict] | None = None,
                    **kwargs: Any) -> "DataLoaders":
        """Training and validation loaders over the splits (fastai's ``after_item``/``after_batch`` transforms;
        ``dl_type``: the loader class, ``dl_kwargs``: extra arguments for each split's loader)."""
        from .transforms import infer_kind
        kinds = tuple(infer_kind(v) for v in self.train[0]) if len(self.train) else None
        return DataLoaders.from_dsets(self.train, self.valid, bs=bs, num_workers=num_workers, device=device,
                                      item_tfms=after_item, batch_tfms=after_batch, kinds=kinds, n_inp=self.n_inp,
                                      dl_type=dl_type, dl_kwargs=dl_kwargs, **kwargs)

    @property
    def n_subsets(self) -> int:
        """How many splits."""
        return len(self.splits)

    def weighted_dataloaders(self, wgts: Any, bs: int = 64, **kwargs: Any) -> "DataLoaders":
        """``dataloaders`` whose training loader draws by weight (``WeightedDL``; one weight per training item)."""
        return _ADDONS["weighted_dataloaders"](self, wgts, bs=bs, **kwargs)

    def partial_dataloaders(self, partial_n: int, bs: int = 64, **kwargs: Any) -> "DataLoaders":
        """``dataloaders`` whose training loader reads ``partial_n`` random items per epoch (``PartialDL``)."""
        return _ADDONS["partial_dataloaders"](self, partial_n, bs=bs, **kwargs)

    @property
    def vocab(self) -> list | None:
        """Vocab of the first target block (``dsets.vocab``, as in fastai)."""
        if self.tls is not None:
            return getattr(self.tls[min(self.n_inp, len(self.tls) - 1)], "vocab", None)
        b = self.blocks
        return b[self.n_inp].vocab if b and len(b) > self.n_inp else None

    def subset(self, i: int) -> "TfmdSubset":
        """Split ``i`` (0 train, 1 valid, 2 test when the splitter made three)."""
        if self.tls is not None:
            return Datasets(tls=[tl.subset(i) for tl in self.tls], n_inp=self.n_inp, split_idx=i)
        return TfmdSubset(self, self.splits[i], TRAIN if i == 0 else VALID)

    def setup(self) -> None:
        """Fit stateful encoders (vocabularies) on the training split, then check the validation labels."""
        for p in self.pipelines:
            for j, f in enumerate(p):
                if not hasattr(f, "setup"):
                    continue
                before = p[:j]
                f.setup(_apply_pipeline(before, self._item(i)) for i in self.splits[0])
                o2i = getattr(f, "_o2i", None)
                for k in range(1, len(self.splits)):
                    if o2i is not None and len(self.splits[k]):
                        self._check_valid_labels(before, f, o2i, k)

    def _check_valid_labels(self, before: list, enc: Any, o2i: dict, k: int = 1) -> None:
        multi = isinstance(enc, MultiCategorize)
        if isinstance(enc, EncodedMultiCategorize) or getattr(enc, "encoded", False) or getattr(enc, "add_na", False):
            return  # one-hot rows; or unknown labels map to '#na#'
        unseen: dict = {}
        for i in self.splits[k]:
            lab = _apply_pipeline(before, self._item(i))
            for l in (lab if multi else [lab]):
                l = l.item() if isinstance(l, np.generic) else l
                if l not in o2i:
                    key = l if _present(l) else "<missing: None/NaN>"
                    unseen[key] = unseen.get(key, 0) + 1
        if unseen:
            shown = ", ".join(f"{k!r} ({v} items)" for k, v in list(unseen.items())[:5])
            split = "validation" if k == 1 else "test"
            raise ValueError(
                f"The {split} set has label(s) never seen in the training set: {shown}. The model can't learn "
                f"classes it never trains on: change the split (e.g. a different seed or a stratified "
                f"TrainTestSplitter), or pass CategoryBlock(vocab=[...]) listing every class.")

    def __repr__(self) -> str:
        if self.tls is not None:
            return f"Datasets({len(self)} items, {len(self.tls)} values, n_inp={self.n_inp})"
        test = f", {len(self.splits[2])} test" if len(self.splits) > 2 else ""
        return f"Datasets({len(self.splits[0])} train, {len(self.splits[1])} valid{test} items, kinds={self.kinds})"


class TfmdSubset(Dataset):
    """One split of a ``Datasets``: a torch map-style dataset of item-level tuples."""

    def __init__(self, dsets: Datasets, idxs: Sequence[int], split_idx: int) -> None:
        self.dsets, self.idxs, self.split_idx = dsets, list(idxs), split_idx

    def __len__(self) -> int:
        return len(self.idxs)

    def __getitem__(self, i: int) -> tuple:
        return self.dsets[self.idxs[i]]

    @property
    def items(self) -> list:
        """The raw items of this split."""
        return [self.dsets._item(i) for i in self.idxs]

    @property
    def vocab(self) -> list | None:
        """Vocab of the first target block."""
        return self.dsets.vocab


class _ItemTfmDataset(Dataset):
    """Applies item transforms (in DataLoader workers) on top of a dataset of item-level tuples."""

    def __init__(self, dataset: Any, item_tfms: list[Transform], kinds: tuple, split_idx: int) -> None:
        self.dataset, self.item_tfms, self.kinds, self.split_idx = dataset, item_tfms, kinds, split_idx

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple:
        sample = self.dataset[i]
        if not isinstance(sample, tuple):
            sample = tuple(sample) if isinstance(sample, list) else (sample,)
        return apply_transforms(self.item_tfms, sample, self.kinds, self.split_idx)


def _collate(batch: list) -> Any:
    try:
        return default_collate(batch)
    except RuntimeError as e:
        shapes = {tuple(v.shape) for s in batch for v in (s if isinstance(s, tuple) else (s,))
                  if isinstance(v, torch.Tensor) and v.ndim >= 2}
        if "stack expects each tensor to be equal size" in str(e) and len(shapes) > 1:
            raise RuntimeError(
                f"Can't batch items of different sizes {sorted(shapes)[:4]}: add an item transform that gives "
                f"every item the same size, e.g. item_tfms=Resize(224) or RandomResizedCrop(224).") from e
        raise


def _start_workers(torch_dl: TorchDataLoader) -> Iterator:
    """``iter(torch_dl)`` with the parent's objects frozen while it forks its workers.

    A forked worker inherits every object of the parent, garbage not yet collected included (e.g. a dropped
    Learner and its loaders: callbacks and learner point at each other). Were the worker's collector to free
    such a loader's iterator, its ``__del__`` would try to stop workers that belong to the parent and print
    "AssertionError: can only test a child process". Frozen objects are never collected in the worker.
    """
    if not torch_dl.num_workers:
        return iter(torch_dl)
    gc.freeze()
    try:
        return iter(torch_dl)
    finally:
        gc.unfreeze()


def _stop_workers(torch_dl: TorchDataLoader, pid: int) -> None:
    """Shut down the persistent worker processes of ``torch_dl`` (in the process that started them)."""
    if os.getpid() != pid:  # a forked child: the workers are not its own
        return
    it = getattr(torch_dl, "_iterator", None)
    if it is not None and hasattr(it, "_shutdown_workers"):
        it._shutdown_workers()
    torch_dl._iterator = None


# DataLoader.new() arguments that leave the item-transformed data as it is (a preloaded copy is shared)
_KEEPS_PRELOAD = frozenset(("bs", "batch_size", "shuffle", "drop_last", "batch_tfms", "num_workers", "device",
                            "pin_memory", "persistent_workers"))


class DataLoader(LoopHooks):
    """A torch DataLoader plus learnkit's item/batch transforms and device handling; yields batches of tensors.

    fastai's arguments and defaults: ``bs=None`` yields the items one by one, unbatched; any source with
    ``__getitem__``/``__len__`` (a list, a ``range``, an ``L``) or without (an iterator, a generator:
    ``indexed=False``, ``n=`` its length if known); every loop step (``create_item``, ``after_item``,
    ``before_batch``, ``create_batch``, ``after_batch``, ``get_idxs``, ``before_iter``, ``after_iter``...) can be
    passed as an argument or overridden in a subclass (data/load.py runs that loop). Loaders that ``DataBlock``
    builds (``kinds``, item/batch transforms) read their items through a torch sampler instead.
    """

    def __init__(self, dataset: Any = None, bs: int | None = None, num_workers: int | None = 0,
                 pin_memory: bool | None = None, timeout: float = 0, batch_size: int | None = None,
                 shuffle: bool = False, drop_last: bool | None = None, indexed: bool | None = None,
                 n: int | None = None, device: torch.device | str | None = None,
                 persistent_workers: bool | None = None,
                 item_tfms: Sequence[Transform] | None = None, batch_tfms: Sequence[Transform] | None = None,
                 kinds: Sequence[str] | None = None, n_inp: int = 1, blocks: Sequence[TransformBlock] | None = None,
                 split_idx: int | None = None, collate_fn: Callable | None = None,
                 torch_dl: TorchDataLoader | None = None, **kwargs: Any) -> None:
        for name in HOOKS:  # fastai's DataLoader(create_item=f, after_iter=g, ...)
            if name in kwargs:
                f = kwargs.pop(name)
                if isinstance(f, (list, tuple)):  # after_item=[tfm, ...]: composed in order, as fastai's Pipeline
                    from .mid import Pipeline
                    f = Pipeline(f)
                setattr(self, name, f)
        bs = bs if batch_size is None else batch_size  # torch's (and fastai's) name for bs
        if torch_dl is not None:
            bs = torch_dl.batch_size or bs
        if bs is not None and (isinstance(bs, bool) or not isinstance(bs, int) or bs <= 0):
            raise ValueError(f"bs (the batch size) must be a positive integer, got {bs!r} (or None: the items one by "
                             f"one): e.g. bs=64, or a smaller bs if the batches don't fit in memory.")
        drop_last = bool(drop_last)
        if bs is None and drop_last and torch_dl is None:
            raise ValueError("drop_last=True needs a batch size: with bs=None the items come one by one.")
        self.torch_dl_given = torch_dl
        self.dataset = torch_dl.dataset if dataset is None and torch_dl is not None else dataset
        if indexed is None:
            indexed = hasattr(self.dataset, "__getitem__") and not isinstance(self.dataset, IterableDataset)
        if not indexed and shuffle and torch_dl is None:  # a torch DataLoader given brings its own order
            raise ValueError(f"shuffle=True needs a dataset that can be indexed; this {type(self.dataset).__name__} "
                             f"can only be iterated. Shuffle its items first, or pass a list.")
        self.bs, self.indexed, self._n, self.timeout = bs, indexed, n, timeout
        self.shuffle, self.drop_last = shuffle, drop_last
        self.num_workers = _default_workers() if num_workers is None else num_workers
        self.device = torch.device(device) if device is not None else default_device()
        self.item_tfms = sort_by_order(item_tfms)
        self.batch_tfms = sort_by_order(batch_tfms)
        self.n_inp, self.blocks = n_inp, list(blocks) if blocks is not None else None
        self.kinds = tuple(kinds) if kinds is not None else None
        self.split_idx = split_idx if split_idx is not None else getattr(self.dataset, "split_idx", TRAIN if shuffle else VALID)
        self.pin_memory, self.persistent_workers = pin_memory, persistent_workers
        self.collate_fn, self.kwargs = collate_fn, kwargs
        self.rng = random.Random(0)  # fastai's shuffling generator: randomize() reseeds it every epoch
        self.added_batch_tfms: list[Transform] = []  # added later (vision_learner's Normalize): kept by new()
        self._torch_dl: TorchDataLoader | None = torch_dl
        self._stop: weakref.finalize | None = None  # stops persistent workers when this loader goes
        self._preloaded: tuple[torch.Tensor, ...] | None = None  # set by preload()

    def _fastai_loop(self) -> bool:
        """Whether batches come from fastai's loop (data/load.py) rather than a torch sampler."""
        if self.torch_dl_given is not None or self._preloaded is not None:
            return False
        if self.bs is None or self._hooks_given():
            return True
        learnkit_items = self.collate_fn or self.kinds or self.item_tfms or self.batch_tfms  # e.g. a DataBlock stream
        if not self.indexed:
            return not learnkit_items
        own_sampler = type(self).sampler is not DataLoader.sampler or {"sampler", "batch_sampler"} & self.kwargs.keys()
        return not (own_sampler or learnkit_items)

    def _item_source(self) -> Any:
        items = self.__dict__.get("_epoch_items")
        return self.dataset if items is None else items

    def __getattr__(self, k: str) -> Any:
        """Unknown attributes come from the dataset (fastai's ``GetAttr``: ``dl.vocab``, ``dl.items``)."""
        ds = self.__dict__.get("dataset")
        if k.startswith("_") or ds is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {k!r}")
        try:
            return getattr(ds, k)
        except AttributeError:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {k!r} (nor has its dataset, "
                                 f"a {type(ds).__name__})") from None

    # -- the torch loader, built lazily so `new()` and attribute changes are cheap
    @property
    def torch_dl(self) -> TorchDataLoader:
        """The underlying ``torch.utils.data.DataLoader``."""
        if self._torch_dl is None:
            ds = self.item_dataset()
            n = len(self.dataset) if hasattr(self.dataset, "__len__") else None  # None: an IterableDataset
            workers = self.num_workers if n != 0 else 0
            cuda = self.device.type == "cuda"
            persistent = (workers > 0) if self.persistent_workers is None else self.persistent_workers and workers > 0
            sampler = self.sampler()
            self._torch_dl = TorchDataLoader(
                ds, batch_size=self.bs, shuffle=self.shuffle and sampler is None and n is not None,
                drop_last=self.drop_last and (n is None or n > self.bs),
                num_workers=workers, collate_fn=self.collate_fn or _collate,
                pin_memory=cuda if self.pin_memory is None else self.pin_memory,
                persistent_workers=persistent, **self.kwargs, **({"sampler": sampler} if sampler is not None else {}))
            if persistent:
                # Stop the workers when this loader goes. Left to torch, a loader freed by the cycle collector (a
                # Learner and its callbacks form a cycle) has its queues finalised before the iterator, and the
                # shutdown then waits 5 s per worker. The finalizer holds the torch loader, keeping its queues alive.
                self._stop = weakref.finalize(self, _stop_workers, self._torch_dl, os.getpid())
        return self._torch_dl

    def sampler(self) -> Any:
        """The torch sampler that orders items (None: in order, or shuffled); ``WeightedDL`` draws by weight."""
        return None

    def item_dataset(self) -> Any:
        """The dataset with the item transforms applied (what the torch loader's workers index)."""
        if not self.item_tfms:
            return self.dataset
        if hasattr(self.dataset, "with_item_tfms"):  # a stream (data/hf.py's HFStream) runs them as it iterates
            return self.dataset.with_item_tfms(self.item_tfms, self._require_kinds(), self.split_idx)
        return _ItemTfmDataset(self.dataset, self.item_tfms, self._require_kinds(), self.split_idx)

    def preload(self) -> "DataLoader":
        """Decode and item-transform every item once and keep the collated tensors on ``self.device``.

        Each later batch is an index into them (shuffled per epoch for training), then the batch transforms:
        no decoding, no workers. For data that fits in device memory; item transforms must not draw at random
        on the training split (move the randomness to batch transforms). ``new()`` shares the kept tensors when
        only batching, batch transforms or the device change; with other items or item transforms it decodes.
        """
        check_preloadable(self)
        if len(self.dataset) == 0:
            return self  # nothing to keep (e.g. no validation split)
        given = self.torch_dl_given
        if given is not None:  # serve batches as the wrapped torch loader would
            self.shuffle, self.drop_last = preload_order(given), given.drop_last
        elif {"sampler", "batch_sampler"} & self.kwargs.keys():
            raise ValueError("preload() serves batches in order or shuffled: it can't follow a custom sampler or "
                             "batch_sampler. Leave the loader un-preloaded, or drop the sampler.")
        collate = self.collate_fn or getattr(given, "collate_fn", None) or _collate
        workers = {k: v for k, v in self.kwargs.items() if k in ("worker_init_fn", "multiprocessing_context")}
        ordered = TorchDataLoader(self.item_dataset(), batch_size=max(self.bs, 256), shuffle=False,
                                  num_workers=self.num_workers, collate_fn=collate, **workers)
        self._preloaded = collect(_start_workers(ordered), len(self.dataset), self.device)
        if given is None:
            self._close()  # the workers are not needed any more
        return self

    @property
    def preloaded(self) -> bool:
        """Whether ``preload()`` keeps this loader's data on the device."""
        return self._preloaded is not None

    def _require_kinds(self) -> tuple:
        if self.kinds is None:
            raise ValueError("Item/batch transforms need to know what each value is: this loader has no kinds. "
                             "Build it with DataBlock or pass kinds=('image', 'category').")
        return self.kinds

    def __len__(self) -> int:
        if self._preloaded is not None:
            return n_batches(self._preloaded[0].shape[0], self.bs, self.drop_last)
        if not self._fastai_loop():
            return len(self.torch_dl)
        n = self.n
        if n is None:
            raise TypeError(f"This DataLoader reads a {type(self.dataset).__name__}, which has no length: pass n= "
                            f"(the number of items) to give it one, or iterate it without len().")
        if self.bs is None:
            return n
        return n // self.bs + (0 if self.drop_last or n % self.bs == 0 else 1)

    def __iter__(self) -> Iterator[Any]:
        if self._fastai_loop():
            yield from self._loop_iter()
            return
        dev, tfms, split = self.device, self.batch_tfms, self.split_idx
        kinds = self.kinds if tfms else None
        if self._preloaded is not None:
            source: Iterator = preloaded_batches(self._preloaded, self.bs, self.shuffle, self.drop_last)
            move = self._preloaded[0].device != dev
        else:
            source = _start_workers(self.torch_dl)
            move = dev.type != "cpu"  # the torch loader already yields CPU tensors
        for b in source:
            b = tuple(b) if isinstance(b, (tuple, list)) else (b,)
            if move:
                b = to_device(b, dev)
            if tfms:
                b = apply_transforms(tfms, b, kinds, split)
            yield b

    def _loop_iter(self) -> Iterator[Any]:
        """One epoch of fastai's loop (data/load.py): batches keep the items' structure (a bare tensor stays bare)."""
        dev, tfms = self.device, self.batch_tfms
        self.randomize()
        self.before_iter()
        self._idxs = self.get_idxs()  # drawn here, in the main process, so workers share one order
        self._epoch_items = self.item_dataset() if self.item_tfms else None
        source = self._loop_batches()
        if isinstance(source, TorchDataLoader):
            source = _start_workers(source)
        for b in source:
            if dev.type != "cpu":
                b = to_device(b, dev)
            if tfms:
                b = tuple(b) if isinstance(b, (tuple, list)) else (b,)
                b = apply_transforms(tfms, b, self.kinds, self.split_idx)
            yield self.after_batch(b)
        self.after_iter()
        for k in ("it", "_epoch_items"):
            self.__dict__.pop(k, None)

    @property
    def n(self) -> int | None:
        """Number of items (``n=`` when given; None for a source without a length)."""
        if self._n is not None:
            return self._n
        return len(self.dataset) if hasattr(self.dataset, "__len__") else None

    @n.setter
    def n(self, value: int | None) -> None:
        self._n = value

    def one_batch(self) -> Any:
        """The first batch (with transforms applied, on the device), read without worker processes."""
        if self.n is not None and (self.n == 0 or len(self) == 0):
            raise ValueError("This DataLoader has no batch (its dataset is empty, or smaller than bs with "
                             "drop_last=True): there is no batch to show or check.")
        if not self._fastai_loop():
            return next(iter(self))
        workers, self.num_workers = self.num_workers, 0
        try:
            return next(iter(self))
        finally:
            self.num_workers = workers
            self.__dict__.pop("it", None)

    def to(self, device: torch.device | str) -> "DataLoader":
        """Send future batches to ``device``."""
        self.device = torch.device(device)
        if self.torch_dl_given is None:
            self._close()
        if self._preloaded is not None:
            self._preloaded = tuple(t.to(self.device) for t in self._preloaded)
        return self

    def _close(self) -> None:
        """Stop the worker processes and drop the torch loader (rebuilt on the next use)."""
        if self._stop is not None:
            self._stop()
            self._stop = None
        self._torch_dl = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if self.torch_dl_given is None:  # the torch loader and its workers are rebuilt where it is used
            state["_torch_dl"], state["_stop"] = None, None
        state["_preloaded"] = None  # device data stays behind: preload() again after unpickling
        return state

    def new(self, dataset: Any = None, **kwargs: Any) -> "DataLoader":
        """A copy with some attributes changed (``bs``, ``item_tfms``, ``batch_tfms``, ``shuffle``, ...).

        ``item_tfms``/``batch_tfms`` replace the transforms given to the DataBlock; those the blocks need
        (``ToTensor``, ``IntToFloatTensor``) and those added since (``vision_learner``'s ``Normalize``) stay,
        unless the new list has one of the same class.
        """
        fixed = {"item_tfms": _block_tfms(self.blocks, "item_tfms"),
                 "batch_tfms": _block_tfms(self.blocks, "batch_tfms") + self.added_batch_tfms}
        for key, keep in fixed.items():
            if kwargs.get(key) is not None:
                given = sort_by_order(kwargs[key])
                kwargs[key] = sort_by_order([t for t in keep if not any(type(g) is type(t) for g in given)] + given)
        same = dataset is None
        args = dict(dataset=self.dataset if same else dataset, bs=self.bs, shuffle=self.shuffle,
                    drop_last=self.drop_last, num_workers=self.num_workers, device=self.device, timeout=self.timeout,
                    indexed=self.indexed if same else None, n=self._n if same else None,
                    **{h: self.__dict__[h] for h in HOOKS if h in self.__dict__},
                    item_tfms=self.item_tfms, batch_tfms=self.batch_tfms, kinds=self.kinds, n_inp=self.n_inp,
                    blocks=self.blocks, split_idx=self.split_idx, pin_memory=self.pin_memory,
                    persistent_workers=self.persistent_workers, collate_fn=self.collate_fn, **self.kwargs)
        if self.torch_dl_given is not None and dataset is None and not kwargs:
            args["torch_dl"] = self.torch_dl_given
        args.update(kwargs)
        dl = DataLoader(**args)
        dl.added_batch_tfms = [t for t in self.added_batch_tfms if t in dl.batch_tfms]
        changed = {k for k, v in kwargs.items() if v is not None and not (k == "split_idx" and v == self.split_idx)}
        if self._preloaded is not None and dataset is None and changed <= _KEEPS_PRELOAD:
            dl._preloaded = tuple(t.to(dl.device) for t in self._preloaded)  # the same items, item-transformed alike
        return dl

    def decode_batch(self, batch: tuple, max_n: int | None = None) -> list[tuple]:
        """Undo batch transforms (normalisation...) and decode each value with its block (labels, uint8 images)."""
        kinds = self.kinds or ("generic",) * len(batch)
        batch = decode_transforms(self.batch_tfms, tuple(batch), kinds)
        n = len(batch[0]) if max_n is None else min(max_n, len(batch[0]))
        out = []
        for i in range(n):
            vals = tuple(v[i].detach().cpu() if isinstance(v, torch.Tensor) else v[i] for v in batch)
            if self.blocks is not None:
                vals = tuple(b.decode(v) if b.kind in ("category", "multicategory") else v
                             for b, v in zip(self.blocks, vals))
            out.append(vals)
        return out

    def show_batch(self, b: tuple | None = None, max_n: int = 9, nrows: int | None = None, ncols: int | None = None,
                   figsize: tuple | None = None, unique: bool = False, **kwargs: Any) -> Any:
        """Draw up to ``max_n`` items of a batch, decoded as they were loaded; returns the matplotlib figure.

        ``unique=True`` (fastai's): the first item, ``max_n`` times through this loader's (random) transforms."""
        from .show import show_samples
        if b is None and unique:
            b = self.new(dataset=_Repeated(self.dataset, max_n), bs=max_n, shuffle=False, drop_last=False,
                         num_workers=0).one_batch()
        b = self.one_batch() if b is None else b
        samples = self.decode_batch(b, max_n=max_n)
        return show_samples(samples, self.kinds or ("generic",) * len(b), max_n=max_n, nrows=nrows, ncols=ncols,
                            figsize=figsize, **kwargs)

    def __repr__(self) -> str:
        return f"DataLoader({self.n} items, bs={self.bs}, shuffle={self.shuffle}, device={self.device})"


class _Repeated:
    """``dataset[0]``, ``n`` times (for ``show_batch(unique=True)``)."""

    def __init__(self, dataset: Any, n: int) -> None:
        self.dataset, self.n = dataset, int(n)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.dataset[0]


class DataLoaders:
    """A training and a validation ``DataLoader`` (or plain torch DataLoaders), plus what inference needs."""

    def __init__(self, *loaders: Any, path: str | os.PathLike = ".", device: torch.device | str | None = None,
                 getters: Sequence[Callable | None] | None = None) -> None:
        if not loaders:
            raise ValueError("DataLoaders needs at least a training loader: DataLoaders(train_dl, valid_dl).")
        self.loaders = [dl if isinstance(dl, DataLoader) else self._wrap(dl, i, device) for i, dl in enumerate(loaders)]
        self.path = Path(path)
        self.getters = list(getters) if getters is not None else None
        if device is not None:
            self.to(device)

    @staticmethod
    def _wrap(dl: Any, i: int, device: Any) -> DataLoader:
        if not isinstance(dl, TorchDataLoader):
            raise TypeError(f"DataLoaders takes learnkit or torch DataLoaders; loader {i} is a {type(dl).__name__}.")
        return DataLoader(torch_dl=dl, device=device, split_idx=TRAIN if i == 0 else VALID,
                          num_workers=dl.num_workers, shuffle=i == 0)

    def __getitem__(self, i: int) -> DataLoader:
        return self.loaders[i]

    def __len__(self) -> int:
        return len(self.loaders)

    @property
    def train(self) -> DataLoader:
        """The training loader."""
        return self.loaders[0]

    @property
    def valid(self) -> DataLoader:
        """The validation loader."""
        return self.loaders[1] if len(self.loaders) > 1 else self.loaders[0].new(dataset=[], shuffle=False)

    @property
    def test(self) -> DataLoader:
        """The test loader (a third split, or ``from_folder(test=...)``); an AttributeError when there is none."""
        if len(self.loaders) < 3:
            raise AttributeError("These DataLoaders have no test set: give a splitter that returns three splits "
                                 "(e.g. TrainValidTestSplitter, GrandparentSplitter(test_name='test')), pass "
                                 "test='test' to ImageDataLoaders.from_folder, or build one with dls.test_dl(items).")
        return self.loaders[2]

    @property
    def train_ds(self) -> Any:
        """The training dataset."""
        return self.train.dataset

    @property
    def valid_ds(self) -> Any:
        """The validation dataset."""
        return self.valid.dataset

    @property
    def device(self) -> torch.device:
        """Where batches go."""
        return self.train.device

    def to(self, device: torch.device | str) -> "DataLoaders":
        """Send every loader's batches to ``device``."""
        for dl in self.loaders:
            dl.to(device)
        return self

    @property
    def n_inp(self) -> int:
        """How many values of a sample are model inputs."""
        return self.train.n_inp

    @property
    def kinds(self) -> tuple:
        """The kind of each value of a sample (``'generic'`` for plain torch loaders)."""
        if self.train.kinds is not None:
            return self.train.kinds
        return ("generic",) * (self.n_inp + 1)

    @property
    def blocks(self) -> list | None:
        """The blocks that produced each value (None for plain torch loaders)."""
        return self.train.blocks

    @property
    def target_block(self) -> TransformBlock | None:
        """The first target's block."""
        b = self.blocks
        return b[self.n_inp] if b is not None and len(b) > self.n_inp else None

    @property
    def vocab(self) -> list | None:
        """Vocabulary of the first target."""
        tb = self.target_block
        return tb.vocab if tb is not None else None

    @property
    def c(self) -> int | None:
        """Number of model outputs the target needs: classes, or regression outputs."""
        tb = self.target_block
        if tb is None:
            return None
        if tb.vocab is not None:
            return len(tb.vocab)
        if tb.kind == "regression":
            if tb.config.get("n_out"):
                return tb.config["n_out"]
            ds = self.train.dataset
            if len(ds):
                y = ds[0][self.n_inp]
                return int(np.asarray(y).size)
        return None

    def weighted(self, wgts: Any = "balanced") -> "DataLoaders":
        """These loaders with the training one drawing items by weight (``WeightedDL``): oversampling.

        ``wgts``: one weight per training item, or ``'balanced'`` (each item ``1 / count of its class``, so every
        class is drawn equally often). Validation and test loaders are unchanged.
        """
        return _ADDONS["weighted"](self, wgts)

    def summary(self) -> "Any":
        """Print each split's size and label counts (targets with a vocabulary); returns the counts as a DataFrame."""
        return _ADDONS["summary"](self)

    def preload(self) -> "DataLoaders":
        """Keep every loader's item-transformed data on the device (``DataLoader.preload``)."""
        for dl in self.loaders:
            dl.preload()
        return self

    def add_batch_tfms(self, tfms: Sequence[Transform]) -> None:
        """Append batch transforms to every loader (e.g. the pretrained model's normalisation)."""
        for dl in self.loaders:
            dl.batch_tfms = sort_by_order(list(dl.batch_tfms) + list(tfms))
            dl.added_batch_tfms.extend(tfms)

    def one_batch(self) -> tuple:
        """The first training batch."""
        return self.train.one_batch()

    def show_batch(self, b: tuple | None = None, max_n: int = 9, nrows: int | None = None, ncols: int | None = None,
                   figsize: tuple | None = None, **kwargs: Any) -> Any:
        """Show a training batch; returns the matplotlib figure."""
        return self.train.show_batch(b, max_n=max_n, nrows=nrows, ncols=ncols, figsize=figsize, **kwargs)

    def new(self, **kwargs: Any) -> "DataLoaders":
        """Copy with loader attributes changed (``bs=``, ``item_tfms=``, ``batch_tfms=``, ...), e.g. to resize."""
        return DataLoaders(*[dl.new(**kwargs) for dl in self.loaders], path=self.path, getters=self.getters)

    def test_dl(self, items: Sequence, with_labels: bool = False, bs: int | None = None, rm_type_tfms: Any = None,
                **kwargs: Any) -> DataLoader:
        """A validation-style loader over new items (paths, images, arrays, or rows that get_x understands).

        Over fastai-style ``Datasets(items, tfms=...)``: the items go through the validation transforms from the one
        that takes their type (``rm_type_tfms``: how many transforms of each value to skip instead)."""
        valid = self.valid
        vds = valid.dataset
        if getattr(vds, "tls", None) is not None or type(vds).__name__ == "TfmdLists":  # fastai's mid-level Datasets
            from .mid import test_set
            n = len(vds.tls) if with_labels and getattr(vds, "tls", None) is not None else self.n_inp
            ds = test_set(vds, items, rm_tfms=rm_type_tfms, with_labels=with_labels)
            return valid.new(dataset=ds, shuffle=False, drop_last=False, split_idx=VALID, bs=bs or valid.bs,
                             kinds=valid.kinds[:n] if valid.kinds else None, **kwargs)
        if self.blocks is None:
            raise ValueError("test_dl needs DataLoaders built from blocks (DataBlock or a factory); with plain torch "
                             "loaders, build a torch DataLoader over the new items and pass it as get_preds(dl=...).")
        if isinstance(items, (str, _PathBase)) or not hasattr(items, "__len__"):
            items = [items]
        if len(items) == 0:
            raise ValueError(f"test_dl got no items (an empty {type(items).__name__}): there is nothing to predict. "
                             f"Check the list, folder or filter that produced them.")
        n = len(self.blocks) if with_labels else self.n_inp
        pipes = []
        for i, b in enumerate(self.blocks[:n]):
            g = self.getters[i] if self.getters else None
            first = items.iloc[0] if hasattr(items, "iloc") else (items[0] if len(items) else None)
            use_getter = g is not None and (with_labels or not isinstance(first, RAW_INPUT_TYPES))
            pipes.append(([g] if use_getter else []) + list(b.type_tfms))
        dsets = Datasets(items, pipes, splits=(list(range(len(items))), []), kinds=self.kinds[:n], n_inp=self.n_inp,
                         blocks=self.blocks[:n])
        return valid.new(dataset=dsets.subset(0), shuffle=False, drop_last=False, split_idx=VALID,
                         kinds=self.kinds[:n], blocks=self.blocks[:n], bs=bs or valid.bs or self.train.bs, **kwargs)

    @classmethod
    def from_dsets(cls, train_ds: Any, valid_ds: Any, bs: int = 64, num_workers: int = 0,
                   device: torch.device | str | None = None, path: str | os.PathLike = ".", dl_type: type | None = None,
                   dl_kwargs: Sequence[dict] | None = None, **kwargs: Any) -> "DataLoaders":
        """Loaders over two datasets (``Datasets`` splits or any torch map-style datasets of (x, y)); ``dl_type``:
        the loader class (``DataLoader``), ``dl_kwargs``: one dict of extra arguments per loader."""
        def make(ds: Any, i: int) -> DataLoader:
            d, train = getattr(ds, "dsets", None), i == 0
            meta = dict(kinds=d.kinds, n_inp=d.n_inp, blocks=d.blocks,
                        item_tfms=_block_tfms(d.blocks, "item_tfms"), batch_tfms=_block_tfms(d.blocks, "batch_tfms")) \
                if d is not None and d.blocks else {}
            extra = dict(dl_kwargs[i]) if dl_kwargs is not None and i < len(dl_kwargs) else {}
            return (dl_type or DataLoader)(ds, bs=bs, shuffle=train, num_workers=num_workers, device=device,
                                           split_idx=TRAIN if train else VALID, **meta,
                                           **{"drop_last": train and bool(bs), **kwargs, **extra})
        return cls(make(train_ds, 0), make(valid_ds, 1), path=path)

    def __repr__(self) -> str:
        return f"DataLoaders(train={self.train!r}, valid={self.valid!r})"


def _block_tfms(blocks: Sequence[TransformBlock] | None, attr: str) -> list:
    """The transforms the blocks need at one stage, one instance per class (ToTensor handles every kind)."""
    out: dict[type, Transform] = {}
    for b in blocks or []:
        for t in getattr(b, attr):
            out.setdefault(type(t), t)
    return list(out.values())
