"""Finding 4 (Suresh, Das, Abrol & Dutta Roy 2023, section 3): the decay of cubical complexity.

Claims: (a) in a trained CNN the cubical complexity Omega (beta_0 + beta_1 + beta_2 of the sublevel-set filtration of
each image's feature map, at a threshold) falls with depth; (b) its decay rate theta, measured on the target data
through pretrained networks, ranks architectures by the accuracy they reach after fine-tuning (lower theta, higher
accuracy; Spearman -0.90 over nine ImageNet models fine-tuned on CIFAR-10).

Here, on scikit-learn's digits: (a) the CNN of finding 1 trained on all ten digits (3 seeds) and the same networks
untrained, Omega of 200 held-out images per layer with ``analyze(cubical_samples=200)``; (b) eight CNN architectures
pretrained on digits 0-4, ranked with ``rank_models(score="decay_cubical")`` on images of digits 5-9, then fine-tuned
on 30 images per class of digits 5-9 (3 fine-tuning seeds) and tested on the other images of digits 5-9.

With the authors' per-image Betti arrays at hand (a folder named by ``SURESH_REFERENCE``, default
``../shared/reference/suresh2023`` beside the repository, not part of it: nine ImageNet models on CIFAR-10 from
github.com/Cross-Caps/DNNTopology, and ``profiles.json`` with their reported accuracies), the script also computes
theta from them with ``functional.topological_complexity_decay`` and its correlation with the fine-tuned accuracies
they report: the paper's own number from the package. Without them that part is reported as not run.

    python examples/reproduce/suresh_cubical.py            # about 1.5 minutes on 2 cores
    python examples/reproduce/suresh_cubical.py --quick    # seconds, into a temporary folder
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common
import numpy as np
import torch
from torch import nn

from lightning_topo import TopologyWarning, analyze, functional, rank_models

CONV_NAMES = ["conv1", "conv2", "conv3", "conv4", "conv5"]
# the architectures of (b), fixed before any was trained: conv widths, the blocks followed by a 2x2 max-pool,
# the activation; each has at least 4 conv blocks (theta's cubic fit needs 4 layers)
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "cnn4_w16": {"widths": (16, 16, 16, 16), "pool_after": (1, 3)},
    "cnn4_w8": {"widths": (8, 8, 8, 8), "pool_after": (1, 3)},
    "cnn4_w32": {"widths": (32, 32, 32, 32), "pool_after": (1, 3)},
    "cnn4_widening": {"widths": (16, 32, 64, 64), "pool_after": (1, 3)},
    "cnn5": {"widths": (16, 16, 32, 32, 32), "pool_after": (2, 4)},
    "cnn6_w16": {"widths": (16,) * 6, "pool_after": (2, 5)},
    "cnn4_tanh": {"widths": (16, 16, 16, 16), "pool_after": (1, 3), "activation": nn.Tanh},
    "cnn4_elu": {"widths": (16, 16, 16, 16), "pool_after": (1, 3), "activation": nn.ELU},
}
QUICK_ARCHITECTURES = ("cnn4_w8", "cnn4_tanh", "cnn4_w16", "cnn5")
# the authors' Betti arrays (10 classes x 200 images x L layers x 3), read where present, never copied
REFERENCE = Path(os.environ.get("SURESH_REFERENCE", common.ROOT.parent / "shared" / "reference" / "suresh2023"))


def reference_check(folder: Path) -> dict[str, Any] | None:
    """theta of each of the authors' nine models from their arrays, against their fine-tuned accuracies."""
    if not (folder / "profiles.json").is_file():
        return None
    models = json.loads((folder / "profiles.json").read_text())["models"]
    theta, accuracy = {}, {}
    for name, entry in models.items():
        bettis = np.load(folder / f"{name}_cifar10.npy")  # (classes, images, layers, 3)
        omega = bettis.sum(axis=-1).mean(axis=(0, 1))
        theta[name] = functional.topological_complexity_decay(omega)
        accuracy[name] = float(entry["finetune_accuracy_cifar10"])
    names = list(models)
    corr = common.correlation([theta[n] for n in names], [accuracy[n] for n in names])
    return {"theta": theta, "accuracy": accuracy, "correlation": corr}


def build(name: str, n_classes: int, seed: int) -> nn.Sequential:
    spec = ARCHITECTURES[name]
    return common.digits_cnn(
        spec["widths"],
        pool_after=spec["pool_after"],
        dense=(64,),
        n_classes=n_classes,
        activation=spec.get("activation", nn.ReLU),
        generator_seed=seed,
    )


def omega_profile(net: nn.Sequential, data: Any, k: int, n_conv: int) -> list[float]:
    """Omega of every conv block (``analyze(cubical_samples=k)``, threshold 0.5 of each layer's robust scale)."""
    layers = {str(i): CONV_NAMES[i] if i < len(CONV_NAMES) else f"conv{i + 1}" for i in range(n_conv)}
    report = analyze(net, data, layers=layers, n_samples=k, maxdim=0, descriptors=["betti"], cubical_samples=k)
    return report.profile("cubical_complexity").tolist()


def finetune(pretrained: nn.Sequential, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> nn.Sequential:
    """A copy of the pretrained network with a new head for the 5 new classes, every weight trained."""
    model = copy.deepcopy(pretrained)
    torch.manual_seed(1000 + seed)
    head = model[-1]
    assert isinstance(head, nn.Linear)
    model[-1] = nn.Linear(head.in_features, 5)
    return common.train(model, x, y, epochs=epochs, lr=1e-3, batch_size=32, seed=seed)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    run = common.start("suresh_cubical", __doc__, argv)
    warnings.simplefilter("ignore", TopologyWarning)
    split = common.digits_split()
    k = 32 if run.quick else 200
    seeds = [0] if run.quick else [0, 1, 2]
    epochs = 2 if run.quick else 60

    # (a) Omega across the conv layers of the CNN of finding 1, trained on all ten digits, and untrained
    test = common.loader(split.x_test, split.y_test)
    profiles: dict[str, list[list[float]]] = {"trained": [], "untrained": []}
    for seed in seeds:
        profiles["untrained"].append(omega_profile(common.digits_cnn(generator_seed=seed), test, k, 5))
        net = common.train(
            common.digits_cnn(generator_seed=seed), split.x_train, split.y_train, epochs=epochs, seed=seed
        )
        profiles["trained"].append(omega_profile(net, test, k, 5))
    omega = {key: np.array(v) for key, v in profiles.items()}
    ratio = {key: float(a.mean(axis=0)[-1] / a.mean(axis=0)[0]) for key, a in omega.items()}
    theta_a = {key: [functional.topological_complexity_decay(p) for p in a] for key, a in omega.items()}

    # (b) transfer: pretrain on digits 0-4, theta on digits 5-9, fine-tune on 30 images per class of digits 5-9
    old = split.y_train < 5
    x_a, y_a = split.x_train[old], split.y_train[old]
    new_train, new_test = split.y_train >= 5, split.y_test >= 5
    x_b, y_b = common.stratified(split.x_train[new_train], split.y_train[new_train] - 5, 6 if run.quick else 30)
    x_b_test, y_b_test = split.x_test[new_test], split.y_test[new_test] - 5
    probe = common.loader(split.x_train[new_train], split.y_train[new_train] - 5)  # target-task images, unlabelled use
    names = list(QUICK_ARCHITECTURES if run.quick else ARCHITECTURES)
    pretrained = {
        name: common.train(build(name, 5, seed=i), x_a, y_a, epochs=2 if run.quick else 30, seed=i)
        for i, name in enumerate(names)
    }
    pretrain_acc = {
        name: common.accuracy(m, split.x_test[split.y_test < 5], split.y_test[split.y_test < 5])
        for name, m in pretrained.items()
    }
    ranking = rank_models(
        pretrained,
        probe,
        score="decay_cubical",
        layers=r"\d+",
        n_samples=k,
        maxdim=0,
        descriptors=["betti"],
        cubical_samples=k,
    )
    theta = dict(ranking)
    tune_seeds = [0] if run.quick else [0, 1, 2]
    finetuned: dict[str, list[float]] = {
        name: [
            common.accuracy(finetune(m, x_b, y_b, 3 if run.quick else 40, s), x_b_test, y_b_test) for s in tune_seeds
        ]
        for name, m in pretrained.items()
    }
    accuracy = {name: float(np.mean(v)) for name, v in finetuned.items()}
    transfer_profiles = {
        name: omega_profile(m, probe, k, len(ARCHITECTURES[name]["widths"])) for name, m in pretrained.items()
    }
    corr = common.correlation([theta[n] for n in names], [accuracy[n] for n in names])
    reference = reference_check(REFERENCE)

    criteria = [
        {
            "name": "(a) trained: Omega falls with depth (last conv / first conv <= 0.5)",
            "passed": ratio["trained"] <= 0.5,
            "detail": f"{common.fmt(ratio['trained'], 2)}",
        },
        {
            "name": "(a) faster than at initialisation (ratio below the untrained one)",
            "passed": ratio["trained"] < ratio["untrained"],
            "detail": f"trained {common.fmt(ratio['trained'], 2)} vs untrained {common.fmt(ratio['untrained'], 2)}",
        },
        {
            "name": "(b) theta correlates negatively with fine-tuned accuracy",
            "passed": corr["spearman"] < 0 and corr["spearman_p"] < 0.05,
            "detail": common.describe_correlation(corr),
        },
    ]

    def decide(p: dict[str, bool]) -> str:
        if all(p.values()):
            return "agree"
        return "partly" if any(p.values()) else "disagree"

    result = common.verdict(criteria, decide)
    depth_table = common.table(
        ["layer", "map (C x H x W)", "trained Ω", "untrained Ω"],
        [
            [name, shape, common.mean_sd(omega["trained"][:, i]), common.mean_sd(omega["untrained"][:, i])]
            for i, (name, shape) in enumerate(
                zip(CONV_NAMES, ["16x8x8", "16x8x8", "32x4x4", "32x4x4", "32x2x2"], strict=True)
            )
        ],
    )
    transfer_table = common.table(
        ["architecture", "θ (rank_models)", "pretrain acc. (0-4)", "fine-tuned acc. (5-9)", "Ω profile"],
        [
            [
                name,
                common.fmt(theta[name], 3),
                common.fmt(pretrain_acc[name], 3),
                common.mean_sd(finetuned[name]),
                ", ".join(common.fmt(v, 3) for v in transfer_profiles[name]),
            ]
            for name in sorted(names, key=lambda n: theta[n])
        ],
    )
    payload = {
        "claim": "Omega falls with depth in a trained CNN; theta ranks architectures by the accuracy they reach after "
        "fine-tuning (Spearman -0.90 over nine ImageNet models on CIFAR-10).",
        "setup": {
            "data": "scikit-learn digits, 1297 train / 500 test; (b) pretraining on digits 0-4 of the train split, "
            "theta on the train images of digits 5-9, fine-tuning on 30 of them per class, accuracy on the test "
            "images of digits 5-9",
            "models": "(a) CNN of finding 1, 60 epochs, seeds 0-2; (b) " + ", ".join(names) + "; pretraining 30 "
            "epochs, fine-tuning 40 epochs (every weight, new head), 3 fine-tuning seeds",
            "measurement": f"analyze / rank_models(score='decay_cubical') with cubical_samples={k}, "
            "cubical_threshold=0.5 (the default; each layer's feature maps divided by their 0.99 quantile), "
            "layers: every conv block",
        },
        "omega": {key: a.tolist() for key, a in omega.items()},
        "ratio_last_first": ratio,
        "theta_depth": theta_a,
        "transfer": {
            name: {
                "theta": theta[name],
                "pretrain_accuracy": pretrain_acc[name],
                "finetuned_accuracy": finetuned[name],
                "omega_profile": transfer_profiles[name],
            }
            for name in names
        },
        "correlation": corr,
        "reference": reference,
        "reference_folder": str(REFERENCE) if reference is not None else None,
        "criteria": criteria,
        "verdict": result,
        "tables": {
            "depth": depth_table,
            "transfer": transfer_table,
            "reference": common.table(
                ["model", "θ (functional, from the authors' arrays)", "fine-tuned accuracy (reported)"],
                [
                    [name, common.fmt(reference["theta"][name], 3), common.fmt(reference["accuracy"][name], 4)]
                    for name in sorted(reference["theta"], key=lambda n: reference["theta"][n])
                ]
                if reference is not None
                else [["not run: the authors' arrays were absent", "", ""]],
            ),
            "criteria": common.table(
                ["criterion", "measured", "passed"],
                [[c["name"], c["detail"], "yes" if c["passed"] else "no"] for c in criteria],
            ),
        },
        "quote": {
            "verdict": result,
            "ratio_trained": common.fmt(ratio["trained"], 2),
            "ratio_untrained": common.fmt(ratio["untrained"], 2),
            "transfer": common.describe_correlation(corr),
            "n_architectures": str(len(names)),
            "reference": common.describe_correlation(reference["correlation"])
            if reference is not None
            else "not run (the authors' arrays were absent)",
        },
    }
    out = common.finish(run, payload, {"suresh_cubical": figure(omega, transfer_profiles, theta, accuracy)})
    common.print_summary(out)
    return out


def figure(
    omega: dict[str, np.ndarray], profiles: dict[str, list[float]], theta: dict[str, float], accuracy: dict[str, float]
) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.3))
    ax = fig.add_subplot(1, 3, 1)
    x = np.arange(1, omega["trained"].shape[1] + 1)
    for key, style, color in (("trained", "o-", "C0"), ("untrained", "s--", "C3")):
        mean, sd = omega[key].mean(axis=0), omega[key].std(axis=0)
        ax.plot(x, mean, style, color=color, ms=3, label=key)
        ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=0.15, lw=0)
    ax.set_xticks(x, CONV_NAMES[: len(x)], fontsize=7)
    ax.set_ylabel("Ω (mean over images)", fontsize=8)
    ax.set_title("(a) cubical complexity across conv layers", fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7)
    ax = fig.add_subplot(1, 3, 2)
    for i, (name, p) in enumerate(profiles.items()):
        y = np.asarray(p) / np.linalg.norm(p)
        ax.plot(np.arange(1, len(p) + 1), y, "o-", ms=2, color=f"C{i % 10}", label=name)
    ax.set_xlabel("conv layer", fontsize=8)
    ax.set_ylabel("Ω / ||Ω||", fontsize=8)
    ax.set_title("(b) pretrained profiles on digits 5-9", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, ncol=2)
    ax = fig.add_subplot(1, 3, 3)
    for i, name in enumerate(profiles):
        ax.scatter(theta[name], accuracy[name], color=f"C{i % 10}", s=18)
    ax.set_xlabel('θ: rank_models(score="decay_cubical")', fontsize=8)
    ax.set_ylabel("fine-tuned accuracy (digits 5-9)", fontsize=8)
    ax.set_title("(b) θ against fine-tuned accuracy", fontsize=9)
    ax.tick_params(labelsize=7)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.15, top=0.9, wspace=0.3)
    return fig


if __name__ == "__main__":
    main()
