"""The callback with Lightning's loggers, checkpoints and LightningCLI."""

import csv
import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from lightning_topo import TopologyMonitor
from tests._models import TinyNet, trainer


def test_csv_logger_receives_the_topology_columns(tmp_path):
    logger = CSVLogger(tmp_path)
    trainer(max_epochs=2, logger=logger, callbacks=[TopologyMonitor(n_samples=32)]).fit(TinyNet())
    with open(Path(logger.log_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    values = [float(r["topo/hidden/betti_0"]) for r in rows if r.get("topo/hidden/betti_0")]
    assert len(values) == 2
    assert all(v >= 1 for v in values)


def test_tensorboard_logger_receives_the_topology_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, name="tb")
    trainer(max_epochs=2, logger=logger, callbacks=[TopologyMonitor(n_samples=32)]).fit(TinyNet())
    acc = EventAccumulator(logger.log_dir)
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"topo/input/id_twonn", "topo/hidden/entropy_1", "topo/output/total_persistence_0", "topo/time_s"} <= tags
    assert len(acc.Scalars("topo/hidden/id_twonn")) == 2


def test_without_a_logger_metrics_still_reach_callback_metrics():
    tr = trainer(max_epochs=1, logger=False, callbacks=[TopologyMonitor(n_samples=32)])
    tr.fit(TinyNet())
    assert math.isfinite(float(tr.callback_metrics["topo/hidden/id_twonn"]))


def test_a_run_resumed_from_a_checkpoint_continues_cleanly(tmp_path):
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    first = TopologyMonitor(n_samples=32)
    trainer(max_epochs=2, enable_checkpointing=True, callbacks=[first, ckpt]).fit(TinyNet())
    state = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert first.state_key in state["callbacks"]
    assert [h["epoch"] for h in state["callbacks"][first.state_key]["history"]] == [0, 1]

    resumed = TopologyMonitor(n_samples=32)
    tr = trainer(max_epochs=4, enable_checkpointing=True, callbacks=[resumed, ModelCheckpoint(dirpath=tmp_path)])
    tr.fit(TinyNet(), ckpt_path=tmp_path / "last.ckpt")
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2, 3]
    assert resumed.history[0]["scalars"] == first.history[0]["scalars"]


def test_old_checkpoints_without_newer_keys_still_load():
    monitor = TopologyMonitor()
    monitor.load_state_dict({})
    assert monitor.history == []


def test_state_key_depends_on_the_identifying_arguments():
    assert TopologyMonitor(n_samples=10).state_key != TopologyMonitor(n_samples=20).state_key
    assert TopologyMonitor(layers={"a": "b"}).state_key != TopologyMonitor(layers=["a"]).state_key


def test_lightning_cli_configures_the_callback_from_yaml(tmp_path):
    pytest.importorskip("jsonargparse")
    from lightning.pytorch.cli import LightningCLI

    config = tmp_path / "config.yaml"
    config.write_text(
        """
trainer:
  max_epochs: 1
  accelerator: cpu
  logger: false
  default_root_dir: {root}
  enable_checkpointing: false
  enable_progress_bar: false
  num_sanity_val_steps: 0
  callbacks:
    - class_path: lightning_topo.TopologyMonitor
      init_args:
        layers:
          - encoder
          - head
        n_samples: 40
        maxdim: 0
        descriptors: [betti, id_twonn]
""".replace("{root}", str(tmp_path))
    )
    cli = LightningCLI(TinyNet, args=["fit", f"--config={config}"], save_config_kwargs={"overwrite": True})
    monitors = [c for c in cli.trainer.callbacks if isinstance(c, TopologyMonitor)]
    assert len(monitors) == 1
    assert monitors[0].n_samples == 40
    assert monitors[0].maxdim == 0
    assert "topo/encoder/betti_0" in cli.trainer.callback_metrics
    assert "topo/encoder/betti_1" not in cli.trainer.callback_metrics
