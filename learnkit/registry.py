"""What ``load_learner`` can rebuild from names: transforms, blocks, losses, model builders, loaders, learners.

One rule for every domain (as timm's model registry): a module registers what it defines, where it
defines it (``@register_transform`` on a transform class, ``register_model_builder(...)`` beside the
builder). Each entry remembers the module that registered it; an export writes those modules in its
manifest, and ``load_learner`` imports the learnkit ones before rebuilding (``import_registering``), so
``export.py`` imports no domain and a new domain plugs in without touching it.

This module is layer 0: it imports nothing from learnkit, so any module may register.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["ExportError", "register_transform", "register_block", "register_loss", "register_model_builder",
           "register_model_describer", "describe_model",
           "register_data_loaders", "register_learner", "import_registering"]

_TRANSFORMS: dict[str, type] = {}
_BLOCKS: dict[str, Callable[..., Any]] = {}
_LOSSES: dict[str, type] = {}
_DESCRIBERS: dict[str, Callable[[Any], dict | None]] = {}
_MODEL_BUILDERS: dict[str, Callable[[dict], Any]] = {}
_DATA_LOADERS: dict[str, Callable[[dict, Any], Any]] = {}
_LEARNERS: dict[str | None, Callable[..., Any]] = {}  # builder name (None: the default) -> what builds the learner
_MODULES: dict[tuple[str, str], str] = {}  # (registry, name) -> the module that registered it

_PACKAGE = __name__.rsplit(".", 1)[0]  # "learnkit"
_PACKAGE_DIR = Path(__file__).resolve().parent
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class ExportError(ValueError):
    """The learner can't be described as data, or a file is not a learnkit export."""


def _module_of(obj: Any, module: str | None) -> str:
    return module or getattr(obj, "__module__", None) or "__main__"


def register_transform(cls: type) -> type:
    """Make a transform class (with ``get_config``) rebuildable by ``load_learner``; usable as a decorator."""
    _TRANSFORMS[cls.__name__] = cls
    _MODULES["transform", cls.__name__] = _module_of(cls, None)
    return cls


def register_block(name: str, factory: Callable[..., Any], module: str | None = None) -> None:
    """Make a block factory rebuildable by name (called with the block's saved config)."""
    _BLOCKS[name] = factory
    _MODULES["block", name] = _module_of(factory, module)


def register_loss(cls: type) -> type:
    """Make a loss class rebuildable by ``load_learner``; usable as a decorator."""
    _LOSSES[cls.__name__] = cls
    _MODULES["loss", cls.__name__] = _module_of(cls, None)
    return cls


def register_model_builder(name: str, builder: Callable[[dict], Any], learner: Callable[..., Any] | None = None,
                           module: str | None = None) -> None:
    """Register ``builder(spec) -> nn.Module`` for specs whose ``'builder'`` is ``name``; ``load_learner`` makes
    the learner with ``learner(dls, model, loss_func=, path=)`` (a ``Learner`` subclass; default ``Learner``)."""
    _MODEL_BUILDERS[name] = builder
    _MODULES["model_builder", name] = _module_of(builder, module)
    if learner is not None:
        _LEARNERS[name] = learner


def register_model_describer(package: str, describe: Callable[[Any], dict | None], module: str | None = None) -> None:
    """Register ``describe(model) -> spec | None`` for models whose class comes from the top-level ``package``, so a
    learner with such a model exports as data without a learnkit factory having set ``learn.model_spec``."""
    _DESCRIBERS[package] = describe
    _MODULES["model_describer", package] = _module_of(describe, module)


# packages whose models a learnkit module can describe, imported by ``describe_model`` when first needed
_DESCRIBER_MODULES = {"transformers": "learnkit.hf_model"}


def describe_model(model: Any) -> dict | None:
    """A model spec for ``model`` from the describer registered for its package (None: no describer knows it)."""
    package = type(model).__module__.split(".")[0]
    if package not in _DESCRIBERS and package in _DESCRIBER_MODULES:
        importlib.import_module(_DESCRIBER_MODULES[package])
    describe = _DESCRIBERS.get(package)
    return describe(model) if describe is not None else None


def register_data_loaders(type_name: str, from_spec: Callable[[dict, Any], Any], module: str | None = None) -> None:
    """Register ``from_spec(spec, device)`` for DataLoaders whose ``spec()`` dict says ``"type": type_name``."""
    _DATA_LOADERS[type_name] = from_spec
    _MODULES["data_loaders", type_name] = _module_of(from_spec, module)


def register_learner(make: Callable[..., Any]) -> Callable[..., Any]:
    """Make ``make`` the default learner ``load_learner`` builds (``learnkit.learner`` registers ``Learner``)."""
    _LEARNERS[None] = make
    _MODULES["learner", ""] = _module_of(make, None)
    return make


def module_of(registry: str, name: str) -> str | None:
    """The module that registered ``name`` in ``registry`` (``'transform'``, ``'block'``, ``'loss'``, ...)."""
    return _MODULES.get((registry, name))


def _is_learnkit_module(name: str) -> bool:
    """Whether ``name`` is a module of learnkit's own package, found inside its folder (nothing else is imported)."""
    if not (isinstance(name, str) and _MODULE_NAME.fullmatch(name)
            and (name == _PACKAGE or name.startswith(_PACKAGE + "."))):
        return False
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    origin = getattr(spec, "origin", None)
    return origin is not None and Path(origin).resolve().is_relative_to(_PACKAGE_DIR)


def import_registering(modules: Iterable[str], source: Any = "the export") -> list[str]:
    """Import the learnkit modules among ``modules`` (they register what ``source`` needs); returns the others.

    A name outside learnkit's package (a user's module, ``__main__``) is never imported: it is returned, so an
    error can say which module to import before loading.
    """
    others = []
    for name in modules:
        if _is_learnkit_module(name):
            importlib.import_module(name)
        elif isinstance(name, str):
            others.append(name)
        else:
            raise ExportError(f"{source} names a module that is not a string ({name!r}): the file is damaged. "
                              f"Export the learner again.")
    return others
