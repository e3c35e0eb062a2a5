"""Squared-distance blocks, k-nearest-neighbour distances and the Wang-Kulkarni-Verdu estimate :func:`kl_knn`.

The constants here (the distance clip and the relaxed estimator's epsilon) are shared by every estimator of
:mod:`gioselect.divergence`; see its docstring for the formulas, the treatment of zero distances and memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from ..errors import InvalidInputError
from ..validation import check_embeddings, check_int

#: Squared distances are clipped to [MIN_SQ_DIST, MAX_SQ_DIST] before the square root (as the reference).
MIN_SQ_DIST = 1e-10
MAX_SQ_DIST = 1e20
#: The smallest distance any estimator here ever takes the log of.
MIN_DIST = math.sqrt(MIN_SQ_DIST)
#: The epsilon added inside the logs of the relaxed estimator (the reference's default).
DEFAULT_EPS = 1e-8

# Elements (float64) in one distance block: 4 Mi elements = 32 MiB; columns of the right operand per block.
_BLOCK_ELEMS = 1 << 22
_MAX_BLOCK_COLS = 8192


def _rows_per_block(other_rows: int, block_elems: int = _BLOCK_ELEMS) -> int:
    """Rows of one operand per block so that a block of distances has about ``block_elems`` entries."""
    return max(1, block_elems // max(1, other_rows))


def iter_sq_dist_blocks(
    a: np.ndarray, b: np.ndarray, *, block_elems: int = _BLOCK_ELEMS
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(row_start, col_start, D)`` blocks of squared Euclidean distances between rows of a and b.

    ``D`` is float64, at most ``max(block_elems, 8192)`` entries, clipped below at 0 (the expanded formula
    ``|a|^2 + |b|^2 - 2 a.b`` can go slightly negative). Columns of ``b`` are taken 8192 at a time, rows of
    ``a`` as many as fit. Inputs are assumed valid (2-D, same number of columns).
    """
    cols = min(b.shape[0], _MAX_BLOCK_COLS)
    rows = _rows_per_block(cols, block_elems)
    for c0 in range(0, b.shape[0], cols):
        bb = np.asarray(b[c0 : c0 + cols], dtype=np.float64)
        b_sq = np.einsum("ij,ij->i", bb, bb)
        for r0 in range(0, a.shape[0], rows):
            aa = np.asarray(a[r0 : r0 + rows], dtype=np.float64)
            d = aa @ bb.T
            d *= -2.0
            d += np.einsum("ij,ij->i", aa, aa)[:, None]
            d += b_sq[None, :]
            np.maximum(d, 0.0, out=d)
            yield r0, c0, d


def knn_distances(
    query: np.ndarray,
    ref: np.ndarray,
    k: int,
    *,
    exclude_self: bool = False,
    block_elems: int = _BLOCK_ELEMS,
) -> np.ndarray:
    """Distances from each query row to its ``k`` nearest rows of ``ref``, ascending, shape ``(n_query, k)``.

    Computed in blocks; memory is O(n_query * k + block). With ``exclude_self`` the query must be ``ref``
    itself and row i is not its own neighbour (excluded by index, so exact duplicates still count).
    Distances are float64 and floored at :data:`MIN_DIST`.
    """
    nq, nr = query.shape[0], ref.shape[0]
    avail = nr - (1 if exclude_self else 0)
    if k > avail:
        raise InvalidInputError(f"need at least {k} reference points for k={k}, have {avail}")
    best = np.full((nq, k), np.inf)
    for r0, c0, d in iter_sq_dist_blocks(query, ref, block_elems=block_elems):
        rows = d.shape[0]
        if exclude_self:
            # Row r0+i of the query is column r0+i of ref; knock it out of this block if present.
            idx = np.arange(r0, r0 + rows)
            inblock = (idx >= c0) & (idx < c0 + d.shape[1])
            d[np.flatnonzero(inblock), idx[inblock] - c0] = np.inf
        if c0 == 0 and d.shape[1] == nr:  # one column block holds all of ref: nothing to merge with
            best[r0 : r0 + rows] = np.partition(d, k - 1, axis=1)[:, :k]
            continue
        cur = best[r0 : r0 + rows]
        merged = np.concatenate([cur, d], axis=1)
        kk = min(k, merged.shape[1]) - 1
        part = np.partition(merged, kk, axis=1)[:, :k]
        best[r0 : r0 + rows] = part
    best.sort(axis=1)
    return np.sqrt(np.clip(best, MIN_SQ_DIST, MAX_SQ_DIST))



def check_estimator_inputs(
    target: object, sample: object, k: object, *, sample_min: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate the ``(target, sample, k)`` of an estimator; returns them as arrays and an int.

    The target needs more than ``k`` rows; the sample ``sample_min`` rows, or ``k`` with ``sample_min=None``
    (the k-th neighbour must exist). Raises :class:`gioselect.errors.InvalidInputError` naming the argument.
    """
    k_ = check_int(k, "k", low=1)
    x = check_embeddings(target, "target", min_rows=1, dtype=None)
    if x.shape[0] <= k_:
        raise InvalidInputError(
            f"target: has {x.shape[0]} rows; the k-NN estimator needs more than k={k_} (n > k)"
        )
    w = check_embeddings(sample, "sample", dim=x.shape[1], min_rows=1, dtype=None)
    need = k_ if sample_min is None else sample_min
    if w.shape[0] < need:
        raise InvalidInputError(
            f"sample: has {w.shape[0]} rows; need at least {need}"
            + (f" (the k-th neighbour with k={k_})" if sample_min is None else "")
        )
    return x, w, k_


def kl_knn(target: np.ndarray, sample: np.ndarray, k: int = 5) -> float:
    """Wang-Kulkarni-Verdu k-NN estimate of KL(target || sample).

    Parameters
    ----------
    target : array of shape (n, d)
        Sample of the reference distribution p (n > k).
    sample : array of shape (m, d)
        Sample of q, for example a selection (m >= k).
    k : int, default 5
        Neighbour rank.

    Returns
    -------
    float
        ``(d/n) sum_i log(nu_k(i) / rho_k(i)) + log(m / (n - 1))``. Distances below :data:`MIN_DIST` are
        raised to it (duplicates), so the value is always finite. It can be negative: the estimator is
        consistent, not unbiased.
    """
    x, w, k_ = check_estimator_inputs(target, sample, k, sample_min=None)
    return _kl_knn(x, w, k_)


def _kl_knn(x: np.ndarray, w: np.ndarray, k: int) -> float:
    """kl_knn on validated arrays."""
    n, d = x.shape
    m = w.shape[0]
    rho = knn_distances(x, x, k, exclude_self=True)[:, -1]
    nu = knn_distances(x, w, k)[:, -1]
    return float(d * np.mean(np.log(nu) - np.log(rho)) + math.log(m / (n - 1)))
