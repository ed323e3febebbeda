"""Run by tests/test_ddp.py: two CPU processes (gloo), ranks with different numbers of validation examples.

Usage: python tests/ddp_script.py OUT_DIR [fixed | metrics | skipped [async]]
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


class MetricNet(TinyNet):
    """Logs the torchmetrics metrics from its own validation_step, as a user would."""

    def __init__(self) -> None:
        super().__init__()
        from lightning_topo.metrics import IntrinsicDimension, PersistenceDescriptors

        self.pers = PersistenceDescriptors(maxdim=1, prefix="m/")
        self.idim = IntrinsicDimension("twonn", prefix="m/")

    def val_dataloader(self) -> DataLoader:
        return DataLoader(make_data(n=30, seed=20 + self.global_rank), batch_size=10)

    def validation_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        h = self.hidden(self.encoder(batch[0]))
        self.pers.update(h)
        self.idim.update(h)

    def on_validation_epoch_end(self) -> None:
        values = {**self.pers.compute(), **self.idim.compute()}
        self.log_dict(values)
        self.computed = {k: float(v) for k, v in values.items()}
        self.pers.reset()
        self.idim.reset()


class _Tokens(torch.nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.reshape(h.shape[0], 4, 4)  # (B, T, D) with T = 4


class SkippedOnOneRankNet(TinyNet):
    """A default layer with (B, 4, 4) outputs: ambiguous on rank 1 (batches of 4), clear on rank 0 (batches of 8),
    so only rank 1 leaves it out of the default layers on its own."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = _Tokens()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(self.tokens(self.encoder(x)).reshape(x.shape[0], 16)))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(make_data(n=24, seed=30 + self.global_rank), batch_size=8 if self.global_rank == 0 else 4)


def run_skipped(out: Path, compute: str) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger

    # save_diagrams: rank zero alone writes the files (reading trainer.log_dir there, a collective, hung the run)
    monitor = TopologyMonitor(n_samples=48, maxdim=0, compute=compute, save_diagrams=True)  # type: ignore[arg-type]
    logger = TensorBoardLogger(out, name=f"tb_{compute}")
    tr = trainer(
        max_epochs=1, strategy="ddp", devices=2, use_distributed_sampler=False, callbacks=[monitor], logger=logger
    )
    tr.fit(SkippedOnOneRankNet())
    metrics = sorted(k for k in tr.callback_metrics if k.startswith("topo/"))
    report = monitor.last_report
    payload = {"metrics": metrics, "layers": report.layers if report is not None else None}
    (out / f"skipped_{compute}_rank{tr.global_rank}.json").write_text(json.dumps(payload, sort_keys=True))


def run_metrics(out: Path) -> None:
    tr = trainer(max_epochs=1, strategy="ddp", devices=2, use_distributed_sampler=False, limit_train_batches=0)
    torch.manual_seed(0)
    model = MetricNet()
    tr.validate(model, verbose=False)
    state = {k: v.tolist() for k, v in model.state_dict().items() if not k.startswith(("pers", "idim"))}
    payload = {"computed": model.computed, "state": state}
    (out / f"metrics_rank{tr.global_rank}.json").write_text(json.dumps(payload, sort_keys=True))


def main() -> None:
    out = Path(sys.argv[1])
    if len(sys.argv) > 2 and sys.argv[2] == "metrics":
        run_metrics(out)
        return
    if len(sys.argv) > 2 and sys.argv[2] == "skipped":
        run_skipped(out, sys.argv[3] if len(sys.argv) > 3 else "sync")
        return
    import lightning_topo.monitor.ddp as ddp

    fixed = len(sys.argv) > 2 and sys.argv[2] == "fixed"
    if fixed:  # as across machines: each rank measures a fixed share of the layers
        ddp.work_counter = lambda trainer: None  # type: ignore[assignment]
    drawn: list[int] = []
    measure_drawn = ddp._measure_drawn

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        results, elapsed = measure_drawn(*args, **kwargs)
        drawn.append(len(results))
        return results, elapsed

    ddp._measure_drawn = counted  # type: ignore[assignment]
    monitor = TopologyMonitor(n_samples=48, score="id_last")
    stopper = monitor.early_stopping(patience=1, min_delta=100.0)  # no score improves by 100: stops at epoch 1
    tr = trainer(
        max_epochs=5,
        strategy="ddp",
        devices=2,
        use_distributed_sampler=False,
        callbacks=[monitor, stopper],
    )
    torch.manual_seed(0)
    tr.fit(UnevenNet())
    metrics = {k: float(v) for k, v in tr.callback_metrics.items() if k.startswith("topo/")}
    # the same examples measured in one process: what splitting the layers across ranks must not change
    from lightning_topo.capture import ActivationCapture, resolve_layers
    from lightning_topo.engine import LayerSample, measure

    model = tr.lightning_module
    model.eval()
    parts = []
    for rank in (0, 1):
        capture = ActivationCapture(model, resolve_layers(model, None), monitor.options, quota=24)
        capture.start()
        with torch.no_grad():
            for batch in DataLoader(make_data(n=40 if rank == 0 else 17, seed=10 + rank), batch_size=8):
                capture.begin_batch(batch)
                model(batch[0])
                capture.end_batch()
        parts.append(capture.finish())
    samples = {
        a: LayerSample(torch.cat([p[a].points for p in parts]), torch.cat([p[a].labels for p in parts]))
        for a in parts[0]
    }
    reference = measure(samples, monitor.options.measure, score=monitor.options.score)
    last = monitor.last_report
    payload_reference = {
        "same_values": all(last.metrics[a] == reference.metrics[a] for a in reference.layers),
        "same_score": last.score == reference.score,
    }
    payload = {
        "reference": payload_reference,
        "metrics": {k: (None if math.isnan(v) else v) for k, v in metrics.items()},
        "history_epochs": [h["epoch"] for h in monitor.history],
        "stopped_epoch": stopper.stopped_epoch,
        "n_samples": monitor.last_report.n_samples if monitor.last_report else None,
        "drawn": drawn,  # per measurement, how many layers this rank drew from the shared counter
        "measured_layers": len(last.layers) - len(last.copies),
    }
    (out / f"{'fixed_' if fixed else ''}rank{tr.global_rank}.json").write_text(json.dumps(payload, sort_keys=True))


if __name__ == "__main__":
    main()
