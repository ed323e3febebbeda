"""Run by tests/test_ddp.py: two CPU processes (gloo), ranks with different numbers of validation examples.

Usage: python tests/ddp_script.py OUT_DIR [metrics]
Each rank writes OUT_DIR/rank{r}.json with the topo/* callback metrics and the monitor's history.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lightning_topo import TopologyMonitor
from tests._models import TinyNet, make_data, trainer


class UnevenNet(TinyNet):
    def val_dataloader(self) -> DataLoader:
        # rank 0 holds 40 examples, rank 1 holds 17: ranks reach the epoch end with different sample sizes
        n = 40 if self.global_rank == 0 else 17
        data = make_data(n=n, seed=10 + self.global_rank)
        return DataLoader(data, batch_size=8)


def main() -> None:
    out = Path(sys.argv[1])
    monitor = TopologyMonitor(n_samples=48, score="id_last")
    tr = trainer(
        max_epochs=2,
        strategy="ddp",
        devices=2,
        use_distributed_sampler=False,
        callbacks=[monitor],
    )
    torch.manual_seed(0)
    tr.fit(UnevenNet())
    metrics = {k: float(v) for k, v in tr.callback_metrics.items() if k.startswith("topo/")}
    payload = {
        "metrics": {k: (None if math.isnan(v) else v) for k, v in metrics.items()},
        "history_epochs": [h["epoch"] for h in monitor.history],
        "n_samples": monitor.last_report.n_samples if monitor.last_report else None,
    }
    (out / f"rank{tr.global_rank}.json").write_text(json.dumps(payload, sort_keys=True))


if __name__ == "__main__":
    main()
