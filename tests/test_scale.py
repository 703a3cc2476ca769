"""DDP on torchrun (2 gloo processes on the CPU), exact resume after kill -9, start_epoch, ShardSampler."""
from __future__ import annotations

import importlib.util
import json
import os
import random
import signal
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from learnkit.basics import DataLoaders
from learnkit.callback.mixup import MixUp
from learnkit.callback.tracker import SaveModelCallback
from learnkit.data.core import DataLoader
from learnkit.data.imbalance import WeightedDL
from learnkit.distributed import ShardSampler, _shard
from learnkit.resume import get_rng_states, set_rng_states

HERE = Path(__file__).parent
WORKER = HERE / "scale_worker.py"
_spec = importlib.util.spec_from_file_location("scale_worker", WORKER)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)


def _env() -> dict:
    root = str(HERE.parent)
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(mode: str, out: Path) -> subprocess.CompletedProcess:
    """torchrun with 2 ranks; on a timeout SIGTERM, which torchrun passes to its ranks (SIGKILL would orphan them)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           str(WORKER), mode, str(out)]
    proc = subprocess.Popen(cmd, cwd=out, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
        pytest.fail(f"torchrun {mode} ran past 240 s:\n{(stdout + stderr)[-4000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


# -- ShardSampler: the split of a loader across ranks

@pytest.mark.parametrize("n,world", [(37, 2), (10, 3), (2, 4)])
def test_shard_sampler_validation_covers_every_item_once(n, world):
    shards = [list(ShardSampler(n, r, world)) for r in range(world)]
    assert sorted(sum(shards, [])) == list(range(n))
    assert [len(ShardSampler(n, r, world)) for r in range(world)] == [len(s) for s in shards]


def test_shard_sampler_training_shares_the_shuffle_and_steps():
    world, n = 3, 50
    samplers = [ShardSampler(n, r, world, shuffle=True, seed=7, even=True) for r in range(world)]
    orders = []
    for epoch in (0, 1):
        for s in samplers:
            s.set_epoch(epoch)
        shards = [list(s) for s in samplers]
        assert {len(s) for s in shards} == {n // world}  # equal step counts on every rank
        flat = sum(shards, [])
        assert len(set(flat)) == len(flat) == n // world * world  # no item twice in an epoch
        orders.append(flat)
    assert orders[0] != orders[1]  # a new order each epoch, the same on every rank (same seed + epoch)
    again = ShardSampler(n, 1, world, shuffle=True, seed=7, even=True)
    again.set_epoch(1)
    assert list(again) == list(samplers[1])


def test_sharding_refuses_a_loader_with_its_own_sampler():
    """A WeightedDL's weighted draws can't be split across ranks: a clear error, not a plain shuffle instead."""
    ds = torch.utils.data.TensorDataset(torch.randn(20, 3), torch.arange(20) % 2)
    weighted = WeightedDL(ds, wgts=[1.0] * 20, bs=4, shuffle=True, num_workers=0, device="cpu")
    with pytest.raises(TypeError, match="own sampler.*WeightedDL"):
        _shard(weighted, True, 0, 2, seed=0)
    plain = _shard(DataLoader(ds, bs=4, shuffle=True, drop_last=True, num_workers=0, device="cpu"), True, 1, 2, seed=0)
    assert len(plain) == 2 and len(plain.shard_sampler) == 10


# -- resume state

def test_rng_states_round_trip_through_weights_only(tmp_path):
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    np.random.randn()  # leaves a cached gaussian in NumPy's state
    states = get_rng_states()
    torch.save(states, tmp_path / "rng.pt")
    first = (torch.rand(3), np.random.randn(2), random.random())
    set_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True))
    second = (torch.rand(3), np.random.randn(2), random.random())
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1]) and first[2] == second[2]


@pytest.mark.slow
def test_start_epoch_starts_the_schedule_where_it_stopped(tmp_path):
    full = worker.make_learner(str(tmp_path))
    with full.no_bar(), full.no_logging():
        full.fit_one_cycle(4, 1e-2)
    part = worker.make_learner(str(tmp_path))
    with part.no_bar(), part.no_logging():
        part.fit_one_cycle(4, 1e-2, start_epoch=2)
    n = len(full.dls.train)
    assert len(part.recorder.values) == 2 and len(part.recorder.lrs) == 2 * n
    np.testing.assert_allclose(part.recorder.lrs, full.recorder.lrs[2 * n:], rtol=1e-12)
    np.testing.assert_allclose(part.recorder.hps["mom"], full.recorder.hps["mom"][2 * n:], rtol=1e-12)


@pytest.mark.slow
def test_resume_errors_name_the_fix(tmp_path):
    learn = worker.make_learner(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="every_n_batches"):
        learn.fit_one_cycle(1, resume="nothing")
    learn.save("weights_only", with_opt=False)
    with pytest.raises(ValueError, match="no training state"):
        learn.fit_one_cycle(1, resume="weights_only")
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(2, cbs=SaveModelCallback(every_n_batches=5, with_opt=True, fname="ck"))
    saved = torch.load(tmp_path / "models" / "ck.pth", weights_only=True)
    assert "train_state" in saved
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        learn.load("ck", with_opt=True)  # outside a fit: weights and optimizer, the training state ignored
    assert all(torch.equal(v, saved["model"][k]) for k, v in learn.model.state_dict().items())
    with pytest.raises(ValueError, match="n_epoch=2"):
        learn.fit_one_cycle(3, resume="ck")
    with pytest.raises(ValueError, match="start_epoch=5"):
        learn.fit_one_cycle(3, start_epoch=5)


def test_distrib_ctx_takes_fastais_arguments(tmp_path):
    """fastai's ``distrib_ctx(sync_bn=True, in_notebook=False)`` arguments are understood, not handed to DDP."""
    learn = worker.make_learner(str(tmp_path))
    with pytest.raises(ValueError, match="torchrun --nproc_per_node"):
        with learn.distrib_ctx(in_notebook=True):
            pass
    with pytest.raises(RuntimeError, match="needs a launcher"):  # in_notebook=False: a script, here not under torchrun
        with learn.distrib_ctx(in_notebook=False):
            pass


@pytest.mark.slow
def test_resume_after_kill_9_is_bit_identical(tmp_path):
    """Train, SIGKILL after a mid-epoch checkpoint, resume: the same weights and history as an uninterrupted run."""
    killed = subprocess.run([sys.executable, str(WORKER), "killed", str(tmp_path)], cwd=tmp_path, env=_env(),
                            capture_output=True, text=True, timeout=240)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (tmp_path / "killed.pt").exists() and (tmp_path / "models" / "ckpt.pth").exists()
    state = torch.load(tmp_path / "models" / "ckpt.pth", weights_only=True)["train_state"]
    assert (state["epoch"], state["done"], state["train_iter"]) == (1, 4, 12)  # mid-epoch
    worker.resume_modes("resumed", str(tmp_path))
    (tmp_path / "models" / "ckpt.pth").unlink()
    worker.resume_modes("full", str(tmp_path))
    full, resumed = torch.load(tmp_path / "full.pt"), torch.load(tmp_path / "resumed.pt")
    assert full.keys() == resumed.keys() and all(torch.equal(full[k], resumed[k]) for k in full)
    hist = [json.loads((tmp_path / f"{m}.json").read_text()) for m in ("full", "resumed")]
    assert hist[0] == hist[1] and len(hist[0]["values"]) == 3


def _mixup_workers_run(path: Path, mode: str) -> tuple[dict, list]:
    """fit_flat_cos with MixUp on loaders with 2 worker processes, checkpoints every 3 batches and every epoch."""
    learn = worker.make_learner(str(path))
    train, valid = learn.dls.train.dataset, learn.dls.valid.dataset
    learn.dls = DataLoaders.from_dsets(train, valid, bs=8, num_workers=2, device="cpu")
    learn.dls.train.persistent_workers = False  # the validation loader keeps its workers (the default)
    cbs = [SaveModelCallback(every_n_batches=3, every_epoch=True, with_opt=True, fname="ck"), MixUp(0.4)]
    if mode == "killed":
        cbs.append(worker.Kill(at=13, sigkill=False))
    with learn.no_bar(), learn.no_logging():
        try:
            learn.fit_flat_cos(3, 1e-2, cbs=cbs, resume="ck" if mode == "resumed" else None)
        except KeyboardInterrupt:
            pass
    return {k: v.clone() for k, v in learn.model.state_dict().items()}, learn.recorder.values


@pytest.mark.slow
def test_resume_with_mixup_workers_and_flat_cos_is_bit_identical(tmp_path):
    """The random MixUp draws, the shuffle and the workers' seeds of the resumed epoch are those of the run."""
    _mixup_workers_run(tmp_path, "killed")
    assert (tmp_path / "models" / "ck_0.pth").exists() and not (tmp_path / "models" / "ck_1.pth").exists()
    torch.manual_seed(123)  # whatever the random state when resuming
    resumed = _mixup_workers_run(tmp_path, "resumed")
    (tmp_path / "models" / "ck.pth").unlink()
    full = _mixup_workers_run(tmp_path, "full")
    assert all(torch.equal(full[0][k], resumed[0][k]) for k in full[0]) and full[1] == resumed[1]
    assert len(full[1]) == 3


# -- DDP over two gloo processes

@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """One torchrun launch for every DDP test: a fit in distrib_ctx, then a fit in which rank 1 raises."""
    out = tmp_path_factory.mktemp("ddp")
    return _torchrun("ddp", out), out


@pytest.mark.slow
def test_ddp_two_processes_match_one(ddp_run):
    res, tmp_path = ddp_run
    assert (tmp_path / "rank0.json").exists() and (tmp_path / "rank1.json").exists(), (res.stdout + res.stderr)[-4000:]
    w0, w1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert all(torch.equal(w0[k], w1[k]) for k in w0)  # identical weights on every rank
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["values"] == r1["values"] and r0["lr"] == r1["lr"]  # same records; lr_find's answer shared
    assert r0["n_train"] == 64  # the user's loaders are given back whole after the fit
    # the gathered validation equals one process validating the same weights on the same data
    learn = worker.make_learner(str(tmp_path), metrics=[worker.accuracy, worker.F1Score()])
    learn.model.load_state_dict(w0)
    best = min(r0["values"], key=lambda row: row[1])  # SaveModelCallback loaded the best epoch back
    np.testing.assert_allclose(learn.validate(), best[1:], rtol=1e-6)
    rows = (tmp_path / "history.csv").read_text().splitlines()  # written by rank 0 only: one row per epoch
    assert len(rows) == 1 + len(r0["values"]) and rows[0].startswith("epoch,train_loss,valid_loss")
    assert res.stdout.count("Better model found") == sum(  # printed by rank 0 only
        1 for i, row in enumerate(r0["values"]) if row[1] < min([v[1] for v in r0["values"][:i]], default=np.inf))


def _smoothed(losses: list, beta: float) -> list:
    """The Recorder's smoothed loss: an exponential moving average with debiasing."""
    avg, out = 0.0, []
    for i, v in enumerate(losses, 1):
        avg = avg * beta + v * (1 - beta)
        out.append(avg / (1 - beta ** i))
    return out


@pytest.mark.slow
def test_ddp_loss_curve_is_the_mean_over_ranks(ddp_run):
    res, tmp_path = ddp_run
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert len(r0["raw"]) == len(r1["raw"]) == len(r0["losses"]) == 2 * 4  # 2 epochs of 32 items per rank, bs 8
    assert r0["raw"] != r1["raw"]  # each rank's half-batch has its own loss
    mean = [(a + b) / 2 for a, b in zip(r0["raw"], r1["raw"])]
    # what plot_loss draws: the smoothed mean over ranks, the same on both, not rank 0's own half-batch curve
    np.testing.assert_allclose(r0["losses"], _smoothed(mean, r0["beta"]), rtol=1e-5)
    assert r0["losses"] == r1["losses"]
    assert not np.allclose(r0["losses"], _smoothed(r0["raw"], r0["beta"]), rtol=1e-3)
    # the epoch table's training loss is that curve at each epoch's end
    np.testing.assert_allclose([row[0] for row in r0["values"]], [r0["losses"][3], r0["losses"][7]], rtol=1e-5)


@pytest.mark.slow
def test_ddp_rank_error_stops_every_rank(ddp_run):
    res, _ = ddp_run
    assert res.returncode != 0
    assert "rank 1 exploded on purpose" in res.stdout + res.stderr
