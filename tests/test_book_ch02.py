"""The fastai book's chapter 2 (from model to production) with the import lines changed.

The bears (the Colab edition's ``FINN_PETS_DIR``) are three classes of the shipped ``imagenette_tiny`` sample, 10
images each, in ``path/<class>/``; sizes are 64 instead of 128/224, ``resnet18`` is untrained (``pretrained=False``:
no weight download) and ``fine_tune(1)``. The notebook app's cells run with ipywidgets; ``img.to_thumb(128,128)``
(fastai patches PIL's Image class) is ``img.copy()`` here, as learnkit returns plain PIL images and patches nothing.
"""
import shutil

import pytest

from learnkit.vision.all import *  # noqa: F403  (the book: from fastbook import *)
from learnkit.vision.widgets import *  # noqa: F403  (the book: from fastai.vision.widgets import *)


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    src, dst = sample_path("imagenette_tiny") / "train", tmp_path_factory.mktemp("bears")
    for cls, name in (("n01440764", "grizzly"), ("n02102040", "black"), ("n02979186", "teddy")):
        (dst / name).mkdir()
        for f in sorted((src / cls).iterdir())[:10]:
            shutil.copy(f, dst / name / f.name)
    return Path(dst)


def test_from_data_to_dataloaders(path):
    bears = DataBlock(
        blocks=(ImageBlock, CategoryBlock),
        get_items=get_image_files,
        splitter=RandomSplitter(valid_pct=0.2, seed=42),
        get_y=lambda x: x.parent.name,
        item_tfms=Resize(64))
    dls = bears.dataloaders(path, bs=8)
    assert dls.vocab == ['black', 'grizzly', 'teddy'] and (len(dls.train_ds), len(dls.valid_ds)) == (24, 6)
    dls.valid.show_batch(max_n=4, nrows=1)
    bears = bears.new(item_tfms=Resize(64, ResizeMethod.Squish))
    dls = bears.dataloaders(path, bs=8)
    assert dls.valid.one_batch()[0].shape == (6, 3, 64, 64)
    dls.valid.show_batch(max_n=4, nrows=1)
    bears = bears.new(item_tfms=Resize(64, ResizeMethod.Pad, pad_mode='zeros'))
    dls = bears.dataloaders(path, bs=8)
    dls.valid.show_batch(max_n=4, nrows=1)
    plt.close('all')


def test_show_batch_unique(path):
    """``show_batch(unique=True)``: one item shown augmented several times."""
    bears = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                      splitter=RandomSplitter(valid_pct=0.2, seed=42), get_y=lambda x: x.parent.name)
    bears = bears.new(item_tfms=RandomResizedCrop(64, min_scale=0.3))
    dls = bears.dataloaders(path, bs=8)
    fig = dls.train.show_batch(max_n=4, nrows=1, unique=True)
    assert len({ax.get_title() for ax in fig.axes if ax.get_visible()}) == 1  # the same image (and label) each time
    bears = bears.new(item_tfms=Resize(64), batch_tfms=aug_transforms(mult=2))
    dls = bears.dataloaders(path, bs=8)
    dls.train.show_batch(max_n=8, nrows=2, unique=True)
    plt.close('all')


def test_data_augmentation_mult(path):
    bears = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                      splitter=RandomSplitter(valid_pct=0.2, seed=42), get_y=lambda x: x.parent.name)
    bears = bears.new(item_tfms=Resize(64), batch_tfms=aug_transforms(mult=2))
    dls = bears.dataloaders(path, bs=8)
    xb, _ = dls.train.one_batch()
    assert xb.shape == (8, 3, 64, 64)
    def parts(tfms): return {type(p).__name__: p for t in tfms for p in t.parts}  # fused, as fastai's setup_aug_tfms
    by_name, base = parts(aug_transforms(mult=2)), parts(aug_transforms())
    assert set(by_name) == set(base) == {"Flip", "Warp", "Rotate", "Zoom", "Brightness", "Contrast"}
    # mult scales max_rotate (10 -> 20), max_lighting (0.2 -> 0.4) and max_warp (0.2 -> 0.4), as fastai's does
    assert by_name["Rotate"].max_deg == 2 * base["Rotate"].max_deg == 20
    assert by_name["Brightness"].max_lighting == pytest.approx(0.4)
    assert by_name["Warp"].magnitude == pytest.approx(0.4)


def test_training_cleaning_and_the_app(path, tmp_path, one_thread, monkeypatch):
    import ipywidgets as widgets
    from ipywidgets import VBox
    from IPython.display import display
    monkeypatch.chdir(tmp_path)
    images = get_image_files(path)
    bears = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                      splitter=RandomSplitter(valid_pct=0.2, seed=42), get_y=lambda x: x.parent.name)
    bears = bears.new(item_tfms=RandomResizedCrop(64, min_scale=0.5), batch_tfms=aug_transforms())
    dls = bears.dataloaders(path, bs=8)
    learn = cnn_learner(dls, resnet18, pretrained=False, metrics=error_rate)
    learn.path = Path(tmp_path)
    learn.fine_tune(1)
    interp = ClassificationInterpretation.from_learner(learn)
    interp.plot_confusion_matrix()
    assert interp.confusion_matrix().sum() == 6
    interp.plot_top_losses(5, nrows=1)
    cleaner = ImageClassifierCleaner(learn)
    assert len(cleaner.fns) > 0 and list(cleaner.delete()) == [] and list(cleaner.change()) == []
    plt.close('all')

    learn.export()
    path = Path()
    assert [p.name for p in (Path(tmp_path)).ls(file_exts='.pkl')] == ['export.pkl']
    learn_inf = load_learner(Path(tmp_path)/'export.pkl')
    test_image = images[0]  # the book: f'{FINN_PETS_DIR}/dogs/4784.jpg'
    pred, pred_idx, probs = learn_inf.predict(test_image)
    assert pred == learn_inf.dls.vocab[pred_idx] and probs.shape == (3,) and abs(probs.sum().item() - 1) < 1e-5
    assert learn_inf.dls.vocab == ['black', 'grizzly', 'teddy']

    btn_upload = widgets.FileUpload()
    img = PILImage.create(Path(test_image).read_bytes())  # the book: btn_upload.data[-1], the uploaded bytes
    out_pl = widgets.Output()
    out_pl.clear_output()
    with out_pl: display(img.copy())  # the book: img.to_thumb(128,128)
    pred, pred_idx, probs = learn_inf.predict(img)
    lbl_pred = widgets.Label()
    lbl_pred.value = f'Prediction: {pred}; Probability: {probs[pred_idx]:.04f}'
    assert lbl_pred.value.startswith(f'Prediction: {pred}; Probability: 0.') or probs[pred_idx] == 1
    btn_run = widgets.Button(description='Classify')

    def on_click_classify(change):
        out_pl.clear_output()
        p, i, pr = learn_inf.predict(img)
        lbl_pred.value = f'Prediction: {p}; Probability: {pr[i]:.04f}'
    btn_run.on_click(on_click_classify)
    lbl_pred.value = ''
    btn_run.click()
    assert lbl_pred.value.startswith('Prediction: ')
    box = VBox([widgets.Label('Select your bear!'), btn_upload, btn_run, out_pl, lbl_pred])
    assert len(box.children) == 5
