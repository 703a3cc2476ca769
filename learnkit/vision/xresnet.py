"""XResNet ("Bag of Tricks" ResNet, He et al. 2018) with fastai's exact layer layout, names and initialisation.

The module tree is fastai's (``fastai.vision.models.xresnet``): an ``nn.Sequential`` of three stem
``ConvLayer``s, a max pool, the stages of ``ResBlock``s, then ``AdaptiveAvgPool``, ``Flatten``,
``Dropout`` and ``Linear``. So parameter counts and state-dict names equal fastai's (xresnet50 with
``n_out=1000``: 25,576,264 parameters, measured with fastai 2.8.12), and ``vision_learner`` cuts it
at ``-4`` (before the pooling) as fastai's ``model_meta`` does, splitting it with ``xresnet_split``.

Initialisation as fastai: every conv and linear weight kaiming-normal, every bias zero (BatchNorm
biases too), BatchNorm weights one except the last BatchNorm of each ``ResBlock``'s conv path, which
starts at zero (each residual block begins as the identity). The blocks (``ConvLayer``, ``ResBlock``,
``SEModule``, ``SimpleSelfAttention``) live in ``learnkit.vision.layers`` and are re-exported here.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from .layers import (
    AdaptiveAvgPool,
    ConvLayer,
    MaxPool,
    ResBlock,
    SEBlock,
    SEModule,
    SEResNeXtBlock,
    SimpleSelfAttention,
)

__all__ = [
    "ConvLayer", "ResBlock", "SEModule", "SimpleSelfAttention", "XResNet", "init_cnn", "xresnet_split",
    "xresnet18", "xresnet34", "xresnet50", "xresnet101", "xresnet152",
    "xresnet18_deep", "xresnet34_deep", "xresnet50_deep", "xresnet18_deeper", "xresnet34_deeper", "xresnet50_deeper",
    "SEBlock", "SEResNeXtBlock", "xresnext18", "xresnext34", "xresnext50", "xresnext101",
    "xse_resnet18", "xse_resnet34", "xse_resnet50", "xse_resnet101", "xse_resnet152",
    "xse_resnext18", "xse_resnext34", "xse_resnext50", "xse_resnext101",
]


def init_cnn(m: nn.Module) -> None:
    """fastai's init_cnn: zero every bias, kaiming-normal every conv and linear weight (recursively)."""
    if getattr(m, "bias", None) is not None:
        nn.init.constant_(m.bias, 0)
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
        w = getattr(m, "weight_orig", m.weight)  # spectral-normed convs keep the raw weight in weight_orig
        nn.init.kaiming_normal_(w)
    for child in m.children():
        init_cnn(child)


class XResNet(nn.Sequential):
    """fastai's XResNet: stem of three convs, max pool, ``len(layers)`` stages of ``block``, pooled linear head."""

    def __init__(self, block: Callable[..., nn.Module], expansion: int, layers: Sequence[int], p: float = 0.0,
                 c_in: int = 3, n_out: int = 1000, stem_szs: Sequence[int] = (32, 32, 64), widen: float = 1.0,
                 sa: bool = False, act_cls: Callable[[], nn.Module] = nn.ReLU, ndim: int = 2, ks: int = 3,
                 stride: int = 2, **kwargs: Any) -> None:
        if ks % 2 == 0:
            raise ValueError(f"XResNet(ks={ks}): the kernel size has to be odd (3, 5, ...).")
        self.block, self.expansion, self.act_cls, self.ndim, self.ks = block, expansion, act_cls, ndim, ks
        szs = [c_in, *stem_szs]
        stem = [ConvLayer(szs[i], szs[i + 1], ks=ks, stride=stride if i == 0 else 1, act_cls=act_cls, ndim=ndim)
                for i in range(3)]
        block_szs = [int(o * widen) for o in [64, 128, 256, 512] + [256] * (len(layers) - 4)]
        block_szs = [64 // expansion] + block_szs
        blocks = [self._make_layer(block_szs[i], block_szs[i + 1], n, 1 if i == 0 else stride,
                                   sa and i == len(layers) - 4, **kwargs) for i, n in enumerate(layers)]
        super().__init__(*stem, MaxPool(ks=ks, stride=stride, padding=ks // 2, ndim=ndim), *blocks,
                         AdaptiveAvgPool(1, ndim), nn.Flatten(), nn.Dropout(p),
                         nn.Linear(block_szs[-1] * expansion, n_out))
        init_cnn(self)

    def _make_layer(self, ni: int, nf: int, blocks: int, stride: int, sa: bool, **kwargs: Any) -> nn.Sequential:
        return nn.Sequential(*[self.block(self.expansion, ni if i == 0 else nf, nf, stride=stride if i == 0 else 1,
                                          sa=sa and i == blocks - 1, act_cls=self.act_cls, ndim=self.ndim,
                                          ks=self.ks, **kwargs) for i in range(blocks)])


def _xresnet(pretrained: bool, expansion: int, layers: Sequence[int], block: Callable[..., nn.Module] = ResBlock,
             **kwargs: Any) -> XResNet:
    if pretrained:
        raise ValueError("learnkit ships no pretrained xresnet weights (fastai's come from a download): pass "
                         "pretrained=False, or pretrained='path/to/weights.pth' to vision_learner for a local file.")
    return XResNet(block, expansion, layers, **kwargs)


def xresnet18(pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XResNet-18 (basic blocks 2-2-2-2); kwargs: ``n_out``, ``act_cls``, ``sa``, ``p``, ``c_in``, ``stem_szs``..."""
    return _xresnet(pretrained, 1, [2, 2, 2, 2], **kwargs)


def xresnet34(pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XResNet-34 (basic blocks 3-4-6-3)."""
    return _xresnet(pretrained, 1, [3, 4, 6, 3], **kwargs)


def xresnet50(pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XResNet-50 (bottleneck blocks 3-4-6-3)."""
    return _xresnet(pretrained, 4, [3, 4, 6, 3], **kwargs)


def xresnet101(pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XResNet-101 (bottleneck blocks 3-4-23-3)."""
    return _xresnet(pretrained, 4, [3, 4, 23, 3], **kwargs)


def xresnet152(pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XResNet-152 (bottleneck blocks 3-8-36-3)."""
    return _xresnet(pretrained, 4, [3, 8, 36, 3], **kwargs)


def xresnet18_deep(pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XResNet-18 with two extra 256-channel stages."""
    return _xresnet(pretrained, 1, [2, 2, 2, 2, 1, 1], **kwargs)


def xresnet34_deep(pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XResNet-34 with two extra 256-channel stages."""
    return _xresnet(pretrained, 1, [3, 4, 6, 3, 1, 1], **kwargs)


def xresnet50_deep(pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XResNet-50 with two extra 256-channel stages."""
    return _xresnet(pretrained, 4, [3, 4, 6, 3, 1, 1], **kwargs)


def xresnet18_deeper(pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XResNet-18 variant with four extra stages."""
    return _xresnet(pretrained, 1, [2, 2, 1, 1, 1, 1, 1, 1], **kwargs)


def xresnet34_deeper(pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XResNet-34 with four extra stages."""
    return _xresnet(pretrained, 1, [3, 4, 6, 3, 1, 1, 1, 1], **kwargs)


def xresnet50_deeper(pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XResNet-50 with four extra stages."""
    return _xresnet(pretrained, 4, [3, 4, 6, 3, 1, 1, 1, 1], **kwargs)


# fastai's ResNeXt / squeeze-excitation variants: the stage layouts and block arguments of fastai.vision.models.xresnet
_G0, _G1, _G2, _G3 = [2, 2, 2, 2], [3, 4, 6, 3], [3, 4, 23, 3], [3, 8, 36, 3]
_SE = dict(block=SEBlock, groups=1, reduction=16)  # fastai's se_kwargs1
_SE_NEXT = dict(block=SEResNeXtBlock, groups=32, reduction=16)  # se_kwargs2
_NEXT = dict(block=SEResNeXtBlock, groups=32, reduction=0)  # se_kwargs3: ResNeXt without squeeze-excitation


def xresnext18(n_out: int = 1000, pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XResNeXt-18: grouped (32) basic blocks 2-2-2-2, no squeeze-excitation."""
    return _xresnet(pretrained, 1, _G0, n_out=n_out, **_NEXT, **kwargs)


def xresnext34(n_out: int = 1000, pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XResNeXt-34: grouped (32) basic blocks 3-4-6-3."""
    return _xresnet(pretrained, 1, _G1, n_out=n_out, **_NEXT, **kwargs)


def xresnext50(n_out: int = 1000, pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XResNeXt-50: grouped (32) bottleneck blocks 3-4-6-3."""
    return _xresnet(pretrained, 4, _G1, n_out=n_out, **_NEXT, **kwargs)


def xresnext101(n_out: int = 1000, pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XResNeXt-101: grouped (32) bottleneck blocks 3-4-23-3."""
    return _xresnet(pretrained, 4, _G2, n_out=n_out, **_NEXT, **kwargs)


def xse_resnet18(n_out: int = 1000, pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XSE-ResNet-18: basic blocks 2-2-2-2 with squeeze-excitation (reduction 16)."""
    return _xresnet(pretrained, 1, _G0, n_out=n_out, **_SE, **kwargs)


def xse_resnet34(n_out: int = 1000, pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XSE-ResNet-34: basic blocks 3-4-6-3 with squeeze-excitation."""
    return _xresnet(pretrained, 1, _G1, n_out=n_out, **_SE, **kwargs)


def xse_resnet50(n_out: int = 1000, pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XSE-ResNet-50: bottleneck blocks 3-4-6-3 with squeeze-excitation."""
    return _xresnet(pretrained, 4, _G1, n_out=n_out, **_SE, **kwargs)


def xse_resnet101(n_out: int = 1000, pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XSE-ResNet-101: bottleneck blocks 3-4-23-3 with squeeze-excitation."""
    return _xresnet(pretrained, 4, _G2, n_out=n_out, **_SE, **kwargs)


def xse_resnet152(n_out: int = 1000, pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XSE-ResNet-152: bottleneck blocks 3-8-36-3 with squeeze-excitation."""
    return _xresnet(pretrained, 4, _G3, n_out=n_out, **_SE, **kwargs)


def xse_resnext18(n_out: int = 1000, pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XSE-ResNeXt-18: grouped (32) basic blocks 2-2-2-2 with squeeze-excitation."""
    return _xresnet(pretrained, 1, _G0, n_out=n_out, **_SE_NEXT, **kwargs)


def xse_resnext34(n_out: int = 1000, pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XSE-ResNeXt-34: grouped (32) basic blocks 3-4-6-3 with squeeze-excitation."""
    return _xresnet(pretrained, 1, _G1, n_out=n_out, **_SE_NEXT, **kwargs)


def xse_resnext50(n_out: int = 1000, pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XSE-ResNeXt-50: grouped (32) bottleneck blocks 3-4-6-3 with squeeze-excitation."""
    return _xresnet(pretrained, 4, _G1, n_out=n_out, **_SE_NEXT, **kwargs)


def xse_resnext101(n_out: int = 1000, pretrained: bool = False, **kwargs: Any) -> XResNet:
    """XSE-ResNeXt-101: grouped (32) bottleneck blocks 3-4-23-3 with squeeze-excitation."""
    return _xresnet(pretrained, 4, _G2, n_out=n_out, **_SE_NEXT, **kwargs)


def xresnet_split(model: nn.Module) -> list[list[nn.Parameter]]:
    """fastai's ``_xresnet_split`` for ``nn.Sequential(body, head)``: the stem, the residual stages, the head."""
    if not isinstance(model, nn.Sequential) or len(model) < 2 or not isinstance(model[0], nn.Sequential):
        raise TypeError(f"xresnet_split expects nn.Sequential(body, head) as vision_learner builds it, got "
                        f"{type(model).__name__}; pass splitter=trainable_params for a bare XResNet.")
    body = model[0]
    return [[p for m in list(body)[:3] for p in m.parameters()], [p for m in list(body)[3:] for p in m.parameters()],
            [p for m in list(model)[1:] for p in m.parameters()]]
