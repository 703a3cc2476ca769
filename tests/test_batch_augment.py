"""Batch augmentation on tensors: geometry checked on synthetic images with known content, masks and points aligned."""
import json

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from learnkit.data.block import DataBlock
from learnkit.data.blocks import CategoryBlock
from learnkit.data.getters import get_image_files, parent_label
from learnkit.data.splitters import GrandparentSplitter, RandomSplitter
from learnkit.data.transforms import apply_transforms
from learnkit.samples import sample_path
from learnkit.utils import set_seed
from learnkit.vision.augment import Flip, Resize
from learnkit.vision.batch_augment import (
    AffineCoordTfm,
    Brightness,
    Contrast,
    Dihedral,
    LightingTfm,
    RandomErasing,
    RandomResizedCropGPU,
    Rotate,
    Saturation,
    Warp,
    Zoom,
    aug_transforms,
    setup_aug_tfms,
)
from learnkit.vision.core import ImageBlock, MaskBlock

TRAIN, VALID = 0, 1
IMG, IMG_MASK_PTS = ("image",), ("image", "mask", "points")


def quadrant_batch(n: int = 2, h: int = 16, w: int = 16):
    """Images bright (1.0) in the top-left quadrant only, and the matching masks (class 1 there, else 0)."""
    x = torch.zeros(n, 3, h, w)
    x[..., : h // 2, : w // 2] = 1.0
    return x, (x[:, 0] > 0.5).long()


def marked(n: int, h: int, w: int, rc: tuple[int, int]):
    """Images with a single bright pixel at row/col ``rc``, and that pixel's centre as a point (x, y)."""
    x = torch.zeros(n, 1, h, w)
    x[..., rc[0], rc[1]] = 1.0
    pts = torch.tensor([[[rc[1] + 0.5, rc[0] + 0.5]]]).repeat(n, 1, 1)
    return x, pts


def argmax_rc(img: torch.Tensor) -> torch.Tensor:
    """(n, 2) row/col of each image's brightest pixel."""
    flat = img.flatten(1).argmax(1)
    return torch.stack([flat // img.shape[-1], flat % img.shape[-1]], 1)


def centroid_rc(img: torch.Tensor) -> torch.Tensor:
    """(n, 2) intensity-weighted centre (row, col) of each image, in continuous pixel coordinates."""
    rows = torch.arange(img.shape[-2], dtype=img.dtype) + 0.5
    cols = torch.arange(img.shape[-1], dtype=img.dtype) + 0.5
    tot = img.sum((-2, -1))
    return torch.stack([(img.sum(-1) * rows).sum(-1) / tot, (img.sum(-2) * cols).sum(-1) / tot], 1)


def grid_samples(fn) -> int:
    """How many grid_sample kernels ``fn()`` runs."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.name == "aten::grid_sampler_2d" for e in prof.events())


# ---------------------------------------------------------------- geometry
def test_composed_flip_moves_the_quadrant_mask_and_points_like_the_exact_flip():
    x, m = quadrant_batch()
    pts = torch.tensor([[[2.0, 3.0]]]).repeat(2, 1, 1)
    t = AffineCoordTfm([Flip(p=1.0), Rotate(p=0.0)])
    fx, fm, fp = t((x, m, pts), IMG_MASK_PTS, TRAIN)
    torch.testing.assert_close(fx, x.flip(-1), atol=1e-5, rtol=0)
    assert torch.equal(fm, m.flip(-1)) and fx[0, 0, 0, -1] == 1 and fx[0, 0, 0, 0] == 0
    torch.testing.assert_close(fp, torch.tensor([[[16 - 2.0, 3.0]]]).repeat(2, 1, 1))
    ex = Flip(p=1.0)((x, m, pts), IMG_MASK_PTS, TRAIN)  # the exact (no resampling) flip agrees
    torch.testing.assert_close(fp, ex[2])


def test_rotate_by_90_degrees_matches_rot90_for_images_masks_and_points():
    x = torch.rand(2, 3, 9, 9)
    m = torch.randint(0, 5, (2, 9, 9))
    pts = torch.tensor([[[1.5, 0.5], [8.5, 4.5]]]).repeat(2, 1, 1)  # centres of pixels (row 0, col 1), (row 4, col 8)
    rx, rm, rp = Rotate(draw=90, p=1.0)((x, m, pts), IMG_MASK_PTS, TRAIN)
    torch.testing.assert_close(rx, torch.rot90(x, -1, (-2, -1)), atol=1e-5, rtol=0)
    assert torch.equal(rm, torch.rot90(m, -1, (-2, -1)))
    # rot90(k=-1) (clockwise) sends (row r, col c) of a 9x9 image to (row c, col 8 - r)
    torch.testing.assert_close(rp, torch.tensor([[[8.5, 1.5], [4.5, 8.5]]]).repeat(2, 1, 1), atol=1e-4, rtol=0)


def test_dihedral_transpose_matches_the_transposed_image():
    x = torch.rand(3, 1, 7, 7)
    dx, = Dihedral(p=1.0, draw=[0, 1, 4])((x,), IMG, TRAIN)
    torch.testing.assert_close(dx[0], x[0], atol=1e-5, rtol=0)  # 0: identity
    torch.testing.assert_close(dx[1], x[1].flip(-1), atol=1e-5, rtol=0)  # 1: left-right flip
    torch.testing.assert_close(dx[2], x[2].flip(-1).flip(-2), atol=1e-5, rtol=0)  # 4: 180 degrees


def test_zoom_2x_centred_crops_the_centre():
    x = torch.rand(2, 3, 33, 33)
    zx, = Zoom(draw=2.0, draw_x=0.5, draw_y=0.5, p=1.0)((x,), IMG, TRAIN)
    # align_corners: even output pixels land exactly on source pixels 8..24 (the centre half)
    torch.testing.assert_close(zx[..., ::2, ::2], x[..., 8:25, 8:25], atol=1e-5, rtol=0)
    odd = (x[..., 8:24, 8:24] + x[..., 9:25, 8:24]) / 2  # between two source rows: their mean
    torch.testing.assert_close(zx[..., 1::2, ::2][..., :16], odd, atol=1e-5, rtol=0)


def test_warp_moves_a_corner_where_the_homography_says_and_zero_warp_is_identity():
    h = w = 41
    x, pts = marked(1, h, w, (0, w - 1))  # the source's top-right pixel
    t = Warp(draw_x=0.1, draw_y=0.0, p=1.0)
    wx, wp = t((x, pts), ("image", "points"), TRAIN)
    # corner (x=1, y=-1) goes to (1, -1 + 0.1) in normalised coordinates: row 0.05 * 40 = 2, column 40
    assert argmax_rc(wx[:, 0]).tolist() == [[2, 40]]
    torch.testing.assert_close(wp, torch.tensor([[[40.5, 2.5]]]), atol=1e-3, rtol=0)
    x = torch.rand(2, 3, 12, 10)
    torch.testing.assert_close(Warp(draw_x=0.0, draw_y=0.0, p=1.0)((x,), IMG, TRAIN)[0], x, atol=1e-5, rtol=0)


def test_composed_random_geometry_keeps_masks_and_points_aligned_with_the_pixels():
    torch.manual_seed(1)
    n, h, w = 6, 40, 48
    cls = torch.zeros(n, h, w, dtype=torch.long)  # three classes in big blocks
    cls[:, 10:30, 8:20], cls[:, 5:25, 28:44] = 1, 2
    x = (cls.float() / 2).unsqueeze(1).repeat(1, 3, 1, 1)
    t = setup_aug_tfms([Flip(), Warp(p=1.0), Rotate(max_deg=30, p=1.0), Zoom(max_zoom=1.5, p=1.0)])[0]
    assert isinstance(t, AffineCoordTfm) and len(t.parts) == 4
    ax, am = t((x, cls), ("image", "mask"), TRAIN)
    assert set(am.unique().tolist()) <= {0, 1, 2}  # nearest: no interpolated ids
    agree = (am == (ax[:, 0] * 2).round().long()).float().mean()
    assert agree > 0.95, agree  # they differ only on block edges (bilinear vs nearest)
    assert not torch.equal(am, cls)
    for _ in range(3):  # a marked pixel goes where its point goes
        x1, pts = marked(n, h, w, (17, 30))
        mx, mp = t((x1, pts), ("image", "points"), TRAIN)
        got = argmax_rc(mx[:, 0]).float() + 0.5
        assert (got - mp[:, 0].flip(-1)).abs().max() <= 1.0


def test_validation_leaves_batches_unchanged_and_size_resizes_deterministically():
    x, m = quadrant_batch()
    for t in aug_transforms() + [RandomErasing(), Saturation()]:
        out = t((x, m), ("image", "mask"), VALID)
        assert out[0] is x and out[1] is m
    t = aug_transforms(size=8)[0]
    assert t.split_idx is None
    vx, vm = t((x, m), ("image", "mask"), VALID)
    assert vx.shape == (2, 3, 8, 8) and torch.equal(vm, (vx[:, 0] > 0.5).long())
    assert torch.equal(vx, t((x, m), ("image", "mask"), VALID)[0])


def test_random_resized_crop_gpu_crops_inside_and_centre_crops_on_validation():
    x = torch.arange(20.0).view(1, 1, 1, 20).expand(4, 3, 10, 20).contiguous()  # value = column
    t = RandomResizedCropGPU(8, min_scale=0.25, ratio=(1, 1))
    cx, = t((x,), IMG, TRAIN)
    assert cx.shape == (4, 3, 8, 8) and cx.min() >= 0 and cx.max() <= 19
    assert ((cx[..., -1] - cx[..., 0]) <= 10 + 1e-4).all()  # a square crop spans at most the 10-pixel height
    vx, = t((x,), IMG, VALID)  # the centre 10x10 square: columns 5..14
    torch.testing.assert_close(vx[0, 0, 0], torch.linspace(5, 14, 8), atol=1e-4, rtol=0)


def test_one_grid_sample_per_value_for_the_whole_aug_transforms_geometry():
    x, m = quadrant_batch(4, 32, 32)
    tfms = aug_transforms(size=24, min_scale=0.5)
    assert [type(t) for t in tfms] == [AffineCoordTfm, LightingTfm]
    assert grid_samples(lambda: apply_transforms(tfms, (x,), IMG, TRAIN)) == 1
    assert grid_samples(lambda: apply_transforms(tfms, (x, m), ("image", "mask"), TRAIN)) == 2  # + the mask
    assert grid_samples(lambda: Flip(p=1.0)((x,), IMG, TRAIN)) == 0  # a lone Flip stays exact


def test_geometry_runs_in_float32_under_autocast_and_keeps_uint8_and_bfloat16():
    x = torch.rand(2, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, = Rotate(draw=90, p=1.0)((x,), IMG, TRAIN)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, torch.rot90(x, -1, (-2, -1)), atol=1e-5, rtol=0)
    xb = x.to(torch.bfloat16)
    assert Rotate(p=1.0)((xb,), IMG, TRAIN)[0].dtype == torch.bfloat16
    xu = (x * 255).to(torch.uint8)
    yu, = Rotate(draw=90, p=1.0)((xu,), IMG, TRAIN)
    assert yu.dtype == torch.uint8 and torch.equal(yu, torch.rot90(xu, -1, (-2, -1)))
    cl = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(Rotate(draw=90, p=1.0)((cl,), IMG, TRAIN)[0], y, atol=1e-5, rtol=0)


def test_probability_is_per_item():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 6, 6)
    y, = Rotate(draw=90, p=0.5)((x,), IMG, TRAIN)
    same = ((y - x).abs().flatten(1).max(1).values < 1e-5)
    assert 15 < same.sum() < 49
    y, = Rotate(draw=90, p=0.5, batch=True)((x,), IMG, TRAIN)
    same = ((y - x).abs().flatten(1).max(1).values < 1e-5)
    assert same.all() or not same.any()


# ---------------------------------------------------------------- lighting and erasing
def test_brightness_and_contrast_move_mean_and_std_and_stay_in_range():
    x = torch.full((1, 3, 4, 4), 0.5)
    torch.testing.assert_close(Brightness(draw=0.7, p=1.0)((x,), IMG, TRAIN)[0], torch.full_like(x, 0.7))
    g = torch.linspace(0.05, 0.95, 48).view(1, 3, 4, 4)
    brighter, = Brightness(draw=0.8, p=1.0)((g,), IMG, TRAIN)
    darker, = Brightness(draw=0.2, p=1.0)((g,), IMG, TRAIN)
    assert brighter.mean() > g.mean() > darker.mean()
    more, = Contrast(draw=2.0, p=1.0)((g,), IMG, TRAIN)
    less, = Contrast(draw=0.5, p=1.0)((g,), IMG, TRAIN)
    assert more.std() > g.std() > less.std()
    # in logit space: sigmoid(2 * logit(0.75)) = 0.9
    torch.testing.assert_close(Contrast(draw=2.0, p=1.0)((torch.full((1, 1, 1, 1), 0.75),), IMG, TRAIN)[0].flatten(),
                               torch.tensor([0.9]))
    for t in aug_transforms(max_lighting=0.9)[1:]:
        out, = t((torch.rand(8, 3, 5, 5),), IMG, TRAIN)
        assert out.min() >= 0 and out.max() <= 1


def test_lighting_parts_compose_into_one_pass_in_order_and_saturation_greys():
    g = torch.rand(2, 3, 4, 4) * 0.9 + 0.05
    both = setup_aug_tfms([Brightness(draw=0.6, p=1.0), Contrast(draw=1.5, p=1.0)])
    assert len(both) == 1 and isinstance(both[0], LightingTfm)
    seq = Contrast(draw=1.5, p=1.0)(Brightness(draw=0.6, p=1.0)((g,), IMG, TRAIN), IMG, TRAIN)[0]
    torch.testing.assert_close(both[0]((g,), IMG, TRAIN)[0], seq, atol=1e-5, rtol=1e-5)
    grey, = Saturation(draw=0.0, p=1.0)((g,), IMG, TRAIN)
    torch.testing.assert_close(grey[:, 0], grey[:, 1], atol=1e-5, rtol=0)
    with pytest.raises(TypeError, match="IntToFloatTensor"):
        Brightness()(((g * 255).byte(),), IMG, TRAIN)


def test_random_erasing_erases_one_rectangle_of_the_expected_area():
    torch.manual_seed(0)
    h, w = 40, 50
    x = torch.full((32, 3, h, w), 100.0)  # N(0, 1) noise never reaches 100: erased pixels are < 100
    ex, = RandomErasing(p=1.0, sl=0.05, sh=0.3)((x,), IMG, TRAIN)
    erased = ex[:, 0] < 50
    assert torch.equal(erased, (ex[:, 1] < 50)) and torch.equal(erased, (ex[:, 2] < 50))  # every channel
    frac = erased.flatten(1).float().mean(1)
    assert (frac > 0).all() and (frac <= 0.3 + 0.05).all()
    for e in erased:  # a filled rectangle: its bounding box is all erased
        rows, cols = e.any(1).nonzero(), e.any(0).nonzero()
        assert e[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
    assert torch.equal(RandomErasing(p=0.0)((x,), IMG, TRAIN)[0], x)
    assert RandomErasing.order > 99 and RandomErasing().get_config()["sh"] == 0.3


# ---------------------------------------------------------------- aug_transforms, seeds, export
def test_aug_transforms_defaults_equal_fastais():
    geo, light = aug_transforms()
    kinds = [type(p).__name__ for p in geo.parts]
    assert kinds == ["Flip", "Warp", "Rotate", "Zoom"]
    flip, warp, rot, zoom = geo.parts
    assert flip.p == 0.5 and (warp.magnitude, warp.p) == (0.2, 0.75) and (rot.max_deg, rot.p) == (10.0, 0.75)
    assert (zoom.min_zoom, zoom.max_zoom, zoom.p) == (1.0, 1.1, 0.75)
    assert [(type(p).__name__, p.max_lighting, p.p) for p in light.parts] == [("Brightness", 0.2, 0.75),
                                                                              ("Contrast", 0.2, 0.75)]
    assert (geo.mode, geo.pad_mode, geo.align_corners, geo.size, geo.split_idx) == ("bilinear", "reflection", True,
                                                                                    None, 0)
    assert type(aug_transforms(flip_vert=True)[0].parts[0]) is Dihedral
    t = aug_transforms(mult=2.0, max_lighting=0.0, max_warp=0.0, max_zoom=1.0)
    assert len(t) == 1 and t[0].parts[1].max_deg == 20.0
    assert type(aug_transforms(max_rotate=0, max_warp=0, max_zoom=1.0, max_lighting=0)[0]) is Flip
    with pytest.raises(ValueError, match="size"):
        aug_transforms(min_scale=0.5)


def test_set_seed_reproduces_the_augmentation():
    x, m = quadrant_batch(4, 24, 24)
    tfms = aug_transforms(p_affine=1.0, p_lighting=1.0) + [RandomErasing(p=1.0)]
    set_seed(7)
    a = apply_transforms(tfms, (x, m), ("image", "mask"), TRAIN)
    set_seed(7)
    b = apply_transforms(tfms, (x, m), ("image", "mask"), TRAIN)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], x)


def test_configs_are_json_and_rebuild_the_same_transforms():
    from learnkit.registry import _TRANSFORMS, module_of  # the module that defines a transform registers it
    x = torch.rand(3, 3, 16, 16)
    for t in aug_transforms(size=12, min_scale=0.6) + [RandomErasing(), Saturation(), Dihedral(p=1.0)]:
        cfg = json.loads(json.dumps(t.get_config()))
        assert _TRANSFORMS[type(t).__name__] is type(t) and module_of("transform", type(t).__name__) == type(t).__module__
        clone = type(t)(**cfg)
        assert repr(clone) == repr(t)
        set_seed(3)
        a = t((x,), IMG, TRAIN)[0]
        set_seed(3)
        assert torch.equal(a, clone((x,), IMG, TRAIN)[0])
    assert Flip(p=0.3).get_config() == {"p": 0.3} and Flip(batch=True).get_config()["batch"] is True


# ---------------------------------------------------------------- end to end
def test_datablock_segmentation_with_aug_transforms_keeps_masks_aligned():
    path = sample_path("camvid_tiny")
    # the "image" is the label file itself (grey levels = ids), so an aligned mask equals 255 * image
    dblock = DataBlock(blocks=(ImageBlock, MaskBlock(codes=(path / "codes.txt").read_text().split())),
                       get_items=lambda p: get_image_files(p / "labels"), splitter=RandomSplitter(seed=0),
                       get_y=lambda f: f, batch_tfms=aug_transforms(p_affine=1.0, max_lighting=0.0, mode="nearest"))
    dls = dblock.dataloaders(path, bs=8, num_workers=0)
    set_seed(0)
    x, m = dls.train.one_batch()
    assert x.shape == (8, 3, 96, 128) and m.shape == (8, 96, 128) and m.dtype == torch.long
    ids = (x[:, 0] * 255).round().long()
    assert torch.equal(ids, m)  # nearest for the image too: the same grid gives the same pixels
    assert set(m.unique().tolist()) <= set(range(32))
    vx, vm = dls.valid.one_batch()
    assert torch.equal((vx[:, 0] * 255).round().long(), vm)  # validation: untouched


def test_datablock_classification_with_aug_transforms_changes_training_images_only():
    path = sample_path("imagenette_tiny")
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter(valid_name="val"), item_tfms=Resize(32),
                       batch_tfms=aug_transforms(size=24, min_scale=0.75))
    dls = dblock.dataloaders(path, bs=4, num_workers=0)
    x, y = dls.train.one_batch()
    assert x.shape == (4, 3, 24, 24) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.dtype == torch.long and y.shape == (4,)
    vx, _ = dls.valid.one_batch()
    assert vx.shape == (4, 3, 24, 24)
    raw = dls.valid.new(batch_tfms=[]).one_batch()[0]  # same items without batch augmentation: 32 -> 24 resize
    torch.testing.assert_close(vx, torch.nn.functional.interpolate(raw, size=24, mode="bilinear",
                                                                   align_corners=True), atol=1e-5, rtol=0)


def test_points_follow_the_pixels_through_a_random_crop_and_resize():
    torch.manual_seed(2)
    n, h, w = 8, 40, 48
    t = aug_transforms(size=(30, 36), min_scale=0.6, p_affine=1.0, max_lighting=0.0)[0]
    x = torch.zeros(n, 1, h, w)
    x[..., 18:21, 22:25] = 1.0  # a 3x3 blob centred on pixel (19, 23)
    pts = torch.tensor([[[23.5, 19.5]]]).repeat(n, 1, 1)
    mx, mp = t((x, pts), ("image", "points"), TRAIN)
    assert mx.shape == (n, 1, 30, 36)
    assert (centroid_rc(mx[:, 0]) - mp[:, 0].flip(-1)).abs().max() <= 0.5
    vx, vp = t((x, pts), ("image", "points"), VALID)  # centre square 40x40 of the 48 columns, resized to 30x36
    assert (centroid_rc(vx[:, 0]) - vp[:, 0].flip(-1)).abs().max() <= 0.5


def test_constants_are_made_once_per_device_not_per_batch(monkeypatch):
    from learnkit.vision import batch_augment
    x = torch.rand(4, 3, 8, 8)
    tfms = setup_aug_tfms([Dihedral(p=1.0), Warp(p=1.0), Rotate(p=1.0, draw=[5.0, 10.0, 15.0, 20.0]),
                           Saturation(p=1.0)])
    apply_transforms(tfms, (x,), IMG, TRAIN)  # warm: the constants are built here
    made = []
    real = torch.tensor
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: made.append(a) or real(*a, **k))
    for _ in range(3):
        out = apply_transforms(tfms, (x,), IMG, TRAIN)[0]
    assert made == []  # before: Dihedral's table, Warp's corners, the list draw and the luma weights, every batch
    assert out.shape == x.shape and torch.isfinite(out).all()
    warp_corners = ((-1.0, -1.0), (-1.0, 1.0), (1.0, -1.0), (1.0, 1.0))
    c = batch_augment._const(warp_corners, torch.device("cpu"))
    assert c is batch_augment._const(warp_corners, torch.device("cpu")) and c.tolist() == [list(v) for v in warp_corners]


def test_flip_takes_fastais_arguments_and_draws():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4).expand(2, 3, 4, 4).contiguous()
    x = torch.cat([x, x])  # 4 items
    f = Flip(p=0.5, draw=None, size=None, mode="bilinear", pad_mode="reflection", align_corners=True, batch=False)
    assert f.get_config() == {"p": 0.5} and repr(f) == "Flip(p=0.5)"
    out = Flip(p=1.0, draw=[1, 0, 1, 0])((x,), IMG, TRAIN)[0]
    assert torch.equal(out[[0, 2]], x[[0, 2]].flip(-1)) and torch.equal(out[[1, 3]], x[[1, 3]])
    seen = []

    def every_other(b):  # fastai's draw(x): the batch tensor in, one value per item out
        seen.append(tuple(b.shape))
        return b.new_zeros(b.size(0)) + torch.tensor([0.0, 1.0, 0.0, 1.0])

    f = Flip(p=1.0, draw=every_other)
    out = f((x,), IMG, TRAIN)[0]
    assert seen == [(4, 3, 4, 4)] and torch.equal(out[[1, 3]], x[[1, 3]].flip(-1)) and torch.equal(out[0], x[0])
    with pytest.raises(TypeError, match="callable draw can't be exported"):
        f.get_config()
    assert "callable" in repr(f)
    # composed into the geometry: the same flips, by the matrix
    geo = setup_aug_tfms([Flip(p=1.0, draw=every_other), Rotate(p=1.0, draw=0.0)])[0]
    out = geo((x,), IMG, TRAIN)[0]
    assert torch.allclose(out[[1, 3]], x[[1, 3]].flip(-1), atol=1e-4) and torch.allclose(out[0], x[0], atol=1e-4)
    # size: resampled to that size on training and validation (no flip there); JSON config round trip
    f = Flip(p=1.0, size=8)
    assert f((x,), IMG, TRAIN)[0].shape == (4, 3, 8, 8) and f.split_idx is None
    v = f((x,), IMG, VALID)[0]
    ref = AffineCoordTfm(size=8)((x,), IMG, VALID)[0]
    assert v.shape == (4, 3, 8, 8) and torch.allclose(v, ref)
    cfg = json.loads(json.dumps(f.get_config()))
    assert cfg == {"p": 1.0, "size": [8, 8], "mode": "bilinear", "pad_mode": "reflection", "align_corners": True}
    assert torch.allclose(Flip(**cfg)((x,), IMG, TRAIN)[0], f((x,), IMG, TRAIN)[0])
    assert setup_aug_tfms([Flip(size=8), Rotate()])[0].size == (8, 8)


def test_callable_draws_for_the_geometry_and_lighting_parts():
    x, m = quadrant_batch(2)
    by_callable = Rotate(p=1.0, draw=lambda b: b.new_full((b.size(0),), 90.0))((x,), IMG, TRAIN)[0]
    by_number = Rotate(p=1.0, draw=90.0)((x,), IMG, TRAIN)[0]
    assert torch.allclose(by_callable, by_number)
    z = Zoom(p=1.0, draw=lambda b: torch.full((b.size(0),), 2.0), draw_x=0.5, draw_y=0.5)
    assert torch.allclose(z((x,), IMG, TRAIN)[0], Zoom(p=1.0, draw=2.0, draw_x=0.5, draw_y=0.5)((x,), IMG, TRAIN)[0])
    b = Brightness(p=1.0, draw=lambda b: [0.7, 0.3])
    out = b((x * 0.5 + 0.25,), IMG, TRAIN)[0]
    assert out[0].mean() > 0.5 > out[1].mean()
    with pytest.raises(TypeError, match="Rotate.*can't be exported"):
        Rotate(draw=lambda b: b).get_config()
    with pytest.raises(ValueError, match="returned 1 values for a batch of 2"):
        Dihedral(p=1.0, draw=lambda b: [1])((x,), IMG, TRAIN)
    assert "Rotate(" in repr(Rotate(draw=lambda b: b))
