"""Transformers image models (tiny ViT and ConvNeXt built from configs, saved with save_pretrained) as backbones."""
import numpy as np
import pytest
import torch
from PIL import Image

transformers = pytest.importorskip("transformers")

from learnkit.export import load_learner  # noqa: E402
from learnkit.learner import NORM_TYPES  # noqa: E402
from learnkit.metrics import accuracy  # noqa: E402
from learnkit.vision.all import ImageDataLoaders, Resize, vision_learner  # noqa: E402
from learnkit.vision.hf_models import HFImageModel, is_hf_arch  # noqa: E402


def _images(root, n=16):
    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        for lbl, ch in (("red", 0), ("blue", 2)):
            d = root / split / lbl
            d.mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
                a[..., ch] = 200 + rng.integers(0, 55)
                Image.fromarray(a).save(d / f"{i}.png")
    return ImageDataLoaders.from_folder(root, item_tfms=Resize(32), bs=8, num_workers=0)


def _tiny(tmp_path, family):
    if family == "vit":
        cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, image_size=32, patch_size=8)
        model = transformers.ViTModel(cfg)
    else:
        cfg = transformers.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, image_size=32)
        model = transformers.ConvNextModel(cfg)
    folder = tmp_path / family
    model.save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.4, 0.4, 0.4],
                                   image_std=[0.3, 0.3, 0.3]).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("family", ["vit", "convnext"])
def test_hf_backbone_fine_tunes_freezes_and_round_trips(tmp_path, family):
    torch.manual_seed(0)
    folder = _tiny(tmp_path, family)
    assert is_hf_arch(folder) and is_hf_arch("google/vit-base-patch16-224") and not is_hf_arch("hf-hub:timm/x")
    dls = _images(tmp_path / "imgs")
    learn = vision_learner(dls, folder, metrics=accuracy, path=tmp_path)
    assert isinstance(learn.model, HFImageModel)
    norm = [t for t in dls.valid.batch_tfms if type(t).__name__ == "Normalize"]
    assert norm and torch.allclose(norm[0].mean.flatten().cpu().float(), torch.tensor([0.4] * 3))
    base = learn.model.model.base_model
    norms = {id(p) for m in base.modules() if isinstance(m, NORM_TYPES) for p in m.parameters(recurse=False)}
    trainable = [n for n, p in base.named_parameters() if p.requires_grad and id(p) not in norms]
    assert not trainable  # frozen to the head (norm layers train: train_bn=True, as for CNNs)
    head = [p for p in learn.model.parameters() if all(p is not q for q in base.parameters())]
    assert head and all(p.requires_grad for p in head)
    learn.fine_tune(3, base_lr=3e-3)
    assert all(p.requires_grad for p in base.parameters())
    assert learn.validate()[1] >= 0.8  # two classes: chance is 0.5
    learn.export("export.pkl")
    loaded = load_learner(tmp_path / "export.pkl")
    img = tmp_path / "imgs" / "valid" / "red" / "0.png"
    a, b = learn.predict(img), loaded.predict(img)
    assert a[0] == b[0] and torch.allclose(a[2], b[2], atol=1e-5)


_HF_HUB_SCRIPT = r'''
import json, sys, tempfile, pathlib
sys.path.insert(0, sys.argv[1])
import timm, torch
from safetensors.torch import save_file
from test_hf_models import _images
from learnkit.vision.all import vision_learner
from learnkit.vision.backbones import PretrainedWeightsError
cache = pathlib.Path(sys.argv[2])
snap = cache / "models--someone--tiny-resnet" / "snapshots" / ("a" * 40)
snap.mkdir(parents=True)
(cache / "models--someone--tiny-resnet" / "refs").mkdir()
(cache / "models--someone--tiny-resnet" / "refs" / "main").write_text("a" * 40)
torch.manual_seed(1)
src = timm.create_model("resnet18", num_classes=1000)
save_file({k: v.contiguous() for k, v in src.state_dict().items()}, snap / "model.safetensors")
(snap / "config.json").write_text(json.dumps({"architecture": "resnet18", "num_classes": 1000, "pretrained_cfg": {
    "input_size": [3, 32, 32], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "num_classes": 1000}}))
dls = _images(pathlib.Path(tempfile.mkdtemp()) / "imgs")
learn = vision_learner(dls, "hf-hub:someone/tiny-resnet")
body = learn.model[0]
same = any(v.shape == src.conv1.weight.shape and torch.equal(v, src.conv1.weight) for v in body.state_dict().values())
print("EQUAL", same, learn.model[1][-1].out_features)
try:
    vision_learner(dls, "hf-hub:someone/missing", pretrained=False)
except PretrainedWeightsError as e:
    print("ERROR", e)
'''


def test_timm_hf_hub_names_go_to_timm_and_load_its_weights_from_the_hub_cache(tmp_path):
    import os
    import subprocess
    import sys
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", _HF_HUB_SCRIPT, os.path.dirname(__file__), str(tmp_path / "hub")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "EQUAL True 2" in out.stdout  # the Hub's weights in the body, a new 2-class head
    assert "ERROR timm could not read hf-hub:someone/missing" in out.stdout and "HF_HUB_OFFLINE=1" in out.stdout


def test_a_vit_takes_batches_of_another_size_resized_to_its_processors_size(tmp_path):
    torch.manual_seed(0)
    folder = _tiny(tmp_path, "vit")  # a 32x32 ViT: its patch embedding refuses 48x48 pixel values
    _images(tmp_path / "imgs")
    dls = ImageDataLoaders.from_folder(tmp_path / "imgs", item_tfms=Resize(48), bs=8, num_workers=0)
    learn = vision_learner(dls, folder, path=tmp_path)
    assert learn.model.size == (32, 32)
    x, _ = dls.one_batch()
    assert x.shape[-2:] == (48, 48)
    with pytest.raises(ValueError):
        learn.model.model(pixel_values=x)
    learn.fit(1, 1e-3)
    small = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    learn.model.eval()
    assert torch.allclose(learn.model(x), learn.model.model(pixel_values=small).logits)
    learn.export("export.pkl")
    back = load_learner(tmp_path / "export.pkl")
    img = tmp_path / "imgs" / "valid" / "red" / "0.png"
    assert back.model.size == (32, 32) and torch.allclose(back.predict(img)[2], learn.predict(img)[2], atol=1e-5)


def test_a_model_with_no_image_head_is_refused_with_the_fix(tmp_path):
    cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    transformers.BertModel(cfg).save_pretrained(tmp_path / "bert")
    dls = _images(tmp_path / "imgs", n=2)
    for pretrained in (True, False):
        with pytest.raises(ValueError, match="'bert' model.*image classification head.*Learner\\(dls, model\\)"):
            vision_learner(dls, tmp_path / "bert", pretrained=pretrained)


def test_a_hub_id_without_network_says_how_to_work_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read per call by this huggingface_hub: no request leaves
    dls = _images(tmp_path / "imgs", n=2)
    with pytest.raises(OSError, match="(?s)someone/not-cached.*HF_HUB_OFFLINE=1.*save_pretrained folder"):
        vision_learner(dls, "someone/not-cached")
