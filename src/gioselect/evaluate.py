"""Yardsticks that judge a selection, and the baselines to judge it against at equal budget.

Why more than one number
------------------------
The k-NN estimate of KL(target || selection) is one-sided: in high dimensions a cluster centre is nearer to
every target point than the target points are to each other, so a selection that hugs the target's cluster
centres scores *better* than a random sample of the target itself (see ``docs/algorithm.md``,
"What the relaxed objective does and does not reward"). A selection is therefore judged two-sided:

* :func:`kl_both_ways` - KL(target || selection) and KL(selection || target), k-NN estimates;
* :func:`mmd2_unbiased` and :func:`energy_distance` - kernel two-sample distances (unbiased U-statistics);
* :func:`coverage` - the share of target points that have a selected point within their own k-NN radius;
* :func:`duplicate_rate`, :func:`label_proportions` / :func:`total_variation` - repeats and class ratios;
* :func:`downstream_accuracy` - a proxy classifier trained on the selection (scikit-learn, optional).

:func:`evaluate_selection` computes all of them in one dict. Always measure against a *held-out* part of the
target (:func:`split_target`), never the part used for selecting: a selection that copies the target it was
fitted to would otherwise look perfect.

Baselines
---------
Every baseline returns int64 pool row indices, ``budget`` of them unless the pool is smaller:

* :func:`random_baseline` - uniform without replacement (seeded);
* :func:`knn_retrieval` - the embedding analogue of the paper's BM25 baseline: round-robin nearest neighbours;
* :func:`kernel_herding` - greedy MMD minimisation (kernel herding without repeats);
* :func:`gioselect.peers.facility_location` (``"facility"``) - greedy facility location over the target
  (clipped cosine similarity, lazy greedy in blocks);
* :func:`gioselect.peers.dsir` (``"dsir"``) - hashed n-gram importance resampling (Xie et al. 2023) on the raw
  *text* of the pool and the target; it is the one method that needs ``pool_texts`` / ``target_texts``;
* :func:`full_pool` - the whole pool.

:data:`BASELINES` maps their names (chosen at the CLI edge) to callables with one signature
``(pool, target, budget, *, seed=0) -> indices`` (the ``"dsir"`` entry also takes ``pool_texts=`` and
``target_texts=`` and refuses to run without them). :func:`compare_methods` runs GIO and the baselines at equal
budgets on a target split into a selecting part and a held-out part, with an oracle line;
:func:`plot_comparison` draws each metric against selection size.

Memory
------
Pairwise sums are computed in blocks of at most ``block_rows x block_rows`` distances; the baselines stream
the pool in blocks of rows and keep only pool-length vectors (never a pool x target matrix).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .divergence import kl_knn, knn_distances
from .errors import GIOError, InvalidInputError, InvalidParameterError, InvalidTypeError, MissingDependencyError
from .peers import dsir, facility_location
from .validation import check_choice, check_embeddings, check_int, check_real

__all__ = [
    "BASELINES",
    "COMPARE_METRICS",
    "METHODS",
    "METRIC_DIRECTION",
    "Baseline",
    "compare_methods",
    "coverage",
    "downstream_accuracy",
    "duplicate_rate",
    "energy_distance",
    "evaluate_selection",
    "full_pool",
    "kernel_herding",
    "kl_both_ways",
    "knn_retrieval",
    "label_proportions",
    "median_heuristic",
    "metric_header",
    "mmd2_unbiased",
    "plot_comparison",
    "random_baseline",
    "split_target",
    "total_variation",
]

logger = logging.getLogger(__name__)

#: Rows (and columns) of one block of pairwise distances in the two-sample statistics: 2048^2 float64 = 32 MiB.
DEFAULT_BLOCK_ROWS = 2048
#: Rows sampled for the median heuristic (about 500k pairwise distances).
MEDIAN_ROWS = 1000
# Entries of one pool-block x target-chunk kernel matrix in kernel_herding (4 Mi float64 = 32 MiB).
_HERDING_BLOCK_ELEMS = 1 << 22
_EXPERIMENTS_HINT = "pip install 'gioselect[experiments]'"
_MODELS = ("logreg", "knn")


# ---------------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------------
def pool_shape(arr: Any, name: str) -> tuple[Any, int, int]:
    """Return ``(array, n_rows, dim)`` for a 2-D array-like without copying ndarrays/memmaps."""
    a = arr if hasattr(arr, "shape") and hasattr(arr, "__getitem__") else np.asarray(arr)
    shape = tuple(a.shape)
    if len(shape) != 2:
        raise InvalidInputError(f"{name}: expected a 2-D array of shape (rows, dimensions), got shape {shape}")
    if shape[0] == 0:
        raise InvalidInputError(f"{name}: is empty (0 rows); at least 1 row is needed")
    if shape[1] == 0:
        raise InvalidInputError(f"{name}: has 0 columns; embeddings need at least one dimension")
    return a, int(shape[0]), int(shape[1])


def _check_indices(indices: Any, n_pool: int, name: str = "indices") -> np.ndarray:
    """Validate 1-D integer row indices into a pool of ``n_pool`` rows; returns int64."""
    a = np.asarray(indices)
    if a.ndim != 1:
        raise InvalidInputError(f"{name}: expected a 1-D array of pool row indices, got shape {a.shape}")
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise InvalidTypeError(f"{name}: expected integer pool row indices, got dtype {a.dtype}")
    bad = np.flatnonzero((a < 0) | (a >= n_pool))
    if bad.size:
        i = int(bad[0])
        raise InvalidInputError(
            f"{name}: position {i} holds {int(a[i])}, outside the pool's rows 0..{n_pool - 1} "
            f"({bad.size} out-of-range index(es) in all)"
        )
    return a.astype(np.int64, copy=False)


def _check_labels(labels: Any, n: int, name: str, what: str) -> np.ndarray:
    """A 1-D label array of length ``n`` (``what`` names the rows it must match)."""
    a = np.asarray(labels)
    if a.ndim != 1:
        raise InvalidInputError(f"{name}: expected a 1-D array of labels, got shape {a.shape}")
    if a.shape[0] != n:
        raise InvalidInputError(f"{name}: has {a.shape[0]} labels, expected {n} (one per row of {what})")
    return a


def _selection(selection: Any, dim: int) -> np.ndarray:
    """Validate a selection's embeddings; 0 rows allowed (an empty selection is measurable, as NaN)."""
    a = np.asarray(selection)
    if a.ndim == 2 and a.shape[0] == 0:
        if a.shape[1] != dim:
            raise InvalidInputError(f"selection: has dimension {a.shape[1]}, expected {dim} (the target's)")
        return np.zeros((0, dim), dtype=np.float32)
    return check_embeddings(a, "selection", dim=dim)


def _subsample(a: np.ndarray, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``max_rows`` rows of ``a``, drawn without replacement (all of them, in order, if fewer)."""
    if a.shape[0] <= max_rows:
        return a
    keep = np.sort(rng.choice(a.shape[0], size=max_rows, replace=False))
    return a[keep]


def _check_bandwidth(bandwidth: Any) -> float | None:
    """``None`` for ``"median"``, else the positive finite bandwidth."""
    if isinstance(bandwidth, str):
        check_choice(bandwidth, "bandwidth", ["median"])
        return None
    return check_real(bandwidth, "bandwidth", low=0.0, low_open=True)


def _median_distance(points: np.ndarray) -> float:
    """Median of the pairwise distances (i < j) of a small float64 array; positive (falls back if 0)."""
    n = points.shape[0]
    if n < 2:
        logger.warning("median heuristic: fewer than 2 points; using bandwidth 1.0")
        return 1.0
    c = points - points.mean(axis=0)
    sq = np.einsum("ij,ij->i", c, c)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (c @ c.T)
    iu = np.triu_indices(n, k=1)
    dist = np.sqrt(np.maximum(d2[iu], 0.0))
    med = float(np.median(dist))
    if med > 0.0:
        return med
    pos = dist[dist > 0.0]
    if pos.size:
        logger.warning("median heuristic: over half the pairs coincide; using the mean positive distance")
        return float(pos.mean())
    logger.warning("median heuristic: all sampled points coincide; using bandwidth 1.0")
    return 1.0


def median_heuristic(x: Any, y: Any = None, *, max_rows: int = MEDIAN_ROWS, seed: int = 0) -> float:
    """Median pairwise Euclidean distance of a seeded subsample of ``x`` (or of ``x`` and ``y`` together).

    The Gaussian kernel used here is ``exp(-|a - b|^2 / (2 h^2))`` and the heuristic sets ``h`` to this median.
    Fix it once from the (held-out) target to make MMD values of different selections comparable, as
    :func:`evaluate_selection` does.

    Parameters
    ----------
    x : array of shape (n, d)
    y : array of shape (m, d), optional
        Pooled with ``x`` (the subsample is drawn from the rows of both).
    max_rows : int, default 1000
        Rows in the subsample (the pairwise distances are ``max_rows^2 / 2``).
    seed : int, default 0

    Returns
    -------
    float
        The median; if it is 0 (more than half the pairs coincide) the mean positive distance, and 1.0 if
        every sampled point coincides (both logged).
    """
    xs = check_embeddings(x, "x")
    ys = None if y is None else check_embeddings(y, "y", dim=xs.shape[1])
    mr = check_int(max_rows, "max_rows", low=2)
    rng = np.random.default_rng(check_int(seed, "seed", low=0))
    return _median_of_union(xs, ys, mr, rng)


def _median_of_union(x: Any, y: Any, max_rows: int, rng: np.random.Generator) -> float:
    """median_heuristic on valid inputs; ``x``/``y`` may be memmaps (only the sampled rows are read)."""
    nx = x.shape[0]
    ny = 0 if y is None else y.shape[0]
    total = nx + ny
    pick = np.arange(total) if total <= max_rows else np.sort(rng.choice(total, size=max_rows, replace=False))
    parts = [np.asarray(x[pick[pick < nx]], dtype=np.float64)]
    if y is not None:
        parts.append(np.asarray(y[pick[pick >= nx] - nx], dtype=np.float64))
    return _median_distance(np.concatenate(parts, axis=0))


def _pair_sum(a: np.ndarray, b: np.ndarray | None, fn: Callable[[np.ndarray], np.ndarray],
              block_rows: int) -> float:
    """sum_{i,j} fn(|a_i - b_j|^2) in blocks; with ``b=None`` the sum is over i != j of a with itself.

    Inputs are float64 and already centred (the expanded distance formula loses less that way). For the
    self-sum only blocks on and above the diagonal are computed; the diagonal is excluded by index.
    """
    a_sq = np.einsum("ij,ij->i", a, a)
    same = b is None
    bb_all = a if b is None else b
    b_sq = a_sq if b is None else np.einsum("ij,ij->i", b, b)
    total = 0.0
    for r0 in range(0, a.shape[0], block_rows):
        aa = a[r0 : r0 + block_rows]
        for c0 in range(r0 if same else 0, bb_all.shape[0], block_rows):
            bb = bb_all[c0 : c0 + block_rows]
            d2 = aa @ bb.T
            d2 *= -2.0
            d2 += a_sq[r0 : r0 + aa.shape[0], None]
            d2 += b_sq[None, c0 : c0 + bb.shape[0]]
            np.maximum(d2, 0.0, out=d2)
            vals = fn(d2)
            if same and c0 == r0:
                np.fill_diagonal(vals, 0.0)  # square block: i == j sits on its diagonal
                total += float(vals.sum())
            elif same:
                total += 2.0 * float(vals.sum())  # the mirror block below the diagonal
            else:
                total += float(vals.sum())
    return total


def _two_sample_inputs(x: Any, y: Any, max_rows: Any, seed: Any, block_rows: Any
                       ) -> tuple[np.ndarray, np.ndarray, np.random.Generator, int]:
    """Validate, subsample (seeded) and jointly centre x and y for the U-statistics."""
    xs = check_embeddings(x, "x", min_rows=2)
    ys = check_embeddings(y, "y", dim=xs.shape[1], min_rows=2)
    mr = check_int(max_rows, "max_rows", low=2)
    br = check_int(block_rows, "block_rows", low=1)
    rng = np.random.default_rng(check_int(seed, "seed", low=0))
    if xs.shape[0] > mr or ys.shape[0] > mr:
        logger.info("two-sample statistic: subsampling to at most %d rows per side (from %d and %d)",
                    mr, xs.shape[0], ys.shape[0])
    xs = _subsample(xs, mr, rng)
    ys = _subsample(ys, mr, rng)
    x64 = xs.astype(np.float64)
    y64 = ys.astype(np.float64)
    mu = (x64.sum(axis=0) + y64.sum(axis=0)) / (x64.shape[0] + y64.shape[0])
    return x64 - mu, y64 - mu, rng, br


# ---------------------------------------------------------------------------------------------------------
# the split
# ---------------------------------------------------------------------------------------------------------
def split_target(target: np.ndarray, holdout: float = 0.5, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split the target's rows into a part to select with and a held-out part to measure against.

    Parameters
    ----------
    target : array of shape (n, d), n >= 2
        Only its number of rows is used.
    holdout : float in (0, 1), default 0.5
        Share of rows held out; rounded, and at least one row goes to each part.
    seed : int, default 0

    Returns
    -------
    (select_idx, holdout_idx) : two sorted int64 arrays of row indices, disjoint, together ``0..n-1``.
    """
    shape = np.shape(target)
    if len(shape) < 1:
        raise InvalidInputError("target: expected an array of rows, got a scalar")
    n = int(shape[0])
    if n < 2:
        raise InvalidInputError(f"target: has {n} row(s); splitting needs at least 2")
    h = check_real(holdout, "holdout", low=0.0, high=1.0, low_open=True, high_open=True)
    rng = np.random.default_rng(check_int(seed, "seed", low=0))
    n_hold = min(max(round(h * n), 1), n - 1)
    perm = rng.permutation(n)
    return np.sort(perm[n_hold:]).astype(np.int64), np.sort(perm[:n_hold]).astype(np.int64)


# ---------------------------------------------------------------------------------------------------------
# yardsticks
# ---------------------------------------------------------------------------------------------------------
def kl_both_ways(target: np.ndarray, selection: np.ndarray, k: int = 5) -> dict[str, float]:
    """k-NN estimates of KL(target || selection) and KL(selection || target).

    Parameters
    ----------
    target : array of shape (n, d)
        Held-out target rows.
    selection : array of shape (m, d)
        The selected rows (0 rows allowed). Duplicate rows make k-NN distances zero (floored at
        :data:`gioselect.divergence.MIN_DIST`) and blow up the estimate: pass distinct rows.
    k : int, default 5

    Returns
    -------
    dict
        ``{"kl_target_sel": KL(target||selection), "kl_sel_target": KL(selection||target)}`` by
        :func:`gioselect.divergence.kl_knn`. KL(a || b) needs more than k rows in ``a`` and at least k in
        ``b``; when that fails the value is NaN and a warning is logged saying why.
    """
    k_ = check_int(k, "k", low=1)
    x = check_embeddings(target, "target")
    s = _selection(selection, x.shape[1])
    out: dict[str, float] = {}
    for key, (a, an), (b, bn) in (
        ("kl_target_sel", (x, "target"), (s, "selection")),
        ("kl_sel_target", (s, "selection"), (x, "target")),
    ):
        if a.shape[0] <= k_ or b.shape[0] < k_:
            logger.warning(
                "%s is NaN: KL(%s || %s) needs more than k=%d %s rows and at least k %s rows; have %d and %d",
                key, an, bn, k_, an, bn, a.shape[0], b.shape[0],
            )
            out[key] = math.nan
        else:
            out[key] = kl_knn(a, b, k_)
    return out


def mmd2_unbiased(x: Any, y: Any, *, bandwidth: float | str = "median", max_rows: int = 5000, seed: int = 0,
                  block_rows: int = DEFAULT_BLOCK_ROWS) -> float:
    """Unbiased estimate of the squared MMD between the distributions of x and y, Gaussian kernel.

    ``MMD^2_u = sum_{i!=j} k(x_i, x_j) / (n(n-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1))
    - 2 sum_{i,j} k(x_i, y_j) / (n m)`` with ``k(a, b) = exp(-|a - b|^2 / (2 h^2))``.

    Parameters
    ----------
    x : array of shape (n, d), n >= 2
    y : array of shape (m, d), m >= 2
    bandwidth : float or "median", default "median"
        ``h``; ``"median"`` takes the median pairwise distance of a seeded subsample of x ∪ y
        (:func:`median_heuristic`). Pass a fixed number to compare several y against one x.
    max_rows : int, default 5000
        Each side larger than this is subsampled (seeded, without replacement) to this many rows.
    seed : int, default 0
        Seeds the subsamples.
    block_rows : int, default 2048
        Rows/columns of one block of kernel values; no larger matrix is built.

    Returns
    -------
    float
        Near 0 (either sign) when x and y come from one distribution, positive when they differ. Not 0 when
        x and y are the same multiset: it is then ``(2/n) (mean_{i!=j} k(x_i, x_j) - 1) < 0``.
    """
    h = _check_bandwidth(bandwidth)
    xc, yc, rng, br = _two_sample_inputs(x, y, max_rows, seed, block_rows)
    if h is None:
        h = _median_of_union(xc, yc, MEDIAN_ROWS, rng)
    gamma = 1.0 / (2.0 * h * h)

    def kern(d2: np.ndarray) -> np.ndarray:
        d2 *= -gamma
        return np.exp(d2, out=d2)

    n, m = xc.shape[0], yc.shape[0]
    sxx = _pair_sum(xc, None, kern, br)
    syy = _pair_sum(yc, None, kern, br)
    sxy = _pair_sum(xc, yc, kern, br)
    return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m)


def energy_distance(x: Any, y: Any, *, max_rows: int = 5000, seed: int = 0,
                    block_rows: int = DEFAULT_BLOCK_ROWS) -> float:
    """Unbiased (U-statistic) energy distance between the distributions of x and y.

    ``E = 2 sum_{i,j} |x_i - y_j| / (n m) - sum_{i!=j} |x_i - x_j| / (n(n-1)) - sum_{i!=j} |y_i - y_j| / (m(m-1))``.

    Parameters
    ----------
    x : array of shape (n, d), n >= 2
    y : array of shape (m, d), m >= 2
    max_rows : int, default 5000
        Each side larger than this is subsampled (seeded, without replacement) to this many rows.
    seed : int, default 0
    block_rows : int, default 2048
        Rows/columns of one block of distances.

    Returns
    -------
    float
        Near 0 (either sign) for one distribution, positive for different ones. When x and y are the same
        multiset it equals ``-(2/n) mean_{i!=j} |x_i - x_j| < 0`` (the cross term counts the zero i == j pairs).
    """
    xc, yc, _rng, br = _two_sample_inputs(x, y, max_rows, seed, block_rows)

    def dist(d2: np.ndarray) -> np.ndarray:
        return np.sqrt(d2, out=d2)

    n, m = xc.shape[0], yc.shape[0]
    sxx = _pair_sum(xc, None, dist, br)
    syy = _pair_sum(yc, None, dist, br)
    sxy = _pair_sum(xc, yc, dist, br)
    return 2.0 * sxy / (n * m) - sxx / (n * (n - 1)) - syy / (m * (m - 1))


def coverage(target: Any, selection: Any, k: int = 5) -> float:
    """Share of target points that have a selected point within their own k-NN radius.

    Target point ``x_i`` is covered when its nearest selected point is no farther than ``rho_k(i)``, its k-th
    nearest neighbour among the other target points (:func:`gioselect.divergence.knn_distances` with
    ``exclude_self``). Distances are floored at ``MIN_DIST``, so a selection containing the target covers it.

    Parameters
    ----------
    target : array of shape (n, d), n > k
    selection : array of shape (m, d), m >= 1
    k : int, default 5

    Returns
    -------
    float in [0, 1]
    """
    k_ = check_int(k, "k", low=1)
    x = check_embeddings(target, "target")
    if x.shape[0] <= k_:
        raise InvalidInputError(f"target: has {x.shape[0]} rows; coverage with k={k_} needs more than k")
    s = check_embeddings(selection, "selection", dim=x.shape[1])
    rho = knn_distances(x, x, k_, exclude_self=True)[:, -1]
    near = knn_distances(x, s, 1)[:, 0]
    return float(np.mean(near <= rho))


def duplicate_rate(indices: Any) -> float:
    """Share of picks that repeat an earlier pick: ``1 - distinct / len``; 0.0 for no picks.

    Parameters
    ----------
    indices : 1-D array of int
    """
    a = np.asarray(indices)
    if a.ndim != 1:
        raise InvalidInputError(f"indices: expected a 1-D array, got shape {a.shape}")
    if a.size == 0:
        return 0.0
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise InvalidTypeError(f"indices: expected integer indices, got dtype {a.dtype}")
    return 1.0 - np.unique(a).size / a.size


def label_proportions(labels_of_selection: Any, classes: Iterable[Hashable]) -> dict[Any, float]:
    """Share of each class among the selection's labels.

    Parameters
    ----------
    labels_of_selection : 1-D array
        One label per pick (repeat picks count again: this is the training set's composition).
    classes : iterable
        Every class to report, including ones with no pick (they get 0.0).

    Returns
    -------
    dict
        ``{class: share}`` in the order of ``classes``; every share NaN (logged) for an empty selection.

    Raises
    ------
    InvalidInputError
        A label that is not in ``classes`` (the first one and its position are named).
    """
    lab = np.asarray(labels_of_selection)
    if lab.ndim != 1:
        raise InvalidInputError(f"labels_of_selection: expected a 1-D array of labels, got shape {lab.shape}")
    cls = list(np.asarray(list(classes)).tolist())
    if len(set(cls)) != len(cls):
        raise InvalidInputError("classes: contains duplicates")
    if lab.size == 0:
        logger.warning("label proportions of an empty selection are undefined (NaN)")
        return {c: math.nan for c in cls}
    values, counts = np.unique(lab, return_counts=True)
    known = set(cls)
    for v in values.tolist():
        if v not in known:
            pos = int(np.flatnonzero(lab == np.asarray(v, dtype=lab.dtype))[0])
            raise InvalidInputError(f"labels_of_selection: position {pos} holds {v!r}, which is not in classes")
    count = dict(zip(values.tolist(), counts.tolist(), strict=True))
    return {c: count.get(c, 0) / lab.size for c in cls}


def total_variation(p: Mapping[Any, float], q: Mapping[Any, float]) -> float:
    """Total-variation distance ``0.5 * sum_c |p_c - q_c|`` between two class-share dicts.

    A class missing from one dict counts as 0 there. In [0, 1] for proportions; NaN if either holds NaN.
    """
    keys = list(p) + [c for c in q if c not in p]
    return 0.5 * float(sum(abs(float(p.get(c, 0.0)) - float(q.get(c, 0.0))) for c in keys))


def downstream_accuracy(train_x: Any, train_y: Any, test_x: Any, test_y: Any, *, model: str = "logreg",
                        seed: int = 0) -> float:
    """Accuracy on (test_x, test_y) of a small classifier trained on (train_x, train_y).

    Parameters
    ----------
    train_x : array of shape (s, d), s >= 1
        For example the selected pool rows.
    train_y : 1-D array of length s
    test_x : array of shape (t, d)
    test_y : 1-D array of length t
    model : {"logreg", "knn"}, default "logreg"
        ``"logreg"``: standardised features then ``LogisticRegression(max_iter=5000)``; ``"knn"``:
        ``KNeighborsClassifier(n_neighbors=min(5, s))`` on the raw embeddings.
    seed : int, default 0
        ``random_state`` of the model.

    Returns
    -------
    float
        Share of correct test predictions. A training set with a single class gives the accuracy of always
        predicting that class (no model is fitted).

    Raises
    ------
    MissingDependencyError
        scikit-learn is not installed (``pip install 'gioselect[experiments]'``).
    """
    m = check_choice(model, "model", _MODELS)
    sd = check_int(seed, "seed", low=0)
    tx = check_embeddings(train_x, "train_x")
    ty = _check_labels(train_y, tx.shape[0], "train_y", "train_x")
    vx = check_embeddings(test_x, "test_x", dim=tx.shape[1])
    vy = _check_labels(test_y, vx.shape[0], "test_y", "test_x")
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as exc:
        raise MissingDependencyError(
            f"downstream_accuracy needs scikit-learn; install it with `{_EXPERIMENTS_HINT}`"
        ) from exc
    classes = np.unique(ty)
    if classes.size == 1:
        logger.info("downstream accuracy: the training set has one class (%r); predicting it always",
                    classes[0])
        return float(np.mean(vy == classes[0]))
    clf: Any
    if m == "logreg":
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=sd))
    else:
        clf = KNeighborsClassifier(n_neighbors=min(5, tx.shape[0]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(tx, ty)
        pred = clf.predict(vx)
    for w in caught:  # the library logs, it does not warn
        logger.warning("downstream accuracy (%s): %s", m, w.message)
    return float(np.mean(pred == vy))


def evaluate_selection(
    pool: Any,
    indices: Any,
    target_holdout: Any,
    *,
    k: int = 5,
    labels: Any = None,
    test_x: Any = None,
    test_y: Any = None,
    seed: int = 0,
    target_labels: Any = None,
    model: str = "logreg",
    max_rows: int = 5000,
) -> dict[str, Any]:
    """Every yardstick of this module for one selection, in one dict.

    Parameters
    ----------
    pool : array of shape (M, d)
        The candidate pool (a memory map is fine: only the selected rows are read).
    indices : 1-D int array
        The selection, pool row numbers (repeats allowed).
    target_holdout : array of shape (n, d), n >= 2
        Held-out target rows (:func:`split_target`), never the rows the selection was made from.
    k : int, default 5
        Neighbour rank of the KL estimates and of coverage.
    labels : 1-D array of length M, optional
        Pool labels: gives ``label_proportions`` (and ``label_tv`` with ``target_labels``), and is needed for
        the downstream accuracy.
    test_x, test_y : optional
        Labelled test data (target-like): gives ``downstream_accuracy`` of ``model`` trained on the picks.
    seed : int, default 0
        Seeds the bandwidth sample, the subsamples of the two-sample statistics and the model.
    target_labels : 1-D array of length n, optional
        Labels of ``target_holdout``, for the class-ratio comparison.
    model : {"logreg", "knn"}, default "logreg"
    max_rows : int, default 5000
        Subsample size per side for MMD and energy distance.

    Returns
    -------
    dict
        ``size`` (picks), ``n_distinct``, ``duplicate_rate``, ``kl_target_sel``, ``kl_sel_target``,
        ``bandwidth`` (median heuristic of the held-out target, fixed so MMDs of different selections against
        one target compare), ``mmd2``, ``energy``, ``coverage``; with labels ``label_proportions``
        (and ``target_label_proportions``, ``label_tv``); with test data ``downstream_accuracy``.
        The distribution metrics use the distinct picks (a repeated row would make k-NN distances 0); class
        shares and the downstream model use the picks as given (the training set, repeats included).
        A metric that cannot be computed on this selection (too few rows) is NaN, with a logged reason.
    """
    pool_a, n_pool, dim = pool_shape(pool, "pool")
    idx = _check_indices(indices, n_pool)
    k_ = check_int(k, "k", low=1)
    sd = check_int(seed, "seed", low=0)
    check_choice(model, "model", _MODELS)
    x = check_embeddings(target_holdout, "target_holdout", dim=dim, min_rows=2)
    if (test_x is None) != (test_y is None):
        raise InvalidParameterError("test_x and test_y must be given together")
    if test_x is not None and labels is None:
        raise InvalidParameterError("downstream accuracy (test_x, test_y) needs labels: one per pool row")

    distinct, inverse = np.unique(idx, return_inverse=True)
    sel = _take_rows(pool_a, distinct, dim)
    out: dict[str, Any] = {
        "size": int(idx.size),
        "n_distinct": int(distinct.size),
        "duplicate_rate": duplicate_rate(idx),
    }
    out.update(kl_both_ways(x, sel, k_))
    h = _median_of_union(x, None, MEDIAN_ROWS, np.random.default_rng(sd))
    out["bandwidth"] = h
    if sel.shape[0] >= 2:
        out["mmd2"] = mmd2_unbiased(x, sel, bandwidth=h, max_rows=max_rows, seed=sd)
        out["energy"] = energy_distance(x, sel, max_rows=max_rows, seed=sd)
    else:
        logger.warning("mmd2 and energy are NaN: they need at least 2 distinct selected rows, have %d",
                       sel.shape[0])
        out["mmd2"] = out["energy"] = math.nan
    if sel.shape[0] >= 1 and x.shape[0] > k_:
        out["coverage"] = coverage(x, sel, k_)
    else:
        logger.warning("coverage is NaN: it needs a selected row and more than k=%d held-out target rows "
                       "(have %d and %d)", k_, sel.shape[0], x.shape[0])
        out["coverage"] = math.nan

    if labels is not None:
        lab = _check_labels(labels, n_pool, "labels", "pool")
        sel_lab = lab[idx]
        extra = [np.asarray(a) for a in (target_labels, test_y) if a is not None]
        classes = np.unique(np.concatenate([np.unique(lab), *[np.unique(e) for e in extra]]))
        out["label_proportions"] = label_proportions(sel_lab, classes)
        if target_labels is not None:
            tl = _check_labels(target_labels, x.shape[0], "target_labels", "target_holdout")
            out["target_label_proportions"] = label_proportions(tl, classes)
            out["label_tv"] = total_variation(out["label_proportions"], out["target_label_proportions"])
        if test_x is not None:
            if idx.size == 0:
                logger.warning("downstream_accuracy is NaN: the selection is empty")
                out["downstream_accuracy"] = math.nan
            else:
                out["downstream_accuracy"] = downstream_accuracy(sel[inverse], sel_lab, test_x, test_y,
                                                                 model=model, seed=sd)
    elif target_labels is not None:
        raise InvalidParameterError("target_labels need labels (one per pool row) to compare against")
    return out


def _take_rows(pool: Any, rows: np.ndarray, dim: int) -> np.ndarray:
    """Gather and validate ``pool[rows]``, naming the pool row of a bad value."""
    if rows.size == 0:
        return np.zeros((0, dim), dtype=np.float32)
    got = np.asarray(pool[rows])
    if np.issubdtype(got.dtype, np.floating):
        finite = np.isfinite(got).all(axis=1)
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            raise InvalidInputError(f"pool: row {int(rows[bad])} (selected) is not finite; embeddings must be")
    return check_embeddings(got, "pool[indices]", dim=dim)


# ---------------------------------------------------------------------------------------------------------
# baselines
# ---------------------------------------------------------------------------------------------------------
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
                   block_rows: int = 16384) -> np.ndarray:
    """Greedy MMD minimisation (kernel herding without repeats) towards the target.

    Objective: the (biased, V-statistic) squared MMD between the selection S and the target X,
    ``MMD^2(S, X) = mean_{a,b in S} k(a,b) - 2 mean_{a in S, x in X} k(a,x) + mean_{x,x' in X} k(x,x')``,
    Gaussian kernel ``k(a,b) = exp(-|a-b|^2 / (2 h^2))``. With t rows picked, adding candidate c changes it by
    a term that, since ``k(c,c) = 1``, is minimised by the maximiser of::

        score(c) = mean_i k(c, x_i) - sum_{s in S} k(c, s) / (t + 1)

    over the unused candidates (ties: lowest row). So each pick is exactly the best greedy MMD step. The
    first term is computed once (blocked, float64); the second is a running pool-length sum updated after
    each pick in O(M d). Total O(M n d + budget M d) time, O(M) extra memory.

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

    Returns
    -------
    ndarray of int64, shape (min(budget, M),)
        Pool rows in pick order, no repeats.
    """
    pool_a, n_pool, dim = pool_shape(pool, "pool")
    x = check_embeddings(target, "target", dim=dim).astype(np.float64)
    b = min(check_int(budget, "budget", low=0), n_pool)
    br = check_int(block_rows, "block_rows", low=1)
    rng = np.random.default_rng(check_int(seed, "seed", low=0))
    h = _check_bandwidth(bandwidth)
    if b == 0:
        return np.zeros(0, dtype=np.int64)
    if h is None:
        half = MEDIAN_ROWS // 2
        xs = _subsample(x, half, rng)
        prow = np.arange(n_pool) if n_pool <= half else np.sort(rng.choice(n_pool, size=half, replace=False))
        ps = check_embeddings(pool_a[prow], "pool", dim=dim).astype(np.float64)
        h = _median_distance(np.concatenate([xs, ps], axis=0))
    gamma = 1.0 / (2.0 * h * h)
    mu = x.mean(axis=0)
    xc = x - mu
    x_sq = np.einsum("ij,ij->i", xc, xc)
    chunk = max(1, _HERDING_BLOCK_ELEMS // min(br, n_pool))  # target rows per kernel block

    cache: dict[int, np.ndarray] = {}

    def block(r0: int, validate: bool = False) -> np.ndarray:
        """Centred float64 pool rows r0:r0+br (kept when the pool is a single block)."""
        if r0 in cache:
            return cache[r0]
        raw = pool_a[r0 : r0 + br]
        if validate:  # the first pass checks every row once; later passes only read
            raw = check_embeddings(raw, "pool", dim=dim, row_offset=r0)
        blk = np.asarray(raw, dtype=np.float64) - mu
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
    logger.info("kernel herding: %d picks from %d pool rows, bandwidth %.6g", b, n_pool, h)
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


_DSIR_NEEDS_TEXT = ("dsir: needs the raw text of the pool and the target rows (it resamples by hashed n-gram "
                    "importance weights of the text, not by embeddings); pass pool_texts= and target_texts=")


def _dsir_entry(pool: Any, target: Any, budget: int, *, seed: int = 0, pool_texts: Sequence[str] | None = None,
                target_texts: Sequence[str] | None = None) -> np.ndarray:
    """dsir on the texts of the pool's and the target's rows (the embeddings are unused)."""
    if pool_texts is None or target_texts is None:
        raise InvalidParameterError(_DSIR_NEEDS_TEXT)
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


# -- comparing methods at equal budget ------------------------------------------------------------------------
#: Metrics reported per method and size (numeric keys of evaluate_selection).
COMPARE_METRICS = ("kl_target_sel", "kl_sel_target", "mmd2", "energy", "coverage", "duplicate_rate",
                   "downstream_accuracy", "label_tv")
METHODS = ("gio", "random", "knn", "herding", "facility", "dsir", "full")
METRIC_DIRECTION = {"kl_target_sel": "lower", "kl_sel_target": "lower", "mmd2": "lower", "energy": "lower",
                    "coverage": "higher", "duplicate_rate": "lower", "downstream_accuracy": "higher",
                    "label_tv": "lower"}
"""Which way is better for each metric of :data:`COMPARE_METRICS`."""


def metric_header(metric: str) -> str:
    """The metric's name with an arrow saying which way is better (``mmd2 ↓``, ``coverage ↑``)."""
    d = METRIC_DIRECTION.get(metric)
    return metric if d is None else f"{metric} {'↓' if d == 'lower' else '↑'}"


def _numeric(d: Mapping[str, Any]) -> dict[str, float]:
    return {m: float(d[m]) for m in COMPARE_METRICS if m in d and d[m] is not None}


def compare_methods(
    pool: Any,
    target: Any,
    *,
    methods: Sequence[str] = ("gio", "random", "knn", "herding"),
    sizes: Sequence[int] | None = None,
    holdout: float = 0.5,
    gio_params: Mapping[str, Any] | None = None,
    clusters: int = 0,
    random_seeds: int = 5,
    pool_labels: Any = None,
    target_labels: Any = None,
    k: int = 5,
    seed: int = 0,
    max_rows: int = 5000,
    progress: Callable[[str], None] | None = None,
    pool_texts: Sequence[str] | None = None,
    target_texts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Select with each method at equal budgets and measure every yardstick on a held-out part of the target.

    The target is split (``holdout`` share, seeded) into a part the methods select with and a held-out part the
    metrics use. GIO (:func:`gioselect.selector.select_quantized` with ``gio_params`` and ``clusters``) runs
    first; without ``sizes`` the budget is GIO's own selection size. Greedy methods (gio, knn, herding,
    facility) and dsir (whose Gumbel top-k order makes every prefix a sample without replacement) are
    measured on prefixes of one run at the largest size; ``random`` is averaged over ``random_seeds`` seeds
    (mean and std); ``full`` is the whole pool; the ``oracle`` line is random subsets of the selecting part of
    the target itself (target-like data the methods never saw), capped at its size.

    With ``pool_labels`` and ``target_labels`` the downstream proxy (a classifier trained on the selection,
    scored on the held-out target) and the label total variation are included.

    ``dsir`` selects by the raw text, so it needs ``pool_texts`` (one per pool row) and ``target_texts`` (one
    per target row; the same split applies to them); without them it raises :class:`InvalidParameterError`.
    Its rows are still measured by their embeddings.

    Returns
    -------
    dict
        ``{"sizes", "split": {...}, "methods": {name: [{"size", metrics..., "<metric>_std"...}, ...]},
        "gio": {...}}``.
    """
    from .selector import select_quantized

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InvalidParameterError(f"methods: unknown {unknown}; choose from {', '.join(METHODS)}")
    pool_, n_pool, dim = pool_shape(pool, "pool")
    target_ = check_embeddings(target, "target", dim=dim)
    if "dsir" in methods:
        if pool_texts is None or target_texts is None:
            raise InvalidParameterError(_DSIR_NEEDS_TEXT)
        pool_texts = list(pool_texts)
        target_texts = list(target_texts)
        for name, texts, n_rows, what in (("pool_texts", pool_texts, n_pool, "pool"),
                                          ("target_texts", target_texts, target_.shape[0], "target")):
            if len(texts) != n_rows:
                raise InvalidInputError(f"{name}: has {len(texts)} texts, expected {n_rows} (one per {what} row)")
    sel_idx, hold_idx = split_target(target_, holdout, seed=seed)
    t_sel, t_hold = target_[sel_idx], target_[hold_idx]
    plab = None if pool_labels is None else _check_labels(pool_labels, n_pool, "pool_labels", "pool rows")
    tlab = None if target_labels is None else _check_labels(target_labels, target_.shape[0], "target_labels",
                                                            "target rows")
    hold_lab = None if tlab is None else tlab[hold_idx]
    say = progress or (lambda msg: None)

    gio_info: dict[str, Any] = {}
    ranked: dict[str, np.ndarray] = {}
    if "gio" in methods or sizes is None:
        say("gio")
        t0 = time.perf_counter()
        budget = None if sizes is None else int(max(sizes))
        qs = select_quantized(pool_, t_sel, clusters=clusters, budget=budget, seed=seed, **dict(gio_params or {}))
        ranked["gio"] = qs.ids
        gio_info = {"selected": int(qs.ids.shape[0]), "stop_reason": qs.result.stop_reason,
                    "candidates": qs.n_candidates, "seconds": time.perf_counter() - t0}
    if sizes is None:
        if ranked["gio"].shape[0] == 0:
            raise InvalidInputError("GIO selected nothing, so there is no budget to compare at; pass sizes")
        sizes = [int(ranked["gio"].shape[0])]
    sizes = sorted({check_int(s, "size", low=1) for s in sizes})
    top = max(sizes)
    if top > n_pool:
        raise InvalidParameterError(f"sizes: {top} is more than the pool's {n_pool} rows")
    for name in ("knn", "herding", "facility"):
        if name in methods:
            say(name)
            ranked[name] = BASELINES[name](pool_, t_sel, top, seed=seed)
    if "dsir" in methods:
        say("dsir")
        assert pool_texts is not None and target_texts is not None
        ranked["dsir"] = dsir(pool_texts, [target_texts[i] for i in sel_idx], top, seed=seed)

    def measure(p: Any, ids: np.ndarray, labels: np.ndarray | None) -> dict[str, float]:
        return _numeric(evaluate_selection(p, ids, t_hold, k=k, labels=labels,
                                           test_x=t_hold if labels is not None and hold_lab is not None else None,
                                           test_y=hold_lab if labels is not None else None, seed=seed,
                                           target_labels=hold_lab, max_rows=max_rows))

    out: dict[str, list[dict[str, Any]]] = {}
    for name in methods:
        rows: list[dict[str, Any]] = []
        if name == "full":
            say("full")
            rows.append({"size": n_pool, **measure(pool_, full_pool(n_pool), plab)})
        elif name == "random":
            say("random")
            for s in sizes:
                runs = [measure(pool_, random_baseline(n_pool, s, seed=seed + r), plab) for r in range(random_seeds)]
                rows.append(_mean_std(s, runs))
        else:
            for s in sizes:
                ids = ranked[name][:s]
                if ids.shape[0] < s:
                    continue  # GIO stopped before this size
                rows.append({"size": s, **measure(pool_, ids, plab)})
        out[name] = rows
    say("oracle")
    oracle = []
    tsel_lab = None if tlab is None else tlab[sel_idx]
    for s in sizes:
        m = min(s, t_sel.shape[0])
        runs = [measure(t_sel, np.sort(np.random.default_rng(seed + r).choice(t_sel.shape[0], m, replace=False)),
                        tsel_lab) for r in range(random_seeds)]
        oracle.append(_mean_std(m, runs))
    out["oracle"] = oracle
    return {"sizes": list(sizes), "methods": out, "gio": gio_info,
            "split": {"target_select": int(t_sel.shape[0]), "target_holdout": int(t_hold.shape[0]),
                      "holdout": holdout, "seed": seed},
            "pool_rows": n_pool, "k": k, "random_seeds": random_seeds, "clusters": clusters}


def _mean_std(size: int, runs: list[dict[str, float]]) -> dict[str, Any]:
    row: dict[str, Any] = {"size": size}
    for key in runs[0]:
        vals = np.array([r[key] for r in runs], dtype=float)
        row[key] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
        row[f"{key}_std"] = float(np.nanstd(vals)) if np.isfinite(vals).any() else float("nan")
    return row


def plot_comparison(result: Mapping[str, Any], path: Any, *, metrics: Sequence[str] | None = None) -> Path:
    """PNG of each metric against selection size, one line per method (random with a band, full dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    methods = result["methods"]
    present = [m for m in (metrics or COMPARE_METRICS)
               if any(m in row for rows in methods.values() for row in rows)]
    cols = 3
    nrows = max(1, (len(present) + cols - 1) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.3 * nrows))
    styles = {"gio": ("tab:red", "-o"), "random": ("tab:gray", "-s"), "knn": ("tab:blue", "-^"),
              "herding": ("tab:green", "-d"), "facility": ("tab:brown", "-v"), "dsir": ("tab:olive", "-P"),
              "oracle": ("black", ":x"), "full": ("tab:purple", "--")}
    for i, metric in enumerate(present):
        ax = fig.add_subplot(nrows, cols, i + 1)
        for name, rows in methods.items():
            pts = [(r["size"], r[metric], r.get(f"{metric}_std")) for r in rows if metric in r]
            if not pts:
                continue
            color, style = styles.get(name, ("tab:orange", "-"))
            if name == "full":
                ax.axhline(pts[0][1], color=color, linestyle="--", label=f"full ({pts[0][0]})")
                continue
            xs = [p[0] for p in pts]
            ys = [p[1] for p in pts]
            ax.plot(xs, ys, style, color=color, label=name, markersize=4)
            if name in ("random", "oracle") and all(p[2] is not None for p in pts):
                sd = np.array([p[2] for p in pts])
                ax.fill_between(xs, np.array(ys) - sd, np.array(ys) + sd, color=color, alpha=0.15)
        ax.set_title(metric)
        ax.set_xlabel("selection size")
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, format="png", dpi=90, metadata={"Software": None})
    return out
