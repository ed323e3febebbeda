"""The ``lightning-topo`` command: ``demo`` runs the bundled example, ``report`` renders a run's results."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

DESCRIPTION = (
    "Watch the topology of a network's layer representations while it trains (PyTorch Lightning). "
    "`lightning-topo COMMAND --help` describes a command."
)


def _demo(args: argparse.Namespace) -> int:
    from lightning_topo.demo import run

    start = time.perf_counter()
    trainer, monitor = run(args.logdir, max_epochs=args.epochs, enable_progress_bar=not args.quiet)
    elapsed = time.perf_counter() - start
    last = monitor.history[-1]["scalars"] if monitor.history else {}
    shown = {k: v for k, v in last.items() if k.endswith(("betti_0", "betti_1", "id_twonn"))}
    epochs = trainer.current_epoch
    lines = [f"Trained the digits CNN for {epochs} epoch{'s' if epochs != 1 else ''} in {elapsed:.0f} s."]
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
    except (OSError, ValueError) as err:
        sys.stderr.write(f"lightning-topo report: {err}\n")
        return 1
    sys.stdout.write("".join(f"Report: {page}\n" for page in pages))
    return 0


def _positive_int(text: str) -> int:
    """An argparse ``type``: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"Expected a whole number >= 1 but got {text!r}.")
    return value


class _Defaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless it is ``None``/``False`` (its help then says what happens)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parser() -> argparse.ArgumentParser:
    """The command's argument parser (plain-text help, defaults shown)."""
    formatter = _Defaults
    from lightning_topo import __version__

    main = argparse.ArgumentParser(prog="lightning-topo", description=DESCRIPTION)
    main.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = main.add_subparsers(dest="command", required=True, metavar="{demo,report}")
    demo = sub.add_parser(
        "demo",
        help="train a small CNN on bundled digits with TopologyMonitor",
        description="Train a small CNN on scikit-learn's 8x8 digits (no download) with a TensorBoardLogger and "
        "TopologyMonitor(save_diagrams=True), then say where the logs are.",
        formatter_class=formatter,
    )
    demo.add_argument("--logdir", default="lightning_topo_demo", help="where the TensorBoard logs go")
    demo.add_argument("--epochs", type=_positive_int, default=10, help="training epochs (>= 1)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)
    report = sub.add_parser(
        "report",
        help="render PNG figures and an HTML page from a run's logs",
        description="Render one static report per run found at or below LOGDIR: the run's validation metrics "
        "beside topo/score, every descriptor over epochs, the depth profile and, when TopologyMonitor saved them "
        "(save_diagrams=True), each layer's Betti curves, diagram and their evolution. A run is a logger's "
        "folder: TensorBoard event files, a CSVLogger metrics.csv, or topology/epoch_*.json.",
        formatter_class=formatter,
    )
    report.add_argument("logdir", help="a run's folder, or a folder above several runs")
    report.add_argument(
        "--out", default=None, help="where to write the report (default: a report folder inside each run)"
    )
    report.set_defaults(func=_report)
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
