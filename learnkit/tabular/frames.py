"""DataFrame helpers of fastai's ``tabular.core``: date parts, elapsed times between events, smaller dtypes.

``make_date``, ``add_datepart``, ``add_elapsed_times``, ``df_shrink_dtypes``, ``df_shrink`` with fastai's
arguments, defaults and column names (Rossmann / bulldozers lessons).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["make_date", "add_datepart", "add_elapsed_times", "df_shrink_dtypes", "df_shrink"]

_DATE_ATTRS = ["Year", "Month", "Week", "Day", "Dayofweek", "Dayofyear", "Is_month_end", "Is_month_start",
               "Is_quarter_end", "Is_quarter_start", "Is_year_end", "Is_year_start"]

_DT_NAMES = {"Dayofweek": "day_of_week", "Dayofyear": "day_of_year"}  # pandas' current names for fastai's columns


def make_date(df: pd.DataFrame, date_field: str) -> None:
    """Make sure ``df[date_field]`` is a datetime column (parsed in place when it is not)."""
    if date_field not in df.columns:
        raise KeyError(f"make_date: no column {date_field!r} in the DataFrame (columns: {list(df.columns)}).")
    if not pd.api.types.is_datetime64_any_dtype(df[date_field]):
        try:
            df[date_field] = pd.to_datetime(df[date_field])
        except (ValueError, TypeError) as e:
            raise ValueError(f"make_date: column {date_field!r} holds values that are not dates ({e}); clean them or "
                             f"parse it yourself with pd.to_datetime(df[{date_field!r}], format=...).") from e


def add_datepart(df: pd.DataFrame, field_name: str, prefix: str | None = None, drop: bool = True,
                 time: bool = False) -> pd.DataFrame:
    """Add fastai's date-part columns (Year, Month, Week, ..., Elapsed) of ``df[field_name]``; ``df`` is changed too."""
    make_date(df, field_name)
    field = df[field_name]
    prefix = re.sub("[Dd]ate$", "", field_name) if prefix is None else prefix
    attrs = _DATE_ATTRS + (["Hour", "Minute", "Second"] if time else [])
    week = field.dt.isocalendar().week.astype(field.dt.day.dtype)
    for n in attrs:
        df[prefix + n] = week if n == "Week" else getattr(field.dt, _DT_NAMES.get(n, n.lower()))
    seconds = field.to_numpy(dtype="datetime64[s]").astype(np.int64).astype(np.float64)
    df[prefix + "Elapsed"] = np.where(field.isna().to_numpy(), np.nan, seconds)
    if drop:
        del df[field_name]
    return df


def _get_elapsed(df: pd.DataFrame, field_names: list[str], date_field: str, base_field: str,
                 prefix: str) -> pd.DataFrame:
    """Days since the last ``True`` of each event column, restarting at each new ``base_field`` value (rows in order)."""
    day = np.timedelta64(1, "D")
    for f in field_names:
        last_date, last_base, res = np.datetime64("NaT"), None, []
        for b, v, d in zip(df[base_field].to_numpy(), df[f].to_numpy(), df[date_field].to_numpy()):
            if last_base is None or b != last_base:
                last_date, last_base = np.datetime64("NaT"), b
            if v:
                last_date = d
            res.append((d - last_date).astype("timedelta64[D]") / day)
        df[prefix + f] = res
    return df


def add_elapsed_times(df: pd.DataFrame, field_names: str | Sequence[str], date_field: str,
                      base_field: str) -> pd.DataFrame:
    """For each event column: days after the last / before the next event (``After<f>``, ``Before<f>``) and the
    rolling 7-row counts backward / forward (``<f>_bw``, ``<f>_fw``), per ``base_field`` group (fastai's)."""
    field_names = [field_names] if isinstance(field_names, str) else list(field_names)
    missing = [n for n in field_names + [date_field, base_field] if n not in df.columns]
    if missing:
        raise KeyError(f"add_elapsed_times: column(s) {missing} are not in the DataFrame (columns: {list(df.columns)}).")
    df[field_names] = df[field_names].astype("bool")
    make_date(df, date_field)
    work = df[field_names + [date_field, base_field]]
    work = _get_elapsed(work.sort_values([base_field, date_field]), field_names, date_field, base_field, "After")
    work = _get_elapsed(work.sort_values([base_field, date_field], ascending=[True, False]), field_names, date_field,
                        base_field, "Before")
    for a in ["After" + f for f in field_names] + ["Before" + f for f in field_names]:
        work[a] = work[a].fillna(0).astype(int)
    for ascending, suffix in ((True, "_bw"), (False, "_fw")):
        work = work.set_index(date_field)
        tmp = (work[[base_field] + field_names].sort_index(ascending=ascending)
               .groupby(base_field).rolling(7, min_periods=1).sum())
        if base_field in tmp:
            tmp = tmp.drop(base_field, axis=1)
        tmp = tmp.reset_index()
        work = work.reset_index().merge(tmp, "left", [date_field, base_field], suffixes=("", suffix))
    work = work.drop(field_names, axis=1)
    return df.merge(work, "left", [date_field, base_field])


def _is_text(dtype: Any) -> bool:
    return dtype == object or pd.api.types.is_string_dtype(dtype)


def df_shrink_dtypes(df: pd.DataFrame, skip: Sequence[str] = (), obj2cat: bool = True,
                     int2uint: bool = False) -> dict[str, Any]:
    """The smallest dtype each column's values fit (ints, uints with ``int2uint``, floats; text -> ``'category'``
    with ``obj2cat``); columns in ``skip``, categorical, datetime and bool columns are left out (fastai's)."""
    ints = [np.int8, np.int16, np.int32, np.int64]
    uints = [np.uint8, np.uint16, np.uint32, np.uint64]
    floats = [np.float32, np.float64]
    new: dict[str, Any] = {}
    for c, old in df.dtypes.items():
        if c in set(skip) or isinstance(old, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(old) \
                or pd.api.types.is_datetime64_any_dtype(old):
            continue
        if _is_text(old):
            if obj2cat:
                new[c] = "category"
            continue
        if pd.api.types.is_integer_dtype(old):
            lo, hi = df[c].min(), df[c].max()
            cands = uints if (old.kind == "u" or (int2uint and lo >= 0)) else ints
            fits = [np.dtype(t) for t in cands if np.iinfo(t).min <= lo and np.iinfo(t).max >= hi]
        elif pd.api.types.is_float_dtype(old):
            lo, hi = df[c].min(), df[c].max()
            fits = [np.dtype(t) for t in floats if not (np.finfo(t).min > lo or np.finfo(t).max < hi)]
        else:
            continue
        if fits and fits[0] != old:
            new[c] = fits[0]
    return new


def df_shrink(df: pd.DataFrame, skip: Sequence[str] = (), obj2cat: bool = True, int2uint: bool = False) -> pd.DataFrame:
    """A copy of ``df`` cast to the smaller dtypes of ``df_shrink_dtypes`` (less memory)."""
    return df.astype(df_shrink_dtypes(df, skip, obj2cat=obj2cat, int2uint=int2uint))
