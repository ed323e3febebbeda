"""Cross-layer scores of a depth profile of descriptors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from lightning_topo.functional._checks import check_choice

__all__ = ["topological_complexity_decay"]

_SURESH_WEIGHTS = (0.0, 1.0, 0.5, 0.5)


def topological_complexity_decay(
    profile: Any,
    *,
    method: Literal["suresh", "log_slope"] = "suresh",
    alpha: float = 1e-3,
    weights: Sequence[float] = _SURESH_WEIGHTS,
) -> float:
    """How fast topological complexity decays with depth (lower = faster decay).

    ``profile`` holds one complexity value per layer, in depth order, for example
    ``Omega_l = beta_0 + beta_1 + beta_2`` averaged over samples (Suresh et al.) or a total persistence.

    - ``"suresh"`` reproduces the authors' code exactly (docs/methods.md section 7): ``y = profile / ||profile||_2``
      against the layer index ``x = 1 .. L``, a cubic ridge fit with an unpenalised intercept
      (scikit-learn's ``PolynomialFeatures(3)`` + ``Ridge(alpha=1e-3)``), and
      ``theta = [c0, c1, c2, c3] . [0, 1, 0.5, 0.5] = c1 + 0.5 c2 + 0.5 c3``. The weights are hard-coded in
      their code; the true slope of the cubic at ``x = 1`` would use ``[0, 1, 2, 3]``, so read theta as a
      heuristic initial-slope statistic. It depends on the number of layers.
    - ``"log_slope"``: the least-squares slope of ``log(profile)`` against relative depth ``l / L``: scale-free
      and comparable across architectures of different depth. Needs a positive profile.

    Args:
        profile: 1-D sequence of at least 2 (``"suresh"``: 4) finite values.
        method: ``"suresh"`` or ``"log_slope"``.
        alpha: ridge penalty of the cubic fit (``"suresh"``).
        weights: the weights of ``[c0, c1, c2, c3]`` (``"suresh"``).

    Returns:
        The score.

    Raises:
        ValueError: for a profile that is not 1-D, too short, not finite, zero, or not positive for
            ``"log_slope"``.

    References:
        Suresh, Das, Abrol, Dutta Roy, "On Characterizing the Evolution of Embedding Space of Neural Networks
        using Algebraic Topology", Pattern Recognition Letters 2024, arXiv:2311.04592.

    Example:
        >>> round(topological_complexity_decay([8.0, 4.0, 2.0, 1.0, 0.5]), 4)
        -0.7692
        >>> round(topological_complexity_decay([8.0, 4.0, 2.0, 1.0], method="log_slope"), 4)
        -2.7726
    """
    check_choice("method", method, ("suresh", "log_slope"))
    y = np.asarray(profile, dtype=np.float64)
    min_len = 4 if method == "suresh" else 2
    if y.ndim != 1 or y.size < min_len:
        raise ValueError(f"Expected `profile` to be 1-D with at least {min_len} layers but got shape {y.shape}.")
    if not np.isfinite(y).all():
        raise ValueError("Expected `profile` to hold only finite values.")
    n_layers = y.size
    if method == "log_slope":
        if (y <= 0).any():
            raise ValueError("Expected a positive `profile` for method='log_slope'.")
        depth = np.arange(1, n_layers + 1, dtype=np.float64) / n_layers
        return float(np.polyfit(depth, np.log(y), 1)[0])
    norm = np.linalg.norm(y)
    if norm == 0:
        raise ValueError("Expected a non-zero `profile`.")
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (4,):
        raise ValueError(f"Expected 4 `weights` (for c0..c3) but got shape {w.shape}.")
    y = y / norm
    x = np.arange(1, n_layers + 1, dtype=np.float64)
    feats = np.stack([x, x**2, x**3], axis=1)
    # Ridge with fit_intercept=True: centre, solve the penalised normal equations; the constant column of
    # PolynomialFeatures is zero after centring, so its coefficient c0 is 0.
    fc = feats - feats.mean(axis=0)
    yc = y - y.mean()
    coef = np.linalg.solve(fc.T @ fc + alpha * np.eye(3), fc.T @ yc)
    return float(w[0] * 0.0 + w[1:] @ coef)
