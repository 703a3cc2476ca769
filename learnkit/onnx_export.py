"""Deploying a learner's model as ONNX (``learn.to_onnx()`` / ``learn.export(format='onnx')``) through ``torch.onnx``.

What the graph holds, by default: the validation-time normalisation (the loaders' ``Normalize`` batch
transform, with its statistics as constants), the model, and the loss's activation (softmax for
single-label classifiers, sigmoid for multi-label), so that its output is what ``learn.get_preds()``
returns. Its input is the batch *before* normalisation: for images a float32 ``N x C x H x W`` tensor of
pixels divided by 255 (what ``ToTensor`` + ``IntToFloatTensor`` give), at the size the item transforms
produce (resizing and decoding stay outside the graph); for tables the ``(x_cat int64, x_cont float32)``
batches of the loaders (procs stay outside; an input the model never reads, such as an empty ``x_cat``, is
left out of the graph). The batch dimension is dynamic. ``normalize=False`` /
``activation=False`` leave those steps out. The class vocabulary and these facts are written in the
ONNX model's metadata (``metadata_props``: ``vocab``, ``normalize_mean``/``normalize_std``, ``inputs``,
``outputs``). The file is written atomically. Needs ``pip install "learnkit[onnx]"`` (onnx, onnxruntime).
"""
from __future__ import annotations

import io
import json
import os
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from .data.normalize import Normalize
from .utils import write_under_path
from .utils import Path

if TYPE_CHECKING:  # pragma: no cover
    from .learner import Learner

__all__ = ["to_onnx", "OnnxGraph"]


class OnnxGraph(nn.Module):
    """What is exported: optional normalisation of the first input, the model, optional activation."""

    def __init__(self, model: nn.Module, norm: Normalize | None = None, activation: Any = None) -> None:
        super().__init__()
        self.model, self.activation = model, activation
        self.norm = norm is not None
        if norm is not None:
            shape = (1, -1, 1, 1)
            self.register_buffer("mean", norm.mean.float().view(shape))
            self.register_buffer("std", norm.std.float().view(shape))

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        """Normalise, run the model, apply the activation."""
        if self.norm:
            xs = ((xs[0] - self.mean) / self.std,) + tuple(xs[1:])
        out = self.model(*xs)
        if isinstance(out, tuple):  # a text model's (logits, raw_out, out): the logits
            out = out[0]
        return self.activation(out) if self.activation is not None else out


def _normalizer(learn: "Learner") -> Normalize | None:
    """The loaders' image ``Normalize`` with known statistics (None if there is none)."""
    kinds = learn.dls.kinds
    if not kinds or kinds[0] != "image":
        return None
    norms = [t for t in learn.dls.valid.batch_tfms if isinstance(t, Normalize) and t.mean is not None]
    return norms[-1] if norms else None


def _example_inputs(learn: "Learner", norm: Normalize | None) -> tuple[torch.Tensor, ...]:
    """One batch of model inputs (the validation loader's, else training's), un-normalised when ``norm``."""
    dls = learn.dls
    dl = dls.valid if len(dls.valid.dataset) else dls.train
    xs = tuple(dl.one_batch())[: dls.n_inp]
    if norm is not None:
        xs = (norm.decode_image(xs[0]),) + xs[1:]
    return tuple(x.to(learn._model_device()) for x in xs)


def _onnx_modules() -> tuple[Any, Any]:
    try:
        import onnx
    except ImportError as e:
        raise ImportError('ONNX export needs the onnx package: pip install "learnkit[onnx]".') from e
    try:
        import onnxruntime
    except ImportError:
        onnxruntime = None
    return onnx, onnxruntime


def to_onnx(learn: "Learner", fname: str | os.PathLike = "model.onnx", normalize: bool = True,
            activation: bool = True, opset_version: int = 17, check: bool = True, atol: float = 1e-4) -> Path:
    """Write ``learn.model`` (with normalisation and activation, see the module doc) as ONNX; returns the path.

    ``check`` runs the file with onnxruntime (when installed) on one batch and raises if its outputs differ from
    PyTorch's by more than ``atol``. A relative ``fname`` is under ``learn.path``, as ``export``.
    """
    onnx, ort = _onnx_modules()
    norm = _normalizer(learn) if normalize else None
    act = getattr(learn.loss_func, "activation", None) if activation else None
    graph = OnnxGraph(learn.model, norm, act).eval()
    xs = _example_inputs(learn, norm)
    n = len(xs)
    in_names = ["input"] if n == 1 else [f"input_{i}" for i in range(n)]
    was_training = learn.model.training
    buf = io.BytesIO()
    try:
        learn.model.eval()
        with torch.no_grad(), warnings.catch_warnings():
            for category in (DeprecationWarning, FutureWarning, UserWarning, torch.jit.TracerWarning):  # exporter
                warnings.simplefilter("ignore", category=category)
            torch.onnx.export(graph, xs, buf, dynamo=False, input_names=in_names, output_names=["output"],
                              dynamic_axes={**{k: {0: "batch"} for k in in_names}, "output": {0: "batch"}},
                              opset_version=opset_version)
            expected = graph(*xs).float().cpu().numpy()
    finally:
        learn.model.train(was_training)
    proto = onnx.load_from_string(buf.getvalue())
    kept = {i.name for i in proto.graph.input}  # an input the model ignores (no categorical column) is dropped
    feeds = [(k, x) for k, x in zip(in_names, xs) if k in kept]
    vocab = learn.dls.vocab
    meta = {"producer": "learnkit", "vocab": json.dumps(list(vocab) if vocab is not None else None, default=str),
            "inputs": json.dumps([{"name": k, "dtype": str(x.dtype).removeprefix("torch."), "shape": list(x.shape[1:])}
                                  for k, x in feeds]),
            "outputs": "probabilities" if act is not None else "model outputs",
            "normalize_mean": json.dumps(norm.mean.tolist() if norm is not None else None),
            "normalize_std": json.dumps(norm.std.tolist() if norm is not None else None)}
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    blob = proto.SerializeToString()
    if check and ort is not None:
        sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
        got = sess.run(None, {k: x.cpu().numpy() for k, x in feeds})[0]
        err = float(np.abs(got - expected).max()) if got.size else 0.0
        if err > atol:
            raise RuntimeError(f"The ONNX graph's outputs differ from PyTorch's by up to {err:.2e} (> atol={atol}): "
                               f"an operator is exported differently. Try another opset_version, or check=False.")
    return write_under_path(learn, fname, blob)
