"""Segmentation on camvid_tiny: the fastai lesson (``unet_learner(dls, resnet34)`` + ``fine_tune(8)``), learnkit vs fastai.

Runs, in this order and in one process each:

1. learnkit, ``unet_learner(dls, resnet34, pretrained=False)``, ``fine_tune(8)``;
2. learnkit, ``unet_learner(dls, 'efficientnet_lite0')`` with the offline ImageNet weights, ``fine_tune(8)``;
3. fastai (``--fastai-python``, a separate virtual environment, run as a subprocess), the same lesson
   with ``pretrained=False``; skipped when that interpreter or fastai is missing.

Same data on both sides: the 100 frames sorted by name, ``valid_pct=0.2, seed=42`` (learnkit's
``RandomSplitter`` gives fastai's split for a seed), ``bs=8``, full 96x128 frames, no augmentation,
``set_seed(42)`` before building each learner. Metrics: pixel accuracy (``accuracy`` over axis 1) and
``foreground_acc`` (background id 0). fastai averages ``foreground_acc`` per batch weighted by batch
size; learnkit pools the counts over the whole validation set (the exact value), so they can differ
slightly for the same predictions.

    python benchmarks/segmentation.py [--data /path/to/camvid_tiny] [--fastai-python /work/fastai-venv/bin/python]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_DATA = "/work/shared/data/camvid_tiny"
DEFAULT_FASTAI = "/work/fastai-venv/bin/python"
RESULTS = Path(__file__).parent / "results" / "segmentation.json"


def _label_func_for(path: Path):  # noqa: ANN202  (a closure, as in the lesson)
    return lambda o: path / "labels" / f"{o.stem}_P{o.suffix}"


def run_learnkit(data: Path, arch_name: str, epochs: int, bs: int, seed: int) -> dict:
    """The lesson under learnkit; returns the final validation loss, metrics and the fit time."""
    from functools import partial

    import numpy as np

    from learnkit.vision.all import (
        SegmentationDataLoaders,
        accuracy,
        foreground_acc,
        get_image_files,
        resnet34,
        set_seed,
        unet_learner,
    )
    fnames = sorted(get_image_files(data / "images"))
    dls = SegmentationDataLoaders.from_label_func(data, bs=bs, fnames=fnames, label_func=_label_func_for(data),
                                                  codes=np.loadtxt(data / "codes.txt", dtype=str), seed=seed)
    set_seed(seed)
    pixel_acc = partial(accuracy, axis=1)
    arch, pretrained = (resnet34, False) if arch_name == "resnet34" else (arch_name, True)
    learn = unet_learner(dls, arch, pretrained=pretrained, metrics=[pixel_acc, foreground_acc])
    t0 = time.perf_counter()
    with learn.no_bar():
        learn.fine_tune(epochs)
    fit_s = time.perf_counter() - t0
    _, loss, acc, fg = learn.recorder.values[-1]  # last epoch: train loss, valid loss, metrics
    return {"library": "learnkit", "arch": arch_name, "pretrained": pretrained, "valid_loss": loss,
            "pixel_accuracy": acc, "foreground_acc": fg, "fit_seconds": round(fit_s, 1),
            "n_train": len(dls.train.dataset), "n_valid": len(dls.valid.dataset)}


def run_fastai(data: Path, epochs: int, bs: int, seed: int) -> dict:
    """The lesson under fastai (run inside fastai's environment, see ``--worker``)."""
    from functools import partial

    import numpy as np
    from fastai.vision.all import (
        SegmentationDataLoaders,
        accuracy,
        foreground_acc,
        get_image_files,
        resnet34,
        set_seed,
        unet_learner,
    )
    fnames = sorted(get_image_files(data / "images"))
    dls = SegmentationDataLoaders.from_label_func(data, bs=bs, fnames=fnames, label_func=_label_func_for(data),
                                                  codes=np.loadtxt(data / "codes.txt", dtype=str), seed=seed)
    set_seed(seed)
    learn = unet_learner(dls, resnet34, pretrained=False, metrics=[partial(accuracy, axis=1), foreground_acc])
    t0 = time.perf_counter()
    with learn.no_bar():
        learn.fine_tune(epochs)
    fit_s = time.perf_counter() - t0
    loss, acc, fg = [float(v) for v in learn.recorder.values[-1][1:4]]
    return {"library": "fastai", "arch": "resnet34", "pretrained": False, "valid_loss": loss,
            "pixel_accuracy": acc, "foreground_acc": fg, "fit_seconds": round(fit_s, 1),
            "n_train": len(dls.train_ds), "n_valid": len(dls.valid_ds)}


def _fastai_subprocess(python: str, data: Path, epochs: int, bs: int, seed: int, threads: int) -> dict | None:
    if not os.path.exists(python):
        print(f"fastai: skipped ({python} not found)")
        return None
    if subprocess.run([python, "-c", "import fastai"], capture_output=True).returncode != 0:
        print(f"fastai: skipped (fastai is not importable with {python})")
        return None
    cmd = [python, __file__, "--worker", "fastai", "--data", str(data), "--epochs", str(epochs), "--bs", str(bs),
           "--seed", str(seed), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        print(f"fastai: failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        return None
    return json.loads(lines[-1][len("RESULT "):])


def _row(r: dict) -> str:
    return (f"{r['library']:<9} {r['arch'] + (' (pretrained)' if r['pretrained'] else ''):<32} "
            f"{r['valid_loss']:>10.4f} {r['pixel_accuracy']:>9.4f} {r['foreground_acc']:>9.4f} {r['fit_seconds']:>8.1f}")


def main() -> None:
    """Parse arguments, run every side, print a table and write ``results/segmentation.json``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--fastai-python", default=DEFAULT_FASTAI)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-lite0", action="store_true", help="leave out the pretrained efficientnet_lite0 run")
    ap.add_argument("--worker", choices=["fastai", "learnkit"], help=argparse.SUPPRESS)
    ap.add_argument("--arch", default="resnet34", help=argparse.SUPPRESS)
    args = ap.parse_args()
    data = Path(args.data)

    import torch
    torch.set_num_threads(args.threads)
    if args.worker == "fastai":
        print("RESULT " + json.dumps(run_fastai(data, args.epochs, args.bs, args.seed)))
        return
    if args.worker == "learnkit":
        print("RESULT " + json.dumps(run_learnkit(data, args.arch, args.epochs, args.bs, args.seed)))
        return

    results = [run_learnkit(data, "resnet34", args.epochs, args.bs, args.seed)]
    print(_row(results[-1]), flush=True)
    if not args.skip_lite0:
        results.append(run_learnkit(data, "efficientnet_lite0", args.epochs, args.bs, args.seed))
        print(_row(results[-1]), flush=True)
    fa = _fastai_subprocess(args.fastai_python, data, args.epochs, args.bs, args.seed, args.threads)
    if fa is not None:
        results.append(fa)
    print(f"\ncamvid_tiny ({results[0]['n_train']} train / {results[0]['n_valid']} valid frames), fine_tune("
          f"{args.epochs}), bs={args.bs}, seed={args.seed}, {args.threads} CPU threads")
    print(f"{'library':<9} {'arch':<32} {'valid_loss':>10} {'pixel_acc':>9} {'fg_acc':>9} {'fit_s':>8}")
    for r in results:
        print(_row(r))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"epochs": args.epochs, "bs": args.bs, "seed": args.seed, "threads": args.threads,
                               "torch": torch.__version__, "results": results}, indent=2))
    os.replace(tmp, RESULTS)


if __name__ == "__main__":
    sys.exit(main())
