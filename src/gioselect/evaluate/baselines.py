"""The baselines GIO is judged against at equal budget, and :data:`BASELINES`, their registry by name.

Every baseline returns int64 pool row indices, ``budget`` of them unless the pool is smaller, and streams the
pool in blocks of rows (never a pool x target matrix).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from ..errors import GIOError, InvalidParameterError, MissingDependencyError
from ..peers import dsir, facility_location
from ..validation import check_embeddings, check_int
from .inputs import pool_shape, subsample_rows
from .twosample import MEDIAN_ROWS, check_bandwidth, median_distance

logger = logging.getLogger(__name__)

# Entries of one pool-block x target-chunk kernel matrix in kernel_herding (4 Mi float64 = 32 MiB).
_HERDING_BLOCK_ELEMS = 1 << 22


def random_baseline(n_pool: int, budget: int, *, seed: int) -> np.ndarray:
    """``min(budget, n_pool)`` distinct pool rows drawn uniformly (seeded), in draw order, int64."""
    n = check_int(n_pool, "n_pool", low=1)
    b = check_int(budget, "budget", low=0)
    rng = np.random.default_rng(check_int(seed, "seed", low=0))
    return rng.choice(n, size=min(b, n), replace=False).astype(np.int64)


def full_pool(n_pool: int) -> np.ndarray:
    """Every pool row, ``0..n_pool-1`` (int64): the no-selection reference line."""
    return np.arange(check_int(n_pool, "n_pool", low=1), dtype=np.int64)


def _blocked_knn(pool: Any, target: np.ndarray, k: int, block_rows: int) -> np.ndarray:
    """Indices (n_target, k) of each target point's k nearest pool rows, exact, streaming the pool.

    Sorted by (distance, row index): ties go to the lower row. Memory: one pool block plus O(n_target k).
    """
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a core dependency
        raise MissingDependencyError("knn_retrieval needs faiss; install it with `pip install faiss-cpu`") from exc
    n_t, dim = target.shape
    n_pool = pool.shape[0]
    best_d = np.zeros((n_t, 0), dtype=np.float32)
    best_i = np.zeros((n_t, 0), dtype=np.int64)
    for r0 in range(0, n_pool, block_rows):
        blk = check_embeddings(pool[r0 : r0 + block_rows], "pool", dim=dim, row_offset=r0)
        kk = min(k, blk.shape[0])
        d, i = faiss.knn(target, blk, kk)
        cat_d = np.concatenate([best_d, d.astype(np.float32, copy=False)], axis=1)
        cat_i = np.concatenate([best_i, i.astype(np.int64, copy=False) + r0], axis=1)
        order = np.lexsort((cat_i, cat_d), axis=-1)[:, :k]
        best_d = np.take_along_axis(cat_d, order, axis=1)
        best_i = np.take_along_axis(cat_i, order, axis=1)
    return best_i


def _round_robin(ranked: np.ndarray, budget: int, n_pool: int) -> np.ndarray | None:
    """Round-robin over target points, each taking its nearest untaken row; None if a ranked list runs out."""
    n_t, k = ranked.shape
    taken = np.zeros(n_pool, dtype=bool)
    ptr = np.zeros(n_t, dtype=np.int64)
    out = np.empty(budget, dtype=np.int64)
    got = 0
    while got < budget:
        for i in range(n_t):
            p = int(ptr[i])
            row = ranked[i]
            while p < k and taken[row[p]]:
                p += 1
            if p == k:
                return None
            j = int(row[p])
            taken[j] = True
            ptr[i] = p + 1
            out[got] = j
            got += 1
            if got == budget:
                break
    return out


def knn_retrieval(pool: Any, target: Any, budget: int, *, block_rows: int = 65536) -> np.ndarray:
    """Nearest-neighbour retrieval: the embedding analogue of the paper's BM25 baseline.

    Round-robin over the target points in order: in each round every target point takes its nearest pool
    row not taken yet (by anyone), so in round r it gets roughly its r-th nearest; rounds repeat until
    ``budget`` rows are taken (the last round may stop part-way, favouring the first target points).

    The search is exact and blocked (faiss brute force on ``block_rows`` pool rows at a time, merged into a
    running top-k per target point), starting from a depth k a little above ``budget / n_target`` and
    doubling it when some target point's list runs out. Memory: one pool block plus ``n_target x k``;
    never a pool x target matrix.

    Parameters
    ----------
    pool : array of shape (M, d)
        A memory map is fine (read block by block).
    target : array of shape (n, d)
    budget : int >= 0
    block_rows : int, default 65536

    Returns
    -------
    ndarray of int64, shape (min(budget, M),)
        Pool rows in the order taken, no repeats.
    """
    pool_a, n_pool, dim = pool_shape(pool, "pool")
    x = check_embeddings(target, "target", dim=dim)
    b = min(check_int(budget, "budget", low=0), n_pool)
    br = check_int(block_rows, "block_rows", low=1)
    if b == 0:
        return np.zeros(0, dtype=np.int64)
    rounds = -(-b // x.shape[0])
    k = min(n_pool, 2 * rounds + 16)
    while True:
        ranked = _blocked_knn(pool_a, x, k, br)
        out = _round_robin(ranked, b, n_pool)
        if out is not None:
            return out
        if k >= n_pool:  # a full ranking always holds an untaken row while fewer than M are taken
            raise GIOError(f"knn_retrieval: internal error, a full ranking of {n_pool} rows ran out")
        logger.info("knn_retrieval: neighbour lists of depth %d ran out; searching again with %d", k,
                    min(n_pool, 2 * k))
        k = min(n_pool, 2 * k)


def kernel_herding(pool: Any, target: Any, budget: int, *, bandwidth: float | str = "median", seed: int = 0,
                   block_rows: int = 16384, memory_budget: int | None = None) -> np.ndarray:
    """Greedy MMD minimisation (kernel herding without repeats) towards the target.

    Objective: the (biased, V-statistic) squared MMD between the selection S and the target X,
    ``MMD^2(S, X) = mean_{a,b in S} k(a,b) - 2 mean_{a in S, x in X} k(a,x) + mean_{x,x' in X} k(x,x')``,
    Gaussian kernel ``k(a,b) = exp(-|a-b|^2 / (2 h^2))``. With t rows picked, adding candidate c changes it by
    a term that, since ``k(c,c) = 1``, is minimised by the maximiser of::

        score(c) = mean_i k(c, x_i) - sum_{s in S} k(c, s) / (t + 1)

    over the unused candidates (ties: lowest row). So each pick is exactly the best greedy MMD step. The
    first term is computed once (blocked, float64); the second is a running pool-length sum updated after
    each pick in O(M d): one float64 matrix-vector product of the pool with the pick, on pool rows converted
    to float64 once and kept (``M d`` float64, when that fits in ``memory_budget``; otherwise every pick
    converts the pool again, block by block). ``|c - mu|^2`` is computed once. Total O(M n d + budget M d)
    time; O(M) extra memory plus the kept rows. The order is budget-independent: the first N picks of a
    larger budget are the picks at budget N.

    Parameters
    ----------
    pool : array of shape (M, d)
        A memory map is fine (read block by block, once per pick).
    target : array of shape (n, d)
    budget : int >= 0
    bandwidth : float or "median", default "median"
        ``h``; ``"median"`` takes the median pairwise distance of a seeded sample of up to 500 target rows
        and 500 pool rows.
    seed : int, default 0
        Seeds the bandwidth sample.
    block_rows : int, default 16384
        Pool rows per block.
    memory_budget : int, optional
        Bytes the kept float64 pool rows may take (``8 M d``); beyond it the pool is read block by block at
        every pick. Default: :func:`gioselect.pipeline.default_memory_budget` (a quarter of physical memory,
        at least 512 MiB). The picks are the same either way.

    Returns
    -------
    ndarray of int64, shape (min(budget, M),)
        Pool rows in pick order, no repeats.
    """
    from ..job.config import default_memory_budget

    pool_a, n_pool, dim = pool_shape(pool, "pool")
    x = check_embeddings(target, "target", dim=dim).astype(np.float64)
    mem = default_memory_budget() if memory_budget is None else check_int(memory_budget, "memory_budget", low=1)
    b = min(check_int(budget, "budget", low=0), n_pool)
    br = check_int(block_rows, "block_rows", low=1)
    rng = np.random.default_rng(check_int(seed, "seed", low=0))
    h = check_bandwidth(bandwidth)
    if b == 0:
        return np.zeros(0, dtype=np.int64)
    if h is None:
        half = MEDIAN_ROWS // 2
        xs = subsample_rows(x, half, rng)
        prow = np.arange(n_pool) if n_pool <= half else np.sort(rng.choice(n_pool, size=half, replace=False))
        ps = check_embeddings(pool_a[prow], "pool", dim=dim).astype(np.float64)
        h = median_distance(np.concatenate([xs, ps], axis=0))
    gamma = 1.0 / (2.0 * h * h)
    mu = x.mean(axis=0)
    xc = x - mu
    x_sq = np.einsum("ij,ij->i", xc, xc)
    chunk = max(1, _HERDING_BLOCK_ELEMS // min(br, n_pool))  # target rows per kernel block

    cache: dict[int, np.ndarray] = {}
    # More than one block: the float64 rows (not centred) are kept when they fit, so that a pick costs one
    # matrix-vector product instead of a float64 conversion of the whole pool (memory-bound: 118 MB at
    # 38,000 x 384). Same products, same sums as converting the blocks again: the same picks.
    whole: np.ndarray | None = np.empty((n_pool, dim)) if n_pool > br and 8 * n_pool * dim <= mem else None

    def block(r0: int, validate: bool = False) -> np.ndarray:
        """Centred float64 pool rows r0:r0+br (kept when the pool is a single block)."""
        if r0 in cache:
            return cache[r0]
        raw = pool_a[r0 : r0 + br]
        if validate:  # the first pass checks every row once; later passes only read
            raw = check_embeddings(raw, "pool", dim=dim, row_offset=r0)
        raw64 = np.asarray(raw, dtype=np.float64)
        if whole is not None:
            whole[r0 : r0 + raw64.shape[0]] = raw64
        blk = raw64 - mu
        if n_pool <= br:
            cache[r0] = blk
        return blk

    c_sq = np.empty(n_pool)
    mean_k = np.zeros(n_pool)
    for r0 in range(0, n_pool, br):
        blk = block(r0, validate=True)
        rows = slice(r0, r0 + blk.shape[0])
        c_sq[rows] = np.einsum("ij,ij->i", blk, blk)
        acc = np.zeros(blk.shape[0])
        for t0 in range(0, xc.shape[0], chunk):
            d2 = blk @ xc[t0 : t0 + chunk].T
            d2 *= -2.0
            d2 += c_sq[rows, None]
            d2 += x_sq[None, t0 : t0 + chunk]
            np.maximum(d2, 0.0, out=d2)
            d2 *= -gamma
            acc += np.exp(d2, out=d2).sum(axis=1)
        mean_k[rows] = acc / xc.shape[0]

    run = np.zeros(n_pool)
    used = np.zeros(n_pool, dtype=bool)
    out = np.empty(b, dtype=np.int64)
    for t in range(b):
        score = mean_k - run / (t + 1)
        score[used] = -np.inf
        j = int(np.argmax(score))
        used[j] = True
        out[t] = j
        if t + 1 == b:
            break
        q = np.asarray(pool_a[j], dtype=np.float64) - mu  # the pick, centred
        q_sq = float(q @ q)
        mu_q = float(mu @ q)
        if whole is not None:  # (c - mu).q = c.q - mu.q over the kept rows, as the blocked loop below
            dots = whole @ q
            dots -= mu_q
            d2 = c_sq + q_sq - 2.0 * dots
            np.maximum(d2, 0.0, out=d2)
            d2 *= -gamma
            run += np.exp(d2, out=d2)
            continue
        for r0 in range(0, n_pool, br):
            rows = slice(r0, min(r0 + br, n_pool))
            if r0 in cache:
                dots = cache[r0] @ q
            else:  # (c - mu).q = c.q - mu.q: one float64 conversion of the block, no centred copy
                dots = np.asarray(pool_a[rows], dtype=np.float64) @ q
                dots -= mu_q
            d2 = c_sq[rows] + q_sq - 2.0 * dots
            np.maximum(d2, 0.0, out=d2)
            d2 *= -gamma
            run[rows] += np.exp(d2, out=d2)
    logger.info("kernel herding: %d picks from %d pool rows, bandwidth %.6g, pool rows %s", b, n_pool, h,
                "kept as float64" if whole is not None or n_pool <= br else "read again at every pick")
    return out


class Baseline(Protocol):
    """The one signature of :data:`BASELINES`: ``(pool, target, budget, *, seed=0) -> int64 pool rows``."""

    def __call__(self, pool: Any, target: Any, budget: int, *, seed: int = 0) -> np.ndarray: ...


def _random_entry(pool: Any, target: Any, budget: int, *, seed: int = 0) -> np.ndarray:
    """random_baseline over the pool's rows."""
    return random_baseline(pool_shape(pool, "pool")[1], budget, seed=seed)


def _knn_entry(pool: Any, target: Any, budget: int, *, seed: int = 0) -> np.ndarray:
    """knn_retrieval (deterministic: the seed is unused)."""
    return knn_retrieval(pool, target, budget)


def _herding_entry(pool: Any, target: Any, budget: int, *, seed: int = 0) -> np.ndarray:
    """kernel_herding with the median bandwidth."""
    return kernel_herding(pool, target, budget, seed=seed)


def _facility_entry(pool: Any, target: Any, budget: int, *, seed: int = 0) -> np.ndarray:
    """facility_location (deterministic: the seed is unused)."""
    return facility_location(pool, target, budget)


DSIR_NEEDS_TEXT = ("dsir: needs the raw text of the pool and the target rows (it resamples by hashed n-gram "
                    "importance weights of the text, not by embeddings); pass pool_texts= and target_texts=")


def _dsir_entry(pool: Any, target: Any, budget: int, *, seed: int = 0, pool_texts: Sequence[str] | None = None,
                target_texts: Sequence[str] | None = None) -> np.ndarray:
    """dsir on the texts of the pool's and the target's rows (the embeddings are unused)."""
    if pool_texts is None or target_texts is None:
        raise InvalidParameterError(DSIR_NEEDS_TEXT)
    return dsir(pool_texts, target_texts, budget, seed=seed)


def _full_entry(pool: Any, target: Any, budget: int, *, seed: int = 0) -> np.ndarray:
    """full_pool: every row, whatever the budget."""
    return full_pool(pool_shape(pool, "pool")[1])


#: Baselines by name, all with the signature of :class:`Baseline`. ``"full"`` ignores the budget.
BASELINES: dict[str, Baseline] = {
    "random": _random_entry,
    "knn": _knn_entry,
    "herding": _herding_entry,
    "facility": _facility_entry,
    "dsir": _dsir_entry,
    "full": _full_entry,
}
