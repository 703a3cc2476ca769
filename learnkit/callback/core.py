"""The callback protocol: a fixed list of events, an ``order``, and cancel exceptions."""
from __future__ import annotations

import re
import types
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..learner import Learner

__all__ = [
    "EVENTS", "event", "Callback",
    "CancelFitException", "CancelEpochException", "CancelTrainException",
    "CancelValidException", "CancelBatchException", "CancelStepException", "CancelBackwardException",
]

EVENTS: tuple[str, ...] = (
    "before_fit", "before_epoch", "before_train", "before_batch", "after_pred", "after_loss",
    "before_backward", "after_backward", "before_step", "after_step", "after_cancel_batch", "after_batch",
    "after_cancel_train", "after_train", "before_validate", "after_cancel_validate", "after_validate",
    "after_cancel_epoch", "after_epoch", "after_cancel_fit", "after_fit",
)

# fastai's full list of event names (``after_create`` and ``after_cancel_step`` included) for ``event.<name>``
_FASTAI_EVENTS: tuple[str, ...] = ("after_create",) + EVENTS[:9] + ("after_cancel_step",) + EVENTS[9:]
# events fired once per batch: a callback with run_train / run_valid False skips them in that phase
_INNER_LOOP = frozenset(("before_batch", "after_pred", "after_loss", "before_backward", "after_backward",
                         "before_step", "after_step", "after_cancel_batch", "after_batch"))


class event:
    """All event names as attributes (``event.after_batch == 'after_batch'``): tab completion and typo-proofing."""


for _name in _FASTAI_EVENTS:
    setattr(event, _name, _name)


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


_CANCELS = (CancelFitException, CancelEpochException, CancelTrainException, CancelValidException,
            CancelBatchException, CancelStepException, CancelBackwardException)


class Callback:
    """Base class: override any method named in ``EVENTS``; ``self.learn`` is set when added.

    Callbacks run in ascending ``order``. Attribute reads a callback does not define fall through
    to the learner (``self.model``, ``self.opt``, ``self.epoch``...), as in fastai.
    """

    order: int = 0
    run: bool = True  # False: skip every event until the end of this fit (then reset to True)
    run_train: bool = True  # run during training batches
    run_valid: bool = True  # run during validation batches
    learn: "Learner | None" = None

    def __init__(self, **kwargs: Any) -> None:
        """Optionally pass event handlers as functions of ``self``: ``Callback(before_fit=f)`` (fastai's form)."""
        unknown = [k for k in kwargs if k not in _FASTAI_EVENTS]
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown events {unknown}: pass handlers for event names "
                            f"only (e.g. Callback(after_batch=f)); see learnkit.callback.core.event.")
        for k, f in kwargs.items():
            if f is not None:
                setattr(self, k, types.MethodType(f, self))

    def __call__(self, event_name: str) -> Any:
        """Run this callback's handler for ``event_name`` (none defined: nothing) and return its result.

        Honours ``run``, ``run_train`` and ``run_valid`` like the training loop; an error other than a cancel
        exception has its message prefixed with the callback's class and the event.
        """
        training = getattr(self, "training", None)
        _run = event_name not in _INNER_LOOP or (self.run_train and training in (True, None)) or (
            self.run_valid and training in (False, None))
        res = None
        if self.run and _run:
            f = getattr(self, event_name, None)
            if f is not None:
                try:
                    res = f()
                except Exception as e:
                    if isinstance(e, _CANCELS):
                        raise
                    msg = e.args[0] if e.args else ""
                    e.args = (f"Exception occured in `{type(self).__name__}` when calling event `{event_name}`:"
                              f"\n\t{msg}",) + tuple(e.args[1:])
                    raise
        if event_name == "after_fit":
            self.run = True
        return res

    def __setattr__(self, name: str, value: Any) -> None:
        learn = self.__dict__.get("learn")
        if learn is not None and name != "learn" and name not in self.__dict__ and hasattr(learn, name):
            warnings.warn(f"You are shadowing an attribute ({name}) that exists in the learner. "
                          f"Use `self.learn.{name}` to avoid this", stacklevel=2)
        super().__setattr__(name, value)

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
