"""fastai's mid-level data API: ``ItemTransform``, ``Pipeline``, ``TfmdLists`` and ``fastuple``."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastcore.foundation import L

from .dispatch import is_tuple, retain_type
from .transforms import Transform

__all__ = ["ItemTransform", "Pipeline", "TfmdLists", "fastuple", "mask2idxs", "test_set", "show_at"]


class fastuple(tuple):
    """A tuple with element-wise arithmetic (fastcore's): ``fastuple(1, 2) + 1 == (2, 3)``; transforms keep its type."""

    def __new__(cls, x: Any = None, *rest: Any) -> "fastuple":
        if x is None:
            x = ()
        if not isinstance(x, tuple):
            x = (x,) + rest if rest else ((x,) if not hasattr(x, "__iter__") or isinstance(x, str) else tuple(x))
        return super().__new__(cls, x)

    def _op(self, other: Any, op: Callable) -> "fastuple":
        other = other if isinstance(other, tuple) else (other,) * len(self)
        return type(self)(tuple(op(a, b) for a, b in zip(self, other)))

    def add(self, other: Any) -> "fastuple":
        """Element-wise sum."""
        return self._op(other, lambda a, b: a + b)

    def mul(self, other: Any) -> "fastuple":
        """Element-wise product."""
        return self._op(other, lambda a, b: a * b)

    def __add__(self, other: Any) -> "fastuple":  # type: ignore[override]
        return self.add(other)

    def __mul__(self, other: Any) -> "fastuple":  # type: ignore[override]
        return self.mul(other)

    def __sub__(self, other: Any) -> "fastuple":
        return self._op(other, lambda a, b: a - b)


class ItemTransform(Transform):
    """A transform applied to a whole tuple (an (x, y) pair) rather than to each of its elements."""

    def _do_call(self, f: Any, x: Any, **kwargs: Any) -> Any:
        if not is_tuple(x):
            return super()._do_call(f, x, **kwargs)
        y = super()._do_call(f, list(x), **kwargs)
        if isinstance(y, list):
            y = tuple(y)
        return retain_type(y, x)


def _call(f: Any, x: Any, split_idx: int | None) -> Any:
    if isinstance(f, Transform):
        return f(x, split_idx=split_idx)
    return tuple(_call(f, v, split_idx) for v in x) if is_tuple(x) else f(x)


def _decode(f: Any, x: Any, split_idx: int | None, full: bool = True) -> Any:
    if isinstance(f, Transform):
        return f.decode(x, full=full, split_idx=split_idx)
    dec = getattr(f, "decodes", None) or getattr(f, "decode", None)
    if dec is None:
        return x
    return tuple(_decode(f, v, split_idx) for v in x) if is_tuple(x) else dec(x)


def _setup(f: Any, items: Any, train_setup: bool) -> None:
    if isinstance(f, Transform):
        f.setup(items, train_setup)
        return
    setups = getattr(f, "setups", None) or getattr(f, "setup", None)  # learnkit's text transforms have setup(items)
    if setups is not None and items is not None:
        setups(getattr(items, "train", items) if train_setup else items)


class Pipeline:
    """Transforms composed in ``order`` (fastcore's): call, ``decode`` in reverse, ``setup`` one at a time, ``show``."""

    def __init__(self, funcs: Any = None, split_idx: int | None = None) -> None:
        self.split_idx = split_idx
        if isinstance(funcs, Pipeline):
            self.fs = funcs.fs
        else:
            funcs = [] if funcs is None else (list(funcs) if isinstance(funcs, (list, tuple, L)) else [funcs])
            funcs = [f() if isinstance(f, type) else f for f in funcs]  # [Tokenizer.from_folder(path), Numericalize]
            self.fs = L(f if isinstance(f, Transform) or hasattr(f, "setups") or hasattr(f, "decode")
                        else Transform(f) for f in funcs).sorted(key=lambda f: getattr(f, "order", 0))

    def setup(self, items: Any = None, train_setup: bool = False) -> None:
        """Set each transform up on ``items`` as transformed by the transforms before it."""
        tfms = list(self.fs)
        self.fs.clear()
        for t in tfms:
            self.add(t, items, train_setup)

    def add(self, ts: Any, items: Any = None, train_setup: bool = False) -> None:
        """Add (and set up) one or several transforms."""
        ts = list(ts) if isinstance(ts, (list, tuple, L)) else [ts]
        for t in ts:
            _setup(t, items, train_setup)
            self.fs.append(t)
        self.fs.sort(key=lambda f: getattr(f, "order", 0))

    def __call__(self, o: Any) -> Any:
        for f in self.fs:
            o = _call(f, o, self.split_idx)
        return o

    def decode(self, o: Any, full: bool = True) -> Any:
        """Undo the transforms, last first."""
        for f in reversed(self.fs):
            o = _decode(f, o, self.split_idx, full)
        return o

    def show(self, o: Any, ctx: Any = None, **kwargs: Any) -> Any:
        """Decode ``o`` and draw it (images as images, the rest as the title); returns the matplotlib axes."""
        from .show import show_image
        o = self.decode(o)
        if callable(getattr(o, "show", None)):  # a type that draws itself (the book's SiameseImage)
            return o.show(ctx=ctx, **kwargs)
        vals = o if is_tuple(o) else (o,)
        imgs = [v for v in vals if hasattr(v, "size") and (hasattr(v, "mode") or getattr(v, "ndim", 0) >= 2)]
        title = " ".join(str(v) for v in vals if not any(v is i for i in imgs)) or None
        if imgs:
            return show_image(imgs[0], ctx=ctx, title=title, **kwargs)
        import matplotlib.pyplot as plt
        ax = ctx if ctx is not None else plt.subplots()[1]
        ax.set_title(title)
        ax.axis("off")
        return ax

    def __getitem__(self, i: int) -> Any:
        return self.fs[i]

    def __len__(self) -> int:
        return len(self.fs)

    def __getattr__(self, k: str) -> Any:
        if k.startswith("_") or k in ("fs", "split_idx"):
            raise AttributeError(k)
        found = [getattr(f, k) for f in self.fs if hasattr(f, k)]
        if not found:
            raise AttributeError(f"Neither the Pipeline nor any of its transforms has {k!r}.")
        return found[0] if len(found) == 1 else L(found)

    def __repr__(self) -> str:
        return "Pipeline: " + " -> ".join(getattr(f, "name", getattr(f, "__name__", type(f).__name__)) for f in self.fs)


def mask2idxs(mask: Any) -> list:
    """A boolean mask -> the indices where it is true; a list of indices (or a slice) passes through."""
    if isinstance(mask, slice):
        return mask
    vals = list(mask)
    if vals and all(isinstance(v, bool) or type(v).__name__ in ("bool_", "bool") for v in vals):
        return [i for i, v in enumerate(vals) if v]
    return [int(v) for v in vals]


def _is_indexer(idx: Any) -> bool:
    return isinstance(idx, int) or (hasattr(idx, "ndim") and idx.ndim == 0 and not isinstance(idx, (list, tuple)))


class TfmdLists:
    """Items plus a ``Pipeline`` applied lazily on indexing (fastai's); ``splits`` give ``train``/``valid``.

    ``setup`` runs on the training split only, so a ``Categorize`` learns its vocab from the training items.
    """

    def __init__(self, items: Any, tfms: Any, use_list: bool | None = None, do_setup: bool = True,
                 split_idx: int | None = None, train_setup: bool = True, splits: Any = None, types: Any = None,
                 verbose: bool = False, dl_type: Any = None) -> None:
        self.items = items if isinstance(items, L) else L(items, use_list=use_list)
        self.tfms = Pipeline(tfms, split_idx=split_idx)
        self.split_idx, self.types, self.dl_type = split_idx, types, dl_type
        self.splits = L([slice(None), []] if splits is None else splits).map(mask2idxs)
        if do_setup:
            self.setup(train_setup)

    def setup(self, train_setup: bool = True) -> None:
        """Set the transforms up (on the training split when ``train_setup``), noting each step's input type."""
        self.tfms.setup(self, train_setup)
        first = self.items[self.splits[0]] if len(self) else []
        if len(first):
            x, self.types = first[0], []
            for f in self.tfms.fs:
                self.types.append(getattr(f, "input_types", type(x)))
                x = _call(f, x, self.split_idx)
            self.types.append(type(x))

    def _new(self, items: Any, split_idx: int | None = None) -> "TfmdLists":
        return type(self)(items, self.tfms, do_setup=False, types=self.types,
                         split_idx=self.split_idx if split_idx is None else split_idx, dl_type=self.dl_type)

    def subset(self, i: int) -> "TfmdLists":
        """Split ``i`` (0 training, 1 validation) as a ``TfmdLists``."""
        return self._new(self.items[self.splits[i]], split_idx=i)

    @property
    def train(self) -> "TfmdLists":
        """The training split."""
        return self.subset(0)

    @property
    def valid(self) -> "TfmdLists":
        """The validation split."""
        return self.subset(1)

    @property
    def n_subsets(self) -> int:
        """How many splits."""
        return len(self.splits)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: Any) -> Any:
        res = self.items[idx]
        return self.tfms(res) if _is_indexer(idx) else res.map(self.tfms)

    def __iter__(self) -> Iterator:
        return (self[i] for i in range(len(self)))

    def decode(self, o: Any, **kwargs: Any) -> Any:
        """Undo the transforms."""
        return self.tfms.decode(o, **kwargs)

    def show(self, o: Any, **kwargs: Any) -> Any:
        """Decode and draw ``o``."""
        return self.tfms.show(o, **kwargs)

    def new_empty(self) -> "TfmdLists":
        """An empty TfmdLists with the same transforms."""
        return self._new([])

    def infer_idx(self, x: Any) -> int:
        """The first transform ``x`` goes through: the step whose input had ``x``'s type during ``setup``."""
        types = self.types or []
        for i, t in enumerate(types):
            if isinstance(x, t):
                return i
        if not types:
            return 0
        names = ", ".join(dict.fromkeys(getattr(t, "__name__", str(t)) for t in types))
        raise TypeError(f"Expected an input of one of the types the pipeline saw ({names}), got a "
                        f"{type(x).__name__}: pass items like the training items, or rm_type_tfms= to say "
                        f"how many transforms to skip.")

    def infer(self, x: Any) -> Any:
        """Run ``x`` through the transforms from the one that takes its type."""
        o = x
        for f in self.tfms.fs[self.infer_idx(x):]:
            o = _call(f, o, self.split_idx)
        return o

    def __getattr__(self, k: str) -> Any:
        if k.startswith("_") or k in ("tfms", "items", "splits"):
            raise AttributeError(k)
        return getattr(self.tfms, k)

    def __repr__(self) -> str:
        return f"{type(self).__name__}: {self.items}\ntfms - {list(self.tfms.fs)}"


def test_set(dsets: Any, test_items: Any, rm_tfms: Any = None, with_labels: bool = False) -> Any:
    """fastai's ``test_set``: ``test_items`` through ``dsets``' transforms (inputs only unless ``with_labels``),
    each value starting at the transform that takes the items' type (``rm_tfms``: how many to skip instead)."""
    if isinstance(dsets, TfmdLists):
        tls, one = [dsets], True
    else:
        tls, one = (dsets.tls if with_labels else dsets.tls[:dsets.n_inp]), False
    test_tls = [tl._new(test_items, split_idx=1) for tl in tls]
    if rm_tfms is None:
        first = test_items[0] if len(test_items) else None
        rm_tfms = [tl.infer_idx(first) if first is not None else 0 for tl in test_tls]
    elif isinstance(rm_tfms, int):
        rm_tfms = [rm_tfms] * len(test_tls)
    for tl, j in zip(test_tls, rm_tfms):
        tl.tfms = Pipeline(list(tl.tfms.fs)[j:], split_idx=1)
    if one:
        return test_tls[0]
    return type(dsets)(tls=test_tls, n_inp=dsets.n_inp, split_idx=1)


test_set.__test__ = False  # fastai's name; not a pytest test when imported into a test module

def show_at(o: Any, idx: int, **kwargs: Any) -> Any:
    """Draw item ``idx`` of ``o`` (a ``TfmdLists`` or ``Datasets``) with ``o.show``."""
    return o.show(o[idx], **kwargs)
