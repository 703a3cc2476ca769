"""Interpretation, ClassificationInterpretation, SegmentationInterpretation: numbers by hand count, what is drawn."""
import re
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader as TorchDataLoader  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from learnkit.basics import (ClassificationInterpretation, DataBlock, DataLoaders, Interpretation, Learner,  # noqa: E402
                             MSELossFlat, RegressionBlock, SegmentationInterpretation, get_image_files,
                             parent_label, sample_path)
from learnkit.losses import CrossEntropyLossFlat  # noqa: E402
from learnkit.vision.all import (ImageBlock, ImageDataLoaders, MaskBlock, Normalize, RandomSplitter,  # noqa: E402
                                 Resize)

pytestmark = pytest.mark.usefixtures("one_thread")
MNIST = sample_path("mnist_tiny")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ---- hand-counted confusion matrix: actual a,a,a,b,b,c,c,c,c,a predicted a,b,b,b,c,c,c,a,c,a
TARGS = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 0])
DECODED = torch.tensor([0, 1, 1, 1, 2, 2, 2, 0, 2, 0])
CM = [[2, 2, 0], [0, 1, 1], [1, 0, 3]]


def crafted() -> ClassificationInterpretation:
    dl = SimpleNamespace(n_inp=1, kinds=("image", "category"), blocks=None,
                         dataset=SimpleNamespace(vocab=["a", "b", "c"]))
    preds = F.one_hot(DECODED, 3).float() * 0.6 + 0.4 / 3 - 0.0  # rows sum to 1, max 0.7333 at the decoded class
    losses = torch.tensor([0.1, 2.0, 1.5, 0.2, 3.0, 0.3, 0.4, 2.5, 0.5, 0.05])
    inputs = torch.zeros(10, 3, 4, 4)
    return ClassificationInterpretation(dl, inputs, preds, TARGS, DECODED, losses)


def test_confusion_matrix_most_confused_and_report_by_hand(capsys):
    interp = crafted()
    cm = interp.confusion_matrix()
    assert cm.dtype.kind == "i" and cm.tolist() == CM
    assert interp.most_confused() == [("a", "b", 2), ("b", "c", 1), ("c", "a", 1)]
    assert interp.most_confused(min_val=2) == [("a", "b", 2)]
    rep = interp.classification_report()
    assert rep["a"]["precision"] == pytest.approx(2 / 3) and rep["a"]["recall"] == pytest.approx(0.5)
    assert rep["b"]["f1-score"] == pytest.approx(0.4) and rep["c"]["support"] == 4
    assert rep["accuracy"] == pytest.approx(0.6)
    assert rep["macro avg"]["f1-score"] == pytest.approx((4 / 7 + 0.4 + 0.75) / 3)
    assert rep["weighted avg"]["precision"] == pytest.approx(0.4 * 2 / 3 + 0.2 / 3 + 0.4 * 0.75)
    text = interp.print_classification_report()
    expected = ("              precision    recall  f1-score   support\n\n"
                "           a       0.67      0.50      0.57         4\n"
                "           b       0.33      0.50      0.40         2\n"
                "           c       0.75      0.75      0.75         4\n\n"
                "    accuracy                           0.60        10\n"
                "   macro avg       0.58      0.58      0.57        10\n"
                "weighted avg       0.63      0.60      0.61        10\n")
    assert text == expected  # scikit-learn's layout, character for character
    assert capsys.readouterr().out.startswith(expected)


def test_plot_confusion_matrix_draws_each_cell():
    interp = crafted()
    fig = interp.plot_confusion_matrix()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == [str(v) for row in CM for v in row]
    assert [t.get_position() for t in ax.texts][:4] == [(0, 0), (1, 0), (2, 0), (0, 1)]  # (col=pred, row=actual)
    assert [t.get_color() for t in ax.texts if t.get_text() == "3"] == ["white"]
    assert ax.get_title() == "Confusion matrix" and ax.get_ylabel() == "Actual" and ax.get_xlabel() == "Predicted"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert np.asarray(ax.images[0].get_array()).tolist() == CM
    fig = interp.plot_confusion_matrix(normalize=True, norm_dec=3, title="norm", figsize=(3, 3), cmap="Reds")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts][:3] == ["0.500", "0.500", "0.000"]
    assert ax.get_title() == "norm" and tuple(fig.get_size_inches()) == (3, 3)
    assert len(interp.plot_confusion_matrix(plot_txt=False).axes[0].texts) == 0


def test_top_losses_order_k_and_smallest():
    interp = crafted()
    vals, idx = interp.top_losses(3)
    assert idx.tolist() == [4, 7, 1] and vals.tolist() == pytest.approx([3.0, 2.5, 2.0])
    vals, idx = interp.top_losses(2, largest=False)
    assert idx.tolist() == [9, 0]
    assert len(interp.top_losses()[0]) == 10
    inps, preds, targs, dec, losses = interp[[4, 7]]
    assert targs.tolist() == [1, 2] and dec.tolist() == [2, 0] and losses.tolist() == pytest.approx([3.0, 2.5])


def test_confusion_matrix_refuses_multi_label_targets():
    interp = Interpretation(SimpleNamespace(n_inp=1, kinds=None, blocks=None), None, torch.rand(4, 3),
                            torch.ones(4, 3), torch.ones(4, 3), torch.rand(4, 3))
    assert interp.losses.shape == (4,)  # per-item mean over labels
    with pytest.raises(ValueError, match="multi-label or regression"):
        ClassificationInterpretation(interp.dl, None, interp.preds, interp.targs, interp.decoded,
                                     interp.losses).confusion_matrix()


# ---- a real learner on mnist_tiny (28x28 images, normalised batches)
def mnist_learner():
    dls = ImageDataLoaders.from_folder(MNIST, bs=16, num_workers=0,
                                       batch_tfms=[Normalize.from_stats([0.5] * 3, [0.25] * 3)])
    torch.manual_seed(0)
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 2)))
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 3e-3)
    return learn


def test_from_learner_matches_get_preds_and_draws_top_losses():
    learn = mnist_learner()
    interp = ClassificationInterpretation.from_learner(learn)
    with learn.no_bar():
        preds, targs, losses = learn.get_preds(with_loss=True)
    assert interp.inputs is None  # items are rebuilt by index, not kept in memory
    cm = interp.confusion_matrix()
    hand = np.zeros((2, 2), int)
    for t, p in zip(targs.tolist(), preds.argmax(1).tolist()):
        hand[t, p] += 1
    assert cm.tolist() == hand.tolist() and cm.sum() == 80
    assert torch.allclose(interp.losses, losses)
    fig = interp.plot_top_losses(5)
    vis = [ax for ax in fig.axes if ax.get_visible()]
    assert len(vis) == 5 and fig._suptitle.get_text() == "Prediction/Actual/Loss/Probability"
    vals, idx = interp.top_losses(5)
    vocab = learn.dls.vocab
    for ax, i, l in zip(vis, idx.tolist(), vals.tolist()):
        p = preds[i]
        assert ax.get_title() == f"{vocab[p.argmax()]}/{vocab[targs[i]]} / {l:.2f} / {p.max():.2f}"
        drawn = np.asarray(ax.images[0].get_array()).astype(int)
        orig = np.asarray(Image.open(learn.dls.valid.dataset.items[i]).convert("RGB")).astype(int)
        assert drawn.shape == orig.shape and np.abs(drawn - orig).max() <= 1  # de-normalised as loaded
    fig = interp.plot_top_losses(range(2, 4), nrows=1)
    assert len(fig.axes) == 2 and fig.axes[0].get_title().endswith(f"/ {vals[2]:.2f} / "
                                                                   f"{preds[idx[2]].max():.2f}")
    assert interp.top_losses(2, items=True)[2] == [learn.dls.valid.dataset.items[i] for i in idx[:2].tolist()]


def test_interpretation_for_regression_images_and_tabular_style_inputs():
    db = DataBlock(blocks=(ImageBlock, RegressionBlock), get_items=get_image_files,
                   get_y=lambda f: float(parent_label(f)), splitter=RandomSplitter(seed=0), item_tfms=Resize(8))
    dls = db.dataloaders(MNIST, bs=32, num_workers=0)
    torch.manual_seed(0)
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 1)), loss_func=MSELossFlat())
    interp = Interpretation.from_learner(learn)
    hand = ((interp.preds.flatten() - interp.targs.flatten()) ** 2)
    assert torch.allclose(interp.losses, hand, atol=1e-5)
    fig = interp.plot_top_losses(3)
    vals, idx = interp.top_losses(3)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    for t, i, l in zip(titles, idx.tolist(), vals.tolist()):
        assert t == f"{interp.decoded.flatten()[i].item():.4g}/{interp.targs.flatten()[i].item():.4g} / {l:.2f}"
    # inputs that are not images (plain tensors): a table instead of pictures
    x = torch.arange(12.).reshape(6, 2)
    y = torch.tensor([0., 1., 2., 3., 4., 10.])
    dls = DataLoaders(TorchDataLoader(TensorDataset(x, y), batch_size=3), TorchDataLoader(TensorDataset(x, y),
                                                                                      batch_size=3), device="cpu")
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.fill_(1.0)
    interp = Interpretation.from_learner(Learner(dls, model, loss_func=MSELossFlat()))
    df = interp.plot_top_losses(2)
    assert isinstance(df, pd.DataFrame) and df.index.tolist() == [5, 4]
    assert df["loss"].tolist() == [81.0, 9.0] and df["target"].tolist() == ["10", "4"]
    assert df["prediction"].tolist() == ["1", "1"]


def test_segmentation_interpretation_per_image_loss_and_three_panels():
    path = sample_path("camvid_tiny")
    codes = (path / "codes.txt").read_text().split()
    db = DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_items=get_image_files,
                   get_y=lambda o: path / "labels" / f"{o.stem}_P{o.suffix}", splitter=RandomSplitter(seed=0),
                   item_tfms=Resize(16))
    dls = db.dataloaders(path / "images", bs=4, num_workers=0)
    torch.manual_seed(0)
    learn = Learner(dls, nn.Conv2d(3, len(codes), 3, padding=1), loss_func=CrossEntropyLossFlat(axis=1))
    interp = SegmentationInterpretation.from_learner(learn)
    assert interp.losses.shape == (8,) and interp.decoded.shape == (8, 16, 16)
    x, y = next(iter(dls.valid))
    with torch.no_grad():
        hand = F.cross_entropy(learn.model(x), y, reduction="none").mean((1, 2))
    assert torch.allclose(interp.losses[:4], hand, atol=1e-5)
    fig = interp.plot_top_losses(2)
    assert len(fig.axes) == 6
    vals, idx = interp.top_losses(2)
    assert [ax.get_title() for ax in fig.axes] == [f"input / loss {vals[0]:.2f}", "target", "prediction",
                                                   f"input / loss {vals[1]:.2f}", "target", "prediction"]
    assert [len(ax.images) for ax in fig.axes] == [1, 2, 2, 1, 2, 2]
    i = idx[0].item()
    target_drawn = np.asarray(fig.axes[1].images[1].get_array())
    pred_drawn = np.asarray(fig.axes[2].images[1].get_array())
    masks = torch.cat([yb for _, yb in dls.valid])
    assert np.array_equal(target_drawn, masks[i].numpy() % 20)
    assert np.array_equal(pred_drawn, interp.decoded[i].numpy() % 20)


def test_plot_top_losses_title_format_like_fastai():
    interp = crafted()
    assert interp._title(4) == f"c/b / 3.00 / {interp.preds[4].max():.2f}"
    assert re.fullmatch(r"[abc]/[abc] / \d+\.\d\d / \d\.\d\d", interp._title(0))


def test_from_learner_on_a_shuffled_training_loader_pairs_losses_with_what_was_scored():
    from learnkit.vision.all import Flip
    dls = ImageDataLoaders.from_folder(MNIST, bs=24, num_workers=0, item_tfms=Resize(12),
                                       batch_tfms=[Flip(p=0.5), Normalize.from_stats([0.5] * 3, [0.25] * 3)])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 12, 2))
    learn = Learner(dls, model)
    n = len(dls.train.dataset)
    assert dls.train.shuffle and dls.train.drop_last and n % 24 != 0  # shuffled, and a last batch to drop
    interp = ClassificationInterpretation.from_learner(learn, dl=learn.dls.train)
    assert len(interp) == n and interp.losses.shape == (n,)  # before: shuffled and minus the dropped last batch
    # the targets are in dataset order, and the kept inputs are the (randomly flipped) ones that were scored
    labels = [learn.dls.vocab.index(p.parent.name) for p in dls.train.dataset.items]
    assert interp.targs.tolist() == labels
    assert interp.inputs is not None and interp.inputs.shape == (n, 3, 12, 12)
    with torch.no_grad():
        hand = F.cross_entropy(model(interp.inputs), interp.targs, reduction="none")
    assert torch.allclose(interp.losses, hand, atol=1e-5)
    x_at = interp[[3, 7]][0][0]
    assert torch.equal(x_at, interp.inputs[[3, 7]])
    # validation: inputs rebuilt by index (no augmentation), same numbers as get_preds
    interp = ClassificationInterpretation.from_learner(learn, dl=learn.dls.valid)
    assert interp.inputs is None and len(interp) == len(dls.valid.dataset)


def test_segmentation_interpretation_keeps_no_probabilities_and_compact_masks():
    path = sample_path("camvid_tiny")
    codes = (path / "codes.txt").read_text().split()
    db = DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_items=get_image_files,
                   get_y=lambda o: path / "labels" / f"{o.stem}_P{o.suffix}", splitter=RandomSplitter(seed=0),
                   item_tfms=Resize(16))
    dls = db.dataloaders(path / "images", bs=3, num_workers=0)
    torch.manual_seed(0)
    learn = Learner(dls, nn.Conv2d(3, len(codes), 3, padding=1), loss_func=CrossEntropyLossFlat(axis=1))
    interp = SegmentationInterpretation.from_learner(learn)
    with learn.no_bar():
        preds, targs, decoded, losses = learn.get_preds(with_decoded=True, with_loss=True)
    assert interp.preds is None  # before: the full (N, C, H, W) probabilities
    assert interp.decoded.dtype == torch.uint8 and interp.targs.dtype == torch.uint8
    assert torch.equal(interp.decoded.long(), decoded) and torch.equal(interp.targs.long(), targs)
    assert torch.allclose(interp.losses, losses.view(8, -1).mean(1), atol=1e-6)
    assert len(interp) == 8 and len(interp.plot_top_losses(2).axes) == 6
