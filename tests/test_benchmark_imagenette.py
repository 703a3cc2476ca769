"""benchmarks/imagenette.py: the CPU smoke run prints epochs and writes the JSON result."""
import json
import sys
from pathlib import Path

import pytest
from torch import nn

from learnkit.samples import sample_path
from learnkit.vision.xresnet import xresnet18

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import imagenette


def test_recipes_fill_unset_flags_and_flags_override():
    args = imagenette.parse_args(["--recipe", "anchor", "--workers", "0"])
    assert (args.arch, args.size, args.bs, args.epochs, args.lr, args.wd, args.precision) == \
        ("xresnet50", 128, 64, 5, 8e-3, 1e-2, "fp16")
    assert args.prog_start is None and not args.compile and args.label_smoothing == 0.1 and not args.preload
    fast = imagenette.parse_args(["--recipe", "fast", "--bs", "32", "--compile"])
    assert fast.bs == 32 and fast.compile is True and fast.channels_last and fast.prog_start == 0.75 and fast.preload
    board = imagenette.parse_args(["--recipe", "leaderboard", "--no-sa", "--opt", "adam"])
    assert (board.opt, board.sched, board.act, board.sa, board.epochs) == ("adam", "flat_cos", "mish", False, 20)


def test_limited_files_takes_n_per_class_and_split():
    files = imagenette.limited_files(sample_path("imagenette_tiny"), 3)
    assert len(files) == 2 * 10 * 3 and {f.parent.parent.name for f in files} == {"train", "val"}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", [["--prog-start", "0.5", "--preload"], ["--opt", "ranger", "--sched", "flat_cos", "--act", "mish",
                                                              "--sa"]])
def test_cpu_smoke_run_writes_the_result(tmp_path, one_thread, capsys, recipe):
    out = tmp_path / "res.json"
    res = imagenette.main(["--data", str(sample_path("imagenette_tiny")), "--limit", "4", "--epochs", "2",
                           "--arch", "xresnet18", "--size", "32", "--bs", "8", "--precision", "fp32",
                           "--workers", "0", "--out", str(out), *recipe])
    printed = capsys.readouterr().out
    assert printed.count("epoch ") == 2 and "accuracy" in printed
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(res))
    assert saved["library"] == "learnkit" and len(saved["epochs"]) == 2
    assert saved["wall_time"] >= saved["fit_time"] > 0 and saved["time_to_90"] in (None, saved["epochs"][1]["fit_time"],
                                                                                 saved["epochs"][0]["fit_time"])
    assert all(0 <= e["accuracy"] <= 1 and e["train_loss"] > 0 for e in saved["epochs"])
    sa = "--sa" in recipe
    model = xresnet18(n_out=10, sa=sa, act_cls=nn.Mish if sa else nn.ReLU)
    assert saved["n_params"] == sum(p.numel() for p in model.parameters())  # the flags reached the model
