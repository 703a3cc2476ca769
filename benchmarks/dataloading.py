"""Images per second of learnkit's training DataLoader against torchvision's ImageFolder, same run, same work.

Work per image on both sides: JPEG decode, RandomResizedCrop(size, min_scale), collate into a
uint8 batch, transfer to the device, conversion to float in [0, 1] there. Both use the same
number of worker processes and batch size; the two are measured alternately, several rounds,
and the median rate of each is reported.

    python benchmarks/dataloading.py --path ../shared/data/imagenette2-128 --workers 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torchvision.transforms.v2 as T
from torchvision.datasets import ImageFolder

from learnkit.data.block import DataBlock
from learnkit.data.blocks import CategoryBlock
from learnkit.data.getters import get_image_files, parent_label
from learnkit.data.splitters import GrandparentSplitter
from learnkit.utils import default_device
from learnkit.vision.augment import RandomResizedCrop
from learnkit.vision.core import ImageBlock


def rate(loader, n_batches: int, device: torch.device, to_float: bool) -> float:
    """Images per second over ``n_batches`` batches, after one warm-up batch (which starts the workers)."""
    it = iter(loader)
    next(it)
    n, t0 = 0, time.perf_counter()
    for _ in range(n_batches):
        x, y = next(it)
        if to_float:
            x = x.to(device, non_blocking=True).float().div_(255)
            y = y.to(device, non_blocking=True)
        n += x.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def main() -> None:
    """Run the comparison and write a JSON result."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--path", default=str(Path(__file__).resolve().parents[2] / "shared/data/imagenette2-128"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--min-scale", type=float, default=0.35)
    p.add_argument("--batches", type=int, default=40, help="timed batches per measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "dataloading.json"))
    a = p.parse_args()
    device = default_device()
    path = Path(a.path)

    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter(train_name="train", valid_name="val"),
                       item_tfms=RandomResizedCrop(a.size, min_scale=a.min_scale))
    dls = dblock.dataloaders(path, bs=a.bs, num_workers=a.workers, device=device)
    tv_ds = ImageFolder(str(path / "train"), transform=T.Compose([
        T.RandomResizedCrop(a.size, scale=(a.min_scale, 1.0), antialias=True), T.PILToTensor()]))
    tv_dl = torch.utils.data.DataLoader(tv_ds, batch_size=a.bs, shuffle=True, num_workers=a.workers, drop_last=True,
                                        pin_memory=device.type == "cuda", persistent_workers=True)
    ours, ref = [], []
    for r in range(a.rounds):
        ours.append(rate(dls.train, a.batches, device, to_float=False))
        ref.append(rate(tv_dl, a.batches, device, to_float=True))
        print(f"round {r + 1}: learnkit {ours[-1]:.0f} img/s, torchvision ImageFolder {ref[-1]:.0f} img/s", flush=True)
    res = {"learnkit_img_per_s": statistics.median(ours), "torchvision_img_per_s": statistics.median(ref),
           "ratio": statistics.median(ours) / statistics.median(ref), "workers": a.workers, "bs": a.bs,
           "size": a.size, "device": str(device), "torch": torch.__version__, "rounds": a.rounds,
           "batches_per_round": a.batches, "path": str(path)}
    print(json.dumps(res, indent=2))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
