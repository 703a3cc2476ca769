"""``DynamicUnet``: a U-Net decoder grown on any encoder, with skip connections found from its feature sizes.

As fastai's: a dummy forward pass at ``img_size`` finds where the encoder's spatial size changes;
the output of the last stage before each change is a skip connection. The decoder then climbs back
up with one ``UnetBlock`` per skip (pixel-shuffle upsampling with ICNR init, the skip's
batch-normed features concatenated, two convs), a last pixel shuffle when the first skip is
already downsampled, a nearest resize to the input's size (so odd sizes such as 100x130 work), the
input itself concatenated (``last_cross``) through a residual block, and a 1x1 conv to ``n_out``.

Unlike fastai the model holds no hooks, ever: the encoder's stages are the children of an
``nn.Sequential`` body (a cut torchvision ResNet, a callable's body), run one by one exactly as
``Sequential.forward`` would, or a timm CNN's feature stages (``forward_intermediates``; its head
convs after the last stage are pruned, as timm's ``features_only`` does). The dummy pass and
``forward`` use the same code, so the model pickles, exports and compiles as plain modules, and
``forward`` returns a plain ``(N, n_out, H, W)`` tensor.

Departures: ``norm_type`` takes ``None`` (fastai's default for the U-Net: no norm in decoder convs),
``'batch'`` or ``'instance'``; weight and spectral norm are left out (torch implements them with
hooks or parametrizations, which don't pickle). ``SelfAttention`` uses plain 1x1 convs for the same reason.
``ConvLayer``, ``ResBlock``, ``NormType`` and ``BatchNorm`` come from ``learnkit.vision.layers`` (re-exported here).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import SigmoidRange
from .backbones import TimmBody
from .layers import BatchNorm, ConvLayer, NormType, ResBlock, _check_norm

__all__ = [
    "DynamicUnet", "UnetBlock", "PixelShuffle_ICNR", "icnr_init", "SelfAttention", "ResizeToOrig", "ConvLayer",
    "ResBlock", "NormType", "unet_encoder_sizes",
]


def _init_all(m: nn.Module, func: Callable | None) -> None:
    """``func`` on every non-norm weight of ``m`` and zero biases (fastai's ``apply_init``)."""
    for x in m.modules():
        if isinstance(x, (nn.BatchNorm2d, nn.InstanceNorm2d)):
            continue
        w = getattr(x, "weight", None)
        if isinstance(w, nn.Parameter) and w.ndim >= 2:
            with torch.no_grad():
                if func is not None:
                    func(w)
                b = getattr(x, "bias", None)
                if isinstance(b, nn.Parameter):
                    b.zero_()


def icnr_init(x: torch.Tensor, scale: int = 2, init: Callable = nn.init.kaiming_normal_) -> torch.Tensor:
    """ICNR weights for a conv ``x`` (out, in, h, w) followed by ``PixelShuffle(scale)``: no checkerboard at start.

    Each group of ``scale**2`` output channels that the shuffle spreads over one output pixel block
    shares one kernel, so the upsampled map starts as a nearest-neighbour upsampling of a conv.
    """
    n_out, n_in, h, w = x.shape
    if n_out % (scale ** 2):
        raise ValueError(f"icnr_init: {n_out} output channels is not a multiple of scale**2 = {scale ** 2}.")
    k = init(x.new_zeros([n_out // scale ** 2, n_in, h, w]))
    return k.repeat_interleave(scale ** 2, dim=0)


class PixelShuffle_ICNR(nn.Sequential):
    """Upsample by ``scale`` from ``ni`` to ``nf`` channels: 1x1 ``ConvLayer`` (ICNR init), ``PixelShuffle``, optional blur."""

    def __init__(self, ni: int, nf: int | None = None, scale: int = 2, blur: bool = False,
                 norm_type: str | None = NormType.Weight, act_cls: Callable[[], nn.Module] | None = nn.ReLU) -> None:
        nf = ni if nf is None else nf
        conv = ConvLayer(ni, nf * scale ** 2, ks=1, norm_type=norm_type, act_cls=act_cls, bias_std=0)
        c = conv[0]
        with torch.no_grad():
            if norm_type == NormType.Weight:  # the direction gets ICNR, the magnitude its norm: weight = ICNR
                c.weight_v.copy_(icnr_init(c.weight_v, scale))
                c.weight_g.copy_((c.weight_v ** 2).sum(dim=[1, 2, 3]).sqrt()[:, None, None, None])
            elif norm_type == NormType.Spectral:
                c.weight_orig.copy_(icnr_init(c.weight_orig, scale))
            else:
                c.weight.copy_(icnr_init(c.weight, scale))
        layers: list[nn.Module] = [conv, nn.PixelShuffle(scale)]
        if blur:  # fastai's blur: shift by half a pixel and average, removing the remaining checkerboard
            layers += [nn.ReplicationPad2d((1, 0, 1, 0)), nn.AvgPool2d(2, stride=1)]
        super().__init__(*layers)


class SelfAttention(nn.Module):
    """Self-attention over the pixels of a feature map (SAGAN), added to the input with a learned ``gamma`` (0 at start).

    ``query``, ``key`` and ``value`` are fastai's 1x1 spectral-norm ``ConvLayer``s (``ndim=1``, no bias, no activation).
    """

    def __init__(self, n_channels: int) -> None:
        super().__init__()
        self.query, self.key, self.value = [
            ConvLayer(n_channels, c, ks=1, ndim=1, norm_type=NormType.Spectral, act_cls=None, bias=False)
            for c in (n_channels // 8, n_channels // 8, n_channels)]
        self.gamma = nn.Parameter(torch.tensor([0.]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + gamma * attention(x)`` (same shape as ``x``)."""
        size = x.shape
        flat = x.reshape(*size[:2], -1)
        f, g, h = self.query(flat), self.key(flat), self.value(flat)
        beta = F.softmax(torch.bmm(f.transpose(1, 2), g), dim=1)
        return (self.gamma * torch.bmm(h, beta) + flat).view(size).contiguous()


class ResizeToOrig(nn.Module):
    """Resize a map to ``size`` (H, W) when it differs (nearest by default): what makes any input size work."""

    def __init__(self, mode: str = "nearest") -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """``x`` resized to ``size``, or ``x`` itself when it already has it."""
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        return F.interpolate(x, size=tuple(size), mode=self.mode)


class UnetBlock(nn.Module):
    """One decoder step: upsample ``up_in_c`` channels (pixel shuffle), concatenate the skip, two convs."""

    def __init__(self, up_in_c: int, x_in_c: int, final_div: bool = True, blur: bool = False,
                 self_attention: bool = False, init: Callable | None = nn.init.kaiming_normal_,
                 norm_type: str | None = None) -> None:
        super().__init__()
        self.shuf = PixelShuffle_ICNR(up_in_c, up_in_c // 2, blur=blur, norm_type=norm_type)
        self.bn = BatchNorm(x_in_c)
        ni = up_in_c // 2 + x_in_c
        nf = ni if final_div else ni // 2
        self.conv1 = ConvLayer(ni, nf, norm_type=norm_type)
        self.conv2 = ConvLayer(nf, nf, norm_type=norm_type, xtra=SelfAttention(nf) if self_attention else None)
        self.relu = nn.ReLU()
        _init_all(nn.Sequential(self.conv1, self.conv2), init)

    def forward(self, up_in: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Upsample ``up_in`` to the skip's size and merge them."""
        up_out = self.shuf(up_in)
        if up_out.shape[-2:] != skip.shape[-2:]:
            up_out = F.interpolate(up_out, skip.shape[-2:], mode="nearest")
        cat_x = self.relu(torch.cat([up_out, self.bn(skip)], dim=1))
        return self.conv2(self.conv1(cat_x))


# ---------------------------------------------------------------- the encoder's stages
def _in_channels(m: nn.Module) -> int:
    for x in m.modules():
        if isinstance(x, nn.Conv2d):
            return x.in_channels
    raise ValueError(f"DynamicUnet: the encoder {type(m).__name__} has no nn.Conv2d, so its input channels are unknown.")


def _check_encoder(encoder: nn.Module) -> None:
    if isinstance(encoder, nn.Sequential):
        return
    if isinstance(encoder, TimmBody):
        if not encoder.needs_pool or not callable(getattr(encoder.model, "forward_intermediates", None)):
            raise TypeError(f"DynamicUnet needs a convolutional timm model with forward_intermediates (a CNN such as "
                            f"'resnet18', 'efficientnet_lite0', 'convnext_tiny'); {type(encoder.model).__name__} "
                            f"isn't one.")
        return
    raise TypeError(f"DynamicUnet needs the encoder as an nn.Sequential of its stages (create_body gives one) or a "
                    f"timm body, not a {type(encoder).__name__}: wrap your encoder's stages in nn.Sequential, or "
                    f"pass cut= so create_body returns one.")


def _stage_outputs(encoder: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Every stage's output in execution order; the last one is the deepest (the decoder's input).

    An ``nn.Sequential`` encoder is run child by child (exactly its own forward); a timm body gives its
    feature stages (``forward_intermediates``, timm's ``features_only`` stages).
    """
    if isinstance(encoder, TimmBody):
        return list(encoder.model.forward_intermediates(x, intermediates_only=True))
    outs = []
    for m in encoder:
        x = m(x)
        outs.append(x)
    return outs


def unet_encoder_sizes(encoder: nn.Module, img_size: Sequence[int], n_in: int | None = None) -> list[torch.Size]:
    """Output shape of each encoder stage on a dummy ``(1, n_in, *img_size)`` input (eval mode, no gradients)."""
    _check_encoder(encoder)
    first = next(encoder.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    x = torch.zeros(1, n_in or _in_channels(encoder), *img_size, device=device)
    was_training = encoder.training
    try:
        encoder.eval()
        with torch.no_grad():
            outs = _stage_outputs(encoder, x)
    finally:
        encoder.train(was_training)
    bad = next((i for i, o in enumerate(outs) if not isinstance(o, torch.Tensor) or o.ndim != 4), None)
    if bad is not None:
        o = outs[bad]
        raise ValueError(f"DynamicUnet: encoder stage {bad} returns {tuple(o.shape) if isinstance(o, torch.Tensor) else type(o).__name__}, "
                         f"not an (N, C, H, W) feature map; cut the encoder before its pooling (cut=...).")
    return [o.shape for o in outs]


def _size_change_idxs(sizes: Sequence[torch.Size]) -> list[int]:
    """Stages whose spatial size differs from the next one's: the last stage at each resolution (fastai's rule)."""
    return [i for i in range(len(sizes) - 1) if tuple(sizes[i][-2:]) != tuple(sizes[i + 1][-2:])]


# ---------------------------------------------------------------- the model
class DynamicUnet(nn.Module):
    """A U-Net on ``encoder`` (an ``nn.Sequential`` body or a timm body) with ``n_out`` output channels.

    ``img_size`` (H, W) is only used for the dummy pass that finds the skips; any input size works
    afterwards. Parameters: ``blur`` (blur after pixel shuffles; ``blur_final`` for the last one too),
    ``self_attention`` (in the third block from the top), ``y_range`` (sigmoid into a range),
    ``last_cross`` (concatenate the input before the last residual block), ``bottle`` (halve that
    block's width), ``norm_type`` (decoder convs: None, 'batch' or 'instance').
    """

    def __init__(self, encoder: nn.Module, n_out: int, img_size: Sequence[int], blur: bool = False,
                 blur_final: bool = True, self_attention: bool = False, y_range: Sequence[float] | None = None,
                 last_cross: bool = True, bottle: bool = False, init: Callable | None = nn.init.kaiming_normal_,
                 norm_type: str | None = None) -> None:
        super().__init__()
        _check_norm(norm_type)
        img_size = (int(img_size), int(img_size)) if isinstance(img_size, int) else tuple(int(s) for s in img_size)
        n_in = _in_channels(encoder)
        _check_encoder(encoder)
        if isinstance(encoder, TimmBody):  # the decoder starts from the last feature stage: drop timm's head convs
            encoder.model.prune_intermediate_layers(len(encoder.model.feature_info), prune_head=True)
        self.encoder = encoder
        sizes = unet_encoder_sizes(encoder, img_size, n_in)
        idxs = _size_change_idxs(sizes)
        if not idxs:
            raise ValueError(f"DynamicUnet: the encoder's spatial size never changes at {img_size} (stage sizes "
                             f"{[tuple(s[-2:]) for s in sizes]}), so there are no skip connections to use.")
        self.skip_idxs = idxs  # stages (shallow to deep) whose outputs feed the decoder
        ni = int(sizes[-1][1])
        self.bn = BatchNorm(ni)
        self.relu = nn.ReLU()
        self.middle_conv = nn.Sequential(ConvLayer(ni, ni * 2, norm_type=norm_type),
                                         ConvLayer(ni * 2, ni, norm_type=norm_type))
        blocks, up_c = [], ni
        deep_first = list(reversed(idxs))
        for i, idx in enumerate(deep_first):
            not_final = i != len(deep_first) - 1
            block = UnetBlock(up_c, int(sizes[idx][1]), final_div=not_final, blur=blur and (not_final or blur_final),
                              self_attention=self_attention and i == len(deep_first) - 3, init=init,
                              norm_type=norm_type)
            blocks.append(block)
            ni_b = up_c // 2 + int(sizes[idx][1])
            up_c = ni_b if not_final else ni_b // 2
        self.blocks = nn.ModuleList(blocks)
        # the top skip is already downsampled (a stride-2 stem): one more x2 pixel shuffle, as fastai
        self.final_shuf = (PixelShuffle_ICNR(up_c, norm_type=norm_type)
                           if tuple(sizes[0][-2:]) != img_size else nn.Identity())
        self.resize = ResizeToOrig()
        self.last_cross = last_cross
        nc = up_c + n_in if last_cross else up_c
        self.res_block = (ResBlock(1, nc, nc // 2 if bottle else nc, norm_type=norm_type) if last_cross
                          else nn.Identity())
        nc = (nc // 2 if bottle else nc) if last_cross else nc
        self.final_conv = ConvLayer(nc, n_out, ks=1, act_cls=None, norm_type=norm_type)
        self.y_range = None if y_range is None else SigmoidRange(*y_range)
        _init_all(nn.Sequential(self.middle_conv, self.res_block), init)

    def _encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The skip features (shallow to deep) and the encoder's deepest output."""
        outs = _stage_outputs(self.encoder, x)
        return [outs[i] for i in self.skip_idxs], outs[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, n_out, H, W) logits (squashed into ``y_range`` if given)."""
        skips, out = self._encode(x)
        out = self.middle_conv(self.relu(self.bn(out)))
        for block, s in zip(self.blocks, reversed(skips)):
            out = block(out, s)
        out = self.resize(self.final_shuf(out), x.shape[-2:])
        if self.last_cross:
            out = self.res_block(torch.cat([out, x], dim=1))
        out = self.final_conv(out)
        return out if self.y_range is None else self.y_range(out)
