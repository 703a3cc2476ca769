"""Losses against hand computations (plain Python math on small tensors)."""
import math

import pytest
import torch

from learnkit.losses import (BCEWithLogitsLossFlat, CrossEntropyLossFlat, DiceLoss, FocalLoss, FocalLossFlat,
                             L1LossFlat, LabelSmoothingCrossEntropy, LabelSmoothingCrossEntropyFlat, MSELossFlat,
                             loss_for_kind)


def _log_softmax(row):
    m = max(row)
    lse = m + math.log(sum(math.exp(v - m) for v in row))
    return [v - lse for v in row]


LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0], [0.0, 0.0, 0.0]])
TARGS = torch.tensor([0, 2, 1, 1])


def _ce_items():
    return [-_log_softmax(r)[t] for r, t in zip(LOGITS.tolist(), TARGS.tolist())]


def test_cross_entropy_flat_matches_hand():
    assert CrossEntropyLossFlat()(LOGITS, TARGS).item() == pytest.approx(sum(_ce_items()) / 4, rel=1e-6)
    per_item = CrossEntropyLossFlat(reduction="none")(LOGITS, TARGS)
    assert per_item.tolist() == pytest.approx(_ce_items(), rel=1e-6)


def test_cross_entropy_flat_segmentation_pairs_each_pixel_with_its_target():
    torch.manual_seed(0)
    out = torch.randn(2, 3, 4, 5)  # (n, classes, h, w): w != h catches a transposed flatten
    targ = torch.randint(0, 3, (2, 4, 5))
    expected = [-_log_softmax(out[n, :, i, j].tolist())[targ[n, i, j].item()]
                for n in range(2) for i in range(4) for j in range(5)]
    loss = CrossEntropyLossFlat(axis=1)(out, targ)
    assert loss.item() == pytest.approx(sum(expected) / len(expected), rel=1e-5)
    lf = CrossEntropyLossFlat(axis=1)
    assert lf.decodes(out).shape == (2, 4, 5)
    assert torch.allclose(lf.activation(out).sum(1), torch.ones(2, 4, 5))


def test_cross_entropy_flat_target_count_error():
    with pytest.raises(ValueError, match="not one-hot"):
        CrossEntropyLossFlat()(LOGITS, torch.zeros(4, 3))


def test_bce_with_logits_flat_matches_hand():
    x = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    y = torch.tensor([[1, 0], [0, 1]])
    sig = lambda v: 1 / (1 + math.exp(-v))
    items = [-(t * math.log(sig(v)) + (1 - t) * math.log(1 - sig(v))) for v, t in zip(x.flatten().tolist(), y.flatten().tolist())]
    lf = BCEWithLogitsLossFlat()
    assert lf(x, y).item() == pytest.approx(sum(items) / 4, rel=1e-6)
    assert lf.decodes(lf.activation(x)).tolist() == [[True, False], [True, False]]
    with pytest.raises(ValueError, match="multi-hot"):
        lf(x, torch.tensor([1, 0]))


def test_regression_losses_flatten_and_match_hand():
    pred = torch.tensor([[1.0], [2.0], [4.0]])  # (n, 1) against (n,): no broadcasting to (n, n)
    targ = torch.tensor([1.5, 2.0, 1.0])
    assert MSELossFlat()(pred, targ).item() == pytest.approx((0.25 + 0 + 9) / 3)
    assert L1LossFlat()(pred, targ).item() == pytest.approx((0.5 + 0 + 3) / 3)
    assert L1LossFlat(reduction="sum")(pred, targ).item() == pytest.approx(3.5)
    assert torch.equal(MSELossFlat().decodes(pred), pred) and torch.equal(L1LossFlat().activation(pred), pred)
    with pytest.raises(ValueError, match="n_out"):
        MSELossFlat()(torch.zeros(3, 2), targ)


def test_label_smoothing_matches_fastai_formula():
    eps, c = 0.1, 3
    items = []
    for r, t in zip(LOGITS.tolist(), TARGS.tolist()):
        lp = _log_softmax(r)
        items.append((1 - eps) * -lp[t] + eps / c * -sum(lp))
    assert LabelSmoothingCrossEntropy(eps)(LOGITS, TARGS).item() == pytest.approx(sum(items) / 4, rel=1e-6)
    assert LabelSmoothingCrossEntropy(eps, reduction="sum")(LOGITS, TARGS).item() == pytest.approx(sum(items), rel=1e-6)
    assert LabelSmoothingCrossEntropy(eps, reduction="none")(LOGITS, TARGS).tolist() == pytest.approx(items, rel=1e-6)
    assert LabelSmoothingCrossEntropy(0.0)(LOGITS, TARGS).item() == pytest.approx(sum(_ce_items()) / 4, rel=1e-6)


def test_label_smoothing_with_weight_uses_weighted_nll_mean():
    eps, c, w = 0.2, 3, [1.0, 2.0, 0.5]
    smooth, nll_num, nll_den = 0.0, 0.0, 0.0
    for r, t in zip(LOGITS.tolist(), TARGS.tolist()):
        lp = _log_softmax(r)
        smooth += -sum(lp)
        nll_num += w[t] * -lp[t]
        nll_den += w[t]
    expected = smooth / 4 * eps / c + (1 - eps) * nll_num / nll_den
    loss = LabelSmoothingCrossEntropy(eps, weight=torch.tensor(w))(LOGITS, TARGS)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_label_smoothing_flat_moves_class_axis():
    torch.manual_seed(1)
    out = torch.randn(2, 3, 5)  # (n, classes, seq)
    targ = torch.randint(0, 3, (2, 5))
    flat = LabelSmoothingCrossEntropyFlat(eps=0.1, axis=1)(out, targ)
    ref = LabelSmoothingCrossEntropy(0.1)(out.permute(0, 2, 1).reshape(-1, 3), targ.reshape(-1))
    assert flat.item() == pytest.approx(ref.item(), rel=1e-6)
    lf = LabelSmoothingCrossEntropyFlat()
    lf.reduction = "none"  # what get_preds(with_loss=True) does
    assert lf(LOGITS, TARGS).shape == (4,)


def test_focal_loss_matches_hand_and_reduces_to_ce():
    items = []
    for r, t in zip(LOGITS.tolist(), TARGS.tolist()):
        p = math.exp(_log_softmax(r)[t])
        items.append((1 - p) ** 2 * -math.log(p))
    assert FocalLossFlat()(LOGITS, TARGS).item() == pytest.approx(sum(items) / 4, rel=1e-6)
    assert FocalLossFlat(gamma=0.0)(LOGITS, TARGS).item() == pytest.approx(sum(_ce_items()) / 4, rel=1e-6)
    w = [1.0, 3.0, 0.5]
    weighted = [wi * li for wi, li in zip([w[t] for t in TARGS.tolist()], items)]
    loss = FocalLoss(weight=torch.tensor(w), reduction="sum")(LOGITS, TARGS)
    assert loss.item() == pytest.approx(sum(weighted), rel=1e-6)
    lf = FocalLossFlat()
    assert lf.decodes(LOGITS).tolist() == [0, 2, 1, 0]


def test_dice_loss_matches_hand():
    # one item, two classes, two pixels
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2)
    targ = torch.tensor([[[0, 1]]])  # (1, 1, 2)
    p1 = [1 / (1 + math.exp(-(0.0 - 2.0))), 1 / (1 + math.exp(-(1.0 - 0.0)))]  # softmax prob of class 1 per pixel
    p0 = [1 - v for v in p1]
    t0, t1 = [1, 0], [0, 1]
    s = 1e-6

    def dice(p, t, square=False):
        inter = sum(a * b for a, b in zip(p, t))
        union = sum((a * a if square else a) + b for a, b in zip(p, t))
        return 1 - (2 * inter + s) / (union + s)
    expected = [dice(p0, t0), dice(p1, t1)]
    assert DiceLoss()(logits, targ).item() == pytest.approx(sum(expected), rel=1e-6)
    assert DiceLoss(reduction="mean")(logits, targ).item() == pytest.approx(sum(expected) / 2, rel=1e-6)
    sq = [dice(p0, t0, True), dice(p1, t1, True)]
    assert DiceLoss(square_in_union=True)(logits, targ).item() == pytest.approx(sum(sq), rel=1e-6)
    assert DiceLoss(reduction="none")(logits, targ).shape == (1, 2)
    assert DiceLoss().decodes(logits).tolist() == [[[0, 1]]]
    with pytest.raises(ValueError, match="not one-hot"):
        DiceLoss()(logits, torch.zeros(1, 2, 1, 2))


def test_losses_are_differentiable():
    x = LOGITS.clone().requires_grad_()
    for lf in (CrossEntropyLossFlat(), LabelSmoothingCrossEntropyFlat(), FocalLossFlat()):
        lf(x, TARGS).backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        x.grad = None


def test_loss_for_kind():
    assert isinstance(loss_for_kind("category"), CrossEntropyLossFlat)
    assert isinstance(loss_for_kind("multicategory"), BCEWithLogitsLossFlat)
    assert isinstance(loss_for_kind("regression"), MSELossFlat)
    assert loss_for_kind("mask").axis == 1
    with pytest.raises(ValueError, match="loss_func="):
        loss_for_kind("generic")


def test_bad_reduction_is_named():
    with pytest.raises(ValueError, match="reduction='avg'"):
        DiceLoss(reduction="avg")


@pytest.mark.parametrize("loss", [
    CrossEntropyLossFlat(axis=1, label_smoothing=0.1), BCEWithLogitsLossFlat(thresh=0.3), MSELossFlat(),
    L1LossFlat(reduction="sum"), LabelSmoothingCrossEntropy(eps=0.2), LabelSmoothingCrossEntropyFlat(eps=0.3, axis=1),
    FocalLoss(gamma=1.5), FocalLossFlat(gamma=3.0, axis=1), DiceLoss(smooth=1.0, square_in_union=True)])
def test_get_config_rebuilds_the_loss(loss):
    cfg = loss.get_config()
    assert cfg and all(isinstance(v, (int, float, str, bool)) for v in cfg.values())  # JSON-safe, for export
    rebuilt = type(loss)(**cfg)
    assert rebuilt.get_config() == cfg
    x = torch.randn(2, 3, 4)
    assert torch.equal(rebuilt.decodes(rebuilt.activation(x)), loss.decodes(loss.activation(x)))
