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
* Candidates are **not weighted** by cluster size in the GIO objective: each cluster is one candidate point,
  as in the reference. Cluster sizes count towards a row budget, and in the F1 size rule a cluster counts its
  size times the mean posterior of the sampled pool rows in it (:func:`cluster_target_like`). The point is
  the cluster's medoid by default (:func:`medoid_ids`), or its centroid scaled to unit norm, or the raw centroid
  (the reference's).
* Without a row budget, exploding keeps the selection order of clusters; rows of one cluster come in ascending
  row order. A cluster chosen twice (possible only after a reset) contributes its rows once. With a budget, the
  row-level pass (:func:`refine`) keeps exactly the budget's rows of the chosen clusters; with the automatic size
  (the F1 rule) it ranks every row it read and keeps the rule's prefix of its ranking (:class:`RowF1`).
* ``clusters="auto"`` (:func:`plan_clusters`) decides K from the pool and target sizes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .divergence import kl_knn
from .errors import InvalidParameterError, MissingDependencyError
from .nearest import SCORE_BLOCK_ROWS, KnownNearest, score_rows
from .quantize_f1 import F1_MAX_SAMPLE_ROWS, F1_ROWS_PER_CLUSTER, RowF1, cluster_target_like  # noqa: F401
from .quantize_refine import REFINE_AUTO_MAX_WORK, REFINE_GIO_OVER, REFINE_OVER, RefinePlan, plan_refine
from .validation import check_int

__all__ = [
    "DEFAULT_CLUSTERS",
    "F1_ROWS_PER_CLUSTER",
    "KMEANS_TOL",
    "MAX_POINTS_PER_CENTROID",
    "REFINE_AUTO_MAX_WORK",
    "REFINE_GIO_OVER",
    "ClusterMembers",
    "RefinePlan",
    "RowF1",
    "assign_blocks",
    "cluster_target_like",
    "explode",
    "kmeans_centroids",
    "plan_refine",
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

    def rows_of(self, clusters: Sequence[int] | np.ndarray) -> np.ndarray:
        """The rows of distinct ``clusters`` (in the order given; rows of one cluster ascending), one array."""
        parts = [self.members(int(c)) for c in clusters]
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)


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


# ---------------------------------------------------------------------------------------------------------
# faithful candidates, the row-level pass, and the automatic K
# ---------------------------------------------------------------------------------------------------------
CANDIDATE_MODES = ("auto", "centroid", "renormalized", "medoid")
REFINE_MODES = ("auto", "share", "knn", "relaxed", "gio", "none")  # "auto": gioselect.quantize_refine
#: Pools up to this many rows are selected on their rows (no quantisation) by ``clusters="auto"``.
AUTO_MAX_DIRECT_ROWS = 100_000
#: Targets up to this many rows are used as they are by ``clusters="auto"``.
AUTO_MAX_DIRECT_TARGET = 10_000
#: The row-level pass keeps the first chosen clusters holding up to this share of the size whole and ranks
#: only the rows after them (:func:`refine`'s ``whole``; EXPERIMENTS.md, "Quantised selection").
REFINE_WHOLE = 0.5
#: Pool rows read per block by the row-level pass.
REFINE_BLOCK_ROWS = SCORE_BLOCK_ROWS


def on_unit_sphere(sample: np.ndarray, *, tol: float = 1e-3) -> bool:
    """Whether every row of ``sample`` (a sample of the pool) has norm 1 within ``tol``."""
    x = np.asarray(sample, dtype=np.float64)
    if x.shape[0] == 0:
        return False
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    return bool(np.all(np.abs(norms - 1.0) <= tol))


def medoid_ids(labels: np.ndarray, sq_dist: np.ndarray, n_clusters: int) -> np.ndarray:
    """For each cluster, the member row nearest its centroid (ties: the lowest row); -1 for an empty cluster.

    O(N) memory from the assignment's two vectors; no pool row is read.
    """
    lab = np.asarray(labels, dtype=np.int64)
    out = np.full(n_clusters, -1, dtype=np.int64)
    if lab.shape[0] == 0:
        return out
    order = np.lexsort((np.arange(lab.shape[0]), np.asarray(sq_dist, dtype=np.float64), lab))
    first = np.ones(order.shape[0], dtype=bool)
    first[1:] = lab[order[1:]] != lab[order[:-1]]
    out[lab[order[first]]] = order[first]
    return out


def resolve_candidates(mode: str, unit_sphere: bool) -> str:
    """``"auto"`` becomes ``"medoid"`` (the measured choice: EXPERIMENTS.md, "Quantised selection")."""
    if mode not in CANDIDATE_MODES:
        raise InvalidParameterError(f"candidates: expected one of {', '.join(CANDIDATE_MODES)}, got {mode!r}")
    if mode == "auto":
        return "medoid"
    if mode == "renormalized" and not unit_sphere:
        return "centroid"
    return mode


def candidate_points(mode: str, centroids: np.ndarray, medoid_rows: Callable[[], np.ndarray]) -> np.ndarray:
    """The GIO candidates standing for the clusters: raw centroids, centroids scaled to unit norm, or medoids
    (``medoid_rows()`` reads the medoid of every cluster, in cluster order). ``mode`` is already resolved."""
    c = np.ascontiguousarray(centroids, dtype=np.float32)
    if mode == "centroid":
        return c
    if mode == "renormalized":
        n = np.linalg.norm(c.astype(np.float64), axis=1, keepdims=True)
        return np.ascontiguousarray(c / np.maximum(n, 1e-12), dtype=np.float32)
    if mode == "medoid":
        return np.ascontiguousarray(medoid_rows(), dtype=np.float32)
    raise ValueError(f"unresolved candidates mode {mode!r}")


def auto_clusters(n_pool: int, n_target: int) -> tuple[int, int, str]:
    """``clusters="auto"``: (pool K, target K, the rule in words); K = 0 means no quantisation.

    The rule: a pool of at most :data:`AUTO_MAX_DIRECT_ROWS` rows is selected on its rows (one GIO pick is a
    pass over the candidates, milliseconds there); a larger pool is quantised into :data:`DEFAULT_CLUSTERS`
    clusters (the paper's K; at 1e5 rows and more that is at least 66 rows per cluster). The target is used as it
    is up to :data:`AUTO_MAX_DIRECT_TARGET` rows (a gradient step is one pass over it) and quantised into
    :data:`DEFAULT_CLUSTERS` clusters above.
    """
    n_pool = check_int(n_pool, "pool rows", low=0)
    n_target = check_int(n_target, "target rows", low=0)
    if n_pool <= AUTO_MAX_DIRECT_ROWS:
        kp = 0
        why = f"pool of {n_pool} rows <= {AUTO_MAX_DIRECT_ROWS}: no quantisation"
    else:
        kp = DEFAULT_CLUSTERS
        why = f"pool of {n_pool} rows > {AUTO_MAX_DIRECT_ROWS}: {kp} clusters"
    if n_target <= AUTO_MAX_DIRECT_TARGET:
        kt = 0
        why += f"; target of {n_target} rows <= {AUTO_MAX_DIRECT_TARGET}: used as it is"
    else:
        kt = DEFAULT_CLUSTERS
        why += f"; target of {n_target} rows > {AUTO_MAX_DIRECT_TARGET}: {kt} clusters"
    return kp, kt, why


def cover_clusters(chosen: Sequence[int] | np.ndarray, sizes: np.ndarray, need: int,
                   fallback: np.ndarray | None = None) -> np.ndarray:
    """Distinct ``chosen`` clusters in selection order, stopping once their rows number at least ``need``.

    When the chosen clusters hold fewer rows, clusters of ``fallback`` (an order of all clusters, best first)
    that were not chosen are appended until they do (or the clusters run out).
    """
    sz = np.asarray(sizes, dtype=np.int64)
    _, first = np.unique(np.asarray(chosen, dtype=np.int64), return_index=True)
    order = np.asarray(chosen, dtype=np.int64)[np.sort(first)]
    if fallback is not None:
        rest = np.asarray(fallback, dtype=np.int64)
        rest = rest[~np.isin(rest, order)]
        order = np.concatenate([order, rest])
    cum = np.cumsum(sz[order]) if order.size else np.zeros(0, dtype=np.int64)
    n = int(np.searchsorted(cum, need, side="left")) + 1 if need > 0 else 0
    return order[: min(n, order.shape[0])]


def share_order(ids: np.ndarray, read_rows: Callable[[np.ndarray], np.ndarray], target: np.ndarray, n_rows: int,
                *, block_rows: int = REFINE_BLOCK_ROWS) -> np.ndarray:
    """Rows ``ids`` in round-robin order over the target: round r gives every target point (in order) its r-th
    nearest row of ``ids`` unless an earlier one took it; the first ``n_rows`` distinct rows are returned.

    Each target point thus gets an equal share of the selection, as kNN retrieval does, restricted to ``ids``.
    Streamed: each point's ``m = ceil(n_rows / n_target) + 1`` nearest rows are kept over blocks of rows (an
    ``(n_target, m)`` table); when collisions leave fewer than ``n_rows`` rows, m is doubled and the rows are
    read again.
    """
    ids = np.asarray(ids, dtype=np.int64)
    t = np.ascontiguousarray(target, dtype=np.float32)
    n = t.shape[0]
    want = min(int(n_rows), ids.shape[0])
    if want == 0:
        return np.empty(0, dtype=np.int64)
    faiss = _faiss()
    m = min(ids.shape[0], math.ceil(want / n) + 1)
    while True:
        best_d = np.full((n, 0), np.inf, dtype=np.float32)
        best_i = np.zeros((n, 0), dtype=np.int64)
        for s in range(0, ids.shape[0], block_rows):
            blk = ids[s : s + block_rows]
            index = faiss.IndexFlatL2(t.shape[1])
            index.add(np.ascontiguousarray(read_rows(blk), dtype=np.float32))
            d, j = index.search(t, min(m, blk.shape[0]))
            best_d = np.concatenate([best_d, d], axis=1)
            best_i = np.concatenate([best_i, blk[j]], axis=1)
            if best_d.shape[1] > m:
                o = np.lexsort((best_i, best_d), axis=1)[:, :m]
                best_d = np.take_along_axis(best_d, o, axis=1)
                best_i = np.take_along_axis(best_i, o, axis=1)
        o = np.lexsort((best_i, best_d), axis=1)
        best_i = np.take_along_axis(best_i, o, axis=1)
        flat = best_i.T.reshape(-1)  # round-major: round 0 of every target point, then round 1, ...
        _, first = np.unique(flat, return_index=True)
        order = flat[np.sort(first)]
        if order.shape[0] >= want or m >= ids.shape[0]:
            return order[:want]
        m = min(ids.shape[0], 2 * m)


def refine(chosen: Sequence[int] | np.ndarray, members: ClusterMembers, read_rows: Callable[[np.ndarray], np.ndarray],
           target: np.ndarray, n_rows: int, *, how: str = "knn", k: int = 5, over: float = REFINE_OVER,
           fallback: np.ndarray | None = None, block_rows: int = REFINE_BLOCK_ROWS, whole: float = 0.0,
           fill: Callable[..., np.ndarray] | None = None,
           known: KnownNearest | None = None, size: RowF1 | None = None) -> np.ndarray:
    """The row-level second pass: exactly ``min(n_rows, pool rows)`` rows from the chosen clusters.

    The distinct chosen clusters are taken in selection order until they hold ``over * n_rows`` rows (appending
    ``fallback`` clusters when the chosen ones hold fewer than ``n_rows``); their rows are scored against the
    target (:func:`score_rows`) and the ``n_rows`` best are kept, best first (ties: lowest row). Empty clusters
    contribute nothing and a one-row cluster its row. Memory: the candidate rows' ids and scores, one block of
    rows.

    ``whole`` (0 <= whole <= 1) keeps the first chosen clusters whole, without reading or scoring their rows:
    the longest prefix of them (in selection order) holding at most ``whole * n_rows`` rows. Only the rows of
    the clusters after it (those around the budget's boundary) are ranked, and the best of them fill the rest.
    The kept clusters' rows come first (selection order), then the ranked rows, best first.

    ``how="gio"`` keeps nothing whole: ``fill(rows, n)`` (GIO on the rows read, :func:`gioselect.job.select.gio_fill`)
    gives at most ``n`` distinct positions in them, best first; :func:`score_rows` tops up a short answer.

    ``known`` (``how="knn"``): filled with the nearest target rows of the ranked rows that are kept, found while
    scoring them (``picks.csv`` reuses them).

    ``size`` (:class:`gioselect.quantize_f1.RowF1`, a quantised run with the automatic size): ``n_rows`` is the
    cluster-level size the clusters are read for (``over * n_rows`` rows, and ``whole * n_rows`` kept whole); every
    read row is ranked instead of the best ``n_rows`` (``gio``: GIO goes on, fed to ``size`` pick by pick, until
    the rule is done), ``size`` counts their posteriors in that order, and its kept prefix is returned: from 0 rows
    up to every row read.
    """
    n_rows = check_int(n_rows, "rows", low=0)
    sizes = np.diff(members.starts)
    need = math.ceil(max(1.0, float(over)) * n_rows)
    chosen = np.asarray(chosen, dtype=np.int64)
    clusters = cover_clusters(chosen, sizes, need, fallback=None)
    if int(sizes[clusters].sum()) < n_rows:
        clusters = cover_clusters(chosen, sizes, n_rows, fallback=fallback)
    ids = members.rows_of(clusters)  # an engine fetches them in one pass (gioselect.engines.base.Engine.members)
    if size is not None:
        size.how, size.read = how, int(ids.shape[0])
    if how == "none" or ids.shape[0] == 0 or (size is None and ids.shape[0] <= n_rows):
        return ids[:n_rows]
    if how == "gio":
        if fill is None:
            raise InvalidParameterError("refine='gio' needs fill=, the GIO run on the rows")
        rows = np.sort(ids)
        x = np.concatenate([read_rows(rows[a:a + block_rows]) for a in range(0, rows.shape[0], block_rows)])

        def nearest_left(got: np.ndarray) -> np.ndarray:  # the rows GIO did not pick, nearest the target first
            left = np.setdiff1d(np.arange(rows.shape[0]), got)
            return left[np.lexsort((left, score_rows(left, lambda p: x[p], target, k=k, block_rows=block_rows)))]

        if size is not None:  # GIO on every row read, each pick's posterior fed to the rule until it is done
            post = np.asarray(size.posterior(x), dtype=np.float64).reshape(-1)
            got = np.asarray(fill(x, x.shape[0], lambda p: size.add(post[p : p + 1])), dtype=np.int64)
            if not size.done:  # GIO stopped short: the rows nearest the target, in order, go on
                left = nearest_left(got)
                size.add(post[left])
                got = np.concatenate([got, left])
            return rows[got[: size.kept]]
        got = np.asarray(fill(x, n_rows), dtype=np.int64)[:n_rows]
        if got.shape[0] < n_rows:  # GIO stopped short: the rows nearest the target fill the rest
            got = np.concatenate([got, nearest_left(got)[: n_rows - got.shape[0]]])
        return rows[got]
    whole = float(whole)
    if not 0.0 <= whole <= 1.0:
        raise InvalidParameterError(f"refine_whole: expected a number in [0, 1], got {whole!r}")
    n_core = 0
    if whole > 0.0:
        cum = np.cumsum(sizes[clusters])
        n_core = int(np.searchsorted(cum, whole * n_rows, side="right"))
    n_kept = int(sizes[clusters[:n_core]].sum())  # ids holds the clusters' rows in cluster order (rows_of)
    core = ids[:n_kept]
    rest = np.sort(ids[n_kept:])
    room = n_rows - core.shape[0] if size is None else rest.shape[0]  # sized: every read row is ranked
    if how == "share":
        best = share_order(rest, read_rows, target, room, block_rows=block_rows)
    else:
        scores = score_rows(rest, read_rows, target, how=how, k=k, block_rows=block_rows, known=known)
        best = rest[np.lexsort((rest, scores))[:room]]
    order = np.concatenate([core, best]).astype(np.int64)
    if size is not None:  # the rule along the ranking: read the ranked rows' posteriors, in order, until done
        for a in range(0, order.shape[0], block_rows):
            if size.add(size.posterior(read_rows(order[a : a + block_rows]))):
                break
        order = order[: size.kept]
    if known is not None:
        known.keep(order[core.shape[0]:])
    return order


@dataclass(frozen=True)
class ClusterPlan:
    """What the quantise phase does: ``pool_clusters`` / ``target_clusters`` (0 = not quantised) and ``rule``,
    the decision in words (it goes into the CLI output, the manifest and the report)."""

    pool_clusters: int
    target_clusters: int
    rule: str


def plan_clusters(clusters: int | str, target_clusters: int | None, n_pool: int, n_target: int) -> ClusterPlan:
    """Resolve ``clusters`` (``"auto"`` or K >= 0) and ``target_clusters`` (None: as decided for the pool, or
    :func:`auto_clusters`' target rule under ``"auto"``) for a pool of ``n_pool`` and a target of ``n_target``
    rows. An explicit K always wins; K >= ``n_pool`` logs a warning and means no quantisation (every row would be
    its own cluster)."""
    if isinstance(clusters, str):
        if clusters != "auto":
            raise InvalidParameterError(f"clusters: expected 'auto' or an integer >= 0, got {clusters!r}")
        kp, kt, rule = auto_clusters(n_pool, n_target)
        rule = f"auto: {rule}"
    else:
        kp = check_int(clusters, "clusters", low=0)
        kt = kp
        rule = f"explicit: {kp} pool clusters" if kp else "explicit: no quantisation (clusters=0)"
        if kp and kp >= n_pool:
            logger.warning("clusters=%d >= the pool's %d rows: no quantisation (GIO runs on the rows)", kp, n_pool)
            rule += f" >= the pool's {n_pool} rows, so none"
            kp = 0
    if target_clusters is not None:
        kt = check_int(target_clusters, "target_clusters", low=0)
        rule += f"; explicit: {kt} target clusters" if kt else "; explicit: target not quantised"
    if kt >= n_target:
        kt = 0
    return ClusterPlan(int(kp), int(kt), rule)


def select_candidates(mode: str, centroids: np.ndarray, medoids: np.ndarray, norm_sample: np.ndarray,
                      take: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, str]:
    """The quantise phase's candidates: ``(points, resolved mode)``.

    ``medoids`` are the member rows nearest each (non-empty) cluster's centroid (:func:`medoid_ids`),
    ``norm_sample`` a sample of pool rows whose norms say whether the pool lies on the unit sphere (then
    ``"renormalized"`` scales the centroids to norm 1; otherwise it falls back to the raw centroids), ``take``
    reads pool rows by id (used for the medoids only: K rows).
    """
    resolved = resolve_candidates(mode, on_unit_sphere(norm_sample))
    points = candidate_points(resolved, centroids, lambda: take(np.asarray(medoids, dtype=np.int64)))
    logger.info("quantised candidates: %s (%d clusters)", resolved, points.shape[0])
    return points, resolved


def quantized_rows(picks: np.ndarray, members: ClusterMembers, take: Callable[[np.ndarray], np.ndarray],
                   target: np.ndarray, candidates: np.ndarray, n_rows: int | None, *, how: str = "knn",
                   k: int = 5, over: float = REFINE_OVER, whole: float = REFINE_WHOLE, limit: int | None = None,
                   seed: int = 0, fill: Callable[..., np.ndarray] | None = None,
                   block_rows: int = REFINE_BLOCK_ROWS, known: KnownNearest | None = None,
                   size: RowF1 | None = None) -> np.ndarray:
    """The explode phase: pool rows of a quantised selection (``take`` reads at most ``block_rows`` at a time).

    Without a row count (``n_rows=None``: GIO's stopping rule set the size) or with ``how="none"`` this is the
    paper's explode (:func:`explode`: every chosen cluster whole, ``limit`` cutting the last one). Otherwise the
    row-level pass (:func:`refine`, ``whole`` of the size filled by the first chosen clusters whole) returns
    exactly ``min(n_rows, pool rows)`` rows, taken from the chosen clusters and, when those hold too few, from
    the clusters whose candidates lie nearest the target (mean
    distance to their ``k`` nearest target points). ``known``: see :func:`refine`.
    """
    picks = np.asarray(picks, dtype=np.int64)
    if how == "none" or n_rows is None:
        return explode(picks, members, limit=limit, seed=seed)
    rows = min(int(n_rows), int(members.starts[-1]))
    cand = np.ascontiguousarray(candidates, dtype=np.float32)
    fallback = None
    if int(np.diff(members.starts)[np.unique(picks)].sum()) < rows:
        fallback = np.lexsort((np.arange(cand.shape[0]),
                               score_rows(np.arange(cand.shape[0]), lambda i: cand[i], target, how="knn", k=k)))
    return refine(picks, members, take, target, rows, how=how, k=k, over=over, fallback=fallback, whole=whole,
                  fill=fill, block_rows=block_rows, known=known, size=size)
