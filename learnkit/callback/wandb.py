"""``WandbCallback``: Weights & Biases logging with fastai's arguments (losses, hyper-parameters, metrics, predictions, model)."""
from __future__ import annotations

import tempfile
from typing import Any

from ..distributed import rank_distrib
from ..utils import Path, optional_import
from .core import Callback

__all__ = ["WandbCallback"]


def _wandb() -> Any:
    """The wandb module, imported only when needed (it is optional)."""
    return optional_import("wandb", "WandbCallback needs the wandb package: pip install wandb (or learnkit[wandb])")


class WandbCallback(Callback):
    """Logs to the active W&B run (``wandb.init`` first, as in fastai): per training batch the smoothed loss and the
    hyper-parameters, per epoch the validation loss and metrics, the recipe to ``wandb.config``.

    ``log``: what ``wandb.watch`` records ('gradients', 'parameters', 'all' or None); ``log_preds``: a table of
    ``n_preds`` validation targets and predictions (``valid_dl`` or the validation loader; ``seed`` picks them)
    after the fit, or after every epoch with ``log_preds_every_epoch``; ``log_model``: the export as a
    ``model`` artifact named ``model_name`` (default: the run's name). Rank 0 only; sits out ``lr_find``.
    """

    order = 61  # after the Recorder (50)

    def __init__(self, log: str | None = None, log_preds: bool = True, log_preds_every_epoch: bool = False,
                 log_model: bool = False, model_name: str | None = None, log_dataset: bool = False,
                 dataset_name: str | None = None, valid_dl: Any = None, n_preds: int = 36, seed: int = 12345,
                 reorder: bool = True) -> None:
        self._wandb = _wandb()
        if log not in (None, "gradients", "parameters", "all"):
            raise ValueError(f"WandbCallback(log={log!r}): use 'gradients', 'parameters', 'all' or None.")
        if log_dataset:
            raise NotImplementedError("WandbCallback(log_dataset=True) is not supported yet: log the data folder "
                                      "yourself with wandb.Artifact(..., type='dataset').add_dir(path).")
        self.log, self.log_preds, self.log_preds_every_epoch = log, log_preds, log_preds_every_epoch
        self.log_model, self.model_name, self.dataset_name = log_model, model_name, dataset_name
        self.valid_dl, self.n_preds, self.seed, self.reorder = valid_dl, n_preds, seed, reorder
        self.run = True

    def before_fit(self) -> None:
        """Check the W&B run, log the recipe to its config and start ``wandb.watch``; rank 0 only."""
        self.run = not hasattr(self.learn, "lr_finder") and rank_distrib() == 0
        if not self.run:
            return
        if self._wandb.run is None:
            raise RuntimeError("WandbCallback needs a W&B run: call wandb.init() (WANDB_MODE=offline to log locally) "
                               "before fitting.")
        from .mlflow import _recipe
        self._wandb.config.update(_recipe(self.learn), allow_val_change=True)
        if self.log is not None:
            self._wandb.watch(self.learn.model, log=self.log)
        self._step = 0

    def after_batch(self) -> None:
        """The smoothed training loss and each parameter group's lr, per training batch."""
        if not self.run or not self.learn.training or self.learn.smooth_loss is None:
            return
        row = {"train_loss": float(self.learn.smooth_loss), "raw_loss": float(self.learn.loss)}
        for i, g in enumerate(self.learn.opt.param_groups):
            row[f"lr_{i}"] = float(g["lr"])
        self._step += 1
        self._wandb.log(row, step=self._step)

    def after_epoch(self) -> None:
        """The epoch's validation loss and metrics (and the predictions table with ``log_preds_every_epoch``)."""
        if not self.run:
            return
        rec = self.learn.recorder
        row = {n: float(v) for n, v in zip(rec.metric_names[1:], rec.log[1:]) if n not in ("train_loss", "time")
               and v is not None}
        self._wandb.log({"epoch": self.learn.epoch + 1, **row}, step=self._step)
        if self.log_preds and self.log_preds_every_epoch:
            self._log_predictions()

    def _log_predictions(self) -> None:
        """A table of ``n_preds`` validation items: target and prediction (decoded when the loaders have a vocab)."""
        import torch
        dl = self.valid_dl if self.valid_dl is not None else self.learn.dls.valid
        preds, targs = self.learn.get_preds(dl=dl)[:2]
        idx = torch.randperm(len(targs), generator=torch.Generator().manual_seed(self.seed))[:self.n_preds]
        if not self.reorder:
            idx = idx.sort().values
        vocab = getattr(self.learn.dls, "vocab", None)
        name = (lambda i: str(vocab[int(i)])) if vocab is not None else (lambda i: str(i.tolist()))
        rows = [[int(i), name(targs[i]), name(preds[i].argmax(-1) if preds.ndim > 1 else preds[i])] for i in idx]
        table = self._wandb.Table(columns=["item", "target", "prediction"], data=rows)
        self._wandb.log({"predictions": table}, step=self._step)

    def after_fit(self) -> None:
        """Log the predictions table and the model artifact."""
        if self.run:
            if self.log_preds and not self.log_preds_every_epoch:
                self._log_predictions()
            if self.log_model:
                with tempfile.TemporaryDirectory() as d:
                    path = self.learn.export(Path(d) / "export.pkl")
                    art = self._wandb.Artifact(self.model_name or f"run-{self._wandb.run.id}-model", type="model")
                    if Path(path).is_dir():  # "mutable": wandb stages a copy now, so the temporary folder can go
                        art.add_dir(str(path), policy="mutable")
                    else:
                        art.add_file(str(path), policy="mutable")
                    self._wandb.run.log_artifact(art)
        self.run = True
