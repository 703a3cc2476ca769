"""fastai's ResNeXt / squeeze-excitation XResNets: parameter counts from fastai's definitions, layer names, use."""
from __future__ import annotations

import math

import pytest
import torch

from learnkit.vision import xresnet as xr


def _conv(ni: int, nf: int, ks: int, groups: int = 1, bias: bool = False) -> int:
    return nf * (ni // groups) * ks * ks + (nf if bias else 0)


def _conv_bn(ni: int, nf: int, ks: int, groups: int = 1) -> int:
    return _conv(ni, nf, ks, groups) + 2 * nf


def _block(kind: str, e: int, ni: int, nf: int, groups: int, reduction: int) -> int:
    """Parameters of fastai's ResBlock built by ``SEBlock`` / ``SEResNeXtBlock`` (fastai's widths)."""
    if kind == "plain":  # ResBlock's own widths (xresnet)
        nh1 = nh2 = nf
    elif kind == "se":
        nh1, nh2 = nf * 2, nf * e
    else:
        nh2 = math.floor(nf * (4 / 64)) * groups
        nh1 = nh2
    nf, ni = nf * e, ni * e
    if e == 1:
        n = _conv_bn(ni, nh2, 3, groups) + _conv_bn(nh2, nf, 3)
    else:
        n = _conv_bn(ni, nh1, 1) + _conv_bn(nh1, nh2, 3, groups) + _conv_bn(nh2, nf, 1)
    if reduction:
        h = math.ceil(nf // reduction / 8) * 8
        n += _conv(nf, h, 1, bias=True) + _conv(h, nf, 1, bias=True)
    return n + (_conv_bn(ni, nf, 1) if ni != nf else 0)


def fastai_count(kind: str, e: int, layers: list[int], groups: int, reduction: int, n_out: int = 1000) -> int:
    """fastai's XResNet parameter count, worked out from its source: 3-conv stem, stages, linear head."""
    n = _conv_bn(3, 32, 3) + _conv_bn(32, 32, 3) + _conv_bn(32, 64, 3)
    szs = [64 // e, 64, 128, 256, 512]
    for i, blocks in enumerate(layers):
        for j in range(blocks):
            n += _block(kind, e, szs[i] if j == 0 else szs[i + 1], szs[i + 1], groups, reduction)
    return n + 512 * e * n_out + n_out


G0, G1, G2, G3 = [2, 2, 2, 2], [3, 4, 6, 3], [3, 4, 23, 3], [3, 8, 36, 3]
CASES = {  # fastai.vision.models.xresnet: block kind, expansion, layers, groups, reduction
    "xresnext18": ("next", 1, G0, 32, 0), "xresnext34": ("next", 1, G1, 32, 0), "xresnext50": ("next", 4, G1, 32, 0),
    "xse_resnet18": ("se", 1, G0, 1, 16), "xse_resnet34": ("se", 1, G1, 1, 16), "xse_resnet50": ("se", 4, G1, 1, 16),
    "xse_resnet101": ("se", 4, G2, 1, 16), "xse_resnet152": ("se", 4, G3, 1, 16),
    "xse_resnext18": ("next", 1, G0, 32, 16), "xse_resnext34": ("next", 1, G1, 32, 16),
    "xse_resnext50": ("next", 4, G1, 32, 16),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_parameter_counts_equal_fastais(name: str) -> None:
    with torch.device("meta"):  # counts only: no memory, no init cost
        model = getattr(xr, name)()
    assert sum(p.numel() for p in model.parameters()) == fastai_count(*CASES[name])


def test_reference_count_matches_the_measured_xresnet50() -> None:
    # the xresnet50 figure measured with fastai 2.8.12 checks the counter's stem, stage and head bookkeeping
    assert fastai_count("plain", 4, G1, 1, 0) == 25_576_264


def test_layer_names_and_forward() -> None:
    with torch.device("meta"):
        names = set(xr.xse_resnext18(n_out=10).state_dict())
        plain = set(xr.xresnext18().state_dict())
    # fastai's layout: stem 0-2, max pool 3, stages 4-7, then pool, Flatten, Dropout, Linear (11); the SE module
    # is a SequentialEx (``layers``) after the two convs of a basic block
    assert {"4.0.convpath.0.0.weight", "4.0.convpath.2.layers.1.0.weight", "4.0.convpath.2.layers.2.0.bias",
            "5.0.idpath.1.0.weight", "11.weight"} <= names
    assert "4.0.convpath.2.layers.1.0.weight" not in plain  # ResNeXt without squeeze-excitation
    torch.manual_seed(0)
    small = xr.xse_resnext18(n_out=10, widen=0.5)  # fastai's widen: the same layout, half the width
    assert small[4][0].convpath[0][0].groups == 32
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_vision_learner_splits_and_specs_the_new_archs(tmp_path) -> None:
    import numpy as np
    from PIL import Image

    from learnkit.vision.all import ImageDataLoaders, vision_learner, xse_resnet18
    from learnkit.vision.backbones import ArchInfo
    for lbl in ("a", "b"):
        (tmp_path / lbl).mkdir()
        for i in range(4):
            Image.fromarray(np.full((16, 16, 3), 60 if lbl == "a" else 200, np.uint8)).save(tmp_path / lbl / f"{i}.png")
    dls = ImageDataLoaders.from_folder(tmp_path, valid_pct=0.5, seed=0, bs=2, num_workers=0)
    learn = vision_learner(dls, xse_resnet18, pretrained=False)
    assert len(learn.splitter(learn.model)) == 3  # xresnet_split: stem, stages, head
    spec = learn.model_spec  # what export stores: load_learner rebuilds the arch from it
    assert spec["arch"] == "learnkit.vision.xresnet:xse_resnet18"
    assert ArchInfo.from_spec(spec).builder is xse_resnet18
