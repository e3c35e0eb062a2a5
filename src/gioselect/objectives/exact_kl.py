"""The exact k-NN estimate of KL(target || selection) as an objective (``objective="exact"``/``"exact-sym"``).

Why a second objective
----------------------
Under the relaxed estimator that GIO's gradient search optimises (:mod:`gioselect.optimize`), the direction
towards the next point does not depend on the points already selected. The paper's actual objective,
``KL(X || D ∪ V)``, does: it rewards covering the parts of the target X that the selection still misses. This
module computes the consistent estimator of Wang, Kulkarni and Verdú (2009) incrementally (:class:`ExactKL`)
and offers it to the greedy as a :class:`~gioselect.objectives.base.BoundedObjective`
(:class:`ExactKLObjective`); the search that drives it is :class:`gioselect.search.exact.ExactGreedySearch`
(warm-up, stopping, checkpoints) with the optimiser :class:`gioselect.search.lazy_greedy.LazyGreedy`.

The objective
-------------
With W the current set (start set D plus the picks, m points), target X (n points, dimension d), ``rho_k(i)``
the distance from ``x_i`` to its k-th neighbour among the other target points and ``nu_l(i)`` the distance
to its l-th neighbour in W, the generalised Wang estimator is::

    F_l(W) = (d/n) sum_i log(nu_l(i) / rho_k(i)) + psi(k) - psi(l) + log(m / (n - 1))

consistent for every fixed rank l (``psi`` is the digamma function; for l = k it is :func:`~gioselect.kl_knn`).
``objective="exact-sym"`` adds the reverse direction, estimated the same way with the roles swapped::

    R_l(W) = (d/m) sum_j log(nu^X_k(w_j) / rho^W_l(w_j)) + psi(l) - psi(k) + log(n / (m - 1))

(``nu^X_k(w)``: distance from w to its k-th neighbour in X; ``rho^W_l(w_j)``: to its l-th neighbour among the
other points of W) and minimises ``F_l + R_l``, an estimate of the symmetrised (Jeffreys) divergence.

When the target is part of the pool, a pool row equal to a target point is at distance 0 (floored at
:data:`~gioselect.divergence.MIN_DIST`) and looks like a perfect match at rank 1: pass
``discard_nearest_for_xy=True``, which measures each target point's neighbours in W without its nearest one
(rank l + 1 among m points, estimate with m - 1).

Which rank (the remedy for stalling)
------------------------------------
With the textbook rank l = k the greedy stalls in low dimensions: its first k picks all go to the target's
mode (k points near the centre already make every ``nu_k(i)`` about ``|x_i - centre|``), and after them one
more point barely moves any target point's k-th neighbour distance while ``log((m+1)/m)`` still grows, so
"stop when no candidate lowers the estimate" ends with k points (on a 2-D Gaussian: 5 points, coverage 4%).

The remedy is to measure the selection side at rank 1 while the selection is small: each new point then
immediately lowers the nearest-neighbour distance of the target points around it, so the greedy spreads out
instead of stacking on the mode. Two schedules do that:

* ``rank_schedule="one"`` (the default): l = 1 throughout. ``F_1`` is a consistent estimator like any fixed
  rank, and its coverage term ``sum_i -log nu_1(i) = sum_i max_{w in W} -log |x_i - w|`` is a
  facility-location function - monotone and submodular - so every candidate's gain can only shrink as W
  grows, the lazy bounds below are the gains themselves, and the greedy carries the usual (1 - 1/e) guarantee
  for that term.
* ``rank_schedule="balanced"``: the rank ramps up with the set's size, ``l(m) = clip(round(k m / (n-1)), 1, k)``.
  That is the choice that makes the estimator's two neighbourhoods hold the same share of their samples
  (``l / m ≈ k / (n - 1)``), so that for a selection distributed like the target both balls have the same
  radius and the first-order biases of the two k-NN density estimates cancel (Wang et al.'s rule for choosing
  the two ranks). It reaches rank k when the selection is as large as the target.

Both select the same points while ``k m / (n - 1) < 1.5``. On the Gaussian mixtures of
``experiments/compare_objectives.py`` the balanced ramp selected no better, and worse once it had ramped up
(300 picks for a 500-point target, 16-D and 64-D: energy distance to the held-out target 0.18 and 0.77 against
0.04 and 0.46 with rank 1), so rank 1 is the default. ``rank_schedule="fixed"`` (l = min(k, m), the textbook
rank) is kept for comparison; it is the one that stalls.


Exact gains and the lazy bounds
-------------------------------
For every target point the search keeps its k smallest distances to W (``n x k`` numbers, plus one column
with ``discard_nearest_for_xy``). Adding a candidate c at distance ``r_i`` from ``x_i`` changes ``nu_l(i)``
to ``min(nu_l(i), max(nu_{l-1}(i), r_i))``, so the estimate after adding c costs O(n d) and is exact.
Candidates are evaluated in blocks of rows (one block of distances at a time, never an ``n x M`` matrix).

For l = 1 the gain of a candidate can only shrink as W grows (see above). For l >= 2 the exact gain is
**not** monotone in W (adding points can make a candidate's gain grow: with one point already near ``x_i``,
a candidate near it now completes its 2-nearest pair), so the textbook lazy greedy does not apply as such.
What is monotone is an upper bound::

    gain_i(c; W) = [log nu_l(i) - log max(nu_{l-1}(i), r_i)]_+  <=  [log nu_l(i) - log r_i]_+ =: u_i(c; W)

and ``u_i`` can only shrink as W grows, because ``nu_l(i)`` can only shrink (equality when l = 1). A bound
computed at an earlier W therefore bounds the gain at every later W of the same rank. For the reverse term,
``rho^W_l(c)`` and every ``rho^W_l(w_j)`` can only shrink as W grows, which bounds ``R_l(W ∪ c)`` from below
by a candidate term ``(d / (m+1)) (log nu^X_k(c) - log rho^W_l(c))`` that can only grow. The lazy greedy
(:mod:`gioselect.search.lazy_greedy`) evaluates candidates in order of these stale bounds; the bound key is
the rank, so when the rank changes every bound is dropped and all candidates are evaluated again (at most
k - 1 times per run).

Ties: candidates whose values are within ``1e-9 * (1 + |best|)`` of the best count as tied and the lowest
index wins, in both the lazy and the exhaustive (``lazy=False``) evaluation, so the two make the same picks
even though a block's floating-point rounding can differ in the last bits between them.

Cost: O(M n d) for a full evaluation (the first pick and each rank change), then per pick O(B (n + m) d)
for the B candidates whose bounds are competitive (for l = 1 the bound is the gain itself) plus O(M) to rank
the bounds; at 4000 candidates and 300 picks 2-12% of the exhaustive evaluations for the one-sided objective.
Memory: O(n k + M), and O(m (d + k) + M) more with the reverse term.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..divergence import MAX_SQ_DIST, MIN_SQ_DIST, knn_distances

__all__ = ["ExactKL", "ExactKLObjective", "balanced_rank"]

# Entries (float64) of one block of candidate-to-target (or candidate-to-selection) distances: 32 MiB.
_BLOCK_ELEMS = 1 << 22
_EULER_GAMMA = 0.5772156649015329


@functools.cache
def _digamma_int(n: int) -> float:
    """psi(n) for a positive integer: -gamma + sum_{j<n} 1/j."""
    return -_EULER_GAMMA + math.fsum(1.0 / j for j in range(1, n))


def balanced_rank(k: int, m: int, n: int) -> int:
    """Selection-side rank of the balanced schedule: ``clip(round(k m / (n - 1)), 1, k)``, at most m.

    Parameters
    ----------
    k : int
        Target-side rank (``params.k``).
    m : int
        Points in the selection the estimate is for (m >= 1).
    n : int
        Target points (n > k).
    """
    return max(1, min(k, m, math.floor(k * m / (n - 1) + 0.5)))


class ExactKL:
    """The incremental estimate: k smallest distances per target point (and per selected point for R).

    Inputs are already validated. Distances are float64, floored at :data:`MIN_DIST`; candidates may be float32
    (converted one block at a time).
    """

    def __init__(self, target: np.ndarray, k: int, *, offset: int, symmetric: bool, schedule: str = "one") -> None:
        self.x = np.ascontiguousarray(target, dtype=np.float64)
        self.n, self.d = self.x.shape
        self.k = int(k)
        self.off = int(offset)
        self.kk = self.k + self.off
        self.sym = bool(symmetric)
        self.schedule = schedule
        self.x_sq = np.einsum("ij,ij->i", self.x, self.x)
        rho = knn_distances(self.x, self.x, self.k, exclude_self=True)[:, -1]
        self.log_rho_sum = float(np.sum(np.log(rho)))
        self.psi_k = _digamma_int(self.k)
        self.m = 0
        self.nn = np.full((self.n, self.kk), np.inf)  # ascending distances from each x_i to W
        # Reverse direction: W's coordinates, each w_j's k smallest distances to the rest of W, sum log nu^X.
        self.w = np.zeros((0, self.d))
        self.w_sq = np.zeros(0)
        self.ww = np.full((0, self.k), np.inf)
        self.log_nu_w_sum = 0.0

    # -- ranks -----------------------------------------------------------------------------------------------
    def rank_key(self, m_after: int) -> tuple[int, int]:
        """(rank, offset) of the estimate for a set of ``m_after`` points."""
        off = self.off if m_after >= 2 else 0  # a single point has no nearest to discard
        eff = m_after - off
        if self.schedule == "fixed":
            return max(1, min(self.k, eff)), off
        if self.schedule == "one":
            return 1, off
        return balanced_rank(self.k, eff, self.n), off

    # -- distances -------------------------------------------------------------------------------------------
    def dist_to_target(self, pts: np.ndarray, pts_sq: np.ndarray) -> np.ndarray:
        """Distances (B, n) from rows ``pts`` (float64) to the target, floored at MIN_DIST."""
        d2 = pts @ self.x.T
        d2 *= -2.0
        d2 += pts_sq[:, None]
        d2 += self.x_sq[None, :]
        np.clip(d2, MIN_SQ_DIST, MAX_SQ_DIST, out=d2)
        return np.sqrt(d2, out=d2)

    def dist_to_w(self, pts: np.ndarray, pts_sq: np.ndarray) -> np.ndarray:
        """Distances (B, m) from rows ``pts`` to the current set W."""
        d2 = pts @ self.w[: self.m].T
        d2 *= -2.0
        d2 += pts_sq[:, None]
        d2 += self.w_sq[None, : self.m]
        np.clip(d2, MIN_SQ_DIST, MAX_SQ_DIST, out=d2)
        return np.sqrt(d2, out=d2)

    # -- values ----------------------------------------------------------------------------------------------
    def _forward_const(self, rank: int, off: int, m_after: int) -> float:
        return (self.psi_k - _digamma_int(rank) + math.log((m_after - off) / (self.n - 1))
                - self.d * self.log_rho_sum / self.n)

    def reverse_on(self, rank: int, m_after: int) -> bool:
        """Whether the reverse term is defined for a set of ``m_after`` points at this rank."""
        return self.sym and m_after - 1 >= rank

    def _reverse_const(self, rank: int, m_after: int) -> float:
        return _digamma_int(rank) - self.psi_k + math.log(self.n / (m_after - 1))

    def value(self, rank: int, off: int) -> float:
        """The objective of the current set at (rank, off); NaN where undefined."""
        m = self.m
        col = rank - 1 + off
        if m - off < rank or m == 0:
            return math.nan
        f = self.d / self.n * float(np.sum(np.log(self.nn[:, col]))) + self._forward_const(rank, off, m)
        if not self.sym:
            return f
        if not self.reverse_on(rank, m):
            return math.nan
        s_rho = float(np.sum(np.log(self.ww[:m, rank - 1])))
        return f + self.d / m * (self.log_nu_w_sum - s_rho) + self._reverse_const(rank, m)

    def evaluate(self, pts: np.ndarray, log_nu: np.ndarray | None, rank: int, off: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact objective after adding each row of ``pts`` (float64, B x d), and fresh bounds (u, a).

        ``log_nu``: log nu^X_k of each row (reverse term only). Returns ``(value, u, a)``, each (B,).
        """
        m_after = self.m + 1
        col = rank - 1 + off
        pts_sq = np.einsum("ij,ij->i", pts, pts)
        r = self.dist_to_target(pts, pts_sq)
        kl_col = self.nn[:, col]
        prev = self.nn[:, col - 1] if col >= 1 else np.zeros(self.n)
        new = np.where(r < kl_col[None, :], np.maximum(r, prev[None, :]), kl_col[None, :])
        log_r = np.log(r)
        value = self.d / self.n * np.log(new).sum(axis=1) + self._forward_const(rank, off, m_after)
        if np.isfinite(kl_col).all():
            gap = np.log(kl_col)[None, :] - log_r
            np.maximum(gap, 0.0, out=gap)
            u = gap.sum(axis=1)
        else:
            u = np.full(pts.shape[0], np.inf)
        a = np.full(pts.shape[0], -np.inf)
        if self.reverse_on(rank, m_after):
            assert log_nu is not None
            dw = self.dist_to_w(pts, pts_sq)  # (B, m), m >= rank
            wl = self.ww[: self.m, rank - 1]
            wprev = self.ww[: self.m, rank - 2] if rank >= 2 else np.zeros(self.m)
            newj = np.where(dw < wl[None, :], np.maximum(dw, wprev[None, :]), wl[None, :])
            own = np.partition(dw, rank - 1, axis=1)[:, rank - 1]
            a = log_nu - np.log(own)
            s_rho = np.log(newj).sum(axis=1)
            value = value + self.d / m_after * (self.log_nu_w_sum - s_rho + a) + self._reverse_const(rank, m_after)
        return value, u, a

    def bound_const(self, rank: int, off: int) -> tuple[float, float] | None:
        """``(A, beta)`` with value(c) >= A - (d/n) u(c) + beta a(c) for stale (u, a); None when unusable."""
        m_after = self.m + 1
        col = rank - 1 + off
        kl_col = self.nn[:, col]
        if not np.isfinite(kl_col).all():
            return None
        big_a = self.d / self.n * float(np.sum(np.log(kl_col))) + self._forward_const(rank, off, m_after)
        beta = 0.0
        if self.reverse_on(rank, m_after):
            wl = self.ww[: self.m, rank - 1]
            if not np.isfinite(wl).all():
                return None
            beta = self.d / m_after
            big_a += beta * (self.log_nu_w_sum - float(np.sum(np.log(wl)))) + self._reverse_const(rank, m_after)
        return big_a, beta

    # -- updates ---------------------------------------------------------------------------------------------
    def reset(self, pts: np.ndarray, log_nu: np.ndarray | None) -> None:
        """Set W to ``pts`` (float64, m0 x d), computing every kept distance in blocks."""
        m0 = pts.shape[0]
        self.m = m0
        self.nn = np.full((self.n, self.kk), np.inf)
        if m0:
            kq = min(self.kk, m0)
            self.nn[:, :kq] = knn_distances(self.x, pts, kq)
        if self.sym:
            cap = max(16, 2 * m0)
            self.w = np.zeros((cap, self.d))
            self.w[:m0] = pts
            self.w_sq = np.zeros(cap)
            self.w_sq[:m0] = np.einsum("ij,ij->i", pts, pts)
            self.ww = np.full((cap, self.k), np.inf)
            if m0 >= 2:
                kq = min(self.k, m0 - 1)
                self.ww[:m0, :kq] = knn_distances(pts, pts, kq, exclude_self=True)
            self.log_nu_w_sum = float(np.sum(log_nu)) if log_nu is not None and m0 else 0.0

    def add(self, p: np.ndarray, log_nu_p: float) -> None:
        """Append the point ``p`` (float64, shape (d,)) to W. O((n + m) (d + k))."""
        p2 = p[None, :]
        p_sq = np.einsum("ij,ij->i", p2, p2)
        r = self.dist_to_target(p2, p_sq)[0]
        _insert(self.nn, r)
        if self.sym:
            m = self.m
            if m + 1 > self.w.shape[0]:
                cap = 2 * self.w.shape[0]
                self.w = np.concatenate([self.w, np.zeros((cap - m, self.d))])
                self.w_sq = np.concatenate([self.w_sq, np.zeros(cap - m)])
                self.ww = np.concatenate([self.ww, np.full((cap - m, self.k), np.inf)])
            if m:
                dw = self.dist_to_w(p2, p_sq)[0]
                _insert(self.ww[:m], dw)
                own = np.sort(dw)[: self.k]
                self.ww[m, : own.shape[0]] = own
            self.w[m] = p
            self.w_sq[m] = p_sq[0]
            self.log_nu_w_sum += log_nu_p
        self.m += 1

    def restore(self, nn: np.ndarray, m: int, pts: np.ndarray, ww: np.ndarray, log_nu_w_sum: float) -> None:
        """Set the kept distances from a checkpoint: ``nn`` (n x k'), the set's size, and for the reverse term
        its points ``pts`` (m x d), their distances ``ww`` (m x k) and ``sum log nu^X``."""
        self.nn = np.asarray(nn, dtype=np.float64).copy()
        self.m = int(m)
        if self.sym:
            cap = max(16, 2 * self.m)
            self.w = np.zeros((cap, self.d))
            self.w[: self.m] = pts
            self.w_sq = np.zeros(cap)
            self.w_sq[: self.m] = np.einsum("ij,ij->i", pts, pts)
            self.ww = np.full((cap, self.k), np.inf)
            self.ww[: self.m] = np.asarray(ww, dtype=np.float64)
            self.log_nu_w_sum = float(log_nu_w_sum)


def _insert(rows: np.ndarray, r: np.ndarray) -> None:
    """Insert r[i] into the ascending row i of ``rows`` (dropping the largest), in place."""
    hit = r < rows[:, -1]
    if hit.any():
        sub = np.concatenate([rows[hit, :-1], r[hit, None]], axis=1)
        sub.sort(axis=1)
        rows[hit] = sub




class ExactKLObjective:
    """:class:`ExactKL` over the rows of a candidate array: a :class:`~gioselect.objectives.base.BoundedObjective`.

    Every value is the estimate at the rank of the set the next addition makes (:meth:`bound_key`, from the
    estimate's rank schedule), so the lazy greedy's bounds are dropped exactly when that rank changes.

    Parameters
    ----------
    estimate : ExactKL
        The estimate, already reset to the start set.
    candidates : array of shape (M, d)
        The candidate rows (float32 is fine; read in blocks, converted to float64 a block at a time).
    log_nu : array of shape (M,), optional
        ``log nu^X_k`` of every candidate (the reverse term only).

    Notes
    -----
    Bound components ``(u, a)``: the forward gain bound (can only shrink as W grows) and the reverse
    candidate term (can only grow); a candidate never evaluated has ``(inf, -inf)``.
    """

    def __init__(self, estimate: ExactKL, candidates: np.ndarray, log_nu: np.ndarray | None) -> None:
        self.estimate = estimate
        self.candidates = candidates
        self.log_nu = log_nu
        self.n_candidates = int(candidates.shape[0])
        self.bound_fill = (math.inf, -math.inf)
        self._rows = max(1, _BLOCK_ELEMS // max(1, estimate.n))

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Candidate rows ``idx`` as float64 (fancy indexing in sorted order, for memory maps)."""
        order = np.argsort(idx, kind="stable")
        out = np.empty((idx.shape[0], self.estimate.d))
        out[order] = np.asarray(self.candidates[idx[order]], dtype=np.float64)
        return out

    def bound_key(self) -> tuple[int, int]:
        """(rank, offset) of the set the next addition makes."""
        return self.estimate.rank_key(self.estimate.m + 1)

    def value(self) -> float:
        """The current set at the next set's rank (NaN where undefined)."""
        return self.estimate.value(*self.bound_key())

    def evaluate(self, idx: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Exact values after adding each candidate ``idx[j]`` and their bounds ``(u, a)``, in blocks of rows."""
        est = self.estimate
        rank, off = self.bound_key()
        out, u_out, a_out = np.empty(idx.shape[0]), np.empty(idx.shape[0]), np.empty(idx.shape[0])
        step = self._rows if not est.sym else max(1, _BLOCK_ELEMS // max(1, est.n + est.m))
        for s in range(0, idx.shape[0], step):
            sub = idx[s : s + step]
            log_nu = None if self.log_nu is None else self.log_nu[sub]
            val, u, a = est.evaluate(self.rows(sub), log_nu, rank, off)
            out[s : s + step] = val
            u_out[s : s + step] = u
            a_out[s : s + step] = a
        return out, (u_out, a_out)

    def values_after(self, idx: np.ndarray) -> np.ndarray:
        """Exact values after adding each candidate ``idx[j]``."""
        return self.evaluate(idx)[0]

    def lower_bounds(self, bounds: tuple[np.ndarray, ...]) -> np.ndarray | None:
        """``A - (d/n) u + beta a`` from the stale ``(u, a)``; None while some target point has no l-th
        neighbour in W (the bound is then unknown)."""
        rank, off = self.bound_key()
        consts = self.estimate.bound_const(rank, off)
        if consts is None:
            return None
        big_a, beta = consts
        lb = big_a - (self.estimate.d / self.estimate.n) * bounds[0]  # -inf where the bound is unknown
        if beta > 0.0:
            lb += beta * bounds[1]
        return lb

    def add(self, idx: int) -> None:
        """Add candidate ``idx`` to the estimate's set."""
        point = self.rows(np.array([idx]))[0]
        self.estimate.add(point, 0.0 if self.log_nu is None else float(self.log_nu[idx]))

