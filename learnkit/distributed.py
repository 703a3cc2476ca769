"""Data-parallel training on PyTorch's own engine: ``torchrun`` + ``torch.distributed`` + ``DistributedDataParallel``.

``torchrun --nproc_per_node=N script.py`` starts N copies of a script; each reads its rank from the
environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``). Inside ``with learn.distrib_ctx():`` (or in any fit
when learnkit finds that torchrun environment itself) every fit:

- runs the batches through ``DistributedDataParallel`` (``learn.model`` stays the plain module, so
  ``save``/``export``/``freeze`` see the usual names); NCCL on GPUs (one per local rank), gloo on CPUs;
- splits every loader across ranks with ``ShardSampler``: training shuffled by a seed shared by the ranks
  and the epoch (each item seen at most once per epoch; the fewer than ``world_size`` items left over by an
  even split are dropped that epoch, so every rank takes the same number of steps), validation split in
  order without padding (the last uneven shard is simply shorter);
- gathers the validation predictions and targets of every rank (back in dataset order) and the loss sums,
  so the recorded loss and metrics equal those of one process on the same data; each training batch's loss
  is the mean over ranks (one all-reduce per batch), so ``recorder.losses`` (``plot_loss``) and the logged
  training loss are those of the whole batch, the same on every rank;
- logs, draws progress bars, and writes files (``save``, ``export``) on rank 0 only; ``lr_find`` runs on
  rank 0 alone and its suggestions are sent to the others.

A rank that raises ends its process; torchrun then stops the other ranks and exits non-zero with the error.
The process group stays joined until the process exits, so several ``distrib_ctx`` blocks and fits reuse it.
"""
from __future__ import annotations

import atexit
import datetime
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import torch
from torch import distributed as dist
from torch import nn
from torch.utils.data import Sampler

from .callback.core import Callback
from .callback.progress import ProgressCallback
from .data.core import DataLoader

if TYPE_CHECKING:  # pragma: no cover
    from .learner import Learner

__all__ = ["rank_distrib", "num_distrib", "is_distributed", "torchrun_env", "setup_distrib", "teardown_distrib",
           "ShardSampler", "DistributedTrainer", "distrib_ctx", "auto_distrib", "rank0_result", "distrib_barrier"]


def torchrun_env() -> bool:
    """Whether this process was started by torchrun (or another launcher setting the same variables) with >1 rank."""
    return all(k in os.environ for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE")) and int(os.environ["WORLD_SIZE"]) > 1


def is_distributed() -> bool:
    """Whether a process group with more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_distrib() -> int:
    """This process's rank (0 when not distributed), as fastai's ``rank_distrib``."""
    if is_distributed():
        return dist.get_rank()
    return int(os.environ.get("RANK", 0))


def num_distrib() -> int:
    """The number of ranks (1 when not distributed), as fastai's ``num_distrib``."""
    return dist.get_world_size() if is_distributed() else int(os.environ.get("WORLD_SIZE", 1))


def distrib_barrier() -> None:
    """Wait for every rank (nothing when not distributed)."""
    if is_distributed():
        dist.barrier()


def setup_distrib(device: torch.device | None = None, timeout_s: float = 1800) -> bool:
    """Join the torchrun process group (NCCL when training on CUDA, else gloo); True when this call created it."""
    if dist.is_initialized():
        return False
    if not torchrun_env():
        raise RuntimeError("distrib_ctx needs a launcher: run the script with `torchrun --nproc_per_node=N script.py` "
                           "(or `python -m torch.distributed.run ...`), which sets RANK, LOCAL_RANK and WORLD_SIZE.")
    cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s))
    return True


def teardown_distrib() -> None:
    """Leave the process group (if any)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class ShardSampler(Sampler[int]):
    """This rank's share of ``range(n)``: rank r takes items r, r + world, r + 2 world... of the epoch's order.

    ``shuffle``: the order is a permutation drawn from ``seed + epoch`` (the same on every rank: call
    ``set_epoch``). ``even``: every rank gets ``n // world`` items (for training: equal step counts), else
    the first ``n % world`` ranks get one more (validation: no item dropped or repeated).
    """

    def __init__(self, n: int, rank: int, world: int, shuffle: bool = False, seed: int = 0, even: bool = False) -> None:
        self.n, self.rank, self.world, self.shuffle, self.seed, self.even = n, rank, world, shuffle, seed, even
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of epoch ``epoch``."""
        self.epoch = epoch

    def indices(self) -> torch.Tensor:
        """The item indices of this rank for the current epoch, in the order it reads them."""
        order = (torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
                 if self.shuffle else torch.arange(self.n))
        if self.even:
            order = order[: self.n // self.world * self.world]
        return order[self.rank::self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.n // self.world if self.even else len(range(self.rank, self.n, self.world))


def _shard(dl: Any, training: bool, rank: int, world: int, seed: int) -> Any:
    """A copy of learnkit loader ``dl`` reading only this rank's share (``dl.shard_sampler`` is its ``ShardSampler``)."""
    if not isinstance(dl, DataLoader):
        raise TypeError(f"Data-parallel training splits learnkit DataLoaders (DataBlock, from_dsets, wrapped torch "
                        f"loaders) across ranks; a {type(dl).__name__} can't be split yet: train it on one process "
                        f"(run the script with python, not torchrun).")
    if type(dl).sampler is not DataLoader.sampler or {"sampler", "batch_sampler"} & dl.kwargs.keys():
        raise TypeError(f"Data-parallel training splits a loader's items across ranks in order or shuffled, but this "
                        f"{type(dl).__name__} draws them with its own sampler, which splitting would silently drop: "
                        f"train it on one process (run the script with python, not torchrun), or use a plain "
                        f"shuffled loader (e.g. DataLoader(..., shuffle=True) instead of WeightedDL).")
    sampler = ShardSampler(len(dl.dataset), rank, world, shuffle=training and dl.shuffle, seed=seed, even=training)
    new = dl.new(shuffle=False, drop_last=dl.drop_last if training else False, sampler=sampler)
    new.shard_sampler = sampler
    return new


def _cpu(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if isinstance(x, (tuple, list)):
        return type(x)(_cpu(o) for o in x)
    return x


def _cat(parts: list) -> Any:
    if isinstance(parts[0], (tuple, list)):
        return type(parts[0])(_cat([p[i] for p in parts]) for i in range(len(parts[0])))
    return torch.cat(parts)


def _take(x: Any, idx: torch.Tensor) -> Any:
    if isinstance(x, (tuple, list)):
        return type(x)(_take(o, idx) for o in x)
    return x[idx]


class DistributedTrainer(Callback):
    """Runs each fit data-parallel (see the module doc); added by ``distrib_ctx``. Sits out ``lr_find``."""

    order = 11  # before the Recorder (50): the gathered validation is in place when it reads it

    def __init__(self, sync_bn: bool = False, **ddp_kwargs: Any) -> None:
        self.sync_bn, self.ddp_kwargs = sync_bn, ddp_kwargs
        self.active = False
        self._old_loaders: list | None = None
        self._old_compiled: Any = None
        self._ddp: nn.Module | None = None

    def before_fit(self) -> None:
        """Wrap the model in DDP and shard the loaders (a seed for the shuffles shared by all ranks)."""
        learn = self.learn
        self.active = not hasattr(learn, "lr_finder") and is_distributed()
        if not self.active:
            return
        rank, world = dist.get_rank(), dist.get_world_size()
        seed = [int(torch.randint(0, 2 ** 31 - 1, ()).item()) if rank == 0 else 0]
        dist.broadcast_object_list(seed, src=0)
        self._old_compiled = learn.__dict__.get("_compiled")
        inner = self._old_compiled[1] if self._old_compiled and self._old_compiled[0] is learn.model else learn.model
        device = learn._model_device()
        ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" \
            else None
        self._ddp = nn.parallel.DistributedDataParallel(inner, device_ids=ids, **self.ddp_kwargs)
        self._old_loaders = list(learn.dls.loaders)
        learn.dls.loaders = [_shard(dl, i == 0, rank, world, seed[0]) if len(dl.dataset) else dl
                             for i, dl in enumerate(self._old_loaders)]

    def before_train(self) -> None:
        """Batches go through DDP; this epoch's shared shuffle."""
        if not self.active:
            return
        self.learn._compiled = (self.learn.model, self._ddp)
        sampler = getattr(self.learn.dls.train, "shard_sampler", None)
        if sampler is not None:
            sampler.set_epoch(self.learn.epoch)

    def before_validate(self) -> None:
        """Validation runs the plain module (no collective per batch: shards may differ in length)."""
        if not self.active:
            return
        self._set_compiled(self._old_compiled)
        self._preds: list = []
        self._targs: list = []

    def after_batch(self) -> None:
        """Training: the batch's loss becomes the mean over ranks (what the Recorder smooths and ``plot_loss`` draws).

        Validation: keep this rank's predictions and targets.
        """
        learn = self.learn
        if self.active and learn.training and learn.yb and learn.loss is not None:
            t = learn.loss.detach().float().mean().to(self._comm_device(), copy=True)
            dist.all_reduce(t)  # one collective per training batch, after the step: it slows nothing the step needs
            learn.loss = (t / dist.get_world_size()).to(learn.loss.device)
        elif self.active and not learn.training and learn.yb:
            self._preds.append(_cpu(learn.pred))
            self._targs.append(_cpu(learn.yb))

    def after_validate(self) -> None:
        """Gather every rank's predictions and targets in dataset order; the Recorder's loss and metrics use them."""
        learn = self.learn
        rec = getattr(learn, "recorder", None)
        if not self.active or rec is None or learn.dl is not learn.dls.valid:
            return
        local = (self._preds, self._targs, learn.dl.shard_sampler.indices() if hasattr(learn.dl, "shard_sampler") else None,
                 float(rec._vtotal), rec._vcount)
        parts: list = [None] * dist.get_world_size()
        dist.all_gather_object(parts, local)
        parts = [p for p in parts if p[0]]
        rec._vtotal, rec._vcount = sum(p[3] for p in parts), sum(p[4] for p in parts)
        if not parts or not learn.metrics:
            return
        preds = _cat([_cat(p[0]) for p in parts])
        targs = _cat([_cat(p[1]) for p in parts])
        order = torch.argsort(torch.cat([p[2] for p in parts]))
        preds, targs = _take(preds, order), _take(targs, order)
        device, bs = learn._model_device(), learn.dl.bs
        for m in learn.metrics:
            m.reset()
        for i in range(0, len(order), bs):
            chunk = torch.arange(i, min(i + bs, len(order)))
            yb = [t.to(device) for t in _take(targs, chunk)]
            p = _take(preds, chunk)
            p = type(p)(o.to(device) for o in p) if isinstance(p, (tuple, list)) else p.to(device)
            for m in learn.metrics:
                m.update(p, *yb)

    def after_fit(self) -> None:
        """Give the learner its own loaders and module back."""
        self.restore()

    def restore(self) -> None:
        """Undo ``before_fit`` (also called when a fit raised)."""
        if self._old_loaders is not None:
            self.learn.dls.loaders = self._old_loaders
            self._old_loaders = None
        if self.active:
            self._set_compiled(self._old_compiled)
        self.active, self._ddp = False, None

    def _set_compiled(self, compiled: Any) -> None:
        if compiled is None:
            self.learn.__dict__.pop("_compiled", None)
        else:
            self.learn._compiled = compiled

    def _comm_device(self) -> torch.device:
        return self.learn._model_device() if dist.get_backend() == "nccl" else torch.device("cpu")


def _no_log(row: Any) -> None:
    """A logger that drops the row (ranks other than 0)."""


@contextmanager
def distrib_ctx(learn: "Learner", sync_bn: bool = False, in_notebook: bool = False,
                **ddp_kwargs: Any) -> Iterator["Learner"]:
    """Context manager: fits inside run data-parallel over the torchrun ranks (see the module doc).

    ``in_notebook`` is fastai's argument: only ``False`` (a script under torchrun) is supported.
    """
    if in_notebook:
        raise ValueError("distrib_ctx(in_notebook=True): learnkit trains data-parallel under torchrun only. Put the "
                         "code in a script and run `torchrun --nproc_per_node=N script.py` (in_notebook=False).")
    if any(isinstance(cb, DistributedTrainer) for cb in learn.cbs):
        yield learn
        return
    if setup_distrib(getattr(learn.dls, "device", None)):
        # kept until the process exits: a later distrib_ctx or fit reuses it (joining torchrun's group a second
        # time after leaving it hangs now and then)
        atexit.register(teardown_distrib)
    rank = rank_distrib()
    old_model, old_logger, bars = learn.model, learn.logger, []
    if torch.cuda.is_available() and torch.device(learn.dls.device).type == "cuda":
        learn.dls = learn.dls.to(torch.device("cuda", torch.cuda.current_device()))
    if sync_bn:
        if learn._model_device().type != "cuda":
            raise ValueError("distrib_ctx(sync_bn=True): SyncBatchNorm runs on CUDA only, and this model is on the "
                             "CPU. Pass sync_bn=False (each rank then keeps its own batch-norm statistics).")
        learn.model = nn.SyncBatchNorm.convert_sync_batchnorm(learn.model)  # shares the parameters and buffers
    if rank != 0:
        bars = [cb for cb in learn.cbs if isinstance(cb, ProgressCallback)]
        learn.remove_cbs(bars)
        learn.logger = _no_log
    trainer = DistributedTrainer(sync_bn=sync_bn, **ddp_kwargs)
    learn.add_cb(trainer)
    try:
        yield learn
    finally:
        trainer.restore()
        learn.remove_cb(trainer)
        learn.add_cbs(bars)
        learn.model, learn.logger = old_model, old_logger


def auto_distrib(learn: "Learner") -> Any:
    """``distrib_ctx`` for one fit when the script runs under torchrun and isn't distributed already, else nothing.

    Safe to do automatically: it needs the launcher's variables, leaves a model the user wrapped in DDP
    (or a process group with one rank) alone, and sits out ``lr_find`` (which runs on rank 0 alone).
    """
    if (not torchrun_env() or hasattr(learn, "lr_finder") or isinstance(learn.model, nn.parallel.DistributedDataParallel)
            or any(isinstance(cb, DistributedTrainer) for cb in learn.cbs)):
        return nullcontext(learn)
    return distrib_ctx(learn)


def rank0_result(f: Callable[[], Any], pack: Callable[[Any], Any] = lambda r: r,
                 unpack: Callable[[Any], Any] = lambda r: r) -> Any:
    """Run ``f`` on rank 0 only and hand every rank its result (``pack``/``unpack`` make it picklable)."""
    if not is_distributed():
        return f()
    box = [pack(f()) if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return unpack(box[0])
