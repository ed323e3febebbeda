"""Finding 6 (Ansuini et al. 2019, section 5): the intrinsic dimension's "hunchback" and the last hidden layer.

Claims: (a) across the layers of a trained network the intrinsic dimension (TwoNN) first rises, then falls, to a
last-hidden-layer value well below its peak; an untrained network's profile is flat; (b) across networks, a lower
last-hidden ID goes with a higher test accuracy (and training on random labels raises it).

Here: (a) the CNN of finding 1 (5 conv + 2 dense layers) trained on scikit-learn's digits, 3 seeds, and the same
networks untrained, measured with ``analyze(descriptors=["id_twonn"], reduce="flatten")`` (Ansuini et al. flatten
the feature maps) on the 1,297 training images; (b) the 24 CNNs of finding 2 ranked with
``rank_models(score="id_last")``; the CNN of (a) trained on shuffled labels as the control.

    python examples/reproduce/ansuini_id.py            # about 1.5 minutes on 2 cores
    python examples/reproduce/ansuini_id.py --quick    # seconds, into a temporary folder
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import common
import numpy as np
import torch

from lightning_topo import TopologyWarning, analyze, rank_models

NAMES = ["input", "conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2", "logits"]
LAYERS = {"input": "input", **{str(i): NAMES[i + 1] for i in range(len(NAMES) - 1)}}


def id_profile(model: torch.nn.Module, data: Any, n: int) -> list[float]:
    """TwoNN at every layer (input first), conv maps flattened."""
    report = analyze(model, data, layers=LAYERS, n_samples=n, maxdim=0, descriptors=["id_twonn"], reduce="flatten")
    return report.profile("id_twonn").tolist()


def hunchback(profile: Sequence[float]) -> dict[str, Any]:
    """Where the profile peaks, and the last hidden layer (``fc2``) against its peak and against the input."""
    p = np.asarray(profile, dtype=np.float64)
    hidden = p[1:-1]  # conv1 .. fc2
    peak = int(np.argmax(hidden))
    return {
        "input": float(p[0]),
        "peak": float(hidden[peak]),
        "peak_layer": NAMES[peak + 1],
        "peak_depth": float(common.relative_depth(len(p) - 1)[peak]),
        "last_hidden": float(hidden[-1]),
        "last_over_peak": float(hidden[-1] / hidden[peak]),
    }


def figure(
    trained: np.ndarray, untrained: np.ndarray, shuffled: np.ndarray, acc: np.ndarray, ids: np.ndarray, rho: float
) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.5, 3.3))
    ax = fig.add_subplot(1, 2, 1)
    x = np.arange(len(NAMES))
    for label, data, style, color in (
        ("trained", trained, "o-", "C0"),
        ("untrained", untrained, "s--", "C3"),
        ("shuffled labels", shuffled, "^:", "C2"),
    ):
        mean, sd = data.mean(axis=0), data.std(axis=0)
        ax.plot(x, mean, style, color=color, ms=3, label=label)
        ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=0.15, lw=0)
    ax.set_xticks(x, NAMES, rotation=45, fontsize=7, ha="right")
    ax.set_ylabel("TwoNN intrinsic dimension", fontsize=8)
    ax.set_title("(a) ID across layers (mean ± sd over seeds)", fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7)
    ax = fig.add_subplot(1, 2, 2)
    ax.scatter(ids, 1 - acc, s=16)
    ax.set_xlabel('last-hidden ID: rank_models(score="id_last")', fontsize=8)
    ax.set_ylabel("test error", fontsize=8)
    ax.set_title(f"(b) {len(ids)} CNNs: Spearman(ID, accuracy) = {common.fmt(rho, 2)}", fontsize=9)
    ax.tick_params(labelsize=7)
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.2, top=0.9, wspace=0.25)
    return fig


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    run = common.start("ansuini_id", __doc__, argv)
    warnings.simplefilter("ignore", TopologyWarning)  # duplicated ReLU rows are counted once by TwoNN, as noted
    split = common.digits_split()
    seeds = [0] if run.quick else [0, 1, 2]
    epochs = 2 if run.quick else 60  # 60 epochs: training accuracy 1.0 (finding 1)
    x_measure, y_measure = (split.x_train[:200], split.y_train[:200]) if run.quick else (split.x_train, split.y_train)
    data = common.loader(x_measure, y_measure)
    n = len(y_measure)

    profiles: dict[str, list[list[float]]] = {"trained": [], "untrained": [], "shuffled": []}
    accuracies: dict[str, list[float]] = {"trained": [], "shuffled": [], "shuffled_train": []}
    for seed in seeds:
        profiles["untrained"].append(id_profile(common.digits_cnn(generator_seed=seed), data, n))
        net = common.train(
            common.digits_cnn(generator_seed=seed), split.x_train, split.y_train, epochs=epochs, seed=seed
        )
        profiles["trained"].append(id_profile(net, data, n))
        accuracies["trained"].append(common.accuracy(net, split.x_test, split.y_test))
    # the control: the same CNN trained on labels shuffled once (seed 0), as long
    shuffled_labels = split.y_train[torch.randperm(len(split.y_train), generator=torch.Generator().manual_seed(0))]
    net = common.train(common.digits_cnn(generator_seed=0), split.x_train, shuffled_labels, epochs=epochs, seed=0)
    profiles["shuffled"].append(id_profile(net, data, n))
    accuracies["shuffled"].append(common.accuracy(net, split.x_test, split.y_test))
    accuracies["shuffled_train"].append(common.accuracy(net, split.x_train, shuffled_labels))
    arrays = {k: np.array(v) for k, v in profiles.items()}
    shapes = {k: hunchback(a.mean(axis=0)) for k, a in arrays.items()}

    # (b) the family of finding 2, ranked by the package's named score
    configs = common.family(run.quick)
    models, acc = {}, {}
    for i, config in enumerate(configs):
        model = common.train(
            common.build(config, seed=i), split.x_train, split.y_train, epochs=config.epochs, lr=config.lr, seed=i
        )
        models[config.name] = model
        acc[config.name] = common.accuracy(model, split.x_test, split.y_test)
    ranking = dict(rank_models(models, data, score="id_last", n_samples=n, maxdim=0, descriptors=["id_twonn"]))
    names = list(models)
    family_acc = np.array([acc[k] for k in names])
    family_id = np.array([ranking[k] for k in names])
    corr = common.correlation(family_id, family_acc)

    t, u = shapes["trained"], shapes["untrained"]
    criteria = [
        {
            "name": "trained: ID rises above the input's",
            "passed": t["peak"] > t["input"],
            "detail": f"peak {common.fmt(t['peak'])} at {t['peak_layer']} vs input {common.fmt(t['input'])}",
        },
        {
            "name": "trained: last hidden ID <= 0.5 x peak",
            "passed": t["last_over_peak"] <= 0.5,
            "detail": f"fc2 / peak = {common.fmt(t['last_over_peak'], 2)}",
        },
        {
            "name": "untrained: no fall (last hidden > 0.5 x peak)",
            "passed": u["last_over_peak"] > 0.5,
            "detail": f"fc2 / peak = {common.fmt(u['last_over_peak'], 2)}",
        },
        {
            "name": "family: last-hidden ID correlates negatively with test accuracy",
            "passed": corr["spearman"] < 0 and corr["spearman_p"] < 0.05,
            "detail": common.describe_correlation(corr),
        },
    ]

    def decide(p: dict[str, bool]) -> str:
        if all(p.values()):
            return "agree"
        # the untrained network is the control: passing it alone is no agreement with the claim
        claims = [v for k, v in p.items() if not k.startswith("untrained")]
        return "partly" if any(claims) else "disagree"

    result = common.verdict(criteria, decide)
    profile_table = common.table(
        ["layer", "trained ID", "untrained ID", "shuffled-label ID"],
        [
            [name, *[common.mean_sd(arrays[k][:, i]) for k in ("trained", "untrained", "shuffled")]]
            for i, name in enumerate(NAMES)
        ],
    )
    payload = {
        "claim": "The ID across layers rises then falls (hunchback), flat when untrained; the last hidden layer's "
        "ID is lower for better-generalizing networks.",
        "setup": {
            "data": f"scikit-learn digits, 1297 train / 500 test; ID on {n} training images",
            "model": "(a) CNN of finding 1, Adam lr 1e-3, batch 64, "
            f"{epochs} epochs, seeds {seeds}; (b) the family of finding 2",
            "measurement": "analyze(maxdim=0, descriptors=['id_twonn'], reduce='flatten'); "
            "rank_models(score='id_last') (default layers: conv maps averaged, the dense layers as they are)",
        },
        "profiles": {k: a.tolist() for k, a in arrays.items()},
        "layers": NAMES,
        "shapes": shapes,
        "accuracies": accuracies,
        "family": [{"name": k, "test_accuracy": acc[k], "id_last": ranking[k]} for k in names],
        "correlation": corr,
        "criteria": criteria,
        "verdict": result,
        "tables": {
            "profile": profile_table,
            "criteria": common.table(
                ["criterion", "measured", "passed"],
                [[c["name"], c["detail"], "yes" if c["passed"] else "no"] for c in criteria],
            ),
        },
        "quote": {
            "verdict": result,
            "input": common.fmt(t["input"]),
            "peak": f"{common.fmt(t['peak'])} ({t['peak_layer']})",
            "last_hidden": common.fmt(t["last_hidden"]),
            "last_over_peak": common.fmt(t["last_over_peak"], 2),
            "untrained_last_over_peak": common.fmt(u["last_over_peak"], 2),
            "family": common.describe_correlation(corr),
            "accuracy": common.mean_sd(accuracies["trained"]),
            "shuffled_last_hidden": common.fmt(shapes["shuffled"]["last_hidden"]),
            "shuffled_train_accuracy": common.fmt(accuracies["shuffled_train"][0], 2),
        },
    }
    fig = figure(arrays["trained"], arrays["untrained"], arrays["shuffled"], family_acc, family_id, corr["spearman"])
    out = common.finish(run, payload, {"ansuini_id": fig})
    common.print_summary(out)
    return out


if __name__ == "__main__":
    main()
