"""Text learners: learning above chance, predict on a string, export round trip, encoder transfer, and
fastai's WT103 weights through the real download code (a tiny file in fastai's format on a loopback server)."""
import io
import json
import pickle
import random
import socket
import tarfile

import pandas as pd
import pytest
import torch

from learnkit.callback.core import CancelFitException, Callback
from learnkit.data.external import DownloadError
from learnkit.export import load_learner
from learnkit.metrics import accuracy
from learnkit.samples import sample_path
from learnkit.text.data import TextDataLoaders
from learnkit.text.learner import (LMLearner, ModelResetter, TextLearner, language_model_learner, read_itos,
                                   text_classifier_learner)
from learnkit.text.models.awdlstm import AWD_LSTM
from learnkit.text.models.core import get_language_model, model_meta
from learnkit.utils import set_seed

TINY = dict(emb_sz=16, n_hid=32, n_layers=2, pad_token=1, bidir=False, hidden_p=0.1, input_p=0.1, embed_p=0.0,
            weight_p=0.1)
TINY_LM = dict(TINY, output_p=0.1, tie_weights=True, out_bias=True)
TINY_CLAS = dict(TINY, emb_sz=32, n_hid=64, output_p=0.1)
POS, NEG = ["great", "wonderful", "superb", "loved"], ["awful", "terrible", "boring", "hated"]
FILLER = "the movie film actor plot scene story was is and a of it this that with".split()


def _keyword_df(n_train: int = 300, n_valid: int = 100) -> pd.DataFrame:
    """Reviews of filler words where one sentiment keyword decides the label."""
    r = random.Random(0)
    rows = []
    for i in range(n_train + n_valid):
        lab = r.random() < 0.5
        words = [r.choice(FILLER) for _ in range(r.randint(8, 30))]
        words.insert(r.randint(0, len(words)), r.choice(POS if lab else NEG))
        rows.append((" ".join(words), "positive" if lab else "negative", i >= n_train))
    return pd.DataFrame(rows, columns=["text", "label", "is_valid"])


@pytest.fixture(scope="module")
def trained():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models train faster on one thread
    set_seed(0)
    dls = TextDataLoaders.from_df(_keyword_df(), text_col="text", label_col="label", valid_col="is_valid", bs=32)
    learn = text_classifier_learner(dls, AWD_LSTM, config=TINY_CLAS, pretrained=False, metrics=accuracy)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(4, 3e-2)
    yield learn
    torch.set_num_threads(n)


@pytest.mark.slow
def test_classifier_learns_the_keyword(trained):
    assert trained.recorder.values[-1][2] >= 0.9  # chance is 0.5
    label, idx, probs = trained.predict("the plot was superb and the actor was wonderful")
    assert label == "positive" and idx.item() == 1 and probs.shape == (2,)
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-5) and probs[1] > 0.5
    assert trained.predict("boring film, I hated it")[0] == "negative"


@pytest.mark.slow
def test_export_round_trip_equal_predictions(trained, tmp_path):
    path = trained.export(tmp_path / "clas.pkl")
    raw = path.read_bytes()
    manifest = json.loads(json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])["__metadata__"]["manifest"])
    assert manifest["data"]["type"] == "text" and manifest["data"]["encoder"]["vocab"] == trained.dls.vocab[0]
    assert manifest["model"]["builder"] == "awd_lstm_classifier"
    back = load_learner(path)
    assert type(back) is TextLearner
    texts = list(_keyword_df(0, 30).text)
    a = trained.get_preds(dl=trained.dls.test_dl(texts))[0]
    b = back.get_preds(dl=back.dls.test_dl(texts))[0]
    assert torch.allclose(a, b, atol=1e-6)
    assert back.predict(texts[0])[0] == trained.predict(texts[0])[0]


@pytest.mark.slow
def test_language_model_learns_and_transfers_its_encoder(tmp_path, one_thread):
    set_seed(0)
    df = pd.read_csv(sample_path("imdb_tiny") / "texts.csv")
    dls_lm = TextDataLoaders.from_df(df, text_col="text", is_lm=True, valid_col="is_valid", bs=16, seq_len=36)
    learn = language_model_learner(dls_lm, AWD_LSTM, config=TINY_LM, pretrained=False, path=tmp_path)
    before = learn.validate()[0]
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(2, 2e-2)
    after = learn.validate()[0]
    assert torch.exp(torch.tensor(after)) < 0.5 * torch.exp(torch.tensor(before))  # perplexity at least halved
    said = learn.predict("This movie is", n_words=4)
    assert said.startswith("This movie is ") and not {"xxbos", "xxpad", "xxunk"} & set(said.split())
    raw = learn.predict("This movie is", n_words=4, decoder=list, no_bar=True)  # the tokens as they come
    assert raw.split()[:4] == ["xxmaj", "this", "movie", "is"] and len(raw.split()) == 8
    assert len(learn.predict("This movie is", n_words=3, decoder=list, only_last_word=True).split()) == 7
    with pytest.warns(UserWarning, match="no item with probability >= 2"):
        learn.predict("This movie is", min_p=2.0)
    back = load_learner(learn.export("lm.pkl"))  # the language model exports too, vocab in the manifest
    assert isinstance(back, LMLearner) and any(isinstance(c, ModelResetter) for c in back.cbs)
    set_seed(3)
    generated = learn.predict("This movie is", n_words=6, temperature=0.7)
    set_seed(3)
    assert back.predict("This movie is", n_words=6, temperature=0.7) == generated  # it generates like the original
    x = dls_lm.valid.one_batch()[0]
    learn.model.eval(), learn.model.reset(), back.model.reset()
    with torch.no_grad():
        assert torch.allclose(learn.model(x)[0], back.model(x)[0], atol=1e-5)
    assert back.dls.vocab == dls_lm.vocab
    learn.save_encoder("enc")
    dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_col="is_valid", bs=16,
                                  text_vocab=dls_lm.vocab)
    clas = text_classifier_learner(dls, AWD_LSTM, config=dict(TINY, output_p=0.1), pretrained=False, path=tmp_path)
    clas.load_encoder("enc")
    assert torch.equal(clas.model[0].module.encoder.weight, learn.model[0].encoder.weight)
    trainable = [p.requires_grad for g in clas.splitter(clas.model) for p in g]
    assert not all(trainable) and all(p.requires_grad for p in clas.model[1].parameters())  # frozen to the head
    other = TextDataLoaders.from_df(df.iloc[:60], text_col="text", label_col="label", valid_col="is_valid")  # own vocab
    mismatch = text_classifier_learner(other, AWD_LSTM, config=dict(TINY, output_p=0.1), pretrained=False,
                                       path=tmp_path)
    with pytest.raises(ValueError, match="text_vocab=dls_lm.vocab"):
        mismatch.load_encoder("enc")


def _fastai_wt103_archive(old_itos: list) -> tuple[bytes, dict]:
    """A tgz laid out as fastai's wt103-fwd.tgz: a folder with lstm_fwd.pth (a state dict) and itos_wt103.pkl."""
    torch.manual_seed(1)
    sd = get_language_model(AWD_LSTM, len(old_itos), config=TINY_LM).state_dict()
    sd = {k: v.clone() for k, v in sd.items()}
    sd["0.rnns.0.module.weight_hh_l0"] = sd["0.rnns.0.weight_hh_l0_raw"].clone()  # older files hold both
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("lstm_fwd.pth", _torch_bytes(sd)), ("itos_wt103.pkl", pickle.dumps(old_itos))):
            info = tarfile.TarInfo(f"wt103-fwd/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue(), sd


def _torch_bytes(obj) -> bytes:
    b = io.BytesIO()
    torch.save(obj, b)
    return b.getvalue()


@pytest.fixture
def lm_dls():
    df = pd.read_csv(sample_path("imdb_tiny") / "texts.csv")
    return TextDataLoaders.from_df(df.iloc[:80], text_col="text", is_lm=True, valid_col="is_valid", bs=4,
                                   seq_len=20)


def test_pretrained_wt103_download_and_match_embeds(server, monkeypatch, tmp_path, lm_dls):
    new_vocab = lm_dls.vocab
    old_itos = new_vocab[:9] + ["zzzold"] + new_vocab[20:9:-1]  # some shared words (reordered), one unknown
    blob, sd = _fastai_wt103_archive(old_itos)
    server.routes["/models/wt103-fwd.tgz"] = blob
    monkeypatch.setenv("LEARNKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(model_meta[AWD_LSTM], "url", server.url("/models/wt103-fwd.tgz"))
    learn = language_model_learner(lm_dls, AWD_LSTM, config=TINY_LM)
    assert server.hits["/models/wt103-fwd.tgz"] == 1
    got = learn.model.state_dict()
    old = {w: i for i, w in enumerate(old_itos)}
    for i, w in enumerate(new_vocab):
        want = sd["0.encoder.weight"][old[w]] if w in old else sd["0.encoder.weight"].mean(0)
        assert torch.allclose(got["0.encoder.weight"][i], want, atol=1e-6), w
        want_b = sd["1.decoder.bias"][old[w]] if w in old else sd["1.decoder.bias"].mean()
        assert torch.allclose(got["1.decoder.bias"][i], want_b, atol=1e-6), w
    assert torch.equal(got["0.rnns.1.weight_hh_l0_raw"], sd["0.rnns.1.weight_hh_l0_raw"])
    assert not learn.model[0].rnns[0].weight_hh_l0_raw.requires_grad  # frozen: only embeddings + decoder train
    clas_dls = TextDataLoaders.from_df(_keyword_df(40, 10), text_col="text", label_col="label",
                                       valid_col="is_valid", text_vocab=new_vocab, bs=8)
    clas = text_classifier_learner(clas_dls, AWD_LSTM, config=dict(TINY, output_p=0.1))  # second time: cached
    assert server.hits["/models/wt103-fwd.tgz"] == 1
    enc = clas.model[0].module.state_dict()
    assert torch.equal(enc["encoder.weight"], got["0.encoder.weight"])
    assert torch.equal(enc["rnns.0.module.weight_ih_l0"], sd["0.rnns.0.module.weight_ih_l0"])
    assert all(p.requires_grad for p in clas.model[1].parameters())
    assert not clas.model[0].module.encoder.weight.requires_grad  # frozen body


def test_pretrained_offline_says_where_to_put_the_files(monkeypatch, tmp_path, lm_dls):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("LEARNKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(model_meta[AWD_LSTM], "url", f"http://127.0.0.1:{port}/wt103-fwd.tgz")
    with pytest.raises(DownloadError) as e:
        language_model_learner(lm_dls, AWD_LSTM, config=TINY_LM)
    msg = str(e.value)
    assert str(tmp_path / "home" / "data" / "wt103-fwd") in msg and "pretrained=False" in msg and ".pth" in msg
    learn = language_model_learner(lm_dls, AWD_LSTM, config=TINY_LM, pretrained=False)  # from scratch works
    assert learn.model[0].rnns[0].weight_hh_l0_raw.requires_grad


def test_vocab_file_is_read_without_running_code(tmp_path):
    good = tmp_path / "itos.pkl"
    good.write_bytes(pickle.dumps(["xxunk", "xxpad", "the"]))
    assert read_itos(good) == ["xxunk", "xxpad", "the"]

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps([Evil()]))
    with pytest.raises(ValueError, match="builtins.print"):
        read_itos(bad)


def test_rnn_regularizer_adds_ar_and_tar_to_the_training_loss(lm_dls):
    seen = []

    class Spy(Callback):
        order = 20

        def after_loss(self):
            if self.learn.training:
                head = self.learn.model[1]
                ar = 2.0 * head.out.float().pow(2).mean()
                tar = 1.0 * (head.raw_out[:, 1:] - head.raw_out[:, :-1]).float().pow(2).mean()
                seen.append(((self.learn.loss_grad - self.learn.loss).item(), (ar + tar).item()))
                raise CancelFitException()

    learn = language_model_learner(lm_dls, AWD_LSTM, config=TINY_LM, pretrained=False, cbs=[Spy()])
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
    (extra, expected), = seen
    assert extra > 0 and extra == pytest.approx(expected, rel=1e-5)
