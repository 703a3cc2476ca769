"""A warning when the same input (a file listed twice) lands in the training and an evaluation split."""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .getters import ColReader

__all__ = ["warn_split_overlap"]

_NAMES = ("training", "validation", "test")


def _input_keys(items: Any, getter: Callable | None) -> list | None:
    """One comparable key per item for its first input (a file name), or None when it can't be had cheaply."""
    if hasattr(items, "iloc") and hasattr(items, "columns"):  # DataFrame rows: read the column, not each row
        if isinstance(getter, ColReader) and len(getter.cols) == 1 and getter.cols[0] in items.columns:
            return items[getter.cols[0]].astype(str).tolist()
        return None
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        return None
    if not all(isinstance(o, (str, os.PathLike)) for o in items):
        return None
    return [os.path.normpath(os.fspath(o)) for o in items]


def warn_split_overlap(items: Any, getter: Callable | None, splits: Sequence[Sequence[int]]) -> None:
    """Warn, naming examples, when an input listed more than once is in the training split and another split."""
    keys = _input_keys(items, getter)
    if keys is None or len(splits) < 2:
        return
    train = {keys[i] for i in splits[0]}
    for k in range(1, len(splits)):
        both = sorted({keys[i] for i in splits[k]} & train)
        if both:
            warnings.warn(f"{len(both)} input(s) are listed more than once and land in both the training and the "
                          f"{_NAMES[k]} set, e.g. {both[:3]}: the {_NAMES[k]} score would be measured on items the "
                          f"model trained on. Drop the duplicates (df.drop_duplicates(subset=[...])) first.",
                          UserWarning, stacklevel=4)
