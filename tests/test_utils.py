"""Tests for learnkit.utils: Path.ls, set_seed, default_device, atomic_write, to_device."""
import os
import pathlib
import pickle
import random
from collections import OrderedDict, namedtuple

import numpy as np
import pytest
import torch

from learnkit.utils import Path, atomic_write, default_device, set_seed, to_device


# ---- Path
def test_path_is_pathlib_subclass_and_children_keep_class(tmp_path):
    p = Path(tmp_path)
    assert isinstance(p, pathlib.Path)
    (p / "a").mkdir()
    (p / "a" / "x.txt").write_text("hi")
    for q in (p / "a", p.parent, p.joinpath("a", "x.txt"), p.with_name("z"), (p / "a").resolve(),
              next(iter((p / "a").iterdir()))):
        assert type(q) is Path
    assert (p / "a" / "x.txt").read_text() == "hi"


def test_path_pickles_as_path(tmp_path):
    p = Path(tmp_path) / "f.png"
    q = pickle.loads(pickle.dumps(p))
    assert q == p and type(q) is Path


def test_ls_sorted_filters_and_n_max(tmp_path):
    for name in ["b.png", "a.JPG", "c.txt", "d.csv"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    p = Path(tmp_path)
    assert [o.name for o in p.ls()] == ["a.JPG", "b.png", "c.txt", "d.csv", "sub"]
    assert all(type(o) is Path for o in p.ls())
    assert [o.name for o in p.ls(n_max=2)] == ["a.JPG", "b.png"]
    assert [o.name for o in p.ls(file_exts=[".txt", "csv"])] == ["c.txt", "d.csv"]
    assert [o.name for o in p.ls(file_exts=".png")] == ["b.png"]
    assert [o.name for o in p.ls(file_type="image")] == ["a.JPG", "b.png"]


def test_ls_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        Path(tmp_path / "nope").ls()
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(NotADirectoryError, match="f.txt"):
        Path(tmp_path / "f.txt").ls()


# ---- set_seed
def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_set_seed_repeats_all_generators():
    set_seed(123)
    a = _draws()
    set_seed(123)
    assert _draws() == a
    set_seed(124)
    assert _draws() != a


def test_set_seed_reproducible_sets_cudnn():
    old = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    try:
        set_seed(0, reproducible=True)
        assert torch.backends.cudnn.deterministic is True and torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old


def test_set_seed_large_and_bad_seed():
    set_seed(2**40)  # beyond NumPy's legacy range: still accepted
    with pytest.raises(TypeError, match="integer seed"):
        set_seed(1.5)


# ---- default_device
def test_default_device_matches_availability():
    d = default_device()
    if torch.cuda.is_available():
        assert d.type == "cuda"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        assert d.type == "mps"
    else:
        assert d == torch.device("cpu")
    assert default_device(False) == torch.device("cpu")
    assert default_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_default_device_true_without_gpu_raises():
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        pytest.skip("MPS available")
    with pytest.raises(RuntimeError, match="neither CUDA nor MPS"):
        default_device(True)


# ---- atomic_write
def test_atomic_write_success_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as f:
        f.write(b"new contents")
        assert target.read_bytes() == b"old"  # not visible until the block ends
    assert target.read_bytes() == b"new contents"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_atomic_write_text_mode_and_new_file(tmp_path):
    target = tmp_path / "new.txt"
    with atomic_write(str(target), mode="w") as f:
        f.write("héllo")
    assert target.read_text(encoding="utf-8") == "héllo"
    assert os.listdir(tmp_path) == ["new.txt"]


def test_atomic_write_failure_keeps_old_target_and_removes_temp(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target) as f:
            f.write(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_atomic_write_failure_without_target_leaves_nothing(tmp_path):
    with pytest.raises(KeyError):
        with atomic_write(tmp_path / "x.bin") as f:
            f.write(b"half")
            raise KeyError("k")
    assert os.listdir(tmp_path) == []


def test_atomic_write_keeps_permissions_and_checks_args(tmp_path):
    target = tmp_path / "p.bin"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    with atomic_write(target) as f:
        f.write(b"new")
    assert (os.stat(target).st_mode & 0o777) == 0o640
    with pytest.raises(ValueError, match="write mode"):
        with atomic_write(target, mode="a"):
            pass
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        with atomic_write(tmp_path / "missing_dir" / "f.bin"):
            pass


# ---- to_device
def test_to_device_nested_structures_keep_types():
    Pair = namedtuple("Pair", "x y")
    t = torch.arange(3)
    b = (t, [t, {"a": t, "s": "txt"}], Pair(t, 1), OrderedDict(k=t))
    out = to_device(b, "cpu")
    assert type(out) is tuple and type(out[1]) is list and type(out[2]) is Pair and type(out[3]) is OrderedDict
    assert out[0] is t and out[1][0] is t and out[1][1]["a"] is t  # already there: same objects
    assert out[1][1]["s"] == "txt" and out[2].y == 1


def test_to_device_moves_dtype_preserved_on_meta():
    t = torch.ones(2, 2, dtype=torch.float16)
    out = to_device({"x": [t]}, torch.device("meta"))
    assert out["x"][0].device.type == "meta" and out["x"][0].dtype == torch.float16 and out["x"][0].shape == (2, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_to_device_cuda_roundtrip():
    t = torch.arange(4).pin_memory()
    g = to_device((t,), "cuda")[0]
    assert g.is_cuda and g.device.index == torch.cuda.current_device()
    assert to_device(g, "cuda") is g
    assert torch.equal(to_device(g, "cpu"), torch.arange(4))
