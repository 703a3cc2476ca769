"""The vision lesson surface: ``from learnkit.vision.all import *`` (everything in basics plus images and vision_learner)."""
from __future__ import annotations

from learnkit.basics import *  # noqa: F401,F403  (all.py files re-export; this is the one place star imports live)
from learnkit.basics import __all__ as _basics_all

from learnkit.vision.core import (PILImage, PILImageBW, PILMask, ImageBlock, MaskBlock, load_image, load_pixels, verify_image, verify_images, imagenet_stats, ImageLoadError)  # noqa: F401
from learnkit.vision.augment import (ResizeMethod, PadMode, Resize, RandomResizedCrop, CropPad, Albumentations, Flip, Normalize)  # noqa: F401
from learnkit.vision.batch_augment import (AffineCoordTfm, Dihedral, Rotate, Zoom, Warp, RandomResizedCropGPU, LightingTfm, Brightness, Contrast, Saturation, RandomErasing, setup_aug_tfms, aug_transforms)  # noqa: F401
from learnkit.vision.data import (ImageDataLoaders, SegmentationDataLoaders)  # noqa: F401
from learnkit.vision.layers import (NormType, BatchNorm, InstanceNorm, ConvLayer, AdaptiveAvgPool, MaxPool, AvgPool, SEModule, SimpleSelfAttention, ResBlock)  # noqa: F401
from learnkit.vision.unet import (DynamicUnet, PixelShuffle_ICNR, icnr_init, SelfAttention, ResizeToOrig)  # noqa: F401
from learnkit.vision.unet_learner import (unet_learner, create_unet_model, unet_config, unet_split)  # noqa: F401
from learnkit.vision.backbones import (resnet18, resnet34, resnet50, resnet101, resnet152, model_stats, create_arch_model)  # noqa: F401
from learnkit.vision.xresnet import (init_cnn, XResNet, xresnet_split, xresnet18, xresnet34, xresnet50, xresnet101, xresnet152, xresnet18_deep, xresnet34_deep, xresnet50_deep, xresnet18_deeper, xresnet34_deeper, xresnet50_deeper)  # noqa: F401
from learnkit.vision.utils import (download_images)  # noqa: F401
from learnkit.vision.learner import (create_body, create_head, create_vision_model, num_features_model, has_pool_type, default_split, resnet_split, apply_init, vision_learner, build_vision_model, AdaptiveConcatPool2d, SigmoidRange, sigmoid_range)  # noqa: F401
from learnkit.vision.widgets import (ImageClassifierCleaner)  # noqa: F401
from learnkit.vision.cam import (class_activation_map, grad_cam, show_cam)  # noqa: F401
from learnkit.vision.layers import (SEBlock, SEResNeXtBlock)  # noqa: F401
from learnkit.vision.core import (cifar_stats, mnist_stats)  # noqa: F401
from learnkit.vision.bbox import (clip_remove_empty, bb_pad)  # noqa: F401
from learnkit.vision.xresnet import (xresnext18, xresnext34, xresnext50, xresnext101, xse_resnet18, xse_resnet34, xse_resnet50, xse_resnet101, xse_resnet152, xse_resnext18, xse_resnext34, xse_resnext50, xse_resnext101)  # noqa: F401
from learnkit.vision.meta import (model_meta, image2tensor, cnn_learner)  # noqa: F401

__all__ = _basics_all + [
    "model_meta", "image2tensor", "cnn_learner",
    "SegmentationDataLoaders", "DynamicUnet", "PixelShuffle_ICNR", "icnr_init", "SelfAttention", "ResizeToOrig",
    "NormType", "BatchNorm", "InstanceNorm", "ConvLayer", "AdaptiveAvgPool", "MaxPool", "AvgPool", "SEModule",
    "SimpleSelfAttention", "ResBlock", "init_cnn", "unet_learner", "create_unet_model", "unet_config", "unet_split",
    "PILImage", "PILImageBW", "PILMask", "ImageBlock", "MaskBlock", "load_image", "load_pixels",
    "verify_image", "verify_images", "imagenet_stats", "ImageLoadError", "ResizeMethod", "PadMode", "Resize",
    "RandomResizedCrop", "CropPad", "Albumentations", "Flip", "Normalize", "AffineCoordTfm", "Dihedral", "Rotate", "Zoom",
    "Warp", "RandomResizedCropGPU", "LightingTfm", "Brightness", "Contrast", "Saturation", "RandomErasing",
    "setup_aug_tfms", "aug_transforms", "ImageDataLoaders", "resnet18",
    "resnet34", "resnet50", "resnet101", "resnet152", "model_stats", "create_arch_model", "create_body",
    "create_head", "create_vision_model", "num_features_model", "has_pool_type", "default_split",
    "resnet_split", "apply_init", "vision_learner", "build_vision_model", "AdaptiveConcatPool2d",
    "SigmoidRange", "sigmoid_range", "download_images",
    "XResNet", "xresnet_split", "xresnet18", "xresnet34", "xresnet50", "xresnet101", "xresnet152", "xresnet18_deep",
    "xresnet34_deep", "xresnet50_deep", "xresnet18_deeper", "xresnet34_deeper", "xresnet50_deeper",
    "ImageClassifierCleaner", "class_activation_map", "grad_cam", "show_cam",
    "SEBlock", "SEResNeXtBlock", "xresnext18", "xresnext34", "xresnext50", "xresnext101", "xse_resnet18",
    "xse_resnet34", "xse_resnet50", "xse_resnet101", "xse_resnet152", "xse_resnext18", "xse_resnext34",
    "xse_resnext50", "xse_resnext101", "cifar_stats", "mnist_stats", "clip_remove_empty", "bb_pad",  # LinBnDrop, Embedding and the other learnkit.layers come from basics
]

# a one-line ImageNet classifier (issue 25), offline weights
from learnkit.vision.imagenet import (imagenet_classifier, imagenet_labels)  # noqa: F401,E402

__all__ += ["imagenet_classifier", "imagenet_labels"]
