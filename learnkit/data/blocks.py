"""Blocks: how one kind of value is loaded, encoded, decoded and shown.

A block is plain data: a ``kind`` (which transforms and losses key on), the ``type_tfms`` that
turn a raw value (a path, a label string) into an item-level value (a PIL image, a class index),
and the item and batch transforms the kind always needs (e.g. ``ToTensor``, ``IntToFloatTensor``).
Encoders that learn state (a vocabulary) expose ``setup(values)`` and are set up on the training
split only.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch

from .transforms import ToTensor, Transform

__all__ = [
    "TransformBlock", "CategoryBlock", "MultiCategoryBlock", "RegressionBlock",
    "Categorize", "MultiCategorize", "RegressionSetup", "resolve_block",
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


class Categorize:
    """Maps labels to class indices with a vocabulary learned from the training labels."""

    def __init__(self, vocab: Sequence | None = None, sort: bool = True) -> None:
        self.vocab = list(vocab) if vocab is not None else None
        self.sort = sort
        self._o2i = {v: i for i, v in enumerate(self.vocab)} if self.vocab is not None else None

    @property
    def o2i(self) -> dict:
        """Label -> index."""
        if self._o2i is None:
            raise RuntimeError("Categorize has no vocab yet: it is learned from the training labels by setup().")
        return self._o2i

    def setup(self, train_labels: Iterable) -> None:
        """Learn the vocabulary from the training labels (kept as given when a vocab was passed)."""
        if self.vocab is None:
            labels = [_plain(v) for v in train_labels]
            _check_labels(labels)
            self.vocab = _sorted_unique(labels) if self.sort else list(dict.fromkeys(labels))
            self._o2i = {v: i for i, v in enumerate(self.vocab)}

    def __call__(self, label: Any) -> int:
        """Label -> class index, with an error that names the label when it is not in the vocab."""
        label = _plain(label)
        try:
            return self.o2i[label]
        except KeyError:
            shown = self.vocab[:10] + (["..."] if len(self.vocab) > 10 else [])
            raise KeyError(
                f"Label {label!r} is not in the vocabulary learned from the training set ({len(self.vocab)} classes: "
                f"{shown}). A validation label never seen in training can't be predicted: move some of its items "
                f"into the training split, or pass CategoryBlock(vocab=[...]) listing every class.") from None

    def decode(self, idx: Any) -> Any:
        """Class index -> label."""
        return self.vocab[int(idx)]


class MultiCategorize(Categorize):
    """Maps a list of labels to a multi-hot float vector (or checks an already encoded one)."""

    def __init__(self, vocab: Sequence | None = None, encoded: bool = False) -> None:
        super().__init__(vocab)
        self.encoded = encoded
        if encoded and vocab is None:
            raise ValueError("MultiCategoryBlock(encoded=True) needs vocab=[...]: the names of the one-hot columns.")

    def setup(self, train_labels: Iterable) -> None:
        """Learn the vocabulary from every label of every training item."""
        if self.vocab is None:
            self.vocab = _sorted_unique(_plain(l) for labels in train_labels for l in labels)
            self._o2i = {v: i for i, v in enumerate(self.vocab)}

    def __call__(self, labels: Any) -> np.ndarray:
        """List of labels -> multi-hot float32 vector of length ``len(vocab)``."""
        if self.encoded:
            arr = np.asarray(labels, dtype=np.float32)
            if arr.shape != (len(self.vocab),):
                raise ValueError(f"Encoded multi-label target has shape {arr.shape}; expected ({len(self.vocab)},) "
                                 f"to match vocab {self.vocab}.")
            return arr
        out = np.zeros(len(self.vocab), dtype=np.float32)
        for l in labels:
            out[Categorize.__call__(self, l)] = 1.0
        return out

    def decode(self, vec: Any) -> list:
        """Multi-hot (or boolean) vector -> list of labels."""
        vec = torch.as_tensor(vec)
        return [self.vocab[i] for i in torch.nonzero(vec > 0.5).flatten().tolist()]


class RegressionSetup:
    """Turns numbers (or sequences of numbers) into float32 arrays."""

    def __call__(self, y: Any) -> np.ndarray:
        """Number(s) -> float32 array."""
        try:
            return np.asarray(y, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"Regression target {y!r} is not a number: check get_y / the target column.") from None


def _plain(v: Any) -> Any:
    """numpy scalars -> Python scalars, so vocabularies are JSON-safe and compare equal."""
    return v.item() if isinstance(v, np.generic) else v


def _check_labels(labels: list) -> None:
    """Refuse ``None`` as a class; warn when the training labels hold a single class."""
    n_none = sum(v is None for v in labels)
    if n_none:
        raise ValueError(f"get_y returned None for {n_none} of {len(labels)} training items: None can't be a class. "
                         f"Fix get_y (e.g. a regex that doesn't match a file name), or filter those items out.")
    if labels and len(set(labels)) == 1:
        warnings.warn(f"The training labels hold a single class ({labels[0]!r}): the model can only predict it and "
                      f"its accuracy means nothing. Check get_y and the folder layout (one folder per class).",
                      UserWarning, stacklevel=3)


def CategoryBlock(vocab: Sequence | None = None, sort: bool = True) -> TransformBlock:
    """Single-label classification target: labels -> class index; loss CrossEntropyLossFlat."""
    return TransformBlock("category", type_tfms=[Categorize(vocab, sort=sort)], item_tfms=[ToTensor()],
                          name="CategoryBlock")


def MultiCategoryBlock(encoded: bool = False, vocab: Sequence | None = None) -> TransformBlock:
    """Multi-label target: list of labels (or a one-hot row when ``encoded``) -> multi-hot float vector."""
    return TransformBlock("multicategory", type_tfms=[MultiCategorize(vocab, encoded=encoded)],
                          item_tfms=[ToTensor()], name="MultiCategoryBlock", config={"encoded": encoded})


def RegressionBlock(n_out: int | None = None) -> TransformBlock:
    """Regression target: number(s) -> float tensor; loss MSELossFlat."""
    return TransformBlock("regression", type_tfms=[RegressionSetup()], item_tfms=[ToTensor()],
                          name="RegressionBlock", config={"n_out": n_out})

