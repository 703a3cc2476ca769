"""fastai's metrics and losses (nbs/13b_metrics, 01a_losses): their examples ported, values checked against
scikit-learn / SciPy (test-only dependencies) and by hand."""
import numpy as np
import pytest
import sklearn.metrics as skm
import scipy.stats as scs
import torch
import torch.nn.functional as F
from torch import nn

from learnkit.basics import (AccumMetric, ActivationType, APScoreMulti, BCELossFlat, DataLoader, DataLoaders,
                             JaccardCoeffMulti, Learner, LossMetrics, Metric, PearsonCorrCoef, Perplexity, R2Score,
                             RocAucMulti, SpearmanCorrCoef, perplexity, skm_to_fastai)
from learnkit.metric_funcs import average_precision_score, roc_auc_score


class TstLearner:
    """fastai's fake learner for metric tests: only pred, yb (and loss, loss_func)."""

    def __init__(self):
        self.pred, self.yb, self.loss, self.loss_func = None, None, None, None


def compute_val(met, x1, x2):
    """fastai's helper: accumulate three batches of sizes 6, 9, 5 and read the value."""
    met.reset()
    vals = [0, 6, 15, 20]
    learn = TstLearner()
    for i in range(3):
        learn.pred, learn.yb = x1[vals[i]:vals[i + 1]], (x2[vals[i]:vals[i + 1]],)
        met.accumulate(learn)
    return met.value


def _l2_mean(x, y):
    return torch.sqrt((x.float() - y.float()).pow(2).mean())


def test_accum_metric_fastai_examples():
    x1, x2 = torch.randn(20, 5), torch.randn(20, 5)
    tst = AccumMetric(_l2_mean)
    assert compute_val(tst, x1, x2) == pytest.approx(float(_l2_mean(x1, x2)), rel=1e-5)
    assert torch.equal(torch.cat(tst.preds), x1.view(-1)) and torch.equal(torch.cat(tst.targs), x2.view(-1))
    x1, x2 = torch.randn(20, 5), torch.randint(0, 5, (20,))
    tst = AccumMetric(_l2_mean, dim_argmax=-1)
    assert compute_val(tst, x1, x2) == pytest.approx(float(_l2_mean(x1.argmax(dim=-1), x2)), rel=1e-5)
    x1, x2 = torch.randn(20, 5), torch.randint(0, 2, (20, 5)).bool()
    tst = AccumMetric(_l2_mean, thresh=0.5)
    assert compute_val(tst, x1, x2) == pytest.approx(float(_l2_mean(x1 >= 0.5, x2)), rel=1e-5)
    x1, x2 = torch.randn(20, 5), torch.randn(20, 5)
    tst = AccumMetric(_l2_mean, activation=ActivationType.Sigmoid)
    assert compute_val(tst, x1, x2) == pytest.approx(float(_l2_mean(torch.sigmoid(x1), x2)), rel=1e-5)
    tst = AccumMetric(lambda x, y: isinstance(x, np.ndarray) and isinstance(y, np.ndarray), to_np=True)
    assert compute_val(tst, x1, x2) is True
    tst = AccumMetric(lambda x, y: torch.sqrt(x.pow(2).mean()))
    assert compute_val(tst, x1, x2) == pytest.approx(float(torch.sqrt(x1.pow(2).mean())), rel=1e-5)
    tst = AccumMetric(lambda x, y: torch.sqrt(x.pow(2).mean()), invert_arg=True)
    assert compute_val(tst, x1, x2) == pytest.approx(float(torch.sqrt(x2.pow(2).mean())), rel=1e-5)

    def l2_argmax(x, y):
        return torch.sqrt((x.argmax(dim=-1).float() - y.float()).pow(2).mean())
    x1, x2 = torch.randn(20, 5), torch.randint(0, 5, (20,))
    tst = AccumMetric(l2_argmax, dim_argmax=-1, flatten=False, activation=ActivationType.Softmax)
    assert compute_val(tst, x1, x2) == pytest.approx(float(l2_argmax(F.softmax(x1, dim=-1), x2)), rel=1e-5)
    with pytest.raises(ValueError, match="activation"):
        AccumMetric(_l2_mean, activation="relu")


def test_skm_to_fastai_fastai_examples():
    tst_single = skm_to_fastai(skm.precision_score)
    x1, x2 = torch.randn(20, 2), torch.randint(0, 2, (20,))
    assert compute_val(tst_single, x1, x2) == pytest.approx(skm.precision_score(x2, x1.argmax(dim=-1)))
    assert tst_single.name == "precision_score"
    tst_multi = skm_to_fastai(skm.precision_score, thresh=0.2)
    x1, x2 = torch.randn(20), torch.randint(0, 2, (20,))
    assert compute_val(tst_multi, x1, x2) == pytest.approx(skm.precision_score(x2, torch.sigmoid(x1) >= 0.2))
    tst_multi = skm_to_fastai(skm.precision_score, thresh=0.2, activation=ActivationType.No)
    assert compute_val(tst_multi, x1, x2) == pytest.approx(skm.precision_score(x2, x1 >= 0.2))
    tst_reg = skm_to_fastai(skm.r2_score, is_class=False)
    x1, x2 = torch.randn(20, 5), torch.randn(20, 5)
    assert compute_val(tst_reg, x1, x2) == pytest.approx(skm.r2_score(x2.view(-1), x1.view(-1)), rel=1e-5)
    assert tst_reg(x1, x2) == pytest.approx(skm.r2_score(x2.view(-1), x1.view(-1)), rel=1e-5)


def test_r2score_flattens_multi_column_targets_as_fastai():
    x1, x2 = torch.randn(20, 5), torch.randn(20, 5)
    assert compute_val(R2Score(), x1, x2) == pytest.approx(skm.r2_score(x2.view(-1), x1.view(-1)), rel=1e-5)
    w = torch.rand(100)
    x1, x2 = torch.randn(100), torch.randn(100)
    assert R2Score(sample_weight=w.numpy())(x1, x2) == pytest.approx(
        skm.r2_score(x2, x1, sample_weight=w), rel=1e-5)
    assert R2Score().name == "r2_score"


def test_pearson_spearman_fastai_examples():
    x, y = torch.randint(-999, 999, (20,)), torch.randint(-999, 999, (20,))
    assert compute_val(PearsonCorrCoef(), x, y) == pytest.approx(scs.pearsonr(x.view(-1), y.view(-1))[0])
    assert compute_val(SpearmanCorrCoef(), x, y) == pytest.approx(scs.spearmanr(x.view(-1), y.view(-1))[0])
    ties = torch.tensor([1., 2, 2, 3, 3, 3, 4, 5, 5, 6])
    other = torch.tensor([2., 1, 4, 3, 3, 6, 5, 8, 7, 7])
    assert SpearmanCorrCoef()(ties, other) == pytest.approx(scs.spearmanr(ties, other)[0])
    assert (PearsonCorrCoef().name, SpearmanCorrCoef().name) == ("pearsonr", "spearmanr")
    nan = torch.tensor([1., float("nan"), 3, 4, 5])
    assert np.isnan(SpearmanCorrCoef()(nan, torch.arange(5.)))
    assert SpearmanCorrCoef(nan_policy="omit")(nan, torch.arange(5.)) == pytest.approx(1.0)


@pytest.mark.filterwarnings("ignore:No positive class found")  # sklearn, for a row without labels ('samples')
def test_ap_score_and_roc_auc_multi_match_sklearn():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 4, generator=g)  # compute_val reads 20 rows
    y = (torch.rand(20, 4, generator=g) < torch.sigmoid(x)).long()
    y[0], y[1] = 0, 1  # every label has positives and negatives
    x[:5, 1] = x[5:10, 1]  # tied scores
    for avg in ("macro", "micro", "weighted", "samples"):
        assert compute_val(APScoreMulti(average=avg), x, y) == pytest.approx(
            skm.average_precision_score(y, torch.sigmoid(x), average=avg), rel=1e-9)
    for avg in ("macro", "micro", "weighted"):
        assert compute_val(RocAucMulti(average=avg), x, y) == pytest.approx(
            skm.roc_auc_score(y, torch.sigmoid(x), average=avg), rel=1e-9)
    assert compute_val(RocAucMulti(max_fpr=0.3), x, y) == pytest.approx(
        skm.roc_auc_score(y, torch.sigmoid(x), max_fpr=0.3), rel=1e-9)
    w = torch.rand(20, generator=g).numpy()
    s = x[:, 0].numpy()
    assert average_precision_score(y[:, 0], s, sample_weight=w) == pytest.approx(
        skm.average_precision_score(y[:, 0], s, sample_weight=w), rel=1e-9)
    assert roc_auc_score(y[:, 0], s, sample_weight=w) == pytest.approx(
        skm.roc_auc_score(y[:, 0], s, sample_weight=w), rel=1e-9)
    assert (APScoreMulti().name, RocAucMulti().name) == ("average_precision_score", "roc_auc_score")
    # hand value: scores 0.1 0.4 0.35 0.8 for labels 0 0 1 1 -> AUC 0.75, AP (1 + 1/... ) as sklearn's docs: 0.8333
    assert roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.8333333, rel=1e-6)
    with pytest.raises(ValueError, match="one class"):
        roc_auc_score([1, 1, 1], [0.1, 0.2, 0.3])


def test_jaccard_coeff_multi():
    x1 = torch.randn(20, 3, 4, 4)
    x2 = torch.randint(0, 3, (20, 4, 4))
    pred = x1.argmax(1)
    ious = []
    for c in range(3):
        p, t = pred == c, x2 == c
        ious.append((p & t).sum().item() / (p | t).sum().item())
    assert compute_val(JaccardCoeffMulti(), x1, x2) == pytest.approx(sum(ious) / 3)
    assert JaccardCoeffMulti().name == "jaccard_coeff_multi"


def test_perplexity_fastai_example():
    x1, x2 = torch.randn(20, 5), torch.randint(0, 5, (20,))
    tst = perplexity
    assert isinstance(tst, Perplexity) and tst.name == "perplexity"
    tst.reset()
    vals = [0, 6, 15, 20]
    learn = TstLearner()
    for i in range(3):
        learn.yb = (x2[vals[i]:vals[i + 1]],)
        learn.loss = F.cross_entropy(x1[vals[i]:vals[i + 1]], x2[vals[i]:vals[i + 1]])
        tst.accumulate(learn)
    assert tst.value == pytest.approx(float(torch.exp(F.cross_entropy(x1, x2))), rel=1e-5)


def _synth_dls(n=64, bs=16):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 1, generator=g)
    y = 2 * x + 1 + 0.1 * torch.randn(n, 1, generator=g)
    ds = list(zip(x, y))
    return DataLoaders(DataLoader(ds[:48], bs=bs, shuffle=True), DataLoader(ds[48:], bs=bs))


class CombineL1L2(nn.Module):
    """fastai's example loss exposing its two terms."""

    def forward(self, out, targ):
        self.l1 = F.l1_loss(out, targ)
        self.l2 = F.mse_loss(out, targ)
        return self.l1 + self.l2


class FastaiStyleMAE(Metric):
    """A metric written the fastai way: reset / accumulate(learn) / value, reading learn.pred and learn.yb."""

    def reset(self):
        self.total, self.count = 0., 0

    def accumulate(self, learn):
        self.total += (learn.pred - learn.yb[0]).abs().sum().item()
        self.count += learn.y.numel()

    @property
    def value(self):
        return self.total / self.count if self.count else None


def test_fastai_style_metric_and_loss_metrics_inside_fit(tmp_path):
    torch.manual_seed(0)
    learn = Learner(_synth_dls(), nn.Linear(1, 1), loss_func=CombineL1L2(), path=tmp_path,
                    metrics=[FastaiStyleMAE(), *LossMetrics("l1,l2")])
    with learn.no_bar(), learn.no_logging():
        learn.fit(2, lr=0.1)
    assert learn.recorder.metric_names[3:6] == ["fastai_style_mae", "l1", "l2"]
    preds, targs = learn.get_preds()
    mae, l1, l2 = learn.recorder.values[-1][2:5]
    assert mae == pytest.approx(float((preds - targs).abs().mean()), rel=1e-5)
    # batches of 16: the bs-weighted mean of per-batch l1 equals the overall l1
    assert l1 == pytest.approx(mae, rel=1e-5)
    assert l2 == pytest.approx(float(F.mse_loss(preds, targs)), rel=1e-5)
    learn.xb, learn.yb = (torch.ones(2, 1),), (torch.zeros(2, 1), torch.ones(2))
    assert learn.x is learn.xb[0] and learn.y == learn.yb  # fastai's detuplify: one element -> the element
    out = learn.to_detach([torch.ones(2, requires_grad=True)])
    assert not out[0].requires_grad and out[0].device.type == "cpu"


def test_bce_loss_flat_fastai_example():
    tst = BCELossFlat()
    output = torch.sigmoid(torch.randn(32, 5, 10))
    target = torch.randint(0, 2, (32, 5, 10))
    loss = tst(output, target)
    assert float(loss) == pytest.approx(float(F.binary_cross_entropy(output, target.float())), rel=1e-6)
    with pytest.raises(RuntimeError):
        nn.BCELoss()(output, target)  # torch's loss refuses integer targets: the flat one floatifies them
    assert torch.equal(tst.activation(output), output)
    assert torch.equal(tst.decodes(output), output > 0.5)
    per_item = BCELossFlat(reduction="none")(output, target)
    assert per_item.shape == (32 * 5 * 10,)
