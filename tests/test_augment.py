"""Item transforms (geometry on PIL images with known content) and batch transforms (Flip, Normalize)."""
import pickle
import random

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image

from learnkit.data.transforms import IntToFloatTensor, ToTensor, apply_transforms
from learnkit.vision.augment import (Albumentations, CropPad, Flip, Normalize, PadMode, RandomResizedCrop, Resize,
                                     ResizeMethod)
from learnkit.vision.core import PILImage, PILMask, imagenet_stats

TRAIN, VALID = 0, 1
IMG = ("image",)


def coord_image(w: int = 200, h: int = 100) -> Image.Image:
    """RGB image whose red channel is the x coordinate and green the y coordinate (blue 7)."""
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[..., 0] = np.arange(w)[None, :]
    arr[..., 1] = np.arange(h)[:, None]
    arr[..., 2] = 7
    return Image.fromarray(arr)


def stripe_mask(w: int = 200, h: int = 100, stripe: int = 50) -> Image.Image:
    """Mask whose class id is x // stripe (ids 0..3 for the default size)."""
    return Image.fromarray(np.broadcast_to((np.arange(w) // stripe).astype(np.uint8), (h, w)).copy())


def arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(int)


# ---------------------------------------------------------------- Resize
def test_resize_crop_is_centred_on_validation_and_exact_when_no_scaling():
    out, = Resize(100)((coord_image(),), IMG, VALID)  # 200x100 -> centre 100x100, no resampling
    a = arr(out)
    assert out.size == (100, 100)
    np.testing.assert_array_equal(a[..., 0], np.broadcast_to(np.arange(50, 150), (100, 100)))
    np.testing.assert_array_equal(a[..., 1], np.broadcast_to(np.arange(100)[:, None], (100, 100)))


def test_resize_crop_position_is_random_on_training_and_covers_the_range():
    random.seed(0)
    lefts = set()
    for _ in range(40):
        a = arr(Resize(100)((coord_image(),), IMG, TRAIN)[0])
        x0 = a[0, 0, 0]
        np.testing.assert_array_equal(a[0, :, 0], np.arange(x0, x0 + 100))  # a contiguous 100-px window
        lefts.add(int(x0))
    assert min(lefts) < 20 and max(lefts) > 80 and len(lefts) > 20


def test_resize_crop_downscales_the_centre_square():
    out, = Resize(50)((coord_image(),), IMG, VALID)  # centre 100x100 (x 50..149) shrunk 2x
    a = arr(out)
    assert out.size == (50, 50)
    assert abs(a[25, 0, 0] - 50.5) <= 1.5 and abs(a[25, -1, 0] - 148.5) <= 1.5
    assert abs(a[0, 25, 1] - 0.5) <= 1.5 and abs(a[-1, 25, 1] - 98.5) <= 1.5


def test_resize_non_square_size_is_height_width():
    out, = Resize((30, 60))((coord_image(),), IMG, VALID)
    assert out.size == (60, 30)


def test_resize_squish_keeps_everything():
    out, = Resize((50, 40), method=ResizeMethod.Squish)((coord_image(),), IMG, TRAIN)
    a = arr(out)
    assert out.size == (40, 50)
    assert a[0, 0, 0] < 5 and a[0, -1, 0] > 194  # whole width kept
    assert a[0, 0, 1] < 3 and a[-1, 0, 1] > 96  # whole height kept


@pytest.mark.parametrize("pad_mode", ["zeros", "border", "reflection"])
def test_resize_pad_fits_the_whole_image_and_fills_the_rest(pad_mode):
    out, = Resize(100, method="pad", pad_mode=pad_mode)((coord_image(),), IMG, VALID)
    a = arr(out)
    assert out.size == (100, 100)
    inner = a[25:75]  # the image, shrunk to 100x50, centred vertically
    assert inner[:, 0, 0].max() < 3 and inner[:, -1, 0].min() > 195 and (inner[..., 2] == 7).all()
    top, bottom = a[:25], a[75:]
    if pad_mode == "zeros":
        assert (top == 0).all() and (bottom == 0).all()
    elif pad_mode == "border":
        np.testing.assert_array_equal(top, np.broadcast_to(a[25], top.shape))
        np.testing.assert_array_equal(bottom, np.broadcast_to(a[74], bottom.shape))
    else:
        np.testing.assert_array_equal(top[::-1], a[26:51])
        np.testing.assert_array_equal(bottom, a[73:48:-1])


def test_resize_pad_position_is_random_on_training():
    random.seed(1)
    offsets = set()
    for _ in range(20):
        a = arr(Resize(100, method="pad", pad_mode="zeros")((coord_image(),), IMG, TRAIN)[0])
        offsets.add(int(np.flatnonzero(a[:, 50, 2] == 7)[0]))
    assert len(offsets) > 5 and max(offsets) <= 50


def test_resize_mask_uses_nearest_and_matches_the_image_geometry():
    random.seed(2)
    for method in ("crop", "squish", "pad"):
        img, mask = Resize(37, method=method, pad_mode="zeros")((coord_image(), stripe_mask()), ("image", "mask"), TRAIN)
        m, a = arr(mask), arr(img)
        assert mask.size == img.size == (37, 37)
        assert set(np.unique(m)) <= {0, 1, 2, 3}
        inside = a[..., 2] == 7  # not padding
        agree = (m[inside] == a[..., 0][inside] // 50).mean()
        assert agree > 0.9, (method, agree)


def test_resize_moves_points_with_the_image():
    pts = np.array([[60.0, 10.0], [150.0, 90.0]])
    img, p = Resize(100)((coord_image(), pts), ("image", "points"), VALID)
    np.testing.assert_allclose(p, [[10, 10], [100, 90]])
    img, p = Resize(50, method="squish")((coord_image(), pts), ("image", "points"), VALID)
    np.testing.assert_allclose(p, [[15, 5], [37.5, 45]])


def test_resize_rejects_bad_arguments_and_mismatched_masks():
    with pytest.raises(ValueError, match="method"):
        Resize(10, method="stretch")
    with pytest.raises(ValueError, match="pad_mode"):
        Resize(10, pad_mode="mirror")
    with pytest.raises(ValueError, match="200x100.*50x50"):
        Resize(10)((coord_image(), stripe_mask(50, 50)), ("image", "mask"), TRAIN)
    with pytest.raises(TypeError, match="PIL images"):
        Resize(10)((torch.zeros(3, 8, 8),), IMG, TRAIN)


# ---------------------------------------------------------------- RandomResizedCrop
def test_rrc_validation_is_the_fastai_centre_crop():
    # size 128 -> margin ceil(128 * 0.14 / 8) * 8 = 24: the centre 128/152 of a 152 px image, i.e. an exact crop
    out, = RandomResizedCrop(128)((coord_image(152, 152),), IMG, VALID)
    a = arr(out)
    assert out.size == (128, 128)
    np.testing.assert_array_equal(a[0, :, 0], np.arange(12, 140))
    np.testing.assert_array_equal(a[:, 0, 1], np.arange(12, 140))


def test_rrc_training_crops_random_areas_and_ratios_within_bounds():
    random.seed(3)
    rrc = RandomResizedCrop(64, min_scale=0.3, ratio=(0.5, 2.0))
    boxes = []
    for _ in range(50):
        out, = rrc((coord_image(),), IMG, TRAIN)
        assert out.size == (64, 64)
        x0, y0, x1, y1 = rrc._box
        assert 0 <= x0 < x1 <= 200 and 0 <= y0 < y1 <= 100
        area = (x1 - x0) * (y1 - y0) / (200 * 100)
        assert 0.28 <= area <= 1.0 and 0.45 <= (x1 - x0) / (y1 - y0) <= 2.2
        a = arr(out)  # the content really comes from the box
        assert abs(a[32, 0, 0] - x0) <= 4 and abs(a[32, -1, 0] - (x1 - 1)) <= 4
        boxes.append(rrc._box)
    assert len(set(boxes)) > 40


def test_rrc_falls_back_to_a_centre_crop_for_extreme_shapes():
    random.seed(0)
    rrc = RandomResizedCrop(16, min_scale=0.99, ratio=(1.0, 1.0))
    out, = rrc((coord_image(200, 20),), IMG, TRAIN)  # no square of 99% of the area fits
    assert out.size == (16, 16) and rrc._box == (90, 0, 110, 20)


def test_rrc_mask_alignment_and_nearest():
    random.seed(4)
    rrc = RandomResizedCrop(40, min_scale=0.2)
    for _ in range(20):
        img, mask = rrc((coord_image(), stripe_mask()), ("image", "mask"), TRAIN)
        m, a = arr(mask), arr(img)
        assert set(np.unique(m)) <= {0, 1, 2, 3}
        assert (m == np.clip(a[..., 0], 0, 199) // 50).mean() > 0.9


def test_rrc_points_follow_the_crop():
    rrc = RandomResizedCrop(64)  # margin 16: the centre 64/80 of the image, box 15.2..136.8
    img, p = rrc((coord_image(152, 152), np.array([[15.2, 15.2], [76.0, 136.8]])), ("image", "points"), VALID)
    np.testing.assert_allclose(p, [[0, 0], [32, 64]], atol=1e-4)


def test_rrc_draft_decodes_big_jpegs_at_reduced_scale_with_the_same_result(tmp_path):
    w, h = 1000, 800
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    big = np.dstack([xs * 255 // w, ys * 255 // h, (xs + ys) * 255 // (w + h)]).astype(np.uint8)
    fn = tmp_path / "big.jpg"
    Image.fromarray(big).save(fn, quality=95)
    for split in (TRAIN, VALID):
        random.seed(5)
        rrc = RandomResizedCrop(64, min_scale=0.5)
        lazy = PILImage.create_lazy(fn)
        fast, = rrc((lazy,), IMG, split)
        assert lazy.size[0] < w  # it really was decoded at reduced scale
        random.seed(5)
        full, = rrc((PILImage.create(fn),), IMG, split)
        assert fast.size == full.size == (64, 64)
        assert np.abs(arr(fast) - arr(full)).mean() < 1.5


def test_rrc_truncated_jpeg_error_names_the_file(tmp_path):
    fn = tmp_path / "cut.jpg"
    Image.fromarray((np.random.default_rng(0).random((300, 300, 3)) * 255).astype(np.uint8)).save(fn)
    fn.write_bytes(fn.read_bytes()[:2000])
    with pytest.raises(OSError, match="cut.jpg.*verify_images"):
        RandomResizedCrop(32)((PILImage.create_lazy(fn),), IMG, TRAIN)


# ---------------------------------------------------------------- CropPad
def test_croppad_crops_the_centre_and_pads_with_zeros_or_border():
    out, = CropPad(50)((coord_image(),), IMG, TRAIN)
    a = arr(out)
    np.testing.assert_array_equal(a[0, :, 0], np.arange(75, 125))
    np.testing.assert_array_equal(a[:, 0, 1], np.arange(25, 75))
    out, = CropPad((120, 200))((coord_image(),), IMG, VALID)  # 10 rows of padding above and below
    a = arr(out)
    assert out.size == (200, 120) and (a[:10] == 0).all() and (a[110:] == 0).all()
    np.testing.assert_array_equal(a[10:110], arr(coord_image()))
    out, = CropPad((120, 200), pad_mode=PadMode.Border)((coord_image(),), IMG, VALID)
    np.testing.assert_array_equal(arr(out)[:10], np.broadcast_to(arr(coord_image())[0], (10, 200, 3)))


def test_croppad_keeps_mask_palette_and_shifts_points():
    ids = np.arange(16, dtype=np.uint8).reshape(4, 4)
    mask = PILMask.create(ids)
    mask.putpalette([v for i in range(256) for v in (i, i, i)])
    img, m, p = CropPad(6)((Image.fromarray(ids).convert("RGB"), mask, np.array([[0.0, 0.0]])),
                           ("image", "mask", "points"), TRAIN)
    assert m.mode == "P" and arr(m)[1:5, 1:5].tolist() == ids.tolist() and arr(m)[0].sum() == 0
    np.testing.assert_allclose(p, [[1, 1]])


# ---------------------------------------------------------------- Albumentations
def test_albumentations_runs_on_training_only_by_default_and_moves_the_mask_with_the_image():
    t = Albumentations(A.Compose([A.HorizontalFlip(p=1.0)]))
    img, mask = t((coord_image(), stripe_mask()), ("image", "mask"), TRAIN)
    assert isinstance(img, Image.Image) and img.mode == "RGB" and mask.mode == "L"
    np.testing.assert_array_equal(arr(img), arr(coord_image())[:, ::-1])
    np.testing.assert_array_equal(arr(mask), arr(stripe_mask())[:, ::-1])
    img, mask = t((coord_image(), stripe_mask()), ("image", "mask"), VALID)
    np.testing.assert_array_equal(arr(img), arr(coord_image()))
    both = Albumentations(A.HorizontalFlip(p=1.0), split_idx=None)
    img, = both((coord_image(),), IMG, VALID)
    np.testing.assert_array_equal(arr(img), arr(coord_image())[:, ::-1])


def test_albumentations_random_crop_is_shared_by_image_and_mask():
    t = Albumentations(A.Compose([A.RandomCrop(40, 60)]))
    for _ in range(5):
        img, mask = t((coord_image(), stripe_mask()), ("image", "mask"), TRAIN)
        np.testing.assert_array_equal(arr(mask), arr(img)[..., 0] // 50)


def test_albumentations_rejects_float_output_and_is_not_exportable():
    t = Albumentations(A.Compose([A.Normalize()]))
    with pytest.raises(TypeError, match="Normalize.from_stats"):
        t((coord_image(),), IMG, TRAIN)
    with pytest.raises(NotImplementedError, match="exported"):
        t.get_config()
    assert "Albumentations(" in repr(t)
    with pytest.raises(TypeError, match="albumentations transform"):
        Albumentations("flip")


# ---------------------------------------------------------------- Flip
def _batch(n: int = 8):
    x = torch.arange(n * 3 * 4 * 5, dtype=torch.float32).reshape(n, 3, 4, 5)
    m = torch.arange(n * 4 * 5).reshape(n, 4, 5)
    return x, m


def test_flip_flips_exactly_the_chosen_items_with_their_masks_and_points():
    torch.manual_seed(0)
    x, m = _batch(16)
    pts = torch.tensor([[[1.0, 2.0]]]).repeat(16, 1, 1)
    t = Flip(p=0.5)
    fx, fm, fp = t((x, m, pts), ("image", "mask", "points"), TRAIN)
    chosen = t._flip
    assert 0 < chosen.sum() < 16
    for i in range(16):
        want = x[i].flip(-1) if chosen[i] else x[i]
        assert torch.equal(fx[i], want) and torch.equal(fm[i], m[i].flip(-1) if chosen[i] else m[i])
        assert fp[i, 0, 0] == (5 - 1.0 if chosen[i] else 1.0) and fp[i, 0, 1] == 2.0


def test_flip_is_identity_on_validation_and_respects_p():
    x, m = _batch()
    fx, fm = Flip()((x, m), ("image", "mask"), VALID)
    assert fx is x and fm is m
    assert torch.equal(Flip(p=0.0)((x,), IMG, TRAIN)[0], x)
    assert torch.equal(Flip(p=1.0)((x,), IMG, TRAIN)[0], x.flip(-1))
    assert Flip(p=0.3).get_config() == {"p": 0.3}


def test_flip_works_on_uint8_batches_and_leaves_labels_alone():
    x = torch.randint(0, 255, (4, 3, 2, 2), dtype=torch.uint8)
    y = torch.tensor([0, 1, 2, 3])
    fx, fy = Flip(p=1.0)((x, y), ("image", "category"), TRAIN)
    assert fx.dtype == torch.uint8 and torch.equal(fx, x.flip(-1)) and fy is y


# ---------------------------------------------------------------- Normalize
def test_normalize_round_trip_and_stats():
    x = torch.rand(4, 3, 8, 8)
    n = Normalize.from_stats(*imagenet_stats)
    y, = n((x,), IMG, TRAIN)
    mean = torch.tensor(imagenet_stats[0]).view(1, 3, 1, 1)
    std = torch.tensor(imagenet_stats[1]).view(1, 3, 1, 1)
    torch.testing.assert_close(y, (x - mean) / std)
    torch.testing.assert_close(n.decode((y,), IMG)[0], x)
    assert n((x,), IMG, VALID)[0].shape == x.shape  # every split
    assert n.order == 99 and n.get_config()["mean"] == pytest.approx(imagenet_stats[0])


def test_normalize_follows_the_batch_dtype_and_leaves_other_kinds():
    n = Normalize.from_stats([0.5], [0.25])
    x = torch.full((2, 1, 3, 3), 0.75, dtype=torch.float64)
    y, lab = n((x, torch.tensor([1, 0])), ("image", "category"), TRAIN)
    assert y.dtype == torch.float64 and torch.allclose(y, torch.ones_like(y)) and lab.tolist() == [1, 0]
    assert Normalize.from_stats([0.5], [0.25])((torch.full((2, 3, 2, 2), 0.5),), IMG, TRAIN)[0].abs().max() == 0


def test_normalize_errors_name_the_problem():
    n = Normalize.from_stats(*imagenet_stats)
    with pytest.raises(TypeError, match="IntToFloatTensor"):
        n((torch.zeros(2, 3, 4, 4, dtype=torch.uint8),), IMG, TRAIN)
    with pytest.raises(ValueError, match=r"3 channel statistics.*\(2, 1, 4, 4\)"):
        n((torch.zeros(2, 1, 4, 4),), IMG, TRAIN)
    with pytest.raises(ValueError, match="positive"):
        Normalize([0.0], [0.0])
    with pytest.raises(ValueError, match="both"):
        Normalize(mean=[0.5])


def test_normalize_without_stats_learns_them_from_the_first_batch():
    n = Normalize()
    x = torch.randn(64, 3, 8, 8) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1) + 5
    y, = n((x,), IMG, TRAIN)
    assert y.mean(dim=(0, 2, 3)).abs().max() < 1e-4 and (y.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-3
    y2, = n((x * 2,), IMG, TRAIN)  # kept, not recomputed
    assert y2.mean() > 1


def test_normalize_pickles_and_rebuilds_from_config():
    n = Normalize.from_stats(*imagenet_stats)
    x = torch.rand(2, 3, 4, 4)
    n((x,), IMG, TRAIN)
    n2 = pickle.loads(pickle.dumps(n))
    n3 = Normalize(**n.get_config())
    torch.testing.assert_close(n2((x,), IMG, TRAIN)[0], n((x,), IMG, TRAIN)[0])
    torch.testing.assert_close(n3((x,), IMG, TRAIN)[0], n((x,), IMG, TRAIN)[0])


# ---------------------------------------------------------------- whole item -> batch pipeline and export configs
def test_item_and_batch_pipeline_in_order():
    item_tfms = sorted([ToTensor(), RandomResizedCrop(32)], key=lambda t: t.order)
    s = apply_transforms(item_tfms, (coord_image(), stripe_mask()), ("image", "mask"), VALID)
    assert s[0].shape == (3, 32, 32) and s[0].dtype == torch.uint8 and s[1].shape == (32, 32)
    b = (s[0][None], s[1][None])
    batch_tfms = sorted([Normalize.from_stats(*imagenet_stats), Flip(), IntToFloatTensor()], key=lambda t: t.order)
    x, m = apply_transforms(batch_tfms, b, ("image", "mask"), TRAIN)
    assert x.dtype == torch.float32 and m.dtype == torch.int64


@pytest.mark.parametrize("t", [Resize((20, 30), method="pad", pad_mode="border"), RandomResizedCrop(24, min_scale=0.5),
                               CropPad(10, pad_mode="reflection"), Flip(0.25), Normalize.from_stats([0.1], [0.2])])
def test_get_config_rebuilds_the_same_transform(t):
    import json
    cfg = json.loads(json.dumps(t.get_config()))
    assert type(t)(**cfg).get_config() == t.get_config()
