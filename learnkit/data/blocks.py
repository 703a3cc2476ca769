"""Blocks: how one kind of value is loaded, encoded, decoded and shown.

A block is plain data: a ``kind`` (which transforms and losses key on), the ``type_tfms`` that
turn a raw value (a path, a label string) into an item-level value (a PIL image, a class index),
and the item and batch transforms the kind always needs (e.g. ``ToTensor``, ``IntToFloatTensor``).
Encoders that learn state (a vocabulary) expose ``setup(values)`` and are set up on the training
split only.
"""
from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch

from ..registry import register_block
from ..utils import one_hot
from .label_checks import check_label_types
from .transforms import ToTensor, Transform

__all__ = [
    "TransformBlock", "CategoryBlock", "MultiCategoryBlock", "RegressionBlock",
    "Categorize", "MultiCategorize", "RegressionSetup", "resolve_block",
    "CategoryMap", "OneHotEncode", "EncodedMultiCategorize",
]


class TransformBlock:
    """A kind of value with the transforms it needs at each stage."""

    def __init__(self, kind: str = "generic", type_tfms: Sequence[Callable] | None = None,
                 item_tfms: Sequence[Transform] | None = None, batch_tfms: Sequence[Transform] | None = None,
                 name: str = "TransformBlock", config: dict | None = None) -> None:
        self.kind = kind
        self.type_tfms = list(type_tfms or [])
        self.item_tfms = list(item_tfms or [])
        self.batch_tfms = list(batch_tfms or [])
        self.name = name
        self.config = dict(config or {})

    @property
    def encoder(self) -> Any:
        """The stateful encoder (Categorize, ...) among the type transforms, if any."""
        return next((t for t in self.type_tfms if hasattr(t, "setup")), None)

    @property
    def vocab(self) -> list | None:
        """The vocabulary learned (or given) for this block, if it has one."""
        enc = self.encoder
        return getattr(enc, "vocab", None) if enc is not None else None

    def decode(self, value: Any) -> Any:
        """Turn an encoded value (class index, multi-hot vector) back into what the user knows."""
        enc = self.encoder
        return enc.decode(value) if enc is not None and hasattr(enc, "decode") else value

    def get_config(self) -> dict:
        """JSON-safe description, used by export (name, kind, vocab and constructor arguments)."""
        cfg = {"name": self.name, "kind": self.kind, **self.config}
        if self.vocab is not None:
            cfg["vocab"] = [v.item() if isinstance(v, np.generic) else v for v in self.vocab]
        return cfg

    def __repr__(self) -> str:
        return f"{self.name}(kind={self.kind!r})"


def resolve_block(b: Any) -> TransformBlock:
    """Accept a block instance, or a block factory such as ``ImageBlock`` that is called with no arguments."""
    if isinstance(b, TransformBlock):
        return b
    if callable(b):
        out = b()
        if isinstance(out, TransformBlock):
            return out
    raise TypeError(f"{b!r} is not a block: pass e.g. ImageBlock, CategoryBlock or CategoryBlock(vocab=[...]).")


def _sorted_unique(values: Iterable) -> list:
    uniq = set(values)
    try:
        return sorted(uniq)
    except TypeError:
        return sorted(uniq, key=str)


NA = "#na#"


def _present(o: Any) -> bool:
    """False for missing values (NaN, None, pd.NA): ``o == o`` is pandas' test for non-NaN."""
    try:
        return o is not None and bool(o == o)
    except (TypeError, ValueError):
        return False


class CategoryMap(list):
    """A vocabulary (fastai's): the unique non-missing values of ``col``, sorted when ``sort``, ``'#na#'`` first when ``add_na``.

    It is a list (equal to a list or tuple of the same values) with ``o2i`` mapping each value to its id; with
    ``add_na`` unknown values map to 0 (``'#na#'``). A pandas categorical keeps its categories' order (only those
    present with ``strict``).
    """

    def __init__(self, col: Iterable = (), sort: bool = True, add_na: bool = False, strict: bool = False) -> None:
        cat = getattr(col, "cat", None) if hasattr(col, "dtype") and str(col.dtype) == "category" else None
        if cat is not None:
            items = [_plain(o) for o in cat.categories]
            if strict:
                present = {_plain(o) for o in col.unique() if _present(o)}
                items = [o for o in items if o in present]
        else:
            items = list(dict.fromkeys(_plain(o) for o in col if _present(o)))
            if sort:
                items = _sorted_unique(items)
        super().__init__([NA] + items if add_na else items)
        self.add_na = add_na
        self.o2i: dict = (defaultdict(int) if add_na else {})
        self.o2i.update({v: i for i, v in enumerate(self)})

    @property
    def items(self) -> list:
        """The values, as a plain list (fastai's ``vocab.items``)."""
        return list(self)

    def map_objs(self, objs: Iterable, name: str = "Value") -> list[int]:
        """Values -> ids (unknown values are an error naming them, or 0 with ``add_na``)."""
        out = []
        for o in objs:
            o = _plain(o)
            if o not in self.o2i and not self.add_na:
                shown = list(self[:8]) + (["..."] if len(self) > 8 else [])
                raise KeyError(f"{name} {o!r} is not in the vocabulary ({len(self)} values: {shown}).")
            out.append(self.o2i[o])
        return out

    def map_ids(self, ids: Iterable) -> list:
        """Ids -> values."""
        return [self[int(i)] for i in ids]

    def __eq__(self, other: object) -> bool:
        try:
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))  # type: ignore[arg-type]
        except TypeError:
            return False

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]


class Categorize:
    """Reversible label <-> class index (fastai's): ``cat('dog') -> 1``, ``cat.decode(1) -> 'dog'``.

    The vocabulary (a ``CategoryMap``) is given or learned from the training labels by ``setup``; a given
    vocab is sorted too unless ``sort=False``, as fastai does. With ``add_na`` the vocab starts with
    ``'#na#'`` and unknown labels map to it; otherwise an unknown label is an error naming it.
    """

    order = 1

    def __init__(self, vocab: Sequence | None = None, sort: bool = True, add_na: bool = False) -> None:
        self.sort, self.add_na = sort, add_na
        self.vocab: CategoryMap | None = None
        if vocab is not None:
            self._set_vocab(vocab if isinstance(vocab, CategoryMap) else CategoryMap(vocab, sort=sort, add_na=add_na))

    def _set_vocab(self, vocab: CategoryMap) -> None:
        self.vocab, self._o2i = vocab, vocab.o2i

    @property
    def c(self) -> int | None:
        """Number of classes."""
        return None if self.vocab is None else len(self.vocab)

    @property
    def o2i(self) -> dict:
        """Label -> index."""
        if self.vocab is None:
            raise RuntimeError(f"{type(self).__name__} has no vocab yet: it is learned from the training labels by "
                               f"setup().")
        return self.vocab.o2i

    def setup(self, train_labels: Iterable) -> None:
        """Learn the vocabulary from the training labels (kept when a vocab was given)."""
        if self.vocab is None:
            labels = [_plain(v) for v in train_labels]
            _check_labels(labels, allow_missing=self.add_na)
            self._set_vocab(CategoryMap(labels, sort=self.sort, add_na=self.add_na))

    def setups(self, dsets: Iterable | None) -> None:
        """fastai's name for ``setup``."""
        if dsets is not None:
            self.setup(dsets)

    def __call__(self, label: Any) -> int:
        """Label -> class index, with an error that names the label when it is not in the vocab."""
        label = _plain(label)
        o2i = self.o2i
        if label in o2i or self.add_na:
            return o2i[label]
        shown = list(self.vocab[:10]) + (["..."] if len(self.vocab) > 10 else [])
        raise KeyError(
            f"Label {label!r} is not in the vocabulary learned from the training set ({len(self.vocab)} classes: "
            f"{shown}). A validation label never seen in training can't be predicted: move some of its items "
            f"into the training split, or pass CategoryBlock(vocab=[...]) listing every class.")

    def encodes(self, label: Any) -> int:
        """fastai's name for ``__call__``."""
        return self(label)

    def decode(self, idx: Any) -> Any:
        """Class index -> label."""
        return self.vocab[int(idx)]

    def decodes(self, idx: Any) -> Any:
        """fastai's name for ``decode``."""
        return self.decode(idx)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab={None if self.vocab is None else list(self.vocab)!r})"


class MultiCategorize(Categorize):
    """Reversible list of labels <-> tensor of class indices (fastai's): ``cat(['a', 'c']) -> tensor([0, 2])``.

    A given vocab keeps its order; a learned one is sorted. ``OneHotEncode`` turns the indices into a
    multi-hot vector (``MultiCategoryBlock`` does both in one step).
    """

    def __init__(self, vocab: Sequence | None = None, add_na: bool = False) -> None:
        super().__init__(vocab=vocab, sort=vocab is None, add_na=add_na)

    def setup(self, train_labels: Iterable) -> None:
        """Learn the vocabulary from every label of every training item."""
        if self.vocab is None:
            labels = [_plain(l) for labels in train_labels for l in labels]
            check_label_types(dict.fromkeys(l for l in labels if _present(l)))
            self._set_vocab(CategoryMap(labels, add_na=self.add_na))

    def _indices(self, labels: Iterable) -> list[int]:
        return [Categorize.__call__(self, l) for l in labels]

    def __call__(self, labels: Any) -> torch.Tensor:
        """List of labels -> int64 tensor of their indices."""
        return torch.tensor(self._indices(labels), dtype=torch.long)

    def decode(self, idxs: Any) -> list:
        """Indices -> list of labels."""
        return [self.vocab[int(i)] for i in idxs]


class _MultiHotCategorize(MultiCategorize):
    """``MultiCategorize`` then ``OneHotEncode`` in one step: list of labels <-> multi-hot float32 vector (MultiCategoryBlock's)."""

    def __call__(self, labels: Any) -> np.ndarray:
        """List of labels -> multi-hot float32 vector of length ``len(vocab)``."""
        idxs = self._indices(labels)
        out = np.zeros(len(self.vocab), dtype=np.float32)
        out[idxs] = 1.0
        return out

    def decode(self, vec: Any) -> list:
        """Multi-hot (or boolean, or probabilities) vector -> list of labels above 0.5."""
        return [self.vocab[i] for i in torch.nonzero(torch.as_tensor(vec) > 0.5).flatten().tolist()]


class OneHotEncode:
    """Class indices -> multi-hot float vector of length ``c`` (fastai's); ``decode`` gives back the indices."""

    order = 2

    def __init__(self, c: int | None = None) -> None:
        self.c = c

    def setups(self, dsets: Any) -> None:
        """Take ``c`` from ``dsets.vocab`` (or a ``Categorize``) when it was not given."""
        if self.c is None:
            vocab = getattr(dsets, "vocab", None)
            self.c = len(vocab) if vocab is not None else None
        if not self.c:
            warnings.warn("OneHotEncode couldn't infer the number of classes: pass c= at init.", stacklevel=2)

    def __call__(self, idxs: Any) -> torch.Tensor:
        """Indices -> multi-hot float32 tensor."""
        if self.c is None:
            raise ValueError("OneHotEncode has no number of classes: pass c= (e.g. OneHotEncode(c=len(vocab))).")
        return one_hot(idxs, self.c)

    def decode(self, vec: Any) -> list[int]:
        """Multi-hot vector -> indices of its ones."""
        return [i for i, v in enumerate(torch.as_tensor(vec).tolist()) if v == 1]

    encodes, decodes = __call__, decode


class EncodedMultiCategorize(Categorize):
    """Multi-label targets already one-hot encoded, decoded with ``vocab`` (fastai's): a 0/1 row <-> list of labels."""

    def __init__(self, vocab: Sequence) -> None:
        if vocab is None:
            raise ValueError("EncodedMultiCategorize (MultiCategoryBlock(encoded=True)) needs vocab=[...]: the names "
                             "of the one-hot columns.")
        super().__init__(vocab, sort=False)

    def __call__(self, row: Any) -> np.ndarray:
        """One-hot row -> float32 vector, with an error when its length is not ``len(vocab)``."""
        arr = np.asarray(row, dtype=np.float32)
        if arr.shape != (len(self.vocab),):
            raise ValueError(f"Encoded multi-label target has shape {arr.shape}; expected ({len(self.vocab)},) "
                             f"to match vocab {list(self.vocab)}.")
        return arr

    def decode(self, vec: Any) -> list:
        """0/1 (or boolean, or probability) vector -> list of the labels above 0.5."""
        return [self.vocab[i] for i in torch.nonzero(torch.as_tensor(vec) > 0.5).flatten().tolist()]


class RegressionSetup:
    """Turns numbers (or sequences of numbers) into float32 arrays; ``c`` is the number of outputs (fastai's)."""

    def __init__(self, c: int | None = None) -> None:
        self.c = c

    def __call__(self, y: Any) -> np.ndarray:
        """Number(s) -> float32 array."""
        try:
            arr = np.asarray(y, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"Regression target {y!r} is not a number: check get_y / the target column.") from None
        if not np.isfinite(arr).all():
            raise ValueError(f"Regression target {_plain(y)!r} is missing or infinite: drop those items, or fill the target "
                             f"column, before building the DataLoaders.")
        return arr

    encodes = __call__

    def setups(self, dsets: Sequence) -> None:
        """Set ``c`` from the first target (its length, or 1 for a number) when it was not given."""
        if self.c is not None:
            return
        try:
            first = next(iter(dsets))
            self.c = len(first) if hasattr(first, "__len__") else 1
        except (StopIteration, TypeError):
            self.c = 0

    def decodes(self, o: Any) -> Any:
        """A float for one output, a tuple of floats for several."""
        t = torch.as_tensor(o)
        return float(t) if t.ndim == 0 else tuple(float(v) for v in t.reshape(-1))


def _plain(v: Any) -> Any:
    """numpy scalars -> Python scalars, so vocabularies are JSON-safe and compare equal."""
    return v.item() if isinstance(v, np.generic) else v


def _check_labels(labels: list, allow_missing: bool = False) -> None:
    """Refuse missing labels (None; NaN too unless they map to ``'#na#'``) and mixed types; warn on a single class."""
    n_none = sum(v is None or (not allow_missing and not _present(v)) for v in labels)
    if n_none:
        raise ValueError(f"get_y returned a missing label (None or NaN) for {n_none} of {len(labels)} training items: "
                         f"a missing label can't be a class. Fix get_y (e.g. a regex that doesn't match a file name), "
                         f"or drop those items first (df.dropna(subset=[label_col])).")
    check_label_types(dict.fromkeys(v for v in labels if _present(v)))
    if labels and len(set(labels)) == 1:
        warnings.warn(f"The training labels hold a single class ({labels[0]!r}): the model can only predict it and "
                      f"its accuracy means nothing. Check get_y and the folder layout (one folder per class).",
                      UserWarning, stacklevel=3)


def CategoryBlock(vocab: Sequence | None = None, sort: bool = True, add_na: bool = False) -> TransformBlock:
    """Single-label classification target: labels -> class index; loss CrossEntropyLossFlat."""
    return TransformBlock("category", type_tfms=[Categorize(vocab, sort=sort, add_na=add_na)], item_tfms=[ToTensor()],
                          name="CategoryBlock")


def MultiCategoryBlock(encoded: bool = False, vocab: Sequence | None = None, add_na: bool = False) -> TransformBlock:
    """Multi-label target: list of labels (or a one-hot row when ``encoded``) -> multi-hot float vector."""
    tfm = EncodedMultiCategorize(vocab) if encoded else _MultiHotCategorize(vocab, add_na=add_na)
    return TransformBlock("multicategory", type_tfms=[tfm],
                          item_tfms=[ToTensor()], name="MultiCategoryBlock", config={"encoded": encoded})


def RegressionBlock(n_out: int | None = None) -> TransformBlock:
    """Regression target: number(s) -> float tensor; loss MSELossFlat."""
    return TransformBlock("regression", type_tfms=[RegressionSetup()], item_tfms=[ToTensor()],
                          name="RegressionBlock", config={"n_out": n_out})


# rebuilt by load_learner from each block's get_config() (the saved vocabulary keeps its order)
register_block("CategoryBlock", lambda vocab=None, **_: CategoryBlock(vocab=vocab, sort=False))
register_block("MultiCategoryBlock", lambda vocab=None, encoded=False, **_: MultiCategoryBlock(encoded, vocab))
register_block("RegressionBlock", lambda n_out=None, **_: RegressionBlock(n_out))
