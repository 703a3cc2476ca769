"""Issue 31: model introspection and layers as fastai's (15_callback.hook, 01_layers, 07_vision.core, book ch 14)."""
from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader, TensorDataset

from learnkit.callback import precision
from learnkit.vision.all import (ConvLayer, DataLoaders, Learner, Module, NormType, PixelShuffle_ICNR, SelfAttention,
                                 bb_pad, cifar_stats, clip_remove_empty, layer_info, mnist_stats, model_sizes, noop,
                                 total_params)

pytestmark = pytest.mark.usefixtures("one_thread")


def _learner(model: nn.Module) -> Learner:
    x, y = torch.randn(32, 1), torch.randn(32, 1)
    dl = TorchDataLoader(TensorDataset(x, y), batch_size=16)
    return Learner(DataLoaders(dl, dl, device="cpu"), model, nn.MSELoss())


def test_model_sizes():
    m = nn.Sequential(ConvLayer(3, 16), ConvLayer(16, 32, stride=2), ConvLayer(32, 32))
    assert model_sizes(m) == [torch.Size([1, 16, 64, 64]), torch.Size([1, 32, 32, 32]), torch.Size([1, 32, 32, 32])]
    assert model_sizes(m, size=(32, 16))[-1] == torch.Size([1, 32, 16, 8])


def test_total_params():
    tst = nn.Linear(5, 4)
    assert total_params(tst) == (24, True)
    tst.weight.requires_grad_(False)
    assert total_params(tst) == (24, False)
    assert total_params(nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 3))) == (24 + 15, True)
    assert total_params(nn.ReLU()) == (0, False)
    tst = nn.BatchNorm2d(20)
    assert total_params(tst) == (40, True)


def test_layer_info_one_input():
    def _m():
        return nn.Sequential(nn.Linear(1, 50), nn.ReLU(), nn.BatchNorm1d(50), nn.Linear(50, 1))
    sample_input = torch.randn((16, 1))
    learn = _learner(_m())
    learn.model.train()
    assert layer_info(learn, sample_input) == [
        ("Linear", 100, True, torch.Size([1, 50]), False),
        ("ReLU", "", "", torch.Size([1, 50]), True),
        ("BatchNorm1d", 100, True, torch.Size([1, 50]), True),
        ("Linear", 51, True, torch.Size([1, 1]), False),
    ]
    assert learn.model.training  # mode restored


def test_layer_info_two_inputs():
    class _2InpModel(Module):
        def __init__(self):
            super().__init__()
            self.seq = nn.Sequential(nn.Linear(2, 50), nn.ReLU(), nn.BatchNorm1d(50), nn.Linear(50, 1))

        def forward(self, *inps):
            return self.seq(torch.cat(inps, dim=-1))

    sample_inputs = (torch.randn(16, 1), torch.randn(16, 1))
    learn = _learner(_2InpModel())
    assert layer_info(learn, *sample_inputs) == [
        ("Linear", 150, True, torch.Size([1, 50]), False),
        ("ReLU", "", "", torch.Size([1, 50]), True),
        ("BatchNorm1d", 100, True, torch.Size([1, 50]), True),
        ("Linear", 51, True, torch.Size([1, 1]), False),
    ]


def test_module_and_noop():
    class Lin(Module):  # no super().__init__() needed
        def __init__(self, ni, nf):
            self.lin = nn.Linear(ni, nf)

        def forward(self, x):
            return self.lin(x)
    m = Lin(3, 2)
    assert isinstance(m, nn.Module) and m(torch.randn(4, 3)).shape == (4, 2)
    assert [n for n, _ in m.named_parameters()] == ["lin.weight", "lin.bias"]
    assert noop(3) == 3 and noop() is None and noop(1, 2, a=3) == 1


def test_stats_and_overflow():
    assert cifar_stats == ([0.491, 0.482, 0.447], [0.247, 0.243, 0.261])
    assert mnist_stats == ([0.131], [0.308])
    x = torch.randn(3, 4)
    assert not precision.test_overflow(x)
    x[1, 2] = float("inf")
    assert precision.test_overflow(x)
    x[1, 2] = float("nan")
    assert precision.test_overflow(x)
    p = nn.Parameter(torch.ones(2))
    p.grad = torch.tensor([1., float("-inf")])
    assert precision.grad_overflow([[p]])


def test_bb_pad_and_clip_remove_empty():
    img1, img2 = torch.randn(16, 16, 3), torch.randn(16, 16, 3)
    bbox1 = torch.tensor([[-2, -0.5, 0.5, 1.5], [-0.5, -0.5, 0.5, 0.5], [1, 0.5, 0.5, 0.75], [-0.5, -0.5, 0.5, 0.5],
                          [-2, -0.5, -1.5, 0.5]])
    bbox2 = torch.tensor([[-0.5, -0.5, 0.5, 0.5], [-2, -0.5, -1.5, 0.5]])
    lbl1, lbl2 = torch.tensor([1, 2, 3, 4, 5]), torch.tensor([1, 2])
    res = bb_pad([(img1, bbox1, lbl1), (img2, bbox2, lbl2)])
    assert torch.equal(res[0][0], img1)
    assert torch.equal(res[0][1], torch.tensor([[-1, -0.5, 0.5, 1.], [-0.5, -0.5, 0.5, 0.5], [-0.5, -0.5, 0.5, 0.5]]))
    assert torch.equal(res[0][2], torch.tensor([1, 2, 4]))
    assert torch.equal(res[1][1], torch.tensor([[-0.5, -0.5, 0.5, 0.5], [0, 0, 0, 0], [0, 0, 0, 0]]))
    assert torch.equal(res[1][2], torch.tensor([1, 0, 0]))
    b, l = clip_remove_empty(bbox2, lbl2)
    assert torch.equal(b, bbox2[:1]) and torch.equal(l, lbl2[:1])


def test_conv_layer_norms():
    tst = ConvLayer(16, 32, norm_type=NormType.Weight)
    assert hasattr(tst[0], "weight_g") and hasattr(tst[0], "weight_v") and tst[0].bias is not None
    tst = ConvLayer(16, 32, ndim=1, transpose=True, norm_type=NormType.Spectral)
    assert hasattr(tst[0], "weight_orig") and tst[0].weight.shape == (16, 32, 3)
    assert tst(torch.randn(2, 16, 10)).shape == (2, 32, 12)
    tst = ConvLayer(16, 32, norm_type=NormType.InstanceZero)
    assert isinstance(tst[1], nn.InstanceNorm2d) and tst[1].weight.abs().sum() == 0
    tst = ConvLayer(3, 8, norm_type=NormType.Weight).eval()
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(pickle.loads(pickle.dumps(tst))(x), tst(x))
    with pytest.raises(ValueError, match="NormType"):
        ConvLayer(3, 8, norm_type="group")


def test_self_attention():
    tst = SelfAttention(16)
    x = torch.randn(32, 16, 8, 8)
    assert torch.equal(tst(x), x)  # gamma starts at 0
    tst.gamma.data.fill_(1.)
    y = tst(x)
    assert y.shape == (32, 16, 8, 8) and not torch.allclose(y, x)
    q, k, v = tst.query[0].weight.data, tst.key[0].weight.data, tst.value[0].weight.data
    assert [q.shape, k.shape, v.shape] == [(2, 16, 1), (2, 16, 1), (16, 16, 1)]


@pytest.mark.parametrize("norm_type", ["default", None, NormType.Spectral])
def test_pixel_shuffle_icnr(norm_type):
    psfl = PixelShuffle_ICNR(16) if norm_type == "default" else PixelShuffle_ICNR(16, norm_type=norm_type)
    if norm_type == "default":
        assert hasattr(psfl[0][0], "weight_g")  # fastai's default: weight norm
    x = torch.randn(64, 16, 8, 8)
    y = psfl(x)
    assert y.shape == (64, 16, 16, 16)
    # ICNR init makes every 2x2 window (stride 2) have the same elements
    for i in range(0, 16, 2):
        for j in range(0, 16, 2):
            assert torch.allclose(y[:, :, i, j], y[:, :, i + 1, j + 1])
