"""download_images against a real HTTP server on 127.0.0.1 (started in the test): naming, dead URLs, corrupt files."""
import io
import socket
import time

import numpy as np
import pytest
from PIL import Image

from learnkit.data.getters import get_image_files
from learnkit.vision.core import verify_images
from learnkit.vision.utils import ImageDownloads, download_images


def _img(fmt: str, seed: int) -> bytes:
    arr = (np.random.default_rng(seed).random((48, 64, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_images_names_by_index_skips_dead_urls_and_verify_finds_the_corrupt_one(server, tmp_path):
    jpg, png = _img("JPEG", 0), _img("PNG", 1)
    server.routes.update({"/a.jpg": jpg, "/b.PNG": png, "/c": jpg, "/d.jpeg": jpg[: len(jpg) // 2],
                          "/e.png": png})
    dead = [server.url("/gone.jpg"), f"http://127.0.0.1:{_closed_port()}/x.jpg"]
    urls = [server.url("/a.jpg"), dead[0], server.url("/b.PNG"), server.url("/c"),
            server.url("/d.jpeg"), dead[1], server.url("/e.png?w=64"), "   "]
    dest = tmp_path / "bears" / "grizzly"
    with pytest.warns(UserWarning, match=r"2 of 7 URLs failed") as rec:
        res = download_images(dest, urls=urls, n_workers=3)
    msg = str(rec[0].message)
    assert all(u in msg for u in dead) and "HTTP 404" in msg and "No network here" in msg
    assert isinstance(res, ImageDownloads) and repr(res) == "ImageDownloads(5 saved, 2 failed)"
    assert [u for u, _ in res.failed] == dead
    names = ["00000000.jpg", "00000002.png", "00000003.jpg", "00000004.jpeg", "00000006.png"]
    assert [p.name for p in res.saved] == names  # index in the list (gaps where URLs failed), URL's extension
    assert [p.name for p in get_image_files(dest)] == names and [p.name for p in res.saved[0].parent.ls()] == names  # no temp files
    assert (dest / "00000000.jpg").read_bytes() == jpg and (dest / "00000006.png").read_bytes() == png
    assert verify_images(get_image_files(dest)) == [dest / "00000004.jpeg"]  # the half-sent JPEG


def test_url_file_and_max_pics(server, tmp_path):
    server.routes.update({f"/{i}.png": _img("PNG", i) for i in range(5)})
    url_file = tmp_path / "urls.txt"
    url_file.write_text("\n".join(server.url(f"/{i}.png") for i in range(5)) + "\n\n")
    res = download_images(tmp_path / "out", url_file=url_file, max_pics=3)
    assert [p.name for p in res.saved] == ["00000000.png", "00000001.png", "00000002.png"] and res.failed == []
    assert sum(server.hits.values()) == 3  # max_pics: the other URLs are never requested
    assert (tmp_path / "out" / "00000001.png").read_bytes() == _img("PNG", 1)
    with pytest.raises(ValueError, match="urls=.*url_file="):
        download_images(tmp_path / "out")


def test_a_stalled_server_costs_only_the_timeout(server, tmp_path):
    server.routes.update({"/slow.jpg": ("stall", b""), "/ok.jpg": _img("JPEG", 3)})
    t0 = time.perf_counter()
    with pytest.warns(UserWarning, match=r"(?s)1 of 2 URLs failed.*Timed out after 0.3 s waiting for http://127\.0\.0\.1"):
        res = download_images(tmp_path, urls=[server.url("/slow.jpg"), server.url("/ok.jpg")], timeout=0.3)
    assert time.perf_counter() - t0 < 5
    assert [p.name for p in res.saved] == ["00000001.jpg"] and res.failed[0][0] == server.url("/slow.jpg")
    assert [p.name for p in tmp_path.iterdir()] == ["00000001.jpg"]


def test_downloading_again_into_the_same_folder_adds_files_and_overwrites_none(server, tmp_path):
    imgs = {f"/{i}.jpg": _img("JPEG", 10 + i) for i in range(5)}
    server.routes.update(imgs)
    dest = tmp_path / "bears"
    first = download_images(dest, urls=[server.url("/0.jpg"), server.url("/1.jpg")])
    (dest / "notes.txt").write_text("not numbered")  # other files are left alone and don't count
    second = download_images(dest, urls=[server.url("/2.jpg"), server.url("/3.jpg"), server.url("/4.jpg")])
    third = download_images(dest, urls=[server.url("/0.jpg")])
    assert [p.name for p in first.saved] == ["00000000.jpg", "00000001.jpg"]
    assert [p.name for p in second.saved] == ["00000002.jpg", "00000003.jpg", "00000004.jpg"]
    assert [p.name for p in third.saved] == ["00000005.jpg"]
    assert [p.name for p in get_image_files(dest)] == [f"{i:08d}.jpg" for i in range(6)]
    for i in range(5):  # the earlier downloads are intact
        assert (dest / f"{i:08d}.jpg").read_bytes() == imgs[f"/{i}.jpg"]
    assert (dest / "notes.txt").read_text() == "not numbered"
