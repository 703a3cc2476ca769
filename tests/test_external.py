"""untar_data / download_url against a real HTTP server on 127.0.0.1 (started in the test), and the shipped samples."""
import hashlib
import io
import socket
import tarfile
import time
import zipfile

import pytest

from learnkit.data import external
from learnkit.data.external import DownloadError, URLs, download_url, learnkit_home, untar_data
from learnkit.samples import SAMPLES, Sample, sample_path
from learnkit.utils import Path


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "lkhome"
    monkeypatch.setenv("LEARNKIT_HOME", str(h))
    return h


def _tgz(files: dict, fmt: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=fmt) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(files: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tree(root) -> dict:
    """{relative posix path: bytes} of every file under ``root``."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def _leftovers(root) -> list:
    """Temp files/folders (hidden .part/.extracting/.old/.copying) anywhere under ``root``; lock files are fine."""
    return [p for p in Path(root).rglob(".*") if not p.name.endswith(".lock")]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MNIST = {"mnist_tiny/labels.csv": b"name,label\ntrain/3/a.png,3\n", "mnist_tiny/train/3/a.png": b"\x89PNG-ish",
         "mnist_tiny/train/7/b.png": b"seven"}


def test_untar_data_downloads_once_extracts_and_force_downloads_again(server, home):
    server.routes["/fast-ai-sample/mnist_tiny.tgz"] = _tgz(MNIST)
    url = server.url("/fast-ai-sample/mnist_tiny.tgz")
    path = untar_data(url)
    assert isinstance(path, Path) and path == home.absolute() / "data" / "mnist_tiny" == learnkit_home() / "data" / "mnist_tiny"
    assert [p.name for p in path.ls()] == ["labels.csv", "train"]  # the single top folder became the data folder
    assert _tree(path) == {k.removeprefix("mnist_tiny/"): v for k, v in MNIST.items()}
    assert (home / "archive" / "mnist_tiny.tgz").read_bytes() == server.routes["/fast-ai-sample/mnist_tiny.tgz"]
    assert server.hits["/fast-ai-sample/mnist_tiny.tgz"] == 1

    (path / "mine.txt").write_text("kept")
    assert untar_data(url) == path and server.hits["/fast-ai-sample/mnist_tiny.tgz"] == 1  # cached: no request
    assert (path / "mine.txt").read_text() == "kept"

    server.routes["/fast-ai-sample/mnist_tiny.tgz"] = _tgz({"mnist_tiny/labels.csv": b"v2"})
    assert untar_data(url, force_download=True) == path
    assert server.hits["/fast-ai-sample/mnist_tiny.tgz"] == 2
    assert _tree(path) == {"labels.csv": b"v2"}  # replaced whole, old files gone
    assert _leftovers(home) == []


def test_zip_several_top_items_and_folder_overrides(server, home, tmp_path):
    server.routes["/datasets/movielens/ml-100k.zip"] = _zip({"ml-100k/u.data": b"1\t2\t5\t0\n"})
    server.routes["/multi.tar.gz"] = _tgz({"a.csv": b"a", "b/c.txt": b"c"})
    arch, data = tmp_path / "my_arch", tmp_path / "my_data"
    p = untar_data(server.url("/datasets/movielens/ml-100k.zip"), archive=arch, data=data)
    assert p == data / "ml-100k" and _tree(p) == {"u.data": b"1\t2\t5\t0\n"}
    assert (arch / "ml-100k.zip").is_file() and not home.exists()  # nothing under LEARNKIT_HOME
    m = untar_data(server.url("/multi.tar.gz"), archive=arch, data=data)
    assert m == data / "multi" and _tree(m) == {"a.csv": b"a", "b/c.txt": b"c"}


def test_http_404_names_the_url_and_leaves_nothing(server, home):
    url = server.url("/fast-ai-imageclas/nope.tgz")
    with pytest.raises(DownloadError, match=r"nope\.tgz: the server answered HTTP 404") as e:
        untar_data(url)
    assert url in str(e.value) and str(home.absolute() / "archive" / "nope.tgz") in str(e.value)
    assert not (home / "archive" / "nope.tgz").exists() and not (home / "data" / "nope").exists()
    assert _leftovers(home) == []


def test_connection_cut_short_keeps_nothing_and_the_next_call_works(server, home):
    good = _tgz(MNIST)
    server.routes["/mnist_tiny.tgz"] = ("short", good)
    url = server.url("/mnist_tiny.tgz")
    with pytest.raises(DownloadError, match=rf"download of {url} stopped after {len(good) // 2:,} of {len(good):,} bytes"):
        untar_data(url)
    assert not (home / "archive" / "mnist_tiny.tgz").exists() and not (home / "data" / "mnist_tiny").exists()
    assert _leftovers(home) == []
    server.routes["/mnist_tiny.tgz"] = good
    assert _tree(untar_data(url))["labels.csv"] == MNIST["mnist_tiny/labels.csv"]
    assert server.hits["/mnist_tiny.tgz"] == 2


def test_cut_off_archive_is_moved_aside_and_downloaded_afresh(server, home):
    good = _tgz({f"mnist_tiny/{i}.bin": bytes(range(256)) * 40 for i in range(5)})
    server.routes["/mnist_tiny.tgz"] = good[: len(good) // 2]  # a whole HTTP reply of a cut-off .tgz
    url = server.url("/mnist_tiny.tgz")
    with pytest.raises(DownloadError, match=rf"archive of {url} is truncated or corrupt") as e:
        untar_data(url)
    assert "Run untar_data again" in str(e.value)
    assert not (home / "archive" / "mnist_tiny.tgz").exists()  # a later call won't take it for complete
    assert (home / "archive" / "mnist_tiny.tgz.corrupt").read_bytes() == good[: len(good) // 2]
    assert not (home / "data" / "mnist_tiny").exists() and _leftovers(home) == []
    server.routes["/mnist_tiny.tgz"] = good
    assert len(untar_data(url).ls()) == 5 and server.hits["/mnist_tiny.tgz"] == 2


def test_known_size_and_md5_are_checked(server, home, monkeypatch):
    body = _tgz(MNIST)
    server.routes["/mnist_tiny.tgz"] = body
    url = server.url("/mnist_tiny.tgz")
    monkeypatch.setitem(external.DOWNLOAD_CHECKS, url, (len(body) + 1, hashlib.md5(body).hexdigest()))
    with pytest.raises(DownloadError, match=rf"downloaded from {url} is not the expected one \({len(body):,} bytes"):
        untar_data(url)
    assert list((home / "archive").iterdir()) == [home / "archive" / ".mnist_tiny.tgz.lock"]
    monkeypatch.setitem(external.DOWNLOAD_CHECKS, url, (len(body), "0" * 32))
    with pytest.raises(DownloadError, match="md5 of the first MiB"):
        untar_data(url)
    monkeypatch.setitem(external.DOWNLOAD_CHECKS, url, (len(body), hashlib.md5(body).hexdigest()))
    assert _tree(untar_data(url)) == {k.removeprefix("mnist_tiny/"): v for k, v in MNIST.items()}
    # fastai's table is shipped and covers the lesson data sets
    assert external.DOWNLOAD_CHECKS[URLs.PETS] == (811706944, "e4db5c768afd933bb91f5f594d7417a4")


def test_no_network_error_says_where_to_put_the_archive_and_a_hand_placed_one_is_used(home):
    url = f"http://127.0.0.1:{_closed_port()}/fast-ai-sample/mnist_tiny.tgz"
    with pytest.raises(DownloadError, match="No network here") as e:
        untar_data(url)
    where = home.absolute() / "archive" / "mnist_tiny.tgz"
    assert url in str(e.value) and f"put it at {where}" in str(e.value)
    where.write_bytes(_tgz(MNIST))  # what the message asks for
    assert _tree(untar_data(url))["train/7/b.png"] == b"seven"


def test_stalled_server_times_out_naming_the_url(server, home, tmp_path):
    server.routes["/slow.tgz"] = ("stall", b"")
    url = server.url("/slow.tgz")
    t0 = time.perf_counter()
    with pytest.raises(DownloadError, match=rf"Timed out after 0.3 s waiting for {url}"):
        untar_data(url, timeout=0.3)
    with pytest.raises(DownloadError, match=rf"Timed out after 0.3 s waiting for {url}"):
        download_url(url, tmp_path, show_progress=False, timeout=0.3)
    assert time.perf_counter() - t0 < 5
    assert not (home / "archive" / "slow.tgz").exists() and _leftovers(tmp_path) == []


def test_download_url_to_a_folder_or_a_file(server, tmp_path):
    server.routes["/img/cat%20one.png"] = b"pixels"
    got = download_url(server.url("/img/cat%20one.png?size=big"), tmp_path, show_progress=False)
    assert isinstance(got, Path) and got == tmp_path / "cat one.png" and got.read_bytes() == b"pixels"
    got2 = download_url(server.url("/img/cat%20one.png"), tmp_path / "sub" / "x.png", show_progress=False)
    assert got2 == tmp_path / "sub" / "x.png" and got2.read_bytes() == b"pixels"
    assert [p.name for p in got.parent.ls()] == ["cat one.png", "sub"]  # returned paths have .ls()
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_url(server.url("/img/gone.png"), tmp_path / "gone.png", show_progress=False)
    assert not (tmp_path / "gone.png").exists()


def test_unsupported_archive_and_unsafe_tar_are_refused(server, home):
    with pytest.raises(ValueError, match=r"can't extract 'https://x/y/data\.csv'.*download_url"):
        untar_data("https://x/y/data.csv")
    server.routes["/evil.tgz"] = _tgz({"../evil.txt": b"x"})
    with pytest.raises(DownloadError, match="truncated or corrupt"):
        untar_data(server.url("/evil.tgz"))
    assert not (home / "evil.txt").exists() and not (home / "data" / "evil").exists()


def test_urls_are_fastais_public_addresses(home):
    assert URLs.PETS == "https://s3.amazonaws.com/fast-ai-imageclas/oxford-iiit-pet.tgz"
    assert URLs.IMAGENETTE_160 == "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz"
    assert URLs.MNIST_SAMPLE == "https://s3.amazonaws.com/fast-ai-sample/mnist_sample.tgz"
    assert URLs.CAMVID == "https://s3.amazonaws.com/fast-ai-imagelocal/camvid.tgz"
    assert URLs.IMDB == "https://s3.amazonaws.com/fast-ai-nlp/imdb.tgz"
    assert URLs.ML_100k == "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    assert URLs.path(URLs.PETS) == home.absolute() / "archive" / "oxford-iiit-pet.tgz"
    assert URLs.path(URLs.ML_100k, c_key="data") == home.absolute() / "data" / "ml-100k"


def test_untar_data_of_a_shipped_sample_copies_it_once(home, tmp_path):
    assert isinstance(SAMPLES.MNIST_TINY, Sample) and SAMPLES.MNIST_TINY == "mnist_tiny"
    assert sample_path(SAMPLES.MNIST_TINY) == sample_path("mnist_tiny") == SAMPLES.MNIST_TINY.path
    src = sample_path("mnist_tiny")
    p = untar_data(SAMPLES.MNIST_TINY)
    assert isinstance(p, Path) and p == home.absolute() / "data" / "learnkit_samples" / "mnist_tiny"
    assert _tree(p) == _tree(src) and [q.name for q in p.ls()] == ["labels.csv", "train", "valid"]
    (p / "export.pkl").write_bytes(b"model")  # lessons write next to their data: never into the package
    assert not (src / "export.pkl").exists()
    assert untar_data(SAMPLES.MNIST_TINY) == p and (p / "export.pkl").exists()  # not copied again
    assert untar_data(SAMPLES.MNIST_TINY, force_download=True) == p and not (p / "export.pkl").exists()
    assert untar_data(SAMPLES.ML_SAMPLE, data=tmp_path / "d") == tmp_path / "d" / "learnkit_samples" / "movie_lens_sample"
    assert _leftovers(home) == []
    with pytest.raises(ValueError, match="No shipped sample named 'pets'.*SAMPLES.IMAGENETTE_TINY"):
        sample_path("pets")
