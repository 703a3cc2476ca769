"""learnkit.tune on Optuna, on a small real problem: pruning, best vs worst, resuming from sqlite, two processes."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnkit.callback.progress import ProgressCallback
from learnkit.data.core import DataLoaders
from learnkit.learner import Learner
from learnkit.losses import CrossEntropyLossFlat
from learnkit.metrics import accuracy
from learnkit.optimizer import SGD
from learnkit.tune import PruningCallback, build_best, tune

pytestmark = pytest.mark.usefixtures("one_thread")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def build(trial):
    """A small MLP on two Gaussian-ish classes; the learning rate is the hyper-parameter that matters."""
    lr = trial.suggest_float("lr", 1e-5, 1.0, log=True)
    hidden = trial.suggest_categorical("hidden", [4, 16])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 2, generator=g)
    y = (x[:, 0] * x[:, 1] > 0).long()
    dls = DataLoaders(TorchDataLoader(TensorDataset(x[:192], y[:192]), batch_size=32, shuffle=True),
                      TorchDataLoader(TensorDataset(x[192:], y[192:]), batch_size=64), device="cpu")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 2))
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), opt_func=SGD, lr=lr, metrics=accuracy)
    learn.remove_cb(ProgressCallback)
    return learn


def test_tune_best_beats_worst_and_pruned_trials_ran_fewer_epochs():
    study = tune(build, n_trials=12, epochs=5, monitor="valid_loss", pruner="median", seed=0)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert len(done) >= 2 and pruned, [t.state for t in study.trials]
    worst = max(t.value for t in done)
    assert study.best_value < worst - 0.1, (study.best_value, worst)
    assert all(t.user_attrs["epochs"] == 5 for t in done)
    assert all(t.user_attrs["epochs"] < 5 for t in pruned)
    assert all(len(t.intermediate_values) < 5 for t in pruned)
    learn = build_best(study, build)
    assert learn.lr == pytest.approx(study.best_params["lr"])
    learn.fit_one_cycle(5)
    assert float(learn.recorder.log[learn.recorder.metric_names.index("valid_loss")]) == pytest.approx(
        study.best_value, rel=0.05)


def test_tune_maximizes_a_metric_with_hyperband():
    study = tune(build, n_trials=8, epochs=5, monitor="accuracy", pruner="hyperband", seed=0)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    done = [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert study.best_value == max(done) and study.best_value > min(done) + 0.1, done


def test_study_resumes_from_sqlite(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    tune(build, n_trials=2, epochs=2, storage=storage, study_name="s", seed=0)
    study = tune(build, n_trials=2, epochs=2, storage=storage, study_name="s", seed=0)
    assert len(study.trials) == 4
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 4


def test_two_processes_share_one_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="shared", storage=storage)
    script = textwrap.dedent(f"""
        import sys, optuna
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import torch; torch.set_num_threads(1)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        from test_tune import build
        from learnkit.tune import tune
        tune(build, n_trials=2, epochs=2, storage={storage!r}, study_name="shared", pruner="none", seed=int(sys.argv[1]))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH", "")]))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i)], env=env, stderr=subprocess.PIPE) for i in (1, 2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    assert len(trials) == 4 and sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


def test_unknown_monitor_lists_the_names():
    study = optuna.create_study()
    learn = build(optuna.trial.FixedTrial({"lr": 0.1, "hidden": 4}))
    with pytest.raises(ValueError, match=r"valid_los.*accuracy"):
        learn.fit(1, cbs=[PruningCallback(study.ask(), monitor="valid_los")])


def test_search_space_that_cannot_be_sampled():
    def bad(trial):
        trial.suggest_float("lr", 1.0, 0.1)
        return build(trial)
    with pytest.raises(ValueError, match="could not be sampled"):
        tune(bad, n_trials=1, epochs=1)


def test_bad_pruner_and_direction():
    with pytest.raises(ValueError, match="hyperband"):
        tune(build, n_trials=1, pruner="halving")
    with pytest.raises(ValueError, match="minimize"):
        tune(build, n_trials=1, direction="down")
