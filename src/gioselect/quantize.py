"""K-means quantisation of pool and target, and the explosion of chosen clusters back to pool rows.

GIO's scale trick (paper, section 3.3): cluster the pool into K clusters (the paper and the reference use
K = 1500), run GIO with the centroids as candidates and the target's centroids (when the target is larger than
its K) as the target, then "explode" every chosen cluster into all of its member rows.

What is done here, precisely:

* K-means is faiss's (``faiss.Kmeans``, Lloyd iterations, random initialisation, seeded), trained on a seeded
  uniform sample of at most ``K * max_points_per_centroid`` rows (``MAX_POINTS_PER_CENTROID`` = 32; faiss's own
  default cap is 256, which at 1e6 rows made K-means cost 8 assignment passes for no measured gain, see
  BENCHMARKS.md), for at most ``niter`` iterations, stopping early once an iteration lowers the K-means
  objective by less than ``KMEANS_TOL`` (0.1 %) of it; the whole pool is then assigned to its nearest centroid
  in streamed blocks. Clusters left empty by that final
  assignment are dropped from the candidates (they would explode to nothing).
* Centroids are **not weighted** by cluster size in the GIO objective: each centroid is one candidate point,
  exactly as in the reference. Cluster sizes count only towards a row budget.
* Exploding keeps the selection order of clusters; rows of one cluster come in ascending row order. A cluster
  chosen twice (possible only after a reset) contributes its rows once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .divergence import kl_knn
from .errors import MissingDependencyError
from .validation import check_int

__all__ = [
    "DEFAULT_CLUSTERS",
    "KMEANS_TOL",
    "MAX_POINTS_PER_CENTROID",
    "ClusterMembers",
    "assign_blocks",
    "explode",
    "kmeans_centroids",
    "quantization_consistency",
    "quantize_array",
    "training_sample_indices",
]

logger = logging.getLogger(__name__)

DEFAULT_CLUSTERS = 1500
MAX_POINTS_PER_CENTROID = 32
KMEANS_TOL = 1e-3


def _faiss():  # type: ignore[no-untyped-def]
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a core dependency
        raise MissingDependencyError("faiss is needed for K-means: pip install faiss-cpu") from exc
    return faiss


def training_sample_indices(n_rows: int, k: int, *, seed: int,
                            max_points_per_centroid: int = MAX_POINTS_PER_CENTROID) -> np.ndarray:
    """Sorted row indices of the K-means training sample: all rows, or a seeded uniform sample of
    ``k * max_points_per_centroid`` rows when the pool is larger."""
    cap = k * max_points_per_centroid
    if n_rows <= cap:
        return np.arange(n_rows, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_rows, size=cap, replace=False)).astype(np.int64)


def kmeans_centroids(sample: np.ndarray, k: int, *, seed: int, niter: int = 20,
                     threads: int | None = None, tol: float | None = KMEANS_TOL) -> np.ndarray:
    """Train faiss K-means with ``k`` clusters on ``sample`` (float32, (s, d), s >= k); centroids (k, d) float32.

    At most ``niter`` Lloyd iterations. With ``tol`` (default ``KMEANS_TOL``), training stops after the first
    iteration whose objective (sum of squared distances to the assigned centroid) is lower than the previous
    one by less than ``tol`` times the previous one; ``tol=None`` or ``0`` runs all ``niter`` (faiss alone).
    The iterations then run one ``faiss.Kmeans`` call each, continuing from the previous centroids.
    """
    faiss = _faiss()
    if threads is not None:
        faiss.omp_set_num_threads(int(threads))
    x = np.ascontiguousarray(sample, dtype=np.float32)
    mppc = max(1, math.ceil(x.shape[0] / k))

    def run(iters: int, it_seed: int, init: np.ndarray | None) -> tuple[np.ndarray, float]:
        km = faiss.Kmeans(x.shape[1], int(k), niter=iters, seed=it_seed % (2**31),
                          max_points_per_centroid=mppc, min_points_per_centroid=1, verbose=False)
        km.train(x, init_centroids=init)
        return np.ascontiguousarray(km.centroids, dtype=np.float32), float(km.obj[-1])

    if not tol or tol <= 0 or niter <= 1:
        return run(int(niter), int(seed), None)[0]
    cents, prev = run(1, int(seed), None)
    it = 1
    while it < niter:
        cents, obj = run(1, int(seed) + it, cents)
        it += 1
        # obj is the objective of the centroids the call started from: stop once it barely moved
        if prev - obj <= tol * abs(prev):
            break
        prev = obj
    logger.debug("K-means: %d of at most %d iterations (tol %g)", it, niter, tol)
    return cents


def assign_blocks(
    blocks: Iterable[tuple[int, np.ndarray]],
    centroids: np.ndarray,
    n_rows: int,
    *,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Assign streamed blocks ``(first_row, rows)`` to their nearest centroid.

    Returns ``labels`` (int32, (n_rows,)) and ``sq_dist`` (float32, squared distance to the centroid).
    Memory: the two output vectors plus one block and its (block, 1) search result.
    """
    faiss = _faiss()
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    labels = np.full(n_rows, -1, dtype=np.int32)
    sq = np.zeros(n_rows, dtype=np.float32)
    for start, block in blocks:
        dist, idx = index.search(np.ascontiguousarray(block, dtype=np.float32), 1)
        labels[start : start + block.shape[0]] = idx[:, 0]
        sq[start : start + block.shape[0]] = dist[:, 0]
        if progress is not None:
            progress(block.shape[0])
    if (labels < 0).any():
        missing = int(np.flatnonzero(labels < 0)[0])
        raise RuntimeError(f"row {missing} was not assigned (the blocks did not cover every row)")
    return labels, sq


@dataclass(frozen=True)
class QuantizedArray:
    """An in-memory array's K-means: ``centroids`` (K', d) of the non-empty clusters, their ``sizes``, and
    each row's cluster in ``labels`` (indices into ``centroids``)."""

    centroids: np.ndarray
    sizes: np.ndarray
    labels: np.ndarray


def _iter_array_blocks(x: np.ndarray, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    for s in range(0, x.shape[0], rows):
        yield s, x[s : s + rows]


def drop_empty(centroids: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remove clusters with no member; returns (centroids, sizes, labels renumbered)."""
    sizes = np.bincount(labels, minlength=centroids.shape[0]).astype(np.int64)
    keep = sizes > 0
    if keep.all():
        return centroids, sizes, labels
    remap = np.cumsum(keep) - 1
    logger.info("dropping %d empty cluster(s) of %d", int((~keep).sum()), centroids.shape[0])
    return centroids[keep], sizes[keep], remap[labels].astype(labels.dtype)


def quantize_array(x: np.ndarray, k: int, *, seed: int = 0, niter: int = 20,
                   max_points_per_centroid: int = MAX_POINTS_PER_CENTROID) -> QuantizedArray:
    """K-means an in-memory array (the target, or a small pool) into at most ``k`` non-empty clusters."""
    k = check_int(k, "clusters", low=1)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[0] <= k:  # nothing to gain: every row is its own cluster
        return QuantizedArray(x.copy(), np.ones(x.shape[0], dtype=np.int64), np.arange(x.shape[0], dtype=np.int32))
    idx = training_sample_indices(x.shape[0], k, seed=seed, max_points_per_centroid=max_points_per_centroid)
    cents = kmeans_centroids(x[idx], k, seed=seed, niter=niter)
    labels, _ = assign_blocks(_iter_array_blocks(x, 65536), cents, x.shape[0])
    c, sizes, labels = drop_empty(cents, labels)
    return QuantizedArray(c, sizes, labels)


class ClusterMembers:
    """Rows of each cluster, ascending, from a label vector: one stable counting sort, O(N) memory."""

    def __init__(self, labels: np.ndarray, n_clusters: int) -> None:
        self.order = np.argsort(labels, kind="stable").astype(np.int64)
        counts = np.bincount(labels, minlength=n_clusters)
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def members(self, c: int) -> np.ndarray:
        return self.order[self.starts[c] : self.starts[c + 1]]

    def size(self, c: int) -> int:
        return int(self.starts[c + 1] - self.starts[c])


def explode(chosen: Sequence[int] | np.ndarray, members: ClusterMembers, *, limit: int | None = None,
            seed: int = 0) -> np.ndarray:
    """Pool rows of the chosen clusters, in selection order (rows of one cluster ascending).

    A cluster listed twice contributes once. With ``limit``, the output stops at ``limit`` rows: the last
    cluster is cut to a seeded random subset of its rows (kept in ascending order) so that it fills the budget
    exactly.
    """
    seen: set[int] = set()
    parts: list[np.ndarray] = []
    total = 0
    for c in np.asarray(chosen, dtype=np.int64).tolist():
        if c in seen:
            continue
        seen.add(c)
        rows = members.members(c)
        if limit is not None and total + rows.shape[0] > limit:
            room = limit - total
            if room > 0:
                rng = np.random.default_rng(seed)
                rows = np.sort(rng.choice(rows, size=room, replace=False))
                parts.append(rows)
                total += room
            break
        parts.append(rows)
        total += rows.shape[0]
    return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class QuantizationCheck:
    passed: bool
    message: str
    metrics: dict[str, float]


def quantization_consistency(target: np.ndarray, k: int, *, seed: int = 0, max_kl: float = 1.0,
                             knn_k: int = 5) -> QuantizationCheck:
    """The paper's third check: the K-means centroids of the target are close to the target in KL.

    Reports KL(target || centroids) with the exact k-NN estimator and, for scale, KL(target || a random
    subset of the target of the same size), which a good quantisation should roughly match. Passes when
    ``KL(target || centroids) <= max_kl``.
    """
    x = np.ascontiguousarray(target, dtype=np.float32)
    q = quantize_array(x, k, seed=seed)
    kl_c = kl_knn(x, q.centroids, knn_k)
    rng = np.random.default_rng(seed)
    subset = x[rng.choice(x.shape[0], size=q.centroids.shape[0], replace=False)]
    kl_r = kl_knn(x, subset, knn_k)
    passed = kl_c <= max_kl
    msg = (f"KL(target || {q.centroids.shape[0]} centroids) = {kl_c:.4g} (need <= {max_kl:g}); "
           f"a random subset of the same size gives {kl_r:.4g}")
    return QuantizationCheck(bool(passed), msg, {"kl_centroids": kl_c, "kl_random_subset": kl_r,
                                                 "clusters": float(q.centroids.shape[0])})
