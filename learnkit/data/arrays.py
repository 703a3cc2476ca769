"""Plain arrays as data: labels from numpy arrays or tensors, the target block they call for, fixed splits.

Shared by ``ImageDataLoaders.from_arrays`` and ``TabularDataLoaders.from_arrays``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .blocks import CategoryBlock, MultiCategoryBlock, RegressionBlock, TransformBlock

__all__ = ["FixedSplitter", "as_numpy", "check_pair", "labels_to_list", "one_hot_to_labels", "label_block"]


def as_numpy(a: Any, name: str) -> np.ndarray:
    """A numpy array, tensor, pandas object or nested list -> a numpy array (errors name ``name``)."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu()
        return (a.float() if a.dtype == torch.bfloat16 else a).numpy()  # numpy has no bfloat16
    if hasattr(a, "to_numpy"):  # pandas
        return a.to_numpy()
    if isinstance(a, np.ndarray):
        return a
    try:
        return np.asarray(a)
    except Exception as e:
        raise TypeError(f"from_arrays: {name} must be a numpy array or a tensor, not a {type(a).__name__}.") from e


def check_pair(pair: Any, name: str) -> tuple:
    """``valid=`` / ``test=`` of ``from_arrays``: a pair ``(x, y)`` of arrays, or a clear error."""
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TypeError(f"from_arrays: {name}= must be a pair (x, y) of arrays, not {type(pair).__name__}"
                        f"{f' of {len(pair)}' if isinstance(pair, (tuple, list)) else ''}.")
    return tuple(pair)


def labels_to_list(y: Any, n: int, name: str = "y", what: str = "images") -> list:
    """Labels (1-D or N x 1: ids, names or numbers; N x k: one row per item) -> a list of plain Python values."""
    a = as_numpy(y, name)
    if a.ndim == 2 and a.shape[1] == 1:  # Keras' (N, 1) column: one label per item, not a one-class multi-label
        a = a[:, 0]
    if a.ndim not in (1, 2) or len(a) != n:
        raise ValueError(f"from_arrays: {name} has shape {tuple(a.shape)} but there are {n} {what}; give one label "
                         f"(or one row of labels) per {what.removesuffix('s')}.")
    return a.tolist()  # numpy scalars -> int/float/str (JSON-safe vocabularies for export)


def one_hot_to_labels(labels: list, vocab: Sequence | None = None) -> tuple[list, Sequence | None]:
    """One-hot rows (Keras' ``to_categorical``: 0/1, exactly one 1 per row) -> class ids (or ``vocab`` names).

    Returns ``(labels, vocab)``; without a ``vocab`` it becomes ``range(k)``, so a class no row has still gets
    its output. Anything else (a row with no 1 or several: multi-label; other values) is returned unchanged.
    """
    if not labels or not isinstance(labels[0], list):
        return labels, vocab
    k = len(labels[0])
    if k < 2 or any(len(row) != k or sum(row) != 1 or not set(row) <= {0, 1} for row in labels):
        return labels, vocab
    if vocab is not None and len(vocab) != k:
        raise ValueError(f"from_arrays: the one-hot labels have {k} columns but vocab has {len(vocab)} classes; "
                         f"give one class name per column.")
    names = list(vocab) if vocab is not None else list(range(k))
    return [names[row.index(1)] for row in labels], names


def label_block(labels: list, vocab: Sequence | None = None) -> TransformBlock:
    """The target block the labels call for: floats -> regression, 0/1 rows -> multi-label, else categories.

    Pass one-hot rows through ``one_hot_to_labels`` first: they are single-label categories.
    """
    first = labels[0]
    if isinstance(first, list):
        flat = {v for row in labels for v in row}
        if flat <= {0, 1}:
            return MultiCategoryBlock(encoded=True, vocab=list(vocab) if vocab is not None else list(range(len(first))))
        return RegressionBlock(n_out=len(first))
    if isinstance(first, float) and vocab is None:
        return RegressionBlock()
    return CategoryBlock(vocab=vocab)


class FixedSplitter:
    """A splitter returning fixed lists of positions (train, valid[, test]): the arrays the user gave apart."""

    def __init__(self, splits: Sequence[Sequence[int]]) -> None:
        self.splits = [list(s) for s in splits]

    def __call__(self, items: Sequence) -> tuple:
        """The fixed splits (``items`` is only checked for length)."""
        n = sum(len(s) for s in self.splits)
        if len(items) != n:
            raise ValueError(f"FixedSplitter was built for {n} items but got {len(items)}.")
        return tuple(self.splits)

    def __repr__(self) -> str:
        return f"FixedSplitter({', '.join(str(len(s)) for s in self.splits)})"
