"""fastai's AWD-LSTM (Merity et al.): LSTMs with weight-dropped hidden matrices, embedding dropout and locked
(same mask at every time step) dropout between layers. Parameter names are fastai's, so its WT103 weights load."""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["dropout_mask", "RNNDropout", "WeightDropout", "EmbeddingDropout", "AWD_LSTM", "awd_lstm_lm_config",
           "awd_lstm_clas_config", "awd_lstm_lm_split", "awd_lstm_clas_split"]


def dropout_mask(x: torch.Tensor, sz: Sequence[int], p: float) -> torch.Tensor:
    """A dropout mask of size ``sz`` like ``x``: zeros with probability ``p``, the rest ``1/(1-p)``."""
    return x.new_empty(*sz).bernoulli_(1 - p).div_(1 - p)


class RNNDropout(nn.Module):
    """Locked dropout: one mask per sequence, the same at every time step (input (bs, seq_len, n))."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with whole features dropped for every time step."""
        if not self.training or self.p == 0.0:
            return x
        return x * dropout_mask(x.detach(), (x.size(0), 1, *x.shape[2:]), self.p)


class WeightDropout(nn.Module):
    """Wraps an LSTM and drops out its hidden-to-hidden weights (``layer_names``) at every training step.

    The weights live here as ``<name>_raw`` parameters (fastai's names); each forward hands the module a
    (dropped-out, on training) copy.
    """

    def __init__(self, module: nn.Module, weight_p: float, layer_names: str | Sequence[str] = "weight_hh_l0") -> None:
        super().__init__()
        self.module, self.weight_p = module, weight_p
        self.layer_names = [layer_names] if isinstance(layer_names, str) else list(layer_names)
        for layer in self.layer_names:
            w = getattr(self.module, layer)
            delattr(self.module, layer)
            self.register_parameter(f"{layer}_raw", nn.Parameter(w.detach().clone()))
            setattr(self.module, layer, w.detach().clone())

    def _setweights(self) -> None:
        for layer in self.layer_names:
            raw = getattr(self, f"{layer}_raw")
            setattr(self.module, layer, F.dropout(raw, p=self.weight_p) if self.training else raw * 1.0)

    def forward(self, *args: Any) -> Any:
        """The wrapped module's output with dropped-out hidden weights."""
        self._setweights()
        with warnings.catch_warnings():  # "weights are not part of a single contiguous chunk": expected here
            warnings.simplefilter("ignore", category=UserWarning)
            return self.module(*args)


class EmbeddingDropout(nn.Module):
    """Drops whole rows (words) of the embedding matrix on training."""

    def __init__(self, emb: nn.Embedding, embed_p: float) -> None:
        super().__init__()
        self.emb, self.embed_p = emb, embed_p

    def forward(self, words: torch.Tensor, scale: float | None = None) -> torch.Tensor:
        """Embeddings of ``words`` with some words' vectors zeroed (the same word everywhere in the batch)."""
        w = self.emb.weight
        if self.training and self.embed_p != 0:
            w = w * dropout_mask(w.detach(), (w.size(0), 1), self.embed_p)
        if scale:
            w = w * scale
        pad = self.emb.padding_idx if self.emb.padding_idx is not None else -1
        return F.embedding(words, w, pad, self.emb.max_norm, self.emb.norm_type, self.emb.scale_grad_by_freq,
                           self.emb.sparse)


class AWD_LSTM(nn.Module):
    """fastai's AWD-LSTM encoder: token ids (bs, seq_len) -> last layer's outputs (bs, seq_len, emb_sz).

    Stateful as fastai's: the hidden state carries over from one call to the next (language-model streams
    continue across batches) until ``reset()``.
    """

    initrange = 0.1

    def __init__(self, vocab_sz: int, emb_sz: int = 400, n_hid: int = 1152, n_layers: int = 3, pad_token: int = 1,
                 hidden_p: float = 0.3, input_p: float = 0.4, embed_p: float = 0.05, weight_p: float = 0.5,
                 bidir: bool = False) -> None:
        super().__init__()
        self.emb_sz, self.n_hid, self.n_layers, self.pad_token = emb_sz, n_hid, n_layers, pad_token
        self.bs, self.n_dir = 1, 2 if bidir else 1
        self.encoder = nn.Embedding(vocab_sz, emb_sz, padding_idx=pad_token)
        self.encoder_dp = EmbeddingDropout(self.encoder, embed_p)
        self.rnns = nn.ModuleList([
            WeightDropout(nn.LSTM(emb_sz if l == 0 else n_hid, (n_hid if l != n_layers - 1 else emb_sz) // self.n_dir,
                                  1, batch_first=True, bidirectional=bidir), weight_p)
            for l in range(n_layers)])
        with torch.no_grad():
            self.encoder.weight.uniform_(-self.initrange, self.initrange)
        self.input_dp = RNNDropout(input_p)
        self.hidden_dps = nn.ModuleList([RNNDropout(hidden_p) for _ in range(n_layers)])
        self.hidden: list | None = None

    def _one_hidden(self, l: int, bs: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        nh = (self.n_hid if l != self.n_layers - 1 else self.emb_sz) // self.n_dir
        z = like.new_zeros(self.n_dir, bs, nh)
        return z, z.clone()

    def reset(self) -> None:
        """Forget the hidden state (the next call starts from zeros)."""
        self.hidden = None

    def forward(self, inp: torch.Tensor, from_embeds: bool = False) -> torch.Tensor:
        """Outputs of the last LSTM layer for ``inp`` (ids, or embeddings when ``from_embeds``)."""
        bs = inp.shape[0]
        emb = inp if from_embeds else self.encoder_dp(inp)
        if self.hidden is None or self.hidden[0][0].shape[1] != bs or self.hidden[0][0].dtype != emb.dtype:
            self.hidden = [self._one_hidden(l, bs, emb) for l in range(self.n_layers)]
        output = self.input_dp(emb)
        new_hidden = []
        for l, (rnn, hid_dp) in enumerate(zip(self.rnns, self.hidden_dps)):
            output, new_h = rnn(output, self.hidden[l])
            new_hidden.append(tuple(h.detach() for h in new_h))
            if l != self.n_layers - 1:
                output = hid_dp(output)
        self.hidden = new_hidden
        return output


#: fastai's AWD-LSTM settings for a language model and for a classifier
awd_lstm_lm_config = dict(emb_sz=400, n_hid=1152, n_layers=3, pad_token=1, bidir=False, output_p=0.1,
                          hidden_p=0.15, input_p=0.25, embed_p=0.02, weight_p=0.2, tie_weights=True, out_bias=True)
awd_lstm_clas_config = dict(emb_sz=400, n_hid=1152, n_layers=3, pad_token=1, bidir=False, output_p=0.4,
                            hidden_p=0.3, input_p=0.4, embed_p=0.05, weight_p=0.5)


def _params(*mods: nn.Module) -> list[nn.Parameter]:
    seen: dict[int, nn.Parameter] = {}
    for m in mods:
        for p in m.parameters():
            seen.setdefault(id(p), p)
    return list(seen.values())


def awd_lstm_lm_split(model: nn.Module) -> list[list[nn.Parameter]]:
    """fastai's language-model parameter groups: one per LSTM layer, then embeddings + decoder."""
    enc = model[0]
    groups = [_params(rnn, dp) for rnn, dp in zip(enc.rnns, enc.hidden_dps)]
    return groups + [_params(enc.encoder, enc.encoder_dp, model[1])]


def awd_lstm_clas_split(model: nn.Module) -> list[list[nn.Parameter]]:
    """fastai's classifier parameter groups: embeddings, one per LSTM layer, then the head."""
    enc = model[0].module
    groups = [_params(enc.encoder, enc.encoder_dp)]
    groups += [_params(rnn, dp) for rnn, dp in zip(enc.rnns, enc.hidden_dps)]
    return groups + [_params(model[1])]
