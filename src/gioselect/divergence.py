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
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .validation import check_embeddings, check_int, check_real

__all__ = [
    "DEFAULT_EPS",
    "MIN_DIST",
    "MIN_SQ_DIST",
    "RelaxedKL",
    "RelaxedKLState",
    "RepelledKL",
    "fast_path_available",
    "iter_sq_dist_blocks",
    "kl_knn",
    "kl_relaxed",
    "knn_distances",
    "relaxed_gradient",
]

#: Squared distances are clipped to [MIN_SQ_DIST, MAX_SQ_DIST] before the square root (as the reference).
MIN_SQ_DIST = 1e-10
MAX_SQ_DIST = 1e20
#: The smallest distance any estimator here ever takes the log of.
MIN_DIST = math.sqrt(MIN_SQ_DIST)
#: The epsilon added inside the logs of the relaxed estimator (the reference's default).
DEFAULT_EPS = 1e-8

# Elements (float64) in one distance block: 4 Mi elements = 32 MiB; columns of the right operand per block.
logger = logging.getLogger(__name__)

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
        cur = best[r0 : r0 + rows]
        merged = np.concatenate([cur, d], axis=1)
        kk = min(k, merged.shape[1]) - 1
        part = np.partition(merged, kk, axis=1)[:, :k]
        best[r0 : r0 + rows] = part
    best.sort(axis=1)
    return np.sqrt(np.clip(best, MIN_SQ_DIST, MAX_SQ_DIST))


def _check_pair(
    target: object, sample: object, k: object, *, sample_min: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate a (target, sample, k) triple; ``sample_min=None`` means the sample needs k rows."""
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
    x, w, k_ = _check_pair(target, sample, k, sample_min=None)
    return _kl_knn(x, w, k_)


def _kl_knn(x: np.ndarray, w: np.ndarray, k: int) -> float:
    """kl_knn on validated arrays."""
    n, d = x.shape
    m = w.shape[0]
    rho = knn_distances(x, x, k, exclude_self=True)[:, -1]
    nu = knn_distances(x, w, k)[:, -1]
    return float(d * np.mean(np.log(nu) - np.log(rho)) + math.log(m / (n - 1)))


def _rank_term(k: int, m: int, n: int) -> float:
    """(1/m) sum_{l=1..m} log(k m / (l (n-1))), in O(1) via lgamma."""
    return math.log(k) + math.log(m) - math.log(n - 1) - math.lgamma(m + 1) / m


def _log_dist(sq: np.ndarray, eps: float) -> np.ndarray:
    """log(sqrt(clip(sq)) + eps), the reference's log-distance."""
    return np.log(np.sqrt(np.clip(sq, MIN_SQ_DIST, MAX_SQ_DIST)) + eps)


def _rho_log_sum(x: np.ndarray, k: int, eps: float) -> float:
    """sum_i log(rho_k(i) + eps) over the target (the constant of a run)."""
    rho = knn_distances(x, x, k, exclude_self=True)[:, -1]
    return float(np.sum(np.log(rho + eps)))


def kl_relaxed(
    target: np.ndarray,
    sample: np.ndarray,
    k: int = 5,
    *,
    discard_nearest_for_xy: bool = False,
    eps: float = DEFAULT_EPS,
) -> float:
    """The relaxed k-NN KL estimate GIO optimises (grad-info-opt's ``calculate_statistical_distance``).

    Parameters
    ----------
    target : array of shape (n, d), n > k
    sample : array of shape (m, d)
        m >= 1, or m >= 2 with ``discard_nearest_for_xy``.
    k : int, default 5
    discard_nearest_for_xy : bool, default False
        Drop, for every target point, its nearest sample point from the first sum (use when the target is a
        subset of the pool); the first sum is then averaged over ``n (m - 1)`` terms.
    eps : float, default 1e-8
        Added to every distance inside the logs.
    """
    x, w, k_ = _check_pair(target, sample, k, sample_min=2 if discard_nearest_for_xy else 1)
    eps_ = check_real(eps, "eps", low=0.0)
    state = RelaxedKL(x, k_, discard_nearest_for_xy=discard_nearest_for_xy, eps=eps_)
    state.reset(w)
    return state.value()


def relaxed_gradient(
    v: np.ndarray,
    target: np.ndarray,
    sample: np.ndarray,
    k: int = 5,
    *,
    discard_nearest_for_xy: bool = False,
    eps: float = DEFAULT_EPS,
) -> np.ndarray:
    """Gradient of ``kl_relaxed(target, sample + [v])`` with respect to the appended point ``v``.

    ``(d / (n (m+1))) * sum_i (v - x_i) / (r_i (r_i + eps))`` with ``r_i = ||v - x_i||``; target points within
    :data:`MIN_DIST` of v contribute 0. With ``discard_nearest_for_xy``, target points whose nearest point
    would be v itself contribute 0 and the normaliser is ``n m``. Shape ``(d,)``, float64.
    """
    x, w, k_ = _check_pair(target, sample, k, sample_min=1)
    v_ = check_embeddings(np.asarray(v).reshape(1, -1), "v", dim=x.shape[1], dtype=np.float64)[0]
    state = RelaxedKL(x, k_, discard_nearest_for_xy=discard_nearest_for_xy, eps=eps)
    state.reset(w)
    return state.gradient(v_)


@dataclass(frozen=True)
class RelaxedKLState:
    """The mutable part of :class:`RelaxedKL`, for checkpoints: enough to continue bit-for-bit."""

    m: int
    log_dist_sum: float
    nearest_sq: np.ndarray  # (n,) squared distance of each target point to its nearest sample point


class RelaxedKL:
    """Incremental relaxed estimator for one target and a growing sample.

    Keeps ``sum_ij log(||x_i - w_j|| + eps)`` (float64), the sample size m and, for
    ``discard_nearest_for_xy``, each target point's nearest squared distance to the sample. ``rho`` is computed
    once in the constructor. Every method below costs O(n d) and builds no n x m matrix; :meth:`reset` is
    O(n m d) in blocks.

    The target is held as float64 (it is target-sized, never pool-sized).
    """

    def __init__(self, target: np.ndarray, k: int, *, discard_nearest_for_xy: bool = False,
                 eps: float = DEFAULT_EPS) -> None:
        # Inputs already validated by the caller.
        self.x = np.ascontiguousarray(target, dtype=np.float64)
        self.n, self.d = self.x.shape
        self.k = int(k)
        self.discard = bool(discard_nearest_for_xy)
        self.eps = float(eps)
        self.x_sq = np.einsum("ij,ij->i", self.x, self.x)
        self.rho_log_sum = _rho_log_sum(self.x, self.k, self.eps)
        self.m = 0
        self.log_dist_sum = 0.0
        self.nearest_sq = np.full(self.n, np.inf)
        #: None: the compiled gradient loop when numba is installed; False: always numpy (tests compare both).
        self.use_fast: bool | None = None
        self._last_log_sum: tuple[np.ndarray, float] | None = None
        self._row_w = np.ones(0)

    # -- state -------------------------------------------------------------------------------------------
    def reset(self, sample: np.ndarray) -> None:
        """Set the sample to ``sample`` (shape (m, d)), recomputing the sums in blocks."""
        self.m = int(sample.shape[0])
        total = 0.0
        nearest = np.full(self.n, np.inf)
        if self.m:
            for r0, _c0, d2 in iter_sq_dist_blocks(self.x, sample):
                total += float(_log_dist(d2, self.eps).sum())
                rows = slice(r0, r0 + d2.shape[0])
                np.minimum(nearest[rows], d2.min(axis=1), out=nearest[rows])
        self.log_dist_sum = total
        self.nearest_sq = np.clip(nearest, MIN_SQ_DIST, MAX_SQ_DIST) if self.m else nearest

    def get_state(self) -> RelaxedKLState:
        return RelaxedKLState(self.m, self.log_dist_sum, self.nearest_sq.copy())

    def set_state(self, state: RelaxedKLState) -> None:
        self.m = int(state.m)
        self.log_dist_sum = float(state.log_dist_sum)
        self.nearest_sq = np.array(state.nearest_sq, dtype=np.float64)

    # -- distances to one point ----------------------------------------------------------------------------
    def sq_dists(self, p: np.ndarray) -> np.ndarray:
        """Clipped squared distances from every target point to ``p`` (shape (n,)), O(n d)."""
        p = np.asarray(p, dtype=np.float64)
        s = self.x_sq - 2.0 * (self.x @ p) + float(p @ p)
        return np.clip(s, MIN_SQ_DIST, MAX_SQ_DIST)

    # -- value ---------------------------------------------------------------------------------------------
    def _value(self, m: int, log_dist_sum: float, nearest_sq: np.ndarray) -> float:
        if self.discard:
            if m < 2:
                return math.nan
            first = (log_dist_sum - float(_log_dist(nearest_sq, self.eps).sum())) / (self.n * (m - 1))
        else:
            first = log_dist_sum / (self.n * m)
        return self.d * first - self.d * self.rho_log_sum / self.n + _rank_term(self.k, m, self.n)

    def value(self) -> float:
        """KL~(target || current sample). NaN only for an empty sample (or m < 2 with discard)."""
        if self.m == 0:
            return math.nan
        return self._value(self.m, self.log_dist_sum, self.nearest_sq)

    def _log_sum(self, sq: np.ndarray) -> float:
        """``sum_i log(r_i + eps)`` of the clipped squared distances ``sq``; the last one is remembered (by
        identity), so that :meth:`add` after :meth:`value_if_added` on the same array does not redo it."""
        last = self._last_log_sum
        if last is not None and last[0] is sq:
            return last[1]
        total = float(_log_dist(sq, self.eps).sum())
        self._last_log_sum = (sq, total)
        return total

    def value_if_added(self, p: np.ndarray, sq: np.ndarray | None = None) -> float:
        """KL~ after appending ``p``, without changing the state. O(n d).

        ``sq`` (from :meth:`sq_dists`, not modified afterwards) saves recomputing the distances.
        """
        if sq is None:
            sq = self.sq_dists(p)
        lds = self.log_dist_sum + self._log_sum(sq)
        return self._value(self.m + 1, lds, np.minimum(self.nearest_sq, sq))

    def add(self, p: np.ndarray, sq: np.ndarray | None = None) -> float:
        """Append ``p`` to the sample; returns the new value. O(n d)."""
        if sq is None:
            sq = self.sq_dists(p)
        self.log_dist_sum += self._log_sum(sq)
        self._last_log_sum = None
        np.minimum(self.nearest_sq, sq, out=self.nearest_sq)
        self.m += 1
        return self.value()

    # -- gradient ------------------------------------------------------------------------------------------
    def gradient(self, v: np.ndarray) -> np.ndarray:
        """d KL~(target || sample + [v]) / d v, shape (d,), O(n d) with two matrix-vector products."""
        v = np.asarray(v, dtype=np.float64)
        raw = self.x_sq - 2.0 * (self.x @ v) + float(v @ v)
        active = (raw > MIN_SQ_DIST) & (raw < MAX_SQ_DIST)
        s = np.clip(raw, MIN_SQ_DIST, MAX_SQ_DIST)
        if self.discard:
            # v's own term is the one dropped for x_i when v would be x_i's strictly nearest point
            # (ties keep the earlier sample point as the dropped one, as a stable sort does).
            active &= ~(s < self.nearest_sq)
            norm = self.n * self.m  # (m + 1) - 1 columns remain
            if norm == 0:
                return np.zeros(self.d)
        else:
            norm = self.n * (self.m + 1)
        r = np.sqrt(s)
        coef = np.where(active, 1.0 / (r * (r + self.eps)), 0.0)
        # sum_i coef_i (v - x_i) = v * sum(coef) - X^T coef
        g = v * coef.sum() - self.x.T @ coef
        g *= self.d / norm
        return g

    def descend(self, v: np.ndarray, steps: int, lr: float, scale: float) -> np.ndarray:
        """``steps`` fixed-size gradient steps ``v <- v - lr * scale * grad(v)`` from ``v``; returns the end.

        The arithmetic of :meth:`gradient` with fewer calls per step (this loop is where GIO spends its time).
        Without ``discard_nearest_for_xy`` the whole loop runs in one compiled kernel when numba is installed
        (the ``fast`` extra; :func:`fast_path_available`), else in numpy with two matrix-vector products and a
        few in-place vector operations per step. Both agree with repeated :meth:`gradient` steps to rounding
        (the compiled kernel sums in its own order, as BLAS does in another: the last bits differ, the picks do
        not on well-conditioned data; ``tests/test_fastpath.py`` checks both paths against each other).
        """
        v = np.array(v, dtype=np.float64)
        if self.discard or steps == 0:
            step = lr * scale
            for _ in range(steps):
                v -= step * self.gradient(v)
            return v
        factor = lr * scale * self.d / (self.n * (self.m + 1))
        x, x_sq, row_w = self._descend_rows()
        kernel = _fast_kernel() if self.use_fast is not False else None
        if kernel is not None:
            if self._row_w.shape[0] != self.n:
                self._row_w = np.ones(self.n)
            kernel(x, x_sq, self._row_w if row_w is None else row_w, v, int(steps), float(factor), self.eps,
                   MIN_SQ_DIST, MAX_SQ_DIST)
            return v
        return self._descend_numpy(v, steps, factor, x, x_sq, row_w)

    def _descend_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The rows the gradient sums over, their squared norms and weights (None: all 1)."""
        return self.x, self.x_sq, None

    def _descend_numpy(self, v: np.ndarray, steps: int, factor: float, x: np.ndarray, x_sq: np.ndarray,
                       row_w: np.ndarray | None) -> np.ndarray:
        """The pure-numpy loop of :meth:`descend` (no discard); updates and returns ``v``."""
        eps = self.eps
        xt = x.T
        for _ in range(steps):
            s = x @ v
            s *= -2.0
            s += x_sq
            s += float(v @ v)
            lo, hi = s.min(), s.max()
            if lo <= MIN_SQ_DIST or hi >= MAX_SQ_DIST:  # rare: clipped terms have zero derivative
                active = (s > MIN_SQ_DIST) & (s < MAX_SQ_DIST)
                np.clip(s, MIN_SQ_DIST, MAX_SQ_DIST, out=s)
            else:
                active = None
            # 1 / (r (r + eps)) = 1 / (s + eps r), r = sqrt(s)
            r = np.sqrt(s)
            r *= eps
            r += s
            np.reciprocal(r, out=r)
            if active is not None:
                r[~active] = 0.0
            if row_w is not None:
                r *= row_w
            # grad = factor' * (v * sum(coef) - X^T coef)
            v -= factor * (v * float(r.sum()) - xt @ r)
        return v


class RepelledKL(RelaxedKL):
    """``KL~(target || S) - weight * KL~(exclusion || S)``: GIO's objective pushed away from an exclusion set.

    Both terms are the relaxed estimator of :class:`RelaxedKL` on the same sample ``S``; a point near the
    exclusion set lowers ``KL~(exclusion || S)`` and so raises the objective. ``weight >= 0``; 0 is the plain
    objective (callers use :class:`RelaxedKL` then). The gradient with respect to an appended ``v`` is the
    difference of the two gradients, so the gradient loop sums over the stacked rows ``[target; exclusion]``
    with per-row weights ``1`` and ``-weight * n / n_E`` (one pass, the same compiled kernel).

    ``discard_nearest_for_xy`` is not supported here. The state (:meth:`get_state`) packs both terms: the
    target's nearest distances, then the exclusion set's, then the exclusion set's log-distance sum.
    """

    def __init__(self, target: np.ndarray, exclusion: np.ndarray, weight: float, k: int, *,
                 eps: float = DEFAULT_EPS) -> None:
        super().__init__(target, k, eps=eps)
        self.repel = RelaxedKL(exclusion, k, eps=eps)
        self.weight = float(weight)
        self._xs = np.ascontiguousarray(np.vstack([self.x, self.repel.x]))
        self._xs_sq = np.concatenate([self.x_sq, self.repel.x_sq])
        self._ws = np.concatenate([np.ones(self.n), np.full(self.repel.n, -self.weight * self.n / self.repel.n)])

    def reset(self, sample: np.ndarray) -> None:
        super().reset(sample)
        self.repel.reset(sample)

    def get_state(self) -> RelaxedKLState:
        r = self.repel
        packed = np.concatenate([self.nearest_sq, r.nearest_sq, [r.log_dist_sum]])
        return RelaxedKLState(self.m, self.log_dist_sum, packed)

    def set_state(self, state: RelaxedKLState) -> None:
        packed = np.asarray(state.nearest_sq, dtype=np.float64)
        super().set_state(RelaxedKLState(state.m, state.log_dist_sum, packed[: self.n]))
        self.repel.set_state(RelaxedKLState(state.m, float(packed[-1]), packed[self.n : -1]))

    def sq_dists(self, p: np.ndarray) -> np.ndarray:
        """The target's clipped squared distances to ``p``, then the exclusion set's (shape (n + n_E,))."""
        return np.concatenate([super().sq_dists(p), self.repel.sq_dists(p)])

    def value(self) -> float:
        return super().value() - self.weight * self.repel.value()

    def value_if_added(self, p: np.ndarray, sq: np.ndarray | None = None) -> float:
        if sq is None:
            sq = self.sq_dists(p)
        return super().value_if_added(p, sq[: self.n]) - self.weight * self.repel.value_if_added(p, sq[self.n :])

    def add(self, p: np.ndarray, sq: np.ndarray | None = None) -> float:
        if sq is None:
            sq = self.sq_dists(p)
        super().add(p, sq[: self.n])
        self.repel.add(p, sq[self.n :])
        return self.value()

    def gradient(self, v: np.ndarray) -> np.ndarray:
        return super().gradient(v) - self.weight * self.repel.gradient(v)

    def _descend_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return self._xs, self._xs_sq, self._ws


# -- the compiled gradient loop (optional: numba) ------------------------------------------------------------
_KERNEL: list[Any] = []  # [descend kernel or None, nearest kernel or None] once looked up


def _descend_kernel_py(x: np.ndarray, x_sq: np.ndarray, row_w: np.ndarray, v: np.ndarray, steps: int,
                       factor: float, eps: float, lo: float, hi: float) -> None:  # pragma: no cover - compiled
    """``steps`` gradient steps on ``v`` in place (no discard), as :meth:`RelaxedKL._descend_numpy`.

    One pass over the rows of ``x`` per step: the row's dot product with ``v`` gives its squared distance,
    then the same row (still in the L1 cache) is added into ``X^T c`` with its coefficient; so the target is
    read once per step, not twice (it is memory-bound at text sizes: 860 x 384 float64 is 2.6 MB). Compiled
    with reassociated sums (vectorised dot products, as BLAS's): the last bits differ from numpy's. Row i's
    coefficient is ``row_w[i] / (r_i (r_i + eps))`` (all ones for the plain objective: the same arithmetic;
    negative for the rows of an exclusion set, :class:`RepelledKL`).
    """
    n, d = x.shape
    g = np.empty(d)
    for _ in range(steps):
        vv = 0.0
        for j in range(d):
            vv += v[j] * v[j]
        for j in range(d):
            g[j] = 0.0
        tot = 0.0
        for i in range(n):
            a = 0.0
            for j in range(d):
                a += x[i, j] * v[j]
            si = x_sq[i] - 2.0 * a + vv
            if lo < si < hi:  # clipped distances have zero derivative (as the clip in RelaxedKL.gradient)
                c = row_w[i] / (si + eps * math.sqrt(si))
                tot += c
                for j in range(d):
                    g[j] += x[i, j] * c
        for j in range(d):
            v[j] -= factor * (v[j] * tot - g[j])


def _nearest_kernel_py(points: np.ndarray, sq_norms: np.ndarray, used: np.ndarray,
                       v: np.ndarray) -> tuple[int, float]:  # pragma: no cover - compiled
    """``(i, d)``: the unused row of ``points`` nearest to ``v`` by ``|p|^2 - 2 p.v + |v|^2`` (float64 sums;
    the lowest index on ties), ``(-1, inf)`` when every row is used. One pass, no temporary."""
    n, d = points.shape
    vv = 0.0
    for j in range(d):
        vv += v[j] * v[j]
    best_i, best_d = -1, np.inf
    for i in range(n):
        if used[i]:
            continue
        a = 0.0
        for j in range(d):
            a += np.float64(points[i, j]) * v[j]
        di = sq_norms[i] - 2.0 * a + vv
        if di < best_d:
            best_i, best_d = i, di
    return best_i, best_d


def _fast_kernel() -> Any:
    """The numba-compiled :func:`_descend_kernel_py`, or None when numba is not installed (or disabled with
    ``GIOSELECT_NO_NUMBA=1``). Compiled on first use (about a second; cached on disk by numba when it can)."""
    if not _KERNEL:
        kernel = None
        if os.environ.get("GIOSELECT_NO_NUMBA", "") in ("", "0"):
            try:
                import numba
            except ImportError:
                logger.debug("numba not installed: GIO's gradient loop runs in numpy (pip install 'gioselect[fast]')")
            else:
                kernel = _jit(numba, _descend_kernel_py, fastmath={"reassoc"})
                # reassociated sums (vectorised dot products), like BLAS's: the last bits of a distance may
                # differ from numpy's, an exact tie between two candidates may then break the other way
                _KERNEL.append(_jit(numba, _nearest_kernel_py, fastmath={"reassoc"}))
        _KERNEL.insert(0, kernel)
        if len(_KERNEL) == 1:
            _KERNEL.append(None)
    return _KERNEL[0]


def _jit(numba: Any, func: Any, **options: Any) -> Any:
    try:
        return numba.njit(cache=True, nogil=True, **options)(func)
    except RuntimeError:  # no writable cache location: compile in every process instead
        return numba.njit(nogil=True, **options)(func)


def fast_nearest_kernel() -> Any:
    """The compiled :func:`_nearest_kernel_py` (for :class:`gioselect.optimize.CandidateSet`), or None."""
    _fast_kernel()
    return _KERNEL[1]


def fast_path_available() -> bool:
    """True when GIO's gradient loop runs compiled (numba importable and not disabled)."""
    return _fast_kernel() is not None
