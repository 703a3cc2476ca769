"""learn.compile(): batches run through torch.compile, while freeze/unfreeze, save and export see the plain module."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.callback.progress import ProgressCallback
from learnkit.data.core import DataLoaders
from learnkit.learner import Learner
from learnkit.losses import CrossEntropyLossFlat

pytestmark = pytest.mark.usefixtures("one_thread")


def make_learner(tmp_path) -> Learner:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, 0] > 0).long()
    dls = DataLoaders(TorchDataLoader(TensorDataset(x, y), batch_size=16, shuffle=True),
                      TorchDataLoader(TensorDataset(x, y), batch_size=16), device="cpu")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), path=tmp_path,
                    splitter=lambda m: [list(m[0].parameters()), list(m[2].parameters())])
    learn.remove_cb(ProgressCallback)
    return learn


def snapshot(m: nn.Module) -> dict:
    return {k: v.clone() for k, v in m.state_dict().items()}


@pytest.mark.slow  # torch._dynamo's first trace in a process takes a few seconds
def test_compiled_forward_is_used_and_freeze_unfreeze_still_decide_what_trains(tmp_path):
    learn = make_learner(tmp_path)
    graphs = []

    def counting_backend(gm, example_inputs):  # a torch.compile backend: counts the graphs it is given
        graphs.append(gm)
        return gm.forward

    assert learn.compile(backend=counting_backend) is learn
    assert isinstance(learn.model, nn.Sequential)  # learn.model stays the plain module
    learn.freeze()
    before = snapshot(learn.model)
    with learn.no_logging():
        learn.fit(1, 1e-2)
    assert graphs, "the compiled module ran no batch"
    after = snapshot(learn.model)
    assert torch.equal(before["0.weight"], after["0.weight"]) and not torch.equal(before["2.weight"], after["2.weight"])
    learn.unfreeze()
    with learn.no_logging():
        learn.fit(1, 1e-2)
    assert not torch.equal(after["0.weight"], learn.model.state_dict()["0.weight"])
    # saving and exporting hold the original parameter names
    state = torch.load(learn.save("m"), weights_only=True)["model"]
    assert set(state) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert not any("_orig_mod" in k for k in learn.model.state_dict())
    # a new model drops the compiled one (it would be stale)
    learn.model = nn.Sequential(nn.Linear(4, 2))
    n = len(graphs)
    learn.get_preds()
    assert len(graphs) == n
