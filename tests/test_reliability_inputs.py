"""Reliability round 2 (issue 28), bad data: silent wrong results become named errors or warnings (mixed label
types, inf at predict, a resume on other batches, duplicate files across splits, a target given as an input, NaN
text and ids), and raw torch/pandas errors become named ones (empty frames and loaders, duplicate columns, an
unreduced loss, wrong channel counts, mask ids outside the codes)."""
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.callback.tracker import SaveModelCallback
from learnkit.collab.data import CollabDataLoaders
from learnkit.data.block import DataBlock
from learnkit.data.blocks import CategoryBlock, RegressionBlock
from learnkit.data.core import DataLoaders
from learnkit.data.getters import ColReader
from learnkit.data.splitters import IndexSplitter
from learnkit.learner import Learner
from learnkit.samples import sample_path
from learnkit.tabular.core import Categorify, FillMissing, Normalize
from learnkit.tabular.data import TabularDataLoaders
from learnkit.tabular.learner import tabular_learner
from learnkit.text.data import TextDataLoaders
from learnkit.vision.core import ImageBlock, MaskBlock, PILImageBW
from learnkit.vision.data import ImageDataLoaders, SegmentationDataLoaders
from learnkit.vision.augment import Resize
from learnkit.data.getters import get_image_files

pytestmark = pytest.mark.usefixtures("one_thread")


def _table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.choice(["x", "y"], n), "y": rng.choice(["p", "q"], n)})


def _tab_dls(df: pd.DataFrame, **kwargs) -> TabularDataLoaders:
    args = dict(procs=[Categorify, FillMissing, Normalize], cat_names=["b"], cont_names=["a"], y_names="y", bs=8)
    return TabularDataLoaders.from_df(df, **{**args, **kwargs})


def _images(n: int = 8) -> list:
    return get_image_files(sample_path("pets_tiny"))[:n]


# -- silent wrong results

def test_labels_that_print_alike_but_differ_in_type_are_refused_by_name():
    df = _table().assign(y=[3, "3"] * 30)
    with pytest.raises(ValueError, match=r"column 'y'.*3 \(int\) and '3' \(str\)"):
        _tab_dls(df)
    with pytest.raises(ValueError, match=r"training labels.*1 \(int\) and '1' \(str\)"):
        ImageDataLoaders.from_lists(sample_path("pets_tiny"), _images(), [1, "1"] * 4, item_tfms=Resize(32), bs=4)
    with pytest.warns(UserWarning, match=r"Mixed types in the training labels: number \(e.g. 1\), str"):
        dls = ImageDataLoaders.from_lists(sample_path("pets_tiny"), _images(), [1, "cat"] * 4, item_tfms=Resize(32),
                                          bs=4)
    assert len(dls.vocab) == 2
    with warnings.catch_warnings():  # 1 and 1.0 are one class: no warning, one vocab entry
        warnings.simplefilter("error")
        assert list(_tab_dls(_table().assign(y=[1, 1.0, 2] * 20), y_block=CategoryBlock()).vocab) == [1, 2]


def test_inf_in_a_continuous_column_is_named_at_predict_and_at_training():
    df = _table()
    learn = tabular_learner(_tab_dls(df), layers=[8])
    row = df.iloc[0].copy()
    row["a"] = np.inf
    with pytest.raises(ValueError, match=r"\['a'\] hold infinite values.*replace"):
        learn.predict(row)
    assert learn.predict(df.iloc[0])[2].isfinite().all()  # the control: a finite row predicts
    with pytest.raises(ValueError, match=r"\['a'\] hold infinite values"):
        _tab_dls(df.assign(a=df.a.where(df.index != 5, -np.inf)))


def _fit_and_checkpoint(tmp_path, bs: int) -> Learner:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=g)
    y = (x[:, 0] > 0).long()
    dls = DataLoaders(TorchDataLoader(TensorDataset(x[:48], y[:48]), batch_size=bs),
                      TorchDataLoader(TensorDataset(x[48:], y[48:]), batch_size=16), device="cpu")
    torch.manual_seed(0)
    return Learner(dls, nn.Linear(2, 2), loss_func=nn.CrossEntropyLoss(), path=tmp_path)


def test_resume_with_another_number_of_batches_per_epoch_is_refused(tmp_path):
    learn = _fit_and_checkpoint(tmp_path, bs=8)  # 6 batches per epoch
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(2, 1e-2, cbs=SaveModelCallback(every_n_batches=4, with_opt=True, fname="ck"))
    other = _fit_and_checkpoint(tmp_path, bs=16)  # 3 batches per epoch
    before = [p.detach().clone() for p in other.model.parameters()]
    with pytest.raises(ValueError, match=r"6 batches per epoch; these loaders give 3.*same data and batch size"):
        other.fit_one_cycle(2, 1e-2, resume="ck")
    assert all(torch.equal(a, b) for a, b in zip(before, other.model.parameters()))  # nothing loaded
    same = _fit_and_checkpoint(tmp_path, bs=8)
    with same.no_bar(), same.no_logging():
        same.fit_one_cycle(2, 1e-2, resume="ck")  # the control: the same batches resume
    assert same.recorder.lrs[-1] == pytest.approx(learn.recorder.lrs[-1])


def test_a_file_listed_twice_in_both_splits_warns_with_its_name():
    fns = [str(f) for f in _images(6)]
    df = pd.DataFrame({"fname": fns + [fns[0]], "label": ["a", "b"] * 3 + ["a"]})
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader("fname"), get_y=ColReader("label"),
                      splitter=IndexSplitter([6]), item_tfms=Resize(32))
    with pytest.warns(UserWarning, match=r"1 input\(s\) are listed more than once.*validation.*" + fns[0][-20:]):
        block.datasets(df)
    lists = DataBlock(blocks=(ImageBlock, CategoryBlock), get_y=lambda f: "ab"[len(str(f)) % 2], splitter=IndexSplitter([6]))
    with pytest.warns(UserWarning, match="listed more than once"):
        lists.datasets(fns + [fns[0]])
    with warnings.catch_warnings():  # the control: a duplicate inside the training split only is not a leak
        warnings.simplefilter("error")
        DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader("fname"), get_y=ColReader("label"),
                  splitter=IndexSplitter([5])).datasets(df)


def test_the_target_also_given_as_an_input_is_refused():
    with pytest.raises(ValueError, match=r"\['y'\] are the target \(y_names\) and also an input"):
        _tab_dls(_table(), cat_names=["b", "y"])
    with pytest.raises(ValueError, match=r"\['a'\] are listed more than once"):
        _tab_dls(_table(), cat_names=["b", "a"])


def test_missing_or_numeric_text_warns_with_the_rows():
    df = pd.DataFrame({"text": ["a good movie", np.nan, 42, "a bad movie"] * 6, "label": ["pos", "neg"] * 12})
    with pytest.warns(UserWarning, match=r"'text' has 6 missing and 6 non-text.*rows \[1, 2, 5, 6, 9, '...'\]"):
        TextDataLoaders.from_df(df, text_col="text", label_col="label", bs=4, seq_len=8, seed=0)


def test_missing_collab_ids_warn_before_they_train_as_one_user():
    rng = np.random.default_rng(0)
    ratings = pd.DataFrame({"user": [1.0, 2.0, 3.0, np.nan] * 25, "item": list(range(20)) * 5,
                            "rating": rng.uniform(1, 5, 100)})
    with pytest.warns(UserWarning, match=r"user id column 'user' has 25 missing.*dropna\(subset=\['user'\]\)"):
        CollabDataLoaders.from_df(ratings, bs=8, seed=0)


# -- raw errors become named ones

def test_empty_frames_and_empty_test_dls_are_named():
    df = _table()
    with pytest.raises(ValueError, match="The DataFrame has no rows"):
        _tab_dls(df.iloc[:0])
    learn = tabular_learner(_tab_dls(df), layers=[8])
    with pytest.raises(ValueError, match="empty DataFrame.*nothing to predict"):
        learn.dls.test_dl(df.iloc[:0])
    dls = ImageDataLoaders.from_lists(sample_path("pets_tiny"), _images(), ["a", "b"] * 4, item_tfms=Resize(32), bs=4)
    with pytest.raises(ValueError, match=r"test_dl got no items \(an empty list\)"):
        dls.test_dl([])
    with pytest.raises(ValueError, match=r"get_preds: the loader gave no batches \(list of length 0\)"):
        learn.get_preds(dl=[])


def test_duplicate_column_names_are_named():
    df = _table()
    df.columns = ["a", "a", "y"]
    with pytest.raises(ValueError, match=r"Column name\(s\) \['a'\] appear more than once"):
        _tab_dls(df, cat_names=["a"], cont_names=[])


def test_a_loss_without_reduction_is_refused_before_any_step():
    learn = tabular_learner(_tab_dls(_table()), layers=[8], loss_func=nn.CrossEntropyLoss(reduction="none"))
    before = [p.detach().clone() for p in learn.model.parameters()]
    with learn.no_bar(), learn.no_logging(), pytest.raises(ValueError, match=r"shape \(8,\), not one number.*reduction"):
        learn.fit(1, 1e-2)
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))


def test_images_with_the_wrong_channel_count_name_the_first_layer_and_the_fix():
    block = DataBlock(blocks=(ImageBlock(cls=PILImageBW), CategoryBlock), get_y=lambda f: "ab"[len(f.name) % 2],
                      item_tfms=Resize(16), splitter=IndexSplitter([0, 1]))
    dls = block.dataloaders(_images(), bs=4, num_workers=0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss())
    with learn.no_bar(), learn.no_logging(), pytest.raises(ValueError, match=r"have 1 channel.*\(4, 1, 16, 16\).*"
                                                                             r"layer \(0: Conv2d.*takes 3.*n_in=1"):
        learn.fit(1)
    with pytest.raises(RuntimeError, match="mat1 and mat2"):  # another error of the model is left as it is
        Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3, 2)), loss_func=nn.CrossEntropyLoss()).get_preds()


def test_mask_ids_outside_the_codes_name_the_file_and_the_fix(tmp_path):
    cam = sample_path("camvid_tiny")
    codes = list(np.loadtxt(cam / "codes.txt", dtype=str))
    fns = get_image_files(cam / "images")[:4]
    label = lambda o: cam / "labels" / f"{o.stem}_P{o.suffix}"  # noqa: E731
    top = max(int(np.asarray(Image.open(label(f))).max()) for f in fns)
    dls = SegmentationDataLoaders.from_label_func(cam, fns, label, codes=codes[:top], item_tfms=Resize(32), bs=2,
                                                  num_workers=0)
    with pytest.raises(ValueError, match=r"Mask .*_P\.png holds class id \d+, but codes names only "
                                         rf"{top} classes \(ids 0-{top - 1}\)"):
        for _ in dls.train:
            pass
    ok = SegmentationDataLoaders.from_label_func(cam, fns, label, codes=codes, item_tfms=Resize(32), bs=2,
                                                 num_workers=0)
    assert int(ok.one_batch()[1].max()) < len(codes)
    ignore = np.zeros((8, 8), np.uint8)
    ignore[0, 0] = 255  # the usual "ignore" id passes
    mb = MaskBlock(codes=["bg", "fg"])
    m = mb.type_tfms[1](mb.type_tfms[0](ignore))
    assert m.getextrema() == (0, 255)


def test_missing_labels_and_targets_are_named_not_trained_as_nan():
    fns = [str(f) for f in _images(12)]
    df = pd.DataFrame({"fname": fns, "label": ["a", np.nan, "b"] * 4})
    with pytest.raises(ValueError, match=r"missing label \(None or NaN\) for \d+ of \d+ training items.*dropna"):
        ImageDataLoaders.from_df(df, fn_col="fname", label_col="label", item_tfms=Resize(32), bs=4, num_workers=0)
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader("fname"), get_y=ColReader("label"),
                      splitter=IndexSplitter([1, 4]))  # every missing label in the validation split
    with pytest.raises(ValueError, match=r"validation set has label\(s\) never seen.*'<missing: None/NaN>' \(2 items\)"):
        block.datasets(df.assign(label=["a", np.nan, "b", "a", np.nan, "b"] + ["a", "b"] * 3))
    reg = ImageDataLoaders.from_df(df.assign(label=[1.0, np.nan, 2.0] * 4), fn_col="fname", label_col="label",
                                   y_block=RegressionBlock, item_tfms=Resize(32), bs=12, num_workers=0, valid_pct=0.0)
    with pytest.raises(ValueError, match=r"Regression target nan is missing or infinite"):
        reg.one_batch()
