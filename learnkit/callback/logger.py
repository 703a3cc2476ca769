"""Loggers: the training table to a CSV file (``CSVLogger``) and losses, hyper-parameters and metrics to TensorBoard."""
from __future__ import annotations

import csv
import os
from typing import TYPE_CHECKING, Any

from ..distributed import rank_distrib
from ..utils import Path, to_device
from .core import Callback

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["CSVLogger", "TensorBoardCallback"]


class CSVLogger(Callback):
    """Writes the training table to ``learn.path/fname``: a header of the recorder's ``metric_names``, then one row per epoch.

    Each row is written and flushed as its epoch ends, so the file is current if training stops. ``append``:
    add to an existing file (its header must match) instead of starting a new one. Missing values (a
    cancelled validation) are empty cells. ``read_log()`` returns the file as a DataFrame.
    """

    order = 60  # after the Recorder (50) has built the epoch's row

    def __init__(self, fname: str | os.PathLike = "history.csv", append: bool = False) -> None:
        self.fname, self.append = Path(fname), append
        self.run = True


    @property
    def path(self) -> Path:
        """The file written: ``learn.path / fname``."""
        return Path(self.learn.path) / self.fname

    def before_fit(self) -> None:
        """Start the file with the column names (or check them when appending). Sits out ``lr_find``; rank 0 only."""
        self.run = not hasattr(self.learn, "lr_finder") and rank_distrib() == 0
        if not self.run:
            return
        header = list(self.learn.recorder.metric_names)
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.append and path.exists() and path.stat().st_size > 0:
            with open(path, newline="") as f:
                existing = next(csv.reader(f), [])
            if existing != header:
                raise ValueError(f"CSVLogger(append=True): {path} has columns {existing} but this fit records "
                                 f"{header}; pass append=False to start a new file, or another fname.")
            return
        with open(path, "w", newline="") as f:
            csv.writer(f).writerow(header)

    def after_epoch(self) -> None:
        """Append this epoch's row and flush it to disk."""
        if not self.run:
            return
        row = ["" if v is None else v for v in self.learn.recorder.log]
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow(row)
            f.flush()
            os.fsync(f.fileno())

    def after_fit(self) -> None:
        """Ready for the next fit."""
        self.run = True

    def read_log(self) -> "pd.DataFrame":
        """The log file as a pandas DataFrame."""
        import pandas as pd
        return pd.read_csv(self.path)


def _summary_writer_cls() -> type:
    """``torch.utils.tensorboard.SummaryWriter``, imported only when needed (tensorboard is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ImportError("TensorBoardCallback needs the tensorboard package: pip install tensorboard") from e
    return SummaryWriter


class TensorBoardCallback(Callback):
    """Logs to TensorBoard: the smoothed training loss and each parameter group's lr, momentum and weight decay per
    training batch, and the validation loss and metrics per epoch (x axis: training batches so far).

    ``log_dir``: where the event files go (default: TensorBoard's ``runs/<date>_<host>``). ``trace_model``:
    also record the model's graph, traced on one training batch. Needs the optional ``tensorboard``
    package (``pip install tensorboard``). Sits out ``lr_find``.
    """

    order = 60  # after the Recorder (50)
    run_valid = False

    def __init__(self, log_dir: str | os.PathLike | None = None, trace_model: bool = False) -> None:
        self._writer_cls = _summary_writer_cls()  # fail now, not after the first epoch
        self.log_dir, self.trace_model = log_dir, trace_model
        self.writer: Any = None
        self.run = True

    def before_fit(self) -> None:
        """Open the writer (and trace the model on one batch when ``trace_model``); rank 0 only."""
        self.run = not hasattr(self.learn, "lr_finder") and rank_distrib() == 0
        if not self.run:
            return
        self.writer = self._writer_cls(log_dir=None if self.log_dir is None else str(self.log_dir))
        if self.trace_model:
            learn = self.learn
            batch = tuple(learn.dls.train.one_batch())
            xb = batch[:getattr(learn.dls, "n_inp", 1)]
            device = next(learn.model.parameters()).device
            was_training = learn.model.training
            learn.model.eval()
            try:
                self.writer.add_graph(learn.model, to_device(xb, device) if len(xb) > 1 else to_device(xb[0], device))
            finally:
                learn.model.train(was_training)

    def after_batch(self) -> None:
        """Log the smoothed loss and the hyper-parameters of each parameter group."""
        if not self.run or self.learn.smooth_loss is None:
            return
        learn, step = self.learn, self.learn.train_iter
        self.writer.add_scalar("train_loss", float(learn.smooth_loss), step)
        for i, g in enumerate(learn.opt.param_groups):
            self.writer.add_scalar(f"lr_{i}", float(g["lr"]), step)
            mom = g["betas"][0] if "betas" in g else g.get("momentum")
            if mom is not None:
                self.writer.add_scalar(f"mom_{i}", float(mom), step)
            if "weight_decay" in g:
                self.writer.add_scalar(f"wd_{i}", float(g["weight_decay"]), step)

    def after_epoch(self) -> None:
        """Log the validation loss and metrics of the epoch."""
        if not self.run:
            return
        rec = self.learn.recorder
        for name, v in zip(rec.metric_names[2:], rec.log[2:]):  # from valid_loss on
            if name != "time" and v is not None:
                self.writer.add_scalar(name, float(v), self.learn.train_iter)

    def after_fit(self) -> None:
        """Flush and close the event files."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.run = True

