"""A test split: from_folder(test=...), three-way splitters, dls.test, and validate(dl=dls.test) named as a test."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from learnkit.basics import DataBlock, GrandparentSplitter, Learner, TrainValidTestSplitter, accuracy
from learnkit.data.blocks import CategoryBlock
from learnkit.data.getters import ImageGetter, parent_label
from learnkit.vision.core import ImageBlock, PILImageBW
from learnkit.vision.data import ImageDataLoaders


def write_tree(root, counts: dict, labelled_test: bool = True) -> None:
    """root/<split>/<label>/<i>.png grey 8x8 images (bright left half: 'a', right half: 'b')."""
    rng = np.random.default_rng(0)
    for split, n in counts.items():
        for label in ("a", "b"):
            folder = root / split / label if (split != "test" or labelled_test) else root / split
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                x = rng.integers(0, 40, (8, 8)).astype(np.uint8)
                x[:, :4] += 200 if label == "a" else 0
                x[:, 4:] += 200 if label == "b" else 0
                Image.fromarray(x).save(folder / f"{label}{i}.png")


def tiny_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 2)), nn.Flatten(),
                         nn.Linear(8, 2))


@pytest.mark.slow
def test_from_folder_with_a_labelled_test_folder(tmp_path, one_thread):
    write_tree(tmp_path, {"train": 12, "valid": 4, "test": 5})
    dls = ImageDataLoaders.from_folder(tmp_path, test="test", bs=8, num_workers=0)
    assert [len(dl.dataset) for dl in dls.loaders] == [24, 8, 10] and dls.test is dls[2]
    assert all(p.parent.parent.name == "test" for p in dls.test.dataset.items)
    torch.manual_seed(0)
    learn = Learner(dls, tiny_model(), metrics=accuracy, lr=3e-2)
    with learn.no_bar(), learn.no_logging():
        learn.fit(3)
    res = learn.validate(dl=dls.test)
    assert res.names == ["test_loss", "accuracy"] and res.split == "test" and "test_loss=" in repr(res)
    preds, targs = learn.get_preds(dl=dls.test)
    assert res[1] == pytest.approx((preds.argmax(1) == targs).float().mean().item())
    assert learn.validate(ds_idx=2) == res and learn.validate().names[0] == "valid_loss"
    assert res.as_dict()["accuracy"] == res[1]


def test_from_folder_with_an_unlabelled_test_folder(tmp_path):
    write_tree(tmp_path, {"train": 6, "valid": 2, "test": 3}, labelled_test=False)
    dls = ImageDataLoaders.from_folder(tmp_path, test="test", bs=4, num_workers=0)
    assert len(dls.test.dataset) == 6 and dls.vocab == ["a", "b"]
    learn = Learner(dls, tiny_model())
    with learn.no_bar():
        preds, targs = learn.get_preds(dl=dls.test)
    assert preds.shape == (6, 2) and targs is None
    with pytest.raises(ValueError, match="test loader has no labels.*get_preds"):
        learn.validate(ds_idx=2)
    summary = dls.summary()
    assert list(summary.columns) == ["train", "valid"]  # the unlabelled test split has no counts (not zeros)
    assert learn.validate(dl=dls.train).names[0] == "train_loss"
    with pytest.raises(FileNotFoundError, match="no test folder"):
        ImageDataLoaders.from_folder(tmp_path, test="holdout", num_workers=0)


def test_no_test_split_is_a_clear_attribute_error(tmp_path):
    write_tree(tmp_path, {"train": 2, "valid": 2})
    dls = ImageDataLoaders.from_folder(tmp_path, bs=4, num_workers=0)
    assert not hasattr(dls, "test")
    with pytest.raises(AttributeError, match="no test set.*TrainValidTestSplitter"):
        dls.test


def test_train_valid_test_splitter_is_a_seeded_partition():
    items = list(range(100))
    tr, va, te = TrainValidTestSplitter(valid_pct=0.2, test_pct=0.1, seed=42)(items)
    assert (len(tr), len(va), len(te)) == (70, 20, 10) and sorted(tr + va + te) == items
    assert (tr, va, te) == TrainValidTestSplitter(0.2, 0.1, seed=42)(items)
    assert TrainValidTestSplitter(0.3, 0.1, seed=42)(items)[2] == te  # the test set doesn't move with valid_pct
    with pytest.raises(ValueError, match="leaves no training items"):
        TrainValidTestSplitter(0.6, 0.4)


def test_a_three_way_datablock_gives_three_loaders_and_checks_test_labels(tmp_path):
    write_tree(tmp_path, {"train": 4, "valid": 2, "test": 2})
    dblock = DataBlock(blocks=(ImageBlock(PILImageBW), CategoryBlock), get_items=ImageGetter(), get_y=parent_label,
                       splitter=TrainValidTestSplitter(0.25, 0.25, seed=0))
    dls = dblock.dataloaders(tmp_path, bs=4, num_workers=0)
    assert [len(dl.dataset) for dl in dls.loaders] == [8, 4, 4] and not dls.test.shuffle
    (tmp_path / "test" / "c").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "test" / "c" / "c0.png")
    gp = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=ImageGetter(), get_y=parent_label,
                   splitter=GrandparentSplitter(test_name="test"))
    with pytest.raises(ValueError, match="The test set has label.*'c'"):
        gp.dataloaders(tmp_path, num_workers=0)
    with pytest.raises(ValueError, match="test_name='holdout'"):
        GrandparentSplitter(test_name="holdout")([tmp_path / "train" / "a" / "a0.png",
                                                  tmp_path / "valid" / "a" / "a0.png"])
