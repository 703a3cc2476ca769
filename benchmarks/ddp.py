"""Images per second of a data-parallel fit (learnkit on torchrun + DDP) for 1 and 2 processes, and N GPUs.

On the CPU (gloo, one thread per process), the launcher mode starts torchrun itself once per process count
and prints one JSON line per run:

    python benchmarks/ddp.py --nprocs 1 2

On N GPUs (NCCL, one GPU per process), the same worker under torchrun:

    torchrun --nproc_per_node=N benchmarks/ddp.py --worker --device cuda --size 128 --items 8192

The fit is a small CNN on synthetic 3 x size x size images (bs per process); the first epoch warms up, the
figure is the training throughput of the later epochs (all ranks' images, validation excluded).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from learnkit.callback.core import Callback
from learnkit.data.core import DataLoaders
from learnkit.distributed import num_distrib, rank_distrib
from learnkit.learner import Learner
from learnkit.utils import atomic_write


class TrainClock(Callback):
    """Seconds spent in each training phase."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def before_train(self) -> None:
        self._t = time.perf_counter()

    def after_train(self) -> None:
        self.times.append(time.perf_counter() - self._t)


def worker(args: argparse.Namespace) -> None:
    """One rank: fit, then rank 0 prints the throughput as JSON."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.n + args.n // 4, 3, args.size, args.size, generator=g)
    y = torch.randint(0, 10, (len(x),), generator=g)
    ds = TensorDataset(x, y)
    train, valid = torch.utils.data.Subset(ds, range(args.n)), torch.utils.data.Subset(ds, range(args.n, len(ds)))
    device = torch.device(args.device, int(os.environ.get("LOCAL_RANK", 0))) if args.device == "cuda" else "cpu"
    dls = DataLoaders.from_dsets(train, valid, bs=args.bs, num_workers=0, device=device)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(64, 10))
    clock = TrainClock()
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), cbs=clock)
    with (learn.distrib_ctx() if num_distrib() > 1 else nullcontext()), learn.no_bar(), learn.no_logging():
        learn.fit(args.epochs, 1e-3)
    if rank_distrib() == 0:
        imgs = args.n // num_distrib() // args.bs * args.bs * num_distrib()  # per epoch, all ranks (drop_last)
        secs = sum(clock.times[1:])
        print(json.dumps({"procs": num_distrib(), "device": args.device, "size": args.size, "bs_per_proc": args.bs,
                          "images_per_s": round(imgs * (args.epochs - 1) / secs, 1),
                          "threads_per_proc": torch.get_num_threads()}), flush=True)


def launch(args: argparse.Namespace) -> None:
    """Run the worker under torchrun for each process count; print its JSON lines, write results/ddp.json."""
    results = []
    for n in args.nprocs:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}", f"--master_port={port}",
               __file__, "--worker", "--device", args.device, "--size", str(args.size), "--items", str(args.n),
               "--bs", str(args.bs), "--epochs", str(args.epochs)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
               "PYTHONPATH": str(Path(__file__).resolve().parent.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        print(lines[-1] if out.returncode == 0 and lines else f"nprocs={n} failed:\n{out.stderr[-3000:]}", flush=True)
        results += [json.loads(lines[-1])] if out.returncode == 0 and lines else []
    folder = Path(__file__).resolve().parent / "results"
    folder.mkdir(exist_ok=True)
    with atomic_write(folder / "ddp.json", "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help="run one rank (under torchrun)")
    p.add_argument("--nprocs", type=int, nargs="+", default=[1, 2], help="process counts to launch (CPU mode)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--size", type=int, default=32, help="image side")
    p.add_argument("--items", dest="n", type=int, default=1024, help="training images")
    p.add_argument("--bs", type=int, default=32, help="batch size per process")
    p.add_argument("--epochs", type=int, default=3, help="epochs (the first is warm-up)")
    p.add_argument("--threads", type=int, default=1, help="OMP threads per process (launcher mode)")
    a = p.parse_args()
    worker(a) if a.worker else launch(a)
