"""CSVLogger's file against the Recorder's values; TensorBoardCallback with a stand-in writer, and without tensorboard."""
import csv
import sys
import types

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.callback.core import Callback
from learnkit.callback.logger import CSVLogger, TensorBoardCallback
from learnkit.callback.progress import ProgressCallback
from learnkit.callback.tracker import EarlyStoppingCallback
from learnkit.data.core import DataLoaders
from learnkit.learner import Learner
from learnkit.losses import CrossEntropyLossFlat
from learnkit.metrics import accuracy, error_rate
from learnkit.optimizer import SGD


pytestmark = pytest.mark.usefixtures("one_thread")


def make_learner(tmp_path, cbs=None, metrics=accuracy):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 2, generator=g)
    y = (x[:, 0] > x[:, 1]).long()
    dls = DataLoaders(TorchDataLoader(TensorDataset(x[:64], y[:64]), batch_size=16, shuffle=True),
                      TorchDataLoader(TensorDataset(x[64:], y[64:]), batch_size=8), device="cpu")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), opt_func=SGD, lr=0.1, cbs=cbs, metrics=metrics,
                    path=tmp_path)
    learn.remove_cb(ProgressCallback)
    return learn


class KeepLogs(Callback):
    """Copies the Recorder's row of every epoch (it only keeps the last)."""

    order = 55

    def __init__(self):
        self.rows = []

    def after_epoch(self):
        self.rows.append(list(self.learn.recorder.log))


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


# -- CSVLogger

def test_csv_logger_file_matches_recorder(tmp_path):
    keep = KeepLogs()
    learn = make_learner(tmp_path, cbs=[CSVLogger(), keep])
    with learn.no_logging():
        learn.fit(3)
    rows = read_rows(tmp_path / "history.csv")
    assert rows[0] == ["epoch", "train_loss", "valid_loss", "accuracy", "time"] == learn.recorder.metric_names
    assert len(rows) == 4
    for i, (row, vals, log) in enumerate(zip(rows[1:], learn.recorder.values, keep.rows)):
        assert int(row[0]) == i
        assert [float(v) for v in row[1:4]] == vals  # str(float) round-trips: exact
        assert row[4] == log[4] and len(row[4]) == 5  # mm:ss
    df = learn.csv_logger.read_log()
    assert list(df.columns) == learn.recorder.metric_names
    assert df["valid_loss"].tolist() == [v[1] for v in learn.recorder.values]


def test_csv_logger_rows_written_as_epochs_end(tmp_path):
    seen = []

    class Peek(Callback):
        order = 70  # after CSVLogger (60)

        def after_epoch(self):
            seen.append(len(read_rows(self.learn.path / "history.csv")))
    learn = make_learner(tmp_path, cbs=[CSVLogger(), Peek()])
    with learn.no_logging():
        learn.fit(3)
    assert seen == [2, 3, 4]  # header + one row per finished epoch, readable before the fit ends


def test_csv_logger_keeps_rows_of_a_stopped_fit(tmp_path):
    class WorseEachEpoch(Callback):
        order = 55

        def after_epoch(self):
            self.learn.recorder.values[-1][1] = 1.0 + self.learn.epoch
    learn = make_learner(tmp_path, cbs=[WorseEachEpoch(), CSVLogger(fname="logs/run.csv"),
                                        EarlyStoppingCallback(patience=1)])
    with learn.no_logging():
        learn.fit(5)
    rows = read_rows(tmp_path / "logs" / "run.csv")
    assert len(rows) == 1 + 2  # stopped after epoch 1
    assert [r[0] for r in rows[1:]] == ["0", "1"]


def test_csv_logger_append(tmp_path):
    learn = make_learner(tmp_path, cbs=CSVLogger(append=True))
    with learn.no_logging():
        learn.fit(2)
        learn.fit(1)
    rows = read_rows(tmp_path / "history.csv")
    assert rows[0] == learn.recorder.metric_names and len(rows) == 1 + 2 + 1
    assert [r[0] for r in rows[1:]] == ["0", "1", "0"]
    other = make_learner(tmp_path, cbs=CSVLogger(append=True), metrics=error_rate)
    with pytest.raises(ValueError, match="append=False"):
        with other.no_logging():
            other.fit(1)


def test_csv_logger_overwrites_without_append_and_sits_out_lr_find(tmp_path):
    learn = make_learner(tmp_path, cbs=CSVLogger())
    with learn.no_logging():
        learn.fit(2)
    learn.lr_find(num_it=8, show_plot=False, suggest_funcs=None)
    assert len(read_rows(tmp_path / "history.csv")) == 3  # lr_find did not touch the file
    with learn.no_logging():
        learn.fit(1)
    assert len(read_rows(tmp_path / "history.csv")) == 2


def test_csv_logger_missing_values_are_empty_cells(tmp_path):
    class NoMetric(Callback):
        order = 55

        def after_epoch(self):
            self.learn.recorder.log[3] = None
    learn = make_learner(tmp_path, cbs=[NoMetric(), CSVLogger()])
    with learn.no_logging():
        learn.fit(1)
    assert read_rows(tmp_path / "history.csv")[1][3] == ""


# -- TensorBoardCallback

def test_tensorboard_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # what an absent package looks like to import
    with pytest.raises(ImportError) as err:
        TensorBoardCallback()
    assert str(err.value) == "TensorBoardCallback needs the tensorboard package: pip install tensorboard"


class FakeWriter:
    """Stands in for SummaryWriter: records what it is asked to write."""

    instances = []

    def __init__(self, log_dir=None):
        self.log_dir, self.scalars, self.graphs, self.closed = log_dir, [], [], False
        FakeWriter.instances.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def add_graph(self, model, inp):
        self.graphs.append((model, inp, model.training))

    def close(self):
        self.closed = True


@pytest.fixture
def fake_tensorboard(monkeypatch):
    mod = types.ModuleType("torch.utils.tensorboard")
    mod.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", mod)
    FakeWriter.instances = []
    return FakeWriter


def test_tensorboard_logs_losses_hypers_and_metrics(tmp_path, fake_tensorboard):
    learn = make_learner(tmp_path, cbs=TensorBoardCallback(log_dir=tmp_path / "tb"))
    with learn.no_logging():
        learn.fit(2)
    (w,) = fake_tensorboard.instances
    assert w.log_dir == str(tmp_path / "tb") and w.closed and w.graphs == []
    tags = lambda t: [(v, s) for tag, v, s in w.scalars if tag == t]
    train = tags("train_loss")
    assert [s for _, s in train] == list(range(1, 9))  # 4 batches x 2 epochs, x axis = batches so far
    assert [v for v, _ in train] == pytest.approx(learn.recorder.losses)
    assert tags("lr_0") == [(0.1, s) for s in range(1, 9)]
    assert [v for v, _ in tags("mom_0")] == [0.0] * 8 and [v for v, _ in tags("wd_0")] == [0.0] * 8
    assert tags("valid_loss") == [(v[1], s) for v, s in zip(learn.recorder.values, (4, 8))]
    assert tags("accuracy") == [(v[2], s) for v, s in zip(learn.recorder.values, (4, 8))]
    assert not tags("time") and not tags("epoch")


def test_tensorboard_traces_model_and_sits_out_lr_find(tmp_path, fake_tensorboard):
    learn = make_learner(tmp_path, cbs=TensorBoardCallback(trace_model=True))
    learn.lr_find(num_it=8, show_plot=False, suggest_funcs=None)
    assert fake_tensorboard.instances == []
    with learn.no_logging():
        learn.fit(1)
    (w,) = fake_tensorboard.instances
    (model, inp, training), = w.graphs
    assert model is learn.model and inp.shape == (16, 2) and not training  # traced in eval mode
