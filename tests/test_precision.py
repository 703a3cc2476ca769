"""Mixed precision: to_fp16 / to_bf16 / to_fp32 train (bf16 autocast on the CPU), and to_channels_last."""
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.callback.core import Callback
from learnkit.callback.precision import MixedPrecision
from learnkit.callback.progress import ProgressCallback
from learnkit.data.core import DataLoaders
from learnkit.learner import Learner
from learnkit.losses import CrossEntropyLossFlat
from learnkit.metrics import accuracy


pytestmark = pytest.mark.usefixtures("one_thread")


def make_learner(device: str = "cpu", **kwargs) -> Learner:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(320, 2, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    dls = DataLoaders(TorchDataLoader(TensorDataset(x[:256], y[:256]), batch_size=32, shuffle=True),
                      TorchDataLoader(TensorDataset(x[256:], y[256:]), batch_size=32), device=device)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy, lr=3e-2, **kwargs)
    learn.remove_cb(ProgressCallback)
    return learn


class Dtypes(Callback):
    """Records the dtype of the first layer's output during the forward pass, and of the prediction the loss sees."""

    def __init__(self):
        self.inner, self.pred = set(), set()

    def before_fit(self):
        def record(module, inp, out):
            self.inner.add(out.dtype)
        self.hook = self.learn.model[0].register_forward_hook(record)

    def after_loss(self):
        self.pred.add(self.learn.pred.dtype)

    def after_fit(self):
        self.hook.remove()


def test_to_fp16_on_cpu_trains_in_bf16_and_warns_once():
    if torch.cuda.is_available():
        pytest.skip("this checks the CPU fallback")
    learn = make_learner()
    dt = Dtypes()
    learn.add_cb(dt)
    assert learn.to_fp16() is learn
    with pytest.warns(UserWarning, match="bfloat16 autocast") as record:
        with learn.no_logging():
            learn.fit(3)
            learn.fit(1)
    assert len([w for w in record if "bfloat16" in str(w.message)]) == 1
    assert dt.inner == {torch.bfloat16} and dt.pred == {torch.float32}
    assert learn.recorder.values[-1][2] > 0.85
    assert learn.model[0].weight.dtype == torch.float32  # weights stay float32 (autocast only)
    preds, _ = learn.get_preds()
    assert preds.dtype == torch.float32


def test_to_bf16_trains_and_to_fp32_goes_back():
    learn = make_learner()
    dt = Dtypes()
    learn.add_cb(dt)
    learn.to_bf16()
    assert isinstance(learn.mixed_precision, MixedPrecision)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # to_bf16 says nothing
        with learn.no_logging():
            learn.fit(3)
    assert dt.inner == {torch.bfloat16} and learn.recorder.values[-1][2] > 0.85
    learn.to_fp32()
    assert not any(isinstance(c, MixedPrecision) for c in learn.cbs)
    dt.inner.clear()
    with learn.no_logging():
        learn.fit(1)
    assert dt.inner == {torch.float32}


def test_precision_callbacks_replace_each_other():
    learn = make_learner()
    learn.to_bf16()
    learn.to_fp16()
    assert [c.amp_mode for c in learn.cbs if isinstance(c, MixedPrecision)] == ["fp16"]


def test_to_channels_last():
    learn = make_learner()
    learn.model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    assert learn.to_channels_last() is learn
    assert learn.model[0].weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="float16 with a GradScaler needs CUDA")
def test_to_fp16_on_cuda_uses_float16_and_a_grad_scaler():
    learn = make_learner(device="cuda")
    dt = Dtypes()
    learn.add_cb(dt)
    learn.to_fp16()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with learn.no_logging():
            learn.fit(3)
    assert dt.inner == {torch.float16} and dt.pred == {torch.float32}
    assert isinstance(learn.scaler, torch.amp.GradScaler) and learn.scaler.get_scale() > 0
    assert learn.recorder.values[-1][2] > 0.85


class CPUFloat16(MixedPrecision):
    """float16 + GradScaler on the CPU too, to exercise the scaler path without a GPU."""

    fp16_devices = ("cuda", "cpu")


class InfGrad(Callback):
    """Puts an inf in a gradient at the first training batch."""

    order = 5  # before MixedPrecision's before_step

    def __init__(self):
        self.done = False

    def after_backward(self):
        if not self.done:
            self.learn.model[0].weight.grad[0, 0] = float("inf")
            self.done = True


def test_grad_scaler_path_scales_unscales_and_skips_overflowing_steps():
    learn = make_learner()
    dt, inf = Dtypes(), InfGrad()
    learn.add_cbs([dt, CPUFloat16("fp16", init_scale=2.0 ** 10)])
    w0 = learn.model[0].weight.detach().clone()
    steps = []

    class FirstStep(Callback):
        order = 20

        def after_step(self):
            steps.append(learn.model[0].weight.detach().clone())

    with learn.no_logging():
        learn.fit(1, cbs=[inf, FirstStep()])
    assert torch.equal(steps[0], w0)  # the overflowing step was skipped
    assert not torch.equal(steps[1], steps[0])  # later steps happen
    assert learn.scaler.get_scale() == 2.0 ** 9  # backed off once, no growth yet (growth_interval 2000)
    assert dt.inner == {torch.float16}
    with learn.no_logging():
        learn.fit(3)
    assert learn.recorder.values[-1][2] > 0.85  # gradients reach the optimizer unscaled: training works


class _LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn, self.head = nn.LSTM(2, 8, batch_first=True), nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.rnn(x.unsqueeze(1))[0][:, -1])


def test_to_bf16_with_an_lstm_trains_on_any_cpu():
    """oneDNN has no bfloat16 LSTM without AVX512-BF16: there the model trains in float32, with a warning."""
    from learnkit.callback.precision import cpu_bf16_rnn_supported
    learn = make_learner()
    learn.model = _LSTMClassifier()
    learn.to_bf16()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        learn.fit(2, 3e-2)
    falls_back = [w for w in record if "recurrent layers" in str(w.message)]
    cb = next(c for c in learn.cbs if isinstance(c, MixedPrecision))
    assert len(falls_back) == (0 if cpu_bf16_rnn_supported() else 1)
    assert cb.autocast._enabled is cpu_bf16_rnn_supported()
    assert learn.validate()[1] > 0.8  # above chance (0.5) by a margin
