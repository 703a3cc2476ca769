"""Label smoothing and focal loss against hand computations (math module, no torch.nn.functional)."""
import math

import pytest
import torch

from learnkit.losses import (
    FocalLossFlat,
    LabelSmoothingCrossEntropy,
    LabelSmoothingCrossEntropyFlat,
)


def log_softmax(row):
    m = max(row)
    lse = m + math.log(sum(math.exp(v - m) for v in row))
    return [v - lse for v in row]


def smoothed(row, t, eps):
    """fastai's formula: eps/c * sum_j(-log p_j) + (1 - eps) * -log p_t."""
    lp = log_softmax(row)
    return eps / len(row) * -sum(lp) + (1 - eps) * -lp[t]


LOGITS = [[1.0, 2.0, 3.0], [0.5, -1.0, 0.0], [2.0, 2.0, -3.0]]
TARGS = [2, 0, 1]


def test_label_smoothing_single_item_by_hand():
    # logsumexp(1, 2, 3) = 3.40760596; -log p = (2.40760596, 1.40760596, 0.40760596)
    loss = LabelSmoothingCrossEntropy(eps=0.1)(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([2]))
    assert loss.item() == pytest.approx(0.1 / 3 * 4.22281788 + 0.9 * 0.40760596, abs=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_label_smoothing_reductions(eps, reduction):
    per_item = [smoothed(r, t, eps) for r, t in zip(LOGITS, TARGS)]
    out = LabelSmoothingCrossEntropy(eps=eps, reduction=reduction)(torch.tensor(LOGITS), torch.tensor(TARGS))
    expected = {"mean": sum(per_item) / 3, "sum": sum(per_item), "none": per_item}[reduction]
    assert torch.allclose(out, torch.tensor(expected), atol=1e-6)


def test_label_smoothing_eps_zero_is_cross_entropy_and_eps_one_is_uniform():
    x, t = torch.tensor(LOGITS), torch.tensor(TARGS)
    ce = sum(-log_softmax(r)[k] for r, k in zip(LOGITS, TARGS)) / 3
    assert LabelSmoothingCrossEntropy(eps=0.0)(x, t).item() == pytest.approx(ce, abs=1e-6)
    uniform = sum(-sum(log_softmax(r)) / 3 for r in LOGITS) / 3
    assert LabelSmoothingCrossEntropy(eps=1.0)(x, t).item() == pytest.approx(uniform, abs=1e-6)


def test_label_smoothing_flat_takes_classes_last_and_flattens():
    x = torch.tensor(LOGITS).reshape(1, 3, 3)  # (bs=1, seq=3, classes=3): the Flat form reads classes on axis -1
    loss = LabelSmoothingCrossEntropyFlat(eps=0.1)(x, torch.tensor([TARGS]))
    assert loss.item() == pytest.approx(sum(smoothed(r, t, 0.1) for r, t in zip(LOGITS, TARGS)) / 3, abs=1e-6)
    seg = torch.tensor(LOGITS).T.reshape(1, 3, 3, 1)  # classes on axis 1, 3x1 "pixels"
    loss1 = LabelSmoothingCrossEntropyFlat(eps=0.1, axis=1)(seg, torch.tensor(TARGS).reshape(1, 3, 1))
    assert loss1.item() == pytest.approx(loss.item(), abs=1e-6)


def test_label_smoothing_class_weights_weight_the_nll_term():
    w = [1.0, 2.0, 0.5]
    out = LabelSmoothingCrossEntropy(eps=0.1, weight=torch.tensor(w))(torch.tensor(LOGITS), torch.tensor(TARGS))
    smooth = sum(-sum(log_softmax(r)) for r in LOGITS) / 3
    nll = sum(w[t] * -log_softmax(r)[t] for r, t in zip(LOGITS, TARGS)) / sum(w[t] for t in TARGS)
    assert out.item() == pytest.approx(0.1 / 3 * smooth + 0.9 * nll, abs=1e-6)


def test_focal_loss_flat_by_hand():
    per_item = []
    for r, t in zip(LOGITS, TARGS):
        p = math.exp(log_softmax(r)[t])
        per_item.append(-((1 - p) ** 2) * math.log(p))
    out = FocalLossFlat(gamma=2.0)(torch.tensor(LOGITS), torch.tensor(TARGS))
    assert out.item() == pytest.approx(sum(per_item) / 3, abs=1e-6)
    none = FocalLossFlat(gamma=0.0, reduction="none")(torch.tensor(LOGITS), torch.tensor(TARGS))
    assert torch.allclose(none, torch.tensor([-log_softmax(r)[t] for r, t in zip(LOGITS, TARGS)]), atol=1e-6)
