"""AWD-LSTM: fastai's parameter names, the three dropouts, state across calls, padding-blind pooling."""
import pytest
import torch

from learnkit.text.models.awdlstm import (AWD_LSTM, EmbeddingDropout, RNNDropout, WeightDropout, awd_lstm_clas_split,
                                          awd_lstm_lm_split)
from learnkit.text.models.core import get_language_model, get_text_classifier, masked_concat_pool

TINY = dict(emb_sz=16, n_hid=24, n_layers=2, pad_token=1, bidir=False, hidden_p=0.2, input_p=0.2, embed_p=0.1,
            weight_p=0.3)
TINY_LM = dict(TINY, output_p=0.1, tie_weights=True, out_bias=True)
TINY_CLAS = dict(TINY, output_p=0.2)


def test_state_dict_names_are_fastais():
    lm = get_language_model(AWD_LSTM, 40, config=TINY_LM)
    keys = set(lm.state_dict())
    for k in ("0.encoder.weight", "0.encoder_dp.emb.weight", "0.rnns.0.weight_hh_l0_raw",
              "0.rnns.0.module.weight_ih_l0",
              "0.rnns.0.module.bias_ih_l0", "0.rnns.0.module.bias_hh_l0", "0.rnns.1.weight_hh_l0_raw",
              "1.decoder.weight", "1.decoder.bias"):
        assert k in keys, k
    assert "0.rnns.0.module.weight_hh_l0" not in keys
    assert lm[1].decoder.weight is lm[0].encoder.weight  # tied
    clas = get_text_classifier(AWD_LSTM, 40, 3, config=TINY_CLAS)
    assert "0.module.rnns.1.weight_hh_l0_raw" in clas.state_dict()
    assert clas[0].module.rnns[1].module.hidden_size == 16  # the last layer gives emb_sz


def test_dropouts():
    torch.manual_seed(0)
    x = torch.ones(4, 7, 10)
    d = RNNDropout(0.5).train()
    y = d(x)
    assert torch.equal(y, y[:, :1].expand_as(y))  # locked: one mask for every time step
    assert set(y.unique().tolist()) <= {0.0, 2.0} and torch.equal(d.eval()(x), x)
    emb = torch.nn.Embedding(30, 8)
    ed = EmbeddingDropout(emb, 0.5).train()
    words = torch.arange(30).repeat(2, 1)
    out = ed(words)
    zero_rows = (out[0] == 0).all(1)
    assert 0 < zero_rows.sum() < 30 and torch.equal(zero_rows, (out[1] == 0).all(1))  # whole words, everywhere
    wd = WeightDropout(torch.nn.LSTM(5, 6, batch_first=True), 0.9)
    inp = torch.randn(2, 3, 5)
    wd.eval()
    assert torch.equal(wd(inp)[0], wd(inp)[0])
    wd.train()
    assert not torch.equal(wd(inp)[0], wd(inp)[0])
    assert wd.weight_hh_l0_raw.requires_grad and "module.weight_hh_l0" not in dict(wd.named_parameters())


def test_weight_dropout_gets_gradients():
    enc = AWD_LSTM(20, **TINY)
    enc(torch.randint(0, 20, (3, 5))).sum().backward()
    assert enc.rnns[0].weight_hh_l0_raw.grad is not None and enc.rnns[0].weight_hh_l0_raw.grad.abs().sum() > 0


def test_hidden_state_carries_over_until_reset():
    torch.manual_seed(0)
    enc = AWD_LSTM(20, **TINY).eval()
    a = torch.randint(2, 20, (2, 6))
    b = torch.randint(2, 20, (2, 4))
    whole = enc(torch.cat([a, b], 1))
    enc.reset()
    enc(a)
    cont = enc(b)  # continues from a's state
    assert torch.allclose(whole[:, 6:], cont, atol=1e-5)
    enc.reset()
    assert not torch.allclose(enc(b), cont, atol=1e-3)
    enc.reset()
    assert enc(torch.randint(2, 20, (5, 3))).shape == (5, 3, 16)  # another batch size: a fresh state


def test_concat_pool_ignores_padding():
    out = torch.randn(2, 5, 3)
    mask = torch.tensor([[True, True, False, False, False], [False] * 5])
    pooled = masked_concat_pool(out, mask)
    assert torch.allclose(pooled[0, :3], out[0, 4]) and torch.allclose(pooled[0, 3:6], out[0, 2:].max(0).values)
    assert torch.allclose(pooled[0, 6:], out[0, 2:].mean(0)) and torch.allclose(pooled[1, 6:], out[1].mean(0))


def test_classifier_is_blind_to_left_padding_and_chunks():
    torch.manual_seed(0)
    clas = get_text_classifier(AWD_LSTM, 30, 2, seq_len=4, config=dict(TINY_CLAS, hidden_p=0.0, input_p=0.0,
                                                                        embed_p=0.0, weight_p=0.0)).eval()
    ids = torch.randint(2, 30, (1, 9))
    padded = torch.cat([torch.ones(1, 8, dtype=torch.long), ids], 1)  # 17 tokens: 5 chunks of bptt 4
    (a, raw, out), (b, _, _) = clas(ids), clas(padded)  # fastai's (logits, raw_out, out)
    assert a.shape == (1, 2) and isinstance(a, torch.Tensor) and raw.shape == out.shape == (1, 9, TINY["emb_sz"])
    # the pads come first, so only the (zero-embedded) pad steps' effect on the state differs: close, not equal
    assert torch.allclose(a, b, atol=0.1)


def test_config_overrides_the_defaults():
    lm = get_language_model(AWD_LSTM, 40, config=dict(emb_sz=8, n_hid=12, n_layers=2))
    assert lm[0].emb_sz == 8 and len(lm[0].rnns) == 2 and lm[1].output_dp.p == 0.1  # the rest: fastai's LM config
    clas = get_text_classifier(AWD_LSTM, 40, 2, config=dict(emb_sz=8, n_hid=12, n_layers=2))
    assert clas[0].module.rnns[0].weight_p == 0.5 and clas[1].layers[0][2].in_features == 24


def test_drop_mult_and_splits():
    lm = get_language_model(AWD_LSTM, 40, config=TINY_LM, drop_mult=0.5)
    assert lm[0].rnns[0].weight_p == pytest.approx(0.15) and lm[1].output_dp.p == pytest.approx(0.05)
    groups = awd_lstm_lm_split(lm)
    assert len(groups) == 3 and sum(len(g) for g in groups) == len(list(lm.parameters()))
    clas = get_text_classifier(AWD_LSTM, 40, 3, config=TINY_CLAS, lin_ftrs=[10], ps=[0.1])
    g = awd_lstm_clas_split(clas)
    assert len(g) == 4 and sum(len(x) for x in g) == len(list(clas.parameters()))
    assert clas[1].layers[-1][-1].out_features == 3 and clas[1].layers[0][2].in_features == 16 * 3
    with pytest.raises(ValueError, match="one dropout per layer"):
        get_text_classifier(AWD_LSTM, 40, 3, config=TINY_CLAS, lin_ftrs=[10], ps=[0.1, 0.2])
