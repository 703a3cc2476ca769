"""Language model and classifier around a text encoder (AWD-LSTM): fastai's ``get_language_model`` and
``get_text_classifier``. As fastai's, the models return ``(logits, raw_out, out)`` (plain tensors): the encoder's
output and its dropped-out copy, for AR/TAR. The text learners' ``RNNCallback`` keeps the logits as ``learn.pred``;
the head module also keeps ``raw_out`` / ``out`` for ``RNNRegularizer`` to read."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ...layers import LinBnDrop, SigmoidRange
from .awdlstm import AWD_LSTM, RNNDropout, awd_lstm_clas_config, awd_lstm_clas_split, awd_lstm_lm_config, \
    awd_lstm_lm_split

__all__ = ["LinearDecoder", "SequentialRNN", "SentenceEncoder", "masked_concat_pool", "PoolingLinearClassifier",
           "get_language_model", "get_text_classifier", "model_meta"]

#: per architecture: its configs, the config key holding the output size, its splitters
model_meta: dict[Any, dict] = {
    AWD_LSTM: {"hid_name": "emb_sz", "config_lm": awd_lstm_lm_config, "config_clas": awd_lstm_clas_config,
               "split_lm": awd_lstm_lm_split, "split_clas": awd_lstm_clas_split, "name": "AWD_LSTM"},
}


class LinearDecoder(nn.Module):
    """Locked dropout then a linear layer to the vocab (weights tied to the encoder's embedding when given)."""

    initrange = 0.1

    def __init__(self, n_out: int, n_hid: int, output_p: float = 0.1, tie_encoder: nn.Module | None = None,
                 bias: bool = True) -> None:
        super().__init__()
        self.decoder = nn.Linear(n_hid, n_out, bias=bias)
        with torch.no_grad():
            self.decoder.weight.uniform_(-self.initrange, self.initrange)
            if bias:
                self.decoder.bias.zero_()
        self.output_dp = RNNDropout(output_p)
        if tie_encoder is not None:
            self.decoder.weight = tie_encoder.weight
        self.raw_out: torch.Tensor | None = None
        self.out: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits (bs, seq_len, n_out), the encoder output, its dropped-out copy) — fastai's three outputs."""
        dp = self.output_dp(x)
        self.raw_out, self.out = x, dp
        return self.decoder(dp), x, dp


class SequentialRNN(nn.Sequential):
    """A sequential module that passes ``reset()`` on to its children that have one."""

    def reset(self) -> None:
        """Reset the hidden state of every stateful child."""
        for c in self.children():
            if hasattr(c, "reset"):
                c.reset()


class SentenceEncoder(nn.Module):
    """Runs ``module`` over a whole text in chunks of ``bptt`` tokens; returns outputs and the padding mask."""

    def __init__(self, bptt: int, module: nn.Module, pad_idx: int = 1, max_len: int | None = None) -> None:
        super().__init__()
        self.bptt, self.module, self.pad_idx, self.max_len = bptt, module, pad_idx, max_len

    def reset(self) -> None:
        """Reset the wrapped encoder."""
        if hasattr(self.module, "reset"):
            self.module.reset()

    def forward(self, inp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(outputs of the last ``max_len`` tokens (bs, L, n), their padding mask (bs, L))."""
        sl = inp.shape[1]
        self.reset()
        outs, masks = [], []
        for i in range(0, sl, self.bptt):
            o = self.module(inp[:, i:min(i + self.bptt, sl)])
            if self.max_len is None or sl - i <= self.max_len:
                outs.append(o)
                masks.append(inp[:, i:min(i + self.bptt, sl)] == self.pad_idx)
        return torch.cat(outs, dim=1), torch.cat(masks, dim=1)


def masked_concat_pool(output: torch.Tensor, mask: torch.Tensor, bptt: int | None = None) -> torch.Tensor:
    """Concat pooling over the non-pad positions: [last real token, max, mean] -> (bs, 3n).

    ``bptt`` is fastai's argument (it finds the last token from the padding of the last ``bptt`` chunk); the last
    real token is found from the mask here, the same on ``pad_input_chunk`` batches, and for any padding."""
    keep = ~mask
    n_real = keep.sum(dim=1).clamp(min=1)
    pos = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last_idx = torch.where(keep, pos, torch.full_like(pos, -1)).max(dim=1).values.clamp(min=0)
    last = output[torch.arange(output.shape[0], device=output.device), last_idx]
    avg = output.masked_fill(mask[:, :, None], 0).sum(dim=1) / n_real[:, None].to(output.dtype)
    mx = output.masked_fill(mask[:, :, None], float("-inf")).max(dim=1).values
    mx = torch.where(torch.isinf(mx), torch.zeros_like(mx), mx)  # an all-pad row
    return torch.cat([last, mx, avg], dim=1)


class PoolingLinearClassifier(nn.Module):
    """Concat pooling of the encoder outputs, then ``LinBnDrop`` layers (``dims``, dropouts ``ps``)."""

    def __init__(self, dims: Sequence[int], ps: Sequence[float], bptt: int,
                 y_range: tuple[float, float] | None = None) -> None:
        super().__init__()
        if len(ps) != len(dims) - 1:
            raise ValueError(f"Need one dropout per layer: {len(dims) - 1} layers (dims={list(dims)}) but "
                             f"ps={list(ps)}.")
        acts = [nn.ReLU(inplace=True)] * (len(dims) - 2) + [None]
        layers: list[nn.Module] = [LinBnDrop(i, o, p=p, act=a) for i, o, p, a in zip(dims[:-1], dims[1:], ps, acts)]
        if y_range is not None:
            layers.append(SigmoidRange(*y_range))
        self.layers = nn.Sequential(*layers)
        self.bptt = bptt
        self.raw_out: torch.Tensor | None = None
        self.out: torch.Tensor | None = None

    def forward(self, inp: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits (bs, n_out), encoder outputs, encoder outputs) from the SentenceEncoder's (outputs, mask)."""
        out, mask = inp
        self.raw_out = self.out = out
        return self.layers(masked_concat_pool(out, mask, self.bptt)), out, out


def _scaled(config: dict, drop_mult: float) -> dict:
    return {k: (v * drop_mult if k.endswith("_p") else v) for k, v in config.items()}


def _meta(arch: Any) -> dict:
    if arch not in model_meta:
        known = [m["name"] for m in model_meta.values()]
        raise ValueError(f"Unknown text architecture {arch!r}: learnkit's are {known} "
                         f"(pass the class, e.g. AWD_LSTM), or a transformer name/folder to text_classifier_learner.")
    return model_meta[arch]


def get_language_model(arch: Any, vocab_sz: int, config: dict | None = None, drop_mult: float = 1.0) -> SequentialRNN:
    """fastai's language model: ``arch`` encoder + ``LinearDecoder`` (weights tied by default).

    ``config`` overrides the architecture's defaults (``awd_lstm_lm_config``), e.g. ``dict(emb_sz=100)``.
    """
    meta = _meta(arch)
    config = _scaled({**meta["config_lm"], **(config or {})}, drop_mult)  # config overrides the defaults
    tie_weights, output_p, out_bias = (config.pop(k) for k in ("tie_weights", "output_p", "out_bias"))
    encoder = arch(vocab_sz, **config)
    decoder = LinearDecoder(vocab_sz, config[meta["hid_name"]], output_p,
                            tie_encoder=encoder.encoder if tie_weights else None, bias=out_bias)
    return SequentialRNN(encoder, decoder)


def get_text_classifier(arch: Any, vocab_sz: int, n_class: int, seq_len: int = 72, config: dict | None = None,
                        drop_mult: float = 1.0, lin_ftrs: Sequence[int] | None = None,
                        ps: Sequence[float] | None = None, pad_idx: int = 1, max_len: int | None = 72 * 20,
                        y_range: tuple[float, float] | None = None) -> SequentialRNN:
    """fastai's classifier: ``SentenceEncoder(arch)`` + ``PoolingLinearClassifier`` (concat pooling head).

    ``config`` overrides the architecture's defaults (``awd_lstm_clas_config``), e.g. ``dict(n_layers=2)``.
    """
    meta = _meta(arch)
    config = _scaled({**meta["config_clas"], **(config or {})}, drop_mult)
    lin_ftrs = [50] if lin_ftrs is None else list(lin_ftrs)
    ps = [0.1] * len(lin_ftrs) if ps is None else list(ps)
    dims = [config[meta["hid_name"]] * 3] + lin_ftrs + [n_class]
    ps = [config.pop("output_p")] + ps
    encoder = SentenceEncoder(seq_len, arch(vocab_sz, **config), pad_idx=pad_idx, max_len=max_len)
    return SequentialRNN(encoder, PoolingLinearClassifier(dims, ps, bptt=seq_len, y_range=y_range))
