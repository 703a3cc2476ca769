"""Hugging Face ``transformers`` models in a plain ``Learner``: exported as data (the config + weights).

A ``*ForImageClassification`` / ``*ForSequenceClassification`` model (any ``PreTrainedModel``) is described
as ``{"builder": "hf_transformers", "class": <its transformers class name>, "config": <its config dict>}``;
``load_learner`` rebuilds it from that: the class is looked up by name in ``transformers`` (never unpickled).
``learnkit.registry.describe_model`` imports this module when a model comes from ``transformers``.
``transformers`` is optional: this module imports it only when a model is rebuilt.
"""
from __future__ import annotations

import functools
import inspect
import json
from typing import Any, Callable

import torch
from torch import nn

from .registry import ExportError, register_model_builder, register_model_describer

__all__ = ["describe_hf_model", "build_hf_model", "config_from_dict", "transformer_inputs", "text_input_fn"]


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
    return cls(config_from_dict(spec["config"]))


def config_from_dict(config: dict) -> Any:
    """The transformers config a ``config.to_dict()`` came from (its ``model_type`` picks the class)."""
    from transformers import AutoConfig
    cfg = dict(config)
    return AutoConfig.for_model(cfg.pop("model_type"), **cfg)


def transformer_inputs(x: torch.Tensor, pad_idx: int, sep_idx: int | None = None,
                       pad_first: bool = False) -> dict[str, torch.Tensor]:
    """A transformers encoder's inputs for padded ids ``x`` ``(bs, L)``: the ids padded at the end (``pad_first``:
    moved there from the start, as the model's positions and first-token pooler expect), the attention mask (not
    pad) and, given ``sep_idx``, the token types of a sentence pair (1 after the first separator, as the tokenizer
    sets them)."""
    if pad_first:  # roll each row left by its number of leading pads
        n_pad = (x != pad_idx).long().argmax(1, keepdim=True)
        x = x.gather(1, (torch.arange(x.shape[1], device=x.device) + n_pad) % x.shape[1])
    mask = (x != pad_idx).long()
    out = {"input_ids": x, "attention_mask": mask}
    if sep_idx is not None:
        sep = (x == sep_idx).long()
        out["token_type_ids"] = (sep.cumsum(1) - sep).clamp(max=1) * mask
    return out


def text_input_fn(model: nn.Module, dls: Any) -> Callable[[torch.Tensor], dict] | None:
    """For a transformers text model on text loaders: ids -> its keyword inputs (attention mask, token types); else None."""
    m = getattr(model, "module", model)  # DDP / DataParallel wrap the model
    if not type(m).__module__.startswith("transformers."):
        return None
    params = inspect.signature(m.forward).parameters
    train = getattr(dls, "train", None)
    pad = getattr(train, "pad_idx", None)
    if "input_ids" not in params or "attention_mask" not in params or pad is None:
        return None
    tokenizer = getattr(getattr(dls, "encoder", None), "tokenizer", None)
    sep = getattr(tokenizer, "sep_token_id", None)
    typed = "token_type_ids" in params and getattr(getattr(m, "config", None), "type_vocab_size", 0) > 1
    return functools.partial(transformer_inputs, pad_idx=int(pad), sep_idx=sep if typed else None,
                             pad_first=bool(getattr(train, "pad_first", False)))


register_model_builder("hf_transformers", build_hf_model)
register_model_describer("transformers", describe_hf_model)
