"""The data layer: blocks, getters, splitters, transforms, Datasets and loaders."""
from . import imbalance  # noqa: F401  (attaches DataLoaders.weighted and .summary to the loaders in data/core.py)
from . import partial  # noqa: F401  (attaches Datasets.partial_dataloaders)
