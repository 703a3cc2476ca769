"""fastai's ``DataLoader`` loop (``02_data.load``): indices -> items -> batches, every step a hook.

``DataLoader`` (data/core.py) runs this loop for plain sources (a list, a ``range``, an ``L``, an iterator or
generator, ``bs=None``) and whenever a hook is passed as an argument or overridden in a subclass; loaders built by
``DataBlock`` keep the torch-sampler path. Each step can be replaced: ``get_idxs`` -> ``sample`` ->
``create_item`` -> ``after_item`` -> ``chunkify`` -> ``before_batch`` -> ``create_batch`` -> ``after_batch``,
with ``before_iter``/``after_iter`` around an epoch. With workers, batch ``k`` is made by worker ``k %
num_workers`` from indices drawn in the main process, so the order is the same as without workers.
"""
from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info
from torch.utils.data import default_collate, default_convert

__all__ = ["SkipItemException", "fa_collate", "fa_convert", "LoopHooks", "HOOKS", "chunked"]

# hooks that pass their input through unchanged unless replaced
_NOOP_HOOKS = ("wif", "before_iter", "after_item", "before_batch", "after_batch", "after_iter")
# every step that can be passed as an argument (``DataLoader(create_item=f)``) or overridden in a subclass
HOOKS = _NOOP_HOOKS + ("create_batches", "create_item", "create_batch", "retain", "get_idxs", "sample",
                       "shuffle_fn", "do_batch", "do_item", "chunkify", "randomize")

_COLLATE_TYPES = (np.ndarray, torch.Tensor, Mapping, str)


class SkipItemException(Exception):
    """Raised by ``create_item``/``after_item`` to make the ``DataLoader`` skip that item."""


def fa_collate(t: list) -> Any:
    """``default_collate`` that keeps each sample's container type (tuples stay tuples, lists lists)."""
    b = t[0]
    if isinstance(b, _COLLATE_TYPES) or not isinstance(b, Sequence):
        return default_collate(t)
    return type(b)([fa_collate(s) for s in zip(*t)]) if not hasattr(b, "_fields") else default_collate(t)


def fa_convert(t: Any) -> Any:
    """``default_convert`` (arrays to tensors) that keeps container types, for already-batched items."""
    if isinstance(t, _COLLATE_TYPES) or not isinstance(t, Sequence):
        return default_convert(t)
    return type(t)([fa_convert(s) for s in t]) if not hasattr(t, "_fields") else default_convert(t)


def chunked(it: Iterable, size: int, drop_last: bool = False) -> Iterator[list]:
    """Lists of ``size`` consecutive elements of ``it`` (the last one shorter unless ``drop_last``)."""
    it = iter(it)
    while True:
        res = list(itertools.islice(it, size))  # islice treats a StopIteration from create_item as the end
        if res and (len(res) == size or not drop_last):
            yield res
        if len(res) < size:
            return


def _size_error(e: Exception, batch: list) -> Exception:
    """``e`` with a message naming the first value whose items differ in shape, or ``e`` itself."""
    samples = [s if isinstance(s, (tuple, list)) else (s,) for s in batch]
    for j in range(len(samples[0])):
        shapes = [tuple(getattr(s[j], "shape", ())) for s in samples if len(s) > j]
        for i, sh in enumerate(shapes[1:], 1):
            if sh != shapes[0]:
                return RuntimeError(
                    f"Can't collate the batch: value {j} of item 0 has shape {shapes[0]} but of item {i} has shape "
                    f"{sh}. Add an after_item (item transform) that gives every item the same size, e.g. "
                    f"Resize(224), or pass create_batch= to batch them your own way.")
    return e


class _BatchStream(IterableDataset):
    """The batches of one epoch, as a torch iterable dataset: each worker makes its share (``dl.sample()``)."""

    def __init__(self, dl: Any) -> None:
        self.dl = dl

    def __iter__(self) -> Iterator:
        info = get_worker_info()
        if info is not None:
            self.dl._shard = (info.num_workers, info.id)
        return iter(self.dl.create_batches(self.dl.sample()))


def _worker_init(worker_id: int) -> None:
    """Each worker: one torch thread, python/numpy/torch seeded from the worker's seed, then ``dl.wif()``."""
    info = get_worker_info()
    torch.set_num_threads(1)
    seed = info.seed % 2**32
    random.seed(seed)
    np.random.seed(seed)
    info.dataset.dl.wif()


def _identity(b: Any) -> Any:
    return b


class LoopHooks:
    """fastai's loop steps, mixed into ``DataLoader``; replace any of them by argument or in a subclass."""

    def wif(self, x: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Run in each worker process when it starts (torch's ``worker_init_fn``)."""
        return x

    def before_iter(self, x: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Called before an epoch starts."""
        return x

    def after_item(self, x: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Applied to each item ``create_item`` returns."""
        return x

    def before_batch(self, x: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Applied to the list of items of a batch before collating it."""
        return x

    def after_batch(self, x: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Applied to each collated batch (on the device)."""
        return x

    def after_iter(self, x: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Called after an epoch ends."""
        return x

    def get_idxs(self) -> Any:
        """This epoch's indices (``None`` for each item of an unindexed source), shuffled when ``shuffle``."""
        idxs: Iterable = itertools.count() if self.indexed else itertools.repeat(None)
        if self.n is not None:
            idxs = list(itertools.islice(idxs, self.n))
        if self.shuffle:
            idxs = self.shuffle_fn(idxs)
        return idxs

    def sample(self) -> Iterator:
        """The indices of this process's batches (every one without workers; one in ``num_workers`` in a worker)."""
        nw, offs = getattr(self, "_shard", (1, 0))
        return (b for i, b in enumerate(self._idxs) if i // (self.bs or 1) % nw == offs)

    def shuffle_fn(self, idxs: list) -> list:
        """A random permutation of ``idxs``, from this loader's generator (reproducible under ``set_seed``)."""
        return self.rng.sample(idxs, len(idxs))

    def randomize(self) -> None:
        """A new generator for this epoch: seeded from torch's generator when shuffling (as torch's own sampler,
        so ``set_seed``/``torch.manual_seed`` and a resumed fit's restored state give the same order), else from
        the last one (fastai's; leaves the global random state alone)."""
        seed = int(torch.randint(0, 2**62, ()).item()) if self.shuffle else self.rng.randint(0, 2**32 - 1)
        self.rng = random.Random(seed)

    def create_item(self, s: Any) -> Any:
        """Item ``s`` of the dataset, or the next one of an unindexed source when ``s`` is None."""
        if self.indexed:
            return self._item_source()[s or 0]
        if s is None:
            return next(self.it)
        raise IndexError("Can't index an unindexed (iterable) dataset: get_idxs must give None for each item.")

    def do_item(self, s: Any) -> Any:
        """``after_item(create_item(s))``; None (skipped) on ``SkipItemException``."""
        try:
            return self.after_item(self.create_item(s))
        except SkipItemException:
            return None

    def chunkify(self, b: Iterable) -> Iterable:
        """Group items into lists of ``bs`` (items pass alone when ``bs`` is None)."""
        return b if self.bs is None else chunked(b, self.bs, self.drop_last)

    def create_batch(self, b: Any) -> Any:
        """Collate a list of items (``fa_collate``); convert an already-batched item when ``bs`` is None."""
        if self.bs is None:
            return fa_convert(b)
        try:
            return fa_collate(b)
        except RuntimeError as e:
            err = _size_error(e, b)
            if err is e:
                raise
            raise err from e

    def retain(self, res: Any, b: Any) -> Any:
        """fastai casts ``res`` back to the items' tensor subclasses; learnkit's batches are plain tensors."""
        return res

    def do_batch(self, b: Any) -> Any:
        """``retain(create_batch(before_batch(b)))``."""
        return self.retain(self.create_batch(self.before_batch(b)), b)

    def create_batches(self, samps: Iterable) -> Iterator:
        """Batches (before ``after_batch``) made from the indices ``samps``."""
        if self.dataset is not None:
            try:
                self.it = iter(self.dataset)
            except TypeError:
                pass
        res = filter(lambda o: o is not None, map(self.do_item, samps))
        yield from map(self.do_batch, self.chunkify(res))

    def _loop_batches(self) -> Iterator:
        """The collated batches of one epoch, made here or by ``num_workers`` worker processes, in order."""
        from torch.utils.data import DataLoader as TorchDataLoader
        stream = _BatchStream(self)
        if not self.num_workers:
            self._shard = (1, 0)
            return iter(stream)
        dl = TorchDataLoader(stream, batch_size=None, num_workers=self.num_workers, collate_fn=_identity,
                             worker_init_fn=_worker_init, timeout=self.timeout,
                             pin_memory=bool(self.pin_memory) and self.device.type == "cuda")
        return dl

    def _hooks_given(self) -> bool:
        """Whether a hook was passed as an argument or overridden in a subclass."""
        cls = type(self)
        return any(n in self.__dict__ or getattr(cls, n) is not getattr(LoopHooks, n) for n in HOOKS)
