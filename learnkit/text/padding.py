"""fastai's text collate helpers: ``pad_input``, ``pad_chunk``, ``pad_input_chunk`` and ``reverse_text``."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["reverse_text", "pad_input", "pad_chunk", "pad_input_chunk"]


def reverse_text(x: torch.Tensor) -> torch.Tensor:
    """The token ids of ``x`` in reverse order (for backwards language models)."""
    return x.flip(0)


def pad_input(samples: Sequence[tuple], pad_idx: int = 1, pad_fields: int | Sequence[int] = 0,
              pad_first: bool = False, backwards: bool = False) -> list[tuple]:
    """``samples`` with the tensors of fields ``pad_fields`` padded with ``pad_idx`` to the longest in the batch.

    ``pad_first`` pads on the left; ``backwards`` pads on the other side and reverses the padded field.
    """
    fields = [pad_fields] if isinstance(pad_fields, int) else list(pad_fields)
    max_len = {f: max(len(s[f]) for s in samples) for f in fields}
    if backwards:
        pad_first = not pad_first

    def _f(i: int, x: Any) -> Any:
        if i not in max_len:
            return x
        pad = x.new_zeros(max_len[i] - x.shape[0]) + pad_idx
        x1 = torch.cat([pad, x] if pad_first else [x, pad])
        return x1.flip(0) if backwards else x1
    return [tuple(_f(i, x) for i, x in enumerate(s)) for s in samples]


def pad_chunk(x: torch.Tensor, pad_idx: int = 1, pad_first: bool = True, seq_len: int = 72,
              pad_len: int = 10) -> torch.Tensor:
    """``x`` padded to ``pad_len``: whole ``seq_len`` chunks of padding before (``pad_first``) or after it, the rest at the end."""
    n = pad_len - x.shape[0]
    chunk = x.new_zeros((n // seq_len) * seq_len) + pad_idx
    rest = x.new_zeros(n % seq_len) + pad_idx
    return torch.cat([chunk, x, rest]) if pad_first else torch.cat([x, chunk, rest])


def pad_input_chunk(samples: Sequence[tuple], n_inp: int = 1, **kwargs: Any) -> list[tuple]:
    """``samples`` with their first ``n_inp`` fields padded by ``pad_chunk`` to the batch's longest (fastai's
    classifier collate: whole chunks of padding go where the RNN reads them first)."""
    max_len = max(len(s[n]) for s in samples for n in range(n_inp))
    padded = [[pad_chunk(s[n], pad_len=max_len, **kwargs) for n in range(n_inp)] for s in samples]
    return [(*p, *s[n_inp:]) for p, s in zip(padded, samples)]
