"""Share learners on the Hugging Face Hub: ``save_pretrained`` / ``push_to_hub`` write, ``hf://`` loads.

A learnkit model repo holds three files: the export (``learner.safetensors``, exactly what ``learn.export`` writes:
weights and a JSON manifest, no pickled code), a model card (``README.md``: YAML front matter with
``library_name: learnkit``, the task's ``pipeline_tag``, then the last epoch's metrics, the vocabulary, the data, the
recipe and how to load it) and ``config.json`` (learnkit version, task, vocabulary and the export's file name).
``load_learner('hf://user/repo', revision=...)`` downloads the config and the export through huggingface_hub's cache
(``HF_HUB_OFFLINE=1`` then reuses it offline) and loads the export without unpickling anything; ``load_learner``
on a folder ``save_pretrained`` wrote reads it the same way.

The Hub is reached with the real ``huggingface_hub`` client (the ``hf`` extra), at ``HF_ENDPOINT`` when it is set
(read at each call, so a mirror or a test's local stand-in can be named after import).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from typing import TYPE_CHECKING, Any

from . import __version__
from .registry import ExportError, describe_model
from .utils import Path, atomic_write, optional_import

if TYPE_CHECKING:  # pragma: no cover
    from .learner import Learner

__all__ = ["save_pretrained", "push_to_hub", "resolve_export", "model_card", "HubError", "EXPORT_NAME",
           "CONFIG_NAME", "CARD_NAME"]

EXPORT_NAME, CONFIG_NAME, CARD_NAME = "learner.safetensors", "config.json", "README.md"
LIBRARY = "learnkit"
_INSTALL = "pip install 'learnkit[hf]' (it brings huggingface_hub)"
_MAX_VOCAB_IN_CARD = 50


class HubError(OSError):
    """A Hub repo that can't be reached, found or read as a learnkit model (the message says how to fix it)."""


# -- describing a learner


def _task(learn: "Learner") -> tuple[str | None, list[str]]:
    """The Hub's ``pipeline_tag`` for this learner (None when the Hub has none for it) and extra tags."""
    dls = learn.dls
    try:
        kinds = tuple(dls.kinds)
        n_inp = dls.n_inp
    except (AttributeError, TypeError):
        return None, []
    inp, targ = (kinds[0] if kinds else None), (kinds[n_inp] if len(kinds) > n_inp else None)
    spec = dls.spec() if callable(getattr(dls, "spec", None)) else None
    extra = ["multi-label"] if targ == "multicategory" else []
    if isinstance(spec, dict) and spec.get("type") == "text" and spec.get("is_lm"):
        return "text-generation", []
    if isinstance(spec, dict) and spec.get("type") == "tabular":
        return ("tabular-regression" if targ == "regression" else "tabular-classification"), extra
    table = {("image", "category"): "image-classification", ("image", "multicategory"): "image-classification",
             ("image", "mask"): "image-segmentation", ("text", "category"): "text-classification",
             ("text", "multicategory"): "text-classification"}
    return table.get((inp, targ)), extra


def _labels(learn: "Learner") -> list | None:
    """The target's vocabulary (class names), JSON-safe; None for targets without one."""
    tb = getattr(learn.dls, "target_block", None)
    vocab = getattr(tb, "vocab", None)
    return None if vocab is None else [v.item() if hasattr(v, "item") else v for v in vocab]


def _splits(learn: "Learner") -> list[tuple[str, int | None]]:
    """``(name, number of items)`` per loader: train, valid, test...; None where the length is unknown (streamed)."""
    out = []
    for name, dl in zip(("train", "valid", "test"), getattr(learn.dls, "loaders", [])):
        try:
            out.append((name, len(dl.dataset)))
        except TypeError:  # an IterableDataset: its length is unknown
            out.append((name, None))
    return out


def _arch(learn: "Learner") -> str:
    """A readable architecture name from the model spec (arch, transformers class), else the model's class."""
    spec = getattr(learn, "model_spec", None) or {}
    cfg = spec.get("config") if isinstance(spec.get("config"), dict) else {}
    return str(spec.get("arch") or spec.get("class") or (cfg.get("architectures") or [None])[0]
               or type(learn.model).__name__)


def _fmt(v: Any) -> str:
    """A metric value for the card's table: 4 decimals, a dash for a missing one."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _config(learn: "Learner") -> dict:
    """What ``config.json`` holds: the library and version, the task, the vocabulary, the export's file name."""
    tag, _ = _task(learn)
    return {"library_name": LIBRARY, "learnkit_version": __version__, "task": tag, "vocab": _labels(learn),
            "export": EXPORT_NAME, "format": "learnkit-export"}


def model_card(learn: "Learner", repo_id: str | None = None) -> str:
    """The model card (``README.md``) for ``learn``: Hub front matter, then metrics, vocab, data, recipe, usage."""
    tag, extra = _task(learn)
    rec = getattr(learn, "recorder", None)
    logs = dict(getattr(rec, "logs", {}) or {})
    metric_names = [getattr(m, "name", None) for m in getattr(learn, "metrics", []) or []]
    front = ["---", f"library_name: {LIBRARY}", "tags:", *[f"- {json.dumps(t)}" for t in [LIBRARY, "safetensors",
                                                                                            *([tag] if tag else []),
                                                                                            *extra]]]
    if tag:
        front.append(f"pipeline_tag: {tag}")
    if any(metric_names):
        front += ["metrics:", *[f"- {json.dumps(n)}" for n in metric_names if n]]
    front.append("---")
    name = repo_id.split("/")[-1] if repo_id else f"learnkit {tag or 'model'}"
    lines = [*front, "", f"# {name}", "",
             f"A learnkit learner{f' for {tag}' if tag else ''}, shared as data: `{EXPORT_NAME}` holds the weights "
             f"and a JSON manifest of the data pipeline (safetensors, no pickled code), so loading it runs no code "
             f"from the file.", "", "## Metrics (last epoch)", ""]
    if logs:
        lines += ["| " + " | ".join(logs) + " |", "|" + "---|" * len(logs),
                  "| " + " | ".join(_fmt(v) for v in logs.values()) + " |"]
    else:
        lines.append("Not recorded: the learner was not trained in the session that saved it.")
    labels = _labels(learn)
    lines += ["", "## Vocabulary", ""]
    if labels is None:
        lines.append("No class vocabulary (the target has none).")
    else:
        shown = ", ".join(f"`{v}`" for v in labels[:_MAX_VOCAB_IN_CARD])
        more = f", ... ({len(labels)} in all; `config.json` lists them)" if len(labels) > _MAX_VOCAB_IN_CARD else ""
        lines.append(f"{len(labels)} classes, in the model's output order: {shown}{more}.")
    blocks = getattr(learn.dls, "blocks", None) or []
    lines += ["", "## Data", "", *[f"- {s}: {'streamed (length unknown)' if n is None else f'{n} items'}"
                                   for s, n in _splits(learn)]]
    if blocks:
        n_inp = learn.dls.n_inp
        names = [getattr(b, "name", type(b).__name__) for b in blocks]
        lines.append(f"- blocks: {', '.join(names[:n_inp])} -> {', '.join(names[n_inp:])}")
    lrs = list(getattr(rec, "lrs", []) or [])
    epochs = len(getattr(rec, "values", []) or [])
    loss = getattr(learn.loss_func, "__name__", None) or type(learn.loss_func).__name__
    lines += ["", "## Recipe", "", f"- architecture: `{_arch(learn)}`", f"- loss: `{loss}`"]
    if epochs:
        lines.append(f"- epochs (last fit): {epochs}")
    if lrs:
        lines.append(f"- peak learning rate (last fit): {max(lrs):.3g}")
    lines += ["", "## How to load it", "", "```python", "from learnkit.export import load_learner", "",
              f"learn = load_learner('hf://{repo_id or '<user>/<repo>'}')  # downloads through huggingface_hub's cache",
              "learn.predict(item)", "```", "",
              f"Offline, `HF_HUB_OFFLINE=1` reuses the cached copy; `load_learner(folder)` reads a folder that "
              f"`learn.save_pretrained(folder)` wrote. Saved with learnkit {__version__}.", ""]
    return "\n".join(lines)


# -- writing


def _is_ours(path: Path) -> bool:
    """Whether ``path`` is a file learnkit wrote (so replacing it deletes nothing of the user's)."""
    try:
        if path.name == CONFIG_NAME:
            return json.loads(path.read_text(encoding="utf-8")).get("library_name") == LIBRARY
        if path.name == CARD_NAME:
            text = path.read_text(encoding="utf-8")
            return text.startswith("---") and f"library_name: {LIBRARY}" in text.split("---", 2)[1]
        with open(path, "rb") as f:  # the export: a safetensors header whose metadata names learnkit's format
            n = int.from_bytes(f.read(8), "little")
            return 0 < n < 100_000_000 and json.loads(f.read(n)).get("__metadata__", {}).get("format") == \
                "learnkit-export"
    except (OSError, ValueError, AttributeError, IndexError):
        return False


def save_pretrained(learn: "Learner", save_directory: str | os.PathLike, repo_id: str | None = None) -> Path:
    """Write the Hub files (the export, ``README.md``, ``config.json``) into ``save_directory``; returns the folder.

    Each file is written atomically. Other files in the folder are left alone; a ``README.md`` or ``config.json``
    that learnkit did not write is never replaced (an error says so). A relative folder is under the working folder
    (not ``learn.path``). ``repo_id`` names the repo in the card's loading line.
    """
    folder = Path(save_directory)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"save_pretrained({str(folder)!r}): that is a file; give a folder to write "
                                 f"{EXPORT_NAME}, {CARD_NAME} and {CONFIG_NAME} into.")
    names = (EXPORT_NAME, CARD_NAME, CONFIG_NAME)
    theirs = [n for n in names if (folder / n).exists() and not _is_ours(folder / n)]
    if theirs:
        raise FileExistsError(f"save_pretrained({str(folder)!r}): {', '.join(theirs)} there was not written by "
                              f"learnkit (e.g. a transformers model's files) and would be replaced. Save into another "
                              f"folder, or move those files first.")
    if getattr(learn, "model_spec", None) is None and describe_model(learn.model) is None:
        raise ExportError("save_pretrained / push_to_hub share a learner as data only (never a pickle), and this "
                          "model has no architecture spec: build it with a learnkit factory (vision_learner, "
                          "text_classifier_learner, tabular_learner, ...) or use a transformers model class.")
    folder.mkdir(parents=True, exist_ok=True)
    # first: a learner that can't be exported as data fails before anything else; absolute, as export would
    # otherwise put a relative name under learn.path (the folder is relative to the working folder, as in transformers)
    learn.export((folder / EXPORT_NAME).absolute())
    with atomic_write(folder / CARD_NAME, "w") as f:
        f.write(model_card(learn, repo_id))
    with atomic_write(folder / CONFIG_NAME, "w") as f:  # last: it names the export, which is complete by now
        json.dump(_config(learn), f, indent=2)
        f.write("\n")
    return folder


def _hub() -> Any:
    return optional_import("huggingface_hub", f"The Hugging Face Hub needs huggingface_hub: {_INSTALL}.")


def _endpoint() -> str | None:
    """``HF_ENDPOINT`` as set now (huggingface_hub reads it once, at import), else None: the client's default."""
    e = os.environ.get("HF_ENDPOINT")
    return e.rstrip("/") if e else None


def push_to_hub(learn: "Learner", repo_id: str, private: bool = False, token: str | None = None,
                commit_message: str = "Upload learnkit model", revision: str | None = None) -> Any:
    """Upload the export, model card and config to the Hub repo ``repo_id`` (created if needed); returns the commit.

    ``revision``: a branch to commit to (created from ``main`` if it doesn't exist). ``token``: a Hub access token
    with write access (default: the one ``hf auth login`` stored, or ``HF_TOKEN``).
    """
    hub = _hub()
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError
    if constants.HF_HUB_OFFLINE:
        raise HubError(f"push_to_hub({repo_id!r}): HF_HUB_OFFLINE is set, so huggingface_hub sends nothing. Unset it "
                       f"to upload, or keep the files locally with learn.save_pretrained(folder).")
    api = hub.HfApi(endpoint=_endpoint(), token=token, library_name=LIBRARY, library_version=__version__)
    with tempfile.TemporaryDirectory(prefix="learnkit-hub-") as tmp:
        save_pretrained(learn, tmp, repo_id=repo_id)  # before any request: a learner that can't be shared fails here
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision is not None and revision != constants.DEFAULT_REVISION:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            return api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message,
                                     revision=revision)
        except HfHubHTTPError as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            if status in (401, 403):
                raise HubError(f"push_to_hub({repo_id!r}): the Hub refused the token (HTTP {status}). Log in with "
                               f"`hf auth login`, set HF_TOKEN, or pass token= a token with write access to "
                               f"{repo_id.split('/')[0]!r}.") from e
            raise HubError(f"push_to_hub({repo_id!r}) failed: {e}") from e
        except OSError as e:  # no network: the client's connection errors
            raise HubError(f"push_to_hub({repo_id!r}): could not reach the Hub at {api.endpoint} ({e}). Check the "
                           f"network (and HF_ENDPOINT), or keep the files with learn.save_pretrained(folder).") from e


# -- reading


def _export_name(config: dict, where: str) -> str:
    """The export's file name from a learnkit ``config.json``, checked to be a plain name (no folders)."""
    if config.get("library_name") != LIBRARY:
        raise HubError(f"{where} is not a learnkit model: its {CONFIG_NAME} has no \"library_name\": \"learnkit\". "
                       f"A transformers model loads with vision_learner(dls, id) or AutoModel.from_pretrained(id); "
                       f"load_learner reads what learn.save_pretrained() / learn.push_to_hub() wrote.")
    name = str(config.get("export", EXPORT_NAME))
    if not name or name != os.path.basename(name) or name in (".", ".."):
        raise HubError(f"{where}: its {CONFIG_NAME} names the export {name!r}, which is not a plain file name.")
    return name


def _download(repo_id: str, revision: str | None) -> Path:
    """The export of ``hf://repo_id`` at ``revision``, through huggingface_hub's cache; a HubError naming the fix."""
    _hub()
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HFValidationError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    where = f"hf://{repo_id}" + (f" (revision {revision!r})" if revision else "")

    def get(filename: str) -> str:
        try:
            return hf_hub_download(repo_id, filename, revision=revision, endpoint=_endpoint(), library_name=LIBRARY,
                                   library_version=__version__)
        except HFValidationError as e:
            raise HubError(f"{where}: {repo_id!r} is not a Hub repo id ({e}); write load_learner('hf://user/repo').") \
                from None
        except GatedRepoError as e:
            raise HubError(f"{where} is gated: accept its conditions on the Hub, then log in (`hf auth login` or "
                           f"HF_TOKEN).") from e
        except RepositoryNotFoundError as e:
            raise HubError(f"{where}: no such model repo on the Hub ({_endpoint() or constants.ENDPOINT}), or it is "
                           f"private and no valid token was sent. Check the id; for a private repo log in "
                           f"(`hf auth login` or HF_TOKEN); for files on disk give load_learner the folder "
                           f"learn.save_pretrained(folder) wrote.") from None
        except RevisionNotFoundError:
            raise HubError(f"{where}: the repo has no revision {revision!r}. Give a branch, tag or commit hash that "
                           f"exists (revision=None is 'main').") from None
        except LocalEntryNotFoundError as e:  # no network (or offline) and nothing in the cache
            if constants.HF_HUB_OFFLINE:
                raise HubError(f"{where}: HF_HUB_OFFLINE is set and huggingface_hub's cache has no {filename} for it. "
                               f"Unset HF_HUB_OFFLINE to download it once, or load a local folder written by "
                               f"learn.save_pretrained(folder).") from e
            raise HubError(f"{where}: could not reach the Hub to download {filename}, and huggingface_hub's cache "
                           f"has no copy. Connect to the network, or set HF_HUB_OFFLINE=1 to load the copy "
                           f"huggingface_hub cached on an earlier download, or load a local folder written by "
                           f"learn.save_pretrained(folder).") from e
        except EntryNotFoundError:
            raise HubError(f"{where} has no {filename}: it was not shared with learnkit (learn.push_to_hub() uploads "
                           f"{EXPORT_NAME}, {CARD_NAME} and {CONFIG_NAME}).") from None

    with open(get(CONFIG_NAME), encoding="utf-8") as f:
        try:
            config = json.load(f)
        except json.JSONDecodeError as e:
            raise HubError(f"{where}: its {CONFIG_NAME} is not JSON ({e}).") from None
    return Path(get(_export_name(config, where)))


def resolve_export(fname: str | os.PathLike, revision: str | None = None) -> tuple[Path, Path]:
    """``(export file, learner's path)`` for ``load_learner``: downloaded for ``hf://user/repo`` (the path is then
    the working folder, never huggingface_hub's cache), named by ``config.json`` in a ``save_pretrained`` folder,
    else ``fname`` itself; the path is the file's folder."""
    s = os.fspath(fname)
    if isinstance(s, str) and s.startswith("hf://"):
        repo_id = s[len("hf://"):].strip("/")
        if repo_id.startswith(("datasets/", "spaces/")):
            raise HubError(f"load_learner({s!r}): learners live in model repos; write hf://user/repo.")
        return _download(repo_id, revision), Path(".")
    if revision is not None:
        raise ValueError(f"load_learner({s!r}, revision={revision!r}): revision= is for Hub repos "
                         f"(load_learner('hf://user/repo', revision=...)), not local files.")
    path = Path(s)
    cfg = path / CONFIG_NAME
    if path.is_dir() and cfg.is_file():
        try:
            config = json.loads(cfg.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise HubError(f"{cfg} is not JSON ({e}).") from None
        path = path / _export_name(config, str(path))
    return path, path.parent
