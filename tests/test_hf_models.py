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
