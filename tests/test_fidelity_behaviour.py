"""fastai behaviours lesson code relies on: transforms called on their own (nbs/09_vision.augment), load(with_opt=False),
get_preds order on a shuffled loader, Interpretation slicing, EmbeddingDotBias.bias shape, collab vocabularies."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from learnkit.basics import DataLoaders, Interpretation, Learner, MSELossFlat
from learnkit.collab.all import CollabDataLoaders, collab_learner
from learnkit.tabular.core import get_emb_sz
from learnkit.vision.all import AffineCoordTfm, CropPad, Flip, RandomResizedCrop, Resize

pytestmark = pytest.mark.usefixtures("one_thread")


def _img(h: int = 40, w: int = 60) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


# ---------------------------------------------------------------- transforms on their own (fastai's calls)
def test_item_transforms_take_a_bare_pil_image() -> None:
    img = _img()
    out = CropPad(10)(img)
    assert isinstance(out, Image.Image) and out.size == (10, 10)
    # CropPad crops the centre: the 10x10 middle of the original
    assert np.array_equal(np.array(out), np.array(img)[15:25, 25:35])
    big = CropPad((80, 100))(img)  # pads around when larger (zeros by default)
    assert big.size == (100, 80) and np.array(big)[0, 0].tolist() == [0, 0, 0]
    assert Resize(10)(img, split_idx=0).size == (10, 10)
    assert Resize(10)(img, split_idx=1).size == (10, 10)
    rrc = RandomResizedCrop(256)(img)
    assert isinstance(rrc, Image.Image) and rrc.size == (256, 256)
    pair = Resize(8)((img, 3))  # a tuple of bare values: the label passes through
    assert pair[0].size == (8, 8) and pair[1] == 3


def test_batch_transforms_take_a_bare_batch() -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 3, 20, 20)
    y = AffineCoordTfm(size=10)(x, split_idx=0)
    assert y.shape == (4, 3, 10, 10)
    # no geometry parts: a plain resample of the whole image, close to average pooling of smooth input
    smooth = torch.linspace(0, 1, 20).expand(4, 3, 20, 20).contiguous()
    out = AffineCoordTfm(size=10)(smooth, split_idx=1)
    assert torch.allclose(out[..., 0, :], torch.linspace(0, 1, 10).expand(4, 3, 10), atol=1e-5)
    assert torch.equal(Flip(p=1.0)(x), x.flip(-1))


# ---------------------------------------------------------------- learner behaviours
def _dls(n: int = 64) -> DataLoaders:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    items = [(x[i], y[i:i + 1]) for i in range(n)]
    return DataLoaders.from_dsets(items, items[:32], bs=16, device="cpu")


def _learner(tmp_path) -> Learner:
    torch.manual_seed(0)
    learn = Learner(_dls(), nn.Linear(3, 1), loss_func=MSELossFlat(), lr=0.1, path=tmp_path)
    learn.remove_cbs([cb for cb in learn.cbs if type(cb).__name__ == "ProgressCallback"])
    return learn


def test_load_without_opt_leaves_a_usable_optimizer(tmp_path) -> None:
    learn = _learner(tmp_path)
    learn.fit(1)
    learn.save("m")
    fresh = _learner(tmp_path)
    fresh.load("m", with_opt=False)
    assert fresh.opt is not None and fresh.opt.param_groups[0]["params"][0] is fresh.model.weight
    assert torch.equal(fresh.model.weight, learn.model.weight)
    before = fresh.validate()[0]
    fresh.fit(3)
    assert fresh.validate()[0] < before


def test_get_preds_on_a_shuffled_loader_is_in_dataset_order(tmp_path) -> None:
    learn = _learner(tmp_path)
    dl = learn.dls.train
    assert dl.shuffle
    preds, targs = learn.get_preds(dl=dl)
    ys = torch.stack([y for _, y in dl.dataset])
    assert torch.equal(targs.reshape(-1), ys.reshape(-1))  # every item, in order
    xs = torch.stack([x for x, _ in dl.dataset])
    assert torch.allclose(preds.reshape(-1), learn.model(xs).detach().reshape(-1), atol=1e-6)


def test_interpretation_slices(tmp_path) -> None:
    learn = _learner(tmp_path)
    interp = Interpretation.from_learner(learn)
    inps, preds, targs, decoded, losses = interp[:5]
    assert preds.shape[0] == targs.shape[0] == losses.shape[0] == 5
    assert torch.equal(losses, interp.losses[:5])
    _, _, _, _, every_other = interp[10:20:2]
    assert torch.equal(every_other, interp.losses[10:20:2])


# ---------------------------------------------------------------- collaborative filtering
def _ratings() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 30, 400), rng.integers(0, 20, 400)
    df = pd.DataFrame({"user": users, "item": [f"m{i}" for i in items], "rating": rng.integers(1, 6, 400)})
    rare = pd.DataFrame({"user": [100, 101, 102], "item": ["only_a", "only_b", "only_c"], "rating": [5, 4, 3]})
    return pd.concat([df, rare], ignore_index=True)


def test_collab_classes_hold_every_user_and_item() -> None:
    df = _ratings()
    dls = CollabDataLoaders.from_df(df, valid_pct=0.2, seed=0, bs=32)
    valid_only = set(dls.valid.items["item"]) - set(dls.train.items["item"])
    assert valid_only, "the split must leave some items in the validation rows only for this test to mean anything"
    assert list(dls.classes["item"]) == ["#na#"] + sorted(df["item"].unique())
    assert list(dls.classes["user"]) == ["#na#"] + sorted(df["user"].unique())
    n_users, n_items = df["user"].nunique() + 1, df["item"].nunique() + 1
    assert get_emb_sz(dls) == [(n_users, min(600, round(1.6 * n_users ** 0.56))),
                               (n_items, min(600, round(1.6 * n_items ** 0.56)))]
    # validation rows are encoded with their own ids, not the '#na#' slot
    assert (dls.valid.cats != 0).all()


def test_embedding_dot_bias_bias_shape_as_fastai() -> None:
    dls = CollabDataLoaders.from_df(_ratings(), valid_pct=0.2, seed=0, bs=32)
    learn = collab_learner(dls, n_factors=5, y_range=(0, 5.5))
    one = learn.model.bias(["m3"])
    assert one.shape == ()  # fastai squeezes: a 0-d tensor for one item
    assert one.item() == learn.model.i_bias.weight[dls.classes["item"].o2i["m3"], 0].item()
    assert learn.model.bias(["m3", "m4"]).shape == (2,)
    assert learn.model.weight(["m3"]).shape == (1, 5)

