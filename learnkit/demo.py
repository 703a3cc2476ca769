"""The demo: fine-tune EfficientNet-Lite0 (real ImageNet weights, offline) on the shipped Imagenette sample.

Run it with ``learnkit demo`` or ``python -m learnkit.demo``. It compares the fine-tuned model with the
ImageNet head alone (restricted to Imagenette's ten classes), exports the learner, loads the export
back and predicts one image.
"""
from __future__ import annotations

import time
from typing import Any

import torch

from .callback.training import BnFreeze
from .export import load_learner
from .metrics import accuracy
from .samples import sample_path
from .utils import Path, set_seed
from .vision.augment import Flip, Resize
from .vision.backbones import create_arch_model
from .vision.data import ImageDataLoaders
from .vision.learner import vision_learner

__all__ = ["run_demo", "IMAGENETTE_TO_IMAGENET"]

# Imagenette's WordNet ids -> their ImageNet-1k class index
IMAGENETTE_TO_IMAGENET = {
    "n01440764": 0, "n02102040": 217, "n02979186": 482, "n03000684": 491, "n03028079": 497,
    "n03394916": 566, "n03417042": 569, "n03425413": 571, "n03445777": 574, "n03888257": 701,
}
NAMES = {
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player", "n03000684": "chain saw",
    "n03028079": "church", "n03394916": "French horn", "n03417042": "garbage truck", "n03425413": "gas pump",
    "n03445777": "golf ball", "n03888257": "parachute",
}


def imagenet_head_accuracy(valid_dl: Any, vocab: list[str]) -> float:
    """Accuracy of the pretrained ImageNet classifier alone, choosing among the columns of ``vocab``'s classes."""
    model, _ = create_arch_model("efficientnet_lite0", pretrained=True)
    model.eval()
    cols = torch.tensor([IMAGENETTE_TO_IMAGENET[v] for v in vocab])
    correct = total = 0
    with torch.no_grad():
        for xb, yb in valid_dl:
            pred = model(xb)[:, cols].argmax(1)
            correct += (pred == yb).sum().item()
            total += len(yb)
    return correct / total


def run_demo(epochs: int = 2, out: str = "learnkit_demo", size: int = 160, bs: int = 32) -> dict:
    """Fine-tune, report, export, reload and predict; returns the figures."""
    t0 = time.perf_counter()
    set_seed(42)
    path = sample_path("imagenette_tiny")
    print(f"learnkit demo: fine-tuning EfficientNet-Lite0 (ImageNet weights) on {path}")
    dls = ImageDataLoaders.from_folder(path, train="train", valid="val", item_tfms=Resize(size), batch_tfms=Flip(),
                                       bs=bs)
    print(f"data: {len(dls.train.dataset)} training and {len(dls.valid.dataset)} validation images, "
          f"{dls.c} classes, resized to {size} px")
    # 300 images are too few to re-estimate batch-norm statistics: keep the pretrained ones (see BnFreeze)
    learn = vision_learner(dls, "efficientnet_lite0", metrics=accuracy, path=out, train_bn=False,
                           cbs=BnFreeze(keep_after_unfreeze=True))
    base = imagenet_head_accuracy(dls.valid, dls.vocab)
    print(f"ImageNet head alone (choosing among the 10 classes): {base:.1%} of validation images right")
    learn.fine_tune(epochs, freeze_epochs=2)
    valid_loss, acc = learn.validate()
    print(f"after fine-tuning: accuracy {acc:.1%} (ImageNet head alone: {base:.1%})")

    fname = learn.export()
    print(f"exported to {fname} ({fname.stat().st_size / 1e6:.1f} MB, safetensors + JSON manifest, no pickle)")
    loaded = load_learner(fname)
    img = sorted((path / "val").glob("*/*.JPEG"))[0]
    label, idx, probs = loaded.predict(img)
    same = torch.allclose(probs, learn.predict(img)[2], atol=1e-5)
    print(f"reloaded export predicts {img.parent.name}/{img.name}: {label} ({NAMES.get(label, label)}), "
          f"p={probs[idx].item():.2f}; true class {img.parent.name}; same as before export: {same}")
    elapsed = time.perf_counter() - t0
    print(f"demo finished in {elapsed:.0f} s")
    return {"accuracy": acc, "valid_loss": valid_loss, "imagenet_head_accuracy": base, "seconds": elapsed,
            "export": str(Path(fname)), "prediction": label, "prediction_matches": same}


if __name__ == "__main__":  # pragma: no cover
    import sys
    sys.exit(0 if run_demo()["accuracy"] >= 0.85 else 1)
