"""ImageDataLoaders factories on small real image trees (shipped samples) and synthetic oxford-pets-like names."""
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from learnkit.data.getters import get_image_files
from learnkit.samples import sample_path
from learnkit.vision.augment import Flip, Normalize, RandomResizedCrop, Resize
from learnkit.vision.core import PILImageBW, imagenet_stats
from learnkit.vision.data import ImageDataLoaders

CPU = dict(num_workers=0, device="cpu")
MNIST = sample_path("mnist_tiny")  # train/{3,7} and valid/{3,7}: 40 each; labels.csv (name,label)


def _is_cat(name: str) -> bool:
    """Oxford pets convention: cat breeds start with a capital letter."""
    return name[0].isupper()


@pytest.fixture(scope="module")
def nette(tmp_path_factory):
    """A small copy of Imagenette (3 classes x (8 train, 4 val) real 128px JPEGs), train/ and val/."""
    root = tmp_path_factory.mktemp("nette")
    src = sample_path("imagenette_tiny")
    for split, n in (("train", 8), ("val", 4)):
        for cls in sorted(p.name for p in (src / split).iterdir())[:3]:
            (root / split / cls).mkdir(parents=True)
            for f in sorted((src / split / cls).iterdir())[:n]:
                shutil.copy(f, root / split / cls / f.name)
    return root


@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    """Oxford-pets-like flat folder: Breed_<n>.png, cat breeds capitalised; each breed a solid colour."""
    root = tmp_path_factory.mktemp("pets")
    breeds = {"Abyssinian": (200, 50, 50), "Bengal": (50, 200, 50), "great_pyrenees": (50, 50, 200),
              "shiba_inu": (200, 200, 50)}
    for breed, colour in breeds.items():
        for i in range(1, 11):
            Image.new("RGB", (40 + i, 30 + i), colour).save(root / f"{breed}_{i}.png")
    return root


def test_from_folder_mnist_vocab_splits_and_normalised_float_batches():
    dls = ImageDataLoaders.from_folder(MNIST, bs=16, batch_tfms=Normalize.from_stats(*imagenet_stats), **CPU)
    assert dls.vocab == ["3", "7"] and dls.c == 2
    assert len(dls.train.dataset) == 80 and len(dls.valid.dataset) == 80
    assert str(dls.path) == str(MNIST)
    x, y = dls.one_batch()
    assert x.shape == (16, 3, 28, 28) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert y.shape == (16,) and y.dtype == torch.int64 and set(y.tolist()) <= {0, 1}
    # MNIST is mostly black: normalised with ImageNet stats, black becomes -mean/std
    assert x.min() == pytest.approx(-0.485 / 0.229, abs=1e-4) and x.max() > 1.5
    xv, yv = dls.valid.one_batch()
    assert xv.shape == (16, 3, 28, 28)


def test_from_folder_labels_come_from_the_parent_folder():
    dls = ImageDataLoaders.from_folder(MNIST, bs=80, shuffle=False, **CPU)
    items = dls.valid.dataset.items
    _, y = dls.valid.one_batch()
    assert [dls.vocab[i] for i in y.tolist()] == [p.parent.name for p in items]
    assert all(p.parent.parent.name == "valid" for p in items)


def test_from_folder_grey_images_and_uint8_before_float():
    dls = ImageDataLoaders.from_folder(MNIST, bs=8, img_cls=PILImageBW, **CPU)
    x, _ = dls.one_batch()
    assert x.shape == (8, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    raw = next(iter(dls.train.torch_dl))[0]  # collated on the CPU: still uint8
    assert raw.dtype == torch.uint8


def test_from_folder_with_named_valid_folder_resize_and_flip(nette):
    dls = ImageDataLoaders.from_folder(nette, valid="val", item_tfms=RandomResizedCrop(48, min_scale=0.35),
                                       batch_tfms=[Flip(), Normalize.from_stats(*imagenet_stats)], bs=6, **CPU)
    assert len(dls.vocab) == 3 and dls.vocab == sorted(dls.vocab)
    assert len(dls.train.dataset) == 24 and len(dls.valid.dataset) == 12
    x, y = dls.one_batch()
    assert x.shape == (6, 3, 48, 48) and x.dtype == torch.float32
    assert abs(float(x.mean())) < 1.5
    xv, _ = dls.valid.one_batch()
    assert xv.shape == (6, 3, 48, 48)


def test_from_folder_valid_pct_random_split_is_seeded(nette):
    a = ImageDataLoaders.from_folder(nette / "train", valid_pct=0.25, seed=42, item_tfms=Resize(32), bs=4, **CPU)
    b = ImageDataLoaders.from_folder(nette / "train", valid_pct=0.25, seed=42, item_tfms=Resize(32), bs=4, **CPU)
    assert len(a.train.dataset) == 18 and len(a.valid.dataset) == 6
    assert a.valid.dataset.items == b.valid.dataset.items


def test_from_folder_with_workers_and_a_vocab(nette):
    vocab = sorted(p.name for p in (nette / "train").iterdir())[::-1]
    dls = ImageDataLoaders.from_folder(nette, valid="val", vocab=vocab, item_tfms=RandomResizedCrop(32), bs=8,
                                       num_workers=2, device="cpu")
    assert dls.vocab == sorted(vocab)  # fastai's CategoryBlock(vocab=...) sorts a given vocab (sort=True)
    batches = list(dls.train)
    assert len(batches) == 3 and all(b[0].shape == (8, 3, 32, 32) for b in batches)


def test_from_csv_and_from_df_mnist():
    dls = ImageDataLoaders.from_csv(MNIST, bs=16, seed=0, **CPU)
    assert dls.vocab == [3, 7]
    assert len(dls.train.dataset) == 128 and len(dls.valid.dataset) == 32
    x, y = dls.one_batch()
    assert x.shape == (16, 3, 28, 28)
    df = pd.read_csv(MNIST / "labels.csv")
    df["is_valid"] = df["name"].str.startswith("valid")
    dls = ImageDataLoaders.from_df(df, path=MNIST, valid_col="is_valid", bs=8, **CPU)
    assert len(dls.train.dataset) == 80 and len(dls.valid.dataset) == 80


def test_from_df_folder_suffix_and_multilabel():
    df = pd.read_csv(MNIST / "labels.csv")
    df = df[df["name"].str.startswith("train/3")].head(20).copy()
    df["stem"] = df["name"].str.slice(len("train/3/"), -len(".png"))
    df["tags"] = ["three odd" if i % 2 else "three" for i in range(len(df))]
    dls = ImageDataLoaders.from_df(df, path=MNIST, folder="train/3", fn_col="stem", suff=".png", label_col="tags",
                                   label_delim=" ", valid_pct=0.25, seed=1, bs=5, **CPU)
    assert dls.vocab == ["odd", "three"]
    x, y = dls.one_batch()
    assert x.shape == (5, 3, 28, 28) and y.shape == (5, 2) and y.dtype == torch.float32
    assert (y[:, 1] == 1).all()


def test_from_name_re_on_pet_names(pets):
    fnames = get_image_files(pets)
    dls = ImageDataLoaders.from_name_re(pets, fnames, pat=r"^(.+)_\d+\.png$", item_tfms=Resize(32), bs=8, seed=0, **CPU)
    assert dls.vocab == ["Abyssinian", "Bengal", "great_pyrenees", "shiba_inu"]
    assert len(dls.train.dataset) == 32 and len(dls.valid.dataset) == 8
    x, y = dls.valid.one_batch()
    assert x.shape == (8, 3, 32, 32)
    colours = {"Abyssinian": (200, 50, 50), "Bengal": (50, 200, 50), "great_pyrenees": (50, 50, 200),
               "shiba_inu": (200, 200, 50)}
    for xi, yi in zip(x, y):  # each image's pixels are its breed's colour: labels line up with images
        want = torch.tensor(colours[dls.vocab[yi]], dtype=torch.float32) / 255
        torch.testing.assert_close(xi[:, 16, 16], want, atol=1e-3, rtol=0)


def test_from_name_func_and_from_path_func_and_path_re(pets):
    fnames = get_image_files(pets)
    dls = ImageDataLoaders.from_name_func(pets, fnames, _is_cat, item_tfms=Resize(24), bs=4, seed=0, **CPU)
    assert dls.vocab == [False, True]
    dls = ImageDataLoaders.from_path_func(pets, fnames, lambda p: p.name[0].isupper(), item_tfms=Resize(24), bs=4,
                                          valid_pct=0.5, seed=0, **CPU)
    assert dls.vocab == [False, True] and len(dls.valid.dataset) == 20
    dls = ImageDataLoaders.from_path_re(pets, fnames, pat=r"/([^/]+)_\d+\.png$", item_tfms=Resize(24), bs=4, **CPU)
    assert len(dls.vocab) == 4


def test_from_lists(pets):
    fnames = get_image_files(pets)
    labels = [f.name.split("_")[0] for f in fnames]
    dls = ImageDataLoaders.from_lists(pets, fnames, labels, item_tfms=Resize(16), bs=4, seed=0, **CPU)
    assert dls.vocab == ["Abyssinian", "Bengal", "great", "shiba"]
    x, y = dls.one_batch()
    assert x.shape == (4, 3, 16, 16) and y.dtype == torch.int64
    sizes = [float(f.stem.split("_")[-1]) for f in fnames]
    dls = ImageDataLoaders.from_lists(pets, fnames, sizes, item_tfms=Resize(16), bs=4, seed=0, **CPU)
    x, y = dls.one_batch()
    assert y.dtype == torch.float32
    with pytest.raises(ValueError, match="one label per file"):
        ImageDataLoaders.from_lists(pets, fnames, labels[:-1])


def test_factory_errors_are_clear(pets, tmp_path):
    with pytest.raises(TypeError, match="list of files"):
        ImageDataLoaders.from_name_re(pets, pets, pat=r"(.+)_\d+")
    with pytest.raises(FileNotFoundError, match="csv_fname"):
        ImageDataLoaders.from_csv(pets)
    with pytest.raises(TypeError, match="DataFrame"):
        ImageDataLoaders.from_df([1, 2, 3])


def test_corrupt_file_in_a_folder_fails_naming_it(tmp_path):
    for split in ("train", "valid"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((8, 8, 3), 10 * i, np.uint8)).save(tmp_path / split / c / f"{i}.jpg")
    bad = tmp_path / "train" / "a" / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    dls = ImageDataLoaders.from_folder(tmp_path, bs=8, shuffle=False, **CPU)
    with pytest.raises(OSError, match="bad.jpg.*verify_images"):
        dls.one_batch()


def test_empty_folder_says_where_it_looked(tmp_path):
    for split in ("train", "valid"):
        (tmp_path / split / "a").mkdir(parents=True)
    (tmp_path / "train" / "a" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"found no items in .*known extension"):
        ImageDataLoaders.from_folder(tmp_path, **CPU)


def test_from_df_keeps_absolute_file_names():
    mnist = sample_path("mnist_tiny")
    files = [f for c in ("3", "7") for f in get_image_files(mnist / "train" / c)[:5]]
    df = pd.DataFrame({"fname": [str(f.resolve()) for f in files], "label": [f.parent.name for f in files]})
    dls = ImageDataLoaders.from_df(df, path="/nonexistent/elsewhere", valid_pct=0.3, seed=0, bs=4, **CPU)
    assert dls.train.one_batch()[0].shape[1:] == (3, 28, 28)
    assert sorted(dls.vocab) == ["3", "7"]


def test_from_folder_without_train_valid_folders_names_them_and_the_fix(tmp_path):
    (tmp_path / "tench").mkdir()
    (tmp_path / "trian").mkdir()
    with pytest.raises(FileNotFoundError) as e:
        ImageDataLoaders.from_folder(tmp_path)
    msg = str(e.value)
    assert "['train', 'valid']" in msg and "'train' -> 'trian'" in msg and "valid_pct=0.2" in msg
