"""Model introspection as fastai's: ``model_sizes``, ``dummy_eval``, ``total_params``, ``layer_info``."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..layers import in_channels
from .hook import Hooks, flatten_model, hook_outputs

__all__ = ["dummy_eval", "model_sizes", "total_params", "layer_info"]


def dummy_eval(m: nn.Module, size: tuple[int, int] = (64, 64)) -> Any:
    """``m`` in eval mode on one random image batch ``1 x in_channels(m) x *size`` (values in [-1, 1])."""
    p = next(m.parameters())
    x = p.new_empty(1, in_channels(m), *size).uniform_(-1., 1.)
    with torch.no_grad():
        return m.eval()(x)


def model_sizes(m: nn.Module, size: tuple[int, int] = (64, 64)) -> list[torch.Size]:
    """The output shape of each child of ``m`` (e.g. an ``nn.Sequential``'s layers) on a dummy ``size`` input."""
    with hook_outputs(m) as hooks:
        dummy_eval(m, size=size)
        return [h.stored.shape for h in hooks]


def total_params(m: nn.Module) -> tuple[int, bool]:
    """``(number of parameters of m, whether its first parameter is trainable)`` (``False`` without parameters)."""
    ps = list(m.parameters())
    return sum(p.numel() for p in ps), (ps[0].requires_grad if ps else False)


def _shape(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        return o.shape
    if isinstance(o, (list, tuple)):
        return type(o)(_shape(x) for x in o)
    return o


def _first(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        return o[:1]
    if isinstance(o, (list, tuple)):
        return type(o)(_first(x) for x in o)
    return o


def layer_info(learn: Any, *xb: Any) -> list[tuple]:
    """Per leaf layer of ``learn.model`` run on the first item of ``xb``: ``(type name, n params, trainable,
    output shape, same shape as input)``; layers without a ``weight`` get ``''`` for params and trainable."""
    def _track(m: nn.Module, i: tuple, o: Any) -> tuple:
        same = any(isinstance(x[0], torch.Tensor) and x[0].shape[1:] == x[1].shape for x in zip(i, o))
        params, trainable = total_params(m) if hasattr(m, "weight") else ("", "")
        return (type(m).__name__, params, trainable, _shape(o), same)

    model = learn.model
    p = next(model.parameters(), None)
    batch = _first(xb)
    if p is not None:
        batch = tuple(x.to(p.device) if isinstance(x, torch.Tensor) else x for x in batch)
    was_training = model.training
    with Hooks(flatten_model(model), _track) as h:
        try:
            with torch.no_grad():
                model.eval()(*batch)
        finally:
            model.train(was_training)
        return h.stored
