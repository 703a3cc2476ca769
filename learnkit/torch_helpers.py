"""Small helpers from fastai's torch_core that the book calls: ``to_cpu``, ``sequential``, ``params``, ``subplots``, ``progress_bar``."""
from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import torch
from torch import nn

from tqdm.auto import tqdm

from learnkit.layers import Lambda

__all__ = ["to_cpu", "sequential", "params", "subplots", "progress_bar"]


def to_cpu(b: Any) -> Any:
    """Move the tensors in ``b`` (nested tuples, lists and dicts of them) to the CPU."""
    if isinstance(b, torch.Tensor):
        return b.cpu()
    if isinstance(b, dict):
        return {k: to_cpu(v) for k, v in b.items()}
    if isinstance(b, (list, tuple)):
        return type(b)(to_cpu(o) for o in b) if not hasattr(b, "_fields") else type(b)(*(to_cpu(o) for o in b))
    return b


def sequential(*args: Any) -> nn.Sequential:
    """``nn.Sequential`` whose arguments may also be plain functions (wrapped in ``Lambda``)."""
    return nn.Sequential(*(a if isinstance(a, nn.Module) else Lambda(a) for a in args))


def params(m: nn.Module) -> list[nn.Parameter]:
    """All the parameters of ``m``, as a list (for a custom ``splitter``)."""
    return list(m.parameters())


def subplots(nrows: int = 1, ncols: int = 1, figsize: tuple | None = None, imsize: float = 3,
             suptitle: str | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """``plt.subplots`` sized ``imsize`` inches per plot when no ``figsize`` is given (fastai's ``subplots``)."""
    if figsize is None:
        figsize = (ncols * imsize, nrows * imsize + (0.6 if suptitle else 0))
    fig, ax = plt.subplots(nrows, ncols, figsize=figsize, **kwargs)
    if suptitle is not None:
        fig.suptitle(suptitle)
    return fig, ax


def progress_bar(gen: Any, total: int | None = None, leave: bool = True, **kwargs: Any) -> Any:
    """A progress bar over ``gen`` (fastprogress's ``progress_bar``; drawn by tqdm)."""
    return tqdm(gen, total=total, leave=leave, **kwargs)
