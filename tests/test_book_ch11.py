"""The fastai book's chapter 11 (the mid-level data API) with the import lines changed.

``untar_data(URLs.IMDB)`` is the shipped imdb_tiny sample laid out as IMDB's folders (train/test, pos/neg, as in
test_book_ch10.py); ``URLs.PETS`` is the shipped ``pets_tiny``. Batches and sizes are small.
"""
import pytest

from learnkit.text.all import *  # noqa: F403  (the book: from fastai.text.all import *)
from learnkit.vision.all import *  # noqa: F403  (the book: from fastai.vision.all import *)


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    df = pd.read_csv(sample_path("imdb_tiny") / "texts.csv")
    root = tmp_path_factory.mktemp("imdb")
    for i, r in df.iterrows():
        d = root / ("test" if r.is_valid else "train") / ("pos" if r.label == "positive" else "neg")
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:03d}.txt").write_text(r.text, encoding="utf8")
    return Path(root)


def test_layered_api(path):
    dls = TextDataLoaders.from_folder(path, valid='test')
    assert dls.vocab[1] == ['neg', 'pos']
    dls = DataBlock(
        blocks=(TextBlock.from_folder(path), CategoryBlock),
        get_y=parent_label,
        get_items=partial(get_text_files, folders=['train', 'test']),
        splitter=GrandparentSplitter(valid_name='test')
    ).dataloaders(path)
    assert (len(dls.train_ds), len(dls.valid_ds)) == (160, 40)


def test_transforms_and_pipeline(path):
    files = get_text_files(path, folders=['train', 'test'])
    txts = L(o.open().read() for o in files[:2000])
    tok = Tokenizer.from_folder(path)
    tok.setup(txts)
    toks = txts.map(tok)
    assert toks[0][0] == 'xxbos'
    num = Numericalize()
    num.setup(toks)
    nums = toks.map(num)
    assert nums[0][:10].shape == (10,) and nums[0][0].item() == num.vocab.index('xxbos')
    nums_dec = num.decode(nums[0][:10])
    assert all(d == t or d == 'xxunk' for d, t in zip(nums_dec, toks[0][:10]))  # words seen < 3 times are xxunk
    assert tok.decode(nums_dec).startswith('xxbos')

    def f(x: int): return x+1
    tfm = Transform(f)
    assert (tfm(2), tfm(2.0)) == (3, 2.0)

    @Transform
    def f(x: int): return x+1
    assert (f(2), f(2.0)) == (3, 2.0)

    class NormalizeMean(Transform):
        def setups(self, items): self.mean = sum(items)/len(items)
        def encodes(self, x): return x-self.mean
        def decodes(self, x): return x+self.mean
    tfm = NormalizeMean()
    tfm.setup([1, 2, 3, 4, 5])
    start = 2
    y = tfm(start)
    z = tfm.decode(y)
    assert (tfm.mean, y, z) == (3.0, -1.0, 2.0)

    tfms = Pipeline([tok, num])
    t = tfms(txts[0])
    assert torch.equal(t[:20], nums[0][:20])
    assert tfms.decode(t)[:100] == tok.decode(num.decode(nums[0]))[:100] and tfms.decode(t).startswith('xxbos xxmaj')


def test_tokenizer_on_a_tuple(path):
    """A Transform called on a tuple applies to each element: tok((txts[0], txts[1]))."""
    files = get_text_files(path, folders=['train', 'test'])
    txts = L(o.open().read() for o in files[:2])
    tok = Tokenizer.from_folder(path)
    tok.setup(txts)
    a, b = tok((txts[0], txts[1]))
    assert a[0] == b[0] == 'xxbos'


def test_tfmdlists_and_datasets(path):
    files = get_text_files(path, folders=['train', 'test'])
    tls = TfmdLists(files, [Tokenizer.from_folder(path), Numericalize])
    t = tls[0]
    assert t[:20].shape == (min(20, len(t)),) and t.dtype == torch.int64
    assert tls.decode(t)[:100].startswith('xxbos')
    tls.show(t)
    cut = int(len(files)*0.8)
    splits = [list(range(cut)), list(range(cut, len(files)))]
    tls = TfmdLists(files, [Tokenizer.from_folder(path), Numericalize], splits=splits)
    assert len(tls.valid) == len(files) - cut and tls.valid[0].ndim == 1
    lbls = files.map(parent_label)
    assert set(lbls) == {'neg', 'pos'}
    cat = Categorize()
    cat.setup(lbls)
    assert list(cat.vocab) == ['neg', 'pos'] and int(cat(lbls[0])) == ['neg', 'pos'].index(lbls[0])
    tls_y = TfmdLists(files, [parent_label, Categorize()])
    assert int(tls_y[0]) == ['neg', 'pos'].index(lbls[0])

    x_tfms = [Tokenizer.from_folder(path), Numericalize]
    y_tfms = [parent_label, Categorize()]
    dsets = Datasets(files, [x_tfms, y_tfms])
    x, y = dsets[0]
    assert x.ndim == 1 and int(y) in (0, 1)
    dsets = Datasets(files, [x_tfms, y_tfms], splits=splits)
    x, y = dsets.valid[0]
    t = dsets.valid[0]
    dec = dsets.decode(t)
    assert dec[0].startswith('xxbos') and dec[1] in ('neg', 'pos')
def test_datasets_dataloaders(path):
    """fastai's DataLoader hooks (``before_batch=pad_input``) and ``dl_type=SortedDL``."""
    files = get_text_files(path, folders=['train', 'test'])
    x_tfms = [Tokenizer.from_folder(path), Numericalize]
    y_tfms = [parent_label, Categorize()]
    cut = int(len(files)*0.8)
    splits = [list(range(cut)), list(range(cut, len(files)))]
    dsets = Datasets(files, [x_tfms, y_tfms], splits=splits)
    dls = dsets.dataloaders(bs=64, before_batch=pad_input)
    xb, yb = dls.one_batch()
    assert xb.shape[0] == yb.shape[0] == 64

    tfms = [[Tokenizer.from_folder(path), Numericalize], [parent_label, Categorize]]
    files = get_text_files(path, folders=['train', 'test'])
    splits = GrandparentSplitter(valid_name='test')(files)
    dsets = Datasets(files, tfms, splits=splits)
    dls = dsets.dataloaders(dl_type=SortedDL, before_batch=pad_input)
    xb, yb = dls.valid.one_batch()
    assert xb.shape[0] == 40




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
        if not same:
            cls = random.choice(L(l for l in self.labels if l != cls))
        return random.choice(self.lbl2files[cls]), same


def test_siamese_pair():
    random.seed(0)
    path = sample_path("pets_tiny")
    files = get_image_files(path/"images")
    img = PILImage.create(files[0])
    s = SiameseImage(img, img, True)
    s.show()
    img1 = PILImage.create(files[1])
    s1 = SiameseImage(img, img1, False)
    s1.show()
    s2 = Resize(224)(s1)
    assert isinstance(s2, SiameseImage) and s2[0].size == s2[1].size == (224, 224) and s2[2] is False
    s2.show()
    assert label_func(files[0]) == files[0].name.rsplit('_', 1)[0]
    splits = RandomSplitter()(files)
    tfm = SiameseTransform(files, label_func, splits)
    tfm(files[0]).show()
    tls = TfmdLists(files, tfm, splits=splits)
    show_at(tls.valid, 0)
    dls = tls.dataloaders(after_item=[Resize(64), ToTensor],
                          after_batch=[IntToFloatTensor, Normalize.from_stats(*imagenet_stats)])
    b = dls.one_batch()
    assert b[0].shape == b[1].shape == (len(b[2]), 3, 64, 64)
    plt.close('all')
