"""Learner: the loop and its events, optimizer and param groups, freezing, persistence, evaluation and inference."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.callback.core import (EVENTS, Callback, CancelBackwardException, CancelBatchException,
                                    CancelEpochException, CancelFitException, CancelStepException,
                                    CancelTrainException, CancelValidException)
from learnkit.callback.progress import ProgressCallback
from learnkit.callback.recorder import Recorder
from learnkit.data.block import DataBlock
from learnkit.data.blocks import CategoryBlock, MultiCategoryBlock, TransformBlock
from learnkit.data.core import DataLoaders
from learnkit.data.splitters import ColSplitter
from learnkit.learner import Learner, trainable_params
from learnkit.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat
from learnkit.metrics import accuracy
from learnkit.optimizer import SGD


pytestmark = pytest.mark.usefixtures("one_thread")


def make_data(n_train: int = 256, n_valid: int = 100, seed: int = 0) -> tuple:
    """A linearly separable 2-class problem: y = (x0 + x1 > 0)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_valid, 2, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def make_dls(bs: int = 32, n_train: int = 256, n_valid: int = 100, seed: int = 0) -> DataLoaders:
    xt, yt, xv, yv = make_data(n_train, n_valid, seed)
    return DataLoaders(TorchDataLoader(TensorDataset(xt, yt), batch_size=bs, shuffle=True),
                       TorchDataLoader(TensorDataset(xv, yv), batch_size=bs), device="cpu")


def make_model(bn: bool = False) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Linear(2, 16)] + ([nn.BatchNorm1d(16)] if bn else []) + [nn.ReLU(), nn.Linear(16, 2)]
    return nn.Sequential(*layers)


def make_learner(bn: bool = False, **kwargs) -> Learner:
    kwargs.setdefault("loss_func", CrossEntropyLossFlat())
    dls = kwargs.pop("dls", None) or make_dls()
    learn = Learner(dls, make_model(bn), **kwargs)
    learn.remove_cb(ProgressCallback)
    return learn


def body_head_splitter(model: nn.Module) -> list:
    """Body (everything but the last layer) then head."""
    return [list(model[:-1].parameters()), list(model[-1].parameters())]


# -- learning

@pytest.mark.slow  # fast itself, but the first optimizer of a session imports torch._dynamo (~2 s)
def test_learns_a_linearly_separable_problem():
    learn = make_learner(metrics=accuracy, lr=1e-2)
    with learn.no_logging():
        learn.fit(4)
    vals = learn.recorder.values
    assert len(vals) == 4
    assert vals[-1][1] < vals[0][1] < math.log(2) + 0.2  # validation loss falls
    assert vals[-1][2] > 0.9  # accuracy far above chance (0.5)
    losses = learn.recorder.losses
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_default_loss_comes_from_the_target_block():
    df = pd.DataFrame({"a": np.linspace(-1, 1, 20), "label": ["neg", "pos"] * 10,
                       "is_valid": [i >= 15 for i in range(20)]})
    vec = TransformBlock("generic", type_tfms=[lambda r: np.asarray([r["a"]], dtype=np.float32)])
    dls = DataBlock(blocks=(vec, CategoryBlock), get_x=lambda r: r, get_y=lambda r: r["label"],
                    splitter=ColSplitter("is_valid")).dataloaders(df, bs=4, num_workers=0, device="cpu")
    learn = Learner(dls, nn.Linear(1, 2))
    assert isinstance(learn.loss_func, CrossEntropyLossFlat)
    with pytest.raises(ValueError, match="loss_func"):
        Learner(make_dls(), make_model())  # plain torch loaders: no block says what the target is


def test_path_defaults_to_dls_path(tmp_path):
    dls = make_dls()
    dls.path = tmp_path
    assert Learner(dls, make_model(), loss_func=CrossEntropyLossFlat()).path == tmp_path
    assert str(Learner(dls, make_model(), loss_func=CrossEntropyLossFlat(), path="elsewhere").path) == "elsewhere"


# -- events and cancellation

BATCH_TRAIN = ["before_batch", "after_pred", "after_loss", "before_backward", "after_backward",
               "before_step", "after_step", "after_batch"]
BATCH_VALID = ["before_batch", "after_pred", "after_loss", "after_batch"]


class EventLog(Callback):
    """Records every event; raises ``exc`` at event ``at`` (the first time only)."""

    def __init__(self, at: str | None = None, exc: type | None = None, order: int = 0) -> None:
        self.events: list[str] = []
        self.at, self.exc, self.order = at, exc, order

    def _log(self, ev: str) -> None:
        self.events.append(ev)
        if ev == self.at:
            self.at = None
            raise self.exc()


def _logger_for(ev: str):
    def handler(self: EventLog) -> None:
        self._log(ev)
    return handler


for _ev in EVENTS:  # EventLog handles every event
    setattr(EventLog, _ev, _logger_for(_ev))


def tiny_learner(cb: Callback) -> Learner:
    """2 training batches, 1 validation batch."""
    return make_learner(dls=make_dls(bs=8, n_train=16, n_valid=8), cbs=[cb])


def run(cb: Callback, n_epoch: int = 1) -> list[str]:
    learn = tiny_learner(cb)
    with learn.no_logging():
        learn.fit(n_epoch)
    return cb.events


def test_event_order_of_one_epoch():
    assert run(EventLog()) == (["before_fit", "before_epoch", "before_train"] + BATCH_TRAIN * 2 +
                               ["after_train", "before_validate"] + BATCH_VALID + ["after_validate", "after_epoch",
                                                                                   "after_fit"])


def test_cancel_batch_skips_the_step_and_still_runs_after_batch():
    cb = EventLog(at="after_loss", exc=CancelBatchException)
    learn = tiny_learner(cb)
    w0 = learn.model[0].weight.detach().clone()
    with learn.no_logging():
        learn.fit(1, cbs=[_StopAfterFirstBatch()])
    assert cb.events[3:7] == ["before_batch", "after_pred", "after_loss", "after_cancel_batch"]
    assert cb.events[7] == "after_batch"
    assert torch.equal(learn.model[0].weight, w0)  # no optimizer step for the cancelled batch


class _StopAfterFirstBatch(Callback):
    order = 100

    def after_batch(self) -> None:
        raise CancelFitException()


def test_cancel_fit_runs_after_cancel_fit_then_after_fit():
    events = run(EventLog(at="after_step", exc=CancelFitException), n_epoch=3)
    assert events == (["before_fit", "before_epoch", "before_train"] + BATCH_TRAIN[:-1] +
                      ["after_cancel_fit", "after_fit"])


@pytest.mark.parametrize("at,exc,expected_tail", [
    ("before_train", CancelTrainException, ["after_cancel_train", "after_train", "before_validate"]),
    ("before_validate", CancelValidException, ["after_cancel_validate", "after_validate", "after_epoch"]),
    ("before_epoch", CancelEpochException, ["after_cancel_epoch", "after_epoch", "after_fit"]),
])
def test_cancel_phase_and_epoch(at, exc, expected_tail):
    events = run(EventLog(at=at, exc=exc))
    i = events.index(at)
    assert events[i + 1: i + 1 + len(expected_tail)] == expected_tail
    if exc is CancelTrainException:
        assert "before_batch" not in events[:events.index("before_validate")]


def test_cancel_step_and_backward():
    cb = EventLog(at="before_step", exc=CancelStepException)
    learn = tiny_learner(cb)
    w0 = learn.model[0].weight.detach().clone()
    with learn.no_logging():
        learn.fit(1, cbs=[_StopAfterFirstBatch()])
    assert cb.events[-5:] == ["before_step", "after_step", "after_batch", "after_cancel_fit", "after_fit"]
    assert torch.equal(learn.model[0].weight, w0)  # the step was skipped

    cb = EventLog(at="before_backward", exc=CancelBackwardException)
    learn = tiny_learner(cb)
    with learn.no_logging():
        learn.fit(1, cbs=[_StopAfterFirstBatch()])
    assert cb.events[-7:-3] == ["before_backward", "after_backward", "before_step", "after_step"]
    assert learn.model[0].weight.grad is None  # no backward: nothing to zero either


class CountTrainBatches(Callback):
    run_valid = False

    def __init__(self):
        self.n = 0

    def after_batch(self) -> None:
        self.n += 1


def test_run_valid_false_skips_validation_batches_and_order_is_respected():
    cb = CountTrainBatches()
    learn = tiny_learner(cb)
    calls = []

    class First(Callback):
        order = -5

        def before_fit(self):
            calls.append("first")

    class Last(Callback):
        order = 99

        def before_fit(self):
            calls.append("last")

    learn.add_cbs([Last, First])
    with learn.no_logging():
        learn.fit(2)
    assert cb.n == 4  # 2 epochs x 2 training batches, no validation batches
    assert calls == ["first", "last"]


def test_callback_attributes_and_batch_state():
    seen = {}

    class Peek(Callback):
        def after_loss(self):
            if self.training and self.iter == 1:
                seen.update(xb=self.xb, yb=self.yb, pred=self.pred, loss=self.loss, epoch=self.epoch,
                            n_epoch=self.n_epoch, n_iter=self.n_iter, train_iter=self.train_iter,
                            pct_train=self.pct_train)

    learn = tiny_learner(Peek())
    with learn.no_logging():
        learn.fit(2)
    assert isinstance(seen["xb"], tuple) and seen["xb"][0].shape == (8, 2) and seen["yb"][0].shape == (8,)
    assert seen["pred"].shape == (8, 2) and seen["loss"].ndim == 0
    assert (seen["epoch"], seen["n_epoch"], seen["n_iter"], seen["train_iter"]) == (1, 2, 2, 3)
    assert seen["pct_train"] == pytest.approx(0.75)
    assert learn.train_iter == 4 and learn.pct_train == pytest.approx(1.0)


def test_loss_grad_is_what_is_backpropagated_and_loss_is_detached():
    class ZeroLoss(Callback):
        run_valid = False

        def after_loss(self):
            assert self.learn.loss.grad_fn is None and self.learn.loss_grad.requires_grad
            self.learn.loss_grad = self.learn.loss_grad * 0

    learn = make_learner(opt_func=SGD, lr=0.5, cbs=[ZeroLoss()])
    w0 = learn.model[0].weight.detach().clone()
    with learn.no_logging():
        learn.fit(1)
    assert torch.equal(learn.model[0].weight, w0)  # zero gradient, no weight decay: nothing moves
    assert learn.recorder.losses[0] > 0.1  # the logged loss is the real one


def test_errors_in_callbacks_name_the_callback():
    class Broken(Callback):
        def after_pred(self):
            raise ValueError("boom")

    learn = tiny_learner(Broken())
    with pytest.raises(ValueError, match="boom") as info:
        learn.fit(1)
    assert any("Broken" in note and "after_pred" in note for note in info.value.__notes__)


def test_add_remove_and_temporary_callbacks():
    learn = make_learner()
    assert isinstance(learn.recorder, Recorder)
    learn.add_cb(CountTrainBatches)  # a class is instantiated
    assert isinstance(learn.count_train_batches, CountTrainBatches) and learn.count_train_batches.learn is learn
    learn.remove_cb(learn.count_train_batches)
    assert not hasattr(learn, "count_train_batches")
    cb = CountTrainBatches()
    with learn.no_logging(), learn.added_cbs(cb):
        assert learn.count_train_batches is cb
        learn.fit(1)
    assert cb.n == len(learn.dls.train) and cb not in learn.cbs and not hasattr(learn, "count_train_batches")
    with learn.no_logging():
        learn.fit(1, cbs=cb)  # fit's cbs= are temporary too
    assert cb.n == 2 * len(learn.dls.train) and cb not in learn.cbs

    class Model(Callback):
        pass

    with pytest.raises(ValueError, match="learn.model"):
        learn.add_cb(Model())


# -- optimizer, param groups, freezing

def test_opt_is_created_lazily_and_persists_across_fits():
    learn = make_learner()
    assert learn.opt is None
    with learn.no_logging():
        learn.fit(1)
        opt = learn.opt
        assert isinstance(opt, torch.optim.Optimizer) and len(opt.state) > 0
        learn.fit(1)
        assert learn.opt is opt
        learn.fit(1, reset_opt=True)
        assert learn.opt is not opt


def test_discriminative_lrs_and_weight_decay_per_group():
    model = nn.Sequential(nn.Linear(2, 8), nn.Linear(8, 8), nn.Linear(8, 2))
    learn = Learner(make_dls(), model, loss_func=CrossEntropyLossFlat(), cbs=[],
                    splitter=lambda m: [list(l.parameters()) for l in m])
    learn.create_opt()
    assert [g["lr"] for g in learn.opt.param_groups] == [1e-3] * 3
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=slice(1e-4, 1e-2), wd=0.5)
    assert [g["lr"] for g in learn.opt.param_groups] == pytest.approx([1e-4, 1e-3, 1e-2])
    assert [g["weight_decay"] for g in learn.opt.param_groups] == [0.5] * 3
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=slice(1e-2))
    assert [g["lr"] for g in learn.opt.param_groups] == pytest.approx([1e-3, 1e-3, 1e-2])
    assert [g["weight_decay"] for g in learn.opt.param_groups] == [0.5] * 3  # not reset when wd is None
    assert learn.opt.param_groups[0]["params"][0] is model[0].weight  # groups run body -> head


def test_wd_none_keeps_the_opt_func_default_and_sgd_works():
    learn = make_learner(opt_func=SGD, lr=0.1, metrics=accuracy)
    learn.create_opt()
    assert isinstance(learn.opt, torch.optim.SGD) and learn.opt.param_groups[0]["weight_decay"] == 0.0
    learn = make_learner(wd=0.1)
    learn.create_opt()
    assert learn.opt.param_groups[0]["weight_decay"] == 0.1


def test_trainable_params_is_one_flat_group():
    model = make_model()
    model[0].weight.requires_grad_(False)
    ps = trainable_params(model)
    assert len(ps) == 3 and all(p.requires_grad for p in ps)
    learn = Learner(make_dls(), model, loss_func=CrossEntropyLossFlat())
    assert len(learn.create_opt().param_groups) == 1


def test_freeze_keeps_batchnorm_trainable_and_clears_optimizer_state():
    learn = make_learner(bn=True, splitter=body_head_splitter, lr=1e-2)
    with learn.no_logging():
        learn.fit(1)
    assert len(learn.opt.state) > 0
    learn.freeze()
    assert len(learn.opt.state) == 0
    lin, bn, head = learn.model[0], learn.model[1], learn.model[3]
    assert not lin.weight.requires_grad and not lin.bias.requires_grad
    assert bn.weight.requires_grad and bn.bias.requires_grad and head.weight.requires_grad
    w_lin, w_bn = lin.weight.detach().clone(), bn.weight.detach().clone()
    with learn.no_logging():
        learn.fit(1)
    assert torch.equal(lin.weight, w_lin) and not torch.equal(bn.weight, w_bn)
    learn.unfreeze()
    assert all(p.requires_grad for p in learn.model.parameters())

    learn = make_learner(bn=True, splitter=body_head_splitter, train_bn=False)
    learn.freeze()
    assert not learn.model[1].weight.requires_grad and learn.model[3].weight.requires_grad
    learn.freeze_to(0)
    assert all(p.requires_grad for p in learn.model.parameters())


# -- evaluation and inference

def manual_valid_loss_and_acc(learn: Learner) -> tuple[float, float]:
    _, _, xv, yv = make_data()
    learn.model.eval()
    with torch.no_grad():
        out = learn.model(xv)
    return F.cross_entropy(out, yv).item(), (out.argmax(1) == yv).float().mean().item()


def test_validate_is_exact_over_uneven_batches():
    learn = make_learner(metrics=accuracy, lr=1e-2)  # 100 validation items in batches of 32: last batch has 4
    with learn.no_logging():
        learn.fit(1)
    loss, acc = learn.validate()
    exp_loss, exp_acc = manual_valid_loss_and_acc(learn)
    assert loss == pytest.approx(exp_loss, rel=1e-5) and acc == pytest.approx(exp_acc)
    _, _, xv, yv = make_data()
    loss7, acc7 = learn.validate(dl=TorchDataLoader(TensorDataset(xv, yv), batch_size=7))
    assert loss7 == pytest.approx(exp_loss, rel=1e-5) and acc7 == pytest.approx(exp_acc)
    xt, yt, _, _ = make_data()
    with torch.no_grad():
        train_loss = F.cross_entropy(learn.model(xt), yt).item()
    assert learn.validate(ds_idx=0)[0] == pytest.approx(train_loss, rel=1e-5)  # every training item, once


def test_get_preds_shapes_values_and_order():
    learn = make_learner(lr=1e-2)
    with learn.no_logging():
        learn.fit(1)
    xt, yt, xv, yv = make_data()
    inp, preds, targs, decoded, losses = learn.get_preds(with_input=True, with_decoded=True, with_loss=True)
    assert preds.shape == (100, 2) and targs.shape == (100,) and decoded.shape == (100,) and losses.shape == (100,)
    assert torch.equal(inp, xv) and torch.equal(targs, yv)
    assert torch.allclose(preds.sum(1), torch.ones(100))  # softmax probabilities
    assert torch.equal(decoded, preds.argmax(1))
    with torch.no_grad():
        out = learn.model(xv)
    assert torch.allclose(preds, F.softmax(out, 1), atol=1e-6)
    assert torch.allclose(losses, F.cross_entropy(out, yv, reduction="none"), atol=1e-6)
    assert losses.mean().item() == pytest.approx(learn.validate()[0], rel=1e-5)
    assert learn.loss_func.reduction == "mean"  # restored after with_loss
    raw, _ = learn.get_preds(act=lambda o: o)
    assert torch.allclose(raw, out, atol=1e-6)
    # the training set comes back complete and in order (no shuffle, no dropped batch)
    p0, t0 = learn.get_preds(ds_idx=0)
    assert torch.equal(t0, yt)
    # any iterable of (x, y) batches, e.g. a list
    p1, t1 = learn.get_preds(dl=[(xv[:50], yv[:50]), (xv[50:], yv[50:])])
    assert torch.allclose(p1, preds) and torch.equal(t1, yv)


def test_model_follows_the_dls_device_and_dls_can_be_swapped_mid_training():
    class FakeDLs:
        device = torch.device("meta")
        kinds, n_inp, path = ("generic", "generic"), 1, "."

    assert Learner(FakeDLs(), make_model(), loss_func=CrossEntropyLossFlat()).model[0].weight.device.type == "meta"
    learn = make_learner()
    assert learn.model[0].weight.device.type == "cpu"
    learn.dls = FakeDLs()  # assigning new loaders moves the model to their device
    assert learn.model[0].weight.device.type == "meta"

    small = make_dls(bs=8, n_train=16, n_valid=8)

    class Resize(Callback):
        def after_epoch(self):
            if self.epoch == 0:
                self.learn.dls = small

    cb = CountTrainBatches()
    learn = make_learner(cbs=[Resize(), cb])
    with learn.no_logging():
        learn.fit(2)
    assert cb.n == len(make_dls().train) + 2


def _category_dls(y_block=CategoryBlock, get_y=lambda r: r["label"]) -> DataLoaders:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(size=200)
    df = pd.DataFrame({"a": a, "b": b, "label": np.where(a + b > 0, "pos", "neg"),
                       "tags": [["hi"] if v > 0 else ["lo"] for v in a + b], "is_valid": np.arange(200) >= 160})
    vec = TransformBlock("generic", type_tfms=[lambda r: np.asarray([r["a"], r["b"]], dtype=np.float32)])
    return DataBlock(blocks=(vec, y_block), get_x=lambda r: r, get_y=get_y,
                     splitter=ColSplitter("is_valid")).dataloaders(df, bs=16, num_workers=0, device="cpu"), df


def test_predict_decodes_through_the_target_block():
    dls, df = _category_dls()
    learn = Learner(dls, make_model(), metrics=accuracy, lr=3e-2)
    with learn.no_bar(), learn.no_logging():
        learn.fit(3)
    row = df.iloc[170]
    label, idx, probs = learn.predict(row)
    assert label == row["label"] and label in ("neg", "pos")
    assert isinstance(idx, torch.Tensor) and idx.ndim == 0 and dls.vocab[int(idx)] == label
    assert probs.shape == (2,) and probs.sum().item() == pytest.approx(1.0)

    dls, df = _category_dls(MultiCategoryBlock, get_y=lambda r: r["tags"])
    learn = Learner(dls, make_model(), lr=3e-2)
    assert isinstance(learn.loss_func, BCEWithLogitsLossFlat)
    with learn.no_bar(), learn.no_logging():
        learn.fit(3)
    labels, dec, probs = learn.predict(df.iloc[170])
    assert labels == df.iloc[170]["tags"] and dec.dtype == torch.bool and probs.shape == (2,)


# -- persistence

def test_save_load_round_trip_weights_and_optimizer(tmp_path):
    learn = make_learner(path=tmp_path, lr=1e-2)
    with learn.no_logging():
        learn.fit(1)
    f = learn.save("stage1")
    assert f == tmp_path / "models" / "stage1.pth" and f.exists()
    assert [p.name for p in f.parent.iterdir()] == ["stage1.pth"]  # no temp file left behind
    saved_model = {k: v.clone() for k, v in learn.model.state_dict().items()}
    saved_opt = {i: {k: v.clone() for k, v in s.items()} for i, s in learn.opt.state_dict()["state"].items()}
    with learn.no_logging():
        learn.fit(1)  # change both
    assert not torch.equal(learn.model[0].weight, saved_model["0.weight"])

    assert learn.load("stage1") is learn
    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, saved_model[k])
    for i, s in learn.opt.state_dict()["state"].items():
        for k, v in s.items():
            assert torch.equal(v, saved_opt[i][k])

    fresh = make_learner(path=tmp_path)  # no optimizer yet: load creates it
    fresh.load("stage1")
    assert torch.equal(fresh.model[0].weight, saved_model["0.weight"])
    assert torch.equal(fresh.opt.state_dict()["state"][0]["exp_avg"], saved_opt[0]["exp_avg"])

    learn.save("weights_only", with_opt=False)
    with pytest.warns(UserWarning, match="no optimizer state"):
        fresh.load("weights_only")
    fresh.load("weights_only", with_opt=False)
    with pytest.raises(FileNotFoundError, match="learn.save"):
        fresh.load("missing")


# -- summary

def test_summary_counts_parameters(capsys):
    learn = make_learner(bn=True, splitter=body_head_splitter)
    text = learn.summary()
    assert text in capsys.readouterr().out
    total = (2 * 16 + 16) + (16 + 16) + (16 * 2 + 2)
    assert f"Total params: {total:,}" in text and f"Total trainable params: {total:,}" in text
    assert "32 x 16" in text and "32 x 2" in text and "Linear" in text and "BatchNorm1d" in text
    learn.freeze()
    text = learn.summary()
    frozen = 2 * 16 + 16  # the first Linear; BatchNorm stays trainable
    assert f"Total trainable params: {total - frozen:,}" in text
    assert f"Total non-trainable params: {frozen:,}" in text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_inference_and_load_to_another_device(tmp_path):
    xt, yt, xv, yv = make_data()
    dls = DataLoaders(TorchDataLoader(TensorDataset(xt, yt), batch_size=32, shuffle=True),
                      TorchDataLoader(TensorDataset(xv, yv), batch_size=32), device="cuda")
    learn = Learner(dls, make_model(), loss_func=CrossEntropyLossFlat(), metrics=accuracy, lr=1e-2, path=tmp_path)
    assert learn.model[0].weight.is_cuda
    with learn.no_bar(), learn.no_logging():
        learn.fit(3)
    assert learn.recorder.values[-1][2] > 0.9
    preds, targs = learn.get_preds(dl=[(xv, yv)])  # CPU batches are moved to the model's device
    assert preds.device.type == "cpu" and torch.equal(targs, yv)
    learn.save("m")
    cpu = make_learner(path=tmp_path)
    cpu.load("m")
    assert cpu.model[0].weight.device.type == "cpu"
    assert torch.equal(cpu.model[0].weight, learn.model[0].weight.cpu())
    assert cpu.opt.state_dict()["state"][0]["exp_avg"].device.type == "cpu"
