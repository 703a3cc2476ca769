"""Small real data sets shipped inside the package (see README.md here for provenance and terms).

Two ways to get one, both offline:

- ``untar_data(SAMPLES.MNIST_TINY)`` reads like the lessons' ``untar_data(URLs.MNIST_TINY)``: it copies the
  sample once into ``$LEARNKIT_HOME/data/learnkit_samples/<name>`` (``$LEARNKIT_HOME`` defaults to ``~/.learnkit``;
  ``untar_data(..., data=d)`` uses ``d/learnkit_samples/<name>``) and returns that writable copy, so
  ``learn.export()`` / ``learn.save()`` write there, never into the installed package.
- ``sample_path('mnist_tiny')`` (or ``sample_path(SAMPLES.MNIST_TINY)``) returns the shipped folder itself:
  read-only use, nothing copied.
"""
from __future__ import annotations

from ..utils import Path

__all__ = ["SAMPLES", "SAMPLE_NAMES", "Sample", "sample_path"]

SAMPLE_NAMES = ("imagenette_tiny", "mnist_tiny", "camvid_tiny", "adult_sample", "movie_lens_sample", "imdb_tiny", "pets_tiny")


class Sample(str):
    """The name of a shipped sample (a ``str``), so ``untar_data`` can tell it apart from a URL."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Sample({str(self)!r})"

    @property
    def path(self) -> Path:
        """The shipped folder (same as ``sample_path(self)``)."""
        return sample_path(self)


class SAMPLES:
    """Constants for the shipped samples, named like their ``URLs`` counterparts: ``untar_data(SAMPLES.MNIST_TINY)``."""

    IMAGENETTE_TINY = Sample("imagenette_tiny")
    MNIST_TINY = Sample("mnist_tiny")
    CAMVID_TINY = Sample("camvid_tiny")
    ADULT_SAMPLE = Sample("adult_sample")
    ML_SAMPLE = Sample("movie_lens_sample")
    IMDB_TINY = Sample("imdb_tiny")
    PETS_TINY = Sample("pets_tiny")  # a subset of URLs.PETS: images/ only


def sample_path(name: str) -> Path:
    """Folder of a shipped sample data set, e.g. ``sample_path('imagenette_tiny')`` (read-only: don't write into it)."""
    if name not in SAMPLE_NAMES:
        raise ValueError(f"No shipped sample named {name!r}; the samples are {list(SAMPLE_NAMES)} "
                         f"(or the constants SAMPLES.IMAGENETTE_TINY, .MNIST_TINY, .CAMVID_TINY, .ADULT_SAMPLE, "
                         f".ML_SAMPLE, .IMDB_TINY).")
    return Path(__file__).parent / str(name)
