"""Tabular preprocessing: procs fitted on the training rows of a DataFrame, and ``TabularPandas`` that runs them.

A proc learns its state from the training split only and then applies it, unchanged, to the validation
rows, to ``test_dl`` frames and to ``predict`` rows:

- ``FillMissing``: continuous columns with missing training values get the training median (by default)
  and a ``<col>_na`` flag, which becomes a categorical column (as in fastai);
- ``Categorify``: each categorical column gets a vocabulary of its training values, with ``'#na#'`` at
  index 0 for missing and unknown values;
- ``Normalize`` (the same class as the image batch transform): continuous columns become
  ``(x - mean) / std`` with training statistics.

Procs always run in that order (fastai's ``order``), whatever order they are listed in. The processed frame
is turned once into whole tensors (``cats`` int64, ``conts`` float32, ``ys``) that the loader slices.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data.normalize import Normalize  # noqa: F401  (the tabular Normalize proc, importable from here)
from ..registry import ExportError
from .embeddings import emb_sz_rule, get_emb_sz
from .procs import (_JSON_VALUES, _PROC_TYPES, NA, CategoryMap, Categorify, FillMissing, FillStrategy, Procs,
                    TabularNormalize, _is_categorical, _plain, _proc_name, _resolve_proc, _suffixed)
from .target import _resolve_y_block, _Target

__all__ = ["NA", "Procs", "CategoryMap", "Categorify", "FillStrategy", "FillMissing", "TabularNormalize", "TabularPandas",
           "cont_cat_split", "emb_sz_rule", "get_emb_sz", "attach_loaders"]

# The loaders (tabular/data.py, tabular/weighted.py) sit on top of this module and attach what
# ``TabularPandas.dataloaders`` / ``weighted_dataloaders`` build, so this module imports neither;
# ``learnkit.tabular`` imports them when it loads.
_LOADERS: dict[str, Callable[..., Any]] = {}


def attach_loaders(name: str, fn: Callable[..., Any]) -> None:
    """Make ``fn(to, ...)`` what ``TabularPandas.<name>(...)`` builds (``'dataloaders'``, ``'weighted_dataloaders'``)."""
    _LOADERS[name] = fn


# -- TabularPandas

def _as_names(x: Any) -> list:
    """Column names as a list: None -> [], a list/tuple/set/Index/array -> its items, anything else -> one name."""
    if x is None:
        return []
    if isinstance(x, (list, tuple, set, frozenset, range, pd.Index, np.ndarray)):
        return [_plain(n) for n in x]
    return [_plain(x)]


def _numeric_conts(df: pd.DataFrame, cont_names: Sequence) -> pd.DataFrame:
    """``df`` with every continuous column numeric (text numbers converted), or an error naming the column."""
    conv = {}
    for c in cont_names:
        col = df[c]
        if pd.api.types.is_numeric_dtype(col) and not _is_categorical(col):
            continue
        try:
            if pd.api.types.is_datetime64_any_dtype(col) or pd.api.types.is_timedelta64_dtype(col):
                raise TypeError
            conv[c] = pd.to_numeric(col.astype(object) if _is_categorical(col) else col)
        except (TypeError, ValueError):
            bad = next((v for v in col if not pd.isnull(v) and pd.isnull(pd.to_numeric(v, errors="coerce"))),
                       col.iloc[0] if len(col) else None)
            raise ValueError(f"Continuous column {c!r} holds non-numbers (e.g. {bad!r}, dtype {col.dtype}): move it "
                             f"to cat_names, or clean it (cont_cat_split(df) sorts columns by type).") from None
    if not conv:
        return df
    df = df.copy()
    for c, v in conv.items():
        df[c] = v
    return df


class TabularPandas:
    """A DataFrame with its categorical/continuous/target columns processed by fitted procs, split into train/valid.

    ``items`` is the processed frame (categorical columns as int ids, continuous columns filled and normalised,
    the target as given). ``cats``/``conts``/``ys`` are the same as whole tensors; ``train``/``valid`` are
    the two splits; ``new(df)`` processes another frame with the fitted procs (no refit).
    """

    def __init__(self, df: pd.DataFrame, procs: Any = None, cat_names: Any = None, cont_names: Any = None,
                 y_names: Any = None, y_block: Any = None, splits: Any = None, do_setup: bool = True,
                 device: Any = None, inplace: bool = False, reduce_memory: bool = True) -> None:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"TabularPandas takes a pandas DataFrame, got {type(df).__name__}.")
        self.cat_names, self.cont_names, self.y_names = _as_names(cat_names), _as_names(cont_names), _as_names(y_names)
        _check_columns(df, self.cat_names, self.cont_names, self.y_names)
        procs = [] if procs is None else (list(procs) if isinstance(procs, (list, tuple)) else [procs])
        self.procs = Procs(sorted((_resolve_proc(p) for p in procs), key=lambda p: p.order))
        if splits is None:
            splits = (list(range(len(df))), [])
        tr, va = list(map(int, splits[0])), list(map(int, splits[1]) if len(splits) > 1 else [])
        if tr + va != list(range(len(df))):  # as fastai: the rows become the training rows, then the validation rows
            df = df.iloc[tr + va]
        self.splits = (list(range(len(tr))), list(range(len(tr), len(tr) + len(va))))
        self.device = device
        block = _resolve_y_block(y_block, df, self.y_names)
        self.target = _Target(block.kind, self.y_names, block.vocab) if block is not None else None
        if self.target is not None and self.target.kind not in ("category", "multicategory", "regression"):
            raise ValueError(f"y_block of kind {self.target.kind!r} is not supported for tables: use CategoryBlock, "
                             f"MultiCategoryBlock(encoded=True, vocab=[...]) or RegressionBlock.")
        if do_setup:
            self._setup(df)

    # -- fitting and applying the procs

    def _setup(self, df: pd.DataFrame) -> None:
        df = _numeric_conts(df, self.cont_names)  # before any proc: a text column fails here, by name
        if self.target is not None:
            self.target.check_missing(df.iloc[self.splits[0] + self.splits[1]])
        train = df.iloc[self.splits[0]]
        cats = list(self.cat_names)
        for p in self.procs:
            if isinstance(p, FillMissing):
                p.setup(train, self.cont_names)
                cats += [n for n in p.new_cat_names() if n not in cats]
                train = train.copy()
                p.apply(train, self.cont_names)
            elif isinstance(p, Categorify):
                p.setup(df.iloc[self.splits[0] + self.splits[1]] if p.all_rows else train, cats)
            else:
                p.setup(train, self.cont_names)
        self.cat_names = cats
        if self.target is not None:
            self.target.setup(train)
        self._encode(df, y_mode="strict")

    def _encode(self, df: pd.DataFrame, y_mode: str, warn_unknown: bool = False) -> None:
        """Run the fitted procs over ``df``; keep the processed frame and its tensors.

        ``y_mode``: ``"strict"`` encodes the target (errors raise: building the table), ``"lenient"`` encodes it when
        it can and otherwise drops it with a warning (``test_dl(with_labels=True)``), ``"quiet"`` does the same
        without the warning (``test_dl()``: labels when the rows have usable ones, as fastai), ``"none"`` skips it.
        """
        df = _numeric_conts(df, self.cont_names).copy()
        unknown: dict[str, int] = {}
        for p in self.procs:
            if isinstance(p, FillMissing):
                p.apply(df, self.cont_names)
        cat = self.categorify
        for n in self.cat_names:
            if n not in df.columns:  # a flag column FillMissing did not add (add_col=False) or a raw frame without it
                df[n] = False
            if cat is not None:
                codes, unk = cat.encode(df[n], n)
                df[n] = codes
                if unk:
                    unknown[n] = unk
        conts = df[self.cont_names].to_numpy(dtype=np.float64) if self.cont_names else np.zeros((len(df), 0))
        if np.isinf(conts).any():  # as would infinities (NaN probabilities at predict)
            bad = [n for n, m in zip(self.cont_names, np.isinf(conts).any(0)) if m]
            raise ValueError(f"Continuous column(s) {bad} hold infinite values (inf or -inf), which would make the "
                             f"model's outputs NaN: replace them, e.g. df[{bad}] = df[{bad}].replace([np.inf, -np.inf], "
                             f"np.nan) with FillMissing in procs.")
        if np.isnan(conts).any():  # missing values would poison the model
            bad = [n for n, m in zip(self.cont_names, np.isnan(conts).any(0)) if m]
            fm = self.fill_missing
            empty = [n for n in bad if fm is not None and pd.isnull(fm.fills.get(n, 0.0))]
            if empty:
                raise ValueError(f"Continuous column(s) {empty} have no values in the training rows (all missing), so "
                                 f"FillMissing has nothing to fill them with: drop them, or fill them yourself.")
            raise ValueError(f"Continuous column(s) {bad} have missing values: add FillMissing to procs.")
        norm = self.normalize
        if norm is not None:
            conts = norm.encode(conts, self.cont_names)
            df[self.cont_names] = conts
        if cat is None and self.cat_names:
            for n in self.cat_names:
                if pd.api.types.is_bool_dtype(df[n]):  # FillMissing's flags without Categorify: 0/1 ids (fastai)
                    df[n] = df[n].astype(np.int64)
            bad = [n for n in self.cat_names if not pd.api.types.is_integer_dtype(df[n])]
            if bad:
                raise ValueError(f"Categorical column(s) {bad} are not integer ids: add Categorify to procs.")
        self.items = df
        self.cats = torch.from_numpy(df[self.cat_names].to_numpy(dtype=np.int64, copy=True).reshape(len(df), -1)) \
            if self.cat_names else torch.zeros(len(df), 0, dtype=torch.int64)
        self.conts = torch.from_numpy(conts.astype(np.float32).reshape(len(df), -1))
        has_y = self.target is not None and y_mode != "none" and all(n in df.columns for n in self.y_names)
        self.ys = None
        if has_y and y_mode == "strict":
            self.ys = self.target.encode(df)
        elif has_y:
            try:
                self.ys = self.target.encode(df)
            except (ValueError, KeyError) as e:
                if y_mode == "lenient":
                    warnings.warn(f"The labels of these rows were dropped (predictions still work): {e}",
                                  stacklevel=3)
        if self.ys is not None and self.target.kind == "category":  # fastai's items hold the encoded target
            self.items[self.y_names[0]] = self.ys.numpy()
        if warn_unknown and unknown:
            shown = ", ".join(f"{n!r}: {k}" for n, k in unknown.items())
            warnings.warn(f"Values never seen in the training rows (per column: {shown}) were mapped to the {NA!r} "
                          f"slot (id 0) of their vocabulary: their embedding was not trained on them, so treat these "
                          f"predictions with care.", stacklevel=3)

    @property
    def categorify(self) -> Categorify | None:
        """The fitted ``Categorify`` proc, if any."""
        return next((p for p in self.procs if isinstance(p, Categorify)), None)

    @property
    def normalize(self) -> TabularNormalize | None:
        """The fitted tabular normalisation, if any."""
        return next((p for p in self.procs if isinstance(p, TabularNormalize)), None)

    @property
    def fill_missing(self) -> FillMissing | None:
        """The fitted ``FillMissing`` proc, if any."""
        return next((p for p in self.procs if isinstance(p, FillMissing)), None)

    @property
    def classes(self) -> dict[str, CategoryMap]:
        """Each categorical column's vocabulary (``'#na#'`` first)."""
        cat = self.categorify
        return dict(cat.classes) if cat is not None else {}

    @property
    def vocab(self) -> CategoryMap | None:
        """The target's vocabulary (classification), else None."""
        return self.target.vocab if self.target is not None else None

    @property
    def c(self) -> int | None:
        """Number of model outputs the target needs."""
        if self.target is None:
            return None
        return len(self.target.vocab) if self.target.vocab is not None else len(self.y_names)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: Any) -> Any:
        """``to['a']``: processed column(s) of ``items`` (fastai's indexing)."""
        return self.items[key]

    @property
    def iloc(self) -> Any:
        """Positional indexing of the processed rows (``to.iloc[0]``, ``to.iloc[:5, 0]``): ``items.iloc``."""
        return self.items.iloc

    @property
    def loc(self) -> Any:
        """Label indexing of the processed rows: ``items.loc``."""
        return self.items.loc

    def decode_row(self, row: pd.Series) -> pd.Series:
        """One processed row (e.g. ``to.items.iloc[0]``) -> its values as the user knows them (fastai's), the
        encoded category target back to its label."""
        out = row.copy().astype(object)
        cat = self.categorify
        for n in self.cat_names:
            if n in row.index and cat is not None:
                out[n] = cat.decode([row[n]], n)[0]
        if self.normalize is not None and all(n in row.index for n in self.cont_names):
            x = np.array([[float(row[n]) for n in self.cont_names]])
            for n, v in zip(self.cont_names, self.normalize.decode(x, self.cont_names)[0]):
                out[n] = v
        t = self.target
        if t is not None and t.kind == "category" and t.vocab is not None and t.y_names[0] in row.index:
            out[t.y_names[0]] = t.vocab[int(row[t.y_names[0]])]
        return out

    @property
    def xs(self) -> pd.DataFrame:
        """The processed input columns (categorical ids, then continuous values), e.g. for a random forest."""
        return self.items[self.cat_names + self.cont_names]

    @property
    def y(self) -> pd.Series:
        """The first target column, encoded (class ids for classification)."""
        return pd.Series(self.ys[:, 0].numpy() if self.ys.ndim > 1 else self.ys.numpy(), index=self.items.index,
                         name=self.y_names[0])

    def new(self, df: pd.DataFrame, warn_unknown: bool = True, with_labels: bool | None = True) -> "TabularPandas":
        """Process another frame with the fitted procs (validation-style: nothing is refitted).

        With ``with_labels`` the target columns, when present, are encoded too; labels that can't be (missing, or a
        class never seen in training) are dropped with a warning, so the rows can still be predicted; with
        ``with_labels=None`` they are dropped silently, and with ``False`` the target is not read.
        """
        if isinstance(df, pd.Series):
            df = df.to_frame().T
        if len(df) == 0:
            raise ValueError(f"The new rows are an empty DataFrame (columns: {list(df.columns)}): there is nothing to "
                             f"predict; check the filter or file that produced them.")
        missing = [n for n in self._raw_cat_names() + self.cont_names if n not in df.columns]
        if missing:
            raise KeyError(f"Column(s) {missing} are missing from the new rows (they have {list(df.columns)}): pass "
                           f"rows with the columns the model was trained on.")
        out = TabularPandas.__new__(TabularPandas)
        out.cat_names, out.cont_names, out.y_names = list(self.cat_names), list(self.cont_names), list(self.y_names)
        out.procs, out.target, out.device = Procs(self.procs), self.target, self.device
        out.splits = (list(range(len(df))), [])
        df = df.reset_index(drop=True)
        for n in self.cont_names:  # rows read from a Series come back as object columns
            if df[n].dtype == object:
                df[n] = pd.to_numeric(df[n], errors="coerce")
        y_mode = "quiet" if with_labels is None else "lenient" if with_labels else "none"
        out._encode(df, y_mode=y_mode, warn_unknown=warn_unknown)
        return out

    def process(self) -> None:
        """Nothing to do: ``new(df)`` already ran the fitted procs (kept so fastai's ``to.new(df).process()`` works)."""

    def _raw_cat_names(self) -> list[str]:
        fm = self.fill_missing
        flags = set(fm.new_cat_names()) if fm is not None else set()
        return [n for n in self.cat_names if n not in flags]

    def subset(self, i: int) -> "_TabSubset":
        """Split ``i`` (0 train, 1 valid)."""
        return _TabSubset(self, self.splits[i])

    @property
    def train(self) -> "_TabSubset":
        """The training rows."""
        return self.subset(0)

    @property
    def valid(self) -> "_TabSubset":
        """The validation rows."""
        return self.subset(1)

    # -- decoding

    def decode_rows(self, cats: torch.Tensor | None, conts: torch.Tensor | None,
                    ys: torch.Tensor | None = None) -> pd.DataFrame:
        """Encoded tensors -> a DataFrame of values the user knows (labels, un-normalised numbers)."""
        cols: dict[str, Any] = {}
        cat = self.categorify
        if cats is not None and self.cat_names:
            c = cats.detach().cpu().numpy()
            for j, n in enumerate(self.cat_names):
                cols[n] = cat.decode(c[:, j], n) if cat is not None else c[:, j]
        if conts is not None and self.cont_names:
            x = conts.detach().cpu().double().numpy()
            if self.normalize is not None:
                x = self.normalize.decode(x, self.cont_names)
            for j, n in enumerate(self.cont_names):
                cols[n] = x[:, j]
        df = pd.DataFrame(cols)
        if ys is not None and self.target is not None:
            df = self._add_y(df, ys, suffix="")
        return df

    def _add_y(self, df: pd.DataFrame, ys: torch.Tensor, suffix: str) -> pd.DataFrame:
        ys = ys.detach().cpu()
        t = self.target
        if t.kind == "category" or t.kind == "multicategory" and len(t.y_names) == 1:
            df[_suffixed(t.y_names[0], suffix)] = [t.decode(y) for y in ys]
        elif t.kind == "multicategory":
            for j, n in enumerate(t.y_names):
                df[_suffixed(n, suffix)] = (ys.reshape(len(ys), -1)[:, j] > 0.5).numpy()
        else:
            y = ys.reshape(len(ys), -1).numpy()
            for j, n in enumerate(t.y_names):
                df[_suffixed(n, suffix)] = y[:, j]
        return df

    # -- export

    def state(self) -> dict:
        """JSON-safe description of the fitted procs and columns (what inference needs)."""
        t = self.target
        bad = next((v for v in (t.vocab or []) if not isinstance(v, _JSON_VALUES)), None) if t is not None else None
        if bad is not None:
            raise ExportError(f"Target column {t.y_names[0]!r} has the class {bad!r} ({type(bad).__name__}), which "
                              f"export can't store: convert the column to strings (or numbers) before building the "
                              f"DataLoaders.")
        return {"cat_names": self.cat_names, "cont_names": self.cont_names, "y_names": self.y_names,
                "procs": [{"name": _proc_name(p), "state": p.state()} for p in self.procs],
                "target": None if t is None else {"kind": t.kind, "vocab": None if t.vocab is None else list(t.vocab)}}

    @classmethod
    def from_state(cls, state: dict) -> "TabularPandas":
        """An empty, fitted ``TabularPandas`` rebuilt from ``state()`` (use ``new(df)`` to process rows)."""
        out = cls.__new__(cls)
        out.cat_names, out.cont_names, out.y_names = list(state["cat_names"]), list(state["cont_names"]), \
            list(state["y_names"])
        out.procs = Procs(_PROC_TYPES[p["name"]].from_state(p["state"]) for p in state["procs"])
        t = state["target"]
        out.target = None if t is None else _Target(t["kind"], out.y_names, t["vocab"])
        out.splits, out.device = ([], []), None
        out.items = pd.DataFrame(columns=out.cat_names + out.cont_names)
        out.cats = torch.zeros(0, len(out.cat_names), dtype=torch.int64)
        out.conts = torch.zeros(0, len(out.cont_names))
        out.ys = None
        return out

    def dataloaders(self, bs: int = 64, shuffle_train: bool = True, val_bs: int | None = None,
                    device: Any = None, path: Any = ".", with_cont: bool = True, **kwargs: Any) -> Any:
        """Training and validation loaders over these rows (``TabularDataLoaders``)."""
        return _LOADERS["dataloaders"](self, bs=bs, shuffle_train=shuffle_train, val_bs=val_bs,
                                       device=device if device is not None else self.device, path=path,
                                       with_cont=with_cont, **kwargs)

    def weighted_dataloaders(self, wgts: Sequence[float], bs: int = 64, **kwargs: Any) -> Any:
        """Loaders whose training rows are drawn with replacement with weights ``wgts`` (``TabWeightedDL``)."""
        return _LOADERS["weighted_dataloaders"](self, wgts, bs=bs, **kwargs)

    def show(self, max_n: int = 10) -> pd.DataFrame:
        """The first ``max_n`` rows, decoded."""
        n = min(max_n, len(self))
        return self.decode_rows(self.cats[:n], self.conts[:n], None if self.ys is None else self.ys[:n])

    def __repr__(self) -> str:
        return (f"TabularPandas({len(self.splits[0])} train, {len(self.splits[1])} valid rows; cat_names="
                f"{self.cat_names}, cont_names={self.cont_names}, y_names={self.y_names})")


class _TabSubset:
    """One split of a ``TabularPandas``: its rows (``items``) and tensors (``cats``, ``conts``, ``ys``)."""

    def __init__(self, to: TabularPandas, idxs: Sequence[int]) -> None:
        self.to, self.idxs = to, list(idxs)
        ix = torch.as_tensor(self.idxs, dtype=torch.int64)
        self.cats, self.conts = to.cats[ix], to.conts[ix]
        self.ys = to.ys[ix] if to.ys is not None else None

    def __len__(self) -> int:
        return len(self.idxs)

    @property
    def items(self) -> pd.DataFrame:
        """The processed rows of this split."""
        return self.to.items.iloc[self.idxs]

    @property
    def xs(self) -> pd.DataFrame:
        """The processed input columns of this split."""
        return self.items[self.to.cat_names + self.to.cont_names]

    @property
    def y(self) -> pd.Series:
        """The first target column of this split, encoded."""
        return self.to.y.iloc[self.idxs]

    def __getattr__(self, name: str) -> Any:  # cat_names, classes, vocab... come from the whole table
        if name in ("to", "idxs"):
            raise AttributeError(name)
        return getattr(self.to, name)


# -- helpers

def _check_columns(df: pd.DataFrame, cat_names: list, cont_names: list, y_names: list) -> None:
    """Refuse a frame without rows, named columns it lacks or holds twice, and a target also given as an input."""
    if len(df) == 0:
        raise ValueError(f"The DataFrame has no rows (columns: {list(df.columns)}): check the filter or file that "
                         f"produced it.")
    used = cat_names + cont_names + y_names
    missing = [n for n in used if n not in df.columns]
    if missing:
        raise KeyError(f"Column(s) {missing} are not in the DataFrame (columns: {list(df.columns)}): check "
                       f"cat_names / cont_names / y_names.")
    dup = sorted({str(n) for n in df.columns[df.columns.duplicated()] if n in used})
    if dup:
        raise ValueError(f"Column name(s) {dup} appear more than once in the DataFrame: rename or drop the copies "
                         f"(e.g. df = df.loc[:, ~df.columns.duplicated()]).")
    inputs = set(cat_names + cont_names)
    leak = [n for n in y_names if n in inputs]
    if leak:
        raise ValueError(f"Column(s) {leak} are the target (y_names) and also an input (cat_names/cont_names): the "
                         f"model would be given the answer. Remove them from the inputs.")
    twice = [n for n in dict.fromkeys(used) if used.count(n) > 1]
    if twice:
        raise ValueError(f"Column(s) {twice} are listed more than once in cat_names/cont_names: list each once.")


def cont_cat_split(df: pd.DataFrame, max_card: int = 20, dep_var: Any = None) -> tuple[list[str], list[str]]:
    """Split columns into continuous and categorical (fastai's rule): ``(cont_names, cat_names)``.

    Float columns, and integer columns with more than ``max_card`` distinct values, are continuous; the rest
    (strings, categories, small-cardinality integers) are categorical. ``dep_var`` (one name or a list) is skipped.
    """
    skip = set(_as_names(dep_var))
    cont, cat = [], []
    for n in df.columns:
        if n in skip:
            continue
        col = df[n]
        if pd.api.types.is_float_dtype(col) or (pd.api.types.is_integer_dtype(col) and col.nunique() > max_card):
            cont.append(n)
        else:
            cat.append(n)
    return cont, cat
