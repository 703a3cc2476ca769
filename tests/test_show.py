"""Tests for learnkit.data.show: what gets drawn (axes, titles, pixels), on the Agg backend."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from learnkit.data.show import (MASK_CMAP, format_value, show_image, show_samples,  # noqa: E402
                                show_titled_grid)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _img(h=6, w=5, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (c, h, w), generator=g, dtype=torch.uint8)


def _visible(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def _pixels(ax, i=0):
    return np.asarray(ax.images[i].get_array())


# ---- show_image
def test_show_image_uint8_chw_tensor_pixels():
    t = _img()
    ax = show_image(t, title="cat")
    arr = _pixels(ax)
    assert arr.dtype == np.uint8 and arr.shape == (6, 5, 3)
    assert np.array_equal(arr, t.permute(1, 2, 0).numpy())
    assert ax.get_title() == "cat" and not ax.axison


def test_show_image_hwc_tensor_numpy_and_pil():
    t = _img().permute(1, 2, 0)  # HWC tensor
    assert np.array_equal(_pixels(show_image(t)), t.numpy())
    a = t.numpy()
    assert np.array_equal(_pixels(show_image(a)), a)
    assert np.array_equal(_pixels(show_image(Image.fromarray(a))), a)


def test_show_image_float_tensor_and_figsize():
    t = torch.rand(3, 4, 4)
    ax = show_image(t, figsize=(2, 3))
    assert np.allclose(_pixels(ax), t.permute(1, 2, 0).numpy())
    assert tuple(ax.figure.get_size_inches()) == (2, 3)
    over = show_image(torch.full((3, 2, 2), 1.5))  # out-of-range floats are clipped, not wrapped
    assert np.allclose(_pixels(over), 1.0)


def test_show_image_grey_uses_gray_cmap_absolute_levels():
    t = _img(c=1)
    ax = show_image(t)
    im = ax.images[0]
    assert np.array_equal(_pixels(ax), t[0].numpy())
    assert im.get_cmap().name == "gray" and im.get_clim() == (0, 255)
    assert show_image(Image.fromarray(t[0].numpy())).images[0].get_cmap().name == "gray"
    assert show_image(t, cmap="viridis").images[0].get_cmap().name == "viridis"


def test_show_image_on_given_axes_and_bad_shape():
    fig, ax = plt.subplots()
    assert show_image(_img(), ax=ax) is ax
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4, 5\)"):
        show_image(torch.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match="channel axis"):
        show_image(np.zeros((7, 8, 9)))


# ---- show_titled_grid
def test_titled_grid_square_ish_and_hides_unused():
    imgs = [_img(seed=i) for i in range(5)]
    fig = show_titled_grid(imgs, [f"t{i}" for i in range(5)])
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6  # 2 x 3
    vis = _visible(fig)
    assert [ax.get_title() for ax in vis] == ["t0", "t1", "t2", "t3", "t4"]
    for ax, t in zip(vis, imgs):
        assert np.array_equal(_pixels(ax), t.permute(1, 2, 0).numpy())


def test_titled_grid_max_n_and_rows_cols():
    imgs = [_img(seed=i) for i in range(12)]
    assert len(_visible(show_titled_grid(imgs, None))) == 9  # default max_n
    fig = show_titled_grid(imgs, None, nrows=1, max_n=4)
    assert len(fig.axes) == 4 and len(_visible(fig)) == 4
    fig = show_titled_grid(imgs, None, nrows=2, ncols=2, max_n=20)
    assert len(_visible(fig)) == 4
    fig = show_titled_grid(imgs, None, ncols=5, max_n=7)
    assert len(fig.axes) == 10 and len(_visible(fig)) == 7
    with pytest.raises(ValueError, match="2 titles for 3 images"):
        show_titled_grid(imgs[:3], ["a", "b"])


# ---- show_samples
def test_show_samples_image_category():
    samples = [(_img(seed=i), lab) for i, lab in enumerate(["cat", "dog", "cat", "bird"])]
    fig = show_samples(samples, ("image", "category"))
    vis = _visible(fig)
    assert len(fig.axes) == 4 and len(vis) == 4
    assert [ax.get_title() for ax in vis] == ["cat", "dog", "cat", "bird"]
    assert np.array_equal(_pixels(vis[1]), samples[1][0].permute(1, 2, 0).numpy())


def test_show_samples_multicategory_regression_generic():
    samples = [(_img(), ["a", "b"], torch.tensor(1.23456), "x")]
    fig = show_samples(samples, ("image", "multicategory", "regression", "generic"))
    assert _visible(fig)[0].get_title() == "a;b\n1.235\nx"
    samples = [(_img(), torch.tensor([0.5, 2.0]))]
    assert show_samples(samples, ("image", "regression")).axes[0].get_title() == "[0.5, 2]"


def test_show_samples_mask_overlay_stable_colours():
    img = _img(h=4, w=4)
    mask = torch.tensor([[0, 1, 2, 3]] * 4)
    fig = show_samples([(img, mask)], ("image", "mask"))
    ax = fig.axes[0]
    assert len(ax.images) == 2 and ax.get_title() == ""
    assert np.array_equal(_pixels(ax, 0), img.permute(1, 2, 0).numpy())
    over = ax.images[1]
    assert np.array_equal(_pixels(ax, 1), mask.numpy())
    assert over.get_alpha() == 0.5 and over.get_cmap().name == MASK_CMAP
    # colour of a class id doesn't depend on which ids the mask holds
    only_three = show_samples([(img, torch.full((4, 4), 3))], ("image", "mask")).axes[0].images[1]
    assert np.allclose(only_three.to_rgba(np.array([[3]]))[0, 0], over.to_rgba(np.array([[3]]))[0, 0])
    assert not np.allclose(over.to_rgba(np.array([[3]]))[0, 0], over.to_rgba(np.array([[2]]))[0, 0])


def test_show_samples_draws_first_image_only_and_respects_max_n():
    a, b = _img(seed=1), _img(seed=2)
    fig = show_samples([(a, b, 1)] * 12, ("image", "image", "category"), max_n=6)
    vis = _visible(fig)
    assert len(vis) == 6 and all(len(ax.images) == 1 for ax in vis)
    assert np.array_equal(_pixels(vis[0]), a.permute(1, 2, 0).numpy()) and vis[0].get_title() == "1"


def test_format_value():
    assert format_value("cat", "category") == "cat"
    assert format_value(torch.tensor(3), "category") == "3"
    assert format_value(["x", "y"], "multicategory") == "x;y"
    assert format_value(torch.tensor([0.0, 1.0, 1.0]), "multicategory") == "1;2"
    assert format_value(np.float32(2.5), "regression") == "2.5"
    assert format_value(torch.zeros(3, 10), "generic") == "tensor(3, 10)"
