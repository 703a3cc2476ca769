"""Text data: ``TextBlock`` (inside learnkit's ``DataBlock``), language-model and classifier loaders, and
``TextDataLoaders`` (``from_folder`` / ``from_df`` / ``from_csv``).

The loaders keep every item's raw text and its encoded ids. A language-model loader concatenates the texts
(in a new random order each training epoch) into ``bs`` streams and cuts them into ``seq_len`` windows: ``y``
is ``x`` shifted by one token, and row ``i`` of a batch continues row ``i`` of the batch before (fastai's
LMDataLoader). A classifier loader batches texts of similar length, padded with ``pad_idx`` (at the start when
the encoder says ``pad_first``): sorted by length on validation (fastai's SortedDL), shuffled in buckets of
similar length on training.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
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
from ..utils import Path, default_device
from .core import FLD, TextEncoder, Tokenizer

__all__ = ["TextBlock", "LMDataLoader", "SortedTextDL", "TextDataLoaders", "pad_batch"]


# -- the block

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
        """Learn the vocab from the training texts (encoders without ``setup`` are fixed)."""
        if hasattr(self.encoder, "setup"):
            self.encoder.setup(list(texts))

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

        def texts_ys(idxs: Sequence[int]) -> tuple[list[str], list | None]:
            items = [dsets._item(i) for i in idxs]
            texts = [_run(read, it) for it in items]
            if self.is_lm or len(dsets.blocks) <= dsets.n_inp:
                return texts, None
            return texts, [_run(dsets.pipelines[dsets.n_inp], it) for it in items]

        splits = [texts_ys(s) for s in dsets.splits[:2]]
        target = None if self.is_lm else (dsets.blocks[dsets.n_inp] if len(dsets.blocks) > dsets.n_inp else None)
        return TextDataLoaders.from_texts(splits, self, target, bs=bs, val_bs=val_bs, device=device,
                                          shuffle=shuffle, path=path, seq_len=seq_len)


def _run(fns: Sequence[Callable], x: Any) -> Any:
    for f in fns:
        x = f(x)
    return x


# -- batching

def pad_batch(seqs: Sequence[Sequence[int]], pad_idx: int = 1, pad_first: bool = True,
              max_len: int | None = None) -> torch.Tensor:
    """Token id lists -> LongTensor (n, L) padded with ``pad_idx`` (at the start when ``pad_first``)."""
    L = max((len(s) for s in seqs), default=0) if max_len is None else max_len
    out = torch.full((len(seqs), L), int(pad_idx), dtype=torch.long)
    for r, s in enumerate(seqs):
        s = torch.as_tensor(list(s)[-L:] if pad_first else list(s)[:L], dtype=torch.long)
        if len(s):
            if pad_first:
                out[r, L - len(s):] = s
            else:
                out[r, :len(s)] = s
    return out


class _TextLoader:
    """What ``Learner`` reads from a loader, shared by the LM and classifier loaders."""

    num_workers = 0

    def __init__(self, ids: Sequence[Sequence[int]], bs: int, shuffle: bool, drop_last: bool | None,
                 device: Any, blocks: list, split_idx: int | None) -> None:
        self.ids = [list(o) for o in ids]
        self.bs, self.shuffle = int(bs), shuffle
        self.drop_last = shuffle if drop_last is None else drop_last
        self.device = torch.device(device) if device is not None else default_device()
        self.blocks = blocks
        self.split_idx = split_idx if split_idx is not None else (TRAIN if shuffle else VALID)
        self.item_tfms: list = []
        self.batch_tfms: list = []
        self.added_batch_tfms: list = []

    n_inp = 1

    @property
    def dataset(self) -> list:
        """The encoded texts of this split."""
        return self.ids

    @property
    def n(self) -> int:
        """Number of texts."""
        return len(self.ids)

    @property
    def kinds(self) -> tuple:
        """The kind of each value of a batch."""
        return tuple(b.kind for b in self.blocks)

    @property
    def encoder(self) -> Any:
        """The text encoder (vocab, decode, pad_idx)."""
        return self.blocks[0].text_encoder

    def one_batch(self) -> tuple:
        """The first batch."""
        if not self.ids:
            raise ValueError("This loader has no texts: there is no batch to show or check.")
        return next(iter(self))

    def to(self, device: Any) -> "_TextLoader":
        """Serve future batches on ``device``."""
        self.device = torch.device(device)
        return self

    def preload(self) -> "_TextLoader":
        """Nothing to decode: batches are built from the encoded ids."""
        return self

    def _args(self) -> dict:
        return dict(ids=self.ids, bs=self.bs, shuffle=self.shuffle, drop_last=self.drop_last, device=self.device,
                    blocks=self.blocks, split_idx=self.split_idx)

    def new(self, dataset: Any = None, **kwargs: Any) -> "_TextLoader":
        """A copy with some attributes changed (``bs``, ``shuffle``, ``drop_last``, ``device``...)."""
        args = self._args()
        if dataset is not None:
            args["ids"] = dataset
        for k in ("num_workers", "item_tfms", "batch_tfms"):
            kwargs.pop(k, None)
        if "shuffle" in kwargs and "drop_last" not in kwargs:
            kwargs["drop_last"] = kwargs["shuffle"]
        args.update(kwargs)
        return type(self)(**args)

    def _decode_text(self, ids: torch.Tensor) -> str:
        return self.encoder.decode(ids.tolist())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.n} texts, bs={self.bs}, shuffle={self.shuffle}, device={self.device})"


class LMDataLoader(_TextLoader):
    """Language-model batches: the texts concatenated into ``bs`` streams, cut into ``seq_len`` windows."""

    def __init__(self, ids: Sequence[Sequence[int]], bs: int = 64, seq_len: int = 72, shuffle: bool = False,
                 drop_last: bool | None = None, device: Any = None, blocks: list | None = None,
                 split_idx: int | None = None, backwards: bool = False) -> None:
        super().__init__(ids, bs, shuffle, False if drop_last is None else drop_last, device, blocks or [],
                         split_idx)
        self.seq_len, self.backwards = int(seq_len), backwards
        n_tok = sum(len(o) for o in self.ids)
        self.bl = (n_tok - 1) // self.bs if n_tok else 0  # tokens per stream
        if self.ids and self.bl == 0:
            raise ValueError(f"The texts hold {n_tok} tokens, too few for {self.bs} streams of at least 2 tokens: "
                             f"use a smaller bs.")

    def _args(self) -> dict:
        return {**super()._args(), "seq_len": self.seq_len, "backwards": self.backwards}

    def __len__(self) -> int:
        return -(-self.bl // self.seq_len)

    def streams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This epoch's (x, y) streams, each (bs, tokens per stream); the text order is new each call on training."""
        order = torch.randperm(len(self.ids)).tolist() if self.shuffle else range(len(self.ids))
        stream = torch.tensor([t for i in order for t in self.ids[i]], dtype=torch.long)
        if self.backwards:
            stream = stream.flip(0)
        n = self.bl * self.bs
        return stream[:n].view(self.bs, self.bl), stream[1:n + 1].view(self.bs, self.bl)

    def __iter__(self) -> Iterator[tuple]:
        if not self.ids:
            return
        x, y = (t.to(self.device) for t in self.streams())
        for i in range(0, self.bl, self.seq_len):
            yield x[:, i:i + self.seq_len], y[:, i:i + self.seq_len]

    def show_batch(self, b: tuple | None = None, max_n: int = 9, show: bool = True, **kwargs: Any) -> pd.DataFrame:
        """The decoded inputs and targets of a batch as a DataFrame (columns ``text``, ``text_``)."""
        x, y = self.one_batch() if b is None else b
        n = min(max_n, len(x))
        df = pd.DataFrame({"text": [self._decode_text(x[i]) for i in range(n)],
                           "text_": [self._decode_text(y[i]) for i in range(n)]})
        return _show_df(df) if show else df


class SortedTextDL(_TextLoader):
    """Classifier batches of texts of similar length, padded: sorted on validation, bucketed shuffle on training."""

    def __init__(self, ids: Sequence[Sequence[int]], ys: Any = None, bs: int = 64, shuffle: bool = False,
                 drop_last: bool | None = None, device: Any = None, blocks: list | None = None,
                 split_idx: int | None = None, sort: bool = True, pad_idx: int | None = None,
                 pad_first: bool | None = None) -> None:
        super().__init__(ids, bs, shuffle, drop_last, device, blocks or [], split_idx)
        self.ys, self.sort = ys, sort
        enc = self.encoder if self.blocks else None
        self.pad_idx = int(pad_idx if pad_idx is not None else getattr(enc, "pad_idx", 1))
        self.pad_first = bool(pad_first if pad_first is not None else getattr(enc, "pad_first", True))
        self.lengths = np.array([len(o) for o in self.ids], dtype=np.int64)

    def _args(self) -> dict:
        return {**super()._args(), "ys": self.ys, "sort": self.sort, "pad_idx": self.pad_idx,
                "pad_first": self.pad_first}

    def __len__(self) -> int:
        n, bs = len(self.ids), self.bs
        return n // bs if self.drop_last and n > bs else -(-n // bs)

    def get_idxs(self) -> list[list[int]]:
        """This epoch's batches as lists of item indices (fastai's SortedDL order)."""
        n, bs = len(self.ids), self.bs
        if not self.sort:
            order = np.arange(n)
        elif not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
        else:
            # fastai's SortedDL shuffle: random order, the longest text first, sorted within chunks of 50 batches,
            # then the batches shuffled (the first, with the longest text, and the last stay in place)
            idxs = np.random.permutation(n)
            big = int(np.argmax(self.lengths[idxs]))
            idxs[0], idxs[big] = idxs[big], idxs[0]
            sz = bs * 50
            chunks = [idxs[i:i + sz] for i in range(0, n, sz)]
            order = np.concatenate([c[np.argsort(-self.lengths[c], kind="stable")] for c in chunks])
        batches = [order[i:i + bs].tolist() for i in range(0, n, bs)]
        if self.shuffle and len(batches) > 2:
            mid = [batches[i] for i in np.random.permutation(range(1, len(batches) - 1))]
            batches = [batches[0]] + mid + [batches[-1]]
        if self.drop_last and n > bs and len(batches[-1]) < bs:
            batches = [b for b in batches if len(b) == bs][:n // bs]
        return batches

    def _ys(self, idx: list[int]) -> torch.Tensor:
        vals = [self.ys[i] for i in idx]
        if isinstance(vals[0], np.ndarray):
            return torch.as_tensor(np.stack(vals))
        return torch.tensor(vals)

    def __iter__(self) -> Iterator[tuple]:
        for idx in self.get_idxs():
            x = pad_batch([self.ids[i] for i in idx], self.pad_idx, self.pad_first).to(self.device)
            yield (x,) if self.ys is None else (x, self._ys(idx).to(self.device))

    def _target_block(self) -> TransformBlock | None:
        return self.blocks[1] if len(self.blocks) > 1 else None

    def decode_batch(self, b: tuple, max_n: int | None = None) -> pd.DataFrame:
        """A batch -> a DataFrame of decoded texts (and their decoded labels)."""
        x = b[0]
        n = len(x) if max_n is None else min(max_n, len(x))
        df = pd.DataFrame({"text": [self._decode_text(x[i]) for i in range(n)]})
        tb = self._target_block()
        if tb is not None and len(b) > 1:
            df["category" if tb.kind == "category" else "target"] = [_decode_y(tb, b[1][i]) for i in range(n)]
        return df

    def show_batch(self, b: tuple | None = None, max_n: int = 9, show: bool = True, **kwargs: Any) -> pd.DataFrame:
        """Decoded texts (and labels) of a batch as a DataFrame, as fastai's text ``show_batch``."""
        df = self.decode_batch(self.one_batch() if b is None else b, max_n=max_n)
        return _show_df(df) if show else df

    def show_results(self, b: tuple, decoded: Any, max_n: int = 9, show: bool = True, **kwargs: Any) -> pd.DataFrame:
        """Decoded texts, targets and predictions of a batch as a DataFrame."""
        df = self.decode_batch(b, max_n=max_n)
        tb = self._target_block()
        if tb is not None:
            df[f"{'category' if tb.kind == 'category' else 'target'}_"] = \
                [_decode_y(tb, decoded[i]) for i in range(len(df))]
        return _show_df(df) if show else df


def _decode_y(tb: TransformBlock, v: Any) -> Any:
    if tb.kind in ("category", "multicategory"):
        return tb.decode(v)
    return v.tolist() if isinstance(v, torch.Tensor) else v


def _show_df(df: pd.DataFrame) -> pd.DataFrame:
    from ..tabular.data import show_df  # the one DataFrame display helper
    return show_df(df)


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
    def from_csv(cls, path: Any, csv_fname: str = "labels.csv", header: Any = "infer", delimiter: str | None = None,
                 **kwargs: Any) -> "TextDataLoaders":
        """``from_df`` on the CSV ``path/csv_fname``."""
        sep = {} if delimiter is None else {"delimiter": delimiter}
        df = pd.read_csv(Path(path) / csv_fname, header=header, **sep)
        return cls.from_df(df, path=path, **kwargs)

    def __repr__(self) -> str:
        kind = "language model" if self.is_lm else "classifier"
        return f"TextDataLoaders({kind}: train={self.train!r}, valid={self.valid!r})"
