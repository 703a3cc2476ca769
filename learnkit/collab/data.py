"""``CollabDataLoaders``: user/item/rating tables as tabular loaders (Categorify on user and item, rating as target).

Batches are ``(x, y)`` with ``x`` the ``(bs, 2)`` int64 ids ``[user, item]`` (``n_inp`` 1, as fastai's collab
loaders, so hand-written ``forward(self, x)`` models from the lessons work) and ``y`` the ``(bs, 1)`` ratings.
``dls.classes[user_name]`` / ``dls.classes[item_name]`` are the vocabularies (``'#na#'`` at id 0) of every user and
item in the ratings, the validation rows' too (as fastai: ``get_emb_sz`` sizes the embeddings for all of them).
Users or items not in the ratings get id 0 at prediction time, with a warning (see ``TabularPandas.new``).
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..data.blocks import RegressionBlock
from ..data.splitters import RandomSplitter
from ..tabular.core import Categorify, TabularPandas
from ..tabular.data import TabularDataLoaders
from ..utils import Path

__all__ = ["CollabDataLoaders"]


def _check_roles(df: pd.DataFrame, user_name: Any, item_name: Any, rating_name: Any) -> None:
    """Refuse a table whose columns look swapped: ratings (fractional or non-numeric) used as ids or as the target."""
    r = df[rating_name]
    if not pd.api.types.is_numeric_dtype(r) or pd.api.types.is_bool_dtype(r):
        raise ValueError(f"The rating column {rating_name!r} holds {r.dtype} values, not numbers: the columns are in "
                         f"another order than user, item, rating. Name them: from_df(df, user_name=..., "
                         f"item_name=..., rating_name=...).")
    for role, name in (("user", user_name), ("item", item_name)):
        c = df[name]
        n_na = int(c.isna().sum())
        if n_na:
            warnings.warn(f"The {role} id column {name!r} has {n_na} missing value(s) (rows "
                          f"{list(df.index[c.isna()][:5])}): they would all train as one {role}, '#na#'. Drop them "
                          f"first: ratings = ratings.dropna(subset=[{name!r}]).", UserWarning, stacklevel=3)
        if pd.api.types.is_float_dtype(c) and not np.allclose(c.dropna() % 1, 0):
            raise ValueError(f"The {role} id column {name!r} holds fractional numbers ({c.head(3).tolist()}), which "
                             f"look like ratings: the columns are in another order than user, item, rating. Name "
                             f"them: from_df(df, user_name=..., item_name=..., rating_name=...).")
        if c.nunique() <= 10 < r.nunique() // 10:
            warnings.warn(f"The {role} id column {name!r} has only {c.nunique()} distinct values while the rating "
                          f"column {rating_name!r} has {r.nunique()}: the columns look swapped (ratings used as "
                          f"{role} ids). Name them: from_df(df, user_name=..., item_name=..., rating_name=...).",
                          UserWarning, stacklevel=3)


class CollabDataLoaders(TabularDataLoaders):
    """Loaders for collaborative filtering, built from a ratings table (``from_df`` / ``from_csv``)."""

    @classmethod
    def from_df(cls, ratings: pd.DataFrame, valid_pct: float = 0.2, user_name: str | None = None,
                item_name: str | None = None, rating_name: str | None = None, seed: int | None = None,
                path: str | os.PathLike = ".", bs: int = 64, **kwargs: Any) -> "CollabDataLoaders":
        """Loaders from a ratings DataFrame (default columns: the first three are user, item, rating)."""
        cols = list(ratings.columns) if isinstance(ratings, pd.DataFrame) else []
        if len(cols) < 3 and None in (user_name, item_name, rating_name):
            raise ValueError("CollabDataLoaders.from_df needs a DataFrame with user, item and rating columns (the first "
                             "three by default, or name them with user_name=, item_name=, rating_name=).")
        user_name = cols[0] if user_name is None else user_name
        item_name = cols[1] if item_name is None else item_name
        rating_name = cols[2] if rating_name is None else rating_name
        missing = [n for n in (user_name, item_name, rating_name) if n not in ratings.columns]
        if missing:
            raise KeyError(f"Column(s) {missing} are not in the ratings (columns: {cols}).")
        _check_roles(ratings, user_name, item_name, rating_name)
        splits = RandomSplitter(valid_pct=valid_pct, seed=seed)(range(len(ratings)))
        cat = Categorify()
        cat.all_rows = True  # fastai's collab vocabularies hold every user and item of the ratings
        to = TabularPandas(ratings[[user_name, item_name, rating_name]], procs=[cat],
                           cat_names=[user_name, item_name], y_names=[rating_name], y_block=RegressionBlock(n_out=1),
                           splits=splits)
        return cls.from_tabular(to, bs=bs, path=path, with_cont=False, **kwargs)

    @classmethod
    def from_csv(cls, csv: str | os.PathLike, **kwargs: Any) -> "CollabDataLoaders":
        """Loaders from a ratings CSV (read with pandas); see ``from_df``."""
        csv = Path(csv)
        if not csv.exists():
            raise FileNotFoundError(f"No ratings CSV at {csv}.")
        return cls.from_df(pd.read_csv(csv), **kwargs)
