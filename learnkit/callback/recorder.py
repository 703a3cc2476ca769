"""Recorder: the smoothed training loss, the validation loss and metrics, per batch and per epoch, and their plots.

Cheap per batch: on the CPU the running values are plain floats (``.item()`` on a CPU tensor costs
nothing like a GPU sync); on an accelerator they stay on the device and are read back once per epoch.
"""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import torch

from .core import Callback

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["Recorder", "format_time"]


def format_time(t: float) -> str:
    """Seconds -> ``mm:ss`` (or ``h:mm:ss``), as in the training table."""
    t = int(t)
    h, m, s = t // 3600, (t // 60) % 60, t % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


class Recorder(Callback):
    """Records losses, learning rates and metrics; logs one row per epoch through ``learn.logger``.

    After a fit: ``losses`` (smoothed training loss per batch: exponential moving average with
    debiasing, ``beta``), ``lrs`` (last parameter group's lr per batch), ``values`` (per epoch:
    ``[train_loss, valid_loss, *metrics]``), ``iters`` (batch count at each epoch end), ``metric_names``,
    ``hps`` (scheduled hyper-parameters, from ``ParamScheduler``), ``logs`` (the last epoch's values by name;
    the Recorder stores them before any other callback's ``after_epoch``). ``final_record`` is
    ``[valid_loss, *metrics]`` of the last validation pass (what ``learn.validate()`` returns).

    ``train_metrics=True`` (fastai's option; also ``learn.recorder.train_metrics = True`` before a fit)
    computes the metrics over each epoch's training batches too (in training mode, as the model trains),
    and the columns become fastai's ``train_loss, train_<metric>..., valid_loss, valid_<metric>...``.
    ``valid_metrics=False`` (fastai's) leaves the validation loss and metrics out of the table (``validate``
    still returns them). ``history`` is the epoch table as a pandas DataFrame (Keras' ``History``).
    """

    order = 50

    def __init__(self, add_time: bool = True, train_metrics: bool = False, valid_metrics: bool = True,
                 beta: float = 0.98) -> None:
        self.beta, self.add_time, self.train_metrics, self.valid_metrics = beta, add_time, train_metrics, valid_metrics
        self._seconds: list[float] = []
        self.lrs: list[float] = []
        self.values: list[list[float | None]] = []
        self.iters: list[int] = []
        self.hps: dict[str, list[float]] = {}
        self.metric_names: list[str] = []
        self.log: list = []
        self.final_record: list[float | None] | None = None
        self._losses: list[float] = []
        self._pending: list[torch.Tensor] = []  # device-side smoothed losses not yet read back
        self._avg: float | torch.Tensor = 0.0
        self._count = 0
        self._t0, self._train_loss, self._train_cancelled = 0.0, None, False
        self._vtotal: float | torch.Tensor = 0.0
        self._vcount, self._valid_cancelled = 0, False
        self._with_train_mets, self._train_values = False, []

    # -- the data

    @property
    def losses(self) -> list[float]:
        """Smoothed training loss after each batch of the last fit."""
        self._flush()
        return self._losses

    @property
    def logs(self) -> dict[str, float | None]:
        """The last epoch's values by column name (Keras' ``logs``), e.g. ``{'train_loss': .., 'valid_loss': .., 'accuracy': ..}``.

        Filled before any other callback's ``after_epoch`` runs, whatever its ``order``.
        """
        names = self.metric_names[1:-1] if self.add_time else self.metric_names[1:]
        return dict(zip(names, self.values[-1])) if self.values else {}

    def _flush(self) -> None:
        if self._pending:
            self._losses.extend(torch.stack(self._pending).float().tolist())
            self._pending = []

    @staticmethod
    def _on_host(t: torch.Tensor) -> bool:
        """Whether reading ``t`` is free (CPU): then running values are floats, else they stay on the device."""
        return t.device.type == "cpu"

    def _metrics(self) -> list:
        return list(self.learn.metrics)

    # -- events

    def before_fit(self) -> None:
        """Reset the history and print the table header."""
        self.lrs, self.values, self.iters, self.hps = [], [], [], {}
        self._losses, self._pending, self._avg, self._count = [], [], 0.0, 0
        self._seconds = []
        names = [m.name for m in self._metrics()]
        self._with_train_mets = bool(self.train_metrics) and bool(names)
        if self._with_train_mets and self.valid_metrics:  # fastai's: train_loss, train_<m>..., valid_loss, valid_<m>...
            names = [f"train_{n}" for n in ["loss", *names]] + [f"valid_{n}" for n in ["loss", *names]]
        elif self.valid_metrics:
            names = ["train_loss", "valid_loss", *names]
        else:  # the training columns only
            names = ["train_loss", *(names if self._with_train_mets else [])]
        self.metric_names = ["epoch", *names]
        if self.add_time:
            self.metric_names.append("time")
        self.learn.smooth_loss = None
        self._t0, self._train_loss, self.final_record = time.perf_counter(), None, None
        self.learn.logger(self.metric_names)

    def before_epoch(self) -> None:
        """Start the epoch clock."""
        self._t0 = time.perf_counter()
        self._train_loss = None
        self.final_record = [None] * (1 + len(self._metrics()))

    def before_train(self) -> None:
        """Note that training runs; reset the metrics when they are computed on training batches too."""
        self._train_cancelled = False
        self._train_values = [None] * len(self._metrics()) if self._with_train_mets else []
        if self._with_train_mets:
            for m in self._metrics():
                m.reset()

    def after_cancel_train(self) -> None:
        """A cancelled training phase logs no training loss."""
        self._train_cancelled = True

    def after_train(self) -> None:
        """The epoch's training loss is the smoothed loss at its end."""
        if not self._train_cancelled:
            self._train_loss = _float(self.learn.smooth_loss)
            if self._with_train_mets:
                self._train_values = [_float(m.value) for m in self._metrics()]

    def before_validate(self) -> None:
        """Reset the validation accumulators and the metrics."""
        self._vtotal, self._vcount, self._valid_cancelled = 0.0, 0, False
        for m in self._metrics():
            m.reset()

    def after_batch(self) -> None:
        """Training: update the smoothed loss and record the lr. Validation: accumulate loss and metrics."""
        learn = self.learn
        if not learn.yb or learn.loss is None:
            return
        loss = learn.loss
        if loss.ndim:
            loss = loss.mean()
        if learn.training:
            b = self.beta
            self._count += 1
            debias = 1 - b ** self._count
            if self._on_host(loss):
                self._avg = float(self._avg) * b + loss.item() * (1 - b)
                smooth: float | torch.Tensor = self._avg / debias
                self._losses.append(smooth)
            else:
                if not isinstance(self._avg, torch.Tensor):
                    self._avg = torch.tensor(float(self._avg), device=loss.device)
                self._avg = torch.lerp(loss.detach().float(), self._avg, b)
                smooth = self._avg / debias
                self._pending.append(smooth)
            learn.smooth_loss = smooth
            self.lrs.append(learn.opt.param_groups[-1]["lr"])
            if self._with_train_mets:
                pred = learn.pred.detach() if isinstance(learn.pred, torch.Tensor) else learn.pred
                for m in learn.metrics:
                    m.update(pred, *learn.yb)
        else:
            yb0 = learn.yb[0]
            bs = yb0.shape[0] if isinstance(yb0, torch.Tensor) and yb0.ndim else len(yb0)
            if self._on_host(loss):
                self._vtotal = float(self._vtotal) + loss.item() * bs
            else:
                self._vtotal = loss.detach().float() * bs + self._vtotal
            self._vcount += bs
            for m in learn.metrics:
                m.accumulate(learn)  # Metric.accumulate -> update(pred, *yb) unless a fastai-style metric overrides it

    def after_cancel_validate(self) -> None:
        """A cancelled validation logs no validation values."""
        self._valid_cancelled = True

    def after_validate(self) -> None:
        """Compute the validation loss (exact: weighted by batch size) and the metrics over the whole set."""
        mets = self._metrics()
        if self._valid_cancelled or not self._vcount:
            self.final_record = [None] * (1 + len(mets))
            return
        self.final_record = [float(self._vtotal) / self._vcount, *[_float(m.value) for m in mets]]

    def after_epoch(self) -> None:
        """Store the epoch's values and log its row."""
        learn = self.learn
        record = self.final_record or [None] * (1 + len(self._metrics()))  # None: cancelled before it began
        train = [self._train_loss, *(self._train_values or [None] * len(self._metrics()))] if self._with_train_mets \
            else [self._train_loss]
        self.values.append([*train, *(record if self.valid_metrics else [])])
        self.iters.append(len(self._losses) + len(self._pending))
        self.log = [learn.epoch, *self.values[-1]]
        self._seconds.append(time.perf_counter() - self._t0)
        if self.add_time:
            self.log.append(format_time(self._seconds[-1]))
        learn.logger(self.log)
        self._train_loss, self._t0 = None, time.perf_counter()  # final_record stays: the last validation pass

    def after_fit(self) -> None:
        """Read device-side losses back once."""
        self._flush()

    @property
    def history(self) -> "pd.DataFrame":
        """The epoch table of the last fit as a DataFrame: ``epoch``, the losses and metrics, ``time`` in seconds."""
        import pandas as pd
        names = self.metric_names[1:-1] if self.add_time else self.metric_names[1:]
        rows = [[float("nan") if v is None else v for v in row] for row in self.values]
        df = pd.DataFrame(rows, columns=names, dtype=float)
        df.insert(0, "epoch", range(len(rows)))
        df["time"] = self._seconds[:len(rows)]
        return df

    # -- plots (figures are returned, never shown: no blocking, fine under Agg)

    @staticmethod
    def _ax(ax: "Axes | None", figsize: tuple | None = None) -> "Axes":
        if ax is not None:
            return ax
        import matplotlib.pyplot as plt
        return plt.subplots(figsize=figsize)[1]

    def plot_loss(self, skip_start: int = 5, with_valid: bool = True, log: bool = False,
                  ax: "Axes | None" = None) -> "Figure":
        """Smoothed training loss per batch (skipping the first ``skip_start``), and the validation loss per epoch."""
        ax = self._ax(ax)
        losses = self.losses
        xs = list(range(skip_start, len(losses)))
        (ax.loglog if log else ax.plot)(xs, losses[skip_start:], label="train")
        if with_valid and self.values and "valid_loss" in self.metric_names:
            col = self.metric_names.index("valid_loss") - 1  # after the training columns (values have no epoch)
            pts = [(it, v[col]) for it, v in zip(self.iters, self.values) if it >= skip_start and v[col] is not None]
            if pts:
                ax.plot(*zip(*pts), label="valid")
        ax.set_xlabel("batches")
        ax.set_ylabel("loss")
        ax.legend()
        return ax.figure

    def plot_sched(self, keys: list[str] | None = None, figsize: tuple | None = None) -> "Figure":
        """The scheduled hyper-parameters per batch (lr, and momentum under ``fit_one_cycle``)."""
        import matplotlib.pyplot as plt
        hps = dict(self.hps) if self.hps else {"lr": self.lrs}
        keys = list(hps) if keys is None else list(keys)
        fig, axs = plt.subplots(1, len(keys), figsize=figsize or (6 * len(keys), 4), squeeze=False)
        for ax, k in zip(axs[0], keys):
            ax.plot(hps[k])
            ax.set_ylabel(k)
            ax.set_xlabel("batches")
        return fig

    def plot_metrics(self, nrows: int | None = None, ncols: int | None = None,
                     figsize: tuple | None = None) -> "Figure":
        """The loss and each metric per epoch, one panel each: training beside validation where both are recorded."""
        import matplotlib.pyplot as plt
        if not self.values:
            raise ValueError("No epoch recorded yet: plot_metrics needs at least one finished epoch (call fit first).")
        hist = self.history
        cols = [c for c in hist.columns if c not in ("epoch", "time")]
        panels = list(dict.fromkeys(c.removeprefix("train_").removeprefix("valid_") for c in cols))
        n = len(panels)
        ncols = ncols or min(n, 3)
        nrows = nrows or math.ceil(n / ncols)
        fig, axs = plt.subplots(nrows, ncols, figsize=figsize or (4 * ncols, 3 * nrows), squeeze=False)
        axs = axs.flatten()
        bare = "valid" if self.valid_metrics else "train"  # whose values the unprefixed metric columns are
        for ax, name in zip(axs, panels):
            for split, color in (("train", "C0"), ("valid", "C1")):
                col = f"{split}_{name}" if f"{split}_{name}" in cols else (name if split == bare else None)
                if col in cols:
                    ax.plot(hist["epoch"], hist[col], color=color, label=split)
            ax.set_title(name)
            ax.set_xlabel("epoch")
            ax.legend()
        for ax in axs[n:]:
            ax.set_visible(False)
        return fig

    def plot_lr_find(self, skip_end: int = 5, suggestions: list[tuple[float, float]] | None = None,
                     nms: list[str] | None = None, suggested: list[float] | None = None) -> "Figure":
        """Loss against learning rate (log scale) from ``lr_find``, each suggestion marked by a point and legend.

        ``suggestions`` are the ``(lr, loss)`` points each function looked at, ``nms`` their names and
        ``suggested`` the lrs they suggest (shown in the legend; ``minimum`` suggests a tenth of its point's lr).
        """
        import matplotlib.pyplot as plt
        lrs = self.lrs[:-skip_end] if skip_end else self.lrs
        losses = self.losses[:-skip_end] if skip_end else self.losses
        fig, ax = plt.subplots()
        ax.plot(lrs, losses)
        ax.set_xscale("log")
        ax.set_xlabel("Learning Rate")
        ax.set_ylabel("Loss")
        if suggestions:
            colors = plt.rcParams["axes.prop_cycle"].by_key()["color"][1:]
            shown = suggested if suggested is not None else [lr for lr, _ in suggestions]
            for (lr, loss), nm, sug, c in zip(suggestions, nms or [""] * len(suggestions), shown, colors):
                ax.plot(lr, loss, "o", label=f"{nm}: {sug:.2e}", c=c)
            ax.legend(loc="best")
        return fig
