"""Tabular procs, fitted on the training rows of a DataFrame and applied unchanged to every other row.

- ``FillMissing``: continuous columns with missing training values get the training median (by default)
  and a ``<col>_na`` flag, which becomes a categorical column (as in fastai);
- ``Categorify``: each categorical column gets a vocabulary of its training values, with ``'#na#'`` at
  index 0 for missing and unknown values;
- ``Normalize`` (the same class as the image batch transform; ``TabularNormalize`` on tables): continuous
  columns become ``(x - mean) / std`` with training statistics.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..data.label_checks import check_label_types
from ..data.normalize import Normalize
from ..registry import ExportError

__all__ = ["NA", "Procs", "CategoryMap", "Categorify", "FillStrategy", "FillMissing", "TabularNormalize"]

NA = "#na#"
_JSON_VALUES = (str, int, float, bool, type(None))  # what a vocabulary may hold to be exported


def _plain(v: Any) -> Any:
    """numpy scalars -> Python scalars (JSON-safe, hash-equal to what users type); dates -> pandas Timestamps."""
    if isinstance(v, np.datetime64):
        return pd.Timestamp(v)
    if isinstance(v, np.timedelta64):
        return pd.Timedelta(v)
    return v.item() if isinstance(v, np.generic) else v


def _sorted(values: Iterable) -> list:
    vals = list(values)
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


def _pairs(d: dict) -> list:
    """A dict as ``[[key, value], ...]``: JSON keeps non-string keys (int column names) this way."""
    return [[k, v] for k, v in d.items()]


def _unpairs(x: Any) -> dict:
    """``_pairs`` undone (also accepts the older plain-dict form)."""
    return dict(x) if isinstance(x, dict) else {(tuple(k) if isinstance(k, list) else k): v for k, v in x}


def _is_categorical(col: pd.Series) -> bool:
    return isinstance(col.dtype, pd.CategoricalDtype)


def _column_vocab(col: pd.Series, only_present: bool = False) -> list:
    """A column's classes: a pandas categorical's categories in their order (only those present in ``col`` when
    ``only_present``), else its non-missing values, sorted (fastai's ``CategoryMap``)."""
    if _is_categorical(col):
        cats = [_plain(v) for v in col.cat.categories]
        if only_present:
            present = {_plain(v) for v in pd.unique(col.dropna())}
            cats = [v for v in cats if v in present]
        return cats
    values = [_plain(v) for v in pd.unique(col) if not pd.isnull(v)]
    if pd.api.types.is_object_dtype(col):  # only an object column can hold 3 and '3'
        check_label_types(values, f"column {col.name!r}")
    return _sorted(values)


def _suffixed(name: Any, suffix: str) -> Any:
    """``name`` with ``suffix`` appended (``'y_pred'``); a non-string name is kept as is when there's no suffix."""
    return f"{name}{suffix}" if suffix else name


def _index_of(vocab: Sequence, col: pd.Series) -> np.ndarray:
    """Position of each value of ``col`` in ``vocab`` (int64), -1 for missing or unknown values."""
    idx = pd.Index(list(vocab), dtype=object)
    vals = col.astype(object) if pd.api.types.is_datetime64_any_dtype(col) or pd.api.types.is_timedelta64_dtype(col) \
        else col
    return np.asarray(idx.get_indexer(pd.Index(vals.to_numpy(), dtype=object)), dtype=np.int64)


class CategoryMap(list):
    """A vocabulary: a list indexable by integer id, with ``o2i`` mapping each value to its id."""

    def __init__(self, items: Iterable = ()) -> None:
        super().__init__(_plain(v) for v in items)
        self.o2i = {v: i for i, v in enumerate(self)}

    def map_ids(self, values: Iterable, name: str = "value") -> list[int]:
        """Values -> ids, with an error naming the first value that is not in the vocabulary."""
        out = []
        for v in values:
            v = _plain(v)
            if v not in self.o2i:
                shown = list(self[:8]) + (["..."] if len(self) > 8 else [])
                raise KeyError(f"{name} {v!r} is not in the vocabulary learned from the training rows "
                               f"({len(self)} values: {shown}).")
            out.append(self.o2i[v])
        return out


# -- procs

class FillStrategy:
    """How ``FillMissing`` picks the fill value of a column (fastai's namespace)."""

    @staticmethod
    def median(col: pd.Series, fill: Any) -> Any:
        """The column's median."""
        return col.median()

    @staticmethod
    def constant(col: pd.Series, fill: Any) -> Any:
        """The given constant."""
        return fill

    @staticmethod
    def mode(col: pd.Series, fill: Any) -> Any:
        """The most frequent value."""
        return col.dropna().value_counts().idxmax()


class FillMissing:
    """Fill missing continuous values with a training statistic and flag them in a ``<col>_na`` categorical column."""

    order = 0

    def __init__(self, fill_strategy: Any = FillStrategy.median, add_col: bool = True,
                 fill_vals: dict | None = None) -> None:
        if isinstance(fill_strategy, str):
            fill_strategy = getattr(FillStrategy, fill_strategy)
        self.fill_strategy, self.add_col, self.fill_vals = fill_strategy, add_col, dict(fill_vals or {})
        self.na_dict: dict[str, float] = {}  # columns with missing training values -> fill value
        self.fills: dict[str, float] = {}  # every continuous column -> fill value (for missing values met later)

    def setup(self, train: pd.DataFrame, cont_names: Sequence[str]) -> None:
        """Learn a fill value for every continuous column from the training rows."""
        self.fills = {n: _plain(self.fill_strategy(train[n], self.fill_vals.get(n, 0))) for n in cont_names}
        self.na_dict = {n: self.fills[n] for n in cont_names if train[n].isnull().any()}

    def new_cat_names(self) -> list[str]:
        """The flag columns this proc adds."""
        return [f"{n}_na" for n in self.na_dict] if self.add_col else []

    def apply(self, df: pd.DataFrame, cont_names: Sequence[str]) -> None:
        """Fill (in place) and add the flag columns."""
        for n in cont_names:
            missing = df[n].isnull()
            if n in self.na_dict and self.add_col:
                df[f"{n}_na"] = missing.to_numpy()
            if missing.any():
                df[n] = df[n].fillna(self.fills.get(n, 0.0))

    def state(self) -> dict:
        """JSON-safe fitted state."""
        return {"add_col": self.add_col, "na_dict": _pairs(self.na_dict), "fills": _pairs(self.fills)}

    @classmethod
    def from_state(cls, state: dict) -> "FillMissing":
        """Rebuild a fitted proc from ``state()``."""
        p = cls(add_col=state["add_col"])
        p.na_dict, p.fills = _unpairs(state["na_dict"]), _unpairs(state["fills"])
        return p

    def __repr__(self) -> str:
        return f"FillMissing(add_col={self.add_col}, na_dict={self.na_dict})"


class Procs(list):
    """The fitted procs of a table, in order; ``procs.categorify``, ``procs.fill_missing``, ``procs.normalize`` as fastai."""

    def __getattr__(self, name: str) -> Any:
        for p in self:
            if _snake(_proc_name(p)) == name:
                return p
        raise AttributeError(f"No {name!r} in the procs ({[_proc_name(p) for p in self]}).")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Categorify:
    """Categorical columns -> int ids; vocabularies from the training rows, ``'#na#'`` (id 0) for missing/unknown."""

    order = 1

    def __init__(self) -> None:
        self.classes: dict[str, CategoryMap] = {}
        self.all_rows = False  # True: vocabularies from the training and validation rows (collab, as fastai)

    def setup(self, train: pd.DataFrame, cat_names: Sequence[str]) -> None:
        """Learn each column's vocabulary: its (non-missing) training values sorted, or a pandas categorical's
        categories in their order (all of them, as fastai)."""
        self.classes = {n: CategoryMap([NA] + _column_vocab(train[n])) for n in cat_names}

    def __getitem__(self, name: str) -> CategoryMap:
        return self.classes[name]

    def encode(self, col: pd.Series, name: str) -> tuple[np.ndarray, int]:
        """Column -> ids (0 for missing or unknown) and the number of unknown (non-missing) values."""
        voc = self.classes[name]
        codes = _index_of(voc[1:], col) + 1
        unknown = int(((codes == 0) & ~pd.isnull(col).to_numpy()).sum())
        return codes, unknown

    def decode(self, ids: Any, name: str | None = None) -> Any:
        """Ids of column ``name`` -> values; or, as fastai's ``cat.decode(to)``, a copy of the table ``to`` with its
        categorical columns decoded."""
        if name is None and isinstance(getattr(ids, "items", None), pd.DataFrame):  # a TabularPandas
            out = copy.copy(ids)
            out.items = ids.items.copy()
            for n in self.classes:
                if n in out.items.columns:
                    out.items[n] = self.decode(out.items[n].to_numpy(), n)
            return out
        if name is None:
            raise TypeError("Categorify.decode(ids, name): name the column the ids belong to, or pass a TabularPandas.")
        return np.asarray(self.classes[name], dtype=object)[np.asarray(ids, dtype=np.int64)]

    def state(self) -> dict:
        """JSON-safe fitted state."""
        for n, voc in self.classes.items():
            bad = next((v for v in voc if not isinstance(v, _JSON_VALUES)), None)
            if bad is not None:
                raise ExportError(f"Categorical column {n!r} has the value {bad!r} ({type(bad).__name__}) in its "
                                  f"vocabulary, which export can't store: convert the column to strings (or numbers) "
                                  f"before building the DataLoaders, e.g. df[{n!r}] = df[{n!r}].astype(str).")
        return {"classes": [[n, list(v)] for n, v in self.classes.items()]}

    @classmethod
    def from_state(cls, state: dict) -> "Categorify":
        """Rebuild a fitted proc from ``state()``."""
        p = cls()
        p.classes = {n: CategoryMap(v) for n, v in _unpairs(state["classes"]).items()}
        return p

    def __repr__(self) -> str:
        return f"Categorify({ {n: len(v) for n, v in self.classes.items()} })"


class TabularNormalize:
    """What ``Normalize`` does to a table: continuous columns to ``(x - mean) / std`` with training statistics."""

    order = 99

    def __init__(self, owner: Any = None) -> None:
        self.means: dict[str, float] = {}
        self.stds: dict[str, float] = {}
        self.owner = owner  # the Normalize() the user passed: it gets the fitted means/stds too (fastai's norm.means)

    def setup(self, train: pd.DataFrame, cont_names: Sequence[str]) -> None:
        """Mean and (population) std + 1e-7 of each continuous training column, as fastai."""
        self.means = {n: float(train[n].astype(np.float64).mean()) for n in cont_names}
        self.stds = {n: float(train[n].astype(np.float64).std(ddof=0)) + 1e-7 for n in cont_names}
        if self.owner is not None:
            self.owner.means, self.owner.stds = self.means, self.stds

    def encode(self, x: np.ndarray, cont_names: Sequence[str]) -> np.ndarray:
        """(n, n_cont) array -> normalised."""
        return (x - self._vec(self.means, cont_names)) / self._vec(self.stds, cont_names)

    def decode(self, x: np.ndarray, cont_names: Sequence[str]) -> np.ndarray:
        """Undo ``encode``."""
        return x * self._vec(self.stds, cont_names) + self._vec(self.means, cont_names)

    @staticmethod
    def _vec(d: dict, names: Sequence[str]) -> np.ndarray:
        return np.array([d[n] for n in names], dtype=np.float64)

    def state(self) -> dict:
        """JSON-safe fitted state."""
        return {"means": _pairs(self.means), "stds": _pairs(self.stds)}

    @classmethod
    def from_state(cls, state: dict) -> "TabularNormalize":
        """Rebuild a fitted proc from ``state()``."""
        p = cls()
        p.means, p.stds = _unpairs(state["means"]), _unpairs(state["stds"])
        return p

    def __repr__(self) -> str:
        return f"Normalize(tabular, {len(self.means)} columns)"


_PROC_TYPES = {"FillMissing": FillMissing, "Categorify": Categorify, "Normalize": TabularNormalize}


def _resolve_proc(p: Any) -> Any:
    """A proc class or instance -> a fresh (unfitted) or the given proc; ``Normalize`` -> ``TabularNormalize``."""
    if isinstance(p, Normalize):
        return TabularNormalize(owner=p)
    if p is Normalize or p is TabularNormalize:
        return TabularNormalize()
    if isinstance(p, type) and p in (FillMissing, Categorify):
        return p()
    if isinstance(p, (FillMissing, Categorify, TabularNormalize)):
        return p
    raise TypeError(f"{p!r} is not a tabular proc: use Categorify, FillMissing (or FillMissing(add_col=False)) "
                    f"and Normalize.")


def _proc_name(p: Any) -> str:
    return "Normalize" if isinstance(p, TabularNormalize) else type(p).__name__
