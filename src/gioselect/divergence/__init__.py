"""k-nearest-neighbour estimators of KL(target || sample), their gradient, and an incremental state.

Pure numpy. Two estimators (see ``docs/algorithm.md`` in the repository):

* :func:`kl_knn` - the consistent estimator of Wang, Kulkarni and Verdu (2009)::

      KL = (d/n) * sum_i log(nu_k(i) / rho_k(i)) + log(m / (n - 1))

  where ``rho_k(i)`` is the distance from target point ``x_i`` to its k-th nearest neighbour among the other
  target points and ``nu_k(i)`` the distance to its k-th nearest neighbour in the sample. This is the neutral
  yardstick.

* :func:`kl_relaxed` - the smooth relaxation GIO optimises (the value grad-info-opt 0.1.2 computes in
  ``calculate_statistical_distance``): the generalised estimator averaged over every neighbour rank of the
  sample::

      KL~ = (d/(n m)) sum_i sum_j log(||x_i - w_j|| + eps) - (d/n) sum_i log(rho_k(i) + eps)
            + (1/m) sum_{l=1..m} log(k m / (l (n - 1)))

Zero distances and duplicates
-----------------------------
Squared distances are clipped to ``[1e-10, 1e20]`` before the square root, exactly as the reference does, so
every distance is at least ``1e-5`` (:data:`MIN_DIST`). Duplicate points (a target point repeated, a sample
point equal to a target point) therefore give a large but finite log term, never ``-inf`` or NaN. In the
gradient, a target point within ``1e-5`` of ``v`` contributes nothing (the clip has zero derivative there),
which also avoids dividing by zero. When a target point is its own neighbour for ``rho`` the point itself is
excluded by index, not by value, so duplicates inside the target are counted as genuine neighbours at
distance ``MIN_DIST``.

Memory
------
All pairwise work is done in blocks of rows (:func:`iter_sq_dist_blocks`): no ``n x m`` matrix larger than
one block is ever built, whatever the sizes. The incremental :class:`RelaxedKL` keeps O(n) numbers and costs
O(n d) per gradient step and per added point.

Layout
------
:mod:`.knn` holds the distance blocks, the k-NN distances and :func:`kl_knn`; :mod:`.relaxed` the relaxed
estimator and its incremental states (:class:`RelaxedKL`, :class:`RepelledKL`); :mod:`.kernels` the optional
compiled (numba) loops that :meth:`RelaxedKL.descend` and :class:`gioselect.optimize.CandidateSet` use. Every
name is importable from ``gioselect.divergence``.
"""

from __future__ import annotations

from .kernels import fast_descend_kernel, fast_nearest_kernel, fast_path_available, fast_point_kernel
from .knn import (
    DEFAULT_EPS,
    MAX_SQ_DIST,
    MIN_DIST,
    MIN_SQ_DIST,
    check_estimator_inputs,
    iter_sq_dist_blocks,
    kl_knn,
    knn_distances,
)
from .relaxed import RelaxedKL, RelaxedKLState, RepelledKL, kl_relaxed, relaxed_gradient

__all__ = [
    "DEFAULT_EPS",
    "MAX_SQ_DIST",
    "MIN_DIST",
    "MIN_SQ_DIST",
    "RelaxedKL",
    "RelaxedKLState",
    "RepelledKL",
    "check_estimator_inputs",
    "fast_descend_kernel",
    "fast_nearest_kernel",
    "fast_path_available",
    "fast_point_kernel",
    "iter_sq_dist_blocks",
    "kl_knn",
    "kl_relaxed",
    "knn_distances",
    "relaxed_gradient",
]
