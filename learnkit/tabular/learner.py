"""``tabular_learner``: a ``Learner`` with a ``TabularModel`` sized from the DataLoaders, exportable as data."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ..learner import Learner
from ..registry import register_model_builder
from .core import get_emb_sz
from .model import ACTIVATIONS, TabularModel

__all__ = ["tabular_learner", "build_tabular_model"]

_JSON_SCALARS = (int, float, str, bool, type(None))


def _config_spec(config: dict) -> dict | None:
    """``config`` as JSON-safe data (the activation by class name), or None when it can't be described."""
    out: dict = {}
    for k, v in config.items():
        if k == "act_cls":
            if type(v).__name__ not in ACTIVATIONS:
                return None
            out[k] = type(v).__name__
        elif isinstance(v, _JSON_SCALARS) or (isinstance(v, (list, tuple)) and all(isinstance(o, _JSON_SCALARS)
                                                                                  for o in v)):
            out[k] = list(v) if isinstance(v, tuple) else v
        else:
            return None
    return out


def build_tabular_model(spec: dict) -> nn.Module:
    """Rebuild a ``TabularModel`` from the spec ``tabular_learner`` stores (export's model builder)."""
    config = dict(spec.get("config") or {})
    if "act_cls" in config:
        config["act_cls"] = ACTIVATIONS[config["act_cls"]]()
    y_range = spec.get("y_range")
    return TabularModel([tuple(e) for e in spec["emb_szs"]], spec["n_cont"], spec["out_sz"], spec["layers"],
                        y_range=tuple(y_range) if y_range is not None else None, **config)


def tabular_learner(dls: Any, layers: Sequence[int] | None = None, emb_szs: dict | None = None,
                    config: dict | None = None, n_out: int | None = None, y_range: tuple | None = None,
                    metrics: Any = None, **learner_kwargs: Any) -> Learner:
    """A ``Learner`` for ``TabularDataLoaders``: embeddings sized by ``emb_sz_rule`` (or ``emb_szs``), MLP ``layers``."""
    config = dict(config or {})
    layers = [200, 100] if layers is None else list(layers)
    sizes = get_emb_sz(dls, {} if emb_szs is None else emb_szs)
    if n_out is None:
        n_out = dls.c
    if not n_out:
        raise ValueError("tabular_learner could not infer the number of outputs from the DataLoaders (no target "
                         "columns?): pass n_out=.")
    if y_range is None and "y_range" in config:
        y_range = config.pop("y_range")
    n_cont = len(dls.cont_names)
    model = TabularModel(sizes, n_cont, n_out, layers, y_range=y_range, **config)
    learn = Learner(dls, model, metrics=metrics, **learner_kwargs)
    cfg = _config_spec(config)
    learn.model_spec = None if cfg is None else {
        "builder": "tabular_learner", "emb_szs": [list(e) for e in sizes], "n_cont": n_cont, "out_sz": int(n_out),
        "layers": layers, "y_range": None if y_range is None else [float(v) for v in y_range], "config": cfg}
    return learn


register_model_builder("tabular_learner", build_tabular_model)
