"""Getters: find the items (files) and read inputs and labels from them (paths, DataFrame rows).

Every getter here is a module-level function or class, so it pickles: DataLoader workers started
with ``spawn`` and exports can carry it.
"""
from __future__ import annotations

import difflib
import math
import mimetypes
import os
import posixpath
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..utils import Path

__all__ = [
    "get_files", "get_image_files_sorted", "image_extensions", "get_image_files", "get_text_files", "FileGetter", "ImageGetter",
    "parent_label", "RegexLabeller", "ColReader", "using_attr", "ItemGetter", "AttrGetter",
]

# fastai takes these from mimetypes; the fixed extras keep the set the same on machines whose mime tables
# lack modern formats (e.g. .webp)
image_extensions: set[str] = {k.lower() for k, v in mimetypes.types_map.items() if v.startswith("image/")} | {
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".gif", ".bmp", ".dib", ".tif", ".tiff", ".webp",
    ".avif", ".heic", ".heif", ".ico", ".jp2", ".j2k", ".tga", ".pbm", ".pgm", ".ppm", ".pnm",
}


def _ext_matcher(extensions: str | Iterable[str] | None) -> Callable[[str], bool] | None:
    """A test ``name -> bool`` for case-insensitive ``extensions`` (``'png'`` or ``'.png'``, or ``'.tar.gz'``)."""
    if extensions is None:
        return None
    if isinstance(extensions, str):
        extensions = [extensions]
    exts = {(e if e.startswith(".") else "." + e).lower() for e in extensions}
    if not exts:
        return None
    simple = {e for e in exts if e.count(".") == 1}
    multi = tuple(e for e in exts if e.count(".") > 1)

    def match(name: str) -> bool:
        low = name.lower()
        return os.path.splitext(low)[1] in simple or (bool(multi) and low.endswith(multi))
    return match


def _keep(names: Iterable[str], match: Callable[[str], bool] | None) -> list[str]:
    return [n for n in names if not n.startswith(".") and (match is None or match(n))]


def _walk(top: str, match: Callable[[str], bool] | None, followlinks: bool) -> list[str]:
    """Every non-hidden matching file under ``top``; hidden folders skipped; a folder reached twice via links is walked once."""
    res: list[str] = []
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(top, followlinks=followlinks):
        if followlinks:
            st = os.stat(dirpath)
            key = (st.st_dev, st.st_ino)
            if key in seen:  # a link back to a folder already walked
                dirnames[:] = []
                continue
            seen.add(key)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        res.extend(os.path.join(dirpath, f) for f in _keep(filenames, match))
    return res


def _list_dir(folder: str, match: Callable[[str], bool] | None) -> list[str]:
    with os.scandir(folder) as it:
        names = [e.name for e in it if e.is_file()]
    return [os.path.join(folder, n) for n in _keep(names, match)]


def missing_folders_message(path: Path, missing: list[str]) -> str:
    """"folder(s) [...] not found in 'path'; its subfolders are [...]. Did you mean: ...?" (for errors and warnings)."""
    present = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    hints = [f"{m!r} -> {c[0]!r}" for m in missing if (c := difflib.get_close_matches(m, present, n=1, cutoff=0.5))]
    hint = f" Did you mean: {', '.join(hints)}?" if hints else ""
    return f"folder(s) {missing} not found in {str(path)!r}; its subfolders are {present}.{hint}"


def _check_folder(path: Path, what: str = "folder") -> None:
    if not path.exists():
        raise FileNotFoundError(f"The {what} {str(path)!r} does not exist (working folder: {os.getcwd()}): "
                                f"check the path, or download the data first (e.g. untar_data).")
    if not path.is_dir():
        raise NotADirectoryError(f"The {what} {str(path)!r} is a file, not a folder: pass the folder that holds "
                                 f"the files.")


def get_files(path: str | os.PathLike, extensions: str | Iterable[str] | None = None, recurse: bool = True,
              folders: str | Iterable[str] | None = None, followlinks: bool = True) -> "L":
    """Files under ``path`` (sorted), optionally only ``extensions``, only in the top-level ``folders``, recursively.

    Hidden files and folders (names starting with '.') are skipped. ``folders`` lists subfolders of
    ``path`` to look in (``'.'`` adds the files directly in ``path``); a folder that doesn't exist is
    skipped as fastai does, with a warning naming the folders that do. An empty result is an empty list.
    """
    path = Path(path)
    _check_folder(path)
    match = _ext_matcher(extensions)
    if folders is None:
        tops, loose = [str(path)], False
    else:
        names = [folders] if isinstance(folders, (str, os.PathLike)) else list(folders)
        names = list(dict.fromkeys(os.fspath(f) for f in names))
        loose = "." in names
        names = [f for f in names if f != "."]
        missing = [f for f in names if not (path / f).is_dir()]
        if missing:  # fastai skips them (an empty list when none exists); learnkit also warns, naming them
            warnings.warn(f"get_files: {missing_folders_message(path, missing)} (skipped)", stacklevel=2)
        tops = [str(path / f) for f in names if f not in missing]
    res: list[str] = _list_dir(str(path), match) if loose else []
    for top in tops:
        res.extend(_walk(top, match, followlinks) if recurse else _list_dir(top, match))
    from fastcore.foundation import L  # fastai's list: files.map(label_func).unique(), files[splits[1]]
    return L(Path(r) for r in sorted(res, key=lambda r: r.split(os.sep)))


def get_image_files(path: str | os.PathLike, recurse: bool = True,
                    folders: str | Iterable[str] | None = None) -> "L":
    """Image files under ``path`` (by extension, see ``image_extensions``), sorted."""
    return get_files(path, extensions=image_extensions, recurse=recurse, folders=folders)


def get_image_files_sorted(path: str | os.PathLike, recurse: bool = True,
                           folders: str | Iterable[str] | None = None) -> "L":
    """``get_image_files`` sorted by full path (fastai's name; ``get_image_files`` already sorts)."""
    return get_image_files(path, recurse=recurse, folders=folders).sorted()


def get_text_files(path: str | os.PathLike, recurse: bool = True,
                   folders: str | Iterable[str] | None = None) -> "L":
    """Text (``.txt``) files under ``path``, sorted."""
    return get_files(path, extensions=[".txt"], recurse=recurse, folders=folders)


class FileGetter:
    """A picklable ``get_items``: the files under ``source / suf`` with ``extensions``, in ``folders``."""

    def __init__(self, suf: str = "", extensions: str | Iterable[str] | None = None, recurse: bool = True,
                 folders: str | Iterable[str] | None = None) -> None:
        self.suf, self.recurse = suf, recurse
        self.extensions = None if extensions is None else ([extensions] if isinstance(extensions, str) else list(extensions))
        self.folders = None if folders is None else ([folders] if isinstance(folders, str) else list(folders))

    def __call__(self, source: str | os.PathLike) -> list[Path]:
        """Files under ``source / suf``."""
        return get_files(Path(source) / self.suf, extensions=self.extensions, recurse=self.recurse,
                         folders=self.folders)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(suf={self.suf!r}, extensions={self.extensions!r}, recurse={self.recurse}, "
                f"folders={self.folders!r})")


class ImageGetter(FileGetter):
    """A picklable ``get_items``: the image files under ``source / suf``."""

    def __init__(self, suf: str = "", recurse: bool = True, folders: str | Iterable[str] | None = None) -> None:
        super().__init__(suf, extensions=sorted(image_extensions), recurse=recurse, folders=folders)

    def __repr__(self) -> str:
        return f"ImageGetter(suf={self.suf!r}, recurse={self.recurse}, folders={self.folders!r})"


def parent_label(o: str | os.PathLike) -> str:
    """Label an item with the name of the folder it is in (``.../cat/1.jpg`` -> ``'cat'``)."""
    return Path(o).parent.name


class RegexLabeller:
    """Label an item with the first group of ``pat`` found in its path (``match=True``: matched from the start)."""

    def __init__(self, pat: str | re.Pattern, match: bool = False) -> None:
        self.pat = re.compile(pat)
        self.match = match
        if self.pat.groups < 1:
            raise ValueError(f"RegexLabeller pattern {self.pat.pattern!r} has no group: put the label part in "
                             f"parentheses, e.g. r'^(.+)_\\d+.jpg$'.")

    def __call__(self, o: Any) -> str:
        """The label of ``o`` (a path or string, with '/' as separator on every OS)."""
        s = str(o).replace(os.sep, posixpath.sep)
        res = self.pat.match(s) if self.match else self.pat.search(s)
        if res is None:
            how = "match (from the start of)" if self.match else "find"
            raise ValueError(f"RegexLabeller: pattern {self.pat.pattern!r} did not {how} {s!r}. Check the pattern "
                             f"against this file name (is it applied to the full path or just the name, via "
                             f"using_attr(RegexLabeller(pat), 'name')?).")
        return res.group(1)

    def __repr__(self) -> str:
        return f"RegexLabeller({self.pat.pattern!r}, match={self.match})"


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


class ColReader:
    """Read column(s) ``cols`` of a DataFrame row (a Series, or a namedtuple from ``itertuples``).

    ``pref``/``suff`` wrap the value into a file name (a ``Path`` result when ``pref`` is a path);
    ``label_delim`` splits the value into a list of labels; several ``cols`` give a list of values.
    An integer column is a position among the DataFrame's columns (the ``Index`` field that
    ``itertuples()`` adds first is skipped).
    """

    def __init__(self, cols: int | str | Sequence[int | str], pref: str | os.PathLike = "", suff: str = "",
                 label_delim: str | None = None) -> None:
        self.cols = list(cols) if isinstance(cols, (list, tuple)) else [cols]
        if not self.cols:
            raise ValueError("ColReader needs at least one column: ColReader('fname') or ColReader(['a', 'b']).")
        self.pref, self.suff, self.label_delim = pref, suff, label_delim

    def _get(self, r: Any, c: int | str) -> Any:
        fields = getattr(r, "_fields", None)
        if fields is not None:  # namedtuple from itertuples
            if isinstance(c, int):
                pos = c + 1 if fields and fields[0] == "Index" else c
                if not 0 <= pos < len(r):
                    raise IndexError(f"ColReader: column position {c} is out of range for a row with columns "
                                     f"{list(fields)}.")
                return r[pos]
            if c in fields:
                return getattr(r, c)
            raise KeyError(f"ColReader: column {c!r} is not in this row; its columns are {list(fields)}. (itertuples() "
                           f"renames columns that aren't identifiers: read rows with df.iloc[i] instead.)")
        if hasattr(r, "iloc") and hasattr(r, "index"):  # pandas Series
            if isinstance(c, int) and c not in r.index:
                if not -len(r) <= c < len(r):
                    raise IndexError(f"ColReader: column position {c} is out of range for a row with columns "
                                     f"{list(r.index)}.")
                return r.iloc[c]
            if c not in r.index:
                raise KeyError(f"ColReader: column {c!r} is not in this row; its columns are {list(r.index)}.")
            return r[c]
        if isinstance(r, Mapping):  # a dict row (a Hugging Face datasets row)
            if c not in r:
                raise KeyError(f"ColReader: column {c!r} is not in this row; its columns are {list(r)}.")
            return r[c]
        try:
            return r[c]
        except (KeyError, IndexError, TypeError):
            raise KeyError(f"ColReader: can't read column {c!r} from {type(r).__name__} {r!r}: pass DataFrame rows "
                           f"(df.iloc[i] or df.itertuples()).") from None

    def _do_one(self, r: Any, c: int | str) -> Any:
        o = self._get(r, c)
        if self.label_delim is not None:
            if _is_missing(o):
                return []
            if isinstance(o, (list, tuple)):
                return list(o)
            o = str(o)
            return o.split(self.label_delim) if o else []
        if isinstance(self.pref, os.PathLike):
            return Path(self.pref) / f"{o}{self.suff}"
        if self.pref == "" and self.suff == "":
            return o
        return f"{self.pref}{o}{self.suff}"

    def __call__(self, o: Any) -> Any:
        """The value(s) of the column(s) in row ``o``."""
        if len(self.cols) == 1:
            return self._do_one(o, self.cols[0])
        return [self._do_one(o, c) for c in self.cols]

    def __repr__(self) -> str:
        cols = self.cols[0] if len(self.cols) == 1 else self.cols
        return (f"ColReader({cols!r}, pref={str(self.pref)!r}, suff={self.suff!r}, "
                f"label_delim={self.label_delim!r})")


class using_attr:  # noqa: N801 - fastai's name, used like a function
    """Apply ``f`` to attribute ``attr`` of the item, e.g. ``using_attr(RegexLabeller(pat), 'name')``.

    A plain string item is read as a ``Path`` when ``str`` lacks the attribute (``'a/b.jpg'`` -> ``.name``).
    """

    def __init__(self, f: Callable[[Any], Any], attr: str) -> None:
        self.f, self.attr = f, attr

    def __call__(self, o: Any) -> Any:
        """``f(getattr(o, attr))``."""
        if isinstance(o, str) and not hasattr(o, self.attr):
            o = Path(o)
        try:
            v = getattr(o, self.attr)
        except AttributeError:
            raise AttributeError(f"using_attr: {type(o).__name__} {o!r} has no attribute {self.attr!r}.") from None
        return self.f(v)

    def __repr__(self) -> str:
        return f"using_attr({self.f!r}, {self.attr!r})"


class ItemGetter:
    """``x[i]`` as a picklable transform, applied to the whole item even when it is a tuple (fastai's)."""

    def __init__(self, i: Any) -> None:
        self.i = i

    def __call__(self, x: Any) -> Any:
        """``x[i]``."""
        return x[self.i]

    def __repr__(self) -> str:
        return f"ItemGetter({self.i!r})"


class AttrGetter:
    """``getattr(x, nm, default)`` as a picklable transform, applied to the whole item (fastai's)."""

    def __init__(self, nm: str, default: Any = None) -> None:
        self.nm, self.default = nm, default

    def __call__(self, x: Any) -> Any:
        """``x.<nm>``, or ``default`` when it has none."""
        return getattr(x, self.nm, self.default)

    def __repr__(self) -> str:
        return f"AttrGetter({self.nm!r}, default={self.default!r})"
