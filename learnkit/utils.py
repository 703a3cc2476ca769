"""Layer-0 helpers: ``Path`` with ``.ls()``, seeding, device choice, atomic file writes, moving batches to a device."""
from __future__ import annotations

import hashlib
import importlib
import mimetypes
import os
import pathlib
import random
import re
import socket
import stat
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

import numpy as np
import torch

__all__ = ["Path", "set_seed", "default_device", "atomic_write", "to_device", "one_hot", "pca", "tensor", "range_of",
           "write_under_path", "optional_import", "remove_stale_temps", "to_np"]


def _normalize_exts(exts: str | Iterable[str] | None) -> set[str]:
    """``'png'``, ``'.PNG'`` or a collection of them -> a set of lower-case suffixes with a leading dot."""
    if exts is None:
        return set()
    if isinstance(exts, str):
        exts = [exts]
    return {(e if e.startswith(".") else "." + e).lower() for e in exts}


# Subclass the concrete class pathlib.Path() builds (PosixPath / WindowsPath): it carries its flavour on every
# Python from 3.10 on, where subclassing pathlib.Path itself needs ``_flavour`` set by hand before 3.12.
class Path(type(pathlib.Path())):  # type: ignore[misc]
    """A ``pathlib.Path`` with ``.ls()``; children, parents and ``/`` results stay this class."""

    BASE_PATH: "pathlib.Path | None" = None  # as fastcore's: when set, reprs show paths relative to it

    def __repr__(self) -> str:
        base, p = type(self).BASE_PATH, self
        if base is not None:
            try:
                p = self.relative_to(base)
            except ValueError:
                pass
        return f"Path({p.as_posix()!r})"

    def ls(self, n_max: int | None = None, file_type: str | None = None,
           file_exts: str | Iterable[str] | None = None) -> "L":
        """The folder's entries, sorted by name; optionally only ``file_exts`` / a mime ``file_type`` ('image'), at most ``n_max``."""
        if not self.exists():
            raise FileNotFoundError(f"Can't list {str(self)!r}: it does not exist (working folder: {os.getcwd()}).")
        if not self.is_dir():
            raise NotADirectoryError(f"Can't list {str(self)!r}: it is a file, not a folder; list its parent instead.")
        exts = _normalize_exts(file_exts)
        if file_type:
            exts |= {k.lower() for k, v in mimetypes.types_map.items() if v.startswith(file_type + "/")}
        res = sorted(self.iterdir())
        if exts:
            res = [p for p in res if p.suffix.lower() in exts]
        from fastcore.foundation import L  # fastai's list: path.ls().sorted(), .map(...), .attrgot('name')
        return L(res if n_max is None else res[:n_max])


def to_np(x: Any) -> Any:
    """Tensors -> NumPy arrays (detached, on the CPU), also inside lists, tuples and dicts (fastai's)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, Mapping):
        return {k: to_np(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(to_np(v) for v in x) if not hasattr(x, "_fields") else type(x)(*(to_np(v) for v in x))
    return x


def set_seed(s: int, reproducible: bool = False) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every GPU); ``reproducible`` also makes cuDNN deterministic."""
    if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
        raise TypeError(f"set_seed needs an integer seed, got {s!r} ({type(s).__name__}).")
    s = int(s)
    random.seed(s)
    np.random.seed(s % 2**32)  # NumPy's legacy seeding takes 0 <= s < 2**32
    torch.manual_seed(s)  # also seeds every CUDA device
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(s)
    if reproducible:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def default_device(use: bool | str | torch.device | None = None) -> torch.device:
    """The device to train on: CUDA if available, else Apple MPS, else CPU; ``use=False`` forces CPU, a name picks it."""
    if isinstance(use, (str, torch.device)):
        return torch.device(use)
    if use is False:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if _mps_available():
        return torch.device("mps")
    if use is True:
        raise RuntimeError("default_device(use=True) asked for a GPU, but neither CUDA nor MPS is available here: "
                           "pass use=None to fall back to the CPU.")
    return torch.device("cpu")


_WRITE_MODES = {"w", "wb", "w+", "wb+", "w+b", "wt", "wt+", "w+t"}


def _regular_target(target: pathlib.Path) -> pathlib.Path:
    """Resolve a symlink to the file it names; refuse a target that exists and is not a regular file."""
    if target.is_symlink():
        target = pathlib.Path(os.path.realpath(target))  # write the link's target, never replace the link
    if target.exists() and not target.is_file():
        kind = "a directory" if target.is_dir() else "not a regular file (a device, fifo or socket)"
        raise IsADirectoryError(f"Can't write {str(target)!r}: it is {kind}; give the path of a regular file "
                                f"(e.g. {str(target / 'model.pth') if target.is_dir() else 'model.pth'!r}).")
    return target


# atomic_write's temporaries: ".<name>.<host>-<pid>-<random>.tmp", beside the target
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]{12}\.tmp")


def _pid_running(pid: int) -> bool:
    if os.name == "nt":  # os.kill would end the process there: assume it runs
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it runs under another user
        return True
    return True


def remove_stale_temps(target: str | os.PathLike) -> list[pathlib.Path]:
    """Remove the temporaries of ``target`` that a killed ``atomic_write`` left: its name pattern, written on this
    host by a process that no longer runs; nothing else. Returns what it removed."""
    target = pathlib.Path(target)
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    prefix = f".{target.name}."
    for e in entries:
        m = _TEMP.fullmatch(e.name) if e.name.startswith(prefix) else None
        if m is None or m["name"] != target.name or m["host"] != _HOST or int(m["pid"]) == os.getpid():
            continue
        if not e.is_file(follow_symlinks=False) or _pid_running(int(m["pid"])):
            continue
        try:
            os.unlink(e.path)
            removed.append(pathlib.Path(e.path))
        except FileNotFoundError:  # another writer removed it first
            pass
    return removed


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Write ``path`` all at once: yield a temp file in the same folder, ``os.replace`` it onto ``path`` on success.

    On an exception the temp file is removed and an existing ``path`` is left untouched; temporaries of ``path``
    that a killed writer left are removed first (``remove_stale_temps``).
    """
    if mode not in _WRITE_MODES:
        raise ValueError(f"atomic_write mode must be a write mode such as 'wb' or 'w', got {mode!r} "
                         f"(appending can't be atomic: read the file, then write it whole).")
    target = _regular_target(pathlib.Path(path))
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"Can't write {str(target)!r}: its folder {str(folder)!r} does not exist; "
                                f"create it first (e.g. Path(...).mkdir(parents=True, exist_ok=True)).")
    remove_stale_temps(target)
    while True:  # O_EXCL: never reuse a name another writer holds; 0o666 lets the umask apply as for a plain open()
        tmp = folder / f".{target.name}.{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:  # pragma: no cover - astronomically unlikely
            continue
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if target.exists():  # keep the permissions of the file being replaced
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _norm_device(device: torch.device | str) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _to(b: Any, device: torch.device, non_blocking: bool) -> Any:
    if isinstance(b, torch.Tensor):
        if b.device == device:
            return b
        # non_blocking only for host -> accelerator copies: a non-blocking copy back to the CPU can be read unfinished
        return b.to(device, non_blocking=non_blocking and device.type != "cpu")
    if isinstance(b, (str, bytes)):
        return b
    if isinstance(b, tuple) and hasattr(b, "_fields"):  # namedtuple
        return type(b)(*(_to(o, device, non_blocking) for o in b))
    if isinstance(b, (list, tuple)):
        return type(b)(_to(o, device, non_blocking) for o in b)
    if isinstance(b, Mapping):
        out = {k: _to(v, device, non_blocking) for k, v in b.items()}
        if type(b) is dict:
            return out
        try:
            return type(b)(out)
        except TypeError:
            return out
    return b


def to_device(b: Any, device: torch.device | str | None = None, non_blocking: bool = True) -> Any:
    """Move the tensors in a (nested) tuple/list/dict to ``device`` (``default_device()`` if None); others are kept."""
    return _to(b, _norm_device(default_device() if device is None else device), non_blocking)


def tensor(x: Any, *rest: Any, **kwargs: Any) -> torch.Tensor:
    """``torch.tensor`` that, like fastai's, also takes PIL images, arrays, DataFrames and ``tensor(1, 2, 3)``; a plain Tensor."""
    if rest:
        x = (x, *rest)
    if isinstance(x, torch.Tensor):
        return x.to(**kwargs) if kwargs else x
    if hasattr(x, "to_numpy"):  # pandas Series / DataFrame
        x = x.to_numpy()
    elif not isinstance(x, np.ndarray) and hasattr(x, "__array_interface__"):  # PIL image: HW or HWC uint8
        x = np.array(x)
    if isinstance(x, np.ndarray):  # shares memory when it can (read-only arrays are copied)
        return torch.as_tensor(x, **kwargs) if x.flags.writeable else torch.tensor(x, **kwargs)
    return torch.tensor(x, **kwargs)


def range_of(x: Any) -> list[int]:
    """``list(range(len(x)))``: the row indices a splitter takes (``RandomSplitter()(range_of(df))``, as in fastai)."""
    return list(range(len(x)))


def one_hot(x: Any, c: int) -> torch.Tensor:
    """Multi-hot float vector of length ``c`` with ones at the indices ``x`` (an int or a list of ints)."""
    out = torch.zeros(c, dtype=torch.float32)
    idx = torch.as_tensor(x, dtype=torch.long).reshape(-1)
    if idx.numel() and (idx.min() < 0 or idx.max() >= c):
        raise IndexError(f"one_hot: index {idx.tolist()} out of range for {c} classes.")
    out[idx] = 1.0
    return out


def pca(x: torch.Tensor, k: int = 2) -> torch.Tensor:
    """Project the rows of ``x`` on their first ``k`` principal components (fastai's ``x.pca(k)``)."""
    x = x.float() - x.float().mean(0)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    return x @ v[:k].T


def write_under_path(learn: Any, fname: str | os.PathLike, blob: bytes) -> Path:
    """Write ``blob`` atomically to ``fname`` (relative names are under ``learn.path``); returns the path."""
    path = Path(fname)
    if not path.is_absolute():
        path = Path(learn.path) / path
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        f.write(blob)
    return path


def optional_import(module: str, message: str) -> Any:
    """The module named ``module`` (an optional dependency), or an ImportError with ``message`` saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(message) from e
