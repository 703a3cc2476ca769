"""Images per second of learnkit's batch augmentation against torchvision.transforms.v2 applied per item.

Work on both sides: fastai's default augmentation of float images in [0, 1] (flip p=0.5; perspective
warp 0.2, rotation up to 10 degrees, zoom up to 1.1, each p=0.75; brightness and contrast 0.2,
p=0.75). learnkit runs ``aug_transforms()`` on whole batches on ``--device`` (one resampling per
batch); torchvision runs the equivalent v2 pipeline image by image on the CPU (what a DataLoader
worker would do; the rate is per process). Runs alternate, the median rate of each is reported.

    python benchmarks/augment.py --device cuda --bs 64 --size 224
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torchvision.transforms.v2 as T

from learnkit.data.transforms import apply_transforms
from learnkit.vision.batch_augment import aug_transforms


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_learnkit(x: torch.Tensor, n_batches: int) -> float:
    """Images per second of ``aug_transforms()`` on batches already on the device."""
    tfms = aug_transforms()
    apply_transforms(tfms, (x,), ("image",), 0)  # warm-up
    _sync(x.device)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        out = apply_transforms(tfms, (x,), ("image",), 0)
    _sync(x.device)
    assert out[0].shape == x.shape
    return n_batches * x.shape[0] / (time.perf_counter() - t0)


def time_torchvision(x: torch.Tensor, n_batches: int) -> float:
    """Images per second of the per-item torchvision v2 equivalent on the CPU."""
    tfm = T.Compose([
        T.RandomHorizontalFlip(0.5),
        T.RandomPerspective(distortion_scale=0.2, p=0.75),
        T.RandomApply([T.RandomAffine(degrees=10, scale=(1.0, 1.1))], p=0.75),
        T.RandomApply([T.ColorJitter(brightness=0.2, contrast=0.2)], p=0.75),
    ])
    xc = x.cpu()
    tfm(xc[0])  # warm-up
    t0 = time.perf_counter()
    for _ in range(n_batches):
        out = torch.stack([tfm(img) for img in xc])
    assert out.shape == xc.shape
    return n_batches * x.shape[0] / (time.perf_counter() - t0)


def main() -> None:
    """Measure both, alternately, and print (and save) the medians."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "augment.json"))
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    torch.manual_seed(0)
    x = torch.rand(a.bs, 3, a.size, a.size, device=device)
    lk, tv = [], []
    for _ in range(a.rounds):
        lk.append(time_learnkit(x, a.batches))
        tv.append(time_torchvision(x, a.batches))
    res = {"device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
           "cpu_threads": torch.get_num_threads(), "bs": a.bs, "size": a.size, "batches": a.batches,
           "rounds": a.rounds, "learnkit_batch_img_per_s": round(statistics.median(lk), 1),
           "torchvision_v2_per_item_cpu_img_per_s": round(statistics.median(tv), 1),
           "torch": torch.__version__}
    print(json.dumps(res, indent=2))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
