"""xresnet: fastai's layer layout (parameter counts measured with fastai 2.8.12), options, init, vision_learner + export."""
import pytest
import torch
from torch import nn

from learnkit.data.block import DataBlock
from learnkit.data.blocks import CategoryBlock
from learnkit.data.getters import get_image_files, parent_label
from learnkit.data.splitters import GrandparentSplitter
from learnkit.export import load_learner
from learnkit.metrics import accuracy
from learnkit.samples import sample_path
from learnkit.vision.augment import Resize
from learnkit.vision.core import ImageBlock
from learnkit.vision.learner import vision_learner
from learnkit.vision.xresnet import (
    ResBlock,
    SimpleSelfAttention,
    xresnet18,
    xresnet34,
    xresnet50,
    xresnet50_deep,
    xresnet101,
    xresnet152,
    xresnet_split,
)

# Counted with fastai 2.8.12's fastai.vision.models.xresnet (same calls), in /work/fastai-venv.
FASTAI_COUNTS = [(xresnet18, {}, 11_708_744), (xresnet34, {}, 21_816_904), (xresnet50, {}, 25_576_264),
                 (xresnet101, {}, 44_568_392), (xresnet152, {}, 60_212_040), (xresnet50_deep, {}, 29_147_976),
                 (xresnet18, dict(n_out=10, sa=True, act_cls=nn.Mish), 11_204_971),
                 (xresnet50, dict(n_out=10, sa=True), 23_613_291), (xresnet18, dict(reduction=16), 11_798_856),
                 (xresnet34, dict(ndim=1, c_in=2, n_out=5), 7_229_893)]


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("arch,kwargs,expected", FASTAI_COUNTS, ids=lambda v: getattr(v, "__name__", None))
def test_parameter_counts_equal_fastai(arch, kwargs, expected):
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = arch(**kwargs)
    assert n_params(model) == expected


@pytest.mark.parametrize("arch,n_out", [(xresnet18, 10), (xresnet34, 7), (xresnet50, 1000)])
def test_output_shapes(arch, n_out):
    model = arch(n_out=n_out).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, n_out)
        assert model(torch.randn(1, 3, 37, 45)).shape == (1, n_out)  # odd sizes pool with ceil_mode


def test_state_dict_names_and_layout_are_fastais():
    m = xresnet18()
    keys = list(m.state_dict())
    assert keys[:3] == ["0.0.weight", "0.1.weight", "0.1.bias"]
    assert "4.0.convpath.0.0.weight" in keys and "5.0.idpath.1.0.weight" in keys  # pool first, then 1x1 conv
    assert isinstance(m[5][0].idpath[0], nn.AvgPool2d) and isinstance(m[3], nn.MaxPool2d)
    assert isinstance(m[-4], nn.AdaptiveAvgPool2d) and isinstance(m[-1], nn.Linear) and m[-1].in_features == 512
    assert xresnet50()[-1].in_features == 2048


def test_init_zeroes_the_last_bn_of_each_block_and_every_bias():
    m = xresnet34()
    blocks = [b for b in m.modules() if isinstance(b, ResBlock)]
    assert len(blocks) == 3 + 4 + 6 + 3
    for b in blocks:
        assert torch.all(b.convpath[-1][1].weight == 0)  # last ConvLayer's BatchNorm starts at zero
        assert torch.all(b.convpath[0][1].weight == 1)
    bns = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    assert all(torch.all(bn.bias == 0) for bn in bns)
    w = m[0][0].weight  # kaiming normal, fan_in = 3*3*3: std sqrt(2/27)
    assert abs(w.std().item() - (2 / 27) ** 0.5) < 0.05


def test_act_cls_and_self_attention_options():
    m = xresnet18(n_out=4, act_cls=nn.Mish, sa=True)
    assert any(isinstance(x, nn.Mish) for x in m.modules()) and not any(isinstance(x, nn.ReLU) for x in m.modules())
    sas = [x for x in m.modules() if isinstance(x, SimpleSelfAttention)]
    assert len(sas) == 1 and sas[0].n_in == 64 * 1  # on the last block of the first stage (len(layers) - 4 == 0)
    with torch.no_grad():
        assert m.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    with pytest.raises(ValueError, match="odd"):
        xresnet18(ks=4)
    with pytest.raises(ValueError, match="pretrained=False"):
        xresnet18(pretrained=True)


@pytest.fixture(scope="module")
def dls():
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter(valid_name="val"), item_tfms=Resize(32))
    return dblock.dataloaders(sample_path("imagenette_tiny"), bs=32, num_workers=0)


def test_vision_learner_with_xresnet_and_export_round_trip(dls, tmp_path, one_thread):
    torch.manual_seed(0)
    learn = vision_learner(dls, xresnet18, pretrained=False, metrics=accuracy, path=tmp_path)
    body, _ = learn.model
    assert isinstance(body[-1], nn.Sequential) and isinstance(body[-1][0], ResBlock)  # cut at -4: pooling dropped
    assert len(body) == len(xresnet18()) - 4
    assert len(learn.opt.param_groups if learn.opt else learn.create_opt().param_groups) == 3  # fastai's split
    groups = xresnet_split(learn.model)
    assert sum(len(g) for g in groups) == len(list(learn.model.parameters()))
    assert learn.model_spec["arch"] == "learnkit.vision.xresnet:xresnet18"
    items = get_image_files(sample_path("imagenette_tiny") / "val")[:6]
    p0, _ = learn.get_preds(dl=dls.test_dl(items))
    loaded = load_learner(learn.export())
    p1, _ = loaded.get_preds(dl=loaded.dls.test_dl(items))
    assert p0.shape == (6, 10) and torch.allclose(p0, p1, atol=1e-6)


def test_simple_self_attention_sym_trains_its_conv_and_is_symmetric():
    torch.manual_seed(0)
    m = SimpleSelfAttention(4, sym=True)
    assert set(m.state_dict()) == {"gamma", "conv.weight_orig", "conv.weight_u", "conv.weight_v"}  # fastai's keys
    with torch.no_grad():
        m.gamma.fill_(0.5)
    x = torch.randn(2, 4, 3, 3)
    m(x).sum().backward()
    g = m.conv.weight_orig.grad
    assert g is not None and g.abs().sum() > 0  # before: None (the conv was never called)
    m.eval()
    with torch.no_grad():
        out = m(x)
        w = m.conv.weight.view(4, 4)
        ws = (w + w.t()) / 2
        xf = x.view(2, 4, -1)
        expected = 0.5 * torch.bmm(torch.bmm(xf, xf.transpose(1, 2)), ws @ xf) + xf
    assert torch.allclose(out, expected.view(2, 4, 3, 3), atol=1e-5)


def test_vision_all_exports_fastais_layer_names():
    import learnkit.vision.all as va
    names = ["ConvLayer", "ResBlock", "BatchNorm", "InstanceNorm", "SEModule", "SimpleSelfAttention", "MaxPool",
             "AvgPool", "AdaptiveAvgPool", "init_cnn", "NormType"]
    assert all(n in va.__all__ for n in names)
    ns = {n: getattr(va, n) for n in va.__all__}  # what `from learnkit.vision.all import *` binds
    # fastbook ch14's calls, unchanged
    conv = ns["ConvLayer"](3, 8, stride=2)
    assert conv[0].stride == (2, 2) and conv(torch.randn(1, 3, 8, 8)).shape == (1, 8, 4, 4)
    zero = ns["ConvLayer"](8, 8, norm_type=ns["NormType"].BatchZero, act_cls=None)
    assert torch.equal(zero[1].weight, torch.zeros(8))
    assert ns["BatchNorm"](4)(torch.randn(2, 4, 3, 3)).shape == (2, 4, 3, 3)
    assert [ns["NormType"].Batch, ns["NormType"].BatchZero, ns["NormType"].Instance,
            ns["NormType"].InstanceZero] == ["batch", "batch_zero", "instance", "instance_zero"]
    block = ns["ResBlock"](1, 8, 16, stride=2)
    assert block(torch.randn(1, 8, 8, 8)).shape == (1, 16, 4, 4)
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(4, 2))
    ns["init_cnn"](m)
    assert torch.equal(m[0].bias, torch.zeros(4)) and torch.equal(m[1].bias, torch.zeros(2))
