"""Pure tensor-in, numbers-out functions: distances, sampling, persistence, descriptors, intrinsic dimension.

Never imports ``lightning``.
"""

from lightning_topo.functional.cubical import (
    cubical_betti,
    cubical_persistence,
    normalize_volumes,
    topological_complexity,
)
from lightning_topo.functional.descriptors import (
    amplitude,
    betti_curve,
    betti_numbers,
    lifetime_statistics,
    persistence_entropy,
    total_persistence,
)
from lightning_topo.functional.distances import distance_scale, pairwise_distances
from lightning_topo.functional.intrinsic_dimension import intrinsic_dimension, nearest_neighbor_distances
from lightning_topo.functional.persistence import h0_mst_deaths, rips_horizon, vietoris_rips
from lightning_topo.functional.sampling import farthest_point_cover, farthest_point_indices, subsample
from lightning_topo.functional.scores import topological_complexity_decay

__all__ = [
    "amplitude",
    "betti_curve",
    "betti_numbers",
    "cubical_betti",
    "cubical_persistence",
    "distance_scale",
    "farthest_point_cover",
    "farthest_point_indices",
    "h0_mst_deaths",
    "intrinsic_dimension",
    "lifetime_statistics",
    "nearest_neighbor_distances",
    "normalize_volumes",
    "pairwise_distances",
    "persistence_entropy",
    "rips_horizon",
    "subsample",
    "topological_complexity",
    "topological_complexity_decay",
    "total_persistence",
    "vietoris_rips",
]
