"""MLflowCallback against a real local MLflow store, read back with MlflowClient; a server that does not answer."""
import socket

import mlflow
import pytest
from mlflow import MlflowClient

from learnkit.callback.mlflow import MLflowCallback
import numpy as np
import torch
import pandas as pd

from learnkit.data.normalize import Normalize
from learnkit.export import load_learner
from learnkit.metrics import accuracy
from learnkit.tabular.core import Categorify
from learnkit.tabular.data import TabularDataLoaders
from learnkit.tabular.learner import tabular_learner

from test_callbacks_logger import make_learner

pytestmark = pytest.mark.usefixtures("one_thread")


def runs(uri):
    client = MlflowClient(tracking_uri=uri)
    exps = client.search_experiments()
    return client, client.search_runs([e.experiment_id for e in exps], order_by=["attributes.start_time ASC"])


def tab_learner(tmp_path, cbs):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"g": rng.choice(list("ab"), 200), "u": rng.normal(size=200)})
    df["t"] = ((df["g"] == "a") ^ (df["u"] > 0)).map({True: "yes", False: "no"})
    dls = TabularDataLoaders.from_df(df, path=tmp_path, procs=[Categorify, Normalize], cat_names="g", cont_names="u",
                                     y_names="t", bs=32, seed=0, device="cpu")
    learn = tabular_learner(dls, layers=[16], metrics=accuracy, cbs=cbs)
    learn.remove_cb(learn.progress)
    return learn, df


def test_one_run_per_fit_with_params_metrics_artifacts_and_tags(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow puts a sqlite store's artifacts in ./mlruns
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    learn, df = tab_learner(tmp_path, cbs=MLflowCallback(experiment_name="toy", tags={"team": "lk"}))
    learn.fit(3, lr=0.1)
    client, found = runs(uri)
    assert len(found) == 1
    run = found[0]
    assert run.info.status == "FINISHED" and run.data.tags["team"] == "lk"
    assert client.get_experiment(run.info.experiment_id).name == "toy"
    p = run.data.params
    assert float(p["lr"]) == pytest.approx(0.1) and "lr_groups" not in p and p["epochs"] == "3" and p["bs"] == "32"
    assert p["arch"] == "TabularModel" and p["opt_func"] == "Adam" and p["loss_func"] == "CrossEntropyLossFlat"
    assert "Categorify" in p["transforms"] and "Normalize" in p["transforms"]
    rec = learn.recorder
    for name in ("train_loss", "valid_loss", "accuracy"):
        hist = client.get_metric_history(run.info.run_id, name)
        assert [m.step for m in hist] == [0, 1, 2]
        col = rec.metric_names.index(name) - 1
        assert [m.value for m in hist] == pytest.approx([float(v[col]) for v in rec.values])
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert arts == {"model", "plots"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "plots")] == ["plots/loss.png"]
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="model", dst_path=str(tmp_path / "dl"),
                                                tracking_uri=uri)
    model_files = sorted((tmp_path / "dl" / "model").iterdir())
    assert model_files, local
    # the exported learner round-trips from the downloaded artifact
    exported = [f for f in model_files if f.name.startswith("export")][0]
    learn2 = load_learner(exported)
    for i in range(3):
        p1, p2 = learn.predict(df.iloc[i])[2], learn2.predict(df.iloc[i])[2]
        assert p1.shape == p2.shape == (2,) and torch.allclose(p1, p2, atol=1e-5)
    learn.fit(1)
    assert len(runs(uri)[1]) == 2  # one run per fit


def test_default_is_a_local_store_under_learn_path(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    learn = make_learner(tmp_path, cbs=MLflowCallback(log_plot=False))
    with pytest.warns(RuntimeWarning, match="model was not logged.*pickle_model"):
        learn.fit(1)  # a hand-built model has no architecture spec: a warning, no model artifact
    client, found = runs(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    assert len(found) == 1 and client.get_experiment(found[0].info.experiment_id).name == "learnkit"
    assert found[0].info.status == "FINISHED"
    assert found[0].info.artifact_uri.startswith((tmp_path / "mlruns" / "artifacts").as_uri())


def test_fine_tune_phases_are_nested_runs_of_an_active_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        learn = make_learner(tmp_path, cbs=MLflowCallback(tracking_uri=uri, log_model=False))
        with mlflow.start_run(run_name="fine_tune") as parent:
            learn.fine_tune(2, freeze_epochs=1)
    finally:
        mlflow.set_tracking_uri(None)
    client, found = runs(uri)
    children = [r for r in found if r.info.run_id != parent.info.run_id]
    assert len(found) == 3 and len(children) == 2
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    assert [r.data.params["epochs"] for r in children] == ["1", "2"]
    assert [float(r.data.params["lr"]) for r in children] == pytest.approx([2e-3, 1e-3])  # fine_tune's peak lrs


def test_a_server_that_does_not_answer_warns_and_the_fit_goes_on(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    learn = make_learner(tmp_path, cbs=MLflowCallback(tracking_uri=f"http://127.0.0.1:{port}"))
    with pytest.warns(RuntimeWarning, match=f"127.0.0.1:{port}.*training goes on"):
        learn.fit(3)
    assert len(learn.recorder.values) == 3  # every epoch trained and recorded


def test_sits_out_on_other_ranks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow puts a sqlite store's artifacts in ./mlruns
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("RANK", "1")
    learn = make_learner(tmp_path, cbs=MLflowCallback(tracking_uri=uri))
    learn.fit(1)
    assert not (tmp_path / "store.db").exists()
