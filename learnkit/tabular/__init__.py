"""Tables: procs, TabularPandas, the loaders and the tabular learner."""
from . import data, weighted  # noqa: F401  (attach TabularPandas.dataloaders and .weighted_dataloaders)
