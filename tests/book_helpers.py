"""Stand-ins for the few helpers the book takes from ``fastbook`` (not fastai): ``plot_function``, ``gv``, ``image_bear``."""
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from learnkit.samples import sample_path


def plot_function(f, tx=None, ty=None, title=None, min=-2, max=2, figsize=(6, 4)):
    """fastbook's plot_function: plot ``f`` on [min, max]; returns the axes."""
    x = torch.linspace(min, max, 100)
    fig, ax = plt.subplots(figsize=figsize)
    ax.plot(x, f(x))
    if tx is not None: ax.set_xlabel(tx)
    if ty is not None: ax.set_ylabel(ty)
    if title is not None: ax.set_title(title)
    plt.close(fig)
    return ax


def gv(s):
    """fastbook's gv draws a graphviz graph; here the source text is returned (no graphviz needed)."""
    return f"digraph G{{ rankdir=\"LR\" {s} }}"


def image_bear():
    """fastbook's image_bear() is a bear photo; a shipped Imagenette JPEG stands in."""
    return sorted((sample_path("imagenette_tiny") / "train").rglob("*.JPEG"))[0]


def imagenette_subset(dst: Path) -> Path:
    """Imagenette's layout at ``dst``: 4 training and 2 validation pictures per class from the shipped tiny sample."""
    src = sample_path("imagenette_tiny")
    for split, n in (("train", 4), ("val", 2)):
        for cls in sorted((src / split).iterdir()):
            (dst / split / cls.name).mkdir(parents=True)
            for f in sorted(cls.iterdir())[:n]:
                shutil.copy(f, dst / split / cls.name / f.name)
    return Path(dst)
