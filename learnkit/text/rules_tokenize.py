"""fastai's tokenizing helpers around a word tokenizer: ``TokenizeWithRules`` and ``tokenize_df``."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd

from .core import FLD, _apply_rules, _tokenize_all, defaults

__all__ = ["TokenizeWithRules", "tokenize_df"]


class TokenizeWithRules:
    """A wrapper around ``tok`` which applies ``rules``, then tokenizes, then applies ``post_rules`` to each token."""

    def __init__(self, tok: Callable, rules: Sequence[Callable] | None = None,
                 post_rules: Sequence[Callable] | None = None) -> None:
        self.rules = list(defaults.text_proc_rules if rules is None else rules)
        self.post_rules = list(defaults.text_postproc_rules if post_rules is None else post_rules)
        self.tok = tok

    def __call__(self, batch: Iterable[str]) -> list[list[str]]:
        """The token lists of the texts of ``batch``."""
        toks = self.tok([_apply_rules(t, self.rules) for t in batch])
        return [[_apply_rules(w, self.post_rules) for w in o] for o in toks]


def _join_texts(df: pd.DataFrame, mark_fields: bool = False) -> list[str]:
    """Each row's text columns joined by spaces, each field preceded by ``xxfld <n>`` when ``mark_fields``."""
    col = (f"{FLD} 1 " if mark_fields else "") + df.iloc[:, 0].astype(str)
    for i in range(1, len(df.columns)):
        col += (f" {FLD} {i + 1} " if mark_fields else " ") + df.iloc[:, i].astype(str)
    return list(col.values)


def tokenize_df(df: pd.DataFrame, text_cols: Any, n_workers: int | None = None, rules: Sequence[Callable] | None = None,
                mark_fields: bool | None = None, tok: Any = None, tok_text_col: str = "text") -> tuple[pd.DataFrame, Counter]:
    """``(df without text_cols plus tok_text_col (token lists) and tok_text_col_length, token counts)`` (fastai's).

    ``text_cols``: names or positions; several are joined, marked with ``xxfld`` (default when more than one).
    """
    cols = [text_cols] if isinstance(text_cols, (str, int)) else list(text_cols)
    missing = [c for c in cols if not isinstance(c, int) and c not in df.columns]
    if missing:
        raise KeyError(f"tokenize_df: text column(s) {missing} not in the DataFrame (columns: {list(df.columns)}).")
    cols = [df.columns[c] if isinstance(c, int) else c for c in cols]
    if mark_fields is None:
        mark_fields = len(cols) > 1
    outputs = _tokenize_all(_join_texts(df[cols], mark_fields=mark_fields), tok=tok, rules=rules, n_workers=n_workers)
    res = df[df.columns[~df.columns.isin(cols)]].copy()
    res[tok_text_col] = outputs
    res[f"{tok_text_col}_length"] = [len(o) for o in outputs]
    return res, Counter(w for o in outputs for w in o)
