"""Arguments shared by the item and batch augmentations: pad modes, sizes, checked choices."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["PadMode"]


class PadMode:
    """How padded areas are filled."""

    Zeros = "zeros"
    Border = "border"
    Reflection = "reflection"


_PAD_MODES = (PadMode.Zeros, PadMode.Border, PadMode.Reflection)


def _size_hw(size: int | Sequence[int], name: str) -> tuple[int, int]:
    """``int`` or ``(h, w)`` -> ``(h, w)`` of positive ints."""
    if isinstance(size, (int, np.integer)):
        hw = (int(size), int(size))
    elif isinstance(size, (tuple, list)) and len(size) == 2:
        hw = (int(size[0]), int(size[1]))
    else:
        raise ValueError(f"{name}(size={size!r}): size must be an int or a (height, width) pair.")
    if min(hw) < 1:
        raise ValueError(f"{name}(size={size!r}): sizes must be positive.")
    return hw


def _check_choice(value: str, choices: Sequence[str], arg: str, name: str) -> str:
    if value not in choices:
        raise ValueError(f"{name}({arg}={value!r}): expected one of {list(choices)}.")
    return value
