"""ImageClassifierCleaner: images by loss, keep/delete/relabel choices, the widget panel and the script path."""
import shutil
import sys

import pytest
import torch
from torch import nn

from learnkit.basics import Learner, sample_path
from learnkit.vision.all import ImageClassifierCleaner, ImageDataLoaders
from learnkit.vision.widgets import DELETE, KEEP

pytestmark = pytest.mark.usefixtures("one_thread")


def make_learner(path):
    dls = ImageDataLoaders.from_folder(path, bs=16, num_workers=0)
    torch.manual_seed(0)
    return Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 2)))


@pytest.fixture
def mnist_copy(tmp_path):
    dst = tmp_path / "mnist"
    shutil.copytree(sample_path("mnist_tiny"), dst)
    return dst


def test_view_is_one_category_sorted_by_loss_with_the_widget_panel(mnist_copy):
    learn = make_learner(mnist_copy)
    cleaner = ImageClassifierCleaner(learn, max_n=5)
    dl = learn.dls.train.new(shuffle=False, drop_last=False)
    with learn.no_bar():
        _, targs, losses = learn.get_preds(dl=dl, with_loss=True)
    items = list(learn.dls.train.dataset.items)
    threes = sorted([(l, f) for f, t, l in zip(items, targs.tolist(), losses.tolist()) if t == 0], reverse=True)
    assert cleaner.category == "3" and cleaner.split == "Train"
    assert cleaner.fns == [f for _, f in threes[:5]] and cleaner.losses == pytest.approx([l for l, _ in threes[:5]])
    assert all(f.parent.name == "3" for f in cleaner.fns)
    # the panel: category and split drop-downs, then one image + drop-down per file shown
    dd_cats, dd_ds, images = cleaner.widget.children
    assert list(dd_cats.options) == ["3", "7"] and list(dd_ds.options) == ["Train", "Valid"]
    assert len(images.children) == 5
    img, dd = images.children[0].children
    assert img.value[:8] == b"\x89PNG\r\n\x1a\n" and list(dd.options) == [KEEP, DELETE, "3", "7"]
    # choices by clicking (drop-down values) and by code
    images.children[0].children[1].value = DELETE
    cleaner.set_choice(2, "7")
    cleaner.set_choice(3, "delete")
    cleaner.set_choice(4, "3")  # its own label: nothing to change
    assert cleaner.delete() == [0, 3] and cleaner.change() == [(2, "7")]
    assert images.children[3].children[1].value == DELETE  # set_choice shows in the panel
    # switching the view with the drop-downs shows other files; coming back keeps the choices
    dd_ds.value = "Valid"
    assert cleaner.split == "Valid" and all(f.parts[-3] == "valid" for f in cleaner.fns)
    assert cleaner.delete() == [] and cleaner.change() == []
    dd_cats.value = "7"
    assert all(f.parent.name == "7" for f in cleaner.fns) and len(images.children) == len(cleaner.fns)
    cleaner.set_view("3", "train")
    assert cleaner.delete() == [0, 3] and cleaner.change() == [(2, "7")]
    assert dd_cats.value == "3" and dd_ds.value == "Train"
    listing = cleaner.listing()
    assert listing["choice"].tolist() == [DELETE, KEEP, "7", DELETE, KEEP]
    # it never touched a file; fastai's loops do what was chosen
    assert all(f.exists() for f in cleaner.fns)
    to_delete = [cleaner.fns[i] for i in cleaner.delete()]
    moved = cleaner.fns[2]
    for idx in cleaner.delete():
        cleaner.fns[idx].unlink()
    for idx, cat in cleaner.change():
        shutil.move(str(cleaner.fns[idx]), mnist_copy / "train" / cat)
    assert not any(f.exists() for f in to_delete)
    assert not moved.exists() and (mnist_copy / "train" / "7" / moved.name).exists()


def test_bad_choices_are_named(mnist_copy):
    cleaner = ImageClassifierCleaner(make_learner(mnist_copy), ds_idx=1, max_n=3)
    assert cleaner.split == "Valid" and len(cleaner.fns) == 3
    with pytest.raises(ValueError, match="not 'keep', 'delete' or a label"):
        cleaner.set_choice(0, "dog")
    with pytest.raises(IndexError, match="3 files are shown"):
        cleaner.set_choice(3, "keep")
    with pytest.raises(ValueError, match="Unknown category"):
        cleaner.set_view("9")


def test_without_ipywidgets_the_same_choices_work_in_a_script(mnist_copy, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import fails as if not installed
    learn = make_learner(mnist_copy)
    with pytest.warns(UserWarning, match="ipywidgets is not installed"):
        cleaner = ImageClassifierCleaner(learn, max_n=4)
    assert cleaner.widget is None and len(cleaner.fns) == 4
    cleaner.set_choice(1, "<Delete>")
    cleaner.set_choice(0, "7")
    cleaner.set_choice(1, "KEEP")
    cleaner.set_choice(3, "Delete")
    assert cleaner.delete() == [3] and cleaner.change() == [(0, "7")]
    assert "1 to delete, 1 to relabel" in repr(cleaner)
    cleaner._ipython_display_()
    out = capsys.readouterr().out
    assert "pip install ipywidgets" in out and "<Delete>" in out


def test_items_that_are_not_files_go_through_the_x_getter(mnist_copy):
    import pandas as pd
    files = sorted(mnist_copy.glob("*/*/*.png"))[:40] + sorted(mnist_copy.glob("*/*/*.png"))[-40:]
    labels = [f.parent.name for f in files]
    for dls in (ImageDataLoaders.from_lists(mnist_copy, files, labels, seed=0, bs=16, num_workers=0),
                ImageDataLoaders.from_df(pd.DataFrame({"fname": [str(f) for f in files], "label": labels}),
                                         mnist_copy, seed=0, bs=16, num_workers=0)):
        torch.manual_seed(0)
        learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 2)))
        cleaner = ImageClassifierCleaner(learn, max_n=100)  # before: TypeError from Path((fname, label)) / Path(row)
        shown = set(cleaner.fns)
        assert shown and shown <= set(files) and all(f.parent.name == cleaner.category for f in shown)
        cleaner.set_view(cleaner.vocab[1], "Valid")
        assert cleaner.fns and all(f.parent.name == cleaner.vocab[1] for f in cleaner.fns)
    # items that are not files and no getter turning them into files: an error naming the factories to use
    from types import SimpleNamespace
    from learnkit.vision.widgets import _files
    learn = SimpleNamespace(dls=SimpleNamespace(getters=None))
    with pytest.raises(ValueError, match="items look like 3.*ImageDataLoaders.from_folder"):
        _files(learn, SimpleNamespace(dataset=SimpleNamespace()), [3], 0)
