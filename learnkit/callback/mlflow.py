"""``MLflowCallback``: one MLflow run per fit with the recipe's parameters, per-epoch metrics, the export and the loss plot."""
from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

from ..distributed import rank_distrib
from ..utils import Path, optional_import
from .core import Callback

__all__ = ["MLflowCallback"]


def _mlflow() -> Any:
    """The mlflow module, imported only when needed (mlflow or mlflow-skinny; optional)."""
    return optional_import("mlflow", "MLflowCallback needs MLflow: pip install mlflow-skinny (or learnkit[mlflow])")


def _name(o: Any) -> str:
    """A short readable name: a function's or class's name, else the object's class name."""
    o = getattr(o, "func", o)  # functools.partial
    return getattr(o, "__name__", None) or type(o).__name__


def _peak_lrs(learn: Any) -> list[float]:
    """Each parameter group's highest lr this fit: the schedule's peak under ``fit_one_cycle`` & co, else the group's lr."""
    from .schedule import ParamScheduler
    groups = learn.opt.param_groups if learn.opt is not None else [{"lr": learn.lr}]
    sched = next((cb for cb in learn.cbs if isinstance(cb, ParamScheduler) and "lr" in cb.scheds), None)
    if sched is None:
        return sorted({float(g["lr"]) for g in groups})
    import numpy as np
    fs = sched.scheds["lr"]
    fs = list(fs) if isinstance(fs, (list, tuple)) else [fs]
    peaks = np.concatenate([np.max([np.ravel(np.asarray(f(p / 100), dtype=float)) for p in range(101)], axis=0)
                            for f in fs])  # a schedule may give one value per group
    return sorted({float(f"{v:.6g}") for v in peaks})


def _recipe(learn: Any) -> dict[str, str]:
    """The fit's recipe as MLflow params: lr, epochs, bs, architecture, transforms, optimizer, loss, wd."""
    dl = learn.dls.train
    procs = getattr(getattr(dl, "dataset", None), "procs", None) or getattr(learn.dls, "procs", None)
    tfms = [*(getattr(dl, "item_tfms", None) or []), *(getattr(dl, "batch_tfms", None) or []), *(procs or [])]
    lrs = _peak_lrs(learn)
    params = {"lr": max(lrs), "lr_groups": lrs if len(lrs) > 1 else None, "epochs": learn.n_epoch, "bs": getattr(dl, "bs", getattr(dl, "batch_size", None)),
              "arch": _name(getattr(learn, "arch", None) or learn.model), "opt_func": _name(learn.opt_func),
              "loss_func": _name(learn.loss_func), "wd": learn.wd, "n_train": len(dl.dataset) if hasattr(dl, "dataset") else None,
              "transforms": [_name(t) for t in tfms] or None}
    return {k: str(v)[:6000] for k, v in params.items() if v is not None}


class MLflowCallback(Callback):
    """Logs each fit to MLflow as one run: the recipe as params, every epoch's train/valid losses and metrics (step =
    epoch), ``tags``, and at the end the learner's export and the loss plot as artifacts.

    The tracking server is MLflow's own choice (``MLFLOW_TRACKING_URI``, or ``tracking_uri``); unset, runs go to a
    local SQLite store, ``learn.path/'mlruns'/mlflow.db`` with the artifacts beside it, in the experiment
    ``'learnkit'`` (``mlflow ui --backend-store-uri sqlite:///<that file>`` shows them). A fit
    inside an active MLflow run (``with mlflow.start_run():``) becomes a nested run of it, so ``fine_tune``'s two
    phases sit under one parent. Rank 0 only under torchrun; sits out ``lr_find``. A server that does not answer
    gets one warning and the fit goes on (every value stays in ``learn.recorder``). ``export_kwargs`` go to
    ``learn.export`` (e.g. ``pickle_model=True`` for a hand-built model); ``params`` add to the logged recipe.
    """

    order = 61  # after the Recorder (50) has built the epoch's row

    def __init__(self, experiment_name: str | None = None, run_name: str | None = None,
                 tags: dict[str, Any] | None = None, tracking_uri: str | None = None, log_model: bool = True,
                 log_plot: bool = True, params: dict[str, Any] | None = None,
                 export_kwargs: dict[str, Any] | None = None) -> None:
        self._mlflow = _mlflow()  # fail now, not after the first epoch
        self.experiment_name, self.run_name, self.tags = experiment_name, run_name, dict(tags or {})
        self.tracking_uri, self.log_model, self.log_plot, self.params = tracking_uri, log_model, log_plot, dict(params or {})
        self.export_kwargs = dict(export_kwargs or {})
        self.client: Any = None
        self.run_id: str | None = None
        self.failed, self.run = False, True

    def _uri(self) -> str:
        """``tracking_uri``, else MLflow's environment variable, else a file store under ``learn.path``."""
        if self.tracking_uri:
            return self.tracking_uri
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"]
        return f"sqlite:///{self._local_root() / 'mlflow.db'}"

    def _local_root(self) -> Path:
        """Where the default local store lives: ``learn.path/'mlruns'`` (database and artifacts)."""
        root = Path(self.learn.path).absolute() / "mlruns"
        root.mkdir(parents=True, exist_ok=True)
        return root

    def _safe(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call MLflow; on failure warn once, stop talking to the server, and let the fit go on."""
        if self.failed:
            return None
        try:
            return f(*args, **kwargs)
        except Exception as e:  # any transport or server error: tracking must never stop training
            self.failed = True
            warnings.warn(f"MLflowCallback: the tracking server at {self.uri} did not answer ({type(e).__name__}: "
                          f"{str(e)[:300]}); training goes on without MLflow, its values stay in learn.recorder "
                          f"(learn.recorder.history()). Check MLFLOW_TRACKING_URI.", RuntimeWarning, stacklevel=2)
            return None

    def before_fit(self) -> None:
        """Start the run (nested under an active MLflow run, if any) and log the recipe; rank 0 only."""
        self.run = not hasattr(self.learn, "lr_finder") and rank_distrib() == 0
        if not self.run:
            return
        self.failed, self.run_id, self.uri = False, None, self._uri()
        mlflow = self._mlflow
        self.client = mlflow.MlflowClient(tracking_uri=self.uri)
        tags = {k: str(v) for k, v in self.tags.items()}
        parent = mlflow.active_run()
        if parent is not None:
            tags["mlflow.parentRunId"] = parent.info.run_id
        exp_id = self._safe(self._experiment_id, parent)
        run = None if self.failed else self._safe(self.client.create_run, exp_id, tags=tags, run_name=self.run_name)
        if run is None:
            return
        self.run_id = run.info.run_id
        params = {**_recipe(self.learn), **{k: str(v) for k, v in self.params.items()}}
        self._safe(self.client.log_batch, self.run_id, params=[mlflow.entities.Param(k, v) for k, v in params.items()])

    def _experiment_id(self, parent: Any) -> str:
        """The experiment's id: ``experiment_name`` (created if needed), else the parent run's, else MLflow's default."""
        if self.experiment_name is None and parent is not None:
            return parent.info.experiment_id
        default_store = not self.tracking_uri and not os.environ.get("MLFLOW_TRACKING_URI")
        if self.experiment_name is None and not default_store:
            return "0"  # MLflow's "Default" experiment
        name = self.experiment_name or "learnkit"
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        where = (self._local_root() / "artifacts").as_uri() if default_store else None
        return self.client.create_experiment(name, artifact_location=where)

    def after_epoch(self) -> None:
        """Log the epoch's train and valid values, step = the epoch."""
        if not self.run or self.run_id is None:
            return
        rec, now = self.learn.recorder, int(time.time() * 1000)
        Metric = self._mlflow.entities.Metric
        metrics = [Metric(name, float(v), now, self.learn.epoch) for name, v in zip(rec.metric_names[1:], rec.log[1:])
                   if name != "time" and v is not None]
        self._safe(self.client.log_batch, self.run_id, metrics=metrics)

    def after_fit(self) -> None:
        """Log the export and the loss plot as artifacts and end the run."""
        if self.run and self.run_id is not None:
            with tempfile.TemporaryDirectory() as d:
                if self.log_model:
                    self._log_export(Path(d))
                if self.log_plot and self.learn.recorder.losses:
                    import matplotlib.pyplot as plt
                    fig = self.learn.recorder.plot_loss(skip_start=0).get_figure()
                    fig.savefig(Path(d) / "loss.png")
                    plt.close(fig)
                    self._safe(self.client.log_artifact, self.run_id, str(Path(d) / "loss.png"), "plots")
            self._safe(self.client.set_terminated, self.run_id, "FINISHED")
        self.run = True

    def _log_export(self, d: Path) -> None:
        """``learn.export`` into ``d`` and log it as the ``model`` artifact; a learner that can't export gets a warning."""
        from ..export import ExportError
        try:
            path = self.learn.export(d / "export.pkl", **self.export_kwargs)
        except ExportError as e:
            warnings.warn(f"MLflowCallback: the model was not logged: {e} (pass export_kwargs=... or log_model=False)",
                          RuntimeWarning, stacklevel=2)
            return
        self._safe(self._log_path, path, "model")

    def _log_path(self, path: Path, artifact_path: str) -> None:
        """A file or a folder as artifacts of the run."""
        if Path(path).is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)
