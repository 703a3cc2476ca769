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


# ---- show_batch / show_results on real loaders (mnist_tiny: 28x28 digits), and masks side by side
from torch import nn  # noqa: E402

from learnkit.basics import (CategoryBlock, DataBlock, Learner, MultiCategoryBlock, RegressionBlock,  # noqa: E402
                             get_image_files, parent_label, sample_path, GrandparentSplitter)
from learnkit.data.show import show_sample_pairs  # noqa: E402
from learnkit.vision.all import ImageBlock, MaskBlock, Normalize, Resize, RandomSplitter  # noqa: E402

MNIST = sample_path("mnist_tiny")


def _dls(y_block, get_y, **kw):
    db = DataBlock(blocks=(ImageBlock, y_block), get_items=get_image_files, get_y=get_y,
                   splitter=GrandparentSplitter(), batch_tfms=[Normalize.from_stats([0.5] * 3, [0.25] * 3)], **kw)
    return db.dataloaders(MNIST, bs=8, num_workers=0, shuffle=False)


def _learner(dls, n_out):
    torch.manual_seed(0)
    return Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, n_out)))


def test_show_batch_titles_and_denormalised_pixels_per_block():
    dls = _dls(CategoryBlock, parent_label)
    fig = dls.valid.show_batch(max_n=4)
    vis = _visible(fig)
    items = dls.valid.dataset.items[:4]
    assert len(vis) == 4 and [ax.get_title() for ax in vis] == [parent_label(f) for f in items]
    for ax, f in zip(vis, items):
        orig = np.asarray(Image.open(f).convert("RGB")).astype(int)
        assert np.abs(_pixels(ax).astype(int) - orig).max() <= 1  # Normalize undone: pixels as loaded
    dls = _dls(MultiCategoryBlock, lambda f: ["digit", parent_label(f)])
    assert [ax.get_title() for ax in _visible(dls.valid.show_batch(max_n=2))] == ["3;digit", "3;digit"]
    dls = _dls(RegressionBlock, lambda f: float(parent_label(f)) / 2)
    assert [ax.get_title() for ax in _visible(dls.valid.show_batch(max_n=2))] == ["1.5", "1.5"]


def test_show_results_titles_are_target_slash_prediction_by_hand():
    dls = _dls(CategoryBlock, parent_label)
    learn = _learner(dls, 2)
    fig = learn.show_results(max_n=6, shuffle=False)
    b = dls.valid.one_batch()
    with learn.no_bar():
        _, targs, dec = learn.get_preds(dl=[b], with_decoded=True)
    expected = [f"{dls.vocab[t]}/{dls.vocab[d]}" for t, d in zip(targs.tolist(), dec.tolist())][:6]
    vis = _visible(fig)
    assert [ax.get_title() for ax in vis] == expected and len(vis) == 6
    assert len(vis[0].images) == 1 and _pixels(vis[0]).dtype == np.uint8

    dls = _dls(MultiCategoryBlock, lambda f: ["digit", parent_label(f)])
    learn = _learner(dls, 3)
    with torch.no_grad():
        learn.model[1].weight.zero_()
        learn.model[1].bias.copy_(torch.tensor([-1.0, 1.0, 1.0]))  # always predicts vocab[1:] = 7;digit
    assert dls.vocab == ["3", "7", "digit"]
    assert [ax.get_title() for ax in _visible(learn.show_results(max_n=2, shuffle=False))] == ["3;digit/7;digit"] * 2

    dls = _dls(RegressionBlock, lambda f: float(parent_label(f)))
    learn = _learner(dls, 1)
    with torch.no_grad():
        learn.model[1].weight.zero_()
        learn.model[1].bias.fill_(0.25)
    assert [ax.get_title() for ax in _visible(learn.show_results(max_n=3, shuffle=False))] == ["3/0.25"] * 3


def test_show_results_draws_masks_target_beside_prediction():
    path = sample_path("camvid_tiny")
    codes = (path / "codes.txt").read_text().split()
    db = DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_items=get_image_files,
                   get_y=lambda o: path / "labels" / f"{o.stem}_P{o.suffix}", splitter=RandomSplitter(seed=0),
                   item_tfms=Resize(16))
    dls = db.dataloaders(path / "images", bs=4, num_workers=0)
    torch.manual_seed(0)
    learn = Learner(dls, nn.Conv2d(3, len(codes), 3, padding=1))
    fig = learn.show_results(max_n=3, shuffle=False)
    assert len(fig.axes) == 6 and [ax.get_title() for ax in fig.axes] == ["target", "prediction"] * 3
    assert [len(ax.images) for ax in fig.axes] == [2] * 6  # image + overlaid mask in each panel
    x, y = dls.valid.one_batch()
    with torch.no_grad():
        pred = learn.model(x).argmax(1)
    for r in range(3):
        assert np.array_equal(_pixels(fig.axes[2 * r], 1), y[r].cpu().numpy() % 20)
        assert np.array_equal(_pixels(fig.axes[2 * r + 1], 1), pred[r].numpy() % 20)
        assert np.array_equal(_pixels(fig.axes[2 * r], 0), _pixels(fig.axes[2 * r + 1], 0))  # same image


def test_show_sample_pairs_rows_and_errors():
    img = _img(4, 4)
    t = [(img, torch.zeros(4, 4, dtype=torch.long))] * 2
    p = [(img, torch.ones(4, 4, dtype=torch.long))] * 2
    fig = show_sample_pairs(t, p, ("image", "mask"), titles=("truth", "guess"))
    assert [ax.get_title() for ax in fig.axes] == ["truth", "guess"] * 2
    assert _pixels(fig.axes[1], 1).tolist() == [[1] * 4] * 4
    with pytest.raises(ValueError, match="1 predictions for 2 targets"):
        show_sample_pairs(t, p[:1], ("image", "mask"))
