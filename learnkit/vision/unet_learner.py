"""``unet_learner``: a ``DynamicUnet`` on a pretrained encoder, ready to ``fine_tune`` on segmentation data.

The encoder is built as for ``vision_learner`` (``create_arch_model`` + ``create_body``: a torchvision
constructor, a timm name or a callable; ``pretrained`` True/False/a weights file; ``n_in`` adapts
the first conv). With pretrained weights the learner adds the encoder's input normalisation and
starts frozen: parameter groups run encoder then decoder (a torchvision ResNet encoder is split in
two, as fastai does), so ``fine_tune`` trains the decoder first, then everything.

``learn.model_spec`` describes the model as JSON-safe data (arch, n_out, n_in, cut, the image size
the skips were found at, the U-Net options) and ``build_unet_model(spec)`` rebuilds it, so
``export``/``load_learner`` work without pickling code.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..learner import Learner
from ..losses import CrossEntropyLossFlat
from ..optimizer import Adam
from ..registry import register_model_builder
from .backbones import ArchInfo, create_arch_model
from .learner import _add_norm, create_body, is_resnet_body
from .unet import DynamicUnet

if TYPE_CHECKING:  # pragma: no cover
    from ..data.core import DataLoaders

__all__ = ["unet_learner", "create_unet_model", "build_unet_model", "unet_split", "unet_resnet_split", "unet_config"]

_UNET_OPTIONS = ("blur", "blur_final", "self_attention", "y_range", "last_cross", "bottle", "norm_type")


def unet_config(blur: bool = False, blur_final: bool = True, self_attention: bool = False,
                y_range: Sequence[float] | None = None, last_cross: bool = True, bottle: bool = False,
                norm_type: str | None = None) -> dict:
    """The U-Net options as a dict, for ``unet_learner(config=...)`` (fastai's ``unet_config``)."""
    return dict(blur=blur, blur_final=blur_final, self_attention=self_attention, y_range=y_range,
                last_cross=last_cross, bottle=bottle, norm_type=norm_type)


def _params(mods: Sequence[nn.Module]) -> list[nn.Parameter]:
    return [p for m in mods for p in m.parameters()]


def _check_unet(model: nn.Module, name: str) -> None:
    if not isinstance(model, DynamicUnet):
        raise TypeError(f"{name} expects a DynamicUnet, got {type(model).__name__}. Pass splitter=... that fits your "
                        f"model (e.g. trainable_params).")


def _decoder_params(model: DynamicUnet) -> list[nn.Parameter]:
    enc = {id(p) for p in model.encoder.parameters()}
    return [p for p in model.parameters() if id(p) not in enc]


def unet_split(model: nn.Module) -> list[list[nn.Parameter]]:
    """Two parameter groups for a ``DynamicUnet``: the encoder's, then the decoder's."""
    _check_unet(model, "unet_split")
    return [_params([model.encoder]), _decoder_params(model)]


def unet_resnet_split(model: nn.Module) -> list[list[nn.Parameter]]:
    """fastai's three groups for a ResNet-encoder U-Net: stem to layer2, layer3 and layer4, then the decoder."""
    _check_unet(model, "unet_resnet_split")
    enc = model.encoder
    if not isinstance(enc, nn.Sequential) or len(enc) < 7:
        return unet_split(model)
    return [_params(list(enc)[:6]), _params(list(enc)[6:]), _decoder_params(model)]


def _img_size(img_size: Any) -> tuple[int, int]:
    if isinstance(img_size, int):
        return int(img_size), int(img_size)
    hw = tuple(int(s) for s in img_size)
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"img_size={img_size!r}: give (height, width) of the training images.")
    return hw


def _build(arch: Any, n_out: int, img_size: Any, pretrained: bool | str | os.PathLike, cut: Any, n_in: int,
           weights: Any, init: Callable | None, options: dict) -> tuple[DynamicUnet, ArchInfo]:
    if not isinstance(n_out, int) or isinstance(n_out, bool) or n_out < 1:
        raise ValueError(f"n_out must be a positive number of output channels (classes), not {n_out!r}.")
    model, info = create_arch_model(arch, pretrained=pretrained, weights=weights)
    body = create_body(model, n_in, pretrained is not False, cut)
    return DynamicUnet(body, n_out, _img_size(img_size), init=init, **options), info


def create_unet_model(arch: Any, n_out: int, img_size: int | Sequence[int], pretrained: bool | str | os.PathLike = True,
                      weights: Any = None, cut: int | Callable | None = None, n_in: int = 3,
                      init: Callable | None = nn.init.kaiming_normal_, **kwargs: Any) -> DynamicUnet:
    """A ``DynamicUnet`` on the body of ``arch`` (keyword arguments: the U-Net options of ``unet_config``)."""
    options = unet_config(**kwargs)
    return _build(arch, n_out, img_size, pretrained, cut, n_in, weights, init, options)[0]


def _spec(info: ArchInfo, n_out: int, n_in: int, cut: Any, img_size: tuple[int, int], options: dict) -> dict | None:
    if (cut is not None and not isinstance(cut, int)) or not info.importable:
        return None
    opts = dict(options)
    opts["y_range"] = None if opts["y_range"] is None else [float(v) for v in opts["y_range"]]
    for k in ("blur", "blur_final", "self_attention", "last_cross", "bottle"):
        opts[k] = bool(opts[k])
    return {"builder": "unet_learner", **info.spec(), "n_out": int(n_out), "n_in": int(n_in),
            "cut": None if cut is None else int(cut), "img_size": [int(s) for s in img_size], "unet": opts}


def build_unet_model(spec: dict) -> nn.Module:
    """Rebuild the U-Net a ``unet_learner`` spec describes (random weights: load saved ones into it)."""
    if spec.get("builder") != "unet_learner":
        raise ValueError(f"build_unet_model got a spec for builder {spec.get('builder')!r}, not 'unet_learner'.")
    info = ArchInfo.from_spec(spec)
    options = unet_config(**(spec.get("unet") or {}))
    return _build(info, spec["n_out"], spec["img_size"], False, spec.get("cut"), spec.get("n_in", 3), None, None,
                  options)[0]


def _codes(dls: "DataLoaders") -> list | None:
    tb = getattr(dls, "target_block", None)
    if tb is None:
        return None
    codes = tb.config.get("codes") if tb.kind == "mask" else None
    return list(codes) if codes is not None else tb.vocab


def _n_out(dls: "DataLoaders", n_out: int | None) -> int:
    codes = _codes(dls)
    if n_out is None:
        if codes:
            return len(codes)
        c = getattr(dls, "c", None)
        if not c:
            raise ValueError("unet_learner can't tell how many classes the masks have: the MaskBlock has no codes. "
                             "Pass codes=[...] (e.g. np.loadtxt(path/'codes.txt', dtype=str)) to MaskBlock or "
                             "SegmentationDataLoaders, or n_out=<number of classes>.")
        return int(c)
    if codes and len(codes) != n_out:
        raise ValueError(f"n_out={n_out} doesn't match the data: the masks' codes name {len(codes)} classes "
                         f"({list(codes)[:5]}...). Leave n_out=None to use {len(codes)}, or fix the codes.")
    return int(n_out)


def _same(a: Any, b: Any) -> bool:
    """Whether an option equals its default (lists and tuples alike)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a is b or (type(a) is type(b) and a == b)


def _check_channels(xb: Any, n_in: int) -> None:
    """A clear error when the images' channels don't match ``n_in`` (grey images with the default ``n_in=3``)."""
    if isinstance(xb, torch.Tensor) and xb.ndim == 4 and xb.shape[1] != n_in:
        c = int(xb.shape[1])
        raise ValueError(f"unet_learner: the images have {c} channel{'s' if c != 1 else ''} but n_in={n_in}: pass "
                         f"n_in={c}" + (" (or load them as RGB)" if c == 1 else "") + ".")


def unet_learner(dls: "DataLoaders", arch: Any, normalize: bool = True, n_out: int | None = None,
                 pretrained: bool | str | os.PathLike = True, weights: Any = None, config: dict | None = None,
                 loss_func: Any = None, opt_func: Callable = Adam, lr: float = 1e-3,
                 splitter: Callable | None = None, cbs: Any = None, metrics: Any = None,
                 path: str | os.PathLike | None = None, model_dir: str = "models", wd: float | None = None,
                 moms: tuple = (0.95, 0.85, 0.95), train_bn: bool = True, cut: int | Callable | None = None,
                 n_in: int = 3, img_size: int | Sequence[int] | None = None, blur: bool = False,
                 blur_final: bool = True, self_attention: bool = False, y_range: Sequence[float] | None = None,
                 last_cross: bool = True, bottle: bool = False, init: Callable | None = nn.init.kaiming_normal_,
                 norm_type: str | None = None) -> Learner:
    """A ``Learner`` with a ``DynamicUnet`` on ``arch`` for segmentation; frozen to the decoder when pretrained.

    ``n_out`` defaults to the number of mask codes (``dls.c``); ``loss_func`` to
    ``CrossEntropyLossFlat(axis=1)``; ``img_size`` (where the skips are found) to the size of a
    training batch; ``config`` (a ``unet_config(...)`` dict) gives U-Net options, and the options passed as
    arguments win over it (fastai's ``{**config, **kwargs}``; an argument left at its default counts as not passed).
    """
    n_out = _n_out(dls, n_out)
    options = dict(blur=blur, blur_final=blur_final, self_attention=self_attention, y_range=y_range,
                   last_cross=last_cross, bottle=bottle, norm_type=norm_type)
    if config:
        unknown = set(config) - set(_UNET_OPTIONS)
        if unknown:
            raise ValueError(f"unet_learner(config=...): unknown option(s) {sorted(unknown)}; the options are "
                             f"{list(_UNET_OPTIONS)}.")
        defaults = unet_config()
        given = {k: v for k, v in options.items() if not _same(v, defaults[k])}
        options = {**options, **config, **given}
    xb = dls.one_batch()[0]
    _check_channels(xb, n_in)
    if img_size is None:
        img_size = tuple(int(s) for s in xb.shape[-2:])
    img_size = _img_size(img_size)
    model, info = _build(arch, n_out, img_size, pretrained, cut, n_in, weights, init, options)
    is_pretrained = pretrained is not False
    if normalize and is_pretrained:
        _add_norm(dls, model, n_in)
    if splitter is None:
        splitter = unet_resnet_split if is_resnet_body(info, cut, model.encoder) else unet_split
    if loss_func is None:
        loss_func = CrossEntropyLossFlat(axis=1)
    learn = Learner(dls, model, loss_func=loss_func, opt_func=opt_func, lr=lr, splitter=splitter, cbs=cbs,
                    metrics=metrics, path=path, model_dir=model_dir, wd=wd, moms=moms, train_bn=train_bn)
    if is_pretrained:
        learn.freeze()
    learn.model_spec = _spec(info, n_out, n_in, cut, img_size, options)
    return learn


register_model_builder("unet_learner", build_unet_model)
