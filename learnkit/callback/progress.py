"""Progress bars (tqdm.auto: terminal or notebook) for each training/validation phase, and the per-epoch table.

In a notebook a bar is an ipywidgets widget while its phase runs; when the phase ends it is replaced by its
final line as plain text, so a saved or ``nbconvert``-ed notebook holds readable lines, not widget references.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TextIO

from tqdm.auto import tqdm
from tqdm.notebook import tqdm as _notebook_tqdm

from ..utils import Path, atomic_write
from .core import Callback

__all__ = ["ProgressCallback", "ShowGraphCallback", "TableWriter"]


class TableWriter:
    """Prints the training table: column names, then one row per epoch (via ``tqdm.write``, so bars stay intact).

    Used as ``learn.logger``: called with the header (a list of names) before the first epoch, then with
    ``[epoch, train_loss, valid_loss, *metrics, time]`` after each epoch.
    """

    def __init__(self, file: TextIO | None = None) -> None:
        self.file = file
        self.widths: list[int] = []

    def __call__(self, row: Sequence[Any]) -> None:
        """Print one row (the header when every entry is a string)."""
        if all(isinstance(v, str) for v in row):
            self.widths = [max(len(v), 8) for v in row]
            cells = list(row)
        else:
            cells = [self._fmt(v) for v in row]
        widths = self.widths or [8] * len(cells)
        tqdm.write("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip(), file=self.file)

    @staticmethod
    def _fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.6f}"
        return str(v)


class ProgressCallback(Callback):
    """One progress bar per training / validation phase (``tqdm.auto``); ``learn.no_bar()`` removes it.

    Updating costs one counter increment per batch: tqdm redraws at most every ``mininterval`` seconds.
    """

    order = 60

    def __init__(self, mininterval: float = 0.25) -> None:
        self.mininterval = mininterval
        self.pbar: Any = None
        self._handle: Any = None  # the notebook display of the bar's widget
        self._in_fit = self._finder = False
        self._paused: tuple | None = None  # the training bar while a mid-epoch validation runs (ValidateEvery)

    def before_fit(self) -> None:
        """Bars name the epoch from now on; ``lr_find`` gets one bar for all its batches."""
        self._in_fit = True
        finder = getattr(self.learn, "lr_finder", None)
        self._finder = finder is not None
        if self._finder:
            self._open("lr_find", total=finder.num_it)

    def _open(self, phase: str, total: int | None = -1) -> None:
        self._close()
        learn = self.learn
        if total == -1:
            try:
                total = len(learn.dl)
            except TypeError:  # an iterable without a length
                total = None
        desc = phase if self._finder or not self._in_fit else f"epoch {learn.epoch + 1}/{learn.n_epoch} {phase}"
        if total is None:
            desc += " (length unknown)"
        if issubclass(tqdm, _notebook_tqdm):  # tqdm.auto chose the widget bar: display it where we can replace it
            from IPython.display import display
            self.pbar = tqdm(total=total, desc=desc, leave=False, mininterval=self.mininterval, display=False)
            self._handle = display(self.pbar.container, display_id=True)
        else:
            self.pbar = tqdm(total=total, desc=desc, leave=False, mininterval=self.mininterval, dynamic_ncols=True)

    def _close(self) -> None:
        if self.pbar is not None:
            line = str(self.pbar)  # the final plain-text meter
            self.pbar.close()
            self.pbar = None
            if self._handle is not None:
                self._handle.update({"text/plain": line}, raw=True)
                self._handle = None

    def before_train(self) -> None:
        """Open the training bar (not during ``lr_find``: its one bar stays)."""
        if not self._finder:
            self._open("train")

    def before_validate(self) -> None:
        """Open the validation bar (not during ``lr_find``: its one bar stays); a training bar still open waits."""
        if not self._finder:
            if self.pbar is not None and self._in_fit:  # a validation inside the training phase
                self._paused, self.pbar, self._handle = (self.pbar, self._handle), None, None
            self._open("valid")

    def after_batch(self) -> None:
        """Advance the bar by one batch."""
        if self.pbar is not None:
            self.pbar.update()

    def after_train(self) -> None:
        """Close the training bar."""
        if not self._finder:
            self._close()

    def after_validate(self) -> None:
        """Close the validation bar (and carry on with a training bar that waited)."""
        if not self._finder:
            self._close()
            if self._paused is not None:
                (self.pbar, self._handle), self._paused = self._paused, None

    def after_fit(self) -> None:
        """Close any bar left open (e.g. after a cancelled fit)."""
        self._close()
        if self._paused is not None:
            (self.pbar, self._handle), self._paused = self._paused, None
            self._close()
        self._in_fit = self._finder = False


class ShowGraphCallback(Callback):
    """Plots the training and validation losses after each epoch on one figure (``self.fig``, axes ``self.ax``).

    In a notebook the figure is shown once and updated in place. In a script nothing is shown (no blocking):
    with ``fname`` the figure is written there (atomically, any matplotlib format) after each epoch; without,
    it stays in ``self.fig`` for ``cb.fig.savefig(...)``. The x axis spans the whole fit's training batches.
    """

    order, run_valid = 65, False

    def __init__(self, fname: str | os.PathLike | None = None) -> None:
        self.fname = fname
        self.fig: Any = None
        self.ax: Any = None
        self._handle: Any = None
        self._skip = False
        self._total = 0

    def before_fit(self) -> None:
        """A fresh figure per fit (none during ``lr_find``, which keeps the last one)."""
        self._skip = hasattr(self.learn, "lr_finder") or getattr(self.learn, "recorder", None) is None
        if not self._skip:
            self.fig, self.ax, self._handle = None, None, None
            try:
                self._total = self.learn.n_epoch * len(self.learn.dls.train)
            except TypeError:  # a training loader without a length
                self._total = 0

    def after_epoch(self) -> None:
        """Redraw the losses recorded so far; update the notebook display or the file."""
        if self._skip:
            return
        import matplotlib.pyplot as plt
        if self.fig is None:
            self.fig, self.ax = plt.subplots()
        self.ax.clear()
        self.learn.recorder.plot_loss(skip_start=0, ax=self.ax)
        if self._total:
            self.ax.set_xlim(0, self._total)
        self.ax.set_title(f"epoch {self.learn.epoch + 1}/{self.learn.n_epoch}")
        if self.fname is not None:
            self._save()
        if _in_notebook():
            from IPython.display import display
            if self._handle is None:
                self._handle = display(self.fig, display_id=True)
                plt.close(self.fig)  # shown through the handle only, not again at the end of the cell
            else:
                self._handle.update(self.fig)

    def _save(self) -> None:
        fname = Path(self.fname)
        fmt = fname.suffix[1:] or "png"
        with atomic_write(fname, "wb") as f:
            self.fig.savefig(f, format=fmt)


def _in_notebook() -> bool:
    """Whether an IPython kernel with rich display runs this (a notebook), not a terminal or a script."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and type(ip).__name__ != "TerminalInteractiveShell"
