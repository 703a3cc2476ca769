"""The package's structure (issue 24): no import circles, export.py imports no domain, domains register themselves."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from learnkit.registry import ExportError, _is_learnkit_module, import_registering, module_of
from learnkit.samples import sample_path

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = ("learnkit.vision", "learnkit.tabular", "learnkit.collab", "learnkit.text")


def _modules(folder: Path, package: str | None) -> dict[str, Path]:
    """Module name -> file: dotted under ``package``, or the file stems of a folder of scripts (benchmarks)."""
    out = {}
    for p in folder.rglob("*.py"):
        if package is None:
            out[p.stem] = p
            continue
        parts = (package, *p.relative_to(folder).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Modules of ``mods`` that ``name`` imports anywhere (inside functions too), except under ``TYPE_CHECKING``."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in
                   ast.unparse(node.test) for n in ast.walk(node)}
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
        for t in targets:
            while t not in mods and "." in t:
                t = t.rpartition(".")[0]
            if t in mods and t != name and not name.startswith(t + "."):  # a package's own __init__ is no edge
                found.add(t)
    return found


def _cycles(mods: dict[str, Path], skip: tuple[str, ...] = ()) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), ignoring re-export modules in ``skip``."""
    graph = {m: {t for t in _imports(m, p, mods) if not t.endswith(skip)} for m, p in mods.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def f():\n    from b import g\n")
    (tmp_path / "b.py").write_text("import a\n")
    (tmp_path / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\n")
    assert _cycles(_modules(tmp_path, None)) == [["a", "b"]]


@pytest.mark.parametrize("folder,package", [("learnkit", "learnkit"), ("benchmarks", None)])
def test_no_import_circles(folder: str, package: str | None) -> None:
    # the all/basics modules only re-export (imports point into them from nowhere inside the package)
    assert _cycles(_modules(ROOT / folder, package), skip=(".all", ".basics")) == []


def test_export_imports_no_domain_and_callbacks_import_the_learner_for_typing_only() -> None:
    mods = _modules(ROOT / "learnkit", "learnkit")
    assert not {m for m in _imports("learnkit.export", mods["learnkit.export"], mods) if m.startswith(DOMAINS)}
    for name in [m for m in mods if m.startswith("learnkit.callback.")]:
        assert "learnkit.learner" not in _imports(name, mods[name], mods), name


def test_each_domain_registers_where_it_defines() -> None:
    import learnkit.losses  # noqa: F401
    import learnkit.vision.learner  # noqa: F401
    assert module_of("transform", "Resize") == "learnkit.vision.augment"
    assert module_of("transform", "Flip") == "learnkit.vision.batch_augment"
    assert module_of("loss", "CrossEntropyLossFlat") == "learnkit.losses"
    assert module_of("block", "ImageBlock") == "learnkit.vision.core"
    assert module_of("model_builder", "vision_learner") == "learnkit.vision.learner"
    assert module_of("learner", "") == "learnkit.learner"


def test_only_learnkit_modules_are_imported() -> None:
    assert _is_learnkit_module("learnkit.vision.learner")
    for name in ("os", "learnkit_evil", "learnkit..x", "learnkit.vision/../../os", "learnkit.no_such_module", "", 3):
        assert not _is_learnkit_module(name), name
    assert import_registering(["learnkit.losses", "my_tfms", "__main__"]) == ["my_tfms", "__main__"]
    with pytest.raises(ExportError, match="damaged"):
        import_registering([["learnkit.losses"]])


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from learnkit.vision.augment import Resize
    from learnkit.vision.data import ImageDataLoaders
    from learnkit.vision.learner import vision_learner
    path = sample_path("imagenette_tiny")
    dls = ImageDataLoaders.from_folder(path, valid="val", item_tfms=Resize(32), bs=4, num_workers=0)
    learn = vision_learner(dls, "resnet18", pretrained=False, path=tmp_path_factory.mktemp("exp"))
    return learn.export()


def _manifest(fname: Path) -> dict:
    data = fname.read_bytes()
    n = int.from_bytes(data[:8], "little")
    return json.loads(json.loads(data[8:8 + n])["__metadata__"]["manifest"])


def _rewrite(fname: Path, out: Path, **changes: object) -> Path:
    """A copy of the export ``fname`` with its manifest's top-level keys changed (``None`` drops a key)."""
    manifest = {k: v for k, v in {**_manifest(fname), **changes}.items() if v is not None}
    blob = st_save(st_load(fname.read_bytes()), metadata={"format": "learnkit-export", "manifest": json.dumps(manifest)})
    out.write_bytes(blob)
    return out


def test_manifest_names_the_registering_modules(exported: Path) -> None:
    m = _manifest(exported)
    assert m["version"] == 2
    assert {"learnkit.learner", "learnkit.losses", "learnkit.vision.learner", "learnkit.vision.core",
            "learnkit.vision.augment", "learnkit.data.blocks"} <= set(m["modules"])


def test_load_learner_imports_the_domain_the_manifest_names(exported: Path) -> None:
    img = next((sample_path("imagenette_tiny") / "val").rglob("*.JPEG"), None) or \
        next(p for p in (sample_path("imagenette_tiny") / "val").rglob("*") if p.is_file())
    code = (f"import sys\nimport learnkit.export as e\n"
            f"assert not [m for m in sys.modules if m.startswith({DOMAINS!r})], 'export imported a domain'\n"
            f"learn = e.load_learner({str(exported)!r})\n"
            f"label, idx, probs = learn.predict({str(img)!r})\n"
            f"assert 'learnkit.vision.learner' in sys.modules and probs.shape == (len(learn.dls.vocab),)\n"
            f"print(label in learn.dls.vocab)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "True"


def test_a_manifest_never_imports_a_module_outside_learnkit(exported: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from learnkit.export import load_learner
    marker = tmp_path / "imported"
    (tmp_path / "evil_tfms.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    m = _manifest(exported)
    f = _rewrite(exported, tmp_path / "evil.pkl", modules=m["modules"] + ["evil_tfms", "os.path"])
    learn = load_learner(f)
    assert not marker.exists() and learn.dls.vocab == load_learner(exported).dls.vocab
    data = dict(m["data"], item_tfms=m["data"]["item_tfms"] + [{"name": "EvilTfm", "config": {}}])
    f = _rewrite(exported, tmp_path / "evil2.pkl", data=data, modules=m["modules"] + ["evil_tfms"])
    with pytest.raises(ExportError, match=r"'EvilTfm'.*import the module that defines it \(evil_tfms\)"):
        load_learner(f)
    assert not marker.exists()


def test_version_1_exports_without_modules_still_load(exported: Path, tmp_path: Path) -> None:
    from learnkit.export import load_learner
    f = _rewrite(exported, tmp_path / "v1.pkl", version=1, modules=None)
    assert "modules" not in _manifest(f)
    a, b = load_learner(exported), load_learner(f)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(a.model(x), b.model(x))
