"""What ``imagenette.py`` (learnkit) and ``imagenette_fastai.py`` share: the recipes, the flags, the data checks,
the per-epoch timer and the JSON result, so both libraries run and report the same recipe the same way."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["RECIPES", "DEFAULT_DATA", "parse_args", "limited_files", "check_data", "EpochTimer", "time_to",
           "summarise", "fit_and_summarise"]

RECIPES: dict[str, dict[str, Any]] = {
    "anchor": dict(arch="xresnet50", size=128, bs=64, epochs=5, lr=8e-3, wd=1e-2, min_scale=0.35, precision="fp16",
                   channels_last=False, compile=False, prog_start=None, prog_finish=0.5, label_smoothing=0.1,
                   opt="adam", sched="one_cycle", act="relu", sa=False, preload=False),
    "fast": dict(arch="xresnet50", size=128, bs=128, epochs=20, lr=1e-2, wd=1e-2, min_scale=0.35, precision="fp16",
                 channels_last=True, compile=False, prog_start=0.75, prog_finish=0.5, label_smoothing=0.1,
                 opt="adam", sched="one_cycle", act="relu", sa=False, preload=True),
    "leaderboard": dict(arch="xresnet50", size=128, bs=64, epochs=20, lr=8e-3, wd=1e-2, min_scale=0.35,
                        precision="fp16", channels_last=False, compile=False, prog_start=None, prog_finish=0.5,
                        label_smoothing=0.1, opt="ranger", sched="flat_cos", act="mish", sa=True,
                        preload=False),
}
DEFAULT_DATA = "/work/shared/data/imagenette2-128"


def parse_args(argv: list[str] | None = None, description: str | None = None) -> argparse.Namespace:
    """Command-line flags; unset ones take the recipe's value (``description``: the ``--help`` text)."""
    p = argparse.ArgumentParser(description=description or __doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA, help="folder with train/ and val/ (WordNet-id class folders)")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="anchor")
    p.add_argument("--arch", help="xresnet18/34/50/101/152 (default: the recipe's)")
    p.add_argument("--size", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--bs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--wd", type=float)
    p.add_argument("--min-scale", type=float, dest="min_scale")
    p.add_argument("--label-smoothing", type=float, dest="label_smoothing", help="eps; 0 for plain cross-entropy")
    p.add_argument("--precision", choices=["fp16", "bf16", "fp32"])
    p.add_argument("--opt", choices=["adam", "ranger"], help="Adam (AdamW) or ranger (Lookahead over RAdam)")
    p.add_argument("--sched", choices=["one_cycle", "flat_cos"], help="fit_one_cycle or fit_flat_cos")
    p.add_argument("--act", choices=["relu", "mish"], help="the xresnet's activation")
    p.add_argument("--sa", action=argparse.BooleanOptionalAction, default=None, help="xresnet self-attention")
    p.add_argument("--preload", action=argparse.BooleanOptionalAction, default=None,
                   help="decode every image once into device memory (dls.preload()); the random crop then runs per "
                        "batch on the device (RandomResizedCropGPU) instead of per item in the workers")
    p.add_argument("--channels-last", dest="channels_last", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--prog-start", type=float, dest="prog_start",
                   help="progressive resizing: start at this fraction of --size (omit or 0 for none)")
    p.add_argument("--prog-finish", type=float, dest="prog_finish", help="fraction of training at full size from")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: up to 15, the cores less one)")
    p.add_argument("--limit", type=int, default=None, help="images per class and split (a quick smoke test)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", default=None, help="cuda, cpu... (default: cuda when available)")
    p.add_argument("--out", default=None, help="write the JSON result here")
    p.add_argument("--fastai", action="store_true", help="run the same recipe with fastai (imagenette_fastai.py)")
    args = p.parse_args(argv)
    for k, v in RECIPES[args.recipe].items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    if args.workers is None:
        args.workers = max(0, min(15, (os.cpu_count() or 1) - 1))
    if args.prog_start in (0, 0.0):
        args.prog_start = None
    return args


def limited_files(path: Path, limit: int | None) -> list[Path]:
    """The image files of ``train/`` and ``val/``, at most ``limit`` per class and split (sorted, deterministic)."""
    exts = {".jpeg", ".jpg", ".png"}
    out: list[Path] = []
    for split in ("train", "val"):
        for cls_dir in sorted((path / split).iterdir()):
            if cls_dir.is_dir():
                files = sorted(f for f in cls_dir.iterdir() if f.suffix.lower() in exts)
                out += files[:limit] if limit else files
    return out


def check_data(path: Path) -> None:
    """Fail early, naming the folder and the fix, when the Imagenette layout is not there."""
    missing = [s for s in ("train", "val") if not (path / s).is_dir()]
    if missing:
        sys.exit(f"{path} has no {' or '.join(s + '/' for s in missing)} folder: pass --data pointing at the "
                 f"imagenette2-128 copy (train/ and val/ with one folder per WordNet id).")


class EpochTimer:
    """Per-epoch wall time (the GPU synchronised), printed with the recorder's losses and accuracy."""

    def __init__(self, device_type: str) -> None:
        self.device_type, self.rows, self.fit_time = device_type, [], 0.0

    def sync(self) -> None:
        if self.device_type == "cuda":
            import torch
            torch.cuda.synchronize()

    def start(self) -> None:
        self.sync()
        self.t0 = time.perf_counter()

    def stop(self, epoch: int, train_loss: float, valid_loss: float, acc: float) -> None:
        self.sync()
        dt = time.perf_counter() - self.t0
        self.fit_time += dt
        self.rows.append(dict(epoch=epoch, seconds=round(dt, 3), fit_time=round(self.fit_time, 3),
                              train_loss=round(train_loss, 5), valid_loss=round(valid_loss, 5), accuracy=round(acc, 5)))
        print(f"epoch {epoch:3d}  {dt:8.2f}s  train_loss {train_loss:.4f}  valid_loss {valid_loss:.4f}  "
              f"accuracy {acc:.4f}", flush=True)


def time_to(rows: list[dict], target: float) -> float | None:
    """Fit time at the end of the first epoch whose accuracy reached ``target``."""
    return next((r["fit_time"] for r in rows if r["accuracy"] >= target), None)


def summarise(args: argparse.Namespace, rows: list[dict], fit_time: float, wall: float, library: str,
              extra: dict | None = None) -> dict:
    """The JSON result, printed as a last line and written to ``--out``."""
    import torch
    res = dict(library=library, recipe=args.recipe, settings={k: v for k, v in vars(args).items() if k != "out"},
               epochs=rows, fit_time=round(fit_time, 3), wall_time=round(wall, 3),
               final_accuracy=rows[-1]["accuracy"] if rows else None, time_to_85=time_to(rows, 0.85),
               time_to_90=time_to(rows, 0.90), torch=torch.__version__,
               device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", **(extra or {}))
    print(f"fit {fit_time:.1f}s, wall {wall:.1f}s, final accuracy {res['final_accuracy']}, "
          f"time to 85%: {res['time_to_85']}, to 90%: {res['time_to_90']}")
    if args.out:
        tmp = Path(args.out).with_suffix(".tmp")
        tmp.write_text(json.dumps(res, indent=1))
        os.replace(tmp, args.out)
    return res


def fit_and_summarise(learn: Any, model: Any, args: argparse.Namespace, timer: EpochTimer, wall0: float,
                      setup: float, library: str, extra: dict | None = None) -> dict:
    """Run the recipe's schedule quietly and return the result (learnkit and fastai learners alike)."""
    fit = learn.fit_flat_cos if args.sched == "flat_cos" else learn.fit_one_cycle
    with learn.no_bar(), learn.no_logging():
        fit(args.epochs, args.lr, wd=args.wd)
    return summarise(args, timer.rows, timer.fit_time, time.perf_counter() - wall0, library,
                     dict(setup_time=round(setup, 3), n_params=sum(p.numel() for p in model.parameters()),
                          **(extra or {})))
