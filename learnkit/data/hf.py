"""Hugging Face ``datasets`` as a source: rows of a ``Dataset`` / ``DatasetDict`` / ``IterableDataset`` as items.

:class:`HFRows` is a sequence of rows over one or more ``datasets.Dataset`` splits (a ``DatasetDict``'s
train / validation / test) that a ``DataBlock`` indexes like a DataFrame: each row is a :class:`HFRow` mapping
whose columns are read (and an ``Image`` column decoded) only when a getter asks for them, in the loader's
workers; ``ClassLabel`` ids read as their names, and those names become the vocabulary in their order.
:class:`HFStream` feeds a streaming ``IterableDataset`` to the loaders (length unknown). ``datasets`` is an
optional extra (``pip install "learnkit[hf]"``): nothing here imports it.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

__all__ = ["is_hf_dataset", "is_hf_stream", "HFRows", "HFRow", "HFStream", "hf_rows", "hf_frame", "check_columns",
           "class_names", "stream_dataloaders", "hf_source", "hf_table", "hf_label_block", "check_image_column", "check_label_column", "TRAIN_NAMES", "VALID_NAMES", "TEST_NAMES"]

TRAIN_NAMES, VALID_NAMES, TEST_NAMES = ("train",), ("validation", "valid", "val", "dev"), ("test",)


def is_hf_dataset(obj: Any) -> bool:
    """Whether ``obj`` is a ``datasets`` Dataset, DatasetDict, IterableDataset or IterableDatasetDict."""
    return type(obj).__module__.startswith("datasets.") and hasattr(obj, "features") or \
        type(obj).__name__ in ("DatasetDict", "IterableDatasetDict")


def is_hf_stream(obj: Any) -> bool:
    """Whether ``obj`` is a streaming ``datasets.IterableDataset`` (or a dict of them)."""
    if type(obj).__name__ == "IterableDatasetDict":
        return True
    return type(obj).__name__ == "IterableDataset" and type(obj).__module__.startswith("datasets.")


def _kind(feature: Any) -> str:
    return type(feature).__name__


def class_names(feature: Any) -> list[str] | None:
    """The names of a ``ClassLabel`` feature, or of the ``ClassLabel`` inside a ``Sequence``/list; else None."""
    if _kind(feature) == "ClassLabel":
        return list(feature.names)
    inner = getattr(feature, "feature", None)
    if _kind(feature) in ("Sequence", "List", "LargeList") and inner is not None and _kind(inner) == "ClassLabel":
        return list(inner.names)
    return None


def _label_names(features: Mapping) -> dict[str, list[str]]:
    return {c: n for c, f in features.items() if (n := class_names(f)) is not None}


def _missing_column(col: Any, columns: Sequence[str], what: str = "column") -> KeyError:
    close = difflib.get_close_matches(str(col), [str(c) for c in columns], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return KeyError(f"The dataset has no {what} {col!r}; its columns are {list(columns)}.{hint}")


class HFRow(Mapping):
    """One row of a ``datasets.Dataset``: a column is read (an image decoded) when it is looked up."""

    def __init__(self, part: Any, j: int, names: dict[str, list[str]]) -> None:
        self.part, self.j, self.names = part, j, names

    def __getitem__(self, col: str) -> Any:
        if col not in self.part.column_names:
            raise _missing_column(col, self.part.column_names)
        v = self.part[col][self.j]
        if isinstance(v, dict) and v.keys() == {"bytes", "path"}:  # an Image(decode=False) cell
            v = v["bytes"] if v["bytes"] is not None else v["path"]
        n = self.names.get(col)
        if n is None:
            return v
        return [n[i] for i in v] if isinstance(v, (list, tuple)) else (None if v is None or v < 0 else n[v])

    def __iter__(self) -> Iterator[str]:
        return iter(self.part.column_names)

    def __len__(self) -> int:
        return len(self.part.column_names)

    def __repr__(self) -> str:
        return f"HFRow({self.j} of {len(self.part)}, columns={self.part.column_names})"


class HFRows(Sequence):
    """The rows of one or more ``datasets.Dataset`` splits in order, each an :class:`HFRow`; ``presplit`` gives the
    row positions of each part (train, valid[, test]) when they came from a ``DatasetDict``."""

    def __init__(self, parts: Sequence[Any], presplit: bool = False) -> None:
        self.parts = list(parts)
        self.presplit = presplit
        self.columns = list(self.parts[0].column_names)
        for p in self.parts[1:]:
            if set(p.column_names) != set(self.columns):
                raise ValueError(f"The dataset's splits have different columns ({self.columns} and "
                                 f"{list(p.column_names)}): give splits with the same columns.")
        self.features = self.parts[0].features
        self.names = _label_names(self.features)
        self.offsets = [0]
        for p in self.parts:
            self.offsets.append(self.offsets[-1] + len(p))

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, i: int) -> HFRow:  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]  # type: ignore[return-value]
        if i < 0:
            i += len(self)
        for k, p in enumerate(self.parts):
            if i < self.offsets[k + 1]:
                return HFRow(p, i - self.offsets[k], self.names)
        raise IndexError(f"row {i} is out of range for {len(self)} rows")

    def splits(self) -> list[list[int]]:
        """Row positions of each part (train, valid[, test])."""
        return [list(range(a, b)) for a, b in zip(self.offsets, self.offsets[1:])]

    def setup_blocks(self, getters: Sequence[Any], blocks: Sequence[Any]) -> None:
        """Give a category block without a vocab whose getter reads a ``ClassLabel`` column its names, in order."""
        for g, b in zip(getters, blocks):
            cols = getattr(g, "cols", None)
            if not cols or len(cols) != 1 or cols[0] not in self.names:
                continue
            for t in b.type_tfms:
                if hasattr(t, "_set_vocab") and getattr(t, "vocab", None) is None:
                    from .blocks import CategoryMap
                    t._set_vocab(CategoryMap(self.names[cols[0]], sort=False))

    def __repr__(self) -> str:
        return f"HFRows({' + '.join(str(len(p)) for p in self.parts)} rows, columns={self.columns})"


def _pick(d: Mapping, names: Sequence[str]) -> Any:
    return next((d[n] for n in names if n in d), None)


def _split_parts(source: Any, valid: Any = None) -> tuple[list[Any], bool]:
    """The parts (train[, valid[, test]]) of ``source`` and whether they are the split (else: split at random)."""
    if type(source).__name__ in ("DatasetDict", "IterableDatasetDict") or isinstance(source, dict):
        keys = list(source.keys())
        train = _pick(source, TRAIN_NAMES)
        if train is None:
            raise KeyError(f"The DatasetDict has no 'train' split; its splits are {keys}: pass ds['{keys[0]}'] "
                           f"with valid=..., or rename a split to 'train'.")
        v = valid if valid is not None and not isinstance(valid, str) else \
            (source[valid] if isinstance(valid, str) else _pick(source, VALID_NAMES))
        if isinstance(valid, str) and valid not in source:
            raise KeyError(f"valid={valid!r} is not a split of the DatasetDict; its splits are {keys}.")
        test = _pick(source, TEST_NAMES)
        if v is None:
            return [train], False
        return [train, v] + ([test] if test is not None else []), True
    if valid is not None:
        return [source, valid], True
    return [source], False


def hf_rows(source: Any, valid: Any = None) -> HFRows:
    """:class:`HFRows` over a ``Dataset`` (plus a ``valid`` Dataset) or a ``DatasetDict``'s splits."""
    parts, presplit = _split_parts(source, valid)
    if is_hf_stream(parts[0]):
        raise TypeError("A streaming IterableDataset has no rows to index: use the factories' from_hf (it streams) "
                        "or load the dataset without streaming=True.")
    return HFRows(parts, presplit=presplit)


def check_columns(columns: Sequence[str], cols: Any, role: str) -> list[str]:
    """``cols`` (one name or several) as a list, each a column of the dataset, else a KeyError naming them."""
    cols = list(cols) if isinstance(cols, (list, tuple)) else [cols]
    for c in cols:
        if c not in columns:
            raise _missing_column(c, columns, f"{role} column".strip())
    return cols


def check_image_column(features: Mapping, col: str) -> None:
    """An ``Image`` feature or a string (file path) column, else a TypeError naming the fix."""
    f = features.get(col)
    if f is None or _kind(f) == "Image" or (_kind(f) == "Value" and f.dtype in ("string", "large_string")):
        return
    raise TypeError(f"The image column {col!r} holds {f!r}, not images: pass the column with the pictures "
                    f"(an Image feature or file paths), or cast it with ds.cast_column({col!r}, datasets.Image()).")


def check_label_column(features: Mapping, col: str) -> str:
    """'single' or 'multi' for a ClassLabel / string label column (or a list of them), else a TypeError."""
    f = features.get(col)
    if f is None:
        return "single"
    if _kind(f) == "ClassLabel" or (_kind(f) == "Value" and f.dtype in ("string", "large_string", "bool")) or \
            (_kind(f) == "Value" and f.dtype.startswith("int")):
        return "single"
    inner = getattr(f, "feature", None)
    if inner is not None and (_kind(inner) == "ClassLabel" or (_kind(inner) == "Value" and "string" in inner.dtype)):
        return "multi"
    raise TypeError(f"The label column {col!r} holds {f!r}: labels must be a ClassLabel, strings (or lists of them) "
                    f"or integers. Cast it, e.g. ds = ds.class_encode_column({col!r}), or pass y_block= for "
                    f"another kind of target (RegressionBlock for numbers).")


def hf_frame(source: Any, valid: Any = None, valid_pct: float = 0.2, seed: int | None = None,
             columns: Sequence[str] | None = None) -> tuple[Any, list[int], dict[str, list[str]]]:
    """The rows as one pandas DataFrame (ClassLabel ids as names), the validation row positions and the label names.

    For text and tables, whose processing reads every row anyway; images stay in :class:`HFRows`.
    """
    import pandas as pd
    parts, presplit = _split_parts(source, valid)
    if is_hf_stream(parts[0]):
        raise TypeError("from_hf for text and tables needs the whole table: load the dataset without streaming=True.")
    names = _label_names(parts[0].features)
    frames = []
    for p in parts[:2]:
        p = p.select_columns(list(columns)) if columns is not None else p
        df = p.to_pandas()
        for c, n in names.items():
            if c in df.columns:
                df[c] = [([n[i] for i in v] if hasattr(v, "__len__") and not isinstance(v, str) else
                          (None if v is None or v < 0 else n[int(v)])) for v in df[c]]
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    if presplit:
        valid_idx = list(range(len(frames[0]), len(df)))
    else:
        from .splitters import RandomSplitter
        valid_idx = list(RandomSplitter(valid_pct, seed=seed)(range(len(df)))[1])
    return df, valid_idx, names


class HFStream(torch.utils.data.IterableDataset):
    """A streaming ``datasets.IterableDataset`` through a ``Datasets``-style pipeline per block; in loader workers
    the stream splits its shards between them (``datasets`` does), so no row is seen twice in an epoch."""

    def __init__(self, stream: Any, pipelines: Sequence[Sequence[Callable]], split_idx: int,
                 item_tfms: Sequence[Any] = (), kinds: tuple = ()) -> None:
        self.stream, self.pipelines, self.split_idx = stream, [list(p) for p in pipelines], split_idx
        self.item_tfms, self.kinds = list(item_tfms), kinds
        self.names = _label_names(stream.features or {})

    def with_item_tfms(self, item_tfms: Sequence[Any], kinds: tuple, split_idx: int) -> "HFStream":
        """This stream with ``item_tfms`` run on each sample (in the loader's workers)."""
        return HFStream(self.stream, self.pipelines, split_idx, item_tfms, kinds)

    def _row(self, row: dict) -> dict:
        for c, n in self.names.items():
            v = row.get(c)
            if v is not None:
                row[c] = [n[i] for i in v] if isinstance(v, (list, tuple)) else n[v]
        return row

    def __iter__(self) -> Iterator[tuple]:
        from .transforms import apply_transforms
        for row in self.stream:  # in a loader worker, a datasets stream yields only that worker's shards
            row = self._row(dict(row))
            sample = tuple(_run(p, row) for p in self.pipelines)
            yield apply_transforms(self.item_tfms, sample, self.kinds, self.split_idx) if self.item_tfms else sample


def _run(fns: Sequence[Callable], x: Any) -> Any:
    for f in fns:
        x = f(x)
    return x


def _stream_parts(source: Any, valid: Any, n_valid: int) -> tuple[Any, Any]:
    """(train, valid) streams: the dict's splits, or the first ``n_valid`` rows held out of a lone stream."""
    parts, presplit = _split_parts(source, valid)
    if presplit:
        return parts[0], parts[1]
    return parts[0].skip(n_valid), parts[0].take(n_valid)


def stream_dataloaders(dblock: Any, source: Any, bs: int = 64, val_bs: int | None = None, valid: Any = None,
                       n_valid: int = 1000, n_setup: int = 1000, num_workers: int | None = 0, device: Any = None,
                       path: Any = ".", **kwargs: Any) -> Any:
    """Loaders that stream a ``datasets.IterableDataset`` through ``dblock`` (length unknown, as a torch
    IterableDataset): vocabularies come from ``ClassLabel`` features, else from the first ``n_setup`` rows."""
    from .core import DataLoader, DataLoaders
    from .transforms import TRAIN, VALID
    train, val = _stream_parts(source, valid, n_valid)
    blocks = dblock._new_blocks()
    features = train.features or {}
    names = _label_names(features)
    for g, b in zip(dblock.getters, blocks):
        cols = getattr(g, "cols", None)
        if cols and len(cols) == 1 and features and cols[0] not in features:
            raise _missing_column(cols[0], list(features))
        if cols and len(cols) == 1 and cols[0] in names:
            for t in b.type_tfms:
                if hasattr(t, "_set_vocab") and getattr(t, "vocab", None) is None:
                    from .blocks import CategoryMap
                    t._set_vocab(CategoryMap(names[cols[0]], sort=False))
    pipelines = [([g] if g is not None else []) + b.type_tfms for g, b in zip(dblock.getters, blocks)]
    head = HFStream(train.take(n_setup), [[]], TRAIN)
    rows = [r for (r,) in head] if any(hasattr(t, "setup") for p in pipelines for t in p) else []
    for p in pipelines:
        for j, f in enumerate(p):
            if hasattr(f, "setup"):
                f.setup(_run(p[:j], r) for r in rows)
    item_tfms, batch_tfms = dblock._stage_tfms(blocks)
    kinds = tuple(b.kind for b in blocks)
    common = dict(num_workers=num_workers, device=device, kinds=kinds, n_inp=dblock.n_inp, blocks=blocks,
                  item_tfms=item_tfms, batch_tfms=batch_tfms, **kwargs)
    dls = [DataLoader(HFStream(s, pipelines, split), bs=b, shuffle=False, drop_last=drop, split_idx=split, **common)
           for s, split, b, drop in ((train, TRAIN, bs, True), (val, VALID, val_bs or bs, False))]
    return DataLoaders(*dls, path=path, getters=dblock.getters)


def hf_source(source: Any, valid: Any = None, valid_pct: float = 0.2, seed: int | None = None) -> tuple[Any, Any, dict]:
    """(what ``DataBlock.dataloaders`` takes, the splitter or None, the train part's features) for the factories.

    A map-style source becomes :class:`HFRows` (its own splits when it has a validation part, else ``splitter``
    is a ``RandomSplitter(valid_pct, seed)``); a stream stays a stream (``valid`` goes to the loaders).
    """
    if not is_hf_dataset(source):
        raise TypeError(f"from_hf needs a Hugging Face datasets Dataset, DatasetDict or IterableDataset, got a "
                        f"{type(source).__name__}: for a DataFrame use from_df.")
    parts, presplit = _split_parts(source, valid)
    features = dict(parts[0].features or {})
    if is_hf_stream(parts[0]):
        return source, None, features
    from .splitters import RandomSplitter
    return HFRows(parts, presplit=presplit), None if presplit else RandomSplitter(valid_pct, seed=seed), features


def hf_label_block(names: dict[str, list[str]], features: Mapping, label_col: Any) -> Any:
    """``CategoryBlock``/``MultiCategoryBlock`` with a ``ClassLabel`` column's names in order; None otherwise."""
    if not isinstance(label_col, str) or label_col not in names:
        return None
    from .blocks import CategoryBlock, MultiCategoryBlock
    if check_label_column(features, label_col) == "multi":
        return MultiCategoryBlock(vocab=names[label_col])
    return CategoryBlock(vocab=names[label_col], sort=False)


def hf_table(ds: Any, cols: Sequence[str], valid: Any, valid_pct: float, seed: int | None,
             label_col: Any = None) -> tuple[Any, list[int], Any]:
    """For text and tabular ``from_hf``: (the DataFrame of ``cols``, validation positions, label block or None)."""
    if not is_hf_dataset(ds):
        raise TypeError(f"from_hf needs a Hugging Face datasets Dataset or DatasetDict, got a {type(ds).__name__}: "
                        f"for a DataFrame use from_df.")
    parts, _ = _split_parts(ds, valid)
    features = dict(parts[0].features or {})
    check_columns(list(features), list(cols), "")
    if label_col is not None:
        for c in (label_col if isinstance(label_col, (list, tuple)) else [label_col]):
            check_label_column(features, c)
    df, valid_idx, names = hf_frame(ds, valid, valid_pct, seed, columns=list(dict.fromkeys(cols)))
    return df, valid_idx, hf_label_block(names, features, label_col)
