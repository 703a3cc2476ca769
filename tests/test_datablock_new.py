"""DataBlock.new: the same recipe with other transforms (fastai's lesson 2: ``bears = bears.new(item_tfms=...)``)."""
from learnkit.vision.all import (CategoryBlock, DataBlock, Flip, ImageBlock, RandomResizedCrop, RandomSplitter, Resize,
                                 get_image_files, parent_label, sample_path)


def test_new_replaces_the_transforms_and_keeps_the_rest():
    path = sample_path("mnist_tiny") / "train"
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=RandomSplitter(valid_pct=0.25, seed=1), item_tfms=Resize(32), batch_tfms=Flip())
    crop = RandomResizedCrop(24, min_scale=0.5)
    new = dblock.new(item_tfms=crop)
    assert new is not dblock and new.item_tfms == [crop] and new.batch_tfms == []  # fastai: both replaced
    assert dblock.item_tfms[0].size == (32, 32) and len(dblock.batch_tfms) == 1  # the original is unchanged
    dls, dls_new = dblock.dataloaders(path, bs=8, num_workers=0), new.dataloaders(path, bs=8, num_workers=0)
    assert dls_new.vocab == dls.vocab == ["3", "7"]
    assert [str(f) for f in dls_new.valid.dataset.items] == [str(f) for f in dls.valid.dataset.items]  # same split
    assert dls.one_batch()[0].shape == (8, 3, 32, 32) and dls_new.one_batch()[0].shape == (8, 3, 24, 24)
