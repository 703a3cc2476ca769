"""Hugging Face ``transformers`` models in a plain ``Learner``: exported as data (the config + weights).

A ``*ForImageClassification`` / ``*ForSequenceClassification`` model (any ``PreTrainedModel``) is described
as ``{"builder": "hf_transformers", "class": <its transformers class name>, "config": <its config dict>}``;
``load_learner`` rebuilds it from that: the class is looked up by name in ``transformers`` (never unpickled).
``learnkit.registry.describe_model`` imports this module when a model comes from ``transformers``.
``transformers`` is optional: this module imports it only when a model is rebuilt.
"""
from __future__ import annotations

import json
from typing import Any

from torch import nn

from .registry import ExportError, register_model_builder, register_model_describer

__all__ = ["describe_hf_model", "build_hf_model"]


def describe_hf_model(model: nn.Module) -> dict | None:
    """The JSON-safe spec of a ``transformers`` ``PreTrainedModel`` (class name, config, n_out), else None."""
    config = getattr(model, "config", None)
    if not type(model).__module__.startswith("transformers.") or not hasattr(config, "to_json_string"):
        return None
    import transformers
    if getattr(transformers, type(model).__name__, None) is not type(model):
        return None  # a subclass defined elsewhere: not rebuildable by name
    cfg = json.loads(config.to_json_string(use_diff=False))
    spec: dict[str, Any] = {"builder": "hf_transformers", "class": type(model).__name__, "config": cfg}
    if "ForImageClassification" in spec["class"] or "ForSequenceClassification" in spec["class"]:
        spec["n_out"] = int(config.num_labels)
    return spec


def build_hf_model(spec: dict) -> nn.Module:
    """A ``transformers`` model of class ``spec['class']`` from ``spec['config']`` (random weights, loaded after)."""
    try:
        import transformers
    except ImportError as e:
        raise ImportError('This export holds a Hugging Face transformers model: pip install "learnkit[hf]".') from e
    cls = getattr(transformers, spec["class"], None)
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        raise ExportError(f"The export names the model class {spec['class']!r}, which is not a transformers model "
                          f"class in transformers {transformers.__version__}: upgrade transformers.")
    cfg = dict(spec["config"])
    config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    return cls(config)


register_model_builder("hf_transformers", build_hf_model)
register_model_describer("transformers", describe_hf_model)
