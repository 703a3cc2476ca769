"""Type dispatch for fastai-style transforms: several ``encodes``/``decodes``/``setups`` in one class body, each
picked by the annotated type of its first argument (the most specific match along the value's MRO)."""
from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

__all__ = ["TypeDispatch", "TfmMeta", "is_tuple", "retain_type", "TFM_METHODS"]

TFM_METHODS = ("encodes", "decodes", "setups")


def is_tuple(x: Any) -> bool:
    """A plain tuple (or a ``fastuple``), which transforms apply to element-wise; named tuples are single values."""
    return isinstance(x, tuple) and not hasattr(x, "_fields")


def _types_of(ann: Any) -> tuple[type, ...]:
    """The classes an annotation names (a class, a tuple of classes, a ``Union`` / ``A | B``); ``object`` if none."""
    if ann is inspect.Parameter.empty or ann is Any or ann is None:
        return (object,)
    if isinstance(ann, type):
        return (ann,)
    if isinstance(ann, tuple):
        return tuple(t for a in ann for t in _types_of(a))
    args = typing.get_args(ann)
    origin = typing.get_origin(ann)
    if args and origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return tuple(t for a in args for t in _types_of(a))
    if isinstance(origin, type):  # list[int] -> list
        return (origin,)
    return (object,)


def _signature(f: Callable, is_method: bool) -> tuple[tuple[type, ...], Any]:
    """The input types (first non-self argument) and the return annotation of ``f``."""
    try:
        hints = typing.get_type_hints(f)
    except Exception:  # unresolved forward references: fall back on the raw annotations
        hints = dict(getattr(f, "__annotations__", {}))
    params = [p for p in inspect.signature(f).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if is_method:
        params = params[1:]
    ann = hints.get(params[0].name, inspect.Parameter.empty) if params else inspect.Parameter.empty
    return _types_of(ann), hints.get("return")


class TypeDispatch:
    """Functions keyed by the type of their first argument; calling it runs the most specific match (or returns
    the input when none matches)."""

    def __init__(self, funcs: list[tuple[Callable, bool]] | None = None, bases: list["TypeDispatch"] | None = None) -> None:
        self.funcs: list[tuple[tuple[type, ...], Callable, bool, Any]] = []  # (types, fn, is_method, returns)
        for b in bases or []:
            for entry in b.funcs:
                self._put(entry)
        for f, m in funcs or []:
            self.add(f, m)
        self.inst: Any = None

    def _put(self, entry: tuple) -> None:
        self.funcs = [e for e in self.funcs if e[0] != entry[0]] + [entry]  # the same types: the later one wins

    def add(self, f: Callable, is_method: bool | None = None) -> None:
        """Register ``f`` (a method when its first parameter is named ``self``)."""
        if is_method is None:
            names = list(inspect.signature(f).parameters)
            is_method = bool(names) and names[0] == "self"
        types, ret = _signature(f, is_method)
        self._put((types, f, is_method, ret))

    def __len__(self) -> int:
        return len(self.funcs)

    def lookup(self, t: type) -> tuple | None:
        """The entry whose type comes first in ``t``'s MRO."""
        best, rank = None, None
        mro = inspect.getmro(t) if isinstance(t, type) else (object,)
        for e in self.funcs:
            for typ in e[0]:
                r = next((i for i, m in enumerate(mro) if m is typ or (typ is not object and m == typ)), None)
                if r is None and typ is not object and isinstance(typ, type) and issubclass(t, typ):
                    r = len(mro) - 1  # an ABC (Sequence, Number): after every concrete class
                if r is not None and (rank is None or r < rank):
                    best, rank = e, r
        return best

    def returns(self, x: Any) -> Any:
        """The return annotation of the function that would handle ``x``."""
        e = self.lookup(type(x))
        return None if e is None else e[3]

    def bound(self, inst: Any) -> "TypeDispatch":
        """A view of this dispatcher that passes ``inst`` as ``self`` to methods."""
        out = TypeDispatch.__new__(TypeDispatch)
        out.funcs, out.inst = self.funcs, inst
        return out

    def __get__(self, inst: Any, owner: type) -> "TypeDispatch":
        return self if inst is None else self.bound(inst)

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        e = self.lookup(type(x))
        if e is None:
            return x
        _, f, is_method, _ = e
        return f(self.inst, x, *args, **kwargs) if is_method else f(x, *args, **kwargs)

    def __repr__(self) -> str:
        return "(" + ", ".join(f"{'|'.join(t.__name__ for t in e[0])} -> {e[1].__name__}" for e in self.funcs) + ")"


class _DispatchNamespace(dict):
    """A class-body namespace that keeps every definition of ``encodes``/``decodes``/``setups``, not only the last."""

    def __init__(self) -> None:
        super().__init__()
        self.collected: dict[str, list[Callable]] = {n: [] for n in TFM_METHODS}

    def __setitem__(self, k: str, v: Any) -> None:
        if k in TFM_METHODS and callable(v) and not isinstance(v, TypeDispatch):
            self.collected[k].append(v)
        super().__setitem__(k, v)


class TfmMeta(type):
    """Metaclass of ``Transform``: gathers the class's typed ``encodes``/``decodes``/``setups`` into dispatchers
    (extending the base classes' ones); ``@SomeTransform`` on a function named ``encodes`` adds it to that class."""

    @classmethod
    def __prepare__(mcs, name: str, bases: tuple, **kwargs: Any) -> dict:
        return _DispatchNamespace()

    def __new__(mcs, name: str, bases: tuple, ns: dict, **kwargs: Any) -> "TfmMeta":
        collected = getattr(ns, "collected", {n: [] for n in TFM_METHODS})
        body = dict(ns)
        for n in TFM_METHODS:
            inherited = [b.__dict__[n] for base in bases for b in inspect.getmro(base)
                         if isinstance(b.__dict__.get(n), TypeDispatch)][:1]
            fns = collected[n] or ([body[n]] if n in body and callable(body[n]) else [])
            body[n] = TypeDispatch([(f, True) for f in fns], bases=inherited)
        return super().__new__(mcs, name, bases, body, **kwargs)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        f = args[0] if args else None
        if len(args) == 1 and not kwargs and callable(f) and getattr(f, "__name__", None) in TFM_METHODS \
                and not isinstance(f, type):
            cls.__dict__[f.__name__].add(f)  # @MyTransform def encodes(self, x: int): ...
            return f
        return super().__call__(*args, **kwargs)


def retain_type(new: Any, old: Any = None, typ: Any = None) -> Any:
    """``new`` cast to ``typ`` (a return annotation), or to ``old``'s type when that is a subclass of ``new``'s."""
    if new is None:
        return new
    if typ is None or not isinstance(typ, type):
        if old is None or type(old) is type(new) or not isinstance(old, type(new)):
            return new
        typ = type(old)
    if isinstance(new, typ) or typ is type(None):
        return new
    try:
        if is_tuple(new) and issubclass(typ, tuple):
            return typ(new)
        try:
            new.__class__ = typ  # a subclass of new's class with the same layout
            return new
        except TypeError:
            return typ(new)
    except Exception:
        return new
