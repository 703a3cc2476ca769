"""The Imagenette recipe of ``imagenette.py`` run with fastai, for a same-machine, same-call comparison.

fastai is not a learnkit dependency: install it (``pip install fastai``) where this runs. Same flags and
JSON result as ``imagenette.py`` (which calls this with ``--fastai``); the ``anchor`` recipe is the one the
reference figures used. Progressive resizing and ``--compile`` have no fastai counterpart here: asking for
them stops with a message.

    python benchmarks/imagenette_fastai.py --recipe anchor --out anchor_fastai.json
"""
from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imagenette_common import EpochTimer, check_data, fit_and_summarise, limited_files, parse_args  # noqa: E402

__all__ = ["run_fastai"]


def run_fastai(args: argparse.Namespace) -> dict:
    """Train the recipe with fastai and return the result dict."""
    wall0 = time.perf_counter()
    try:
        import fastai
        from fastai.vision import all as fv
    except ImportError as e:
        sys.exit(f"--fastai needs fastai and its dependencies installed (pip install fastai; it is not a learnkit "
                 f"dependency): {e}")
    import torch
    if args.prog_start or args.compile or args.preload:
        sys.exit("imagenette_fastai.py runs without progressive resizing, torch.compile or preloading: pass "
                 "--prog-start 0 --no-compile --no-preload (or use --recipe anchor).")
    fv.set_seed(args.seed)
    path = Path(args.data)
    check_data(path)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    dblock = fv.DataBlock(blocks=(fv.ImageBlock, fv.CategoryBlock), get_items=partial(limited_files, limit=args.limit),
                          get_y=fv.parent_label, splitter=fv.GrandparentSplitter(valid_name="val"),
                          item_tfms=fv.RandomResizedCrop(args.size, min_scale=args.min_scale),
                          batch_tfms=[fv.Flip(), fv.Normalize.from_stats(*fv.imagenet_stats)])
    dls = dblock.dataloaders(path, bs=args.bs, num_workers=args.workers, device=device)
    arch = getattr(fv, args.arch)
    loss = fv.LabelSmoothingCrossEntropy(args.label_smoothing) if args.label_smoothing else fv.CrossEntropyLossFlat()
    timer = EpochTimer(device.type)

    class Timing(fv.Callback):
        order = fv.Recorder.order + 1

        def before_epoch(self) -> None:
            timer.start()

        def after_epoch(self) -> None:
            tl, vl, acc = self.learn.recorder.values[-1][:3]
            timer.stop(self.learn.epoch, float(tl), float(vl), float(acc))

    model = arch(n_out=len(dls.vocab), act_cls=fv.Mish if args.act == "mish" else fv.nn.ReLU, sa=args.sa)
    learn = fv.Learner(dls, model, loss_func=loss, metrics=fv.accuracy, cbs=Timing(),
                       opt_func=fv.ranger if args.opt == "ranger" else fv.Adam)
    if args.precision == "fp16":
        learn = learn.to_fp16()
    elif args.precision == "bf16":
        learn = learn.to_bf16()
    if args.channels_last:
        learn = learn.to_channelslast()
    setup = time.perf_counter() - wall0
    print(f"fastai {fastai.__version__}: {args.arch}, {len(dls.train_ds)} train / {len(dls.valid_ds)} valid images, "
          f"size {args.size}, bs {args.bs}, {args.precision}, device {device}, setup {setup:.1f}s", flush=True)
    return fit_and_summarise(learn, model, args, timer, wall0, setup, "fastai", dict(fastai=fastai.__version__))


if __name__ == "__main__":
    run_fastai(parse_args())
