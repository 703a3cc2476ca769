"""The fastai book's chapter 7 (training a state-of-the-art model: normalization, progressive resizing, TTA, the Mixup
picture), import line changed.

``untar_data(URLs.IMAGENETTE)`` is 4 training and 2 validation images of each class of the shipped ``imagenette_tiny``
sample (its ``train``/``val`` folders; the book's ``DataBlock`` has no splitter, so the split is random as there);
``Resize(460)``/``size=224`` are 48/32, bs 16, and ``xresnet50`` is fitted one epoch at a time. The Mixup picture uses
the sample's church and gas-pump images, as the book does.
"""

import pytest
from book_helpers import imagenette_subset

from learnkit.vision.all import *  # noqa: F403  (the chapter's one changed line)


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    return imagenette_subset(tmp_path_factory.mktemp("imagenette"))


@pytest.mark.slow  # several real fits
def test_imagenette_normalization_progressive_resizing_and_tta(path, one_thread):
    torch.manual_seed(0)
    dblock = DataBlock(blocks=(ImageBlock(), CategoryBlock()),
                       get_items=get_image_files,
                       get_y=parent_label,
                       item_tfms=Resize(48),
                       batch_tfms=aug_transforms(size=32, min_scale=0.75))
    dls = dblock.dataloaders(path, bs=16)
    model = xresnet50(n_out=dls.c)
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy)
    learn.fit_one_cycle(1, 3e-3)
    x, y = dls.one_batch()
    m, s = x.mean(dim=[0, 2, 3]), x.std(dim=[0, 2, 3])
    assert ((m > 0) & (m < 1)).all()  # the book: not normalized, ~0.46 mean

    def get_dls(bs, size):
        dblock = DataBlock(blocks=(ImageBlock, CategoryBlock),
                           get_items=get_image_files,
                           get_y=parent_label,
                           item_tfms=Resize(48),
                           batch_tfms=[*aug_transforms(size=size, min_scale=0.75),
                                       Normalize.from_stats(*imagenet_stats)])
        return dblock.dataloaders(path, bs=bs)
    dls = get_dls(16, 32)
    x, y = dls.one_batch()
    assert x.shape == (16, 3, 32, 32) and (x.mean(dim=[0, 2, 3]).abs() < 0.6).all()  # the book: ~0 mean, ~1 std

    dls = get_dls(16, 24)
    learn = Learner(dls, xresnet50(n_out=dls.c), loss_func=CrossEntropyLossFlat(), metrics=accuracy)
    learn.fit_one_cycle(1, 3e-3)
    learn.dls = get_dls(16, 32)
    learn.fine_tune(1, 1e-3)
    assert learn.dls.one_batch()[0].shape[-1] == 32
    preds, targs = learn.tta()
    assert preds.shape == (len(learn.dls.valid_ds), dls.c) and torch.allclose(preds.sum(1), torch.ones(len(preds)), atol=1e-4)
    assert 0 <= accuracy(preds, targs).item() <= 1


def test_the_mixup_picture(path):
    church = PILImage.create(get_image_files_sorted(path/'train'/'n03028079')[0])
    gas = PILImage.create(get_image_files_sorted(path/'train'/'n03425413')[0])
    church = church.resize((256, 256))
    gas = gas.resize((256, 256))
    tchurch = tensor(church).float() / 255.
    tgas = tensor(gas).float() / 255.
    _, axs = plt.subplots(1, 3, figsize=(12, 4))
    show_image(tchurch, ax=axs[0])
    show_image(tgas, ax=axs[1])
    show_image((0.3*tchurch + 0.7*tgas), ax=axs[2])
    assert tchurch.shape == (256, 256, 3) and len(axs[2].images) == 1
    shown = axs[2].images[0].get_array()
    assert np.allclose(np.asarray(shown, dtype=np.float32), (0.3*tchurch + 0.7*tgas).numpy(), atol=1e-6)
    plt.close('all')

    learn = Learner(DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                              item_tfms=Resize(32)).dataloaders(path, bs=8),
                    xresnet18(n_out=10), loss_func=CrossEntropyLossFlat(), metrics=accuracy, cbs=MixUp())
    learn.fit_one_cycle(1, 3e-3)  # the book's text: cbs=MixUp() in the Learner
    assert len(learn.recorder.values) == 1
