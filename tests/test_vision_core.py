"""Image loading (PILImage, PILImageBW, PILMask), file checks and the image/mask blocks."""

import numpy as np
import pytest
import torch
from PIL import Image

from learnkit.data.transforms import IntToFloatTensor, ToTensor
from learnkit.vision.core import (ImageBlock, ImageLoadError, MaskBlock, PILImage, PILImageBW, PILMask,
                                  imagenet_stats, load_image, load_pixels, verify_image, verify_images)


def _rgb(w: int = 8, h: int = 6) -> np.ndarray:
    """HWC uint8 image whose red channel is x, green y, blue 200."""
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[..., 0] = np.arange(w)[None, :]
    arr[..., 1] = np.arange(h)[:, None]
    arr[..., 2] = 200
    return arr


def _save(arr: np.ndarray, path, **kw):
    Image.fromarray(arr).save(path, **kw)
    return path


def _is_plain_pil(img) -> bool:
    return isinstance(img, Image.Image) and type(img).__module__.startswith("PIL.")


def test_create_from_path_array_bytes_tensor_pil_all_give_the_same_plain_rgb_image(tmp_path):
    arr = _rgb()
    fn = _save(arr, tmp_path / "a.png")
    sources = [fn, str(fn), arr, fn.read_bytes(), torch.from_numpy(arr).permute(2, 0, 1),
               torch.from_numpy(arr).permute(2, 0, 1).float() / 255, arr.astype(np.float32) / 255, Image.fromarray(arr)]
    for src in sources:
        img = PILImage.create(src)
        assert _is_plain_pil(img) and img.mode == "RGB" and img.size == (8, 6), type(src)
        np.testing.assert_array_equal(np.asarray(img), arr)


def test_create_grey_inputs_become_rgb_and_bw_keeps_one_channel(tmp_path):
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    img = PILImage.create(grey)
    assert img.mode == "RGB" and (np.asarray(img) == grey[..., None]).all()
    fn = _save(grey, tmp_path / "g.png")
    bw = PILImageBW.create(fn)
    assert bw.mode == "L" and (np.asarray(bw) == grey).all()
    # RGB -> L uses the usual luminance weights
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    assert np.asarray(PILImageBW.create(rgb))[0, 0] == 76  # 0.299 * 255
    # a 1-channel CHW tensor
    assert PILImageBW.create(torch.from_numpy(grey)[None]).size == (8, 6)


def test_create_converts_rgba_palette_and_16_bit(tmp_path):
    rgba = np.dstack([_rgb(), np.full((6, 8), 128, np.uint8)])
    assert np.asarray(PILImage.create(rgba)).shape == (6, 8, 3)
    pal = Image.fromarray(_rgb()).convert("P")
    assert PILImage.create(pal).mode == "RGB"
    deep = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    fn = tmp_path / "deep.png"
    deep.save(fn)
    assert np.asarray(PILImage.create(fn)).max() == 255  # 16-bit white stays white, not clipped garbage


def test_create_rejects_out_of_range_floats_and_odd_shapes():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PILImage.create(np.full((4, 4, 3), 200.0))
    with pytest.raises(ValueError, match="shape"):
        PILImage.create(np.zeros((5, 5, 7), np.uint8))
    with pytest.raises(TypeError, match="PILImage.create"):
        PILImage.create(42)


def test_lazy_jpeg_is_decoded_on_first_use_and_eager_by_default(tmp_path):
    fn = _save(_rgb(64, 48), tmp_path / "a.jpg", quality=95)
    eager = PILImage.create(fn)
    lazy = PILImage.create_lazy(fn)
    assert not getattr(eager, "tile", None)
    assert lazy.tile and lazy.size == (64, 48) and lazy.filename == str(fn)
    np.testing.assert_array_equal(np.asarray(load_pixels(lazy)), np.asarray(eager))
    # PNGs and images that need a mode change are decoded at once even when lazy
    png = _save(_rgb(), tmp_path / "a.png")
    assert not getattr(PILImage.create_lazy(png), "tile", None)
    assert PILImageBW.create_lazy(fn).mode == "L"


def test_unreadable_file_error_names_the_file_and_verify_images(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"<html>not an image</html>")
    for create in (PILImage.create, PILImage.create_lazy, PILImageBW.create):
        with pytest.raises(ImageLoadError) as e:
            create(bad)
        assert str(bad) in str(e.value) and "verify_images(get_image_files(path))" in str(e.value)
    with pytest.raises(ImageLoadError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageLoadError, match="in-memory"):
        PILImage.create(b"garbage")


def test_truncated_lazy_jpeg_fails_on_decode_naming_the_file(tmp_path):
    good = _save((np.random.default_rng(0).random((256, 256, 3)) * 255).astype(np.uint8), tmp_path / "t.jpg")
    data = good.read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    lazy = PILImage.create_lazy(tmp_path / "t.jpg")  # the header is fine
    with pytest.raises(ImageLoadError, match="t.jpg"):
        load_pixels(lazy)


def test_verify_images_finds_the_bad_files_among_good_ones(tmp_path):
    fns = [_save(_rgb(), tmp_path / f"ok{i}.png") for i in range(5)]
    fns.append(_save((np.random.default_rng(1).random((128, 128, 3)) * 255).astype(np.uint8), tmp_path / "ok.jpg"))
    trunc = tmp_path / "trunc.jpg"
    trunc.write_bytes(fns[-1].read_bytes()[:300])
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG nonsense")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    all_fns = fns[:3] + [trunc] + fns[3:] + [junk, empty]
    assert verify_images(all_fns) == [trunc, junk, empty]
    assert verify_image(fns[0]) and not verify_image(junk)
    assert verify_images([]) == []


def test_pilmask_keeps_class_ids():
    ids = np.array([[0, 1, 2], [3, 4, 250]], dtype=np.uint8)
    pal = Image.fromarray(ids)
    pal.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    assert pal.mode == "P"
    for src in (ids, torch.from_numpy(ids), Image.fromarray(ids), pal, ids.astype(np.int64)):
        m = PILMask.create(src)
        assert m.mode in ("L", "P")
        np.testing.assert_array_equal(np.asarray(m), ids)
    big = np.array([[0, 300]], dtype=np.int64)
    np.testing.assert_array_equal(np.asarray(PILMask.create(big)), big)
    with pytest.raises(ValueError, match="mode RGB"):
        PILMask.create(Image.fromarray(_rgb()))
    with pytest.raises(ValueError, match="negative"):
        PILMask.create(np.array([[-1, 0]]))


def test_pilmask_from_file_keeps_palette_ids(tmp_path):
    ids = (np.arange(20).reshape(4, 5) % 7).astype(np.uint8)
    img = Image.fromarray(ids)
    img.putpalette([v for i in range(256) for v in (i * 30 % 256, i, 255 - i)])
    img.save(tmp_path / "m.png")
    m = PILMask.create(tmp_path / "m.png")
    assert m.mode == "P"
    np.testing.assert_array_equal(np.asarray(m), ids)
    np.testing.assert_array_equal(ToTensor().encode_mask(m).numpy(), ids)


def test_image_and_mask_blocks():
    b = ImageBlock()
    assert b.kind == "image" and b.name == "ImageBlock" and b.get_config() == {"name": "ImageBlock", "kind": "image",
                                                                                 "cls": "PILImage"}
    assert [type(t) for t in b.item_tfms] == [ToTensor] and [type(t) for t in b.batch_tfms] == [IntToFloatTensor]
    img = b.type_tfms[0](_rgb())
    assert _is_plain_pil(img) and img.mode == "RGB"
    bw = ImageBlock(cls=PILImageBW)
    assert bw.config == {"cls": "PILImageBW"} and bw.type_tfms[0](_rgb()).mode == "L"
    with pytest.raises(TypeError, match="PILImage or PILImageBW"):
        ImageBlock(cls=int)
    m = MaskBlock(codes=np.array(["road", "sky"]))
    assert m.kind == "mask" and m.config == {"codes": ["road", "sky"]}
    assert m.type_tfms[0] == PILMask.create


def test_imagenet_stats():
    assert imagenet_stats == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
