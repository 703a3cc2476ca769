"""Reading weight files for ``learn.load`` with errors that name the file and the fix (never ``weights_only=False``)."""

from __future__ import annotations

import json
import os
import pickle
from typing import Any

import torch
from torch import nn

__all__ = ["read_weights", "load_model_state", "check_finite_weights", "is_learnkit_export", "WeightsError"]


class WeightsError(RuntimeError):
    """A weight file that can't be read safely, or whose weights don't fit the model."""


def is_learnkit_export(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file ``learn.export()`` wrote (a safetensors file with a learnkit manifest)."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n < 1 << 26:
                return False
            meta = json.loads(f.read(n)).get("__metadata__") or {}
    except (OSError, ValueError, AttributeError):
        return False
    return meta.get("format") == "learnkit-export"


def read_weights(path: str | os.PathLike, device: torch.device | str) -> Any:
    """``torch.load(path, weights_only=True)``: a truncated file or one holding code gives a ``WeightsError``."""
    if is_learnkit_export(path):
        raise WeightsError(f"{path} is an export (learn.export() wrote it), not a checkpoint: load it with "
                           f"load_learner({str(path)!r}). learn.load reads the files learn.save() writes.")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported operand" not in str(e):  # weights_only refused a global: loading it would run code
            raise WeightsError(f"{path} holds more than tensors (pickled objects or code), which learnkit refuses "
                               f"to load since that runs code from the file. Save plain weights with learn.save() "
                               f"or torch.save(model.state_dict(), ...). ({str(e).splitlines()[0][:200]})") from None
        raise _corrupt(path, e) from None
    except OSError:  # unreadable (permissions, I/O): say so as it is
        raise
    except Exception as e:  # truncated, empty, random bytes: zip, EOF, pickle-opcode and other errors
        raise _corrupt(path, e) from None


def _corrupt(path: str | os.PathLike, e: Exception) -> WeightsError:
    size = os.path.getsize(path)
    return WeightsError(f"{path} ({size} bytes) is not a readable weight file: it is truncated or corrupt "
                        f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}). Save it again "
                        f"with learn.save().")


def check_finite_weights(state: dict, path: str | os.PathLike) -> None:
    """Refuse to write ``path`` when a tensor of ``state`` holds NaN/inf, naming the first one (one host read)."""
    items = [(k, v) for k, v in state.items()
             if isinstance(v, torch.Tensor) and (v.is_floating_point() or v.is_complex())]
    if not items:
        return
    dev = items[0][1].device
    ok = torch.stack([torch.isfinite(v).all().to(dev) for _, v in items])
    if bool(ok.all()):
        return
    name = items[int((~ok).nonzero()[0, 0])][0]
    raise WeightsError(f"Refusing to write {path}: the model's {name!r} holds NaN or infinite values (the training "
                       f"diverged), so the file there (if any) is kept as it was. Load the last good weights back "
                       f"(learn.load), then train with a lower learning rate or GradientClip.")


def load_model_state(model: nn.Module, state: dict, path: str | os.PathLike, strict: bool = True) -> None:
    """``model.load_state_dict(state)``, with an error naming the file and the first mismatching keys/shapes."""
    own = model.state_dict()
    shapes = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items()
              if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in state] if strict else []
    unexpected = [k for k in state if k not in own] if strict else []
    if shapes or missing or unexpected:
        parts = [f"shape of {k}: file {a}, model {b}" for k, a, b in shapes[:3]]
        parts += [f"missing from the file: {missing[:3]}"] if missing else []
        parts += [f"not in the model: {unexpected[:3]}"] if unexpected else []
        raise WeightsError(f"{path} holds weights of another architecture or head ({'; '.join(parts)}). Build the "
                           f"learner with the model (and number of classes) the file was saved from; "
                           f"strict=False skips missing/extra keys but not shape changes.")
    model.load_state_dict(state, strict=strict)
