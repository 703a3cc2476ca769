"""WandbCallback against the real wandb in offline mode: the run's files read back."""
import json
import struct

import pytest
import wandb

from learnkit.callback.wandb import WandbCallback

from test_callbacks_mlflow import tab_learner

from wandb.proto import wandb_internal_pb2 as pb

pytestmark = pytest.mark.usefixtures("one_thread")


def read_records(path):
    """The protobuf records of an offline run's ``run-*.wandb`` file (W&B's LevelDB-style log: 32 KiB blocks)."""
    buf, pos, part, block = path.read_bytes(), 7, b"", 32768
    assert buf[:4] == b":W&B"
    while pos + 7 <= len(buf):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, n, kind = struct.unpack("<IHB", buf[pos:pos + 7])
        if kind == 0 and n == 0:
            break
        part, pos = part + buf[pos + 7:pos + 7 + n], pos + 7 + n
        if kind in (1, 4):  # a full record, or the last piece of one
            rec = pb.Record()
            rec.ParseFromString(part)
            yield rec
            part = b""


def test_offline_run_has_config_metrics_and_predictions(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(project="learnkit-test", dir=str(tmp_path), config={"note": "x"})
    try:
        learn, _ = tab_learner(tmp_path, cbs=WandbCallback(n_preds=5, log_model=True))
        learn.fit(2, lr=0.05)
    finally:
        run.finish()
    run_dir = next((tmp_path / "wandb").glob("offline-run-*"))
    records = list(read_records(next(run_dir.glob("run-*.wandb"))))
    history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    epochs = [h for h in history if "valid_loss" in h]
    rec = learn.recorder
    assert [h["epoch"] for h in epochs] == [1, 2]
    assert [h["valid_loss"] for h in epochs] == pytest.approx([float(v[1]) for v in rec.values])
    assert [h["accuracy"] for h in epochs] == pytest.approx([float(v[2]) for v in rec.values])
    assert len([h for h in history if "train_loss" in h]) == 2 * len(learn.dls.train)  # per batch
    config = {i.key: json.loads(i.value_json) for r in records if r.WhichOneof("record_type") == "config"
              for i in r.config.update}
    assert config["arch"] == "TabularModel" and config["epochs"] == "2" and float(config["lr"]) == 0.05
    table = json.loads(next((run_dir / "files" / "media" / "table").glob("predictions_*.json")).read_text())
    assert table["columns"] == ["item", "target", "prediction"] and len(table["data"]) == 5
    assert {row[1] for row in table["data"]} <= {"yes", "no"}
    arts = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    assert any(a.type == "model" for a in arts)


def test_needs_an_active_run_and_valid_arguments(tmp_path):
    with pytest.raises(ValueError, match="gradients"):
        WandbCallback(log="weights")
    learn, _ = tab_learner(tmp_path, cbs=WandbCallback())
    with pytest.raises(RuntimeError, match="wandb.init"):
        learn.fit(1)
