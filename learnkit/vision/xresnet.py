"""XResNet ("Bag of Tricks" ResNet, He et al. 2018) with fastai's exact layer layout, names and initialisation.

The module tree is fastai's (``fastai.vision.models.xresnet``): an ``nn.Sequential`` of three stem
``ConvLayer``s, a max pool, the stages of ``ResBlock``s, then ``AdaptiveAvgPool``, ``Flatten``,
``Dropout`` and ``Linear``. So parameter counts and state-dict names equal fastai's (xresnet50 with
``n_out=1000``: 25,576,264 parameters, measured with fastai 2.8.12), and ``vision_learner`` cuts it
at ``-4`` (before the pooling) as fastai's ``model_meta`` does, splitting it with ``xresnet_split``.

Initialisation as fastai: every conv and linear weight kaiming-normal, every bias zero (BatchNorm
biases too), BatchNorm weights one except the last BatchNorm of each ``ResBlock``'s conv path, which
starts at zero (each residual block begins as the identity).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import spectral_norm

__all__ = [
    "ConvLayer", "ResBlock", "SEModule", "SimpleSelfAttention", "XResNet", "init_cnn", "xresnet_split",
    "xresnet18", "xresnet34", "xresnet50", "xresnet101", "xresnet152",
    "xresnet18_deep", "xresnet34_deep", "xresnet50_deep", "xresnet18_deeper", "xresnet34_deeper", "xresnet50_deeper",
]


def _nd(prefix: str, ndim: int) -> type:
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim={ndim!r}: xresnet layers exist for 1, 2 or 3 spatial dimensions.")
    return getattr(nn, f"{prefix}{ndim}d")


def AvgPool(ks: int = 2, stride: int | None = None, padding: int = 0, ndim: int = 2,
            ceil_mode: bool = False) -> nn.Module:
    """``nn.AvgPool{ndim}d`` (fastai's helper)."""
    return _nd("AvgPool", ndim)(ks, stride=stride, padding=padding, ceil_mode=ceil_mode)


def MaxPool(ks: int = 2, stride: int | None = None, padding: int = 0, ndim: int = 2,
            ceil_mode: bool = False) -> nn.Module:
    """``nn.MaxPool{ndim}d`` (fastai's helper, which ignores ``ceil_mode``)."""
    return _nd("MaxPool", ndim)(ks, stride=stride, padding=padding)


def _batchnorm(nf: int, ndim: int, zero: bool) -> nn.Module:
    bn = _nd("BatchNorm", ndim)(nf)
    with torch.no_grad():
        bn.bias.fill_(1e-3)
        bn.weight.fill_(0.0 if zero else 1.0)
    return bn


class ConvLayer(nn.Sequential):
    """fastai's ConvLayer: conv (no bias before a BatchNorm), BatchNorm (``bn_zero``: weight 0), activation."""

    def __init__(self, ni: int, nf: int, ks: int = 3, stride: int = 1, padding: int | None = None,
                 bias: bool | None = None, ndim: int = 2, norm: bool = True, bn_zero: bool = False,
                 act_cls: Callable[[], nn.Module] | None = nn.ReLU, groups: int = 1) -> None:
        padding = (ks - 1) // 2 if padding is None else padding
        bias = (not norm) if bias is None else bias
        conv = _nd("Conv", ndim)(ni, nf, kernel_size=ks, stride=stride, padding=padding, bias=bias, groups=groups)
        layers: list[nn.Module] = [conv]
        if norm:
            layers.append(_batchnorm(nf, ndim, bn_zero))
        if act_cls is not None:
            layers.append(act_cls())
        super().__init__(*layers)


class SEModule(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(conv(act(conv(avgpool(x)))))`` (fastai's layer names: ``layers``)."""

    def __init__(self, ch: int, reduction: int, act_cls: Callable[[], nn.Module] = nn.ReLU, ndim: int = 2) -> None:
        super().__init__()
        nf = math.ceil(ch // reduction / 8) * 8
        self.layers = nn.ModuleList([_nd("AdaptiveAvgPool", ndim)(1),
                                     ConvLayer(ch, nf, ks=1, norm=False, act_cls=act_cls, ndim=ndim),
                                     ConvLayer(nf, ch, ks=1, norm=False, act_cls=nn.Sigmoid, ndim=ndim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Channel-reweighted ``x``."""
        g = x
        for layer in self.layers:
            g = layer(g)
        return x * g


class SimpleSelfAttention(nn.Module):
    """fastai's SimpleSelfAttention: ``gamma * (x x^T) conv(x) + x`` over flattened positions (gamma starts at 0)."""

    def __init__(self, n_in: int, ks: int = 1, sym: bool = False) -> None:
        super().__init__()
        self.sym, self.n_in = sym, n_in
        conv = nn.Conv1d(n_in, n_in, ks, padding=ks // 2, bias=False)
        nn.init.kaiming_normal_(conv.weight)
        self.conv = spectral_norm(conv)
        self.gamma = nn.Parameter(torch.tensor([0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Self-attended ``x`` (same shape)."""
        size = x.size()
        x = x.view(*size[:2], -1)
        if self.sym:  # symmetric kernel, computed functionally (fastai reassigns conv.weight in place)
            c = self.conv.weight.view(self.n_in, self.n_in)
            convx = torch.nn.functional.conv1d(x, ((c + c.t()) / 2).view(self.n_in, self.n_in, 1))
        else:
            convx = self.conv(x)
        xxT = torch.bmm(x, x.permute(0, 2, 1).contiguous())
        o = self.gamma * torch.bmm(xxT, convx) + x
        return o.view(*size).contiguous()


class ResBlock(nn.Module):
    """fastai's ResBlock: ``act(convpath(x) + idpath(x))``; ``expansion`` 1 (basic) or 4 (bottleneck)."""

    def __init__(self, expansion: int, ni: int, nf: int, stride: int = 1, groups: int = 1,
                 reduction: int | None = None, nh1: int | None = None, nh2: int | None = None, dw: bool = False,
                 g2: int = 1, sa: bool = False, sym: bool = False, act_cls: Callable[[], nn.Module] = nn.ReLU,
                 ndim: int = 2, ks: int = 3, pool: Callable[..., nn.Module] = AvgPool, pool_first: bool = True) -> None:
        super().__init__()
        nh2 = nf if nh2 is None else nh2
        nh1 = nh2 if nh1 is None else nh1
        nf, ni = nf * expansion, ni * expansion
        k0 = dict(act_cls=act_cls, ndim=ndim)
        k1 = dict(act_cls=None, ndim=ndim, bn_zero=True)
        if expansion == 1:
            convpath: list[nn.Module] = [ConvLayer(ni, nh2, ks, stride=stride, groups=ni if dw else groups, **k0),
                                         ConvLayer(nh2, nf, ks, groups=g2, **k1)]
        else:
            convpath = [ConvLayer(ni, nh1, 1, **k0),
                        ConvLayer(nh1, nh2, ks, stride=stride, groups=nh1 if dw else groups, **k0),
                        ConvLayer(nh2, nf, 1, groups=g2, **k1)]
        if reduction:
            convpath.append(SEModule(nf, reduction=reduction, act_cls=act_cls, ndim=ndim))
        if sa:
            convpath.append(SimpleSelfAttention(nf, ks=1, sym=sym))
        self.convpath = nn.Sequential(*convpath)
        idpath: list[nn.Module] = []
        if ni != nf:
            idpath.append(ConvLayer(ni, nf, 1, act_cls=None, ndim=ndim))
        if stride != 1:
            idpath.insert(0 if pool_first else 1, pool(stride, ndim=ndim, ceil_mode=True))
        self.idpath = nn.Sequential(*idpath)
        self.act = nn.ReLU(inplace=True) if act_cls is nn.ReLU else act_cls()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual sum, then the activation."""
        return self.act(self.convpath(x) + self.idpath(x))


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
                         _nd("AdaptiveAvgPool", ndim)(1), nn.Flatten(), nn.Dropout(p),
                         nn.Linear(block_szs[-1] * expansion, n_out))
        init_cnn(self)

    def _make_layer(self, ni: int, nf: int, blocks: int, stride: int, sa: bool, **kwargs: Any) -> nn.Sequential:
        return nn.Sequential(*[self.block(self.expansion, ni if i == 0 else nf, nf, stride=stride if i == 0 else 1,
                                          sa=sa and i == blocks - 1, act_cls=self.act_cls, ndim=self.ndim,
                                          ks=self.ks, **kwargs) for i in range(blocks)])


def _xresnet(pretrained: bool, expansion: int, layers: Sequence[int], **kwargs: Any) -> XResNet:
    if pretrained:
        raise ValueError("learnkit ships no pretrained xresnet weights (fastai's come from a download): pass "
                         "pretrained=False, or pretrained='path/to/weights.pth' to vision_learner for a local file.")
    return XResNet(ResBlock, expansion, layers, **kwargs)


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


def xresnet_split(model: nn.Module) -> list[list[nn.Parameter]]:
    """fastai's ``_xresnet_split`` for ``nn.Sequential(body, head)``: the stem, the residual stages, the head."""
    if not isinstance(model, nn.Sequential) or len(model) < 2 or not isinstance(model[0], nn.Sequential):
        raise TypeError(f"xresnet_split expects nn.Sequential(body, head) as vision_learner builds it, got "
                        f"{type(model).__name__}; pass splitter=trainable_params for a bare XResNet.")
    body = model[0]
    return [[p for m in list(body)[:3] for p in m.parameters()], [p for m in list(body)[3:] for p in m.parameters()],
            [p for m in list(model)[1:] for p in m.parameters()]]
