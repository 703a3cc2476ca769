"""ONNX export: normalisation + model + activation in one graph that onnxruntime runs to PyTorch's predictions."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from learnkit.basics import Learner
from learnkit.data.normalize import Normalize
from learnkit.tabular.core import Categorify
from learnkit.tabular.data import TabularDataLoaders
from learnkit.tabular.learner import tabular_learner
from learnkit.vision.data import ImageDataLoaders


def image_learner(tmp_path) -> tuple[Learner, np.ndarray]:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (24, 10, 10, 3), dtype=np.uint8)
    norm = Normalize.from_stats([0.4, 0.5, 0.6], [0.2, 0.3, 0.25])
    dls = ImageDataLoaders.from_arrays(x, np.array(["cat", "dog", "emu"])[np.arange(24) % 3], seed=0, bs=8,
                                       num_workers=0, batch_tfms=norm)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 3))
    learn = Learner(dls, model, path=tmp_path)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-2)  # batch-norm statistics that are not the defaults
    return learn, x


def test_onnx_graph_gives_pytorchs_probabilities_from_unnormalised_pixels(tmp_path):
    learn, x = image_learner(tmp_path)
    path = learn.to_onnx("model.onnx")
    assert path == tmp_path / "model.onnx"
    with learn.no_bar():
        probs, _ = learn.get_preds()
    pixels = x[learn.dls.valid.dataset.idxs].transpose(0, 3, 1, 2).astype(np.float32) / 255  # no normalisation
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"] and sess.get_inputs()[0].shape[0] == "batch"
    got = sess.run(None, {"input": pixels})[0]
    assert got.shape == (4, 3) and np.abs(got - probs.numpy()).max() < 1e-5
    one = sess.run(None, {"input": pixels[1:2]})[0]  # traced on a batch of 4: other batch sizes run too
    many = sess.run(None, {"input": np.concatenate([pixels] * 3)})[0]
    assert np.abs(one - probs.numpy()[1:2]).max() < 1e-5 and np.abs(many - np.tile(got, (3, 1))).max() < 1e-5
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["vocab"]) == ["cat", "dog", "emu"] and json.loads(meta["normalize_mean"]) == \
        pytest.approx([0.4, 0.5, 0.6]) and meta["outputs"] == "probabilities"


def test_onnx_without_normalisation_and_activation_is_the_bare_model(tmp_path):
    learn, x = image_learner(tmp_path)
    path = learn.to_onnx("bare.onnx", normalize=False, activation=False)
    xb = torch.cat([b[0] for b in learn.dls.valid])  # normalised batches, as the model sees them
    logits = learn.model.eval()(xb).detach().numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": xb.numpy()})[0]
    assert np.abs(got - logits).max() < 1e-5


def test_export_format_onnx_and_atomic_write(tmp_path):
    learn, _ = image_learner(tmp_path)
    path = learn.export(format="onnx")
    assert path == tmp_path / "export.onnx" and onnx.load(str(path)).graph.input[0].name == "input"
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="differ from PyTorch"):
        learn.to_onnx("export.onnx", atol=-1.0)  # a failed check writes nothing
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["export.onnx"]
    with pytest.raises(ValueError, match="'learnkit'.*'onnx'"):
        learn.export(format="tflite")


def test_tabular_onnx_takes_both_inputs(tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    x[:, 2] = rng.integers(0, 3, 64)  # a categorical column of codes
    dls = TabularDataLoaders.from_arrays(x, (x[:, 0] > 0).astype(int), cat_names=["x2"], procs=[Categorify],
                                         seed=0, bs=16)
    assert dls.cat_names == ["x2"] and dls.cont_names == ["x0", "x1"]
    learn = tabular_learner(dls, layers=[8], path=tmp_path)
    path = learn.to_onnx()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input_0", "input_1"]
    with learn.no_bar():
        probs, _ = learn.get_preds()
    v = dls.valid.dataset
    got = sess.run(None, {"input_0": v.cats.numpy(), "input_1": v.conts.numpy()})[0]
    assert np.abs(got - probs.numpy()).max() < 1e-5
