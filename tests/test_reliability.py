"""Reliability: bad inputs and faults give a named error or warning, lose nothing, and never a silent wrong result."""
import errno
import json
import os
import pickle
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.data.block import DataBlock
from learnkit.data.blocks import CategoryBlock
from learnkit.data.core import DataLoaders
from learnkit.data.splitters import IndexSplitter, check_splits
from learnkit.export import ExportError, load_learner
from learnkit.learner import Learner
from learnkit.utils import atomic_write
from learnkit.vision.core import load_image
from learnkit.weights_io import WeightsError

pytestmark = pytest.mark.usefixtures("one_thread")


def _dls(nan_after: int | None = None) -> DataLoaders:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 2, generator=g)
    y = (x[:, 0] > 0).long()
    if nan_after is not None:
        x[nan_after:] = float("nan")
    return DataLoaders(TorchDataLoader(TensorDataset(x[:64], y[:64]), batch_size=16),
                       TorchDataLoader(TensorDataset(x[64:], y[64:]), batch_size=16), device="cpu")


def _learn(tmp_path, dls=None, n_out: int = 2) -> Learner:
    torch.manual_seed(0)
    return Learner(dls if dls is not None else _dls(), nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, n_out)),
                   loss_func=nn.CrossEntropyLoss(), path=tmp_path)


# -- atomic writes onto paths that are not regular files

def test_atomic_write_refuses_a_directory_and_a_fifo(tmp_path):
    d = tmp_path / "adir"
    d.mkdir()
    with pytest.raises(IsADirectoryError, match="a directory"):
        with atomic_write(d) as f:
            f.write(b"x")
    assert d.is_dir() and list(d.iterdir()) == []
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(IsADirectoryError, match="not a regular file"):
        with atomic_write(fifo) as f:
            f.write(b"x")
    assert fifo.is_fifo() and sorted(p.name for p in tmp_path.iterdir()) == ["adir", "pipe"]


def test_atomic_write_follows_a_symlink_and_keeps_it(tmp_path):
    target = tmp_path / "real" / "w.bin"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    with atomic_write(link) as f:
        f.write(b"new")
    assert link.is_symlink() and target.read_bytes() == b"new" and link.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["w.bin"]


def test_save_refuses_a_directory(tmp_path):
    learn = _learn(tmp_path)
    (tmp_path / "models" / "m.pth").mkdir(parents=True)
    with pytest.raises(IsADirectoryError, match="m.pth"):
        learn.save("m")
    assert (tmp_path / "models" / "m.pth").is_dir()


def test_disk_full_during_save_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    learn = _learn(tmp_path)
    path = learn.save("m")
    before = path.read_bytes()
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, k):
            return getattr(self.f, k)

    import learnkit.utils as lu
    monkeypatch.setattr(lu.os, "fdopen", lambda *a, **k: Full(real_fdopen(*a, **k)))
    with torch.no_grad():
        learn.model[0].weight.add_(1)
    with pytest.raises(OSError) as e:
        learn.save("m")
    assert e.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["m.pth"]


# -- NaN / inf loss

def test_nan_loss_stops_the_fit_with_a_warning_and_finite_weights(tmp_path):
    learn = _learn(tmp_path, _dls(nan_after=40))  # batch 2 of epoch 0 holds NaN inputs
    with learn.no_bar(), learn.no_logging(), pytest.warns(RuntimeWarning, match="epoch 0, batch 2"):
        learn.fit(3, 1e-2)
    assert learn.epoch == 0
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())


def test_terminate_on_nan_callback_still_stops_the_fit(tmp_path, capsys):
    from learnkit.callback.training import TerminateOnNaNCallback
    learn = _learn(tmp_path, _dls(nan_after=40))
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter("error")  # the default guard stands down: one message, not two
        learn.fit(3, 1e-2, cbs=TerminateOnNaNCallback())
    assert "stopping the fit" in capsys.readouterr().out and learn.epoch == 0


# -- load: another architecture, truncated, pickles that hold code

class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # creates the marker file if ever unpickled


def test_learn_load_errors_name_the_file_and_never_run_code(tmp_path):
    learn = _learn(tmp_path)
    path = learn.save("m")
    other = _learn(tmp_path, n_out=3)
    with pytest.raises(WeightsError, match=r"m.pth holds weights of another architecture.*file \(2, 8\), model \(3, 8\)"):
        other.load("m")
    (tmp_path / "models" / "cut.pth").write_bytes(path.read_bytes()[:200])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        learn.load("cut")
    marker = tmp_path / "ran.txt"
    torch.save({"model": _Evil(str(marker))}, tmp_path / "models" / "evil.pth")
    with pytest.raises(WeightsError, match="refuses to load") as e:
        learn.load("evil")
    assert "weights_only=False" not in str(e.value) and not marker.exists()


def test_load_learner_refuses_pickles_and_torch_zips_without_running_them(tmp_path):
    marker = tmp_path / "ran.txt"
    (tmp_path / "a.pkl").write_bytes(pickle.dumps(_Evil(str(marker))))
    torch.save(_Evil(str(marker)), tmp_path / "b.pkl")
    assert zipfile.is_zipfile(tmp_path / "b.pkl")
    for name in ("a.pkl", "b.pkl"):
        with pytest.raises(ExportError, match="never unpickles"):
            load_learner(tmp_path / name)
    assert not marker.exists()
    with pytest.raises(ExportError, match="is a folder"):
        load_learner(tmp_path)


# -- DataBlock: get_y None, leaking splitters, a single class

def test_get_y_none_and_bad_splits_are_refused():
    items = list(range(20))
    with pytest.raises(ValueError, match=r"get_y returned a missing label \(None or NaN\) for 10"):
        DataBlock(blocks=(CategoryBlock, CategoryBlock), get_x=lambda i: str(i % 3), get_y=lambda i: None if i % 2 else "b",
                  splitter=IndexSplitter([])).datasets(items)
    with pytest.raises(ValueError, match="both the training and the validation.*leak"):
        check_splits(([0, 1, 2], [2, 3]), 5)
    with pytest.raises(IndexError, match="out of range for 5 items: \\[7\\]"):
        check_splits(([0, 1], [7]), 5)
    with pytest.raises(ValueError, match="repeats training positions"):
        check_splits(([0, 0], [1]), 5)


def test_single_class_warns():
    with pytest.warns(UserWarning, match="single class"):
        DataBlock(blocks=(CategoryBlock, CategoryBlock), get_x=lambda i: "a", get_y=lambda i: "cat",
                  splitter=IndexSplitter([0])).datasets(list(range(6)))


# -- images: EXIF orientation

def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((4, 6, 3), np.uint8)
    arr[0, 0] = 255  # a white pixel top-left of a 6 wide x 4 high picture
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    fn = tmp_path / "turned.jpg"
    img.save(fn, quality=100, exif=exif.tobytes())
    for lazy in (False, True):
        out = np.asarray(load_image(fn, "RGB", lazy=lazy))
        assert out.shape == (6, 4, 3)  # displayed upright: 4 wide, 6 high
        assert out[0, -1].min() > 200 and out[-1, 0].max() < 60  # top-left went to top-right


# -- collab: columns in the wrong order

def test_collab_columns_in_the_wrong_order_are_caught():
    from learnkit.collab.data import CollabDataLoaders
    rng = np.random.default_rng(0)
    good = pd.DataFrame({"user": rng.integers(0, 50, 400), "item": rng.integers(0, 400, 400),
                         "rating": rng.integers(1, 6, 400).astype(float) + 0.5})
    with pytest.raises(ValueError, match="user id column 'rating' holds fractional"):
        CollabDataLoaders.from_df(good[["rating", "item", "user"]], bs=16)
    with pytest.raises(ValueError, match="rating column 'user' holds .* not numbers"):
        CollabDataLoaders.from_df(good.assign(user=good.user.astype(str))[["item", "rating", "user"]], bs=16)
    ints = good.assign(rating=good.rating.astype(int))
    with pytest.warns(UserWarning, match="'rating' has only 5 distinct values.*swapped"):
        CollabDataLoaders.from_df(ints[["rating", "user", "item"]], bs=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dls = CollabDataLoaders.from_df(ints, bs=16)
    assert len(dls.train.dataset) + len(dls.valid.dataset) == 400


# -- predict on a DataFrame of several rows

def test_predict_on_several_rows_raises():
    from learnkit.tabular.core import Categorify, Normalize
    from learnkit.tabular.data import TabularDataLoaders
    from learnkit.tabular.learner import tabular_learner
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=60), "b": rng.choice(["x", "y"], 60)})
    df["y"] = np.where(df.a > 0, "pos", "neg")
    dls = TabularDataLoaders.from_df(df, procs=[Categorify, Normalize], cat_names=["b"], cont_names=["a"],
                                     y_names="y", bs=16, valid_idx=list(range(45, 60)))
    learn = tabular_learner(dls, layers=[8])
    with pytest.raises(ValueError, match="DataFrame of 3 rows.*get_preds"):
        learn.predict(df.iloc[:3])
    one = learn.predict(df.iloc[:1])
    assert one[0]["y"].iloc[0] == learn.predict(df.iloc[0])[0]["y"].iloc[0]


# -- load_learner: weights checksum, vocabulary vs head

def _tab_export(tmp_path):
    from learnkit.tabular.core import Categorify, Normalize
    from learnkit.tabular.data import TabularDataLoaders
    from learnkit.tabular.learner import tabular_learner
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=60), "b": rng.choice(["x", "y"], 60)})
    df["y"] = np.where(df.a > 0.5, "hi", np.where(df.a < -0.5, "lo", "mid"))
    dls = TabularDataLoaders.from_df(df, procs=[Categorify, Normalize], cat_names=["b"], cont_names=["a"],
                                     y_names="y", bs=16, valid_idx=list(range(45, 60)), path=tmp_path)
    learn = tabular_learner(dls, layers=[8])
    return learn, learn.export(), df


def _rewrite_manifest(fname, edit):
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save
    data = fname.read_bytes()
    meta = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])["__metadata__"]
    manifest = json.loads(meta["manifest"])
    edit(manifest)
    fname.write_bytes(st_save(st_load(data), metadata={**meta, "manifest": json.dumps(manifest)}))


def test_load_learner_checks_the_weights_hash_and_the_head(tmp_path):
    learn, fname, df = _tab_export(tmp_path)
    good = fname.read_bytes()
    p0 = load_learner(fname).get_preds(dl=learn.dls.test_dl(df.iloc[:5]))[0]
    flipped = bytearray(good)
    flipped[-3] ^= 0x01  # one bit of the last weight
    fname.write_bytes(bytes(flipped))
    with pytest.raises(ExportError, match="corrupt.*checksum"):
        load_learner(fname)
    fname.write_bytes(good)
    _rewrite_manifest(fname, lambda m: m.pop("weights_sha256"))  # an export from before the checksum
    assert torch.allclose(load_learner(fname).get_preds(dl=learn.dls.test_dl(df.iloc[:5]))[0], p0)

    def drop_label(m):
        m["model"]["out_sz"] = 2
    fname.write_bytes(good)
    _rewrite_manifest(fname, drop_label)
    with pytest.raises(ExportError, match="model has 2 outputs but its vocabulary needs 3"):
        load_learner(fname)


def test_negative_epochs_and_bad_batch_sizes_are_refused(tmp_path):
    learn = _learn(tmp_path)
    with pytest.raises(ValueError, match="n_epoch=-1"):
        learn.fit(-1)
    for bs in (0, -4):
        with pytest.raises(ValueError, match=f"bs \\(the batch size\\) must be a positive integer, got {bs}"):
            DataBlock(blocks=(CategoryBlock, CategoryBlock), get_x=lambda i: str(i % 3),
                      get_y=lambda i: str(i % 2)).dataloaders(list(range(20)), bs=bs)


def test_model_is_in_eval_mode_after_an_interrupted_fit(tmp_path):
    from learnkit.callback.core import Callback

    class Boom(Callback):
        def after_batch(self):
            if self.learn.training and self.learn.iter == 1:
                raise KeyboardInterrupt
    learn = _learn(tmp_path)
    with learn.no_bar(), learn.no_logging(), pytest.raises(KeyboardInterrupt):
        learn.fit(1, cbs=Boom())
    assert not learn.model.training


# -- a corrupt image at fit, predict and test_dl time

def test_a_corrupt_image_is_named_at_fit_predict_and_test_dl(tmp_path):
    from learnkit.data.getters import get_image_files, parent_label
    from learnkit.data.splitters import RandomSplitter
    from learnkit.vision.augment import Resize
    from learnkit.vision.core import ImageBlock, ImageLoadError
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    bad = tmp_path / "a" / "broken.png"
    bad.write_bytes((tmp_path / "a" / "0.png").read_bytes()[:30])  # a truncated download
    dls = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                    splitter=RandomSplitter(0.25, seed=0), item_tfms=Resize(8)).dataloaders(tmp_path, bs=9,
                                                                                               num_workers=0)
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(192, 2)), path=tmp_path)
    with learn.no_bar(), learn.no_logging(), pytest.raises(ImageLoadError, match="broken.png"):
        learn.fit(1)
    with pytest.raises(ImageLoadError, match="broken.png"):
        learn.predict(bad)
    with learn.no_bar(), pytest.raises(ImageLoadError, match="broken.png"):
        learn.get_preds(dl=dls.test_dl([tmp_path / "b" / "0.png", bad]))
    assert len(bad.read_bytes()) == 30  # nothing written over the user's file


# -- SIGINT mid-epoch with SaveModelCallback, in a real subprocess

_CHILD = """
import sys, time, pathlib, torch
sys.path.insert(0, {tests!r})
from test_reliability import _learn
from learnkit.callback.core import Callback
from learnkit.callback.tracker import SaveModelCallback
out = pathlib.Path({out!r})

class Wait(Callback):
    def after_batch(self):
        if self.learn.training and self.learn.epoch == 2 and self.learn.iter == 1:
            (out / "ready").write_text("x")
            while True:
                time.sleep(0.02)  # SIGINT lands here: mid-epoch, between two batches

learn = _learn(out)
with learn.no_bar(), learn.no_logging():
    learn.fit(10, 1e-2, cbs=[SaveModelCallback(every_epoch=True, with_opt=True), Wait()])
"""


@pytest.mark.slow
def test_sigint_mid_epoch_leaves_loadable_checkpoints(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    tests = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(tests), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", _CHILD.format(tests=tests, out=str(tmp_path))], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(1200):  # up to 60 s for the child to start and reach epoch 2
            if (tmp_path / "ready").exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert (tmp_path / "ready").exists(), proc.communicate()[1].decode()[-2000:]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and b"KeyboardInterrupt" in err
    files = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert files == ["model_0.pth", "model_1.pth"]  # epochs 0 and 1 saved, no temporary left
    learn = _learn(tmp_path)
    for name in ("model_0", "model_1"):
        learn.load(name)
        with learn.no_bar():
            preds, targs = learn.get_preds()
        assert preds.shape == (32, 2) and torch.isfinite(preds).all()
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-2)  # the rebuilt learner trains on from the checkpoint
    assert learn.recorder.values and not learn.model.training
