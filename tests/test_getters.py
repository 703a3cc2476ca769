"""Tests for learnkit.data.getters: finding files and reading labels/columns."""
import os
import pickle
import subprocess

import pandas as pd
import pytest

from learnkit.data.getters import (ColReader, FileGetter, ImageGetter, RegexLabeller, get_files, get_image_files,
                                   get_text_files, image_extensions, parent_label, using_attr)
from learnkit.samples import sample_path
from learnkit.utils import Path

MNIST = sample_path("mnist_tiny")


def _touch(root, *names):
    for n in names:
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


@pytest.fixture
def tree(tmp_path):
    _touch(tmp_path, "top.png", "notes.txt", "train/cat/1.jpg", "train/cat/2.JPEG", "train/dog/3.png",
           "train/dog/readme.txt", "valid/cat/4.webp", "valid/dog/5.png", ".hidden/6.png", "train/.7.png",
           "train/dog/.cache/8.png", "other/9.png", "arc/x.tar.gz")
    return tmp_path


def _rel(files, root):
    return [str(f.relative_to(root)) for f in files]


def test_get_files_all_sorted_skips_hidden(tree):
    files = get_files(tree)
    assert _rel(files, tree) == ["arc/x.tar.gz", "notes.txt", "other/9.png", "top.png", "train/cat/1.jpg",
                                 "train/cat/2.JPEG", "train/dog/3.png", "train/dog/readme.txt",
                                 "valid/cat/4.webp", "valid/dog/5.png"]
    assert all(type(f) is Path for f in files)


def test_get_files_extensions_case_insensitive_with_or_without_dot(tree):
    assert _rel(get_files(tree, extensions=[".jpg", "jpeg"]), tree) == ["train/cat/1.jpg", "train/cat/2.JPEG"]
    assert _rel(get_files(tree, extensions=".TXT"), tree) == ["notes.txt", "train/dog/readme.txt"]
    assert _rel(get_files(tree, extensions={".tar.gz"}), tree) == ["arc/x.tar.gz"]
    assert get_files(tree, extensions=[".bmp"]) == []


def test_get_files_no_recurse_and_folders(tree):
    assert _rel(get_files(tree, recurse=False), tree) == ["notes.txt", "top.png"]
    assert _rel(get_files(tree, folders=["valid"]), tree) == ["valid/cat/4.webp", "valid/dog/5.png"]
    assert _rel(get_files(tree, folders="valid", extensions=".png"), tree) == ["valid/dog/5.png"]
    assert _rel(get_files(tree, folders=["other", "."]), tree) == ["notes.txt", "other/9.png", "top.png"]
    assert _rel(get_files(tree / "train", folders=["dog"], recurse=False), tree) == ["train/dog/3.png",
                                                                                     "train/dog/readme.txt"]


def test_get_files_missing_folder_is_skipped_as_fastai_with_a_warning_naming_what_exists(tree):
    with pytest.warns(UserWarning, match=r"\['val'\].*'train', 'valid'.*'val' -> 'valid'"):
        got = get_files(tree, folders=["train", "val"])
    assert got == get_files(tree, folders=["train"])
    with pytest.warns(UserWarning):
        assert get_files(tree, folders=["nope"]) == []  # fastai: an empty list


def test_get_files_bad_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does_not_exist"):
        get_files(tmp_path / "does_not_exist")
    (tmp_path / "f.png").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="f.png"):
        get_image_files(tmp_path / "f.png")


def test_get_files_empty_folder_is_empty_list(tmp_path):
    assert get_files(tmp_path) == [] and get_image_files(tmp_path) == []


def test_get_files_symlink_loop_terminates(tmp_path):
    _touch(tmp_path, "a/1.png")
    os.symlink(tmp_path, tmp_path / "a" / "loop")
    assert _rel(get_image_files(tmp_path), tmp_path) == ["a/1.png"]
    assert _rel(get_image_files(tmp_path / "a"), tmp_path) == ["a/1.png"]


def test_get_files_followlinks(tmp_path):
    _touch(tmp_path, "real/1.png")
    (tmp_path / "root").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "root" / "link")
    assert _rel(get_files(tmp_path / "root"), tmp_path) == ["root/link/1.png"]
    assert get_files(tmp_path / "root", followlinks=False) == []


def test_get_image_and_text_files(tree):
    assert _rel(get_image_files(tree, folders=["train"]), tree) == ["train/cat/1.jpg", "train/cat/2.JPEG",
                                                                   "train/dog/3.png"]
    assert _rel(get_text_files(tree), tree) == ["notes.txt", "train/dog/readme.txt"]
    assert {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"} <= image_extensions
    assert ".txt" not in image_extensions


def _find_count(*args):
    out = subprocess.run(["find", str(MNIST), *args], capture_output=True, text=True, check=True).stdout
    return len(out.split())


def test_mnist_tiny_counts_match_find():
    assert len(get_image_files(MNIST)) == _find_count("-name", "*.png")
    assert len(get_image_files(MNIST, folders=["train", "valid"])) == (
        _find_count("-path", "*/train/*", "-name", "*.png") + _find_count("-path", "*/valid/*", "-name", "*.png"))
    assert len(get_files(MNIST, extensions=".csv", recurse=False)) == 1
    files = get_image_files(MNIST / "train")
    assert files == sorted(files) and {parent_label(f) for f in files} == {"3", "7"}


def test_file_getter_and_image_getter_pickle(tree):
    fg = pickle.loads(pickle.dumps(FileGetter("train", extensions=[".txt"])))
    assert _rel(fg(tree), tree) == ["train/dog/readme.txt"]
    ig = pickle.loads(pickle.dumps(ImageGetter("valid")))
    assert _rel(ig(str(tree)), tree) == ["valid/cat/4.webp", "valid/dog/5.png"]
    assert _rel(ImageGetter(folders=["other"])(tree), tree) == ["other/9.png"]


def test_parent_label():
    assert parent_label("data/train/cat/1.jpg") == "cat"
    assert parent_label(Path("/x/dog/2.png")) == "dog"


def test_regex_labeller():
    f = RegexLabeller(r"^(.+)_\d+\.jpg$")
    assert f("great_pyrenees_12.jpg") == "great_pyrenees"
    assert RegexLabeller(r"/([^/]+)_\d+\.jpg$")(Path("/d/Abyssinian_1.jpg")) == "Abyssinian"
    g = pickle.loads(pickle.dumps(RegexLabeller(r"(\d+)", match=True)))
    assert g("12ab") == "12"
    with pytest.raises(ValueError, match=r"did not match.*'ab12'"):
        g("ab12")
    with pytest.raises(ValueError, match=r"'cat\.jpg'.*did not find|did not find.*cat\.jpg"):
        f("cat.jpg")
    with pytest.raises(ValueError, match="no group"):
        RegexLabeller(r"\d+")


def test_using_attr_applies_to_attribute_and_pickles(tmp_path):
    f = pickle.loads(pickle.dumps(using_attr(RegexLabeller(r"^(\w+)_\d+"), "name")))
    assert f(Path("/data/images/beagle_3.jpg")) == "beagle"
    assert f("/data/images/beagle_3.jpg") == "beagle"  # str items read as paths
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        using_attr(str, "nope")(3)


@pytest.fixture
def df():
    return pd.DataFrame({"fname": ["a.jpg", "b.jpg"], "labels": ["cat dog", ""], "y": [1.5, 2.0],
                         "z": [3, 4], "is_valid": [False, True]})


def test_colreader_on_series_rows(df):
    r0, r1 = df.iloc[0], df.iloc[1]
    assert ColReader("fname")(r0) == "a.jpg"
    assert ColReader(0)(r1) == "b.jpg"
    assert ColReader("fname", pref="imgs/", suff=".x")(r0) == "imgs/a.jpg.x"
    got = ColReader("fname", pref=Path("/data/imgs"))(r0)
    assert got == Path("/data/imgs/a.jpg") and type(got) is Path
    assert ColReader("labels", label_delim=" ")(r0) == ["cat", "dog"]
    assert ColReader("labels", label_delim=" ")(r1) == []
    assert ColReader(["y", "z"])(r1) == [2.0, 4]
    assert ColReader([2, 3])(r0) == [1.5, 3]


def test_colreader_on_itertuples_rows(df):
    rows = list(df.itertuples())
    assert ColReader("fname")(rows[1]) == "b.jpg"
    assert ColReader(0)(rows[0]) == "a.jpg"  # position among the columns, skipping the Index field
    assert ColReader(0)(next(df.itertuples(index=False))) == "a.jpg"
    assert ColReader("labels", label_delim=" ")(rows[0]) == ["cat", "dog"]


def test_colreader_missing_values_and_errors(df):
    nan_row = pd.DataFrame({"labels": [float("nan")]}).iloc[0]
    assert ColReader("labels", label_delim=";")(nan_row) == []
    with pytest.raises(KeyError, match=r"'label'.*\['fname', 'labels', 'y', 'z', 'is_valid'\]"):
        ColReader("label")(df.iloc[0])
    with pytest.raises(KeyError, match=r"'label'.*'fname'"):
        ColReader("label")(next(df.itertuples()))
    with pytest.raises(IndexError, match="position 9"):
        ColReader(9)(df.iloc[0])


def test_colreader_pickles(df):
    f = pickle.loads(pickle.dumps(ColReader("fname", pref=Path("/d"), suff=".png")))
    assert f(df.iloc[1]) == Path("/d/b.jpg.png")
