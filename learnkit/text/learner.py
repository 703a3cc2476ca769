"""Text learners: ``language_model_learner`` and ``text_classifier_learner`` (AWD-LSTM, or a pretrained
transformer by name), fastai's WT103 weights (downloaded with learnkit's download code, read without running
pickled code), ``save_encoder`` / ``load_encoder``, and the export builders."""
from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..callback.core import Callback
from ..data.external import DownloadError, URLs, untar_data
from ..registry import register_model_builder
from ..learner import Learner
from ..losses import CrossEntropyLossFlat, MSELossFlat
from ..utils import Path, atomic_write
from . import transformer  # noqa: F401  (registers the transformer export builder)
from .core import BOS, EOS, PAD, decode_spec_tokens
from .data import TextDataLoaders
from .models.awdlstm import AWD_LSTM
from .models.core import get_language_model, get_text_classifier, model_meta

__all__ = ["TextLearner", "LMLearner", "ModelResetter", "RNNCallback", "RNNRegularizer", "rnn_cbs", "language_model_learner",
           "text_classifier_learner", "match_embeds", "clean_raw_keys", "load_ignore_keys", "read_itos",
           "load_pretrained_lm", "build_awd_lstm_lm", "build_awd_lstm_classifier"]

model_meta[AWD_LSTM].update(url=URLs.WT103_FWD, url_bwd=URLs.WT103_BWD)


# -- callbacks fastai's text learners add

class ModelResetter(Callback):
    """Reset the model's hidden state before each training and validation pass."""

    def before_train(self) -> None:
        """Fresh state for the training pass."""
        _reset(self.learn.model)

    def before_validate(self) -> None:
        """Fresh state for the validation pass."""
        _reset(self.learn.model)

    def after_fit(self) -> None:
        """Leave a fresh state behind."""
        _reset(self.learn.model)


def _logits(out: Any) -> torch.Tensor:
    """The logits of a text model's output (``(logits, raw_out, out)`` or a bare tensor)."""
    return out[0] if isinstance(out, tuple) else out


def _reset(model: nn.Module) -> None:
    if hasattr(model, "reset"):
        model.reset()


class RNNCallback(Callback):
    """Keep the logits of a text model's ``(logits, raw_out, out)`` as ``learn.pred`` (fastai's); the other two as
    ``self.raw_out`` / ``self.out``."""

    order = -5  # before the callbacks that read the prediction (mixed precision, metrics)

    def after_pred(self) -> None:
        """Split the model's outputs."""
        pred = self.learn.pred
        if isinstance(pred, tuple) and len(pred) == 3:
            self.learn.pred, self.raw_out, self.out = pred


class RNNRegularizer(Callback):
    """AR and TAR (fastai's): ``alpha`` * mean squared dropped-out output + ``beta`` * mean squared step change."""

    order = 10

    def __init__(self, alpha: float = 2.0, beta: float = 1.0) -> None:
        self.alpha, self.beta = alpha, beta

    def after_loss(self) -> None:
        """Add the penalties to the training loss (read from the head's kept outputs)."""
        if not self.learn.training or not self.learn.yb:
            return
        head = self.learn.model[-1] if isinstance(self.learn.model, nn.Sequential) else None
        raw, out = getattr(head, "raw_out", None), getattr(head, "out", None)
        if raw is None or out is None:
            return
        extra = 0.0
        if self.alpha:
            extra = extra + self.alpha * out.float().pow(2).mean()
        if self.beta and raw.shape[1] > 1:
            extra = extra + self.beta * (raw[:, 1:] - raw[:, :-1]).float().pow(2).mean()
        self.learn.loss_grad = self.learn.loss_grad + extra


def rnn_cbs(alpha: float = 0., beta: float = 0.) -> list[Callback]:
    """The callbacks an RNN trains with: ``ModelResetter``, ``RNNCallback`` (+ ``RNNRegularizer`` if alpha or beta)."""
    reg = [RNNRegularizer(alpha=alpha, beta=beta)] if alpha or beta else []
    return [ModelResetter(), RNNCallback()] + reg


# -- fastai's pretrained files

class _ItosUnpickler(pickle.Unpickler):
    """Unpickles plain data only (lists, strings, numbers): any class or function reference is refused."""

    def find_class(self, module: str, name: str) -> Any:
        """Refuse every global: the file can only hold built-in data."""
        raise pickle.UnpicklingError(f"the vocab file refers to {module}.{name}; only a plain list of strings is "
                                     f"read (no code is run from pickles).")


def read_itos(fname: str | os.PathLike) -> list[str]:
    """fastai's ``itos_*.pkl`` (a pickled list of tokens), read without running any pickled code."""
    with open(fname, "rb") as f:
        try:
            itos = _ItosUnpickler(f).load()
        except (pickle.UnpicklingError, EOFError, ValueError) as e:
            raise ValueError(f"{fname} is not a fastai vocab file (a pickled list of strings): {e}") from e
    if not isinstance(itos, (list, tuple)) or not all(isinstance(t, str) for t in itos):
        raise ValueError(f"{fname} holds a {type(itos).__name__}, not a list of token strings.")
    return list(itos)


def clean_raw_keys(wgts: dict) -> dict:
    """Drop ``...module.weight_hh_l0`` entries that duplicate a ``weight_hh_l0_raw`` (older fastai files)."""
    out = dict(wgts)
    for k in list(out):
        if k.endswith("_raw"):
            base, name = k.rsplit(".", 1)
            out.pop(f"{base}.module.{name[:-len('_raw')]}", None)
    return out


def match_embeds(old_wgts: dict, old_vocab: Sequence[str], new_vocab: Sequence[str]) -> dict:
    """fastai's: embeddings (and decoder) rows of the new vocab from the old one; unseen words get the mean row."""
    wgts = old_wgts["0.encoder.weight"]
    bias = old_wgts.get("1.decoder.bias")
    old_o2i = {w: i for i, w in enumerate(old_vocab)}
    idx = torch.tensor([old_o2i.get(w, -1) for w in new_vocab])
    found = idx >= 0
    new_wgts = wgts.mean(0, keepdim=True).repeat(len(new_vocab), 1)
    new_wgts[found] = wgts[idx[found]]
    out = dict(old_wgts)
    out["0.encoder.weight"] = new_wgts
    if "0.encoder_dp.emb.weight" in out:
        out["0.encoder_dp.emb.weight"] = new_wgts.clone()
    out["1.decoder.weight"] = new_wgts.clone()
    if bias is not None:
        new_bias = bias.mean().repeat(len(new_vocab))
        new_bias[found] = bias[idx[found]]
        out["1.decoder.bias"] = new_bias
    return out


def load_ignore_keys(model: nn.Module, wgts: dict) -> None:
    """Load ``wgts`` into ``model`` by name, or (fastai's fallback) in order when the names differ."""
    sd = model.state_dict()
    if set(wgts) >= set(sd):
        model.load_state_dict({k: wgts[k] for k in sd})
        return
    if len(wgts) < len(sd):
        raise ValueError(f"The pretrained weights have {len(wgts)} tensors, the model needs {len(sd)}: they are not "
                         f"weights for this architecture.")
    new = {}
    for (k1, v1), (k2, v2) in zip(sd.items(), wgts.items()):
        if v1.shape != v2.shape:
            raise ValueError(f"Pretrained tensor {k2} has shape {tuple(v2.shape)} where the model's {k1} has "
                             f"{tuple(v1.shape)}: the weights are for another configuration (check config=).")
        new[k1] = v2
    model.load_state_dict(new)


def _pretrained_files(arch: Any, backwards: bool, pretrained_fnames: Sequence[str] | None, learn: Learner
                      ) -> tuple[Path, Path]:
    """(weights .pth, vocab .pkl): the given names under ``path/model_dir``, or fastai's WT103 download."""
    if pretrained_fnames is not None:
        folder = Path(learn.path) / learn.model_dir
        files = [folder / f"{fn}.{ext}" for fn, ext in zip(pretrained_fnames, ("pth", "pkl"))]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"pretrained_fnames: no file at {missing}.")
        return files[0], files[1]
    meta = model_meta[arch]
    url = meta.get("url_bwd" if backwards else "url")
    if url is None:
        raise ValueError(f"There are no pretrained weights for {meta['name']}: pass pretrained=False.")
    dest = URLs.path(url, c_key="data")
    try:
        folder = untar_data(url)
    except DownloadError as e:
        raise DownloadError(
            f"pretrained=True needs fastai's WikiText-103 language model ({url}), which could not be downloaded: "
            f"{e}\nOffline, put the extracted files (a weights file *.pth such as lstm_fwd.pth and the vocab "
            f"*.pkl such as itos_wt103.pkl) in {dest}, or pass pretrained=False to train from scratch.") from e
    pth, pkl = sorted(folder.glob("*.pth")), sorted(folder.glob("*.pkl"))
    if not pth or not pkl:
        raise FileNotFoundError(f"{folder} should hold fastai's weights (*.pth) and vocab (*.pkl) files; found "
                                f"{sorted(p.name for p in folder.iterdir())}. Remove the folder to download again.")
    return pth[0], pkl[0]


def _matched_wgts(wgts_fname: str | os.PathLike, vocab_fname: str | os.PathLike, new_vocab: Sequence[str]) -> dict:
    """fastai-format language-model weights (a state dict, loaded as tensors only), matched to ``new_vocab``."""
    wgts = torch.load(wgts_fname, map_location="cpu", weights_only=True)
    if isinstance(wgts, dict) and isinstance(wgts.get("model"), dict):
        wgts = wgts["model"]
    return match_embeds(clean_raw_keys(wgts), read_itos(vocab_fname), new_vocab)


def load_pretrained_lm(model: nn.Module, wgts_fname: str | os.PathLike, vocab_fname: str | os.PathLike,
                       new_vocab: Sequence[str]) -> nn.Module:
    """Load fastai-format language-model weights into ``model``, their embeddings matched to ``new_vocab``."""
    load_ignore_keys(model, _matched_wgts(wgts_fname, vocab_fname, new_vocab))
    return model


# -- learners

class TextLearner(Learner):
    """A ``Learner`` for AWD-LSTM models: resets the hidden state each pass, AR/TAR, encoder save/load."""

    def _encoder(self) -> nn.Module:
        enc = self.model[0]
        return enc.module if hasattr(enc, "module") else enc

    def save_encoder(self, file: str | os.PathLike) -> Path:
        """Write the encoder's state dict to ``path/model_dir/file.pth`` (atomically); returns the file."""
        path = self._model_file(file)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as f:
            torch.save(self._encoder().state_dict(), f)
        return path

    def load_encoder(self, file: str | os.PathLike, device: torch.device | str | None = None) -> "TextLearner":
        """Load an encoder written by ``save_encoder`` (e.g. the fine-tuned language model's) and freeze."""
        path = self._model_file(file)
        if not path.exists():
            raise FileNotFoundError(f"No saved encoder at {path}: the language model's learn.save_encoder("
                                    f"{str(file)!r}) writes there (same path and model_dir).")
        state = torch.load(path, map_location=device or self._model_device(), weights_only=True)
        enc = self._encoder()
        want = enc.encoder.weight.shape
        got = state.get("encoder.weight")
        if got is not None and got.shape != want:
            raise ValueError(f"The saved encoder has a vocab of {got.shape[0]} tokens, this model {want[0]}: build "
                             f"the classifier's loaders with text_vocab=dls_lm.vocab so both share the vocab.")
        enc.load_state_dict(state)
        self.freeze()
        return self


class LMLearner(TextLearner):
    """A language-model learner (fastai's ``LMLearner``)."""

    def predict(self, text: str, n_words: int = 1, no_unk: bool = True, temperature: float = 1.0,
                min_p: float | None = None, no_bar: bool = False,
                decoder: Callable[[list[str]], list[str]] = decode_spec_tokens, only_last_word: bool = False) -> str:
        """``text`` and the ``n_words`` tokens sampled after it, decoded by ``decoder`` (fastai's
        ``LMLearner.predict``: no xxunk when ``no_unk``, tokens under ``min_p`` dropped, then ``temperature``)."""
        enc = self.dls.encoder
        vocab = enc.vocab
        ids = enc.encode([text])[0]
        if ids and vocab[ids[-1]] == EOS:
            ids = ids[:-1]
        if not ids:
            raise ValueError(f"predict needs a text to continue; {text!r} gives no tokens.")
        self.model.eval()
        _reset(self.model)
        device = self._model_device()
        out, inp = list(ids), ids
        with torch.no_grad():
            for _ in tqdm(range(n_words), disable=no_bar, leave=False):
                probs = torch.softmax(_logits(self.model(torch.tensor([inp], device=device)))[0, -1].float(), dim=-1)
                if no_unk:
                    probs[enc.num.unk_idx] = 0.0
                if min_p is not None:
                    if (probs >= min_p).any():
                        probs[probs < min_p] = 0.0
                    else:
                        warnings.warn(f"There is no item with probability >= {min_p}, try a lower value.")
                if temperature != 1.0:
                    probs.pow_(1 / temperature)
                out.append(int(torch.multinomial(probs, 1)))
                if only_last_word:  # fastai's: each next word from the last one alone, on a fresh state
                    _reset(self.model)
                inp = [out[-1]]  # otherwise the state already holds the text so far
        _reset(self.model)
        tokens = [vocab[i] for i in out if vocab[i] not in (BOS, PAD)]
        return enc.tokenizer.sep.join(decoder(tokens))


def _text_vocab(dls: Any) -> list[str]:
    vocab = dls.vocab
    if isinstance(vocab, list) and len(vocab) == 2 and isinstance(vocab[0], list):
        vocab = vocab[0]
    if not vocab:
        raise ValueError("The DataLoaders have no text vocab: build them with TextBlock / TextDataLoaders.")
    return list(vocab)


def _text_cbs(kwargs: dict, alpha: float, beta: float) -> None:
    given = list(kwargs.pop("cbs", None) or [])
    kwargs["cbs"] = [ModelResetter(), RNNCallback(), RNNRegularizer(alpha=alpha, beta=beta)] + given
    kwargs.setdefault("moms", (0.8, 0.7, 0.8))


def language_model_learner(dls: Any, arch: Any = AWD_LSTM, config: dict | None = None, drop_mult: float = 1.0,
                           backwards: bool = False, pretrained: bool = True,
                           pretrained_fnames: Sequence[str] | None = None, alpha: float = 2.0, beta: float = 1.0,
                           **kwargs: Any) -> LMLearner:
    """fastai's ``language_model_learner``: an AWD-LSTM language model on ``dls`` (WT103 weights when pretrained)."""
    vocab = _text_vocab(dls)
    model = get_language_model(arch, len(vocab), config=config, drop_mult=drop_mult)
    _text_cbs(kwargs, alpha, beta)
    kwargs.setdefault("loss_func", CrossEntropyLossFlat())
    learn = LMLearner(dls, model, splitter=model_meta[arch]["split_lm"], **kwargs)
    learn.model_spec = {"builder": "awd_lstm_lm", "arch": model_meta[arch]["name"], "vocab_sz": len(vocab),
                        "config": _json_config(config), "drop_mult": drop_mult}
    if pretrained or pretrained_fnames is not None:
        wgts, itos = _pretrained_files(arch, backwards, pretrained_fnames, learn)
        load_pretrained_lm(learn.model, wgts, itos, vocab)
        learn.model.to(learn._model_device())
        learn.freeze()
    return learn


def text_classifier_learner(dls: Any, arch: Any = AWD_LSTM, seq_len: int = 72, config: dict | None = None,
                            backwards: bool = False, pretrained: bool = True, drop_mult: float = 0.5,
                            n_out: int | None = None, lin_ftrs: Sequence[int] | None = None,
                            ps: Sequence[float] | None = None, max_len: int = 72 * 20,
                            y_range: tuple[float, float] | None = None, **kwargs: Any) -> Learner:
    """fastai's ``text_classifier_learner`` (AWD-LSTM + concat pooling head); a str/path ``arch`` is a transformer."""
    if isinstance(arch, (str, os.PathLike)):
        from .transformer import transformer_classifier_learner
        return transformer_classifier_learner(dls, arch, n_out=n_out, pretrained=pretrained, **kwargs)
    vocab = _text_vocab(dls)
    n_out = n_out if n_out is not None else dls.c
    if not n_out:
        raise ValueError("Can't infer the number of outputs from the DataLoaders (dls.c is empty): pass n_out=.")
    pad_idx = getattr(dls.encoder, "pad_idx", 1)
    model = get_text_classifier(arch, len(vocab), n_out, seq_len=seq_len, config=config, drop_mult=drop_mult,
                                lin_ftrs=lin_ftrs, ps=ps, pad_idx=pad_idx, max_len=max_len, y_range=y_range)
    _text_cbs(kwargs, kwargs.pop("alpha", 2.0), kwargs.pop("beta", 1.0))
    if y_range is not None and "loss_func" not in kwargs:
        kwargs["loss_func"] = MSELossFlat()
    learn = TextLearner(dls, model, splitter=model_meta[arch]["split_clas"], **kwargs)
    learn.model_spec = {"builder": "awd_lstm_classifier", "arch": model_meta[arch]["name"], "vocab_sz": len(vocab),
                        "n_out": int(n_out), "seq_len": seq_len, "config": _json_config(config),
                        "drop_mult": drop_mult, "lin_ftrs": None if lin_ftrs is None else list(lin_ftrs),
                        "ps": None if ps is None else list(ps), "pad_idx": pad_idx, "max_len": max_len,
                        "y_range": None if y_range is None else list(y_range)}
    if pretrained:
        wgts, itos = _pretrained_files(arch, backwards, None, learn)
        encoder = {k[2:]: v for k, v in _matched_wgts(wgts, itos, vocab).items() if k.startswith("0.")}
        load_ignore_keys(learn.model[0].module, encoder)  # the language model's encoder, not its decoder
        learn.model.to(learn._model_device())
        learn.freeze()
    return learn


def _json_config(config: dict | None) -> dict | None:
    if config is None:
        return None
    bad = {k: v for k, v in config.items() if not isinstance(v, (int, float, bool, str, type(None)))}
    if bad:
        raise ValueError(f"config values must be plain numbers/strings for export; got {bad}.")
    return dict(config)


def _arch(name: str) -> Any:
    found = [a for a, m in model_meta.items() if m["name"] == name]
    if not found:
        raise ValueError(f"The export uses the text architecture {name!r}, which this learnkit doesn't know.")
    return found[0]


def build_awd_lstm_lm(spec: dict) -> nn.Module:
    """The language model of an ``awd_lstm_lm`` spec (export fills in the weights)."""
    return get_language_model(_arch(spec["arch"]), spec["vocab_sz"], config=spec.get("config"),
                              drop_mult=spec.get("drop_mult", 1.0))


def build_awd_lstm_classifier(spec: dict) -> nn.Module:
    """The classifier of an ``awd_lstm_classifier`` spec (export fills in the weights)."""
    y_range = spec.get("y_range")
    return get_text_classifier(_arch(spec["arch"]), spec["vocab_sz"], spec["n_out"], seq_len=spec["seq_len"],
                               config=spec.get("config"), drop_mult=spec.get("drop_mult", 0.5),
                               lin_ftrs=spec.get("lin_ftrs"), ps=spec.get("ps"), pad_idx=spec.get("pad_idx", 1),
                               max_len=spec.get("max_len"), y_range=tuple(y_range) if y_range else None)


def _loaded(cls: type[TextLearner]) -> Callable[..., TextLearner]:
    """How ``load_learner`` makes a text learner: ``cls`` with its own ``ModelResetter``."""
    return lambda dls, model, **kwargs: cls(dls, model, cbs=[ModelResetter(), RNNCallback()], **kwargs)


register_model_builder("awd_lstm_lm", build_awd_lstm_lm, learner=_loaded(LMLearner))
register_model_builder("awd_lstm_classifier", build_awd_lstm_classifier, learner=_loaded(TextLearner))
