"""What ``Learner.validate`` returns: the ``[loss, *metrics]`` list, named for the split it was computed on."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["EvalResult"]


class EvalResult(list):
    """``[loss, *metrics]`` (a plain list for code that indexes it) with ``names`` such as ``test_loss, accuracy``."""

    def __init__(self, values: Iterable[float | None], names: Sequence[str], split: str = "valid") -> None:
        super().__init__(values)
        self.names, self.split = list(names), split

    def as_dict(self) -> dict[str, float | None]:
        """``{name: value}``."""
        return dict(zip(self.names, self))

    def __repr__(self) -> str:
        vals = ", ".join(f"{n}={'None' if v is None else f'{v:.6g}'}" for n, v in zip(self.names, self))
        return f"EvalResult({vals})"
