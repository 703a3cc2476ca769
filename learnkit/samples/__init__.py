"""Small real data sets shipped inside the package (see README.md here for provenance and terms)."""
from __future__ import annotations

from ..utils import Path

__all__ = ["SAMPLES", "sample_path"]

SAMPLES = ("imagenette_tiny", "mnist_tiny", "camvid_tiny", "adult_sample", "movie_lens_sample")


def sample_path(name: str) -> Path:
    """Folder of a shipped sample data set, e.g. ``sample_path('imagenette_tiny')``."""
    if name not in SAMPLES:
        raise ValueError(f"No shipped sample named {name!r}; the samples are {list(SAMPLES)}.")
    return Path(__file__).parent / name
