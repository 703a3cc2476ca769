"""fastai's tabular helpers and TabularPandas behaviours, ported from nbs/40_tabular.core and 41_tabular.data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from learnkit.tabular.all import (Categorify, FillMissing, FillStrategy, Normalize, TabularPandas, TabWeightedDL,
                                  add_datepart, add_elapsed_times, df_shrink, df_shrink_dtypes, make_date)

pytestmark = pytest.mark.usefixtures("one_thread")

DATE_COLS = ["Year", "Month", "Week", "Day", "Dayofweek", "Dayofyear", "Is_month_end", "Is_month_start",
             "Is_quarter_end", "Is_quarter_start", "Is_year_end", "Is_year_start", "Elapsed"]


# ---------------------------------------------------------------- DataFrame helpers
def test_make_date() -> None:
    df = pd.DataFrame({"date": ["2019-12-04", "2019-11-29", "2019-11-15", "2019-10-24"]})
    make_date(df, "date")
    assert pd.api.types.is_datetime64_any_dtype(df["date"])
    with pytest.raises(KeyError, match="'day'"):
        make_date(df, "day")


def test_add_datepart() -> None:
    df = pd.DataFrame({"date": ["2019-12-04", None, "2019-11-15", "2019-10-24"]})
    df = add_datepart(df, "date")
    assert list(df.columns) == DATE_COLS
    assert pd.api.types.is_numeric_dtype(df["Elapsed"])
    assert df[df.Elapsed.isna()].shape == (1, 13)
    assert df.loc[0, "Year"] == 2019 and df.loc[0, "Month"] == 12 and df.loc[0, "Week"] == 49
    assert df.loc[0, "Dayofweek"] == 2 and df.loc[0, "Dayofyear"] == 338  # a Wednesday, day 338 of 2019
    assert df.loc[0, "Elapsed"] == pd.Timestamp("2019-12-04").timestamp()
    df = pd.DataFrame({"f1": [1.0], "f2": [2.0], "f3": [3.0], "f4": [4.0], "date": ["2019-12-04"]})
    df = add_datepart(df, "date")
    assert list(df.columns) == ["f1", "f2", "f3", "f4"] + DATE_COLS
    df = pd.DataFrame({"saleDate": ["2019-12-31 10:20:30"]})
    df = add_datepart(df, "saleDate", drop=False, time=True)  # prefix: the name without 'Date'
    assert "saleDate" in df and df.loc[0, "saleIs_year_end"] and df.loc[0, "saleMinute"] == 20
    assert df.loc[0, "saleHour"] == 10 and df.loc[0, "saleSecond"] == 30
    assert "xYear" in add_datepart(pd.DataFrame({"d": ["2020-01-01"]}), "d", prefix="x")


def test_add_elapsed_times() -> None:
    df = pd.DataFrame({"date": ["2019-12-04", "2019-11-29", "2019-11-15", "2019-10-24"],
                       "event": [False, True, False, True], "base": [1, 1, 2, 2]})
    df = add_elapsed_times(df, ["event"], "date", "base")
    assert list(df.columns) == ["date", "event", "base", "Afterevent", "Beforeevent", "event_bw", "event_fw"]
    assert df["Afterevent"].tolist() == [5, 0, 22, 0]  # days since the group's last event
    assert df["Beforeevent"].tolist() == [0, 0, 0, 0]
    assert df["event_bw"].tolist() == [1.0, 1.0, 1.0, 1.0] and df["event_fw"].tolist() == [0.0, 1.0, 0.0, 1.0]


def test_df_shrink_dtypes_and_df_shrink() -> None:
    df = pd.DataFrame({"i": [-100, 0, 100], "f": [-100.0, 0.0, 100.0], "e": [True, False, True],
                       "date": ["2019-12-04", "2019-11-29", "2019-11-15"]})
    dt = df_shrink_dtypes(df)
    assert dt["i"] == "int8" and dt["f"] == "float32" and dt["date"] == "category" and "e" not in dt
    assert "date" not in df_shrink_dtypes(df, obj2cat=False)
    df = pd.DataFrame({"i": [-100, 0, 100], "f": [-100.0, 0.0, 100.0], "u": [0, 10, 254],
                       "date": ["2019-12-04", "2019-11-29", "2019-11-15"]})
    df2 = df_shrink(df, skip=["date"])
    assert df["i"].dtype == "int64" and df2["i"].dtype == "int8"
    assert df2["f"].dtype == "float32" and df2["u"].dtype == "int16"
    assert df2["date"].dtype == df["date"].dtype
    assert df2.memory_usage().sum() < df.memory_usage().sum()
    assert df_shrink(df, int2uint=True)["u"].dtype == "uint8"
    df4 = df_shrink(df, skip=["i", "u"])
    assert df4["i"].dtype == "int64" and df4["u"].dtype == "int64"


# ---------------------------------------------------------------- TabularPandas (40_tabular.core test cells)
def test_categorify_indexing_and_decode() -> None:
    df = pd.DataFrame({"a": [0, 1, 2, 0, 2]})
    to = TabularPandas(df, Categorify, "a")
    cat = to.procs.categorify
    assert list(cat["a"]) == ["#na#", 0, 1, 2]
    assert to["a"].tolist() == [1, 2, 3, 1, 3]
    df1 = pd.DataFrame({"a": [1, 0, 3, -1, 2]})
    with pytest.warns(UserWarning, match="never seen"):
        to1 = to.new(df1)
    to1.process()
    assert to1["a"].tolist() == [2, 1, 0, 0, 3]  # values never seen in training go to 0 (#na#)
    to2 = cat.decode(to1)
    assert to2["a"].tolist() == [1, 0, "#na#", "#na#", 2]
    assert to1["a"].tolist() == [2, 1, 0, 0, 3]  # decode returns a copy
    cat = Categorify()
    to = TabularPandas(pd.DataFrame({"a": [0, 1, 2, 3, 2]}), cat, "a", splits=[[0, 1, 2], [3, 4]])
    assert list(cat["a"]) == ["#na#", 0, 1, 2]  # the instance passed is the one fitted (training rows)
    assert to["a"].tolist() == [1, 2, 3, 0, 3]
    assert to.iloc[3]["a"] == 0 and to.iloc[:2]["a"].tolist() == [1, 2]


def test_rows_are_train_then_valid() -> None:
    df = pd.DataFrame({"a": list("abcdef"), "x": [0.0, 1, 2, 3, 4, 5]})
    to = TabularPandas(df, Categorify, "a", "x", splits=[[4, 1, 5], [0, 2]])
    assert to.items.index.tolist() == [4, 1, 5, 0, 2]
    assert to.train.items["x"].tolist() == [4.0, 1.0, 5.0] and to.valid.items["x"].tolist() == [0.0, 2.0]
    assert to.train.conts.reshape(-1).tolist() == [4.0, 1.0, 5.0]


def test_normalize_instance_is_fitted() -> None:
    norm = Normalize()
    df = pd.DataFrame({"a": [0, 1, 2, 3, 4]})
    to = TabularPandas(df, norm, cont_names="a")
    x = np.array([0, 1, 2, 3, 4])
    m, s = x.mean(), x.std()
    assert norm.means["a"] == m
    assert norm.stds["a"] == pytest.approx(s, abs=1e-6)
    assert np.allclose(to["a"].to_numpy(), (x - m) / s, atol=1e-6)
    assert to.procs.normalize.means is norm.means


def test_fill_missing_without_categorify() -> None:
    fills = [FillMissing(fill_strategy=s) for s in (FillStrategy.median, FillStrategy.constant, FillStrategy.mode)]
    df = pd.DataFrame({"a": [0, 1, np.nan, 1, 2, 3, 4]})
    tos = [TabularPandas(df.copy(), f, cont_names="a") for f in fills]
    assert fills[0].na_dict == {"a": 1.5} and fills[1].na_dict == {"a": 0} and fills[2].na_dict == {"a": 1.0}
    for to, v in zip(tos, [1.5, 0.0, 1.0]):
        assert to.cat_names == ["a_na"]
        assert to["a"].tolist() == [0, 1, v, 1, 2, 3, 4]
        assert to["a_na"].tolist() == [0, 0, 1, 0, 0, 0, 0]
        assert to.cats.reshape(-1).tolist() == [0, 0, 1, 0, 0, 0, 0]


def test_decode_row() -> None:
    df = pd.DataFrame({"c": ["x", "y", "x", "z"], "n": [1.0, 2.0, 3.0, 4.0], "t": ["p", "q", "p", "q"]})
    to = TabularPandas(df, [Categorify, Normalize], cat_names="c", cont_names="n", y_names="t", y_block=None)
    row = to.items.iloc[1]
    dec = to.decode_row(row)
    assert dec["c"] == "y" and dec["n"] == pytest.approx(2.0) and dec["t"] == "q"
    assert to.items.iloc[1]["c"] == 2  # the processed row is left as it was


# ---------------------------------------------------------------- TabWeightedDL (41_tabular.data)
def test_tab_weighted_dl_draws_with_the_weights() -> None:
    df = pd.DataFrame({"x": np.arange(10, dtype=float), "y": np.arange(10, dtype=float)})
    to = TabularPandas(df, cont_names="x", y_names="y", splits=[list(range(8)), [8, 9]])
    wgts = np.zeros(8)
    wgts[[2, 5]] = [1.0, 3.0]
    torch.manual_seed(0)
    dl = TabWeightedDL(to.train, bs=16, wgts=wgts, shuffle=True, device="cpu")
    seen = torch.cat([b[-1].reshape(-1) for _ in range(25) for b in dl])
    assert set(seen.tolist()) == {2.0, 5.0}  # zero-weight rows never drawn
    assert 0.68 < (seen == 5.0).float().mean().item() < 0.82  # 3:1 -> 0.75 expected
    ordered = TabWeightedDL(to.train, bs=4, wgts=wgts, device="cpu")  # unshuffled: every row in order
    assert torch.cat([b[-1].reshape(-1) for b in ordered]).tolist() == list(map(float, range(8)))
    with pytest.raises(ValueError, match="8 rows"):
        TabWeightedDL(to.train, wgts=[1.0, 2.0])
    again = dl.new(bs=4)  # a copy keeps its weights
    assert isinstance(again, TabWeightedDL) and np.array_equal(again.wgts, dl.wgts) and again.bs == 4
    assert not dl.new(shuffle=False).shuffle
    dls = to.weighted_dataloaders(wgts, bs=8, device="cpu")
    assert isinstance(dls.train, TabWeightedDL) and dls.train.shuffle and not isinstance(dls.valid, TabWeightedDL)
    assert set(torch.cat([b[-1].reshape(-1) for b in dls.train]).tolist()) <= {2.0, 5.0}
