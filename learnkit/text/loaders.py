"""Text batches: language-model streams (``LMDataLoader``) and length-sorted, padded classifier batches
(``SortedTextDL``), over the encoded ids of one split. Both plug into ``Learner`` like learnkit's loaders.

A language-model loader concatenates the texts (in a new random order each training epoch) into ``bs``
streams and cuts them into ``seq_len`` windows: ``y`` is ``x`` shifted by one token, and row ``i`` of a batch
continues row ``i`` of the batch before (fastai's LMDataLoader). A classifier loader batches texts of similar
length, padded with ``pad_idx`` (at the start when the encoder says ``pad_first``): sorted by length on
validation (fastai's SortedDL), shuffled in buckets of similar length on training.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data.blocks import TransformBlock
from ..data.transforms import TRAIN, VALID
from ..utils import default_device

__all__ = ["LMDataLoader", "SortedTextDL", "pad_batch"]


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
                 split_idx: int | None = None, backwards: bool = False, lens: Sequence[int] | None = None,
                 cache: int = 2, num_workers: int = 0) -> None:
        super().__init__(ids, bs, shuffle, False if drop_last is None else drop_last, device, blocks or [],
                         split_idx)
        self.seq_len, self.backwards = int(seq_len), backwards
        self._texts: list[torch.Tensor] | None = None  # one tensor per text, made on first use
        if lens is not None and [int(n) for n in lens] != [len(o) for o in self.ids]:
            raise ValueError(f"LMDataLoader: lens= gives {len(list(lens))} lengths that don't match the "
                             f"{len(self.ids)} texts' lengths; leave lens=None to measure them.")
        n_tok = sum(len(o) for o in self.ids)  # fastai's lens/cache only save that pass: accepted, checked
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
        if self._texts is None:
            self._texts = [torch.tensor(o, dtype=torch.long) for o in self.ids]
        order = torch.randperm(len(self.ids)).tolist() if self.shuffle else range(len(self.ids))
        stream = torch.cat([self._texts[i] for i in order])
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
