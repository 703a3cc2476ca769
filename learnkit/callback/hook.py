"""Looking inside a model: forward/backward hooks (fastai's ``Hook``, ``Hooks``, ``hook_output(s)``), and callbacks
that hook layers during training (``HookCallback``, ``ActivationStats``).

Hooks are torch's ``register_forward_hook`` / ``register_full_backward_hook`` handles; what the hook function
returns is kept in ``.stored``. They are removed by ``remove()``, on leaving a ``with`` block, or (callbacks)
at the end of the fit. As in fastai, an error that stops a fit skips ``after_fit``: a callback still on the
learner keeps its hooks until the end of its next fit (or ``cb.hooks.remove()``); one given to ``fit(cbs=...)``
leaves the learner with the error, and its hooks remove themselves the next time they fire.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .core import Callback

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["Hook", "Hooks", "hook_output", "hook_outputs", "HookCallback", "ActivationStats", "has_params",
           "flatten_model", "to_detach"]


def to_detach(x: Any, cpu: bool = True, gather: bool = False) -> Any:
    """Detach tensors (in tuples/lists/dicts too), optionally moving them to the CPU (``gather``: fastai's, no-op)."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        return x.cpu() if cpu else x
    if isinstance(x, (tuple, list)):
        return type(x)(to_detach(o, cpu) for o in x)
    if isinstance(x, dict):
        return {k: to_detach(v, cpu) for k, v in x.items()}
    return x


def has_params(m: nn.Module) -> bool:
    """Whether ``m`` has at least one parameter (its children's count, as in fastai)."""
    return any(True for _ in m.parameters())


def flatten_model(m: nn.Module) -> list[nn.Module]:
    """The leaf modules of ``m`` (modules without children), in order."""
    children = list(m.children())
    return [m] if not children else [leaf for c in children for leaf in flatten_model(c)]


def _hook_inner(m: nn.Module, i: Any, o: Any) -> Any:
    """What ``hook_output`` keeps: the output (forward) or the output gradients (backward)."""
    return o if isinstance(o, (torch.Tensor, list, tuple)) else list(o)


class Hook:
    """Calls ``hook_func(module, input, output)`` on each forward of ``m`` (or, with ``is_forward=False``,
    ``hook_func(module, None, (grad_output,))`` when the gradient of its output is computed) and keeps the
    result in ``stored``.

    ``detach`` detaches inputs and outputs first (``cpu`` also moves them to the CPU). A context manager:
    the hook is removed on leaving the block. Backward hooks are tensor hooks on the output (no ``grad_input``,
    unlike fastai's module backward hook): they work after in-place activations and on inputs without grad.
    """

    def __init__(self, m: nn.Module, hook_func: Callable, is_forward: bool = True, detach: bool = True,
                 cpu: bool = False, gather: bool = False) -> None:
        self.hook_func, self.detach, self.cpu, self.gather = hook_func, detach, cpu, gather
        self.is_forward = is_forward
        self.hook = m.register_forward_hook(self.hook_fn if is_forward else self._grad_on_output)
        self.stored: Any = None
        self.removed = False

    def hook_fn(self, module: nn.Module, input: Any, output: Any) -> None:
        """Apply ``hook_func`` to the (detached) values and keep the result (returns None: the output is untouched)."""
        if self.detach:
            input, output = to_detach(input, self.cpu), to_detach(output, self.cpu)
        self.stored = self.hook_func(module, input, output)

    def _grad_on_output(self, module: nn.Module, input: Any, output: Any) -> None:
        """Forward hook of a backward ``Hook``: ask for the output's gradient when it is computed."""
        out = output[0] if isinstance(output, (tuple, list)) else output
        if isinstance(out, torch.Tensor) and out.requires_grad:
            out.register_hook(lambda g: self.hook_fn(module, None, (g,)) if not self.removed else None)

    def remove(self) -> None:
        """Remove the hook from the module (idempotent)."""
        if not self.removed:
            self.hook.remove()
            self.removed = True

    def __enter__(self) -> "Hook":
        return self

    def __exit__(self, *args: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"Hook(is_forward={self.is_forward}, removed={self.removed})"


def hook_output(module: nn.Module, detach: bool = True, cpu: bool = False, grad: bool = False) -> Hook:
    """A ``Hook`` keeping ``module``'s output (``grad=True``: the gradients of its output, a tuple) in ``stored``."""
    return Hook(module, _hook_inner, detach=detach, cpu=cpu, is_forward=not grad)


class Hooks:
    """One ``Hook`` per module of ``ms`` with the same ``hook_func``; indexable, iterable, a context manager."""

    def __init__(self, ms: Iterable[nn.Module], hook_func: Callable, is_forward: bool = True, detach: bool = True,
                 cpu: bool = False) -> None:
        self.hooks = [Hook(m, hook_func, is_forward, detach, cpu) for m in ms]

    def __getitem__(self, i: int) -> Hook:
        return self.hooks[i]

    def __len__(self) -> int:
        return len(self.hooks)

    def __iter__(self) -> Iterator[Hook]:
        return iter(self.hooks)

    @property
    def stored(self) -> list:
        """What each hook stored, in module order."""
        return [h.stored for h in self.hooks]

    def remove(self) -> None:
        """Remove every hook."""
        for h in self.hooks:
            h.remove()

    def __enter__(self) -> "Hooks":
        return self

    def __exit__(self, *args: Any) -> None:
        self.remove()


def hook_outputs(modules: Iterable[nn.Module], detach: bool = True, cpu: bool = False, grad: bool = False) -> Hooks:
    """``Hooks`` keeping each module's output (or output gradients with ``grad=True``)."""
    return Hooks(modules, _hook_inner, detach=detach, cpu=cpu, is_forward=not grad)


class HookCallback(Callback):
    """Hooks ``modules`` (default: every leaf with parameters) during a fit with ``self.hook(m, i, o)``.

    ``every=N`` hooks only every N-th training batch (the hooks are added before it and removed after);
    otherwise they stay on for the whole fit. ``remove_end`` removes them when the fit ends.
    """

    def __init__(self, modules: Iterable[nn.Module] | None = None, every: int | None = None, remove_end: bool = True,
                 is_forward: bool = True, detach: bool = True, cpu: bool = True, include_paramless: bool = False,
                 hook: Callable | None = None) -> None:
        self.modules = list(modules) if modules is not None else None
        self.every, self.remove_end, self.is_forward = every, remove_end, is_forward
        self.detach, self.cpu, self.include_paramless = detach, cpu, include_paramless
        if hook is not None:
            self.hook = hook
        self.hooks: Hooks | None = None

    def hook(self, m: nn.Module, i: Any, o: Any) -> Any:
        """What to keep per module and forward pass (override, or pass ``hook=``)."""
        raise NotImplementedError("HookCallback needs a hook: subclass it with hook(self, m, i, o), or pass hook=...")

    def _register(self) -> None:
        if self.hooks is None:
            self.hooks = Hooks(self.modules, self._call_hook, self.is_forward, self.detach, self.cpu)

    def _call_hook(self, m: nn.Module, i: Any, o: Any) -> Any:
        """``self.hook``; once the callback has left its learner (an error ended ``fit(cbs=...)``), unhook instead."""
        if self.learn is None:
            self._remove()
            return None
        return self.hook(m, i, o)

    def _remove(self) -> None:
        if self.__dict__.get("hooks") is not None:
            self.hooks.remove()
            self.hooks = None

    def _due(self) -> bool:
        return self.learn.training and self.learn.train_iter % self.every == 0

    def before_fit(self) -> None:
        """Choose the modules; hook them for the whole fit unless ``every`` is set."""
        if self.modules is None:
            self.modules = [m for m in flatten_model(self.learn.model) if self.include_paramless or has_params(m)]
        if self.every is None:
            self._register()

    def before_batch(self) -> None:
        """With ``every``: hook this training batch if it is due."""
        if self.every is not None and self._due():
            self._register()

    def after_batch(self) -> None:
        """With ``every``: unhook after the batch."""
        if self.every is not None:
            self._remove()

    def after_fit(self) -> None:
        """Remove the hooks (``remove_end``)."""
        if self.remove_end:
            self._remove()

    def __del__(self) -> None:
        self._remove()


class ActivationStats(HookCallback):
    """Per training batch and hooked layer: the mean, std and share of near-zero (<= 0.05) activations.

    ``stats[batch][layer]`` is a dict (``'mean'``, ``'std'``, ``'near_zero'``, and ``'hist'``, 40 bins over [0, 10],
    with ``with_hist=True``); ``layer_stats(i)``, ``plot_layer_stats(i)`` and ``color_dim(i)`` read them (fastai's).
    """

    order = -20

    def __init__(self, with_hist: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.with_hist = with_hist
        self.stats: list[list[dict]] = []

    def before_fit(self) -> None:
        """Reset the statistics and hook the layers."""
        super().before_fit()
        self.stats = []

    def hook(self, m: nn.Module, i: Any, o: Any) -> dict:
        """Statistics of one layer's output."""
        o = (o[0] if isinstance(o, (tuple, list)) else o).float()
        res = {"mean": o.mean().item(), "std": o.std().item(), "near_zero": (o <= 0.05).float().mean().item()}
        if self.with_hist:
            res["hist"] = o.histc(40, 0, 10)
        return res

    def after_batch(self) -> None:
        """Keep this training batch's statistics."""
        if self.learn.training and self.hooks is not None:  # hooked: the whole fit, or this batch (every=N)
            self.stats.append(self.hooks.stored)
        super().after_batch()

    def layer_stats(self, idx: int) -> torch.Tensor:
        """``(3, n_batches)``: mean, std and near-zero share of layer ``idx`` per recorded batch."""
        return torch.tensor([[s[idx][k] for s in self.stats] for k in ("mean", "std", "near_zero")])

    def hist(self, idx: int) -> torch.Tensor:
        """``(40, n_batches)`` histogram counts of layer ``idx`` (needs ``with_hist=True``)."""
        if not self.stats or "hist" not in self.stats[0][idx]:
            raise ValueError("No histograms recorded: use ActivationStats(with_hist=True).")
        return torch.stack([s[idx]["hist"] for s in self.stats]).t().float()

    def plot_layer_stats(self, idx: int) -> "Figure":
        """Mean, std and near-zero share of layer ``idx`` over the batches, one panel each."""
        import matplotlib.pyplot as plt
        fig, axs = plt.subplots(1, 3, figsize=(12, 3))
        for ax, values, title in zip(axs, self.layer_stats(idx), ("mean", "std", "% near zero")):
            ax.plot(values.numpy())
            ax.set_title(title)
            ax.set_xlabel("batch")
        return fig

    def color_dim(self, idx: int = -1, figsize: tuple = (10, 5)) -> "Figure":
        """The 'colorful dimension' plot: log histogram of layer ``idx`` per batch (x: batch, y: activation bin)."""
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=figsize)
        ax.imshow(self.hist(idx).log1p().numpy(), origin="lower", aspect="auto")
        ax.set_xlabel("batch")
        ax.set_ylabel("activation (0..10)")
        ax.axis("on")
        return fig
