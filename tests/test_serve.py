"""learnkit serve: a subprocess server called through gradio_client; bad input refused, server stays up."""
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
import torch
from PIL import Image

from learnkit.data.block import DataBlock
from learnkit.data.blocks import CategoryBlock
from learnkit.data.getters import get_image_files
from learnkit.data.splitters import GrandparentSplitter
from learnkit.export import load_learner
from learnkit.samples import sample_path
from learnkit.serve import predict_image
from learnkit.vision.augment import Resize
from learnkit.vision.core import ImageBlock
from learnkit.vision.learner import vision_learner

from gradio_client import Client, handle_file
from gradio_client.exceptions import ValidationError

MNIST = sample_path("mnist_tiny")


def label(p):
    """Folder name as the label."""
    return p.parent.name


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A small resnet18 export trained briefly on mnist_tiny (RGB)."""
    torch.manual_seed(0)
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=label,
                       splitter=GrandparentSplitter(), item_tfms=Resize(32))
    dls = dblock.dataloaders(MNIST, bs=16, num_workers=0)
    learn = vision_learner(dls, "resnet18", pretrained=False, path=tmp_path_factory.mktemp("learner"))
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, 1e-2)
    return learn.export()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(export):
    """`learnkit serve export` in a subprocess on a free 127.0.0.1 port; yields its URL."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.getcwd(), GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([sys.executable, "-m", "learnkit.cli", "serve", str(export), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read().decode())
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(30)


def test_predict_image_matches_learn_predict(export):
    learn = load_learner(export)
    img = get_image_files(MNIST)[0]
    top = predict_image(learn, str(img), k=2)
    lbl, _, probs = learn.predict(Image.open(img).convert("RGB"))
    assert max(top, key=top.get) == str(lbl)
    assert abs(sum(top.values()) - 1.0) < 1e-4 and abs(max(top.values()) - float(probs.max())) < 1e-5


def test_huge_image_refused_before_decoding(tmp_path, export):
    big = tmp_path / "big.png"
    Image.new("L", (20000, 20000)).save(big)  # compresses to a small file
    with pytest.raises(ValueError, match="too large|over the limit"):
        predict_image(load_learner(export), str(big))


def test_api_predicts_and_survives_bad_input(server, tmp_path):
    client = Client(server, verbose=False)
    img = get_image_files(MNIST)[0]
    res = client.predict(handle_file(str(img)), api_name="/predict")
    assert res["label"] in {"3", "7"}
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello")
    with pytest.raises(ValidationError, match="not an image PIL can read"):
        client.predict(handle_file(str(bad)), api_name="/predict")
    assert client.predict(handle_file(str(img)), api_name="/predict")["label"] == res["label"]  # still up


def _call(url: str, path) -> httpx.Response:
    """Upload ``path`` and call /predict on it over the raw HTTP API (what curl does)."""
    with open(path, "rb") as f:
        up = httpx.post(url + "gradio_api/upload", files={"files": (path.name, f)}, timeout=60)
    up.raise_for_status()
    return httpx.post(url + "gradio_api/call/predict", timeout=60,
                      json={"data": [{"path": up.json()[0], "meta": {"_type": "gradio.FileData"}}]})


def test_http_api_answers_422_for_bad_uploads_and_stays_up(server, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("hello")
    big = tmp_path / "big.png"
    Image.new("L", (20000, 20000)).save(big)  # a small file that would decode to 400M pixels
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%\xe2\xe3\n1 0 obj<<>>endobj\n")
    for path, msg in ((bad, "not an image PIL can read"), (big, "too large to serve"), (pdf, "not an image")):
        r = _call(server, path)
        assert r.status_code == 422, r.text
        assert msg in r.json()["detail"][0]["message"]
    r = httpx.post(server + "gradio_api/call/predict", json={"data": [None]}, timeout=60)
    assert r.status_code == 422 and "no image given" in r.json()["detail"][0]["message"]
    r = httpx.post(server + "gradio_api/call/predict", content=b"\x89PNG...", timeout=60,
                   headers={"content-type": "image/png"})  # an image posted raw: not the API's JSON body
    assert r.status_code == 415 and "'image/png'" in r.json()["detail"]
    r = _call(server, get_image_files(MNIST)[0])
    assert r.status_code == 200
    events = httpx.get(server + f"gradio_api/call/predict/{r.json()['event_id']}", timeout=60).text
    assert "event: complete" in events and ('"3"' in events or '"7"' in events)


@pytest.mark.slow
def test_browser_upload_shows_the_predicted_label(server, export, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    img = get_image_files(MNIST)[0]
    expected = max(predict_image(load_learner(export), str(img)).items(), key=lambda kv: kv[1])[0]
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.get(server)
        upload = WebDriverWait(driver, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "input[type=file]"))
        upload.send_keys(str(img))
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "button.primary, #component-submit"))
        driver.find_element(By.XPATH, "//button[normalize-space()='Submit']").click()
        WebDriverWait(driver, 90).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='label-output-value']"))
        shown = driver.find_element(By.CSS_SELECTOR, "[data-testid='label-output-value']").text.strip()
        driver.save_screenshot(str(tmp_path / "serve.png"))
    finally:
        driver.quit()
    assert shown == expected
    assert (tmp_path / "serve.png").stat().st_size > 1000


def test_space_folder_is_complete_pinned_and_never_overwritten(export, tmp_path):
    from importlib.metadata import version

    from learnkit.cli import main
    out = tmp_path / "space"
    assert main(["space", str(export), str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "app.py", "export.pkl", "requirements.txt"]
    assert f"gradio=={version('gradio')}" in (out / "requirements.txt").read_text().splitlines()
    readme = (out / "README.md").read_text()
    assert readme.startswith("---\n") and "sdk: gradio\n" in readme and "app_file: app.py\n" in readme
    assert (out / "export.pkl").read_bytes() == export.read_bytes()
    (out / "app.py").write_text("mine")
    with pytest.raises(FileExistsError, match="not overwriting"):
        main(["space", str(export), str(out)])
    assert (out / "app.py").read_text() == "mine"
