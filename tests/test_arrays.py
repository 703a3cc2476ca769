"""In-memory data: ImageDataLoaders.from_arrays (layouts, scaling, splits, predict/test_dl/export), the pixel-CSV
recipe, TabularDataLoaders.from_arrays, predict on plain torch loaders, and IterableDataset sources."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDL
from torch.utils.data import IterableDataset, TensorDataset

from learnkit.basics import Callback, CrossEntropyLossFlat, DataLoaders, Learner, accuracy
from learnkit.export import load_learner
from learnkit.tabular.data import TabularDataLoaders
from learnkit.tabular.learner import tabular_learner
from learnkit.vision.data import ImageDataLoaders


def halves(n: int, size: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Grey uint8 images whose bright half (left: class 0, right: class 1) is the label, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, :, (size // 2) * c:(size // 2) * (c + 1)] += 180
    return x, y


def valid_batch(dls):
    return torch.cat([b[0] for b in dls.valid]).cpu()


@pytest.mark.parametrize("layout", ["NHW", "NHWC", "NCHW", "NCHW_tensor_float"])
def test_from_arrays_layouts_give_the_pixels_over_255(layout):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (20, 8, 10, 3), dtype=np.uint8)
    x = {"NHW": rgb[..., 0], "NHWC": rgb, "NCHW": rgb.transpose(0, 3, 1, 2),
         "NCHW_tensor_float": torch.tensor(rgb.transpose(0, 3, 1, 2)).float() / 255}[layout]
    y = np.arange(20) % 2
    dls = ImageDataLoaders.from_arrays(x, y, valid_pct=0.25, seed=3, bs=8, num_workers=0)
    grey = layout == "NHW"
    expected = torch.tensor(rgb[dls.valid.dataset.idxs]).permute(0, 3, 1, 2).float() / 255
    got = valid_batch(dls)
    assert got.shape == (5, 1 if grey else 3, 8, 10)
    assert torch.allclose(got, expected[:, :1] if grey else expected, atol=1e-6)
    assert dls.vocab == [0, 1] and len(dls.train.dataset) == 15


def test_ambiguous_layouts_follow_the_container_and_bfloat16_tensors_convert():
    from learnkit.vision.arrays import images_to_nhwc
    rgb = np.random.default_rng(2).integers(0, 256, (2, 3, 5, 3), dtype=np.uint8)  # N,H,W,C and N,C,H,W both fit
    assert images_to_nhwc(rgb).shape == (2, 3, 5, 3)  # numpy: N,H,W,C (an image file's layout)
    as_tensor = images_to_nhwc(torch.tensor(rgb))  # torch: N,C,H,W
    assert as_tensor.shape == (2, 5, 3, 3) and (as_tensor == rgb.transpose(0, 2, 3, 1)).all()
    half = torch.tensor(rgb.transpose(0, 2, 3, 1)).to(torch.bfloat16) / 255
    assert np.abs(images_to_nhwc(half).astype(int) - rgb.transpose(0, 2, 3, 1)).max() <= 1  # bf16 rounding


def test_from_arrays_floats_outside_0_1_and_bad_shapes_are_clear_errors():
    x, y = halves(10)
    with pytest.raises(ValueError, match=r"float images must be in \[0, 1\].*Divide"):
        ImageDataLoaders.from_arrays(x.astype(np.float32), y, num_workers=0)
    with pytest.raises(ValueError, match=r"shape \(10, 144\).*reshape\(-1, 28, 28\)"):
        ImageDataLoaders.from_arrays(x.reshape(10, -1), y, num_workers=0)
    with pytest.raises(ValueError, match="9 images"):
        ImageDataLoaders.from_arrays(x[:9], y, num_workers=0)
    with pytest.raises(TypeError, match="pair"):
        ImageDataLoaders.from_arrays(x, y, valid=x, num_workers=0)


def test_from_arrays_valid_and_test_pairs_are_the_splits():
    x, y = halves(30)
    dls = ImageDataLoaders.from_arrays(x[:20], y[:20], valid=(x[20:26], y[20:26]), test=(x[26:], y[26:]), bs=4,
                                       num_workers=0)
    assert (len(dls.train.dataset), len(dls.valid.dataset), len(dls.test.dataset)) == (20, 6, 4)
    assert torch.cat([b[1] for b in dls.test]).tolist() == y[26:].tolist()
    assert torch.allclose(valid_batch(dls)[:, 0], torch.tensor(x[20:26]).float() / 255)


def test_a_column_of_labels_is_one_label_per_item():
    x, y = halves(20)
    dls = ImageDataLoaders.from_arrays(x, y[:, None], num_workers=0)  # Keras' (N, 1) labels
    assert dls.vocab == [0, 1] and dls.c == 2 and dls.train.kinds[-1] == "category"
    tab = TabularDataLoaders.from_arrays(x.reshape(20, -1)[:, :3].astype(np.float32), y[:, None])
    assert tab.vocab == [0, 1] and tab.y_names == ["y"]


def test_from_arrays_string_labels_and_the_pixel_csv_recipe():
    x, y = halves(40, size=28)
    names = np.array(["left", "right"])[y]
    df = pd.DataFrame(x.reshape(40, -1), columns=[f"pixel{i}" for i in range(784)])
    df.insert(0, "label", names)
    # the README's one-liner
    dls = ImageDataLoaders.from_arrays(df.iloc[:, 1:].values.reshape(-1, 28, 28), df.label.values, num_workers=0)
    xb, yb = dls.one_batch()
    assert xb.shape[1:] == (1, 28, 28) and dls.vocab == ["left", "right"]
    yv = torch.cat([b[1] for b in dls.valid]).cpu().numpy()
    assert np.array(dls.vocab)[yv].tolist() == names[dls.valid.dataset.idxs].tolist()


def small_cnn(n_in: int = 1) -> nn.Sequential:
    """A conv layer pooled to a left and a right half, then a linear layer: enough for ``halves``."""
    return nn.Sequential(nn.Conv2d(n_in, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 2)), nn.Flatten(),
                         nn.Linear(16, 2))


@pytest.mark.slow
def test_from_arrays_trains_predicts_and_exports(tmp_path, one_thread):
    torch.manual_seed(0)
    x, y = halves(160)
    dls = ImageDataLoaders.from_arrays(x, y, valid_pct=0.25, seed=0, bs=16, num_workers=0)
    learn = Learner(dls, small_cnn(), metrics=accuracy, path=tmp_path, lr=1e-2)
    with learn.no_bar(), learn.no_logging():
        learn.fit(4)
    assert learn.validate()[1] > 0.9
    xt, yt = halves(16, seed=5)
    label, idx, probs = learn.predict(xt[0])
    assert label == dls.vocab[int(idx)] and int(probs.argmax()) == int(idx)
    preds, targs = learn.get_preds(dl=dls.test_dl(xt))
    assert targs is None and (preds.argmax(1).numpy() == yt).mean() > 0.8
    assert torch.allclose(preds[0], probs, atol=1e-6)
    inf = load_learner(learn.export(pickle_model=True), pickle_model=True)
    assert torch.allclose(inf.predict(xt[0])[2], probs, atol=1e-5)
    assert inf.dls.vocab == [0, 1]


@pytest.mark.slow
def test_tabular_from_arrays_is_a_classifier_that_learns(one_thread):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = (x[:, 0] - x[:, 1] > 0).astype(int)
    dls = TabularDataLoaders.from_arrays(x[:300], y[:300], valid=(x[300:], y[300:]), names=["a", "b", "c"], bs=32)
    assert dls.cont_names == ["a", "b", "c"] and dls.vocab == [0, 1] and len(dls.valid.dataset) == 100
    assert torch.allclose(dls.valid.dataset.conts, torch.tensor(x[300:]))
    learn = tabular_learner(dls, metrics=accuracy)
    with learn.no_bar(), learn.no_logging():
        learn.fit(4, 1e-2)
    assert learn.validate()[1] > 0.9
    row, cls, probs = learn.predict(pd.DataFrame(x[300:301], columns=dls.cont_names).iloc[0])
    assert int(cls) == int(probs.argmax()) and row.y.iloc[0] in (0, 1)
    with pytest.raises(TypeError, match=r"valid= must be a pair \(x, y\) of arrays, not tuple of 1"):
        TabularDataLoaders.from_arrays(x, y, valid=(x,))
    with pytest.raises(ValueError, match="there are 5 rows; give one label .* per row"):
        TabularDataLoaders.from_arrays(x, y, valid=(x[:5], y[:4]))
    named = TabularDataLoaders.from_arrays(pd.DataFrame(x[:300], columns=["a", "b", "c"]), y[:300],
                                           valid=(x[300:], y[300:]))
    assert named.cont_names == ["a", "b", "c"] and torch.allclose(named.valid.dataset.conts, torch.tensor(x[300:]))
    reg = TabularDataLoaders.from_arrays(x, x[:, 0] * 2.0, seed=1)
    assert reg.train.kinds[-1] == "regression" and len(reg.valid.dataset) == 80


def test_predict_on_plain_torch_loaders():
    torch.manual_seed(0)
    X = torch.randn(32, 2)
    Y = (X.sum(1) > 0).long()
    dls = DataLoaders(TorchDL(TensorDataset(X, Y), batch_size=8), TorchDL(TensorDataset(X, Y), batch_size=8))
    model = nn.Linear(2, 2)
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat())
    dec, dec2, probs = learn.predict(np.array([0.5, -2.0]))  # float64 array: given to the model as float32
    expected = torch.softmax(model(torch.tensor([[0.5, -2.0]])), 1)[0]
    assert torch.allclose(probs, expected.detach(), atol=1e-6) and int(dec) == int(expected.argmax()) == int(dec2)


class Stream(IterableDataset):
    """A stream of (x, label) with no length."""

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        for _ in range(320):
            x = torch.randn(2, generator=g)
            yield x, (x[0] > x[1]).long()


class BarDesc(Callback):
    order = 70

    def __init__(self):
        self.descs = set()

    def after_batch(self):
        if self.learn.training:
            self.descs.add(self.learn.progress.pbar.desc)


@pytest.mark.slow
def test_iterable_dataset_trains_with_a_bar_of_unknown_length(one_thread):
    torch.manual_seed(0)
    X = torch.randn(200, 2)
    dls = DataLoaders(TorchDL(Stream(), batch_size=16), TorchDL(TensorDataset(X, (X[:, 0] > X[:, 1]).long()),
                                                                  batch_size=50))
    bar = BarDesc()
    learn = Learner(dls, nn.Linear(2, 2), loss_func=CrossEntropyLossFlat(), metrics=accuracy, lr=0.05, cbs=bar)
    learn.fit(2)
    assert learn.recorder.values[-1][2] > 0.9  # learned from the stream
    assert len(learn.recorder.losses) == 2 * 20  # every streamed batch trained
    assert bar.descs == {"epoch 1/2 train (length unknown)", "epoch 2/2 train (length unknown)"}
