"""Finding 3 (Magai & Ayzenberg, section 2.4): the geometry of adversarial examples.

Claim: the more successful a targeted FGSM attack (the lower the macro-F1 against the true labels), the smaller the
H0 and H1 lifespan sums of the adversarial set (all classes pooled) at every layer.

Here: the CNN of finding 1 trained on scikit-learn's digits (3 seeds), attacked towards class 8 (as Magai &
Ayzenberg) on the 500 held-out images with ``adversarial_geometry`` at 8 strengths; lifespan sums per layer with the
package defaults (the reports of ``adversarial_geometry``) and with Magai's preprocessing (each adversarial set's
features min-max scaled per layer, raw distances: ``analyze`` on ``common.MagaiProbes``).

    python examples/reproduce/magai_adversarial.py            # about 1 minute on 2 cores
    python examples/reproduce/magai_adversarial.py --quick    # seconds, into a temporary folder
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import common
import numpy as np
import torch
from torch import nn

from lightning_topo import TopologyWarning, adversarial_geometry, analyze
from lightning_topo.adversarial import fgsm
from lightning_topo.plotting import plot_adversarial

NAMES = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2", "logits"]
LAYERS = {str(i): name for i, name in enumerate(NAMES)}
EPSILONS = [0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3]  # fixed before the first run; images are in [0, 1]
TARGET = 8
PROTOCOLS = {"package": "package defaults", "magai": "Magai's preprocessing"}


def magai_sums(net: nn.Sequential, x: torch.Tensor, y: torch.Tensor, eps: float, n: int) -> dict[str, list[float]]:
    """Lifespan sums of one adversarial set with Magai's preprocessing: FGSM towards ``TARGET`` (the same step as
    ``adversarial_geometry``: one gradient sign per example, clamped to [0, 1]), then every layer's features min-max
    scaled on this set, raw Euclidean distances."""
    x_adv = fgsm(net, x, y, eps, target=TARGET, clamp=(0.0, 1.0)) if eps > 0 else x
    probed = common.MagaiProbes(net, x_adv)
    report = analyze(
        probed,
        common.loader(x_adv, y),
        layers={f"probes.{i}": name for i, name in enumerate(NAMES)},
        n_samples=n,
        maxdim=1,
        descriptors=["total_persistence"],
        normalize=None,
    )
    return {f"h{q}": report.profile(f"total_persistence_{q}").tolist() for q in (0, 1)}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    run = common.start("magai_adversarial", __doc__, argv)
    warnings.simplefilter("ignore", TopologyWarning)
    split = common.digits_split()
    seeds = [0] if run.quick else [0, 1, 2]
    epochs = 2 if run.quick else 60  # 60 epochs: training accuracy 1.0 (finding 1)
    n = 100 if run.quick else 500
    epsilons = [0.0, 0.1, 0.3] if run.quick else EPSILONS
    x, y = split.x_test[:n], split.y_test[:n]

    sums: dict[str, dict[str, list[list[list[float]]]]] = {p: {"h0": [], "h1": []} for p in PROTOCOLS}
    success: dict[str, list[list[float]]] = {"macro_f1": [], "accuracy": [], "target_rate": []}
    first_results = None
    for seed in seeds:
        net = common.train(
            common.digits_cnn(generator_seed=seed), split.x_train, split.y_train, epochs=epochs, seed=seed
        )
        results = adversarial_geometry(
            net,
            common.loader(x, y),
            epsilons,
            layers=LAYERS,
            target=TARGET,
            n_samples=n,
            clamp=(0.0, 1.0),
            maxdim=1,
            descriptors=["total_persistence"],
        )
        first_results = first_results or results
        success["macro_f1"].append([r.macro_f1 for r in results])
        success["accuracy"].append([r.accuracy for r in results])
        success["target_rate"].append([r.target_rate or 0.0 for r in results])
        for q in (0, 1):
            sums["package"][f"h{q}"].append([r.report.profile(f"total_persistence_{q}").tolist() for r in results])
        magai = [magai_sums(net, x, y, eps, n) for eps in epsilons]
        for q in (0, 1):
            sums["magai"][f"h{q}"].append([m[f"h{q}"] for m in magai])

    # arrays (seed, epsilon, layer); correlation across epsilons, per seed and layer, then the mean over seeds
    f1 = np.array(success["macro_f1"])
    arrays = {p: {k: np.array(v) for k, v in d.items()} for p, d in sums.items()}
    rho: dict[str, dict[str, list[float]]] = {}
    for p, d in arrays.items():
        rho[p] = {}
        for k, a in d.items():
            per_layer = []
            for j in range(len(NAMES)):
                values = [common.correlation(f1[s], a[s, :, j])["spearman"] for s in range(len(seeds))]
                per_layer.append(float(np.nanmean(values)))
            rho[p][k] = per_layer

    criteria = []
    for p, name in PROTOCOLS.items():
        for k in ("h0", "h1"):
            share = float(np.mean(np.array(rho[p][k]) >= 0.5))
            criteria.append(
                {
                    "name": f"{name}: {k.upper()} smaller for more successful attacks at >= 3/4 of the layers",
                    "passed": share >= 0.75,
                    "detail": f"Spearman(macro-F1, lifespan sum) >= 0.5 at {share:.0%} of the layers",
                }
            )

    def decide(passed: dict[str, bool]) -> str:
        if all(passed.values()):
            return "agree"
        return "partly" if any(passed.values()) else "disagree"

    result = common.verdict(criteria, decide)
    attack = common.table(
        ["ε", "macro-F1", "accuracy", "predicted as 8"],
        [
            [
                common.fmt(eps, 3),
                common.mean_sd(f1[:, i], 2),
                common.mean_sd(np.array(success["accuracy"])[:, i], 2),
                common.mean_sd(np.array(success["target_rate"])[:, i], 2),
            ]
            for i, eps in enumerate(epsilons)
        ],
    )
    correlation_table = common.table(
        ["layer", *[f"ρ {k.upper()}, {PROTOCOLS[p]}" for p in PROTOCOLS for k in ("h0", "h1")]],
        [
            [name, *[common.fmt(rho[p][k][j], 2) for p in PROTOCOLS for k in ("h0", "h1")]]
            for j, name in enumerate(NAMES)
        ],
    )
    payload = {
        "claim": "The more successful a targeted FGSM attack, the smaller the lifespan sums of the adversarial set "
        "across layers.",
        "setup": {
            "data": f"scikit-learn digits, 1297 train / 500 test; {n} test images attacked",
            "model": f"CNN of finding 1, {epochs} epochs, seeds {seeds}",
            "attack": f"targeted FGSM towards class {TARGET}, epsilons {epsilons}, clamp [0, 1] "
            "(adversarial_geometry; lightning_topo.adversarial.fgsm for Magai's preprocessing)",
            "measurement": "H0 and H1 total persistence of the pooled adversarial set per layer: package defaults "
            "(conv maps averaged, distances / 0.9 quantile) and Magai's preprocessing (min-max features, raw "
            "distances); Spearman across epsilons per seed and layer, mean over seeds",
        },
        "epsilons": epsilons,
        "success": success,
        "lifespan_sums": {p: {k: a.tolist() for k, a in d.items()} for p, d in arrays.items()},
        "spearman_f1_vs_sum": rho,
        "layers": NAMES,
        "criteria": criteria,
        "verdict": result,
        "tables": {
            "attack": attack,
            "correlations": correlation_table,
            "criteria": common.table(
                ["criterion", "measured", "passed"],
                [[c["name"], c["detail"], "yes" if c["passed"] else "no"] for c in criteria],
            ),
        },
        "quote": {
            "verdict": result,
            "f1_range": f"{common.fmt(f1.mean(axis=0).max(), 2)} to {common.fmt(f1.mean(axis=0).min(), 2)}",
            "target_rate_max": common.fmt(float(np.array(success["target_rate"]).mean(axis=0).max()), 2),
            **{
                f"{p}_{k}_median_rho": common.fmt(float(np.median(rho[p][k])), 2)
                for p in PROTOCOLS
                for k in ("h0", "h1")
            },
        },
    }
    assert first_results is not None
    figures = {
        "magai_adversarial": plot_adversarial(
            first_results, "total_persistence_0", title="H0 lifespan sum under targeted FGSM (seed 0, package defaults)"
        ),
        "magai_adversarial_minmax": figure(arrays["magai"], f1, epsilons),
    }
    out = common.finish(run, payload, figures)
    common.print_summary(out)
    return out


def figure(arrays: dict[str, np.ndarray], f1: np.ndarray, epsilons: Sequence[float]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.2))
    x = np.arange(len(NAMES))
    for i, k in enumerate(("h0", "h1")):
        ax = fig.add_subplot(1, 2, i + 1)
        mean = arrays[k].mean(axis=0)  # (epsilon, layer)
        for e, eps in enumerate(epsilons):
            ax.plot(x, mean[e], "o-", ms=2, color=f"C{e % 10}", label=f"ε {eps:g} (F1 {f1[:, e].mean():.2f})")
        ax.set_xticks(x, NAMES, rotation=45, fontsize=7, ha="right")
        ax.set_ylabel(f"{k.upper()} lifespan sum", fontsize=8)
        ax.set_title(f"{k.upper()}, Magai's preprocessing (mean over seeds)", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        if i == 0:
            ax.legend(fontsize=6)
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.22, top=0.9, wspace=0.25)
    return fig


if __name__ == "__main__":
    main()
