"""Learner: a model, its data, a loss and an optimizer, and the training loop that ties them together.

The loop (``fit`` down to ``_one_batch``) fits on one screen. Everything optional (recording, progress
bars, schedules, mixed precision...) is a callback: the loop fires the events of ``callback.core.EVENTS``
and each callback that defines an event runs, in ``order``. A callback stops a batch, a phase, an epoch
or the whole fit by raising the matching ``Cancel*Exception``. To stay cheap per batch, the list of
bound methods that handle each event is built once, when callbacks are added or removed.

Per batch, ``loss_grad`` is the loss that is backpropagated: a callback that changes it (scaling,
regularisation) assigns a new tensor to ``learn.loss_grad`` in ``after_loss``/``before_backward``.
``loss`` is its detached value for logging and metrics (it holds no autograd graph, so keeping it
around can't leak memory).
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from .callback.core import (EVENTS, Callback, CancelBackwardException, CancelBatchException, CancelEpochException,
                            CancelFitException, CancelStepException, CancelTrainException, CancelValidException)
from .callback.finite import FiniteLossGuard
from .callback.precision import to_bf16, to_channels_last, to_fp16, to_fp32
from .callback.progress import ProgressCallback, TableWriter
from .callback.recorder import Recorder
from .distributed import auto_distrib, distrib_barrier, distrib_ctx, rank_distrib
from .export import export_learner
from .hf_model import text_input_fn
from .input_checks import channel_mismatch, check_loss_is_scalar
from .resume import resume_callbacks, training_state
from .callback.schedule import (fine_tune, fit_flat_cos, fit_one_cycle, fit_sgdr, lr_find, lr_range, set_hyper,
                                valley)
from .losses import loss_for_kind
from .metrics import Metric, to_metric
from .optimizer import Adam
from .registry import register_learner
from .utils import Path, atomic_write, to_device
from .weights_io import check_finite_weights, is_learnkit_export, load_model_state, read_weights

__all__ = ["Learner", "trainable_params", "NORM_TYPES"]

NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm,
              nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LocalResponseNorm)
# events fired once per batch: callbacks with run_train / run_valid False skip them in that phase
_BATCH_EVENTS = frozenset(("before_batch", "after_pred", "after_loss", "before_backward", "after_backward",
                           "before_step", "after_step", "after_cancel_batch", "after_batch"))
_CANCELS = (CancelFitException, CancelEpochException, CancelTrainException, CancelValidException,
            CancelBatchException, CancelStepException, CancelBackwardException)


def trainable_params(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``model`` that require gradients (the default splitter: one parameter group)."""
    return [p for p in model.parameters() if p.requires_grad]


def _no_log(row: Sequence[Any]) -> None:
    """A logger that drops the row (used by ``no_logging``)."""


def _handles(cb: Callback, event: str) -> bool:
    return callable(cb.__dict__.get(event)) or callable(getattr(type(cb), event, None))


def _event_order(cbs: list[Callback], event: str) -> list[Callback]:
    """The callbacks in ``order``, except that a Recorder stores the epoch's row before any other ``after_epoch``.

    So a plain callback (order 0) reads this epoch's values in ``recorder.values[-1]`` / ``recorder.logs``.
    """
    if event != "after_epoch":
        return cbs
    return sorted(cbs, key=lambda cb: not isinstance(cb, Recorder))  # stable: the rest keep their order


class _GatherPreds(Callback):
    """Collects predictions, targets (and inputs, per-item losses) of every batch, on the CPU (used by get_preds)."""

    order, run_train = 100, False

    def __init__(self, with_input: bool, with_loss: bool) -> None:
        self.with_input, self.with_loss = with_input, with_loss
        self.preds: list = []
        self.targs: list = []
        self.inputs: list = []
        self.losses: list = []


    def after_batch(self) -> None:
        """Keep this batch's outputs."""
        learn = self.learn
        self.preds.append(_detach_cpu(learn.pred))
        if learn.yb:
            self.targs.append(_detach_cpu(learn.yb[0] if len(learn.yb) == 1 else learn.yb))
        if self.with_input:
            self.inputs.append(_detach_cpu(learn.xb[0] if len(learn.xb) == 1 else learn.xb))
        if self.with_loss and learn.yb:
            loss, bs = learn.loss, learn.yb[0].shape[0]
            self.losses.append(_detach_cpu(loss if loss.numel() == bs else loss.reshape(bs, -1).mean(1)))


def _same_device(a: Any, b: torch.device) -> bool:
    if a is None:
        return False
    a = torch.device(a)
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _detach(x: Any, cpu: bool = False) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu() if cpu else x.detach()
    if isinstance(x, (tuple, list)):
        return type(x)(_detach(o, cpu) for o in x)
    return x


def _detach_cpu(x: Any) -> Any:
    return _detach(x, cpu=True)


def _logits(out: Any) -> Any:
    """A model's output as the loss and metrics take it: a transformers ``ModelOutput`` gives its ``.logits``."""
    return out.logits if not isinstance(out, torch.Tensor) and hasattr(out, "logits") else out


def _cat(batches: list) -> Any:
    if not batches:
        return None
    if isinstance(batches[0], (tuple, list)):
        return type(batches[0])(_cat(list(parts)) for parts in zip(*batches))
    return torch.cat(batches)


@register_learner
class Learner:
    """Trains ``model`` on ``dls`` with ``loss_func`` and an optimizer built by ``opt_func``; see the module doc."""

    def __init__(self, dls: Any, model: nn.Module, loss_func: Callable | None = None, opt_func: Callable = Adam,
                 lr: float | slice = 1e-3, splitter: Callable[[nn.Module], Any] = trainable_params,
                 cbs: Any = None, metrics: Any = None, path: str | os.PathLike | None = None,
                 model_dir: str | os.PathLike = "models", wd: float | None = None,
                 moms: tuple[float, float, float] = (0.95, 0.85, 0.95), train_bn: bool = True) -> None:
        self.model = model
        self.dls = dls  # the setter moves the model to dls.device
        self.loss_func = loss_func if loss_func is not None else _default_loss(dls)
        self.opt_func, self.lr, self.splitter, self.wd = opt_func, lr, splitter, wd
        self.moms, self.train_bn = moms, train_bn
        self.opt: torch.optim.Optimizer | None = None
        self.metrics = metrics
        self.path = Path(path if path is not None else getattr(dls, "path", "."))
        self.model_dir = model_dir
        self.model_spec: dict | None = None  # set by learnkit's model factories; export needs it
        self.logger: Callable[[Sequence[Any]], None] = TableWriter()
        self.epoch, self.n_epoch, self.iter, self.n_iter, self.train_iter, self.pct_train = 0, 1, 0, 0, 0, 0.0
        self.training, self.dl, self.xb, self.yb = False, None, (), ()
        self.pred = self.loss = self.loss_grad = self.smooth_loss = None
        self.cbs: list[Callback] = []
        self._handlers: dict[bool, dict[str, list[Callable[[], None]]]] = {}
        given = _as_list(cbs)
        defaults = [c for c in (Recorder, ProgressCallback, FiniteLossGuard)
                    if not any(isinstance(g, c) or g is c for g in given)]
        self.add_cbs(defaults + given)

    # -- data, metrics and the device

    @property
    def dls(self) -> Any:
        """The DataLoaders; assigning new ones (progressive resizing) moves the model to their device."""
        return self._dls

    @dls.setter
    def dls(self, dls: Any) -> None:
        self._dls = dls
        device = getattr(dls, "device", None)
        if device is not None:
            self.model.to(device)

    @property
    def metrics(self) -> list[Metric]:
        """The metrics computed over each validation pass (``Metric`` objects)."""
        return self._metrics

    @metrics.setter
    def metrics(self, metrics: Any) -> None:
        self._metrics = [to_metric(m) for m in _as_list(metrics)]

    @property
    def x(self) -> Any:
        """The current input: ``xb[0]`` when the batch has one input, else ``xb`` (fastai's ``learn.x``)."""
        return self.xb[0] if len(self.xb) == 1 else self.xb

    @property
    def y(self) -> Any:
        """The current target: ``yb[0]`` when the batch has one target, else ``yb`` (fastai's ``learn.y``)."""
        return self.yb[0] if len(self.yb) == 1 else self.yb

    def to_detach(self, b: Any, cpu: bool = True, gather: bool = True) -> Any:
        """``b`` (tensors, possibly in lists/tuples) detached, and moved to the CPU when ``cpu`` (fastai's)."""
        return _detach(b, cpu)

    def _model_device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device(getattr(self.dls, "device", "cpu"))

    # -- callbacks

    def add_cb(self, cb: Callback | type) -> "Learner":
        """Add a callback (an instance, or a class to instantiate); it becomes ``learn.<cb.name>``."""
        if isinstance(cb, type):
            cb = cb()
        if not isinstance(cb, Callback):
            raise TypeError(f"{cb!r} is not a Callback: callbacks subclass learnkit.callback.core.Callback.")
        current = self.__dict__.get(cb.name)
        if hasattr(type(self), cb.name) or (cb.name in self.__dict__ and not isinstance(current, Callback)):
            raise ValueError(f"Callback {type(cb).__name__} would be reachable as learn.{cb.name}, which is already a "
                             f"Learner attribute: rename the class or override its `name` property.")
        cb.learn = self
        setattr(self, cb.name, cb)
        self.cbs.append(cb)
        self.cbs.sort(key=lambda c: c.order)  # stable: equal orders keep the order they were added in
        self._build_handlers()
        return self

    def add_cbs(self, cbs: Iterable[Callback | type]) -> "Learner":
        """Add several callbacks."""
        for cb in _as_list(cbs):
            self.add_cb(cb)
        return self

    def remove_cb(self, cb: Callback | type) -> "Learner":
        """Remove a callback (or every callback of a class)."""
        if isinstance(cb, type):
            return self.remove_cbs([c for c in self.cbs if isinstance(c, cb)])
        if cb not in self.cbs:
            return self
        self.cbs.remove(cb)
        if self.__dict__.get(cb.name) is cb:
            del self.__dict__[cb.name]
            same = [c for c in self.cbs if c.name == cb.name]
            if same:
                setattr(self, cb.name, same[-1])
        cb.learn = None
        self._build_handlers()
        return self

    def remove_cbs(self, cbs: Iterable[Callback | type]) -> "Learner":
        """Remove several callbacks."""
        for cb in list(_as_list(cbs)):
            self.remove_cb(cb)
        return self

    @contextmanager
    def added_cbs(self, cbs: Any) -> Iterator["Learner"]:
        """Context manager: add ``cbs`` for the duration of the block."""
        added = [c() if isinstance(c, type) else c for c in _as_list(cbs)]
        self.add_cbs(added)
        try:
            yield self
        finally:
            self.remove_cbs(added)

    def _build_handlers(self) -> None:
        """Per phase and event, the bound methods of the callbacks defining it, in order (no no-op calls per batch)."""
        self._handlers = {
            training: {ev: [getattr(cb, ev) for cb in _event_order(self.cbs, ev) if _handles(cb, ev) and
                            (ev not in _BATCH_EVENTS or (cb.run_train if training else cb.run_valid))]
                       for ev in EVENTS}
            for training in (True, False)}

    def _event(self, name: str) -> None:
        """Run the callbacks' handlers of event ``name``."""
        f = None
        try:
            for f in self._handlers[self.training][name]:
                if f.__self__.run:  # a callback sets ``self.run = False`` to sit out the rest of this fit
                    f()
        except _CANCELS:
            raise
        except Exception as e:
            e.add_note(f"(raised by callback {getattr(f, '__self__', f)!r} during event {name!r})")
            raise
        finally:
            if name == "after_fit":
                for cb in self.cbs:
                    cb.run = True

    def __call__(self, event_name: str | Iterable[str]) -> None:
        """Fire event(s) by name on every callback, as the training loop does (``learn('before_fit')``)."""
        for ev in [event_name] if isinstance(event_name, str) else event_name:
            if ev in EVENTS:
                self._event(ev)
            else:
                for cb in self.cbs:
                    cb(ev)

    def _with_events(self, f: Callable[[], None], name: str, cancel: type[Exception]) -> None:
        try:
            self._event(f"before_{name}")
            f()
        except cancel:
            self._event(f"after_cancel_{name}")
        self._event(f"after_{name}")

    # -- the training loop

    def fit(self, n_epoch: int, lr: float | slice | None = None, wd: float | None = None, cbs: Any = None,
            reset_opt: bool = False, start_epoch: int = 0, resume: str | os.PathLike | None = None) -> None:
        """Train for ``n_epoch`` epochs at a constant ``lr`` (default ``self.lr``; a slice gives discriminative lrs).

        ``start_epoch``: skip the first epochs (the schedule starts where they end); ``resume``: continue exactly
        from a checkpoint ``SaveModelCallback(every_n_batches=..., with_opt=True)`` wrote (see ``learnkit.resume``).
        """
        if isinstance(n_epoch, bool) or not isinstance(n_epoch, int) or n_epoch < 0:
            raise ValueError(f"fit needs a whole number of epochs >= 0, got n_epoch={n_epoch!r}: e.g. learn.fit(3).")
        with self.added_cbs(cbs), auto_distrib(self):
            if reset_opt or self.opt is None:
                self.create_opt()
            resumer, start_epoch = resume_callbacks(self, resume, start_epoch, n_epoch)
            self._set_hypers(lr=self.lr if lr is None else lr, wd=self.wd if wd is None else wd)
            self.n_epoch, self.start_epoch = n_epoch, start_epoch
            self.add_cbs(resumer)
            try:
                self._with_events(self._do_fit, "fit", CancelFitException)
            finally:
                self.remove_cbs(resumer)
                self.dl, self.xb, self.yb, self.pred, self.loss, self.loss_grad = None, (), (), None, None, None
                self.model.eval()  # as after a complete fit (its validation ran last), also when interrupted

    def _do_fit(self) -> None:
        self.train_iter, self.pct_train = 0, 0.0
        for self.epoch in range(self.__dict__.get("start_epoch", 0), self.n_epoch):
            self._with_events(self._do_epoch, "epoch", CancelEpochException)

    def _do_epoch(self) -> None:
        self._run_phase(self.dls.train, training=True)
        self._run_phase(self.dls.valid, training=False)

    def _run_phase(self, dl: Iterable, training: bool) -> None:
        self.dl, self.training = dl, training
        self.model.train(training)
        self.n_iter = _len_or_none(dl)  # None: an iterable of unknown length (IterableDataset)
        if training:  # without a length, schedules advance once per epoch
            self.pct_train = self.epoch / self.n_epoch
            self._pct_step = 0.0 if self.n_iter is None else 1 / (max(1, self.n_iter) * self.n_epoch)
        n_inp = getattr(dl, "n_inp", None) or getattr(self.dls, "n_inp", 1)
        device = self._model_device()
        move = not _same_device(getattr(dl, "device", None), device)  # learnkit loaders already deliver there
        name, cancel = ("train", CancelTrainException) if training else ("validate", CancelValidException)
        with torch.set_grad_enabled(training):
            self._with_events(lambda: self._all_batches(dl, n_inp, device if move else None), name, cancel)

    def _all_batches(self, dl: Iterable, n_inp: int, move_to: torch.device | None) -> None:
        for self.iter, b in enumerate(dl):
            b = tuple(b) if isinstance(b, (tuple, list)) else (b,)
            if move_to is not None:
                b = to_device(b, move_to)
            self.xb, self.yb = b[:n_inp], b[n_inp:]
            self._one_batch()

    def _forward(self, model: nn.Module) -> Any:
        """``model`` on the batch's inputs; a transformers text model also gets its attention mask (and token types)."""
        cached = self.__dict__.get("_input_fn")
        if cached is None or cached[0] is not self.model or cached[1] is not self.dls:
            cached = self.__dict__["_input_fn"] = (self.model, self.dls, text_input_fn(self.model, self.dls))
        fn = cached[2]
        return model(**fn(*self.xb)) if fn is not None and len(self.xb) == 1 else model(*self.xb)

    def _one_batch(self) -> None:
        try:
            self._event("before_batch")
            compiled = self.__dict__.get("_compiled")  # (module, compiled module) from learn.compile()
            try:
                self.pred = _logits(self._forward(compiled[1] if compiled is not None and compiled[0] is self.model
                                                  else self.model))
            except RuntimeError as e:
                why = channel_mismatch(self.model, self.xb)
                if why is None:
                    raise
                raise ValueError(why) from e
            self._event("after_pred")
            if self.yb:
                self.loss_grad = self.loss_func(self.pred, *self.yb)
                self.loss = self.loss_grad.detach()  # for logging: holds no graph
            self._event("after_loss")
            if self.training and self.yb:
                self._backward_and_step()
        except CancelBatchException:
            self._event("after_cancel_batch")
        if self.training:
            self.train_iter += 1
            self.pct_train += self._pct_step
        self._event("after_batch")

    def _backward_and_step(self) -> None:
        try:
            self._event("before_backward")
            check_loss_is_scalar(self.loss_grad, self.loss_func)
            self.loss_grad.backward()
        except CancelBackwardException:
            pass
        self._event("after_backward")
        try:
            self._event("before_step")
            self.opt.step()
        except CancelStepException:
            pass
        self._event("after_step")
        self.opt.zero_grad()

    # -- the optimizer

    def create_opt(self) -> torch.optim.Optimizer:
        """Build ``self.opt`` from ``opt_func`` over the splitter's parameter groups (body -> head)."""
        groups = self.splitter(self.model)
        groups = list(groups) if not isinstance(groups, list) else groups
        if groups and isinstance(groups[0], torch.Tensor):
            groups = [groups]  # a flat list of parameters: one group
        groups = [list(g) for g in groups]
        if not any(groups):
            raise ValueError("The splitter returned no parameters to train: check that the model has parameters "
                             "with requires_grad=True, or pass a splitter returning lists of parameters.")
        lr = lr_range(self.lr, len(groups))[-1]
        self.opt = self.opt_func([{"params": g} for g in groups], lr=lr)
        self._set_hypers(lr=self.lr, wd=self.wd)
        return self.opt

    def _set_hypers(self, lr: Any = None, wd: float | None = None) -> None:
        if lr is not None:
            set_hyper(self.opt, "lr", lr)
        if wd is not None:
            set_hyper(self.opt, "wd", wd)

    def freeze_to(self, n: int) -> None:
        """Train only parameter groups ``n`` onwards (norm layers too if ``train_bn``); clears the optimizer state."""
        if self.opt is None:
            self.create_opt()
        groups = self.opt.param_groups
        frozen_idx = n if n >= 0 else len(groups) + n
        if frozen_idx >= len(groups):
            warnings.warn(f"freeze_to({n}) freezes all {len(groups)} parameter groups: the whole model is frozen "
                          f"(only normalization layers train when train_bn=True).")
        keep = {id(p) for m in self.model.modules() if isinstance(m, NORM_TYPES)
                for p in m.parameters(recurse=False)} if self.train_bn else set()
        for i, g in enumerate(groups):
            for p in g["params"]:
                p.requires_grad_(i >= frozen_idx or id(p) in keep)
        self.opt.state.clear()

    def freeze(self) -> None:
        """Freeze every parameter group but the last (the head)."""
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        """Make every parameter group trainable."""
        self.freeze_to(0)

    # -- schedules (see callback/schedule.py)

    def fit_one_cycle(self, n_epoch: int, lr_max: float | slice | None = None, div: float = 25.,
                      div_final: float = 1e5, pct_start: float = 0.25, wd: float | None = None,
                      moms: tuple | None = None, cbs: Any = None, reset_opt: bool = False, start_epoch: int = 0,
                      resume: str | os.PathLike | None = None) -> None:
        """1cycle policy: lr from lr_max/div up to lr_max, then down to lr_max/div_final; momentum inverse."""
        fit_one_cycle(self, n_epoch, lr_max=lr_max, div=div, div_final=div_final, pct_start=pct_start, wd=wd,
                      moms=moms, cbs=cbs, reset_opt=reset_opt, start_epoch=start_epoch, resume=resume)

    def fit_flat_cos(self, n_epoch: int, lr: float | slice | None = None, div_final: float = 1e5,
                     pct_start: float = 0.75, wd: float | None = None, cbs: Any = None,
                     reset_opt: bool = False, start_epoch: int = 0, resume: str | os.PathLike | None = None) -> None:
        """Train at a flat lr, then cosine-anneal it over the last ``1 - pct_start`` of training."""
        fit_flat_cos(self, n_epoch, lr=lr, div_final=div_final, pct_start=pct_start, wd=wd, cbs=cbs,
                     reset_opt=reset_opt, start_epoch=start_epoch, resume=resume)

    def fit_sgdr(self, n_cycles: int, cycle_len: int, lr_max: float | slice | None = None, cycle_mult: int = 2,
                 cbs: Any = None, reset_opt: bool = False, wd: float | None = None, start_epoch: int = 0,
                 resume: str | os.PathLike | None = None) -> None:
        """SGD with warm restarts: cosine cycles from lr_max to 0, each ``cycle_mult`` times longer."""
        fit_sgdr(self, n_cycles, cycle_len, lr_max=lr_max, cycle_mult=cycle_mult, cbs=cbs, reset_opt=reset_opt, wd=wd,
                 start_epoch=start_epoch, resume=resume)

    def fine_tune(self, epochs: int, base_lr: float = 2e-3, freeze_epochs: int = 1, lr_mult: float = 100,
                  pct_start: float = 0.3, div: float = 5.0, **kwargs: Any) -> None:
        """Transfer learning: ``freeze_epochs`` with the body frozen, then ``epochs`` unfrozen, discriminative lrs."""
        fine_tune(self, epochs, base_lr=base_lr, freeze_epochs=freeze_epochs, lr_mult=lr_mult, pct_start=pct_start,
                  div=div, **kwargs)

    def lr_find(self, start_lr: float = 1e-7, end_lr: float = 10, num_it: int = 100, stop_div: bool = True,
                show_plot: bool = True, suggest_funcs: Any = (valley,)) -> Any:
        """Suggest learning rates (a named tuple, one field per suggestion function); model and optimizer unchanged."""
        return lr_find(self, start_lr=start_lr, end_lr=end_lr, num_it=num_it, stop_div=stop_div, show_plot=show_plot,
                       suggest_funcs=suggest_funcs)

    # -- evaluation and inference

    def _eval_pass(self, dl: Iterable) -> None:
        """One validation pass over ``dl`` (validate-phase events only), restoring the learner's state after."""
        saved = (self.training, self.dl, self.n_iter, self.model.training)
        try:
            self._run_phase(dl, training=False)
        finally:
            self.training, self.dl, self.n_iter = saved[:3]
            self.model.train(saved[3])

    def _whole_loader(self, ds_idx: int, dl: Iterable | None) -> Iterable:
        """``dl``, or loader ``ds_idx`` read in order and complete (no shuffle, no dropped last batch)."""
        if dl is not None:
            return dl
        dl = self.dls[ds_idx]
        if getattr(dl, "shuffle", False) or getattr(dl, "drop_last", False):
            dl = dl.new(shuffle=False, drop_last=False)
        return dl

    def validate(self, ds_idx: int = 1, dl: Iterable | None = None) -> list[float | None]:
        """Loss (exact, weighted by batch size) and metrics over a whole loader: ``[loss, *metric values]``.

        The list is an ``EvalResult`` naming its values for the split: ``test_loss`` for ``dl=dls.test`` (or
        ``ds_idx=2``), ``valid_loss`` otherwise (``train_loss`` for ``ds_idx=0``).
        """
        from .results import EvalResult
        split = _split_name(self.dls, ds_idx, dl)
        dl = self._whole_loader(ds_idx, dl)
        _check_labelled(dl, split)
        rec = getattr(self, "recorder", None)
        with self.added_cbs([] if rec is not None else [Recorder()]), self.no_logging():
            self._eval_pass(dl)
            return EvalResult(self.recorder.final_record, [f"{split}_loss", *[m.name for m in self.metrics]], split)

    def get_preds(self, ds_idx: int = 1, dl: Iterable | None = None, with_input: bool = False,
                  with_decoded: bool = False, with_loss: bool = False, act: Callable | None = None,
                  reorder: bool = True, cbs: Any = None) -> tuple:
        """Predictions and targets over a loader: ``([inputs,] preds, targs[, decoded][, losses])``, on the CPU.

        ``cbs``: callbacks added for this pass only (e.g. ``MCDropoutCallback()``).

        ``preds`` are ``act(output)`` (default: the loss's ``activation``, e.g. softmax); ``decoded`` is the loss's
        ``decodes(preds)`` (e.g. argmax). ``dl`` may be any iterable of ``(x, y)`` batches. Learnkit loaders
        are read unshuffled, so the results are in dataset order (a shuffled ``dl`` too, unless ``reorder=False``).
        """
        if dl is not None and reorder and getattr(dl, "shuffle", False) and hasattr(dl, "new"):
            dl = dl.new(shuffle=False)  # dataset order, as fastai's reorder
        dl = self._whole_loader(ds_idx, dl)
        gather = _GatherPreds(with_input, with_loss)
        reduction = getattr(self.loss_func, "reduction", None)
        if with_loss:
            if reduction is None:
                raise ValueError(f"get_preds(with_loss=True) needs a loss with a `reduction` attribute (to get one "
                                 f"loss per item); {type(self.loss_func).__name__} has none.")
            self.loss_func.reduction = "none"
        try:
            with self.added_cbs([gather, *_as_list(cbs)]), self.no_logging():
                self._eval_pass(dl)
        finally:
            if with_loss:
                self.loss_func.reduction = reduction
        if not gather.preds:
            raise ValueError(f"get_preds: the loader gave no batches ({type(dl).__name__} of length "
                             f"{_len_or_none(dl)}), so there is nothing to predict: check the items it was built from.")
        if act is None:
            act = _activation(self.loss_func)
        preds = act(_cat(gather.preds))
        res: tuple = (preds, _cat(gather.targs))
        if with_input:
            res = (_cat(gather.inputs),) + res
        if with_decoded:
            decodes = _decodes(self.loss_func)
            res = res + (decodes(preds),)
        if with_loss:
            res = res + (_cat(gather.losses),)
        return res

    def predict(self, item: Any) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """Predict one item (whatever the first block takes): ``(decoded label, decoded tensor, probabilities)``.

        On plain torch loaders (no blocks) the item is one model input as a tensor or array (a tuple of them for
        several inputs); the label is then the decoded output.
        """
        if getattr(item, "ndim", 0) == 2 and hasattr(item, "iloc"):  # a DataFrame: one row only
            if len(item) != 1:
                raise ValueError(f"learn.predict takes one item, got a DataFrame of {len(item)} rows: pass one row "
                                 f"(df.iloc[0]), or predict them all with learn.get_preds(dl=learn.dls.test_dl(df)).")
            item = item.iloc[0]
        if self.dls.blocks is None:
            dl: Any = [_one_sample_batch(item)]
        else:
            dl = self.dls.test_dl([item], num_workers=0)
        with self.no_bar():
            preds, _, decoded = self.get_preds(dl=dl, with_decoded=True)
        dec = decoded[0]
        if hasattr(self.dls, "decode_prediction"):  # loaders that shape their own answer (tabular: the row + prediction)
            return self.dls.decode_prediction(dl, dec, preds[0])
        blocks, n_inp = self.dls.blocks, self.dls.n_inp
        label = blocks[n_inp].decode(dec) if blocks is not None and len(blocks) > n_inp else dec
        return label, dec, preds[0]

    def show_results(self, ds_idx: int = 1, dl: Any = None, max_n: int = 9, shuffle: bool = True,
                     **kwargs: Any) -> Any:
        """Draw ``max_n`` items of one batch titled ``target/prediction`` (decoded); returns the matplotlib figure.

        Images are de-normalised as loaded; a mask (or points) target is drawn twice, target beside prediction.
        """
        from .data.show import format_value, show_sample_pairs, show_samples  # display sits beside the data layer
        dl = self.dls[ds_idx] if dl is None else dl
        if shuffle and getattr(dl, "blocks", None) is not None:
            dl = dl.new(shuffle=True, drop_last=False)
        b = tuple(dl.one_batch())
        with self.no_bar():
            _, _, decoded = self.get_preds(dl=[b], with_decoded=True)
        if hasattr(dl, "show_results"):  # loaders that draw their own results (e.g. tabular rows as a DataFrame)
            return dl.show_results(b, decoded, max_n=max_n, **kwargs)
        n_inp, kinds = dl.n_inp, dl.kinds or ("generic",) * len(b)
        samples = dl.decode_batch(b, max_n=max_n) if hasattr(dl, "decode_batch") else [tuple(v[i] for v in b)
                                                                                         for i in range(len(b[0]))]
        blocks = getattr(dl, "blocks", None)
        tb = blocks[n_inp] if blocks is not None and len(blocks) > n_inp else None
        kind = kinds[n_inp] if len(kinds) > n_inp else "generic"
        if kind in ("mask", "points"):  # the target is a picture: draw target and prediction side by side
            preds = [tuple(s[:n_inp]) + (dec,) + tuple(s[n_inp + 1:]) for s, dec in zip(samples, decoded)]
            return show_sample_pairs(samples, preds, kinds, max_n=max_n, **kwargs)
        titles = []
        for s, dec in zip(samples, decoded):
            pred = tb.decode(dec) if tb is not None and tb.kind in ("category", "multicategory") else dec
            target = s[n_inp] if len(s) > n_inp else None
            titles.append(f"{format_value(target, kind)}/{format_value(pred, kind)}" if target is not None
                          else format_value(pred, kind))
        return show_samples([s[:n_inp] for s in samples], kinds[:n_inp], max_n=max_n, titles=titles, **kwargs)

    # -- persistence

    def _model_file(self, name: str | os.PathLike) -> Path:
        name = Path(name)
        name = name if name.suffix == ".pth" else name.with_name(name.name + ".pth")
        return Path(self.path) / self.model_dir / name

    def save(self, file: str | os.PathLike, with_opt: bool = True) -> Path:
        """Write the model's (and optimizer's) state to ``path/model_dir/file.pth`` atomically; returns the file.

        During a fit, ``with_opt`` also keeps what resuming it exactly needs (``learnkit.resume``). Rank 0 only.
        """
        path = self._model_file(file)
        if rank_distrib():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"model": self.model.state_dict()}
        check_finite_weights(state["model"], path)
        if with_opt and self.opt is not None:
            state["opt"] = self.opt.state_dict()
            state.update(training_state(self))
        with atomic_write(path, "wb") as f:
            torch.save(state, f)
        return path

    def load(self, file: str | os.PathLike, with_opt: bool = True, device: torch.device | str | None = None,
             strict: bool = True) -> "Learner":
        """Load what ``save`` wrote (or a plain state_dict) from ``path/model_dir/file.pth``; returns the learner."""
        path = self._model_file(file)
        distrib_barrier()  # rank 0 may still be writing it
        if not path.exists():
            given = [p for p in (Path(file), Path(self.path) / file) if p.is_file()]
            if given and is_learnkit_export(given[0]):
                read_weights(given[0], "cpu")  # raises: an export, use load_learner
            raise FileNotFoundError(f"No saved model at {path}: learn.save({str(file)!r}) writes there "
                                    f"(learn.path={str(self.path)!r}, model_dir={str(self.model_dir)!r}).")
        device = self._model_device() if device is None else device
        state = read_weights(path, device)
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            model_state, opt_state = state["model"], state.get("opt")
        else:
            model_state, opt_state = state, None
        load_model_state(self.model, model_state, path, strict)
        if self.opt is None:  # as fastai: a usable optimizer after load, with or without its saved state
            self.create_opt()
        if with_opt:
            if opt_state is None:
                warnings.warn(f"{path} holds no optimizer state: only the model weights were loaded.")
            else:
                try:
                    self.opt.load_state_dict(opt_state)
                except (ValueError, KeyError) as e:
                    warnings.warn(f"Could not load the optimizer state from {path} ({e}); the model weights were "
                                  f"loaded. Pass with_opt=False to skip it.")
        return self

    def gradio_app(self, **kwargs: Any) -> Any:
        """Build (don't launch) a Gradio app for this learner: ``learnkit.serve.gradio_app(self, **kwargs)``."""
        from .serve import gradio_app  # optional dependency: imported on use
        return gradio_app(self, **kwargs)

    def export(self, fname: str | os.PathLike = "export.pkl", pickle_model: bool = False,
               format: str = "learnkit") -> Path:
        """Write the learner for inference as data (safetensors + JSON manifest; see ``learnkit.export``).

        ``format='onnx'`` writes an ONNX graph instead (``to_onnx``; the default name becomes ``export.onnx``).
        """
        if format == "onnx":
            return self.to_onnx("export.onnx" if str(fname) == "export.pkl" else fname)
        if format != "learnkit":
            raise ValueError(f"export(format={format!r}): use 'learnkit' (the default) or 'onnx'.")
        if rank_distrib():
            return Path(self.path) / fname
        return export_learner(self, fname, pickle_model=pickle_model)

    def save_pretrained(self, save_directory: str | os.PathLike, repo_id: str | None = None) -> Path:
        """Write the Hub files (export, model card ``README.md``, ``config.json``) into a folder; see ``learnkit.hub``."""
        from .hub import save_pretrained
        return Path(save_directory) if rank_distrib() else save_pretrained(self, save_directory, repo_id=repo_id)

    def push_to_hub(self, repo_id: str, private: bool = False, token: str | None = None,
                    commit_message: str = "Upload learnkit model", revision: str | None = None) -> Any:
        """Upload the export, model card and config to the Hub repo ``repo_id``; returns the commit info (``learnkit.hub``)."""
        from .hub import push_to_hub
        if rank_distrib():
            return None
        return push_to_hub(self, repo_id, private=private, token=token, commit_message=commit_message,
                           revision=revision)

    def to_onnx(self, fname: str | os.PathLike = "model.onnx", **kwargs: Any) -> Path:
        """Write normalisation + model + activation as ONNX, checked with onnxruntime; see ``learnkit.onnx_export``."""
        from .onnx_export import to_onnx  # optional dependency, imported on use
        return to_onnx(self, fname, **kwargs)

    def distrib_ctx(self, sync_bn: bool = False, in_notebook: bool = False, **ddp_kwargs: Any) -> Any:
        """Context manager: fits inside run data-parallel over the torchrun ranks (``learnkit.distributed``)."""
        return distrib_ctx(self, sync_bn=sync_bn, in_notebook=in_notebook, **ddp_kwargs)

    def tta(self, ds_idx: int = 1, dl: Any = None, n: int = 4, item_tfms: Any = None, batch_tfms: Any = None,
            beta: float | None = 0.25, use_max: bool = False) -> tuple:
        """Test-time augmentation: ``(preds, targs)`` from ``n`` augmented passes blended with a plain one; see ``learnkit.tta``."""
        from .tta import tta  # tta sits above the learner in the layering
        return tta(self, ds_idx=ds_idx, dl=dl, n=n, item_tfms=item_tfms, batch_tfms=batch_tfms, beta=beta,
                   use_max=use_max)

    # -- quiet runs, precision, summary

    @contextmanager
    def no_bar(self) -> Iterator["Learner"]:
        """Context manager: no progress bars."""
        bars = [cb for cb in self.cbs if isinstance(cb, ProgressCallback)]
        self.remove_cbs(bars)
        try:
            yield self
        finally:
            self.add_cbs(bars)

    @contextmanager
    def no_logging(self) -> Iterator["Learner"]:
        """Context manager: no per-epoch table."""
        old, self.logger = self.logger, _no_log
        try:
            yield self
        finally:
            self.logger = old

    def to_fp16(self, **scaler_kwargs: Any) -> "Learner":
        """Mixed precision: float16 + GradScaler on CUDA; elsewhere bfloat16 autocast (warns once)."""
        return to_fp16(self, **scaler_kwargs)

    def to_bf16(self) -> "Learner":
        """Mixed precision in bfloat16 autocast (CPU or GPU)."""
        return to_bf16(self)

    def to_fp32(self) -> "Learner":
        """Back to full precision."""
        return to_fp32(self)

    def to_channels_last(self) -> "Learner":
        """Channels-last memory format for the model."""
        return to_channels_last(self)

    def compile(self, **kwargs: Any) -> "Learner":
        """Run batches through ``torch.compile(self.model, **kwargs)``; ``learn.model`` stays the plain module.

        Parameters, ``freeze``/``unfreeze``, ``save`` and ``export`` keep working on ``learn.model`` (state-dict
        names without ``_orig_mod.``); assigning a new ``learn.model`` drops the compiled one.
        """
        self._compiled = (self.model, torch.compile(self.model, **kwargs))
        return self

    def summary(self) -> str:
        """Layers, output shapes for one training batch, parameter counts (trainable/frozen); printed and returned."""
        xb = tuple(self.dls.train.one_batch())[: getattr(self.dls, "n_inp", 1)]
        xb = to_device(xb, self._model_device())
        text = _summary(self.model, xb) + (f"\n\nOptimizer used: {getattr(self.opt_func, '__name__', self.opt_func)}"
                                           f"\nLoss function: {self.loss_func!r}"
                                           f"\nCallbacks: {', '.join(type(c).__name__ for c in self.cbs)}")
        print(text)
        return text


def _activation(loss_func: Any) -> Callable:
    """The loss's ``activation``; for PyTorch's own classification losses the one its ``*Flat`` twin has."""
    act = getattr(loss_func, "activation", None)
    if act is not None:
        return act
    if isinstance(loss_func, nn.CrossEntropyLoss):
        return lambda o: torch.softmax(o, dim=1)
    if isinstance(loss_func, nn.BCEWithLogitsLoss):
        return torch.sigmoid
    return lambda o: o


def _decodes(loss_func: Any) -> Callable:
    """The loss's ``decodes``; for PyTorch's own classification losses the one its ``*Flat`` twin has."""
    dec = getattr(loss_func, "decodes", None)
    if dec is not None:
        return dec
    if isinstance(loss_func, nn.CrossEntropyLoss):
        return lambda o: o.argmax(dim=1)
    if isinstance(loss_func, nn.BCEWithLogitsLoss):
        return lambda o: o > 0.5
    return lambda o: o


def _default_loss(dls: Any) -> Callable:
    kinds, n_inp = getattr(dls, "kinds", ()), getattr(dls, "n_inp", 1)
    if len(kinds) <= n_inp:
        raise ValueError(f"The DataLoaders have no target block (kinds={tuple(kinds)}, n_inp={n_inp}), so learnkit "
                         f"can't pick a loss: pass loss_func= to the Learner.")
    return loss_for_kind(kinds[n_inp])


def _split_name(dls: Any, ds_idx: int, dl: Any) -> str:
    """'train', 'valid' or 'test': which split ``validate(ds_idx, dl)`` reads."""
    if dl is not None:
        return next((n for n, l in zip(("train", "valid", "test"), getattr(dls, "loaders", [])) if dl is l), "valid")
    return {0: "train", 2: "test"}.get(ds_idx, "valid")


def _check_labelled(dl: Any, split: str) -> None:
    """Raise when ``dl`` reads a learnkit dataset without targets (``validate`` needs them to compute a loss)."""
    dsets = getattr(getattr(dl, "dataset", None), "dsets", None)
    if dsets is not None and len(dsets.pipelines) <= dsets.n_inp:
        raise ValueError(f"validate: the {split} loader has no labels (an unlabelled test folder or test_dl(items)), "
                         f"so there is no loss or metric to compute. Use learn.get_preds(dl=...) for predictions, or "
                         f"give labels: dls.test_dl(items, with_labels=True), test/<label>/ folders.")


def _len_or_none(dl: Any) -> int | None:
    """``len(dl)``, or None for an iterable without a length."""
    try:
        return len(dl)
    except TypeError:
        return None


def _one_sample_batch(item: Any) -> tuple:
    """One model input (tensor or array; a tuple of them for several inputs) -> a batch of one: ``(x[None], ...)``."""
    parts = item if isinstance(item, tuple) else (item,)
    out = []
    for x in parts:
        t = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
        out.append((t.float() if t.is_floating_point() and not isinstance(x, torch.Tensor) else t).unsqueeze(0))
    return tuple(out)


def _as_list(x: Any) -> list:
    """None -> [], one thing -> [thing], a list/tuple/generator of things -> a list."""
    if x is None:
        return []
    if isinstance(x, (list, tuple, set, Iterator)):
        return list(x)
    return [x]


def _shape(o: Any) -> str:
    if isinstance(o, torch.Tensor):
        return " x ".join(str(d) for d in o.shape)
    if isinstance(o, (tuple, list)):
        return ", ".join(_shape(x) for x in o)
    return type(o).__name__


def _summary(model: nn.Module, xb: tuple) -> str:
    """Table of the model's layers (leaves, or modules holding parameters): output shape, parameters, trainable."""
    rows = [(name, m) for name, m in model.named_modules()
            if name and (not any(True for _ in m.children()) or any(True for _ in m.parameters(recurse=False)))]
    shapes: dict[str, str] = {}

    def record(name: str) -> Callable:
        def hook(mod: nn.Module, inp: Any, out: Any) -> None:  # must return None: a value would replace the output
            shapes.setdefault(name, _shape(out))
        return hook
    hooks = [m.register_forward_hook(record(name)) for name, m in rows]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*xb)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    labels = [f"{name} ({type(m).__name__})" for name, m in rows]
    w_name = max([36] + [len(l) + 2 for l in labels])  # long layer names keep the columns aligned
    w_shape = max([20] + [len(shapes.get(name, "-")) + 2 for name, _ in rows])
    rule = "=" * (w_name + w_shape + 21)
    lines = [f"{type(model).__name__} (Input shape: {_shape(xb[0] if len(xb) == 1 else xb)})", rule,
             f"{'Layer (type)':<{w_name}}{'Output Shape':<{w_shape}}{'Param #':<12}Trainable", rule]
    for label, (name, m) in zip(labels, rows):
        ps = list(m.parameters(recurse=False))
        n = sum(p.numel() for p in ps)
        trainable = "" if not ps else str(any(p.requires_grad for p in ps))
        lines.append(f"{label:<{w_name}}{shapes.get(name, '-'):<{w_shape}}{n:<12,}{trainable}")
    total = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines += [rule, f"Total params: {total:,}", f"Total trainable params: {n_train:,}",
              f"Total non-trainable params: {total - n_train:,}"]
    return "\n".join(lines)
