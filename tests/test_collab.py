"""Collaborative filtering: CollabDataLoaders, EmbeddingDotBias / EmbeddingNN, collab_learner, predict, export."""
import warnings

import pandas as pd
import pytest
import torch

from learnkit.collab.all import (CollabDataLoaders, EmbeddingDotBias, EmbeddingNN, MSELossFlat, SigmoidRange,
                                 collab_learner, get_emb_sz, load_learner, sigmoid_range)
from learnkit.samples import sample_path


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return pd.read_csv(sample_path("movie_lens_sample") / "ratings.csv")


def _toy() -> pd.DataFrame:
    return pd.DataFrame({"u": [10, 20, 10, 30, 20, 30], "item": ["x", "y", "y", "x", "z", "z"],
                         "r": [1.0, 2.0, 3.0, 4.0, 5.0, 1.5], "extra": range(6)})


def test_collab_dataloaders_classes_and_batches():
    dls = CollabDataLoaders.from_df(_toy(), valid_pct=0.34, seed=1, bs=2, device="cpu")
    assert list(dls.classes) == ["u", "item"]
    train_rows = dls.train.dataset.items
    # vocabularies: '#na#' first, then every user/item of the ratings, sorted (as fastai); o2i inverts them
    assert dls.classes["u"][0] == "#na#" and list(dls.classes["u"][1:]) == sorted(set(_toy().u))
    assert all(dls.classes["item"].o2i[v] == i for i, v in enumerate(dls.classes["item"]))
    assert len(train_rows) == 4 and len(dls.valid.dataset) == 2
    assert dls.n_inp == 1 and dls.c == 1
    x, y = dls.valid.one_batch()
    assert x.shape == (2, 2) and x.dtype == torch.int64 and y.shape == (2, 1) and y.dtype == torch.float32
    assert get_emb_sz(dls) == [(len(dls.classes["u"]), 3), (len(dls.classes["item"]), 3)]  # emb_sz_rule
    df = dls.valid.show_batch(show=False)
    assert list(df.columns) == ["u", "item", "r"]
    assert df["r"].tolist() == pytest.approx(_toy().r.loc[dls.valid.items.index].tolist())  # rows keep their labels


def test_models_by_hand():
    m = EmbeddingDotBias(3, 4, 5, y_range=(0, 5.5))
    assert [type(getattr(m, n)).__name__ for n in ("u_weight", "i_weight", "u_bias", "i_bias")] == ["Embedding"] * 4
    x = torch.tensor([[1, 2], [3, 4]])
    with torch.no_grad():
        expect = (m.u_weight(x[:, 0]) * m.i_weight(x[:, 1])).sum(1) + m.u_bias(x[:, 0])[:, 0] + m.i_bias(x[:, 1])[:, 0]
        assert torch.allclose(m(x), sigmoid_range(expect, 0, 5.5))
    assert m(x[:1]).shape == (1,)  # one row still gives a batch of one
    nn_model = EmbeddingNN([(4, 3), (5, 2)], layers=[8], y_range=(0, 5.5))
    assert nn_model(x).shape == (2, 1) and isinstance(nn_model.layers[-1], SigmoidRange)


@pytest.mark.slow
def test_collab_learner_learns_ranks_predicts_exports(ratings, tmp_path, one_thread):
    torch.manual_seed(0)
    dls = CollabDataLoaders.from_df(ratings, bs=64, seed=42, path=tmp_path, device="cpu")
    learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5))
    assert isinstance(learn.loss_func, MSELossFlat)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(5, 5e-3, wd=0.1)
    mse = learn.validate()[0]
    train_ys = dls.train.dataset.ys.flatten()
    baseline = float(((dls.valid.dataset.ys.flatten() - train_ys.mean()) ** 2).mean())  # predict the mean rating
    assert mse < 0.8 * baseline, (mse, baseline)
    # weight / bias by original ids
    items = list(dls.classes["movieId"][1:6])
    assert learn.model.bias(items).shape == (5,) and learn.model.weight(items).shape == (5, 50)
    assert torch.equal(learn.model.bias(items[:1]), learn.model.i_bias.weight[dls.classes["movieId"].o2i[items[0]]].detach().squeeze())  # 0-d, as fastai
    with pytest.raises(KeyError, match="not in the vocabulary"):
        learn.model.bias([-12345])
    res = learn.show_results(max_n=3, show=False)
    assert list(res.columns) == ["userId", "movieId", "rating", "rating_pred"]
    # predict a (user, item) row; an unknown user gets the '#na#' slot with a warning
    row, pred, _ = learn.predict(ratings.iloc[0])
    assert 0 < float(pred) < 5.5 and row["rating"].iloc[0] == pytest.approx(float(pred))
    with pytest.warns(UserWarning, match="never seen"):
        row2, _, _ = learn.predict(pd.Series({"userId": 999999, "movieId": int(ratings.movieId.iloc[0])}))
    assert row2["userId"].iloc[0] == "#na#"
    # export round trip
    learn2 = load_learner(learn.export())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert float(learn2.predict(ratings.iloc[0])[1]) == pytest.approx(float(pred), abs=1e-6)
    assert torch.equal(learn2.model.bias(items), learn.model.bias(items))


@pytest.mark.slow
def test_collab_nn_learner_exports(ratings, tmp_path, one_thread):
    torch.manual_seed(0)
    dls = CollabDataLoaders.from_df(ratings, bs=64, seed=42, path=tmp_path, device="cpu")
    learn = collab_learner(dls, use_nn=True, layers=[32], y_range=(0, 5.5))
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(2, 5e-3)
    learn2 = load_learner(learn.export())
    p1, _ = learn.get_preds()
    p2, _ = learn2.get_preds(dl=learn2.dls.test_dl(ratings.loc[dls.valid.items.index]))
    assert torch.allclose(p1, p2, atol=1e-5)
