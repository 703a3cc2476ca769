"""Imagenette (128 px copy) from scratch: learnkit's training speed and accuracy, recipe by recipe.

Recipes (every setting can be overridden by its flag):

- ``anchor``: the reference recipe fastai's figures were measured with: xresnet50, 128 px, batch 64,
  5 epochs, ``fit_one_cycle(5, 8e-3, wd=1e-2)``, ``LabelSmoothingCrossEntropy``,
  ``RandomResizedCrop(128, min_scale=0.35)`` + flip + ImageNet normalisation, fp16 mixed precision.
- ``fast``: aimed at the shortest time to 90% validation accuracy: the anchor's augmentation and loss with
  a bigger batch, progressive resizing (``--prog-start`` of the size until ``--prog-finish`` of training),
  channels_last, more epochs, and the images decoded once into device memory (``--preload``:
  ``dls.preload()``, the random crop done per batch by ``RandomResizedCropGPU``). No ``torch.compile`` by
  default: its compilation (about a minute for an xresnet here, again for each new image size) would eat
  the 60 s wall-time budget; ``--compile`` turns it on for longer runs.
- ``leaderboard``: the Imagenette leaderboard's 128 px / 20 epoch recipe on xresnet50: ``ranger``,
  ``fit_flat_cos``, Mish activations, self-attention, lr 8e-3.

``--opt``, ``--sched``, ``--act`` and ``--sa`` mix these parts into any recipe (a sweep is a shell loop).

Prints one line per epoch (epoch, seconds, train loss, valid loss, accuracy) and writes a JSON result
(``--out``): the settings, per-epoch rows, total fit time, wall time including data setup, and the fit
time at which 85% and 90% accuracy were first reached (null when not reached).

    # CPU smoke test (seconds):
    python benchmarks/imagenette.py --limit 10 --epochs 1 --arch xresnet18 --size 64 --precision fp32 --workers 0
    # the anchor on a GPU, then fastai's run of the same recipe in the same call:
    python benchmarks/imagenette.py --recipe anchor --out anchor.json
    python benchmarks/imagenette.py --recipe anchor --fastai --out anchor_fastai.json

``--fastai`` runs ``benchmarks/imagenette_fastai.py`` (needs fastai installed; it is not a learnkit dependency).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imagenette_common import EpochTimer, check_data, fit_and_summarise, limited_files  # noqa: E402
from imagenette_common import parse_args as _parse_args  # noqa: E402

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags (``imagenette_common.parse_args`` with this script's help text)."""
    return _parse_args(argv, description=__doc__.split("\n\n")[0])


def run_learnkit(args: argparse.Namespace) -> dict:
    """Train with learnkit and return the result dict."""
    wall0 = time.perf_counter()
    import torch

    from learnkit.callback.core import Callback
    from learnkit.callback.progressive import ProgressiveResize
    from learnkit.data.block import DataBlock
    from learnkit.data.blocks import CategoryBlock
    from learnkit.data.getters import parent_label
    from learnkit.data.splitters import GrandparentSplitter
    from learnkit.learner import Learner
    from learnkit.losses import CrossEntropyLossFlat, LabelSmoothingCrossEntropy
    from learnkit.metrics import accuracy
    from learnkit.optimizer import Adam, ranger
    from learnkit.utils import set_seed
    from learnkit.vision import xresnet
    from learnkit.vision.augment import Flip, Normalize, RandomResizedCrop, Resize
    from learnkit.vision.batch_augment import RandomResizedCropGPU
    from learnkit.vision.core import ImageBlock, imagenet_stats

    set_seed(args.seed)
    path = Path(args.data)
    check_data(path)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    batch_tfms = [Flip(), Normalize.from_stats(*imagenet_stats)]
    if args.preload:  # keep the images at the copy's 128 px (or the training size if larger), crop per batch
        xtra = math.ceil(args.size * 0.14 / 8) * 8  # validate on the same centre crop as RandomResizedCrop
        item_tfms = [Resize(max(args.size, 128), method="squish")]
        batch_tfms.insert(0, RandomResizedCropGPU(args.size, min_scale=args.min_scale,
                                                  valid_scale=args.size / (args.size + xtra)))
    else:
        item_tfms = [RandomResizedCrop(args.size, min_scale=args.min_scale)]
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=partial(limited_files, limit=args.limit),
                       get_y=parent_label, splitter=GrandparentSplitter(valid_name="val"),
                       item_tfms=item_tfms, batch_tfms=batch_tfms)
    dls = dblock.dataloaders(path, bs=args.bs, num_workers=args.workers, device=device)
    if args.preload:
        dls.preload()
    arch = getattr(xresnet, args.arch, None)
    if arch is None:
        sys.exit(f"--arch {args.arch}: use one of xresnet18, xresnet34, xresnet50, xresnet101, xresnet152.")
    model = arch(n_out=len(dls.vocab), act_cls=torch.nn.Mish if args.act == "mish" else torch.nn.ReLU, sa=args.sa)
    loss = LabelSmoothingCrossEntropy(args.label_smoothing) if args.label_smoothing else CrossEntropyLossFlat()
    timer = EpochTimer(device.type)

    class Timing(Callback):
        order = 60  # after the Recorder (50) has its epoch values

        def before_epoch(self) -> None:
            timer.start()

        def after_epoch(self) -> None:
            tl, vl, acc = self.learn.recorder.values[-1][:3]
            timer.stop(self.learn.epoch, float(tl), float(vl), float(acc))

    cbs: list = [Timing()]
    if args.prog_start:
        cbs.append(ProgressiveResize(start_size=args.prog_start, finish=args.prog_finish, increase_by=16))
    learn = Learner(dls, model, loss_func=loss, metrics=accuracy, cbs=cbs,
                    opt_func=ranger if args.opt == "ranger" else Adam)
    if args.precision == "fp16":
        learn.to_fp16()
    elif args.precision == "bf16":
        learn.to_bf16()
    if args.channels_last:
        learn.to_channels_last()
    if args.compile:
        learn.compile()
    setup = time.perf_counter() - wall0
    print(f"learnkit: {args.arch}, {len(dls.train.dataset)} train / {len(dls.valid.dataset)} valid images, "
          f"size {args.size}, bs {args.bs}, {args.precision}, device {device}, setup {setup:.1f}s", flush=True)
    return fit_and_summarise(learn, model, args, timer, wall0, setup, "learnkit")


def main(argv: list[str] | None = None) -> dict:
    """Parse the flags and run the chosen library."""
    args = parse_args(argv)
    if args.fastai:
        from imagenette_fastai import run_fastai
        return run_fastai(args)
    return run_learnkit(args)


if __name__ == "__main__":
    main()
