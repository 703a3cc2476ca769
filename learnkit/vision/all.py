"""The vision lesson surface: ``from learnkit.vision.all import *`` (everything in basics plus images and vision_learner)."""
from __future__ import annotations

from learnkit.basics import *  # noqa: F401,F403  (all.py files re-export; this is the one place star imports live)
from learnkit.basics import __all__ as _basics_all

from learnkit.vision.core import (PILImage, PILImageBW, PILMask, ImageBlock, MaskBlock, load_image, load_pixels, verify_image, verify_images, imagenet_stats, ImageLoadError)  # noqa: F401
from learnkit.vision.augment import (ResizeMethod, PadMode, Resize, RandomResizedCrop, CropPad, Albumentations, Flip, Normalize)  # noqa: F401
from learnkit.vision.data import (ImageDataLoaders)  # noqa: F401
from learnkit.vision.backbones import (resnet18, resnet34, resnet50, resnet101, resnet152, model_stats, create_arch_model)  # noqa: F401
from learnkit.vision.learner import (create_body, create_head, create_vision_model, num_features_model, has_pool_type, default_split, resnet_split, apply_init, vision_learner, build_vision_model, AdaptiveConcatPool2d, SigmoidRange, sigmoid_range)  # noqa: F401

__all__ = _basics_all + [
    "PILImage", "PILImageBW", "PILMask", "ImageBlock", "MaskBlock", "load_image", "load_pixels",
    "verify_image", "verify_images", "imagenet_stats", "ImageLoadError", "ResizeMethod", "PadMode", "Resize",
    "RandomResizedCrop", "CropPad", "Albumentations", "Flip", "Normalize", "ImageDataLoaders", "resnet18",
    "resnet34", "resnet50", "resnet101", "resnet152", "model_stats", "create_arch_model", "create_body",
    "create_head", "create_vision_model", "num_features_model", "has_pool_type", "default_split",
    "resnet_split", "apply_init", "vision_learner", "build_vision_model", "AdaptiveConcatPool2d",
    "SigmoidRange", "sigmoid_range",
]
