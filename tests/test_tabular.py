"""Tabular: procs (hand-computed state), TabularPandas, the tensor-slicing loader, TabularModel, tabular_learner."""
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from learnkit.data.blocks import MultiCategoryBlock
from learnkit.data.normalize import Normalize
from learnkit.export import load_learner
from learnkit.metrics import accuracy
from learnkit.samples import sample_path
from learnkit.tabular.all import Normalize as TabNormalizeName
from learnkit.tabular.core import Categorify, FillMissing, TabularPandas, cont_cat_split, emb_sz_rule, get_emb_sz
from learnkit.tabular.data import TabularDataLoaders
from learnkit.tabular.learner import tabular_learner
from learnkit.tabular.model import TabularModel
from learnkit.vision.augment import Normalize as VisionNormalize

CAT = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
CONT = ["age", "fnlwgt", "education-num"]
PROCS = [Categorify, FillMissing, Normalize]


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(sample_path("adult_sample") / "adult.csv")


def _toy() -> pd.DataFrame:
    return pd.DataFrame({"color": ["red", "blue", "red", None, "green", "blue"],
                         "x": [1.0, np.nan, 3.0, 5.0, 100.0, 7.0],
                         "y": ["a", "b", "a", "b", "a", "b"]})


def test_normalize_is_one_class():
    assert Normalize is VisionNormalize is TabNormalizeName


def test_procs_learn_state_on_train_only():
    df = _toy()
    to = TabularPandas(df, procs=[Normalize, Categorify, FillMissing], cat_names="color", cont_names="x", y_names="y",
                       splits=([0, 1, 2, 3], [4, 5]))
    # Categorify: train values only, sorted, '#na#' first
    assert list(to.classes["color"]) == ["#na#", "blue", "red"]
    assert list(to.classes["x_na"]) == ["#na#", False, True]
    assert to.cat_names == ["color", "x_na"]
    # green (valid only) is unknown -> 0; None -> 0
    assert to.cats[:, 0].tolist() == [2, 1, 2, 0, 0, 1]
    assert to.cats[:, 1].tolist() == [1, 2, 1, 1, 1, 1]
    # FillMissing: train median of [1, 3, 5] = 3; Normalize: train stats after filling [1, 3, 3, 5]
    assert to.fill_missing.na_dict == {"x": 3.0}
    filled = np.array([1.0, 3.0, 3.0, 5.0])
    mean, std = filled.mean(), filled.std() + 1e-7
    assert to.normalize.means["x"] == pytest.approx(mean)
    assert to.normalize.stds["x"] == pytest.approx(std)
    expect = (np.array([1.0, 3.0, 3.0, 5.0, 100.0, 7.0]) - mean) / std
    assert torch.allclose(to.conts[:, 0], torch.tensor(expect, dtype=torch.float32))
    assert to.ys.tolist() == [0, 1, 0, 1, 0, 1] and list(to.vocab) == ["a", "b"]
    # decoding undoes the normalisation and the ids
    dec = to.decode_rows(to.cats, to.conts, to.ys)
    assert dec["color"].tolist() == ["red", "blue", "red", "#na#", "#na#", "blue"]
    assert dec["x"].to_numpy() == pytest.approx([1.0, 3.0, 3.0, 5.0, 100.0, 7.0], rel=1e-5)
    assert dec["y"].tolist() == list(df["y"])


def test_new_rows_use_fitted_state_and_warn_on_unknown():
    to = TabularPandas(_toy(), procs=PROCS, cat_names="color", cont_names="x", y_names="y",
                       splits=([0, 1, 2, 3], [4, 5]))
    with pytest.warns(UserWarning, match="never seen"):
        new = to.new(pd.DataFrame({"color": ["purple", "red"], "x": [np.nan, 3.0]}))
    assert new.cats.tolist() == [[0, 2], [2, 1]]  # unknown -> #na#; missing x flagged (id 2 = True)
    assert new.conts[0, 0].item() == pytest.approx(new.conts[1, 0].item())  # filled with the train median (3)
    assert new.ys is None


def test_y_block_inference_and_multilabel():
    df = pd.DataFrame({"c": list("abab"), "r": [1.0, 2.0, 3.0, 4.0], "l1": [1, 0, 1, 0], "l2": [0, 1, 1, 0]})
    reg = TabularPandas(df, procs=[Categorify], cat_names="c", y_names="r")
    assert reg.target.kind == "regression" and reg.ys.shape == (4, 1) and reg.c == 1
    multi = TabularPandas(df, procs=[Categorify], cat_names="c", y_names=["l1", "l2"],
                          y_block=MultiCategoryBlock(encoded=True, vocab=["l1", "l2"]))
    assert multi.target.kind == "multicategory" and multi.ys.tolist() == [[1, 0], [0, 1], [1, 1], [0, 0]]
    assert multi.c == 2
    with pytest.raises(ValueError, match="never seen in the training rows"):
        TabularPandas(df, procs=[Categorify], cat_names="r", y_names="c", splits=([0, 2], [1, 3]))


def test_cont_cat_split_and_emb_sizes(adult):
    cont, cat = cont_cat_split(adult, max_card=20, dep_var="salary")
    assert "salary" not in cont + cat
    assert {"age", "fnlwgt", "education-num"} <= set(cont) and {"workclass", "sex"} <= set(cat)
    assert emb_sz_rule(17) == round(1.6 * 17 ** 0.56) and emb_sz_rule(10 ** 9) == 600
    to = TabularPandas(adult, procs=PROCS, cat_names=CAT, cont_names=CONT, y_names="salary")
    szs = get_emb_sz(to, {"race": 3})
    assert szs[0] == (len(to.classes["workclass"]), emb_sz_rule(len(to.classes["workclass"])))
    assert szs[CAT.index("race")] == (len(to.classes["race"]), 3)


def test_loader_slices_tensors(adult):
    dls = TabularDataLoaders.from_df(adult, procs=PROCS, cat_names=CAT, cont_names=CONT, y_names="salary",
                                     valid_idx=list(range(800, 1000)), bs=64, device="cpu")
    assert len(dls.valid.dataset) == 200 and len(dls.train.dataset) == 2800
    assert dls.n_inp == 2 and dls.c == 2 and list(dls.vocab) == ["<50k", ">=50k"]
    assert len(dls.train) == 2800 // 64 and len(dls.valid) == 4  # training drops the last partial batch
    xc, xn, y = dls.one_batch()
    assert xc.dtype == torch.int64 and xc.shape == (64, 7) and xn.dtype == torch.float32 and xn.shape == (64, 3)
    assert y.shape == (64,) and y.dtype == torch.int64
    # one epoch sees each training row at most once, in a new order each epoch
    seen = torch.cat([b[1] for b in dls.train])
    assert seen.shape[0] == 43 * 64 and torch.unique(seen, dim=0).shape[0] >= seen.shape[0] - 50
    first = [next(iter(dls.train))[1] for _ in range(2)]
    assert not torch.equal(first[0], first[1])
    # validation: in order, complete
    vals = torch.cat([b[2] for b in dls.valid])
    assert torch.equal(vals, dls.valid.dataset.ys)
    df = dls.show_batch(max_n=5, show=False)
    assert list(df.columns) == CAT + ["education-num_na"] + CONT + ["salary"] and len(df) == 5
    assert set(df["salary"]) <= {"<50k", ">=50k"}


def test_tabular_model_layers_and_shapes():
    m = TabularModel([(5, 3), (7, 4)], n_cont=2, out_sz=3, layers=[10, 6], ps=[0.1, 0.2], y_range=(0, 1))
    out = m(torch.tensor([[1, 2], [4, 6]]), torch.randn(2, 2))
    assert out.shape == (2, 3) and bool(((out > 0) & (out < 1)).all())
    lin0 = m.layers[0]
    assert [type(l).__name__ for l in lin0] == ["Linear", "ReLU", "BatchNorm1d", "Dropout"]  # lin_first order
    assert lin0[0].in_features == 3 + 4 + 2 and lin0[0].bias is None
    assert type(m.layers[-1]).__name__ == "SigmoidRange"


@pytest.mark.slow
def test_tabular_learner_learns_predicts_and_exports(adult, tmp_path, one_thread):
    torch.manual_seed(0)
    dls = TabularDataLoaders.from_df(adult, path=tmp_path, procs=PROCS, cat_names=CAT, cont_names=CONT,
                                     y_names="salary", bs=64, seed=0, device="cpu")
    learn = tabular_learner(dls, metrics=accuracy)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(3, 1e-2)
    loss, acc = learn.validate()
    majority = float((dls.valid.dataset.ys == 0).float().mean())
    assert acc > 0.79 and acc > majority + 0.03, (acc, majority)
    res = learn.show_results(max_n=4, show=False)
    assert list(res.columns[-2:]) == ["salary", "salary_pred"] and len(res) == 4
    row = adult.iloc[5].copy()
    row["workclass"], row["age"] = "Astronaut", np.nan  # unknown category and a missing value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full, clas, probs = learn.predict(row)
    assert isinstance(full, pd.DataFrame) and full["workclass"].iloc[0] == "#na#"
    assert full["salary"].iloc[0] == dls.vocab[int(clas)] and probs.shape == (2,)
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    # export round trip: the procs' state travels as JSON, predictions are equal
    path = learn.export("tab.pkl")
    learn2 = load_learner(path)
    preds1, _ = learn.get_preds(dl=dls.test_dl(adult.iloc[:50]))
    preds2, _ = learn2.get_preds(dl=learn2.dls.test_dl(adult.iloc[:50]))
    assert torch.allclose(preds1, preds2, atol=1e-6)
    assert learn2.dls.classes["education"] == dls.classes["education"]
    full2, clas2, _ = learn2.predict(adult.iloc[5])
    assert int(clas2) == int(learn.predict(adult.iloc[5])[1])


@pytest.mark.slow
def test_tabular_regression_learns(one_thread):
    rng = np.random.default_rng(0)
    n = 1200
    df = pd.DataFrame({"g": rng.choice(list("abc"), n), "u": rng.normal(size=n)})
    df["t"] = df["g"].map({"a": -2.0, "b": 0.0, "c": 2.0}) + 0.5 * df["u"] + rng.normal(scale=0.1, size=n)
    torch.manual_seed(0)
    dls = TabularDataLoaders.from_df(df, procs=[Categorify, Normalize], cat_names="g", cont_names="u", y_names="t",
                                     seed=0, device="cpu")
    assert dls.c == 1
    learn = tabular_learner(dls, layers=[32], y_range=(-4, 4))
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(5, 1e-2)
    mse = learn.validate()[0]
    assert mse < 0.15 * float(df["t"].var()), mse


def test_tabular_pandas_lesson_surface():
    to = TabularPandas(_toy(), [Categorify, FillMissing], "color", "x", "y", splits=([0, 1, 2, 3], [4, 5]))
    assert list(to.train.xs.columns) == ["color", "x_na", "x"] and len(to.valid.xs) == 2
    assert to.train.y.tolist() == [0, 1, 0, 1] and to.valid.y.tolist() == [0, 1]
    dls = to.dataloaders(bs=2, device="cpu")
    assert isinstance(dls, TabularDataLoaders) and len(dls.valid) == 1 and dls.classes["color"][1] == "blue"


def test_multilabel_learner_predicts_label_lists(one_thread):
    rng = np.random.default_rng(0)
    n = 256
    df = pd.DataFrame({"g": rng.choice(list("abcd"), n), "u": rng.normal(size=n)})
    df["big"] = (df["u"] > 0).astype(int)
    df["vowel"] = df["g"].isin(["a"]).astype(int)
    dls = TabularDataLoaders.from_df(df, procs=[Categorify, Normalize], cat_names="g", cont_names="u",
                                     y_names=["big", "vowel"], y_block=MultiCategoryBlock(encoded=True, vocab=["big", "vowel"]),
                                     seed=0, bs=32, device="cpu")
    assert dls.c == 2 and dls.kinds[-1] == "multicategory"
    torch.manual_seed(0)
    learn = tabular_learner(dls, layers=[16])
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(4, 3e-2)
    row, dec, probs = learn.predict(df.iloc[0])
    assert probs.shape == (2,) and dec.dtype == torch.bool
    assert bool(row["big"].iloc[0]) == bool(dec[0]) and bool(row["vowel"].iloc[0]) == bool(dec[1])
    res = learn.show_results(max_n=3, show=False)
    assert {"big_pred", "vowel_pred"} <= set(res.columns)
