"""The callback protocol: a fixed list of events, an ``order``, and cancel exceptions."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..learner import Learner

__all__ = [
    "EVENTS", "Callback",
    "CancelFitException", "CancelEpochException", "CancelTrainException",
    "CancelValidException", "CancelBatchException", "CancelStepException", "CancelBackwardException",
]

EVENTS: tuple[str, ...] = (
    "before_fit", "before_epoch", "before_train", "before_batch", "after_pred", "after_loss",
    "before_backward", "after_backward", "before_step", "after_step", "after_cancel_batch", "after_batch",
    "after_cancel_train", "after_train", "before_validate", "after_cancel_validate", "after_validate",
    "after_cancel_epoch", "after_epoch", "after_cancel_fit", "after_fit",
)


def _camel2snake(name: str) -> str:
    """fastai's rule: ``CSVLogger`` -> ``csv_logger``, ``LRFinder`` -> ``lr_finder``."""
    s1 = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z0-9])([A-Z])", r"\1_\2", s1).lower()


class CancelFitException(Exception):
    """Raise in a callback to stop training; ``after_cancel_fit`` then ``after_fit`` run."""


class CancelEpochException(Exception):
    """Raise in a callback to skip the rest of this epoch."""


class CancelTrainException(Exception):
    """Raise in a callback to skip the rest of this epoch's training phase."""


class CancelValidException(Exception):
    """Raise in a callback to skip this epoch's validation phase."""


class CancelBatchException(Exception):
    """Raise in a callback to skip the rest of this batch."""


class CancelStepException(Exception):
    """Raise in a callback to skip this batch's optimizer step."""


class CancelBackwardException(Exception):
    """Raise in a callback to skip this batch's backward pass."""


class Callback:
    """Base class: override any method named in ``EVENTS``; ``self.learn`` is set when added.

    Callbacks run in ascending ``order``. Attribute reads a callback does not define fall through
    to the learner (``self.model``, ``self.opt``, ``self.epoch``...), as in fastai.
    """

    order: int = 0
    run_train: bool = True  # run during training batches
    run_valid: bool = True  # run during validation batches
    learn: "Learner | None" = None

    @property
    def name(self) -> str:
        """snake_case name under which the learner exposes this callback (``learn.recorder``)."""
        n = type(self).__name__
        n = n[: -len("Callback")] if n.endswith("Callback") and n != "Callback" else n
        return _camel2snake(n)

    def __getattr__(self, k: str) -> Any:
        # only reached when normal lookup fails; forward to the learner for lesson-style callbacks
        if k.startswith("__") or k == "learn":
            raise AttributeError(k)
        learn = self.__dict__.get("learn")
        if learn is None:
            raise AttributeError(f"{type(self).__name__} has no attribute {k!r} (and no learner yet)")
        return getattr(learn, k)

    def __repr__(self) -> str:
        return type(self).__name__
