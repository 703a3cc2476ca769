"""Safe export: a learner as data (safetensors weights + a JSON manifest), loaded without unpickling code.

The file is one safetensors file: the model's tensors, and in its metadata a JSON manifest that
says how to rebuild everything inference needs (the architecture spec, the blocks with their
vocabularies, the validation item transforms, the batch transforms such as normalisation, and
the loss whose ``activation``/``decodes`` turn outputs into predictions). Nothing the user wrote to
*get* the data (a label lambda, a getter living in ``__main__``) is needed or stored.

Classes are rebuilt only from registries of names (``register_transform``, ``register_block``,
``register_loss``, ``register_model_builder``, ``register_data_loaders``: ``learnkit.registry``), which each
domain fills where it defines things; this module imports no domain. The manifest lists the modules
that registered what it uses, and ``load_learner`` imports those of learnkit's own package (never
another module) before rebuilding. A model with no spec can be exported only with the explicit opt-in
``pickle_model=True``, and such a file loads only with ``pickle_model=True`` too.
"""
from __future__ import annotations

import hashlib
import inspect
import io
import json
import os
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from . import __version__
from .data.core import DataLoader, DataLoaders, Datasets
from .hub import resolve_export
from .registry import (_BLOCKS, _DATA_LOADERS, _LEARNERS, _LOSSES, _MODEL_BUILDERS, _TRANSFORMS, ExportError,
                       describe_model, import_registering, module_of, register_block, register_data_loaders, register_loss,
                       register_model_builder, register_transform)
from .utils import Path, write_under_path
from .weights_io import check_finite_weights, load_model_state

if TYPE_CHECKING:  # pragma: no cover
    from .learner import Learner

__all__ = ["export_learner", "load_learner", "register_transform", "register_block", "register_loss",
           "register_model_builder", "register_data_loaders", "ExportError", "FORMAT", "write_under_path"]

FORMAT = "learnkit-export"
VERSION = 2  # 2: the manifest lists the modules whose registrations it needs ("modules")
# Version 1 manifests name no modules: their files load after importing the learnkit modules that registered
# everything a version 1 export could use (names only: this module imports no domain).
_VERSION1_MODULES = ("learnkit.learner", "learnkit.losses", "learnkit.data.blocks", "learnkit.data.transforms",
                     "learnkit.data.normalize", "learnkit.vision.augment", "learnkit.vision.batch_augment",
                     "learnkit.vision.core", "learnkit.vision.learner", "learnkit.vision.unet_learner",
                     "learnkit.tabular.data", "learnkit.tabular.learner", "learnkit.collab.learner",
                     "learnkit.text.learner")


# -- describing

def _tfm_config(t: Any, stage: str) -> dict | None:
    if getattr(t, "split_idx", None) == 0:
        return None  # training-only augmentation: inference never runs it
    name = type(t).__name__
    if _TRANSFORMS.get(name) is not type(t):
        raise ExportError(
            f"The {stage} transform {t!r} ({type(t).__module__}.{name}) can't be exported as data: learnkit only "
            f"rebuilds registered transform classes. Give it get_config() and decorate it with "
            f"@learnkit.export.register_transform (and import it before load_learner).")
    return {"name": name, "config": t.get_config()}


def _loss_config(loss: Any) -> dict:
    name = type(loss).__name__
    if _LOSSES.get(name) is not type(loss):
        raise ExportError(f"The loss {loss!r} is not a registered learnkit loss, so load_learner could not decode "
                          f"predictions with it. Decorate its class with @learnkit.export.register_loss.")
    cfg = loss.get_config() if hasattr(loss, "get_config") else {}
    if not cfg:
        params = inspect.signature(type(loss).__init__).parameters
        cfg = {k: getattr(loss, k) for k in params if k != "self" and hasattr(loss, k)
               and isinstance(getattr(loss, k), (int, float, str, bool, type(None)))}
    return {"name": name, "config": cfg}


def _modules(manifest: dict) -> list[str]:
    """The modules whose registrations rebuild ``manifest``: ``load_learner`` imports the learnkit ones first."""
    data, spec = manifest["data"], manifest["model"]
    names = [("learner", ""), ("loss", manifest["loss"]["name"])]
    if not spec.get("pickled"):
        names.append(("model_builder", spec.get("builder")))
    if "type" in data:
        names.append(("data_loaders", data["type"]))
    else:
        names += [("block", b.get("name")) for b in data["blocks"]]
        names += [("transform", t["name"]) for t in data["item_tfms"] + data["batch_tfms"]]
    return sorted({m for reg, name in names if (m := module_of(reg, name)) is not None})


def _manifest(learn: "Learner", pickled: bool) -> dict:
    dls = learn.dls
    own = dls.spec() if callable(getattr(dls, "spec", None)) else None
    if isinstance(own, dict) and own.get("type") in _DATA_LOADERS:  # loaders that describe themselves (tabular)
        data = own
    elif dls.blocks is None:
        raise ExportError("export needs DataLoaders built from blocks (DataBlock or a factory) so inference knows how "
                          "to load and decode items; plain torch loaders can't be described. Use learn.save() instead.")
    else:
        valid = dls.valid
        data = {
            "n_inp": dls.n_inp,
            "blocks": [b.get_config() for b in dls.blocks],
            "item_tfms": [c for t in valid.item_tfms if (c := _tfm_config(t, "item")) is not None],
            "batch_tfms": [c for t in valid.batch_tfms if (c := _tfm_config(t, "batch")) is not None],
            "bs": valid.bs,
        }
    manifest = {"format": FORMAT, "version": VERSION, "learnkit_version": __version__,
                "model": {"pickled": True} if pickled else learn.model_spec, "data": data,
                "loss": _loss_config(learn.loss_func)}
    manifest["modules"] = _modules(manifest)
    return manifest


def export_learner(learn: "Learner", fname: str | os.PathLike = "export.pkl", pickle_model: bool = False) -> Path:
    """Write ``learn`` for inference (weights + manifest, no pickled code) atomically; returns the file's path."""
    spec = getattr(learn, "model_spec", None)
    if spec is None:  # a model no learnkit factory built, e.g. a transformers one in a plain Learner
        spec = learn.model_spec = describe_model(learn.model)
    if spec is None and not pickle_model:
        raise ExportError(
            "This learner's model has no architecture spec (it was not built by vision_learner or another learnkit "
            "factory), so it can't be saved as data. Either use learn.save() for the weights, or opt in to "
            "pickling the model with learn.export(fname, pickle_model=True) — the file then runs code when loaded "
            "and load_learner needs pickle_model=True too.")
    if spec is not None and spec.get("builder") not in _MODEL_BUILDERS:
        raise ExportError(f"Model spec builder {spec.get('builder')!r} is not registered: register it with "
                          f"learnkit.export.register_model_builder(name, fn).")
    state = learn.model.state_dict()
    check_finite_weights(state, Path(learn.path) / fname)
    manifest = _manifest(learn, pickled=spec is None)
    tensors, seen = {}, set()
    for k, v in state.items():
        v = v.detach().cpu().contiguous()
        tensors[f"model.{k}"] = v.clone() if v.data_ptr() in seen else v  # tied weights: one copy per name
        seen.add(v.data_ptr())
    if spec is None:
        buf = io.BytesIO()
        torch.save(learn.model, buf)
        tensors = {"pickled_model": torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)}
    manifest["weights_sha256"] = _payload_sha256(st_save(tensors))  # the payload doesn't depend on the metadata
    blob = st_save(tensors, metadata={"format": FORMAT, "manifest": json.dumps(manifest)})
    return write_under_path(learn, fname, blob)


# -- loading

def _read(fname: Path) -> tuple[dict, dict]:
    if not fname.exists():
        raise FileNotFoundError(f"No export at {fname}: run learn.export() first (it writes under learn.path).")
    if fname.is_dir():
        raise ExportError(f"{fname} is a folder, not an export file: give the file learn.export() wrote, "
                          f"e.g. load_learner({str(fname / 'export.pkl')!r}).")
    data = fname.read_bytes()
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + header_len]).get("__metadata__", {})
    except (SafetensorError, ValueError, UnicodeDecodeError, json.JSONDecodeError) as e:
        hint = (" It looks like a pickle (a fastai export?): learnkit never unpickles export files; re-export the "
                "learner with learnkit.") if data[:1] == b"\x80" or data[:2] == b"PK" else ""
        if data[:2] == b"PK" and _is_checkpoint(data):
            hint = (" It is a checkpoint (learn.save() wrote it: weights, no data pipeline): build the learner as "
                    "in training and load it with learn.load(name). load_learner reads what learn.export() writes.")
        raise ExportError(f"{fname} is not a learnkit export ({type(e).__name__}).{hint}") from None
    if meta.get("format") != FORMAT or "manifest" not in meta:
        raise ExportError(f"{fname} is a safetensors file but not a learnkit export (no learnkit manifest). "
                          f"Load plain weights with learn.load() or model.load_state_dict().")
    manifest = json.loads(meta["manifest"])
    digest = manifest.get("weights_sha256")  # exports written before the hash existed still load
    if digest is not None and _payload_sha256(data) != digest:
        raise ExportError(f"{fname} is corrupt: its weights don't match the checksum in its manifest (a changed or "
                          f"damaged byte). Export the learner again, or copy the file again from its source.")
    return manifest, tensors


def _is_checkpoint(data: bytes) -> bool:
    """Whether ``data`` is a torch file of plain tensors (``weights_only``: nothing in it runs)."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:  # code, or not a torch file: not a checkpoint
        return False
    return isinstance(state, dict) and (isinstance(state.get("model"), dict) or
                                        any(isinstance(v, torch.Tensor) for v in state.values()))


def _payload_sha256(blob: bytes) -> str:
    """sha256 of a safetensors file's tensor bytes (what follows the 8-byte length and the JSON header)."""
    header_len = int.from_bytes(blob[:8], "little")
    return hashlib.sha256(memoryview(blob)[8 + header_len:]).hexdigest()


def _check_head(fname: Path, spec: dict, dls: Any) -> None:
    """Refuse an export whose model head doesn't have one output per label of its vocabulary."""
    n_out, c = spec.get("n_out", spec.get("out_sz")), getattr(dls, "c", None)
    if n_out is not None and c is not None and int(n_out) != int(c):
        raise ExportError(f"{fname} is inconsistent: its model has {n_out} outputs but its vocabulary needs {c} "
                          f"(vocab {list(getattr(dls, 'vocab', None) or [])[:10]}); predictions would be mapped onto "
                          f"the wrong labels. Re-export the learner from the training session.")


def _not_registered(what: str, name: str, others: list[str]) -> ExportError:
    """The error for a name no imported module registered; ``others``: the export's modules learnkit didn't import."""
    fix = (f"import the module that defines it ({', '.join(others)}) before load_learner" if others else
           "register it with learnkit.export.register_* or upgrade learnkit")
    return ExportError(f"The export uses the {what} {name!r}, which is not registered: {fix}.")


def _inference_dls(data: dict, device: torch.device, others: list[str]) -> DataLoaders:
    if "type" in data:  # loaders that described themselves: rebuilt by their registered from_spec
        if data["type"] not in _DATA_LOADERS:
            raise _not_registered("DataLoaders type", data["type"], others)
        return _DATA_LOADERS[data["type"]](data, device)
    blocks = []
    for cfg in data["blocks"]:
        name = cfg["name"]
        if name not in _BLOCKS:
            raise _not_registered("block", name, others)
        blocks.append(_BLOCKS[name](**{k: v for k, v in cfg.items() if k not in ("name", "kind")}))

    def build(items: list) -> list:
        out = []
        for c in items:
            if c["name"] not in _TRANSFORMS:
                raise _not_registered("transform", c["name"], others)
            out.append(_TRANSFORMS[c["name"]](**c["config"]))
        return out

    kinds, n_inp = tuple(b.kind for b in blocks), data["n_inp"]
    empty = Datasets([], [b.type_tfms for b in blocks], splits=([], []), kinds=kinds, n_inp=n_inp, blocks=blocks)
    common = dict(bs=data.get("bs", 64), num_workers=0, device=device, kinds=kinds, n_inp=n_inp, blocks=blocks,
                  item_tfms=build(data["item_tfms"]), batch_tfms=build(data["batch_tfms"]))
    return DataLoaders(DataLoader(empty.train, shuffle=False, **common), DataLoader(empty.valid, **common))


def load_learner(fname: str | os.PathLike, cpu: bool = True, pickle_model: bool = False,
                 revision: str | None = None) -> "Learner":
    """Load a learner written by ``learn.export()`` for inference; runs no pickled code unless you opt in.

    ``fname`` may also be ``'hf://user/repo'`` (downloaded through huggingface_hub's cache, at ``revision``) or a
    folder ``learn.save_pretrained()`` wrote (``learnkit.hub``).
    """
    fname, home = resolve_export(fname, revision)
    manifest, tensors = _read(fname)
    others = import_registering(manifest.get("modules", _VERSION1_MODULES), fname)
    device = torch.device("cpu") if cpu or not torch.cuda.is_available() else torch.device("cuda")
    spec = manifest["model"]
    dls = _inference_dls(manifest["data"], device, others)
    if not spec.get("pickled"):
        _check_head(fname, spec, dls)
    if spec.get("pickled"):
        if not pickle_model:
            raise ExportError(f"{fname} holds a pickled model (it was exported with pickle_model=True): loading it runs "
                              f"code from the file. Only if you trust its source, pass load_learner(..., "
                              f"pickle_model=True).")
        model = torch.load(io.BytesIO(tensors["pickled_model"].numpy().tobytes()), weights_only=False,
                           map_location=device)
    else:
        builder = _MODEL_BUILDERS.get(spec.get("builder"))
        if builder is None:
            raise _not_registered("model builder", spec.get("builder"), others)
        model = builder(spec)
        state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        load_model_state(model, state, fname)
    lc = manifest["loss"]
    if lc["name"] not in _LOSSES:
        raise _not_registered("loss", lc["name"], others)
    loss = _LOSSES[lc["name"]](**lc["config"])
    make = _LEARNERS.get(spec.get("builder")) or _LEARNERS[None]
    learn = make(dls, model.to(device), loss_func=loss, path=home)
    learn.model_spec = None if spec.get("pickled") else spec
    learn.model.eval()
    return learn
