"""``ValidateEvery(n_steps)``: a validation pass every n training steps, as ``Trainer``'s ``eval_strategy='steps'``.

Steps count the training batches of the fit (``learn.train_iter`` after the batch: the first batch is step 1),
across epochs, like ``Trainer``'s ``global_step``. A validation runs after steps n, 2n, ...; the end-of-epoch
validation still runs too (``at_epoch_end=False``: only when its step is a multiple of n), and when a multiple
of n ends an epoch the end-of-epoch pass is that step's validation (the set is never scored twice for one step).

A mid-epoch pass is an ordinary validation pass: every callback sees its ``before_validate``, batches and
``after_validate`` (the Recorder scores it, progress bars show it), then the training state is put back as it
was: ``learn.training``, ``learn.dl``, the batch and its prediction and loss, the batch counters, the model's
``train()`` mode, the module that runs the batches (DDP), torch's random state (so the rest of the epoch
trains exactly as it would have without the pass) and, when metrics are computed on training batches too,
their running state.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from .core import Callback, CancelValidException
from .recorder import format_time

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["ValidateEvery"]

# the learner attributes a training batch leaves behind, which a validation pass overwrites
_BATCH_STATE = ("iter", "xb", "yb", "pred", "loss", "loss_grad")


class ValidateEvery(Callback):
    """Validate every ``n_steps`` training steps; ``values`` / ``history`` hold one row per such validation.

    Each row is ``[step, epoch, train_loss, valid_loss, *metrics]`` (``train_loss``: the smoothed training loss
    at that step) and is also printed through ``learn.logger`` as a row of the training table whose ``epoch``
    cell reads ``step <n>``. ``at_epoch_end=False`` skips the end-of-epoch validation at steps that aren't a
    multiple of ``n_steps``; the epoch's row (and the trackers) then get the values of the epoch's last step
    validation (none in that epoch: empty). Sits out ``lr_find``; ``learn.validate()`` is not affected.
    """

    order = 70  # after every callback that reads the training batch (Recorder 50, trackers 60-63, bars 60-65)

    def __init__(self, n_steps: int, at_epoch_end: bool = True) -> None:
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
            raise ValueError(f"ValidateEvery(n_steps={n_steps!r}): give a whole number of training steps >= 1, "
                             f"e.g. ValidateEvery(500).")
        self.n_steps, self.at_epoch_end = n_steps, at_epoch_end
        self.values: list[list[Any]] = []
        self.names: list[str] = []
        self._in_fit = self._nested = self._skipped_end = False
        self._epoch_record: list | None = None  # this epoch's last step validation: [valid_loss, *metrics]
        self._t0 = 0.0

    # -- when

    def _on_step(self) -> bool:
        return self.learn.train_iter % self.n_steps == 0

    def _ends_epoch(self) -> bool:
        n_iter = self.learn.n_iter
        return n_iter is not None and self.learn.iter == n_iter - 1

    # -- events

    def before_fit(self) -> None:
        """A fresh history per fit (as the Recorder's); sits out ``lr_find``."""
        self._in_fit, self._nested = not hasattr(self.learn, "lr_finder"), False
        if not self._in_fit:
            return  # lr_find keeps the last fit's history
        self.values = []
        rec = getattr(self.learn, "recorder", None)
        if rec is None:
            raise RuntimeError("ValidateEvery reads the validation values the Recorder computes, but this learner has "
                               "no recorder: keep the default Recorder callback.")
        mets = [m.name for m in self.learn.metrics]
        self.names = ["step", "epoch", "train_loss", "valid_loss", *mets]

    def before_epoch(self) -> None:
        """No step validation in this epoch yet."""
        self._epoch_record, self._t0 = None, time.perf_counter()

    def after_batch(self) -> None:
        """After every ``n_steps``-th training step (unless it ends the epoch), run a validation pass."""
        learn = self.learn
        if not (self._in_fit and learn.training and self._on_step()) or self._ends_epoch():
            return
        valid = learn.dls.valid
        if _len_or_none(valid) == 0:
            return
        self._validate_mid_epoch(valid)

    def _validate_mid_epoch(self, valid: Any) -> None:
        learn = self.learn
        saved = {k: learn.__dict__.get(k) for k in _BATCH_STATE}
        compiled_set, compiled = "_compiled" in learn.__dict__, learn.__dict__.get("_compiled")
        metric_states = self._metric_states()
        device = learn._model_device()
        devices = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else []
        self._nested = True
        try:
            # the random streams too: a loader's iterator draws its seed from them, and training must go on
            # exactly as it would have without this pass (same shuffles, same dropout masks)
            with torch.random.fork_rng(devices=devices):
                learn._eval_pass(valid)  # restores training, dl, n_iter and the model's mode
        finally:
            self._nested = False
            learn.__dict__.update(saved)
            if compiled_set:
                learn._compiled = compiled
            else:
                learn.__dict__.pop("_compiled", None)
            for m, state in metric_states:
                m.__dict__.clear()
                m.__dict__.update(state)

    def _metric_states(self) -> list[tuple[Any, dict]]:
        """The metrics' running state when the Recorder also computes them on training batches (else nothing to keep)."""
        rec = self.learn.recorder
        if not getattr(rec, "_with_train_mets", False):
            return []
        return [(m, dict(m.__dict__)) for m in self.learn.metrics]  # reset() rebinds, so a shallow copy keeps them

    def before_validate(self) -> None:
        """``at_epoch_end=False``: skip an end-of-epoch validation whose step isn't a multiple of ``n_steps``."""
        self._skipped_end = False
        if self._in_fit and not self._nested and not self.at_epoch_end and not self._on_step():
            self._skipped_end = True
            raise CancelValidException()

    def after_validate(self) -> None:
        """Record a step validation (mid-epoch, or the end-of-epoch pass on a multiple of ``n_steps``)."""
        if not self._in_fit:
            return
        rec = self.learn.recorder
        if self._skipped_end:  # the epoch's row shows its last step validation
            rec.final_record = None if self._epoch_record is None else list(self._epoch_record)
            return
        if not (self._nested or self._on_step()) or rec.final_record is None or rec.final_record[0] is None:
            return
        if not self._nested and self.values and self.values[-1][0] == self.learn.train_iter:
            return  # a training loader without a length: this step was validated mid-epoch already
        self._epoch_record = list(rec.final_record)
        smooth = self.learn.smooth_loss
        row = [self.learn.train_iter, self.learn.epoch, None if smooth is None else float(smooth), *rec.final_record]
        self.values.append(row)
        if self._nested:  # the end-of-epoch pass gets its own row in the table
            self._log(row)

    def _log(self, row: list) -> None:
        """Print the row as a line of the training table (same columns; ``epoch`` reads ``step <n>``)."""
        rec = self.learn.recorder
        by_name = dict(zip(self.names[2:], row[2:]))
        line = []
        for n in rec.metric_names:
            if n == "epoch":
                line.append(f"step {row[0]}")
            elif n == "time":
                line.append(format_time(time.perf_counter() - self._t0))
            else:
                line.append(by_name.get(n, by_name.get(n.removeprefix("valid_")) if n.startswith("valid_") else None))
        self.learn.logger(line)

    def after_fit(self) -> None:
        """Ready for ``validate`` calls outside a fit."""
        self._in_fit = self._nested = self._skipped_end = False

    @property
    def history(self) -> "pd.DataFrame":
        """The step validations of the last fit as a DataFrame: ``step, epoch, train_loss, valid_loss, *metrics``."""
        import pandas as pd
        rows = [[float("nan") if v is None else v for v in row] for row in self.values]
        return pd.DataFrame(rows, columns=self.names or ["step", "epoch", "train_loss", "valid_loss"])


def _len_or_none(dl: Any) -> int | None:
    try:
        return len(dl)
    except TypeError:
        return None
