"""A small CNN on scikit-learn's bundled 8x8 digits, watched by TopologyMonitor (no download, ~1 min on 2 cores).

    python examples/digits_cnn.py --epochs 10
    tensorboard --logdir lightning_topo_demo

The model and data live in ``lightning_topo.demo`` (``lightning-topo demo`` runs the same thing); what you add
to your own training script is the three marked lines.
"""

from __future__ import annotations

import argparse

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger

from lightning_topo import TopologyMonitor  # (1) import
from lightning_topo.demo import DigitsCNN, DigitsDataModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--logdir", default="lightning_topo_demo")
    args = parser.parse_args()

    pl.seed_everything(0)
    monitor = TopologyMonitor(n_samples=500, maxdim=1)  # (2) the callback: input, conv1, conv2, pool, fc1, fc2, output
    trainer = pl.Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        logger=TensorBoardLogger(args.logdir, name="digits_cnn"),
        callbacks=[monitor],  # (3) hand it to the Trainer
        log_every_n_steps=5,
    )
    trainer.fit(DigitsCNN(), datamodule=DigitsDataModule())
    print(f"tensorboard --logdir {args.logdir}")


if __name__ == "__main__":
    main()
