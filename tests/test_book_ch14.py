"""The fastai book's chapter 14 (ResNets) with the import line changed.

``URLs.IMAGENETTE_160``/``_320`` are 4 training and 2 validation images of each of the 10 classes of the shipped
``imagenette_tiny`` sample, at presize 48 / resize 32 (the book: 160/128 and 320/224) and bs 16; epochs are 1 and
the bottleneck ResNet-50 is built and run on a batch instead of trained for 20 epochs. ``.to_fp16()`` is kept in one
learner and dropped from the rest: on a CPU learnkit runs it as bfloat16 autocast, which this machine's CPU does
about 50x slower than float32.
"""

import pytest
from book_helpers import imagenette_subset

from learnkit.vision.all import *  # noqa: F403  (the chapter's one changed line)


@pytest.fixture(scope="module")
def dls(tmp_path_factory):
    dst = imagenette_subset(tmp_path_factory.mktemp("imagenette"))

    def get_data(url, presize, resize):
        path = url
        return DataBlock(
            blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
            splitter=GrandparentSplitter(valid_name='val'),
            get_y=parent_label, item_tfms=Resize(presize),
            batch_tfms=[*aug_transforms(min_scale=0.5, size=resize),
                        Normalize.from_stats(*imagenet_stats)],
        ).dataloaders(path, bs=16)
    return get_data(dst, 48, 32)


def _conv_block(ni, nf, stride):
    return nn.Sequential(
        ConvLayer(ni, nf, stride=stride),
        ConvLayer(nf, nf, act_cls=None, norm_type=NormType.BatchZero))


class ResBlock(Module):
    def __init__(self, ni, nf, stride=1):
        self.convs = _conv_block(ni, nf, stride)
        self.idconv = noop if ni == nf else ConvLayer(ni, nf, 1, act_cls=None)
        self.pool = noop if stride == 1 else nn.AvgPool2d(2, ceil_mode=True)

    def forward(self, x):
        return F.relu(self.convs(x) + self.idconv(self.pool(x)))


def test_going_back_to_imagenette(dls, one_thread):
    dls.show_batch(max_n=4)
    assert dls.c == 10

    def avg_pool(x): return x.mean((2, 3))
    assert avg_pool(torch.ones(2, 3, 4, 4)).shape == (2, 3)

    def block(ni, nf): return ConvLayer(ni, nf, stride=2)

    def get_model():
        return nn.Sequential(block(3, 16), block(16, 32), block(32, 64), block(64, 128), block(128, 256),
                             nn.AdaptiveAvgPool2d(1), Flatten(), nn.Linear(256, dls.c))

    def get_learner(m):
        return Learner(dls, m, loss_func=nn.CrossEntropyLoss(), metrics=accuracy).to_fp16()
    learn = get_learner(get_model())
    assert isinstance(learn.model[0], ConvLayer) and learn.model[0][0].stride == (2, 2)
    assert any(type(c).__name__ == "MixedPrecision" for c in learn.cbs)
    learn.to_fp32()
    res = learn.lr_find(num_it=20)
    assert res.valley > 0
    learn.fit_one_cycle(1, 3e-3)
    assert len(learn.recorder.values) == 1
    plt.close('all')


def test_skip_connections(dls, one_thread):
    class ResBlock0(Module):  # the chapter's first ResBlock (same in and out channels)
        def __init__(self, ni, nf):
            self.convs = nn.Sequential(ConvLayer(ni, nf), ConvLayer(nf, nf, norm_type=NormType.BatchZero))

        def forward(self, x): return x + self.convs(x)
    rb = ResBlock0(8, 8)
    assert rb.convs[1][1].weight.abs().sum() == 0  # BatchZero: the block starts as the identity (plus relu)
    x = torch.randn(2, 8, 6, 6)
    rb.eval()
    assert rb(x).shape == x.shape

    assert noop(x) is x
    r = ResBlock(16, 32, stride=2)
    assert r.pool is not noop and r.idconv is not noop and r(torch.randn(2, 16, 7, 7)).shape == (2, 32, 4, 4)
    assert ResBlock(16, 16).idconv is noop

    def block(ni, nf): return ResBlock(ni, nf, stride=2)

    def get_model():
        return nn.Sequential(block(3, 16), block(16, 32), block(32, 64), block(64, 128), block(128, 256),
                             nn.AdaptiveAvgPool2d(1), Flatten(), nn.Linear(256, dls.c))

    def get_learner(m):
        return Learner(dls, m, loss_func=nn.CrossEntropyLoss(), metrics=accuracy)
    learn = get_learner(get_model())
    learn.fit_one_cycle(1, 3e-3)

    def block(ni, nf):
        return nn.Sequential(ResBlock(ni, nf, stride=2), ResBlock(nf, nf))
    learn = get_learner(get_model())
    learn.fit_one_cycle(1, 3e-3)
    assert len(learn.model[0]) == 2 and len(learn.recorder.values) == 1


def _resnet_stem(*sizes):
    return [
        ConvLayer(sizes[i], sizes[i+1], 3, stride=2 if i == 0 else 1)
        for i in range(len(sizes)-1)
    ] + [nn.MaxPool2d(kernel_size=3, stride=2, padding=1)]


class ResNet(nn.Sequential):
    def __init__(self, n_out, layers, expansion=1):
        stem = _resnet_stem(3, 32, 32, 64)
        self.block_szs = [64, 64, 128, 256, 512]
        for i in range(1, 5): self.block_szs[i] *= expansion
        blocks = [self._make_layer(*o) for o in enumerate(layers)]
        super().__init__(*stem, *blocks, nn.AdaptiveAvgPool2d(1), Flatten(), nn.Linear(self.block_szs[-1], n_out))

    def _make_layer(self, idx, n_layers):
        stride = 1 if idx == 0 else 2
        ch_in, ch_out = self.block_szs[idx:idx+2]
        return nn.Sequential(*[
            ResBlock(ch_in if i == 0 else ch_out, ch_out, stride if i == 0 else 1)
            for i in range(n_layers)
        ])


def test_a_state_of_the_art_resnet(dls, one_thread):
    stem = _resnet_stem(3, 32, 32, 64)
    assert [type(m).__name__ for m in stem] == ["ConvLayer", "ConvLayer", "ConvLayer", "MaxPool2d"]
    assert [(m[0].in_channels, m[0].out_channels, m[0].stride) for m in stem[:3]] == [(3, 32, (2, 2)), (32, 32, (1, 1)), (32, 64, (1, 1))]
    rn = ResNet(dls.c, [2, 2, 2, 2])
    assert len(rn) == 4 + 4 + 3
    learn = Learner(dls, rn, loss_func=nn.CrossEntropyLoss(), metrics=accuracy)
    learn.fit_one_cycle(1, 3e-3)
    assert len(learn.recorder.values) == 1


def test_bottleneck_layers(dls):
    global _conv_block
    saved = _conv_block

    def bottleneck(ni, nf, stride):
        return nn.Sequential(
            ConvLayer(ni, nf//4, 1),
            ConvLayer(nf//4, nf//4, stride=stride),
            ConvLayer(nf//4, nf, 1, act_cls=None, norm_type=NormType.BatchZero))
    _conv_block = bottleneck  # the book redefines _conv_block, which ResBlock looks up when it is built
    try:
        rn = ResNet(dls.c, [3, 4, 6, 3], 4)
    finally:
        _conv_block = saved
    assert rn.block_szs == [64, 256, 512, 1024, 2048]
    assert total_params(rn)[0] > 20_000_000  # a ResNet-50's size (the book's: 23.5M)
    rn.eval()
    with torch.no_grad():
        assert rn(torch.randn(1, 3, 64, 64)).shape == (1, dls.c)
