"""Class activation maps (fastbook chapter 18): where in an image the model found the evidence for a class.

``class_activation_map`` is the CAM of the chapter: the last linear layer's weights for the class applied to
the body's activations (valid when the head is pooling followed by that one linear layer, as in a ResNet's
own head). ``grad_cam`` is Grad-CAM: the activations of any layer weighted by the mean gradient of the
class score over each channel, so it works whatever the head. Both return an ``(h, w)`` map at the layer's
resolution (upsample it to draw it over the image: ``show_cam``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..callback.hook import hook_output

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ..learner import Learner

__all__ = ["class_activation_map", "grad_cam", "show_cam"]


def _input(learn: "Learner", item: Any) -> torch.Tensor:
    """The model input for one item, loaded and normalised as the validation set is (a batch of one)."""
    if isinstance(item, torch.Tensor) and item.ndim == 4:
        return item.to(learn._model_device())
    return learn.dls.test_dl([item], num_workers=0).one_batch()[0]


def _body_and_head(learn: "Learner", layer: nn.Module | None) -> nn.Module:
    if layer is not None:
        return layer
    m = learn.model
    if isinstance(m, nn.Sequential) and len(m) == 2:
        return m[0]  # vision_learner's body
    raise ValueError("This model is not vision_learner's nn.Sequential(body, head): pass layer= the module whose "
                     "activations to map (e.g. the last convolutional block).")


def _cls(out: torch.Tensor, cls: int | None) -> int:
    return int(out[0].argmax()) if cls is None else int(cls)


def class_activation_map(learn: "Learner", item: Any, cls: int | None = None,
                         layer: nn.Module | None = None) -> torch.Tensor:
    """CAM for class ``cls`` (default: the predicted one) of ``item``: ``(h, w)``, from the last linear layer."""
    layer = _body_and_head(learn, layer)
    linears = [m for m in learn.model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("class_activation_map needs a final nn.Linear layer; use grad_cam for this model.")
    x = _input(learn, item)
    was_training = learn.model.training
    learn.model.eval()
    try:
        with hook_output(layer) as hook, torch.no_grad():
            out = learn.model(x)
        act = hook.stored[0]
    finally:
        learn.model.train(was_training)
    w = linears[-1].weight
    if w.shape[1] != act.shape[0]:
        raise ValueError(f"class_activation_map: the last linear layer takes {w.shape[1]} features but the layer "
                         f"gives {act.shape[0]} channels, so its weights can't be read per channel (the head has "
                         f"more than pooling + one linear layer). Use grad_cam(learn, item), which works for any head.")
    return torch.einsum("k,kij->ij", w[_cls(out, cls)].detach(), act)


def grad_cam(learn: "Learner", item: Any, cls: int | None = None, layer: nn.Module | None = None) -> torch.Tensor:
    """Grad-CAM for class ``cls`` (default: the predicted one) at ``layer`` (default: the body): ``(h, w)``, >= 0."""
    layer = _body_and_head(learn, layer)
    x = _input(learn, item).detach().requires_grad_(True)  # a gradient to the layer even when it is frozen
    was_training = learn.model.training
    learn.model.eval()
    try:
        with hook_output(layer, grad=True) as hook_g, hook_output(layer) as hook:
            out = learn.model(x)
            act = hook.stored[0]
            learn.model.zero_grad()
            out[0, _cls(out, cls)].backward()
            grad = hook_g.stored[0][0]
    finally:
        learn.model.zero_grad()
        learn.model.train(was_training)
    weights = grad.mean(dim=(1, 2), keepdim=True)
    return F.relu((weights * act).sum(0))


def show_cam(learn: "Learner", item: Any, cam_map: torch.Tensor, ax: "Axes | None" = None, alpha: float = 0.6,
             cmap: str = "magma") -> "Axes":
    """Draw ``item`` as the model sees it (decoded) with ``cam_map`` upsampled over it; returns the axes."""
    import matplotlib.pyplot as plt
    dl = learn.dls.test_dl([item], num_workers=0)
    img = dl.decode_batch(dl.one_batch(), max_n=1)[0][0]
    img = img.permute(1, 2, 0).numpy() if img.ndim == 3 else img.numpy()
    h, w = img.shape[:2]
    if ax is None:
        ax = plt.subplots()[1]
    ax.imshow(img.squeeze(), cmap="gray" if img.ndim == 2 or img.shape[-1] == 1 else None)
    ax.imshow(cam_map.detach().cpu().numpy(), alpha=alpha, extent=(0, w, h, 0), interpolation="bilinear", cmap=cmap)
    ax.axis("off")
    return ax
