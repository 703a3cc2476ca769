"""``collab_learner``: a ``Learner`` with ``EmbeddingDotBias`` (or ``EmbeddingNN``) sized from the DataLoaders."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ..learner import Learner
from ..losses import MSELossFlat
from ..registry import register_model_builder
from ..tabular.core import get_emb_sz
from ..tabular.learner import _config_spec
from ..tabular.model import ACTIVATIONS
from .model import EmbeddingDotBias, EmbeddingNN

__all__ = ["collab_learner", "build_collab_model"]


def build_collab_model(spec: dict) -> nn.Module:
    """Rebuild a collab model from the spec ``collab_learner`` stores (export's model builder)."""
    y_range = tuple(spec["y_range"]) if spec.get("y_range") is not None else None
    if spec["kind"] == "dot":
        return EmbeddingDotBias.from_classes(spec["n_factors"], spec["classes"], user=spec["user"],
                                             item=spec["item"], y_range=y_range)
    config = dict(spec.get("config") or {})
    if "act_cls" in config:
        config["act_cls"] = ACTIVATIONS[config["act_cls"]]()
    config["y_range"] = y_range
    return EmbeddingNN([tuple(e) for e in spec["emb_szs"]], spec["layers"], **config)


def collab_learner(dls: Any, n_factors: int = 50, use_nn: bool = False, emb_szs: dict | None = None,
                   layers: Sequence[int] | None = None, config: dict | None = None,
                   y_range: tuple[float, float] | None = None, loss_func: Any = None,
                   **kwargs: Any) -> Learner:
    """A ``Learner`` for ``CollabDataLoaders``: dot product with biases (default) or an MLP (``use_nn=True``)."""
    sizes = get_emb_sz(dls, {} if emb_szs is None else emb_szs)
    loss_func = MSELossFlat() if loss_func is None else loss_func
    config = dict(config or {})
    if y_range is not None:
        config["y_range"] = y_range
    layers = [n_factors] if layers is None else list(layers)
    yr = None if y_range is None else [float(v) for v in y_range]
    if use_nn:
        model: nn.Module = EmbeddingNN(emb_szs=sizes, layers=layers, **config)
        cfg = _config_spec({k: v for k, v in config.items() if k != "y_range"})
        spec = None if cfg is None else {"builder": "collab_learner", "kind": "nn", "emb_szs": [list(e) for e in sizes],
                                         "layers": layers, "config": cfg, "y_range": yr}
    else:
        model = EmbeddingDotBias.from_classes(n_factors, dls.classes, y_range=y_range)
        spec = {"builder": "collab_learner", "kind": "dot", "n_factors": n_factors, "user": model.user,
                "item": model.item, "y_range": yr, "classes": {k: list(v) for k, v in dls.classes.items()}}
    learn = Learner(dls, model, loss_func=loss_func, **kwargs)
    learn.model_spec = spec
    return learn


register_model_builder("collab_learner", build_collab_model)
