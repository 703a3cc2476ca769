"""fastai's optimizers that torch does not have (``RMSProp``, ``QHAdam``, ``Larc``, ``Lamb``), as ``torch.optim.Optimizer``s.

Each step follows fastai's update rules exactly (``fastai.optimizer``): weight decay first (``p *= 1 - lr*wd``
when ``decouple_wd``, else ``wd*p`` added to the gradient), then the optimizer's own rule. The running
averages live in ``opt.state[p]`` under fastai's names (``grad_avg``, ``sqr_avg``, ``step``, ``local_lr``).
Hyper-parameters sit in each parameter group where learnkit's schedules look for them: ``weight_decay``,
``betas=(mom, sqr_mom)`` for the Adam-likes, ``momentum`` (and ``alpha`` = ``sqr_mom``) for the others.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["RMSProp", "QHAdam", "Larc", "Lamb", "as_params"]


def as_params(params: Any, who: str = "optimizer") -> list:
    """``params`` as a list an optimizer can take: a bare tensor becomes ``[tensor]``, a generator is read once.

    An empty result is an error (e.g. a generator such as ``model.parameters()`` already used up), so an
    optimizer never silently has nothing to update.
    """
    if isinstance(params, torch.Tensor):
        params = [params]
    elif isinstance(params, dict):
        params = [params]
    else:
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"{who}: params must be a tensor, an iterable of tensors or of parameter-group dicts, "
                            f"got {type(params).__name__}.") from None
    if not params:
        raise ValueError(f"{who} got no parameters: pass model.parameters() (a generator can only be read once: "
                         f"call model.parameters() again rather than reusing it).")
    return [dict(g, params=[g["params"]] if isinstance(g["params"], torch.Tensor) else list(g["params"]))
            if isinstance(g, dict) else g for g in params]


def closure_loss(closure: Callable[[], Any] | None) -> Any:
    """The loss from ``closure()`` run with gradients enabled (inside an optimizer's ``step``), or None."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class _FastaiOptimizer(torch.optim.Optimizer):
    """Weight decay as fastai applies it, then ``_update(p, grad, group, state)`` for every parameter with a gradient."""

    def __init__(self, params: Iterable, defaults: dict[str, Any]) -> None:
        super().__init__(as_params(params, type(self).__name__), defaults)

    def _update(self, p: torch.Tensor, grad: torch.Tensor, group: dict, state: dict) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient."""
        loss = closure_loss(closure)
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if wd != 0:
                    if group["decouple_wd"]:
                        p.mul_(1 - lr * wd)
                    else:
                        grad = grad.add(p, alpha=wd)
                self._update(p, grad, group, self.state[p])
        return loss


def _avg(state: dict, key: str, like: torch.Tensor) -> torch.Tensor:
    if key not in state:
        state[key] = torch.zeros_like(like, memory_format=torch.preserve_format)
    return state[key]


def _step_count(state: dict) -> int:
    state["step"] = state.get("step", 0) + 1
    return state["step"]


class RMSProp(_FastaiOptimizer):
    """RMSProp as fastai's: ``sqr_avg = sqr_mom*sqr_avg + (1-sqr_mom)*g**2``; ``p -= lr * g / (sqrt(sqr_avg) + eps)``.

    With ``mom != 0`` the numerator is ``grad_avg = mom*grad_avg + g`` (fastai's undampened average; torch's
    ``RMSprop`` puts momentum on the whole step instead). As in fastai, momentum is used only when the
    optimizer is built with ``mom != 0``.
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, sqr_mom: float = 0.99, mom: float = 0., eps: float = 1e-8,
                 wd: float = 0., decouple_wd: bool = True) -> None:
        self.with_mom = mom != 0
        super().__init__(params, dict(lr=lr, alpha=sqr_mom, momentum=mom, eps=eps, weight_decay=wd,
                                      decouple_wd=decouple_wd))

    def _update(self, p: torch.Tensor, grad: torch.Tensor, group: dict, state: dict) -> None:
        num = grad
        if self.with_mom:
            num = _avg(state, "grad_avg", p).mul_(group["momentum"]).add_(grad)
        sqr_mom = group["alpha"]
        sqr_avg = _avg(state, "sqr_avg", p).mul_(sqr_mom).addcmul_(grad, grad, value=1 - sqr_mom)
        p.addcdiv_(num, sqr_avg.sqrt().add_(group["eps"]), value=-group["lr"])


class QHAdam(_FastaiOptimizer):
    """Quasi-hyperbolic Adam (Ma & Yarats), fastai's rule: a ``nu_1``/``nu_2`` mix of the raw and the averaged moments."""

    def __init__(self, params: Iterable, lr: float = 1e-3, mom: float = 0.999, sqr_mom: float = 0.999,
                 nu_1: float = 0.7, nu_2: float = 1.0, eps: float = 1e-8, wd: float = 0.,
                 decouple_wd: bool = True) -> None:
        super().__init__(params, dict(lr=lr, betas=(mom, sqr_mom), nu_1=nu_1, nu_2=nu_2, eps=eps, weight_decay=wd,
                                      decouple_wd=decouple_wd))

    def _update(self, p: torch.Tensor, grad: torch.Tensor, group: dict, state: dict) -> None:
        mom, sqr_mom = group["betas"]
        nu_1, nu_2 = group["nu_1"], group["nu_2"]
        grad_avg = _avg(state, "grad_avg", p).mul_(mom).add_(grad, alpha=1 - mom)
        sqr_avg = _avg(state, "sqr_avg", p).mul_(sqr_mom).addcmul_(grad, grad, value=1 - sqr_mom)
        step = _step_count(state)
        debias1, debias2 = 1 - mom ** step, 1 - sqr_mom ** step
        num = (1 - nu_1) * grad + nu_1 * (grad_avg / debias1)
        den = ((1 - nu_2) * grad * grad + nu_2 * (sqr_avg / debias2)).sqrt() + group["eps"]
        p.addcdiv_(num, den, value=-group["lr"])


class Larc(_FastaiOptimizer):
    """LARC (``clip=True``) / LARS (``clip=False``): SGD with a per-tensor lr ``lr*trust_coeff*|p| / (|g| + wd*|p| + eps)``.

    The local lr is clipped to ``lr`` when ``clip``; it is kept in ``opt.state[p]['local_lr']``.
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, mom: float = 0.9, clip: bool = True,
                 trust_coeff: float = 0.02, eps: float = 1e-8, wd: float = 0., decouple_wd: bool = True) -> None:
        self.with_mom = mom != 0
        super().__init__(params, dict(lr=lr, momentum=mom, clip=clip, trust_coeff=trust_coeff, eps=eps,
                                      weight_decay=wd, decouple_wd=decouple_wd))

    def _update(self, p: torch.Tensor, grad: torch.Tensor, group: dict, state: dict) -> None:
        lr = group["lr"]
        upd = grad
        if self.with_mom:
            upd = _avg(state, "grad_avg", p).mul_(group["momentum"]).add_(grad)
        p_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(grad)
        local_lr = lr * group["trust_coeff"] * p_norm / (g_norm + p_norm * group["weight_decay"] + group["eps"])
        if group["clip"]:
            local_lr = local_lr.clamp(max=lr)
        state["local_lr"] = local_lr
        p.sub_(upd * local_lr)


class Lamb(_FastaiOptimizer):
    """LAMB (You et al.), fastai's rule: the debiased Adam step scaled by ``min(rms(p) / rms(step), 10)`` per tensor."""

    def __init__(self, params: Iterable, lr: float = 1e-3, mom: float = 0.9, sqr_mom: float = 0.99, eps: float = 1e-5,
                 wd: float = 0., decouple_wd: bool = True) -> None:
        super().__init__(params, dict(lr=lr, betas=(mom, sqr_mom), eps=eps, weight_decay=wd, decouple_wd=decouple_wd))

    def _update(self, p: torch.Tensor, grad: torch.Tensor, group: dict, state: dict) -> None:
        mom, sqr_mom = group["betas"]
        grad_avg = _avg(state, "grad_avg", p).mul_(mom).add_(grad, alpha=1 - mom)
        sqr_avg = _avg(state, "sqr_avg", p).mul_(sqr_mom).addcmul_(grad, grad, value=1 - sqr_mom)
        step = _step_count(state)
        upd = (grad_avg / (1 - mom ** step)) / ((sqr_avg / (1 - sqr_mom ** step)).sqrt() + group["eps"])
        r1, r2 = p.pow(2).mean().sqrt(), upd.pow(2).mean().sqrt()
        q = torch.where((r1 == 0) | (r2 == 0), torch.ones_like(r1), (r1 / r2).clamp(max=10))
        p.sub_(upd * (q * group["lr"]))
