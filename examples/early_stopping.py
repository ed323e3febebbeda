"""Stop training on a topological score: the digits CNN with EarlyStopping on ``topo/score``.

    python examples/early_stopping.py --score id_last --patience 3

``topo/score`` is the TwoNN intrinsic dimension of the last hidden layer by default (Ansuini et al.: lower
goes with better generalization *across* networks). Here it is used as a stagnation signal: once the
representation stops compressing for ``patience`` measurements, training stops. Read the README section
"What the scores do and do not predict" before relying on it.
"""

from __future__ import annotations

import argparse

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger

from lightning_topo import TopologyMonitor
from lightning_topo.demo import DigitsCNN, DigitsDataModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--score", default="id_last", choices=["id_last", "phdim_last", "lifespan_sum", "decay"])
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--logdir", default="lightning_topo_early_stopping")
    args = parser.parse_args()

    pl.seed_everything(0)
    monitor = TopologyMonitor(n_samples=500, score=args.score)
    stopper = monitor.early_stopping(patience=args.patience, min_delta=0.01)
    best = monitor.model_checkpoint(save_top_k=1)
    trainer = pl.Trainer(
        max_epochs=args.max_epochs,
        accelerator="cpu",
        logger=TensorBoardLogger(args.logdir, name=args.score),
        callbacks=[monitor, stopper, best],
        log_every_n_steps=5,
    )
    trainer.fit(DigitsCNN(), datamodule=DigitsDataModule())
    print(
        f"stopped after epoch {trainer.current_epoch - 1} of {args.max_epochs} "
        f"(best {args.score} = {float(best.best_model_score):.3f} at {best.best_model_path})"
    )


if __name__ == "__main__":
    main()
