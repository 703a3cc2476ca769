"""ImageClassifierCleaner: look at the images a classifier finds hardest, and choose to keep, delete or relabel them.

In a notebook it is an ipywidgets panel (category and split drop-downs, then the images of that category,
largest loss first, each with a Keep / Delete / new-label drop-down). In a script the same choices are made
with ``set_choice``. It never touches files: ``delete()`` and ``change()`` return what was chosen, as indices
into ``cleaner.fns`` (the files shown now), so fastai's loops work unchanged::

    for idx in cleaner.delete(): cleaner.fns[idx].unlink()
    for idx, cat in cleaner.change(): shutil.move(str(cleaner.fns[idx]), path/cat)
"""
from __future__ import annotations

import io
import os
import warnings
from typing import Any

import pandas as pd
from PIL import Image

from ..utils import Path

__all__ = ["ImageClassifierCleaner", "KEEP", "DELETE"]

KEEP, DELETE = "<Keep>", "<Delete>"
_SPLITS = ("Train", "Valid")
_NO_WIDGETS = ("ImageClassifierCleaner: ipywidgets is not installed, so there is no panel to click. Make the same "
               "choices with cleaner.set_choice(idx, 'delete' | 'keep' | label) after looking at cleaner.listing(), "
               "or install it: pip install ipywidgets.")


def _thumb_png(fn: Any, height: int, width: int) -> bytes:
    """PNG bytes of a thumbnail of image file ``fn`` fitting in ``width`` x ``height``."""
    with Image.open(fn) as im:
        im = im.convert("RGB")
        im.thumbnail((width, height))
        buf = io.BytesIO()
        im.save(buf, format="PNG")
    return buf.getvalue()


def _split_info(learn: Any, ds_idx: int) -> list[tuple[Path, Any, float]]:
    """``(file, label, loss)`` for every item of loader ``ds_idx``, read unshuffled."""
    dl = learn.dls[ds_idx]
    items = getattr(dl.dataset, "items", None)
    if items is None:
        raise ValueError(f"ImageClassifierCleaner needs loaders over files: loader {ds_idx}'s dataset has no `items` "
                         f"(file paths). Build the DataLoaders with ImageDataLoaders or a DataBlock over image files.")
    fns = _files(learn, dl, items, ds_idx)
    dl = dl.new(shuffle=False, drop_last=False)
    with learn.no_bar():
        _, targs, losses = learn.get_preds(dl=dl, with_loss=True)
    vocab = list(learn.dls.vocab)
    return [(fn, vocab[int(t)], float(l)) for fn, t, l in zip(fns, targs.tolist(), losses.tolist())]


def _files(learn: Any, dl: Any, items: Any, ds_idx: int) -> list[Path]:
    """The image file of each item: the item itself, or what the loader's x getter reads from it (a list entry, a row)."""
    getters = getattr(getattr(dl.dataset, "dsets", None), "getters", None) or getattr(learn.dls, "getters", None)
    get_x = getters[0] if getters else None
    fns = []
    for it in items:
        fn = it if isinstance(it, (str, os.PathLike)) else get_x(it) if get_x is not None else None
        if not isinstance(fn, (str, os.PathLike)):
            raise ValueError(f"ImageClassifierCleaner needs an image file per item: loader {ds_idx}'s items look like "
                             f"{it!r}, and its x getter gives {fn!r}, not a path. Build the DataLoaders with "
                             f"ImageDataLoaders.from_folder / from_name_func / from_lists / from_df, or a DataBlock "
                             f"whose get_x returns the image's file path.")
        fns.append(Path(fn))
    return fns


class ImageClassifierCleaner:
    """Images of one category and split, largest loss first, each with a keep / delete / relabel choice.

    ``fns`` (the files shown), ``losses``, ``labels`` list the current view; ``set_view(category, split)``
    changes it (the drop-downs do the same). Choices are remembered per file across views.
    ``widget`` is the ipywidgets panel, or None when ipywidgets is not installed.
    """

    def __init__(self, learn: Any, ds_idx: int = 0, max_n: int = 30, height: int = 128, width: int = 256) -> None:
        vocab = getattr(learn.dls, "vocab", None)
        if not vocab:
            raise ValueError("ImageClassifierCleaner needs a single-label classifier: learn.dls has no vocab "
                             "(its target is not a CategoryBlock).")
        if ds_idx not in (0, 1):
            raise ValueError(f"ds_idx must be 0 (training set) or 1 (validation set), got {ds_idx}.")
        self.vocab = [str(v) for v in vocab]
        self.max_n, self.height, self.width = max_n, height, width
        self.opts = (KEEP, DELETE, *self.vocab)
        self.infos = [_split_info(learn, 0), _split_info(learn, 1)]
        self._label_of = {fn: lbl for info in self.infos for fn, lbl, _ in info}
        self.choices: dict[Path, str] = {}  # file -> DELETE or new label, across every view
        self.category, self.split = self.vocab[0], _SPLITS[ds_idx]
        self.fns: list[Path] = []
        self.losses: list[float] = []
        self.labels: list[str] = []
        self.widget: Any = None
        self._dropdowns: list[Any] = []
        self._syncing = False
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            warnings.warn(_NO_WIDGETS, stacklevel=2)
            self._widgets = None
        else:
            self._widgets = ipywidgets
            self._build_panel()
        self.set_view()

    # -- the view
    def set_view(self, category: str | None = None, split: str | None = None) -> list[Path]:
        """Show the ``max_n`` files of ``category`` in ``split`` ('Train' or 'Valid'), largest loss first."""
        if category is not None:
            if str(category) not in self.vocab:
                raise ValueError(f"Unknown category {category!r}: pick one of {self.vocab}.")
            self.category = str(category)
        if split is not None:
            split = str(split).capitalize()
            if split not in _SPLITS:
                raise ValueError(f"split must be 'Train' or 'Valid', got {split!r}.")
            self.split = split
        info = [o for o in self.infos[_SPLITS.index(self.split)] if o[1] == self.category]
        info = sorted(info, key=lambda o: o[2], reverse=True)[:self.max_n]
        self.fns = [o[0] for o in info]
        self.labels = [o[1] for o in info]
        self.losses = [o[2] for o in info]
        if self.widget is not None:
            self._syncing = True
            try:
                self._dd_cats.value, self._dd_ds.value = self.category, self.split
            finally:
                self._syncing = False
            self._fill_images()
        return self.fns

    def listing(self) -> pd.DataFrame:
        """The current view as a table: file, label, loss and choice, indexed as ``fns``."""
        return pd.DataFrame({"file": [str(f) for f in self.fns], "label": self.labels, "loss": self.losses,
                             "choice": self.values()})

    # -- choices
    def values(self) -> list[str]:
        """The choice for each file shown: ``'<Keep>'``, ``'<Delete>'`` or a label."""
        return [self.choices.get(f, KEEP) for f in self.fns]

    def set_choice(self, idx: int, choice: str) -> None:
        """Choose for ``fns[idx]``: ``'keep'``, ``'delete'`` (any case, or '<Keep>'/'<Delete>') or a new label."""
        if not 0 <= idx < len(self.fns):
            raise IndexError(f"set_choice: index {idx} is out of range: {len(self.fns)} files are shown.")
        c = str(choice)
        low = c.strip("<>").lower()
        if low in ("keep", "delete"):
            c = KEEP if low == "keep" else DELETE
        elif c not in self.vocab:
            raise ValueError(f"set_choice: {choice!r} is not 'keep', 'delete' or a label of {self.vocab}.")
        self._record(self.fns[idx], c)
        if self._dropdowns:
            self._syncing = True
            try:
                self._dropdowns[idx].value = c
            finally:
                self._syncing = False

    def _record(self, fn: Path, choice: str) -> None:
        if choice == KEEP or choice == self._label_of.get(fn):  # its own label: nothing to change
            self.choices.pop(fn, None)
        else:
            self.choices[fn] = choice

    def delete(self) -> list[int]:
        """Indices (into ``fns``) of the files chosen for deletion."""
        return [i for i, v in enumerate(self.values()) if v == DELETE]

    def change(self) -> list[tuple[int, str]]:
        """``(index into fns, new label)`` for the files given a label other than their own."""
        return [(i, v) for i, (v, lbl) in enumerate(zip(self.values(), self.labels)) if v not in (KEEP, DELETE, lbl)]

    # -- the ipywidgets panel
    def _build_panel(self) -> None:
        w = self._widgets
        self._dd_cats = w.Dropdown(options=self.vocab, value=self.category, description="category")
        self._dd_ds = w.Dropdown(options=_SPLITS, value=self.split, description="split")
        self._dd_cats.observe(self._on_view, names="value")
        self._dd_ds.observe(self._on_view, names="value")
        self._images = w.Box([], layout=w.Layout(overflow="scroll hidden", flex_flow="row", display="flex",
                                                 width="100%"))
        self.widget = w.VBox([self._dd_cats, self._dd_ds, self._images])

    def _on_view(self, change: Any = None) -> None:
        if not self._syncing:
            self.set_view(self._dd_cats.value, self._dd_ds.value)

    def _fill_images(self) -> None:
        w = self._widgets
        boxes, self._dropdowns = [], []
        for i, (fn, v) in enumerate(zip(self.fns, self.values())):
            img = w.Image(value=_thumb_png(fn, self.height, self.width), format="png",
                          layout=w.Layout(height=f"{self.height}px", flex="0 0 auto"))
            dd = w.Dropdown(options=self.opts, value=v, layout=w.Layout(width="max-content"))
            dd.observe(self._on_choice(i), names="value")
            self._dropdowns.append(dd)
            boxes.append(w.VBox([img, dd], layout=w.Layout(flex="0 0 auto")))
        self._images.children = boxes

    def _on_choice(self, i: int) -> Any:
        def handler(change: Any) -> None:
            if not self._syncing:
                self._record(self.fns[i], change["new"])
        return handler

    def _ipython_display_(self) -> None:
        from IPython.display import display
        if self.widget is not None:
            display(self.widget)
        else:
            print(_NO_WIDGETS)
            display(self.listing())

    def __repr__(self) -> str:
        return (f"ImageClassifierCleaner({self.split} / {self.category}: {len(self.fns)} files shown, "
                f"{len(self.delete())} to delete, {len(self.change())} to relabel)")
