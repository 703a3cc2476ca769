"""Hugging Face transformers image models (ViT, DeiT, ConvNeXt, Swin, ...) as ``vision_learner`` backbones.

``vision_learner(dls, 'google/vit-base-patch16-224')`` (a Hub id or a local ``save_pretrained`` folder) builds
the model through ``AutoModelForImageClassification`` with a new head for ``dls.vocab``
(``ignore_mismatched_sizes``), adds the image processor's normalisation as a batch transform, and splits
the parameters in two groups (the base model: embeddings + encoder; then the classifier), so ``freeze``,
``fine_tune`` and ``slice`` learning rates behave as for CNNs. timm's ``hf-hub:`` names stay with timm.
The export spec holds the model's config as JSON; weights go in the export's safetensors payload.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..hf_model import config_from_dict
from ..registry import register_model_builder

__all__ = ["is_hf_arch", "HFImageModel", "hf_split", "hf_image_stats", "create_hf_model", "build_hf_model", "processor_hw"]


def is_hf_arch(arch: Any) -> bool:
    """True for a Hub id (``'org/name'``) or a folder with a transformers ``config.json`` (not timm's ``hf-hub:``)."""
    if not isinstance(arch, (str, os.PathLike)) or str(arch).startswith(("hf-hub:", "hf_hub:")):
        return False
    p = Path(arch)
    return (p / "config.json").is_file() or (not p.exists() and str(arch).count("/") == 1 and "\\" not in str(arch))


class HFImageModel(nn.Module):
    """A transformers image classifier that takes a plain image batch and returns plain logits.

    ``size`` (the image processor's ``(height, width)``): batches of another size are resized to it first, as the
    processor would, since ViT-style patch embeddings take that size only.
    """

    def __init__(self, model: nn.Module, size: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.model, self.size = model, (tuple(int(v) for v in size) if size else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_out)`` for pixel values ``x`` ``(B, C, H, W)``."""
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return self.model(pixel_values=x).logits


def processor_hw(size: Any) -> tuple[int, int] | None:
    """``(height, width)`` from an image processor's ``size`` (``{'height', 'width'}`` or an int); None otherwise."""
    if isinstance(size, int):
        return size, size
    h, w = (size.get("height"), size.get("width")) if isinstance(size, dict) else (getattr(size, "height", None),
                                                                                     getattr(size, "width", None))
    if h and w:  # a dict (older transformers) or a SizeDict
        return int(h), int(w)
    return None  # e.g. {'shortest_edge': 224}: the model takes any size


def hf_split(model: nn.Module) -> list[list[nn.Parameter]]:
    """Two groups for an ``HFImageModel``: the base model (embeddings + encoder), then the rest (the head)."""
    base = model.model.base_model
    body = {id(p) for p in base.parameters()}
    return [list(base.parameters()), [p for p in model.parameters() if id(p) not in body]]


def hf_image_stats(arch: str | os.PathLike) -> tuple[list[float], list[float], Any]:
    """(mean, std, size) of ``arch``'s image processor; ImageNet's 0.5/0.5 defaults when it has none."""
    try:
        from transformers import AutoImageProcessor
        proc = AutoImageProcessor.from_pretrained(str(arch))
        return list(proc.image_mean), list(proc.image_std), getattr(proc, "size", None)
    except (OSError, ValueError, AttributeError, TypeError):
        return [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None


def create_hf_model(arch: str | os.PathLike, vocab: list, pretrained: bool = True,
                    size: tuple[int, int] | None = None) -> HFImageModel:
    """An ``HFImageModel`` for ``arch`` with a new head of ``len(vocab)`` labels (pretrained body or random)."""
    from transformers import AutoConfig, AutoModelForImageClassification
    labels = {"num_labels": len(vocab), "id2label": {i: str(v) for i, v in enumerate(vocab)},
              "label2id": {str(v): i for i, v in enumerate(vocab)}}
    try:
        if pretrained:
            m = AutoModelForImageClassification.from_pretrained(str(arch), ignore_mismatched_sizes=True, **labels)
        else:
            m = AutoModelForImageClassification.from_config(AutoConfig.from_pretrained(str(arch), **labels))
    except OSError as e:
        raise OSError(f"Can't load the transformers model {str(arch)!r}: {e}. Without network, set "
                      f"HF_HUB_OFFLINE=1 to use the cache, or pass a local save_pretrained folder.") from e
    except ValueError as e:  # "Unrecognized configuration class": no image-classification head for this model
        if "Unrecognized configuration class" not in str(e):
            raise
        model_type = getattr(AutoConfig.from_pretrained(str(arch)), "model_type", "?")
        raise ValueError(f"{str(arch)!r} is a {model_type!r} model, which transformers can't give an image "
                         f"classification head (AutoModelForImageClassification doesn't know it): pick an image "
                         f"classifier (ViT, DeiT, BEiT, ConvNeXt, Swin, ...), or build your own model around it and "
                         f"pass it to Learner(dls, model).") from e
    return HFImageModel(m, size)


def build_hf_model(spec: dict) -> nn.Module:
    """Rebuild the model an ``hf_vision`` spec describes from its config JSON (random weights: load saved ones)."""
    from transformers import AutoModelForImageClassification
    return HFImageModel(AutoModelForImageClassification.from_config(config_from_dict(spec["config"])),
                        spec.get("size"))


def hf_vision_learner(dls: Any, arch: str | os.PathLike, normalize: bool = True, pretrained: bool = True,
                      splitter: Any = None, **kwargs: Any) -> Any:
    """``vision_learner`` for a transformers image model (called by ``vision_learner`` for Hub ids/folders)."""
    from ..data.normalize import Normalize
    from ..learner import Learner
    vocab = list(getattr(dls, "vocab", None) or range(int(dls.c)))
    mean, std, size = hf_image_stats(arch)
    model = create_hf_model(arch, vocab, pretrained, processor_hw(size))
    if normalize and not any(isinstance(t, Normalize) for t in (dls.train.batch_tfms or [])):
        dls.add_batch_tfms([Normalize.from_stats(mean, std)])
    learn = Learner(dls, model, splitter=splitter or hf_split, **kwargs)
    if pretrained:
        learn.freeze()
    learn.model_spec = {"builder": "hf_vision", "config": model.model.config.to_dict(), "n_out": len(vocab),
                        "size": list(model.size) if model.size else None}
    return learn


register_model_builder("hf_vision", build_hf_model)
