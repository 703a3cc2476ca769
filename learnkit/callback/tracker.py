"""Callbacks that watch one recorded value per epoch: save the best model, stop early, reduce the lr on a plateau.

``TrackerCallback`` holds what they share (like Keras' ``MonitorCallback``): the name of the value to
watch (``monitor``: ``'valid_loss'``, ``'train_loss'`` or a metric's name as shown in the training
table), whether lower or higher is better (``comp``: ``np.less`` or ``np.greater``, inferred from the name
when not given) and the smallest change that counts as an improvement (``min_delta``). Trackers run after
the ``Recorder`` (order 50) has stored the epoch's values, and sit out ``lr_find``.
"""
from __future__ import annotations

import operator
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..distributed import rank_distrib
from ..resume import mark_epoch_start
from .core import Callback, CancelFitException

__all__ = ["TrackerCallback", "SaveModelCallback", "EarlyStoppingCallback", "ReduceLROnPlateau", "infer_comp"]

# name fragments -> direction (matched case-insensitively anywhere in the monitored name)
_LOWER_IS_BETTER = ("loss", "error", "rmse", "mae", "mse", "msle", "rmspe", "perplexity")
_HIGHER_IS_BETTER = ("accuracy", "acc", "f1", "fbeta", "auc", "dice", "jaccard", "r2", "precision", "recall",
                     "matthews", "corrcoef")


def infer_comp(monitor: str) -> Callable[[Any, Any], Any]:
    """``np.less`` for names of values to minimise (loss, error, rmse...), ``np.greater`` for scores (accuracy, f1, auc...)."""
    name = monitor.lower()
    lower = [f for f in _LOWER_IS_BETTER if f in name]
    higher = [f for f in _HIGHER_IS_BETTER if f in name]
    if bool(lower) != bool(higher):
        return np.less if lower else np.greater
    why = (f"it looks like both a value to minimise ({lower[0]!r}) and a score ({higher[0]!r})" if lower
           else "the name says neither")
    raise ValueError(f"Can't tell whether {monitor!r} should go down or up ({why}): pass comp=np.less if lower is "
                     f"better, or comp=np.greater if higher is better.")


def _is_less(comp: Callable) -> bool:
    return comp in (np.less, operator.lt)


class TrackerCallback(Callback):
    """Base of the trackers: after each epoch, is the ``monitor`` value the best so far (by more than ``min_delta``)?

    Sets ``best`` (best value so far) and ``new_best`` (whether this epoch improved it). ``reset_on_fit``:
    forget the best value at each ``fit`` (else keep it across fits). The name and direction are checked
    when a fit starts, once the recorded names are known: an unknown name lists the recorded ones, and a
    name whose direction can't be inferred asks for ``comp``.
    """

    order = 60

    def __init__(self, monitor: str = "valid_loss", comp: Callable | None = None, min_delta: float = 0.,
                 reset_on_fit: bool = True) -> None:
        self.monitor, self.given_comp, self.given_min_delta = monitor, comp, min_delta
        self.comp: Callable | None = comp  # resolved (inferred from the name when None) at the start of each fit
        self.min_delta = min_delta  # sign-adjusted then: the amount added to a value before comparing it
        self.reset_on_fit = reset_on_fit
        self.best: float | None = None
        self.new_best = False
        self.idx = 0
        self.run = True

    def _monitored_names(self) -> list[str]:
        rec = getattr(self.learn, "recorder", None)
        if rec is None:
            raise RuntimeError(f"{type(self).__name__} reads the values the Recorder stores each epoch, but this "
                               f"learner has no recorder: keep the default Recorder callback.")
        names = list(rec.metric_names[1:])  # drop 'epoch'; aligned with recorder.values rows
        if getattr(rec, "add_time", False) and names and names[-1] == "time":
            names = names[:-1]
        return names

    def before_fit(self) -> None:
        """Find the monitored column; reset the best value (when ``reset_on_fit``). Sits out ``lr_find``."""
        self.run = not hasattr(self.learn, "lr_finder")
        if not self.run:
            return
        names = self._monitored_names()
        if self.monitor not in names:
            raise ValueError(f"{type(self).__name__}(monitor={self.monitor!r}): no such recorded value. The "
                             f"recorder has {names}; pass one of those (metrics appear under their names, e.g. "
                             f"'accuracy', 'f1_score').")
        self.idx = names.index(self.monitor)
        self.comp = self.given_comp if self.given_comp is not None else infer_comp(self.monitor)
        self.min_delta = -self.given_min_delta if _is_less(self.comp) else self.given_min_delta
        if self.reset_on_fit or self.best is None:
            self.best = None
        self.new_best = False

    def _improved(self, val: float) -> bool:
        if self.best is None:
            return not (isinstance(val, float) and np.isnan(val))
        return bool(self.comp(val - self.min_delta, self.best))

    def after_epoch(self) -> None:
        """Compare this epoch's value with the best so far (an epoch whose value is missing never improves)."""
        self.new_best = False
        if not self.run:
            return
        val = self.learn.recorder.values[-1][self.idx]
        if val is None:
            return
        if self._improved(val):
            self.best, self.new_best = val, True

    def after_fit(self) -> None:
        """Ready for the next fit."""
        self.run = True


class SaveModelCallback(TrackerCallback):
    """Saves the model when ``monitor`` improves (``learn.save(fname)``) and loads that best model back when the fit ends.

    ``every_epoch``: save every epoch instead (an int n: every n epochs) as ``fname_<epoch>``, loading nothing
    back. ``every_n_batches``: save ``fname`` every n training batches (each checkpoint replaces the last; with
    ``every_epoch`` too, the epoch files are written as well), loading nothing back. ``at_end``: save once, at the
    end of the fit. ``with_opt``: save the optimizer state too, and during the fit what ``fit(..., resume=fname)``
    needs to continue exactly (``learnkit.resume``).

    ``keep_last=k`` (``Trainer``'s ``save_total_limit``): keep only the last k checkpoint files. With
    ``every_epoch`` the epoch files; in the best-model mode each new best is written as ``fname_<epoch>``
    (the last k are the k best, the newest is loaded back at the end). Only files this callback wrote in this
    fit, and that nothing has replaced since, are deleted, each after its successor is safely on disk.
    """

    order = TrackerCallback.order + 1

    def __init__(self, monitor: str = "valid_loss", comp: Callable | None = None, min_delta: float = 0.,
                 fname: str = "model", every_epoch: bool | int = False, at_end: bool = False, with_opt: bool = False,
                 reset_on_fit: bool = True, every_n_batches: int | None = None, keep_last: int | None = None) -> None:
        super().__init__(monitor=monitor, comp=comp, min_delta=min_delta, reset_on_fit=reset_on_fit)
        if (every_epoch or every_n_batches) and at_end:
            raise ValueError("SaveModelCallback: every_epoch/every_n_batches and at_end can't both be set; pick one.")
        if every_n_batches is not None and int(every_n_batches) < 1:
            raise ValueError(f"SaveModelCallback(every_n_batches={every_n_batches}): give a number of batches >= 1.")
        if keep_last is not None:
            if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
                raise ValueError(f"SaveModelCallback(keep_last={keep_last!r}): give how many checkpoint files to keep, "
                                 f"a whole number >= 1 (or None to keep them all).")
            if at_end or (every_n_batches and not every_epoch):
                raise ValueError(f"SaveModelCallback(keep_last={keep_last}) keeps the last epoch or best-model files, "
                                 f"but {'at_end' if at_end else 'every_n_batches'} writes one file ({fname!r}) that "
                                 f"each save replaces: drop keep_last, or save with every_epoch=True.")
        self.fname, self.every_epoch, self.at_end, self.with_opt = fname, every_epoch, at_end, with_opt
        self.every_n_batches, self.keep_last = every_n_batches, keep_last
        self.last_saved_path: Any = None
        self._saved_this_fit, self._last_name = False, fname
        self._kept: list[tuple[Path, tuple[int, int]]] = []  # the files kept so far in this fit, oldest first

    def _save(self, name: str, counted: bool = False) -> None:
        self.last_saved_path = self.learn.save(name, with_opt=self.with_opt)
        self._saved_this_fit, self._last_name = True, name
        if counted and self.keep_last is not None and rank_distrib() == 0:
            self._keep(Path(self.last_saved_path))

    def _keep(self, path: Path) -> None:
        """Note ``path`` as written by this fit; delete the oldest such files beyond ``keep_last``."""
        self._kept = [(p, sig) for p, sig in self._kept if p != path] + [(path, _signature(path))]
        while len(self._kept) > self.keep_last:
            old, sig = self._kept.pop(0)
            if sig is not None and _signature(old) == sig:  # still the file this fit wrote (not replaced since)
                old.unlink()

    def _epoch_name(self) -> str:
        return f"{self.fname}_{self.learn.epoch}"

    def before_fit(self) -> None:
        """Reset the tracker; nothing saved yet in this fit (and no epoch start noted: a failed fit may have left one)."""
        super().before_fit()
        self._saved_this_fit = False
        self._kept = []
        self.learn.__dict__.pop("_resume_mark", None)

    def before_train(self) -> None:
        """Note the epoch's start, so a checkpoint inside it can be resumed exactly."""
        mark = self.learn.__dict__.get("_resume_mark")
        if self.run and self.with_opt and (mark is None or mark["epoch"] != self.learn.epoch):
            mark_epoch_start(self.learn)

    def after_batch(self) -> None:
        """Save ``fname`` every ``every_n_batches`` training batches."""
        learn = self.learn
        if self.run and self.every_n_batches and learn.training and learn.train_iter % int(self.every_n_batches) == 0:
            self._save(self.fname)

    def after_epoch(self) -> None:
        """Save on improvement (or every ``every_epoch`` epochs)."""
        if not self.run:
            return
        if self.every_epoch or self.every_n_batches:
            if self.every_epoch and self.learn.epoch % int(self.every_epoch) == 0:
                self._save(self._epoch_name(), counted=True)
            return
        super().after_epoch()
        if self.new_best and not self.at_end:
            if rank_distrib() == 0:
                print(f"Better model found at epoch {self.learn.epoch} with {self.monitor} value: {self.best}.")
            if self.keep_last is None:
                self._save(self.fname)
            else:
                self._save(self._epoch_name(), counted=True)

    def after_fit(self) -> None:
        """Save now (``at_end``) or load the best model saved during this fit."""
        if self.run:
            if self.at_end:
                self._save(self.fname)
            elif not (self.every_epoch or self.every_n_batches) and self._saved_this_fit:
                self.learn.load(self._last_name, with_opt=self.with_opt)
        self.learn.__dict__.pop("_resume_mark", None)
        super().after_fit()


def _signature(path: Path) -> tuple[int, int] | None:
    """(inode, modification time in ns): changes when the file is replaced or rewritten; None once it is gone."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


class _PatienceCallback(TrackerCallback):
    """A tracker that acts (``on_plateau``) once ``monitor`` has not improved for ``patience`` epochs."""

    def __init__(self, monitor: str = "valid_loss", comp: Callable | None = None, min_delta: float = 0.,
                 patience: int = 1, reset_on_fit: bool = True) -> None:
        super().__init__(monitor=monitor, comp=comp, min_delta=min_delta, reset_on_fit=reset_on_fit)
        self.patience = patience
        self.wait = 0

    def before_fit(self) -> None:
        """No epoch waited yet."""
        self.wait = 0
        super().before_fit()

    def after_epoch(self) -> None:
        """Count epochs without improvement; at ``patience``, act and start counting again."""
        super().after_epoch()
        if not self.run:
            return
        self.wait = 0 if self.new_best else self.wait + 1
        if self.wait >= self.patience:
            self.on_plateau()  # may end the fit (early stopping), leaving ``wait`` as it was
            self.wait = 0

    def on_plateau(self) -> None:
        """What to do after ``patience`` epochs without improvement (override)."""
        raise NotImplementedError


class EarlyStoppingCallback(_PatienceCallback):
    """Stops the fit (``CancelFitException``) when ``monitor`` has not improved for ``patience`` epochs.

    ``restore_best_weights=True`` (Keras' option) keeps a copy of the weights of the best epoch in memory and
    loads it back when the fit ends (stopped early or not); nothing is written to disk.
    """

    order = TrackerCallback.order + 3

    def __init__(self, monitor: str = "valid_loss", comp: Callable | None = None, min_delta: float = 0.,
                 patience: int = 1, reset_on_fit: bool = True, restore_best_weights: bool = False) -> None:
        super().__init__(monitor=monitor, comp=comp, min_delta=min_delta, patience=patience, reset_on_fit=reset_on_fit)
        self.restore_best_weights = restore_best_weights
        self.best_weights: dict | None = None
        self.best_epoch: int | None = None

    def before_fit(self) -> None:
        """No best weights kept yet in this fit."""
        super().before_fit()
        self.best_weights, self.best_epoch = None, None

    def after_epoch(self) -> None:
        """Keep the weights of a new best epoch (``restore_best_weights``), then count the patience."""
        try:
            super().after_epoch()
        finally:  # also when on_plateau ends the fit
            if self.run and self.new_best and self.restore_best_weights:
                self.best_epoch = self.learn.epoch
                self.best_weights = {k: v.detach().clone() for k, v in self.learn.model.state_dict().items()}

    def on_plateau(self) -> None:
        """Stop training."""
        print(f"No improvement since epoch {self.learn.epoch - self.patience}: early stopping")
        raise CancelFitException()

    def after_fit(self) -> None:
        """Load the best epoch's weights back (``restore_best_weights``)."""
        if self.run and self.best_weights is not None:
            self.learn.model.load_state_dict(self.best_weights)
            if rank_distrib() == 0:
                print(f"Restored the weights of epoch {self.best_epoch} ({self.monitor}: {self.best}).")
            self.best_weights = None
        super().after_fit()


class ReduceLROnPlateau(_PatienceCallback):
    """Reduces every parameter group's lr (not below ``min_lr``) after ``patience`` epochs without improvement.

    ``factor`` takes both conventions: above 1 the lr is divided by it (fastai's, default 10: ``lr / 10``);
    between 0 and 1 the lr is multiplied by it (Keras', e.g. ``factor=0.1``: ``lr * 0.1``). Both examples give
    a tenth of the lr; 1 and values <= 0 are refused. Meant for ``fit`` at a constant lr: a schedule
    (``fit_one_cycle``...) sets the lr every batch and would override it.
    """

    order = TrackerCallback.order + 2

    def __init__(self, monitor: str = "valid_loss", comp: Callable | None = None, min_delta: float = 0.,
                 patience: int = 1, factor: float = 10., min_lr: float = 0, reset_on_fit: bool = True) -> None:
        super().__init__(monitor=monitor, comp=comp, min_delta=min_delta, patience=patience, reset_on_fit=reset_on_fit)
        if not factor > 0 or factor == 1:
            raise ValueError(f"ReduceLROnPlateau(factor={factor}): give factor > 1 to divide the lr by it (fastai's, "
                             f"e.g. factor=10.) or 0 < factor < 1 to multiply it (Keras', e.g. factor=0.1).")
        self.factor, self.min_lr = factor, min_lr

    def _reduced(self, lr: float) -> float:
        """``lr / factor`` (factor > 1) or ``lr * factor`` (factor < 1), not below ``min_lr``."""
        return max(lr / self.factor if self.factor > 1 else lr * self.factor, self.min_lr)

    def on_plateau(self) -> None:
        """Reduce every group's lr (see ``factor``)."""
        groups = self.learn.opt.param_groups
        old = float(groups[-1]["lr"])
        for g in groups:
            new = self._reduced(float(g["lr"]))
            if isinstance(g["lr"], torch.Tensor):
                g["lr"].fill_(new)
            else:
                g["lr"] = new
        if float(groups[-1]["lr"]) < old:
            print(f"Epoch {self.learn.epoch}: reducing lr to {float(groups[-1]['lr'])}")
