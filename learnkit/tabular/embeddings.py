"""Embedding sizes for categorical columns (fastai's rule of thumb)."""
from __future__ import annotations

from typing import Any

__all__ = ["emb_sz_rule", "get_emb_sz"]


def emb_sz_rule(n_cat: int) -> int:
    """fastai's rule of thumb for an embedding size: ``min(600, round(1.6 * n_cat ** 0.56))``."""
    return int(min(600, round(1.6 * n_cat ** 0.56)))


def get_emb_sz(to: Any, sz_dict: dict | None = None) -> list[tuple[int, int]]:
    """``(vocabulary size, embedding size)`` for each categorical column of a TabularPandas or its DataLoaders."""
    sz_dict = sz_dict or {}
    classes = to.classes
    return [(len(classes[n]), int(sz_dict.get(n, emb_sz_rule(len(classes[n]))))) for n in to.cat_names]
