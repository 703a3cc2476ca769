"""Recorder (smoothed loss, per-epoch values, plots) and ProgressCallback / the epoch table (no_bar, no_logging)."""
import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.callback.core import Callback, CancelValidException
from learnkit.callback.progress import ProgressCallback, TableWriter
from learnkit.callback.recorder import Recorder, format_time
from learnkit.data.core import DataLoaders
from learnkit.learner import Learner
from learnkit.losses import CrossEntropyLossFlat
from learnkit.metrics import accuracy, error_rate


pytestmark = pytest.mark.usefixtures("one_thread")


def make_learner(device: str = "cpu", **kwargs) -> Learner:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 2, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    dls = DataLoaders(TorchDataLoader(TensorDataset(x[:256], y[:256]), batch_size=32, shuffle=True),
                      TorchDataLoader(TensorDataset(x[256:], y[256:]), batch_size=16), device=device)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    return Learner(dls, model, loss_func=CrossEntropyLossFlat(), lr=1e-2, **kwargs)


class RawLosses(Callback):
    order = 0
    run_valid = False

    def __init__(self):
        self.losses = []

    def after_batch(self):
        self.losses.append(self.learn.loss.item())


def test_recorder_smooths_with_debiased_ema_and_records_per_epoch():
    raw = RawLosses()
    learn = make_learner(metrics=[accuracy, error_rate], cbs=[raw])
    with learn.no_bar(), learn.no_logging():
        learn.fit(2)
    rec = learn.recorder
    avg, expected = 0.0, []
    for i, l in enumerate(raw.losses, start=1):
        avg = 0.98 * avg + 0.02 * l
        expected.append(avg / (1 - 0.98 ** i))
    assert rec.losses == pytest.approx(expected, rel=1e-6) and len(rec.losses) == 16
    assert learn.smooth_loss == pytest.approx(expected[-1])
    assert rec.lrs == pytest.approx([1e-2] * 16)
    assert rec.metric_names == ["epoch", "train_loss", "valid_loss", "accuracy", "error_rate", "time"]
    assert len(rec.values) == 2 and rec.iters == [8, 16]
    assert rec.values[0][0] == pytest.approx(expected[7]) and rec.values[1][0] == pytest.approx(expected[15])
    assert rec.final_record == rec.values[1][1:]  # the last validation pass stays readable after the fit
    valid_loss, acc, err = learn.validate()
    assert rec.values[1][1:] == pytest.approx([valid_loss, acc, err])
    assert acc + err == pytest.approx(1.0)
    assert rec.log[0] == 1 and rec.log[-1] == "00:00"


def test_table_is_printed_once_per_epoch(capsys):
    learn = make_learner(metrics=accuracy)
    with learn.no_bar():
        learn.fit(2)
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    assert [line.split()[0] for line in out[1:]] == ["0", "1"]
    row = out[2].split()
    assert float(row[1]) == pytest.approx(learn.recorder.values[1][0], abs=1e-6) and row[4] == "00:00"


def test_no_logging_and_no_bar_silence_output(capsys):
    learn = make_learner()
    learn.fit(1)
    out, err = capsys.readouterr()
    assert "train_loss" in out and "epoch 1/1 train" in err  # defaults: table on stdout, bars on stderr
    with learn.no_logging():
        learn.fit(1)
    out, err = capsys.readouterr()
    assert out == "" and "epoch 1/1" in err
    with learn.no_bar():
        learn.fit(1)
        assert not any(isinstance(c, ProgressCallback) for c in learn.cbs)
    out, err = capsys.readouterr()
    assert "train_loss" in out and err == ""
    assert isinstance(learn.progress, ProgressCallback)  # back after the block
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
        learn.validate()
        learn.get_preds()
    assert capsys.readouterr() == ("", "")


def test_table_still_prints_without_the_progress_callback(capsys):
    learn = make_learner()
    learn.remove_cb(ProgressCallback)
    learn.fit(1)
    out, err = capsys.readouterr()
    assert "train_loss" in out and err == ""


def test_cancelled_validation_logs_dashes(capsys):
    class SkipValid(Callback):
        def before_validate(self):
            raise CancelValidException()

    learn = make_learner(metrics=accuracy, cbs=[SkipValid()])
    with learn.no_bar():
        learn.fit(1)
    assert learn.recorder.values[0][1:] == [None, None] and learn.recorder.values[0][0] is not None
    assert capsys.readouterr().out.splitlines()[1].split()[2:4] == ["-", "-"]


def test_table_writer_and_format_time(capsys):
    w = TableWriter()
    w(["epoch", "train_loss", "time"])
    w([3, 0.5, "01:02"])
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["epoch     train_loss  time", "3         0.500000    01:02"]
    assert (format_time(62), format_time(3725)) == ("01:02", "1:02:05")


def test_plots_return_figures():
    learn = make_learner(metrics=accuracy)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(3)
    n_figs = len(plt.get_fignums())
    rec = learn.recorder
    fig = rec.plot_loss(skip_start=2)
    assert isinstance(fig, Figure)
    train_line, valid_line = fig.axes[0].get_lines()
    assert list(train_line.get_xdata()) == list(range(2, 24))
    assert list(valid_line.get_xdata()) == [8, 16, 24] and list(valid_line.get_ydata()) == [v[1] for v in rec.values]
    fig = rec.plot_sched()
    assert [ax.get_ylabel() for ax in fig.axes] == ["lr", "mom"]
    assert list(fig.axes[0].get_lines()[0].get_ydata()) == pytest.approx(rec.lrs)
    fig = rec.plot_metrics()
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["loss", "accuracy"]
    assert len(plt.get_fignums()) == n_figs + 3
    plt.close("all")


def test_recorder_is_used_by_validate_even_when_removed():
    learn = make_learner(metrics=accuracy)
    learn.remove_cb(Recorder)
    with learn.no_bar():
        loss, acc = learn.validate()
    assert 0 < loss < 2 and 0 <= acc <= 1
    assert not hasattr(learn, "recorder")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the device-side recording path needs CUDA")
def test_recorder_on_cuda_keeps_values_on_the_device_and_reads_them_once():
    raw = RawLosses()
    learn = make_learner(device="cuda", metrics=accuracy, cbs=[raw])
    assert learn.model[0].weight.is_cuda
    with learn.no_bar(), learn.no_logging():
        learn.fit(2)
    avg, expected = 0.0, []
    for i, l in enumerate(raw.losses, start=1):
        avg = 0.98 * avg + 0.02 * l
        expected.append(avg / (1 - 0.98 ** i))
    assert learn.recorder.losses == pytest.approx(expected, rel=1e-5)
    assert all(isinstance(v, float) for v in learn.recorder.losses)
    loss, acc = learn.validate()
    assert learn.recorder.values[-1][1:] == pytest.approx([loss, acc], rel=1e-5)
    preds, targs = learn.get_preds()
    assert preds.device.type == "cpu" and preds.shape == (44, 2)


class DeviceRecorder(Recorder):
    """Takes the accelerator path (values stay tensors, read back once per epoch) on the CPU."""

    @property
    def name(self) -> str:
        return "recorder"

    @staticmethod
    def _on_host(t):
        return False


def test_device_side_recording_matches_the_host_path():
    smooth_types = set()

    class Peek(Callback):
        order = 60
        run_valid = False

        def after_batch(self):
            smooth_types.add(type(self.learn.smooth_loss))

    host = make_learner(metrics=accuracy)
    dev = make_learner(metrics=accuracy, cbs=[DeviceRecorder(), Peek()])
    assert isinstance(dev.recorder, DeviceRecorder) and not any(type(c) is Recorder for c in dev.cbs)
    for learn in (host, dev):
        torch.manual_seed(1)  # same shuffling for both
        with learn.no_bar(), learn.no_logging():
            learn.fit(2)
    assert smooth_types == {torch.Tensor}  # not read back per batch
    assert dev.recorder.losses == pytest.approx(host.recorder.losses, rel=1e-5)
    assert all(type(v) is float for v in dev.recorder.losses)
    for d, h in zip(dev.recorder.values, host.recorder.values, strict=True):
        assert d == pytest.approx(h, rel=1e-5)
    assert dev.validate() == pytest.approx(host.validate(), rel=1e-5)


def test_lr_find_plot_marks_each_suggestion_with_a_point_and_legend():
    from learnkit.callback.schedule import minimum, steep, valley
    learn = make_learner()
    with learn.no_bar():
        res = learn.lr_find(num_it=40, suggest_funcs=(valley, minimum, steep))
    fig = plt.gcf()
    ax = fig.axes[0]
    curve, *points = ax.get_lines()
    rec = learn.recorder
    assert list(curve.get_xdata()) == pytest.approx(rec.lrs[:-5]) and ax.get_xscale() == "log"
    assert [p.get_marker() for p in points] == ["o"] * 3
    # each point sits on the curve where its function looked (minimum: at the lowest loss, suggesting a tenth of it)
    assert [p.get_xdata()[0] for p in points] == pytest.approx([res.valley, res.minimum * 10, res.steep])
    assert points[1].get_ydata()[0] == pytest.approx(min(rec.losses[4:-5]))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [f"{nm}: {lr:.2e}" for nm, lr in zip(("valley", "minimum", "steep"), res)]
    assert ax.get_xlabel() == "Learning Rate" and ax.get_ylabel() == "Loss"
    plt.close("all")


def test_show_graph_callback_draws_both_losses_and_saves_in_a_script(tmp_path):
    from learnkit.callback.progress import ShowGraphCallback
    learn = make_learner()
    graph = ShowGraphCallback(fname=tmp_path / "losses.png")
    with learn.no_bar(), learn.no_logging():
        learn.fit(2, cbs=graph)
    train, valid = graph.ax.get_lines()
    assert list(train.get_ydata()) == pytest.approx(learn.recorder.losses)
    assert list(valid.get_xdata()) == [8, 16] and list(valid.get_ydata()) == [v[1] for v in learn.recorder.values]
    assert graph.ax.get_xlim() == (0, 16) and graph.ax.get_title() == "epoch 2/2"
    data = (tmp_path / "losses.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(list(tmp_path.iterdir())) == 1  # no temp file left
    graph2 = ShowGraphCallback()  # no file unless asked: the figure stays on the callback
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, cbs=graph2)
    assert graph2.fig is not None and len(list(tmp_path.iterdir())) == 1
    plt.close("all")


def test_plot_metrics_and_loss_values_match_the_record():
    learn = make_learner(metrics=[accuracy, error_rate])
    with learn.no_bar(), learn.no_logging():
        learn.fit(2)
    rec = learn.recorder
    fig = rec.plot_metrics()
    vis = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in vis] == ["loss", "accuracy", "error_rate"]
    tr, va = vis[0].get_lines()
    assert list(tr.get_ydata()) == pytest.approx([v[0] for v in rec.values])
    assert list(va.get_ydata()) == pytest.approx([v[1] for v in rec.values])
    assert list(vis[2].get_lines()[0].get_ydata()) == pytest.approx([v[3] for v in rec.values])
    fig = rec.plot_loss(skip_start=10)
    tr, va = fig.axes[0].get_lines()
    assert list(tr.get_xdata()) == list(range(10, 16)) and list(va.get_xdata()) == [16]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["train", "valid"]
    plt.close("all")


class BarLines(ProgressCallback):
    """The final line of each bar as it closes (what a notebook keeps of it)."""

    def before_fit(self):
        self.lines = []
        super().before_fit()

    def _close(self):
        if self.pbar is not None:
            self.lines.append(str(self.pbar))
        super()._close()


def test_lr_find_shows_one_bar_for_all_its_batches():
    learn = make_learner()
    bars = BarLines()
    learn.remove_cb(ProgressCallback).add_cb(bars)
    learn.lr_find(num_it=20, show_plot=False, stop_div=False)  # 8 batches an epoch: 3 epochs of the finder
    (line,) = bars.lines  # one bar, not one per epoch and phase (nor validation's 0% ones)
    assert line.startswith("lr_find: 100%") and "| 20/20 [" in line, line
    learn.fit(1)  # a fit after it names its epochs again
    assert [ln.split(":")[0] for ln in bars.lines] == ["epoch 1/1 train", "epoch 1/1 valid"]
