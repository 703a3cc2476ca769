"""Hugging Face transformers models in a plain Learner (issue 25): logits, export as data, sentence pairs."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")  # in the `test` extra: installed in CI
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value  # noqa: E402
from safetensors.torch import load as st_load  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification  # noqa: E402

from learnkit.export import load_learner  # noqa: E402
from learnkit.learner import Learner  # noqa: E402
from learnkit.metrics import accuracy  # noqa: E402
from learnkit.registry import describe_model  # noqa: E402
from learnkit.text.data import TextDataLoaders  # noqa: E402
from learnkit.vision.all import ImageDataLoaders  # noqa: E402
from test_hf_data import _image_ds, _pictures, tiny_vit  # noqa: E402


def _manifest(fname) -> dict:
    data = fname.read_bytes()
    n = int.from_bytes(data[:8], "little")
    return json.loads(json.loads(data[8:8 + n])["__metadata__"]["manifest"])


def test_vit_learner_exports_config_and_weights_and_reloads_equal(tmp_path) -> None:
    dls = ImageDataLoaders.from_hf(DatasetDict(train=_image_ds(16), validation=_image_ds(8, seed=1)),
                                   image_col="img", label_col="labels", bs=4, num_workers=0)
    learn = Learner(dls, tiny_vit(), path=tmp_path)
    preds, targs = learn.get_preds()  # the model's ImageClassifierOutput -> its logits
    assert preds.shape == (8, 2) and torch.allclose(preds.sum(1), torch.ones(8))
    f = learn.export()
    spec = _manifest(f)["model"]
    assert spec["builder"] == "hf_transformers" and spec["class"] == "ViTForImageClassification"
    assert spec["config"]["hidden_size"] == 32 and spec["n_out"] == 2
    assert "learnkit.hf_model" in _manifest(f)["modules"]
    assert "pickled_model" not in st_load(f.read_bytes())
    back = load_learner(f)
    assert type(back.model).__name__ == "ViTForImageClassification"
    p2, _ = back.get_preds(dl=back.dls.test_dl([_pictures(8, seed=1)[0][i] for i in range(8)]))
    p1, _ = learn.get_preds(dl=learn.dls.test_dl([_pictures(8, seed=1)[0][i] for i in range(8)]))
    assert torch.allclose(p1, p2, atol=1e-6)


def test_a_wrong_head_size_is_refused_at_load(tmp_path) -> None:
    dls = ImageDataLoaders.from_hf(_image_ds(16), image_col="img", label_col="labels", bs=4, num_workers=0, seed=0)
    learn = Learner(dls, tiny_vit(n_out=5), path=tmp_path)
    learn.export()
    with pytest.raises(Exception, match="5 outputs but its vocabulary needs 2"):
        load_learner(tmp_path / "export.pkl")


def test_describe_model_knows_only_transformers_classes() -> None:
    assert describe_model(nn.Linear(2, 2)) is None

    class Mine(BertForSequenceClassification):
        pass
    cfg = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    assert describe_model(Mine(cfg)) is None  # not rebuildable by name: export then asks for pickle_model=True
    assert describe_model(BertForSequenceClassification(cfg))["class"] == "BertForSequenceClassification"


def _text_dd() -> DatasetDict:
    good = ["a wonderful film", "great acting, loved it", "a delight", "superb and moving"]
    bad = ["awful and dull", "terrible plot", "boring, I left", "a waste of time"]
    f = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    make = lambda k: Dataset.from_dict({"text": (good + bad) * k, "label": ([1] * 4 + [0] * 4) * k}, features=f)  # noqa: E731
    return DatasetDict(train=make(8), validation=make(1))


def test_bert_for_sequence_classification_trains_in_a_learner_and_round_trips(tmp_path) -> None:
    dls = TextDataLoaders.from_hf(_text_dd(), bs=8, num_workers=0, path=tmp_path)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(dls.vocab[0]), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, num_labels=2, pad_token_id=1)
    learn = Learner(dls, BertForSequenceClassification(cfg), metrics=accuracy, path=tmp_path)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(8, 1e-2)
    assert learn.recorder.values[-1][-1] >= 0.85  # chance is 0.5
    learn.export()
    back = load_learner(tmp_path / "export.pkl")
    assert back.predict("a wonderful film")[0] == learn.predict("a wonderful film")[0] == "pos"


def test_two_text_columns_go_to_the_tokenizer_as_a_pair() -> None:
    from learnkit.text.transformer import MINILM, TransformerTextEncoder
    enc = TransformerTextEncoder(MINILM)
    a, b = "The cat sat.", "A cat was sitting."
    ids = enc.encode([f"xxfld 1 {a} xxfld 2 {b}", "just one text", f"xxfld 1 {a} xxfld 2 {b} xxfld 3 c"])
    assert ids[0] == enc.tokenizer(a, b)["input_ids"] and ids[0].count(enc.tokenizer.sep_token_id) == 2
    assert ids[1] == enc.tokenizer("just one text")["input_ids"]
    assert ids[2].count(enc.tokenizer.sep_token_id) == 1  # three fields: not a pair, one text as before


def test_pair_columns_from_hf_reach_the_encoder_as_a_pair() -> None:
    from learnkit.text.transformer import MINILM, TransformerTextEncoder
    f = Features({"sentence1": Value("string"), "sentence2": Value("string"),
                  "label": ClassLabel(names=["not_equivalent", "equivalent"])})
    ds = Dataset.from_dict({"sentence1": ["He ran.", "It rains."] * 4, "sentence2": ["He was running.", "Sun."] * 4,
                            "label": [1, 0] * 4}, features=f)
    dls = TextDataLoaders.from_hf(ds, text_col=["sentence1", "sentence2"], valid_pct=0.25, seed=0, bs=2,
                                  num_workers=0)
    enc = TransformerTextEncoder(MINILM)
    x, y = dls.with_encoder(enc).train.one_batch()
    sep = enc.tokenizer.sep_token_id
    assert all((row == sep).sum().item() == 2 for row in x)
    assert list(dls.vocab[1]) == ["not_equivalent", "equivalent"]


def test_a_plain_sequence_classifier_gets_the_attention_mask_so_padding_changes_nothing(tmp_path) -> None:
    dls = TextDataLoaders.from_hf(_text_dd(), bs=8, num_workers=0, path=tmp_path)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(dls.vocab[0]), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, num_labels=2, pad_token_id=dls.train.pad_idx)
    learn = Learner(dls, BertForSequenceClassification(cfg), path=tmp_path)
    texts = ["a delight", "great acting, loved it and would see it again"]
    probs, _ = learn.get_preds(dl=dls.test_dl(texts))  # one batch: the short text is padded
    alone = torch.stack([learn.get_preds(dl=dls.test_dl([t]))[0][0] for t in texts])
    assert torch.allclose(probs, alone, atol=1e-5)
    x = dls.test_dl(texts).one_batch()[0]
    assert (x == dls.train.pad_idx).any()  # padding really was there
    plain = learn.model(x).logits.softmax(-1)  # without the mask the padded text's prediction moves
    assert not torch.allclose(plain[0], alone[0], atol=1e-4)


def test_sentence_pairs_get_the_tokenizers_token_types_and_mask() -> None:
    from learnkit.hf_model import transformer_inputs
    from learnkit.text.transformer import MINILM, TransformerTextEncoder
    enc = TransformerTextEncoder(MINILM)
    tok = enc.tokenizer
    pairs = [("The cat sat.", "A cat was sitting on the mat today."), ("Rain.", "Sun.")]
    ref = tok([a for a, _ in pairs], [b for _, b in pairs], padding=True, return_tensors="pt")
    ids = enc.encode([f"xxfld 1 {a} xxfld 2 {b}" for a, b in pairs])
    x = torch.full((2, max(map(len, ids))), enc.pad_idx)
    for i, row in enumerate(ids):
        x[i, :len(row)] = torch.tensor(row)
    got = transformer_inputs(x, enc.pad_idx, tok.sep_token_id)
    assert torch.equal(got["input_ids"], ref["input_ids"])
    assert torch.equal(got["attention_mask"], ref["attention_mask"])
    assert torch.equal(got["token_type_ids"], ref["token_type_ids"]) and got["token_type_ids"].sum() > 0
