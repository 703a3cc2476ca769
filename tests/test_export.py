"""learn.export / load_learner: pickle-free round trips, lambdas, atomic writes, clear errors."""
import json
import pickle

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from learnkit.data.block import DataBlock
from learnkit.data.blocks import CategoryBlock
from learnkit.data.getters import get_image_files
from learnkit.data.splitters import GrandparentSplitter
from learnkit.export import ExportError, load_learner
from learnkit.learner import Learner
from learnkit.metrics import accuracy
from learnkit.samples import sample_path
from learnkit.vision.augment import Resize
from learnkit.vision.core import ImageBlock, PILImageBW
from learnkit.vision.learner import vision_learner

MNIST = sample_path("mnist_tiny")


def tiny_cnn() -> nn.Module:
    """A small CNN for 1-channel digits (no spec: export needs pickle_model=True)."""
    return nn.Sequential(nn.Conv2d(1, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A resnet18 learner (random weights) trained briefly on mnist_tiny, labelled by a lambda."""
    torch.manual_seed(0)
    dblock = DataBlock(blocks=(ImageBlock(cls=PILImageBW), CategoryBlock), get_items=get_image_files,
                       get_y=lambda p: "three" if p.parent.name == "3" else "seven",  # a lambda: not exportable code
                       splitter=GrandparentSplitter(), item_tfms=Resize(32))
    dls = dblock.dataloaders(MNIST, bs=16, num_workers=0)
    learn = vision_learner(dls, "resnet18", pretrained=False, n_in=1, metrics=accuracy,
                           path=tmp_path_factory.mktemp("learner"))
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, 1e-2)
    return learn


def test_round_trip_gives_the_same_predictions(trained):
    fname = trained.export()
    assert fname == trained.path / "export.pkl" and fname.exists()
    loaded = load_learner(fname)
    assert loaded.dls.vocab == ["seven", "three"]
    items = get_image_files(MNIST / "valid")[:12]
    p0, _ = trained.get_preds(dl=trained.dls.test_dl(items))
    p1, _ = loaded.get_preds(dl=loaded.dls.test_dl(items))
    assert p0.shape == (12, 2) and torch.allclose(p0, p1, atol=1e-6)
    label, idx, probs = loaded.predict(items[0])
    assert label == loaded.dls.vocab[idx.item()] and torch.allclose(probs, p0[0], atol=1e-6)
    assert label == trained.predict(items[0])[0]


def test_export_is_safetensors_with_a_manifest_not_a_pickle(trained):
    fname = trained.export("model_a.pkl")
    data = fname.read_bytes()
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    manifest = json.loads(header["__metadata__"]["manifest"])
    assert manifest["model"]["builder"] == "vision_learner" and manifest["model"]["n_in"] == 1
    assert manifest["data"]["blocks"][1]["vocab"] == ["seven", "three"]
    assert [t["name"] for t in manifest["data"]["item_tfms"]] == ["Resize", "ToTensor"]
    assert manifest["loss"]["name"] == "CrossEntropyLossFlat"
    assert b"lambda" not in data and data[:1] != b"\x80"  # no pickle protocol header, no code


def test_export_is_atomic(trained, monkeypatch):
    fname = trained.export("atomic.pkl")
    before = fname.read_bytes()
    import learnkit.export as ex

    def broken(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(ex, "st_save", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        trained.export("atomic.pkl")
    assert fname.read_bytes() == before
    assert sorted(p.name for p in fname.parent.iterdir() if "atomic" in p.name) == ["atomic.pkl"]


def test_not_an_export_gives_a_clear_error(tmp_path):
    pkl = tmp_path / "fastai_export.pkl"
    pkl.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ExportError, match="not a learnkit export.*never unpickles"):
        load_learner(pkl)
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"hello world, not a model")
    with pytest.raises(ExportError, match="not a learnkit export"):
        load_learner(junk)
    plain = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(ExportError, match="no learnkit manifest"):
        load_learner(plain)
    with pytest.raises(FileNotFoundError, match="learn.export"):
        load_learner(tmp_path / "missing.pkl")


def test_model_without_spec_needs_explicit_pickle_opt_in(trained, tmp_path):
    learn = Learner(trained.dls, tiny_cnn(), path=tmp_path)
    with pytest.raises(ExportError, match="pickle_model=True"):
        learn.export()
    fname = learn.export(pickle_model=True)
    with pytest.raises(ExportError, match="pickle_model=True"):
        load_learner(fname)
    loaded = load_learner(fname, pickle_model=True)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.model.eval()(x), learn.model.eval()(x))


MAIN_SCRIPT = '''
from learnkit.vision.all import *

def label_func(p):  # lives in __main__: fastai's pickled export can't be loaded without it
    return "three" if p.parent.name == "3" else "seven"

if __name__ == "__main__":
    import sys
    dls = ImageDataLoaders.from_path_func(sys.argv[1], get_image_files(sys.argv[1]), label_func, valid_pct=0.5,
                                          seed=0, item_tfms=Resize(32), bs=8, num_workers=0)
    learn = vision_learner(dls, resnet18, pretrained=False, path=sys.argv[2])
    print(learn.export())
'''


@pytest.mark.slow
def test_label_function_in_main_exports_and_loads_elsewhere(tmp_path):
    import subprocess
    import sys
    script = tmp_path / "lesson.py"
    script.write_text(MAIN_SCRIPT)
    out = subprocess.run([sys.executable, str(script), str(MNIST / "valid"), str(tmp_path)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    learn = load_learner(tmp_path / "export.pkl")  # this process has no label_func
    assert learn.dls.vocab == ["seven", "three"]
    label, idx, probs = learn.predict(get_image_files(MNIST / "valid")[0])
    assert label in ("seven", "three") and probs.shape == (2,) and abs(probs.sum().item() - 1) < 1e-5
