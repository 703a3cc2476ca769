"""fastai's text internals with fastai's shapes: the asserts of nbs/31_text.data and nbs/33_text.models.core, ported
(``SortedDL``, ``LMDataLoader`` lengths and ``lens``, ``LinearDecoder``, ``get_language_model``, ``SentenceEncoder``,
``masked_concat_pool``, ``PoolingLinearClassifier``, ``get_text_classifier`` and its padding behaviour)."""
import random
from functools import partial

import pytest
import torch
from torch import nn

from learnkit.basics import L, Learner, set_seed, tensor
from learnkit.data.core import DataLoaders
from learnkit.text.all import (AWD_LSTM, LinearDecoder, LMDataLoader, PoolingLinearClassifier, RNNCallback,
                               SentenceEncoder, SequentialRNN, SortedDL, awd_lstm_clas_config, awd_lstm_lm_config,
                               get_language_model, get_text_classifier, masked_concat_pool, pad_input, rnn_cbs)


def test_sorted_dl_longest_first_padded_by_before_batch():
    ds = [(tensor([1, 2]), 1), (tensor([3, 4, 5, 6]), 2), (tensor([7]), 3), (tensor([8, 9, 10]), 4)]
    dl = SortedDL(ds, bs=2, before_batch=partial(pad_input, pad_idx=0))
    got = list(dl)
    assert len(got) == 2 and all(isinstance(b, tuple) for b in got)
    assert torch.equal(got[0][0], tensor([[3, 4, 5, 6], [8, 9, 10, 0]])) and torch.equal(got[0][1], tensor([2, 4]))
    assert torch.equal(got[1][0], tensor([[1, 2], [7, 0]])) and torch.equal(got[1][1], tensor([1, 3]))
    assert dl.res == [2, 4, 1, 3] and dl.idx_max == 1


def test_sorted_dl_shuffled_keeps_the_longest_batch_first():
    set_seed(0)
    ds = [(tensor(range(random.randint(1, 10))), i) for i in range(101)]
    dl = SortedDL(ds, bs=2, before_batch=partial(pad_input, pad_idx=-1), shuffle=True, num_workers=0)
    batches = list(dl)
    max_len = batches[0][0].shape[1]
    assert max_len == max(len(x) for x, _ in ds)
    for b in batches:
        assert b[0].shape[1] <= max_len
        assert (b[0] != -1).any(dim=1).all()  # every row keeps its tokens: no all-padding row
    seen = sorted(int(i) for b in batches for i in b[1])
    assert seen == list(range(101))  # every item once
    assert [int(i) for b in batches for i in b[1]] != [int(i) for b in list(dl) for i in b[1]]  # a new order
    # the fastai notebook's create_batch= form: pad_input makes the batch itself (items stay a list of tuples)
    dl = SortedDL(ds, bs=2, create_batch=partial(pad_input, pad_idx=-1), shuffle=True)
    first = next(iter(dl))
    assert isinstance(first, list) and len(first) == 2 and first[0][0].shape == first[1][0].shape


def test_sorted_dl_new_keeps_sorting_and_res():
    ds = [(tensor([1] * n), n) for n in (3, 1, 4, 2)]
    dl = SortedDL(ds, bs=3, res=[3, 1, 4, 2], before_batch=partial(pad_input, pad_idx=0))
    dl2 = dl.new(bs=2)
    assert isinstance(dl2, SortedDL) and dl2.res == [3, 1, 4, 2]
    assert [b[1].tolist() for b in dl2] == [[4, 3], [2, 1]]
    with pytest.raises(ValueError, match="res has 2 values for 4 items"):
        SortedDL(ds, res=[1, 2])


def test_lm_dataloader_streams_lengths_and_lens():
    bs, sl = 4, 3
    ints = L([0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16, 17, 18], [19, 20], [21, 22, 23],
             [24]).map(tensor)
    want = [(tensor([[0, 1, 2], [6, 7, 8], [12, 13, 14], [18, 19, 20]]),
             tensor([[1, 2, 3], [7, 8, 9], [13, 14, 15], [19, 20, 21]])),
            (tensor([[3, 4, 5], [9, 10, 11], [15, 16, 17], [21, 22, 23]]),
             tensor([[4, 5, 6], [10, 11, 12], [16, 17, 18], [22, 23, 24]]))]
    for dl in (LMDataLoader(ints, bs=bs, seq_len=sl), LMDataLoader(ints, lens=ints.map(len), bs=bs, seq_len=sl)):
        got = list(dl)
        assert len(dl) == 2 and all(torch.equal(a, b) for g, w in zip(got, want) for a, b in zip(g, w))
    with pytest.raises(ValueError, match="lens= gives"):
        LMDataLoader(ints, lens=[1, 2], bs=bs, seq_len=sl)
    dl = LMDataLoader(ints, bs=bs, seq_len=sl, shuffle=True)
    for x, y in dl:
        assert torch.equal(x[:, 1:], y[:, :-1])
    (x0, y0), (x1, y1) = tuple(dl)
    assert torch.equal(y0[:, -1], x1[:, 0])  # the second batch begins where the first ended
    assert dl.new().seq_len == sl and dl.new(seq_len=2).seq_len == 2


def test_linear_decoder_outputs_and_tied_weights():
    enc = AWD_LSTM(100, 20, 10, 2)
    x = torch.randint(0, 100, (10, 5))
    r = enc(x)
    y = LinearDecoder(100, 20, 0.1)(r)
    assert torch.equal(y[1], r) and y[2].shape == r.shape and y[0].shape == (10, 5, 100)
    tst = LinearDecoder(100, 20, 0.1, tie_encoder=enc.encoder)
    assert tst.decoder.weight is enc.encoder.weight


def test_sequential_rnn_resets_its_children():
    calls = []

    class _TstMod(nn.Module):
        def reset(self):
            calls.append("reset")
    SequentialRNN(_TstMod(), _TstMod()).reset()
    assert calls == ["reset", "reset"]


def test_get_language_model_shapes_and_drop_mult():
    config = awd_lstm_lm_config.copy()
    config.update({"n_hid": 10, "emb_sz": 20})
    tst = get_language_model(AWD_LSTM, 100, config=config)
    y = tst(torch.randint(0, 100, (10, 5)))
    assert (y[0].shape, y[1].shape, y[2].shape) == ((10, 5, 100), (10, 5, 20), (10, 5, 20))
    assert tst[1].decoder.weight is tst[0].encoder.weight
    tst = get_language_model(AWD_LSTM, 100, config=config, drop_mult=0.5)
    assert tst[1].output_dp.p == config["output_p"] * 0.5
    assert all(rnn.weight_p == config["weight_p"] * 0.5 for rnn in tst[0].rnns)
    assert all(dp.p == config["hidden_p"] * 0.5 for dp in tst[0].hidden_dps)
    assert tst[0].encoder_dp.embed_p == config["embed_p"] * 0.5 and tst[0].input_dp.p == config["input_p"] * 0.5


def test_sentence_encoder_and_mask():
    mod = nn.Embedding(5, 10)
    tst = SentenceEncoder(5, mod, pad_idx=0)
    x = torch.randint(1, 5, (3, 15))
    x[2, :5] = 0
    out, mask = tst(x)
    assert torch.equal(out[:1], mod(x)[:1]) and torch.equal(out[2, 5:], mod(x)[2, 5:])
    assert torch.equal(mask, x == 0)


def test_masked_concat_pool_ignores_padding():
    out = torch.randn(2, 4, 5)
    mask = tensor([[True, True, False, False], [False, False, False, True]])
    x = masked_concat_pool(out, mask, 2)
    assert torch.allclose(x[0, :5], out[0, -1]) and torch.allclose(x[1, :5], out[1, -2])
    assert torch.allclose(x[0, 5:10], out[0, 2:].max(dim=0)[0]) and torch.allclose(x[1, 5:10], out[1, :3].max(dim=0)[0])
    assert torch.allclose(x[0, 10:], out[0, 2:].mean(dim=0)) and torch.allclose(x[1, 10:], out[1, :3].mean(dim=0))
    out1 = torch.randn(2, 4, 5)  # other content where the padding is: the same result
    out1[0, 2:] = out[0, 2:].clone()
    out1[1, :3] = out[1, :3].clone()
    assert torch.equal(masked_concat_pool(out1, mask, 2), x)


def test_pooling_linear_classifier_outputs_and_trailing_padding():
    mod = nn.Embedding(5, 10)
    tst = nn.Sequential(SentenceEncoder(5, mod, pad_idx=0), PoolingLinearClassifier([10 * 3, 4], [0.], 5)).eval()
    x = torch.randint(1, 5, (3, 14))
    x[2, :5] = 0
    res, raw, out = tst(x)
    assert torch.equal(raw[:1], mod(x)[:1]) and torch.equal(raw[2, 5:], mod(x)[2, 5:])
    assert torch.equal(out[:1], mod(x)[:1]) and res.shape == (3, 4)
    res1, _, _ = tst(torch.cat([x, tensor([0, 0, 0])[:, None]], dim=1))
    assert torch.allclose(res, res1)
    with pytest.raises(ValueError, match="one dropout per layer"):
        PoolingLinearClassifier([30, 4], [0.1, 0.1], 5)


def test_get_text_classifier_shapes_padding_and_drop_mult():
    config = awd_lstm_clas_config.copy()
    config.update({"n_hid": 10, "emb_sz": 20})
    tst = get_text_classifier(AWD_LSTM, 100, 3, config=config)
    x = torch.randint(2, 100, (10, 5))
    y = tst(x)
    assert (y[0].shape, y[1].shape, y[2].shape) == ((10, 3), (10, 5, 20), (10, 5, 20))
    tst.eval()
    y = tst(x)
    x1 = torch.cat([x, tensor([2, 1, 1, 1, 1, 1, 1, 1, 1, 1])[:, None]], dim=1)  # trailing padding on rows 1..9
    y1 = tst(x1)
    assert torch.allclose(y[0][1:], y1[0][1:], atol=1e-5)
    assert not torch.allclose(y[0][:1], y1[0][:1])  # row 0 got a real token: a different result
    tst = get_text_classifier(AWD_LSTM, 100, 3, config=config, drop_mult=0.5)
    assert tst[1].layers[1][1].p == 0.1 and tst[1].layers[0][1].p == config["output_p"] * 0.5
    assert all(rnn.weight_p == config["weight_p"] * 0.5 for rnn in tst[0].module.rnns)
    assert tst[0].module.encoder_dp.embed_p == config["embed_p"] * 0.5


def test_rnn_callback_lets_a_plain_learner_train_a_text_model():
    torch.manual_seed(0)
    n, sl = 64, 6
    x = torch.randint(2, 30, (n, sl))
    y = (x[:, 0] > 15).long()  # the class is in the first token
    ds = list(zip(x, y))
    dls = DataLoaders.from_dsets(ds[:48], ds[48:], bs=16, device="cpu")
    model = get_text_classifier(AWD_LSTM, 30, 2, seq_len=sl, config=dict(emb_sz=16, n_hid=16, n_layers=1))
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), cbs=rnn_cbs(), lr=1e-2)
    assert any(isinstance(c, RNNCallback) for c in learn.cbs)
    with learn.no_bar(), learn.no_logging():
        learn.fit(8)
    preds, targs = learn.get_preds()
    assert preds.shape == (16, 2)
    rnn = next(c for c in learn.cbs if isinstance(c, RNNCallback))
    assert rnn.raw_out.shape[-1] == 16
    assert learn.recorder.losses[-1] < learn.recorder.losses[0]
