"""Drawing decoded samples on matplotlib axes: one image, a titled grid, a batch of samples by kind.

Used by ``DataLoader.show_batch`` (and later ``show_results``). Figures are made with pyplot, so
notebooks display them and scripts can ``plt.show()``; nothing here calls ``plt.show`` itself.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image

__all__ = ["show_image", "show_titled_grid", "show_samples", "show_sample", "show_sample_pairs", "format_value",
           "IMAGE_KINDS", "MASK_CMAP", "MASK_ALPHA"]

IMAGE_KINDS = ("image", "mask")  # kinds drawn as pictures; other kinds become the title
MASK_CMAP = "tab20"  # class id k always gets colour k % 20, whatever ids a mask holds
MASK_ALPHA = 0.5
_N_MASK_COLOURS = 20
_IM_SIZE = 3.0  # inches per grid cell


def _channels(n: int) -> bool:
    return n in (1, 3, 4)


def _to_hwc(img: Any) -> np.ndarray:
    """PIL image, tensor (CHW, HWC or HW) or array (HWC, CHW or HW) -> HWC or HW numpy array for ``imshow``."""
    if isinstance(img, Image.Image):
        arr = np.asarray(img)
        chw_first = False
    elif isinstance(img, torch.Tensor):
        arr = img.detach().cpu()
        if arr.dtype == torch.bfloat16 or arr.dtype == torch.float16:
            arr = arr.float()
        arr = arr.numpy()
        chw_first = True  # tensors are CHW by convention
    else:
        arr = np.asarray(img)
        chw_first = False  # arrays are HWC by convention
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3:
        c_first, c_last = _channels(arr.shape[0]), _channels(arr.shape[-1])
        if c_first and (chw_first or not c_last):
            arr = arr.transpose(1, 2, 0)
        elif not c_last:
            raise ValueError(f"show_image: can't tell the channel axis of an image of shape {tuple(arr.shape)}: "
                             f"give CHW or HWC with 1, 3 or 4 channels.")
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
    elif arr.ndim != 2:
        raise ValueError(f"show_image: an image needs 2 or 3 dimensions (HW, CHW or HWC), got shape {tuple(arr.shape)}.")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype.kind in "iu" and arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError(f"show_image: integer pixels must be in 0..255, got {arr.min()}..{arr.max()}.")
        arr = arr.astype(np.uint8)
    elif arr.dtype.kind == "f":
        arr = np.clip(arr, 0.0, 1.0)  # floats are [0, 1] images; imshow would clip with a warning
    return np.ascontiguousarray(arr)


def show_image(img: Any, ax: Axes | None = None, figsize: tuple | None = None, title: str | None = None,
               cmap: str | None = None, ctx: Axes | None = None, **kwargs: Any) -> Axes:
    """Draw an image (uint8 or [0, 1] float tensor CHW/HWC, array, PIL image) on ``ax`` (or fastai's ``ctx``; a new one if None)."""
    arr = _to_hwc(img)
    ax = ax if ax is not None else ctx
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    if arr.ndim == 2:
        if cmap is None:
            cmap = "gray"
        if arr.dtype == np.uint8:  # a grey uint8 image keeps its absolute levels (no autoscaling to min..max)
            kwargs.setdefault("vmin", 0)
            kwargs.setdefault("vmax", 255)
        elif arr.dtype.kind == "f":
            kwargs.setdefault("vmin", 0.0)
            kwargs.setdefault("vmax", 1.0)
    ax.imshow(arr, cmap=cmap, **kwargs)
    if title is not None:
        ax.set_title(str(title))
    ax.set_axis_off()
    return ax


def _show_mask(mask: Any, ax: Axes, alpha: float = MASK_ALPHA) -> None:
    """Overlay an integer HW mask, each class id in its fixed colour."""
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    m = np.squeeze(m)
    if m.ndim != 2:
        raise ValueError(f"show_samples: a mask must be HW (class id per pixel), got shape {m.shape}.")
    ax.imshow(np.mod(m.astype(np.int64), _N_MASK_COLOURS), cmap=MASK_CMAP, vmin=-0.5, vmax=_N_MASK_COLOURS - 0.5,
              alpha=alpha, interpolation="nearest")
    ax.set_axis_off()


def _show_points(pts: Any, ax: Axes, size: tuple[int, int] | None) -> None:
    """Scatter (x, y) points; coordinates in [-1, 1] are scaled to the image ``size`` (h, w)."""
    p = pts.detach().cpu().float().numpy() if isinstance(pts, torch.Tensor) else np.asarray(pts, dtype=np.float32)
    p = p.reshape(-1, 2)
    if size is not None and p.size and np.abs(p).max() <= 1.0:
        h, w = size
        p = (p + 1) / 2 * np.array([w, h])
    ax.scatter(p[:, 0], p[:, 1], s=12, c="r", marker="x")


def _fmt_number(x: float) -> str:
    return f"{x:.4g}"


def format_value(v: Any, kind: str = "generic") -> str:
    """Text for a decoded non-image value: a label, labels joined with ';', formatted numbers, or ``str``."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu()
        if kind == "multicategory" and v.ndim == 1 and v.numel() > 1:  # undecoded multi-hot vector
            return ";".join(str(i) for i in torch.nonzero(v > 0.5).flatten().tolist())
        if v.numel() == 1:
            v = v.item()
        elif v.numel() <= 8:
            v = v.flatten().tolist()
        else:
            return f"tensor{tuple(v.shape)}"
    if isinstance(v, np.ndarray):
        v = v.item() if v.size == 1 else (v.flatten().tolist() if v.size <= 8 else f"array{v.shape}")
    if isinstance(v, np.generic):
        v = v.item()
    if kind == "multicategory" and isinstance(v, (list, tuple)):
        return ";".join(str(o) for o in v)
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float) or (kind == "regression" and isinstance(v, int)):
        return _fmt_number(v)
    if isinstance(v, (list, tuple)) and v and all(isinstance(o, (int, float)) and not isinstance(o, bool) for o in v):
        return "[" + ", ".join(_fmt_number(o) if isinstance(o, float) else str(o) for o in v) + "]"
    return str(v)


def _image_size(v: Any) -> tuple[int, int] | None:
    if isinstance(v, Image.Image):
        return v.size[1], v.size[0]
    try:
        arr = _to_hwc(v)
    except (ValueError, TypeError):
        return None
    return arr.shape[0], arr.shape[1]


def show_sample(sample: Sequence, kinds: Sequence[str], ax: Axes | None = None, title: str | None = None) -> Axes:
    """Draw one decoded sample: its first image (or mask) with masks/points overlaid; other values as the title."""
    if ax is None:
        _, ax = plt.subplots()
    kinds = list(kinds) + ["generic"] * (len(sample) - len(kinds))
    drawn = False
    size = None
    texts = []
    for v, k in zip(sample, kinds):
        if k == "image" and not drawn:
            show_image(v, ax=ax)
            size, drawn = _image_size(v), True
        elif k == "mask":
            if not drawn:  # a mask with no image: draw it alone, opaque
                _show_mask(v, ax, alpha=1.0)
                size, drawn = _image_size(v), True
            else:
                _show_mask(v, ax)
        elif k == "points":
            _show_points(v, ax, size)
        elif k not in IMAGE_KINDS:
            texts.append(format_value(v, k))
    ax.set_axis_off()
    text = title if title is not None else "\n".join(texts)
    if text:
        ax.set_title(text)
    return ax


def _grid_shape(n: int, nrows: int | None, ncols: int | None) -> tuple[int, int]:
    """Square-ish (rows, cols) for ``n`` cells, honouring whichever of ``nrows``/``ncols`` is given."""
    n = max(n, 1)
    if nrows is None and ncols is None:
        ncols = math.ceil(math.sqrt(n))
        nrows = math.ceil(n / ncols)
    elif nrows is None:
        nrows = math.ceil(n / ncols)
    elif ncols is None:
        ncols = math.ceil(n / nrows)
    if nrows < 1 or ncols < 1:
        raise ValueError(f"nrows and ncols must be at least 1, got nrows={nrows}, ncols={ncols}.")
    return nrows, ncols


def _grid(n: int, nrows: int | None, ncols: int | None, figsize: tuple | None) -> tuple[Figure, list[Axes]]:
    nrows, ncols = _grid_shape(n, nrows, ncols)
    if figsize is None:
        figsize = (ncols * _IM_SIZE, nrows * _IM_SIZE)
    fig, axs = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)
    return fig, list(axs.flatten())


def _n_shown(total: int, max_n: int, nrows: int | None, ncols: int | None) -> int:
    n = min(total, max_n) if max_n is not None else total
    if nrows is not None and ncols is not None:
        n = min(n, nrows * ncols)
    return n


def show_titled_grid(images: Sequence[Any], titles: Sequence[str] | None = None, nrows: int | None = None,
                     ncols: int | None = None, figsize: tuple | None = None, max_n: int = 9) -> Figure:
    """Draw up to ``max_n`` images in a square-ish grid with their titles; unused cells are hidden."""
    n = _n_shown(len(images), max_n, nrows, ncols)
    if titles is not None and len(titles) < n:
        raise ValueError(f"show_titled_grid: {len(titles)} titles for {n} images: give one title per image.")
    fig, axs = _grid(n, nrows, ncols, figsize)
    for i, ax in enumerate(axs):
        if i < n:
            show_image(images[i], ax=ax, title=None if titles is None else str(titles[i]))
        else:
            ax.set_visible(False)
    fig.tight_layout()
    return fig


def show_samples(samples: Sequence[Sequence], kinds: Sequence[str], max_n: int = 9, nrows: int | None = None,
                 ncols: int | None = None, figsize: tuple | None = None, titles: Sequence[str] | None = None) -> Figure:
    """Draw up to ``max_n`` decoded samples (see ``show_sample``) in a grid; returns the figure."""
    n = _n_shown(len(samples), max_n, nrows, ncols)
    if titles is not None and len(titles) < n:
        raise ValueError(f"show_samples: {len(titles)} titles for {n} samples: give one title per sample.")
    fig, axs = _grid(n, nrows, ncols, figsize)
    for i, ax in enumerate(axs):
        if i < n:
            show_sample(samples[i], kinds, ax=ax, title=None if titles is None else titles[i])
        else:
            ax.set_visible(False)
    fig.tight_layout()
    return fig


def show_sample_pairs(targets: Sequence[Sequence], predictions: Sequence[Sequence], kinds: Sequence[str],
                      max_n: int = 9, figsize: tuple | None = None,
                      titles: tuple[str, str] = ("target", "prediction")) -> Figure:
    """Two columns, one row per sample: each target sample beside the same sample with the prediction as target.

    Used where the target is itself a picture (a mask overlaid on its image): ``targets[i]`` and
    ``predictions[i]`` are decoded samples drawn with ``show_sample``; column titles are ``titles``.
    """
    n = _n_shown(len(targets), max_n, None, None)
    if len(predictions) < n:
        raise ValueError(f"show_sample_pairs: {len(predictions)} predictions for {n} targets: give one per target.")
    n = max(n, 1)
    fig, axs = plt.subplots(n, 2, figsize=figsize or (2 * _IM_SIZE, n * _IM_SIZE), squeeze=False)
    for r in range(n):
        if r < len(targets):
            show_sample(targets[r], kinds, ax=axs[r, 0], title=titles[0])
            show_sample(predictions[r], kinds, ax=axs[r, 1], title=titles[1])
        else:
            axs[r, 0].set_visible(False)
            axs[r, 1].set_visible(False)
    fig.tight_layout()
    return fig
