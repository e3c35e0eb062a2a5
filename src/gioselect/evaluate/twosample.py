"""Kernel two-sample distances between a selection and the target: MMD (Gaussian kernel) and energy distance.

Both are unbiased U-statistics over pairwise distances computed in blocks of at most ``block_rows x
block_rows`` (never a larger matrix), on seeded subsamples of at most ``max_rows`` rows per side. The
bandwidth of the Gaussian kernel comes from the median heuristic (:func:`median_heuristic`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ..validation import check_choice, check_embeddings, check_int, check_real
from .inputs import subsample_rows

logger = logging.getLogger(__name__)

#: Rows (and columns) of one block of pairwise distances in the two-sample statistics: 2048^2 float64 = 32 MiB.
DEFAULT_BLOCK_ROWS = 2048
#: Rows sampled for the median heuristic (about 500k pairwise distances).
MEDIAN_ROWS = 1000


def check_bandwidth(bandwidth: Any) -> float | None:
    """``None`` for ``"median"``, else the positive finite bandwidth."""
    if isinstance(bandwidth, str):
        check_choice(bandwidth, "bandwidth", ["median"])
        return None
    return check_real(bandwidth, "bandwidth", low=0.0, low_open=True)


def median_distance(points: np.ndarray) -> float:
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
    return median_of_union(xs, ys, mr, rng)


def median_of_union(x: Any, y: Any, max_rows: int, rng: np.random.Generator) -> float:
    """median_heuristic on valid inputs; ``x``/``y`` may be memmaps (only the sampled rows are read)."""
    nx = x.shape[0]
    ny = 0 if y is None else y.shape[0]
    total = nx + ny
    pick = np.arange(total) if total <= max_rows else np.sort(rng.choice(total, size=max_rows, replace=False))
    parts = [np.asarray(x[pick[pick < nx]], dtype=np.float64)]
    if y is not None:
        parts.append(np.asarray(y[pick[pick >= nx] - nx], dtype=np.float64))
    return median_distance(np.concatenate(parts, axis=0))


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
    xs = subsample_rows(xs, mr, rng)
    ys = subsample_rows(ys, mr, rng)
    x64 = xs.astype(np.float64)
    y64 = ys.astype(np.float64)
    mu = (x64.sum(axis=0) + y64.sum(axis=0)) / (x64.shape[0] + y64.shape[0])
    return x64 - mu, y64 - mu, rng, br


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
    h = check_bandwidth(bandwidth)
    xc, yc, rng, br = _two_sample_inputs(x, y, max_rows, seed, block_rows)
    if h is None:
        h = median_of_union(xc, yc, MEDIAN_ROWS, rng)
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
