"""Progressive resizing: swapping learn.dls between and during fits, dls.new sizes, ProgressiveResize's schedule."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.callback.core import Callback
from learnkit.callback.progress import ProgressCallback
from learnkit.callback.progressive import ProgressiveResize
from learnkit.data.block import DataBlock
from learnkit.data.blocks import CategoryBlock
from learnkit.data.core import DataLoaders
from learnkit.data.getters import get_image_files, parent_label
from learnkit.data.splitters import GrandparentSplitter
from learnkit.learner import Learner
from learnkit.samples import sample_path
from learnkit.vision.augment import Normalize, Resize
from learnkit.vision.core import ImageBlock

pytestmark = pytest.mark.usefixtures("one_thread")


class Shapes(Callback):
    """Records (epoch, training, input shape) of every batch as the model saw it."""

    order = 50

    def __init__(self) -> None:
        self.seen = []

    def after_pred(self) -> None:
        self.seen.append((self.learn.epoch, self.learn.training, tuple(self.learn.xb[0].shape)))

    def train_sizes(self):
        return sorted({(e, s[-1]) for e, t, s in self.seen if t})


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def some_images(path):
    return get_image_files(path)[::10]


@pytest.fixture(scope="module")
def dls():
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=some_images, get_y=parent_label,
                       splitter=GrandparentSplitter(valid_name="val"), item_tfms=Resize(16))
    dls = dblock.dataloaders(sample_path("imagenette_tiny"), bs=8, num_workers=0)
    dls.add_batch_tfms([Normalize.from_stats([0.5] * 3, [0.25] * 3)])  # as vision_learner adds it
    return dls


def quiet(learn: Learner) -> Learner:
    learn.remove_cb(ProgressCallback)
    return learn


def test_dls_new_changes_size_and_batch_size_and_keeps_added_transforms(dls):
    big = dls.new(item_tfms=Resize(24), bs=4)
    x, y = big.one_batch()
    assert x.shape == (4, 3, 24, 24) and x.dtype == torch.float32 and y.shape == (4,)
    assert any(isinstance(t, Normalize) for t in big.train.batch_tfms)  # the added normalisation stays
    assert big.vocab == dls.vocab and dls.one_batch()[0].shape == (8, 3, 16, 16)  # the original is unchanged


def test_assigning_new_dls_between_fits_trains_at_the_new_size(dls):
    shapes = Shapes()
    learn = quiet(Learner(dls, small_cnn(), cbs=shapes))
    with learn.no_logging():
        learn.fit(1, 1e-3)
        learn.dls = dls.new(item_tfms=Resize(24))
        learn.fit(1, 1e-3)
    sizes = {s[-1] for _, _, s in shapes.seen}
    assert sizes == {16, 24}
    assert all(s[-1] == 24 for _, _, s in shapes.seen[-len(learn.dls.train) - len(learn.dls.valid):])


def test_a_callback_can_swap_the_loaders_at_an_epoch_boundary(dls):
    class Grow(Callback):
        def before_epoch(self) -> None:
            if self.learn.epoch == 1:
                self.learn.dls = dls.new(item_tfms=Resize(20))
    shapes = Shapes()
    learn = quiet(Learner(dls, small_cnn(), cbs=[shapes, Grow()]))
    with learn.no_logging():
        learn.fit(2, 1e-3)
    assert shapes.train_sizes() == [(0, 16), (1, 20)]
    assert {s[-1] for e, t, s in shapes.seen if not t} == {16, 20}  # validation follows the new loaders


def tensor_learner(cbs, n=32, size=32):
    x, y = torch.randn(n, 3, size, size), torch.randint(0, 10, (n,))
    dls = DataLoaders(TorchDataLoader(TensorDataset(x, y), batch_size=8, shuffle=True),
                      TorchDataLoader(TensorDataset(x, y), batch_size=8), device="cpu")
    return quiet(Learner(dls, small_cnn(), loss_func=nn.CrossEntropyLoss(), cbs=cbs))


def test_progressive_resize_grows_the_training_size_per_epoch():
    shapes, prog = Shapes(), ProgressiveResize(start_size=16, finish=0.75, increase_by=4)
    learn = tensor_learner([shapes, prog])
    with learn.no_logging():
        learn.fit(4, 1e-3)
    # epochs at 0, 1/4, 2/4, 3/4 of training: 16, 16 + 16/3 -> 20, 16 + 32/3 -> 24, then full size 32
    assert shapes.train_sizes() == [(0, 16), (1, 20), (2, 24), (3, 32)]
    assert prog.sizes == [(16, 16), (20, 20), (24, 24), (32, 32)]
    assert {s[-1] for _, t, s in shapes.seen if not t} == {32}  # validation at full size
    assert learn.get_preds()[0].shape == (32, 10)


def test_progressive_resize_fraction_start_and_explicit_end():
    shapes = Shapes()
    learn = tensor_learner([shapes, ProgressiveResize(start_size=0.5, end_size=24, start=0.5, finish=1.0)])
    with learn.no_logging():
        learn.fit(4, 1e-3)
    # half of 24 until half-way, then linear towards 24 (not reached: finish=1.0), multiples of 8
    assert shapes.train_sizes() == [(0, 8), (1, 8), (2, 8), (3, 16)]


def test_progressive_resize_resizes_masks_with_the_images():
    prog = ProgressiveResize(start_size=4, increase_by=4)
    learn = tensor_learner([prog])
    x, m = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    learn.xb, learn.yb, learn.epoch, learn.n_epoch = (x,), (m,), 0, 2
    prog.before_epoch()
    prog.before_batch()
    assert learn.xb[0].shape == (2, 3, 4, 4) and learn.yb[0].shape == (2, 4, 4) and learn.yb[0].dtype == m.dtype
    assert set(learn.yb[0].unique().tolist()) <= set(m.unique().tolist())
    with pytest.raises(ValueError, match="start <= finish"):
        ProgressiveResize(start=0.8, finish=0.5)
