"""The fastai book's chapter 15 (architecture details: model_meta, create_head, a Siamese network), import line changed.

``untar_data(URLs.PETS)`` is the shipped ``pets_tiny`` sample (96 photos, 12 breeds, the original file names);
``resnet34`` is untrained (``create_body(resnet34(), cut=-2)``: no weight download) and the images are 32 px
instead of 224; epochs are 1.
"""
import pytest

from learnkit.vision.all import *  # noqa: F403  (the chapter's one changed line)


def test_model_meta_and_create_head():
    meta = model_meta[resnet50]
    assert meta['cut'] == -2 and meta['stats'] == imagenet_stats and callable(meta['split'])
    head = create_head(20, 2)
    names = [type(m).__name__ for m in head]
    # the book: AdaptiveConcatPool2d, Flatten, BatchNorm1d, Dropout, Linear(40, 512), ReLU, BatchNorm1d, Dropout, Linear(512, 2)
    assert names == ["AdaptiveConcatPool2d", "Flatten", "BatchNorm1d", "Dropout", "Linear", "ReLU", "BatchNorm1d",
                     "Dropout", "Linear"]
    assert (head[4].in_features, head[4].out_features, head[8].out_features) == (40, 512, 2)
    assert head[3].p == 0.25 and head[7].p == 0.5


class SiameseImage(fastuple):
    def show(self, ctx=None, **kwargs):
        img1, img2, same_breed = self
        if not isinstance(img1, Tensor):
            if img2.size != img1.size: img2 = img2.resize(img1.size)
            t1, t2 = tensor(img1), tensor(img2)
            t1, t2 = t1.permute(2, 0, 1), t2.permute(2, 0, 1)
        else: t1, t2 = img1, img2
        line = t1.new_zeros(t1.shape[0], t1.shape[1], 10)
        return show_image(torch.cat([t1, line, t2], dim=2), title=same_breed, ctx=ctx)


def label_func(fname):
    return re.match(r'^(.*)_\d+.jpg$', fname.name).groups()[0]


class SiameseTransform(Transform):
    def __init__(self, files, label_func, splits):
        self.labels = files.map(label_func).unique()
        self.lbl2files = {l: L(f for f in files if label_func(f) == l) for l in self.labels}
        self.label_func = label_func
        self.valid = {f: self._draw(f) for f in files[splits[1]]}

    def encodes(self, f):
        f2, t = self.valid.get(f, self._draw(f))
        img1, img2 = PILImage.create(f), PILImage.create(f2)
        return SiameseImage(img1, img2, t)

    def _draw(self, f):
        same = random.random() < 0.5
        cls = self.label_func(f)
        if not same: cls = random.choice(L(l for l in self.labels if l != cls))
        return random.choice(self.lbl2files[cls]), same


class SiameseModel(Module):
    def __init__(self, encoder, head):
        self.encoder, self.head = encoder, head

    def forward(self, x1, x2):
        ftrs = torch.cat([self.encoder(x1), self.encoder(x2)], dim=1)
        return self.head(ftrs)


def test_a_siamese_network(one_thread):
    random.seed(0)
    torch.manual_seed(0)
    path = sample_path("pets_tiny")
    files = get_image_files(path/"images")
    splits = RandomSplitter()(files)
    tfm = SiameseTransform(files, label_func, splits)
    tls = TfmdLists(files, tfm, splits=splits)
    assert len(tls.train) + len(tls.valid) == len(files) == 96
    s = tls.valid[0]
    assert isinstance(s, SiameseImage) and isinstance(s[0], Image.Image) and isinstance(s[2], bool)
    assert tls.valid[0][2] == s[2]  # the validation pairs are drawn once
    s.show()
    dls = tls.dataloaders(after_item=[Resize(32), ToTensor], bs=16,
                          after_batch=[IntToFloatTensor, Normalize.from_stats(*imagenet_stats)])
    b = dls.one_batch()
    assert len(b) == 3 and b[0].shape == b[1].shape == (16, 3, 32, 32) and b[0].dtype == torch.float32
    assert b[2].shape == (16,) and abs(b[0].mean().item()) < 1.5

    encoder = create_body(resnet34(), cut=-2)  # the book: create_body(resnet34, cut=-2), pretrained
    head = create_head(512*2, 2, ps=0.5)
    model = SiameseModel(encoder, head)

    def loss_func(out, targ):
        return nn.CrossEntropyLoss()(out, targ.long())

    def siamese_splitter(model):
        return [params(model.encoder), params(model.head)]
    learn = Learner(dls, model, loss_func=loss_func, splitter=siamese_splitter, metrics=accuracy)
    learn.freeze()
    assert not any(p.requires_grad for p in model.encoder.parameters() if p.ndim > 1)
    learn.fit_one_cycle(1, 3e-3)
    learn.unfreeze()
    learn.fit_one_cycle(1, slice(1e-6, 1e-4))
    assert len(learn.recorder.values) == 1 and 0 <= learn.recorder.values[-1][2] <= 1
    assert [g["lr"] for g in learn.opt.param_groups][0] < [g["lr"] for g in learn.opt.param_groups][1]
    plt.close('all')
