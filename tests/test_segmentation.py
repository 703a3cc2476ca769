"""Segmentation data: SegmentationDataLoaders, masks moving with their images through every item/batch transform,
show_batch / show_results drawing masks, and segmentation metrics pooled over a whole validation set."""
from functools import partial
from operator import itemgetter

import albumentations as A
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from learnkit.data.block import DataBlock
from learnkit.data.getters import get_image_files
from learnkit.data.splitters import IndexSplitter
from learnkit.learner import Learner
from learnkit.losses import CrossEntropyLossFlat
from learnkit.metrics import Dice, JaccardCoeff, accuracy, foreground_acc
from learnkit.samples import sample_path
from learnkit.vision.augment import (
    Albumentations,
    CropPad,
    Flip,
    PadMode,
    RandomResizedCrop,
    Resize,
)
from learnkit.vision.core import ImageBlock, MaskBlock
from learnkit.vision.data import SegmentationDataLoaders

N_CLS = 6
# far-apart colours, class 0 black (so zero padding of image and mask agree)
PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]], dtype=np.uint8)
IDS = torch.tensor([0, 10, 20, 30, 40, 50])  # far-apart class ids: any interpolated id falls outside this set


def synthetic(h=48, w=64, seed=0):
    """A mask of big rectangular regions (ids 0, 10, .., 50) and the image painting each region in its palette colour."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), dtype=np.uint8)
    for k in range(1, N_CLS):
        y0, x0 = rng.integers(0, h - 12), rng.integers(0, w - 12)
        mask[y0:y0 + rng.integers(10, h // 2 + 10), x0:x0 + rng.integers(10, w // 2 + 10)] = k
    return PALETTE[mask], mask * 10


def nearest_class(img_chw):
    """Class id (0, 10, .., 50) whose palette colour is nearest to each pixel of a (3, H, W) uint8/float image."""
    img = img_chw.float()
    if img.max() <= 1.0:
        img = img * 255
    d = ((img.permute(1, 2, 0)[:, :, None, :] - torch.tensor(PALETTE, dtype=torch.float32)) ** 2).sum(-1)
    return IDS[d.argmin(-1)]


def seg_dls(item_tfms=None, batch_tfms=None, n=8, bs=4):
    items = [synthetic(seed=i) for i in range(n)]
    dblock = DataBlock(blocks=(ImageBlock, MaskBlock), get_x=itemgetter(0),
                       get_y=itemgetter(1), splitter=IndexSplitter(list(range(n // 2, n))), item_tfms=item_tfms,
                       batch_tfms=batch_tfms)
    return dblock.dataloaders(items, bs=bs, num_workers=0)


def check_batch(x, y, min_agree=0.97):
    """Masks keep only original class ids, are int64, and agree with their image's colours pixel for pixel."""
    assert y.dtype == torch.int64 and x.shape[-2:] == y.shape[-2:]
    assert set(y.unique().tolist()) <= set(IDS.tolist())
    agree = (nearest_class_batch(x) == y).float().mean().item()
    assert agree >= min_agree, agree
    return agree


def nearest_class_batch(x):
    return torch.stack([nearest_class(i) for i in x])


TFMS = {
    "resize_crop": [Resize((32, 40))],
    "resize_squish": [Resize((30, 50), method="squish")],
    "resize_pad_reflect": [Resize((40, 40), method="pad")],
    "resize_pad_zeros": [Resize((40, 40), method="pad", pad_mode=PadMode.Zeros)],
    "random_resized_crop": [RandomResizedCrop((36, 36), min_scale=0.3)],
    "croppad": [CropPad((56, 72))],  # pads (larger than the image): zeros in both
    "crop_small": [CropPad((20, 30))],
    "albumentations": [Albumentations(A.Compose([A.HorizontalFlip(p=1.0), A.Affine(rotate=(20, 30), p=1.0)]))],
}


@pytest.mark.parametrize("name", list(TFMS))
def test_item_transforms_move_masks_with_images(name):
    torch.manual_seed(0)
    dls = seg_dls(item_tfms=TFMS[name], batch_tfms=[Flip(p=0.5)])
    for dl in (dls.train, dls.valid):
        x, y = dl.one_batch()
        check_batch(x, y)


def test_resize_mask_is_nearest_exact():
    # Resize by an exact factor of 2: nearest sampling of the mask picks the source ids; the image (bilinear) agrees inside regions
    dls = seg_dls(item_tfms=[Resize((24, 32), method="squish")])
    x, y = dls.valid.one_batch()
    _, m4 = synthetic(48, 64, seed=4)  # first validation item
    assert torch.equal(y[0], torch.from_numpy(m4[1::2, 1::2].astype(np.int64)))
    check_batch(x, y, min_agree=0.9)  # a 2x downscale blends the image over more of its (fewer) pixels


def test_flip_moves_masks_and_hits_both_outcomes():
    torch.manual_seed(1)
    dls = seg_dls(batch_tfms=[Flip(p=0.5)], n=16, bs=8)
    x, y = dls.train.new(shuffle=False).one_batch()
    raw = [synthetic(seed=i) for i in range(8)]
    flipped = [bool(torch.equal(y[i], torch.from_numpy(m[:, ::-1].astype(np.int64)))) for i, (_, m) in enumerate(raw)]
    same = [bool(torch.equal(y[i], torch.from_numpy(m.astype(np.int64)))) for i, (_, m) in enumerate(raw)]
    assert all(f or s for f, s in zip(flipped, same)) and any(flipped) and any(same)
    check_batch(x, y, min_agree=1.0)


def test_segmentation_dataloaders_from_label_func_on_camvid_sample():
    path = sample_path("camvid_tiny")
    codes = np.loadtxt(path / "codes.txt", dtype=str)
    fnames = get_image_files(path / "images")
    dls = SegmentationDataLoaders.from_label_func(path, fnames, lambda o: path / "labels" / f"{o.stem}_P{o.suffix}",
                                                  codes=codes, valid_pct=0.25, seed=42, bs=4, num_workers=0,
                                                  item_tfms=Resize((48, 64)))
    assert dls.vocab == list(codes) and dls.c == 32
    assert len(dls.valid.dataset) == 10 and len(dls.train.dataset) == 30
    x, y = dls.one_batch()
    assert x.shape == (4, 3, 48, 64) and x.dtype == torch.float32 and y.shape == (4, 48, 64)
    assert y.dtype == torch.int64 and 0 <= int(y.min()) and int(y.max()) < 32
    with pytest.raises(TypeError, match="list of image files"):
        SegmentationDataLoaders.from_label_func(path, path / "images", str)


def test_show_batch_overlays_masks_with_fixed_colours():
    dls = seg_dls()
    fig = dls.show_batch(max_n=2)
    ax = fig.axes[0]
    ims = ax.get_images()
    assert len(ims) == 2  # the image, then the mask over it
    assert ims[1].get_clim() == (-0.5, 19.5)  # fixed colour scale: id k is always colour k
    plt.close("all")


class _PaletteModel(nn.Module):
    """A 'model' that classifies each pixel by its nearest palette colour (perfect on the synthetic data)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return F.one_hot(nearest_class_batch(x), 51).permute(0, 3, 1, 2).float() * 10 + self.w


def test_show_results_draws_target_and_prediction_masks():
    dls = seg_dls()
    learn = Learner(dls, _PaletteModel())
    assert isinstance(learn.loss_func, CrossEntropyLossFlat) and learn.loss_func.axis == 1
    fig = learn.show_results(max_n=2)
    masks = [ax.get_images()[1].get_array() for ax in fig.axes if len(ax.get_images()) == 2]
    assert len(masks) >= 2
    assert np.array_equal(np.asarray(masks[0]), np.asarray(masks[1]))  # a perfect model: prediction == target
    plt.close("all")


def test_segmentation_metrics_pooled_over_the_validation_set():
    # 5 validation items with bs=2: batches of 2, 2, 1; metrics must equal the pooled computation
    torch.manual_seed(0)
    n = 10
    items = [synthetic(seed=i) for i in range(n)]
    dblock = DataBlock(blocks=(ImageBlock, MaskBlock), get_x=itemgetter(0), get_y=itemgetter(1),
                       splitter=IndexSplitter(list(range(5, n))))
    dls = dblock.dataloaders(items, bs=2, num_workers=0)

    class Noisy(nn.Module):
        def forward(self, x):
            g = torch.Generator().manual_seed(int(x.sum().item() * 1000) % 10_000)
            return torch.randn(x.shape[0], 51, *x.shape[-2:], generator=g) + F.one_hot(
                nearest_class_batch(x), 51).permute(0, 3, 1, 2).float() * 4

    learn = Learner(dls, Noisy(), metrics=[foreground_acc, partial(accuracy, axis=1), Dice(), JaccardCoeff()])
    loss, fg, acc, dice, jac = learn.validate()
    preds, targs = learn.get_preds()
    pred = preds.argmax(1)
    fgm = targs != 0
    assert fg == pytest.approx(((pred == targs) & fgm).sum().item() / fgm.sum().item())
    assert acc == pytest.approx((pred == targs).float().mean().item())
    # Dice/Jaccard are binary scores over the decoded class ids, as fastai: sum(p*t), sum(p+t)
    inter, union = (pred * targs).sum().item(), (pred + targs).sum().item()
    assert dice == pytest.approx(2 * inter / union) and jac == pytest.approx(inter / (union - inter))
    logits = torch.log(preds)
    assert loss == pytest.approx(F.cross_entropy(logits, targs).item(), rel=1e-4)
    assert 0.3 < acc < 0.99
