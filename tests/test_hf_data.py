"""Hugging Face ``datasets`` as a source (issue 25): DataBlock rows, the factories' from_hf, streaming, bad input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image as PILImageModule

datasets = pytest.importorskip("datasets")  # in the `test` extra: installed in CI
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Sequence, Value, load_dataset  # noqa: E402

from learnkit.data.block import DataBlock  # noqa: E402
from learnkit.data.blocks import CategoryBlock, MultiCategoryBlock  # noqa: E402
from learnkit.data.getters import ColReader  # noqa: E402
from learnkit.data.hf import HFRows, hf_rows  # noqa: E402
from learnkit.export import load_learner  # noqa: E402
from learnkit.learner import Learner  # noqa: E402
from learnkit.metrics import accuracy  # noqa: E402
from learnkit.samples import sample_path  # noqa: E402
from learnkit.tabular.data import TabularDataLoaders  # noqa: E402
from learnkit.text.data import TextDataLoaders  # noqa: E402
from learnkit.vision.all import ImageBlock, ImageDataLoaders, Resize  # noqa: E402
from transformers import ViTConfig, ViTForImageClassification  # noqa: E402

NAMES = ["zebra", "apple"]  # not sorted: the ClassLabel's order must be kept


def tiny_vit(n_out: int = 2) -> ViTForImageClassification:
    """A one-layer ViT for 8x8 pictures, built from a config (no download)."""
    cfg = ViTConfig(image_size=8, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=1,
                    num_attention_heads=2, intermediate_size=64, num_labels=n_out)
    return ViTForImageClassification(cfg)


def _pictures(n: int, seed: int = 0) -> tuple[list, list[int]]:
    """Class 0 dark, class 1 bright 8x8 pictures."""
    rng = np.random.default_rng(seed)
    ys = [i % 2 for i in range(n)]
    imgs = [PILImageModule.fromarray(np.full((8, 8, 3), 40 + 170 * y, np.uint8) + rng.integers(0, 30, (8, 8, 3),
                                                                                                  dtype=np.uint8))
            for y in ys]
    return imgs, ys


def _image_ds(n: int = 40, seed: int = 0) -> Dataset:
    imgs, ys = _pictures(n, seed)
    return Dataset.from_dict({"img": imgs, "labels": ys},
                             features=Features({"img": Image(), "labels": ClassLabel(names=NAMES)}))


def test_datablock_reads_columns_of_rows_and_keeps_classlabel_order() -> None:
    dd = DatasetDict(train=_image_ds(40), validation=_image_ds(10, seed=1))
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader("img"), get_y=ColReader("labels"))
    dls = dblock.dataloaders(dd, bs=4, num_workers=0)
    assert list(dls.vocab) == NAMES
    assert (len(dls.train.dataset), len(dls.valid.dataset)) == (40, 10)  # the dict's splits, not a random 20%
    x, y = dls.valid.one_batch()
    assert x.shape == (4, 3, 8, 8) and y.tolist() == [0, 1, 0, 1]
    assert (x[1].mean() > x[0].mean()).item()  # bright pictures are class 1 ('apple')


def test_rows_are_read_lazily_and_pickle_for_workers() -> None:
    import pickle
    rows = hf_rows(_image_ds(6))
    assert isinstance(rows, HFRows) and len(rows) == 6 and not rows.presplit
    row = pickle.loads(pickle.dumps(rows))[3]
    assert row["labels"] == "apple" and isinstance(row["img"], PILImageModule.Image) and set(row) == {"img", "labels"}
    with pytest.raises(KeyError, match=r"no column 'label'.*\['img', 'labels'\].*Did you mean 'labels'"):
        row["label"]


def test_from_hf_splits_at_random_with_only_train_and_trains_on_workers(tmp_path) -> None:
    ds = _image_ds(60)
    dls = ImageDataLoaders.from_hf(ds, image_col="img", label_col="labels", valid_pct=0.25, seed=3, bs=8,
                                   num_workers=2, path=tmp_path)
    assert (len(dls.train.dataset), len(dls.valid.dataset)) == (45, 15)
    again = ImageDataLoaders.from_hf(ds, image_col="img", label_col="labels", valid_pct=0.25, seed=3, bs=8,
                                     num_workers=0)
    assert dls.valid.dataset.idxs == again.valid.dataset.idxs  # the seed fixes the split
    torch.manual_seed(0)
    learn = Learner(dls, tiny_vit(), metrics=accuracy, path=tmp_path)  # a transformers model in a plain Learner
    with learn.no_bar():
        learn.fit_one_cycle(4, 1e-2)
    assert learn.recorder.values[-1][-1] >= 0.8  # two brightness classes: well above chance (0.5)
    learn.export()
    back = load_learner(tmp_path / "export.pkl")
    img = _pictures(2, seed=9)[0][1]
    label, idx, probs = back.predict(img)
    assert label == learn.predict(img)[0] and list(back.dls.vocab) == NAMES and probs.shape == (2,)


def test_imagefolder_offline_gives_the_sample_splits_and_show_batch_works(tmp_path) -> None:
    ds = load_dataset("imagefolder", data_dir=str(sample_path("imagenette_tiny")), cache_dir=str(tmp_path / "c"))
    dls = ImageDataLoaders.from_hf(ds, item_tfms=Resize(16), bs=16, num_workers=0)
    assert len(dls.train.dataset) == ds["train"].num_rows and len(dls.valid.dataset) == ds["validation"].num_rows
    assert list(dls.vocab) == ds["train"].features["label"].names
    x, y = dls.train.one_batch()
    assert x.shape == (16, 3, 16, 16) and int(y.max()) < 10
    fig = dls.show_batch(max_n=4)
    assert fig is not None and len(fig.axes) >= 4
    tdl = dls.test_dl(ds["validation"].select(range(5)))  # rows of a Dataset, through get_x
    assert next(iter(tdl))[0].shape == (5, 3, 16, 16)


def test_multilabel_from_sequence_of_classlabel() -> None:
    imgs, _ = _pictures(12)
    labs = [[0], [1], [0, 1], []] * 3
    ds = Dataset.from_dict({"image": imgs, "tags": labs},
                           features=Features({"image": Image(), "tags": Sequence(ClassLabel(names=NAMES))}))
    dls = ImageDataLoaders.from_hf(ds, label_col="tags", valid_pct=0.25, seed=0, bs=3, num_workers=0)
    assert list(dls.vocab) == NAMES and dls.target_block.kind == "multicategory"
    y = torch.cat([b[1] for b in dls.valid]).tolist()
    rows = dls.valid.dataset.idxs
    assert y == [[float(k in labs[i]) for k in range(2)] for i in rows]


def test_undecoded_images_decode_per_item() -> None:
    ds = _image_ds(10).cast_column("img", Image(decode=False))
    assert isinstance(ds[0]["img"], dict)  # bytes, not a picture: nothing decoded up front
    dls = ImageDataLoaders.from_hf(ds, image_col="img", label_col="labels", bs=2, num_workers=0, seed=0)
    assert dls.train.one_batch()[0].shape == (2, 3, 8, 8)


def test_streaming_dataset_trains_with_unknown_length(tmp_path) -> None:
    ds = _image_ds(96).to_iterable_dataset(num_shards=2)
    dls = ImageDataLoaders.from_hf(ds, image_col="img", label_col="labels", bs=8, n_valid=16, num_workers=0)
    assert list(dls.vocab) == NAMES
    with pytest.raises(TypeError):
        len(dls.train.dataset)
    ys = torch.cat([b[1] for b in dls.valid])
    assert len(ys) == 16  # the first 16 rows held out
    assert sum(len(b[1]) for b in dls.train) == 80
    torch.manual_seed(0)
    learn = Learner(dls, tiny_vit(), metrics=accuracy, path=tmp_path)
    with learn.no_bar():
        learn.fit_one_cycle(5, 1e-2)
    assert learn.recorder.values[-1][-1] >= 0.75


def test_streaming_from_two_workers_sees_each_row_once() -> None:
    ds = _image_ds(24).to_iterable_dataset(num_shards=2)
    dls = ImageDataLoaders.from_hf(ds, image_col="img", label_col="labels", bs=4, n_valid=8, num_workers=2)
    n = sum(len(b[1]) for b in dls.train)
    assert n == 16


def _text_dd() -> DatasetDict:
    good = ["a wonderful film", "great acting, loved it", "a delight"]
    bad = ["awful and dull", "terrible plot", "boring, I left"]
    text = (good + bad) * 6
    lab = ([1] * 3 + [0] * 3) * 6
    f = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    return DatasetDict(train=Dataset.from_dict({"text": text, "label": lab}, features=f),
                       validation=Dataset.from_dict({"text": good + bad, "label": [1] * 3 + [0] * 3}, features=f))


def test_text_from_hf_uses_the_splits_and_classlabel_names() -> None:
    dls = TextDataLoaders.from_hf(_text_dd(), bs=4, num_workers=0)
    assert list(dls.vocab[1]) == ["neg", "pos"]  # (text vocab, labels), as fastai
    assert (len(dls.train.dataset), len(dls.valid.dataset)) == (36, 6)
    x, y = dls.valid.one_batch()
    assert x.ndim == 2 and set(y.tolist()) <= {0, 1}


def test_csv_and_parquet_load_offline_into_text_and_tabular(tmp_path) -> None:
    df = pd.read_csv(sample_path("adult_sample") / "adult.csv").head(300)
    df.to_parquet(tmp_path / "adult.parquet")
    ds = load_dataset("parquet", data_files=str(tmp_path / "adult.parquet"), cache_dir=str(tmp_path / "c"))
    cats, conts = ["workclass", "education"], ["age", "hours-per-week"]
    from learnkit.tabular.procs import Categorify, FillMissing, Normalize
    procs = [Categorify, FillMissing, Normalize]
    dls = TabularDataLoaders.from_hf(ds, procs=procs, cat_names=cats, cont_names=conts, y_names="salary",
                                     valid_pct=0.2, seed=0, bs=32)
    ref = TabularDataLoaders.from_df(df, procs=procs, cat_names=cats, cont_names=conts, y_names="salary", seed=0,
                                     bs=32)
    assert list(dls.vocab) == list(ref.vocab) and len(dls.valid_ds) == 60
    ya, yb = (torch.cat([b[-1] for b in d.valid]).flatten() for d in (dls, ref))
    assert torch.equal(ya.sort().values, yb.sort().values)  # the same validation rows as from_df with that seed
    imdb = sample_path("imdb_tiny") / "texts.csv"
    cds = load_dataset("csv", data_files=str(imdb), cache_dir=str(tmp_path / "c2"))
    tdf = pd.read_csv(imdb)
    tdls = TextDataLoaders.from_hf(cds, text_col="text", label_col="label", valid_pct=0.2, seed=0, bs=8,
                                   num_workers=0)
    assert sorted(tdls.vocab[1]) == sorted(tdf["label"].unique()) and len(tdls.train.dataset) == round(len(tdf) * 0.8)


def test_bad_columns_images_and_labels_name_the_fix() -> None:
    ds = _image_ds(6)
    with pytest.raises(KeyError, match=r"no image/label column 'image'.*\['img', 'labels'\]"):
        ImageDataLoaders.from_hf(ds, label_col="labels")
    with pytest.raises(TypeError, match=r"'labels' holds ClassLabel.*not images.*cast_column"):
        ImageDataLoaders.from_hf(ds, image_col="labels", label_col="labels")
    fl = ds.add_column("score", [0.5] * 6)
    with pytest.raises(TypeError, match=r"label column 'score'.*class_encode_column"):
        ImageDataLoaders.from_hf(fl, image_col="img", label_col="score")
    with pytest.raises(KeyError, match=r"no column 'txt'.*\['text', 'label'\]"):
        TextDataLoaders.from_hf(_text_dd(), text_col="txt")
    with pytest.raises(KeyError, match=r"no 'train' split.*\['other'\]"):
        ImageDataLoaders.from_hf(DatasetDict(other=ds), image_col="img", label_col="labels")
    with pytest.raises(TypeError, match="from_df"):
        ImageDataLoaders.from_hf(pd.DataFrame({"a": [1]}))
