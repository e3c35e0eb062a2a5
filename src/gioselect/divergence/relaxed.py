"""The relaxed k-NN estimate GIO optimises, its gradient, and the incremental states the search keeps.

:class:`RelaxedKL` is the estimator of :func:`kl_relaxed` for one target and a growing sample; its
:meth:`RelaxedKL.descend` is the gradient loop where GIO spends its time (compiled by :mod:`.kernels` when numba
is installed). :class:`RepelledKL` subtracts a weighted second term for an exclusion set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..validation import check_embeddings, check_real
from .kernels import fast_descend_kernel, fast_pick_kernel, fast_point_kernel
from .knn import DEFAULT_EPS, MAX_SQ_DIST, MIN_SQ_DIST, check_estimator_inputs, iter_sq_dist_blocks, knn_distances


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
    x, w, k_ = check_estimator_inputs(target, sample, k, sample_min=2 if discard_nearest_for_xy else 1)
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
    x, w, k_ = check_estimator_inputs(target, sample, k, sample_min=1)
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

    The target is held as float64 (it is target-sized, never pool-sized); the compiled kernels read a float32 copy
    instead when float32 holds it exactly (the same values, so the same bits).
    """

    def __init__(self, target: np.ndarray, k: int, *, discard_nearest_for_xy: bool = False,
                 eps: float = DEFAULT_EPS) -> None:
        # Inputs already validated by the caller.
        self.x = np.ascontiguousarray(target, dtype=np.float64)
        self.n, self.d = self.x.shape
        # The compiled kernels read the target as float32 when that holds it exactly (float32 embeddings, the
        # usual case): each value widens to the same float64, so the same bits, from half the memory (the
        # kernel is memory-bound at text sizes: 860 x 384 is 2.6 MB as float64).
        x32 = target if isinstance(target, np.ndarray) and target.dtype == np.float32 else self.x.astype(np.float32)
        self._xk = np.ascontiguousarray(x32) if np.array_equal(x32, self.x) else self.x
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
        # (sq, m, log_dist_sum, nearest_sq, value) of the last value_if_added: add() with the same sq returns it
        self._last_value: tuple[np.ndarray, int, float, np.ndarray, float] | None = None
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
        kernel = fast_point_kernel() if self.use_fast is not False and p.ndim == 1 else None
        if kernel is not None:  # one compiled pass that also sums the log-distances (kept for _log_sum)
            out = np.empty(self.n)
            total = kernel(self._xk, self.x_sq, p, self.eps, MIN_SQ_DIST, MAX_SQ_DIST, out)
            self._last_log_sum = (out, float(total))
            return out
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
        # the nearest distances enter the value only with discard_nearest_for_xy
        val = self._value(self.m + 1, lds, np.minimum(self.nearest_sq, sq) if self.discard else self.nearest_sq)
        self._last_value = (sq, self.m, self.log_dist_sum, self.nearest_sq, val)
        return val

    def add(self, p: np.ndarray, sq: np.ndarray | None = None) -> float:
        """Append ``p`` to the sample; returns the new value. O(n d)."""
        if sq is None:
            sq = self.sq_dists(p)
        last, self._last_value = self._last_value, None
        # after value_if_added(p, sq) on this state, the new value is the one it computed: the same operands
        # (log_dist_sum + the same log sum, the same minimum), so the same bits, without computing it again
        known = (last is not None and last[0] is sq and last[1] == self.m and last[2] == self.log_dist_sum
                 and last[3] is self.nearest_sq)
        self.log_dist_sum += self._log_sum(sq)
        self._last_log_sum = None
        np.minimum(self.nearest_sq, sq, out=self.nearest_sq)
        self.m += 1
        return last[4] if known and last is not None else self.value()

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
        kernel = fast_descend_kernel() if self.use_fast is not False else None
        if kernel is not None:
            if self._row_w.shape[0] != self.n:
                self._row_w = np.ones(self.n)
            kernel(self._xk if x is self.x else x, x_sq, self._row_w if row_w is None else row_w, v, int(steps),
                   float(factor), self.eps, MIN_SQ_DIST, MAX_SQ_DIST)
            return v
        return self._descend_numpy(v, steps, factor, x, x_sq, row_w)

    def descend_and_pick(
        self, v: np.ndarray, steps: int, lr: float, scale: float, points: np.ndarray, sq_norms: np.ndarray,
        used: np.ndarray,
    ) -> tuple[np.ndarray, int, np.ndarray, np.ndarray] | None:
        """One search pick in one compiled call, or None where that does not apply (no numba, ``use_fast=False``,
        ``discard_nearest_for_xy``, a subclass, no steps).

        The same as :meth:`descend` from ``v``, then the unused row of ``points`` nearest to the end (as
        :meth:`gioselect.optimize.CandidateSet.nearest_unused`: ``sq_norms`` its rows' squared norms, ``used``
        the mask), then :meth:`sq_dists` of that row (remembered for :meth:`value_if_added` and :meth:`add`,
        as there): ``(v, i, point, sq)`` with ``i = -1`` (and ``point``, ``sq`` unset) when every row is used.
        The same compiled functions as the three separate calls, so the same bits; it only saves the trips
        through Python between them.
        """
        if self.discard or steps == 0 or self.use_fast is False or type(self) is not RelaxedKL:
            return None
        kernel = fast_pick_kernel()
        if kernel is None:
            return None
        if self._row_w.shape[0] != self.n:
            self._row_w = np.ones(self.n)
        v = np.array(v, dtype=np.float64)
        point = np.empty(self.d)
        out = np.empty(self.n)
        factor = lr * scale * self.d / (self.n * (self.m + 1))
        i, total = kernel(self._xk, self.x_sq, self._row_w, v, int(steps), float(factor), self.eps, MIN_SQ_DIST,
                          MAX_SQ_DIST, points, sq_norms, used, point, out)
        if i >= 0:
            self._last_log_sum = (out, float(total))
        return v, int(i), point, out

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
