"""The target column(s) of a table: the block inferred as fastai does, encoded and decoded by its kind."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data.blocks import CategoryBlock, MultiCategoryBlock, RegressionBlock, TransformBlock, resolve_block
from .procs import CategoryMap, _column_vocab, _index_of, _plain, _sorted

def _resolve_y_block(y_block: Any, df: pd.DataFrame, y_names: list[str]) -> TransformBlock | None:
    """The target's block: given, or inferred as fastai does (all numeric -> regression, else category)."""
    if not y_names:
        return None
    if y_block is not None:
        return resolve_block(y_block)
    numeric = all(pd.api.types.is_numeric_dtype(df[n]) and not pd.api.types.is_bool_dtype(df[n]) for n in y_names)
    if numeric:
        return RegressionBlock(n_out=len(y_names))
    if len(y_names) > 1:
        raise ValueError(f"y_names={y_names} are not all numeric, so the target would be categorical, which takes one "
                         f"column. For multi-label targets pass y_block=MultiCategoryBlock(encoded=True, "
                         f"vocab={y_names}) with 0/1 columns; for regression, make the columns numeric.")
    return CategoryBlock()


class _Target:
    """Encodes and decodes the target column(s) according to the target block's kind."""

    def __init__(self, kind: str, y_names: list[str], vocab: list | None = None) -> None:
        self.kind, self.y_names = kind, y_names
        self.vocab = CategoryMap(vocab) if vocab is not None else None

    def _label_lists(self, df: pd.DataFrame) -> list[list] | None:
        """The rows of a single column of label lists (or space-separated label strings), else None."""
        if len(self.y_names) != 1:
            return None
        col = df[self.y_names[0]]
        if not (pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col)):
            return None
        return [[] if not isinstance(ls, (list, tuple, set, np.ndarray, str)) and pd.isnull(ls) else
                (str(ls).split() if isinstance(ls, str) else [_plain(l) for l in ls]) for ls in col]

    def setup(self, train: pd.DataFrame) -> None:
        """Learn the class vocabulary from the training rows (category targets without a given vocab)."""
        if self.kind == "category" and self.vocab is None:
            # a pandas categorical keeps its order, limited to the classes present (fastai's strict CategoryMap)
            self.vocab = CategoryMap(_column_vocab(train[self.y_names[0]], only_present=True))
        elif self.kind == "multicategory" and self.vocab is None:
            rows = self._label_lists(train)
            self.vocab = CategoryMap(self.y_names if rows is None else _sorted({l for ls in rows for l in ls}))

    def check_missing(self, df: pd.DataFrame) -> None:
        """Raise if a target column has missing values (no label to learn from or to score against)."""
        n_missing = {n: int(df[n].isnull().sum()) for n in self.y_names}
        bad = {n: k for n, k in n_missing.items() if k}
        if bad:
            n, k = next(iter(bad.items()))
            raise ValueError(f"Target column {n!r} has {k} missing value{'s' if k > 1 else ''}: drop them "
                             f"(df.dropna(subset={list(bad)})) before building the table.")

    def encode(self, df: pd.DataFrame) -> torch.Tensor:
        """Target columns -> int64 ids (category), float32 multi-hot (multicategory) or float32 values (regression)."""
        self.check_missing(df)
        if self.kind == "category":
            col = df[self.y_names[0]]
            codes = _index_of(self.vocab, col)
            if (codes < 0).any():
                bad = list(dict.fromkeys(_plain(v) for v in col[codes < 0]))[:5]
                raise ValueError(f"Target column {self.y_names[0]!r} has values never seen in the training rows: "
                                 f"{bad}. The model can't learn classes it never trains on: change the split, or "
                                 f"pass y_block=CategoryBlock(vocab=[...]) listing every class.")
            return torch.from_numpy(codes)
        if self.kind == "multicategory":
            rows = self._label_lists(df)
            if rows is not None:  # one column of label lists
                out = np.zeros((len(rows), len(self.vocab)), dtype=np.float32)
                for i, ls in enumerate(rows):
                    out[i, self.vocab.map_ids(ls, f"Label in {self.y_names[0]!r}")] = 1.0
                return torch.from_numpy(out)
            return torch.from_numpy(df[self.y_names].to_numpy(dtype=np.float32, copy=True))
        try:
            return torch.from_numpy(df[self.y_names].to_numpy(dtype=np.float32, copy=True))
        except (TypeError, ValueError):
            raise ValueError(f"Regression target column(s) {self.y_names} hold non-numbers: pass "
                             f"y_block=CategoryBlock for classification, or clean the column(s).") from None

    def decode(self, y: Any) -> Any:
        """One encoded target (or prediction) -> what the user knows: a label, a list of labels, or number(s)."""
        y = torch.as_tensor(y).detach().cpu()
        if self.kind == "category":
            return self.vocab[int(y)]
        if self.kind == "multicategory":
            return [self.vocab[i] for i in torch.nonzero(y.flatten() > 0.5).flatten().tolist()]
        y = y.flatten()
        return float(y[0]) if y.numel() == 1 else y.tolist()

    def block(self) -> TransformBlock:
        """The target block the DataLoaders expose (vocab filled in)."""
        if self.kind == "category":
            return CategoryBlock(vocab=list(self.vocab))
        if self.kind == "multicategory":
            return MultiCategoryBlock(encoded=True, vocab=list(self.vocab))
        return RegressionBlock(n_out=len(self.y_names))
