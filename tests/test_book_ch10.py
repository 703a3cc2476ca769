"""The fastai book's chapter 10 (NLP deep dive) with the import line changed.

``untar_data(URLs.IMDB)`` is replaced by the shipped imdb_tiny sample laid out as IMDB (train/test/unsup
folders); ``pretrained=False`` because WT103 is a download; the AWD-LSTM is a small config so the test is quick.
The printed values the book shows are asserted where they don't depend on the data set's size.
"""
import pytest

import learnkit.text.all as text_all
from learnkit.text.all import *  # noqa: F403  (the chapter's one changed line)

SMALL = dict(emb_sz=32, n_hid=64, n_layers=2)


def test_the_chapter_uses_only_names_of_learnkit_text_all():
    names = ["get_text_files", "WordTokenizer", "first", "coll_repr", "Tokenizer", "defaults", "L",
             "SubwordTokenizer", "Numericalize", "LMDataLoader", "partial", "DataBlock", "TextBlock",
             "RandomSplitter", "language_model_learner", "AWD_LSTM", "accuracy", "Perplexity", "CategoryBlock",
             "parent_label", "GrandparentSplitter", "text_classifier_learner", "np", "untar_data", "SAMPLES"]
    assert [n for n in names if n not in text_all.__all__] == []


@pytest.fixture
def path(tmp_path, monkeypatch):
    """imdb_tiny as the IMDB folders: train/{pos,neg}, test/{pos,neg}, unsup."""
    monkeypatch.setenv("LEARNKIT_HOME", str(tmp_path / "home"))
    df = pd.read_csv(untar_data(SAMPLES.IMDB_TINY) / "texts.csv")
    root = tmp_path / "imdb"
    for i, r in df.iterrows():
        d = root / ("test" if r.is_valid else "train") / ("pos" if r.label == "positive" else "neg")
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:03d}.txt").write_text(r.text, encoding="utf8")
    (root / "unsup").mkdir()
    for i in range(20):
        (root / "unsup" / f"u{i}.txt").write_text(df.text[i], encoding="utf8")
    return Path(root)


def test_tokenization_numericalization_and_lm_batches(path):
    files = get_text_files(path, folders=["train", "test", "unsup"])
    assert len(files) == 220
    txt = files[0].open().read()
    spacy = WordTokenizer()
    toks = first(spacy([txt]))
    assert coll_repr(toks, 30).startswith(f"(#{len(toks)}) [")
    assert first(spacy(["The U.S. dollar $1 is $1.00."])) == ["The", "U.S.", "dollar", "$", "1", "is", "$", "1.00", "."]
    tkn = Tokenizer(spacy)
    assert tkn(txt)[:2] == ["xxbos", "xxmaj"]
    assert defaults.text_proc_rules[0] is fix_html and defaults.text_proc_rules[-1] is lowercase
    assert tkn("&copy;   Fast.ai www.fast.ai/INDEX") == \
        ["xxbos", "©", "xxmaj", "fast.ai", "xxrep", "3", "w", ".fast.ai", "/", "xxup", "index"]  # the book's output

    txts = L(o.open().read() for o in files[:2000])

    def subword(sz):
        sp = SubwordTokenizer(vocab_sz=sz)
        sp.setup(txts)
        return " ".join(first(sp([txt]))[:40])

    small, big = subword(200), subword(1000)
    assert len(small.split()) == len(big.split()) == 40 and len(small) < len(big)  # smaller vocab, shorter pieces

    toks200 = txts[:200].map(tkn)
    num = Numericalize()
    num.setup(toks200)
    assert num.vocab[:9] == text_spec_tok and len(num.vocab) % 8 == 0
    nums = num(toks)[:20]
    assert [num.vocab[o] for o in nums] == [t if t in num.o2i else "xxunk" for t in toks[:20]]

    stream = ("In this chapter, we will go back over the example of classifying movie reviews we studied in chapter 1 "
              "and dig deeper under the surface. First we will look at the processing steps necessary to convert text "
              "into numbers and how to customize it. By doing this, we'll have another example of the PreProcessor "
              "used in the data block API.\nThen we will study how we build a language model and train it for a while.")
    tokens = tkn(stream)
    bs, seq_len = 6, 15
    d_tokens = np.array([tokens[i * seq_len:(i + 1) * seq_len] for i in range(bs)])
    assert d_tokens.shape == (6, 15) and list(d_tokens[4][9:13]) == ["api", ".", "\n", "xxmaj"]  # the book's table

    nums200 = toks200.map(num)
    dl = LMDataLoader(nums200)
    x, y = first(dl)
    assert (x.shape, y.shape) == ((64, 72), (64, 72))
    assert torch.equal(x[0][1:], y[0][:-1])  # the targets are the inputs shifted by one token
    assert " ".join(num.vocab[o] for o in x[0][:20]).startswith("xxbos xxmaj")


@pytest.mark.slow
def test_language_model_then_classifier(path, one_thread):
    get_imdb = partial(get_text_files, folders=["train", "test", "unsup"])
    dls_lm = DataBlock(
        blocks=TextBlock.from_folder(path, is_lm=True),  # a single block, not a tuple, as in the book
        get_items=get_imdb, splitter=RandomSplitter(0.1),
    ).dataloaders(path, path=path, bs=16, seq_len=80)
    x, y = dls_lm.one_batch()
    assert x.shape == (16, 80) and torch.equal(x[:, 1:], y[:, :-1])
    learn = language_model_learner(dls_lm, AWD_LSTM, drop_mult=0.3, metrics=[accuracy, Perplexity()],
                                   pretrained=False, config=SMALL).to_fp16()
    learn.remove_cb(ProgressCallback)
    before = learn.validate()
    learn.fit_one_cycle(1, 2e-2)
    learn.save("1epoch")
    learn = learn.load("1epoch")
    learn.unfreeze()
    learn.fit_one_cycle(1, 2e-3)
    after = learn.validate()
    assert after[2] < 0.5 * before[2]  # perplexity at least halved
    learn.save_encoder("finetuned")

    TEXT = "I liked this movie because"
    N_WORDS = 40
    N_SENTENCES = 2
    preds = [learn.predict(TEXT, N_WORDS, temperature=0.75, no_bar=True) for _ in range(N_SENTENCES)]
    assert all(p.startswith("i liked this movie because ") for p in preds)  # "I" is lowercased by the rules
    assert all(15 <= len(p.split()) - 5 <= N_WORDS for p in preds) and preds[0] != preds[1]

    dls_clas = DataBlock(
        blocks=(TextBlock.from_folder(path, vocab=dls_lm.vocab), CategoryBlock),
        get_y=parent_label,
        get_items=partial(get_text_files, folders=["train", "test"]),
        splitter=GrandparentSplitter(valid_name="test"),
    ).dataloaders(path, path=path, bs=16, seq_len=72)
    assert dls_clas.vocab[0] == dls_lm.vocab and dls_clas.vocab[1] == ["neg", "pos"]
    learn = text_classifier_learner(dls_clas, AWD_LSTM, drop_mult=0.5, metrics=accuracy, pretrained=False,
                                    config=SMALL)
    learn.remove_cb(ProgressCallback)
    learn = learn.load_encoder("finetuned")
    learn.fit_one_cycle(1, 2e-2)
    learn.freeze_to(-2)
    trainable = [all(p.requires_grad for p in g) for g in learn.splitter(learn.model)]
    assert trainable == [False] * (len(trainable) - 2) + [True, True]
    learn.fit_one_cycle(1, slice(1e-2 / (2.6 ** 4), 1e-2))
    label, idx, probs = learn.predict("I really liked that movie!")
    assert label in ("neg", "pos") and probs.shape == (2,) and label == dls_clas.vocab[1][int(idx)]
