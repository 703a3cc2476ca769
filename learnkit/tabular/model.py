"""``TabularModel``: embeddings for categorical columns, batch-normed continuous columns, then an MLP (fastai's)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..layers import Embedding, LinBnDrop, SigmoidRange, batchnorm1d

__all__ = ["TabularModel", "Embedding", "LinBnDrop", "tabular_config", "ACTIVATIONS"]

# activations a model spec can name (export stores the class name; rebuilt with default arguments)
ACTIVATIONS = {c.__name__: c for c in (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Mish, nn.ELU, nn.Tanh,
                                       nn.Sigmoid, nn.PReLU, nn.SELU)}


def tabular_config(**kwargs: Any) -> dict:
    """Keyword arguments for ``TabularModel`` (``ps``, ``embed_p``, ``use_bn``, ...), as fastai's helper."""
    return kwargs


class TabularModel(nn.Module):
    """Embeddings (one per categorical column) + BatchNorm of the continuous columns, then ``LinBnDrop`` layers."""

    def __init__(self, emb_szs: Sequence[tuple[int, int]], n_cont: int, out_sz: int, layers: Sequence[int],
                 ps: float | Sequence[float] | None = None, embed_p: float = 0.0,
                 y_range: tuple[float, float] | None = None, use_bn: bool = True, bn_final: bool = False,
                 bn_cont: bool = True, act_cls: nn.Module = nn.ReLU(inplace=True), lin_first: bool = True) -> None:
        super().__init__()
        layers = list(layers)
        ps = [0.0] * len(layers) if ps is None else (list(ps) if isinstance(ps, (list, tuple)) else [ps] * len(layers))
        if len(ps) != len(layers):
            raise ValueError(f"TabularModel: ps has {len(ps)} values for {len(layers)} layers {layers}: give one "
                             f"dropout probability per layer (or one number for all).")
        self.embeds = nn.ModuleList([Embedding(ni, nf) for ni, nf in emb_szs])
        self.emb_drop = nn.Dropout(embed_p)
        self.bn_cont = batchnorm1d(n_cont) if bn_cont and n_cont else None
        self.n_emb = sum(e.embedding_dim for e in self.embeds)
        self.n_cont = n_cont
        sizes = [self.n_emb + n_cont] + layers + [out_sz]
        actns: list[nn.Module | None] = [act_cls for _ in range(len(sizes) - 2)] + [None]
        mods: list[nn.Module] = [
            LinBnDrop(sizes[i], sizes[i + 1], bn=use_bn and (i != len(actns) - 1 or bn_final), p=p, act=a,
                      lin_first=lin_first)
            for i, (p, a) in enumerate(zip(ps + [0.0], actns))]
        if y_range is not None:
            mods.append(SigmoidRange(*y_range))
        self.layers = nn.Sequential(*mods)

    def forward(self, x_cat: torch.Tensor, x_cont: torch.Tensor | None = None) -> torch.Tensor:
        """(bs, n_cat) int64 and (bs, n_cont) float32 -> (bs, out_sz)."""
        parts = []
        if self.n_emb:
            if x_cat.shape[1] != len(self.embeds):
                raise ValueError(f"TabularModel has {len(self.embeds)} embeddings but x_cat has {x_cat.shape[1]} "
                                 f"columns (shape {tuple(x_cat.shape)}).")
            parts.append(self.emb_drop(torch.cat([e(x_cat[:, i]) for i, e in enumerate(self.embeds)], 1)))
        if self.n_cont:
            if x_cont is None:
                raise ValueError(f"TabularModel expects {self.n_cont} continuous inputs but got x_cont=None.")
            parts.append(self.bn_cont(x_cont) if self.bn_cont is not None else x_cont)
        x = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        return self.layers(x)
