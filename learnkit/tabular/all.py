"""The tabular lesson surface: ``from learnkit.tabular.all import *`` (basics plus tables and tabular_learner)."""
from __future__ import annotations

from learnkit.basics import *  # noqa: F401,F403  (all.py files re-export; this is the one place star imports live)
from learnkit.basics import __all__ as _basics_all

from learnkit.data.normalize import (Normalize)  # noqa: F401
from learnkit.layers import (SigmoidRange, sigmoid_range)  # noqa: F401
from learnkit.tabular.core import (Categorify, FillMissing, FillStrategy, TabularPandas, cont_cat_split, emb_sz_rule, get_emb_sz)  # noqa: F401
from learnkit.tabular.data import (TabDataLoader, TabularDataLoaders)  # noqa: F401
from learnkit.tabular.model import (TabularModel, Embedding, LinBnDrop, tabular_config)  # noqa: F401
from learnkit.tabular.learner import (tabular_learner)  # noqa: F401
from learnkit.tabular.frames import (make_date, add_datepart, add_elapsed_times, df_shrink_dtypes, df_shrink)  # noqa: F401
from learnkit.tabular.weighted import (TabWeightedDL)  # noqa: F401

__all__ = _basics_all + [  # CategoryMap: fastai's, from basics (learnkit.data.blocks)
    "Normalize", "SigmoidRange", "sigmoid_range", "Categorify", "FillMissing", "FillStrategy", "TabularPandas",
    "cont_cat_split", "emb_sz_rule", "get_emb_sz", "TabDataLoader", "TabularDataLoaders",
    "TabularModel", "Embedding", "LinBnDrop", "tabular_config", "tabular_learner",
    "make_date", "add_datepart", "add_elapsed_times", "df_shrink_dtypes", "df_shrink", "TabWeightedDL",
]
