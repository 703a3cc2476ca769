"""Feature tables held in arrays for ``TabularDataLoaders.from_arrays``: numpy/tensor columns -> one DataFrame."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..data.arrays import as_numpy, label_block, labels_to_list, one_hot_to_labels
from ..data.blocks import MultiCategoryBlock

__all__ = ["arrays_to_frame"]


def _features(x: Any, name: str, names: Sequence[str] | None) -> pd.DataFrame:
    a = as_numpy(x, name)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"from_arrays: {name} has shape {tuple(a.shape)}; a feature table is N x n_features.")
    cols = list(names) if names is not None else [f"x{i}" for i in range(a.shape[1])]
    if len(cols) != a.shape[1]:
        raise ValueError(f"from_arrays: {len(cols)} names for {a.shape[1]} feature columns in {name}.")
    return pd.DataFrame(a, columns=cols)


def arrays_to_frame(parts: Sequence[tuple[str, Any, Any]], names: Sequence[str] | None,
                    y_name: str | Sequence[str], vocab: Sequence | None = None) -> tuple[pd.DataFrame, list, list, Any]:
    """``[(what, x, y), ...]`` -> (one DataFrame, its feature names, its target names, the target block)."""
    frames, labels = [], []
    if names is None and isinstance(parts[0][1], pd.DataFrame):
        names = [str(c) for c in parts[0][1].columns]  # a DataFrame's own column names, for every split
    for what, x, y in parts:
        df = _features(x, f"{what}[0]" if what != "x" else "x", names)
        frames.append(df)
        labels += labels_to_list(y, len(df), f"{what}[1]" if what != "x" else "y", what="rows")
    df = pd.concat(frames, ignore_index=True)
    labels, vocab = one_hot_to_labels(labels, vocab)  # Keras' to_categorical: single-label
    block = label_block(labels, vocab)
    if isinstance(labels[0], list):
        y_names = list(y_name) if not isinstance(y_name, str) else [f"{y_name}{i}" for i in range(len(labels[0]))]
        if block.kind == "multicategory":  # one 0/1 column per class, named as the classes
            block = MultiCategoryBlock(encoded=True, vocab=y_names)
        df[y_names] = np.asarray(labels)
    else:
        y_names = [y_name if isinstance(y_name, str) else y_name[0]]
        df[y_names[0]] = labels
    return df, [c for c in df.columns if c not in y_names], y_names, block
