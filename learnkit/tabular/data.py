"""Tabular loaders: batches sliced from whole tensors (no per-row Python), and the ``TabularDataLoaders`` factories.

A ``TabDataLoader`` holds one split as three tensors (``cats`` int64, ``conts`` float32, ``ys``) on the
device. A training epoch draws one random permutation, reorders the tensors once and yields contiguous
slices, so a batch costs a few tensor views instead of a pandas ``iloc`` per batch (fastai's loader).
Batches are ``(x_cat, x_cont, y)`` (``n_inp`` 2), or ``(x_cat, y)`` when the table has no continuous
columns and ``with_cont=False`` (collaborative filtering, ``n_inp`` 1), or without ``y`` for unlabelled rows.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
import torch

from ..data.blocks import TransformBlock
from ..data.core import DataLoaders
from ..data.preload import n_batches, preloaded_batches
from ..data.transforms import TRAIN, VALID
from ..registry import register_data_loaders
from ..utils import Path, default_device
from .core import TabularPandas, _as_names, attach_loaders

__all__ = ["TabDataLoader", "TabularDataLoaders", "TabularRows", "show_df"]

# table facts a loader answers for its rows (fastai's loaders forward them to their dataset)
_FORWARDED = frozenset(("xs", "y", "items", "cat_names", "cont_names", "y_names", "classes", "procs", "cats", "conts",
                        "ys"))


def show_df(df: pd.DataFrame) -> pd.DataFrame:
    """Display a DataFrame (rich in a notebook, as text elsewhere) and return it."""
    try:
        from IPython import get_ipython
        from IPython.display import display
        if get_ipython() is not None:
            display(df)
            return df
    except ImportError:  # pragma: no cover - IPython is optional
        pass
    print(df.to_string())
    return df


class TabularRows(pd.DataFrame):
    """A DataFrame of decoded rows (what ``predict`` returns) with fastai's ``show()``; operations give plain frames."""

    @property
    def _constructor(self) -> type:
        return pd.DataFrame

    def show(self) -> pd.DataFrame:
        """Display the rows (rich in a notebook, as text elsewhere)."""
        return show_df(pd.DataFrame(self))


# what generic code (DataLoaders.new, predict, tta) may pass a loader: meaningless for slices of whole tensors
_IGNORED_LOADER_ARGS = ("num_workers", "pin_memory", "persistent_workers", "item_tfms", "batch_tfms")


class TabDataLoader:
    """Batches of one table split, sliced from whole tensors; plugs into ``Learner`` like the other loaders."""

    def __init__(self, dataset: Any, bs: int = 64, shuffle: bool = False, drop_last: bool | None = None,
                 device: Any = None, with_cont: bool = True, split_idx: int | None = None,
                 num_workers: int = 0, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(_IGNORED_LOADER_ARGS))
        if unknown:
            raise TypeError(f"TabDataLoader got unexpected keyword argument(s) {unknown}: it takes dataset, bs, "
                            f"shuffle, drop_last, device, with_cont and split_idx.")
        self.dataset = dataset  # a TabularPandas or one of its splits: cats, conts, ys, decode_rows...
        self.bs, self.shuffle = int(bs), shuffle
        self.drop_last = shuffle if drop_last is None else drop_last
        self.with_cont = with_cont
        self.split_idx = split_idx if split_idx is not None else (TRAIN if shuffle else VALID)
        self.num_workers = 0  # slicing tensors needs no worker processes
        self.device = torch.device(device) if device is not None else default_device()
        self.item_tfms: list = []
        self.batch_tfms: list = []
        self.added_batch_tfms: list = []
        self._tensors: tuple | None = None

    # -- what the Learner and the display helpers read

    @property
    def to_table(self) -> TabularPandas:
        """The whole table (procs, names, decoding)."""
        return getattr(self.dataset, "to", self.dataset)

    @property
    def n_inp(self) -> int:
        """Number of model inputs: 2 (x_cat, x_cont), or 1 (x_cat) without continuous inputs."""
        return 2 if self.with_cont else 1

    @property
    def blocks(self) -> list[TransformBlock]:
        """Input placeholders, then the target block (with its vocab) when the table has a target."""
        to = self.to_table
        inputs = [TransformBlock("generic", name="TabularCat")] + \
            ([TransformBlock("generic", name="TabularCont")] if self.with_cont else [])
        return inputs + ([to.target.block()] if to.target is not None else [])

    @property
    def kinds(self) -> tuple:
        """The kind of each value of a batch."""
        return tuple(b.kind for b in self.blocks)

    @property
    def vocab(self) -> Any:
        """The target's vocabulary."""
        return self.to_table.vocab

    @property
    def c(self) -> int | None:
        """Number of model outputs."""
        return self.to_table.c

    @property
    def n(self) -> int:
        """Number of rows."""
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:  # dls.valid.xs, dls.train.classes... as in fastai
        if name in _FORWARDED and "dataset" in self.__dict__:
            return getattr(self.dataset, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _data(self) -> tuple:
        """(cats, conts, ys) on the device, moved once."""
        if self._tensors is None:
            ds, dev = self.dataset, self.device
            ys = ds.ys.to(dev) if ds.ys is not None else None
            self._tensors = (ds.cats.to(dev), ds.conts.to(dev), ys)
        return self._tensors

    def preload(self) -> "TabDataLoader":
        """Move the split's tensors to the device now (batches are always slices of them: nothing to decode)."""
        self._data()
        return self

    @property
    def preloaded(self) -> bool:
        """Whether the split's tensors are on the device already."""
        return self._tensors is not None

    def __len__(self) -> int:
        return n_batches(len(self.dataset), self.bs, self.drop_last)

    def __iter__(self) -> Iterator[tuple]:
        cats, conts, ys = self._data()
        tensors = (cats,) + ((conts,) if self.with_cont else ()) + ((ys,) if ys is not None else ())
        yield from preloaded_batches(tensors, self.bs, self.shuffle, self.drop_last)

    def one_batch(self) -> tuple:
        """The first batch."""
        if len(self.dataset) == 0:
            raise ValueError("This loader has no rows: there is no batch to show or check.")
        return next(iter(self))

    def to(self, device: Any) -> "TabDataLoader":
        """Serve future batches on ``device``."""
        self.device, self._tensors = torch.device(device), None
        return self

    def new(self, dataset: Any = None, **kwargs: Any) -> "TabDataLoader":
        """A copy with some attributes changed (``bs``, ``shuffle``, ``drop_last``, ``device``...)."""
        args = dict(dataset=self.dataset if dataset is None else dataset, bs=self.bs, shuffle=self.shuffle,
                    drop_last=self.drop_last, device=self.device, with_cont=self.with_cont, split_idx=self.split_idx)
        args.update(kwargs)
        if "shuffle" in kwargs and "drop_last" not in kwargs:
            args["drop_last"] = kwargs["shuffle"]
        return TabDataLoader(**args)

    # -- display

    def _split(self, b: tuple) -> tuple:
        n_inp = self.n_inp
        cats = b[0]
        conts = b[1] if self.with_cont else None
        ys = b[n_inp] if len(b) > n_inp else None
        return cats, conts, ys

    def decode_batch(self, b: tuple, max_n: int | None = None) -> pd.DataFrame:
        """A batch -> a DataFrame of decoded rows (category labels, un-normalised numbers, decoded targets)."""
        cats, conts, ys = self._split(b)
        n = len(cats) if max_n is None else min(max_n, len(cats))
        return self.to_table.decode_rows(cats[:n], None if conts is None else conts[:n],
                                         None if ys is None else ys[:n])

    def show_batch(self, b: tuple | None = None, max_n: int = 10, show: bool = True, **kwargs: Any) -> pd.DataFrame:
        """Decoded rows of a batch as a DataFrame (displayed, and returned)."""
        df = self.decode_batch(self.one_batch() if b is None else b, max_n=max_n)
        return show_df(df) if show else df

    def show_results(self, b: tuple, decoded: Any, max_n: int = 10, show: bool = True,
                     **kwargs: Any) -> pd.DataFrame:
        """Decoded rows with their targets and a ``<y>_pred`` column per target (displayed, and returned)."""
        df = self.decode_batch(b, max_n=max_n)
        to = self.to_table
        if to.target is not None:
            df = to._add_y(df, torch.as_tensor(decoded)[:len(df)], suffix="_pred")
        return show_df(df) if show else df

    def __repr__(self) -> str:
        return f"TabDataLoader({self.n} rows, bs={self.bs}, shuffle={self.shuffle}, device={self.device})"


def _as_df_rows(items: Any) -> pd.DataFrame:
    """A DataFrame, a Series (one row), or a list of Series/dicts/1-row frames -> a DataFrame."""
    if isinstance(items, pd.DataFrame):
        return items
    if isinstance(items, pd.Series):
        return items.to_frame().T
    if isinstance(items, dict):
        return pd.DataFrame([items])
    items = list(items)
    if items and all(isinstance(o, pd.DataFrame) for o in items):
        return pd.concat(items, ignore_index=True)
    if items and all(isinstance(o, (pd.Series, dict)) for o in items):
        return pd.DataFrame([dict(o) for o in items])
    raise TypeError(f"Tabular test rows must be a DataFrame, a Series (one row) or a list of them; got "
                    f"{type(items[0]).__name__ if items else 'an empty list'}.")


_LOADER_KWARGS = ("bs", "val_bs", "shuffle", "shuffle_train", "drop_last", "device", "num_workers", "path",
                  "with_cont")


def _check_kwargs(kwargs: dict, read_csv_hint: bool = False) -> None:
    """Raise ``TypeError`` naming keyword arguments the tabular loaders don't take (rather than ignoring typos)."""
    if kwargs:
        hint = (" (from_csv forwards no pd.read_csv options but skipinitialspace: read the CSV with pd.read_csv(...) "
                "and call TabularDataLoaders.from_df.)" if read_csv_hint else "")
        raise TypeError(f"Unexpected keyword argument(s) {sorted(kwargs)} for the tabular loaders: they take "
                        f"{', '.join(_LOADER_KWARGS)} (plus from_df's own arguments).{hint}")


class TabularDataLoaders(DataLoaders):
    """Training and validation ``TabDataLoader``s over a ``TabularPandas``; factories ``from_df``/``from_csv``."""

    def __init__(self, *loaders: TabDataLoader, path: str | os.PathLike = ".", device: Any = None) -> None:
        if not loaders:
            raise ValueError("TabularDataLoaders needs at least a training loader.")
        self.loaders = list(loaders)
        self.path = Path(path)
        self.getters = None
        if device is not None:
            self.to(device)

    # -- table facts (fastai reads them off the DataLoaders)

    @property
    def to_table(self) -> TabularPandas:
        """The processed table the loaders slice."""
        return self.train.to_table

    @property
    def cat_names(self) -> list[str]:
        """Categorical columns (``<col>_na`` flags included)."""
        return self.to_table.cat_names

    @property
    def cont_names(self) -> list[str]:
        """Continuous columns."""
        return self.to_table.cont_names

    @property
    def y_names(self) -> list[str]:
        """Target columns."""
        return self.to_table.y_names

    @property
    def procs(self) -> list:
        """The fitted procs."""
        return self.to_table.procs

    @property
    def classes(self) -> dict:
        """Each categorical column's vocabulary (indexable by id, with ``o2i``)."""
        return self.to_table.classes

    @property
    def c(self) -> int | None:
        """Number of model outputs."""
        return self.to_table.c

    def add_batch_tfms(self, tfms: Sequence[Any]) -> None:
        """Tables have no batch transforms: normalisation is the ``Normalize`` proc."""
        raise ValueError("Tabular loaders take no batch transforms: pass procs=[..., Normalize] instead.")

    def new(self, **kwargs: Any) -> "TabularDataLoaders":
        """Copy with loader attributes changed (``bs=``, ``device=``...)."""
        return type(self)(*[dl.new(**kwargs) for dl in self.loaders], path=self.path)

    def test_dl(self, items: Any, with_labels: bool | None = None, bs: int | None = None,
                **kwargs: Any) -> TabDataLoader:
        """A validation-style loader over new rows, processed with the fitted procs.

        Labels, as fastai: by default (``None``) the target columns are encoded when the rows have them and they
        can be (so ``get_preds(dl=...)`` returns targets); ``True`` also warns when they can't be (missing, or a
        class never seen in training: they are dropped, never an error); ``False`` never reads them.
        """
        df = _as_df_rows(items)
        to = self.to_table.new(df, with_labels=with_labels)
        valid = self.valid
        return valid.new(dataset=to, shuffle=False, drop_last=False, split_idx=VALID, bs=bs or valid.bs, **kwargs)

    def decode_prediction(self, dl: TabDataLoader, decoded: torch.Tensor, probs: torch.Tensor) -> tuple:
        """``Learner.predict``'s answer for a row: ``(row with its prediction, class index / value, probabilities)``."""
        to = dl.to_table
        row = to.decode_rows(to.cats[:1], to.conts[:1])
        if to.target is not None:
            row = to._add_y(row, torch.as_tensor(decoded).reshape(1, *torch.as_tensor(decoded).shape), suffix="")
        return TabularRows(row), decoded, probs

    # -- export

    def spec(self) -> dict:
        """JSON-safe description for export: the fitted procs' state and the loader settings."""
        return {"type": "tabular", "table": self.to_table.state(), "bs": self.valid.bs,
                "with_cont": self.train.with_cont}

    @classmethod
    def from_spec(cls, spec: dict, device: Any = None) -> "TabularDataLoaders":
        """Inference-only loaders rebuilt from ``spec()`` (``test_dl`` and ``predict`` work; no rows)."""
        to = TabularPandas.from_state(spec["table"])
        common = dict(bs=spec.get("bs", 64), device=device, with_cont=spec.get("with_cont", True))
        return cls(TabDataLoader(to, shuffle=False, **common), TabDataLoader(to, **common))

    # -- factories

    @classmethod
    def from_tabular(cls, to: TabularPandas, bs: int = 64, shuffle_train: bool = True, val_bs: int | None = None,
                     device: Any = None, path: Any = ".", with_cont: bool = True, shuffle: bool | None = None,
                     drop_last: bool | None = None, num_workers: int | None = None,
                     **kwargs: Any) -> "TabularDataLoaders":
        """Loaders over a processed ``TabularPandas`` (training shuffled, last partial batch dropped).

        ``shuffle`` (fastai's name; same as ``shuffle_train``) and ``drop_last`` set the training loader;
        ``num_workers`` is accepted and ignored (batches are tensor slices). Other keywords raise ``TypeError``.
        """
        _check_kwargs(kwargs)
        dev = torch.device(device) if device is not None else default_device()
        shuffle = shuffle_train if shuffle is None else shuffle
        train = TabDataLoader(to.train, bs=bs, shuffle=shuffle, drop_last=drop_last, device=dev, with_cont=with_cont,
                              split_idx=TRAIN)
        valid = TabDataLoader(to.valid, bs=val_bs or bs, shuffle=False, device=dev, with_cont=with_cont,
                              split_idx=VALID)
        return cls(train, valid, path=path)

    @classmethod
    def from_df(cls, df: pd.DataFrame, path: str | os.PathLike = ".", procs: Any = None, cat_names: Any = None,
                cont_names: Any = None, y_names: Any = None, y_block: Any = None, valid_idx: Any = None,
                bs: int = 64, seed: int | None = None, val_bs: int | None = None, shuffle_train: bool = True,
                device: Any = None, **kwargs: Any) -> "TabularDataLoaders":
        """Loaders from a DataFrame; ``valid_idx`` (row positions) is the validation set, else a random 20%.

        ``cat_names=None`` means no categorical columns; ``cont_names=None`` means every other column that is not a
        target (in the frame's order), as fastai.
        """
        _check_kwargs({k: v for k, v in kwargs.items() if k not in _LOADER_KWARGS}, read_csv_hint=True)
        if cont_names is None:
            skip = set(_as_names(cat_names)) | set(_as_names(y_names))
            cont_names = [c for c in df.columns if c not in skip]
        if valid_idx is None:
            from ..data.splitters import RandomSplitter  # fastai's default split for tables
            splits = RandomSplitter(valid_pct=0.2, seed=seed)(range(len(df)))
        else:
            valid = sorted(set(int(i) for i in valid_idx))
            if valid and (valid[0] < 0 or valid[-1] >= len(df)):
                raise IndexError(f"valid_idx holds positions outside 0..{len(df) - 1} (the DataFrame has {len(df)} "
                                 f"rows): valid_idx are row positions, as in df.iloc.")
            vs = set(valid)
            splits = ([i for i in range(len(df)) if i not in vs], valid)
        to = TabularPandas(df, procs=procs, cat_names=cat_names, cont_names=cont_names, y_names=y_names,
                           y_block=y_block, splits=splits)
        return cls.from_tabular(to, bs=bs, shuffle_train=shuffle_train, val_bs=val_bs, device=device, path=path,
                                **kwargs)

    @classmethod
    def from_hf(cls, ds: Any, procs: Any = None, cat_names: Any = None, cont_names: Any = None, y_names: Any = None,
                y_block: Any = None, valid: Any = None, valid_pct: float = 0.2, seed: int | None = None,
                **kwargs: Any) -> "TabularDataLoaders":
        """``from_df`` on a Hugging Face ``datasets`` Dataset / DatasetDict (its splits, else ``valid_pct``);
        a ``ClassLabel`` target's names are the vocabulary in their order."""
        from ..data.hf import hf_table
        if cont_names is None:  # every other column, as from_df
            first = next(iter(ds.values())) if hasattr(ds, "values") and callable(ds.values) else ds
            skip = set(_as_names(cat_names)) | set(_as_names(y_names))
            cont_names = [c for c in first.column_names if c not in skip]
        y = _as_names(y_names)
        df, valid_idx, block = hf_table(ds, _as_names(cat_names) + _as_names(cont_names) + y, valid, valid_pct,
                                        seed, y[0] if len(y) == 1 else None)
        return cls.from_df(df, procs=procs, cat_names=cat_names, cont_names=cont_names, y_names=y_names,
                           y_block=y_block or block, valid_idx=valid_idx, seed=seed, **kwargs)

    @classmethod
    def from_csv(cls, csv: str | os.PathLike, path: str | os.PathLike = ".", procs: Any = None,
                 cat_names: Any = None, cont_names: Any = None, y_names: Any = None, y_block: Any = None,
                 valid_idx: Any = None, bs: int = 64, skipinitialspace: bool = True,
                 **kwargs: Any) -> "TabularDataLoaders":
        """Loaders from a CSV file (``pd.read_csv(csv, skipinitialspace=...)``, fastai's default); see ``from_df``.

        Other ``pd.read_csv`` options are not forwarded: read the frame yourself and use ``from_df``.
        """
        csv = Path(csv)
        if not csv.exists() and (Path(path) / csv).exists():
            csv = Path(path) / csv
        if not csv.exists():
            raise FileNotFoundError(f"No CSV at {csv}: pass its path (absolute, or relative to path={str(path)!r}).")
        return cls.from_df(pd.read_csv(csv, skipinitialspace=skipinitialspace), path=path, procs=procs,
                           cat_names=cat_names, cont_names=cont_names,
                           y_names=y_names, y_block=y_block, valid_idx=valid_idx, bs=bs, **kwargs)

    @classmethod
    def from_arrays(cls, x: Any, y: Any, valid_pct: float = 0.2, seed: int | None = None, valid: tuple | None = None,
                    names: Sequence[str] | None = None, y_name: str | Sequence[str] = "y", cat_names: Any = None,
                    procs: Any = None, y_block: Any = None, vocab: Sequence | None = None, bs: int = 64,
                    **kwargs: Any) -> "TabularDataLoaders":
        """A feature table held in arrays: ``x`` (N x features, numpy or tensor) and labels ``y``; see ``from_df``.

        Columns are named ``names`` (default: a DataFrame's columns, else ``x0, x1, ...``) and the target
        ``y_name``; every column is continuous unless listed in ``cat_names``. Class ids or names in ``y`` give a classifier (fastai's ``from_df`` would
        make int targets a regression), floats a regression, one-hot rows (Keras' ``to_categorical``) a classifier, any other 0/1 matrix a
        multi-label target. ``valid=(xv, yv)``
        replaces the random ``valid_pct`` split. ``predict`` and ``test_dl`` take rows as a DataFrame with those
        column names, e.g. ``pd.DataFrame(x_new, columns=dls.cont_names)``.
        """
        from ..data.splitters import RandomSplitter
        from ..data.arrays import as_numpy
        from .arrays import arrays_to_frame
        from ..data.arrays import check_pair
        parts = [("x", x, y)] + ([("valid", *check_pair(valid, "valid"))] if valid is not None else [])
        df, x_names, y_names, block = arrays_to_frame(parts, names, y_name, vocab)
        n_train = len(df) - (len(as_numpy(valid[0], 'valid[0]')) if valid is not None else 0)
        valid_idx = list(range(n_train, len(df))) if valid is not None else \
            RandomSplitter(valid_pct, seed=seed)(range(len(df)))[1]
        cats = _as_names(cat_names)
        return cls.from_df(df, procs=procs, cat_names=cats, cont_names=[c for c in x_names if c not in cats],
                           y_names=y_names, y_block=y_block if y_block is not None else block, valid_idx=valid_idx,
                           bs=bs, **kwargs)

    def __repr__(self) -> str:
        return f"TabularDataLoaders(train={self.train!r}, valid={self.valid!r})"


register_data_loaders("tabular", TabularDataLoaders.from_spec)
attach_loaders("dataloaders", TabularDataLoaders.from_tabular)
