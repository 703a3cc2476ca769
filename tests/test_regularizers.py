"""L1L2Regularizer: Keras' penalty l1*sum|w| + l2*sum(w^2) over the weights, added to the training loss."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDL
from torch.utils.data import TensorDataset

from learnkit.basics import SGD, Callback, CrossEntropyLossFlat, DataLoaders, L1L2Regularizer, Learner


class Capture(Callback):
    """Keeps the first training batch's inputs, loss and gradients."""

    order = 90

    def __init__(self):
        self.done = False

    def after_backward(self):
        if not self.done:
            self.xb, self.yb, self.loss = self.learn.xb, self.learn.yb, self.learn.loss
            self.grads = [p.grad.clone() for p in self.learn.model.parameters()]
            self.done = True


def setup(l1: float, l2: float):
    torch.manual_seed(0)
    X, Y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    dls = DataLoaders(TorchDL(TensorDataset(X, Y), batch_size=8), TorchDL(TensorDataset(X, Y), batch_size=16))
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    cap = Capture()
    reg = L1L2Regularizer(l1=l1, l2=l2)
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), opt_func=SGD, lr=0.0, cbs=[reg, cap])
    return learn, reg, cap


def test_penalty_is_keras_l1_l2_over_weight_matrices_only():
    learn, reg, _ = setup(0.01, 0.1)
    w0, w3 = learn.model[0].weight, learn.model[3].weight
    expected = 0.01 * (w0.abs().sum() + w3.abs().sum()) + 0.1 * (w0.pow(2).sum() + w3.pow(2).sum())
    assert reg.penalty().item() == pytest.approx(expected.item())  # no biases, no batch-norm parameters


def test_penalty_is_in_the_backpropagated_and_logged_training_loss():
    learn, reg, cap = setup(0.01, 0.1)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
    X, Y = learn.dls.valid.dataset.tensors
    plain = CrossEntropyLossFlat()(learn.model.eval()(X), Y).item()
    assert learn.recorder.values[-1][1] == pytest.approx(plain, rel=1e-5)  # validation loss: no penalty
    learn.model.load_state_dict(before)  # the batch-norm running statistics moved; restore them
    learn.model.train()
    for p in learn.model.parameters():
        p.grad = None
    data_loss = CrossEntropyLossFlat()(learn.model(*cap.xb), *cap.yb)
    total = data_loss + reg.penalty()
    total.backward()
    assert cap.loss.item() == pytest.approx(total.item(), rel=1e-5)
    for g, p in zip(cap.grads, learn.model.parameters()):
        assert torch.allclose(g, p.grad, atol=1e-6)


def test_no_penalty_leaves_the_loss_alone_and_negative_coefficients_are_refused():
    learn, _, cap = setup(0.0, 0.0)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
    assert cap.loss.item() == pytest.approx(CrossEntropyLossFlat()(learn.model.train()(*cap.xb), *cap.yb).item(),
                                            rel=1e-5)
    with pytest.raises(ValueError, match=">= 0"):
        L1L2Regularizer(l2=-1)
