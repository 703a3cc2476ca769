"""Image augmentation: item transforms on PIL images (CPU, per item) and batch transforms on tensors (device).

Item transforms (``Resize``, ``RandomResizedCrop``, ``CropPad``, ``Albumentations``) run in the
DataLoader workers before ``ToTensor``. Each draws its random parameters once per sample in
``before_call``, so an image, its mask and its points get the same geometry; masks are resampled
with nearest-neighbour so they keep only their original class ids. Points are ``(n, 2)`` pixel
coordinates ``(x, y)`` in the continuous convention (pixel ``i`` spans ``[i, i + 1)``).
Random item transforms do their deterministic version on the validation split (centre crop).

Batch transforms run on the device on whole batches of plain float tensors (BCHW) after
``IntToFloatTensor`` (order 10): ``Normalize`` (``data/normalize.py``) and ``Flip`` (``batch_augment.py``,
with the other batch augmentations) are importable from here too.

Sizes are ``int`` (square) or ``(height, width)``, as in fastai.
"""
from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..data.normalize import Normalize
from ..data.transforms import Transform
from ..registry import register_transform
from .aug_args import _PAD_MODES, PadMode, _check_choice, _size_hw
from .batch_augment import Flip  # a batch transform; importable from here as before
from .core import _is_lazy, imagenet_stats, load_pixels

__all__ = [
    "ResizeMethod", "PadMode", "Resize", "RandomResizedCrop", "CropPad", "Albumentations", "Flip", "Normalize",
    "imagenet_stats",
]

BILINEAR, NEAREST = Image.Resampling.BILINEAR, Image.Resampling.NEAREST
_REDUCING_GAP = 3.0  # PIL: reduce by an integer factor first when shrinking >= 3x; "indistinguishable from fair"


class ResizeMethod:
    """How ``Resize`` fits an image into the target size."""

    Squish = "squish"  # stretch the whole image to the size
    Crop = "crop"  # crop the largest region with the target's aspect ratio (random on training, centre on valid)
    Pad = "pad"  # fit the whole image inside the size and pad the rest


# ---------------------------------------------------------------- helpers
def _resamples(resamples: Sequence[int], name: str) -> tuple[int, int]:
    if not isinstance(resamples, (tuple, list)) or len(resamples) != 2:
        raise ValueError(f"{name}(resamples={resamples!r}): give (image_resample, mask_resample), "
                         f"e.g. (Image.BILINEAR, Image.NEAREST).")
    return int(resamples[0]), int(resamples[1])


def _sample_size(sample: tuple, kinds: Sequence[str], name: str) -> tuple[int, int]:
    """(w, h) of the sample's images and masks, which must all agree and be PIL images."""
    sizes = []
    for v, k in zip(sample, kinds):
        if k in ("image", "mask"):
            if not isinstance(v, Image.Image):
                raise TypeError(f"{name} is an item transform and works on PIL images, but got a "
                                f"{type(v).__name__} for a value of kind {k!r}. Item transforms run before ToTensor: "
                                f"build images with PILImage.create (ImageBlock does), or use batch transforms on tensors.")
            sizes.append((k, v.size))
    if not sizes:
        raise ValueError(f"{name} needs an image or a mask in the sample to know the size (kinds: {tuple(kinds)}).")
    if any(s != sizes[0][1] for _, s in sizes):
        shown = ", ".join(f"{k} {w}x{h}" for k, (w, h) in sizes)
        raise ValueError(f"{name}: the sample's images and masks differ in size ({shown}, as width x height); they "
                         f"must match pixel for pixel. Check that each mask belongs to its image.")
    return sizes[0][1]


def _resize_box(img: Image.Image, out_wh: tuple[int, int], box: tuple[float, float, float, float],
                resample: int) -> Image.Image:
    """Crop ``box`` (inside the image) out of ``img`` and resize it to ``out_wh`` in one resampling.

    A lazily opened JPEG is decoded at 1/2, 1/4 or 1/8 scale when the box is at least that many times
    larger than the output (``PIL.Image.draft``), with the box mapped to the reduced image.
    """
    bw, bh = box[2] - box[0], box[3] - box[1]
    if _is_lazy(img) and getattr(img, "format", None) == "JPEG" and resample != NEAREST:
        factor = min(bw / out_wh[0], bh / out_wh[1])
        a = next((s for s in (8, 4, 2) if factor >= s), 1)
        if a > 1:
            w, h = img.size
            res = img.draft(img.mode, (max(1, w // a), max(1, h // a)))
            if res is not None:
                sx, sy = w / res[1][2], h / res[1][3]  # the scale libjpeg actually used
                box = (box[0] / sx, box[1] / sy, min(box[2] / sx, img.size[0]), min(box[3] / sy, img.size[1]))
                bw, bh = box[2] - box[0], box[3] - box[1]
    img = load_pixels(img)
    if (bw, bh) == tuple(out_wh) and all(float(c).is_integer() for c in box):
        return img.crop(tuple(int(c) for c in box))  # no scaling: an exact crop
    return img.resize(tuple(out_wh), resample, box=box,
                      reducing_gap=_REDUCING_GAP if resample != NEAREST else None)


def _pad(img: Image.Image, left: int, top: int, right: int, bottom: int, pad_mode: str) -> Image.Image:
    """Pad ``img`` by the given number of pixels on each side (zeros, border copies or reflection)."""
    if left == top == right == bottom == 0:
        return img
    w, h = img.size
    if pad_mode == PadMode.Zeros:
        out = Image.new(img.mode, (w + left + right, h + top + bottom), 0)
        if img.mode == "P":
            out.putpalette(img.getpalette())
        out.paste(img, (left, top))
        return out
    arr = np.asarray(img)
    widths = ((top, bottom), (left, right)) + (((0, 0),) if arr.ndim == 3 else ())
    arr = np.pad(arr, widths, mode="reflect" if pad_mode == PadMode.Reflection and min(w, h) > 1 else "edge")
    out = Image.fromarray(arr)
    if img.mode == "P":
        out.putpalette(img.getpalette())  # L -> P with the same ids and palette
    return out


def _crop_pad(img: Image.Image, box: tuple[int, int, int, int], pad_mode: str) -> Image.Image:
    """Integer ``box`` (may reach outside the image): crop what is inside, pad what is outside."""
    w, h = img.size
    x0, y0, x1, y1 = box
    inner = (max(x0, 0), max(y0, 0), min(x1, w), min(y1, h))
    if inner[2] <= inner[0] or inner[3] <= inner[1]:
        raise ValueError(f"Crop box {box} does not overlap the {w}x{h} image.")
    img = load_pixels(img)
    if inner != (0, 0, w, h):
        img = img.crop(inner)
    return _pad(img, inner[0] - x0, inner[1] - y0, x1 - inner[2], y1 - inner[3], pad_mode)


def _map_points(pts: Any, box: tuple[float, float, float, float], out_wh: tuple[int, int],
                offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Pixel coordinates through "crop ``box``, resize to ``out_wh``, then shift by ``offset``"."""
    p = np.asarray(pts.cpu() if isinstance(pts, torch.Tensor) else pts, dtype=np.float32).reshape(-1, 2)
    scale = np.array([out_wh[0] / (box[2] - box[0]), out_wh[1] / (box[3] - box[1])], dtype=np.float32)
    return (p - np.array(box[:2], dtype=np.float32)) * scale + np.array(offset, dtype=np.float32)


# ---------------------------------------------------------------- item transforms
def _separate_images(sample: Any, kinds: Sequence[str] | None) -> bool:
    """True for several images of different sizes with no mask or points (a Siamese pair): sized one by one."""
    if kinds is None or not isinstance(sample, tuple) or any(k in ("mask", "points") for k in kinds):
        return False
    sizes = {v.size for v, k in zip(sample, kinds) if k == "image" and isinstance(v, Image.Image)}
    return len(sizes) > 1


class _SizingTransform(Transform):
    """An item transform that resizes: the images of a sample without masks may differ in size (each is sized alone)."""

    def __call__(self, sample: Any, kinds: Sequence[str] | None = None, split_idx: int | None = None,
                 **kwargs: Any) -> Any:
        """As ``Transform.__call__``; a sample of differently sized images (and no masks) has each image done alone."""
        if _separate_images(sample, kinds):
            res = tuple(super(_SizingTransform, self).__call__((v,), (k,), split_idx, **kwargs)[0] if k == "image"
                        else v for v, k in zip(sample, kinds))
            return res if type(sample) is tuple else type(sample)(*res)
        return super().__call__(sample, kinds, split_idx, **kwargs)


@register_transform
class Resize(_SizingTransform):
    """Resize every image (and mask) to ``size`` by cropping, squishing or padding; random crop position on training."""

    order = 1

    def __init__(self, size: int | Sequence[int], method: str = ResizeMethod.Crop, pad_mode: str = PadMode.Reflection,
                 resamples: Sequence[int] = (BILINEAR, NEAREST)) -> None:
        self.size = _size_hw(size, "Resize")
        self.method = _check_choice(method, (ResizeMethod.Crop, ResizeMethod.Squish, ResizeMethod.Pad), "method", "Resize")
        self.random_in_training = self.method != ResizeMethod.Squish  # crop / pad at a random position
        self.pad_mode = _check_choice(pad_mode, _PAD_MODES, "pad_mode", "Resize")
        self.resamples = _resamples(resamples, "Resize")

    def before_call(self, sample: tuple, kinds: Sequence[str], split_idx: int) -> None:
        """Work out the source box (and, for pad, the placement) from the image size and a random position."""
        w, h = _sample_size(sample, kinds, "Resize")
        th, tw = self.size
        px, py = (random.random(), random.random()) if split_idx == 0 else (0.5, 0.5)
        self._pad_offset: tuple[int, int] | None = None
        if self.method == ResizeMethod.Squish:
            self._box, self._out = (0, 0, w, h), (tw, th)
        elif self.method == ResizeMethod.Crop:
            m = min(w / tw, h / th)
            cw, ch = min(w, max(1, round(m * tw))), min(h, max(1, round(m * th)))
            x0, y0 = round(px * (w - cw)), round(py * (h - ch))
            self._box, self._out = (x0, y0, x0 + cw, y0 + ch), (tw, th)
        else:  # pad: shrink the whole image to fit, then place it (randomly on training) and pad the rest
            m = max(w / tw, h / th)
            nw, nh = min(tw, max(1, round(w / m))), min(th, max(1, round(h / m)))
            self._box, self._out = (0, 0, w, h), (nw, nh)
            self._pad_offset = (round(px * (tw - nw)), round(py * (th - nh)))

    def _apply(self, img: Image.Image, resample: int) -> Image.Image:
        out = _resize_box(img, self._out, self._box, resample)
        if self._pad_offset is not None:
            (ox, oy), (th, tw) = self._pad_offset, self.size
            out = _pad(out, ox, oy, tw - self._out[0] - ox, th - self._out[1] - oy, self.pad_mode)
        return out

    def encode_image(self, img: Image.Image) -> Image.Image:
        """Resize an image (bilinear by default)."""
        return self._apply(img, self.resamples[0])

    def encode_mask(self, mask: Image.Image) -> Image.Image:
        """Resize a mask with the same geometry (nearest by default, so only existing class ids appear)."""
        return self._apply(mask, self.resamples[1])

    def encode_points(self, pts: Any) -> np.ndarray:
        """Move (n, 2) pixel coordinates with the image."""
        return _map_points(pts, self._box, self._out, self._pad_offset or (0, 0))

    def get_config(self) -> dict:
        """Constructor arguments."""
        return {"size": list(self.size), "method": self.method, "pad_mode": self.pad_mode,
                "resamples": list(self.resamples)}


@register_transform
class RandomResizedCrop(_SizingTransform):
    """Training: crop a random area (``min_scale``..1) and aspect ratio, resize to ``size``. Validation: centre crop.

    As in fastai, validation resizes the image to ``size`` plus a margin (``val_xtra`` of the size,
    rounded up to a multiple of 8) and keeps the centre ``size``: both done here in one resampling.
    """

    random_in_training = True

    order = 1

    def __init__(self, size: int | Sequence[int], min_scale: float = 0.08, ratio: Sequence[float] = (3 / 4, 4 / 3),
                 resamples: Sequence[int] = (BILINEAR, NEAREST), val_xtra: float = 0.14) -> None:
        self.size = _size_hw(size, "RandomResizedCrop")
        if not 0 < min_scale <= 1:
            raise ValueError(f"RandomResizedCrop(min_scale={min_scale}): min_scale is a fraction of the area in (0, 1].")
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"RandomResizedCrop(ratio={ratio!r}): give (low, high) aspect ratios with 0 < low <= high.")
        self.min_scale, self.ratio, self.val_xtra = float(min_scale), (float(ratio[0]), float(ratio[1])), float(val_xtra)
        self.resamples = _resamples(resamples, "RandomResizedCrop")

    def before_call(self, sample: tuple, kinds: Sequence[str], split_idx: int) -> None:
        """Draw the crop box (training) or compute the centre box (validation)."""
        w, h = _sample_size(sample, kinds, "RandomResizedCrop")
        th, tw = self.size
        if split_idx != 0:
            xtra = math.ceil(max(th, tw) * self.val_xtra / 8) * 8
            cw, ch = w * tw / (tw + xtra), h * th / (th + xtra)
            x0, y0 = (w - cw) / 2, (h - ch) / 2
            self._box = (x0, y0, x0 + cw, y0 + ch)
            return
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            area = random.uniform(self.min_scale, 1.0) * w * h
            r = math.exp(random.uniform(log_lo, log_hi))
            cw, ch = int(round(math.sqrt(area * r))), int(round(math.sqrt(area / r)))
            if 0 < cw <= w and 0 < ch <= h:
                x0, y0 = random.randint(0, w - cw), random.randint(0, h - ch)
                self._box = (x0, y0, x0 + cw, y0 + ch)
                return
        # fallback (as fastai / torchvision): the largest centred crop within the allowed ratios
        if w / h < self.ratio[0]:
            cw, ch = w, int(w / self.ratio[0])
        elif w / h > self.ratio[1]:
            cw, ch = int(h * self.ratio[1]), h
        else:
            cw, ch = w, h
        x0, y0 = (w - cw) // 2, (h - ch) // 2
        self._box = (x0, y0, x0 + cw, y0 + ch)

    def encode_image(self, img: Image.Image) -> Image.Image:
        """Crop and resize an image in one resampling (JPEGs decoded at reduced scale when that is enough)."""
        return _resize_box(img, (self.size[1], self.size[0]), self._box, self.resamples[0])

    def encode_mask(self, mask: Image.Image) -> Image.Image:
        """Same crop for the mask, nearest resampling."""
        return _resize_box(mask, (self.size[1], self.size[0]), self._box, self.resamples[1])

    def encode_points(self, pts: Any) -> np.ndarray:
        """Move (n, 2) pixel coordinates with the crop."""
        return _map_points(pts, self._box, (self.size[1], self.size[0]))

    def get_config(self) -> dict:
        """Constructor arguments."""
        return {"size": list(self.size), "min_scale": self.min_scale, "ratio": list(self.ratio),
                "resamples": list(self.resamples), "val_xtra": self.val_xtra}


@register_transform
class CropPad(_SizingTransform):
    """Centre crop (or pad, where the image is smaller) to ``size`` without resampling; same on every split."""

    order = 0

    def __init__(self, size: int | Sequence[int], pad_mode: str = PadMode.Zeros) -> None:
        self.size = _size_hw(size, "CropPad")
        self.pad_mode = _check_choice(pad_mode, _PAD_MODES, "pad_mode", "CropPad")

    def before_call(self, sample: tuple, kinds: Sequence[str], split_idx: int) -> None:
        """Centre the target box on the image."""
        w, h = _sample_size(sample, kinds, "CropPad")
        th, tw = self.size
        x0, y0 = (w - tw) // 2, (h - th) // 2
        self._box = (x0, y0, x0 + tw, y0 + th)

    def encode_image(self, img: Image.Image) -> Image.Image:
        """Crop/pad an image."""
        return _crop_pad(img, self._box, self.pad_mode)

    def encode_mask(self, mask: Image.Image) -> Image.Image:
        """Crop/pad a mask the same way."""
        return _crop_pad(mask, self._box, self.pad_mode)

    def encode_points(self, pts: Any) -> np.ndarray:
        """Shift (n, 2) pixel coordinates."""
        return _map_points(pts, self._box, (self._box[2] - self._box[0], self._box[3] - self._box[1]))

    def get_config(self) -> dict:
        """Constructor arguments."""
        return {"size": list(self.size), "pad_mode": self.pad_mode}


@register_transform
class Albumentations(Transform):
    """Run an albumentations transform (e.g. ``A.Compose([...])``) on each image, and its mask with the same draw.

    Training only by default (``split_idx=0``; ``None`` runs on every split). Not exportable: an
    export keeps only the validation-time transforms, which this one is not by default; with
    ``split_idx=None`` ``get_config`` raises, saying so.
    """

    exportable = False
    random_in_training = True

    def __init__(self, transform: Any, split_idx: int | None = 0, order: int = 2) -> None:
        if not callable(transform):
            raise TypeError(f"Albumentations(transform=...) needs an albumentations transform such as "
                            f"A.Compose([...]), not a {type(transform).__name__}.")
        self.transform, self.split_idx, self.order = transform, split_idx, order

    def before_call(self, sample: tuple, kinds: Sequence[str], split_idx: int) -> None:
        """Run the albumentations pipeline once on the sample's image and mask together."""
        if "points" in kinds:
            raise NotImplementedError("Albumentations doesn't move points here: use learnkit's Resize / "
                                      "RandomResizedCrop / batch augmentations for samples with points.")
        images = [v for v, k in zip(sample, kinds) if k == "image"]
        masks = [v for v, k in zip(sample, kinds) if k == "mask"]
        if len(images) > 1 or len(masks) > 1:
            raise NotImplementedError(f"Albumentations handles one image and at most one mask per sample; this "
                                      f"sample has {len(images)} images and {len(masks)} masks.")
        args: dict = {}
        if images:
            args["image"] = np.asarray(load_pixels(images[0]))
        if masks:
            args["mask"] = np.asarray(load_pixels(masks[0]))
        if not args:
            self._out: dict = {}
            return
        if "image" not in args:
            raise ValueError("Albumentations needs an image in the sample (got only a mask).")
        self._out = self.transform(**args)
        self._modes = {k: v.mode for k, v in (("image", images[0] if images else None),
                                             ("mask", masks[0] if masks else None)) if v is not None}
        self._palette = masks[0].getpalette() if masks and masks[0].mode == "P" else None

    def _back(self, key: str) -> Image.Image:
        arr = self._out[key]
        if isinstance(arr, torch.Tensor) or not isinstance(arr, np.ndarray):
            raise TypeError(f"The albumentations pipeline returned a {type(arr).__name__} for {key!r}; it must return "
                            f"numpy arrays. Leave ToTensorV2 out (learnkit's ToTensor runs after item transforms).")
        if key == "image" and arr.dtype != np.uint8:
            raise TypeError(f"The albumentations pipeline returned a {arr.dtype} image; item transforms must keep "
                            f"uint8 pixels. Leave A.Normalize / A.ToFloat out and use the batch transform "
                            f"Normalize.from_stats(...) instead.")
        if key == "mask":
            arr = arr.astype(np.uint8) if arr.max(initial=0) <= 255 else arr.astype(np.int32)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        out = Image.fromarray(np.ascontiguousarray(arr))
        if key == "mask" and self._palette is not None and out.mode == "L":
            out.putpalette(self._palette)
        return out

    def encode_image(self, img: Image.Image) -> Image.Image:
        """The augmented image."""
        return self._back("image")

    def encode_mask(self, mask: Image.Image) -> Image.Image:
        """The mask, transformed with the same random draw as the image."""
        return self._back("mask")

    def get_config(self) -> dict:
        """Not exportable: an albumentations pipeline isn't plain data."""
        raise NotImplementedError(
            "Albumentations transforms can't be exported: export keeps validation-time transforms only, so keep "
            "Albumentations training-only (split_idx=0, the default) or rebuild the pipeline at inference yourself.")

    def __repr__(self) -> str:
        return f"Albumentations({self.transform!r}, split_idx={self.split_idx})"
