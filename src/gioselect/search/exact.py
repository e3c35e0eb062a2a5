"""Greedy selection on the exact k-NN estimate of KL(target || selection) (``objective="exact"``).

:class:`ExactGreedySearch` is a :class:`~gioselect.search.base.Search` like the relaxed
:class:`gioselect.optimize.GIOSearch`, so the selector, the job (checkpoints, resume, budget, quantisation)
and the CLI drive it unchanged. The objective is :class:`gioselect.objectives.exact_kl.ExactKLObjective`
(the estimator, its rank schedule and its bounds are described there) and each pick is made by
:class:`gioselect.search.lazy_greedy.LazyGreedy`; this module owns the loop: start set, warm-up, stopping
rules, resets, budget and checkpoints.

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


Cost: O(M n d) for a full evaluation (the first pick and each rank change), then per pick O(B (n + m) d)
for the B candidates whose bounds are competitive (for l = 1 the bound is the gain itself) plus O(M) to rank
the bounds; at 4000 candidates and 300 picks 2-12% of the exhaustive evaluations for the one-sided objective.
Memory: O(n k + M), and O(m (d + k) + M) more with the reverse term.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..divergence import knn_distances
from ..errors import InvalidInputError, InvalidParameterError
from ..objectives.exact_kl import ExactKL, ExactKLObjective, balanced_rank
from ..optimize import EVENT_ACCEPTED, EVENT_RESET, EVENT_STOP, GIOParams, LoopState, PickEvent
from ..stopping import StopContext
from .lazy_greedy import LazyGreedy

__all__ = ["EXACT_OBJECTIVES", "RANK_SCHEDULES", "ExactGreedySearch", "ExactLoopState", "balanced_rank"]

logger = logging.getLogger(__name__)

#: Objective names this module implements: the one-sided estimate and the two-sided (Jeffreys) one.
EXACT_OBJECTIVES = ("exact", "exact-sym")
#: How the selection-side neighbour rank follows the set's size.
RANK_SCHEDULES = ("one", "balanced", "fixed")


@dataclass
class ExactLoopState(LoopState):
    """:class:`gioselect.optimize.LoopState` plus what the exact search records."""

    rank_trace: list[int] = field(default_factory=list)  # rank in force for each accepted pick
    prev_trace: list[float] = field(default_factory=list)  # same-rank value of the set before each accepted pick
    evaluations: int = 0  # candidate evaluations (one O(n d) gain each), for speed comparisons


class ExactGreedySearch:
    """One greedy run on the exact k-NN KL estimate; iterate :meth:`run` (or call :meth:`step`) to make picks.

    A :class:`~gioselect.search.base.Search`, as :class:`gioselect.optimize.GIOSearch` is, so
    :class:`~gioselect.GIOSelector` and the job drive it unchanged. See the module docstring for the warm-up,
    :mod:`gioselect.objectives.exact_kl` for the objective and its rank schedule, and
    :mod:`gioselect.search.lazy_greedy` for the lazy evaluation.

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
    state : ExactLoopState
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
        self.obj = ExactKL(target, params.k, offset=1 if params.discard_nearest_for_xy else 0,
                           symmetric=obj == "exact-sym", schedule=rank_schedule)
        # log nu^X_k of every candidate (reverse term only): one blocked O(M n d) pass.
        self.log_nu = (np.log(knn_distances(candidates, self.obj.x, params.k)[:, -1])
                       if self.obj.sym else None)
        self.objective = ExactKLObjective(self.obj, candidates, self.log_nu)

        self.init_indices: np.ndarray | None = None
        self.start_points = self._start_set(init)
        start_log_nu = None
        if self.obj.sym and self.start_points.shape[0]:
            start_log_nu = np.log(knn_distances(self.start_points, self.obj.x, params.k)[:, -1])
        self.obj.reset(self.start_points, start_log_nu)
        m0 = self.obj.m
        self.initial_kl = self.obj.value(*self.obj.rank_key(m0)) if m0 else math.nan
        self.greedy = LazyGreedy(self.objective, lazy=self.lazy)
        self.state = ExactLoopState(v=np.zeros(self.obj.d), kl_prev=self.initial_kl)
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
            return self.objective.rows(idx)
        return np.zeros((0, d))

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
        rank, _ = self.objective.bound_key()
        evaluated = self.greedy.evaluations
        idx, kl = self.greedy.best(self.used)
        st.evaluations += self.greedy.evaluations - evaluated
        if not self.used[idx]:
            self.used[idx] = True
            self.n_used += 1
        st.n_iter += 1
        kl_prev = self.objective.value()  # the current set at the new set's rank

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
        self.objective.add(idx)
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
        key = self.greedy.key
        assert key is None or isinstance(key, tuple)  # (rank, offset): ExactKLObjective.bound_key
        bound_u, bound_a = self.greedy.bounds
        return {
            "v": st.v.copy(),
            "used": self.used.copy(),
            "nn": o.nn.copy(),
            "ww": o.ww[: o.m].copy() if o.sym else np.zeros((0, o.k)),
            "bound_u": bound_u.copy(),
            "bound_a": bound_a.copy(),
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
                "bound_key": None if key is None else [int(k) for k in key],
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
        pts = np.zeros((0, o.d))
        if o.sym:
            pts = np.vstack([self.start_points, self.objective.rows(np.asarray(selected, dtype=np.int64))
                             if selected else np.zeros((0, o.d))])
        o.restore(nn, int(sc["obj_m"]), pts, sd["ww"], float(sc["log_nu_w_sum"]))
        key = sc["bound_key"]
        self.greedy.key = None if key is None else (int(key[0]), int(key[1]))
        self.greedy.bounds = (np.asarray(sd["bound_u"], dtype=np.float64).copy(),
                              np.asarray(sd["bound_a"], dtype=np.float64).copy())
        self.initial_kl = float(sc["initial_kl"])
        self.rng.bit_generator.state = sc["rng"]
        self.state = ExactLoopState(
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
