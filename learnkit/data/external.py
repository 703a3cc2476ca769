"""Getting data: ``URLs`` of fastai's data sets, ``untar_data`` (download, check, extract, cache) and ``download_url``.

The cache lives under ``$LEARNKIT_HOME`` (default ``~/.learnkit``): archives in ``archive/``, extracted data
sets in ``data/<archive name without extension>``. Every step is all-or-nothing: a download streams into a
hidden ``.part`` file renamed only when complete (and its size, and for fastai's archives the md5 of its first
MiB, checked), an archive is extracted into a hidden folder renamed only when complete, so an interrupted
call never leaves something a later call would take for finished. Errors name the URL and say what to do.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import lzma
import os
import shutil
import socket
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
import zlib
from collections.abc import Iterator

from tqdm.auto import tqdm

from ..samples import Sample, sample_path
from ..utils import Path
from .download_checks import DOWNLOAD_CHECKS

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process lock
    fcntl = None

__all__ = ["DownloadError", "URLs", "download_url", "learnkit_home", "untar_data"]

_CHUNK = 1 << 16
_USER_AGENT = "Mozilla/5.0 (compatible; learnkit)"  # some image hosts refuse urllib's default agent
_ARCHIVE_EXTS = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar", ".zip")


class DownloadError(OSError):
    """A download or extraction failed; the message names the URL and what to do."""


def learnkit_home() -> Path:
    """The cache root: ``$LEARNKIT_HOME``, default ``~/.learnkit`` (``archive/`` and ``data/`` live under it)."""
    return Path(os.environ.get("LEARNKIT_HOME") or "~/.learnkit").expanduser().absolute()


class URLs:
    """Addresses of the data sets (and a few pretrained weights) fastai's lessons use: ``untar_data(URLs.PETS)``."""

    GOOGLE = "https://storage.googleapis.com/"
    S3 = "https://s3.amazonaws.com/fast-ai-"
    URL = f"{S3}sample/"
    S3_IMAGE = f"{S3}imageclas/"
    S3_IMAGELOC = f"{S3}imagelocal/"
    S3_AUDI = f"{S3}audio/"
    S3_NLP = f"{S3}nlp/"
    S3_COCO = f"{S3}coco/"
    S3_MODEL = f"{S3}modelzoo/"

    # main data sets
    ADULT_SAMPLE = f"{URL}adult_sample.tgz"
    BIWI_SAMPLE = f"{URL}biwi_sample.tgz"
    CIFAR = f"{URL}cifar10.tgz"
    COCO_SAMPLE = f"{S3_COCO}coco_sample.tgz"
    COCO_TINY = f"{S3_COCO}coco_tiny.tgz"
    HUMAN_NUMBERS = f"{URL}human_numbers.tgz"
    IMDB = f"{S3_NLP}imdb.tgz"
    IMDB_SAMPLE = f"{URL}imdb_sample.tgz"
    ML_SAMPLE = f"{URL}movie_lens_sample.tgz"
    ML_100k = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    MNIST_SAMPLE = f"{URL}mnist_sample.tgz"
    MNIST_TINY = f"{URL}mnist_tiny.tgz"
    MNIST_VAR_SIZE_TINY = f"{S3_IMAGE}mnist_var_size_tiny.tgz"
    PLANET_SAMPLE = f"{URL}planet_sample.tgz"
    PLANET_TINY = f"{URL}planet_tiny.tgz"
    IMAGENETTE = f"{S3_IMAGE}imagenette2.tgz"
    IMAGENETTE_160 = f"{S3_IMAGE}imagenette2-160.tgz"
    IMAGENETTE_320 = f"{S3_IMAGE}imagenette2-320.tgz"
    IMAGEWOOF = f"{S3_IMAGE}imagewoof2.tgz"
    IMAGEWOOF_160 = f"{S3_IMAGE}imagewoof2-160.tgz"
    IMAGEWOOF_320 = f"{S3_IMAGE}imagewoof2-320.tgz"
    IMAGEWANG = f"{S3_IMAGE}imagewang.tgz"
    IMAGEWANG_160 = f"{S3_IMAGE}imagewang-160.tgz"
    IMAGEWANG_320 = f"{S3_IMAGE}imagewang-320.tgz"
    DOGS = f"{URL}dogscats.tgz"

    # image classification
    CALTECH_101 = f"{S3_IMAGE}caltech_101.tgz"
    CARS = f"{S3_IMAGE}stanford-cars.tgz"
    CIFAR_100 = f"{S3_IMAGE}cifar100.tgz"
    CUB_200_2011 = f"{S3_IMAGE}CUB_200_2011.tgz"
    FLOWERS = f"{S3_IMAGE}oxford-102-flowers.tgz"
    FOOD = f"{S3_IMAGE}food-101.tgz"
    MNIST = f"{S3_IMAGE}mnist_png.tgz"
    PETS = f"{S3_IMAGE}oxford-iiit-pet.tgz"

    # NLP
    AG_NEWS = f"{S3_NLP}ag_news_csv.tgz"
    AMAZON_REVIEWS = f"{S3_NLP}amazon_review_full_csv.tgz"
    AMAZON_REVIEWS_POLARITY = f"{S3_NLP}amazon_review_polarity_csv.tgz"
    DBPEDIA = f"{S3_NLP}dbpedia_csv.tgz"
    MT_ENG_FRA = f"{S3_NLP}giga-fren.tgz"
    SOGOU_NEWS = f"{S3_NLP}sogou_news_csv.tgz"
    WIKITEXT = f"{S3_NLP}wikitext-103.tgz"
    WIKITEXT_TINY = f"{S3_NLP}wikitext-2.tgz"
    YAHOO_ANSWERS = f"{S3_NLP}yahoo_answers_csv.tgz"
    YELP_REVIEWS = f"{S3_NLP}yelp_review_full_csv.tgz"
    YELP_REVIEWS_POLARITY = f"{S3_NLP}yelp_review_polarity_csv.tgz"

    # image localization / segmentation
    BIWI_HEAD_POSE = f"{S3_IMAGELOC}biwi_head_pose.tgz"
    CAMVID = f"{S3_IMAGELOC}camvid.tgz"
    CAMVID_TINY = f"{URL}camvid_tiny.tgz"
    LSUN_BEDROOMS = f"{S3_IMAGE}bedroom.tgz"
    PASCAL_2007 = f"{S3_IMAGELOC}pascal_2007.tgz"
    PASCAL_2012 = f"{S3_IMAGELOC}pascal_2012.tgz"

    # audio
    MACAQUES = f"{GOOGLE}ml-animal-sounds-datasets/macaques.zip"
    ZEBRA_FINCH = f"{GOOGLE}ml-animal-sounds-datasets/zebra_finch.zip"

    # medical imaging
    SIIM_SMALL = f"{S3_IMAGELOC}siim_small.tgz"
    TCGA_SMALL = f"{S3_IMAGELOC}tcga_small.tgz"

    # pretrained language models
    OPENAI_TRANSFORMER = f"{S3_MODEL}transformer.tgz"
    WT103_FWD = f"{S3_MODEL}wt103-fwd.tgz"
    WT103_BWD = f"{S3_MODEL}wt103-bwd.tgz"

    @staticmethod
    def path(url: str = ".", c_key: str = "archive") -> Path:
        """Where ``untar_data`` keeps ``url``: ``c_key='archive'`` the downloaded file, ``'data'`` the extracted folder."""
        name = _file_name(url) if url != "." else ""
        if c_key == "data" and name:
            name = _data_name(url, name)
        return learnkit_home() / c_key / name if name else learnkit_home() / c_key


def _file_name(url: str) -> str:
    """The last path segment of ``url`` (unquoted, without query or fragment)."""
    name = urllib.parse.unquote(urllib.parse.urlsplit(str(url)).path.rstrip("/").split("/")[-1])
    if not name:
        raise ValueError(f"Can't tell a file name from the URL {url!r}: pass dest=... with the file's path.")
    return name


def _data_name(url: str, name: str) -> str:
    """``imagenette2-160.tgz`` -> ``imagenette2-160``; refuses what isn't a supported archive."""
    for ext in _ARCHIVE_EXTS:
        if name.lower().endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    raise ValueError(f"untar_data can't extract {url!r}: it handles {', '.join(_ARCHIVE_EXTS)} archives. "
                     f"For a single file use download_url(url, dest).")


def _reason(err: BaseException) -> BaseException:
    return err.reason if isinstance(err, urllib.error.URLError) and isinstance(err.reason, BaseException) else err


def _download_error(url: str, err: BaseException, dest: Path, timeout: float | None) -> DownloadError:
    """A DownloadError naming ``url`` and the fix for ``err``."""
    by_hand = f"download it by hand (e.g. in a browser) and put it at {dest}"
    if isinstance(err, urllib.error.HTTPError):
        return DownloadError(f"Can't download {url}: the server answered HTTP {err.code} {err.reason}. Check the "
                             f"address (a typo? the URLs.* constants are known to work); if it is right the file may "
                             f"have moved or be temporarily unavailable: try again later or {by_hand}.")
    reason = _reason(err)
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return DownloadError(f"Timed out after {timeout} s waiting for {url}: the server is slow or unreachable. "
                             f"Try again, pass a larger timeout=..., or {by_hand}.")
    if isinstance(err, urllib.error.URLError) or isinstance(reason, (socket.gaierror, ConnectionRefusedError)):
        return DownloadError(f"Can't reach {url} ({reason}). No network here? Then download it on a machine that "
                             f"has one, put it at {dest}, and run this again.")
    if isinstance(err, http.client.IncompleteRead):
        return DownloadError(f"The download of {url} was cut off ({err!r}); nothing was kept. Run it again.")
    if isinstance(err, ValueError):
        return DownloadError(f"Can't download {url!r}: {err}. Give a full address such as "
                             f"'https://host/path/file.tgz' (or 'file:///path/file.tgz').")
    return DownloadError(f"The download of {url} failed ({type(err).__name__}: {err}); nothing was kept. "
                         f"Run it again, or {by_hand}.")


def _fetch(url: str, dest: Path, show_progress: bool, timeout: float | None) -> Path:
    """Stream ``url`` into a hidden temp file next to ``dest`` and rename it onto ``dest`` once complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.part")
    try:
        req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        # a fresh opener reads the proxy settings now (urlopen's global opener keeps those of its first use)
        with urllib.request.build_opener().open(req, timeout=timeout) as resp:
            size = resp.headers.get("Content-Length")
            total = int(size) if size and size.strip().isdigit() else None
            got = 0
            with open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                            desc=dest.name, disable=not show_progress) as bar:
                while chunk := resp.read(_CHUNK):
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
                f.flush()
                os.fsync(f.fileno())
        if total is not None and got != total:
            raise DownloadError(f"The download of {url} stopped after {got:,} of {total:,} bytes (the connection "
                                f"dropped); nothing was kept. Run it again.")
        os.replace(tmp, dest)
    except DownloadError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    except Exception as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, urllib.error.HTTPError):
            e.close()  # it holds the server's error page open
        raise _download_error(url, e, dest, timeout) from e
    except BaseException:  # KeyboardInterrupt: clean up, re-raise as is
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return dest


def download_url(url: str, dest: str | os.PathLike | None = None, show_progress: bool = True, *,
                 timeout: float | None = 30.0) -> Path:
    """Download ``url`` to ``dest`` (a file, or an existing folder to put it in; default: the working folder).

    Written to a temp file and renamed when complete, so ``dest`` is either whole or absent. ``timeout`` is
    the seconds to wait on the server at any one moment. Returns ``dest`` as a ``learnkit.utils.Path``.
    """
    url = str(url)
    target = Path(dest).expanduser() if dest is not None else Path.cwd()
    if dest is None or target.is_dir():
        target = target / _file_name(url)
    return _fetch(url, target, show_progress, timeout)


def _check(url: str, fn: Path) -> str | None:
    """None if ``fn`` matches the known size and md5 of ``url``'s first MiB (or none is known), else what differs."""
    known = DOWNLOAD_CHECKS.get(url)
    if known is None:
        return None
    size = os.path.getsize(fn)
    if size != known[0]:
        return f"{size:,} bytes where {known[0]:,} were expected"
    with open(fn, "rb") as f:
        digest = hashlib.md5(f.read(2**20)).hexdigest()
    return None if digest == known[1] else f"md5 of the first MiB {digest} where {known[1]} was expected"


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (so two processes don't fetch the same data set at once)."""
    with open(lock_file, "a") as f:
        if fcntl is not None:
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(f, fcntl.LOCK_UN)


def _safe_members(tf: tarfile.TarFile, root: str) -> list[tarfile.TarInfo]:
    """Pythons without tarfile's 'data' filter: refuse members that would land outside ``root``."""
    root = os.path.realpath(root)
    for m in tf.getmembers():
        target = os.path.realpath(os.path.join(root, m.name))
        if os.path.commonpath([root, target]) != root or (m.islnk() or m.issym()) and (
                os.path.isabs(m.linkname) or ".." in Path(m.linkname).parts):
            raise tarfile.TarError(f"member {m.name!r} would be written outside the extraction folder")
    return tf.getmembers()


_CORRUPT = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)


def _unpack(arch: Path, out: Path) -> None:
    """Extract ``arch`` (tar, compressed or not, or zip) into the existing folder ``out``."""
    if arch.name.lower().endswith(".zip"):
        with zipfile.ZipFile(arch) as zf:
            zf.extractall(out)  # zipfile drops absolute and '..' parts of member names
        return
    with tarfile.open(arch, "r:*") as tf:
        if hasattr(tarfile, "data_filter"):
            tf.extractall(out, filter="data")
        else:  # pragma: no cover - Python < 3.10.12 / 3.11.4
            tf.extractall(out, members=_safe_members(tf, str(out)))


def _swap_in(src: Path, dest: Path) -> None:
    """Move the complete folder ``src`` onto ``dest``, replacing what is there (the old one is removed after)."""
    old = None
    if dest.exists() or dest.is_symlink():
        old = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.old")
        os.replace(dest, old)
    os.replace(src, dest)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


def _extract(url: str, arch: Path, dest: Path) -> None:
    """Extract ``arch`` into a hidden folder next to ``dest``; rename it to ``dest`` once complete."""
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.extracting")
    tmp.mkdir(parents=True)
    try:
        try:
            _unpack(arch, tmp)
        except _CORRUPT as e:
            bad = arch.with_name(arch.name + ".corrupt")
            os.replace(arch, bad)  # out of the way: a later call must not take it for a good archive
            raise DownloadError(f"The archive of {url} is truncated or corrupt ({type(e).__name__}: {e}); it was "
                                f"moved to {bad}. Run untar_data again to download it afresh, or put a good copy "
                                f"at {arch}.") from e
        entries = list(tmp.iterdir())
        # an archive holding one folder (imagenette2-160/...) becomes that folder, renamed after the archive
        src = entries[0] if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink() else tmp
        _swap_in(src, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _copy_sample(sample: Sample, data: str | os.PathLike | None, force: bool) -> Path:
    """A writable copy of a shipped sample under ``<data>/learnkit_samples/<name>`` (copied once)."""
    root = (Path(data).expanduser() if data is not None else learnkit_home() / "data") / "learnkit_samples"
    root.mkdir(parents=True, exist_ok=True)
    dest = root / str(sample)
    with _locked(root / f".{sample}.lock"):
        if dest.is_dir() and not force:
            return dest
        tmp = root / f".{sample}.{uuid.uuid4().hex[:12]}.copying"
        try:
            shutil.copytree(sample_path(sample), tmp)
            _swap_in(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def untar_data(url: str, archive: str | os.PathLike | None = None, data: str | os.PathLike | None = None,
               force_download: bool = False, *, timeout: float | None = 30.0) -> Path:
    """Download and extract the archive at ``url`` (once; cached under ``$LEARNKIT_HOME``) and return its folder.

    ``archive`` / ``data`` override the folders for the downloaded file and the extracted data set;
    ``force_download=True`` fetches and extracts again. A shipped sample (``SAMPLES.MNIST_TINY``) is copied
    once into ``<data>/learnkit_samples/`` instead: no network needed. Handles .tgz/.tar.gz/.tar(.bz2/.xz)/.zip.
    """
    if isinstance(url, Sample):
        return _copy_sample(url, data, force_download)
    url = str(url)
    name = _file_name(url)
    stem = _data_name(url, name)
    home = learnkit_home()
    arch_dir = Path(archive).expanduser() if archive is not None else home / "archive"
    data_dir = Path(data).expanduser() if data is not None else home / "data"
    arch_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    arch, dest = arch_dir / name, data_dir / stem
    with _locked(arch_dir / f".{name}.lock"):
        if dest.is_dir() and not force_download:
            return dest
        if force_download or not arch.is_file() or _check(url, arch) is not None:
            try:
                _fetch(url, arch, True, timeout)
            except DownloadError as e:
                raise DownloadError(f"{e} (Or put the extracted data set at {dest}.)") from (e.__cause__ or e)
            wrong = _check(url, arch)
            if wrong is not None:
                arch.unlink()
                raise DownloadError(f"The file downloaded from {url} is not the expected one ({wrong}), so it was "
                                    f"deleted: the download was corrupted, or the data set changed upstream. Run "
                                    f"untar_data again; if it keeps failing, download and extract it by hand into "
                                    f"{dest}.")
        _extract(url, arch, dest)
    return dest
