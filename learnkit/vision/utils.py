"""Building an image data set from the web: ``download_images`` (then ``verify_images`` to weed out bad files)."""
from __future__ import annotations

import os
import urllib.parse
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import NamedTuple

from tqdm.auto import tqdm

from ..data.external import download_url
from ..data.getters import image_extensions
from ..utils import Path

__all__ = ["ImageDownloads", "download_images"]

_MAX_LISTED = 10  # failures named in the warning (all of them are in the returned value)


class ImageDownloads(NamedTuple):
    """What ``download_images`` did: the files written, and each failed URL with the reason."""

    saved: list[Path]
    failed: list[tuple[str, str]]

    def __repr__(self) -> str:
        return f"ImageDownloads({len(self.saved)} saved, {len(self.failed)} failed)"


def _image_suffix(url: str) -> str:
    """The image extension of the URL's path (``.png``, ``.jpeg``, ...), else ``.jpg``."""
    suffix = os.path.splitext(urllib.parse.unquote(urllib.parse.urlsplit(url).path))[1].lower()
    return suffix if suffix in image_extensions else ".jpg"


def _next_index(dest: Path) -> int:
    """One past the highest number naming a file in ``dest`` (``00000041.jpg`` -> 42), 0 if there is none."""
    nums = [int(p.stem) for p in dest.iterdir()
            if p.stem.isascii() and p.stem.isdigit() and not p.name.startswith(".")]
    return max(nums) + 1 if nums else 0


def download_images(dest: str | os.PathLike, url_file: str | os.PathLike | None = None, urls: list[str] | None = None,
                    max_pics: int = 1000, n_workers: int = 8, timeout: float = 4) -> ImageDownloads:
    """Download up to ``max_pics`` images from ``urls`` (or the lines of ``url_file``) into ``dest``, in parallel.

    The n-th URL is saved as ``dest/{start + n:08d}{ext}`` (``ext`` from the URL, ``.jpg`` if it has no image one),
    so ``get_image_files(dest)`` finds them; ``start`` is 0 in an empty folder, else one past the highest-numbered
    file already there, so calling it again on the same ``dest`` adds images and never overwrites earlier ones.
    Each file is written whole or not at all. Failed URLs (dead links, timeouts after ``timeout`` s) are skipped,
    listed in a warning and in the returned ``ImageDownloads.failed``.
    Some "images" may still be web pages: run ``verify_images(get_image_files(dest))`` afterwards.
    """
    if urls is None:
        if url_file is None:
            raise ValueError("download_images needs urls=[...] or url_file= (a text file with one URL a line).")
        urls = Path(url_file).read_text(encoding="utf-8").splitlines()
    elif isinstance(urls, str):
        raise TypeError("download_images(urls=...) takes a list of URLs, not one string: wrap it in a list.")
    urls = [u.strip() for u in urls if u and u.strip()][:max_pics]
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)

    start = _next_index(dest)

    def fetch(i: int, url: str) -> Path:
        """Download the ``i``-th URL to its numbered file."""
        return download_url(url, dest / f"{start + i:08d}{_image_suffix(url)}", show_progress=False, timeout=timeout)

    saved: dict[int, Path] = {}
    failed: dict[int, tuple[str, str]] = {}
    with ThreadPoolExecutor(max_workers=max(1, n_workers)) as ex:
        futures = {ex.submit(fetch, i, u): (i, u) for i, u in enumerate(urls)}
        for fut in tqdm(as_completed(futures), total=len(futures), desc="images", unit="img", leave=False):
            i, u = futures[fut]
            try:
                saved[i] = fut.result()
            except OSError as e:  # DownloadError (an OSError) for a bad URL: it must not stop the others
                failed[i] = (u, str(e))
    res = ImageDownloads([saved[i] for i in sorted(saved)], [failed[i] for i in sorted(failed)])
    if res.failed:
        listed = "\n".join(f"  {u}: {why}" for u, why in res.failed[:_MAX_LISTED])
        more = f"\n  ... and {len(res.failed) - _MAX_LISTED} more" if len(res.failed) > _MAX_LISTED else ""
        warnings.warn(f"download_images: {len(res.failed)} of {len(urls)} URLs failed and were skipped "
                      f"({len(res.saved)} images saved in {dest}; the list is in the returned value's .failed):\n"
                      f"{listed}{more}", stacklevel=2)
    return res
