"""Per-batch overhead of ``Learner.fit`` against a plain PyTorch loop: same tiny MLP, same in-memory data, one thread.

Both sides iterate the same loader (whole batches sliced from in-memory tensors), train the same
model with AdamW for the same number of epochs, and run a validation pass with loss and accuracy
after each epoch. Runs alternate between the two, and the median time per training batch of
each is reported (fit time divided by training batches, validation included on both sides).

    python benchmarks/overhead.py
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

from learnkit.data.core import DataLoaders
from learnkit.learner import Learner
from learnkit.metrics import accuracy
from learnkit.optimizer import Adam


class Batches(torch.utils.data.Dataset):
    """Serves a whole batch per index list: one tensor slice per batch, no per-item collate."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[idx], self.y[idx]


def loaders(n_train: int, n_valid: int, bs: int, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """A training and a validation loader over random 2-class data (one slice per batch)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_valid, 20, generator=g)
    y = (x[:, :2].sum(1) > 0).long()
    tr, va = Batches(x[:n_train], y[:n_train]), Batches(x[n_train:], y[n_train:])
    mk = lambda ds, s: DataLoader(ds, batch_size=None, sampler=BatchSampler(s, bs, drop_last=False))  # noqa: E731
    return mk(tr, RandomSampler(tr, generator=g)), mk(va, SequentialSampler(va))


def model(seed: int) -> nn.Module:
    """The tiny MLP."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 50), nn.ReLU(), nn.Linear(50, 2))


def plain_fit(m: nn.Module, train: DataLoader, valid: DataLoader, epochs: int, lr: float) -> float:
    """The reference: a plain PyTorch loop. Returns its final validation accuracy."""
    opt = Adam(m.parameters(), lr=lr)
    for _ in range(epochs):
        m.train()
        for xb, yb in train:
            loss = F.cross_entropy(m(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
        m.eval()
        tot_loss, correct, n = 0.0, 0, 0
        with torch.no_grad():
            for xb, yb in valid:
                out = m(xb)
                tot_loss += F.cross_entropy(out, yb).item() * len(yb)
                correct += (out.argmax(1) == yb).sum().item()
                n += len(yb)
    return correct / n


def learnkit_fit(m: nn.Module, train: DataLoader, valid: DataLoader, epochs: int, lr: float) -> float:
    """The same training through ``Learner.fit``. Returns its final validation accuracy."""
    learn = Learner(DataLoaders(train, valid, device="cpu"), m, loss_func=F.cross_entropy, lr=lr, metrics=accuracy)
    with learn.no_bar(), learn.no_logging():
        learn.fit(epochs)
    return learn.recorder.values[-1][-1]


def main() -> None:
    """Alternate the two loops, report the median per-batch times and write JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=16384)
    p.add_argument("--n-valid", type=int, default=2048)
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "overhead.json"))
    a = p.parse_args()
    torch.set_num_threads(1)
    train, valid = loaders(a.n_train, a.n_valid, a.bs)
    n_batches = len(train) * a.epochs
    times: dict[str, list[float]] = {"plain": [], "learnkit": []}
    accs: dict[str, float] = {}
    fits = {"plain": plain_fit, "learnkit": learnkit_fit}
    for r in range(a.rounds + 1):  # round 0 warms up both
        for name, fit in fits.items():
            t0 = time.perf_counter()
            accs[name] = fit(model(r), train, valid, a.epochs, 1e-3)
            dt = (time.perf_counter() - t0) / n_batches * 1e3
            if r:
                times[name].append(dt)
        if r:
            print(f"round {r}: plain {times['plain'][-1]:.3f} ms/batch, learnkit {times['learnkit'][-1]:.3f} ms/batch",
                  flush=True)
    plain, ours = statistics.median(times["plain"]), statistics.median(times["learnkit"])
    res = {"plain_ms_per_batch": plain, "learnkit_ms_per_batch": ours, "ratio": ours / plain,
           "final_valid_accuracy": accs, "batches_per_fit": n_batches, "bs": a.bs, "threads": 1,
           "torch": torch.__version__, "rounds": a.rounds}
    print(json.dumps(res, indent=2))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
