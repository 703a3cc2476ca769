"""imagenet_classifier(): the offline EfficientNet-Lite weights name Imagenette pictures with their ImageNet labels."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from learnkit.samples import sample_path
from learnkit.vision import imagenet_classifier
from learnkit.vision.imagenet import imagenet_labels

# Imagenette's 10 classes are ImageNet synsets: folder (WordNet id) -> ImageNet label
IMAGENETTE = {"n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
              "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
              "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
              "n03888257": "parachute"}


def val_images(per_class):
    root = Path(sample_path("imagenette_tiny")) / "val"
    return [p for wnid in IMAGENETTE for p in sorted((root / wnid).iterdir())[:per_class]]


@pytest.fixture(scope="module")
def clf():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return imagenet_classifier()


def test_labels_are_imagenets_1000():
    labels = imagenet_labels()
    assert len(labels) == 1000 and labels[0] == "tench" and labels[217] == "English springer"
    assert all(name in labels for name in IMAGENETTE.values())


def test_top1_is_the_imagenette_class_for_most_pictures(clf):
    files = val_images(5)
    res = clf(files)
    assert len(res) == 50 and all(len(r) == 5 for r in res)
    truth = [IMAGENETTE[f.parent.name] for f in files]
    top1 = np.mean([r[0][0] == t for r, t in zip(res, truth)])
    top5 = np.mean([t in [lab for lab, _ in r] for r, t in zip(res, truth)])
    assert top1 >= 0.55, top1  # chance: 1/1000; on all 300 sample pictures: 62% top-1, 85% top-5
    assert top5 >= 0.75, top5
    for r in res:  # probabilities, highest first
        ps = [p for _, p in r]
        assert ps == sorted(ps, reverse=True) and 0 < sum(ps) <= 1 + 1e-5


def test_paths_pil_arrays_and_tensors_agree(clf):
    f = val_images(1)[0]  # a tench
    pil = Image.open(f).convert("RGB")
    arr = np.array(pil)
    forms = [str(f), f, pil, arr, arr.astype(np.float32) / 255, torch.from_numpy(arr).permute(2, 0, 1)]
    results = [clf(x, topk=3) for x in forms]
    assert results[0][0][0] == "tench"
    for r in results[1:]:
        assert [lab for lab, _ in r] == [lab for lab, _ in results[0]]
        assert [p for _, p in r] == pytest.approx([p for _, p in results[0]], abs=1e-4)
    batch = clf(np.stack([arr, arr]), topk=3)  # an NxHxWxC array is a batch
    assert len(batch) == 2 and [lab for lab, _ in batch[1]] == [lab for lab, _ in results[0]]
    grey = clf(np.asarray(pil.convert("L")), topk=1)  # HxW grey
    assert len(grey) == 1 and grey[0][0] in imagenet_labels()


def test_a_batch_equals_one_at_a_time(clf):
    files = val_images(1)[:4]
    small = imagenet_classifier(bs=3)  # batches of 3 and 1
    batched = small(files, topk=2)
    for f, b in zip(files, batched):
        one = clf(f, topk=2)
        assert [lab for lab, _ in one] == [lab for lab, _ in b]
        assert [p for _, p in one] == pytest.approx([p for _, p in b], abs=1e-5)


def test_bad_input_names_the_image_and_the_fix(clf, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        clf(str(tmp_path / "nope.jpg"))
    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(ValueError, match="notes.jpg.*not an image"):
        clf([val_images(1)[0], tmp_path / "notes.jpg"])
    with pytest.raises(ValueError, match=r"shape \(5, 5, 7\).*HxWx3"):
        clf(np.zeros((5, 5, 7), dtype=np.uint8))
    with pytest.raises(ValueError, match="floats in \\[0, 1\\]"):
        clf(np.full((8, 8, 3), 200.0))
    with pytest.raises(TypeError, match="image 0 is a dict"):
        clf({"image": 1})
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        imagenet_classifier("resnet50")


@pytest.mark.parametrize("arch", ["efficientnet_lite1", "efficientnet_lite2"])
def test_bigger_lites_from_their_packages(arch):
    c = imagenet_classifier(arch)
    size = c.transform.transforms[1].size
    assert tuple(size) == {"efficientnet_lite1": (240, 240), "efficientnet_lite2": (260, 260)}[arch]
    files = val_images(10)
    res = c(files)
    truth = [IMAGENETTE[f.parent.name] for f in files]
    top1 = np.mean([r[0][0] == t for r, t in zip(res, truth)])
    top5 = np.mean([t in [lab for lab, _ in r] for r, t in zip(res, truth)])
    assert top1 > 0.5 and top5 >= 0.75, (top1, top5)  # on all 300 sample pictures: lite1 64% / 86%, lite2 66% / 87%
