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

import numpy as np
import pandas as pd

from ..data.block import DataBlock
from ..data.blocks import CategoryBlock, MultiCategoryBlock, RegressionBlock
from ..data.core import DataLoaders
from ..data.getters import ColReader, ImageGetter, RegexLabeller, missing_folders_message, parent_label, using_attr
from ..data.splitters import ColSplitter, GrandparentSplitter, RandomSplitter
from ..data.getters import get_image_files
from ..utils import Path
from ..data.arrays import FixedSplitter, check_pair, label_block, labels_to_list, one_hot_to_labels
from .arrays import ArrayItems, images_to_nhwc
from .core import ImageBlock, MaskBlock, PILImage, PILImageBW

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


def _labelled_folder(path: Path, name: str) -> bool:
    """Whether ``path/name`` holds images in label folders (``test/<label>/x.png``) rather than directly."""
    folder = path / name
    if not folder.is_dir():
        raise FileNotFoundError(f"ImageDataLoaders.from_folder: no test folder {str(folder)!r}; pass test= the name "
                                f"of the folder inside {str(path)!r} (or leave it out).")
    if get_image_files(folder, recurse=False):
        return False
    if not get_image_files(folder):
        raise ValueError(f"ImageDataLoaders.from_folder: the test folder {str(folder)!r} holds no images.")
    return True


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
                    test: str | None = None, **kwargs: Any) -> DataLoaders:
        """Images in ``path/train/<label>/`` and ``path/valid/<label>/`` (or one tree split at random with ``valid_pct``).

        ``test='test'`` adds ``dls.test``: labelled from ``path/test/<label>/``, or unlabelled when the images
        sit directly in ``path/test/`` (then it is a ``test_dl``: ``get_preds`` works, ``validate`` needs labels).
        """
        labelled_test = test is not None and _labelled_folder(Path(path), test)
        if valid_pct is None:
            _check_split_folders(Path(path), [train, valid])
            splitter: Any = GrandparentSplitter(train_name=train, valid_name=valid,
                                                test_name=test if labelled_test else None)
            get_items: Callable = ImageGetter(folders=[train, valid] + ([test] if labelled_test else []))
        elif test is not None:
            raise ValueError("ImageDataLoaders.from_folder: test= works with train/valid folders (valid_pct=None). "
                             "To split one tree three ways, use a DataBlock with TrainValidTestSplitter.")
        else:
            splitter, get_items = RandomSplitter(valid_pct, seed=seed), ImageGetter()
        dblock = DataBlock(blocks=(ImageBlock(img_cls), CategoryBlock(vocab=vocab)), get_items=get_items,
                           splitter=splitter, get_y=parent_label, item_tfms=item_tfms, batch_tfms=batch_tfms)
        dls = cls.from_dblock(dblock, Path(path), path=path, **kwargs)
        if test is not None and not labelled_test:
            dls.loaders.append(dls.test_dl(get_image_files(Path(path) / test, recurse=False)))
        return dls

    @classmethod
    def from_arrays(cls, x: Any, y: Any, valid_pct: float = 0.2, seed: int | None = None,
                    valid: tuple | None = None, test: tuple | None = None, vocab: Sequence | None = None,
                    y_block: Any = None, item_tfms: Any = None, batch_tfms: Any = None, path: str | os.PathLike = ".",
                    **kwargs: Any) -> DataLoaders:
        """Images held in memory: numpy arrays or tensors ``x`` (N,H,W / N,H,W,C / N,C,H,W) with labels ``y``.

        uint8 (or integer 0-255) pixels are taken as they are; floats must be in [0, 1] and are scaled by 255
        (rounded to uint8, as an image file would hold them), so batches are floats in [0, 1] as from files.
        One channel gives grey images (``PILImageBW``: pass ``n_in=1`` to ``vision_learner``), three RGB.
        ``valid=(xv, yv)`` (and ``test=(xt, yt)``, giving ``dls.test``) replace the random ``valid_pct`` split.
        Labels: class ids or names give a ``CategoryBlock`` (``vocab`` fixes the classes), floats a
        ``RegressionBlock``, one-hot rows (exactly one 1 each: Keras' ``to_categorical``) a ``CategoryBlock``, any
        other 0/1 matrix a multi-label ``MultiCategoryBlock``. ``predict``, ``test_dl``,
        interpretation and export take single arrays.
        """
        parts = [("x", "y", x, y)]
        for name, pair in (("valid", valid), ("test", test)):
            if pair is not None:
                parts.append((f"{name}[0]", f"{name}[1]", *check_pair(pair, name)))
        images, labels = [], []
        for xname, yname, xs, ys in parts:
            images.append(images_to_nhwc(xs, xname))
            labels.append(labels_to_list(ys, len(images[-1]), yname))
        channels = {im.shape[-1] for im in images}
        if len(channels) > 1:
            raise ValueError(f"from_arrays: the arrays have different channel counts {sorted(channels)}; give every "
                             f"split the same layout.")
        sizes = [len(im) for im in images]
        flat = [l for ls in labels for l in ls]
        if y_block is None:
            flat, vocab = one_hot_to_labels(flat, vocab)  # Keras' to_categorical rows: single-label classes
        items = ArrayItems(np.concatenate(images), flat)
        if valid is None:
            if test is not None:
                raise ValueError("from_arrays: test= needs valid= too (or leave both out and split at random).")
            splitter: Any = RandomSplitter(valid_pct, seed=seed)
        else:
            starts = np.cumsum([0] + sizes)
            splitter = FixedSplitter([list(range(a, b)) for a, b in zip(starts[:-1], starts[1:])])
        img_cls = PILImageBW if channels == {1} else PILImage
        y_block = y_block if y_block is not None else label_block(items.labels, vocab)
        dblock = DataBlock(blocks=(ImageBlock(img_cls), y_block), get_x=itemgetter(0), get_y=itemgetter(1),
                           splitter=splitter, item_tfms=item_tfms, batch_tfms=batch_tfms)
        return cls.from_dblock(dblock, items, path=path, **kwargs)

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
    def from_hf(cls, ds: Any, image_col: str = "image", label_col: str = "label", valid: Any = None,
                valid_pct: float = 0.2, seed: int | None = None, y_block: Any = None, item_tfms: Any = None,
                batch_tfms: Any = None, img_cls: type = PILImage, path: str | os.PathLike = ".",
                **kwargs: Any) -> DataLoaders:
        """Rows of a Hugging Face ``datasets`` source: pictures in ``image_col``, labels in ``label_col``.

        A ``DatasetDict``'s train / validation (or ``valid=`` a split name or Dataset) are the splits, else
        ``valid_pct``/``seed`` split it; ``ClassLabel`` names are the vocabulary; ``Sequence(ClassLabel)`` makes
        it multi-label; images are decoded per item in the workers; a streaming ``IterableDataset`` streams.
        """
        from ..data.hf import check_columns, check_image_column, check_label_column, hf_source
        source, splitter, features = hf_source(ds, valid, valid_pct, seed)
        if features:
            check_columns(list(features), [image_col, label_col], "image/label")
            check_image_column(features, image_col)
        multi = features and check_label_column(features, label_col) == "multi"
        dblock = DataBlock(blocks=(ImageBlock(img_cls), y_block or (MultiCategoryBlock if multi else CategoryBlock)),
                           get_x=ColReader(image_col), get_y=ColReader(label_col), splitter=splitter,
                           item_tfms=item_tfms, batch_tfms=batch_tfms)
        extra = {"valid": valid} if splitter is None and not hasattr(source, "presplit") else {}
        return cls.from_dblock(dblock, source, path=path, **extra, **kwargs)

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


def _check_split_folders(path: Path, names: list[str]) -> None:
    """A clear error when the train/valid folders ``from_folder`` reads are not in ``path``."""
    if not path.is_dir():
        raise FileNotFoundError(f"The folder {str(path)!r} does not exist (working folder: {os.getcwd()}): check the "
                                f"path, or download the data first (e.g. untar_data).")
    missing = [n for n in names if not (path / n).is_dir()]
    if missing:
        raise FileNotFoundError(f"ImageDataLoaders.from_folder: {missing_folders_message(path, missing)} Pass "
                                f"train=/valid= with the names on disk, or "
                                f"valid_pct=0.2 to split one tree of <label>/ folders at random.")
