"""The ``lightning-topo`` command: ``demo`` runs the bundled example, ``report`` renders saved results."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

log = logging.getLogger("lightning_topo")


def _demo(args: argparse.Namespace) -> int:
    from lightning_topo.demo import run

    start = time.perf_counter()
    trainer, monitor = run(args.logdir, max_epochs=args.epochs, enable_progress_bar=not args.quiet)
    elapsed = time.perf_counter() - start
    last = monitor.history[-1]["scalars"] if monitor.history else {}
    shown = {k: v for k, v in last.items() if k.endswith(("betti_0", "betti_1", "id_twonn"))}
    lines = [f"Trained the digits CNN for {trainer.current_epoch} epochs in {elapsed:.0f} s."]
    if shown:
        lines.append(f"Last epoch's topology ({len(last)} scalars logged per epoch), for example:")
        lines.extend(f"  {k:<36} {v:8.3f}" for k, v in sorted(shown.items()))
    log_dir = trainer.logger.log_dir if trainer.logger is not None else args.logdir
    lines.append(f"Logs: {log_dir}")
    lines.append(f"See them:  tensorboard --logdir {args.logdir}")
    lines.append(f"Or render a static report:  lightning-topo report {args.logdir}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _report(args: argparse.Namespace) -> int:
    from lightning_topo.static_report import render_report

    try:
        pages = render_report(args.logdir, args.out)
    except FileNotFoundError as err:
        sys.stderr.write(f"{err}\n")
        return 1
    sys.stdout.write("".join(f"Report: {page}\n" for page in pages))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightning-topo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a small CNN on the bundled digits with TopologyMonitor")
    demo.add_argument("--logdir", default="lightning_topo_demo", help="where TensorBoard logs go")
    demo.add_argument("--epochs", type=int, default=10)
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)
    report = sub.add_parser("report", help="render PNG figures and an HTML page from saved topology files")
    report.add_argument("logdir", help="a log folder holding topology/epoch_*.json (save_diagrams=True)")
    report.add_argument("--out", default=None, help="where to write (default: beside each run's topology/)")
    report.set_defaults(func=_report)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
