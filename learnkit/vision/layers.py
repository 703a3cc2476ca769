"""fastai's convolutional building blocks (``fastai.layers`` 2.8.12): one home for xresnet and the U-Net.

``ConvLayer`` (conv, norm, activation), ``ResBlock`` (basic or bottleneck residual block with optional
squeeze-excitation and self-attention), the norm and pooling helpers, with fastai's signatures,
module layout (so state-dict names and parameter counts equal fastai's) and initialisation: a
conv followed by ReLU/Mish/SiLU is kaiming-uniform, by Sigmoid/Tanh xavier-uniform, a conv bias
normal(0, ``bias_std``); norm layers start at weight 1 (0 for the ``*Zero`` types) and bias 1e-3.

Departure: ``NormType`` holds plain strings (``None``, ``'batch'``, ``'instance'``, their ``*_zero``
variants, ``'weight'`` and ``'spectral'``), not an Enum. Weight and spectral norm wrap the conv with torch's
``weight_norm`` / ``spectral_norm`` as fastai does (state-dict names ``weight_g``/``weight_v``,
``weight_orig``/``weight_u``/``weight_v``).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
import warnings

from torch.nn.utils import spectral_norm, weight_norm

__all__ = [
    "NormType", "BatchNorm", "InstanceNorm", "ConvLayer", "AdaptiveAvgPool", "MaxPool", "AvgPool", "SEModule",
    "SimpleSelfAttention", "ResBlock", "SEBlock", "SEResNeXtBlock",
]


class NormType:
    """Norm of a ``ConvLayer``: ``None`` (none), ``'batch'``, ``'instance'``, ``'weight'`` or ``'spectral'``;
    ``*Zero``: the norm's weight starts at 0."""

    Batch = "batch"
    BatchZero = "batch_zero"  # last conv of a residual path: the block starts as the identity
    Weight = "weight"
    Spectral = "spectral"
    Instance = "instance"
    InstanceZero = "instance_zero"


_NORMS = (None, NormType.Batch, NormType.BatchZero, NormType.Weight, NormType.Spectral, NormType.Instance,
          NormType.InstanceZero)


def _check_norm(norm_type: Any) -> str | None:
    """``norm_type`` itself when supported, else a ValueError naming the choices."""
    if norm_type not in _NORMS:
        raise ValueError(f"norm_type={norm_type!r}: use None (no norm) or one of NormType.Batch, BatchZero, "
                         f"Instance, InstanceZero, Weight, Spectral ({', '.join(repr(n) for n in _NORMS[1:])}).")
    return norm_type


def _nd(prefix: str, ndim: int) -> type:
    """``nn.{prefix}{ndim}d``, e.g. ``_nd('Conv', 2) is nn.Conv2d``."""
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim={ndim!r}: these layers exist for 1, 2 or 3 spatial dimensions; pass ndim=1, 2 or 3.")
    return getattr(nn, f"{prefix}{ndim}d")


def _get_norm(prefix: str, nf: int, ndim: int = 2, zero: bool = False, **kwargs: Any) -> nn.Module:
    """A ``{prefix}{ndim}d`` norm with fastai's init: weight 1 (0 when ``zero``), bias 1e-3 (when affine)."""
    norm = _nd(prefix, ndim)(nf, **kwargs)
    if norm.affine:
        with torch.no_grad():
            norm.bias.fill_(1e-3)
            norm.weight.fill_(0.0 if zero else 1.0)
    return norm


def BatchNorm(nf: int, ndim: int = 2, norm_type: str | None = NormType.Batch, **kwargs: Any) -> nn.Module:
    """``nn.BatchNorm{ndim}d(nf)``, weight 1 (0 for ``NormType.BatchZero``), bias 1e-3 (fastai's)."""
    return _get_norm("BatchNorm", nf, ndim, zero=norm_type == NormType.BatchZero, **kwargs)


def InstanceNorm(nf: int, ndim: int = 2, norm_type: str | None = NormType.Instance, affine: bool = True,
                 **kwargs: Any) -> nn.Module:
    """Affine ``nn.InstanceNorm{ndim}d(nf)``, weight 1 (0 for ``NormType.InstanceZero``), bias 1e-3 (fastai's)."""
    return _get_norm("InstanceNorm", nf, ndim, zero=norm_type == NormType.InstanceZero, affine=affine, **kwargs)


_KAIMING_ACTS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Mish, nn.SiLU)
_XAVIER_ACTS = (nn.Sigmoid, nn.Tanh)


def _init_conv(conv: nn.Module, act: nn.Module | None, init: Callable | str | None, bias_std: float | None) -> None:
    """fastai's ``init_linear``: bias normal(0, ``bias_std``) (0: zeros), then ``init`` on the weight.

    ``init='auto'`` picks from the activation: kaiming-uniform after ReLU-like ones, xavier-uniform after
    Sigmoid/Tanh, torch's default otherwise (no activation included).
    """
    with torch.no_grad():
        if conv.bias is not None and bias_std is not None:
            conv.bias.normal_(0, bias_std) if bias_std != 0 else conv.bias.zero_()
    if init == "auto":
        init = (nn.init.kaiming_uniform_ if isinstance(act, _KAIMING_ACTS)
                else nn.init.xavier_uniform_ if isinstance(act, _XAVIER_ACTS) else None)
    if callable(init):
        init(conv.weight)


class ConvLayer(nn.Sequential):
    """fastai's ConvLayer: conv ``ni -> nf``, then norm and activation (norm first when ``bn_1st``), then ``xtra``.

    The conv has a bias only without a norm (unless ``bias`` says otherwise); ``padding`` defaults to
    ``(ks - 1) // 2`` (0 when ``transpose``); extra keyword arguments (``groups``, ``dilation``...) go to the conv.
    """

    def __init__(self, ni: int, nf: int, ks: int = 3, stride: int = 1, padding: int | None = None,
                 bias: bool | None = None, ndim: int = 2, norm_type: str | None = NormType.Batch, bn_1st: bool = True,
                 act_cls: Callable[[], nn.Module] | None = nn.ReLU, transpose: bool = False,
                 init: Callable | str | None = "auto", xtra: nn.Module | None = None, bias_std: float | None = 0.01,
                 **kwargs: Any) -> None:
        _check_norm(norm_type)
        if padding is None:
            padding = 0 if transpose else (ks - 1) // 2
        bn = norm_type in (NormType.Batch, NormType.BatchZero)
        inn = norm_type in (NormType.Instance, NormType.InstanceZero)
        if bias is None:
            bias = not (bn or inn)
        conv = _nd("ConvTranspose" if transpose else "Conv", ndim)(ni, nf, kernel_size=ks, bias=bias, stride=stride,
                                                                   padding=padding, **kwargs)
        act = None if act_cls is None else act_cls()
        _init_conv(conv, act, init, bias_std)
        if norm_type == NormType.Weight:
            with warnings.catch_warnings():  # torch prefers the parametrization, which doesn't pickle
                warnings.simplefilter("ignore", FutureWarning)
                conv = weight_norm(conv)
        elif norm_type == NormType.Spectral:
            conv = spectral_norm(conv)
        act_bn: list[nn.Module] = [] if act is None else [act]
        if bn:
            act_bn.append(BatchNorm(nf, norm_type=norm_type, ndim=ndim))
        if inn:
            act_bn.append(InstanceNorm(nf, norm_type=norm_type, ndim=ndim))
        if bn_1st:
            act_bn.reverse()
        layers: list[nn.Module] = [conv, *act_bn]
        if xtra is not None:
            layers.append(xtra)
        super().__init__(*layers)


def AdaptiveAvgPool(sz: int = 1, ndim: int = 2) -> nn.Module:
    """``nn.AdaptiveAvgPool{ndim}d(sz)`` (fastai's helper)."""
    return _nd("AdaptiveAvgPool", ndim)(sz)


def MaxPool(ks: int = 2, stride: int | None = None, padding: int = 0, ndim: int = 2,
            ceil_mode: bool = False) -> nn.Module:
    """``nn.MaxPool{ndim}d`` (fastai's helper, which ignores ``ceil_mode``)."""
    return _nd("MaxPool", ndim)(ks, stride=stride, padding=padding)


def AvgPool(ks: int = 2, stride: int | None = None, padding: int = 0, ndim: int = 2,
            ceil_mode: bool = False) -> nn.Module:
    """``nn.AvgPool{ndim}d`` (fastai's helper)."""
    return _nd("AvgPool", ndim)(ks, stride=stride, padding=padding, ceil_mode=ceil_mode)


class SEModule(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(conv(act(conv(avgpool(x)))))`` (fastai's layer names: ``layers``)."""

    def __init__(self, ch: int, reduction: int, act_cls: Callable[[], nn.Module] = nn.ReLU, ndim: int = 2) -> None:
        super().__init__()
        nf = math.ceil(ch // reduction / 8) * 8
        self.layers = nn.ModuleList([AdaptiveAvgPool(1, ndim),
                                     ConvLayer(ch, nf, ks=1, norm_type=None, act_cls=act_cls, ndim=ndim),
                                     ConvLayer(nf, ch, ks=1, norm_type=None, act_cls=nn.Sigmoid, ndim=ndim)])

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
        convx = self.conv(x)  # the call recomputes the spectral-normed weight from weight_orig (gradients flow)
        if self.sym:  # symmetric kernel (W + W^T) / 2: conv(x) = W x, plus W^T x with the weight just computed
            c = self.conv.weight.view(self.n_in, self.n_in)
            convx = (convx + torch.nn.functional.conv1d(x, c.t().reshape(self.n_in, self.n_in, 1))) / 2
        xxT = torch.bmm(x, x.permute(0, 2, 1).contiguous())
        o = self.gamma * torch.bmm(xxT, convx) + x
        return o.view(*size).contiguous()


class ResBlock(nn.Module):
    """fastai's ResBlock: ``act(convpath(x) + idpath(x))``; ``expansion`` 1 (basic) or 4 (bottleneck).

    The conv path's last norm starts at zero (``BatchZero``/``InstanceZero``); the identity path is a
    pool when ``stride != 1`` and a 1x1 ``ConvLayer`` when the widths differ. Extra keyword arguments
    (``bias_std``, ``bn_1st``...) go to every ``ConvLayer``.
    """

    def __init__(self, expansion: int, ni: int, nf: int, stride: int = 1, groups: int = 1,
                 reduction: int | None = None, nh1: int | None = None, nh2: int | None = None, dw: bool = False,
                 g2: int = 1, sa: bool = False, sym: bool = False, norm_type: str | None = NormType.Batch,
                 act_cls: Callable[[], nn.Module] = nn.ReLU, ndim: int = 2, ks: int = 3,
                 pool: Callable[..., nn.Module] = AvgPool, pool_first: bool = True, **kwargs: Any) -> None:
        super().__init__()
        norm2 = {NormType.Batch: NormType.BatchZero, NormType.Instance: NormType.InstanceZero}.get(norm_type, norm_type)
        nh2 = nf if nh2 is None else nh2
        nh1 = nh2 if nh1 is None else nh1
        nf, ni = nf * expansion, ni * expansion
        k0 = dict(norm_type=norm_type, act_cls=act_cls, ndim=ndim, **kwargs)
        k1 = dict(norm_type=norm2, act_cls=None, ndim=ndim, **kwargs)
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
            idpath.append(ConvLayer(ni, nf, 1, act_cls=None, ndim=ndim, **kwargs))
        if stride != 1:
            idpath.insert(0 if pool_first else 1, pool(stride, ndim=ndim, ceil_mode=True))
        self.idpath = nn.Sequential(*idpath)
        self.act = nn.ReLU(inplace=True) if act_cls is nn.ReLU else act_cls()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual sum, then the activation."""
        return self.act(self.convpath(x) + self.idpath(x))


def SEBlock(expansion: int, ni: int, nf: int, groups: int = 1, reduction: int = 16, stride: int = 1,
            **kwargs: Any) -> ResBlock:
    """fastai's SEBlock: a ``ResBlock`` with squeeze-excitation and hidden widths ``nf * 2`` / ``nf * expansion``."""
    return ResBlock(expansion, ni, nf, stride=stride, groups=groups, reduction=reduction, nh1=nf * 2,
                    nh2=nf * expansion, **kwargs)


def SEResNeXtBlock(expansion: int, ni: int, nf: int, groups: int = 32, reduction: int = 16, stride: int = 1,
                   base_width: int = 4, **kwargs: Any) -> ResBlock:
    """fastai's SEResNeXtBlock: a grouped ``ResBlock`` of width ``floor(nf * base_width / 64) * groups``."""
    w = math.floor(nf * (base_width / 64)) * groups
    return ResBlock(expansion, ni, nf, stride=stride, groups=groups, reduction=reduction, nh2=w, **kwargs)
