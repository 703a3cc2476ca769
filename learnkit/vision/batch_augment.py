"""Batch augmentation on the device: fastai's ``aug_transforms`` and its parts, on plain tensors.

Geometry (``Flip``, ``Dihedral``, ``Rotate``, ``Zoom``, ``Warp``, ``RandomResizedCropGPU``) is
described per item by a 3x3 matrix in normalised coordinates ([-1, 1], as ``F.grid_sample``).
``setup_aug_tfms`` (called by ``aug_transforms``) merges every geometric part into one
``AffineCoordTfm``: the affine matrices, the perspective warp and the crop multiply into a single
projective matrix per item, so each batch is resampled once (one ``grid_sample`` per image value).
Masks (int64 ``(B, H, W)``) follow with nearest sampling (only existing class ids appear); points
(``(B, n, 2)`` pixel coordinates ``(x, y)``, pixel ``i`` spanning ``[i, i + 1)``, as the item
transforms use) move through the inverse matrix.

Lighting (``Brightness``, ``Contrast``, ``Saturation``) works in logit space as in fastai and is
merged into one ``LightingTfm``. ``RandomErasing`` runs after ``Normalize`` (order 100).

Random parameters are drawn per item (``batch=True``: one draw for the whole batch) with torch's
RNG on the batch's device, so ``set_seed`` reproduces them and nothing syncs with the host: the constant
tensors (Dihedral's table, Warp's corners, the luma weights, list draws) are made once per device and dtype
and reused, never copied from the host per batch. A ``draw`` may also be a callable, given the batch tensor
as in fastai (it can't be exported: ``get_config`` says so). Every
augmentation is training-only (``split_idx = 0``, so export skips it) except when an output
``size`` is given: then validation gets the deterministic version (a resize, or a centre crop for
``RandomResizedCropGPU``) and the transform is exported.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..data.transforms import Transform
from ..registry import register_transform
from .aug_args import _PAD_MODES, PadMode, _check_choice, _size_hw

__all__ = ["Flip", "AffineCoordTfm", "Dihedral", "Rotate", "Zoom", "Warp", "RandomResizedCropGPU", "LightingTfm",
           "Brightness", "Contrast", "Saturation", "RandomErasing", "setup_aug_tfms", "aug_transforms"]

_MODES = ("bilinear", "nearest", "bicubic")
Draw = float | Sequence[float] | None


# ---------------------------------------------------------------- random draws (vectorised, on the device)
_CONSTS: dict[tuple, torch.Tensor] = {}


def _const(values: Any, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A constant tensor made once per (values, device, dtype) and reused: no host-to-device copy per batch.

    Callers must not modify it in place.
    """
    key = (values, torch.device(device), dtype)
    t = _CONSTS.get(key)
    if t is None:
        if len(_CONSTS) > 4096:  # many distinct user-fixed draws: start again rather than grow without bound
            _CONSTS.clear()
        t = _CONSTS[key] = torch.tensor(values, dtype=dtype, device=device)
    return t


def _tupled(v: Any) -> Any:
    return tuple(_tupled(o) for o in v) if isinstance(v, (list, tuple)) else v


def _given(draw: Any, n: int, device: torch.device, name: str, x: torch.Tensor | None = None) -> torch.Tensor:
    """A user-fixed draw: one number for every item, a list with at least one value per item, or a callable.

    A callable gets the batch tensor ``x`` (as fastai's ``draw(x)``) and returns one value per item.
    """
    if callable(draw):
        ref = x if x is not None else torch.zeros(n, device=device)
        vals = draw(ref)
        t = vals.to(device=device, dtype=torch.float32) if isinstance(vals, torch.Tensor) else \
            torch.as_tensor(vals, dtype=torch.float32).to(device)
        t = t.reshape(-1) if t.ndim else t.expand(n)
        if t.numel() < n:
            raise ValueError(f"{name}: draw({type(ref).__name__} of shape {tuple(ref.shape)}) returned {t.numel()} "
                             f"values for a batch of {n} items; return one value per item.")
        return t[:n]
    if isinstance(draw, (int, float)):
        return torch.full((n,), float(draw), device=device)
    vals = list(draw)
    if len(vals) < n:
        raise ValueError(f"{name}: draw has {len(vals)} values but the batch has {n} items; give one number "
                         f"or at least one value per item.")
    return _const(tuple(float(v) for v in vals[:n]), device)


def _uniform(n: int, device: torch.device, lo: float, hi: float, batch: bool) -> torch.Tensor:
    """``n`` draws from U(lo, hi) (one shared draw when ``batch``)."""
    v = torch.empty(1 if batch else n, device=device).uniform_(lo, hi)
    return v.expand(n) if batch else v


def _masked(vals: torch.Tensor, p: float, neutral: float, batch: bool) -> torch.Tensor:
    """Keep each item's value with probability ``p``, else ``neutral`` (per item, or for the whole batch)."""
    if p >= 1:
        return vals
    keep = torch.rand(1 if batch else vals.shape[0], device=vals.device) < p
    return torch.where(keep, vals, torch.full_like(vals, neutral))


def _stack_mat(a, b, c, d, e, f) -> torch.Tensor:
    """(n, 3, 3) matrices ``[[a, b, c], [d, e, f], [0, 0, 1]]``."""
    z, o = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([torch.stack([a, b, c], 1), torch.stack([d, e, f], 1), torch.stack([z, z, o], 1)], 1)


def _check_p(p: float, name: str) -> float:
    if not 0 <= p <= 1:
        raise ValueError(f"{name}(p={p}): p is a probability in [0, 1].")
    return float(p)


def _draw_cfg(draw: Any) -> Any:
    """A draw as stored: None, a number, a list of numbers, or a callable (given the batch, as in fastai)."""
    return draw if draw is None or callable(draw) or isinstance(draw, (int, float)) else [float(v) for v in draw]


def _draw_json(t: Any, **draws: Any) -> dict:
    """The draws of ``t`` for ``get_config``: a callable can't be written to JSON, so say what to do instead."""
    for k, v in draws.items():
        if callable(v):
            raise TypeError(f"{type(t).__name__}({k}={v!r}): a callable draw can't be exported (get_config must be "
                            f"JSON). Pass a number or a list of numbers as {k}, or drop this transform before export.")
    return draws


def _safe_repr(t: Any) -> str:
    """``Name(arg=value, ...)`` even when ``get_config`` refuses (a callable draw)."""
    try:
        cfg = t.get_config()
    except TypeError:
        cfg = {k: v for k, v in vars(t).items() if not k.startswith("_") and k != "parts"}
    return f"{type(t).__name__}({', '.join(f'{k}={v!r}' for k, v in cfg.items())})"


# ---------------------------------------------------------------- flip (exact alone, merged into the geometry by setup_aug_tfms)
@register_transform
class Flip(Transform):
    """Batch transform: flip each item horizontally with probability ``p`` (its mask and points with it); training only.

    Alone it is an exact flip (no resampling, any dtype). ``aug_transforms`` / ``setup_aug_tfms``
    compose it into the geometry matrix of ``AffineCoordTfm``, so the flip costs no
    extra resampling there. ``batch=True`` flips the whole batch or none of it. fastai's arguments:
    ``draw`` fixes the flips (1 flips, 0 doesn't; one number, one per item, or a callable given the batch
    tensor and returning one per item), then kept with probability ``p``; ``size`` resamples the output to that
    size (``mode``, ``pad_mode``, ``align_corners`` as ``AffineCoordTfm``), also on validation (no flip there).
    """

    order = 30

    def __init__(self, p: float = 0.5, draw: Any = None, size: int | Sequence[int] | None = None,
                 mode: str = "bilinear", pad_mode: str = PadMode.Reflection, align_corners: bool = True,
                 batch: bool = False) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"Flip(p={p}): p is a probability in [0, 1].")
        self.p, self.batch = float(p), bool(batch)
        self.draw = draw if draw is None or callable(draw) or isinstance(draw, (int, float)) else \
            [float(v) for v in draw]
        self.size = None if size is None else _size_hw(size, "Flip")
        self.mode = _check_choice(mode, ("bilinear", "nearest", "bicubic"), "mode", "Flip")
        self.pad_mode = _check_choice(pad_mode, _PAD_MODES, "pad_mode", "Flip")
        self.align_corners = bool(align_corners)
        self._resampler: Any = None

    @property
    def split_idx(self) -> int | None:  # type: ignore[override]
        """Training only, unless the output has a fixed ``size`` (then validation resizes, unflipped)."""
        return None if self.size is not None else 0

    def __call__(self, sample: Any, kinds: Sequence[str] | None = None, split_idx: int = 0) -> Any:
        """Flip the chosen items; with ``size``, flip and resize in one resampling (``AffineCoordTfm``)."""
        if self.size is None:
            return super().__call__(sample, kinds, split_idx)
        if self._resampler is None:
            self._resampler = AffineCoordTfm([self], size=self.size, mode=self.mode, pad_mode=self.pad_mode,
                                             align_corners=self.align_corners)
        return self._resampler(sample, kinds, split_idx)

    def flips(self, x: torch.Tensor) -> torch.Tensor:
        """Which of the ``x.shape[0]`` items flip (bool, on ``x``'s device): ``draw`` or a coin per item, then ``p``."""
        n, dev = x.shape[0], x.device
        if self.draw is None:
            d = torch.ones(n, device=dev)
        else:
            d = _given(self.draw, n, dev, "Flip", x)
        if self.p < 1:
            keep = torch.rand(1 if self.batch else n, device=dev) < self.p
            d = torch.where(keep, d, torch.zeros_like(d))
        return d > 0.5

    def before_call(self, sample: tuple, kinds: Sequence[str], split_idx: int) -> None:
        """Choose which items of the batch flip (one draw per item, shared by all of its values)."""
        ref = next((v for v, k in zip(sample, kinds) if k in ("image", "mask") and isinstance(v, torch.Tensor)), None)
        if ref is None:
            ref = next((v for v in sample if isinstance(v, torch.Tensor) and v.ndim > 0), None)
        if ref is None:
            raise ValueError(f"Flip is a batch transform on tensors; the batch (kinds {tuple(kinds)}) has none.")
        self._flip = self.flips(ref)
        self._width = ref.shape[-1] if ref.ndim >= 3 else None

    def _flipped(self, x: torch.Tensor) -> torch.Tensor:
        m = self._flip.view(-1, *([1] * (x.ndim - 1)))
        return torch.where(m, x.flip(-1), x)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """Flip the chosen images (B, C, H, W) left-right."""
        return self._flipped(x)

    def encode_mask(self, x: torch.Tensor) -> torch.Tensor:
        """Flip the chosen masks (B, H, W) left-right."""
        return self._flipped(x)

    def encode_points(self, p: torch.Tensor) -> torch.Tensor:
        """Mirror the chosen items' (B, n, 2) pixel x-coordinates: x -> width - x."""
        if self._width is None:
            raise ValueError("Flip needs the image (or mask) in the batch to mirror points.")
        mirrored = p.clone()
        mirrored[..., 0] = self._width - p[..., 0]
        return torch.where(self._flip.view(-1, *([1] * (p.ndim - 1))), mirrored, p)

    def get_config(self) -> dict:
        """Constructor arguments (only those that differ from the defaults, besides ``p``)."""
        if callable(self.draw):
            raise TypeError(f"Flip(draw={self.draw!r}): a callable draw can't be exported (get_config must be JSON). "
                            f"Pass a number or a list of 0/1 values as draw, or drop this transform before export.")
        cfg: dict = {"p": self.p}
        if self.draw is not None:
            cfg["draw"] = self.draw
        if self.size is not None:
            cfg.update(size=list(self.size), mode=self.mode, pad_mode=self.pad_mode, align_corners=self.align_corners)
        if self.batch:
            cfg["batch"] = True
        return cfg

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_resampler": None}  # rebuilt on first use

    def __repr__(self) -> str:
        draw = "<callable>" if callable(self.draw) else self.draw
        return (f"Flip(p={self.p}, draw={draw!r}, size={self.size}, batch={self.batch})" if self.draw is not None
                or self.size is not None else f"Flip(p={self.p}" + (", batch=True)" if self.batch else ")"))


# ---------------------------------------------------------------- geometry
def _flip_mats(t: Flip, n: int, device: torch.device, x: torch.Tensor | None = None) -> torch.Tensor:
    """``Flip``'s part of a composed geometry: x -> -x for the chosen items."""
    sx = 1 - 2 * t.flips(x if x is not None else torch.zeros(n, device=device)).float()
    z, o = torch.zeros_like(sx), torch.ones_like(sx)
    return _stack_mat(sx, z, z, z, o, z)


def _homography(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """(n, 3, 3) projective matrices mapping the 4 points ``src`` (n, 4, 2) onto ``dst`` (n, 4, 2)."""
    x, y = src[..., 0], src[..., 1]
    u, v = dst[..., 0], dst[..., 1]
    z, o = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, o, z, z, z, -x * u, -y * u], -1)
    rows_v = torch.stack([z, z, z, x, y, o, -x * v, -y * v], -1)
    a = torch.cat([rows_u, rows_v], 1)  # (n, 8, 8)
    b = torch.cat([u, v], 1).unsqueeze(-1)
    coeffs, _ = torch.linalg.solve_ex(a, b)  # solve_ex: no host sync to check for singular matrices
    return torch.cat([coeffs[..., 0], torch.ones_like(coeffs[:, :1, 0])], 1).view(-1, 3, 3)


def _base_grid(oh: int, ow: int, align_corners: bool, device: torch.device) -> torch.Tensor:
    """(oh * ow, 3) homogeneous normalised coordinates of the output pixel centres."""
    def axis(k: int) -> torch.Tensor:
        if align_corners:
            return torch.linspace(-1, 1, k, device=device) if k > 1 else torch.zeros(1, device=device)
        return (torch.arange(k, device=device, dtype=torch.float32) + 0.5) * (2 / k) - 1
    gy, gx = torch.meshgrid(axis(oh), axis(ow), indexing="ij")
    return torch.stack([gx, gy, torch.ones_like(gx)], -1).view(-1, 3)


def _to_norm(p: torch.Tensor, size: int, align_corners: bool) -> torch.Tensor:
    """Continuous pixel coordinate -> normalised coordinate along an axis of ``size`` pixels."""
    if align_corners:
        return (2 * p - 1) / max(size - 1, 1) - 1
    return 2 * p / size - 1


def _from_norm(q: torch.Tensor, size: int, align_corners: bool) -> torch.Tensor:
    if align_corners:
        return (q + 1) * max(size - 1, 1) / 2 + 0.5
    return (q + 1) * size / 2


def _batch_ref(sample: tuple, kinds: Sequence[str], name: str) -> torch.Tensor:
    """The first image or mask tensor of a batch (the geometry's reference for size and device)."""
    for v, k in zip(sample, kinds):
        if k in ("image", "mask") and isinstance(v, torch.Tensor):
            if v.ndim < 3:
                raise ValueError(f"{name} is a batch transform: it expects batched images (B, C, H, W) or masks "
                                 f"(B, H, W), got a {k} of shape {tuple(v.shape)}.")
            return v
    raise ValueError(f"{name} is a batch transform on images: the batch (kinds {tuple(kinds)}) has no image or mask "
                     f"tensor. Pass it as batch_tfms of a DataBlock with an ImageBlock (or MaskBlock).")


@register_transform
class AffineCoordTfm(Transform):
    """Geometry parts (flip, dihedral, rotate, zoom, warp, crop) applied together in one resampling per batch.

    ``tfms`` are the parts (instances of ``Flip``, ``Dihedral``, ``Rotate``, ``Zoom``, ``Warp``,
    ``RandomResizedCropGPU``, or their configs as exported). Each part used alone is itself an
    ``AffineCoordTfm`` with one part. ``size`` resizes the output (also on validation, deterministically).
    """

    order = 30
    _role: str | None = None  # parts: 'affine' (matrix, aspect-corrected), 'warp' (perspective), 'crop'
    _x: torch.Tensor | None = None  # the batch's reference tensor, for callable draws

    def __init__(self, tfms: Sequence[Any] = (), size: int | Sequence[int] | None = None, mode: str = "bilinear",
                 pad_mode: str = PadMode.Reflection, mode_mask: str = "nearest", align_corners: bool = True) -> None:
        name = type(self).__name__
        self.size = None if size is None else _size_hw(size, name)
        self.mode = _check_choice(mode, _MODES, "mode", name)
        self.mode_mask = _check_choice(mode_mask, _MODES, "mode_mask", name)
        self.pad_mode = _check_choice(pad_mode, _PAD_MODES, "pad_mode", name)
        self.align_corners = bool(align_corners)
        self.parts: list[Any] = [self] if self._role is not None else []
        for t in tfms:
            self.compose(_from_config(t, _GEOMETRY, "AffineCoordTfm") if isinstance(t, dict) else t)

    # -- composition
    def compose(self, tfm: Any) -> None:
        """Add ``tfm``'s geometry to this one (``Flip`` or another ``AffineCoordTfm``), to resample only once."""
        if isinstance(tfm, AffineCoordTfm):
            new = tfm.parts
            if self.size is None and tfm.size is not None:
                self.size = tfm.size
        elif isinstance(tfm, Flip):
            new = [tfm]
            if self.size is None and tfm.size is not None:
                self.size = tfm.size
        else:
            raise TypeError(f"{type(self).__name__}.compose: can't merge a {type(tfm).__name__} into the geometry; "
                            f"only Flip, Dihedral, Rotate, Zoom, Warp and RandomResizedCropGPU compose.")
        if sum(isinstance(t, RandomResizedCropGPU) for t in self.parts + new) > 1:
            raise ValueError("Only one RandomResizedCropGPU can be composed into one geometry.")
        self.parts = self.parts + list(new)

    @property
    def split_idx(self) -> int | None:  # type: ignore[override]
        """Training only, unless the output has a fixed size (then validation resizes deterministically)."""
        return None if self._out_size_fixed() else 0

    def _crop(self) -> RandomResizedCropGPU | None:
        return next((t for t in self.parts if isinstance(t, RandomResizedCropGPU)), None)

    def _out_size_fixed(self) -> bool:
        return self.size is not None or self._crop() is not None

    def _max_zoom(self) -> float:
        """A bound on how much the geometry magnifies (for the pre-downsampling decision; shape-only, no sync)."""
        z = 1.0
        for t in self.parts:
            if isinstance(t, Zoom):
                z *= max(t.max_zoom, max(_draw_list(t.draw), default=1.0))
            elif isinstance(t, RandomResizedCropGPU):
                z /= math.sqrt(t.min_scale)
        return z

    # -- the per-part protocol (overridden by parts)
    def _part_mat(self, n: int, h: int, w: int, device: torch.device, split_idx: int) -> torch.Tensor | None:
        return None

    # -- the transform
    def before_call(self, sample: tuple, kinds: Sequence[str], split_idx: int) -> None:
        """Draw every part's parameters and multiply them into one (B, 3, 3) matrix per item."""
        ref = _batch_ref(sample, kinds, type(self).__name__)
        n, (h, w), dev = ref.shape[0], tuple(ref.shape[-2:]), ref.device
        crop = self._crop()
        with torch.autocast(dev.type, enabled=False):
            eye = torch.eye(3, device=dev).expand(n, 3, 3)
            aff, warp, crop_m, projective = eye, eye, eye, False
            if split_idx == 0:
                for t in self.parts:
                    t._x = ref  # what a callable draw gets (fastai's draw(x))
                    if isinstance(t, Flip):
                        aff = aff @ _flip_mats(t, n, dev, ref)
                    elif t._role == "affine":
                        aff = aff @ t._part_mat(n, h, w, dev, split_idx)
                    elif t._role == "warp":
                        warp, projective = t._part_mat(n, h, w, dev, split_idx) @ warp, True
            for t in self.parts:
                t._x = None  # don't hold on to the batch
            if crop is not None:
                crop_m = crop._part_mat(n, h, w, dev, split_idx)
            aff = aff.clone()
            aff[:, 0, 1] *= h / w  # keep rotations undistorted on non-square images (fastai's _prepare_mat)
            aff[:, 1, 0] *= w / h
            self._mat = warp @ aff @ crop_m
        self._projective = projective
        self._src = (h, w)
        self._out = crop.size if crop is not None else (self.size or (h, w))
        self._grid: torch.Tensor | None = None

    def _sampling_grid(self) -> torch.Tensor:
        if self._grid is None:
            oh, ow = self._out
            with torch.autocast(self._mat.device.type, enabled=False):
                g = _base_grid(oh, ow, self.align_corners, self._mat.device) @ self._mat.transpose(1, 2)
                if self._projective:
                    g = g[..., :2] / g[..., 2:]
                else:
                    g = g[..., :2]
            self._grid = g.reshape(-1, oh, ow, 2)
        return self._grid

    def _check_size(self, x: torch.Tensor, kind: str) -> None:
        if tuple(x.shape[-2:]) != self._src:
            raise ValueError(f"{type(self).__name__}: the batch's {kind} is {tuple(x.shape[-2:])} (h, w) but its first "
                             f"image/mask is {self._src}; images and masks of a batch must have the same size.")

    def _sample(self, x: torch.Tensor, mode: str) -> torch.Tensor:
        grid = self._sampling_grid()
        with torch.autocast(x.device.type, enabled=False):
            xf = x if x.dtype in (torch.float32, torch.float64) else x.float()
            if mode == "bilinear":  # shrinking > 2x more than the geometry zooms: average first (fastai does too)
                (h, w), (oh, ow) = self._src, self._out
                d = min(h / oh, w / ow) / 2
                if d > 1 and d > self._max_zoom():
                    xf = F.interpolate(xf, scale_factor=1 / d, mode="area", recompute_scale_factor=True)
            out = F.grid_sample(xf, grid.to(xf.dtype), mode=mode, padding_mode=self.pad_mode,
                                align_corners=self.align_corners)
        if x.dtype == torch.uint8:
            return out.round_().clamp_(0, 255).to(torch.uint8)
        return out.to(x.dtype)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """Resample images (B, C, H, W) through the batch's geometry (``mode``, default bilinear)."""
        self._check_size(x, "image")
        return self._sample(x, self.mode)

    def encode_mask(self, x: torch.Tensor) -> torch.Tensor:
        """Resample masks (B, H, W) with the same geometry and nearest sampling: class ids stay valid."""
        self._check_size(x, "mask")
        x4 = x.unsqueeze(1) if x.ndim == 3 else x
        out = self._sample(x4.float(), self.mode_mask).round_().to(x.dtype)
        return out.squeeze(1) if x.ndim == 3 else out

    def encode_points(self, p: torch.Tensor) -> torch.Tensor:
        """Move (B, n, 2) pixel coordinates (x, y) to where their pixels land (the inverse matrix)."""
        (h, w), (oh, ow) = self._src, self._out
        with torch.autocast(p.device.type, enabled=False):
            pf = p.float()
            q = torch.stack([_to_norm(pf[..., 0], w, self.align_corners), _to_norm(pf[..., 1], h, self.align_corners),
                             torch.ones_like(pf[..., 0])], -1)
            inv, _ = torch.linalg.inv_ex(self._mat)
            q = q @ inv.transpose(1, 2)
            q = q[..., :2] / q[..., 2:]
            out = torch.stack([_from_norm(q[..., 0], ow, self.align_corners),
                               _from_norm(q[..., 1], oh, self.align_corners)], -1)
        return out.to(p.dtype)

    def _common_config(self) -> dict:
        return {"size": None if self.size is None else list(self.size), "mode": self.mode, "pad_mode": self.pad_mode,
                "align_corners": self.align_corners}

    def get_config(self) -> dict:
        """Constructor arguments: the parts as ``{'name', 'config'}`` dicts, and the sampling options."""
        return {"tfms": [{"name": type(t).__name__, "config": t.get_config()} for t in self.parts],
                **self._common_config(), "mode_mask": self.mode_mask}

    def __repr__(self) -> str:
        if type(self) is not AffineCoordTfm:
            return _safe_repr(self)
        parts = ", ".join(repr(t) for t in self.parts)
        return f"AffineCoordTfm([{parts}], size={self.size}, mode={self.mode!r}, pad_mode={self.pad_mode!r})"


def _draw_list(draw: Any) -> list[float]:
    if draw is None or callable(draw):  # a callable's values are unknown until called
        return []
    return [float(draw)] if isinstance(draw, (int, float)) else [float(v) for v in draw]


@register_transform
class Dihedral(AffineCoordTfm):
    """Each item, with probability ``p``, gets one of the 8 flips/rotations by multiples of 90 degrees."""

    _role = "affine"

    def __init__(self, p: float = 0.5, draw: Draw = None, size: int | Sequence[int] | None = None,
                 mode: str = "bilinear", pad_mode: str = PadMode.Reflection, batch: bool = False,
                 align_corners: bool = True) -> None:
        self.p, self.draw, self.batch = _check_p(p, "Dihedral"), _draw_cfg(draw), bool(batch)
        super().__init__(size=size, mode=mode, pad_mode=pad_mode, align_corners=align_corners)

    def _part_mat(self, n: int, h: int, w: int, device: torch.device, split_idx: int) -> torch.Tensor:
        if self.draw is not None:
            idx = _given(self.draw, n, device, "Dihedral", self._x)
        else:
            idx = torch.randint(0, 8, (1 if self.batch else n,), device=device).float()
            idx = idx.expand(n) if self.batch else idx
        idx = _masked(idx, self.p, 0.0, self.batch).long()
        table = _const(((1, -1, 1, -1, -1, 1, 1, -1), (1, 1, -1, 1, -1, -1, 1, -1),
                        (1, 1, 1, 0, 1, 0, 0, 0), (0, 0, 0, 1, 0, 1, 1, 1)), device)
        xs, ys, m0, m1 = table[:, idx]
        z = torch.zeros_like(xs)
        return _stack_mat(xs * m0, xs * m1, z, ys * m1, ys * m0, z)

    def get_config(self) -> dict:
        """Constructor arguments."""
        return {"p": self.p, **_draw_json(self, draw=self.draw), "batch": self.batch, **self._common_config()}


@register_transform
class Rotate(AffineCoordTfm):
    """Rotate each item, with probability ``p``, by a random angle in [-max_deg, max_deg] degrees (or ``draw``)."""

    _role = "affine"

    def __init__(self, max_deg: float = 10, p: float = 0.5, draw: Draw = None, size: int | Sequence[int] | None = None,
                 mode: str = "bilinear", pad_mode: str = PadMode.Reflection, align_corners: bool = True,
                 batch: bool = False) -> None:
        self.max_deg, self.p = float(max_deg), _check_p(p, "Rotate")
        self.draw, self.batch = _draw_cfg(draw), bool(batch)
        super().__init__(size=size, mode=mode, pad_mode=pad_mode, align_corners=align_corners)

    def _part_mat(self, n: int, h: int, w: int, device: torch.device, split_idx: int) -> torch.Tensor:
        deg = (_given(self.draw, n, device, "Rotate", self._x) if self.draw is not None
               else _uniform(n, device, -self.max_deg, self.max_deg, self.batch))
        th = _masked(deg, self.p, 0.0, self.batch) * (math.pi / 180)
        c, s, z = th.cos(), th.sin(), torch.zeros_like(th)
        return _stack_mat(c, s, z, -s, c, z)

    def get_config(self) -> dict:
        """Constructor arguments."""
        return {"max_deg": self.max_deg, "p": self.p, **_draw_json(self, draw=self.draw), "batch": self.batch,
                **self._common_config()}


@register_transform
class Zoom(AffineCoordTfm):
    """Zoom each item in, with probability ``p``, by a factor in [min_zoom, max_zoom] around a random centre."""

    _role = "affine"

    def __init__(self, min_zoom: float = 1.0, max_zoom: float = 1.1, p: float = 0.5, draw: Draw = None,
                 draw_x: Draw = None, draw_y: Draw = None, size: int | Sequence[int] | None = None,
                 mode: str = "bilinear", pad_mode: str = PadMode.Reflection, batch: bool = False,
                 align_corners: bool = True) -> None:
        if not 0 < min_zoom <= max_zoom:
            raise ValueError(f"Zoom(min_zoom={min_zoom}, max_zoom={max_zoom}): need 0 < min_zoom <= max_zoom.")
        self.min_zoom, self.max_zoom, self.p = float(min_zoom), float(max_zoom), _check_p(p, "Zoom")
        self.draw, self.draw_x, self.draw_y = _draw_cfg(draw), _draw_cfg(draw_x), _draw_cfg(draw_y)
        self.batch = bool(batch)
        super().__init__(size=size, mode=mode, pad_mode=pad_mode, align_corners=align_corners)

    def _part_mat(self, n: int, h: int, w: int, device: torch.device, split_idx: int) -> torch.Tensor:
        zoom = (_given(self.draw, n, device, "Zoom", self._x) if self.draw is not None
                else _uniform(n, device, self.min_zoom, self.max_zoom, self.batch))
        s = 1 / _masked(zoom, self.p, 1.0, self.batch)
        cx, cy = (_given(d, n, device, "Zoom", self._x) if d is not None else _uniform(n, device, 0, 1, self.batch)
                  for d in (self.draw_x, self.draw_y))
        z = torch.zeros_like(s)
        return _stack_mat(s, z, (1 - s) * (2 * cx - 1), z, s, (1 - s) * (2 * cy - 1))

    def get_config(self) -> dict:
        """Constructor arguments."""
        return {"min_zoom": self.min_zoom, "max_zoom": self.max_zoom, "p": self.p,
                **_draw_json(self, draw=self.draw, draw_x=self.draw_x, draw_y=self.draw_y), "batch": self.batch,
                **self._common_config()}


@register_transform
class Warp(AffineCoordTfm):
    """Perspective warp: with probability ``p`` per axis, the image corners move by up to ``magnitude`` (normalised)."""

    _role = "warp"

    def __init__(self, magnitude: float = 0.2, p: float = 0.5, draw_x: Draw = None, draw_y: Draw = None,
                 size: int | Sequence[int] | None = None, mode: str = "bilinear", pad_mode: str = PadMode.Reflection,
                 batch: bool = False, align_corners: bool = True) -> None:
        self.magnitude, self.p, self.batch = float(magnitude), _check_p(p, "Warp"), bool(batch)
        self.draw_x, self.draw_y = _draw_cfg(draw_x), _draw_cfg(draw_y)
        super().__init__(size=size, mode=mode, pad_mode=pad_mode, align_corners=align_corners)

    def _part_mat(self, n: int, h: int, w: int, device: torch.device, split_idx: int) -> torch.Tensor:
        def draw(given: Draw) -> torch.Tensor:
            v = (_given(given, n, device, "Warp", self._x) if given is not None
                 else _uniform(n, device, -self.magnitude, self.magnitude, self.batch))
            return _masked(v, self.p, 0.0, self.batch)
        xt, yt = draw(self.draw_x), draw(self.draw_y)
        orig = _const(((-1.0, -1.0), (-1.0, 1.0), (1.0, -1.0), (1.0, 1.0)), device).expand(n, 4, 2)
        targ = torch.stack([torch.stack([-1 - yt, -1 - xt], -1), torch.stack([-1 + yt, 1 + xt], -1),
                            torch.stack([1 + yt, -1 + xt], -1), torch.stack([1 - yt, 1 - xt], -1)], 1)
        return _homography(targ, orig)  # output position targ[i] samples the source corner orig[i] (as fastai)

    def get_config(self) -> dict:
        """Constructor arguments."""
        return {"magnitude": self.magnitude, "p": self.p, **_draw_json(self, draw_x=self.draw_x, draw_y=self.draw_y),
                "batch": self.batch, **self._common_config()}


@register_transform
class RandomResizedCropGPU(AffineCoordTfm):
    """Training: a random crop (area ``min_scale``..``max_scale``, aspect ``ratio``) resized to ``size``, per item.

    Validation: the largest centred crop within ``ratio`` (scaled by ``valid_scale``) resized to ``size``.
    Composed with other geometry, the crop happens in the same resampling.
    """

    _role = "crop"

    def __init__(self, size: int | Sequence[int], min_scale: float = 0.08, ratio: Sequence[float] = (3 / 4, 4 / 3),
                 mode: str = "bilinear", valid_scale: float = 1.0, max_scale: float = 1.0, mode_mask: str = "nearest",
                 pad_mode: str = PadMode.Reflection, align_corners: bool = True) -> None:
        if not 0 < min_scale <= max_scale <= 1:
            raise ValueError(f"RandomResizedCropGPU(min_scale={min_scale}, max_scale={max_scale}): need "
                             f"0 < min_scale <= max_scale <= 1 (fractions of the image area).")
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"RandomResizedCropGPU(ratio={ratio!r}): give (low, high) aspect ratios, 0 < low <= high.")
        self.min_scale, self.max_scale, self.valid_scale = float(min_scale), float(max_scale), float(valid_scale)
        self.ratio = (float(ratio[0]), float(ratio[1]))
        super().__init__(size=size, mode=mode, pad_mode=pad_mode, mode_mask=mode_mask, align_corners=align_corners)

    def _part_mat(self, n: int, h: int, w: int, device: torch.device, split_idx: int) -> torch.Tensor:
        if split_idx == 0:
            area = torch.empty(n, device=device).uniform_(self.min_scale, self.max_scale) * (w * h)
            r = torch.empty(n, device=device).uniform_(math.log(self.ratio[0]), math.log(self.ratio[1])).exp()
            cw, ch = (area * r).sqrt(), (area / r).sqrt()
            shrink = torch.maximum(torch.maximum(cw / w, ch / h), torch.ones_like(cw))  # too big: keep ratio, shrink
            fx, fy = self._frac(cw / shrink, w), self._frac(ch / shrink, h)
            cx = (2 * torch.rand(n, device=device) - 1) * (1 - fx)
            cy = (2 * torch.rand(n, device=device) - 1) * (1 - fy)
        else:
            if w / h < self.ratio[0]:
                cw, ch = w, w / self.ratio[0]
            elif w / h > self.ratio[1]:
                cw, ch = h * self.ratio[1], h
            else:
                cw, ch = w, h
            fx = self._frac(torch.full((n,), cw * self.valid_scale, device=device), w)
            fy = self._frac(torch.full((n,), ch * self.valid_scale, device=device), h)
            cx = cy = torch.zeros(n, device=device)
        z = torch.zeros_like(fx)
        return _stack_mat(fx, z, cx, z, fy, cy)

    def _frac(self, c: torch.Tensor, full: int) -> torch.Tensor:
        """A crop of ``c`` pixels as a fraction of the normalised extent (pixel centres when ``align_corners``)."""
        if self.align_corners:
            return ((c - 1) / max(full - 1, 1)).clamp(min=1e-3)
        return c / full

    def get_config(self) -> dict:
        """Constructor arguments."""
        return {"size": list(self.size), "min_scale": self.min_scale, "ratio": list(self.ratio), "mode": self.mode,
                "valid_scale": self.valid_scale, "max_scale": self.max_scale, "mode_mask": self.mode_mask,
                "pad_mode": self.pad_mode, "align_corners": self.align_corners}


_GEOMETRY = {c.__name__: c for c in (Flip, Dihedral, Rotate, Zoom, Warp, RandomResizedCropGPU)}


def _from_config(d: dict, parts: dict[str, type], owner: str) -> Any:
    """Rebuild one part of a composed transform from its ``{"name", "config"}`` dict (as export stores it)."""
    name = d.get("name")
    if name not in parts:
        raise ValueError(f"{owner}: unknown part {name!r}; known: {sorted(parts)}.")
    return parts[name](**d.get("config", {}))


# ---------------------------------------------------------------- lighting
@register_transform
class LightingTfm(Transform):
    """Lighting parts (``Brightness``, ``Contrast``, ``Saturation``) applied together in logit space, in one pass."""

    order = 40
    split_idx = 0
    _is_part = False
    _x: torch.Tensor | None = None  # the batch's images, for callable draws

    def __init__(self, tfms: Sequence[Any] = ()) -> None:
        self.parts: list[Any] = [self] if self._is_part else []
        for t in tfms:
            self.compose(_from_config(t, _LIGHTING, "LightingTfm") if isinstance(t, dict) else t)

    def compose(self, tfm: LightingTfm) -> None:
        """Add ``tfm``'s lighting changes to this one (applied in order, in one pass)."""
        if not isinstance(tfm, LightingTfm):
            raise TypeError(f"LightingTfm.compose: expected Brightness, Contrast or Saturation, "
                            f"got {type(tfm).__name__}.")
        self.parts = self.parts + tfm.parts

    def _init_part(self, max_lighting: float, p: float, draw: Draw, batch: bool) -> None:
        name = type(self).__name__
        if not 0 <= max_lighting < 1:
            raise ValueError(f"{name}(max_lighting={max_lighting}): must be in [0, 1).")
        self.max_lighting, self.p = float(max_lighting), _check_p(p, name)
        self.draw, self.batch = _draw_cfg(draw), bool(batch)
        LightingTfm.__init__(self)

    def _draw(self, n: int, device: torch.device) -> torch.Tensor:  # parts: (n,) changes
        raise NotImplementedError

    def _apply(self, logits: torch.Tensor, change: torch.Tensor) -> torch.Tensor:  # parts: in logit space
        raise NotImplementedError

    def _draw_exp(self, n: int, device: torch.device, given: Draw, max_lighting: float) -> torch.Tensor:
        if given is not None:
            v = _given(given, n, device, type(self).__name__, self._x)
        else:
            v = _uniform(n, device, math.log(1 - max_lighting), -math.log(1 - max_lighting), self.batch).exp()
        return _masked(v, self.p, 1.0, self.batch)

    def before_call(self, sample: tuple, kinds: Sequence[str], split_idx: int) -> None:
        """Draw each part's per-item change."""
        ref = next((v for v, k in zip(sample, kinds) if k == "image" and isinstance(v, torch.Tensor)), None)
        if ref is None or ref.ndim != 4:
            raise ValueError(f"{type(self).__name__} is a batch transform on images (B, C, H, W); the batch (kinds "
                             f"{tuple(kinds)}) has none.")
        for t in self.parts:
            t._x = ref
        self._changes = [t._draw(ref.shape[0], ref.device) for t in self.parts]
        for t in self.parts:
            t._x = None  # don't hold on to the batch

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """``sigmoid(f(logit(x)))`` with every part's change, in float32 (the result in ``x``'s dtype)."""
        if not x.is_floating_point():
            raise TypeError(f"{type(self).__name__} works on float images in [0, 1], got {x.dtype}: it must run after "
                            f"IntToFloatTensor (order 10; this transform has order {self.order}).")
        with torch.autocast(x.device.type, enabled=False):
            logits = torch.logit(x.float(), eps=1e-6)
            for t, c in zip(self.parts, self._changes):
                logits = t._apply(logits, c)
            return torch.sigmoid_(logits).to(x.dtype)

    def get_config(self) -> dict:
        """Constructor arguments: the parts as ``{'name', 'config'}`` dicts."""
        return {"tfms": [{"name": type(t).__name__, "config": t.get_config()} for t in self.parts]}

    def __repr__(self) -> str:
        if type(self) is not LightingTfm:
            return _safe_repr(self)
        return f"LightingTfm([{', '.join(repr(t) for t in self.parts)}])"


class _LightingPart(LightingTfm):
    """A lighting part: ``max_lighting``, probability ``p``, optional fixed ``draw``; a factor in [1 - m, 1 / (1 - m)]."""

    _is_part = True

    def __init__(self, max_lighting: float = 0.2, p: float = 0.75, draw: Draw = None, batch: bool = False) -> None:
        self._init_part(max_lighting, p, draw, batch)

    def _draw(self, n: int, device: torch.device) -> torch.Tensor:
        return self._draw_exp(n, device, self.draw, self.max_lighting)

    def get_config(self) -> dict:
        """Constructor arguments."""
        return {"max_lighting": self.max_lighting, "p": self.p, **_draw_json(self, draw=self.draw), "batch": self.batch}


@register_transform
class Brightness(_LightingPart):
    """Change each image's brightness, with probability ``p``, by up to ``max_lighting`` (logit space)."""

    def _draw(self, n: int, device: torch.device) -> torch.Tensor:
        if self.draw is not None:
            v = _given(self.draw, n, device, "Brightness", self._x)
        else:
            v = _uniform(n, device, 0.5 * (1 - self.max_lighting), 0.5 * (1 + self.max_lighting), self.batch)
        return _masked(v, self.p, 0.5, self.batch)

    def _apply(self, logits: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
        return logits.add_(torch.logit(change).view(-1, 1, 1, 1))


@register_transform
class Contrast(_LightingPart):
    """Scale each image's contrast (logit space), with probability ``p``, by a factor in [1 - m, 1 / (1 - m)]."""

    def _apply(self, logits: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
        return logits.mul_(change.view(-1, 1, 1, 1))


@register_transform
class Saturation(_LightingPart):
    """Scale each RGB image's saturation (logit space), with probability ``p``, by a factor in [1 - m, 1 / (1 - m)].

    Images with other than 3 channels pass unchanged.
    """

    def _apply(self, logits: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] != 3:
            return logits
        luma = _const((0.2989, 0.5870, 0.1140), logits.device, logits.dtype).view(1, 3, 1, 1)
        gray = (logits * luma).sum(1, keepdim=True)
        c = change.view(-1, 1, 1, 1)
        return logits.mul_(c).add_(gray * (1 - c))


_LIGHTING = {c.__name__: c for c in (Brightness, Contrast, Saturation)}


# ---------------------------------------------------------------- random erasing
@register_transform
class RandomErasing(Transform):
    """Replace, with probability ``p`` per image, up to ``max_count`` rectangles with N(0, 1) noise (after Normalize).

    Each rectangle covers ``sl``..``sh`` of the image area divided by the item's count, with aspect
    ratio in [min_aspect, 1 / min_aspect]. Drawn per item (fastai draws once per batch).
    """

    order = 100
    split_idx = 0

    def __init__(self, p: float = 0.5, sl: float = 0.0, sh: float = 0.3, min_aspect: float = 0.3,
                 max_count: int = 1) -> None:
        if not 0 <= sl <= sh <= 1:
            raise ValueError(f"RandomErasing(sl={sl}, sh={sh}): need 0 <= sl <= sh <= 1 (fractions of the area).")
        if not 0 < min_aspect <= 1 or int(max_count) < 1:
            raise ValueError(f"RandomErasing(min_aspect={min_aspect}, max_count={max_count}): need 0 < min_aspect <= 1 "
                             f"and max_count >= 1.")
        self.p, self.sl, self.sh = _check_p(p, "RandomErasing"), float(sl), float(sh)
        self.min_aspect, self.max_count = float(min_aspect), int(max_count)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """Erase the rectangles of the chosen images (B, C, H, W)."""
        if x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"RandomErasing works on float image batches (B, C, H, W) after Normalize, got "
                             f"{x.dtype} {tuple(x.shape)}.")
        n, (h, w), dev = x.shape[0], x.shape[-2:], x.device
        do = torch.rand(n, device=dev) < self.p
        count = torch.randint(1, self.max_count + 1, (n,), device=dev)
        area = (h * w) / count
        rows, cols = torch.arange(h, device=dev), torch.arange(w, device=dev)
        erase = torch.zeros(n, h, w, dtype=torch.bool, device=dev)
        lr = math.log(self.min_aspect)
        for j in range(self.max_count):  # over rectangles, not items
            r_area = torch.empty(n, device=dev).uniform_(self.sl, self.sh) * area
            aspect = torch.empty(n, device=dev).uniform_(lr, -lr).exp()
            bh, bw = (r_area * aspect).sqrt().round(), (r_area / aspect).sqrt().round()
            top = (torch.rand(n, device=dev) * ((h - bh).clamp(min=0) + 1)).floor()
            left = (torch.rand(n, device=dev) * ((w - bw).clamp(min=0) + 1)).floor()
            in_r = (rows >= top[:, None]) & (rows < (top + bh)[:, None])
            in_c = (cols >= left[:, None]) & (cols < (left + bw)[:, None])
            on = (do & (count > j))[:, None, None]
            erase |= on & in_r[:, :, None] & in_c[:, None, :]
        return torch.where(erase.unsqueeze(1), torch.randn_like(x), x)

    def get_config(self) -> dict:
        """Constructor arguments."""
        return {"p": self.p, "sl": self.sl, "sh": self.sh, "min_aspect": self.min_aspect, "max_count": self.max_count}


# ---------------------------------------------------------------- fastai's helpers
def setup_aug_tfms(tfms: Sequence[Any]) -> list:
    """Merge the geometry of ``tfms`` into one ``AffineCoordTfm`` and the lighting into one ``LightingTfm``.

    A lone transform stays as it is (a lone ``Flip``: an exact flip, no resampling). Others follow unchanged.
    """
    geo = [t for t in tfms if isinstance(t, (AffineCoordTfm, Flip))]
    light = [t for t in tfms if isinstance(t, LightingTfm)]
    others = [t for t in tfms if not any(t is g for g in geo + light)]
    res: list = []
    if len(geo) == 1:
        res.append(geo[0])
    elif geo:
        first = next((t for t in geo if isinstance(t, AffineCoordTfm)), None)
        kw = {} if first is None else {"mode": first.mode, "pad_mode": first.pad_mode,
                                       "align_corners": first.align_corners}
        res.append(AffineCoordTfm(geo, **kw))
    if len(light) == 1 and not light[0]._is_part:
        res.append(light[0])
    elif light:
        res.append(LightingTfm(light))
    return res + others


def aug_transforms(mult: float = 1.0, do_flip: bool = True, flip_vert: bool = False, max_rotate: float = 10.0,
                   min_zoom: float = 1.0, max_zoom: float = 1.1, max_lighting: float = 0.2, max_warp: float = 0.2,
                   p_affine: float = 0.75, p_lighting: float = 0.75, xtra_tfms: Sequence[Transform] | None = None,
                   size: int | Sequence[int] | None = None, mode: str = "bilinear", pad_mode: str = PadMode.Reflection,
                   align_corners: bool = True, batch: bool = False, min_scale: float = 1.0) -> list:
    """fastai's default batch augmentation: flip, warp, rotate, zoom (one resampling), then brightness and contrast.

    Returns a list of batch transforms (``[AffineCoordTfm, LightingTfm, *xtra_tfms]``). ``size`` resizes
    the output; with ``min_scale < 1`` each item is also randomly cropped (``RandomResizedCropGPU`` with
    square crops, validation: centre crop), in the same resampling.
    """
    if min_scale != 1.0 and size is None:
        raise ValueError(f"aug_transforms(min_scale={min_scale}): a random crop needs the output size; pass size=....")
    tkw = {"size": size if min_scale == 1.0 else None, "mode": mode, "pad_mode": pad_mode,
           "align_corners": align_corners, "batch": batch}
    max_rotate, max_lighting, max_warp = max_rotate * mult, max_lighting * mult, max_warp * mult
    res: list = []
    if do_flip:
        res.append(Dihedral(p=0.5, **tkw) if flip_vert else Flip(p=0.5, batch=batch))
    if max_warp:
        res.append(Warp(magnitude=max_warp, p=p_affine, **tkw))
    if max_rotate:
        res.append(Rotate(max_deg=max_rotate, p=p_affine, **tkw))
    if min_zoom < 1 or max_zoom > 1:
        res.append(Zoom(min_zoom=min_zoom, max_zoom=max_zoom, p=p_affine, **tkw))
    if min_scale != 1.0:
        res.append(RandomResizedCropGPU(size, min_scale=min_scale, ratio=(1, 1), mode=mode, pad_mode=pad_mode,
                                        align_corners=align_corners))
    elif size is not None and not any(isinstance(t, AffineCoordTfm) for t in res):
        res.append(AffineCoordTfm(size=size, mode=mode, pad_mode=pad_mode, align_corners=align_corners))
    if max_lighting:
        res.append(Brightness(max_lighting=max_lighting, p=p_lighting, batch=batch))
        res.append(Contrast(max_lighting=max_lighting, p=p_lighting, batch=batch))
    return setup_aug_tfms(res + list(xtra_tfms or []))
