"""MixUp / CutMix: inputs and losses mixed by the hand formula, validation untouched, CutMix's lam is the box area."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.callback.core import Callback
from learnkit.callback.mixup import CutMix, MixUp
from learnkit.callback.progress import ProgressCallback
from learnkit.data.core import DataLoaders
from learnkit.learner import Learner
from learnkit.losses import (
    BCEWithLogitsLossFlat,
    CrossEntropyLossFlat,
    LabelSmoothingCrossEntropy,
)
from learnkit.metrics import accuracy

pytestmark = pytest.mark.usefixtures("one_thread")


class Fixed:
    """Stands in for the Beta distribution: always draws ``v``."""

    def __init__(self, v: float) -> None:
        self.v = v

    def sample(self, shape: tuple = ()) -> torch.Tensor:
        return torch.full(shape, self.v)


class Spy(Callback):
    """Keeps the batch before mixing (order -1) and what the learner holds after the loss (order 5)."""

    order = 5

    def __init__(self) -> None:
        self.seen = []

    def after_loss(self) -> None:
        self.seen.append(dict(training=self.learn.training, xb=self.learn.xb[0].clone(), yb=self.learn.yb[0].clone(),
                              pred=self.learn.pred.detach().clone(), loss=self.learn.loss.clone(),
                              loss_grad=self.learn.loss_grad))


class Before(Callback):
    order = -1

    def __init__(self) -> None:
        self.xb, self.yb = [], []

    def before_batch(self) -> None:
        self.xb.append(self.learn.xb[0].clone())
        self.yb.append(self.learn.yb[0].clone())


def make_learner(loss_func, n=64, bs=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = (x[:, 0].mean((1, 2)) > 0).long()
    dls = DataLoaders(TorchDataLoader(TensorDataset(x, y), batch_size=bs, shuffle=True),
                      TorchDataLoader(TensorDataset(x[:32], y[:32]), batch_size=bs), device="cpu")
    torch.manual_seed(seed)
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(192, 2)), loss_func=loss_func, metrics=accuracy, lr=1e-2)
    learn.remove_cb(ProgressCallback)
    return learn


def ce_none(pred, y):
    return F.cross_entropy(pred, y, reduction="none")


def ls_none(pred, y, eps=0.1):
    logp = F.log_softmax(pred, 1)
    return -logp.sum(1) * eps / pred.shape[1] + (1 - eps) * -logp.gather(1, y[:, None])[:, 0]


@pytest.mark.parametrize("loss_func,per_item", [(CrossEntropyLossFlat(), ce_none),
                                                (LabelSmoothingCrossEntropy(0.1), ls_none),
                                                (nn.CrossEntropyLoss(), ce_none)])
def test_mixup_mixes_inputs_and_loss_by_the_hand_formula(loss_func, per_item):
    learn = make_learner(loss_func)
    mix, spy, before = MixUp(0.4), Spy(), Before()
    mix.distrib = Fixed(0.3)  # max(0.3, 0.7) -> lam 0.7 for every item
    with learn.no_logging():
        learn.fit(1, cbs=[mix, spy, before])
    train = [s for s in spy.seen if s["training"]]
    assert len(train) == 4 and torch.allclose(mix.lam, torch.full((16,), 0.7))
    s, x0, y0 = train[-1], before.xb[3], before.yb[3]
    # the partner of item i is the one whose target is mix.yb1[i]: recover the shuffle from the mixed inputs
    y1 = mix.yb1[0]
    x_partner = (s["xb"] - 0.7 * x0) / 0.3
    assert torch.equal(s["yb"], y0)  # class targets are left alone; the loss is mixed instead
    partner_idx = [int(torch.cdist(x_partner[i].reshape(1, -1), x0.reshape(16, -1)).argmin()) for i in range(16)]
    assert torch.allclose(x_partner, x0[partner_idx], atol=1e-4) and torch.equal(y1, y0[partner_idx])
    expected = (0.7 * per_item(s["pred"], y0) + 0.3 * per_item(s["pred"], y1)).mean()
    assert torch.allclose(s["loss"], expected, atol=1e-6)
    assert s["loss_grad"].requires_grad and not s["loss"].requires_grad
    assert getattr(loss_func, "reduction", "mean") == "mean"  # restored after the per-item calls


def test_validation_metrics_get_preds_and_validate_are_unaffected():
    learn = make_learner(CrossEntropyLossFlat())
    plain_val = learn.validate()
    plain_preds = learn.get_preds()[0]
    spy = Spy()
    learn.add_cbs([MixUp(0.4), spy])
    assert learn.validate() == plain_val
    assert torch.equal(learn.get_preds()[0], plain_preds)
    valid = [s for s in spy.seen if not s["training"]]
    xv = torch.cat([b[0] for b in learn.dls.valid])
    assert torch.equal(torch.cat([s["xb"] for s in valid]), torch.cat([xv, xv]))  # validate + get_preds saw raw inputs
    with learn.no_logging():
        learn.fit(1)
    # the recorded validation loss is the plain loss of the trained model
    assert learn.recorder.values[-1][1] == pytest.approx(learn.validate()[0], abs=1e-6)


def test_cutmix_box_area_is_one_minus_lam_and_box_comes_from_the_partner():
    learn = make_learner(CrossEntropyLossFlat())
    cut, before, spy = CutMix(1.0), Before(), Spy()
    cut.distrib = Fixed(0.5)
    torch.manual_seed(3)
    with learn.no_logging():
        learn.fit(1, cbs=[cut, before, spy])
    s, x0, y0 = [t for t in spy.seen if t["training"]][-1], before.xb[3], before.yb[3]
    x1, y1, x2, y2 = cut.box
    area = (x2 - x1) * (y2 - y1)
    assert 0 < area <= 64 and cut.lam.item() == pytest.approx(1 - area / 64)
    changed = (s["xb"] != x0).any(1).any(0)  # (H, W) pixels that differ for some item
    inside = torch.zeros(8, 8, dtype=torch.bool)
    inside[y1:y2, x1:x2] = True
    assert not changed[~inside].any() and changed[inside].all()
    lam = cut.lam.item()
    expected = (lam * ce_none(s["pred"], y0) + (1 - lam) * ce_none(s["pred"], cut.yb1[0])).mean()
    assert torch.allclose(s["loss"], expected, atol=1e-6)


def test_cutmix_rand_bbox_matches_the_requested_area_away_from_borders():
    cut = CutMix()
    torch.manual_seed(0)
    for lam in (0.25, 0.5, 0.84):
        boxes = [cut.rand_bbox(100, 100, torch.tensor(lam)) for _ in range(200)]
        full = [(x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in boxes if min(x1, y1) > 0 and max(x2, y2) < 100]  # unclipped
        side = 2 * (round(100 * (1 - lam) ** 0.5) // 2)
        assert full and all(a == side * side for a in full)


def test_float_targets_are_blended():
    learn = make_learner(BCEWithLogitsLossFlat())
    learn.dls = DataLoaders(*[TorchDataLoader(TensorDataset(b.dataset.tensors[0], F.one_hot(b.dataset.tensors[1], 2).float()),
                                              batch_size=16) for b in (learn.dls.train.torch_dl, learn.dls.valid.torch_dl)],
                            device="cpu")
    learn.metrics = []
    mix, spy = MixUp(), Spy()
    mix.distrib = Fixed(0.8)
    with learn.no_logging():
        learn.fit(1, cbs=[mix, spy])
    s = [t for t in spy.seen if t["training"]][0]
    vals = s["yb"].unique()
    assert all(min(abs(v - t) for t in (0.0, 0.2, 0.8, 1.0)) < 1e-6 for v in vals.tolist())
    assert (vals - 0.2).abs().min() < 1e-6 and torch.allclose(s["yb"].sum(1), torch.ones(16))
    assert torch.allclose(s["loss"], F.binary_cross_entropy_with_logits(s["pred"], s["yb"]))


def test_mixup_still_learns():
    learn = make_learner(CrossEntropyLossFlat(), n=256)
    with learn.no_logging():
        learn.fit_one_cycle(4, 1e-2, cbs=MixUp(0.4))
    assert learn.validate()[1] > 0.85


def test_bad_alpha_and_loss_without_reduction_are_explained():
    with pytest.raises(ValueError, match="alpha"):
        MixUp(0)
    learn = make_learner(lambda p, y: F.cross_entropy(p, y))
    with pytest.raises(TypeError, match="reduction"), learn.no_logging():
        learn.fit(1, cbs=MixUp())


class CountingCE(CrossEntropyLossFlat):
    """CrossEntropyLossFlat that counts its calls."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    def forward(self, inp, targ):
        self.calls += 1
        return super().forward(inp, targ)


def mask_learner(loss_func, n=8, bs=4):
    """Per-pixel classification of 4x4 'images' into 3 classes; half of every mask is ignore_index 255."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 4, 4, generator=g)
    y = torch.randint(0, 3, (n, 4, 4), generator=g)
    y[:, :, :2] = 255
    dls = DataLoaders(TorchDataLoader(TensorDataset(x, y), batch_size=bs, shuffle=True),
                      TorchDataLoader(TensorDataset(x, y), batch_size=bs), device="cpu")
    torch.manual_seed(0)
    learn = Learner(dls, nn.Conv2d(3, 3, 1), loss_func=loss_func, lr=0.0)
    learn.remove_cb(ProgressCallback)
    return learn


@pytest.mark.parametrize("kw", [dict(ignore_index=255), dict(ignore_index=255, weight=torch.tensor([1.0, 3.0, 0.5]))])
@pytest.mark.parametrize("cb,draw", [(MixUp, 1.0), (MixUp, 0.3), (CutMix, 0.5), (CutMix, 1.0)])
def test_mixed_loss_with_ignore_index_and_class_weights(kw, cb, draw):
    lf = CountingCE(axis=1, **kw)
    learn = mask_learner(lf)
    mix, spy, before = cb(), Spy(), Before()
    mix.distrib = Fixed(draw)
    torch.manual_seed(1)
    with learn.no_logging():
        learn.fit(1, cbs=[mix, spy, before])
    s, y0 = [t for t in spy.seen if t["training"]][-1], before.yb[1]  # the last of the 2 training batches
    pred, y1 = s["pred"], mix.yb1[0]
    plain = F.cross_entropy(pred, y0, ignore_index=255, weight=kw.get("weight"))
    if cb is MixUp:
        lam = mix.lam
        per = [F.cross_entropy(pred, y, ignore_index=255, weight=kw.get("weight"), reduction="none").sum((1, 2))
               for y in (y0, y1)]
        w = kw.get("weight", torch.ones(3))
        cnt = [torch.where(y == 255, 0.0, w[y.clamp(0, 2)]).sum((1, 2)) for y in (y0, y1)]
        expected = (lam * per[0] + (1 - lam) * per[1]).sum() / (lam * cnt[0] + (1 - lam) * cnt[1]).sum()
    else:
        lam = mix.lam.item()
        expected = lam * plain + (1 - lam) * F.cross_entropy(pred, y1, ignore_index=255, weight=kw.get("weight"))
    assert torch.allclose(s["loss"], expected, atol=1e-6)
    if draw == 1.0:  # lam = 1 (MixUp) / no box (CutMix): exactly the plain loss (before: about half of it)
        assert torch.allclose(s["loss"], plain, atol=1e-6) and plain > 0.5
    assert lf.reduction == "mean"
    n_train, n_valid = 2, 2
    assert lf.calls == 2 * n_train + n_valid  # two per training batch (before: three), one per validation batch
    assert learn.loss_func is lf  # the learner's own loss is back


def test_mixup_at_lam_zero_is_the_partner_loss_with_ignore_index():
    lf = CrossEntropyLossFlat(axis=1, ignore_index=255)
    mix = MixUp()
    g = torch.Generator().manual_seed(0)
    pred, y0, y1 = torch.randn(4, 3, 4, 4, generator=g), torch.randint(0, 3, (4, 4, 4), generator=g), \
        torch.randint(0, 3, (4, 4, 4), generator=g)
    y0[:, :3] = 255
    mix.yb1, mix.lam = (y1,), torch.zeros(4)
    assert torch.allclose(mix._mix(lf, pred, (y0,)), lf(pred, y1), atol=1e-6)
    mix.lam = torch.ones(4)
    assert torch.allclose(mix._mix(lf, pred, (y0,)), lf(pred, y0), atol=1e-6)


def test_mixup_beta_on_the_device_is_made_once():
    mix = MixUp(0.4)
    assert mix._beta(torch.device("cpu")) is mix.distrib
    d = mix._beta(torch.device("meta"))
    assert d is mix._beta(torch.device("meta")) and d.concentration1.device.type == "meta"
    assert float(mix.distrib.concentration1) == pytest.approx(0.4)
    mix.distrib = Fixed(0.3)  # a replaced distribution is used as given
    assert mix._beta(torch.device("meta")) is mix.distrib
