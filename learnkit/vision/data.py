"""``ImageDataLoaders``: one-line factories for image classification data (folders, file names, DataFrames, lists).

Each factory builds a ``DataBlock`` from ``ImageBlock`` and a target block with module-level
getters and splitters (so DataLoader workers and exports can pickle them), then calls
``DataBlock.dataloaders(source, path=path, **kwargs)``: extra keyword arguments such as ``bs``,
``num_workers``, ``device``, ``val_bs`` go there.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import pandas as pd

from ..data.block import DataBlock
from ..data.blocks import CategoryBlock, MultiCategoryBlock, RegressionBlock
from ..data.core import DataLoaders
from ..data.getters import ColReader, ImageGetter, RegexLabeller, parent_label, using_attr
from ..data.splitters import ColSplitter, GrandparentSplitter, RandomSplitter
from ..utils import Path
from .core import ImageBlock, MaskBlock, PILImage

__all__ = ["ImageDataLoaders", "SegmentationDataLoaders"]


def _is_listy(x: Any) -> bool:
    return isinstance(x, (list, tuple))


def _check_fnames(fnames: Any, factory: str) -> list:
    if isinstance(fnames, (str, os.PathLike)):
        raise TypeError(f"ImageDataLoaders.{factory}: fnames must be a list of files (e.g. get_image_files(path)), "
                        f"not the single path {os.fspath(fnames)!r}.")
    fnames = list(fnames)
    if not fnames:
        raise ValueError(f"ImageDataLoaders.{factory}: fnames is empty; check the folder you listed the files from.")
    return fnames


class ImageDataLoaders(DataLoaders):
    """Factories that build image-classification ``DataLoaders`` in one line (fastai's names and arguments)."""

    @classmethod
    def from_dblock(cls, dblock: DataBlock, source: Any, path: str | os.PathLike = ".", **kwargs: Any) -> DataLoaders:
        """``dblock.dataloaders(source, path=path, **kwargs)``."""
        return dblock.dataloaders(source, path=path, **kwargs)

    @classmethod
    def from_folder(cls, path: str | os.PathLike, train: str = "train", valid: str = "valid",
                    valid_pct: float | None = None, seed: int | None = None, vocab: Sequence | None = None,
                    item_tfms: Any = None, batch_tfms: Any = None, img_cls: type = PILImage,
                    **kwargs: Any) -> DataLoaders:
        """Images in ``path/train/<label>/`` and ``path/valid/<label>/`` (or one tree split at random with ``valid_pct``)."""
        if valid_pct is None:
            splitter: Any = GrandparentSplitter(train_name=train, valid_name=valid)
            get_items: Callable = ImageGetter(folders=[train, valid])
        else:
            splitter, get_items = RandomSplitter(valid_pct, seed=seed), ImageGetter()
        dblock = DataBlock(blocks=(ImageBlock(img_cls), CategoryBlock(vocab=vocab)), get_items=get_items,
                           splitter=splitter, get_y=parent_label, item_tfms=item_tfms, batch_tfms=batch_tfms)
        return cls.from_dblock(dblock, Path(path), path=path, **kwargs)

    @classmethod
    def from_path_func(cls, path: str | os.PathLike, fnames: Sequence, label_func: Callable, valid_pct: float = 0.2,
                       seed: int | None = None, item_tfms: Any = None, batch_tfms: Any = None,
                       img_cls: type = PILImage, **kwargs: Any) -> DataLoaders:
        """Files ``fnames`` labelled by ``label_func(path_of_file)``, split at random."""
        fnames = _check_fnames(fnames, "from_path_func")
        dblock = DataBlock(blocks=(ImageBlock(img_cls), CategoryBlock), splitter=RandomSplitter(valid_pct, seed=seed),
                           get_y=label_func, item_tfms=item_tfms, batch_tfms=batch_tfms)
        return cls.from_dblock(dblock, fnames, path=path, **kwargs)

    @classmethod
    def from_name_func(cls, path: str | os.PathLike, fnames: Sequence, label_func: Callable, valid_pct: float = 0.2,
                       seed: int | None = None, item_tfms: Any = None, batch_tfms: Any = None,
                       img_cls: type = PILImage, **kwargs: Any) -> DataLoaders:
        """Files ``fnames`` labelled by ``label_func(file_name)`` (the name only, e.g. ``'Abyssinian_12.jpg'``)."""
        return cls.from_path_func(path, fnames, using_attr(label_func, "name"), valid_pct=valid_pct, seed=seed,
                                  item_tfms=item_tfms, batch_tfms=batch_tfms, img_cls=img_cls, **kwargs)

    @classmethod
    def from_path_re(cls, path: str | os.PathLike, fnames: Sequence, pat: str, **kwargs: Any) -> DataLoaders:
        """Files ``fnames`` labelled by the first group of regex ``pat`` searched in the full path."""
        return cls.from_path_func(path, fnames, RegexLabeller(pat), **kwargs)

    @classmethod
    def from_name_re(cls, path: str | os.PathLike, fnames: Sequence, pat: str, **kwargs: Any) -> DataLoaders:
        """Files ``fnames`` labelled by the first group of regex ``pat`` searched in the file name."""
        return cls.from_name_func(path, fnames, RegexLabeller(pat), **kwargs)

    @classmethod
    def from_df(cls, df: pd.DataFrame, path: str | os.PathLike = ".", valid_pct: float = 0.2, seed: int | None = None,
                fn_col: int | str = 0, folder: str | None = None, suff: str = "", label_col: Any = 1,
                label_delim: str | None = None, y_block: Any = None, valid_col: int | str | None = None,
                item_tfms: Any = None, batch_tfms: Any = None, img_cls: type = PILImage,
                **kwargs: Any) -> DataLoaders:
        """Rows of ``df``: file names in ``fn_col`` (under ``path/folder``, plus ``suff``), labels in ``label_col``.

        Several label columns or a ``label_delim`` make it multi-label; ``valid_col`` (True for
        validation rows) replaces the random split.
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"ImageDataLoaders.from_df needs a pandas DataFrame, got a {type(df).__name__}.")
        if len(df) == 0:
            raise ValueError("ImageDataLoaders.from_df: the DataFrame has no rows.")
        base = Path(path) if folder is None else Path(path) / folder
        if y_block is None:
            multi = (_is_listy(label_col) and len(label_col) > 1) or label_delim is not None
            y_block = MultiCategoryBlock if multi else CategoryBlock
        splitter = RandomSplitter(valid_pct, seed=seed) if valid_col is None else ColSplitter(valid_col)
        dblock = DataBlock(blocks=(ImageBlock(img_cls), y_block),
                           get_x=ColReader(fn_col, pref=base, suff=suff),  # a Path: absolute names stay absolute
                           get_y=ColReader(label_col, label_delim=label_delim),
                           splitter=splitter, item_tfms=item_tfms, batch_tfms=batch_tfms)
        return cls.from_dblock(dblock, df, path=path, **kwargs)

    @classmethod
    def from_csv(cls, path: str | os.PathLike, csv_fname: str = "labels.csv", header: Any = "infer",
                 delimiter: str | None = None, **kwargs: Any) -> DataLoaders:
        """``from_df`` on the CSV file ``path/csv_fname`` (file names relative to ``path``)."""
        csv = Path(path) / csv_fname
        if not csv.is_file():
            raise FileNotFoundError(f"ImageDataLoaders.from_csv: no file {str(csv)!r}; pass csv_fname= with the name "
                                    f"of the CSV inside {str(path)!r}.")
        df = pd.read_csv(csv, header=header, **({} if delimiter is None else {"delimiter": delimiter}))
        return cls.from_df(df, path=path, **kwargs)

    @classmethod
    def from_lists(cls, path: str | os.PathLike, fnames: Sequence, labels: Sequence, valid_pct: float = 0.2,
                   seed: int | None = None, y_block: Any = None, item_tfms: Any = None, batch_tfms: Any = None,
                   **kwargs: Any) -> DataLoaders:
        """Files ``fnames`` (used as given) with ``labels`` (one per file), split at random."""
        fnames = _check_fnames(fnames, "from_lists")
        labels = list(labels)
        if len(labels) != len(fnames):
            raise ValueError(f"ImageDataLoaders.from_lists: {len(fnames)} files but {len(labels)} labels; give one "
                             f"label per file.")
        if y_block is None:
            first = labels[0]
            if _is_listy(first) and len(first) > 1:
                y_block = MultiCategoryBlock
            elif isinstance(first, float):
                y_block = RegressionBlock
            else:
                y_block = CategoryBlock
        img_cls = kwargs.pop("img_cls", PILImage)
        dblock = DataBlock(blocks=(ImageBlock(img_cls), y_block), get_x=itemgetter(0), get_y=itemgetter(1),
                           splitter=RandomSplitter(valid_pct, seed=seed), item_tfms=item_tfms, batch_tfms=batch_tfms)
        return cls.from_dblock(dblock, list(zip(fnames, labels)), path=path, **kwargs)



class SegmentationDataLoaders(DataLoaders):
    """Factories that build segmentation ``DataLoaders`` (an image and its mask of class ids) in one line."""

    @classmethod
    def from_label_func(cls, path: str | os.PathLike, fnames: Sequence, label_func: Callable,
                        codes: Sequence | None = None, valid_pct: float = 0.2, seed: int | None = None,
                        item_tfms: Any = None, batch_tfms: Any = None, img_cls: type = PILImage,
                        **kwargs: Any) -> DataLoaders:
        """Images ``fnames`` with masks at ``label_func(image_path)``, split at random; ``codes`` name the class ids.

        Every item and batch transform moves a mask with its image (nearest resampling for masks).
        Extra keyword arguments (``bs``, ``num_workers``, ``device``, ``val_bs``) go to ``DataBlock.dataloaders``.
        """
        if isinstance(fnames, (str, os.PathLike)):
            raise TypeError(f"SegmentationDataLoaders.from_label_func: fnames must be a list of image files (e.g. "
                            f"get_image_files(path/'images')), not the single path {os.fspath(fnames)!r}.")
        fnames = list(fnames)
        if not fnames:
            raise ValueError("SegmentationDataLoaders.from_label_func: fnames is empty; check the folder you listed "
                             "the images from.")
        if not callable(label_func):
            raise TypeError(f"SegmentationDataLoaders.from_label_func: label_func must be a function from an image "
                            f"path to its mask's path, not {label_func!r}.")
        dblock = DataBlock(blocks=(ImageBlock(img_cls), MaskBlock(codes=codes)),
                           splitter=RandomSplitter(valid_pct, seed=seed), get_y=label_func,
                           item_tfms=item_tfms, batch_tfms=batch_tfms)
        return dblock.dataloaders(fnames, path=path, **kwargs)
