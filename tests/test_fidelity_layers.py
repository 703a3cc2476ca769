"""fastai's small layers (nbs/01_layers): Identity, Lambda, Flatten, View, ResizeBatch, SequentialEx, MergeLayer,
in_channels, Embedding; ported from the notebook's test cells."""
from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

import learnkit.vision.all as vall
from learnkit.basics import (Embedding, Flatten, Identity, Lambda, LinBnDrop, MergeLayer, ResizeBatch, SequentialEx,
                             View, in_channels)
from learnkit.vision.layers import BatchNorm, ConvLayer, InstanceNorm


def _double(x: torch.Tensor) -> torch.Tensor:
    return x * 2


def test_identity_and_lambda() -> None:
    x = torch.randn(4, 3)
    assert Identity()(x) is x
    tst = Lambda(_double)
    assert torch.equal(tst(x), x * 2)
    back = pickle.loads(pickle.dumps(tst))  # a module-level function keeps the layer picklable
    assert torch.equal(back(x), x * 2)
    assert "_double" in repr(tst)


def test_flatten_view_resizebatch() -> None:
    x = torch.randn(10, 5, 4)
    assert Flatten()(x).shape == (10, 20)
    assert Flatten(full=True)(x).shape == (200,)
    assert View(10, 20)(x).shape == (10, 20)
    assert torch.equal(View(-1)(x), x.view(-1))
    assert ResizeBatch(20)(x).shape == (10, 20)
    assert ResizeBatch(4, 5)(x).shape == (10, 4, 5)
    assert torch.equal(ResizeBatch(-1)(x), x.view(10, -1))


def test_sequentialex_and_mergelayer() -> None:
    torch.manual_seed(0)
    res_block = SequentialEx(ConvLayer(16, 16), ConvLayer(16, 16))
    res_block.append(MergeLayer())
    x = torch.randn(32, 16, 8, 8)
    y = res_block(x)
    assert y.shape == (32, 16, 8, 8)
    assert torch.allclose(y, x + res_block[1](res_block[0](x)))
    dense = SequentialEx(ConvLayer(16, 16), MergeLayer(dense=True))
    y = dense(x)
    assert y.shape == (32, 32, 8, 8)
    assert torch.equal(y[:, 16:], x)
    assert len(dense) == 2
    with pytest.raises(ValueError, match="SequentialEx"):
        MergeLayer()(x)


def test_in_channels() -> None:
    assert in_channels(nn.Sequential(nn.Conv2d(5, 4, 3), nn.Conv2d(4, 3, 3))) == 5
    assert in_channels(nn.Sequential(nn.AvgPool2d(4), nn.Conv2d(4, 3, 3))) == 4
    assert in_channels(nn.Sequential(BatchNorm(4), nn.Conv2d(4, 3, 3))) == 4
    assert in_channels(nn.Sequential(InstanceNorm(4), nn.Conv2d(4, 3, 3))) == 4
    assert in_channels(nn.Sequential(InstanceNorm(4, affine=False), nn.Conv2d(4, 3, 3))) == 4
    with pytest.raises(ValueError, match="No weight layer"):
        in_channels(nn.Sequential(nn.AvgPool2d(4)))


def test_embedding_init() -> None:
    torch.manual_seed(0)
    tst = Embedding(10, 30)
    assert isinstance(tst, nn.Embedding) and tst.weight.shape == (10, 30)
    assert 0.005 < tst.weight.std() < 0.02
    assert tst.weight.abs().max() <= 0.02  # truncated at two standard deviations
    wide = Embedding(100, 30, std=0.5)
    assert 0.3 < wide.weight.std() < 0.6 and wide.weight.abs().max() <= 1.0


def test_exported_from_vision_all() -> None:
    assert vall.LinBnDrop is LinBnDrop and vall.Embedding is Embedding
    assert {"LinBnDrop", "Embedding", "Flatten", "MergeLayer", "xse_resnext18", "xresnext50"} <= set(vall.__all__)
