"""Tabular: procs (hand-computed state), TabularPandas, the tensor-slicing loader, TabularModel, tabular_learner."""
import json
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


# -- review fixes (one test per finding)

def _tiny_learner(df: pd.DataFrame, **kw) -> tuple:
    dls = TabularDataLoaders.from_df(df, device="cpu", bs=4, **kw)
    torch.manual_seed(0)
    return dls, tabular_learner(dls, layers=[8])


def test_test_dl_labels_as_fastai_and_predict_never_crashes_on_the_target():
    df = _toy()
    dls, learn = _tiny_learner(df, procs=PROCS, cat_names="color", cont_names="x", y_names="y", valid_idx=[4, 5])
    odd = df.copy()
    odd["y"] = [np.nan, "a", "zzz", "b", "a", "b"]  # missing and never-seen targets
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        tdl = dls.test_dl(odd)
    assert not [w for w in rec if "labels" in str(w.message)]  # default: unusable labels dropped quietly
    assert tdl.dataset.ys is None and tdl.dataset.cats[:, 0].tolist() == [2, 1, 2, 0, 0, 1]
    assert dls.test_dl(df).dataset.ys.tolist() == [0, 1, 0, 1, 0, 1]  # default: usable labels kept (fastai)
    _, targs = learn.get_preds(dl=dls.test_dl(df))
    assert targs.tolist() == [0, 1, 0, 1, 0, 1]
    assert dls.test_dl(df, with_labels=False).dataset.ys is None
    assert dls.test_dl(df, with_labels=True).dataset.ys.tolist() == [0, 1, 0, 1, 0, 1]
    with pytest.warns(UserWarning, match=r"labels of these rows were dropped.*'y' has 1 missing value"):
        assert dls.test_dl(odd, with_labels=True).dataset.ys is None
    with pytest.warns(UserWarning, match=r"labels of these rows were dropped.*never seen.*'zzz'"):
        assert dls.test_dl(odd.iloc[1:], with_labels=True).dataset.ys is None
    expect = learn.predict(df.iloc[2].drop("y"))
    for y in ("zzz", np.nan):  # a row whose target is unknown or missing still predicts, the same way
        row = df.iloc[2].copy()
        row["y"] = y
        full, clas, probs = learn.predict(row)
        assert int(clas) == int(expect[1]) and torch.allclose(probs, expect[2])
        assert full["y"].iloc[0] == dls.vocab[int(clas)]


def test_loaders_name_arguments_they_do_not_take():
    dls, _ = _tiny_learner(_toy(), procs=PROCS, cat_names="color", cont_names="x", y_names="y", valid_idx=[4, 5])
    with pytest.raises(TypeError, match=r"\['shufle'\].*takes dataset, bs, shuffle"):
        dls.train.new(shufle=False)
    with pytest.raises(TypeError, match=r"\['bss'\]"):
        dls.test_dl(_toy(), bss=2)
    tdl = dls.test_dl(_toy(), bs=2, num_workers=0)  # what generic callers pass is taken (and meaningless here)
    assert tdl.bs == 2 and len(tdl) == 3


def test_from_df_infers_cont_names_in_frame_order():
    df = pd.DataFrame({"b": [1.0, 2, 3, 4, 5], "c": list("ppqqp"), "a": [5.0, 4, 3, 2, 1], "y": [0.0, 1, 0, 1, 0]})
    dls = TabularDataLoaders.from_df(df, procs=[Categorify], cat_names="c", y_names="y", valid_idx=[4])
    assert dls.cont_names == ["b", "a"] and dls.cat_names == ["c"]
    assert dls.train.dataset.conts.tolist() == [[1.0, 5.0], [2.0, 4.0], [3.0, 3.0], [4.0, 2.0]]
    dls = TabularDataLoaders.from_df(df.drop(columns="c"), procs=[Categorify], y_names="y", valid_idx=[4])
    assert dls.cat_names == [] and dls.cont_names == ["b", "a"]


def test_from_csv_skips_initial_spaces_and_rejects_unknown_options(tmp_path):
    (tmp_path / "t.csv").write_text("age, workclass, y\n30, Private, a\n40, State-gov, b\n50, Private, a\n")
    dls = TabularDataLoaders.from_csv(tmp_path / "t.csv", procs=[Categorify], cat_names="workclass",
                                      cont_names="age", y_names="y", valid_idx=[2], device="cpu")
    assert list(dls.classes["workclass"]) == ["#na#", "Private", "State-gov"] and list(dls.vocab) == ["a", "b"]
    assert dls.test_dl(pd.DataFrame({"workclass": ["Private"], "age": [1]})).dataset.cats.tolist() == [[1]]
    raw = TabularDataLoaders.from_csv(tmp_path / "t.csv", skipinitialspace=False, procs=[Categorify],
                                      cat_names=" workclass", cont_names="age", y_names=" y", valid_idx=[2])
    assert list(raw.classes[" workclass"]) == ["#na#", " Private", " State-gov"]
    with pytest.raises(TypeError, match=r"\['sep'\].*pd.read_csv"):
        TabularDataLoaders.from_csv(tmp_path / "t.csv", sep=",", cat_names="workclass", y_names="y")


def test_categorical_dtype_order_is_kept_for_columns_and_target():
    size = pd.Categorical(["small", "large", "small", "medium"], categories=["small", "medium", "large", "huge"],
                          ordered=True)
    grade = pd.Categorical(["lo", "hi", "lo", "lo"], categories=["lo", "mid", "hi", "top"], ordered=True)
    df = pd.DataFrame({"size": size, "x": [1.0, 2, 3, 4], "grade": grade})
    to = TabularPandas(df, procs=[Categorify], cat_names="size", cont_names="x", y_names="grade",
                       splits=([0, 1, 2], [3]))
    assert list(to.classes["size"]) == ["#na#", "small", "medium", "large", "huge"]  # order kept, unused included
    assert to.cats[:, 0].tolist() == [1, 3, 1, 2]  # 'medium' (valid only) is known through the dtype
    assert list(to.vocab) == ["lo", "hi"]  # target: categories' order, those present in training (fastai strict)
    assert to.ys.tolist() == [0, 1, 0, 0]


def test_export_round_trip_with_integer_column_names(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({0: rng.choice(list("ab"), 12), 1: rng.normal(size=12), 2: rng.choice(list("pq"), 12)})
    df.loc[3, 1] = np.nan
    to = TabularPandas(df, procs=PROCS, cat_names=[0], cont_names=[1], y_names=[2], splits=(list(range(10)), [10, 11]))
    back = TabularPandas.from_state(json.loads(json.dumps(to.state())))  # what export stores
    assert back.new(df, warn_unknown=False).conts.tolist() == to.conts.tolist()
    assert back.new(df, warn_unknown=False).cats.tolist() == to.cats.tolist()
    dls, learn = _tiny_learner(df, procs=PROCS, cat_names=[0], cont_names=[1], y_names=[2], valid_idx=[10, 11],
                               path=tmp_path)
    learn2 = load_learner(learn.export("int.pkl"))
    assert learn2.dls.cat_names == [0, "1_na"] and learn2.dls.cont_names == [1]
    assert learn2.dls.classes[0] == dls.classes[0] and learn2.dls.procs[0].na_dict == dls.procs[0].na_dict
    for i in (0, 3):
        full, clas, probs = learn2.predict(df.iloc[i])
        assert torch.allclose(probs, learn.predict(df.iloc[i])[2], atol=1e-6)
        assert full[2].iloc[0] == dls.vocab[int(clas)]


def test_non_string_scalar_names_are_one_name():
    df = pd.DataFrame({0: [1.0, 2.0, 3.0, 4.0], 1: list("abab"), 2: [0.5, 1.5, 2.5, 3.5]})
    to = TabularPandas(df, procs=[Categorify], cat_names=1, cont_names=0, y_names=2)
    assert to.cat_names == [1] and to.cont_names == [0] and to.y_names == [2]
    assert to.ys[:, 0].tolist() == [0.5, 1.5, 2.5, 3.5]
    assert cont_cat_split(df, dep_var=2) == ([0], [1])


def test_text_in_a_continuous_column_fails_before_the_procs_by_name():
    df = _toy()
    df["x"] = ["1", "2", "lots", None, "5", "6"]
    with pytest.raises(ValueError, match=r"Continuous column 'x' holds non-numbers \(e.g. 'lots'.*cat_names"):
        TabularPandas(df, procs=[FillMissing, Normalize], cont_names="x", y_names="y")
    df["x"] = ["1", "2", "3", None, "5", "6"]  # numbers as text are converted, as before
    to = TabularPandas(df, procs=[Categorify, FillMissing], cont_names="x", y_names="y", splits=([0, 1, 2, 3], [4, 5]))
    assert to.conts[:, 0].tolist() == [1.0, 2.0, 3.0, 2.0, 5.0, 6.0]


def test_missing_targets_are_refused_when_building_the_table():
    df = _toy()
    df.loc[2, "y"] = None
    with pytest.raises(ValueError, match=r"Target column 'y' has 1 missing value: drop them \(df.dropna\(subset=\['y'\]\)\)"):
        TabularPandas(df, procs=[Categorify], cat_names="color", y_names="y")
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "t": [0.5, np.nan, np.nan]})
    with pytest.raises(ValueError, match=r"Target column 't' has 2 missing values"):
        TabularPandas(df, cont_names="x", y_names="t")


def test_an_all_missing_continuous_column_is_named_as_such():
    df = _toy()
    df["x"] = np.nan
    with pytest.raises(ValueError, match=r"\['x'\] have no values in the training rows"):
        TabularPandas(df, procs=[FillMissing], cont_names="x", y_names="y")
    with pytest.raises(ValueError, match=r"\['x'\] have missing values: add FillMissing"):
        TabularPandas(df, procs=[], cont_names="x", y_names="y")


def test_non_json_vocabulary_raises_export_error_and_writes_nothing(tmp_path):
    from learnkit.export import ExportError
    df = _toy()
    df["day"] = pd.to_datetime(["2024-01-01", "2024-01-02"] * 3).astype("datetime64[ns]")
    dls, learn = _tiny_learner(df, procs=[Categorify, FillMissing], cat_names=["color", "day"], cont_names="x",
                               y_names="y", valid_idx=[5], path=tmp_path)
    assert list(dls.classes["day"][1:]) == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02")]
    assert dls.train.dataset.cats[:, 1].tolist() == [1, 2, 1, 2, 1]  # dates are matched, not all '#na#'
    with pytest.raises(ExportError, match=r"column 'day' has the value Timestamp.*astype\(str\)"):
        learn.export("d.pkl")
    assert list(tmp_path.iterdir()) == []


def test_new_then_process_as_in_fastai():
    to = TabularPandas(_toy(), procs=PROCS, cat_names="color", cont_names="x", y_names="y", splits=([0, 1, 2, 3], [4, 5]))
    tst = to.new(_toy().iloc[:3], warn_unknown=False)
    assert tst.process() is None
    assert tst.cats.tolist() == to.cats[:3].tolist() and torch.equal(tst.conts, to.conts[:3])


def test_loader_keywords_are_checked_and_the_known_ones_work(adult):
    kw = dict(procs=PROCS, cat_names=CAT[:2], cont_names=CONT, y_names="salary", valid_idx=list(range(100)))
    with pytest.raises(TypeError, match=r"\['drop_lst'\]"):
        TabularDataLoaders.from_df(adult.iloc[:300], drop_lst=False, **kw)
    to = TabularPandas(adult.iloc[:300], procs=PROCS, cat_names=CAT[:2], cont_names=CONT, y_names="salary")
    with pytest.raises(TypeError, match=r"\['shufle'\]"):
        to.dataloaders(shufle=False)
    dls = TabularDataLoaders.from_df(adult.iloc[:300], bs=64, shuffle=False, drop_last=False, num_workers=4,
                                     device="cpu", **kw)
    assert len(dls.train) == 4 and not dls.train.shuffle  # 200 rows: ceil(200 / 64), the partial batch kept
    assert torch.equal(next(iter(dls.train))[2], dls.train.dataset.ys[:64])  # in order


@pytest.mark.parametrize("dtype", [object, "str"])
def test_one_column_of_labels_infers_the_vocab(dtype):
    labels = [["a"], ["b", "c"], [], ["a", "c"]] if dtype is object else ["a", "b c", "", "a c"]
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "tags": pd.Series(labels, dtype=dtype)})
    to = TabularPandas(df, cont_names="x", y_names="tags", y_block=MultiCategoryBlock())
    assert list(to.vocab) == ["a", "b", "c"] and to.c == 3
    assert to.ys.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 0, 1]]
    assert to.decode_rows(to.cats, to.conts, to.ys)["tags"].tolist() == [["a"], ["b", "c"], [], ["a", "c"]]


def test_samples_docstring_names_the_copy_folder(tmp_path):
    import learnkit.samples
    from learnkit.data.external import untar_data
    from learnkit.samples import SAMPLES
    assert "$LEARNKIT_HOME/data/learnkit_samples/<name>" in learnkit.samples.__doc__
    assert untar_data(SAMPLES.ADULT_SAMPLE, data=tmp_path) == tmp_path / "learnkit_samples" / "adult_sample"
