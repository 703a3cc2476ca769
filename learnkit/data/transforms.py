"""The transform protocol shared by item transforms (CPU, per item) and batch transforms (device, per batch).

A sample is a tuple of values, one per block (inputs first, then targets). Alongside it travels
a tuple of *kinds* (``'image'``, ``'mask'``, ``'points'``, ``'category'``, ``'multicategory'``,
``'regression'``, ``'generic'``), one per value, taken from the blocks that produced them. A
transform decides what to do with a value from its kind, never from a tensor subclass:
``encode_<kind>(value)`` is called for each value whose kind the transform handles, and values of
other kinds pass through unchanged. Random parameters are drawn once per call in
``before_call`` so that an image and its mask get the same geometry.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ..registry import register_transform
from .dispatch import TfmMeta, TypeDispatch, is_tuple, retain_type

__all__ = ["Transform", "ToTensor", "IntToFloatTensor", "apply_transforms", "decode_transforms", "sort_by_order",
           "infer_kind"]

TRAIN, VALID = 0, 1


class Transform(metaclass=TfmMeta):
    """Base class: encodes each value of a sample according to its kind, optionally on one split only.

    fastai's protocol works too: typed ``encodes``/``decodes``/``setups`` (several per class, picked by the
    annotated input type), ``Transform(f)`` or ``@Transform`` on a function, tuples handled element-wise.
    """

    order: int = 0
    split_idx: int | None = None  # None: every split; 0: training only; 1: validation only
    train_setup: bool | None = None
    random_in_training: bool = False  # draws random parameters per item in training (preload() refuses it there)

    def __init__(self, enc: Any = None, dec: Any = None, split_idx: int | None = None, order: int | None = None) -> None:
        if split_idx is not None:
            self.split_idx = split_idx
        if order is not None:
            self.order = order
        if enc is not None:
            self.encodes = _own(type(self).__dict__.get("encodes"), enc, self)
            self._name = getattr(enc, "__name__", None)
        if dec is not None:
            self.decodes = _own(type(self).__dict__.get("decodes"), dec, self)

    @property
    def name(self) -> str:
        """The wrapped function's name, or the class name."""
        return getattr(self, "_name", None) or type(self).__name__

    def _fastai_style(self) -> bool:
        return len(self.encodes) > 0 or len(self.decodes) > 0

    def __call__(self, sample: Any, kinds: Sequence[str] | None = None, split_idx: int | None = None, **kwargs: Any) -> Any:
        """Apply the transform to one sample (item transforms) or one batch (batch transforms).

        Called as fastai does, on a bare value (``Resize(10)(img)``, ``AffineCoordTfm(size=10)(x)``) or a tuple of
        them without ``kinds``, each value's kind comes from its type (see ``infer_kind``) and the same shape returns.
        """
        if self._fastai_style():
            if self.split_idx is not None and split_idx != self.split_idx:
                return sample
            return self._do_call(self.encodes, sample, **kwargs)
        split_idx = TRAIN if split_idx is None else split_idx
        if kinds is None:
            if isinstance(sample, tuple):
                return self(sample, tuple(infer_kind(v) for v in sample), split_idx)
            return self((sample,), (infer_kind(sample),), split_idx)[0]
        if self.split_idx is not None and self.split_idx != split_idx:
            return sample
        self.before_call(sample, kinds, split_idx)
        res = tuple(self._dispatch("encode", v, k) for v, k in zip(sample, kinds))
        return res if type(sample) is tuple or not isinstance(sample, tuple) else type(sample)(*res)  # a fastuple stays one

    def _do_call(self, f: Any, x: Any, **kwargs: Any) -> Any:
        if not is_tuple(x):
            if f is None or not len(f):
                return x
            return retain_type(f(x, **kwargs), x, f.returns(x))
        return retain_type(tuple(self._do_call(f, v, **kwargs) for v in x), x)

    def decode(self, sample: Any, kinds: Sequence[str] | None = None, full: bool = True,
               split_idx: int | None = None) -> Any:
        """Undo the transform where it is invertible (e.g. normalisation) for display."""
        if self._fastai_style():
            if self.split_idx is not None and split_idx != self.split_idx:
                return sample
            return self._do_call(self.decodes, sample)
        if kinds is None:
            if isinstance(sample, tuple):
                return self.decode(sample, tuple(infer_kind(v) for v in sample))
            return self.decode((sample,), (infer_kind(sample),))[0]
        return tuple(self._dispatch("decode", v, k) for v, k in zip(sample, kinds))

    def setup(self, items: Any = None, train_setup: bool = False) -> Any:
        """Run ``setups`` on ``items`` (their training split when ``train_setup``), as fastai's Pipeline does."""
        train_setup = train_setup if self.train_setup is None else self.train_setup
        return self.setups(getattr(items, "train", items) if train_setup else items)

    def before_call(self, sample: tuple, kinds: Sequence[str], split_idx: int) -> None:
        """Draw the random parameters shared by every value of this sample (override)."""

    def _dispatch(self, prefix: str, value: Any, kind: str) -> Any:
        fn = getattr(self, f"{prefix}_{kind}", None)
        return value if fn is None else fn(value)

    def get_config(self) -> dict:
        """JSON-safe constructor arguments, used by export to rebuild the transform (override)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _own(cls_dispatch: Any, f: Any, inst: Any) -> Any:
    """An instance's own dispatcher: the class's functions plus ``f`` (a function or a dispatcher)."""
    d = TypeDispatch(bases=[cls_dispatch] if cls_dispatch is not None else [])
    if isinstance(f, TypeDispatch):
        for e in f.funcs:
            d._put(e)
    else:
        d.add(f, False)
    return d.bound(inst)


def infer_kind(value: Any) -> str:
    """The kind of a bare value: ``'image'`` for a PIL image or an image tensor (CHW or a NCHW batch), else
    ``'generic'`` (values given without kinds, as when a transform is called on its own)."""
    if isinstance(value, Image.Image):
        return "image"
    if isinstance(value, torch.Tensor) and value.ndim in (3, 4):
        return "image"
    return "generic"


def sort_by_order(tfms: Sequence[Transform] | Transform | None) -> list[Transform]:
    """Flatten ``None``/one/many transforms into a list sorted by their ``order``; a class is instantiated (``ToTensor``)."""
    if tfms is None:
        return []
    if not isinstance(tfms, (list, tuple)):
        tfms = [tfms]
    flat: list = []
    for t in tfms:
        if isinstance(t, (list, tuple)):
            flat.extend(t)
        elif t is not None:
            flat.append(t)
    flat = [t() if isinstance(t, type) else t for t in flat]  # fastai's after_item=[Resize(224), ToTensor]
    return sorted(flat, key=lambda t: getattr(t, "order", 0))


def apply_transforms(tfms: Sequence[Transform], sample: tuple, kinds: Sequence[str], split_idx: int) -> tuple:
    """Run ``sample`` through ``tfms`` in order."""
    for t in tfms:
        sample = t(sample, kinds, split_idx)
    return sample


def decode_transforms(tfms: Sequence[Transform], sample: tuple, kinds: Sequence[str]) -> tuple:
    """Undo ``tfms`` in reverse order (for display)."""
    for t in reversed(tfms):
        if isinstance(t, Transform):
            sample = t.decode(sample, kinds)
    return sample


@register_transform
class ToTensor(Transform):
    """Turn PIL images into uint8 CHW tensors, masks into int64 HW tensors, numbers into tensors."""

    order = 100  # after every PIL-level item transform

    def encode_image(self, img: Any) -> torch.Tensor:
        """PIL image or HWC/HW array -> uint8 CHW tensor."""
        if isinstance(img, torch.Tensor):
            return img if img.ndim == 3 else img.unsqueeze(0)
        try:
            arr = np.array(img)  # a writable copy; decodes a lazily opened image here
        except OSError as e:  # truncated or corrupt file found only now, at decode time
            fn = getattr(img, "filename", "") or "an image"
            raise OSError(f"Could not decode {fn}: {e}. To find and remove unreadable images: "
                          f"verify_images(get_image_files(path)).") from e
        t = torch.from_numpy(arr)
        return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)  # collate makes the batch contiguous

    def encode_mask(self, mask: Any) -> torch.Tensor:
        """PIL mask or HW array -> int64 HW tensor of class ids."""
        if isinstance(mask, torch.Tensor):
            return mask.long()
        return torch.from_numpy(np.array(mask, dtype=np.int64))

    def encode_category(self, y: Any) -> torch.Tensor:
        """Class index -> int64 scalar tensor."""
        return torch.as_tensor(y, dtype=torch.long)

    def encode_multicategory(self, y: Any) -> torch.Tensor:
        """Multi-hot vector -> float tensor."""
        return torch.as_tensor(y, dtype=torch.float32)

    def encode_regression(self, y: Any) -> torch.Tensor:
        """Number(s) -> float tensor."""
        return torch.as_tensor(np.asarray(y, dtype=np.float32))

    def encode_points(self, pts: Any) -> torch.Tensor:
        """(n, 2) coordinates -> float tensor."""
        return torch.as_tensor(np.asarray(pts, dtype=np.float32)).reshape(-1, 2)

    def encode_generic(self, x: Any) -> Any:
        """Anything else: arrays become tensors, tensors pass through."""
        if isinstance(x, np.ndarray):
            return torch.from_numpy(x)
        if isinstance(x, Image.Image):
            return self.encode_image(x)
        return x


@register_transform
class IntToFloatTensor(Transform):
    """Batch transform: uint8 images -> float in [0, 1] on the device; masks -> int64."""

    order = 10

    def __init__(self, div: float = 255.0) -> None:
        self.div = div

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 -> float32 / div (floats pass unchanged)."""
        return x.float().div_(self.div) if not x.is_floating_point() else x

    def decode_image(self, x: torch.Tensor) -> torch.Tensor:
        """float in [0, 1] -> uint8."""
        return (x * self.div).clamp(0, 255).round().to(torch.uint8) if x.is_floating_point() else x

    def encode_mask(self, x: torch.Tensor) -> torch.Tensor:
        """Masks stay integer class ids."""
        return x.long()

    def get_config(self) -> dict:
        """Constructor arguments."""
        return {"div": self.div}
