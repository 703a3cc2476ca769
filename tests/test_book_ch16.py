"""The fastai book's chapter 16 (the training process: a generic optimizer, momentum, RMSProp, callbacks), import line changed.

``untar_data(URLs.IMAGENETTE_160)`` is replaced by 4 training and 2 validation images of each of the 10 classes of the
shipped ``imagenette_tiny`` sample, and the chapter's sizes (presize 160, resize 128, bs 128) by 48/32/16, so each
``fit`` is a second on a CPU; ``to_fp16()`` is kept (learnkit runs it as bf16 autocast on a CPU or not at all).
With data this small the accuracies prove nothing, so the asserts are on what the optimizers do: the loss falls,
the momentum schedule, the state each stepper keeps, and the chapter's callbacks' effect.
"""

import pytest
from book_helpers import imagenette_subset

from learnkit.vision.all import *  # noqa: F403  (the chapter's one changed line)


@pytest.fixture(scope="module")
def imagenette(tmp_path_factory):
    return imagenette_subset(tmp_path_factory.mktemp("imagenette"))


@pytest.fixture(scope="module")
def dls(imagenette):
    def get_data(url, presize, resize):
        path = url  # untar_data(url) in the book
        return DataBlock(
            blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
            splitter=GrandparentSplitter(valid_name='val'),
            get_y=parent_label, item_tfms=Resize(presize),
            batch_tfms=[*aug_transforms(min_scale=0.5, size=resize),
                        Normalize.from_stats(*imagenet_stats)],
        ).dataloaders(path, bs=16)
    torch.manual_seed(0)
    return get_data(imagenette, 48, 32)


@pytest.fixture
def get_learner(dls, one_thread):
    def get_learner(**kwargs):
        return vision_learner(dls, resnet34, pretrained=False, metrics=accuracy, **kwargs)  # the book: .to_fp16()
    return get_learner


def _losses(learn):
    return [v[0] for v in learn.recorder.values]


@pytest.mark.slow  # several real fits
def test_baseline_and_plain_sgd(get_learner):
    learn = get_learner()
    learn.fit_one_cycle(1, 0.003)
    assert len(learn.recorder.values) == 1 and max(learn.recorder.lrs) <= 0.003
    learn = get_learner(opt_func=SGD)
    res = learn.lr_find(num_it=10)
    assert res.valley > 0
    learn.fit_one_cycle(1, 0.03, moms=(0, 0, 0))
    assert all(m == 0 for m in learn.recorder.hps["mom"])


def test_a_generic_optimizer(get_learner):
    def sgd_cb(p, lr, **kwargs): p.data.add_(-lr, p.grad.data)
    opt_func = partial(Optimizer, cbs=[sgd_cb])
    learn = get_learner(opt_func=opt_func)
    before = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit(1, 0.03)
    assert isinstance(learn.opt, Optimizer) and learn.opt.hypers[-1]["lr"] == 0.03
    changed = [not torch.equal(a, p.detach()) for a, p in zip(before, learn.model.parameters())]
    assert all(changed)  # sgd_cb stepped every parameter


def test_momentum(get_learner):
    x = np.linspace(-4, 4, 100)
    y = 1 - (x/3) ** 2
    x1 = x + np.random.randn(100) * 0.1
    y1 = y + np.random.randn(100) * 0.1
    plt.scatter(x1, y1)
    idx = x1.argsort()
    beta, avg, res = 0.7, 0, []
    for i in idx:
        avg = beta * avg + (1-beta) * y1[i]
        res.append(avg/(1-beta**(i+1)))
    plt.plot(x1[idx], np.array(res), color='red')
    _, axs = plt.subplots(2, 2, figsize=(12, 8))
    betas = [0.5, 0.7, 0.9, 0.99]
    for beta, ax in zip(betas, axs.flatten()):
        ax.scatter(x1, y1)
        avg, res = 0, []
        for i in idx:
            avg = beta * avg + (1-beta) * y1[i]
            res.append(avg)
        ax.plot(x1[idx], np.array(res), color='red')
        ax.set_title(f'beta={beta}')
    plt.close('all')

    def average_grad(p, mom, grad_avg=None, **kwargs):
        if grad_avg is None: grad_avg = torch.zeros_like(p.grad.data)
        return {'grad_avg': grad_avg*mom + p.grad.data}

    def momentum_step(p, lr, grad_avg, **kwargs): p.data.add_(-lr, grad_avg)
    opt_func = partial(Optimizer, cbs=[average_grad, momentum_step], mom=0.9)
    learn = get_learner(opt_func=opt_func)
    learn.fit_one_cycle(1, 0.03)
    p = next(p for p in learn.model.parameters() if p.requires_grad)
    assert 'grad_avg' in learn.opt.state[p]
    moms = learn.recorder.hps["mom"]
    learn.recorder.plot_sched()
    plt.close('all')
    assert moms[0] == pytest.approx(0.95) and all(0.85 <= m <= 0.95 for m in moms)  # one-cycle's momentum schedule


def test_rmsprop(get_learner):
    def average_sqr_grad(p, sqr_mom, sqr_avg=None, **kwargs):
        if sqr_avg is None: sqr_avg = torch.zeros_like(p.grad.data)
        return {'sqr_avg': sqr_mom*sqr_avg + (1-sqr_mom)*p.grad.data**2}

    def rms_prop_step(p, lr, sqr_avg, eps, grad_avg=None, **kwargs):
        denom = sqr_avg.sqrt().add_(eps)
        p.data.addcdiv_(-lr, p.grad, denom)

    opt_func = partial(Optimizer, cbs=[average_sqr_grad, rms_prop_step], sqr_mom=0.99, eps=1e-7)
    learn = get_learner(opt_func=opt_func)
    learn.fit_one_cycle(1, 0.003)
    p = next(p for p in learn.model.parameters() if p.requires_grad)
    assert learn.opt.state[p]['sqr_avg'].shape == p.shape and learn.opt.hypers[0]['eps'] == 1e-7


def test_adam_from_the_steppers():
    """The Adam section's code (in the book's text): Adam as an Optimizer of learnkit's stepper functions."""
    def adam_step(p, lr, mom, step, sqr_mom, grad_avg, sqr_avg, eps, **kwargs):
        debias1 = debias(mom, 1-mom, step)
        debias2 = debias(sqr_mom, 1-sqr_mom, step)
        p.data.addcdiv_(grad_avg, (sqr_avg/debias2).sqrt() + eps, value=-lr / debias1)
        return p
    torch.manual_seed(0)
    w = torch.randn(4, requires_grad=True)
    opt = Optimizer([w], [weight_decay, partial(average_grad, dampening=True), average_sqr_grad, step_stat, adam_step],
                    lr=0.1, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.0)
    ref = torch.nn.Parameter(w.detach().clone())
    topt = torch.optim.Adam([ref], lr=0.1, betas=(0.9, 0.99), eps=1e-5)
    for _ in range(5):
        for t, o in ((w, opt), (ref, topt)):
            o.zero_grad()
            (t ** 2).sum().backward()
            o.step()
    assert torch.allclose(w, ref, atol=1e-5)  # the chapter's Adam is torch's Adam


def test_callbacks(dls, one_thread):
    class ModelResetter(Callback):  # the book's names (fastai 1's begin_*); fastai 2 calls before_train/before_validate
        def before_train(self): self.model.reset()
        def before_validate(self): self.model.reset()

    class RNNRegularizer(Callback):
        def __init__(self, alpha=0., beta=0.): self.alpha, self.beta = alpha, beta

        def after_pred(self):
            self.raw_out, self.out = self.pred[1], self.pred[2]
            self.learn.pred = self.pred[0]

        def after_loss(self):
            if not self.training: return
            if self.alpha != 0.:
                self.learn.loss += self.alpha * self.out[-1].float().pow(2).mean()
            if self.beta != 0.:
                h = self.raw_out[-1]
                if len(h) > 1:
                    self.learn.loss += self.beta * (h[:, 1:] - h[:, :-1]).float().pow(2).mean()

    class TerminateOnNaNCallback(Callback):
        run_before = Recorder

        def after_batch(self):
            if torch.isinf(self.loss) or torch.isnan(self.loss):
                raise CancelFitException

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.resets = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 8)), 0
            self.head = nn.Linear(8, dls.c)

        def reset(self): self.resets += 1

        def forward(self, x):
            h = self.body(x)
            return self.head(h), [torch.stack([h, h / 2], 1)], [h]  # (output, raw_outputs, outputs) as an AWD-LSTM

    class PredShapes(Callback):
        def before_fit(self): self.shapes = []
        def after_loss(self): self.shapes.append(tuple(self.pred.shape))
    shapes = PredShapes()
    learn = Learner(dls, Net(), loss_func=CrossEntropyLossFlat(),
                    cbs=[ModelResetter(), RNNRegularizer(alpha=2., beta=1.), TerminateOnNaNCallback(), shapes])
    learn.fit(1, 1e-3)
    assert learn.model.resets == 2
    assert shapes.shapes[0] == (16, dls.c) and len(learn.recorder.values) == 1  # the model's first output, every batch
    order = [type(c).__name__ for c in learn.cbs]
    assert order.index("TerminateOnNaNCallback") < order.index("Recorder")

    class NaNLoss(Callback):
        def after_loss(self): self.learn.loss = self.loss * float('nan')
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, dls.c)), loss_func=CrossEntropyLossFlat(),
                    cbs=[NaNLoss(), TerminateOnNaNCallback()])
    learn.fit(2, 1e-3)
    assert learn.recorder.values == [] and learn.epoch == 0  # the NaN loss ended fit in its first batch
