"""Metrics fed several unequal batches must equal the metric of the concatenation, by reference formulas
written here in plain Python (scikit-learn's definitions, no scikit-learn)."""
import math
from functools import partial

import pytest
import torch

from learnkit.metric_funcs import r2_score
from learnkit.metrics import (AccumMetric, AvgMetric, BalancedAccuracy, Dice, DiceMulti, F1Score, FBeta, JaccardCoeff,
                              MatthewsCorrCoef, Metric, Precision, R2Score, Recall, RocAuc, RocAucBinary, accuracy,
                              accuracy_multi, error_rate, exp_rmspe, foreground_acc, mae, mse, msle, rmse, to_metric,
                              top_k_accuracy)

SIZES = (7, 3, 12, 1, 9)  # unequal batches, 32 items


def run(metric, preds, targs, sizes=SIZES):
    """Feed ``metric`` batch by batch (after a reset) and return its value."""
    m = to_metric(metric)
    m.reset()
    start = 0
    for n in sizes:
        m.update(preds[start:start + n], targs[start:start + n])
        start += n
    assert start == len(preds)
    return m.value


def batch_mean(func, preds, targs, sizes=SIZES):
    """What a per-batch average would give (wrong for non-mean metrics)."""
    vals, start = [], 0
    for n in sizes:
        vals.append(float(func(preds[start:start + n], targs[start:start + n])))
        start += n
    return sum(vals) / len(vals)


@pytest.fixture
def multiclass():
    g = torch.Generator().manual_seed(0)
    preds = torch.randn(32, 4, generator=g)
    targs = torch.randint(0, 4, (32,), generator=g)
    targs[:4] = torch.arange(4)  # every class occurs
    preds[20:, 3] = -10.0  # class 3 rarely predicted
    return preds, targs


# -- reference formulas (scikit-learn's definitions)

def ref_counts(y, p, labels):
    tp = {c: sum(1 for a, b in zip(y, p) if a == c and b == c) for c in labels}
    ps = {c: sum(1 for b in p if b == c) for c in labels}
    ts = {c: sum(1 for a in y if a == c) for c in labels}
    return tp, ps, ts


def div(a, b):
    return a / b if b else 0.0


def ref_prf(y, p, average, pos_label=1, labels=None, beta=1.0, which="f"):
    present = sorted(set(y) | set(p))
    if average == "binary":
        labels = [pos_label]
    elif labels is None:
        labels = present
    tp, ps, ts = ref_counts(y, p, labels)
    b2 = beta * beta

    def score(t, pp, tt):
        if which == "p":
            return div(t, pp)
        if which == "r":
            return div(t, tt)
        prec, rec = div(t, pp), div(t, tt)
        return div((1 + b2) * prec * rec, b2 * prec + rec)
    if average == "micro":
        return score(sum(tp.values()), sum(ps.values()), sum(ts.values()))
    scores = [score(tp[c], ps[c], ts[c]) for c in labels]
    if average == "weighted":
        return div(sum(s * ts[c] for s, c in zip(scores, labels)), sum(ts[c] for c in labels))
    return sum(scores) / len(scores)


def ref_auc(y, s):
    """Probability a random positive outscores a random negative (ties half): the definition, O(n^2)."""
    pos = [v for v, t in zip(s, y) if t]
    neg = [v for v, t in zip(s, y) if not t]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def softmax_rows(x):
    out = []
    for r in x:
        m = max(r)
        e = [math.exp(v - m) for v in r]
        out.append([v / sum(e) for v in e])
    return out


# -- per-item means

def test_accuracy_error_rate_exact_over_unequal_batches(multiclass):
    preds, targs = multiclass
    dec = preds.argmax(1).tolist()
    ref = sum(a == b for a, b in zip(dec, targs.tolist())) / 32
    assert run(accuracy, preds, targs) == pytest.approx(ref)
    assert run(error_rate, preds, targs) == pytest.approx(1 - ref)
    assert to_metric(accuracy).name == "accuracy" and to_metric(error_rate).name == "error_rate"


def test_accuracy_mismatched_sizes_is_a_clear_error():
    with pytest.raises(ValueError, match="different numbers of values"):
        accuracy(torch.randn(4, 3), torch.zeros(5, dtype=torch.long))


def test_top_k_accuracy(multiclass):
    preds, targs = multiclass
    ref = sum(t in sorted(range(4), key=lambda c: -r[c])[:2] for r, t in zip(preds.tolist(), targs.tolist())) / 32
    assert run(partial(top_k_accuracy, k=2), preds, targs) == pytest.approx(ref)
    assert to_metric(partial(top_k_accuracy, k=2)).name == "top_k_accuracy"
    assert top_k_accuracy(preds, targs, k=4).item() == 1.0
    with pytest.raises(ValueError, match="k=5"):
        top_k_accuracy(preds, targs)


def test_accuracy_multi():
    x = torch.tensor([[2.0, -1.0, 0.1], [-3.0, 0.0, 1.0]])
    y = torch.tensor([[1, 0, 0], [0, 1, 1]])
    # sigmoid > 0.5 <=> logit > 0: decisions [[1,0,1],[0,0,1]] -> 4 of 6 right
    assert accuracy_multi(x, y).item() == pytest.approx(4 / 6)
    # thresh 0.2 on raw probabilities: [[1,0,0],[0,0,1]] -> 5 of 6
    assert accuracy_multi(torch.tensor([[0.9, 0.1, 0.15], [0.0, 0.1, 0.3]]), y, thresh=0.2, sigmoid=False).item() == pytest.approx(5 / 6)


# -- confusion-matrix metrics

@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_f1_precision_recall_multiclass(multiclass, average):
    preds, targs = multiclass
    y, p = targs.tolist(), preds.argmax(1).tolist()
    assert run(F1Score(average=average), preds, targs) == pytest.approx(ref_prf(y, p, average))
    assert run(Precision(average=average), preds, targs) == pytest.approx(ref_prf(y, p, average, which="p"))
    assert run(Recall(average=average), preds, targs) == pytest.approx(ref_prf(y, p, average, which="r"))
    assert run(FBeta(beta=2.0, average=average), preds, targs) == pytest.approx(ref_prf(y, p, average, beta=2.0))


def test_f1_labels_subset_and_absent_label(multiclass):
    preds, targs = multiclass
    y, p = targs.tolist(), preds.argmax(1).tolist()
    assert run(F1Score(average="macro", labels=[0, 2]), preds, targs) == pytest.approx(
        ref_prf(y, p, "macro", labels=[0, 2]))
    # a label never seen and never predictable counts as 0 in a macro average
    assert run(Recall(average="macro", labels=[0, 1, 2, 3, 7]), preds, targs) == pytest.approx(
        ref_prf(y, p, "macro", labels=[0, 1, 2, 3, 7], which="r"))


@pytest.mark.parametrize("pos_label", [0, 1])
def test_binary_scores_and_pos_label(pos_label):
    g = torch.Generator().manual_seed(3)
    preds = torch.randn(32, 2, generator=g)
    targs = torch.randint(0, 2, (32,), generator=g)
    y, p = targs.tolist(), preds.argmax(1).tolist()
    for cls, which in ((F1Score, "f"), (Precision, "p"), (Recall, "r")):
        got = run(cls(pos_label=pos_label), preds, targs)
        assert got == pytest.approx(ref_prf(y, p, "binary", pos_label=pos_label, which=which))
    # one logit per item: positive when > 0
    logit = preds[:, 1] - preds[:, 0]
    assert run(F1Score(), logit, targs) == pytest.approx(ref_prf(y, p, "binary"))


def test_binary_zero_division_gives_zero():
    preds = torch.tensor([[1.0, 0.0]] * 6)  # never predicts class 1
    targs = torch.tensor([0, 1, 0, 1, 0, 0])
    assert run(Precision(), preds, targs, sizes=(2, 4)) == 0.0
    assert run(F1Score(), preds, targs, sizes=(2, 4)) == 0.0
    assert run(Recall(pos_label=0), preds, targs, sizes=(2, 4)) == 1.0


def test_binary_average_with_three_classes_says_what_to_pass(multiclass):
    preds, targs = multiclass
    with pytest.raises(ValueError, match="average='macro'"):
        run(F1Score(), preds, targs)
    with pytest.raises(ValueError, match="average="):
        F1Score(average="samples")


def test_out_of_range_target_is_named():
    with pytest.raises(ValueError, match="outside 0..2"):
        run(F1Score(average="macro"), torch.randn(4, 3), torch.tensor([0, 1, 5, 2]), sizes=(4,))


def test_balanced_accuracy_and_mcc(multiclass):
    preds, targs = multiclass
    y, p = targs.tolist(), preds.argmax(1).tolist()
    classes = sorted(set(y))
    recalls = [sum(1 for a, b in zip(y, p) if a == c and b == c) / sum(1 for a in y if a == c) for c in classes]
    assert run(BalancedAccuracy(), preds, targs) == pytest.approx(sum(recalls) / len(recalls))
    # MCC multi-class (Gorodkin): from the confusion matrix
    labels = sorted(set(y) | set(p))
    t = [sum(1 for a in y if a == c) for c in labels]
    q = [sum(1 for b in p if b == c) for c in labels]
    n, correct = len(y), sum(a == b for a, b in zip(y, p))
    cov_yp = correct * n - sum(a * b for a, b in zip(t, q))
    cov_pp = n * n - sum(b * b for b in q)
    cov_yy = n * n - sum(a * a for a in t)
    assert run(MatthewsCorrCoef(), preds, targs) == pytest.approx(cov_yp / math.sqrt(cov_yy * cov_pp))
    # binary MCC by the textbook formula
    yb = [0, 1, 1, 0, 1, 0, 0, 1]
    pb = [0, 1, 0, 0, 1, 1, 0, 1]
    tp = sum(1 for a, b in zip(yb, pb) if a and b)
    tn = sum(1 for a, b in zip(yb, pb) if not a and not b)
    fp = sum(1 for a, b in zip(yb, pb) if not a and b)
    fn = sum(1 for a, b in zip(yb, pb) if a and not b)
    ref = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    got = run(MatthewsCorrCoef(), torch.tensor(pb), torch.tensor(yb), sizes=(3, 5))  # integer decisions
    assert got == pytest.approx(ref)


def test_classification_metric_names_match_fastai():
    names = [F1Score().name, Precision().name, Recall().name, FBeta().name, RocAuc().name, RocAucBinary().name,
             R2Score().name, Dice().name, JaccardCoeff().name, DiceMulti().name, BalancedAccuracy().name,
             MatthewsCorrCoef().name]
    assert names == ["f1_score", "precision_score", "recall_score", "fbeta_score", "roc_auc_score", "roc_auc_score",
                     "r2_score", "dice", "jaccard_coeff", "dice_multi", "balanced_accuracy_score", "matthews_corrcoef"]


# -- ROC AUC

def test_roc_auc_binary_exact_with_ties():
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(32, 2, generator=g) * 2).round() / 2  # coarse values: many ties
    targs = torch.randint(0, 2, (32,), generator=g)
    prob1 = [r[1] for r in softmax_rows(logits.tolist())]
    ref = ref_auc([t == 1 for t in targs.tolist()], prob1)
    assert run(RocAucBinary(), logits, targs) == pytest.approx(ref)
    assert run(RocAuc(), logits, targs) == pytest.approx(ref)  # two columns: binary AUC
    score = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.4])  # one logit per item, a tie across classes
    y = torch.tensor([0, 0, 1, 1, 1])
    assert run(RocAucBinary(), score, y, sizes=(2, 3)) == pytest.approx(ref_auc([0, 0, 1, 1, 1], score.tolist()))
    assert ref_auc([0, 0, 1, 1, 1], score.tolist()) == pytest.approx((1 + 1.5 + 2) / 6)  # sanity of the reference


@pytest.mark.parametrize("average", ["macro", "weighted", "micro"])
def test_roc_auc_multiclass_one_vs_rest(multiclass, average):
    preds, targs = multiclass
    probs = softmax_rows(preds.tolist())
    y = targs.tolist()
    if average == "micro":
        ref = ref_auc([t == c for t in y for c in range(4)], [p[c] for p in probs for c in range(4)])
    else:
        aucs = [ref_auc([t == c for t in y], [p[c] for p in probs]) for c in range(4)]
        w = [sum(1 for t in y if t == c) for c in range(4)] if average == "weighted" else [1] * 4
        ref = sum(a * b for a, b in zip(aucs, w)) / sum(w)
    assert run(RocAuc(average=average), preds, targs) == pytest.approx(ref)


def test_roc_auc_multilabel():
    g = torch.Generator().manual_seed(2)
    preds = torch.randn(32, 3, generator=g)
    targs = (torch.rand(32, 3, generator=g) > 0.5).long()
    aucs = [ref_auc(targs[:, c].tolist(), preds[:, c].tolist()) for c in range(3)]
    assert run(RocAuc(), preds, targs) == pytest.approx(sum(aucs) / 3)


def test_roc_auc_errors(multiclass):
    preds, targs = multiclass
    with pytest.raises(ValueError, match=r"class\(es\) \[3\] never occur"):
        run(RocAuc(), preds, torch.where(targs == 3, 0, targs))
    with pytest.raises(ValueError, match="use RocAuc"):
        run(RocAucBinary(), preds, targs)
    with pytest.raises(ValueError, match="only one class"):
        run(RocAucBinary(), torch.randn(5, 2), torch.zeros(5, dtype=torch.long), sizes=(5,))


# -- regression

@pytest.fixture
def regression():
    g = torch.Generator().manual_seed(4)
    targs = torch.rand(32, generator=g) * 3 + 0.5
    preds = (targs + torch.randn(32, generator=g) * 0.5).unsqueeze(1)  # model output (n, 1)
    preds[:7] += 2.0  # one bad batch makes per-batch averaging visibly wrong
    return preds, targs


def test_rmse_is_over_all_items_not_mean_of_batches(regression):
    preds, targs = regression
    p, t = preds.flatten().tolist(), targs.tolist()
    ref = math.sqrt(sum((a - b) ** 2 for a, b in zip(p, t)) / 32)
    got = run(rmse, preds, targs)
    assert got == pytest.approx(ref, rel=1e-6)
    assert abs(batch_mean(rmse, preds, targs) - ref) > 1e-2  # the trap this avoids
    assert isinstance(to_metric(rmse), AccumMetric) and to_metric(rmse).name == "rmse"


def test_mean_regression_metrics(regression):
    preds, targs = regression
    p, t = preds.flatten().tolist(), targs.tolist()
    assert run(mae, preds, targs) == pytest.approx(sum(abs(a - b) for a, b in zip(p, t)) / 32, rel=1e-6)
    assert run(mse, preds, targs) == pytest.approx(sum((a - b) ** 2 for a, b in zip(p, t)) / 32, rel=1e-6)
    ref = sum((math.log(1 + a) - math.log(1 + b)) ** 2 for a, b in zip(p, t)) / 32
    assert run(msle, preds, targs) == pytest.approx(ref, rel=1e-5)


def test_exp_rmspe(regression):
    preds, targs = regression
    p, t = preds.flatten().tolist(), targs.tolist()
    ref = math.sqrt(sum(((math.exp(b) - math.exp(a)) / math.exp(b)) ** 2 for a, b in zip(p, t)) / 32)
    assert run(exp_rmspe, preds, targs) == pytest.approx(ref, rel=1e-5)
    assert to_metric(exp_rmspe).name == "exp_rmspe"


def test_r2_score(regression):
    preds, targs = regression
    p, t = preds.flatten().tolist(), targs.tolist()
    mean = sum(t) / 32
    ref = 1 - sum((a - b) ** 2 for a, b in zip(p, t)) / sum((b - mean) ** 2 for b in t)
    assert run(R2Score(), preds, targs) == pytest.approx(ref, rel=1e-6)
    assert run(R2Score, preds, targs) == pytest.approx(ref, rel=1e-6)  # the class works too


def test_r2_score_multioutput_and_constant_target():
    g = torch.Generator().manual_seed(5)
    targs = torch.randn(32, 2, generator=g)
    preds = targs + torch.randn(32, 2, generator=g) * torch.tensor([0.3, 1.0])
    def r2(t, p):
        m = sum(t) / len(t)
        return 1 - sum((a - b) ** 2 for a, b in zip(p, t)) / sum((b - m) ** 2 for b in t)
    # fastai's R2Score flattens multi-column targets: one score over every value
    assert run(R2Score(), preds, targs) == pytest.approx(r2(targs.flatten().tolist(), preds.flatten().tolist()), rel=1e-6)
    refs = [r2(targs[:, c].tolist(), preds[:, c].tolist()) for c in range(2)]  # per output, then averaged:
    per_output = AccumMetric(r2_score, to_np=True, invert_arg=True, flatten=False)
    assert run(per_output, preds, targs) == pytest.approx(sum(refs) / 2, rel=1e-6)
    const = torch.full((32,), 2.0)
    assert run(R2Score(), const.clone(), const) == 1.0
    assert run(R2Score(), const + 1, const) == 0.0


# -- segmentation

@pytest.fixture
def segmentation():
    g = torch.Generator().manual_seed(6)
    preds = torch.randn(32, 3, 4, 5, generator=g)
    targs = torch.randint(0, 3, (32, 4, 5), generator=g)
    targs[:7] = 0  # a batch with little foreground
    targs[:7, 0, 0] = 1
    return preds, targs


def test_foreground_acc_exact_over_pixels(segmentation):
    preds, targs = segmentation
    dec = preds.argmax(1).flatten().tolist()
    t = targs.flatten().tolist()
    fg = [(a, b) for a, b in zip(dec, t) if b != 0]
    ref = sum(a == b for a, b in fg) / len(fg)
    assert run(foreground_acc, preds, targs) == pytest.approx(ref)
    assert abs(batch_mean(foreground_acc, preds, targs) - ref) > 1e-3
    fg2 = [(a, b) for a, b in zip(dec, t) if b != 2]
    assert run(partial(foreground_acc, bkg_idx=2), preds, targs) == pytest.approx(sum(a == b for a, b in fg2) / len(fg2))
    assert to_metric(foreground_acc).name == "foreground_acc"


def test_dice_and_jaccard_binary(segmentation):
    preds, targs = segmentation
    preds, targs = preds[:, :2], (targs > 0).long()  # binary masks
    p = preds.argmax(1).flatten().tolist()
    t = targs.flatten().tolist()
    inter = sum(a * b for a, b in zip(p, t))
    n_p, n_t = sum(p), sum(t)
    assert run(Dice(), preds, targs) == pytest.approx(2 * inter / (n_p + n_t))
    assert run(JaccardCoeff(), preds, targs) == pytest.approx(inter / (n_p + n_t - inter))
    assert run(Dice(), preds, targs.unsqueeze(1)) == pytest.approx(2 * inter / (n_p + n_t))  # (n, 1, h, w) masks


def test_dice_multi(segmentation):
    preds, targs = segmentation
    p, t = preds.argmax(1).flatten().tolist(), targs.flatten().tolist()
    scores = []
    for c in range(3):
        inter = sum(1 for a, b in zip(p, t) if a == c and b == c)
        union = sum(1 for a in p if a == c) + sum(1 for b in t if b == c)
        scores.append(2 * inter / union)
    assert run(DiceMulti(), preds, targs) == pytest.approx(sum(scores) / 3)


# -- the protocol

def test_to_metric_and_avg_metric():
    assert isinstance(to_metric(accuracy), AvgMetric)
    assert to_metric(partial(accuracy_multi, thresh=0.2)).name == "accuracy_multi"
    m = F1Score()
    assert to_metric(m) is m
    assert isinstance(to_metric(Dice), Dice)
    with pytest.raises(TypeError, match="not a metric"):
        to_metric(3)
    empty = to_metric(accuracy)
    empty.reset()
    assert empty.value is None and R2Score().value is None and F1Score().value is None and RocAuc().value is None


def test_metric_reset_forgets_previous_pass(multiclass):
    preds, targs = multiclass
    m = F1Score(average="macro")
    run(m, preds, targs)
    first = m.value
    assert run(m, preds, targs) == pytest.approx(first)  # run() resets: no double counting


def test_custom_accum_metric():
    def median_abs_err(p, t):
        return (p.flatten() - t.flatten()).abs().median()
    p = torch.tensor([1.0, 2.0, 3.0, 10.0, 0.0])
    t = torch.zeros(5)
    assert run(AccumMetric(median_abs_err), p, t, sizes=(2, 3)) == 2.0
    assert AccumMetric(median_abs_err, name="medae").name == "medae"


def test_metric_base_is_abstract():
    with pytest.raises(NotImplementedError):
        Metric().update(torch.zeros(1), torch.zeros(1))
