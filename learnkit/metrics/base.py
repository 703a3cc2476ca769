"""The metric protocol and its generic wrappers: Metric, AvgMetric (per-item means), AccumMetric (whole-set
functions), skm_to_fastai."""
from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["Metric", "AvgMetric", "AccumMetric", "ActivationType", "skm_to_fastai"]


# -- the protocol

class Metric:
    """Base class for metrics accumulated over a validation pass.

    Two ways to write one: learnkit's ``update(pred, targ)``, or fastai's ``accumulate(learn)`` reading
    ``learn.pred``, ``learn.yb`` (``learn.y``), ``learn.loss``. The Recorder calls ``accumulate(learn)``,
    which by default calls ``update(learn.pred, *learn.yb)``.
    """

    @property
    def name(self) -> str:
        """Column name shown in the training table: the class name in snake case without a ``Metric`` suffix (fastai's)."""
        return _camel2snake(re.sub(r"Metric$", "", type(self).__name__) or "metric")

    def reset(self) -> None:
        """Forget what was accumulated (called before each validation pass)."""

    def accumulate(self, learn: Any) -> None:
        """Accumulate the learner's current batch (fastai's entry point)."""
        self.update(learn.pred, *learn.yb)

    def update(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        """Accumulate one batch."""
        raise NotImplementedError(f"{type(self).__name__} defines neither update(pred, targ) nor accumulate(learn).")

    @property
    def value(self) -> float | None:
        """The metric over everything accumulated since ``reset``."""
        raise NotImplementedError


def _camel2snake(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def _func_name(func: Callable) -> str:
    base = func.func if isinstance(func, functools.partial) else func
    return getattr(base, "__name__", type(base).__name__)


def _bs(targ: torch.Tensor) -> int:
    return targ.shape[0] if isinstance(targ, torch.Tensor) and targ.ndim else 1


def _acc_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float32 if t.device.type == "mps" else torch.float64  # MPS has no float64


class AvgMetric(Metric):
    """Wraps ``func(pred, targ)`` and averages it over items (weighted by batch size)."""

    def __init__(self, func: Callable) -> None:
        self.func = func
        self.total: float | torch.Tensor = 0.0
        self.count = 0

    @property
    def name(self) -> str:
        """The function's name (the wrapped function's for a ``functools.partial``)."""
        return _func_name(self.func)

    def reset(self) -> None:
        """Zero the running sum."""
        self.total, self.count = 0.0, 0

    def update(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        """Add this batch's value times its size (kept on the device: no sync per batch)."""
        self._add(self.func(pred, targ), _bs(targ))

    def _add(self, v: Any, bs: int) -> None:
        """Add a batch value ``v`` weighted by its size ``bs`` (a tensor stays on its device)."""
        if isinstance(v, torch.Tensor):
            v = v.detach().to(_acc_dtype(v))
        self.total = v * bs + self.total
        self.count += bs

    @property
    def value(self) -> float | None:
        """Mean over all items seen."""
        return float(self.total) / self.count if self.count else None


class ActivationType:
    """The activations ``AccumMetric`` can apply to predictions before storing them (fastai's)."""

    No, Sigmoid, Softmax, BinarySoftmax = "no", "sigmoid", "softmax", "binary_softmax"


def _scalar(v: Any) -> Any:
    """A one-value result (tensor, NumPy scalar, number) as a float; anything else unchanged."""
    if isinstance(v, (torch.Tensor, np.ndarray, np.generic)) and np.size(v) == 1:
        return float(v.item() if hasattr(v, "item") else v)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


class AccumMetric(Metric):
    """Keeps every batch's predictions and targets and computes ``func(all_preds, all_targs)`` once, at the end (fastai's).

    Before storing, predictions go through ``activation`` (an ``ActivationType``; softmax over ``dim_argmax``),
    else an argmax over ``dim_argmax`` when given, then ``>= thresh`` when ``thresh`` is set; both are
    flattened when ``flatten``. ``to_np`` hands NumPy arrays to ``func``; ``invert_arg`` calls
    ``func(targs, preds)`` (scikit-learn's order); other keyword arguments go to ``func``.
    ``name`` defaults to the function's name. Called directly, ``metric(preds, targs)`` scores one batch.
    """

    def __init__(self, func: Callable, dim_argmax: int | None = None, activation: str = ActivationType.No,
                 thresh: float | None = None, to_np: bool = False, invert_arg: bool = False, flatten: bool = True,
                 name: str | None = None, **kwargs: Any) -> None:
        acts = (ActivationType.No, ActivationType.Sigmoid, ActivationType.Softmax, ActivationType.BinarySoftmax)
        if activation not in acts:
            raise ValueError(f"AccumMetric(activation={activation!r}): use one of {acts} (ActivationType.*).")
        self.func, self.dim_argmax, self.activation, self.thresh = func, dim_argmax, activation, thresh
        self.to_np, self.invert_args, self.flatten, self.kwargs, self._name = to_np, invert_arg, flatten, kwargs, name
        self.reset()

    @property
    def name(self) -> str:
        """The given name, else the function's."""
        return self._name or _func_name(self.func)

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def reset(self) -> None:
        """Drop the stored batches."""
        self.preds: list[torch.Tensor] = []
        self.targs: list[torch.Tensor] = []

    def _activate(self, pred: torch.Tensor) -> torch.Tensor:
        if self.activation in (ActivationType.Softmax, ActivationType.BinarySoftmax):
            pred = F.softmax(pred, dim=-1 if self.dim_argmax is None else self.dim_argmax)
            if self.activation == ActivationType.BinarySoftmax:
                pred = pred[:, -1]
        elif self.activation == ActivationType.Sigmoid:
            pred = torch.sigmoid(pred)
        elif self.dim_argmax is not None:
            pred = pred.argmax(dim=self.dim_argmax)
        if self.thresh:
            pred = pred >= self.thresh
        return pred

    def accumulate(self, learn: Any) -> None:
        """Store the learner's predictions (activated as configured) and first target."""
        self.update(learn.pred, learn.yb[0])

    def update(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        """Store this batch (activated as configured, detached)."""
        self.accum_values(self._activate(pred.detach()), targ)

    def accum_values(self, preds: torch.Tensor, targs: torch.Tensor, learn: Any = None) -> None:
        """Store ``preds`` and ``targs`` as they are (flattened when ``flatten``)."""
        preds, targs = preds.detach(), targs.detach()
        if self.flatten:
            preds, targs = _flatten_check(preds, targs, self.name)
        self.preds.append(preds)
        self.targs.append(targs)

    def __call__(self, preds: torch.Tensor, targs: torch.Tensor) -> Any:
        """The metric on one batch (what was stored before is dropped)."""
        self.reset()
        self.accum_values(preds, targs)
        return self.value

    @property
    def value(self) -> Any:
        """``func`` over the concatenation of every stored batch (a float when it is one number)."""
        if not self.preds:
            return None
        preds, targs = torch.cat(self.preds), torch.cat(self.targs)
        if self.to_np:
            preds, targs = preds.cpu().numpy(), targs.cpu().numpy()
        args = (targs, preds) if self.invert_args else (preds, targs)
        return _scalar(self.func(*args, **self.kwargs))


def skm_to_fastai(func: Callable, is_class: bool = True, thresh: float | None = None, axis: int = -1,
                  activation: str | None = None, **kwargs: Any) -> AccumMetric:
    """Wrap ``func(y_true, y_pred, **kwargs)`` (scikit-learn's signature) as a metric, as fastai does.

    Classification (``is_class``): an argmax over ``axis``, or with ``thresh`` a sigmoid then ``>= thresh``.
    Regression: predictions as they are. Arrays handed to ``func`` are NumPy.
    """
    dim_argmax = axis if is_class and thresh is None else None
    if activation is None:
        activation = ActivationType.Sigmoid if (is_class and thresh is not None) else ActivationType.No
    return AccumMetric(func, dim_argmax=dim_argmax, activation=activation, thresh=thresh, to_np=True,
                       invert_arg=True, **kwargs)


def _flatten_check(inp: torch.Tensor, targ: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Both flattened to 1-d, with a clear error when they hold different numbers of values."""
    if inp.numel() != targ.numel():
        raise ValueError(f"{name}: predictions of shape {tuple(inp.shape)} and targets of shape {tuple(targ.shape)} "
                         f"hold different numbers of values; check the model's output size and the metric's axis.")
    return inp.reshape(-1), targ.reshape(-1)
