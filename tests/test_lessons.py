"""Lesson-style scripts: fastai lesson code with only the import line changed, on the data shipped in the package.

Each test is one short script written against docs/API.md alone (every name comes from the star import),
the way a fastai lesson notebook reads; it asserts the shapes, vocabularies, return types and, where
it trains, learning clearly above chance. Models are kept tiny (resnet18 from scratch on 32 px images,
or a few linear layers) so the whole file runs in well under a minute on two CPU cores.
"""
import gc
import shutil

import pytest
from matplotlib.figure import Figure

from learnkit.vision.all import *  # noqa: F403  (the one line a fastai lesson changes)

MNIST = sample_path("mnist_tiny")


def digits_net(n_in=28 * 28, n_out=2):
    """The lesson-4 style model: flatten the pixels, one hidden layer."""
    return nn.Sequential(nn.Flatten(), nn.Linear(n_in, 64), nn.ReLU(), nn.Linear(64, n_out))


def quiet(learn):
    """No bars or tables in the test log (lesson notebooks show them)."""
    learn.remove_cb(ProgressCallback)
    learn.logger = lambda row: None
    return learn


@pytest.fixture
def pets(tmp_path):
    """An Oxford-pets-style folder: `Breed_i.png`, cats capitalised; the 3s are cats, the 7s dogs."""
    path = tmp_path / "images"
    path.mkdir()
    cats, dogs = ["Abyssinian", "Bengal", "Persian", "Siamese"], ["beagle", "boxer", "pug", "havanese"]
    for digit, breeds in (("3", cats), ("7", dogs)):
        for i, f in enumerate(get_image_files(MNIST / "train" / digit)[:24]):
            shutil.copy(f, path / f"{breeds[i % 4]}_{i}.png")
    return Path(path)


# ---------------------------------------------------------------- lesson 1: is it a cat?
@pytest.mark.slow
def test_lesson1_is_cat_fine_tune_predict_export(pets):
    path = pets
    files = get_image_files(path)
    assert len(files) == 48 and isinstance(files[0], Path) and isinstance(path.ls()[0], Path)

    def is_cat(x): return x[0].isupper()
    set_seed(42)
    dls = ImageDataLoaders.from_name_func(path, files, valid_pct=0.2, seed=42, label_func=is_cat,
                                          item_tfms=Resize(32))
    assert dls.vocab == [False, True] and dls.c == 2
    assert len(dls.valid.dataset) == 9 and len(dls.train.dataset) == 39
    assert dls.path == path
    xb, yb = dls.one_batch()
    assert type(xb) is torch.Tensor and xb.shape[1:] == (3, 32, 32) and xb.dtype == torch.float32
    assert yb.dtype == torch.long

    learn = quiet(vision_learner(dls, resnet18, pretrained=False, metrics=error_rate))
    learn.fine_tune(1)
    assert learn.path == path
    assert learn.recorder.metric_names[1:-1] == ["train_loss", "valid_loss", "error_rate"]
    assert len(learn.recorder.values) == 1 and all(np.isfinite(v) for v in learn.recorder.values[0])
    lrs = [g["lr"] for g in learn.opt.param_groups]  # fine_tune's slice: body -> head, lowest first
    assert len(lrs) == 3 and lrs[0] < lrs[-1]

    img = PILImage.create(files[0])
    label, idx, probs = learn.predict(img)
    assert label in (False, True) and label == dls.vocab[idx]
    assert idx.shape == () and probs.shape == (2,) and abs(float(probs.sum()) - 1) < 1e-5
    assert learn.predict(files[0])[0] == label  # a path works as well as an image
    fig = learn.show_results(max_n=4)
    assert isinstance(fig, Figure) and all("/" in ax.get_title() for ax in fig.axes if ax.get_visible())

    learn.export()
    assert (path / "export.pkl").exists()
    learn_inf = load_learner(path / "export.pkl")
    label2, idx2, probs2 = learn_inf.predict(img)
    assert label2 == label and torch.allclose(probs2, probs, atol=1e-5)

    dls = ImageDataLoaders.from_name_re(path, files, pat=r"^(.+)_\d+\.png$", item_tfms=Resize(32), seed=1)
    assert dls.vocab == sorted(["Abyssinian", "Bengal", "Persian", "Siamese", "beagle", "boxer", "pug", "havanese"])


# ---------------------------------------------------------------- lesson 2: a DataBlock, lr_find, 1cycle
@pytest.mark.slow
def test_lesson2_datablock_lr_find_fit_one_cycle_save_load(tmp_path, capsys, one_thread):
    path = Path(shutil.copytree(MNIST, tmp_path / "mnist_tiny"))
    digits = DataBlock(blocks=(ImageBlock(cls=PILImageBW), CategoryBlock), get_items=get_image_files,
                       splitter=GrandparentSplitter(valid_name="valid"), get_y=parent_label,
                       item_tfms=RandomResizedCrop(28, min_scale=0.9), batch_tfms=[Flip(p=0.0), Normalize()])
    digits.summary(path)
    assert "All steps ran" in capsys.readouterr().out
    dls = digits.dataloaders(path, bs=16)
    assert dls.vocab == ["3", "7"] and len(dls.valid.dataset) == 80 and dls.path == path
    fig = dls.show_batch(max_n=4)
    assert isinstance(fig, Figure) and sum(ax.get_visible() for ax in fig.axes) == 4
    xb, yb = dls.one_batch()
    assert xb.shape == (16, 1, 28, 28) and yb.shape == (16,)
    assert dls.new(bs=8, item_tfms=Resize(20)).one_batch()[0].shape == (8, 1, 20, 20)  # progressive resizing

    set_seed(0)
    learn = quiet(Learner(dls, digits_net(), metrics=accuracy))
    assert learn.path == path and isinstance(learn.loss_func, CrossEntropyLossFlat)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    suggested = learn.lr_find()
    assert suggested._fields == ("valley",) and 1e-7 < suggested.valley < 10
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in before.items())  # lr_find left it as it was
    learn.fit_one_cycle(4, 1e-2)
    values = learn.recorder.values
    assert len(values) == 4 and len(values[-1]) == 3
    assert values[-1][2] > 0.75  # 3 vs 7: chance is 0.5
    assert len(learn.recorder.losses) == len(learn.recorder.lrs) == 4 * 5
    assert isinstance(learn.recorder.plot_loss(), Figure) and isinstance(learn.recorder.plot_sched(), Figure)

    loss, acc = learn.validate()
    assert acc == pytest.approx(values[-1][2]) and loss == pytest.approx(values[-1][1], rel=1e-4)
    preds, targs = learn.get_preds()
    assert preds.shape == (80, 2) and targs.shape == (80,) and torch.allclose(preds.sum(1), torch.ones(80))
    preds, targs, decoded, losses = learn.get_preds(with_decoded=True, with_loss=True)
    assert torch.equal(decoded, preds.argmax(1)) and losses.shape == (80,)
    assert (decoded == targs).float().mean().item() == pytest.approx(acc)

    learn.save("stage1")
    assert (path / "models" / "stage1.pth").exists()
    learn.fit(1, 1e-2)
    learn.load("stage1")
    assert learn.validate()[1] == pytest.approx(acc)

    items = get_image_files(path / "valid")[:6]
    preds, _ = learn.get_preds(dl=dls.test_dl(items))
    assert preds.shape == (6, 2)
    label, idx, probs = learn.predict(items[0])
    assert label in dls.vocab and torch.allclose(probs, preds[0], atol=1e-6)


# ---------------------------------------------------------------- lesson 4: MNIST basics, plain tensors
@pytest.mark.slow
def test_lesson4_mnist_basics_from_tensors(one_thread):
    def stacked(fns): return torch.stack([tensor(PILImageBW.create(o)) for o in fns]).float() / 255
    threes, sevens = (MNIST / "train" / "3").ls(), (MNIST / "train" / "7").ls()
    assert tensor(PILImageBW.create(threes[0])).shape == (28, 28)
    train_x = torch.cat([stacked(threes), stacked(sevens)]).view(-1, 28 * 28)
    train_y = tensor([1] * len(threes) + [0] * len(sevens)).unsqueeze(1)
    valid_x = torch.cat([stacked((MNIST / "valid" / "3").ls()), stacked((MNIST / "valid" / "7").ls())]).view(-1, 784)
    valid_y = tensor([1] * 40 + [0] * 40).unsqueeze(1)
    dset, valid_dset = list(zip(train_x, train_y)), list(zip(valid_x, valid_y))
    dl = DataLoader(dset, batch_size=16, shuffle=True)
    valid_dl = DataLoader(valid_dset, batch_size=16)
    xb, yb = first = dl.one_batch()
    assert len(first) == 2 and xb.shape == (16, 784) and yb.shape == (16, 1)

    def mnist_loss(predictions, targets):
        predictions = predictions.sigmoid()
        return torch.where(targets == 1, 1 - predictions, predictions).mean()

    def batch_accuracy(xb, yb):
        return ((xb.sigmoid() > 0.5) == yb).float().mean()

    set_seed(0)
    dls = DataLoaders(dl, valid_dl)
    simple_net = nn.Sequential(nn.Linear(28 * 28, 30), nn.ReLU(), nn.Linear(30, 1))
    learn = quiet(Learner(dls, simple_net, opt_func=SGD, loss_func=mnist_loss, metrics=batch_accuracy))
    graph = ShowGraphCallback()
    learn.fit(10, lr=0.1, cbs=graph)
    assert learn.recorder.metric_names[3] == "batch_accuracy"
    assert learn.recorder.values[-1][2] > 0.85
    assert isinstance(graph.fig, Figure) and graph.ax.get_title() == "epoch 10/10"


# ---------------------------------------------------------------- lesson 6: multi-label and regression
def _digit_df():
    rows = []
    for f in get_image_files(MNIST):
        d = parent_label(f)
        tags = "digit three curvy" if d == "3" else "digit seven straight"
        rows.append((str(f.relative_to(MNIST)), tags, f.parent.parent.name == "valid"))
    return pd.DataFrame(rows, columns=["fname", "labels", "is_valid"])


@pytest.mark.slow
def test_lesson6_multi_label_and_regression(one_thread):
    df = _digit_df()
    dblock = DataBlock(blocks=(ImageBlock(cls=PILImageBW), MultiCategoryBlock),
                       get_x=ColReader("fname", pref=MNIST), get_y=ColReader("labels", label_delim=" "),
                       splitter=ColSplitter("is_valid"))
    dsets = dblock.datasets(df)
    assert dsets.vocab == ["curvy", "digit", "seven", "straight", "three"]
    assert dsets.train[0][1].tolist() == [1, 1, 0, 0, 1]
    dls = dblock.dataloaders(df, bs=16)
    assert dls.c == 5 and dls.one_batch()[1].shape == (16, 5)
    set_seed(0)
    learn = quiet(Learner(dls, digits_net(n_out=dls.c), metrics=partial(accuracy_multi, thresh=0.5)))
    assert isinstance(learn.loss_func, BCEWithLogitsLossFlat)
    learn.fit_one_cycle(3, 1e-2)
    assert learn.recorder.values[-1][2] > 0.85  # per-label accuracy; chance is 0.5
    labels, hot, probs = learn.predict(MNIST / df.fname[0])
    assert isinstance(labels, list) and set(labels) <= set(dls.vocab)
    assert hot.shape == probs.shape == (5,) and hot.dtype == torch.bool
    preds, targs, decoded = learn.get_preds(with_decoded=True)
    assert preds.shape == targs.shape == decoded.shape == (80, 5)
    assert ImageDataLoaders.from_df(df, MNIST, label_delim=" ", valid_col="is_valid").vocab == dls.vocab

    class DigitRegressor(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = digits_net(n_out=1)

        def forward(self, x):
            return sigmoid_range(self.net(x), 0, 10)

    dblock = DataBlock(blocks=(ImageBlock(cls=PILImageBW), RegressionBlock),
                       get_items=get_image_files, get_y=lambda o: float(parent_label(o)),
                       splitter=GrandparentSplitter())
    dls = dblock.dataloaders(MNIST, bs=16)
    assert dls.c == 1 and dls.one_batch()[1].dtype == torch.float32
    set_seed(0)
    learn = quiet(Learner(dls, DigitRegressor(), metrics=[rmse, mae]))
    assert isinstance(learn.loss_func, MSELossFlat)
    learn.fit_one_cycle(4, 1e-2)
    assert learn.recorder.values[-1][2] < 1.5  # predicting the mean (5) gives an rmse of 2
    pred = learn.predict(MNIST / "valid" / "7" / (MNIST / "valid" / "7").ls()[0].name)[0]
    assert pred.shape == (1,) and 0 < pred.item() < 10


# ---------------------------------------------------------------- images from memory: arrays and a pixel CSV
@pytest.mark.slow
def test_lesson_images_from_numpy_arrays_and_pixel_csv(tmp_path, capsys, one_thread):
    files = get_image_files(MNIST)
    X = np.stack([np.array(PILImageBW.create(f)) for f in files])
    y = [parent_label(f) for f in files]
    assert X.shape == (160, 28, 28) and X.dtype == np.uint8
    valid_idx = [i for i, f in enumerate(files) if f.parent.parent.name == "valid"]

    dblock = DataBlock(blocks=(ImageBlock(cls=PILImageBW), CategoryBlock), get_x=lambda i: X[i],
                       get_y=lambda i: y[i], splitter=IndexSplitter(valid_idx))
    dblock.summary(range(len(X)))
    assert "All steps ran" in capsys.readouterr().out
    dls = dblock.dataloaders(range(len(X)), bs=16)
    assert dls.vocab == ["3", "7"] and len(dls.valid.dataset) == 80
    assert dls.one_batch()[0].shape == (16, 1, 28, 28)
    assert isinstance(dls.valid.show_batch(max_n=4, nrows=1), Figure)
    set_seed(0)
    learn = quiet(Learner(dls, digits_net(), metrics=accuracy))
    learn.fit_one_cycle(3, 1e-2)
    assert learn.recorder.values[-1][2] > 0.85
    label, idx, probs = learn.predict(X[valid_idx[0]])  # an array goes straight to the image block
    assert label == dls.vocab[idx] and probs.shape == (2,)
    assert learn.get_preds(dl=dls.test_dl(list(X[:5])))[0].shape == (5, 2)

    # the Kaggle digit-recognizer layout: a label column, then 784 pixel columns
    pixels = pd.DataFrame(X.reshape(len(X), -1), columns=[f"pixel{i}" for i in range(784)])
    pd.concat([pd.DataFrame({"label": [int(o) for o in y]}), pixels], axis=1).to_csv(tmp_path / "train.csv",
                                                                                    index=False)
    df = pd.read_csv(tmp_path / "train.csv")
    dblock = DataBlock(blocks=(ImageBlock(cls=PILImageBW), CategoryBlock),
                       get_x=lambda r: r[1:].values.astype(np.uint8).reshape(28, 28), get_y=ColReader("label"),
                       splitter=RandomSplitter(valid_pct=0.2, seed=42))
    dls = dblock.dataloaders(df, bs=16)
    assert dls.vocab == [3, 7] and len(dls.train.dataset) == 128 and len(dls.valid.dataset) == 32
    dsets = dblock.datasets(df)
    dls2 = DataLoaders.from_dsets(dsets.train, dsets.valid, bs=16)
    assert dls2.vocab == [3, 7] and dls2.one_batch()[0].shape == (16, 1, 28, 28)
    set_seed(0)
    learn = quiet(Learner(dls, digits_net(), metrics=accuracy))
    learn.fit_one_cycle(3, 1e-2)
    assert learn.recorder.values[-1][2] > 0.85
    assert learn.predict(df.iloc[0])[0] in (3, 7)
    preds, targs = learn.get_preds(dl=dls.test_dl(df.iloc[:7], with_labels=True))
    assert preds.shape == (7, 2) and targs.tolist() == [dls.vocab.index(v) for v in df.label[:7]]


# ---------------------------------------------------------------- data only: folders, CSV, augmentation
def test_lesson_image_dataloaders_factories_and_augmentation():
    import albumentations as A

    path = sample_path("imagenette_tiny")
    assert [p.name for p in path.ls()] == ["train", "val"]
    dls = ImageDataLoaders.from_folder(path, valid="val", bs=32, num_workers=0,
                                       item_tfms=[RandomResizedCrop(48, min_scale=0.35),
                                                  Albumentations(A.Compose([A.HorizontalFlip(p=0.5)]))],
                                       batch_tfms=Normalize.from_stats(*imagenet_stats))
    assert len(dls.vocab) == 10 and dls.vocab[0] == "n01440764"
    assert len(dls.train.dataset) == len(dls.valid.dataset) == 300
    xb, yb = dls.valid.one_batch()
    assert xb.shape == (32, 3, 48, 48) and abs(xb.mean().item()) < 1.5  # normalised
    assert isinstance(dls.show_batch(max_n=9, figsize=(6, 6)), Figure)

    dls = ImageDataLoaders.from_csv(MNIST, item_tfms=Resize(28), bs=16, num_workers=0)
    assert dls.vocab == [3, 7] and dls.one_batch()[0].shape == (16, 3, 28, 28)
    files = get_image_files(MNIST / "train")
    dls = ImageDataLoaders.from_lists(MNIST, files, [parent_label(f) for f in files], bs=8, num_workers=0)
    assert dls.vocab == ["3", "7"] and len(dls.valid.dataset) == 16
    dls = ImageDataLoaders.from_path_func(MNIST, files, parent_label, valid_pct=0.25, seed=0, num_workers=0)
    assert dls.vocab == ["3", "7"] and len(dls.valid.dataset) == 20


# ---------------------------------------------------------------- a notebook's worth of learners
def test_lesson_learners_dropped_mid_script_stop_their_workers_at_once():
    """A script that rebinds `dls`/`learn` leaves the old ones to the cycle collector (callbacks point back at the
    learner); their loaders' worker processes must then stop at once, not after torch's 5 s timeout each."""
    workers = []
    for _ in range(2):
        dls = DataBlock(blocks=(ImageBlock(cls=PILImageBW), CategoryBlock), get_items=get_image_files,
                        get_y=parent_label, splitter=GrandparentSplitter()).dataloaders(MNIST, bs=40, num_workers=1)
        learn = quiet(Learner(dls, digits_net(), metrics=accuracy))
        learn.fit(1)
        workers += [w for dl in (dls.train, dls.valid) for w in dl.torch_dl._iterator._workers]
    del dls, learn
    gc.collect()
    assert not any(w.is_alive() for w in workers)
    # exit code 0: each worker was told to stop and did; torch terminates (exit code -15) a worker still alive
    # after its 5 s join timeout
    assert [w.exitcode for w in workers] == [0] * len(workers)
