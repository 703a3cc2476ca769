"""Issue 31: fastai's text helpers (30_text.core, 31_text.data): TokenizeWithRules, parallel_tokenize, tokenize_df,
reverse_text, pad_input, pad_input_chunk, LMDataLoader batches; examples ported from the notebooks."""
from __future__ import annotations

from operator import itemgetter

import pandas as pd
import torch
from torch import tensor

from learnkit.text.all import (BOS, TK_MAJ, TK_UP, BaseTokenizer, LMDataLoader, TokenizeWithRules, WordTokenizer,
                               pad_input, pad_input_chunk, parallel_tokenize, replace_all_caps, reverse_text,
                               tokenize_df)


def _eq(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert len(x) == len(y) and all(torch.equal(u, v) if isinstance(u, torch.Tensor) else u == v
                                        for u, v in zip(x, y))


def test_tokenize_with_rules():
    f = TokenizeWithRules(BaseTokenizer(), rules=[replace_all_caps])
    assert f(["THIS isn't a problem"]) == [[TK_UP, "this", "isn't", "a", "problem"]]
    f = TokenizeWithRules(WordTokenizer())
    assert f(["This isn't a problem"]) == [[BOS, TK_MAJ, "this", "is", "n't", "a", "problem"]]
    f = TokenizeWithRules(BaseTokenizer(split_char="'"), rules=[])
    assert f(["This isn't a problem"]) == [["This▁isn", "t▁a▁problem"]]


def test_parallel_tokenize_pairs():
    res = parallel_tokenize(["0 1", "1 2"], rules=[], n_workers=2)
    idxs, toks = zip(*sorted(res, key=itemgetter(0)))
    assert idxs == (0, 1) and list(toks) == [["0", "1"], ["1", "2"]]


def test_tokenize_df():
    texts = [f"This is an example of text {i}" for i in range(10)]
    df = pd.DataFrame({"text": texts, "label": list(range(10))}, columns=["text", "label"])
    out, cnt = tokenize_df(df, text_cols="text")
    assert list(out.columns) == ["label", "text", "text_length"]
    assert list(out["label"].values) == list(range(10))
    assert out["text"][3] == ["xxbos", "xxmaj", "this", "is", "an", "example", "of", "text", "3"]
    assert list(out["text_length"]) == [9] * 10 and cnt["example"] == 10 and cnt["3"] == 1
    df["text1"] = df["text"].values
    out, _ = tokenize_df(df, text_cols=["text", "text1"])
    assert out["text"][0][:3] == ["xxbos", "xxfld", "1"] and out["text"][0].count("xxfld") == 2
    import pytest
    with pytest.raises(KeyError, match="'nope'"):
        tokenize_df(df, text_cols="nope")


def test_reverse_text_and_pad_input():
    assert torch.equal(reverse_text(tensor([1, 2, 3])), tensor([3, 2, 1]))
    s = [(tensor([1, 2, 3]), 1), (tensor([4, 5]), 2), (tensor([6]), 3)]
    _eq(pad_input(s, pad_idx=0), [(tensor([1, 2, 3]), 1), (tensor([4, 5, 0]), 2), (tensor([6, 0, 0]), 3)])
    _eq(pad_input(s, pad_idx=0, pad_first=True), [(tensor([1, 2, 3]), 1), (tensor([0, 4, 5]), 2), (tensor([0, 0, 6]), 3)])
    _eq(pad_input(s, pad_idx=0, backwards=True), [(tensor([3, 2, 1]), 1), (tensor([5, 4, 0]), 2), (tensor([6, 0, 0]), 3)])
    s2 = [(tensor([1, 2, 3]), tensor([6])), (tensor([4, 5]), tensor([4, 5])), (tensor([6]), tensor([1, 2, 3]))]
    _eq(pad_input(s2, pad_idx=0, pad_fields=1),
        [(tensor([1, 2, 3]), tensor([6, 0, 0])), (tensor([4, 5]), tensor([4, 5, 0])), (tensor([6]), tensor([1, 2, 3]))])


def test_pad_input_chunk():
    s = [(tensor([1, 2, 3, 4, 5, 6]), 1), (tensor([1, 2, 3]), 2), (tensor([1, 2]), 3)]
    _eq(pad_input_chunk(s, pad_idx=0, seq_len=2),
        [(tensor([1, 2, 3, 4, 5, 6]), 1), (tensor([0, 0, 1, 2, 3, 0]), 2), (tensor([0, 0, 0, 0, 1, 2]), 3)])
    s = [(tensor([1, 2, 3, 4, 5, 6]),), (tensor([1, 2, 3]),), (tensor([1, 2]),)]
    _eq(pad_input_chunk(s, pad_idx=0, seq_len=2, pad_first=False),
        [(tensor([1, 2, 3, 4, 5, 6]),), (tensor([1, 2, 3, 0, 0, 0]),), (tensor([1, 2, 0, 0, 0, 0]),)])


def test_lm_dataloader_batches():
    ints = [tensor(o) for o in ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16, 17, 18], [19, 20], [21, 22])]
    dl = LMDataLoader(ints, bs=4, seq_len=3)
    assert len(dl) == 2
    _eq(list(dl), [(tensor([[0, 1, 2], [5, 6, 7], [10, 11, 12], [15, 16, 17]]),
                    tensor([[1, 2, 3], [6, 7, 8], [11, 12, 13], [16, 17, 18]])),
                   (tensor([[3, 4], [8, 9], [13, 14], [18, 19]]),
                    tensor([[4, 5], [9, 10], [14, 15], [19, 20]]))])
