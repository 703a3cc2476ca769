"""Image input: loading, checking and the blocks that turn a path (or array, bytes, PIL image) into an image.

``PILImage`` / ``PILImageBW`` / ``PILMask`` are namespaces, not types: their ``create`` returns a plain
``PIL.Image.Image`` (mode RGB, L, and L/P class ids respectively), so nothing downstream needs to know
about a subclass. Broken files raise an error that names the file and says how to find the others
(``verify_images(get_image_files(path))``).

Speed note: inside the data pipeline (``ImageBlock``) a JPEG already in the wanted mode is opened
*lazily*: its header is read (so non-images fail at once, naming the file) but its pixels are decoded
only when a transform needs them. ``Resize`` and ``RandomResizedCrop`` use that to ask libjpeg for a
1/2, 1/4 or 1/8 scale decode (``PIL.Image.draft``) when the crop is that much larger than the output,
which is both faster and as sharp as decoding in full and shrinking. Direct calls of
``PILImage.create(...)`` load eagerly unless ``lazy=True`` is passed.
"""
from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps

from ..data.blocks import TransformBlock
from ..data.transforms import IntToFloatTensor, ToTensor
from ..registry import register_block

__all__ = [
    "PILImage", "PILImageBW", "PILMask", "ImageBlock", "MaskBlock", "load_image", "load_pixels",
    "verify_image", "verify_images", "imagenet_stats", "ImageLoadError", "cifar_stats", "mnist_stats",
]

imagenet_stats = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
cifar_stats = ([0.491, 0.482, 0.447], [0.247, 0.243, 0.261])
mnist_stats = ([0.131], [0.308])

_FIX_HINT = ("To find and remove every unreadable image: "
             "`failed = verify_images(get_image_files(path)); [f.unlink() for f in failed]`.")


class ImageLoadError(OSError):
    """An image file could not be opened or decoded; the message names the file and the fix."""


def _name_of(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    fn = getattr(source, "filename", "")
    return fn if fn else f"<in-memory {type(source).__name__}>"


def _load_error(source: Any, err: BaseException) -> ImageLoadError:
    return ImageLoadError(f"Can't read image {_name_of(source)}: {type(err).__name__}: {err}. "
                          f"The file is missing, not an image, or corrupt (e.g. a truncated download). {_FIX_HINT}")


_ORIENTATION = 0x0112  # the EXIF tag ImageOps.exif_transpose applies


def _open_bytes(x: bytes | bytearray | memoryview) -> Image.Image:
    """Decode an encoded image held in memory, with the load error learnkit gives for files."""
    try:
        img = Image.open(io.BytesIO(bytes(x)))
        img.load()
    except Exception as e:
        raise _load_error(x, e) from e
    return img


def _is_lazy(img: Image.Image) -> bool:
    """True while a lazily opened image has not decoded its pixels yet."""
    return isinstance(img, ImageFile.ImageFile) and bool(getattr(img, "tile", None))


def load_pixels(img: Image.Image) -> Image.Image:
    """Decode a lazily opened image now, raising an error that names its file if the data is corrupt."""
    if _is_lazy(img):
        try:
            img.load()
        except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for bad data
            raise _load_error(img, e) from e
    return img


def _to_mode(img: Image.Image, mode: str | None) -> Image.Image:
    """Convert to ``mode`` (no copy when already there), handling palette transparency and 16-bit greys."""
    if mode is None or img.mode == mode:
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # avoids PIL's warning and keeps transparent areas' colours sensible
    elif img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img)
        if arr.dtype.kind == "f":
            arr = arr * 255.0 if arr.size and float(arr.max()) <= 1.0 else arr
        elif arr.size and int(arr.max()) > 255:
            arr = arr / 257.0  # 16-bit -> 8-bit
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
        if img.mode == mode:
            return img
    return img.convert(mode)


def load_image(fn: str | os.PathLike, mode: str | None = None, lazy: bool = False) -> Image.Image:
    """Open the image file ``fn`` as a plain PIL image in ``mode`` (e.g. 'RGB', 'L'; None keeps the file's mode).

    With ``lazy=True`` a JPEG already in ``mode`` keeps its pixels undecoded until first use, so a
    later crop can decode it at a reduced scale; every other file is decoded at once.
    """
    try:
        with open(fn, "rb") as f:
            data = f.read()
        img = Image.open(io.BytesIO(data))  # in memory: no file handle stays open while the image waits
        img.filename = os.fspath(fn)  # so later errors (and `img.filename`) still name the file
        turned = img.getexif().get(_ORIENTATION, 1) not in (0, 1)
        if lazy and not turned and img.format == "JPEG" and (mode is None or img.mode == mode):
            return img
        img.load()
        if turned:  # the camera's EXIF orientation: pixels upright, as image viewers show them
            img = ImageOps.exif_transpose(img)
            img.filename = os.fspath(fn)
    except Exception as e:
        raise _load_error(fn, e) from e
    return _to_mode(img, mode)


def _array_to_pil(arr: np.ndarray, what: str) -> Image.Image:
    """HW / HWC (or unambiguous CHW) uint8, or float in [0, 1], array -> PIL image."""
    if arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4) and arr.shape[0] in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)  # CHW -> HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ValueError(f"Can't make an image from {what} of shape {tuple(arr.shape)}: expected HW (grey), "
                         f"HWC with C in 1, 3, 4, or CHW.")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype.kind == "f":
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if lo < 0 or hi > 1:
            raise ValueError(f"Float {what} has values in [{lo:.3g}, {hi:.3g}]; float images must be in [0, 1]. "
                             f"Divide by 255 (if it holds 0-255 values) or pass a uint8 array.")
        arr = np.rint(arr * 255.0).astype(np.uint8)
    elif arr.dtype != np.uint8:
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 255:
            raise ValueError(f"Integer {what} of dtype {arr.dtype} has values in [{lo}, {hi}]; expected 0-255. "
                             f"Rescale it to uint8 first.")
        arr = arr.astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(arr))


def _tensor_to_array(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.ndim == 3 and t.shape[0] in (1, 3, 4) and t.shape[-1] not in (1, 3, 4):
        t = t.permute(1, 2, 0)  # CHW -> HWC
    elif t.ndim == 3 and t.shape[0] in (1, 3, 4) and t.shape[-1] in (1, 3, 4):
        t = t.permute(1, 2, 0)  # ambiguous (e.g. 3x3x3): tensors are CHW by convention
    return t.numpy()


class PILImage:
    """Namespace for loading RGB images: ``PILImage.create(x)`` returns a plain ``PIL.Image.Image`` in mode RGB."""

    mode: str = "RGB"

    @classmethod
    def create(cls, x: Any, lazy: bool = False) -> Image.Image:
        """Path, bytes, PIL image, HW/HWC array (uint8 or float in [0, 1]) or CHW tensor -> PIL image in ``cls.mode``."""
        if isinstance(x, (str, os.PathLike)):
            return load_image(x, cls.mode, lazy=lazy)
        if isinstance(x, (bytes, bytearray, memoryview)):
            return _to_mode(_open_bytes(x), cls.mode)
        if isinstance(x, Image.Image):
            return _to_mode(load_pixels(x), cls.mode)
        if isinstance(x, torch.Tensor):
            return _to_mode(_array_to_pil(_tensor_to_array(x), "tensor"), cls.mode)
        if isinstance(x, np.ndarray):
            return _to_mode(_array_to_pil(x, "array"), cls.mode)
        raise TypeError(f"{cls.__name__}.create can't make an image from a {type(x).__name__}: pass a file path, "
                        f"bytes, a PIL image, a HW/HWC numpy array or a CHW tensor.")

    @classmethod
    def create_lazy(cls, x: Any) -> Image.Image:
        """``create(x, lazy=True)``: what ``ImageBlock`` uses, so crops can decode JPEGs at reduced scale."""
        return cls.create(x, lazy=True)


class PILImageBW(PILImage):
    """Namespace for loading grey images: ``PILImageBW.create(x)`` returns a plain PIL image in mode L."""

    mode: str = "L"


class PILMask:
    """Namespace for loading segmentation masks: ``PILMask.create(x)`` returns a PIL image of integer class ids."""

    @classmethod
    def create(cls, x: Any) -> Image.Image:
        """Path, bytes, PIL image, HW integer array or tensor -> PIL image of class ids (mode L or P kept, else I)."""
        if isinstance(x, (str, os.PathLike)):
            img, name = load_image(x), os.fspath(x)
        elif isinstance(x, (bytes, bytearray, memoryview)):
            img, name = _open_bytes(x), "<bytes>"
        elif isinstance(x, Image.Image):
            img, name = load_pixels(x), _name_of(x)
        elif isinstance(x, (np.ndarray, torch.Tensor)):
            arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x
            return _ids_to_pil(arr, f"mask array of shape {tuple(arr.shape)}")
        else:
            raise TypeError(f"PILMask.create can't make a mask from a {type(x).__name__}: pass a file path, bytes, "
                            f"a PIL image or a HW integer array.")
        if img.mode in ("L", "P"):
            return img
        if img.mode == "1" or img.mode.startswith("I"):
            return _ids_to_pil(np.asarray(img), f"mask {name} (mode {img.mode})")
        raise ValueError(f"Mask {name} has mode {img.mode}: masks must hold one integer class id per pixel "
                         f"(mode L or P). A colour-coded mask needs its colours mapped to class ids first.")


def _ids_to_pil(arr: np.ndarray, what: str) -> Image.Image:
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:2])
    if arr.ndim != 2:
        raise ValueError(f"The {what} must be HW (one class id per pixel).")
    if arr.dtype.kind == "f" and not np.all(np.mod(arr, 1) == 0):
        raise ValueError(f"The {what} holds non-integer values: a mask needs integer class ids.")
    lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    if lo < 0:
        raise ValueError(f"The {what} holds negative class ids (min {lo}).")
    if hi <= 255:
        return Image.fromarray(np.ascontiguousarray(arr.astype(np.uint8)))
    if hi > np.iinfo(np.int32).max:
        raise ValueError(f"The {what} holds class ids up to {hi}: too large for a mask.")
    return Image.fromarray(np.ascontiguousarray(arr.astype(np.int32)))


def verify_image(fn: str | os.PathLike) -> bool:
    """True if ``fn`` opens and decodes as an image (JPEGs are decoded at reduced scale to be quick)."""
    try:
        with Image.open(fn) as img:
            img.draft(img.mode, (32, 32))
            img.load()
        return True
    except Exception:
        return False


def verify_images(fns: Iterable[str | os.PathLike], max_workers: int | None = None) -> list:
    """The paths among ``fns`` that are not readable images (checked in parallel with a thread pool)."""
    fns = list(fns)
    if not fns:
        return []
    workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
    with ThreadPoolExecutor(max_workers=workers) as ex:
        ok = list(ex.map(verify_image, fns))
    return [f for f, good in zip(fns, ok) if not good]


def ImageBlock(cls: type = PILImage) -> TransformBlock:
    """Image input: path/array -> PIL image (``cls.create``) -> uint8 CHW tensor -> float in [0, 1] on the device."""
    if not (isinstance(cls, type) and issubclass(cls, PILImage)):
        raise TypeError(f"ImageBlock(cls=...) takes PILImage or PILImageBW, not {cls!r}.")
    return TransformBlock("image", type_tfms=[cls.create_lazy], item_tfms=[ToTensor()],
                          batch_tfms=[IntToFloatTensor()], name="ImageBlock", config={"cls": cls.__name__})


class MaskCodes:
    """Type transform that passes masks through and carries their ``codes`` as the block's vocab (``dls.vocab``, ``dls.c``)."""

    def __init__(self, codes: Sequence | None = None) -> None:
        self.vocab = None if codes is None else list(codes)

    def setup(self, train_values: Iterable) -> None:
        """Nothing to learn: the codes are given (the masks are not read)."""

    def __call__(self, mask: Any) -> Any:
        """The mask, unchanged, once its class ids are checked against the codes (255, the usual "ignore", passes)."""
        if self.vocab is not None and isinstance(mask, Image.Image):
            n = len(self.vocab)
            if mask.mode in ("L", "P"):  # a 256-bin count: cheap
                ids = [i for i, c in enumerate(mask.histogram()[:256]) if c and n <= i != 255]
            else:
                ids = sorted(int(i) for i in np.unique(np.asarray(mask)) if n <= i != 255)
            if ids:
                hi = ids[-1]
                raise ValueError(f"Mask {_name_of(mask)} holds class id {hi}, but codes names only {n} classes (ids "
                                 f"0-{n - 1}): pass codes listing every class in the masks, or remap the mask's ids.")
        return mask


def MaskBlock(codes: Sequence | None = None) -> TransformBlock:
    """Segmentation target: path/array -> PIL mask of class ids -> int64 HW tensor (``codes`` names the ids)."""
    codes_list = None if codes is None else [c.item() if isinstance(c, np.generic) else c for c in list(codes)]
    return TransformBlock("mask", type_tfms=[PILMask.create, MaskCodes(codes_list)], item_tfms=[ToTensor()],
                          batch_tfms=[IntToFloatTensor()], name="MaskBlock", config={"codes": codes_list})


register_block("ImageBlock", lambda cls="PILImage", **_: ImageBlock(cls=PILImageBW if cls == "PILImageBW" else PILImage))
register_block("MaskBlock", lambda codes=None, vocab=None, **_: MaskBlock(codes=codes or vocab))
