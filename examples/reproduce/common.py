"""What the reproduction scripts share: arguments, the digits split, small CNNs, training, statistics, output.

Nothing here measures topology: every measurement in the scripts goes through the public API of
``lightning_topo`` (``TopologyMonitor``, ``analyze``, ``rank_models``, ``adversarial_geometry``, ``functional``).
This module only trains the networks the papers' analyses are run on and writes the results.

Every script writes ``{name}.json`` (its numbers, the tables and sentences that ``docs/REPRODUCTIONS.md`` quotes,
and the verdict of its pre-declared criteria) and its figures into ``--out`` (default ``docs/reproductions``;
with ``--quick`` a fresh temporary folder, never ``docs/``). ``render.py`` writes the quoted numbers into the
document.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo.datasets import load_digits

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "reproductions"


# --- arguments and output -------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One script's run: where it writes, whether it is the quick smoke test, and its clock."""

    name: str
    out: Path
    quick: bool
    started: float
    threads: int  # torch's thread count before the run, restored by finish()

    def seconds(self) -> float:
        return time.perf_counter() - self.started


def start(name: str, doc: str | None, argv: Sequence[str] | None) -> Run:
    """Parse ``--quick``/``--out``, fix the threads (one torch thread: the networks are tiny), seed nothing global.

    One torch thread, because the networks are tiny: on the 2-core machine these were written on, 20 epochs of
    a small digits CNN took 1.2-3.5 s with one thread and 9-90 s with two (thread contention on a shared machine).
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few-second smoke test (tiny models, few points)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default docs/reproductions)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    out = args.out if args.out is not None else (Path(tempfile.mkdtemp(prefix=name)) if args.quick else DOCS)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    return Run(name, out, bool(args.quick), time.perf_counter(), threads)


def _clean(value: Any) -> Any:
    """JSON-ready: numpy scalars and arrays to Python, floats to 6 significant digits, NaN to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.integer | bool | np.bool_):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float | np.floating):
        v = float(value)
        return None if not math.isfinite(v) else float(f"{v:.6g}")
    return value


def finish(run: Run, payload: dict[str, Any], figures: dict[str, Any]) -> dict[str, Any]:
    """Save the figures and ``{name}.json`` (with the run's time and environment); return the payload."""
    import matplotlib

    matplotlib.use("Agg")
    for stem, fig in figures.items():
        fig.savefig(run.out / f"{stem}.png", dpi=110)
        import matplotlib.pyplot as plt

        plt.close(fig)
    payload = {
        "finding": run.name,
        "quick": run.quick,
        "seconds": round(run.seconds(), 1),
        "command": f"python examples/reproduce/{run.name}.py" + (" --quick" if run.quick else ""),
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "machine": platform.machine(),
        },
        "figures": sorted(f"{stem}.png" for stem in figures),
        **payload,
    }
    payload["quote"] = {**payload.get("quote", {}), "seconds": f"{payload['seconds'] / 60:.1f} min"}
    cleaned = _clean(payload)
    (run.out / f"{run.name}.json").write_text(json.dumps(cleaned, indent=1, sort_keys=False) + "\n")
    torch.set_num_threads(run.threads)
    return cleaned


def verdict(criteria: Sequence[dict[str, Any]], agree: Callable[[dict[str, bool]], str]) -> str:
    """``agree(passed)`` maps ``{criterion name: passed}`` to "agree", "partly" or "disagree"."""
    result = agree({c["name"]: bool(c["passed"]) for c in criteria})
    if result not in ("agree", "partly", "disagree"):
        raise ValueError(f"Expected a verdict 'agree', 'partly' or 'disagree' but got {result!r}.")
    return result


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """A table for the document: column names and rows of already formatted cells."""
    return {"columns": list(columns), "rows": [[str(c) for c in row] for row in rows]}


def fmt(x: float | None, digits: int = 3) -> str:
    """A number as the document prints it (``n/a`` for missing)."""
    if x is None or not math.isfinite(float(x)):
        return "n/a"
    return f"{float(x):.{digits}g}"


def mean_sd(values: Sequence[float] | np.ndarray, digits: int = 3) -> str:
    """``mean ± sd`` over seeds (just the value for one seed)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 1:
        return fmt(float(v[0]), digits)
    return f"{fmt(float(v.mean()), digits)} ± {fmt(float(v.std(ddof=1)), 2)}"


# --- data -----------------------------------------------------------------------------------------------------------
@dataclass
class Split:
    """Images ``(n, 1, 8, 8)`` in [0, 1] and labels, split once into train and test."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def digits_split(test_size: int = 500, seed: int = 0) -> Split:
    """scikit-learn's digits (shipped with scikit-learn), a fixed random split: 1,297 train / 500 test."""
    images, labels = load_digits()
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    test, train = perm[:test_size], perm[test_size:]
    return Split(images[train], labels[train], images[test], labels[test])


def stratified(x: torch.Tensor, y: torch.Tensor, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``per_class`` examples of each class, class by class (a fixed, balanced sample)."""
    keep = torch.cat([torch.nonzero(y == c).reshape(-1)[:per_class] for c in torch.unique(y).tolist()])
    return x[keep], y[keep]


def loader(x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> DataLoader:
    """Batches ``(x, y)`` in order (what ``analyze`` reads)."""
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


# --- models and training --------------------------------------------------------------------------------------------
def digits_cnn(
    widths: Sequence[int] = (16, 16, 32, 32, 32),
    pool_after: Sequence[int] = (2, 4),
    dense: Sequence[int] = (128, 64),
    n_classes: int = 10,
    activation: Callable[[], nn.Module] = nn.ReLU,
    generator_seed: int = 0,
) -> nn.Sequential:
    """A plain CNN for 8x8 images: one ``nn.Sequential`` block per layer, so the monitored names are ``"0"``, ...

    Block ``i`` is ``conv3x3(widths[i]) -> activation`` (then a 2x2 max-pool when ``i`` is in ``pool_after``, by
    0-based index), then flatten, dense blocks ``Linear -> activation`` and a final ``Linear`` to the logits. The
    weights are drawn from ``torch.manual_seed(generator_seed)`` (PyTorch's default initialisation).
    """
    torch.manual_seed(generator_seed)
    blocks: list[nn.Module] = []
    channels, side = 1, 8
    for i, width in enumerate(widths):
        layer: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), activation()]
        if i in pool_after:
            layer.append(nn.MaxPool2d(2))
            side //= 2
        blocks.append(nn.Sequential(*layer))
        channels = width
    features = channels * side * side
    for i, width in enumerate(dense):
        head: list[nn.Module] = [nn.Flatten()] if i == 0 else []
        blocks.append(nn.Sequential(*head, nn.Linear(features, width), activation()))
        features = width
    if not dense:
        blocks.append(nn.Flatten())
    blocks.append(nn.Linear(features, n_classes))
    return nn.Sequential(*blocks)


M = TypeVar("M", bound=nn.Module)


def train(
    model: M,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> M:
    """Adam on cross-entropy, shuffled mini-batches from ``torch.Generator().manual_seed(seed)``; eval mode after."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), batch_size):
            idx = order[i : i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy (the model in eval mode)."""
    model.eval()
    return float((model(x).argmax(dim=1) == y).double().mean())


# --- Magai & Ayzenberg's preprocessing, as modules the public API can measure -------------------------------------
class MinMaxProbe(nn.Module):
    """A block's output reduced to one vector per example (global average pooling of conv maps, as Magai &
    Ayzenberg; flattening otherwise, and always for the input image, as the package's ``reduce="auto"``) and
    min-max scaled per feature with fixed bounds (scikit-learn's ``MinMaxScaler`` fitted on the measured images, as
    their code does)."""

    low: torch.Tensor
    span: torch.Tensor

    def __init__(self, low: torch.Tensor, high: torch.Tensor, flatten: bool = False) -> None:
        super().__init__()
        self.flatten = flatten
        self.register_buffer("low", low)
        self.register_buffer("span", torch.where(high > low, high - low, torch.ones_like(high)))

    @staticmethod
    def reduce(h: torch.Tensor, flatten: bool = False) -> torch.Tensor:
        return h.mean(dim=(2, 3)) if h.ndim == 4 and not flatten else h.flatten(1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return (self.reduce(h, self.flatten) - self.low) / self.span


class MagaiProbes(nn.Module):
    """``net`` (an ``nn.Sequential``) with a :class:`MinMaxProbe` beside the input and beside every block.

    The probes sit on the side: the network computes exactly what it did. Measuring the probes (layer names
    ``"probes.input"``, ``"probes.0"``, ...) with ``normalize=None`` gives Magai & Ayzenberg's distances: Euclidean
    on min-max scaled features. The bounds are fitted on ``x_fit``, the images that will be measured.
    """

    def __init__(self, net: nn.Sequential, x_fit: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        with torch.no_grad():
            outputs = [x_fit]
            for block in net:
                outputs.append(block(outputs[-1]))
        names = ["input", *[str(i) for i in range(len(net))]]
        self.probes = nn.ModuleDict()
        for name, out in zip(names, outputs, strict=True):
            flatten = name == "input"
            r = MinMaxProbe.reduce(out, flatten)
            self.probes[name] = MinMaxProbe(r.min(dim=0).values, r.max(dim=0).values, flatten)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.probes["input"](x)
        h = x
        for i, block in enumerate(self.net):
            h = block(h)
            self.probes[str(i)](h)
        return h


# --- the families of hyperparameters (findings 2 and 6) -------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    """One member of the model family: a CNN's widths, its dense width, the learning rate and the epochs."""

    widths: tuple[int, ...]
    dense: int
    lr: float
    epochs: int

    @property
    def name(self) -> str:
        return f"w{'-'.join(map(str, self.widths))}_d{self.dense}_lr{self.lr:g}_e{self.epochs}"


def family(quick: bool, kind: str = "trained") -> list[Config]:
    """A family of 24 CNNs on the same training set: 2 depths x 3 widths x 2 learning rates x 2 training lengths.

    ``"trained"``: learning rates 1e-3, 3e-3 and 15 or 40 epochs; every member learns (test accuracy 0.59-0.99,
    most 0.85-0.99), as Magai & Ayzenberg's early-stopped ResNets (0.80-0.945). ``"first"``: the family declared
    first, learning rates 3e-4, 3e-3 and 2 or 12 epochs, in which half of the members stay near chance (0.09-0.34):
    reported beside it. ``"first"`` was declared before any run; ``"trained"`` after ``"first"`` turned out to hold
    near-chance members, from the accuracies of its members alone (none of their descriptors had been computed).
    Quick mode: 3 tiny members.
    """
    if quick:
        return [Config((4,), 16, 3e-3, 1), Config((4,), 16, 3e-3, 3), Config((8,), 32, 3e-3, 6)]
    if kind not in ("trained", "first"):
        raise ValueError(f"Expected kind 'trained' or 'first' but got {kind!r}.")
    lrs, lengths = ((1e-3, 3e-3), (15, 40)) if kind == "trained" else ((3e-4, 3e-3), (2, 12))
    return [
        Config(tuple([width] * depth), 4 * width, lr, epochs)
        for depth in (1, 3)
        for width in (4, 8, 16)
        for lr in lrs
        for epochs in lengths
    ]


def build(config: Config, seed: int = 0) -> nn.Sequential:
    """The CNN of a family member: pooling after the first and (with 3 blocks) the last conv block."""
    pools = (0,) if len(config.widths) == 1 else (0, len(config.widths) - 1)
    return digits_cnn(config.widths, pool_after=pools, dense=(config.dense,), generator_seed=seed)


# --- statistics -------------------------------------------------------------------------------------------------------
def correlation(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Pearson and Spearman correlations with their two-sided p-values and the number of pairs."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        nan = math.nan
        return {"pearson": nan, "pearson_p": nan, "spearman": nan, "spearman_p": nan, "n": int(x.size)}
    pr = stats.pearsonr(x, y)
    sr = stats.spearmanr(x, y)
    return {
        "pearson": float(pr.statistic),
        "pearson_p": float(pr.pvalue),
        "spearman": float(sr.statistic),
        "spearman_p": float(sr.pvalue),
        "n": int(x.size),
    }


def describe_correlation(c: dict[str, Any]) -> str:
    """``Pearson r = -0.71 (p = 0.00012), Spearman ρ = -0.65 (p = 0.000612), n = 24``: the p-value of Spearman's
    rho, which the criteria read, with three significant digits (0.0501 is not 0.05)."""
    return (
        f"Pearson r = {fmt(c['pearson'], 2)} (p = {fmt(c['pearson_p'], 2)}), "
        f"Spearman ρ = {fmt(c['spearman'], 2)} (p = {fmt(c['spearman_p'], 3)}), n = {c['n']}"
    )


def relative_depth(n_layers: int) -> np.ndarray:
    """``(i + 1) / L`` for the ``L`` layers after the input (Magai & Ayzenberg's x-axis)."""
    return np.arange(1, n_layers + 1, dtype=np.float64) / n_layers


def print_summary(payload: dict[str, Any]) -> None:
    """What a script prints at the end: its verdict, its criteria, where it wrote."""
    print(f"{payload['finding']}: {payload['verdict']} ({payload['seconds']} s)")
    for c in payload.get("criteria", []):
        print(f"  [{'x' if c['passed'] else ' '}] {c['name']}: {c['detail']}")
    sys.stdout.flush()
