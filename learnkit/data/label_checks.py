"""Checks on a column of labels before a vocabulary is learned from it: mixed types that would split one class in two."""
from __future__ import annotations

import warnings
from collections.abc import Iterable
from numbers import Number
from typing import Any

__all__ = ["check_label_types"]


def _type_group(v: Any) -> str:
    """``'number'`` for ints and floats (1 and 1.0 are one class), else the type's name."""
    return "number" if isinstance(v, Number) and not isinstance(v, bool) else type(v).__name__


def check_label_types(labels: Iterable, where: str = "the training labels") -> None:
    """Refuse labels that print the same but differ in type (``3`` and ``'3'``); warn on any other mix of types.

    ``labels`` are the non-missing training labels (Python scalars); ``where`` names them in the message
    (``"column 'y'"``).
    """
    by_group: dict[str, dict] = {}
    for v in labels:
        by_group.setdefault(_type_group(v), {}).setdefault(v, None)
    if len(by_group) < 2:
        return
    by_text: dict[str, set] = {}
    for values in by_group.values():
        for v in values:
            by_text.setdefault(str(v), set()).add(v)
    clashes = [sorted(vs, key=lambda o: type(o).__name__) for vs in by_text.values() if len(vs) > 1]
    if clashes:
        shown = "; ".join(" and ".join(f"{v!r} ({type(v).__name__})" for v in vs) for vs in clashes[:3])
        raise ValueError(f"Mixed types in {where}, so one class would become two: {shown}. Make them one type first, "
                         f"e.g. df[col] = df[col].astype(str) or a get_y that returns str(label).")
    shown = ", ".join(f"{g} (e.g. {next(iter(vs))!r})" for g, vs in sorted(by_group.items()))
    warnings.warn(f"Mixed types in {where}: {shown}. They are kept as separate classes; if they should be one type, "
                  f"convert them (e.g. .astype(str)) before building the DataLoaders.", UserWarning, stacklevel=3)
