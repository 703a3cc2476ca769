"""Progress bars in a notebook run by nbclient (as nbconvert does): widgets while running, plain lines once saved."""
import json
import os
import re
from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent

CODE = """\
import torch
from torch import nn
from learnkit.basics import Learner
from learnkit.data.core import DataLoaders

torch.manual_seed(0)
x = torch.randn(64, 2); y = (x[:, 0] > 0).long()
ds = list(zip(x, y))
learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16), nn.Linear(2, 2), loss_func=nn.CrossEntropyLoss())
learn.fit(2, 0.1)
"""


@pytest.mark.slow
def test_saved_notebook_has_plain_progress_lines_and_no_widget_references(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CODE)]
    # the kernel imports this checkout's learnkit, installed or not
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute(env=env)
    outputs = nb.cells[0].outputs
    saved = json.dumps(outputs)
    assert "widget-view+json" not in saved, "a widget reference was left in the saved output"
    bars = [o["data"]["text/plain"] for o in outputs if o["output_type"] == "display_data"]
    assert len(bars) == 4, bars  # train and valid, two epochs
    for bar, desc in zip(bars, ["epoch 1/2 train", "epoch 1/2 valid", "epoch 2/2 train", "epoch 2/2 valid"]):
        assert re.match(rf"{desc}: 100%\|.*\| 4/4 \[", bar), bar  # the finished bar's line
    table = "".join(o["text"] for o in outputs if o["output_type"] == "stream" and o["name"] == "stdout").splitlines()
    assert table[0].split() == ["epoch", "train_loss", "valid_loss", "time"]
    assert [row.split()[0] for row in table[1:]] == ["0", "1"]
