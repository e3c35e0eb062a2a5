"""Greedy selection on the exact k-NN estimate of KL(target || selection) (``objective="exact"``).

Why a second search mode
------------------------
Under the relaxed estimator that GIO's gradient search optimises (:mod:`gioselect.optimize`), the direction
towards the next point does not depend on the points already selected. The paper's actual objective,
``KL(X || D ∪ V)``, does: it rewards covering the parts of the target X that the selection still misses. This
module optimises the consistent estimator of Wang, Kulkarni and Verdú (2009) directly, one pool row at a time.
:class:`ExactGreedySearch` has the interface of :class:`gioselect.optimize.GIOSearch`, so the selector, the
pipeline (checkpoints, resume, budget, quantisation) and the CLI drive it unchanged.

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

The first picks and the warm-up
-------------------------------
No uniform noise points are added. While the set is empty the estimate is undefined; the first pick is the
candidate that minimises ``F_1({c})``, i.e. the one with the smallest mean log distance to the target, and
every later pick is made with the rank of the set it creates (always defined: the rank is at most its size).
The stopping criteria are not consulted while the set has fewer than k points (the first k picks into an
empty start set): that is where the textbook rank-k estimate is not yet defined, and where any k-NN estimate
is dominated by the placement of a handful of points (a single point at a 2-D Gaussian's mode scores lower
than the best 2- or 3-point sets). ``max_iter``, the budget and ``data_size`` apply from the first pick.
In the negative case (pool far from the target) the run therefore ends with the k warm-up picks.

Once a selection is representative, a consistent estimate no longer falls as points are added (it hovers
around its limit), so the "increase" rule stops at the first noisy rise: on 8-D mixtures within a few picks
of the warm-up, on 16-D and 64-D ones after 74-169 picks for a 500-point target. Give a budget or
``max_iter`` (with ``stop_criterion="data_size"``, which never fires before them) when a size is wanted.

A pick "lowers the estimate" when the estimate of the new set is below the estimate of the old set *at the
same rank*; that is the value the stopping criteria see as ``kl_prev``. The KL trace records each new set's
value at its own rank, so it is non-increasing while the rank stays the same and may step where the rank
changes (``state.rank_trace`` records the rank of every accepted pick, ``state.prev_trace`` the same-rank
value before it).

Exact gains and lazy evaluation
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
by a candidate term ``(d / (m+1)) (log nu^X_k(c) - log rho^W_l(c))`` that can only grow. Each pick evaluates
candidates in order of these stale bounds, in blocks, and stops as soon as no unevaluated candidate's bound
can beat the best exact value found; the bounds of the evaluated candidates are refreshed. When the rank
changes every bound is dropped and all candidates are evaluated again (at most k - 1 times per run).

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
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .divergence import MAX_SQ_DIST, MIN_SQ_DIST, knn_distances
from .errors import InvalidInputError, InvalidParameterError
from .optimize import EVENT_ACCEPTED, EVENT_RESET, EVENT_STOP, GIOParams, LoopState, PickEvent
from .stopping import StopContext

__all__ = ["EXACT_OBJECTIVES", "RANK_SCHEDULES", "ExactGreedySearch", "balanced_rank"]

logger = logging.getLogger(__name__)

#: Objective names this module implements: the one-sided estimate and the two-sided (Jeffreys) one.
EXACT_OBJECTIVES = ("exact", "exact-sym")
#: How the selection-side neighbour rank follows the set's size.
RANK_SCHEDULES = ("one", "balanced", "fixed")

# Entries (float64) of one block of candidate-to-target (or candidate-to-selection) distances: 32 MiB.
_BLOCK_ELEMS = 1 << 22
# Candidates evaluated by the first lazy round of a pick; later rounds of the same pick double it.
_FIRST_LAZY_BATCH = 64
# Relative tolerance under which two candidates' values count as tied (the lowest index wins).
_TIE_RTOL = 1e-9
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


@dataclass
class _ExactLoopState(LoopState):
    """:class:`gioselect.optimize.LoopState` plus what the exact search records."""

    rank_trace: list[int] = field(default_factory=list)  # rank in force for each accepted pick
    prev_trace: list[float] = field(default_factory=list)  # same-rank value of the set before each accepted pick
    evaluations: int = 0  # candidate evaluations (one O(n d) gain each), for speed comparisons


class _Bounds:
    """Stale bounds per candidate, valid for one rank key: forward gain bound U (up) and reverse term a (down)."""

    def __init__(self, size: int) -> None:
        self.key: tuple[int, int] | None = None
        self.u = np.full(size, np.inf)
        self.a = np.full(size, -np.inf)

    def invalidate(self, key: tuple[int, int]) -> None:
        self.key = key
        self.u.fill(np.inf)
        self.a.fill(-np.inf)


class _ExactKL:
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


def _insert(rows: np.ndarray, r: np.ndarray) -> None:
    """Insert r[i] into the ascending row i of ``rows`` (dropping the largest), in place."""
    hit = r < rows[:, -1]
    if hit.any():
        sub = np.concatenate([rows[hit, :-1], r[hit, None]], axis=1)
        sub.sort(axis=1)
        rows[hit] = sub


class ExactGreedySearch:
    """One greedy run on the exact k-NN KL estimate; iterate :meth:`run` (or call :meth:`step`) to make picks.

    Same interface as :class:`gioselect.optimize.GIOSearch`, so :class:`~gioselect.GIOSelector` and the
    pipeline drive it unchanged. See the module docstring for the objective, the rank schedule, the warm-up
    and the lazy evaluation.

    Parameters
    ----------
    candidates : array of shape (M, d)
        The pool (or its K-means centroids). Validated by the caller; float32 is fine. Read in blocks.
    target : array of shape (n, d), n > k
        Validated by the caller.
    params : GIOParams
        Used: ``k``, ``max_iter``, ``stop_criterion`` and its parameters, ``resets_allowed``/``max_resets``,
        ``random_init_pct``, ``discard_nearest_for_xy``, ``objective`` (``"exact"`` or ``"exact-sym"``).
        The gradient options (``v_init``, ``lr``, ``grad_desc_iter``, ``scale_factor``, ``eps``,
        ``random_restart_prob``), the uniform start points and the ``reference_*`` quirks do not apply.
    rng : numpy.random.Generator
        Used only to draw the ``random_init_pct`` start rows.
    init : array of shape (m0, d), optional
        Explicit start set D (stays in the estimate, never returned as selected).
    weights : array of shape (M,), optional
        Rows each candidate stands for (cluster sizes when quantised); used only with ``budget``. Every
        candidate counts as one point in the estimate.
    budget : float, optional
        Stop before the accepted weight would exceed this (``budget_exact``: accept the crossing pick).
    objective : {"exact", "exact-sym"}, optional
        Overrides ``params.objective`` (for callers whose ``GIOParams`` cannot name it yet).
    rank_schedule : {"one", "balanced", "fixed"}, default "one"
        Selection-side rank: always 1 (the nearest selected point); ``clip(round(k m / (n - 1)), 1, k)``; or
        ``min(k, m)`` (the textbook rank, which stalls; for comparison).
    lazy : bool, default True
        Evaluate candidates in order of their stale bounds; ``False`` evaluates every candidate at every pick
        (same picks, slower).

    Attributes
    ----------
    state : _ExactLoopState
        ``selected``, ``kl_trace``, ``history``, ``stop_reason``, ``n_iter``, ``num_resets``, ``total_iter``,
        ``v`` (zeros), ``rank_trace``, ``prev_trace``, ``evaluations``.
    initial_kl : float
        Objective of the start set (NaN when it is empty or too small for the estimate).
    scale : float
        NaN (there is no gradient).
    start_points, init_indices, params, done
        As in :class:`~gioselect.optimize.GIOSearch`.
    """

    def __init__(
        self,
        candidates: np.ndarray,
        target: np.ndarray,
        params: GIOParams,
        rng: np.random.Generator,
        *,
        init: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        budget: float | None = None,
        budget_exact: bool = False,
        objective: str | None = None,
        rank_schedule: str = "one",
        lazy: bool = True,
    ) -> None:
        obj = params.objective if objective is None else objective
        if obj not in EXACT_OBJECTIVES:
            raise InvalidParameterError(
                f"objective: ExactGreedySearch implements {', '.join(map(repr, EXACT_OBJECTIVES))}, got {obj!r}"
            )
        if rank_schedule not in RANK_SCHEDULES:
            raise InvalidParameterError(
                f"rank_schedule: expected one of {', '.join(map(repr, RANK_SCHEDULES))}, got {rank_schedule!r}"
            )
        if target.shape[0] <= params.k:
            raise InvalidInputError(
                f"target: has {target.shape[0]} rows; the k-NN estimator needs more than k={params.k}"
            )
        self.params = params
        self.objective_name = obj
        self.rank_schedule = rank_schedule
        self.lazy = bool(lazy)
        self.rng = rng
        self.points = candidates
        self.size = int(candidates.shape[0])
        self.target = target
        self.criterion = params.criterion()
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.budget = budget
        self.budget_exact = budget_exact
        self.used = np.zeros(self.size, dtype=bool)
        self.n_used = 0
        self.scale = math.nan
        self.obj = _ExactKL(target, params.k, offset=1 if params.discard_nearest_for_xy else 0,
                            symmetric=obj == "exact-sym", schedule=rank_schedule)
        self._rows = max(1, _BLOCK_ELEMS // max(1, self.obj.n))
        # log nu^X_k of every candidate (reverse term only): one blocked O(M n d) pass.
        self.log_nu = (np.log(knn_distances(candidates, self.obj.x, params.k)[:, -1])
                       if self.obj.sym else None)

        self.init_indices: np.ndarray | None = None
        self.start_points = self._start_set(init)
        start_log_nu = None
        if self.obj.sym and self.start_points.shape[0]:
            start_log_nu = np.log(knn_distances(self.start_points, self.obj.x, params.k)[:, -1])
        self.obj.reset(self.start_points, start_log_nu)
        m0 = self.obj.m
        self.initial_kl = self.obj.value(*self.obj.rank_key(m0)) if m0 else math.nan
        self.bounds = _Bounds(self.size)
        self.state = _ExactLoopState(v=np.zeros(self.obj.d), kl_prev=self.initial_kl)
        logger.info("exact greedy start: objective %s, %d start points, estimate %.6g, %s evaluation", obj, m0,
                    self.initial_kl, "lazy" if self.lazy else "exhaustive")

    # -- set-up ----------------------------------------------------------------------------------------------
    def _start_set(self, init: np.ndarray | None) -> np.ndarray:
        d = self.target.shape[1]
        if init is not None:
            return np.asarray(init, dtype=np.float64).reshape(-1, d)
        p = self.params
        if p.random_init_pct > 0:
            # Rows of the pool, drawn as GIOSearch draws them; they stay candidates too.
            amount = int(p.random_init_pct * self.size)
            idx = np.asarray(self.rng.choice(self.size, size=amount, replace=False), dtype=np.int64)
            self.init_indices = idx
            return self._rows_of(idx)
        return np.zeros((0, d))

    def _rows_of(self, idx: np.ndarray) -> np.ndarray:
        """Candidate rows ``idx`` as float64 (fancy indexing in sorted order, for memory maps)."""
        order = np.argsort(idx, kind="stable")
        out = np.empty((idx.shape[0], self.obj.d))
        out[order] = np.asarray(self.points[idx[order]], dtype=np.float64)
        return out

    # -- evaluation ------------------------------------------------------------------------------------------
    def _evaluate(self, idx: np.ndarray, rank: int, off: int) -> np.ndarray:
        """Exact values of the candidates ``idx`` (refreshing their bounds), in blocks of rows."""
        out = np.empty(idx.shape[0])
        step = self._rows if not self.obj.sym else max(1, _BLOCK_ELEMS // max(1, self.obj.n + self.obj.m))
        for s in range(0, idx.shape[0], step):
            sub = idx[s : s + step]
            log_nu = None if self.log_nu is None else self.log_nu[sub]
            val, u, a = self.obj.evaluate(self._rows_of(sub), log_nu, rank, off)
            out[s : s + step] = val
            self.bounds.u[sub] = u
            self.bounds.a[sub] = a
        self.state.evaluations += int(idx.shape[0])
        return out

    @staticmethod
    def _tie_break(idx: np.ndarray, val: np.ndarray) -> tuple[int, float]:
        best = float(val.min())
        tied = val <= best + _TIE_RTOL * (1.0 + abs(best))
        j = int(idx[tied].min())
        return j, best

    def _best(self, rank: int, off: int) -> tuple[int, float]:
        """The pick: the unused candidate with the lowest objective after adding it (ties: lowest index)."""
        if self.bounds.key != (rank, off):
            self.bounds.invalidate((rank, off))
        free = np.flatnonzero(~self.used)
        consts = self.obj.bound_const(rank, off) if self.lazy else None
        if consts is None:
            vals = self._evaluate(free, rank, off)
            j, _ = self._tie_break(free, vals)
            return j, float(vals[free == j][0])
        big_a, beta = consts
        lb = big_a - (self.obj.d / self.obj.n) * self.bounds.u  # -inf where the bound is unknown
        if beta > 0.0:
            lb += beta * self.bounds.a
        lb[self.used] = np.inf  # +inf marks "not to evaluate": used, or evaluated in this pick
        seen_idx: list[np.ndarray] = []
        seen_val: list[np.ndarray] = []
        best = math.inf
        batch = _FIRST_LAZY_BATCH
        remaining = free.shape[0]
        while remaining:
            take = min(batch, remaining)
            cand = np.argpartition(lb, take - 1)[:take] if take < lb.shape[0] else np.flatnonzero(lb < np.inf)
            if math.isfinite(best):
                cand = cand[lb[cand] <= best + _TIE_RTOL * (1.0 + abs(best))]
            if cand.shape[0] == 0:
                break
            cand.sort()
            vals = self._evaluate(cand, rank, off)
            lb[cand] = np.inf
            remaining -= cand.shape[0]
            seen_idx.append(cand)
            seen_val.append(vals)
            best = min(best, float(vals.min()))
            if not remaining or float(lb.min()) > best + _TIE_RTOL * (1.0 + abs(best)):
                break
            batch *= 2
        all_idx = np.concatenate(seen_idx)
        all_val = np.concatenate(seen_val)
        j, _ = self._tie_break(all_idx, all_val)
        return j, float(all_val[all_idx == j][0])

    # -- the loop --------------------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.state.stop_reason is not None

    def _finish(self, reason: str, cand: int = -1, kl: float = math.nan) -> PickEvent:
        st = self.state
        st.stop_reason = reason
        if cand >= 0:
            st.history.append((cand, kl, EVENT_STOP))
        logger.info("exact greedy stop: %s after %d picks (%d evaluated, %d candidate evaluations)", reason,
                    len(st.selected), st.n_iter, st.evaluations)
        return PickEvent(st.n_iter, cand, kl, False, False, len(st.selected), reason)

    def step(self) -> PickEvent | None:
        """Make one pick (or end the run); ``None`` once the run has ended."""
        st, p = self.state, self.params
        if st.stop_reason is not None:
            return None
        if p.max_iter is not None and st.total_iter >= p.max_iter:
            return self._finish("max_iter")
        if self.budget is not None and st.accepted_weight >= self.budget:
            return self._finish("budget")
        if self.n_used == self.size:
            return self._finish("pool_exhausted")

        m = self.obj.m
        rank, off = self.obj.rank_key(m + 1)
        idx, kl = self._best(rank, off)
        if not self.used[idx]:
            self.used[idx] = True
            self.n_used += 1
        st.n_iter += 1
        kl_prev = self.obj.value(rank, off)  # the current set at the new set's rank

        ctx = StopContext(kl, kl_prev, st.i, self.size, st.num_resets, st.increases)
        warm = m < p.k and self.criterion.name != "data_size"
        stop = (not warm) and self.budget is None and self.criterion.triggered(ctx)
        if stop and p.resets_allowed and st.num_resets < p.max_resets:
            st.num_resets += 1
            blocked = getattr(self, "blocked", None)  # rows an exclusion set keeps out stay out after a reset
            self.used[:] = blocked if blocked is not None else False
            self.n_used = int(self.used.sum())
            st.i -= 1
            st.just_reset = True
            st.history.append((idx, kl, EVENT_RESET))
            logger.info("exact greedy reset %d/%d: estimate would go from %.6g to %.6g", st.num_resets,
                        p.max_resets, kl_prev, kl)
            return PickEvent(st.n_iter, idx, kl, False, True, len(st.selected))
        if stop:
            return self._finish(self.criterion.name, idx, kl)
        st.just_reset = False

        w = 1.0 if self.weights is None else float(self.weights[idx])
        if self.budget is not None and st.accepted_weight + w > self.budget and not self.budget_exact:
            return self._finish("budget", idx, kl)
        point = self._rows_of(np.array([idx]))[0]
        self.obj.add(point, 0.0 if self.log_nu is None else float(self.log_nu[idx]))
        st.increases = st.increases + 1 if ctx.increased else 0
        st.selected.append(idx)
        st.kl_trace.append(kl)
        st.rank_trace.append(rank)
        st.prev_trace.append(kl_prev)
        st.history.append((idx, kl, EVENT_ACCEPTED))
        st.kl_prev = kl
        st.i += 1
        st.total_iter += 1
        st.accepted_weight += w
        return PickEvent(st.n_iter, idx, kl, True, False, len(st.selected))

    def run(self) -> Iterator[PickEvent]:
        """Iterate over the picks until the run ends (the last event carries ``stop_reason``)."""
        while (ev := self.step()) is not None:
            yield ev

    # -- checkpoints -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly: arrays and JSON-able scalars."""
        st, o = self.state, self.obj
        key = self.bounds.key
        return {
            "v": st.v.copy(),
            "used": self.used.copy(),
            "nn": o.nn.copy(),
            "ww": o.ww[: o.m].copy() if o.sym else np.zeros((0, o.k)),
            "bound_u": self.bounds.u.copy(),
            "bound_a": self.bounds.a.copy(),
            "selected": np.asarray(st.selected, dtype=np.int64),
            "kl_trace": np.asarray(st.kl_trace, dtype=np.float64),
            "rank_trace": np.asarray(st.rank_trace, dtype=np.int64),
            "prev_trace": np.asarray(st.prev_trace, dtype=np.float64),
            "history_candidate": np.asarray([h[0] for h in st.history], dtype=np.int64),
            "history_kl": np.asarray([h[1] for h in st.history], dtype=np.float64),
            "history_event": np.asarray([h[2] for h in st.history], dtype=np.int8),
            "scalars": {
                "kl_prev": st.kl_prev, "i": st.i, "total_iter": st.total_iter, "n_iter": st.n_iter,
                "num_resets": st.num_resets, "increases": st.increases, "just_reset": st.just_reset,
                "accepted_weight": st.accepted_weight, "stop_reason": st.stop_reason,
                "evaluations": st.evaluations, "obj_m": o.m, "log_nu_w_sum": o.log_nu_w_sum,
                "bound_key": None if key is None else [int(key[0]), int(key[1])],
                "initial_kl": self.initial_kl, "objective": self.objective_name,
                "rank_schedule": self.rank_schedule, "rng": self.rng.bit_generator.state,
            },
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` taken from a run on the same inputs and parameters."""
        sc = sd["scalars"]
        used = np.asarray(sd["used"], dtype=bool)
        if used.shape != self.used.shape:
            raise InvalidInputError("checkpoint does not match the candidates (different pool size)")
        if sc.get("objective", self.objective_name) != self.objective_name:
            raise InvalidInputError(
                f"checkpoint is of objective {sc.get('objective')!r}, this search is {self.objective_name!r}"
            )
        o = self.obj
        nn = np.asarray(sd["nn"], dtype=np.float64)
        if nn.shape != o.nn.shape:
            raise InvalidInputError("checkpoint does not match the target (different size or k)")
        selected = [int(i) for i in np.asarray(sd["selected"])]
        self.used[:] = used
        self.n_used = int(used.sum())
        o.nn = nn.copy()
        o.m = int(sc["obj_m"])
        if o.sym:
            pts = np.vstack([self.start_points, self._rows_of(np.asarray(selected, dtype=np.int64))
                             if selected else np.zeros((0, o.d))])
            cap = max(16, 2 * o.m)
            o.w = np.zeros((cap, o.d))
            o.w[: o.m] = pts
            o.w_sq = np.zeros(cap)
            o.w_sq[: o.m] = np.einsum("ij,ij->i", pts, pts)
            o.ww = np.full((cap, o.k), np.inf)
            o.ww[: o.m] = np.asarray(sd["ww"], dtype=np.float64)
            o.log_nu_w_sum = float(sc["log_nu_w_sum"])
        key = sc["bound_key"]
        self.bounds.key = None if key is None else (int(key[0]), int(key[1]))
        self.bounds.u = np.asarray(sd["bound_u"], dtype=np.float64).copy()
        self.bounds.a = np.asarray(sd["bound_a"], dtype=np.float64).copy()
        self.initial_kl = float(sc["initial_kl"])
        self.rng.bit_generator.state = sc["rng"]
        self.state = _ExactLoopState(
            v=np.asarray(sd["v"], dtype=np.float64).copy(), kl_prev=float(sc["kl_prev"]), i=int(sc["i"]),
            total_iter=int(sc["total_iter"]), n_iter=int(sc["n_iter"]), num_resets=int(sc["num_resets"]),
            increases=int(sc["increases"]), just_reset=bool(sc["just_reset"]),
            accepted_weight=float(sc["accepted_weight"]), stop_reason=sc["stop_reason"],
            selected=selected,
            kl_trace=[float(x) for x in np.asarray(sd["kl_trace"])],
            history=[(int(c), float(v), int(e)) for c, v, e in zip(
                np.asarray(sd["history_candidate"]), np.asarray(sd["history_kl"]),
                np.asarray(sd["history_event"]), strict=True)],
            rank_trace=[int(x) for x in np.asarray(sd["rank_trace"])],
            prev_trace=[float(x) for x in np.asarray(sd["prev_trace"])],
            evaluations=int(sc["evaluations"]),
        )
