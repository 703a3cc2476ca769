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
              "03_collab.ipynb": check_collab, "04_segmentation.ipynb": check_segmentation, "05_text.ipynb": check_text}
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
