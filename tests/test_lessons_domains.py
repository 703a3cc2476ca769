"""Lesson-style scripts for tables, collaborative filtering, segmentation, interpretation and training tricks.

Each test is the code of a fastai tutorial or lesson (tabular, collab, camvid, lesson 2's interpretation and
cleaner, the Imagenette training techniques, untar_data) written against docs/API.md alone, with only the
import line changed and ``untar_data(URLs.X)`` replaced by the shipped sample ``untar_data(SAMPLES.X)``.
Every name a lesson uses must come from its own domain's star import (checked by ``_from``), so the lessons
stay honest even though this file star-imports all three. Sizes are tiny (24-64 px images, a few epochs) and
the assertions are on values: learning clearly above a baseline, shapes, decoded labels, round trips.
"""
import shutil
import warnings

import pytest
from matplotlib.figure import Figure

import learnkit.collab.all as collab_all
import learnkit.tabular.all as tabular_all
import learnkit.vision.all as vision_all
from learnkit.collab.all import *  # noqa: F403  (the collab lesson's one changed line; includes the tabular one)
from learnkit.vision.all import *  # noqa: F403  (the vision lessons' one changed line)


def _from(module, *names):
    """Each name the lesson uses is exported by the lesson's own ``*.all`` module."""
    missing = [n for n in names if n not in module.__all__]
    assert not missing, f"{module.__name__} does not export {missing}"


def quiet(learn):
    """No bars or tables in the test log (lesson notebooks show them)."""
    learn.remove_cb(ProgressCallback)
    learn.logger = lambda row: None
    return learn


@pytest.fixture
def home(tmp_path, monkeypatch):
    """``untar_data`` copies samples under ``$LEARNKIT_HOME``: a fresh one per test."""
    monkeypatch.setenv("LEARNKIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


ADULT_CATS = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
ADULT_CONTS = ["age", "fnlwgt", "education-num"]


# ---------------------------------------------------------------- tabular tutorial (adult)
def test_tabular_tutorial_adult(home, one_thread):
    _from(tabular_all, "untar_data", "SAMPLES", "pd", "TabularDataLoaders", "Categorify", "FillMissing", "Normalize",
          "tabular_learner", "accuracy", "TabularPandas", "RandomSplitter", "range_of", "load_learner", "set_seed")
    path = untar_data(SAMPLES.ADULT_SAMPLE)
    assert path.ls() == [path / "adult.csv"] and home in path.parents
    df = pd.read_csv(path / "adult.csv", skipinitialspace=True)  # as from_csv reads it (fastai's default too)
    assert df.shape == (3000, 15)

    set_seed(42)
    dls = TabularDataLoaders.from_csv(path / "adult.csv", path=path, y_names="salary",
                                      cat_names=ADULT_CATS, cont_names=ADULT_CONTS,
                                      procs=[Categorify, FillMissing, Normalize])
    assert dls.vocab == ["<50k", ">=50k"] and dls.c == 2 and dls.path == path
    assert len(dls.train.dataset) == 2400 and len(dls.valid.dataset) == 600
    shown = dls.show_batch()
    assert list(shown.columns) == ADULT_CATS + ["education-num_na"] + ADULT_CONTS + ["salary"]
    assert set(shown.salary) <= {"<50k", ">=50k"} and shown.age.between(16, 91).all()  # decoded, not normalised

    learn = quiet(tabular_learner(dls, metrics=accuracy))
    assert isinstance(learn.loss_func, CrossEntropyLossFlat)
    learn.fit_one_cycle(3, 1e-2)
    preds, targs = learn.get_preds()
    majority = max(targs.float().mean().item(), 1 - targs.float().mean().item())
    acc = learn.recorder.values[-1][2]
    assert acc == pytest.approx((preds.argmax(1) == targs).float().mean().item())
    assert acc > majority + 0.03, (acc, majority)  # the sample's majority class is ~75%
    results = learn.show_results()
    assert "salary_pred" in results.columns and set(results.salary_pred) <= set(dls.vocab)

    row, clas, probs = learn.predict(df.iloc[0])  # row 0 has no education-num and no occupation
    shown = row.show()
    assert shown.salary.iloc[0] == dls.vocab[clas] and probs.shape == (2,)
    assert abs(float(probs.sum()) - 1) < 1e-5 and clas.item() == probs.argmax().item()
    assert bool(shown["education-num_na"].iloc[0]) and shown.age.iloc[0] == pytest.approx(30, abs=1e-3)
    assert shown.occupation.iloc[0] == "#na#"  # missing
    assert shown.workclass.iloc[0] == df.workclass.iloc[0] and shown.education.iloc[0] == df.education.iloc[0]

    test_dl = learn.dls.test_dl(df.iloc[:10])
    tpreds = learn.get_preds(dl=test_dl)[0]
    assert tpreds.shape == (10, 2) and torch.allclose(tpreds[0], probs, atol=1e-5)

    learn.export()
    assert (path / "export.pkl").exists()
    learn_inf = load_learner(path / "export.pkl")
    assert torch.allclose(learn_inf.predict(df.iloc[0])[2], probs, atol=1e-5)
    assert torch.allclose(learn_inf.get_preds(dl=learn_inf.dls.test_dl(df.iloc[:10]))[0], tpreds, atol=1e-5)

    # the TabularPandas route (the tutorial's "lower level" and the random-forest lessons)
    splits = RandomSplitter(valid_pct=0.2, seed=42)(range_of(df))
    assert range_of(df) == list(range(3000)) and len(splits[0]) == 2400 and len(splits[1]) == 600
    to = TabularPandas(df, procs=[Categorify, FillMissing, Normalize], cat_names=ADULT_CATS, cont_names=ADULT_CONTS,
                       y_names="salary", splits=splits)
    assert len(to.train) == 2400 and len(to.valid) == 600
    assert to.xs.shape == (3000, 10) and to.train.xs.shape == (2400, 10) and to.valid.xs.shape == (600, 10)
    xs, y = to.train.xs, to.train.y
    assert xs.age.mean() == pytest.approx(0, abs=1e-4) and xs.age.std() == pytest.approx(1, abs=1e-2)
    assert set(y.unique()) == {0, 1} and xs.workclass.dtype.kind in "iu"
    assert to.valid.xs.age.mean() != pytest.approx(0, abs=1e-4)  # normalised with the training statistics
    dls = to.dataloaders(bs=64)
    cats, conts, yb = dls.one_batch()
    assert cats.shape == (64, 7) and conts.shape == (64, 3) and yb.shape[0] == 64
    assert cats.dtype == torch.int64 and conts.dtype == torch.float32

    to = TabularPandas(df, procs=[Categorify, FillMissing, Normalize], cat_names=ADULT_CATS, cont_names=ADULT_CONTS,
                       y_names="salary", splits=(list(range(2500)), list(range(2500, 3000))))
    assert to.valid.items.index.tolist() == list(range(2500, 3000))


# ---------------------------------------------------------------- collaborative filtering tutorial (MovieLens)
def test_collab_tutorial_movielens(home, one_thread):
    _from(collab_all, "untar_data", "SAMPLES", "pd", "CollabDataLoaders", "collab_learner", "pca", "get_emb_sz",
          "Learner", "MSELossFlat", "Embedding", "sigmoid_range", "nn", "load_learner", "EmbeddingNN",
          "EmbeddingDotBias", "set_seed")
    path = untar_data(SAMPLES.ML_SAMPLE)
    ratings = pd.read_csv(path / "ratings.csv")
    assert list(ratings.columns) == ["userId", "movieId", "rating", "timestamp"] and len(ratings) == 6031

    set_seed(42)
    dls = CollabDataLoaders.from_df(ratings, bs=64)
    assert len(dls.train.dataset) + len(dls.valid.dataset) == 6031
    assert len(dls.valid.dataset) == pytest.approx(0.2 * 6031, abs=2)
    shown = dls.show_batch()
    assert list(shown.columns) == ["userId", "movieId", "rating"]
    assert set(shown.movieId) <= set(ratings.movieId) and shown.rating.between(0.5, 5).all()
    xb, yb = dls.one_batch()
    assert xb.shape == (64, 2) and xb.dtype == torch.int64 and yb.shape[0] == 64 and yb.dtype == torch.float32
    movies = dls.classes["movieId"]
    assert len(dls.classes["userId"]) == len(movies) == 101 and movies[0] == "#na#"  # 100 each + the unknown
    assert get_emb_sz(dls) == [(101, 21), (101, 21)]  # fastai's rule: round(1.6 * n**0.56)

    learn = quiet(collab_learner(dls, n_factors=50, y_range=(0, 5.5)))
    assert isinstance(learn.model, EmbeddingDotBias) and learn.model.i_weight.weight.shape == (101, 50)
    learn.fit_one_cycle(3, 5e-3, wd=0.1)
    preds, targs = learn.get_preds()
    baseline = ((targs - targs.mean()) ** 2).mean().item()  # predicting the mean rating
    valid_loss = learn.recorder.values[-1][1]
    assert valid_loss < 0.8 * baseline, (valid_loss, baseline)
    assert preds.min() > 0 and preds.max() < 5.5  # y_range

    g = ratings.groupby("movieId")["rating"].count()
    top_movies = g.sort_values(ascending=False).index.values[:100]
    movie_bias = learn.model.bias(top_movies, is_item=True)
    assert movie_bias.shape == (100,)
    mean_rating = ratings.groupby("movieId")["rating"].mean()[top_movies].values
    assert np.corrcoef(movie_bias.numpy(), mean_rating)[0, 1] > 0.5  # the bias is the movie's "quality"
    idxs = movie_bias.argsort(descending=True)[:5]
    assert mean_rating[idxs.numpy()].mean() > mean_rating.mean()
    movie_w = learn.model.weight(top_movies, is_item=True)
    assert movie_w.shape == (100, 50)
    movie_pca = pca(movie_w, 3)
    fac0, fac1, fac2 = movie_pca.t()
    assert movie_pca.shape == (100, 3) and abs(float(fac0 @ fac1)) < 1e-3 * float(fac0 @ fac0)
    assert float(fac0.var()) >= float(fac1.var()) >= float(fac2.var())
    i = movies.o2i[top_movies[0]]
    assert movies[i] == top_movies[0]
    assert torch.allclose(learn.model.i_weight.weight[i].detach(), movie_w[0])

    assert learn.path == Path(".")  # from a DataFrame, as in fastai: export where you say
    learn.export(path / "export.pkl")
    learn_inf = load_learner(path / "export.pkl")
    row, pred, _ = learn_inf.predict(ratings.iloc[0])
    assert 0 < float(pred) < 5.5
    assert float(pred) == pytest.approx(float(learn.get_preds(dl=dls.test_dl(ratings.iloc[:1]))[0].squeeze()),
                                        abs=1e-5)

    dls = CollabDataLoaders.from_csv(path / "ratings.csv", bs=64, seed=42)
    assert set(dls.classes) == {"userId", "movieId"} and len(dls.valid.dataset) == len(dls.valid.dataset)
    set_seed(42)
    learn = quiet(collab_learner(dls, use_nn=True, layers=[100], y_range=(0, 5.5)))
    assert isinstance(learn.model, EmbeddingNN)
    learn.fit_one_cycle(3, 5e-3, wd=0.1)
    assert learn.recorder.values[-1][1] < 0.85 * baseline

    # the chapter-8 model written by hand (fastai's `Embedding`: small truncated-normal init)
    class DotProduct(nn.Module):
        def __init__(self, n_users, n_movies, n_factors, y_range=(0, 5.5)):
            super().__init__()
            self.user_factors = Embedding(n_users, n_factors)
            self.movie_factors = Embedding(n_movies, n_factors)
            self.y_range = y_range

        def forward(self, x):
            users = self.user_factors(x[:, 0])
            movies = self.movie_factors(x[:, 1])
            return sigmoid_range((users * movies).sum(dim=1), *self.y_range)

    n_users, n_movies = len(dls.classes["userId"]), len(dls.classes["movieId"])
    set_seed(42)
    learn = quiet(Learner(dls, DotProduct(n_users, n_movies, 50), loss_func=MSELossFlat()))
    learn.fit_one_cycle(5, 5e-3)
    assert learn.recorder.values[-1][1] < 0.9 * baseline


# ---------------------------------------------------------------- segmentation (camvid_tiny, lesson 1)
@pytest.mark.slow
def test_segmentation_camvid_unet(home, one_thread):
    _from(vision_all, "untar_data", "SAMPLES", "np", "SegmentationDataLoaders", "get_image_files", "unet_learner",
          "resnet18", "SegmentationInterpretation", "DataBlock", "ImageBlock", "MaskBlock", "RandomSplitter",
          "aug_transforms", "Resize", "foreground_acc")
    path = untar_data(SAMPLES.CAMVID_TINY)
    codes = np.loadtxt(path / "codes.txt", dtype=str)
    assert len(codes) == 32 and codes[0] == "Animal"
    fnames = get_image_files(path / "images")
    assert len(fnames) == 40

    set_seed(42)
    dls = SegmentationDataLoaders.from_label_func(path, bs=8, fnames=fnames,
                                                  label_func=lambda o: path / "labels" / f"{o.stem}_P{o.suffix}",
                                                  codes=codes, item_tfms=Resize((48, 64)), num_workers=0)
    assert list(dls.vocab) == list(codes) and len(dls.train.dataset) == 32 and len(dls.valid.dataset) == 8
    xb, yb = dls.one_batch()
    assert xb.shape == (8, 3, 48, 64) and yb.shape == (8, 48, 64) and yb.dtype == torch.int64
    assert 0 <= yb.min() and yb.max() < 32
    assert isinstance(dls.show_batch(max_n=2), Figure)

    learn = quiet(unet_learner(dls, resnet18, pretrained=False, metrics=foreground_acc))
    assert isinstance(learn.loss_func, CrossEntropyLossFlat)
    learn.fine_tune(3)
    preds, targs = learn.get_preds()
    assert preds.shape == (8, 32, 48, 64) and targs.shape == (8, 48, 64)
    pixel_acc = (preds.argmax(1) == targs).float().mean().item()
    majority = (targs == targs.flatten().mode().values).float().mean().item()
    assert pixel_acc > majority + 0.1, (pixel_acc, majority)  # roads/buildings/sky: not just the commonest class
    assert isinstance(learn.show_results(max_n=2), Figure)

    mask, mask2, probs = learn.predict(fnames[0])
    assert mask.shape == (48, 64) and mask.dtype == torch.int64 and probs.shape == (32, 48, 64)
    assert torch.equal(mask, probs.argmax(0)) and torch.equal(mask, mask2)
    assert torch.allclose(probs.sum(0), torch.ones(48, 64), atol=1e-4)

    interp = SegmentationInterpretation.from_learner(learn)
    losses, idxs = interp.top_losses(2)
    assert losses.shape == (2,) and losses[0] >= losses[1] and len(set(idxs.tolist())) == 2
    assert isinstance(interp.plot_top_losses(2), Figure)

    camvid = DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_items=get_image_files,
                       get_y=lambda o: path / "labels" / f"{o.stem}_P{o.suffix}",
                       splitter=RandomSplitter(), batch_tfms=aug_transforms(size=(48, 64)))
    dls = camvid.dataloaders(path / "images", bs=8, num_workers=0)
    xb, yb = dls.one_batch()
    assert xb.shape == (8, 3, 48, 64) and yb.shape == (8, 48, 64) and yb.dtype == torch.int64
    assert list(dls.vocab) == list(codes) and set(yb.unique().tolist()) <= set(range(32))


# ---------------------------------------------------------------- lesson 2: interpretation, the cleaner, lr_find
@pytest.mark.slow
def test_lesson2_interpretation_and_cleaner(home, one_thread):
    _from(vision_all, "ClassificationInterpretation", "ImageClassifierCleaner", "vision_learner", "error_rate",
          "ImageDataLoaders")
    path = untar_data(SAMPLES.MNIST_TINY)  # a writable copy: the cleaner deletes and moves files in it
    set_seed(42)
    dls = ImageDataLoaders.from_folder(path, item_tfms=Resize(28), bs=16, num_workers=0)
    assert dls.vocab == ["3", "7"]
    learn = quiet(vision_learner(dls, resnet18, pretrained=False, metrics=error_rate))
    suggested = learn.lr_find()
    assert suggested._fields == ("valley",) and 1e-7 < suggested.valley < 10
    learn.fine_tune(1)
    assert isinstance(learn.recorder.plot_loss(), Figure)

    interp = ClassificationInterpretation.from_learner(learn)
    preds, targs = learn.get_preds()
    cm = interp.confusion_matrix()
    expected = np.zeros((2, 2), dtype=int)
    for t, p in zip(targs.tolist(), preds.argmax(1).tolist()):
        expected[t, p] += 1
    assert cm.shape == (2, 2) and (cm == expected).all() and cm.sum() == 80
    assert 1 - np.trace(cm) / 80 == pytest.approx(learn.recorder.values[-1][2])  # error_rate
    assert isinstance(interp.plot_confusion_matrix(), Figure)
    confused = [(dls.vocab[a], dls.vocab[p], int(cm[a, p])) for a in range(2) for p in range(2) if a != p and cm[a, p]]
    assert interp.most_confused(min_val=1) == sorted(confused, key=lambda o: -o[2])
    losses, idxs = interp.top_losses(5)
    ce = F.cross_entropy(torch.log(preds), targs, reduction="none")
    assert torch.allclose(losses, ce.sort(descending=True).values[:5], atol=1e-4)
    fig = interp.plot_top_losses(5, nrows=1)
    assert isinstance(fig, Figure) and sum(ax.get_visible() for ax in fig.axes) == 5
    report = interp.print_classification_report()
    assert "accuracy" in report and f"{np.trace(cm) / 80:.2f}" in report and "precision" in report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "ipywidgets is not installed" where it isn't
        cleaner = ImageClassifierCleaner(learn)
    assert len(cleaner.fns) == 30 and all(f.parent.name == "3" for f in cleaner.fns)  # train '3's, worst first
    assert cleaner.losses == sorted(cleaner.losses, reverse=True)
    cleaner.set_choice(0, "<Delete>")
    cleaner.set_choice(1, "7")
    gone, moved = cleaner.fns[0], cleaner.fns[1]
    for idx in cleaner.delete():
        cleaner.fns[idx].unlink()
    for idx, cat in cleaner.change():
        shutil.move(str(cleaner.fns[idx]), path / "train" / cat)
    assert not gone.exists() and not moved.exists() and (path / "train" / "7" / moved.name).exists()
    assert len(get_image_files(path)) == 159 and sample_path("mnist_tiny") != path


# ---------------------------------------------------------------- training techniques (the Imagenette chapter)
@pytest.mark.slow
def test_training_techniques_mixup_tta_progressive_fp16(one_thread):
    _from(vision_all, "aug_transforms", "Normalize", "imagenet_stats", "MixUp", "CutMix", "LabelSmoothingCrossEntropy",
          "xresnet18", "Learner", "GrandparentSplitter", "CategoryBlock")
    path = sample_path("mnist_tiny")

    def get_dls(bs, size):
        dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                           splitter=GrandparentSplitter(), item_tfms=Resize(size),
                           batch_tfms=[*aug_transforms(size=size, min_scale=0.75),
                                       Normalize.from_stats(*imagenet_stats)])
        return dblock.dataloaders(path, bs=bs, num_workers=0)

    set_seed(0)
    dls = get_dls(8, 24)  # 10 steps an epoch: a from-scratch net's BatchNorm statistics need a few dozen
    xb, yb = dls.valid.one_batch()
    assert xb.shape == (8, 3, 24, 24) and yb.shape == (8,)
    assert xb.min() < -1.5 and xb.max() > 1.5  # imagenet-normalised: black is about -2, white about +2.5

    model = xresnet18(n_out=dls.c)
    assert model[-1].out_features == 2
    learn = quiet(Learner(dls, model, loss_func=LabelSmoothingCrossEntropy(), metrics=accuracy, cbs=MixUp()))
    learn.fit_one_cycle(4, 3e-3)
    assert isinstance(learn.loss_func, LabelSmoothingCrossEntropy)  # MixUp put the user's loss back
    assert learn.recorder.values[-1][2] > 0.75, learn.recorder.values  # 3 vs 7: chance is 0.5 (seeds 0-4: .85-.94)

    learn.dls = get_dls(8, 32)  # progressive resizing: bigger images, same model
    learn.fine_tune(1, 1e-3)
    assert learn.dls.one_batch()[0].shape == (8, 3, 32, 32)
    assert learn.recorder.values[-1][2] > 0.6, learn.recorder.values  # the size change costs a little (.66-.94)

    preds, targs = learn.tta()
    assert preds.shape == (80, 2) and targs.shape == (80,)
    assert torch.allclose(preds.sum(1), torch.ones(80), atol=1e-5)
    plain, plain_targs = learn.get_preds()
    assert torch.equal(targs, plain_targs) and (preds.argmax(1) == targs).float().mean().item() > 0.6
    (aug, plain2), _ = learn.tta(beta=None)
    assert torch.allclose(plain2, plain, atol=1e-5) and not torch.allclose(aug, plain, atol=1e-3)

    set_seed(0)
    learn = quiet(Learner(dls, xresnet18(n_out=dls.c), metrics=accuracy, cbs=CutMix()).to_fp16())
    with pytest.warns(UserWarning, match="bfloat16"):  # no GPU here: it says what it does instead
        learn.fit(1)
    assert np.isfinite(learn.recorder.values[0]).all()
    assert all(p.dtype == torch.float32 for p in learn.model.parameters())  # autocast, weights stay fp32


# ---------------------------------------------------------------- data access: URLs, untar_data, verify_images
def test_data_access_urls_untar_verify(home):
    _from(vision_all, "URLs", "untar_data", "SAMPLES", "verify_images", "get_image_files", "Path")
    assert URLs.PETS == "https://s3.amazonaws.com/fast-ai-imageclas/oxford-iiit-pet.tgz"
    assert URLs.MNIST_TINY == "https://s3.amazonaws.com/fast-ai-sample/mnist_tiny.tgz"
    assert URLs.CAMVID_TINY == "https://s3.amazonaws.com/fast-ai-sample/camvid_tiny.tgz"
    assert URLs.ADULT_SAMPLE == "https://s3.amazonaws.com/fast-ai-sample/adult_sample.tgz"
    assert URLs.ML_SAMPLE == "https://s3.amazonaws.com/fast-ai-sample/movie_lens_sample.tgz"
    assert URLs.IMAGENETTE_160 == "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz"

    path = untar_data(SAMPLES.MNIST_TINY)
    assert isinstance(path, Path) and home in path.parents
    assert [p.name for p in path.ls()] == ["labels.csv", "train", "valid"]
    assert [p.name for p in (path / "train").ls()] == ["3", "7"]
    (path / "mine.txt").write_text("kept")
    assert untar_data(SAMPLES.MNIST_TINY) == path and (path / "mine.txt").exists()  # copied once, then reused
    assert not (untar_data(SAMPLES.MNIST_TINY, force_download=True) / "mine.txt").exists()

    files = get_image_files(path)
    assert len(files) == 160 and verify_images(files) == []
    bad = path / "train" / "3" / "broken.png"
    bad.write_bytes(b"not a png")
    failed = verify_images(get_image_files(path))
    assert failed == [bad]
    for f in failed:
        f.unlink()
    assert verify_images(get_image_files(path)) == []
