"""``vision_learner`` and its parts: a pretrained body, fastai's head, and the model spec export rebuilds from.

The model is ``nn.Sequential(body, head)``, as in fastai: ``body`` is the pretrained network cut
before its pooling and classifier (``create_body``), ``head`` pools, flattens and classifies
(``create_head``). ``default_split`` gives two parameter groups (body, head), so ``freeze()`` trains
the head only and ``slice(lo, hi)`` learning rates run from body to head; torchvision ResNets get
fastai's three groups (``resnet_split``).

``learn.model_spec`` describes the model as JSON-safe data (arch name and source, n_out, n_in, cut,
head arguments); ``build_vision_model(spec)`` rebuilds the same architecture (random weights) so an
export can load saved weights into it without unpickling code. A model that can't be described
that way (a lambda or ``__main__`` arch, a callable ``cut``, a ``custom_head``) gets ``model_spec = None``.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..layers import LinBnDrop
from ..learner import Learner
from ..optimizer import Adam
from ..registry import register_model_builder
from .augment import Normalize
from .backbones import ArchInfo, TimmBody, adapt_first_conv, create_arch_model, is_timm_model, model_stats
from .models import AdaptiveConcatPool2d, SigmoidRange, sigmoid_range
from .xresnet import xresnet_split

if TYPE_CHECKING:  # pragma: no cover
    from ..data.core import DataLoaders

__all__ = [
    "create_body", "create_head", "create_vision_model", "num_features_model", "has_pool_type", "default_split",
    "resnet_split", "apply_init", "vision_learner", "build_vision_model", "AdaptiveConcatPool2d", "SigmoidRange",
    "sigmoid_range",
]

_POOL_TYPES = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
               nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
               nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, AdaptiveConcatPool2d)
_NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d,
               nn.InstanceNorm3d, nn.LayerNorm)
# fastai's model_meta cuts for torchvision models whose pooling is not a child module
_CUTS = {"DenseNet": -1, "SqueezeNet": -1}


# ---------------------------------------------------------------- body
def has_pool_type(m: nn.Module) -> bool:
    """True if ``m`` is, or contains, a pooling layer."""
    return any(isinstance(x, _POOL_TYPES) for x in m.modules())


def _default_cut(model: nn.Module) -> int:
    name = type(model).__name__
    if name in _CUTS:
        return _CUTS[name]
    children = list(model.children())
    idx = next((i for i in reversed(range(len(children))) if has_pool_type(children[i])), None)
    if idx is None:
        raise ValueError(f"Can't tell where {name}'s feature extractor ends (no child module pools). Pass cut=<index "
                         f"of the first child to drop> or cut=<function(model) -> body>, or a custom_head.")
    return idx


def create_body(model: nn.Module, n_in: int = 3, pretrained: bool = True,
                cut: int | Callable | None = None) -> nn.Module:
    """Cut the pooling and classifier off ``model`` (adapting its first conv to ``n_in`` channels); returns the body.

    ``cut=None``: timm models become a ``TimmBody`` (``forward_features``); others are cut before their
    last child that pools (``-2`` for a torchvision ResNet). An int keeps ``children()[:cut]``; a
    callable gets the model and returns the body.
    """
    adapt_first_conv(model, n_in, pretrained)
    if cut is None and is_timm_model(model):
        return TimmBody(model)
    if cut is None:
        cut = _default_cut(model)
    if isinstance(cut, int) and not isinstance(cut, bool):
        return nn.Sequential(*list(model.children())[:cut])
    if callable(cut):
        body = cut(model)
        if not isinstance(body, nn.Module):
            raise TypeError(f"cut({type(model).__name__}) returned a {type(body).__name__}; it must return the body "
                            f"as an nn.Module.")
        return body
    raise TypeError(f"cut must be an int (children to keep) or a function(model) -> body, not {cut!r}.")


def _in_channels(m: nn.Module) -> int:
    for x in m.modules():
        if isinstance(x, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            return x.in_channels if hasattr(x, "in_channels") else x.in_features
    raise ValueError(f"Can't find the input channels of {type(m).__name__}: it has no conv or linear layer.")


def num_features_model(m: nn.Module) -> int:
    """Number of channels (features) ``m`` outputs, from a dry run on a small random input."""
    if isinstance(m, TimmBody):
        return m.num_features
    first = next(m.parameters(), None)
    device, dtype = (first.device, first.dtype) if first is not None else (torch.device("cpu"), torch.float32)
    ch_in, was_training = _in_channels(m), m.training
    err: Exception | None = None
    m.eval()
    try:
        for sz in (32, 64, 128, 224, 256, 384, 512):
            try:
                with torch.no_grad():
                    return int(m(torch.zeros(1, ch_in, sz, sz, device=device, dtype=dtype)).shape[1])
            except Exception as e:  # too small for the model: try the next size
                err = e
    finally:
        m.train(was_training)
    raise ValueError(f"Can't find the number of output features of {type(m).__name__}: a dry run failed at every "
                     f"size up to 512 ({type(err).__name__}: {err}). Pass custom_head=... for this body.")


# ---------------------------------------------------------------- head
def create_head(nf: int, n_out: int, lin_ftrs: Sequence[int] | None = None, ps: float | Sequence[float] = 0.5,
                pool: bool = True, concat_pool: bool = True, first_bn: bool = True, bn_final: bool = False,
                lin_first: bool = False, y_range: Sequence[float] | None = None) -> nn.Sequential:
    """fastai's head: pool (max+avg), flatten, then BatchNorm1d/Dropout/Linear/ReLU blocks down to ``n_out``.

    ``lin_ftrs`` are the hidden sizes (default ``[512]``); ``ps`` the dropout of the last block (inner
    blocks get half of it), or one value per block.
    """
    if pool and concat_pool:
        nf *= 2
    ftrs = [nf, 512, n_out] if lin_ftrs is None else [nf, *lin_ftrs, n_out]
    bns = [first_bn] + [True] * len(ftrs[1:])
    ps_list = [float(p) for p in ps] if isinstance(ps, (list, tuple)) else [float(ps)]
    if len(ps_list) == 1:
        ps_list = [ps_list[0] / 2] * (len(ftrs) - 2) + ps_list
    acts: list[nn.Module | None] = [nn.ReLU(inplace=True) for _ in range(len(ftrs) - 2)] + [None]
    layers: list[nn.Module] = []
    if pool:
        layers += [AdaptiveConcatPool2d() if concat_pool else nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if lin_first:
        layers.append(nn.Dropout(ps_list.pop(0)))
    for ni, no, bn, p, act in zip(ftrs[:-1], ftrs[1:], bns, ps_list, acts):
        layers += list(LinBnDrop(ni, no, bn=bn, p=p, act=act, lin_first=lin_first))
    if lin_first:
        layers.append(nn.Linear(ftrs[-2], n_out))
    if bn_final:
        layers.append(nn.BatchNorm1d(ftrs[-1], momentum=0.01))
    if y_range is not None:
        layers.append(SigmoidRange(*y_range))
    return nn.Sequential(*layers)


def apply_init(m: nn.Module, func: Callable | None = nn.init.kaiming_normal_) -> None:
    """Initialise the weights of every non-norm layer of ``m`` with ``func`` and zero their biases (fastai's rule)."""
    for x in m.modules():
        if isinstance(x, _NORM_TYPES):
            continue
        w = getattr(x, "weight", None)
        if not isinstance(w, torch.Tensor) or not w.requires_grad:
            continue
        with torch.no_grad():
            if func is not None and w.ndim >= 2:
                func(w)
            b = getattr(x, "bias", None)
            if isinstance(b, torch.Tensor):
                b.zero_()


# ---------------------------------------------------------------- model
def _build(arch: Any, n_out: int, pretrained: bool | str | os.PathLike, cut: Any, n_in: int, init: Callable | None,
           custom_head: nn.Module | None, head_kwargs: dict, weights: Any = None) -> tuple[nn.Sequential, ArchInfo]:
    if not isinstance(n_out, int) or isinstance(n_out, bool) or n_out < 1:
        raise ValueError(f"n_out must be a positive number of model outputs, not {n_out!r}.")
    model, info = create_arch_model(arch, pretrained=pretrained, weights=weights)
    body = create_body(model, n_in, pretrained is not False, cut)
    if custom_head is None:
        kw = dict(head_kwargs)
        kw["pool"] = kw.get("pool", True) and getattr(body, "needs_pool", True)
        head = create_head(num_features_model(body), n_out, **kw)
    else:
        head = custom_head
    full = nn.Sequential(body, head)
    if init is not None:
        apply_init(full[1], init)
    return full, info


def create_vision_model(arch: Any, n_out: int, pretrained: bool | str | os.PathLike = True,
                        cut: int | Callable | None = None, n_in: int = 3,
                        init: Callable | None = nn.init.kaiming_normal_, custom_head: nn.Module | None = None,
                        concat_pool: bool = True, lin_ftrs: Sequence[int] | None = None,
                        ps: float | Sequence[float] = 0.5, first_bn: bool = True, bn_final: bool = False,
                        lin_first: bool = False, y_range: Sequence[float] | None = None, pool: bool = True,
                        weights: Any = None) -> nn.Sequential:
    """``nn.Sequential(body, head)`` for ``arch`` (a torchvision constructor, timm name or callable)."""
    head_kwargs = dict(lin_ftrs=lin_ftrs, ps=ps, pool=pool, concat_pool=concat_pool, first_bn=first_bn,
                       bn_final=bn_final, lin_first=lin_first, y_range=y_range)
    return _build(arch, n_out, pretrained, cut, n_in, init, custom_head, head_kwargs, weights)[0]


def _params(mods: Sequence[nn.Module]) -> list[nn.Parameter]:
    return [p for m in mods for p in m.parameters()]


def _check_body_head(model: nn.Module, name: str) -> None:
    if not isinstance(model, nn.Sequential) or len(model) < 2:
        raise TypeError(f"{name} expects nn.Sequential(body, head) as built by create_vision_model, got "
                        f"{type(model).__name__}. Pass splitter=... that fits your model (e.g. trainable_params).")


def default_split(model: nn.Module) -> list[list[nn.Parameter]]:
    """Two parameter groups for ``nn.Sequential(body, head)``: the body's, then the head's."""
    _check_body_head(model, "default_split")
    return [_params([model[0]]), _params(list(model)[1:])]


def resnet_split(model: nn.Module) -> list[list[nn.Parameter]]:
    """fastai's three groups for a ResNet body + head: stem to layer2, layer3 and layer4, then the head."""
    _check_body_head(model, "resnet_split")
    body = model[0]
    if not isinstance(body, nn.Sequential) or len(body) < 7:
        return default_split(model)
    return [_params(list(body)[:6]), _params(list(body)[6:]), _params(list(model)[1:])]


# ---------------------------------------------------------------- spec

def _spec(info: ArchInfo, n_out: int, n_in: int, cut: Any, custom_head: Any, head_kwargs: dict) -> dict | None:
    if custom_head is not None or (cut is not None and not isinstance(cut, int)) or not info.importable:
        return None
    ps = head_kwargs["ps"]
    head = {
        "lin_ftrs": None if head_kwargs["lin_ftrs"] is None else [int(x) for x in head_kwargs["lin_ftrs"]],
        "ps": [float(p) for p in ps] if isinstance(ps, (list, tuple)) else float(ps),
        **{k: bool(head_kwargs[k]) for k in ("pool", "concat_pool", "first_bn", "bn_final", "lin_first")},
    }
    y_range = head_kwargs["y_range"]
    return {"builder": "vision_learner", **info.spec(), "n_out": int(n_out), "n_in": int(n_in),
            "cut": None if cut is None else int(cut), "head": head,
            "y_range": None if y_range is None else [float(v) for v in y_range]}


def build_vision_model(spec: dict) -> nn.Module:
    """Rebuild the architecture a ``vision_learner`` spec describes (random weights: load saved ones into it)."""
    if spec.get("builder") != "vision_learner":
        raise ValueError(f"build_vision_model got a spec for builder {spec.get('builder')!r}, not 'vision_learner'.")
    info = ArchInfo.from_spec(spec)
    head = dict(spec.get("head") or {})
    head["y_range"] = spec.get("y_range")
    model, _ = _build(info, spec["n_out"], False, spec.get("cut"), spec.get("n_in", 3), None, None, head)
    return model


# ---------------------------------------------------------------- learner
def _n_out(dls: "DataLoaders", n_out: int | None) -> int:
    c = getattr(dls, "c", None)
    vocab = getattr(dls, "vocab", None)
    if n_out is None:
        if not c:
            raise ValueError("vision_learner can't tell how many outputs the model needs: dls.c is None (the data "
                             "has no target vocab, e.g. plain torch loaders or a regression target without "
                             "n_out). Pass n_out=<number of classes or values>.")
        return int(c)
    if vocab is not None and len(vocab) != n_out:
        raise ValueError(f"n_out={n_out} doesn't match the data: its target vocab has {len(vocab)} classes "
                         f"(dls.vocab[:5] = {list(vocab)[:5]}). Leave n_out=None to use dls.c = {len(vocab)}, or fix "
                         f"the labels.")
    return int(n_out)


def _stats_for(mean: list[float], std: list[float], n_in: int) -> tuple[list[float], list[float]]:
    """Statistics for ``n_in`` channels matching how ``adapt_first_conv`` adapted RGB filters."""
    if n_in == len(mean):
        return mean, std
    if n_in == 1:
        return [sum(mean) / len(mean)], [sum(std) / len(std)]
    return [mean[i % len(mean)] for i in range(n_in)], [std[i % len(std)] for i in range(n_in)]


def _add_norm(dls: "DataLoaders", model: nn.Module, n_in: int) -> None:
    train = dls.train
    if any(isinstance(t, Normalize) for t in (train.batch_tfms or [])):
        return
    if "image" not in (dls.kinds or ())[: dls.n_inp]:
        warnings.warn("vision_learner: the data has no 'image' inputs (plain torch loaders?), so it can't add the "
                      "pretrained model's normalisation; normalise the inputs yourself with "
                      "learnkit.vision.backbones.model_stats(arch), or pass normalize=False to silence this.",
                      stacklevel=3)
        return
    mean, std = _stats_for(*model_stats(model), n_in)
    dls.add_batch_tfms([Normalize.from_stats(mean, std)])


def is_resnet_body(info: ArchInfo, cut: Any, body: nn.Module) -> bool:
    """True for an uncut torchvision ResNet body, which fastai splits in two groups (``resnet_split``)."""
    return (info.source == "torchvision" and info.name.startswith("resnet") and cut is None
            and isinstance(body, nn.Sequential))


def vision_learner(dls: "DataLoaders", arch: Any, normalize: bool = True, n_out: int | None = None,
                   pretrained: bool | str | os.PathLike = True, weights: Any = None, loss_func: Any = None,
                   opt_func: Callable = Adam, lr: float = 1e-3, splitter: Callable | None = None, cbs: Any = None,
                   metrics: Any = None, path: str | os.PathLike | None = None, model_dir: str = "models",
                   wd: float | None = None, moms: tuple = (0.95, 0.85, 0.95), train_bn: bool = True,
                   cut: int | Callable | None = None, init: Callable | None = nn.init.kaiming_normal_,
                   custom_head: nn.Module | None = None, concat_pool: bool = True, pool: bool = True,
                   lin_ftrs: Sequence[int] | None = None, ps: float | Sequence[float] = 0.5, first_bn: bool = True,
                   bn_final: bool = False, lin_first: bool = False, y_range: Sequence[float] | None = None,
                   n_in: int = 3) -> Learner:
    """A ``Learner`` for ``arch`` (pretrained body + new head) on image data; frozen to the head when pretrained."""
    from .hf_models import hf_vision_learner, is_hf_arch
    if is_hf_arch(arch):  # a transformers Hub id or save_pretrained folder
        return hf_vision_learner(dls, arch, normalize=normalize, pretrained=pretrained is not False,
                                 splitter=splitter, loss_func=loss_func, opt_func=opt_func, lr=lr, cbs=cbs,
                                 metrics=metrics, path=path, model_dir=model_dir, wd=wd, moms=moms,
                                 train_bn=train_bn)
    n_out = _n_out(dls, n_out)
    head_kwargs = dict(lin_ftrs=lin_ftrs, ps=ps, pool=pool, concat_pool=concat_pool, first_bn=first_bn,
                       bn_final=bn_final, lin_first=lin_first, y_range=y_range)
    model, info = _build(arch, n_out, pretrained, cut, n_in, init, custom_head, head_kwargs, weights)
    is_pretrained = pretrained is not False
    if normalize and is_pretrained:
        _add_norm(dls, model, n_in)
    if splitter is None:
        resnet = is_resnet_body(info, cut, model[0])
        xres = info.source == "callable" and info.name.startswith("learnkit.vision.xresnet:") and cut is None
        splitter = resnet_split if resnet else xresnet_split if xres else default_split
    learn = Learner(dls, model, loss_func=loss_func, opt_func=opt_func, lr=lr, splitter=splitter, cbs=cbs,
                    metrics=metrics, path=path, model_dir=model_dir, wd=wd, moms=moms, train_bn=train_bn)
    if is_pretrained:
        learn.freeze()
    learn.model_spec = _spec(info, n_out, n_in, cut, custom_head, head_kwargs)
    return learn


register_model_builder("vision_learner", build_vision_model)
