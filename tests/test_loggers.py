"""The loggers people use: scalars and figures reach CSV (scalars), MLflow (a local file store) and Weights & Biases
(offline), at the step of the validation's own metrics. TensorBoard is covered by test_figures.py. Nothing here
touches the network. The MLflow and W&B checks are marked slow (`pytest -m slow`): their start-up takes seconds."""

import csv
import struct
from pathlib import Path

import pytest
from lightning.pytorch.loggers import CSVLogger

from lightning_topo import TopologyMonitor
from tests._models import TinyNet, trainer

KEYS = ["topo/hidden/betti_0", "topo/hidden/id_twonn", "topo/score"]
IMAGES = ["topo/hidden/betti_curves", "topo/hidden/diagram", "topo/depth_profile"]


def _fit(logger, **kwargs) -> TopologyMonitor:
    monitor = TopologyMonitor(layers=["hidden", "head"], n_samples=48, **kwargs)
    trainer(max_epochs=2, logger=logger, callbacks=[monitor]).fit(TinyNet())
    return monitor


def test_csv_gets_every_scalar_at_the_step_of_the_validation_metrics(tmp_path):
    logger = CSVLogger(tmp_path)
    with pytest.warns(match="CSVLogger cannot show images"):
        monitor = _fit(logger)
    with open(Path(logger.log_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    validation = [(r["step"], r["epoch"]) for r in rows if r["val_loss"]]
    for key in KEYS:
        assert [(r["step"], r["epoch"]) for r in rows if r[key]] == validation
        assert [float(r[key]) for r in rows if r[key]] == pytest.approx([h["scalars"][key] for h in monitor.history])


@pytest.mark.slow  # about 5 s, most of it importing MLflow
def test_mlflow_file_store_gets_scalars_and_figures_at_the_same_steps(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from lightning.pytorch.loggers import MLFlowLogger
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this switch
    uri = (tmp_path / "mlruns").as_uri()
    logger = MLFlowLogger(experiment_name="topo", tracking_uri=uri)
    monitor = _fit(logger, save_diagrams=True)
    client = MlflowClient(uri)
    files = sorted(a.path for a in client.list_artifacts(logger.run_id, "topology"))
    reports = [p for p in files if p.endswith(".json")]
    assert reports == ["topology/epoch_0_step_5.json", "topology/epoch_1_step_11.json"]
    assert not (tmp_path / "mlruns" / "topology").exists()  # not in the store every run shares
    steps = [m.step for m in client.get_metric_history(logger.run_id, "val_loss")]
    assert len(steps) == 2
    for key in KEYS:
        history = client.get_metric_history(logger.run_id, key)
        assert [m.step for m in history] == steps
        assert [m.value for m in history] == pytest.approx([h["scalars"][key] for h in monitor.history])
    images = [a.path for a in client.list_artifacts(logger.run_id, "images")]
    for tag in IMAGES:
        logged = [p for p in images if p.startswith(f"images/{tag.replace('/', '~')}+step+") and p.endswith(".png")]
        assert sorted(int(p.split("+step+")[1].split("+")[0]) for p in logged) == steps, tag


def _wandb_records(path: Path) -> list:
    """The records of an offline W&B run file: a LevelDB-style log (a 7-byte header, then 32 KiB blocks of
    chunks, each with a 7-byte header: CRC32, length, type 1 full / 2 first / 3 middle / 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending + chunk)
            records.append(record)
            pending = b""
        elif kind in (2, 3):
            pending += chunk
    return records


@pytest.mark.slow  # about 5 s, most of it starting W&B's local service
def test_wandb_offline_gets_scalars_and_figures_at_the_same_steps(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    import json

    from lightning.pytorch.loggers import WandbLogger

    for name, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true"}.items():
        monkeypatch.setenv(name, value)
    logger = WandbLogger(offline=True, save_dir=str(tmp_path), project="lightning-topo-test")
    monitor = _fit(logger)
    logger.experiment.finish()
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    rows = []
    for record in _wandb_records(run_file):
        if record.WhichOneof("record_type") == "history":
            items = record.history.item
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items})
    steps = [r["trainer/global_step"] for r in rows if "val_loss" in r]
    assert len(steps) == 2
    for key in KEYS:
        logged = [r for r in rows if key in r]
        assert [r["trainer/global_step"] for r in logged] == steps
        assert [r[key] for r in logged] == pytest.approx([h["scalars"][key] for h in monitor.history])
    for tag in IMAGES:
        logged = [r for r in rows if f"{tag}/_type" in r]
        assert [r["trainer/global_step"] for r in logged] == steps, tag
        for r in logged:
            (name,) = r[f"{tag}/filenames"]
            assert (run_file.parent / "files" / name).stat().st_size > 1000  # the PNG itself
