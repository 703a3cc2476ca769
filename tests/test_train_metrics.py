"""Recorder(train_metrics=True): metrics on the training batches, fastai's column names, plot_metrics with train
beside valid, and recorder.history as a DataFrame (Keras' History)."""
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDL
from torch.utils.data import TensorDataset

from learnkit.basics import (CrossEntropyLossFlat, DataLoaders, EarlyStoppingCallback, Learner, Recorder, accuracy,
                             error_rate)


def blobs(n: int = 96, seed: int = 0) -> DataLoaders:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 2, generator=g)
    Y = (X[:, 0] + 0.3 * torch.randn(n, generator=g) > 0).long()
    train = TorchDL(TensorDataset(X[:64], Y[:64]), batch_size=16, shuffle=True)
    return DataLoaders(train, TorchDL(TensorDataset(X[64:], Y[64:]), batch_size=16))


def learner(**kwargs) -> Learner:
    torch.manual_seed(0)
    return Learner(blobs(), nn.Linear(2, 2), loss_func=CrossEntropyLossFlat(), metrics=[accuracy, error_rate],
                   lr=0.1, **kwargs)


def test_train_metrics_columns_are_fastais_and_values_are_over_the_training_batches():
    learn = learner(cbs=Recorder(train_metrics=True))
    with learn.no_bar(), learn.no_logging():
        assert learn.fit(1, lr=0.0) is None  # lr 0: the model is fixed, so the training accuracy is checkable
    rec = learn.recorder
    assert rec.metric_names == ["epoch", "train_loss", "train_accuracy", "train_error_rate", "valid_loss",
                                "valid_accuracy", "valid_error_rate", "time"]
    train_loss, train_acc, train_err, valid_loss, valid_acc, valid_err = rec.values[-1]
    whole_train = learn.validate(ds_idx=0)  # the same fixed model over the whole training split
    assert train_acc == pytest.approx(whole_train[1]) and train_err == pytest.approx(1 - train_acc)
    assert [valid_loss, valid_acc, valid_err] == pytest.approx(list(learn.validate()))


@pytest.mark.slow
def test_train_metrics_can_be_switched_on_after_creation_and_trackers_read_the_valid_column():
    learn = learner()
    learn.recorder.train_metrics = True
    with learn.no_bar(), learn.no_logging():
        learn.fit(3, cbs=EarlyStoppingCallback(monitor="valid_accuracy", patience=5))
    hist = learn.recorder.history
    assert list(hist.columns) == ["epoch", "train_loss", "train_accuracy", "train_error_rate", "valid_loss",
                                  "valid_accuracy", "valid_error_rate", "time"]
    assert hist.train_accuracy.iloc[-1] > 0.8  # the blobs are learnable, and the training accuracy says so


def test_history_is_the_epoch_table_as_a_dataframe():
    learn = learner()
    with learn.no_bar(), learn.no_logging():
        learn.fit(2)
    hist = learn.recorder.history
    assert isinstance(hist, pd.DataFrame) and list(hist.columns) == ["epoch", "train_loss", "valid_loss", "accuracy",
                                                                     "error_rate", "time"]
    assert hist.epoch.tolist() == [0, 1]
    assert hist.drop(columns=["epoch", "time"]).values.tolist() == learn.recorder.values
    assert (hist.time >= 0).all() and hist.time.dtype.kind == "f"


def test_plot_metrics_draws_train_beside_valid():
    learn = learner(cbs=Recorder(train_metrics=True))
    with learn.no_bar(), learn.no_logging():
        learn.fit(2)
    valid_line = [l for l in learn.recorder.plot_loss(skip_start=0).axes[0].get_lines() if l.get_label() == "valid"]
    assert list(valid_line[0].get_ydata()) == pytest.approx(learn.recorder.history.valid_loss.tolist())
    fig = learn.recorder.plot_metrics()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy", "error_rate"]
    acc = axes[1]
    assert [l.get_label() for l in acc.get_lines()] == ["train", "valid"]
    assert list(acc.get_lines()[0].get_ydata()) == pytest.approx(learn.recorder.history.train_accuracy.tolist())
    plain = learner()
    with plain.no_bar(), plain.no_logging():
        plain.fit(1)
    labels = [[l.get_label() for l in ax.get_lines()] for ax in plain.recorder.plot_metrics().axes if ax.get_visible()]
    assert labels == [["train", "valid"], ["valid"], ["valid"]]


def test_recorder_takes_fastais_positional_order_and_valid_metrics_false_drops_the_validation_columns():
    rec = Recorder(False, True, False, 0.9)  # fastai: Recorder(add_time, train_metrics, valid_metrics, beta)
    assert (rec.add_time, rec.train_metrics, rec.valid_metrics, rec.beta) == (False, True, False, 0.9)
    learn = learner(cbs=Recorder(train_metrics=True, valid_metrics=False))
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=0.0)
    rec = learn.recorder
    assert rec.metric_names == ["epoch", "train_loss", "accuracy", "error_rate", "time"]
    assert len(rec.values[-1]) == 3
    assert rec.values[-1][1] == pytest.approx(learn.validate(ds_idx=0)[1])  # the training accuracy
    assert learn.validate() == pytest.approx(rec.final_record) and len(learn.validate()) == 3  # still whole
    axes = [ax for ax in rec.plot_metrics().axes if ax.get_visible()]
    assert [[l.get_label() for l in ax.get_lines()] for ax in axes] == [["train"], ["train"], ["train"]]
    assert [l.get_label() for l in rec.plot_loss(skip_start=0).axes[0].get_lines()] == ["train"]  # no valid loss
