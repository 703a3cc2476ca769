"""Hyper-parameter schedules: one-cycle, flat-cos, SGDR, fine_tune and the learning-rate finder.

A schedule is a function of the training progress ``pos`` (0 -> 1) returning a value, or one value per
parameter group (a NumPy array) for discriminative learning rates. ``ParamScheduler`` sets those values
on ``learn.opt.param_groups`` before every training batch. The ``fit_*`` functions, ``fine_tune`` and
``lr_find`` take the learner as first argument; ``Learner`` exposes them as methods of the same names.
"""
from __future__ import annotations

import bisect
import copy
import itertools
import math
import warnings
from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .core import Callback, CancelFitException, CancelValidException
from ..distributed import rank0_result

if TYPE_CHECKING:  # pragma: no cover
    from ..learner import Learner

__all__ = [
    "SchedLin", "SchedCos", "SchedNo", "SchedExp", "SchedPoly", "combine_scheds", "combined_cos", "even_mults",
    "lr_range", "set_hyper", "get_hyper", "ParamScheduler", "LRFinder",
    "fit_one_cycle", "fit_flat_cos", "fit_sgdr", "fine_tune", "lr_find", "valley", "slide", "minimum", "steep",
]

def _as_value(v: Any) -> float | np.ndarray:
    """A float stays a float; a sequence (one value per parameter group) becomes a float64 array."""
    if isinstance(v, (list, tuple, np.ndarray, torch.Tensor)):
        return np.asarray(v, dtype=np.float64)
    return float(v)


# -- schedule functions: pos in [0, 1] -> value

class _Sched:
    """Base of the schedules: goes from ``start`` (pos 0) to ``end`` (pos 1)."""

    def __init__(self, start: Any, end: Any) -> None:
        self.start, self.end = _as_value(start), _as_value(end)

    def __call__(self, pos: float) -> float | np.ndarray:
        """The value at progress ``pos`` (0 to 1)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.start!r}, {self.end!r})"


class SchedLin(_Sched):
    """Linear from ``start`` to ``end``."""

    def __call__(self, pos: float) -> float | np.ndarray:
        """``start + pos * (end - start)``."""
        return self.start + pos * (self.end - self.start)


class SchedCos(_Sched):
    """Cosine annealing from ``start`` to ``end`` (flat at both ends)."""

    def __call__(self, pos: float) -> float | np.ndarray:
        """Half a cosine wave from ``start`` to ``end``."""
        return self.start + (1 + math.cos(math.pi * (1 - pos))) * (self.end - self.start) / 2


class SchedNo(_Sched):
    """Constant at ``start`` (``end`` is ignored)."""

    def __call__(self, pos: float) -> float | np.ndarray:
        """Always ``start``."""
        return self.start


class SchedExp(_Sched):
    """Exponential (linear in log space) from ``start`` to ``end``; both must be positive."""

    def __init__(self, start: Any, end: Any) -> None:
        super().__init__(start, end)
        if np.any(np.asarray(self.start) <= 0) or np.any(np.asarray(self.end) <= 0):
            raise ValueError(f"SchedExp needs positive start and end values, got {self.start} and {self.end}.")

    def __call__(self, pos: float) -> float | np.ndarray:
        """``start * (end / start) ** pos``."""
        return self.start * (self.end / self.start) ** pos


class SchedPoly(_Sched):
    """Polynomial from ``start`` to ``end`` with exponent ``power``."""

    def __init__(self, start: Any, end: Any, power: float) -> None:
        super().__init__(start, end)
        self.power = power

    def __call__(self, pos: float) -> float | np.ndarray:
        """``start + (end - start) * pos ** power``."""
        return self.start + (self.end - self.start) * pos ** self.power


def combine_scheds(pcts: Sequence[float], scheds: Sequence[Callable[[float], Any]]) -> Callable[[float], Any]:
    """Chain schedules: ``scheds[i]`` runs over the fraction ``pcts[i]`` of training (``pcts`` sum to 1)."""
    if len(pcts) != len(scheds):
        raise ValueError(f"combine_scheds got {len(pcts)} fractions but {len(scheds)} schedules: "
                         f"give one fraction per schedule.")
    if any(p < 0 for p in pcts) or abs(sum(pcts) - 1) > 1e-6:
        raise ValueError(f"combine_scheds fractions must be >= 0 and sum to 1, got {list(pcts)}.")
    bounds = list(itertools.accumulate(pcts, initial=0.0))

    def _combined(pos: float) -> Any:
        i = min(max(bisect.bisect_right(bounds, pos) - 1, 0), len(scheds) - 1)
        width = bounds[i + 1] - bounds[i]
        return scheds[i]((pos - bounds[i]) / width if width > 0 else 0.0)
    return _combined


def combined_cos(pct: float, start: Any, middle: Any, end: Any) -> Callable[[float], Any]:
    """Cosine from ``start`` to ``middle`` over the first ``pct`` of training, then cosine to ``end``."""
    return combine_scheds([pct, 1 - pct], [SchedCos(start, middle), SchedCos(middle, end)])


# -- reading and writing hyper-parameters on a torch optimizer

def even_mults(start: float, stop: float, n: int) -> float | np.ndarray:
    """``n`` values from ``start`` to ``stop``, evenly spaced on a log scale (fastai's ``even_mults``)."""
    if n == 1:
        return stop
    step = (stop / start) ** (1 / (n - 1))
    return np.array([start * step ** i for i in range(n)])


def lr_range(lr: float | slice | Sequence[float], n: int) -> list[float]:
    """One learning rate per parameter group: ``slice(lo, hi)`` -> log-spaced lo...hi; ``slice(hi)`` -> hi/10 ... hi."""
    if isinstance(lr, slice):
        if lr.stop is None:
            raise ValueError(f"A learning-rate slice needs an upper value: slice(hi) or slice(lo, hi), got {lr}.")
        lr = even_mults(lr.start, lr.stop, n) if lr.start else [lr.stop / 10] * (n - 1) + [lr.stop]
    return _per_group(lr, n, "lr")


def _per_group(v: Any, n: int, name: str) -> list[float]:
    if isinstance(v, slice):
        return lr_range(v, n)
    if isinstance(v, (list, tuple, np.ndarray, torch.Tensor)):
        vals = [float(x) for x in v]
        if len(vals) == 1:
            return _checked(vals * n, name, v)
        if len(vals) != n:
            raise ValueError(f"{name} has {len(vals)} values but the optimizer has {n} parameter groups: give one "
                             f"value, or one per group (the splitter decides the groups).")
        return _checked(vals, name, v)
    return _checked([float(v)] * n, name, v)


_HYPER_FIX = {"lr": "a learning rate is a finite number >= 0, e.g. lr=1e-3 (learn.lr_find() suggests one)",
              "wd": "weight decay is a finite number >= 0, e.g. wd=0.01 (0 for none)"}


def _checked(vals: list[float], name: str, given: Any) -> list[float]:
    """Refuse a NaN, infinite or negative learning rate or weight decay, naming the value given."""
    if name in _HYPER_FIX and not all(math.isfinite(x) and x >= 0 for x in vals):
        raise ValueError(f"{name}={given!r} can't be used: {_HYPER_FIX[name]}.")
    return vals


def _set_group(g: dict, name: str, v: float) -> None:
    if name in _FASTAI_KEYS and name in g:  # a learnkit.optim_steppers.Optimizer keeps fastai's names
        g[name] = v
    elif name == "lr":
        if isinstance(g["lr"], torch.Tensor):
            g["lr"].fill_(v)
        else:
            g["lr"] = v
    elif name == "mom":
        if "betas" in g:
            g["betas"] = (v, g["betas"][1])
        elif "momentum" in g:
            g["momentum"] = v
        else:
            raise KeyError("This optimizer has no momentum hyper-parameter (neither 'betas' nor 'momentum').")
    elif name == "sqr_mom":
        if "betas" in g:
            g["betas"] = (g["betas"][0], v)
        else:
            g["alpha"] = v
    elif name == "wd":
        g["weight_decay"] = v
    else:
        if name not in g:
            raise KeyError(f"The optimizer's parameter groups have no hyper-parameter {name!r} "
                           f"(they have {sorted(k for k in g if k != 'params')}).")
        g[name] = v


_FASTAI_KEYS = ("mom", "sqr_mom", "wd")


def _get_group(g: dict, name: str) -> float:
    if name in _FASTAI_KEYS and name in g:
        return g[name]
    if name == "mom":
        return g["betas"][0] if "betas" in g else g["momentum"]
    if name == "sqr_mom":
        return g["betas"][1] if "betas" in g else g["alpha"]
    v = g["weight_decay" if name == "wd" else name]
    return float(v) if isinstance(v, torch.Tensor) else v


def set_hyper(opt: torch.optim.Optimizer, name: str, value: Any) -> None:
    """Set hyper-parameter ``name`` ('lr', 'mom', 'sqr_mom', 'wd' or a raw key): one value, or one per group."""
    groups = opt.param_groups
    for g, v in zip(groups, _per_group(value, len(groups), name)):
        _set_group(g, name, v)


def get_hyper(opt: torch.optim.Optimizer, name: str) -> list[float]:
    """The value of hyper-parameter ``name`` in each parameter group (body to head)."""
    return [_get_group(g, name) for g in opt.param_groups]


def _has_momentum(opt: torch.optim.Optimizer) -> bool:
    return all("betas" in g or "momentum" in g or "mom" in g for g in opt.param_groups)


# -- the callbacks

class ParamScheduler(Callback):
    """Sets scheduled hyper-parameters (``{'lr': sched, 'mom': sched}``) on the optimizer before each training batch.

    A schedule maps the fraction of training done (``learn.pct_train``) to one value, an array of one value
    per parameter group, or is a list of schedules, one per group. The values applied are kept in
    ``hps`` (last group) and handed to ``learn.recorder.hps`` at the end of the fit for ``plot_sched``.
    """

    order, run_valid = 60, False

    def __init__(self, scheds: dict[str, Callable | Sequence[Callable]]) -> None:
        self.scheds = dict(scheds)
        self.hps: dict[str, list[float]] = {}

    def before_fit(self) -> None:
        """Start recording; drop a momentum schedule the optimizer can't take (with a warning)."""
        if "mom" in self.scheds and not _has_momentum(self.learn.opt):
            warnings.warn(f"{type(self.learn.opt).__name__} has no momentum ('betas' or 'momentum'): "
                          f"the momentum schedule is skipped, only the other hyper-parameters are scheduled.")
            self.scheds.pop("mom")
        self.hps = {name: [] for name in self.scheds}

    def _update_val(self, pos: float) -> None:
        opt = self.learn.opt
        for name, f in self.scheds.items():
            set_hyper(opt, name, [s(pos) for s in f] if isinstance(f, (list, tuple)) else f(pos))

    def before_batch(self) -> None:
        """Apply every schedule at the current training progress."""
        self._update_val(self.learn.pct_train)

    def after_batch(self) -> None:
        """Record the values of the last parameter group."""
        g = self.learn.opt.param_groups[-1]
        for name, vals in self.hps.items():
            vals.append(_get_group(g, name))

    def after_fit(self) -> None:
        """Hand the recorded values to the recorder (for ``plot_sched``)."""
        rec = getattr(self.learn, "recorder", None)
        if rec is not None:
            rec.hps = self.hps


class LRFinder(ParamScheduler):
    """Grows the lr exponentially from ``start_lr`` to ``end_lr`` over ``num_it`` batches; stops on divergence."""

    def __init__(self, start_lr: float = 1e-7, end_lr: float = 10, num_it: int = 100, stop_div: bool = True) -> None:
        super().__init__({"lr": SchedExp(start_lr, end_lr)})
        self.num_it, self.stop_div = max(int(num_it), 6), stop_div
        self.best_loss = math.inf


    def before_fit(self) -> None:
        """Reset the best loss."""
        super().before_fit()
        self.best_loss = math.inf

    def before_batch(self) -> None:
        """Set the learning rate from the iteration count (not the epoch progress)."""
        self._update_val(self.learn.train_iter / self.num_it)

    def after_batch(self) -> None:
        """Stop after ``num_it`` batches, or when the smoothed loss exceeds 4x its best (or is NaN)."""
        super().after_batch()
        learn = self.learn
        loss = float(learn.smooth_loss)
        if loss < self.best_loss:
            self.best_loss = loss
        if self.stop_div and (loss > 4 * self.best_loss or math.isnan(loss)):
            raise CancelFitException()
        if learn.train_iter >= self.num_it:
            raise CancelFitException()

    def before_validate(self) -> None:
        """No validation while finding the learning rate."""
        raise CancelValidException()


# -- fit policies (exposed as Learner methods)

def _lr_per_group(learn: "Learner", lr: Any) -> np.ndarray:
    """Create the optimizer if needed and resolve ``lr`` (float, slice, None = learn.lr) to one value per group."""
    if learn.opt is None:
        learn.create_opt()
    return np.array(lr_range(learn.lr if lr is None else lr, len(learn.opt.param_groups)))


def _with(sched: Callback, cbs: Any) -> list:
    if cbs is None:
        return [sched]
    return [sched, *(cbs if isinstance(cbs, (list, tuple)) else [cbs])]


def fit_one_cycle(learn: "Learner", n_epoch: int, lr_max: Any = None, div: float = 25., div_final: float = 1e5,
                  pct_start: float = 0.25, wd: float | None = None, moms: tuple | None = None, cbs: Any = None,
                  reset_opt: bool = False, start_epoch: int = 0, resume: Any = None) -> None:
    """1cycle policy: lr warms up from lr_max/div to lr_max (cosine), then anneals to lr_max/div_final."""
    if reset_opt:
        learn.create_opt()
    lr_max = _lr_per_group(learn, lr_max)
    moms = learn.moms if moms is None else moms
    scheds = {"lr": combined_cos(pct_start, lr_max / div, lr_max, lr_max / div_final),
              "mom": combined_cos(pct_start, *moms)}
    learn.fit(n_epoch, cbs=_with(ParamScheduler(scheds), cbs), wd=wd, start_epoch=start_epoch, resume=resume)


def fit_flat_cos(learn: "Learner", n_epoch: int, lr: Any = None, div_final: float = 1e5, pct_start: float = 0.75,
                 wd: float | None = None, cbs: Any = None, reset_opt: bool = False, start_epoch: int = 0,
                 resume: Any = None) -> None:
    """Train at a flat lr for ``pct_start`` of the time, then cosine-anneal it to lr/div_final."""
    if reset_opt:
        learn.create_opt()
    lr = _lr_per_group(learn, lr)
    scheds = {"lr": combined_cos(pct_start, lr, lr, lr / div_final)}
    learn.fit(n_epoch, cbs=_with(ParamScheduler(scheds), cbs), wd=wd, start_epoch=start_epoch, resume=resume)


def fit_sgdr(learn: "Learner", n_cycles: int, cycle_len: int, lr_max: Any = None, cycle_mult: int = 2,
             cbs: Any = None, reset_opt: bool = False, wd: float | None = None, start_epoch: int = 0,
             resume: Any = None) -> None:
    """SGD with warm restarts: ``n_cycles`` cosine cycles from lr_max to 0, each ``cycle_mult`` times longer."""
    if reset_opt:
        learn.create_opt()
    lr_max = _lr_per_group(learn, lr_max)
    n_epoch = cycle_len * n_cycles if cycle_mult == 1 else cycle_len * (cycle_mult ** n_cycles - 1) // (cycle_mult - 1)
    pcts = [cycle_len * cycle_mult ** i / n_epoch for i in range(n_cycles)]
    scheds = {"lr": combine_scheds(pcts, [SchedCos(lr_max, 0) for _ in range(n_cycles)])}
    learn.fit(n_epoch, cbs=_with(ParamScheduler(scheds), cbs), wd=wd, start_epoch=start_epoch, resume=resume)


def fine_tune(learn: "Learner", epochs: int, base_lr: float = 2e-3, freeze_epochs: int = 1, lr_mult: float = 100,
              pct_start: float = 0.3, div: float = 5.0, **kwargs: Any) -> None:
    """fastai's transfer-learning recipe: ``freeze_epochs`` with the body frozen, then all with discriminative lrs."""
    learn.freeze()
    learn.fit_one_cycle(freeze_epochs, slice(base_lr), pct_start=0.99, **kwargs)
    base_lr /= 2
    learn.unfreeze()
    learn.fit_one_cycle(epochs, slice(base_lr / lr_mult, base_lr), pct_start=pct_start, div=div, **kwargs)


# -- the learning-rate finder and its suggestions

def valley(lrs: Sequence[float], losses: Sequence[float], num_it: int) -> tuple[float, tuple[float, float]]:
    """The lr in the middle of the longest valley of the loss curve (fastai's default suggestion)."""
    n = len(losses)
    max_start = max_end = 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end, max_start = i, i - lds[i]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return float(lrs[idx]), (float(lrs[idx]), float(losses[idx]))


def slide(lrs: Sequence[float], losses: Sequence[float], num_it: int, lr_diff: int = 15, thresh: float = .005,
          adjust_value: float = 1.) -> tuple[float, tuple[float, float]]:
    """The lr where the loss gradient stops changing, sliding an interval from the end (fastai's ``slide``)."""
    lrs, losses = np.asarray(lrs, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    loss_grad = np.gradient(losses)
    lr_diff = min(lr_diff, len(losses) - 1)
    r_idx, l_idx = -1, -1 - lr_diff
    local_min_lr = lrs[l_idx]
    while l_idx >= -len(losses) and abs(loss_grad[r_idx] - loss_grad[l_idx]) > thresh:
        local_min_lr = lrs[l_idx]
        r_idx, l_idx = r_idx - 1, l_idx - 1
    suggestion = float(local_min_lr) * adjust_value
    loss = float(np.interp(np.log10(suggestion), np.log10(lrs), losses))
    return suggestion, (suggestion, loss)


def minimum(lrs: Sequence[float], losses: Sequence[float], num_it: int) -> tuple[float, tuple[float, float]]:
    """One tenth of the lr at the minimum loss."""
    lrs, losses = np.asarray(lrs, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    i = int(losses.argmin())
    return float(lrs[i]) / 10, (float(lrs[i]), float(losses[i]))


def steep(lrs: Sequence[float], losses: Sequence[float], num_it: int) -> tuple[float, tuple[float, float]]:
    """The lr where the loss falls fastest (steepest negative slope against log lr)."""
    lrs, losses = np.asarray(lrs, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    grads = (losses[1:] - losses[:-1]) / (np.log(lrs[1:]) - np.log(lrs[:-1]))
    i = int(grads.argmin())
    return float(lrs[i]), (float(lrs[i]), float(losses[i]))


def _snapshot(learn: "Learner") -> tuple:
    model_state = {k: v.detach().clone() for k, v in learn.model.state_dict().items()}
    opt_state = None if learn.opt is None else copy.deepcopy(learn.opt.state_dict())
    return model_state, opt_state, learn.opt is None, learn.model.training


def _restore(learn: "Learner", snap: tuple) -> None:
    model_state, opt_state, had_no_opt, was_training = snap
    learn.model.load_state_dict(model_state)
    learn.model.train(was_training)
    if learn.opt is not None:
        learn.opt.zero_grad()
    if had_no_opt:
        learn.opt = None
    else:
        learn.opt.load_state_dict(opt_state)


def lr_find(learn: "Learner", start_lr: float = 1e-7, end_lr: float = 10, num_it: int = 100, stop_div: bool = True,
            show_plot: bool = True, suggest_funcs: Sequence[Callable] | Callable | None = (valley,)) -> Any:
    """Train a few batches at growing lrs and suggest lrs; the model and optimizer are left exactly as they were.

    Under torchrun it runs on rank 0 alone, and every rank gets rank 0's suggestions.
    """
    return rank0_result(lambda: _lr_find(learn, start_lr, end_lr, num_it, stop_div, show_plot, suggest_funcs),
                        pack=lambda r: None if r is None else (type(r)._fields, tuple(r)),
                        unpack=lambda p: None if p is None else namedtuple("SuggestedLRs", p[0])(*p[1]))


def _lr_find(learn: "Learner", start_lr: float, end_lr: float, num_it: int, stop_div: bool, show_plot: bool,
             suggest_funcs: Sequence[Callable] | Callable | None) -> Any:
    if getattr(learn, "recorder", None) is None:
        raise RuntimeError("lr_find reads the smoothed loss from the Recorder callback, which this learner doesn't "
                           "have: add it back with learn.add_cb(Recorder()).")
    finder = LRFinder(start_lr, end_lr, num_it, stop_div)
    n_epoch = finder.num_it // len(learn.dls.train) + 1
    snap = _snapshot(learn)
    try:
        with learn.no_logging():
            learn.fit(n_epoch, cbs=finder)
    finally:
        _restore(learn, snap)
    rec = learn.recorder
    if suggest_funcs is None:
        if show_plot:
            rec.plot_lr_find()
        return None
    funcs = suggest_funcs if isinstance(suggest_funcs, (list, tuple)) else (suggest_funcs,)
    lrs = np.asarray(rec.lrs[finder.num_it // 10:-5], dtype=np.float64)
    losses = np.asarray(rec.losses[finder.num_it // 10:-5], dtype=np.float64)
    nans = np.nonzero(np.isnan(losses))[0]
    if len(nans):
        lrs, losses = lrs[:nans[0]], losses[:nans[0]]
    if len(losses) < 2:
        raise RuntimeError(f"lr_find recorded only {len(losses)} usable losses (the loss diverged at once, or num_it="
                           f"{num_it} is too small): lower start_lr or raise num_it.")
    names = [getattr(getattr(f, "func", f), "__name__", f"suggestion{i}") for i, f in enumerate(funcs)]
    results = [f(lrs, losses, finder.num_it) for f in funcs]
    if show_plot:
        rec.plot_lr_find(suggestions=[r[1] for r in results], nms=names, suggested=[r[0] for r in results])
    SuggestedLRs = namedtuple("SuggestedLRs", names)
    return SuggestedLRs(*[r[0] for r in results])
