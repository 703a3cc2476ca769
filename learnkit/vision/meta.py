"""fastai's ``model_meta`` table for the torchvision ResNets, ``image2tensor``, and the old name ``cnn_learner``."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from .backbones import resnet18, resnet34, resnet50, resnet101, resnet152
from .core import imagenet_stats
from .learner import resnet_split, vision_learner

__all__ = ["model_meta", "image2tensor", "cnn_learner"]

_RESNET_META = {"cut": -2, "split": resnet_split, "stats": imagenet_stats}
# What vision_learner does with these archs (the same cut and split it works out itself); a description to read.
model_meta: dict[Any, dict] = {arch: dict(_RESNET_META) for arch in (resnet18, resnet34, resnet50, resnet101, resnet152)}


def image2tensor(img: Any) -> torch.Tensor:
    """A PIL image (or array) as a uint8 tensor in channels-first (``c,h,w``) order; a grey image gets ``c=1``."""
    res = torch.as_tensor(np.array(img))
    if res.dim() == 2:
        res = res.unsqueeze(-1)
    return res.permute(2, 0, 1)


def cnn_learner(*args: Any, **kwargs: Any) -> Any:
    """fastai's former name for ``vision_learner`` (same arguments); warns, as fastai does."""
    warnings.warn("cnn_learner has been renamed to vision_learner -- please update your code", stacklevel=2)
    return vision_learner(*args, **kwargs)
