"""Issue 31's smaller items, ported from fastai's notebooks (13b_metrics, 20_interpret, 09_vision.augment,
40_tabular.core, 00_torch_core) with the import line changed: values are fastai's."""
import pandas as pd
import pytest
from PIL import Image as PILImageModule

from learnkit.vision.all import *  # noqa: F403
from learnkit.tabular.all import TabularPandas, Categorify as TabCategorify


class _TstLearner:
    training = False


def _vcb_emb(pred, targ):
    """fastai's create_vcb_emb: one-hot scores whose argmax is ``pred``."""
    vcb_sz = int(torch.cat([pred, targ]).max()) + 1
    emb = torch.zeros(pred.size(0), pred.size(1), vcb_sz)
    for i, v in enumerate(pred):
        emb[i].scatter_(1, v.view(len(v), 1), 1)
    return emb


def _bleu(met, x1, x2):
    met.reset()
    learn = _TstLearner()
    for _ in range(len(x1)):
        learn.pred, learn.yb = x1, (x2,)
        met.accumulate(learn)
    return met.value


def test_corpus_bleu_metric():
    targ = torch.tensor([[1, 2, 3, 4, 5, 6, 1, 7, 8]])
    pred = torch.tensor([[1, 9, 3, 4, 5, 6, 1, 10, 8]])
    assert _bleu(CorpusBLEUMetric(), _vcb_emb(pred, targ), targ) == pytest.approx(0.48549, abs=1e-4)
    targ = torch.tensor([[1, 2, 3, 4, 5, 6, 1, 7, 8], [1, 2, 3, 4, 5, 6, 1, 7, 8]])
    pred = torch.tensor([[1, 9, 3, 4, 5, 6, 1, 10, 8], [1, 9, 3, 4, 5, 6, 1, 10, 8]])
    assert _bleu(CorpusBLEUMetric(), _vcb_emb(pred, targ), targ) == pytest.approx(0.48549, abs=1e-4)
    targ = torch.tensor([[1, 2, 3, 4, 5, 6, 1, 7, 8]])
    assert _bleu(CorpusBLEUMetric(), _vcb_emb(targ, targ), targ) == pytest.approx(1.0)  # a perfect translation
    m = CorpusBLEUMetric()
    m.reset()
    assert m.value is None and m.name == "CorpusBLEU"
    learn = _TstLearner()
    learn.training = True
    learn.pred, learn.yb = _vcb_emb(targ, targ), (targ,)
    m.accumulate(learn)
    assert m.value is None  # training batches are not counted


@pytest.fixture(scope="module")
def learn():
    dls = ImageDataLoaders.from_folder(sample_path("mnist_tiny"), bs=16)
    return Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 2)), loss_func=CrossEntropyLossFlat())


def test_interpretation_on_the_training_set_and_indexing(learn):
    interp = Interpretation.from_learner(learn, ds_idx=0)
    assert len(interp.losses) == len(learn.dls.train_ds) == 80
    losses, idx = interp.top_losses(3)
    assert losses.tolist() == sorted(losses.tolist(), reverse=True) and len(idx) == 3
    inputs, preds, targs, decoded, loss = interp[idx[0].item()]
    assert preds.shape == (2,) and loss == losses[0]
    valid = Interpretation.from_learner(learn)
    assert len(valid.losses) == len(learn.dls.valid_ds)
    ci = ClassificationInterpretation.from_learner(learn, ds_idx=0)
    assert ci.confusion_matrix().sum() == 80


def test_croppad_non_square_and_tuple_sizes():
    img = PILImageModule.new("RGB", (64, 48))
    assert CropPad(32)(img).size == (32, 32)
    assert CropPad((20, 40))(img).size == (40, 20)  # fastai's sizes are (height, width); PIL's are (w, h)
    assert CropPad((60, 80))(img).size == (80, 60)  # padded where larger
    assert CropPad((30, 70))(img).size == (70, 30)
    arr = np.zeros((48, 64, 3), np.uint8)
    arr[24, 32] = 255  # the centre pixel stays in the centre of a centre crop
    out = np.asarray(CropPad((16, 16))(PILImageModule.fromarray(arr)))
    assert out[8, 8].tolist() == [255, 255, 255]


def test_cnn_learner_is_vision_learner_with_fastai_warning(learn):
    with pytest.warns(UserWarning, match="renamed to vision_learner"):
        cl = cnn_learner(learn.dls, resnet18, pretrained=False)
    assert type(cl.model) is type(vision_learner(learn.dls, resnet18, pretrained=False).model)


def test_small_names():
    assert cifar_stats == ([0.491, 0.482, 0.447], [0.247, 0.243, 0.261])
    assert URLs.path(URLs.MNIST_TINY).name == "mnist_tiny.tgz" and URLs.path().name == "archive"
    assert URLs.path(URLs.MNIST_TINY, c_key="data").parent.name == "data"
    x = torch.randn(3, 4)
    assert not test_overflow(x)
    x[1, 2] = float("inf")
    assert test_overflow(x)
    x[1, 2] = float("nan")
    assert test_overflow(x)
    assert image2tensor(PILImageModule.new("L", (5, 4))).shape == (1, 4, 5)
    assert [type(m).__name__ for m in sequential(nn.Linear(2, 2), torch.relu)] == ["Linear", "Lambda"]
    assert len(params(nn.Linear(2, 3))) == 2
    assert to_cpu((torch.ones(1), [torch.zeros(1)], {"a": torch.ones(1)}))[2]["a"].device.type == "cpu"


def test_tabular_target_through_categorify():
    df = pd.DataFrame({'a': [0, 1, 2, 0, 2], 'b': ['x', 'y', 'z', 'y', 'x']})
    to = TabularPandas(df, TabCategorify, 'a', y_names='b', splits=[[0, 1, 2], [3, 4]])
    assert list(to.vocab) == ['x', 'y', 'z']  # from the training rows
    assert to.items['b'].tolist() == [0, 1, 2, 1, 0]  # the target is encoded in the items, as fastai's
    assert to.ys.tolist() == [0, 1, 2, 1, 0]
    assert to.decode_row(to.items.iloc[3])['b'] == 'y'
    df = pd.DataFrame({'a': [0, 1, 2, 0, 2], 'b': ['x', 'y', 'z', 'y', 'w']})
    with pytest.raises(ValueError, match="'b'.*never seen in the training rows"):
        TabularPandas(df, TabCategorify, 'a', y_names='b', splits=[[0, 1, 2], [3, 4]])


def test_path_base_path_and_show_at(tmp_path):
    (tmp_path / "sub").mkdir()
    Path.BASE_PATH = tmp_path
    try:
        assert repr(Path(tmp_path) / "sub") == "Path('sub')"
    finally:
        Path.BASE_PATH = None
    assert repr(Path("a/b")) == "Path('a/b')"
    tls = TfmdLists([1, 2, 3], [Transform(lambda x: x * 2)])
    ax = show_at(tls, 1)
    assert ax.get_title() == "4"
    plt.close('all')
