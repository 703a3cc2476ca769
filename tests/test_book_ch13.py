"""The fastai book's chapter 13 (convolutions) with the import line changed.

``URLs.MNIST_SAMPLE`` is the shipped ``mnist_tiny`` sample (same layout, 40 images a folder; the book's ``12.png``
is the sample's first 3); for ``URLs.MNIST`` (10 digits, ``training``/``testing``) the test builds a folder of that
layout from mnist_tiny's 3s and 7s. ``image_bear()`` (fastbook) is an Imagenette JPEG. Epochs are 1 and batches small.
"""
import shutil

import pytest

from learnkit.vision.all import *  # noqa: F403  (the chapter's one changed line)
from learnkit.callback.hook import *  # noqa: F403  (the book: from fastai.callback.hook import *)
from book_helpers import image_bear


@pytest.fixture(scope="module")
def path():
    return sample_path("mnist_tiny")


def test_the_magic_of_convolutions(path):
    top_edge = tensor([[-1, -1, -1], [0, 0, 0], [1, 1, 1]]).float()
    im3 = Image.open((path/'train'/'3').ls().sorted()[0])  # the book: path/'train'/'3'/'12.png'
    show_image(im3)
    im3_t = tensor(im3)
    assert (im3_t[0:3, 0:3] * top_edge).shape == (3, 3)
    assert (im3_t[0:3, 0:3] * top_edge).sum().item() == 0  # the corner is blank, as in the book
    df = pd.DataFrame(im3_t[:10, :20])
    df.style.set_properties(**{'font-size': '6pt'}).background_gradient('Greys')

    def apply_kernel(row, col, kernel):
        return (im3_t[row-1:row+2, col-1:col+2] * kernel).sum()
    assert apply_kernel(5, 7, top_edge) == (im3_t[4:7, 6:9] * top_edge).sum()
    assert [[(i, j) for j in range(1, 5)] for i in range(1, 5)][1][2] == (2, 3)
    rng = range(1, 27)
    top_edge3 = tensor([[apply_kernel(i, j, top_edge) for j in rng] for i in rng])
    show_image(top_edge3)
    left_edge = tensor([[-1, 1, 0], [-1, 1, 0], [-1, 1, 0]]).float()
    left_edge3 = tensor([[apply_kernel(i, j, left_edge) for j in rng] for i in rng])
    show_image(left_edge3)
    assert top_edge3.shape == left_edge3.shape == (26, 26)
    ref = F.conv2d(im3_t.float()[None, None], top_edge[None, None])[0, 0]
    assert torch.equal(top_edge3, ref)  # the hand-made convolution is PyTorch's (cross-correlation)
    plt.close('all')


def test_convolutions_in_pytorch_and_a_first_cnn(path, one_thread):
    top_edge = tensor([[-1, -1, -1], [0, 0, 0], [1, 1, 1]]).float()
    left_edge = tensor([[-1, 1, 0], [-1, 1, 0], [-1, 1, 0]]).float()
    diag1_edge = tensor([[0, -1, 1], [-1, 1, 0], [1, 0, 0]]).float()
    diag2_edge = tensor([[1, -1, 0], [0, 1, -1], [0, 0, 1]]).float()
    edge_kernels = torch.stack([left_edge, top_edge, diag1_edge, diag2_edge])
    assert edge_kernels.shape == (4, 3, 3)
    mnist = DataBlock((ImageBlock(cls=PILImageBW), CategoryBlock),
                      get_items=get_image_files,
                      splitter=GrandparentSplitter(),
                      get_y=parent_label)
    dls = mnist.dataloaders(path)
    xb, yb = first(dls.valid)
    assert xb.shape == (64, 1, 28, 28)
    xb, yb = to_cpu(xb), to_cpu(yb)
    assert edge_kernels.shape == (4, 3, 3) and edge_kernels.unsqueeze(1).shape == (4, 1, 3, 3)
    edge_kernels = edge_kernels.unsqueeze(1)
    batch_features = F.conv2d(xb, edge_kernels)
    assert batch_features.shape == (64, 4, 26, 26)
    show_image(batch_features[0, 0])

    simple_net = nn.Sequential(nn.Linear(28*28, 30), nn.ReLU(), nn.Linear(30, 1))
    assert "Linear(in_features=784, out_features=30, bias=True)" in repr(simple_net)
    broken_cnn = sequential(nn.Conv2d(1, 30, kernel_size=3, padding=1), nn.ReLU(), nn.Conv2d(30, 1, kernel_size=3, padding=1))
    assert broken_cnn(xb).shape == (64, 1, 28, 28)

    def conv(ni, nf, ks=3, act=True):
        res = nn.Conv2d(ni, nf, stride=2, kernel_size=ks, padding=ks//2)
        if act: res = nn.Sequential(res, nn.ReLU())
        return res
    simple_cnn = sequential(conv(1, 4), conv(4, 8), conv(8, 16), conv(16, 32), conv(32, 2, act=False), Flatten())
    assert simple_cnn(xb).shape == (64, 2)
    learn = Learner(dls, simple_cnn, loss_func=F.cross_entropy, metrics=accuracy)
    s = learn.summary()
    assert "Total params: 6,722" in str(s)  # the book's count: 40 + 296 + 1,168 + 4,640 + 578
    learn.fit_one_cycle(2, 0.01)
    assert len(learn.recorder.values) == 2
    m = learn.model[0]
    assert isinstance(m[0], nn.Conv2d) and isinstance(m[1], nn.ReLU)
    assert m[0].weight.shape == (4, 1, 3, 3) and m[0].bias.shape == (4,)
    plt.close('all')


def test_color_images():
    im = image2tensor(Image.open(image_bear()))
    assert im.shape == (3, 128, 128) and im.dtype == torch.uint8
    show_image(im)
    _, axs = subplots(1, 3)
    for bear, ax, color in zip(im, axs, ('Reds', 'Greens', 'Blues')):
        show_image(255-bear, ax=ax, cmap=color)
    assert len(axs) == 3
    plt.close('all')


@pytest.fixture(scope="module")
def mnist_path(tmp_path_factory):
    """URLs.MNIST's layout (training/<digit>, testing/<digit>) from mnist_tiny's 3s and 7s."""
    src, dst = sample_path("mnist_tiny"), tmp_path_factory.mktemp("mnist")
    for a, b in (("train", "training"), ("valid", "testing")):
        shutil.copytree(src / a, dst / b)
    return Path(dst)


def test_improving_training_stability(mnist_path, one_thread):
    path = mnist_path
    Path.BASE_PATH = path
    try:
        assert "Path('testing')" in repr(path.ls()) and "Path('training')" in repr(path.ls())
    finally:
        Path.BASE_PATH = None

    def get_dls(bs=64):
        return DataBlock(
            blocks=(ImageBlock(cls=PILImageBW), CategoryBlock),
            get_items=get_image_files,
            splitter=GrandparentSplitter('training', 'testing'),
            get_y=parent_label,
            batch_tfms=Normalize()
        ).dataloaders(path, bs=bs)
    dls = get_dls()
    xb, _ = dls.one_batch()
    assert abs(xb.mean().item()) < 0.3 and abs(xb.std().item() - 1) < 0.3  # Normalize() took the batch's stats
    dls.show_batch(max_n=9, figsize=(4, 4))

    def conv(ni, nf, ks=3, act=True):
        res = nn.Conv2d(ni, nf, stride=2, kernel_size=ks, padding=ks//2)
        if act: res = nn.Sequential(res, nn.ReLU())
        return res

    def simple_cnn():
        return sequential(conv(1, 8, ks=5), conv(8, 16), conv(16, 32), conv(32, 64), conv(64, 10, act=False), Flatten())

    def fit(epochs=1):
        learn = Learner(dls, simple_cnn(), loss_func=F.cross_entropy, metrics=accuracy, cbs=ActivationStats(with_hist=True))
        learn.fit(epochs, 0.06)
        return learn
    learn = fit()
    learn.activation_stats.plot_layer_stats(0)
    learn.activation_stats.plot_layer_stats(-2)
    dls = get_dls(512)
    learn = fit()
    learn.activation_stats.plot_layer_stats(-2)

    def fit(epochs=1, lr=0.06):
        learn = Learner(dls, simple_cnn(), loss_func=F.cross_entropy, metrics=accuracy, cbs=ActivationStats(with_hist=True))
        learn.fit_one_cycle(epochs, lr)
        return learn
    learn = fit()
    learn.recorder.plot_sched()
    learn.activation_stats.plot_layer_stats(-2)
    learn.activation_stats.color_dim(-2)

    def conv(ni, nf, ks=3, act=True):
        layers = [nn.Conv2d(ni, nf, stride=2, kernel_size=ks, padding=ks//2)]
        if act: layers.append(nn.ReLU())
        layers.append(nn.BatchNorm2d(nf))
        return nn.Sequential(*layers)
    learn = fit()
    learn.activation_stats.color_dim(-4)
    learn = fit(5, lr=0.1)
    assert len(learn.recorder.values) == 5
    dls = get_dls(16)  # the book's 60,000 images make many batches an epoch; 80 images at bs=512 make one
    learn = fit(5, lr=0.1)
    assert learn.recorder.values[-1][2] > 0.75  # batchnorm + one-cycle learns 3 vs 7 from 80 images
    plt.close('all')
