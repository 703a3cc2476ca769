"""The demo end to end: real ImageNet weights (offline), fine-tuning, export, reload, predict."""
import re

import pytest

from learnkit.cli import main


@pytest.mark.slow
def test_demo_fine_tunes_above_85_percent_and_round_trips_the_export(tmp_path, capsys):
    rc = main(["demo", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    acc = float(re.search(r"after fine-tuning: accuracy ([\d.]+)%", out).group(1))
    base = float(re.search(r"ImageNet head alone \(choosing among the 10 classes\): ([\d.]+)%", out).group(1))
    assert rc == 0 and acc >= 85.0, out
    assert base >= 85.0  # the offline weights really are ImageNet-trained
    assert "same as before export: True" in out
    assert (tmp_path / "out" / "export.pkl").stat().st_size > 10_000_000
    assert re.search(r"^epoch\s+train_loss\s+valid_loss\s+accuracy\s+time$", out, re.M)  # the per-epoch table
