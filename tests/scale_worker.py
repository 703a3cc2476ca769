"""Scripts run as subprocesses by tests/test_scale.py: `python scale_worker.py MODE OUT_DIR` (or under torchrun).

Modes: ``full`` / ``killed`` / ``resumed`` (exact resume on one process), ``ddp`` (under torchrun: a fit in
distrib_ctx, each rank writes its weights and records; then a fit where rank 1 raises, torchrun found on its own:
one launch, since each pays ``import torch`` per rank).
"""
from __future__ import annotations

import json
import os
import signal
import sys

import torch
from torch import nn
from torch.utils.data import TensorDataset

from learnkit.basics import DataLoaders, Learner
from learnkit.callback.core import Callback
from learnkit.callback.logger import CSVLogger
from learnkit.callback.tracker import SaveModelCallback
from learnkit.distributed import rank_distrib
from learnkit.metrics import F1Score, accuracy


def make_data(n_train: int = 64, n_valid: int = 37, bs: int = 8) -> DataLoaders:
    """Two blobs in 6 dimensions, labels 0/1 (the same on every call)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_train + n_valid, 6, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    ds = TensorDataset(x, y)
    train, valid = torch.utils.data.Subset(ds, range(n_train)), torch.utils.data.Subset(ds, range(n_train, len(ds)))
    return DataLoaders.from_dsets(train, valid, bs=bs, num_workers=0, device="cpu")


def make_learner(path: str, **kwargs) -> Learner:
    """A small MLP with dropout (the random state matters for resume)."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))
    return Learner(make_data(), model, loss_func=nn.CrossEntropyLoss(), path=path, **kwargs)


class Kill(Callback):
    """SIGKILL this process after training batch ``at`` (a checkpoint was written before it).

    ``sigkill=False`` raises ``KeyboardInterrupt`` instead: the in-process stand-in when the resumed learner is a new one.
    """

    order = 99

    def __init__(self, at: int, sigkill: bool = True) -> None:
        self.at, self.sigkill = at, sigkill

    def after_batch(self) -> None:
        if self.learn.training and self.learn.train_iter == self.at:
            if not self.sigkill:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGKILL)


class Explode(Callback):
    """Rank 1 raises at its second training batch."""

    def after_batch(self) -> None:
        if self.learn.training and self.learn.train_iter == 2 and rank_distrib() == 1:
            raise ValueError("rank 1 exploded on purpose")


class RawLoss(Callback):
    """This rank's own loss of each training batch (order 0: read before the DistributedTrainer averages it)."""

    def before_fit(self) -> None:
        self.losses = []

    def after_batch(self) -> None:
        if self.learn.training and self.learn.loss is not None:
            self.losses.append(float(self.learn.loss))


def resume_modes(mode: str, out: str) -> None:
    learn = make_learner(out)
    with learn.no_bar():
        cbs = [SaveModelCallback(every_n_batches=3, with_opt=True, fname="ckpt")]
        if mode == "killed":
            cbs.append(Kill(at=13))  # 8 batches per epoch: the last checkpoint is at batch 12, epoch 1 batch 4
        learn.fit_one_cycle(3, 1e-2, cbs=cbs, resume="ckpt" if mode == "resumed" else None)
    torch.save(learn.model.state_dict(), os.path.join(out, f"{mode}.pt"))
    with open(os.path.join(out, f"{mode}.json"), "w") as f:
        json.dump({"values": learn.recorder.values, "losses": learn.recorder.losses}, f)


def ddp(out: str) -> None:
    learn = make_learner(out, metrics=[accuracy, F1Score()])
    with learn.distrib_ctx():
        sug = learn.lr_find(num_it=10, show_plot=False)
        raw = RawLoss()
        learn.fit_one_cycle(2, 1e-2, cbs=[SaveModelCallback(fname="best"), CSVLogger(), raw])
        rank = rank_distrib()
        torch.save(learn.model.state_dict(), os.path.join(out, f"rank{rank}.pt"))
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump({"values": learn.recorder.values, "lr": sug.valley, "losses": learn.recorder.losses,
                       "raw": raw.losses, "beta": learn.recorder.beta,
                       "n_train": len(learn.dls.train.dataset)}, f)


def ddp_error(out: str) -> None:
    learn = make_learner(out)
    learn.fit(3, 1e-2, cbs=Explode())


if __name__ == "__main__":
    mode, out = sys.argv[1], sys.argv[2]
    if mode != "ddp":
        resume_modes(mode, out)
    else:
        ddp(out)
        ddp_error(out)
