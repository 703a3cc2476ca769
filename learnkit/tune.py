"""Hyper-parameter search on Optuna: ``PruningCallback`` (report a metric per epoch, stop pruned trials) and ``tune``.

``tune(build_learner_fn, n_trials=...)`` is KerasTuner's ``search`` in Optuna's terms: ``build_learner_fn(trial)``
samples its hyper-parameters with ``trial.suggest_*`` and returns a ``Learner``; each trial trains it with
``fit_one_cycle`` while a pruner stops the unpromising ones. The returned ``optuna.Study`` holds
``best_params``/``best_value``; ``build_best(study, build_learner_fn)`` builds the learner again from the best
parameters (KerasTuner's ``hypermodel.build(best_hps)``). With ``storage='sqlite:///study.db'`` (or any database
Optuna supports) a study resumes where it stopped, and several processes or machines can work on it at once.
Needs the optional ``optuna`` package (``pip install optuna`` or the ``tune`` extra).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .callback.core import Callback
from .utils import optional_import

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from .learner import Learner

__all__ = ["PruningCallback", "tune", "build_best"]


def _optuna() -> Any:
    """The optuna module, imported only when needed (it is optional)."""
    return optional_import("optuna", "learnkit.tune needs the optuna package: pip install optuna (or learnkit[tune])")


def _monitored(learn: "Learner", monitor: str) -> int:
    """The index of ``monitor`` in the recorder's row, or a ValueError listing the names there are."""
    names = [n for n in learn.recorder.metric_names if n not in ("epoch", "time")]
    if monitor not in names:
        raise ValueError(f"monitor={monitor!r} is not recorded by this learner; the names there are {names} "
                         f"(a metric's name is its function's or class's, e.g. 'accuracy', 'error_rate').")
    return list(learn.recorder.metric_names).index(monitor)


class PruningCallback(Callback):
    """Reports ``monitor`` to an Optuna ``trial`` after each epoch and raises ``optuna.TrialPruned`` when the
    study's pruner says stop (fastai's ``FastAIPruningCallback``). The epochs run go to ``trial.user_attrs['epochs']``."""

    order = 65  # after the Recorder (50) has built the row, and after the loggers (60) have written it

    def __init__(self, trial: "optuna.Trial", monitor: str = "valid_loss") -> None:
        self.trial, self.monitor = trial, monitor
        self.idx, self.n_epochs = 0, 0

    def before_fit(self) -> None:
        """Check the monitored name now, not after the first epoch."""
        self.idx = _monitored(self.learn, self.monitor)

    def after_epoch(self) -> None:
        """Report this epoch's value; stop the trial when it is pruned."""
        self.n_epochs += 1
        self.trial.set_user_attr("epochs", self.n_epochs)
        value = self.learn.recorder.log[self.idx]
        if value is None:
            return
        self.trial.report(float(value), step=self.learn.epoch)
        if self.trial.should_prune():
            raise _optuna().TrialPruned(f"trial {self.trial.number} pruned after epoch {self.learn.epoch} "
                                        f"({self.monitor}={float(value):.4g})")


def _pruner(pruner: Any, epochs: int) -> Any:
    """An Optuna pruner from a name ('hyperband', 'median', 'none') or a pruner object."""
    optuna = _optuna()
    if not isinstance(pruner, str):
        return pruner
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if pruner == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"tune(pruner={pruner!r}): use 'hyperband', 'median', 'none' or an optuna.pruners object.")


def _direction(monitor: str, direction: str | None) -> str:
    """'minimize' for losses and errors, else 'maximize', unless given."""
    if direction is None:
        return "minimize" if ("loss" in monitor or "error" in monitor) else "maximize"
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"tune(direction={direction!r}): use 'minimize' or 'maximize'.")
    return direction


def tune(build_learner_fn: Callable[["optuna.Trial"], "Learner"], n_trials: int = 10, epochs: int = 3,
         monitor: str = "valid_loss", direction: str | None = None, pruner: Any = "median",
         storage: str | None = None, study_name: str | None = None, sampler: Any = None, seed: int | None = None,
         timeout: float | None = None, fit: str = "fit_one_cycle", **fit_kwargs: Any) -> "optuna.Study":
    """Search hyper-parameters: ``n_trials`` learners from ``build_learner_fn(trial)``, each fit ``epochs`` epochs.

    The objective is ``monitor``'s last value; ``direction`` defaults to 'minimize' for losses and errors, else
    'maximize'. ``storage``: an Optuna RDB URL (e.g. ``'sqlite:///study.db'``); with ``study_name`` an existing
    study is loaded and continued. ``seed``: a seeded TPE sampler (when ``sampler`` is not given).
    """
    optuna = _optuna()
    direction = _direction(monitor, direction)
    if sampler is None and seed is not None:
        sampler = optuna.samplers.TPESampler(seed=seed)
    if isinstance(storage, str) and storage.startswith("sqlite:"):
        # processes sharing one SQLite study wait for its write lock (60 s) instead of failing with "database is locked"
        storage = optuna.storages.RDBStorage(storage, engine_kwargs={"connect_args": {"timeout": 60}})
    study = optuna.create_study(storage=storage, study_name=study_name, direction=direction, sampler=sampler,
                                pruner=_pruner(pruner, epochs), load_if_exists=study_name is not None)

    def objective(trial: "optuna.Trial") -> float:
        try:
            learn = build_learner_fn(trial)
        except (ValueError, TypeError, OverflowError) as e:
            raise ValueError(f"tune: trial {trial.number}'s search space could not be sampled in build_learner_fn: "
                             f"{e}. Check the low/high (low < high, log=True needs low > 0) and choices passed to "
                             f"trial.suggest_*.") from e
        getattr(learn, fit)(epochs, cbs=[PruningCallback(trial, monitor)], **fit_kwargs)
        value = learn.recorder.log[_monitored(learn, monitor)]
        if value is None:
            raise ValueError(f"tune: {monitor!r} was not recorded in trial {trial.number}'s last epoch.")
        return float(value)

    study.optimize(objective, n_trials=n_trials, timeout=timeout)
    return study


def build_best(study: "optuna.Study", build_learner_fn: Callable[["optuna.Trial"], "Learner"]) -> "Learner":
    """The learner ``build_learner_fn`` builds from the study's best parameters (untrained, ready to fit)."""
    return build_learner_fn(_optuna().trial.FixedTrial(study.best_params))
