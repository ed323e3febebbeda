"""The bundled example: a small CNN on scikit-learn's 8x8 digits (no download), watched by ``TopologyMonitor``.

``lightning-topo demo`` runs :func:`run`; ``examples/digits_cnn.py`` shows the same in a script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo.datasets import load_digits

__all__ = ["DigitsCNN", "DigitsDataModule", "run"]


class DigitsDataModule(pl.LightningDataModule):
    """scikit-learn's digits, split once with a fixed seed into train and validation sets."""

    def __init__(self, batch_size: int = 64, val_size: int = 500, seed: int = 0) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.val_size = val_size
        self.seed = seed

    def setup(self, stage: str | None = None) -> None:
        images, labels = load_digits()
        perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.seed))
        val, train = perm[: self.val_size], perm[self.val_size :]
        self.train_set = TensorDataset(images[train], labels[train])
        self.val_set = TensorDataset(images[val], labels[val])

    def train_dataloader(self) -> DataLoader:
        gen = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, generator=gen)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=256)


class DigitsCNN(pl.LightningModule):
    """Two convolutions, a pooling layer and two dense layers: about 40k parameters."""

    def __init__(self, lr: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.conv1 = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU())
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(self.pool(self.conv2(self.conv1(x)))))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val/loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val/acc", (logits.argmax(dim=1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams["lr"])


def run(
    logdir: str | Path = "lightning_topo_demo",
    *,
    max_epochs: int = 10,
    seed: int = 0,
    enable_progress_bar: bool = True,
    **monitor_kwargs: Any,
) -> tuple[pl.Trainer, Any]:
    """Train :class:`DigitsCNN` with a ``TensorBoardLogger`` and a ``TopologyMonitor``.

    Returns:
        The trainer and the monitor.
    """
    from lightning.pytorch.loggers import TensorBoardLogger

    from lightning_topo.monitor import TopologyMonitor

    pl.seed_everything(seed, verbose=False)
    monitor_kwargs.setdefault("n_samples", 500)
    monitor_kwargs.setdefault("save_diagrams", True)  # so that `lightning-topo report` works right after
    monitor = TopologyMonitor(**monitor_kwargs)
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        logger=TensorBoardLogger(save_dir=str(logdir), name="digits_cnn"),
        callbacks=[monitor],
        accelerator="cpu",
        enable_progress_bar=enable_progress_bar,
        enable_model_summary=False,
        log_every_n_steps=5,
        deterministic=True,
    )
    trainer.fit(DigitsCNN(), datamodule=DigitsDataModule(seed=seed))
    return trainer, monitor
