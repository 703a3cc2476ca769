"""Exact resume: what a checkpoint keeps beyond the weights, and the callbacks that continue a fit from it.

``learn.save(name, with_opt=True)`` during a fit (``SaveModelCallback(every_n_batches=...)``) adds a
``"train_state"`` entry: the epoch and the batches done in it, ``train_iter``/``pct_train`` (the schedule's
position), the random states now and at the start of the epoch (torch, NumPy, Python, CUDA), the Recorder's
history and the scheduled values. All of it is tensors, numbers and JSON text, so ``torch.load(...,
weights_only=True)`` reads it without unpickling any object.

``learn.fit(..., resume=name)`` (and ``fit_one_cycle``/``fit_flat_cos``/``fit_sgdr``) loads model and
optimizer, starts at the saved epoch, puts the random state of that epoch's start back so the training
loader draws the same order again, reads (and drops) the batches already done, restores the random state of
the checkpoint and goes on: on the CPU the weights end bit-identical to those of an uninterrupted run.
``start_epoch=n`` alone (fastai's) skips the first ``n`` epochs with the schedule starting at epoch ``n``.
"""
from __future__ import annotations

import json
import random
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .callback.core import Callback
from .data.core import _start_workers
from .weights_io import read_weights

if TYPE_CHECKING:  # pragma: no cover
    from .learner import Learner

__all__ = ["get_rng_states", "set_rng_states", "mark_epoch_start", "training_state", "ResumeCallback",
           "resume_callbacks"]


def get_rng_states() -> dict[str, Any]:
    """The random states of torch, NumPy, Python (and CUDA if in use) as tensors and numbers."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "numpy_pos": int(pos),
        "numpy_gauss": torch.tensor([float(has_gauss), float(gauss)], dtype=torch.float64),
        "python": torch.tensor(internal, dtype=torch.int64), "python_version": int(version),
        "python_gauss": torch.tensor([] if gauss_next is None else [gauss_next], dtype=torch.float64)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Put back what ``get_rng_states`` returned."""
    torch.set_rng_state(states["torch"].cpu())
    has_gauss, gauss = states["numpy_gauss"].tolist()
    np.random.set_state(("MT19937", states["numpy"].numpy().astype(np.uint32), states["numpy_pos"], int(has_gauss),
                         gauss))
    gauss_next = states["python_gauss"].tolist()
    random.setstate((states["python_version"], tuple(states["python"].tolist()), gauss_next[0] if gauss_next else None))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])


def mark_epoch_start(learn: "Learner", rng: dict | None = None, train_iter: int | None = None) -> None:
    """Note where this training epoch starts (random states, batch count) so a checkpoint can resume it."""
    learn._resume_mark = {"epoch": learn.epoch, "rng": get_rng_states() if rng is None else rng,
                          "train_iter": learn.train_iter if train_iter is None else train_iter}


def _recorder_json(learn: "Learner") -> str:
    rec = getattr(learn, "recorder", None)
    sched = getattr(learn, "param_scheduler", None)
    state: dict[str, Any] = {"hps": sched.hps if sched is not None else {}}
    if rec is not None:
        state.update(losses=[float(v) for v in rec.losses], lrs=[float(v) for v in rec.lrs], values=rec.values,
                     iters=rec.iters, avg=float(rec._avg), count=rec._count,
                     smooth_loss=None if learn.smooth_loss is None else float(learn.smooth_loss))
    return json.dumps(state)


def training_state(learn: "Learner") -> dict[str, Any]:
    """What ``save(with_opt=True)`` adds during a fit to resume it exactly (empty outside a marked fit)."""
    mark = learn.__dict__.get("_resume_mark")
    if mark is None or learn.dl is None:
        return {}
    in_epoch = learn.training  # saved during training: resume inside this epoch; after validation: the next one
    return {"train_state": {
        "epoch": learn.epoch if in_epoch else learn.epoch + 1, "n_epoch": learn.n_epoch,
        "done": learn.train_iter - mark["train_iter"] if in_epoch else 0,
        "train_iter": learn.train_iter, "pct_train": float(learn.pct_train), "n_batches": _n_batches(learn),
        "rng": get_rng_states(), "epoch_rng": mark["rng"] if in_epoch else get_rng_states(),
        "recorder": _recorder_json(learn)}}


def _n_batches(learn: "Learner") -> int | None:
    """Batches per training epoch (None for a loader of unknown length)."""
    try:
        return len(learn.dls.train)
    except TypeError:
        return None


class _SkipDone:
    """The training loader of the resumed epoch: reads the batches done before, drops them, puts the random state back."""

    def __init__(self, dl: Any, done: int, rng: dict) -> None:
        self.dl, self.done, self.rng = dl, done, rng

    def __len__(self) -> int:
        return len(self.dl)  # the whole epoch: the schedule's step per batch stays the same

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dl, name)

    def __iter__(self) -> Iterator:
        it = iter(self.dl)
        for _ in range(self.done):
            next(it, None)
        set_rng_states(self.rng)
        yield from it


class ResumeCallback(Callback):
    """Continues a fit from a ``train_state`` (see the module doc); added by ``fit(..., resume=name)``."""

    order = 60.5  # after the schedulers' and the Recorder's before_fit, before SaveModelCallback's before_train

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self._loader: Any = None

    def before_fit(self) -> None:
        """Put the Recorder's history and the scheduled values back; start the persistent workers as the run had."""
        learn, saved = self.learn, json.loads(self.state["recorder"])
        if self.state["epoch"] > 0:
            _start_persistent_workers(learn)
        sched = getattr(learn, "param_scheduler", None)
        if sched is not None and saved.get("hps"):
            sched.hps = {k: list(v) for k, v in saved["hps"].items()}
        rec = getattr(learn, "recorder", None)
        if rec is not None and "losses" in saved:
            rec._flush()
            rec._losses, rec.lrs, rec.values, rec.iters = saved["losses"], saved["lrs"], saved["values"], saved["iters"]
            rec._avg, rec._count = saved["avg"], saved["count"]
            learn.smooth_loss = saved["smooth_loss"]

    def before_epoch(self) -> None:
        """At the saved epoch: the training loader skips the batches already done."""
        if self.learn.epoch == self.state["epoch"]:
            self._loader = self.learn.dls.loaders[0]
            self.learn.dls.loaders[0] = _SkipDone(self._loader, self.state["done"], self.state["rng"])

    def before_train(self) -> None:
        """Random state of the epoch's start (same loader order), and the schedule's position of the checkpoint."""
        learn = self.learn
        if self._loader is None:
            return
        set_rng_states(self.state["epoch_rng"])
        learn.train_iter, learn.pct_train = self.state["train_iter"], self.state["pct_train"]
        mark_epoch_start(learn, rng=self.state["epoch_rng"], train_iter=learn.train_iter - self.state["done"])

    def after_train(self) -> None:
        """The loader as it was."""
        self._put_back()

    def after_fit(self) -> None:
        """The loader as it was (also after a cancelled epoch)."""
        self._put_back()

    def _put_back(self) -> None:
        if self._loader is not None:
            self.learn.dls.loaders[0] = self._loader
            self._loader = None


def _start_persistent_workers(learn: "Learner") -> None:
    """Start the persistent workers of every loader now, as the interrupted run had since its first epoch.

    torch draws a worker seed from the global random state when it starts a loader's workers, and only then: were
    they started inside the resumed epoch, that draw would shift every random number after it.
    """
    for i, dl in enumerate(learn.dls.loaders):
        tdl = dl.torch_dl if hasattr(dl, "torch_dl") and not getattr(dl, "preloaded", False) else None
        if tdl is None or not (tdl.num_workers and tdl.persistent_workers) or tdl._iterator is not None:
            continue
        _start_workers(tdl)
        if i == 0:
            warnings.warn("resume: the training loader keeps its worker processes between epochs (persistent_workers), "
                          "so random item transforms in the workers draw other numbers than in the interrupted run "
                          "and the weights may differ slightly. For a bit-identical resume build the training loader "
                          "with persistent_workers=False (or num_workers=0).", stacklevel=2)


def resume_callbacks(learn: "Learner", resume: str | None, start_epoch: int, n_epoch: int) -> tuple[list, int]:
    """For ``fit``: load checkpoint ``resume`` (model, optimizer) and return ``([ResumeCallback], its epoch)``."""
    if not 0 <= start_epoch <= n_epoch:
        raise ValueError(f"start_epoch={start_epoch} is outside the fit's epochs 0..{n_epoch}: pass a value in that range.")
    if resume is None:
        return [], start_epoch
    path = learn._model_file(resume)
    if not path.exists():
        raise FileNotFoundError(f"fit(resume={str(resume)!r}): no checkpoint at {path}. SaveModelCallback("
                                f"every_n_batches=..., with_opt=True, fname={str(resume)!r}) writes it during a fit.")
    saved = read_weights(path, "cpu")  # a truncated, empty or random file: the same WeightsError as learn.load
    state = saved.get("train_state") if isinstance(saved, dict) else None
    if state is None:
        raise ValueError(f"{path} holds weights but no training state, so the fit can't resume where it stopped: "
                         f"save it during a fit with with_opt=True (SaveModelCallback(..., with_opt=True)).")
    if state["n_epoch"] != n_epoch:
        raise ValueError(f"{path} was saved in a fit of {state['n_epoch']} epochs; resuming it with n_epoch={n_epoch} "
                         f"would put the schedule elsewhere: pass n_epoch={state['n_epoch']}.")
    saved_n, n = state.get("n_batches"), _n_batches(learn)  # older checkpoints have no count: not checked
    if saved_n is not None and saved_n != n:
        raise ValueError(f"{path} was saved in a fit of {saved_n} batches per epoch; these loaders give {n}, so the "
                         f"schedule (fit_one_cycle's warm-up and annealing) would no longer end where it should. Resume "
                         f"with the same data and batch size as the interrupted fit, or start a new fit.")
    learn.load(resume, with_opt=True)
    return [ResumeCallback(state)], state["epoch"]
