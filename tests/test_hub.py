"""Sharing on the Hugging Face Hub (issue 25): save_pretrained, push_to_hub, load_learner('hf://...').

The Hub is a local stand-in on 127.0.0.1 that speaks the part of the Hub's HTTP API huggingface_hub's client uses
(repo create, branch create, preupload, ndjson commit, resolve downloads with ETag / X-Repo-Commit /
Content-Length, the X-Error-Code 404s); HF_ENDPOINT points learnkit at it, and the real client does the rest.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pytest
import torch

pytest.importorskip("transformers")  # in the `test` extra: installed in CI
huggingface_hub = pytest.importorskip("huggingface_hub")
from datasets import DatasetDict  # noqa: E402
from huggingface_hub import constants  # noqa: E402
from safetensors.torch import load as st_load  # noqa: E402

from learnkit.export import load_learner  # noqa: E402
from learnkit.hub import CARD_NAME, CONFIG_NAME, EXPORT_NAME, HubError  # noqa: E402
from learnkit.learner import Learner  # noqa: E402
from learnkit.metrics import accuracy  # noqa: E402
from learnkit.vision.all import ImageDataLoaders  # noqa: E402
from test_hf_data import NAMES, _image_ds, _pictures, tiny_vit  # noqa: E402

TOKEN = "hf_test_write_token"
API = re.compile(r"^/api/models/([^/]+/[^/]+)/(preupload|commit|branch)/(.+)$")
INFO = re.compile(r"^/api/models/([^/]+/[^/]+)$")
RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class FakeHub:
    """The Hub's API in memory: ``repos[repo_id][branch] = commit sha``, ``commits[sha] = {file: bytes}``.

    ``requests`` records every request as ``(method, path, body)``; ``unknown`` those it has no route for.
    """

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, str]] = {}
        self.commits: dict[str, dict[str, bytes]] = {}
        self.created: list[dict] = []
        self.requests: list[tuple[str, str, bytes]] = []
        self.unknown: list[str] = []
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub.handle(self, "HEAD")

            def do_GET(self):
                hub.handle(self, "GET")

            def do_POST(self):
                hub.handle(self, "POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- replies

    @staticmethod
    def reply(h, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
        h.send_response(status)
        for k, v in {"Content-Length": str(len(body)), **(headers or {})}.items():
            h.send_header(k, v)
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def json(self, h, status: int, obj: dict, headers: dict | None = None) -> None:
        self.reply(h, status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

    def error(self, h, code: str, head: bool = False, headers: dict | None = None) -> None:
        body = json.dumps({"error": code}).encode()
        self.reply(h, 404, body, {"X-Error-Code": code, "Content-Type": "application/json", **(headers or {})},
                   head=head)

    def authorized(self, h) -> bool:
        if h.headers.get("authorization") == f"Bearer {TOKEN}":
            return True
        self.json(h, 401, {"error": "Invalid credentials in Authorization header"})
        return False

    # -- routes

    def handle(self, h, method: str) -> None:
        path = h.path.split("?")[0]
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0)) if method == "POST" else b""
        with self.lock:
            self.requests.append((method, path, body))
            if method == "POST" and path == "/api/repos/create":
                return self.create(h, json.loads(body))
            if method == "POST" and path == "/api/validate-yaml":
                return self.json(h, 200, {})
            if method == "POST" and (m := API.match(path)):
                repo, what, rev = m.group(1), m.group(2), unquote(m.group(3))
                if not self.authorized(h):
                    return None
                if repo not in self.repos:
                    return self.error(h, "RepoNotFound")
                return getattr(self, what)(h, repo, rev, body)
            if method == "GET" and (m := INFO.match(path)):  # repo_info: create_repo(exist_ok=True) asks on a 401
                if m.group(1) not in self.repos:
                    return self.error(h, "RepoNotFound")
                return self.json(h, 200, {"id": m.group(1), "sha": self.repos[m.group(1)]["main"]})
            if method in ("HEAD", "GET") and (m := RESOLVE.match(path)):
                return self.resolve(h, m.group(1), unquote(m.group(2)), unquote(m.group(3)), head=method == "HEAD")
            self.unknown.append(f"{method} {path}")
            return self.reply(h, 404, b"not found", head=method == "HEAD")

    def create(self, h, payload: dict) -> None:
        if not self.authorized(h):
            return
        self.created.append(payload)
        repo = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        if repo in self.repos:
            return self.json(h, 409, {"error": "You already created this model repo", "url": f"{self.url}/{repo}"})
        sha = hashlib.sha1(f"init {repo}".encode()).hexdigest()
        self.commits[sha] = {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}
        self.repos[repo] = {"main": sha}
        self.json(h, 200, {"url": f"{self.url}/{repo}"})

    def preupload(self, h, repo: str, rev: str, body: bytes) -> None:
        files = json.loads(body)["files"]
        self.json(h, 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                     for f in files]})

    def branch(self, h, repo: str, rev: str, body: bytes) -> None:
        if rev in self.repos[repo]:
            return self.json(h, 409, {"error": "Reference already exists"})
        start = json.loads(body or b"{}").get("startingPoint", "main")
        self.repos[repo][rev] = self.repos[repo][start]
        self.json(h, 200, {})

    def commit(self, h, repo: str, rev: str, body: bytes) -> None:
        if rev not in self.repos[repo]:
            return self.error(h, "RevisionNotFound")
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        files = dict(self.commits[self.repos[repo][rev]])
        for item in lines:
            if item["key"] == "file":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
        sha = hashlib.sha1(body + rev.encode()).hexdigest()
        self.commits[sha] = files
        self.repos[repo][rev] = sha
        self.json(h, 200, {"commitUrl": f"{self.url}/{repo}/commit/{sha}", "commitOid": sha,
                           "pullRequestUrl": None})

    def resolve(self, h, repo: str, rev: str, filename: str, head: bool) -> None:
        if repo not in self.repos:
            return self.error(h, "RepoNotFound", head=head)
        sha = self.repos[repo].get(rev) or (rev if rev in self.commits else None)
        if sha is None:
            return self.error(h, "RevisionNotFound", head=head)
        data = self.commits[sha].get(filename)
        if data is None:
            return self.error(h, "EntryNotFound", head=head, headers={"X-Repo-Commit": sha})
        etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # a git blob's id, as the Hub sends
        self.reply(h, 200, data, {"ETag": f'"{etag}"', "X-Repo-Commit": sha,
                                  "Content-Type": "application/octet-stream"}, head=head)

    # -- what the tests read

    def commit_bodies(self) -> list[list[dict]]:
        """Each commit request's ndjson lines."""
        return [[json.loads(x) for x in body.decode().splitlines() if x.strip()]
                for m, p, body in self.requests if m == "POST" and "/commit/" in p]


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The stand-in Hub at HF_ENDPOINT, online mode on, a fresh huggingface_hub cache under tmp_path."""
    s = FakeHub()
    monkeypatch.setenv("HF_ENDPOINT", s.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # conftest sets HF_HUB_OFFLINE=1 for every other test
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)  # no agent registry look-up on huggingface.co
    yield s
    s.close()
    assert s.unknown == [], f"requests the stand-in has no route for: {s.unknown}"


def _learner(tmp_path, seed: int = 0, epochs: int = 1) -> Learner:
    dls = ImageDataLoaders.from_hf(DatasetDict(train=_image_ds(16), validation=_image_ds(8, seed=1)),
                                   image_col="img", label_col="labels", bs=8, num_workers=0)
    torch.manual_seed(seed)
    learn = Learner(dls, tiny_vit(), metrics=accuracy, path=tmp_path)
    learn.fit(epochs, 1e-3)
    return learn


def _preds(learn: Learner) -> torch.Tensor:
    return learn.get_preds(dl=learn.dls.test_dl(_pictures(8, seed=2)[0]))[0]


def _private(payload: dict) -> bool:
    """The create request's visibility (huggingface_hub sends "visibility"; before 1.0 it sent "private")."""
    return payload.get("visibility", "private" if payload.get("private") else "public") == "private"


def _export_parts(blob: bytes) -> tuple[dict, dict]:
    """An export's manifest and tensors as plain values (its header's key order is not fixed)."""
    n = int.from_bytes(blob[:8], "little")
    manifest = json.loads(json.loads(blob[8:8 + n])["__metadata__"]["manifest"])
    return manifest, {k: v.tolist() for k, v in st_load(blob).items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return _learner(tmp_path_factory.mktemp("hub"), epochs=2)


def test_save_pretrained_writes_export_card_and_config_and_loads_back(trained, tmp_path, monkeypatch) -> None:
    folder = trained.save_pretrained(tmp_path / "shared", repo_id="me/tiny-vit")
    assert sorted(p.name for p in folder.iterdir()) == sorted([EXPORT_NAME, CARD_NAME, CONFIG_NAME])
    config = json.loads((folder / CONFIG_NAME).read_text())
    assert config["library_name"] == "learnkit" and config["task"] == "image-classification"
    assert config["vocab"] == NAMES and config["export"] == EXPORT_NAME
    back = load_learner(folder)  # the folder: config.json names the export
    assert back.dls.vocab == NAMES and torch.allclose(_preds(back), _preds(trained), atol=1e-6)
    assert back.path == folder
    monkeypatch.chdir(tmp_path)  # a relative folder is under the working folder, not learn.path
    rel = trained.save_pretrained("rel")
    assert str(rel) == "rel" and (tmp_path / "rel" / EXPORT_NAME).exists() and load_learner("rel").dls.vocab == NAMES


def test_model_card_has_front_matter_metrics_vocab_data_recipe_and_usage(trained, tmp_path) -> None:
    card = (trained.save_pretrained(tmp_path / "s", repo_id="me/tiny-vit") / CARD_NAME).read_text()
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert "library_name: learnkit" in front and "pipeline_tag: image-classification" in front
    assert '- "learnkit"' in front and '- "accuracy"' in front
    logs = trained.recorder.logs
    assert set(logs) == {"train_loss", "valid_loss", "accuracy"}
    row = "| " + " | ".join(f"{v:.4f}" for v in logs.values()) + " |"
    assert "| train_loss | valid_loss | accuracy |" in body and row in body  # the last epoch's values
    assert "2 classes, in the model's output order: `zebra`, `apple`." in body  # the ClassLabel's order
    assert "- train: 16 items" in body and "- valid: 8 items" in body
    assert "ImageBlock -> CategoryBlock" in body and "ViTForImageClassification" in body
    assert "- epochs (last fit): 2" in body and f"{max(trained.recorder.lrs):.3g}" in body
    assert "load_learner('hf://me/tiny-vit')" in body


def test_save_pretrained_never_replaces_files_it_did_not_write(trained, tmp_path) -> None:
    folder = tmp_path / "vit"
    tiny_vit().save_pretrained(folder)  # a transformers model: its own config.json
    before = (folder / "config.json").read_bytes()
    with pytest.raises(FileExistsError, match="config.json there was not written by learnkit"):
        trained.save_pretrained(folder)
    assert (folder / "config.json").read_bytes() == before and not (folder / EXPORT_NAME).exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    trained.save_pretrained(mine)
    trained.save_pretrained(mine)  # its own files are replaced, the user's stay
    assert (mine / "notes.txt").read_text() == "keep me"


def test_push_uploads_the_three_files_and_hf_load_gives_the_same_predictions(trained, hub, tmp_path) -> None:
    info = trained.push_to_hub("me/tiny-vit", token=TOKEN, commit_message="first model")
    sha = hub.repos["me/tiny-vit"]["main"]
    assert info.oid == sha and info.commit_url == f"{hub.url}/me/tiny-vit/commit/{sha}"
    (created,) = hub.created
    assert (created["organization"], created["name"], _private(created)) == ("me", "tiny-vit", False)
    (header, *files), = hub.commit_bodies()
    assert header["value"]["summary"] == "first model"
    sent = {f["value"]["path"]: base64.b64decode(f["value"]["content"]) for f in files}
    assert sorted(sent) == sorted([EXPORT_NAME, CARD_NAME, CONFIG_NAME])
    local = trained.save_pretrained(tmp_path / "same", repo_id="me/tiny-vit")
    assert sent[CARD_NAME] == (local / CARD_NAME).read_bytes()
    assert sent[CONFIG_NAME] == (local / CONFIG_NAME).read_bytes()
    assert _export_parts(sent[EXPORT_NAME]) == _export_parts((local / EXPORT_NAME).read_bytes())  # the export

    back = load_learner("hf://me/tiny-vit")
    assert back.dls.vocab == NAMES and torch.allclose(_preds(back), _preds(trained), atol=1e-6)
    assert str(constants.HF_HUB_CACHE) not in str(back.path)  # later exports never write into the cache
    downloads = [p for m, p, _ in hub.requests if m == "GET" and "/resolve/" in p]
    assert downloads == [f"/me/tiny-vit/resolve/main/{CONFIG_NAME}", f"/me/tiny-vit/resolve/main/{EXPORT_NAME}"]

    # the Hub gone (no network): the cached copy loads; and so it does with HF_HUB_OFFLINE=1, with no request at all
    hub.close()
    n = len(hub.requests)
    assert torch.allclose(_preds(load_learner("hf://me/tiny-vit")), _preds(trained), atol=1e-6)
    constants.HF_HUB_OFFLINE = True  # restored by the fixture's monkeypatch
    again = load_learner("hf://me/tiny-vit")
    assert len(hub.requests) == n and torch.allclose(_preds(again), _preds(trained), atol=1e-6)


def test_revision_picks_the_branch_pushed_to(trained, hub, tmp_path) -> None:
    other = _learner(tmp_path, seed=1)
    trained.push_to_hub("me/tiny-vit", token=TOKEN)
    other.push_to_hub("me/tiny-vit", token=TOKEN, revision="v2", private=True)
    assert set(hub.repos["me/tiny-vit"]) == {"main", "v2"}
    assert [_private(c) for c in hub.created] == [False, True]
    main, v2 = load_learner("hf://me/tiny-vit"), load_learner("hf://me/tiny-vit", revision="v2")
    assert torch.allclose(_preds(main), _preds(trained), atol=1e-6)
    assert torch.allclose(_preds(v2), _preds(other), atol=1e-6)
    assert not torch.allclose(_preds(main), _preds(v2), atol=1e-3)
    commit = hub.repos["me/tiny-vit"]["v2"]  # a commit hash works as a revision too
    assert torch.allclose(_preds(load_learner("hf://me/tiny-vit", revision=commit)), _preds(other), atol=1e-6)
    with pytest.raises(HubError, match=r"hf://me/tiny-vit \(revision 'nope'\): the repo has no revision 'nope'"):
        load_learner("hf://me/tiny-vit", revision="nope")


def test_a_missing_repo_or_file_is_a_clear_error(hub, trained) -> None:
    with pytest.raises(HubError, match=r"hf://me/nothing-here: no such model repo on the Hub .*private.*"
                                       r"save_pretrained"):
        load_learner("hf://me/nothing-here")
    with pytest.raises(HubError, match="no such model repo"):
        load_learner("hf://me/nothing-here", revision="v1")
    hub.repos["me/empty"] = {"main": "0" * 40}
    hub.commits["0" * 40] = {"README.md": b"# nothing\n"}
    with pytest.raises(HubError, match=f"hf://me/empty has no {CONFIG_NAME}: it was not shared with learnkit"):
        load_learner("hf://me/empty")
    hub.commits["0" * 40][CONFIG_NAME] = json.dumps({"architectures": ["ViTForImageClassification"]}).encode()
    with pytest.raises(HubError, match="is not a learnkit model.*vision_learner"):
        load_learner("hf://me/empty")
    with pytest.raises(HubError, match="refused the token.*hf auth login"):
        trained.push_to_hub("me/tiny-vit", token="hf_wrong")
    assert "me/tiny-vit" not in hub.repos


def test_offline_with_an_empty_cache_says_how_to_work(trained, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set and huggingface_hub's cache has no config.json.*"
                                       "save_pretrained"):
        load_learner("hf://me/tiny-vit")
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set"):
        trained.push_to_hub("me/tiny-vit", token=TOKEN)  # refused before anything is written or sent


def test_local_revision_and_non_learnkit_folders_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="revision= is for Hub repos"):
        load_learner(tmp_path, revision="v2")
    (tmp_path / "config.json").write_text(json.dumps({"library_name": "learnkit", "export": "../../etc/passwd"}))
    with pytest.raises(HubError, match="not a plain file name"):
        load_learner(tmp_path)
