"""Tiny models and data for driving a real Trainer in tests."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# the keys a layer logs with TopologyMonitor's default descriptors and maxdim=1
DEFAULT_KEYS = [
    "betti_0",
    "betti_1",
    "total_persistence_0",
    "total_persistence_1",
    "entropy_0",
    "entropy_1",
    "id_twonn",
]


def make_data(n: int = 96, dim: int = 6, n_classes: int = 3, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    y = torch.arange(n) % n_classes
    x[:, 0] += 3.0 * y
    return TensorDataset(x, y)


class TinyNet(pl.LightningModule):
    def __init__(self, dim: int = 6, hidden: int = 16, n_classes: int = 3, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU())
        self.hidden = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, n_classes)
        self.loss_fn = nn.CrossEntropyLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(self.encoder(x)))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams["lr"])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(make_data(), batch_size=16, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(make_data(seed=1), batch_size=16)


class RecordingLogger(Logger):
    """Keeps every logged metric: ``{step: {key: value}}``."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: list[dict[str, float]] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> str:
        return "0"

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.append(dict(metrics))

    def logged_keys(self) -> set[str]:
        return {k for m in self.metrics for k in m}

    def values(self, key: str) -> list[float]:
        return [m[key] for m in self.metrics if key in m]


def record_compute(monitor: Any) -> list[dict[str, Any]]:
    """Wrap ``monitor._compute`` so that each measurement's gathered samples and labels are kept (for tests)."""
    calls: list[dict[str, Any]] = []
    original = monitor._compute

    def spy(trainer_: Any, samples: Any, labels: Any, problems: Any) -> Any:
        calls.append({"samples": samples, "labels": labels})
        return original(trainer_, samples, labels, problems)

    monitor._compute = spy
    return calls


def trainer(**kwargs: Any) -> pl.Trainer:
    defaults: dict[str, Any] = {
        "max_epochs": 2,
        "accelerator": "cpu",
        "devices": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "logger": False,
        "num_sanity_val_steps": 0,
    }
    defaults.update(kwargs)
    return pl.Trainer(**defaults)
