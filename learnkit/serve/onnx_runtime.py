"""``learnkit serve --runtime onnx``: the model's forward in ONNX Runtime, learnkit's pre/post-processing unchanged.

``use_onnx_runtime(learn)`` exports ``learn.model`` alone (no normalisation, no activation: the loaders' batch
transforms and the loss's activation/decodes still run in learnkit) through ``torch.onnx`` with a dynamic batch
dimension, traced on one example item the app could receive, checks ONNX Runtime's output against PyTorch's on
it, and puts an ``OnnxRuntimeModel`` in ``learn.model``. Image kinds (classifier, multi-label, segmentation),
tabular and collab are supported; text classifiers are not (their RNN runs over variable-length sequences).
Needs ``pip install "learnkit[onnx]"``.
"""
from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from .tasks import task_for


class OnnxRuntimeModel(nn.Module):
    """An ``nn.Module`` whose forward runs an ONNX Runtime session (plain tensors in, a plain tensor out)."""

    def __init__(self, blob: bytes, input_names: list[str]) -> None:
        super().__init__()
        import onnxruntime as ort
        opts = ort.SessionOptions()
        self.session = ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_names = input_names
        self.kept = {i.name for i in self.session.get_inputs()}  # an input the model ignores is not in the graph

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        """Run the session on the inputs (as numpy on the CPU)."""
        feeds = {n: x.detach().cpu().numpy() for n, x in zip(self.input_names, xs) if n in self.kept}
        return torch.from_numpy(self.session.run(None, feeds)[0])


def _example_batch(learn: Any) -> tuple[torch.Tensor, ...]:
    """The model inputs for one example item, as the loaders make them (normalised, on the CPU)."""
    item = task_for(learn).example()
    dls = learn.dls
    dl = dls.test_dl([item]) if hasattr(dls, "decode_prediction") else dls.test_dl([item], num_workers=0)
    return tuple(x.cpu() for x in tuple(dl.one_batch())[: dls.n_inp])


def use_onnx_runtime(learn: Any, opset_version: int = 17, atol: float = 1e-4) -> Any:
    """Replace ``learn.model`` by its ONNX Runtime twin (checked against PyTorch within ``atol``); returns ``learn``."""
    try:
        import onnx  # noqa: F401  (torch.onnx needs it)
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise ImportError('--runtime onnx needs onnx and onnxruntime: pip install "learnkit[onnx]"') from e
    kind = type(task_for(learn)).__name__
    if kind == "TextTask":
        raise ValueError("--runtime onnx doesn't serve text classifiers (their RNN runs over variable-length "
                         "sequences): serve them with the default --runtime torch")
    model = learn.model.cpu().eval()
    xs = _example_batch(learn)
    names = ["input"] if len(xs) == 1 else [f"input_{i}" for i in range(len(xs))]
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning, UserWarning, torch.jit.TracerWarning):
            warnings.simplefilter("ignore", category=category)
        torch.onnx.export(model, xs, buf, dynamo=False, input_names=names, output_names=["output"],
                          dynamic_axes={**{k: {0: "batch"} for k in names}, "output": {0: "batch"}},
                          opset_version=opset_version)
        expected = model(*xs).float().numpy()
    ort_model = OnnxRuntimeModel(buf.getvalue(), names)
    got = ort_model(*xs).float().numpy()
    err = float(np.abs(got - expected).max()) if got.size else 0.0
    if got.shape != expected.shape or err > atol:
        raise RuntimeError(f"ONNX Runtime's outputs differ from PyTorch's (shape {got.shape} vs {expected.shape}, "
                           f"max difference {err:.2e} > atol={atol}): serve with --runtime torch")
    learn.model = ort_model
    return learn
