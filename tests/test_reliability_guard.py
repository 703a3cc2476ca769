"""Reliability round 2 (issue 28): the finite guard acts before the damage; bad hyper-parameters, non-finite
checkpoints, mixed-up files and stale temporaries get named errors."""
import os
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.callback.core import Callback
from learnkit.callback.precision import MixedPrecision
from learnkit.callback.training import GradientClip
from learnkit.data.core import DataLoaders
from learnkit.learner import Learner

pytestmark = pytest.mark.usefixtures("one_thread")


def _dls() -> DataLoaders:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 2, generator=g)
    y = (x[:, 0] > 0).long()
    return DataLoaders(TorchDataLoader(TensorDataset(x[:64], y[:64]), batch_size=16),
                       TorchDataLoader(TensorDataset(x[64:], y[64:]), batch_size=16), device="cpu")


def _learn(tmp_path, **kwargs) -> Learner:
    torch.manual_seed(0)
    return Learner(_dls(), nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2)),
                   loss_func=nn.CrossEntropyLoss(), path=tmp_path, **kwargs)


def _weights(learn) -> list[torch.Tensor]:
    return [p.detach().clone() for p in learn.model.parameters()]


class _InfGrad(Callback):
    """Puts an inf into one gradient at (epoch, batch), keeping the weights as they were just before that step."""

    order = 0

    def __init__(self, epoch: int = 0, batch: int = 2, once: bool = False) -> None:
        self.at, self.once, self.before, self.done = (epoch, batch), once, None, False

    def after_backward(self) -> None:
        if (self.learn.epoch, self.learn.iter) == self.at and not (self.once and self.done):
            self.before, self.done = _weights(self.learn), True
            next(self.learn.model.parameters()).grad[0, 0] = float("inf")


# -- 1. the guard checks loss and gradients before the step

@pytest.mark.parametrize("clip", [False, True])
def test_inf_gradient_skips_the_step_and_stops_with_weights_unchanged(tmp_path, clip):
    learn, inj = _learn(tmp_path), _InfGrad()
    cbs = [inj] + ([GradientClip(1.0)] if clip else [])
    with learn.no_bar(), learn.no_logging(), pytest.warns(RuntimeWarning, match="epoch 0, batch 2.*skipped"):
        learn.fit(3, 1e-2, cbs=cbs)
    assert learn.epoch == 0
    assert all(torch.equal(a, b) for a, b in zip(inj.before, learn.model.parameters()))


class _CpuFp16(MixedPrecision):
    fp16_devices = ("cuda", "cpu")  # a real GradScaler on the CPU, as on a CUDA GPU


def test_grad_scaler_still_skips_an_overflow_and_the_fit_goes_on(tmp_path):
    learn, inj = _learn(tmp_path), _InfGrad(once=True)
    learn.add_cb(_CpuFp16("fp16"))
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        learn.fit(2, 1e-2, cbs=inj)
    assert learn.epoch == 1 and inj.done
    assert learn.scaler.get_scale() < 2.0 ** 16  # the overflow lowered the scale
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())


# -- 2. NaN/inf/negative lr and wd are refused at the call

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("call, shown", [
    (lambda l: l.fit(1, NAN), "lr=nan"), (lambda l: l.fit(1, -1e-3), "lr=-0.001"), (lambda l: l.fit(1, INF), "lr=inf"),
    (lambda l: l.fit(1, slice(NAN)), "lr="), (lambda l: l.fit(1, 1e-3, wd=-0.1), "wd=-0.1"),
    (lambda l: l.fit(1, 1e-3, wd=NAN), "wd=nan"), (lambda l: l.fit_one_cycle(1, NAN), "lr="),
    (lambda l: l.fit_one_cycle(1, 1e-3, wd=INF), "wd=inf"), (lambda l: l.fine_tune(1, base_lr=-1.0), "lr="),
    (lambda l: l.fit_flat_cos(1, lr=INF), "lr="), (lambda l: l.fit_sgdr(1, 1, lr_max=NAN), "lr=")])
def test_bad_lr_or_wd_is_refused_at_the_call(tmp_path, call, shown):
    learn = _learn(tmp_path)
    before = _weights(learn)
    with learn.no_bar(), learn.no_logging(), pytest.raises(ValueError, match=f"{shown}.*finite number >= 0"):
        call(learn)
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-3, wd=0.0)  # the learner still trains with good values


# -- 3. no checkpoint or export with non-finite weights

def _tab_learner(tmp_path):
    import numpy as np
    import pandas as pd
    from learnkit.tabular.core import Categorify, Normalize
    from learnkit.tabular.data import TabularDataLoaders
    from learnkit.tabular.learner import tabular_learner
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=60), "b": rng.choice(["x", "y"], 60)})
    df["y"] = np.where(df.a > 0, "hi", "lo")
    dls = TabularDataLoaders.from_df(df, procs=[Categorify, Normalize], cat_names=["b"], cont_names=["a"],
                                     y_names="y", bs=16, valid_idx=list(range(45, 60)), path=tmp_path)
    return tabular_learner(dls, layers=[8])


def _poison(learn, name_part: str) -> str:
    for k, p in learn.model.named_parameters():
        if name_part in k:
            with torch.no_grad():
                p.view(-1)[0] = float("nan")
            return k
    raise AssertionError(name_part)


def test_save_and_export_refuse_non_finite_weights_and_keep_the_last_good_file(tmp_path):
    from learnkit.weights_io import WeightsError
    learn = _tab_learner(tmp_path)
    saved, exported = learn.save("m"), learn.export()
    good_save, good_export = saved.read_bytes(), exported.read_bytes()
    bad = _poison(learn, "weight")
    with pytest.raises(WeightsError, match=f"m.pth.*{bad!r}.*NaN or infinite"):
        learn.save("m")
    with pytest.raises(WeightsError, match=f"export.pkl.*{bad!r}"):
        learn.export()
    assert saved.read_bytes() == good_save and exported.read_bytes() == good_export
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["export.pkl", "m.pth"]  # no temporaries


def test_every_n_batches_checkpoint_is_never_overwritten_by_nan_weights(tmp_path):
    from learnkit.callback.finite import FiniteLossGuard
    from learnkit.callback.tracker import SaveModelCallback
    from learnkit.weights_io import WeightsError
    learn, inj = _learn(tmp_path), _InfGrad(epoch=0, batch=2)
    learn.remove_cb(FiniteLossGuard)  # the guard would stop the fit before the damage: here the damage happens
    with learn.no_bar(), learn.no_logging(), pytest.raises(WeightsError, match="model.pth"):
        learn.fit(2, 1e-2, cbs=[inj, SaveModelCallback(every_n_batches=1, with_opt=True)])
    state = torch.load(tmp_path / "models" / "model.pth", weights_only=True)
    assert all(torch.equal(a, b) for a, b in zip(inj.before, state["model"].values()))  # the weights before batch 2


# -- 4. a checkpoint and an export mixed up; resume from a damaged file

def test_learn_load_of_an_export_and_load_learner_of_a_checkpoint_name_the_right_call(tmp_path):
    import shutil
    from learnkit.export import ExportError, load_learner
    from learnkit.weights_io import WeightsError
    learn = _tab_learner(tmp_path)
    exported, saved = learn.export(), learn.save("m")
    shutil.copy(exported, tmp_path / "models" / "exp.pth")
    for name in ("exp", "export.pkl", exported):  # under models/, beside learn.path, an absolute path
        with pytest.raises(WeightsError, match="is an export.*load_learner"):
            learn.load(name)
    with pytest.raises(ExportError, match=r"is a checkpoint \(learn.save\(\).*learn.load"):
        load_learner(saved)


@pytest.mark.parametrize("content", [b"", b"random bytes " * 40, "truncated"])
def test_resume_from_a_damaged_checkpoint_gets_the_learn_load_error(tmp_path, content):
    from learnkit.weights_io import WeightsError
    learn = _learn(tmp_path)
    good = learn.save("ck")
    good.write_bytes(good.read_bytes()[:300] if content == "truncated" else content)
    with pytest.raises(WeightsError, match=r"ck.pth \(\d+ bytes\) is not a readable weight file") as e:
        learn.load("ck")
    with learn.no_bar(), learn.no_logging(), pytest.raises(WeightsError) as e2:
        learn.fit(1, 1e-3, resume="ck")
    assert str(e2.value) == str(e.value)


# -- 5. a writer killed mid save/export leaves a temporary; the next write of that target removes it

_KILLED_WRITER = """
import os, signal, sys
from learnkit.utils import atomic_write
with atomic_write(sys.argv[1], "wb") as f:
    f.write(b"half a file")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _killed_writer(target) -> None:
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(target)], env={**os.environ}, timeout=120)
    assert r.returncode == -9


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL and pid checks are POSIX")
def test_the_next_save_and_export_remove_a_killed_writers_temporary_only(tmp_path):
    import subprocess
    import sys
    from learnkit.utils import _HOST
    learn = _tab_learner(tmp_path)
    saved = learn.save("m")
    (tmp_path / "export.pkl").write_bytes(b"old")
    for target in (saved, tmp_path / "export.pkl"):
        _killed_writer(target)
    left = sorted(p.name for p in tmp_path.rglob("*.tmp"))
    assert len(left) == 2 and all(n.startswith((".m.pth.", ".export.pkl.")) for n in left)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    keep = [f".m.pth.{_HOST}-{os.getppid()}-{'a' * 12}.tmp",  # its writer still runs
            f".m.pth.{_HOST}-{os.getpid()}-{'b' * 12}.tmp",  # this process's own (another thread's) write
            f".m.pth.{'0' * 8 if _HOST != '0' * 8 else '1' * 8}-{dead_pid}-{'c' * 12}.tmp",  # another host's
            f".m.pth.{'d' * 12}.tmp",  # the old pattern: can't tell its writer
            f".other.pth.{_HOST}-{dead_pid}-{'e' * 12}.tmp", f".m.pth.x.{_HOST}-{dead_pid}-{'f' * 12}.tmp",
            "m.pth.tmp", "notes.tmp"]
    for n in keep:
        (tmp_path / "models" / n).write_bytes(b"user's")
    learn.save("m")
    learn.export()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == sorted(keep + ["m.pth"])
    assert not list(tmp_path.glob(".export.pkl.*"))
    learn.load("m", with_opt=False)  # the target is whole
