"""Collaborative-filtering models: ``EmbeddingDotBias`` (dot product + biases) and ``EmbeddingNN`` (an MLP)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..layers import sigmoid_range
from ..tabular.core import CategoryMap
from ..tabular.model import Embedding, TabularModel

__all__ = ["EmbeddingDotBias", "EmbeddingNN"]


class EmbeddingDotBias(nn.Module):
    """Rating = user·item factors + user bias + item bias (squashed into ``y_range`` when given); fastai's names."""

    def __init__(self, n_factors: int, n_users: int, n_items: int, y_range: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.y_range = None if y_range is None else (float(y_range[0]), float(y_range[1]))
        self.u_weight, self.i_weight, self.u_bias, self.i_bias = [
            Embedding(*o) for o in [(n_users, n_factors), (n_items, n_factors), (n_users, 1), (n_items, 1)]]
        self.classes: dict | None = None
        self.user: str | None = None
        self.item: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(bs, 2) ids ``[user, item]`` -> (bs,) predicted ratings."""
        users, items = x[:, 0], x[:, 1]
        res = (self.u_weight(users) * self.i_weight(items)).sum(1) + self.u_bias(users).squeeze(-1) \
            + self.i_bias(items).squeeze(-1)
        return res if self.y_range is None else sigmoid_range(res, *self.y_range)

    @classmethod
    def from_classes(cls, n_factors: int, classes: dict, user: str | None = None, item: str | None = None,
                     y_range: tuple[float, float] | None = None) -> "EmbeddingDotBias":
        """Sized from the DataLoaders' ``classes`` (first key users, second items); keeps them for ``weight``/``bias``."""
        keys = list(classes)
        user = keys[0] if user is None else user
        item = keys[1] if item is None else item
        res = cls(n_factors, len(classes[user]), len(classes[item]), y_range=y_range)
        res.classes = {k: v if isinstance(v, CategoryMap) else CategoryMap(v) for k, v in classes.items()}
        res.user, res.item = user, item
        return res

    def _get_idx(self, arr: Sequence[Any], is_item: bool = True) -> torch.Tensor:
        if self.classes is None:
            raise ValueError("This model has no vocabularies to look ids up in: build it with "
                             "EmbeddingDotBias.from_classes(n_factors, dls.classes) (collab_learner does).")
        name = self.item if is_item else self.user
        ids = self.classes[name].map_ids(list(arr), f"{'Item' if is_item else 'User'} ({name!r})")
        return torch.tensor(ids, dtype=torch.int64, device=self.u_weight.weight.device)

    @torch.no_grad()
    def bias(self, arr: Sequence[Any], is_item: bool = True) -> torch.Tensor:
        """Learned biases of items (or users) given by their original ids/titles, on the CPU, squeezed as fastai's
        (``bias([item])`` is a 0-d tensor)."""
        layer = self.i_bias if is_item else self.u_bias
        return layer(self._get_idx(arr, is_item)).squeeze().detach().cpu()

    @torch.no_grad()
    def weight(self, arr: Sequence[Any], is_item: bool = True) -> torch.Tensor:
        """Learned factors of items (or users) given by their original ids/titles, ``(len(arr), n_factors)``, CPU."""
        layer = self.i_weight if is_item else self.u_weight
        return layer(self._get_idx(arr, is_item)).detach().cpu()


class EmbeddingNN(TabularModel):
    """A ``TabularModel`` with no continuous inputs and one output: embeddings of user and item, then an MLP."""

    def __init__(self, emb_szs: Sequence[tuple[int, int]], layers: Sequence[int], **kwargs: Any) -> None:
        super().__init__(emb_szs=emb_szs, n_cont=0, out_sz=1, layers=layers, **kwargs)
