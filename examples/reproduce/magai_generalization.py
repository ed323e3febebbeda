"""Finding 2 (Magai & Ayzenberg, section 2.1): the last layer's class-wise lifespan sum predicts generalization.

Claim: across networks trained with different hyperparameters, the per-class lifespan sum of the last layer (the
logits), measured on training images, correlates negatively with test accuracy.

Here: 24 CNNs on scikit-learn's digits (2 depths x 3 widths x 2 learning rates x 2 training lengths, one training
set), each measured with ``analyze(per_class=True)`` at its logits on 1,000 training images (100 per class), and
ranked with ``rank_models(score="lifespan_sum")`` (the package's named score: the same descriptor at the last
*hidden* layer).

    python examples/reproduce/magai_generalization.py            # about 1 minute on 2 cores
    python examples/reproduce/magai_generalization.py --quick    # seconds, into a temporary folder
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import common
import numpy as np

from lightning_topo import TopologyWarning, analyze, rank_models


def figure(
    acc: np.ndarray, values: dict[str, np.ndarray], depth: np.ndarray, corr: dict[str, dict[str, float]], title: str
) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    panels = {
        "h0_minmax": "H0, logits, Magai's preprocessing",
        "h1_minmax": "H1, logits, Magai's preprocessing",
        "h0_logits": "H0, logits, package defaults",
        "h0_hidden": 'rank_models(score="lifespan_sum")',
    }
    fig = Figure(figsize=(12, 3.3))
    for i, (key, panel) in enumerate(panels.items()):
        ax = fig.add_subplot(1, 4, i + 1)
        for d, marker in ((1, "o"), (3, "s")):
            rows = depth == d
            ax.scatter(values[key][rows], 1 - acc[rows], marker=marker, s=16, label=f"{d} conv block(s)")
        c = corr[key]
        ax.set_title(f"{panel}\nSpearman vs accuracy {common.fmt(c['spearman'], 2)}", fontsize=8)
        ax.set_xlabel("lifespan sum (class mean)", fontsize=8)
        ax.set_ylabel("test error", fontsize=8)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.15, top=0.78, wspace=0.3)
    return fig


KEYS = ["h0_minmax", "h1_minmax", "h0_minmax_class1", "h1_minmax_class1", "h0_logits", "h1_logits", "h0_hidden"]
DESCRIPTOR_NAMES = {
    "h0_minmax": "H0, logits, class mean; Magai's preprocessing (min-max features, raw distances)",
    "h1_minmax": "H1, logits, class mean; Magai's preprocessing",
    "h0_minmax_class1": "H0, logits, class 1 only; Magai's preprocessing (their code's choice)",
    "h1_minmax_class1": "H1, logits, class 1 only; Magai's preprocessing",
    "h0_logits": "H0, logits, class mean; package defaults (distances / 0.9 quantile)",
    "h1_logits": "H1, logits, class mean; package defaults",
    "h0_hidden": 'H0, last hidden layer, class mean: rank_models(score="lifespan_sum")',
}
PROTOCOLS = {"minmax": "Magai's preprocessing", "logits": "package defaults"}


def measure_family(configs: list[common.Config], split: common.Split, data: Any, n: int) -> list[dict[str, Any]]:
    """Train every member, measure its logits per class with ``analyze``, rank the family with ``rank_models``."""
    models, rows = {}, []
    for i, config in enumerate(configs):
        model = common.train(
            common.build(config, seed=i), split.x_train, split.y_train, epochs=config.epochs, lr=config.lr, seed=i
        )
        models[config.name] = model
        logits = str(len(model) - 1)
        report = analyze(
            model,
            data,
            layers={logits: "logits"},
            n_samples=n,
            maxdim=1,
            per_class=True,
            descriptors=["total_persistence"],
            ph_samples=min(n, 200),  # the whole-sample H1 is not used: keep it cheap (per-class clouds are whole)
        )
        per = report.class_metrics["logits"]
        # Magai & Ayzenberg's preprocessing: the logits min-max scaled per feature on these images, raw distances
        probed = common.MagaiProbes(model, data.dataset.tensors[0])
        magai = analyze(
            probed,
            data,
            layers={f"probes.{logits}": "logits"},
            n_samples=n,
            maxdim=1,
            per_class=True,
            descriptors=["total_persistence"],
            ph_samples=min(n, 200),
            normalize=None,
        ).class_metrics["logits"]
        rows.append(
            {
                "name": config.name,
                "depth": len(config.widths),
                "width": config.widths[0],
                "lr": config.lr,
                "epochs": config.epochs,
                "test_accuracy": common.accuracy(model, split.x_test, split.y_test),
                "train_accuracy": common.accuracy(model, split.x_train, split.y_train),
                "h0_logits": float(np.mean([m["total_persistence_0"] for m in per.values()])),
                "h1_logits": float(np.mean([m["total_persistence_1"] for m in per.values()])),
                "h0_minmax": float(np.mean([m["total_persistence_0"] for m in magai.values()])),
                "h1_minmax": float(np.mean([m["total_persistence_1"] for m in magai.values()])),
                "h0_minmax_class1": float(magai[1]["total_persistence_0"]),  # Magai's code keeps class 1 only
                "h1_minmax_class1": float(magai[1]["total_persistence_1"]),
            }
        )
    ranking = dict(rank_models(models, data, score="lifespan_sum", n_samples=n, maxdim=0))
    for row in rows:
        row["h0_hidden"] = ranking[str(row["name"])]
    return rows


def correlations(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    acc = [r["test_accuracy"] for r in rows]
    return {k: common.correlation([r[k] for r in rows], acc) for k in KEYS}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    run = common.start("magai_generalization", __doc__, argv)
    warnings.simplefilter("ignore", TopologyWarning)  # duplicated ReLU rows of small networks are noted, not a problem
    split = common.digits_split()
    per_class = 20 if run.quick else 100
    x_measure, y_measure = common.stratified(split.x_train, split.y_train, per_class)
    data = common.loader(x_measure, y_measure)
    n = len(y_measure)
    kinds = ["trained"] if run.quick else ["trained", "first"]
    rows = {kind: measure_family(common.family(run.quick, kind), split, data, n) for kind in kinds}
    corr = {kind: correlations(r) for kind, r in rows.items()}

    criteria = []
    for protocol, protocol_name in PROTOCOLS.items():
        for q in (0, 1):
            c = corr["trained"][f"h{q}_{protocol}"]
            criteria.append(
                {
                    "name": f"H{q} at the logits ({protocol_name}) correlates negatively with test accuracy",
                    "passed": c["spearman"] < 0 and c["spearman_p"] < 0.05,
                    "detail": common.describe_correlation(c),
                }
            )

    def decide(p: dict[str, bool]) -> str:
        if all(p.values()):
            return "agree"
        return "partly" if any(p.values()) else "disagree"

    result = common.verdict(criteria, decide)
    family_names = {"trained": "trained family", "first": "first family (with near-chance members)"}
    correlation_table = common.table(
        ["family", "descriptor", "Pearson r (p)", "Spearman ρ (p)", "models"],
        [
            [
                family_names[kind],
                DESCRIPTOR_NAMES[k],
                f"{common.fmt(c[k]['pearson'], 2)} ({common.fmt(c[k]['pearson_p'], 2)})",
                f"{common.fmt(c[k]['spearman'], 2)} ({common.fmt(c[k]['spearman_p'], 3)})",
                c[k]["n"],
            ]
            for kind, c in corr.items()
            for k in KEYS
        ],
    )
    models_table = common.table(
        [
            "family",
            "model",
            "test acc.",
            "train acc.",
            "H0 (Magai prep.)",
            "H1 (Magai prep.)",
            "H0 (package)",
            "H1 (package)",
            "H0 last hidden",
        ],
        [
            [
                kind,
                r["name"],
                common.fmt(r["test_accuracy"], 3),
                common.fmt(r["train_accuracy"], 3),
                common.fmt(r["h0_minmax"]),
                common.fmt(r["h1_minmax"]),
                common.fmt(r["h0_logits"]),
                common.fmt(r["h1_logits"]),
                common.fmt(r["h0_hidden"]),
            ]
            for kind, family_rows in rows.items()
            for r in sorted(family_rows, key=lambda r: -r["test_accuracy"])
        ],
    )
    acc = {kind: np.array([r["test_accuracy"] for r in family_rows]) for kind, family_rows in rows.items()}
    payload = {
        "claim": "Across networks trained with different hyperparameters, the last layer's class-wise lifespan sum "
        "correlates negatively with test accuracy.",
        "setup": {
            "data": f"scikit-learn digits, 1297 train / 500 test; descriptors on {n} training images "
            f"({per_class} per class)",
            "families": {kind: [c.name for c in common.family(run.quick, kind)] for kind in kinds},
            "measurement": "analyze(layers={logits}, maxdim=1, per_class=True, descriptors=['total_persistence']) "
            "twice: on the logits min-max scaled per feature (common.MagaiProbes) with normalize=None (Magai's "
            "preprocessing), and on the logits with normalize='quantile' (package default); "
            "rank_models(score='lifespan_sum', maxdim=0) on the default layers",
        },
        "models": rows,
        "correlations": corr,
        "criteria": criteria,
        "verdict": result,
        "tables": {
            "correlations": correlation_table,
            "models": models_table,
            "criteria": common.table(
                ["criterion", "measured", "passed"],
                [[c["name"], c["detail"], "yes" if c["passed"] else "no"] for c in criteria],
            ),
        },
        "quote": {
            "verdict": result,
            **{
                f"{kind}_{k}": common.describe_correlation(corr[kind][k])
                for kind in kinds
                for k in ("h0_minmax", "h1_minmax", "h0_logits", "h1_logits", "h0_hidden")
            },
            **{f"{kind}_n_models": str(len(rows[kind])) for kind in kinds},
            **{
                f"{kind}_accuracy_range": f"{common.fmt(a.min(), 2)}-{common.fmt(a.max(), 2)}"
                for kind, a in acc.items()
            },
        },
    }
    figures = {
        f"magai_generalization_{kind}" if kind != "trained" else "magai_generalization": figure(
            acc[kind],
            {k: np.array([r[k] for r in rows[kind]]) for k in KEYS},
            np.array([r["depth"] for r in rows[kind]]),
            corr[kind],
            f"Magai & Ayzenberg 2.1 on digits: the {family_names[kind]}, {len(rows[kind])} CNNs",
        )
        for kind in kinds
    }
    out = common.finish(run, payload, figures)
    common.print_summary(out)
    return out


if __name__ == "__main__":
    main()
