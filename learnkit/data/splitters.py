"""Splitters: ``splitter(items) -> (train_idxs, valid_idxs)``, two lists of positions into ``items``.

``items`` is a list (of paths, rows...) or a DataFrame (positions are row positions, as ``df.iloc``).
Every splitter is a module-level class, so it pickles. An empty training or validation split is
not an error here: ``DataBlock`` reports it with the context it has.
"""
from __future__ import annotations

import difflib
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch

from ..utils import Path

__all__ = [
    "RandomSplitter", "TrainTestSplitter", "IndexSplitter", "GrandparentSplitter", "FuncSplitter",
    "MaskSplitter", "FileSplitter", "ColSplitter", "EndSplitter", "TrainValidTestSplitter", "RandomSubsetSplitter",
    "check_splits",
]

Splits = tuple[list[int], list[int]]


def check_splits(splits: Any, n: int, splitter: Any = None) -> list[list[int]]:
    """Return ``splits`` (train, valid[, test]) as lists of ints after checking them: in range, no repeats, disjoint."""
    names = ("training", "validation", "test")
    try:
        out = [[int(i) for i in s] for s in splits]
    except (TypeError, ValueError) as e:
        raise TypeError(f"The splitter {splitter!r} must return (train_idxs, valid_idxs) or (train, valid, test), "
                        f"lists of integer positions; got {type(splits).__name__} ({e}).") from None
    if not 2 <= len(out) <= 3:
        raise TypeError(f"The splitter {splitter!r} returned {len(out)} splits: give (train_idxs, valid_idxs) or "
                        f"(train_idxs, valid_idxs, test_idxs).")
    for name, idx in zip(names, out):
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise IndexError(f"The splitter {splitter!r} gave {name} positions out of range for {n} items: {bad[:5]}. "
                             f"Positions run from 0 to {n - 1}.")
        if len(set(idx)) != len(idx):
            dup = [i for i, c in Counter(idx).items() if c > 1]
            raise ValueError(f"The splitter {splitter!r} repeats {name} positions {dup[:5]}: each item once only.")
    for a in range(len(out)):
        for b in range(a + 1, len(out)):
            leak = sorted(set(out[a]) & set(out[b]))
            if leak:
                raise ValueError(f"The splitter {splitter!r} puts {len(leak)} items in both the {names[a]} and the "
                                 f"{names[b]} set (positions {leak[:5]}): the {names[b]} set would leak into "
                                 f"{names[a]}. Give disjoint splits.")
    return out


def _iter_items(items: Any) -> Iterable:
    """Items one by one: rows (Series) for a DataFrame, elements otherwise."""
    if hasattr(items, "iloc") and hasattr(items, "columns"):
        return (items.iloc[i] for i in range(len(items)))
    return iter(items)


def _mask_to_splits(mask: Sequence[bool]) -> Splits:
    """Boolean validation mask -> (positions where False, positions where True)."""
    train, valid = [], []
    for i, m in enumerate(mask):
        (valid if m else train).append(i)
    return train, valid


def _check_pct(name: str, pct: float) -> None:
    if not 0 <= pct < 1:
        raise ValueError(f"{name}={pct!r} must be a fraction in [0, 1), e.g. 0.2 for 20% of the items.")


def _n_cut(pct: float, n: int) -> int:
    # int() as fastai, with a nudge so that float error (0.29 * 100 = 28.999...) doesn't drop an item
    return int(pct * n + 1e-9)


class RandomSplitter:
    """Put a random ``valid_pct`` of the items in the validation set; ``seed`` makes it repeatable.

    A seeded split uses its own generator (global random state is neither read nor changed) and
    gives the same split as fastai's ``RandomSplitter`` with that seed. Without a seed, torch's
    global generator is used, so ``set_seed`` makes it repeatable.
    """

    def __init__(self, valid_pct: float = 0.2, seed: int | None = None) -> None:
        _check_pct("valid_pct", valid_pct)
        self.valid_pct, self.seed = valid_pct, seed

    def __call__(self, items: Sequence) -> Splits:
        """Split positions ``0..len(items)-1``."""
        n = len(items)
        gen = torch.Generator().manual_seed(int(self.seed)) if self.seed is not None else None
        perm = torch.randperm(n, generator=gen).tolist()
        cut = _n_cut(self.valid_pct, n)
        return perm[cut:], perm[:cut]

    def __repr__(self) -> str:
        return f"RandomSplitter(valid_pct={self.valid_pct}, seed={self.seed})"


def _split_sizes(n: int, test_size: float | int | None, train_size: float | int | None) -> tuple[int, int]:
    """(n_train, n_test) as scikit-learn's ``train_test_split`` computes them (an empty side is allowed)."""
    if test_size is None and train_size is None:
        test_size = 0.25
    for name, v in (("test_size", test_size), ("train_size", train_size)):
        if v is None:
            continue
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"TrainTestSplitter: {name}={v!r} must be a fraction (float) or a count (int).")
        if isinstance(v, (float, np.floating)) and not 0 <= v < 1:
            raise ValueError(f"TrainTestSplitter: {name}={v} must be in [0, 1) as a fraction, or an int count.")
        if isinstance(v, (int, np.integer)) and not 0 <= v <= n:
            raise ValueError(f"TrainTestSplitter: {name}={v} must be between 0 and the number of items ({n}).")
    n_test = (math.ceil(test_size * n) if isinstance(test_size, (float, np.floating)) else
              int(test_size) if test_size is not None else None)
    n_train = (math.floor(train_size * n) if isinstance(train_size, (float, np.floating)) else
               int(train_size) if train_size is not None else None)
    if n_train is None:
        n_train = n - n_test
    elif n_test is None:
        n_test = n - n_train
    if n_train + n_test > n:
        raise ValueError(f"TrainTestSplitter: train_size={train_size} and test_size={test_size} ask for "
                         f"{n_train} + {n_test} items, more than the {n} there are.")
    return n_train, n_test


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Per-class draw counts closest to ``n_draws`` in proportion to ``class_counts`` (ties broken at random)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


class TrainTestSplitter:
    """Split like scikit-learn's ``train_test_split`` (same sizes, same stratification), without scikit-learn.

    ``test_size``/``train_size``: a fraction or a count. ``stratify``: one label per item, to keep each
    class's share the same in both splits. ``random_state`` seeds a private NumPy ``RandomState``
    (the algorithm and random calls follow scikit-learn's); ``None`` uses NumPy's global state.
    """

    def __init__(self, test_size: float | int | None = 0.2, random_state: int | np.random.RandomState | None = None,
                 stratify: Sequence | None = None, train_size: float | int | None = None,
                 shuffle: bool = True) -> None:
        if stratify is not None and not shuffle:
            raise ValueError("TrainTestSplitter: a stratified split needs shuffle=True (as in scikit-learn).")
        self.test_size, self.random_state, self.train_size, self.shuffle = test_size, random_state, train_size, shuffle
        self.stratify = None if stratify is None else np.asarray(stratify)

    def _rng(self) -> np.random.RandomState:
        if self.random_state is None:
            return np.random.mtrand._rand  # NumPy's global RandomState, as scikit-learn's check_random_state(None)
        if isinstance(self.random_state, np.random.RandomState):
            return self.random_state
        return np.random.RandomState(self.random_state)

    def __call__(self, items: Sequence) -> Splits:
        """Split positions ``0..len(items)-1``."""
        n = len(items)
        n_train, n_test = _split_sizes(n, self.test_size, self.train_size)
        if not self.shuffle:
            return list(range(n_train)), list(range(n_train, n_train + n_test))
        rng = self._rng()
        if self.stratify is None:
            perm = rng.permutation(n)
            return perm[n_test:n_test + n_train].tolist(), perm[:n_test].tolist()
        return self._stratified(n, n_train, n_test, rng)

    def _stratified(self, n: int, n_train: int, n_test: int, rng: np.random.RandomState) -> Splits:
        y = self.stratify
        if len(y) != n:
            raise ValueError(f"TrainTestSplitter: stratify has {len(y)} labels but there are {n} items: give one "
                             f"label per item, in item order.")
        if y.ndim == 2:
            y = np.array([" ".join(row.astype("str")) for row in y])
        classes, y_idx = np.unique(y, return_inverse=True)
        counts = np.bincount(y_idx)
        if counts.min() < 2:
            rare = [classes[i] for i in np.flatnonzero(counts < 2)][:10]
            raise ValueError(f"TrainTestSplitter: class(es) {rare} have a single item, which can't be in both splits: "
                             f"drop or merge them, or don't stratify.")
        if n_train < len(classes) or n_test < len(classes):
            raise ValueError(f"TrainTestSplitter: {n_train} train / {n_test} test items can't hold each of the "
                             f"{len(classes)} classes: raise test_size/train_size or don't stratify.")
        class_indices = np.split(np.argsort(y_idx, kind="mergesort"), np.cumsum(counts)[:-1])
        n_i = _approximate_mode(counts, n_train, rng)
        t_i = _approximate_mode(counts - n_i, n_test, rng)
        train: list = []
        test: list = []
        for i in range(len(classes)):
            perm = class_indices[i].take(rng.permutation(counts[i]), mode="clip")
            train.extend(perm[:n_i[i]])
            test.extend(perm[n_i[i]:n_i[i] + t_i[i]])
        return rng.permutation(train).tolist(), rng.permutation(test).tolist()

    def __repr__(self) -> str:
        strat = None if self.stratify is None else f"<{len(self.stratify)} labels>"
        return (f"TrainTestSplitter(test_size={self.test_size}, random_state={self.random_state}, stratify={strat}, "
                f"train_size={self.train_size}, shuffle={self.shuffle})")


class IndexSplitter:
    """Put the items at positions ``valid_idx`` in the validation set, the rest in training."""

    def __init__(self, valid_idx: Iterable[int]) -> None:
        arr = np.asarray(valid_idx.cpu() if isinstance(valid_idx, torch.Tensor) else list(valid_idx))
        if arr.dtype == bool:
            raise TypeError("IndexSplitter takes positions; for a boolean mask use MaskSplitter(mask).")
        if arr.size and arr.dtype.kind not in "iu":
            raise TypeError(f"IndexSplitter takes integer positions, got values of type {arr.dtype}.")
        self.valid_idx = [int(i) for i in arr.reshape(-1)]
        dups = [i for i, c in Counter(self.valid_idx).items() if c > 1]
        if dups:
            raise ValueError(f"IndexSplitter: positions {dups[:10]} are listed more than once.")

    def __call__(self, items: Sequence) -> Splits:
        """Split positions ``0..len(items)-1``."""
        n = len(items)
        bad = [i for i in self.valid_idx if not 0 <= i < n]
        if bad:
            raise IndexError(f"IndexSplitter: positions {bad[:10]} are out of range for {n} items (valid: 0..{n - 1}).")
        valid = set(self.valid_idx)
        return [i for i in range(n) if i not in valid], list(self.valid_idx)

    def __repr__(self) -> str:
        return f"IndexSplitter(<{len(self.valid_idx)} positions>)"


def _as_names(name: str | Sequence[str]) -> list[str]:
    return [name] if isinstance(name, (str, os.PathLike)) else list(name)


class GrandparentSplitter:
    """Split paths by the name of their grandparent folder: ``train/cat/1.jpg`` -> training.

    ``train_name``/``valid_name`` may be lists of names. Items under neither are left out. If no
    item falls under the training or validation name(s), it raises naming the folders it saw.
    ``test_name`` (a learnkit addition) makes a third split, the test set (``dls.test``).
    """

    def __init__(self, train_name: str | Sequence[str] = "train", valid_name: str | Sequence[str] = "valid",
                 test_name: str | Sequence[str] | None = None) -> None:
        self.train_name, self.valid_name, self.test_name = train_name, valid_name, test_name

    def __call__(self, items: Sequence) -> Splits | tuple[list[int], list[int], list[int]]:
        """Split positions ``0..len(items)-1`` (three lists with ``test_name``)."""
        if hasattr(items, "columns"):
            raise TypeError("GrandparentSplitter needs file paths as items, not a DataFrame: use ColSplitter, or "
                            "FuncSplitter on the file name column.")
        tnames, vnames = _as_names(self.train_name), _as_names(self.valid_name)
        gps = [Path(o).parent.parent.name for o in items]
        train = [i for n in tnames for i, g in enumerate(gps) if g == n]
        valid = [i for n in vnames for i, g in enumerate(gps) if g == n]
        if gps and (not train or not valid):
            seen = Counter(gps)
            shown = ", ".join(f"{k!r} ({v} items)" for k, v in seen.most_common(10))
            which = [(w, names) for w, names, idx in (("train_name", tnames, train), ("valid_name", vnames, valid))
                     if not idx]
            hints = []
            for w, names in which:
                for nm in names:
                    close = difflib.get_close_matches(nm, list(seen), n=1, cutoff=0.5)
                    if close:
                        hints.append(f"{w}={close[0]!r}")
            fix = f" Try GrandparentSplitter({', '.join(hints)})." if hints else ""
            missing = " and ".join(f"{w}={(names[0] if len(names) == 1 else names)!r}" for w, names in which)
            raise ValueError(f"GrandparentSplitter: no item has a grandparent folder matching {missing}; the "
                             f"grandparent folders seen are: {shown}.{fix}")
        if self.test_name is None:
            return train, valid
        test = [i for n in _as_names(self.test_name) for i, g in enumerate(gps) if g == n]
        if gps and not test:
            raise ValueError(f"GrandparentSplitter: no item has a grandparent folder matching "
                             f"test_name={self.test_name!r}; the grandparent folders seen are: "
                             f"{sorted(set(gps))[:10]}. Test images go in <test_name>/<label>/.")
        return train, valid, test

    def __repr__(self) -> str:
        test = f", test_name={self.test_name!r}" if self.test_name is not None else ""
        return f"GrandparentSplitter(train_name={self.train_name!r}, valid_name={self.valid_name!r}{test})"


class TrainValidTestSplitter:
    """Three random splits: ``valid_pct`` of the items to validation, ``test_pct`` to test, the rest to training.

    A seeded split uses its own generator (repeatable, global random state untouched); the test set is
    cut first, so the same seed and ``test_pct`` keep the same test items whatever ``valid_pct`` is.
    """

    def __init__(self, valid_pct: float = 0.2, test_pct: float = 0.1, seed: int | None = None) -> None:
        _check_pct("valid_pct", valid_pct)
        _check_pct("test_pct", test_pct)
        if valid_pct + test_pct >= 1:
            raise ValueError(f"valid_pct + test_pct = {valid_pct + test_pct:g} leaves no training items: keep the "
                             f"sum below 1 (e.g. valid_pct=0.2, test_pct=0.1).")
        self.valid_pct, self.test_pct, self.seed = valid_pct, test_pct, seed

    def __call__(self, items: Sequence) -> tuple[list[int], list[int], list[int]]:
        """Split positions ``0..len(items)-1`` into (train, valid, test)."""
        n = len(items)
        gen = torch.Generator().manual_seed(int(self.seed)) if self.seed is not None else None
        perm = torch.randperm(n, generator=gen).tolist()
        n_test, n_valid = _n_cut(self.test_pct, n), _n_cut(self.valid_pct, n)
        return perm[n_test + n_valid:], perm[n_test:n_test + n_valid], perm[:n_test]

    def __repr__(self) -> str:
        return f"TrainValidTestSplitter(valid_pct={self.valid_pct}, test_pct={self.test_pct}, seed={self.seed})"


class FuncSplitter:
    """Put the items for which ``func(item)`` is true in the validation set (DataFrame items: one row each)."""

    def __init__(self, func: Callable[[Any], bool]) -> None:
        self.func = func

    def __call__(self, items: Sequence) -> Splits:
        """Split positions ``0..len(items)-1``."""
        return _mask_to_splits([bool(self.func(o)) for o in _iter_items(items)])

    def __repr__(self) -> str:
        return f"FuncSplitter({getattr(self.func, '__name__', self.func)!r})"


class MaskSplitter:
    """Put the items where the boolean ``mask`` is true in the validation set."""

    def __init__(self, mask: Sequence[bool]) -> None:
        arr = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask).reshape(-1)
        if arr.dtype != bool:
            if arr.dtype.kind in "iu" and set(np.unique(arr).tolist()) <= {0, 1}:
                arr = arr.astype(bool)
            else:
                raise TypeError(f"MaskSplitter needs a boolean mask (one True/False per item), got dtype {arr.dtype}; "
                                f"for positions use IndexSplitter.")
        self.mask = arr.tolist()

    def __call__(self, items: Sequence) -> Splits:
        """Split positions ``0..len(items)-1``."""
        if len(self.mask) != len(items):
            raise ValueError(f"MaskSplitter: the mask has {len(self.mask)} entries but there are {len(items)} items.")
        return _mask_to_splits(self.mask)

    def __repr__(self) -> str:
        return f"MaskSplitter(<{sum(self.mask)} of {len(self.mask)} valid>)"


class FileSplitter:
    """Put the items whose file name is listed (one per line) in the text file ``fname`` in the validation set."""

    def __init__(self, fname: str | os.PathLike) -> None:
        fname = Path(fname)
        if not fname.is_file():
            raise FileNotFoundError(f"FileSplitter: the list of validation files {str(fname)!r} does not exist.")
        self.fname = str(fname)
        self.valid_names = {ln.strip() for ln in fname.read_text().splitlines() if ln.strip()}

    def __call__(self, items: Sequence) -> Splits:
        """Split positions ``0..len(items)-1``."""
        return _mask_to_splits([Path(o).name in self.valid_names for o in items])

    def __repr__(self) -> str:
        return f"FileSplitter({self.fname!r})"


class ColSplitter:
    """Split a DataFrame by column ``col``: true values (or values equal to / in ``on``) go to validation."""

    def __init__(self, col: str | int = "is_valid", on: Any = None) -> None:
        self.col, self.on = col, on

    def __call__(self, items: Any) -> Splits:
        """Split the DataFrame's row positions."""
        if not (hasattr(items, "iloc") and hasattr(items, "columns")):
            raise TypeError(f"ColSplitter needs the items to be a pandas DataFrame, got {type(items).__name__}.")
        cols = list(items.columns)
        if isinstance(self.col, int) and self.col not in cols:
            if not -len(cols) <= self.col < len(cols):
                raise IndexError(f"ColSplitter: column position {self.col} is out of range; the columns are {cols}.")
            c = items.iloc[:, self.col]
        elif self.col in cols:
            c = items[self.col]
        else:
            raise KeyError(f"ColSplitter: column {self.col!r} is not in the DataFrame; its columns are {cols}.")
        if self.on is None:
            return _mask_to_splits(self._bool_values(c))
        if isinstance(self.on, (list, tuple, set)):
            return _mask_to_splits(c.isin(list(self.on)).tolist())
        return _mask_to_splits((c == self.on).tolist())

    def _bool_values(self, c: Any) -> list[bool]:
        vals = c.tolist()
        bad = sorted({repr(v) for v in vals if not (isinstance(v, (bool, np.bool_)) or v in (0, 1))})
        if bad:
            raise ValueError(f"ColSplitter: column {self.col!r} should hold True/False (or 1/0), but has "
                             f"{', '.join(bad[:5])}. Pass on=<value> to mark validation rows by value, "
                             f"e.g. ColSplitter({self.col!r}, on='valid').")
        return [bool(v) for v in vals]

    def __repr__(self) -> str:
        return f"ColSplitter(col={self.col!r}, on={self.on!r})"


class EndSplitter:
    """Put the last (``valid_last``) or first ``valid_pct`` of the items, in order, in the validation set."""

    def __init__(self, valid_pct: float = 0.2, valid_last: bool = True) -> None:
        _check_pct("valid_pct", valid_pct)
        self.valid_pct, self.valid_last = valid_pct, valid_last

    def __call__(self, items: Sequence) -> Splits:
        """Split positions ``0..len(items)-1``."""
        n = len(items)
        cut = _n_cut(self.valid_pct, n)
        idxs = list(range(n))
        return (idxs[:n - cut], idxs[n - cut:]) if self.valid_last else (idxs[cut:], idxs[:cut])

    def __repr__(self) -> str:
        return f"EndSplitter(valid_pct={self.valid_pct}, valid_last={self.valid_last})"


class RandomSubsetSplitter:
    """A random ``train_sz`` fraction of the items for training and the next ``valid_sz`` for validation (fastai's).

    Fractions in (0, 1) summing to at most 1; the rest of the items is left out. ``seed`` makes it
    repeatable (same split as fastai's with that seed, without touching torch's global generator).
    """

    def __init__(self, train_sz: float, valid_sz: float, seed: int | None = None) -> None:
        for name, v in (("train_sz", train_sz), ("valid_sz", valid_sz)):
            if not 0 < v < 1:
                raise ValueError(f"RandomSubsetSplitter: {name}={v!r} must be a fraction in (0, 1).")
        if train_sz + valid_sz > 1:
            raise ValueError(f"RandomSubsetSplitter: train_sz + valid_sz = {train_sz + valid_sz} is more than 1 "
                             f"(all the items).")
        self.train_sz, self.valid_sz, self.seed = train_sz, valid_sz, seed

    def __call__(self, items: Sequence) -> Splits:
        """Split positions ``0..len(items)-1``."""
        n = len(items)
        gen = torch.Generator().manual_seed(int(self.seed)) if self.seed is not None else None
        idxs = torch.randperm(n, generator=gen).tolist()
        n_train, n_valid = int(n * self.train_sz), int(n * self.valid_sz)
        return idxs[:n_train], idxs[n_train:n_train + n_valid]

    def __repr__(self) -> str:
        return f"RandomSubsetSplitter(train_sz={self.train_sz}, valid_sz={self.valid_sz}, seed={self.seed})"
