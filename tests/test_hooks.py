"""Looking inside: Hook / Hooks / hook_output(s) (stored values, removal), HookCallback, ActivationStats,
class activation maps (CAM, Grad-CAM) and learn.summary()."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDL
from torch.utils.data import TensorDataset

from learnkit.basics import (ActivationStats, Callback, CrossEntropyLossFlat, DataLoaders, Hook, HookCallback, Hooks,
                             Learner, flatten_model, has_params, hook_output, hook_outputs)
from learnkit.vision.cam import class_activation_map, grad_cam, show_cam
from learnkit.vision.data import ImageDataLoaders


def n_hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules())


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))


def test_hook_output_stores_the_output_and_is_removed_on_exit():
    m, x = mlp(), torch.randn(4, 3)
    with hook_output(m[0]) as h:
        y = m(x)
        assert torch.allclose(h.stored, m[0](x)) and not h.stored.requires_grad
    assert n_hooks(m) == 0 and h.removed
    with hook_outputs([m[0], m[2]]) as hs:
        m(x)
        assert [tuple(s.shape) for s in hs.stored] == [(4, 5), (4, 2)] and torch.allclose(hs.stored[1], y)
        assert len(hs) == 2 and isinstance(hs[0], Hook)
    assert n_hooks(m) == 0


def test_has_params_counts_children_and_flatten_model_gives_the_leaves():
    m = nn.Sequential(nn.Sequential(nn.Linear(3, 5), nn.ReLU()), nn.Linear(5, 2))
    assert has_params(m) and has_params(m[0]) and not has_params(m[0][1])  # fastai: params(m) is recursive
    assert flatten_model(m) == [m[0][0], m[0][1], m[1]]


def test_grad_hook_stores_the_gradient_of_the_output():
    m, x = mlp(), torch.randn(4, 3)
    h = hook_output(m[0], grad=True)
    out0 = m[0](x)
    out0.retain_grad()
    m[2](m[1](out0)).sum().backward()  # reference gradient of the first layer's output, by autograd
    ref = out0.grad.clone()
    m.zero_grad()
    m(x).sum().backward()
    assert torch.allclose(h.stored[0], ref)
    h.remove()
    assert n_hooks(m) == 0


def test_hooks_with_a_function_and_hook_callback_removes_its_hooks():
    m, x = mlp(), torch.randn(4, 3)
    with Hooks([m[0], m[2]], lambda mod, i, o: o.shape[1]) as hs:
        m(x)
        assert hs.stored == [5, 2]
    g = torch.Generator().manual_seed(0)
    X, Y = torch.randn(64, 3, generator=g), torch.randint(0, 2, (64,), generator=g)
    dls = DataLoaders(TorchDL(TensorDataset(X, Y), batch_size=8), TorchDL(TensorDataset(X, Y), batch_size=32))
    seen = []
    cb = HookCallback(hook=lambda mod, i, o: seen.append(type(mod).__name__))
    learn = Learner(dls, mlp(), loss_func=CrossEntropyLossFlat(), cbs=cb)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
    assert cb.modules == [learn.model[0], learn.model[2]]  # leaves with parameters
    assert seen.count("Linear") == 2 * (8 + 2) and n_hooks(learn.model) == 0  # 8 train + 2 valid batches


class Boom(Callback):
    def after_batch(self):
        raise RuntimeError("boom")


def test_hooks_of_a_fit_callback_do_not_outlive_an_error():
    g = torch.Generator().manual_seed(0)
    X, Y = torch.randn(16, 3, generator=g), torch.randint(0, 2, (16,), generator=g)
    dls = DataLoaders(TorchDL(TensorDataset(X, Y), batch_size=8), TorchDL(TensorDataset(X, Y), batch_size=8))
    learn = Learner(dls, mlp(), loss_func=CrossEntropyLossFlat())
    stats = ActivationStats()
    with learn.no_bar(), learn.no_logging(), pytest.raises(RuntimeError, match="boom"):
        learn.fit(1, cbs=[stats, Boom()])
    assert n_hooks(learn.model) == 2 and len(stats.stats) == 1  # one batch, then after_fit never ran (as fastai)
    learn.model(X)  # the next forward: the orphaned hooks see their callback gone and remove themselves
    assert n_hooks(learn.model) == 0 and stats.hooks is None


def test_activation_stats_match_the_layer_outputs():
    g = torch.Generator().manual_seed(0)
    X, Y = torch.randn(64, 3, generator=g), torch.randint(0, 2, (64,), generator=g)
    dls = DataLoaders(TorchDL(TensorDataset(X, Y), batch_size=16), TorchDL(TensorDataset(X, Y), batch_size=32))
    stats = ActivationStats(every=2, with_hist=True)
    learn = Learner(dls, mlp(), loss_func=CrossEntropyLossFlat(), cbs=stats, lr=0.0)  # fixed model
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
    assert len(stats.stats) == 2 and n_hooks(learn.model) == 0  # batches 0 and 2 of 4
    out = learn.model[0](X[:16]).detach()  # batch 0 (in order: not shuffled)
    s = stats.stats[0][0]
    assert s["mean"] == pytest.approx(out.mean().item(), abs=1e-5) and s["std"] == pytest.approx(out.std().item())
    assert s["near_zero"] == pytest.approx((out <= 0.05).float().mean().item())
    assert stats.layer_stats(0).shape == (3, 2) and stats.hist(1).shape == (40, 2)
    assert stats.color_dim(0).axes and stats.plot_layer_stats(1).axes


def cam_setup():
    """A conv body and a pooling + linear head: CAM is then exact (the logit is the CAM's mean plus the bias)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (8, 8, 8, 3), dtype=np.uint8)
    dls = ImageDataLoaders.from_arrays(x, np.arange(8) % 2, bs=4, num_workers=0)
    model = nn.Sequential(nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU()),
                          nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2)))
    return Learner(dls, model), x


def test_class_activation_map_is_the_logit_spread_over_the_image():
    learn, x = cam_setup()
    xb = learn.dls.test_dl([x[0]]).one_batch()[0]
    logits = learn.model.eval()(xb)[0].detach()
    for cls in (0, 1):
        cam = class_activation_map(learn, x[0], cls=cls)
        assert cam.shape == (8, 8)
        assert cam.mean().item() + learn.model[1][-1].bias[cls].item() == pytest.approx(logits[cls].item(), abs=1e-5)
        # Grad-CAM with a global-average-pool head: the positive part of CAM over the number of positions
        assert torch.allclose(grad_cam(learn, x[0], cls=cls), cam.clamp_min(0) / 64, atol=1e-6)
    assert torch.equal(class_activation_map(learn, x[0]), class_activation_map(learn, x[0], cls=int(logits.argmax())))
    assert all(p.grad is None or not p.grad.any() for p in learn.model.parameters()) and n_hooks(learn.model) == 0
    assert show_cam(learn, x[0], cam).get_images()
    for p in learn.model.parameters():  # a frozen model: the gradient still reaches the layer through the input
        p.requires_grad_(False)
    assert torch.allclose(grad_cam(learn, x[0], cls=1), cam.clamp_min(0) / 64, atol=1e-6)


def test_cam_needs_a_layer_for_other_models():
    learn, x = cam_setup()
    learn.model = nn.Sequential(learn.model[0], nn.Flatten(), nn.Linear(6 * 64, 2))
    with pytest.raises(ValueError, match="pass layer="):
        grad_cam(learn, x[0])
    assert grad_cam(learn, x[0], layer=learn.model[0]).shape == (8, 8)
    with pytest.raises(ValueError, match="Use grad_cam"):
        class_activation_map(learn, x[0], layer=learn.model[0])


def test_summary_gives_shapes_parameter_counts_and_frozen_totals(capsys):
    learn, _ = cam_setup()
    for p in learn.model[0].parameters():
        p.requires_grad_(False)
    text = learn.summary()
    lines = {l.split()[0]: l for l in text.splitlines() if l.startswith(("0.0", "1.2"))}
    assert "4 x 6 x 8 x 8" in lines["0.0"] and "168" in lines["0.0"] and lines["0.0"].rstrip().endswith("False")
    assert "4 x 2" in lines["1.2"] and "14" in lines["1.2"] and lines["1.2"].rstrip().endswith("True")
    assert "Total params: 182" in text and "Total trainable params: 14" in text
    assert "Total non-trainable params: 168" in text and text in capsys.readouterr().out
