"""The collaborative-filtering lesson surface: ``from learnkit.collab.all import *`` (tabular plus collab)."""
from __future__ import annotations

from learnkit.tabular.all import *  # noqa: F401,F403  (all.py files re-export; this is the one place star imports live)
from learnkit.tabular.all import __all__ as _tabular_all

from learnkit.collab.data import (CollabDataLoaders)  # noqa: F401
from learnkit.collab.model import (EmbeddingDotBias, EmbeddingNN)  # noqa: F401
from learnkit.collab.learner import (collab_learner)  # noqa: F401

__all__ = _tabular_all + ["CollabDataLoaders", "EmbeddingDotBias", "EmbeddingNN", "collab_learner"]
