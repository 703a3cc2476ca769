"""Text data: ``TextBlock`` (inside learnkit's ``DataBlock``) and ``TextDataLoaders`` (``from_folder`` /
``from_df`` / ``from_csv``, ``test_dl``, ``with_encoder``, export ``spec``). The loaders keep every item's raw
text and its encoded ids; batching lives in ``learnkit.text.loaders``.
"""
from __future__ import annotations

import keyword
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data.block import DataBlock
from ..data.blocks import CategoryBlock, MultiCategoryBlock, RegressionBlock, TransformBlock
from ..data.core import DataLoaders
from ..data.getters import ColReader, get_text_files, parent_label
from ..data.splitters import ColSplitter, GrandparentSplitter, RandomSplitter
from ..data.transforms import TRAIN, VALID
from ..registry import register_data_loaders
from ..utils import Path
from .core import FLD, TextEncoder, Tokenizer
from .loaders import LMDataLoader, SortedTextDL, _TextLoader

__all__ = ["TextBlock", "TextDataLoaders"]


# -- the block

def _warn_non_text(df: pd.DataFrame, text_cols: Sequence) -> None:
    """Warn, naming rows, when a text column holds missing values or numbers (they would be read as 'nan', '42')."""
    for c in text_cols:
        col = df[c]
        missing = col.isna().to_numpy()
        other = np.array([not isinstance(v, str) for v in col]) & ~missing
        bad = missing | other
        if bad.any():
            rows = list(df.index[bad][:5]) + (["..."] if bad.sum() > 5 else [])
            found = " and ".join(f"{k} {what}" for k, what in ((int(missing.sum()), "missing"),
                                                                (int(other.sum()), "non-text (numbers, ...)")) if k)
            warnings.warn(f"Text column {c!r} has {found} value(s) (rows {rows}): they would be read as the text of "
                          f"their value ('nan', '42'). Drop or fill them first, e.g. df = df.dropna(subset=[{c!r}]) "
                          f"or df[{c!r}] = df[{c!r}].fillna('').", UserWarning, stacklevel=3)


class _ReadText:
    """Raw item -> text: a string as is, a file's contents, or the text column(s) of a DataFrame row."""

    def __init__(self, text_cols: Sequence | None = None, mark_fields: bool | None = None,
                 encoding: str = "utf8") -> None:
        self.text_cols = list(text_cols) if text_cols is not None else None
        self.mark_fields = (len(self.text_cols or []) > 1) if mark_fields is None else mark_fields
        self.encoding = encoding

    def __call__(self, o: Any) -> str:
        """The text of ``o``."""
        if isinstance(o, str):
            return o
        if isinstance(o, os.PathLike):
            return Path(o).read_text(encoding=self.encoding)
        if self.text_cols is not None and (hasattr(o, "index") or hasattr(o, "_fields")):
            vals = [str(ColReader(c)(o)) for c in self.text_cols]
            if self.mark_fields:
                return " ".join(f"{FLD} {i + 1} {v}" for i, v in enumerate(vals))
            return " ".join(vals)
        raise TypeError(f"TextBlock can't read a text from {type(o).__name__} {o!r}: give strings, text file paths, "
                        f"or DataFrame rows with TextBlock.from_df(text_cols).")


class _EncodeText:
    """The block's stateful step: the text encoder, set up (vocab learned) on the training texts."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder

    @property
    def vocab(self) -> list | None:
        """The encoder's vocabulary."""
        return getattr(self.encoder, "vocab", None)

    def setup(self, texts: Any) -> None:
        """Nothing here: the vocab is learned when the loaders are built, from all training texts read at once."""

    def __call__(self, text: str) -> torch.Tensor:
        """One text -> LongTensor of ids."""
        return torch.tensor(self.encoder.encode([text])[0], dtype=torch.long)

    def decode(self, ids: Any) -> str:
        """Ids -> text."""
        return self.encoder.decode(ids)


class TextBlock(TransformBlock):
    """Texts: read, tokenized (fastai's rules), numericalized; builds language-model or classifier loaders."""

    def __init__(self, tok_tfm: Tokenizer | None = None, vocab: Sequence[str] | None = None, is_lm: bool = False,
                 seq_len: int = 72, backwards: bool = False, min_freq: int = 3, max_vocab: int = 60000,
                 special_toks: Sequence[str] | None = None, encoder: Any = None, text_cols: Any = None,
                 mark_fields: bool | None = None, encoding: str = "utf8") -> None:
        if encoder is None:
            if tok_tfm is not None and not isinstance(tok_tfm, Tokenizer):
                tok_tfm = Tokenizer(tok_tfm)  # a word tokenizer: fastai's default rules around it
            encoder = TextEncoder(tok_tfm, vocab=vocab, min_freq=min_freq, max_vocab=max_vocab,
                                  special_toks=special_toks)
        if text_cols is not None and not isinstance(text_cols, (list, tuple)):
            text_cols = [text_cols]
        self.text_encoder, self.is_lm, self.seq_len, self.backwards = encoder, is_lm, int(seq_len), backwards
        super().__init__("text", type_tfms=[_ReadText(text_cols, mark_fields, encoding), _EncodeText(encoder)],
                         name="TextBlock", config={"is_lm": is_lm, "seq_len": int(seq_len), "backwards": backwards})

    @classmethod
    def from_df(cls, text_cols: Any, vocab: Sequence[str] | None = None, is_lm: bool = False, seq_len: int = 72,
                backwards: bool = False, min_freq: int = 3, max_vocab: int = 60000, tok: Any = None,
                rules: Sequence[Callable] | None = None, sep: str = " ", n_workers: int | None = None,
                mark_fields: bool | None = None, tok_text_col: str = "text", tok_tfm: Tokenizer | None = None,
                **kwargs: Any) -> "TextBlock":
        """Texts in the column(s) ``text_cols`` of a DataFrame (several columns are joined with xxfld markers)."""
        if not isinstance(tok_tfm, Tokenizer):  # fastai's factories pass their tok_tfm as the word tokenizer
            tok_tfm = Tokenizer.from_df(text_cols, tok=tok if tok_tfm is None else tok_tfm, rules=rules, sep=sep,
                                        n_workers=n_workers)
        return cls(tok_tfm, vocab=vocab, is_lm=is_lm, seq_len=seq_len, backwards=backwards, min_freq=min_freq,
                   max_vocab=max_vocab, text_cols=text_cols, mark_fields=mark_fields, **kwargs)

    @classmethod
    def from_folder(cls, path: Any, vocab: Sequence[str] | None = None, is_lm: bool = False, seq_len: int = 72,
                    backwards: bool = False, min_freq: int = 3, max_vocab: int = 60000, tok: Any = None,
                    rules: Sequence[Callable] | None = None, n_workers: int | None = None, encoding: str = "utf8",
                    tok_tfm: Tokenizer | None = None, **kwargs: Any) -> "TextBlock":
        """Texts in the text files under ``path`` (items are file paths)."""
        if not isinstance(tok_tfm, Tokenizer):
            tok_tfm = Tokenizer.from_folder(path, tok=tok if tok_tfm is None else tok_tfm, rules=rules,
                                            n_workers=n_workers)
        return cls(tok_tfm, vocab=vocab, is_lm=is_lm, seq_len=seq_len, backwards=backwards, min_freq=min_freq,
                   max_vocab=max_vocab, encoding=encoding, **kwargs)

    @property
    def reader(self) -> _ReadText:
        """The step that turns a raw item into its text."""
        return self.type_tfms[0]

    def build_dataloaders(self, dsets: Any, bs: int = 64, val_bs: int | None = None, device: Any = None,
                          shuffle: bool = True, path: Any = ".", seq_len: int | None = None, **kwargs: Any
                          ) -> "TextDataLoaders":
        """``DataBlock.dataloaders`` for a text block: the texts of each split encoded at once (parallel, cached)."""
        for k in ("num_workers", "verbose"):
            kwargs.pop(k, None)
        if kwargs:
            raise TypeError(f"Text loaders got unexpected keyword argument(s) {sorted(kwargs)}.")
        k = dsets.blocks.index(self)
        if k >= dsets.n_inp:
            raise ValueError("A TextBlock must be an input block (the first one).")
        getter = dsets.pipelines[k][:len(dsets.pipelines[k]) - len(self.type_tfms)]
        read = getter + [self.reader]

        labelled = not self.is_lm and len(dsets.blocks) > dsets.n_inp
        target_pipe = dsets.pipelines[dsets.n_inp] if labelled else []
        # DataFrame rows as namedtuples (much faster than df.iloc[i]) when only learnkit's readers touch them
        fast_rows = isinstance(dsets.items, pd.DataFrame) and not getter and \
            all(isinstance(c, str) and c.isidentifier() and not keyword.iskeyword(c) and not c.startswith("_")
                for c in dsets.items.columns) and \
            all(isinstance(f, ColReader) or f in _target_tfms(dsets) for f in target_pipe)

        def texts_ys(idxs: Sequence[int]) -> tuple[list[str], list | None]:
            items = list(dsets.items.iloc[list(idxs)].itertuples()) if fast_rows else [dsets._item(i) for i in idxs]
            texts = [_run(read, it) for it in items]
            return texts, ([_run(target_pipe, it) for it in items] if labelled else None)

        splits = [texts_ys(s) for s in dsets.splits[:2]]
        target = None if self.is_lm else (dsets.blocks[dsets.n_inp] if len(dsets.blocks) > dsets.n_inp else None)
        return TextDataLoaders.from_texts(splits, self, target, bs=bs, val_bs=val_bs, device=device,
                                          shuffle=shuffle, path=path, seq_len=seq_len)


def _target_tfms(dsets: Any) -> list:
    """The type transforms of the target blocks (they take values, not rows)."""
    return [f for b in dsets.blocks[dsets.n_inp:] for f in b.type_tfms]


def _run(fns: Sequence[Callable], x: Any) -> Any:
    for f in fns:
        x = f(x)
    return x


# -- the DataLoaders

_TARGET_BLOCKS: dict[str, Callable[..., TransformBlock]] = {
    "CategoryBlock": lambda vocab=None, **_: CategoryBlock(vocab=vocab),
    "MultiCategoryBlock": lambda vocab=None, encoded=False, **_: MultiCategoryBlock(encoded, vocab),
    "RegressionBlock": lambda n_out=None, **_: RegressionBlock(n_out),
}


class TextDataLoaders(DataLoaders):
    """Training and validation text loaders (language model or classifier) that keep the raw texts."""

    def __init__(self, *loaders: _TextLoader, path: Any = ".", device: Any = None,
                 texts: Sequence | None = None) -> None:
        if not loaders:
            raise ValueError("TextDataLoaders needs at least a training loader.")
        self.loaders, self.path, self.getters = list(loaders), Path(path), None
        if device is not None:
            self.to(device)
        self.texts = texts  # [(train texts, train ys), (valid texts, valid ys)]

    @property
    def text_block(self) -> TextBlock:
        """The input block (encoder, is_lm, seq_len)."""
        return self.train.blocks[0]

    @property
    def encoder(self) -> Any:
        """The text encoder."""
        return self.text_block.text_encoder

    @property
    def is_lm(self) -> bool:
        """Whether these are language-model loaders."""
        return isinstance(self.train, LMDataLoader)

    @property
    def n_inp(self) -> int:
        """One input: the token ids."""
        return 1

    @property
    def kinds(self) -> tuple:
        """``('text', 'text')`` for a language model, ``('text', <target kind>)`` for a classifier."""
        return ("text", "text") if self.is_lm else self.train.kinds

    @property
    def seq_len(self) -> int:
        """The language-model window (and the classifier's BPTT chunk)."""
        return self.text_block.seq_len

    @property
    def vocab(self) -> Any:
        """fastai's ``dls.vocab``: the text vocab for a language model, ``[text_vocab, label_vocab]`` otherwise."""
        if self.is_lm:
            return self.encoder.vocab
        tb = self.target_block
        return [self.encoder.vocab, tb.vocab if tb is not None else None]

    @property
    def c(self) -> int | None:
        """Outputs the model needs: the vocab size for a language model, the classes (or n_out) otherwise."""
        return len(self.encoder.vocab) if self.is_lm else super().c

    def new(self, **kwargs: Any) -> "TextDataLoaders":
        """Copy with loader attributes changed (``bs=``, ``device=``...)."""
        return TextDataLoaders(*[dl.new(**kwargs) for dl in self.loaders], path=self.path, texts=self.texts)

    # -- building

    @classmethod
    def from_texts(cls, splits: Sequence[tuple[list[str], list | None]], block: TextBlock,
                   target: TransformBlock | None, bs: int = 64, val_bs: int | None = None, device: Any = None,
                   shuffle: bool = True, path: Any = ".", seq_len: int | None = None) -> "TextDataLoaders":
        """Loaders over ``[(train_texts, train_ys), (valid_texts, valid_ys)]`` encoded by ``block``'s encoder."""
        enc = block.text_encoder
        if hasattr(enc, "setup"):
            enc.setup(splits[0][0])
        parts = [enc.encode(texts) if len(texts) else [] for texts, _ in splits]  # the training texts: cached by setup
        blocks = [block] if target is None else [block, target]
        if block.is_lm:
            sl = seq_len or block.seq_len
            loaders = [LMDataLoader(p, bs=b, seq_len=sl, shuffle=sh, device=device, blocks=blocks,
                                    split_idx=i, backwards=block.backwards)
                       for i, (p, b, sh) in enumerate(zip(parts, (bs, val_bs or bs), (shuffle, False)))]
        else:
            loaders = [SortedTextDL(p, ys, bs=b, shuffle=sh, device=device, blocks=blocks, split_idx=i)
                       for i, (p, (_, ys), b, sh) in enumerate(zip(parts, splits, (bs, val_bs or bs),
                                                                  (shuffle, False)))]
        return cls(*loaders, path=path, texts=[tuple(s) for s in splits])

    def with_encoder(self, encoder: Any) -> "TextDataLoaders":
        """The same splits and labels, the raw texts re-encoded by ``encoder`` (e.g. a transformer's tokenizer)."""
        if self.texts is None:
            raise ValueError("These loaders keep no raw texts (they were rebuilt for inference), so they can't be "
                             "re-encoded: build them again from the data.")
        old = self.text_block
        block = TextBlock(encoder=encoder, is_lm=old.is_lm, seq_len=old.seq_len, backwards=old.backwards,
                          text_cols=old.reader.text_cols, mark_fields=old.reader.mark_fields)
        target = self.target_block
        return TextDataLoaders.from_texts(self.texts, block, target, bs=self.train.bs, val_bs=self.valid.bs,
                                          device=self.device, shuffle=self.train.shuffle, path=self.path)

    def test_dl(self, items: Any, with_labels: bool = False, bs: int | None = None, **kwargs: Any) -> SortedTextDL:
        """A classifier loader over new texts (strings, text files or rows), in the order given, unlabelled."""
        if with_labels:
            raise ValueError("test_dl on texts reads the texts only (with_labels=False): to score labelled texts, "
                             "build loaders with a validation split, or pass the labels to get_preds yourself.")
        if isinstance(items, (str, os.PathLike)):
            items = [items]
        if isinstance(items, pd.DataFrame):
            items = [r for _, r in items.iterrows()]
        reader = self.text_block.reader
        texts = [reader(o) for o in items]
        ids = self.encoder.encode(texts)
        blocks = list(self.train.blocks)
        return SortedTextDL(ids, None, bs=bs or self.valid.bs, shuffle=False, device=self.device, blocks=blocks,
                            split_idx=VALID, sort=False)

    # -- export

    def spec(self) -> dict:
        """JSON-safe description for export: the encoder's spec, the target block (with its vocab), the settings."""
        tb = self.target_block
        b = self.text_block
        return {"type": "text", "encoder": self.encoder.spec(), "is_lm": self.is_lm, "seq_len": b.seq_len,
                "backwards": b.backwards, "text_cols": b.reader.text_cols, "mark_fields": b.reader.mark_fields,
                "target": tb.get_config() if tb is not None else None, "bs": self.valid.bs}

    @classmethod
    def from_spec(cls, spec: dict, device: Any = None) -> "TextDataLoaders":
        """Inference-only loaders rebuilt from ``spec()`` (``test_dl`` and ``predict`` work; no texts)."""
        es = spec["encoder"]
        if es.get("type") == "transformer":
            from .transformer import TransformerTextEncoder  # transformers stays optional
            encoder: Any = TransformerTextEncoder.from_spec(es)
        else:
            encoder = TextEncoder.from_spec(es)
        block = TextBlock(encoder=encoder, is_lm=spec["is_lm"], seq_len=spec["seq_len"], backwards=spec["backwards"],
                          text_cols=spec.get("text_cols"), mark_fields=spec.get("mark_fields"))
        blocks: list = [block]
        t = spec.get("target")
        if t is not None:
            if t["name"] not in _TARGET_BLOCKS:
                raise ValueError(f"The export's target block {t['name']!r} is not one text loaders rebuild "
                                 f"({sorted(_TARGET_BLOCKS)}).")
            blocks.append(_TARGET_BLOCKS[t["name"]](**{k: v for k, v in t.items() if k not in ("name", "kind")}))
        common = dict(bs=spec.get("bs", 64), device=device, blocks=blocks)
        if spec["is_lm"]:
            loaders = [LMDataLoader([], seq_len=spec["seq_len"], split_idx=i, **common) for i in (TRAIN, VALID)]
        else:
            loaders = [SortedTextDL([], None, split_idx=i, **common) for i in (TRAIN, VALID)]
        return cls(*loaders)

    # -- factories (fastai's)

    @classmethod
    def from_dblock(cls, dblock: DataBlock, source: Any, path: Any = ".", bs: int = 64, **kwargs: Any
                    ) -> "TextDataLoaders":
        """``dblock.dataloaders(source, path=path, bs=bs, ...)``."""
        return dblock.dataloaders(source, path=path, bs=bs, **kwargs)

    @classmethod
    def from_folder(cls, path: Any, train: str = "train", valid: str = "valid", valid_pct: float | None = None,
                    seed: int | None = None, vocab: Sequence | None = None, text_vocab: Sequence[str] | None = None,
                    is_lm: bool = False, tok_tfm: Tokenizer | None = None, seq_len: int = 72,
                    backwards: bool = False, **kwargs: Any) -> "TextDataLoaders":
        """Texts in ``path/train`` and ``path/valid`` (or a random ``valid_pct``), labelled by their folder name."""
        path = Path(path)
        splitter = GrandparentSplitter(train_name=train, valid_name=valid) if valid_pct is None \
            else RandomSplitter(valid_pct, seed=seed)
        blocks: list = [TextBlock.from_folder(path, text_vocab, is_lm, seq_len, backwards, tok_tfm=tok_tfm)]
        if not is_lm:
            blocks.append(CategoryBlock(vocab=vocab))
        folders = [train, valid] if valid_pct is None else None
        dblock = DataBlock(blocks=blocks, get_items=lambda p: get_text_files(p, folders=folders), splitter=splitter,
                           get_y=None if is_lm else parent_label, n_inp=1)
        return cls.from_dblock(dblock, path, path=path, **kwargs)

    from_folders = from_folder

    @classmethod
    def from_df(cls, df: pd.DataFrame, path: Any = ".", valid_pct: float = 0.2, seed: int | None = None,
                text_col: Any = 0, label_col: Any = 1, label_delim: str | None = None, y_block: Any = None,
                text_vocab: Sequence[str] | None = None, is_lm: bool = False, valid_col: Any = None,
                tok_tfm: Tokenizer | None = None, tok_text_col: str = "text", seq_len: int = 72,
                backwards: bool = False, **kwargs: Any) -> "TextDataLoaders":
        """Texts in ``df[text_col]``, labels in ``df[label_col]``; split by ``valid_col`` or a random ``valid_pct``."""
        text_cols = [df.columns[c] if isinstance(c, int) else c for c in
                     (text_col if isinstance(text_col, (list, tuple)) else [text_col])]
        missing = [c for c in text_cols if c not in df.columns]
        if missing:
            raise KeyError(f"Text column(s) {missing} are not in the DataFrame; its columns are {list(df.columns)}.")
        _warn_non_text(df, text_cols)
        blocks: list = [TextBlock.from_df(text_cols, text_vocab, is_lm, seq_len, backwards, tok_tfm=tok_tfm,
                                          tok_text_col=tok_text_col)]
        if not is_lm:
            if y_block is None:
                multi = isinstance(label_col, (list, tuple)) and len(label_col) > 1
                y_block = MultiCategoryBlock(encoded=True, vocab=list(label_col)) if multi else \
                    (MultiCategoryBlock() if label_delim is not None else CategoryBlock())
            blocks.append(y_block[0] if isinstance(y_block, (list, tuple)) else y_block)
        splitter = RandomSplitter(valid_pct, seed=seed) if valid_col is None else ColSplitter(valid_col)
        get_y = None if is_lm else ColReader(label_col, label_delim=label_delim)
        dblock = DataBlock(blocks=blocks, get_y=get_y, splitter=splitter, n_inp=1)
        return cls.from_dblock(dblock, df, path=path, **kwargs)

    @classmethod
    def from_hf(cls, ds: Any, text_col: Any = "text", label_col: Any = "label", valid: Any = None,
                valid_pct: float = 0.2, seed: int | None = None, y_block: Any = None, is_lm: bool = False,
                **kwargs: Any) -> "TextDataLoaders":
        """``from_df`` on a Hugging Face ``datasets`` Dataset / DatasetDict (its splits, else ``valid_pct``);
        ``ClassLabel`` names are the vocabulary in their order; two ``text_col`` are a sentence pair."""
        from ..data.hf import hf_table
        texts = list(text_col) if isinstance(text_col, (list, tuple)) else [text_col]
        labels = [] if is_lm else (list(label_col) if isinstance(label_col, (list, tuple)) else [label_col])
        df, valid_idx, block = hf_table(ds, texts + labels, valid, valid_pct, seed, None if is_lm else label_col)
        df["_hf_is_valid"] = False
        df.loc[valid_idx, "_hf_is_valid"] = True
        return cls.from_df(df, text_col=text_col, label_col=label_col, valid_col="_hf_is_valid", is_lm=is_lm,
                           y_block=y_block or block, **kwargs)

    @classmethod
    def from_csv(cls, path: Any, csv_fname: str = "labels.csv", header: Any = "infer", delimiter: str | None = None,
                 **kwargs: Any) -> "TextDataLoaders":
        """``from_df`` on the CSV ``path/csv_fname``."""
        sep = {} if delimiter is None else {"delimiter": delimiter}
        df = pd.read_csv(Path(path) / csv_fname, header=header, **sep)
        return cls.from_df(df, path=path, **kwargs)

    def __repr__(self) -> str:
        kind = "language model" if self.is_lm else "classifier"
        return f"TextDataLoaders({kind}: train={self.train!r}, valid={self.valid!r})"


# where the loaders are defined, so an export of text loaders under any learner (a transformers model) reloads
register_data_loaders("text", TextDataLoaders.from_spec)
