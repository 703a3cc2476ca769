"""learnkit serve for every export kind: multi-label, segmentation, text, tabular, collab apps predict as learn.predict;
bad input refused by the validator (422 from the HTTP API, the message in the page); batching groups and agrees."""
import random
import socket
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from learnkit.collab.all import CollabDataLoaders, collab_learner
from learnkit.data.block import DataBlock
from learnkit.data.blocks import MultiCategoryBlock
from learnkit.data.getters import get_image_files
from learnkit.data.normalize import Normalize
from learnkit.data.splitters import GrandparentSplitter
from learnkit.export import load_learner
from learnkit.samples import sample_path
from learnkit.serve import Batcher, app_predict, gradio_app, serve_kind, task_for
from learnkit.serve.server import launch
from learnkit.tabular.core import Categorify, FillMissing
from learnkit.tabular.data import TabularDataLoaders
from learnkit.tabular.learner import tabular_learner
from learnkit.text.data import TextDataLoaders
from learnkit.text.learner import text_classifier_learner
from learnkit.text.models.awdlstm import AWD_LSTM
from learnkit.vision.augment import Resize
from learnkit.vision.core import ImageBlock
from learnkit.vision.data import SegmentationDataLoaders
from learnkit.vision.learner import vision_learner
from learnkit.vision.unet_learner import unet_learner

MNIST, CAMVID = sample_path("mnist_tiny"), sample_path("camvid_tiny")
TINY_CLAS = dict(emb_sz=16, n_hid=32, n_layers=1, pad_token=1, bidir=False, hidden_p=0.0, input_p=0.0, embed_p=0.0,
                 weight_p=0.0, output_p=0.0)


def tiny_cnn(pretrained=False):
    """A small callable arch: stride-2 stages at /2, /4, /8, then pooling and a classifier."""
    def stage(ni, nf):
        return nn.Sequential(nn.Conv2d(ni, nf, 3, stride=2, padding=1), nn.BatchNorm2d(nf), nn.ReLU())
    return nn.Sequential(stage(3, 8), stage(8, 16), stage(16, 16), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 10))


def _quiet_fit(learn, epochs=1, lr=1e-2):
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, lr)
    return learn


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def multilabel(tmp_path_factory):
    torch.manual_seed(0)
    db = DataBlock(blocks=(ImageBlock, MultiCategoryBlock), get_items=get_image_files,
                   get_y=lambda p: ["digit", p.parent.name], splitter=GrandparentSplitter(), item_tfms=Resize(32))
    learn = vision_learner(db.dataloaders(MNIST, bs=32, num_workers=0), tiny_cnn, pretrained=False,
                           path=tmp_path_factory.mktemp("ml"))
    return load_learner(_quiet_fit(learn, lr=3e-2).export())


@pytest.fixture(scope="module")
def segmentation(tmp_path_factory):
    torch.manual_seed(0)
    codes = np.loadtxt(CAMVID / "codes.txt", dtype=str)
    dls = SegmentationDataLoaders.from_label_func(
        CAMVID, get_image_files(CAMVID / "images"), lambda o: o.parent.parent / "labels" / f"{o.stem}_P{o.suffix}",
        codes=codes, seed=42, bs=8, num_workers=0, item_tfms=Resize((48, 64)))
    return load_learner(unet_learner(dls, tiny_cnn, pretrained=False, path=tmp_path_factory.mktemp("seg")).export())


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    torch.manual_seed(0)
    r = random.Random(0)
    words = "good great bad awful the movie film plot was is very".split()
    rows = [(" ".join(r.choice(words) for _ in range(r.randint(2, 9))), r.choice(["pos", "neg"]), i >= 32)
            for i in range(40)]
    df = pd.DataFrame(rows, columns=["text", "label", "is_valid"])
    dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_col="is_valid", bs=8)
    learn = text_classifier_learner(dls, AWD_LSTM, config=TINY_CLAS, pretrained=False,
                                    path=tmp_path_factory.mktemp("text"))
    return load_learner(learn.export())


@pytest.fixture(scope="module")
def adult():
    return pd.read_csv(sample_path("adult_sample") / "adult.csv").head(200)


@pytest.fixture(scope="module")
def tabular(adult, tmp_path_factory):
    torch.manual_seed(0)
    df = adult.copy()
    df.loc[:20, "age"] = np.nan  # a FillMissing flag column (age_na) the form must not ask for
    dls = TabularDataLoaders.from_df(df, path=tmp_path_factory.mktemp("tab"), procs=[Categorify, FillMissing, Normalize],
                                     cat_names=["workclass", "education"], cont_names=["age", "fnlwgt"],
                                     y_names="salary", valid_idx=list(range(150, 200)), bs=16, device="cpu")
    return load_learner(_quiet_fit(tabular_learner(dls, layers=[8])).export())


@pytest.fixture(scope="module")
def ratings():
    return pd.read_csv(sample_path("movie_lens_sample") / "ratings.csv")


@pytest.fixture(scope="module")
def collab(ratings, tmp_path_factory):
    torch.manual_seed(0)
    dls = CollabDataLoaders.from_df(ratings, bs=64, seed=42, path=tmp_path_factory.mktemp("collab"), device="cpu")
    return load_learner(_quiet_fit(collab_learner(dls, n_factors=4, y_range=(0, 5.5))).export())


def _launch(learn):
    """Launch learn's app on a free 127.0.0.1 port in this process; returns (app, url)."""
    app = gradio_app(learn)
    _, url, _ = launch(app, port=_free_port(), block=False, quiet=True)
    return app, url


def _row_values(task, row) -> list:
    """A table row as the form's values: category strings as the dropdowns send them, numbers as floats."""
    return [str(row[c]) for c in task.cats] + [float(row[c]) for c in task.conts]


# -- each kind predicts as learn.predict


def test_kinds_are_detected(multilabel, segmentation, text, tabular, collab):
    assert [serve_kind(x) for x in (multilabel, segmentation, text, tabular, collab)] == \
        ["multilabel", "segmentation", "text", "tabular", "collab"]


def test_multilabel_app_gives_the_labels_over_the_threshold(multilabel):
    task = task_for(multilabel)
    fn = app_predict(task)
    gradio_app(multilabel)  # the app builds
    for img in get_image_files(MNIST / "valid")[:3]:
        out = fn(str(img))
        labels, hot, probs = multilabel.predict(img)
        assert sorted(out) == sorted(labels) and "digit" in out  # every image has 'digit' after training
        assert all(abs(out[lbl] - float(probs[multilabel.dls.vocab.index(lbl)])) < 1e-5 for lbl in out)
        assert all(p > 0.5 for p in out.values())


def test_segmentation_app_draws_the_predicted_mask_over_the_image(segmentation):
    task = task_for(segmentation)
    gradio_app(segmentation)
    item = get_image_files(CAMVID / "images")[0]
    img, layers = app_predict(task)(str(item))
    mask, _, _ = segmentation.predict(item)
    assert img.shape == (*mask.shape, 3) and img.dtype == np.uint8 and img.std() > 0  # the picture, not grey
    codes = list(segmentation.dls.vocab)
    assert [name for _, name in layers] == [codes[c] for c in torch.unique(mask).tolist()]
    for layer, name in layers:
        assert np.array_equal(layer.astype(bool), (mask == codes.index(name)).numpy())


def test_text_app_and_batches_of_mixed_lengths_equal_one_by_one(text):
    task = task_for(text)
    gradio_app(text)
    texts = ["good movie", "the plot was very bad and the film is awful", "great", "bad film", "awful acting"]
    for t in texts:
        out = app_predict(task)(t)
        label, _, probs = text.predict(t)
        assert max(out, key=out.get) == str(label) and abs(max(out.values()) - float(probs.max())) < 1e-6
    batched = task.predict(texts)  # equal token counts share a pass; padding would change the RNN's answer
    for t, (dec, probs) in zip(texts, batched):
        _, dec1, probs1 = text.predict(t)
        assert int(dec) == int(dec1) and torch.allclose(probs, probs1, atol=1e-6)


def test_tabular_form_from_the_export_and_prediction(tabular, adult):
    task = task_for(tabular)
    inputs, out = task.components(__import__("gradio"))
    assert [i.label for i in inputs] == ["workclass", "education", "age", "fnlwgt"]  # no age_na flag field
    assert sorted(c[0] for c in inputs[0].choices) == sorted(v for v in tabular.dls.classes["workclass"] if v != "#na#")
    for i in (0, 5):
        row = adult.iloc[i]
        got = app_predict(task)(*_row_values(task, row))
        _, clas, probs = tabular.predict(row[["workclass", "education", "age", "fnlwgt"]])
        vocab = list(tabular.dls.vocab)
        assert max(got, key=got.get) == vocab[int(clas)]
        assert all(abs(got[v] - float(probs[j])) < 1e-6 for j, v in enumerate(vocab))


def test_collab_app_predicts_the_rating(collab, ratings):
    task = task_for(collab)
    inputs, _ = task.components(__import__("gradio"))
    assert [i.label for i in inputs] == ["userId", "movieId"]
    row = ratings.iloc[0]
    got = app_predict(task)(str(int(row.userId)), str(int(row.movieId)))
    _, pred, _ = collab.predict(row)
    assert got == pytest.approx(float(pred), abs=1e-6) and 0 < got < 5.5


# -- over HTTP: gradio_client, and bad input refused with a 4xx


def test_tabular_app_over_gradio_client_and_http(tabular, adult):
    from gradio_client import Client
    from gradio_client.exceptions import ValidationError

    task = task_for(tabular)
    app, url = _launch(tabular)
    try:
        values = _row_values(task, adult.iloc[0])
        res = Client(url, verbose=False).predict(*values, api_name="/predict")
        expected = app_predict(task)(*values)
        assert res["label"] == max(expected, key=expected.get)
        assert {c["label"]: c["confidence"] for c in res["confidences"]} == pytest.approx(expected, abs=1e-6)
        with pytest.raises(ValidationError):
            Client(url, verbose=False).predict(values[0], None, *values[2:], api_name="/predict")
        # the raw HTTP API: a missing field (None or "") gets 422 naming the column
        for bad, name in (([values[0], None, *values[2:]], "education"), ([*values[:2], "", values[3]], "age")):
            r = httpx.post(url + "gradio_api/call/predict", json={"data": bad}, timeout=30)
            assert r.status_code == 422, r.text
            msgs = [d["message"] for d in r.json()["detail"] if not d["is_valid"]]
            assert len(msgs) == 1 and f"the field {name!r} is missing" in msgs[0]
        # an unknown category: Gradio's dropdown refuses it before the validator runs, 400 naming the choices
        r = httpx.post(url + "gradio_api/call/predict", json={"data": ["Nope", *values[1:]]}, timeout=30)
        assert r.status_code == 400 and "Nope is not in the list of choices" in r.json()["detail"]
        # a wrong content type: 415 naming the one it needs; the server is still up and answers
        r = httpx.post(url + "gradio_api/call/predict", content=b"workclass=Private", timeout=30,
                       headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 415 and "application/json" in r.json()["detail"]
        # the direct route that skips validators is closed
        assert httpx.post(url + "gradio_api/run/predict", json={"data": values}, timeout=30).status_code == 404
        r = httpx.post(url + "gradio_api/call/predict", json={"data": values}, timeout=30)
        assert r.status_code == 200
        events = httpx.get(url + f"gradio_api/call/predict/{r.json()['event_id']}", timeout=30).text
        assert "event: complete" in events
    finally:
        app.close()


def test_text_app_refuses_empty_text_with_422(text):
    app, url = _launch(text)
    try:
        for empty in ("", "   \n"):
            r = httpx.post(url + "gradio_api/call/predict", json={"data": [empty]}, timeout=30)
            assert r.status_code == 422 and "the text is empty" in r.json()["detail"][0]["message"]
        r = httpx.post(url + "gradio_api/call/predict", json={"data": ["good movie"]}, timeout=30)
        assert r.status_code == 200
    finally:
        app.close()


# -- batching


def test_batcher_groups_concurrent_calls_and_isolates_a_failing_item():
    release = threading.Event()
    seen = []

    def run(items):
        seen.append(list(items))
        if len(seen) == 1:  # hold the first batch until the other callers are queued behind it
            release.wait(10)
        if "bad" in items:
            raise ValueError("bad item")
        return [x * 2 for x in items]

    b = Batcher(run, max_batch_size=16, max_wait=0.5)
    results, errors = {}, {}

    def call(x):
        try:
            results[x] = b(x)
        except ValueError as e:
            errors[x] = str(e)

    first = threading.Thread(target=call, args=(0,))
    first.start()
    while not seen:
        time.sleep(0.001)
    rest = [threading.Thread(target=call, args=(x,)) for x in [1, 2, 3, "bad", 5]]
    for t in rest:
        t.start()
    while b._queue.qsize() < 5:
        time.sleep(0.001)
    release.set()
    for t in [first, *rest]:
        t.join(10)
    assert sorted(map(str, seen[1])) == ["1", "2", "3", "5", "bad"]  # the five waiting calls ran as one batch
    assert results == {0: 0, 1: 2, 2: 4, 3: 6, 5: 10} and errors == {"bad": "bad item"}  # reruns alone
    assert b.batch_sizes == {1: 5}  # 0 alone, then 1, 2, 3, 5 alone after the failed batch of 5


def test_batched_images_equal_one_by_one_and_the_app_batches(multilabel):
    task = task_for(multilabel)
    files = get_image_files(MNIST / "valid")[:6]
    batched = task.predict([task.item(str(f)) for f in files])
    for f, (dec, probs) in zip(files, batched):
        _, dec1, probs1 = multilabel.predict(f)
        assert torch.equal(dec, dec1) and torch.allclose(probs, probs1, atol=1e-5)
    app, url = _launch(multilabel)
    try:
        from gradio_client import Client, handle_file
        clients = [Client(url, verbose=False) for _ in range(8)]
        out = [None] * 8
        threads = [threading.Thread(target=lambda i=i: out.__setitem__(
            i, clients[i].predict(handle_file(str(files[i % 6])), api_name="/predict"))) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        expected = [app_predict(task)(str(files[i % 6])) for i in range(8)]
        assert [sorted(c["label"] for c in o["confidences"]) for o in out] == [sorted(e) for e in expected]
        sizes = app.batcher.batch_sizes
        assert sum(n * c for n, c in sizes.items()) == 8
    finally:
        app.close()


# -- --runtime onnx


@pytest.mark.parametrize("kind", ["multilabel", "segmentation", "tabular", "collab"])
def test_onnx_runtime_matches_the_torch_path(kind, request, adult, ratings):
    from learnkit.serve.onnx_runtime import OnnxRuntimeModel, use_onnx_runtime

    learn = request.getfixturevalue(kind)
    if kind in ("tabular", "collab"):
        task = task_for(learn)
        frame = adult if kind == "tabular" else ratings
        items = [task.item(*_row_values(task, frame.iloc[i])) if kind == "tabular" else
                 task.item(str(int(frame.userId.iloc[i])), str(int(frame.movieId.iloc[i]))) for i in range(5)]
    else:
        folder = MNIST / "valid" if kind == "multilabel" else CAMVID / "images"
        items = [task_for(learn).item(str(f)) for f in get_image_files(folder)[:3]]
    torch_res = task_for(learn).predict(items)
    onnx_learn = load_learner(learn.path / "export.pkl")
    use_onnx_runtime(onnx_learn)
    assert isinstance(onnx_learn.model, OnnxRuntimeModel)
    onnx_res = task_for(onnx_learn).predict(items)  # a batch of several: the batch dimension is dynamic
    for (d1, p1, *_), (d2, p2, *_) in zip(torch_res, onnx_res):
        assert torch.allclose(p1, p2, atol=1e-4)
        if d1.is_floating_point():  # a regression's decoded value is the prediction itself
            assert torch.allclose(d1, d2, atol=1e-4)
        else:  # a pixel whose top two classes tie within float error may flip
            assert torch.equal(d1, d2) or kind == "segmentation" and (d1 != d2).float().mean() < 1e-3


def test_onnx_runtime_refuses_text(text):
    from learnkit.serve.onnx_runtime import use_onnx_runtime
    with pytest.raises(ValueError, match="doesn't serve text"):
        use_onnx_runtime(text)


@pytest.mark.slow
def test_browser_shows_the_validator_message_for_an_empty_text(text, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    app, url = _launch(text)
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.get(url)
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "textarea"))
        driver.find_element(By.XPATH, "//button[normalize-space()='Submit']").click()
        WebDriverWait(driver, 60).until(lambda d: "the text is empty" in d.find_element(By.TAG_NAME, "body").text)
        driver.save_screenshot(str(tmp_path / "empty.png"))
        driver.find_element(By.CSS_SELECTOR, "textarea").send_keys("good movie")
        driver.find_element(By.XPATH, "//button[normalize-space()='Submit']").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='label-output-value']"))
        shown = driver.find_element(By.CSS_SELECTOR, "[data-testid='label-output-value']").text.strip()
    finally:
        driver.quit()
        app.close()
    expected = app_predict(task_for(text))("good movie")
    assert shown == max(expected, key=expected.get)  # the server stayed up and answers the next request
