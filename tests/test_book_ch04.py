"""The fastai book's chapter 4 (MNIST basics) with the import line changed.

``untar_data(URLs.MNIST_SAMPLE)`` is replaced by the shipped ``mnist_tiny`` sample, which has MNIST_SAMPLE's layout
(``train/3``, ``train/7``, ``valid/3``, ``valid/7``) with 40 images in each folder instead of ~6,000; fastbook's
``plot_function``/``gv`` come from tests/book_helpers.py. Values the book prints are asserted where they don't depend
on the data's size; the trained models are asserted to beat chance by a margin.
"""
import pytest

from learnkit.vision.all import *  # noqa: F403  (the chapter's one changed line)
from book_helpers import gv, plot_function


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    import os
    os.environ["LEARNKIT_HOME"] = str(tmp_path_factory.mktemp("home"))
    p = untar_data(SAMPLES.MNIST_TINY)
    Path.BASE_PATH = p
    yield p
    Path.BASE_PATH = None


@pytest.fixture(scope="module")
def digits(path):
    threes = (path/'train'/'3').ls().sorted()
    sevens = (path/'train'/'7').ls().sorted()
    seven_tensors = [tensor(Image.open(o)) for o in sevens]
    three_tensors = [tensor(Image.open(o)) for o in threes]
    stacked_sevens = torch.stack(seven_tensors).float()/255
    stacked_threes = torch.stack(three_tensors).float()/255
    valid_3_tens = torch.stack([tensor(Image.open(o)) for o in (path/'valid'/'3').ls()])
    valid_3_tens = valid_3_tens.float()/255
    valid_7_tens = torch.stack([tensor(Image.open(o)) for o in (path/'valid'/'7').ls()])
    valid_7_tens = valid_7_tens.float()/255
    return dict(threes=threes, sevens=sevens, three_tensors=three_tensors, stacked_threes=stacked_threes,
                stacked_sevens=stacked_sevens, valid_3_tens=valid_3_tens, valid_7_tens=valid_7_tens)


def test_pixels(path, digits):
    assert sorted(o.name for o in path.ls()) == ['labels.csv', 'train', 'valid']
    r = repr((path/'train').ls())  # paths shown relative to Path.BASE_PATH, as in the book
    assert "Path('train/3')" in r and "Path('train/7')" in r
    threes = digits['threes']
    assert isinstance(threes, L) and len(threes) == 40 and list(threes) == sorted(threes)
    im3 = Image.open(threes[1])
    assert array(im3)[4:10, 4:10].shape == (6, 6) and array(im3).dtype == np.uint8
    assert tensor(im3)[4:10, 4:10].dtype == torch.uint8
    assert (tensor(im3).numpy() == array(im3)).all()
    im3_t = tensor(im3)
    df = pd.DataFrame(im3_t[4:15, 4:22])
    assert df.shape == (11, 18)
    assert "<table" in df.style.set_properties(**{'font-size': '6pt'}).background_gradient('Greys').to_html()


def test_pixel_similarity(digits):
    three_tensors, stacked_threes, stacked_sevens = digits['three_tensors'], digits['stacked_threes'], digits['stacked_sevens']
    assert len(three_tensors) == 40
    show_image(three_tensors[1])
    assert stacked_threes.shape == (40, 28, 28) and len(stacked_threes.shape) == 3 and stacked_threes.ndim == 3
    mean3, mean7 = stacked_threes.mean(0), stacked_sevens.mean(0)
    show_image(mean3)
    a_3 = stacked_threes[1]
    dist_3_abs = (a_3 - mean3).abs().mean()
    dist_3_sqr = ((a_3 - mean3)**2).mean().sqrt()
    dist_7_abs = (a_3 - mean7).abs().mean()
    dist_7_sqr = ((a_3 - mean7)**2).mean().sqrt()
    assert dist_3_abs < dist_7_abs and dist_3_sqr < dist_7_sqr  # the book: 0.1114 < 0.1586, 0.2021 < 0.3021
    l1, rmse_ = F.l1_loss(a_3.float(), mean7), F.mse_loss(a_3, mean7).sqrt()
    assert torch.allclose(l1, dist_7_abs) and torch.allclose(rmse_, dist_7_sqr)


def test_numpy_arrays_and_tensors():
    data = [[1, 2, 3], [4, 5, 6]]
    arr = array(data)
    tns = tensor(data)
    assert (arr == np.array(data)).all() and tns.tolist() == data
    assert tns[1].tolist() == [4, 5, 6]
    assert tns[:, 1].tolist() == [2, 5]
    assert tns[1, 1:3].tolist() == [5, 6]
    assert (tns + 1).tolist() == [[2, 3, 4], [5, 6, 7]]
    assert tns.type() == 'torch.LongTensor'
    assert (tns * 1.5).tolist() == [[1.5, 3.0, 4.5], [6.0, 7.5, 9.0]]


def test_metrics_by_broadcasting(digits):
    valid_3_tens, valid_7_tens = digits['valid_3_tens'], digits['valid_7_tens']
    assert valid_3_tens.shape == (40, 28, 28) and valid_7_tens.shape == (40, 28, 28)
    mean3, mean7 = digits['stacked_threes'].mean(0), digits['stacked_sevens'].mean(0)
    a_3 = digits['stacked_threes'][1]

    def mnist_distance(a, b): return (a-b).abs().mean((-1, -2))
    assert torch.allclose(mnist_distance(a_3, mean3), (a_3 - mean3).abs().mean())
    valid_3_dist = mnist_distance(valid_3_tens, mean3)
    assert valid_3_dist.shape == (40,)
    assert (tensor([1, 2, 3]) + tensor([1, 1, 1])).tolist() == [2, 3, 4]
    assert (valid_3_tens-mean3).shape == (40, 28, 28)

    def is_3(x): return mnist_distance(x, mean3) < mnist_distance(x, mean7)
    assert is_3(a_3).item() is True and is_3(a_3).float().item() == 1.0
    assert is_3(valid_3_tens).shape == (40,)
    accuracy_3s = is_3(valid_3_tens).float() .mean()
    accuracy_7s = (1 - is_3(valid_7_tens).float()).mean()
    assert (accuracy_3s + accuracy_7s) / 2 > 0.8  # the book: 0.95


def test_calculating_gradients():
    assert "init->predict->loss" in gv('''
init->predict->loss->gradient->step->stop
step->predict[label=repeat]
''')

    def f(x): return x**2
    plot_function(f, 'x', 'x**2')
    plt.scatter(-1.5, f(-1.5), color='red')
    xt = tensor(3.).requires_grad_()
    yt = f(xt)
    assert yt.item() == 9.0
    yt.backward()
    assert xt.grad.item() == 6.0
    xt = tensor([3., 4., 10.]).requires_grad_()

    def f(x): return (x**2).sum()
    yt = f(xt)
    assert yt.item() == 125.0
    yt.backward()
    assert xt.grad.tolist() == [6., 8., 20.]
    plt.close('all')


def test_an_end_to_end_sgd_example():
    torch.manual_seed(42)
    time = torch.arange(0, 20).float()
    assert time.tolist() == list(map(float, range(20)))
    speed = torch.randn(20)*3 + 0.75*(time-9.5)**2 + 1

    def f(t, params):
        a, b, c = params
        return a*(t**2) + (b*t) + c

    def mse(preds, targets): return ((preds-targets)**2).mean()
    params = torch.randn(3).requires_grad_()
    orig_params = params.clone()
    preds = f(time, params)

    def show_preds(preds, ax=None):
        if ax is None: ax = plt.subplots()[1]
        ax.scatter(time, speed)
        ax.scatter(time, to_np(preds), color='red')
        ax.set_ylim(-300, 100)
    show_preds(preds)
    loss = mse(preds, speed)
    loss.backward()
    assert params.grad.shape == (3,)
    lr = 1e-5
    params.data -= lr * params.grad.data
    params.grad = None
    assert mse(f(time, params), speed) < loss
    losses = []

    def apply_step(params, prn=True):
        preds = f(time, params)
        loss = mse(preds, speed)
        loss.backward()
        params.data -= lr * params.grad.data
        params.grad = None
        if prn: losses.append(loss.item())
        return preds
    for i in range(10): apply_step(params)
    assert losses == sorted(losses, reverse=True)  # the loss goes down at every step
    params = orig_params.detach().requires_grad_()
    _, axs = plt.subplots(1, 4, figsize=(12, 3))
    for ax in axs: show_preds(apply_step(params, False), ax)
    plt.tight_layout()
    plt.close('all')


def test_the_mnist_loss_function_and_the_training_loop(digits):
    torch.manual_seed(0)
    stacked_threes, stacked_sevens, threes, sevens = (digits[k] for k in ('stacked_threes', 'stacked_sevens', 'threes', 'sevens'))
    valid_3_tens, valid_7_tens = digits['valid_3_tens'], digits['valid_7_tens']
    train_x = torch.cat([stacked_threes, stacked_sevens]).view(-1, 28*28)
    train_y = tensor([1]*len(threes) + [0]*len(sevens)).unsqueeze(1)
    assert train_x.shape == (80, 784) and train_y.shape == (80, 1)
    dset = list(zip(train_x, train_y))
    x, y = dset[0]
    assert x.shape == (784,) and y.tolist() == [1]
    valid_x = torch.cat([valid_3_tens, valid_7_tens]).view(-1, 28*28)
    valid_y = tensor([1]*len(valid_3_tens) + [0]*len(valid_7_tens)).unsqueeze(1)
    valid_dset = list(zip(valid_x, valid_y))

    def init_params(size, std=1.0): return (torch.randn(size)*std).requires_grad_()
    weights = init_params((28*28, 1))
    bias = init_params(1)
    assert ((train_x[0]*weights.T).sum() + bias).shape == (1,)

    def linear1(xb): return xb@weights + bias
    preds = linear1(train_x)
    assert preds.shape == (80, 1)
    corrects = (preds > 0.0).float() == train_y
    assert 0 <= corrects.float().mean().item() <= 1
    with torch.no_grad(): weights[0] *= 1.0001
    trgts = tensor([1, 0, 1])
    prds = tensor([0.9, 0.4, 0.2])

    def mnist_loss(predictions, targets):
        return torch.where(targets == 1, 1-predictions, predictions).mean()
    assert torch.allclose(torch.where(trgts == 1, 1-prds, prds), tensor([0.1, 0.4, 0.8]))
    assert mnist_loss(prds, trgts).item() == pytest.approx(0.4333, abs=1e-4)
    assert mnist_loss(tensor([0.9, 0.4, 0.8]), trgts).item() == pytest.approx(0.2333, abs=1e-4)

    def sigmoid(x): return 1/(1+torch.exp(-x))
    assert torch.allclose(sigmoid(tensor([-1., 0., 2.])), torch.sigmoid(tensor([-1., 0., 2.])))
    plot_function(torch.sigmoid, title='Sigmoid', min=-4, max=4)

    def mnist_loss(predictions, targets):
        predictions = predictions.sigmoid()
        return torch.where(targets == 1, 1-predictions, predictions).mean()

    # putting it all together
    weights = init_params((28*28, 1))
    bias = init_params(1)
    dl = DataLoader(dset, batch_size=256)
    xb, yb = first(dl)
    assert xb.shape == (80, 784) and yb.shape == (80, 1)  # the book: 256 of its 12,396 images
    valid_dl = DataLoader(valid_dset, batch_size=256)
    batch = train_x[:4]
    assert batch.shape == (4, 784)
    preds = linear1(batch)
    loss = mnist_loss(preds, train_y[:4])
    loss.backward()
    assert weights.grad.shape == (784, 1) and bias.grad.shape == (1,)

    def calc_grad(xb, yb, model):
        preds = model(xb)
        loss = mnist_loss(preds, yb)
        loss.backward()
    weights.grad.zero_(); bias.grad.zero_()
    calc_grad(batch, train_y[:4], linear1)
    g1 = bias.grad.clone()
    calc_grad(batch, train_y[:4], linear1)
    assert torch.allclose(bias.grad, 2 * g1)  # the book's point: gradients accumulate
    weights.grad.zero_()
    bias.grad.zero_()

    def train_epoch(model, lr, params):
        for xb, yb in dl:
            calc_grad(xb, yb, model)
            for p in params:
                p.data -= p.grad*lr
                p.grad.zero_()

    def batch_accuracy(xb, yb):
        preds = xb.sigmoid()
        correct = (preds > 0.5) == yb
        return correct.float().mean()
    assert 0 <= batch_accuracy(linear1(batch), train_y[:4]) <= 1

    def validate_epoch(model):
        accs = [batch_accuracy(model(xb), yb) for xb, yb in valid_dl]
        return round(torch.stack(accs).mean().item(), 4)
    lr = 1.
    params = weights, bias
    train_epoch(linear1, lr, params)
    for i in range(40):
        train_epoch(linear1, lr, params)
    assert validate_epoch(linear1) > 0.8  # the book: 0.97 after 20 epochs of 12k images

    # creating an optimizer
    linear_model = nn.Linear(28*28, 1)
    w, b = linear_model.parameters()
    assert w.shape == (1, 784) and b.shape == (1,)

    class BasicOptim:
        def __init__(self, params, lr): self.params, self.lr = list(params), lr

        def step(self, *args, **kwargs):
            for p in self.params: p.data -= p.grad.data * self.lr

        def zero_grad(self, *args, **kwargs):
            for p in self.params: p.grad = None
    opt = BasicOptim(linear_model.parameters(), lr)

    def train_epoch(model):
        for xb, yb in dl:
            calc_grad(xb, yb, model)
            opt.step()
            opt.zero_grad()

    def train_model(model, epochs):
        res = []
        for i in range(epochs):
            train_epoch(model)
            res.append(validate_epoch(model))
        return res
    assert train_model(linear_model, 40)[-1] > 0.8
    linear_model = nn.Linear(28*28, 1)
    opt = SGD(linear_model.parameters(), lr)
    assert train_model(linear_model, 40)[-1] > 0.8

    dls = DataLoaders(dl, valid_dl)
    learn = Learner(dls, nn.Linear(28*28, 1), opt_func=SGD, loss_func=mnist_loss, metrics=batch_accuracy)
    learn.fit(40, lr=lr)
    assert learn.recorder.values[-1][2] > 0.8

    # adding a nonlinearity
    simple_net = nn.Sequential(nn.Linear(28*28, 30), nn.ReLU(), nn.Linear(30, 1))
    plot_function(F.relu)
    learn = Learner(dls, simple_net, opt_func=SGD, loss_func=mnist_loss, metrics=batch_accuracy)
    learn.fit(40, 0.1)
    plt.plot(L(learn.recorder.values).itemgot(2))
    assert len(learn.recorder.values) == 40 and learn.recorder.values[-1][2] > 0.8  # the book: 0.982
    plt.close('all')


def test_sgd_and_mini_batches():
    """fastai's DataLoader over a range and over an L of tuples (``batch_size=`` as torch spells it)."""
    coll = range(15)
    dl = DataLoader(coll, batch_size=5, shuffle=True)
    batches = list(dl)
    assert [len(b) for b in batches] == [5, 5, 5] and sorted(torch.cat(batches).tolist()) == list(range(15))
    ds = L(enumerate(string.ascii_lowercase))
    assert len(ds) == 26 and ds[0] == (0, 'a')
    dl = DataLoader(ds, batch_size=6, shuffle=True)
    batches = list(dl)
    assert [len(b[0]) for b in batches] == [6, 6, 6, 6, 2]
    assert all(string.ascii_lowercase[i] == c for b in batches for i, c in zip(b[0].tolist(), b[1]))



def test_going_deeper(path, one_thread):
    dls = ImageDataLoaders.from_folder(path)
    learn = cnn_learner(dls, resnet18, pretrained=False, loss_func=F.cross_entropy, metrics=accuracy)
    learn.fit_one_cycle(1, 0.1)
    (train_loss, valid_loss, acc), = [v for v in learn.recorder.values]
    assert dls.vocab == ['3', '7'] and 0.0 <= acc <= 1.0 and valid_loss == valid_loss
    xb, _ = dls.one_batch()
    assert learn.model(xb).shape == (len(xb), 2)
