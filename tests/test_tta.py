"""learn.tta: shapes, probabilities, the beta / use_max combinations, n augmented passes + one plain pass."""
import random

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.callback.core import Callback
from learnkit.data.block import DataBlock
from learnkit.data.blocks import CategoryBlock
from learnkit.data.core import DataLoaders
from learnkit.data.getters import get_image_files, parent_label
from learnkit.data.splitters import GrandparentSplitter
from learnkit.learner import Learner
from learnkit.samples import sample_path
from learnkit.vision.augment import Flip, RandomResizedCrop
from learnkit.vision.core import ImageBlock

pytestmark = pytest.mark.usefixtures("one_thread")


class CountPasses(Callback):
    def __init__(self) -> None:
        self.n = 0

    def before_validate(self) -> None:
        self.n += 1


def some_images(path):
    return get_image_files(path)[::6]  # about 5 per class and split: keeps the passes quick


@pytest.fixture(scope="module")
def learn():
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=some_images, get_y=parent_label,
                       splitter=GrandparentSplitter(valid_name="val"), item_tfms=RandomResizedCrop(24, min_scale=0.3),
                       batch_tfms=Flip())
    dls = dblock.dataloaders(sample_path("imagenette_tiny"), bs=16, num_workers=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                          nn.Linear(32, 10))
    return Learner(dls, model)


def seeded(f, seed=0):
    random.seed(seed)
    torch.manual_seed(seed)
    return f()


def test_shapes_probabilities_and_targets(learn):
    preds, targs = learn.tta()
    plain, plain_targs = learn.get_preds()
    n = len(learn.dls.valid.dataset)
    assert preds.shape == (n, 10) and torch.equal(targs, plain_targs)
    assert torch.allclose(preds.sum(1), torch.ones(n), atol=1e-5) and (preds >= 0).all()


def test_n_augmented_passes_plus_one_plain(learn):
    counter = CountPasses()
    with learn.added_cbs(counter):
        learn.tta(n=3)
    assert counter.n == 3 + 1


def test_beta_limits_are_the_aug_mean_and_the_plain_pass(learn):
    (aug, plain), targs = seeded(lambda: learn.tta(beta=None))
    assert torch.allclose(plain, learn.get_preds()[0])
    assert not torch.allclose(aug, plain, atol=1e-4)  # the augmented passes did augment
    assert torch.allclose(seeded(lambda: learn.tta(beta=0.0))[0], aug, atol=1e-6)
    assert torch.allclose(seeded(lambda: learn.tta(beta=1.0))[0], plain, atol=1e-6)
    mixed = seeded(lambda: learn.tta(beta=0.25))[0]
    assert torch.allclose(mixed, 0.75 * aug + 0.25 * plain, atol=1e-6)


def test_aug_mean_is_the_mean_of_n_training_transform_passes(learn):
    def by_hand():
        dl = learn.dls.valid.new(split_idx=0, shuffle=False, drop_last=False)
        return torch.stack([learn.get_preds(dl=dl)[0] for _ in range(2)]).mean(0)
    expected = seeded(by_hand)
    (aug, _), _ = seeded(lambda: learn.tta(n=2, beta=None))
    assert torch.allclose(aug, expected, atol=1e-6)


def test_use_max_is_the_elementwise_max(learn):
    (aug, plain), _ = seeded(lambda: learn.tta(beta=None))
    top = seeded(lambda: learn.tta(use_max=True))[0]
    # same draws (same seed): the max over the passes is at least their mean, and at least the plain pass
    assert (top >= plain - 1e-7).all() and (top >= aug - 1e-7).all() and (top > aug + 1e-4).any()


def test_bad_arguments_and_plain_torch_loaders_are_explained(learn):
    with pytest.raises(ValueError, match="n is the number"):
        learn.tta(n=0)
    x, y = torch.randn(8, 2), torch.randint(0, 2, (8,))
    plain = Learner(DataLoaders(TorchDataLoader(TensorDataset(x, y)), TorchDataLoader(TensorDataset(x, y)),
                                device="cpu"), nn.Linear(2, 2), loss_func=nn.CrossEntropyLoss())
    with pytest.raises(TypeError, match="DataBlock"):
        plain.tta()
