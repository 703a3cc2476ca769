"""The tutorials in tutorials/ run top to bottom, offline, and reach the accuracy they promise.

Notebooks are read as plain JSON and their code cells executed in order in one namespace (no Jupyter needed),
in a temporary working directory so that whatever they write (exports, copied images) stays out of the repo.
"""
import json
import traceback
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
IDS = [nb.name for nb in NOTEBOOKS]


def load_notebook(fname: Path) -> dict:
    with open(fname, encoding="utf-8") as f:
        return json.load(f)


def cell_source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def run_notebook(fname: Path) -> dict:
    """Execute every code cell of ``fname`` in order in one namespace; fail naming the cell that raised."""
    import matplotlib.pyplot as plt

    ns = {"__name__": "__main__"}
    code_cells = [c for c in load_notebook(fname)["cells"] if c["cell_type"] == "code"]
    for n, cell in enumerate(code_cells, 1):
        src = cell_source(cell)
        try:
            exec(compile(src, f"{fname.name} code cell {n}", "exec"), ns)
        except Exception:
            pytest.fail(f"{fname.name}: code cell {n} of {len(code_cells)} raised\n--- source ---\n{src}\n"
                        f"--- error ---\n{traceback.format_exc()}", pytrace=False)
        finally:
            plt.close("all")
    return ns


def test_tutorials_exist():
    assert NOTEBOOKS, f"no notebooks in {TUTORIALS}"


@pytest.mark.parametrize("fname", NOTEBOOKS, ids=IDS)
def test_notebook_is_valid_nbformat4_without_outputs(fname):
    nb = load_notebook(fname)
    assert nb["nbformat"] == 4 and isinstance(nb.get("nbformat_minor"), int)
    assert isinstance(nb.get("metadata"), dict)
    assert nb["cells"], "empty notebook"
    for n, cell in enumerate(nb["cells"]):
        assert cell["cell_type"] in ("code", "markdown", "raw"), (n, cell["cell_type"])
        assert isinstance(cell.get("metadata"), dict), n
        assert isinstance(cell["source"], (str, list)), n
        if nb["nbformat_minor"] >= 5:
            assert isinstance(cell.get("id"), str) and cell["id"], f"cell {n} has no id (required by nbformat 4.5)"
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, \
                f"cell {n} has stored outputs: clear them before committing"
            src = cell_source(cell)
            compile(src, f"{fname.name} cell {n}", "exec")  # plain Python: no %magics or !shell lines
    if nb["nbformat_minor"] >= 5:
        ids = [c["id"] for c in nb["cells"]]
        assert len(ids) == len(set(ids)), "duplicate cell ids"


def _samples_snapshot() -> dict:
    """Every file under the installed learnkit/samples with its size and modification time."""
    from learnkit.samples import sample_path

    root = sample_path("mnist_tiny").parent
    return {str(f.relative_to(root)): (f.stat().st_size, f.stat().st_mtime_ns) for f in root.rglob("*") if f.is_file()
            and "__pycache__" not in f.parts}


@pytest.mark.slow
@pytest.mark.parametrize("fname", NOTEBOOKS, ids=IDS)
def test_notebook_runs_top_to_bottom(fname, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # untar_data(SAMPLES.X) copies the sample under $LEARNKIT_HOME: keep that inside the temporary cwd too
    monkeypatch.setenv("LEARNKIT_HOME", str(tmp_path / "learnkit_home"))
    before = _samples_snapshot()
    ns = run_notebook(fname)
    checks = {"01_image_classification.ipynb": check_image_classification, "02_tabular.ipynb": check_tabular,
              "03_collab.ipynb": check_collab, "04_segmentation.ipynb": check_segmentation,
              "05_pets.ipynb": check_pets, "05_text.ipynb": check_text, "06_bears.ipynb": check_bears,
              "07_potatoes.ipynb": check_potatoes,
              "08_imagenette_sota.ipynb": check_imagenette_sota,
              "09_lr_find_and_freezing.ipynb": check_lr_find_and_freezing,
              "10_callbacks_and_curves.ipynb": check_callbacks_and_curves,
              "12_tracking_and_tuning.ipynb": check_tracking_and_tuning}
    checks[fname.name](ns, tmp_path)
    assert _samples_snapshot() == before, "the notebook wrote into the installed learnkit/samples"


def _check_sample_copy_and_export(ns: dict, tmp_path: Path, sample: str) -> Path:
    """The sample was copied under the (temporary) $LEARNKIT_HOME, the export went to cwd/tutorial_output."""
    path = Path(ns["path"]).resolve()
    assert path == (tmp_path / "learnkit_home" / "data" / "learnkit_samples" / sample).resolve()
    export = tmp_path / "tutorial_output" / "export.pkl"
    assert Path(ns["fname"]).resolve() == export.resolve() and export.stat().st_size > 1_000
    return export


def check_image_classification(ns: dict, tmp_path: Path) -> None:
    """What the first tutorial promises: ~90% accuracy, an export that reloads and agrees, files under cwd."""
    import torch

    from learnkit.samples import sample_path

    assert ns["acc"] > 0.8, f"validation accuracy {ns['acc']:.3f}"
    assert ns["label"] == "n03888257" and ns["label"] == ns["learn"].dls.vocab[ns["idx"]]  # a parachute
    assert torch.allclose(ns["probs_inf"], ns["probs"], atol=1e-5)
    export = tmp_path / "tutorial_output" / "export.pkl"
    assert Path(ns["fname"]).resolve() == export.resolve() and export.stat().st_size > 1_000_000
    assert ns["failed"] and not any(Path(f).exists() for f in ns["failed"])
    assert ns["dls_own"].vocab == ["French_horn", "tench"]
    # in-memory arrays and training metrics: 3s vs 7s learned, train and valid accuracy side by side
    hist = ns["history"]
    assert list(hist.columns) == ["epoch", "train_loss", "train_accuracy", "valid_loss", "valid_accuracy", "time"]
    assert ns["dls_arr"].vocab == [3, 7] and hist.valid_accuracy.iloc[-1] > 0.9
    # nothing was written inside the installed sample folder
    assert not list(sample_path("imagenette_tiny").glob("*.pkl"))
    assert not (sample_path("imagenette_tiny") / "models").exists()


def check_tabular(ns: dict, tmp_path: Path) -> None:
    """02: ~81% accuracy (majority ~75%), the #na# slot and its warning, TabularPandas, export agrees."""
    import torch

    _check_sample_copy_and_export(ns, tmp_path, "adult_sample")
    dls, df = ns["dls"], ns["df"]
    assert df.shape == (3000, 15) and not df.workclass.str.startswith(" ").any()  # skipinitialspace
    assert len(dls.train.dataset) == 2400 and len(dls.valid.dataset) == 600 and dls.vocab == ["<50k", ">=50k"]
    assert list(ns["shown"].columns) == ns["cat_names"] + ["education-num_na"] + ns["cont_names"] + ["salary"]
    majority = ns["majority"]
    assert majority == pytest.approx(0.75, abs=0.01)  # "about 75%"
    assert ns["acc"] > majority + 0.03, (ns["acc"], majority)  # "about 81%"
    assert set(ns["results"].salary_pred) <= set(dls.vocab)
    cm = ns["cm"]
    assert cm.shape == (2, 2) and cm.sum() == 600
    assert cm.trace() / 600 == pytest.approx(ns["acc"], abs=1e-6)
    assert cm[0, 1] > cm[1, 0]  # "most mistakes are low earners predicted high"
    shown = ns["decoded"].show()
    assert shown.workclass.iloc[0] == "#na#" and shown.occupation.iloc[0] == "#na#"
    assert shown.education.iloc[0] == "Bachelors"  # known categories are kept (not every column unknown)
    assert bool(shown["education-num_na"].iloc[0])
    assert abs(float(ns["probs"].sum()) - 1) < 1e-5 and int(ns["clas"]) == int(ns["probs"].argmax())
    with pytest.warns(UserWarning, match="workclass"):
        ns["learn"].predict(ns["row"])
    to = ns["to"]
    assert to.train.xs.shape == (2400, 10) and to.valid.xs.shape == (600, 10)
    assert abs(to.train.xs.age.mean()) < 1e-4 and to.train.xs.workclass.dtype.kind in "iu"
    assert torch.allclose(ns["probs_inf"], ns["probs"], atol=1e-6) and int(ns["clas_inf"]) == int(ns["clas"])


def check_collab(ns: dict, tmp_path: Path) -> None:
    """03: MSE ~0.65 well below predict-the-mean ~0.95, biases track mean ratings, unknown user, export agrees."""
    _check_sample_copy_and_export(ns, tmp_path, "movie_lens_sample")
    assert len(ns["ratings"]) == 6031 and list(ns["shown"].columns) == ["userId", "movieId", "rating"]
    mse, baseline = ns["mse"], ns["baseline"]
    assert baseline == pytest.approx(0.95, abs=0.05), baseline  # "about 0.95"
    assert mse < 0.8 * baseline, (mse, baseline)  # "about 0.65": about a third of the variance explained
    assert mse == pytest.approx(ns["learn"].recorder.values[-1][1], abs=1e-4)  # same number as the epoch table
    assert ns["preds"].min() > 0 and ns["preds"].max() < 5.5  # y_range
    assert ns["movie_bias"].shape == (100,) and ns["movie_pca"].shape == (100, 3)
    assert ns["np"].corrcoef(ns["by_bias"].bias, ns["by_bias"].mean_rating)[0, 1] > 0.7  # "strongly correlated"
    assert ns["by_bias"].mean_rating.iloc[-3:].mean() > ns["by_bias"].mean_rating.iloc[:3].mean() + 1
    assert float(ns["pred_new"]) == pytest.approx(float(ns["from_bias"]), abs=0.05)  # unknown user: movie bias
    assert ns["row"].show().userId.iloc[0] == "#na#"
    assert ns["nn_mse"] < 0.8 * baseline and abs(ns["nn_mse"] - mse) < 0.1  # "about as well"
    assert type(ns["learn_nn"].model).__name__ == "EmbeddingNN"
    assert float(ns["pred_inf"]) == pytest.approx(float(ns["pred"]), abs=1e-6)


def check_segmentation(ns: dict, tmp_path: Path) -> None:
    """04: pixel accuracy ~60% well above the commonest class ~27%, mask shapes, top losses, export agrees."""
    import torch

    _check_sample_copy_and_export(ns, tmp_path, "camvid_tiny")
    codes, dls = ns["codes"], ns["dls"]
    assert len(ns["fnames"]) == 40 and len(codes) == 32 and list(dls.vocab) == list(codes)
    assert len(dls.train.dataset) == 32 and len(dls.valid.dataset) == 8
    assert ns["xb"].shape == (8, 3, 96, 128) and ns["yb"].shape == (8, 96, 128) and ns["yb"].dtype == torch.int64
    assert ns["baseline"] == pytest.approx(0.27, abs=0.03) and codes[ns["commonest"]] == "Building"
    preds, targs = ns["preds"], ns["targs"]
    assert preds.shape == (8, 32, 96, 128) and targs.shape == (8, 96, 128)
    pixel_acc = (preds.argmax(1) == targs).float().mean().item()
    assert pixel_acc == pytest.approx(ns["pixel_acc"], abs=1e-4)
    assert pixel_acc > ns["baseline"] + 0.2, (pixel_acc, ns["baseline"])  # "about 60% against about 27%"
    keep = targs != ns["void_code"]
    fg = (preds.argmax(1)[keep] == targs[keep]).float().mean().item()
    assert fg == pytest.approx(ns["fg_acc"], abs=1e-4) and fg > pixel_acc  # Void is mostly missed
    losses = ns["losses"]
    assert losses.shape == (3,) and bool((losses[:-1] >= losses[1:]).all()) and len(set(ns["idxs"].tolist())) == 3
    assert ns["pred_mask"].shape == (96, 128) and ns["probs"].shape == (32, 96, 128)
    assert torch.equal(ns["pred_mask"], ns["probs"].argmax(0))
    assert torch.equal(ns["pred_mask_inf"], ns["pred_mask"]) and torch.allclose(ns["probs_inf"], ns["probs"], atol=1e-5)


def check_text(ns: dict, tmp_path: Path) -> None:
    """05: the transformer well above chance (50%) on 40 held-out reviews, predict on a string, export agrees."""
    import torch

    _check_sample_copy_and_export(ns, tmp_path, "imdb_tiny")
    dls = ns["dls"]
    assert ns["df"].shape == (200, 3) and len(dls.train.dataset) == 160 and len(dls.valid.dataset) == 40
    assert dls.vocab[1] == ["negative", "positive"] and type(ns["learn"].model).__name__ == "TransformerClassifier"
    assert ns["acc"] > 0.65, f"validation accuracy {ns['acc']:.3f}"  # "about 75% (chance is 50%)"
    label, idx, probs = ns["label"], ns["idx"], ns["probs"]
    assert label == "positive" == dls.vocab[1][int(idx)] and float(probs.sum()) == pytest.approx(1, abs=1e-5)
    assert ns["label_inf"] == label and torch.allclose(ns["probs_inf"], probs, atol=1e-5)


def check_pets(ns: dict, tmp_path: Path) -> None:
    """05: cats vs dogs from file names well above guessing; no upload -> the shipped springer is a dog; export agrees."""
    import torch

    from learnkit.samples import sample_path

    path = Path(ns["path"]).resolve()
    assert path == (tmp_path / "learnkit_home" / "data" / "learnkit_samples" / "pets_tiny" / "images").resolve()
    dls = ns["dls"]
    assert dls.vocab == [False, True] and len(dls.train.dataset) + len(dls.valid.dataset) == 96
    cats = sum(ns["is_cat"](f.name) for f in dls.valid.dataset.items) / len(dls.valid.dataset)
    assert ns["majority"] == pytest.approx(max(cats, 1 - cats)) and ns["majority"] < 0.7
    assert ns["acc"] > ns["majority"] + 0.25, (ns["acc"], ns["majority"])  # "almost every one right"
    assert ns["uploader"] is not None and not ns["uploader"].value  # the button exists, nothing was uploaded
    assert Path(ns["source"]).parent == sample_path("imagenette_tiny") / "val" / "n02102040"  # the fallback image
    assert ns["label"] is False and float(ns["probs"][1]) < 0.5  # an English springer is not a cat
    assert ns["label_inf"] == ns["label"] and torch.allclose(ns["probs_inf"], ns["probs"], atol=1e-5)
    assert Path(ns["fname"]).resolve() == path / "export.pkl"


def check_bears(ns: dict, tmp_path: Path) -> None:
    """06: 3 classes well above a third; confusion matrix and top losses agree; the cleaner's choices done on disk."""
    import torch

    bears = tmp_path / "tutorial_output" / "bears"
    assert Path(ns["path"]).resolve() == bears.resolve()
    cm = ns["cm"]
    assert cm.shape == (3, 3) and cm.sum() == 18 and ns["acc"] == pytest.approx(cm.trace() / 18)
    assert ns["acc"] > 1 / 3 + 0.3, ns["acc"]
    losses = ns["losses"]
    assert losses.shape == (5,) and bool((losses[:-1] >= losses[1:]).all()) and len(set(ns["idxs"].tolist())) == 5
    (deleted,), ((moved, cat),) = ns["to_delete"], ns["to_move"]
    assert deleted.parent.name == "church" and not deleted.exists()
    assert cat == "springer" and not moved.exists() and (bears / "springer" / moved.name).exists()
    counts = {d.name: len(list(d.iterdir())) for d in bears.iterdir() if d.is_dir()}
    assert counts == {"tench": 30, "springer": 31, "church": 28}
    assert len(ns["dls"].train.dataset) + len(ns["dls"].valid.dataset) == 89
    assert Path(ns["fname"]).resolve() == (bears / "export.pkl").resolve()
    assert ns["label"] == ns["learn_inf"].dls.vocab[int(ns["idx"])] and abs(float(ns["probs"].sum()) - 1) < 1e-5
    assert torch.equal(ns["probs"].argmax(), torch.as_tensor(int(ns["idx"])))


def check_potatoes(ns: dict, tmp_path: Path) -> None:
    """07: the damaged file is found and removed from the copy; class counts per split; trained well above chance."""
    broken = Path(ns["broken"])
    assert broken.resolve().is_relative_to((tmp_path / "tutorial_output" / "potatoes").resolve())
    assert ns["failed"] == [broken] and not broken.exists() and len(ns["files"]) == 160
    counts = ns["counts"]
    assert counts.to_dict() == {"train": {"3": 40, "7": 40}, "valid": {"3": 40, "7": 40}}
    assert ns["dls"].vocab == ["3", "7"] and len(ns["dls"].train.dataset) == 80
    assert ns["acc"] > 0.8, ns["acc"]


def check_imagenette_sota(ns: dict, tmp_path: Path) -> None:
    """08: xresnet from scratch with label smoothing and MixUp, 32 then 48 px, learns well above 10%; TTA too."""
    from learnkit.callback.mixup import MixUp
    from learnkit.losses import LabelSmoothingCrossEntropy
    from learnkit.vision.xresnet import XResNet

    learn = ns["learn"]
    assert isinstance(learn.model, XResNet) and isinstance(learn.loss_func, LabelSmoothingCrossEntropy)
    assert any(isinstance(cb, MixUp) for cb in learn.cbs)
    assert ns["xb"].shape == (32, 3, 32, 32) and abs(float(ns["xb"].mean())) < 0.5  # normalised
    assert learn.dls.valid.one_batch()[0].shape[-2:] == (48, 48)  # progressive resizing: the second size
    assert ns["preds"].shape == (300, 10) and ns["targs"].shape == (300,)
    assert ns["acc"] > 0.18 and ns["tta_acc"] > 0.18, (ns["acc"], ns["tta_acc"])  # guessing: 0.10


def check_lr_find_and_freezing(ns: dict, tmp_path: Path) -> None:
    """09: every suggestion in range and lr_find leaves the model alone; frozen/unfrozen counts; slice ratio; fp16."""
    lrs = ns["lrs"]
    assert lrs._fields == ("minimum", "steep", "valley", "slide")
    assert all(1e-7 <= v <= 10 for v in lrs) and 1e-5 < lrs.valley < 1e-1, lrs
    assert ns["unchanged"]
    assert ns["n_groups"] >= 2 and ns["trainable"] < ns["trainable_unfrozen"]
    assert ns["trainable_unfrozen"] == sum(p.numel() for p in ns["learn"].model.parameters())
    group_lrs = ns["group_lrs"]
    assert group_lrs[-1] / group_lrs[0] == pytest.approx(100, rel=1e-3)  # slice(1e-5, 1e-3)
    assert all(a < b for a, b in zip(group_lrs, group_lrs[1:]))
    assert ns["fp16_cbs"] == ["MixedPrecision"]
    assert not any("Precision" in type(cb).__name__ for cb in ns["learn"].cbs)  # to_fp32 removed it
    assert ns["acc"] > 0.8, ns["acc"]


def check_callbacks_and_curves(ns: dict, tmp_path: Path) -> None:
    """10: stopped at the first epoch improving by < min_delta; best model reloaded; CSV and TensorBoard agree."""
    learn, history = ns["learn"], ns["history"]
    rec = learn.recorder
    valid = [row[1] for row in rec.values]
    assert 2 <= len(valid) < 10 and list(history.epoch) == list(range(len(valid)))
    assert history.valid_loss.tolist() == pytest.approx(valid, abs=1e-6)
    assert history.train_loss.tolist() == pytest.approx([row[0] for row in rec.values], abs=1e-6)
    # patience=1: every epoch but the last beat the best so far by min_delta, the last did not
    assert all(min(valid[:i]) - valid[i] >= 0.02 for i in range(1, len(valid) - 1))
    assert min(valid[:-1]) - valid[-1] < 0.02
    assert ns["valid_loss"] == pytest.approx(min(valid), abs=1e-5)  # SaveModelCallback loaded the best back
    assert (tmp_path / "tutorial_output" / "models" / "best.pth").stat().st_size > 100_000
    assert ns["tb_valid"] == pytest.approx(valid, abs=1e-5)
    assert ns["acc"] > 0.8, ns["acc"]


def check_tracking_and_tuning(ns: dict, tmp_path: Path) -> None:
    """12: six trials (some pruned), every fit an MLflow run, the best rebuilt from best_params learns, exported."""
    import optuna

    study, runs = ns["study"], ns["runs"]
    assert len(study.trials) == 6 and all(t.state.is_finished() for t in study.trials)
    done = [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert study.best_value == min(done)
    assert len(runs) == 6  # one MLflow run per trial's fit (the best model's fit is the 7th, logged after)
    assert sorted(float(r.data.params["lr"]) for r in runs) == pytest.approx(
        sorted(t.params["lr"] for t in study.trials), rel=1e-4)
    assert ns["acc"] > 0.78, ns["acc"]  # the majority class is ~75%
    export = tmp_path / "tutorial_output" / "export.pkl"
    assert Path(ns["fname"]).resolve() == export.resolve() and export.stat().st_size > 1_000
