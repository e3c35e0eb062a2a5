"""The greedy GIO loop: gradient search for the next point, projection to the nearest unused candidate.

One iteration, as in grad-info-opt 0.1.2's ``GIOKL.fit`` (see ``docs/algorithm.md`` in the repository):

1. ``grad_desc_iter`` fixed-size gradient steps on v (three times as many on the first iteration, after a
   reset, and with probability ``random_restart_prob``), using the analytic O(n d) gradient;
2. the unused candidate nearest to v is the pick (a mask, never a copy of the pool);
3. the objective with the pick is evaluated incrementally (O(n d));
4. v is re-initialised per ``v_init``; the stopping criterion is asked; with ``resets_allowed`` a stop becomes
   a reset (every candidate usable again) up to ``max_resets`` times;
5. the pick is accepted: added to the set, its value appended to the trace.

Three behaviours of the reference are bugs, reproduced only when asked for (the compatibility layer does so for
the first):

* ``reference_max_iter``: the reference tests ``total_iter > max_iter`` *after* picking, so it accepts up to
  ``max_iter + 1`` points. By default at most ``max_iter`` points are accepted.
* ``reference_sequential_bug``: the reference's increase counter never grows outside the branch that has
  already decided to stop, so ``sequential_increase_tolerance`` never fires. By default the run stops on the
  increase that follows ``max_sequential_increases`` increases in a row.
* ``reference_max_resets_bug``: the reference's ``max_resets`` criterion fires only when
  ``num_resets == max_resets``, but resets only happen when it fires, so it never does. By default each increase
  causes a reset until ``max_resets`` are used, and the next increase stops the run.

Everything random (uniform start, ``random_init_pct``, ``v_init='jump'``, random restarts) draws from one
``numpy.random.Generator``; the loop state, generator included, is saved and restored (:meth:`GIOSearch.state_dict`)
so that an interrupted run resumes to exactly the same selection.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from .divergence import DEFAULT_EPS, RelaxedKL, RelaxedKLState, fast_nearest_kernel
from .errors import InvalidInputError, InvalidParameterError
from .stopping import CRITERIA, StopContext, StoppingCriterion, make_criterion
from .validation import check_choice, check_fraction, check_int, check_pair, check_real

__all__ = [
    "STOP_REASONS",
    "V_INITS",
    "CandidateSet",
    "GIOParams",
    "GIOSearch",
    "LoopState",
    "PickEvent",
    "single_threaded_blas",
]

logger = logging.getLogger(__name__)

V_INITS = ("mean", "prev_opt", "jump")
#: The start set ``D`` (``uniform_start_size`` points; in the objective, never the selection): ``"sample"`` (the
#: default) candidates drawn at random, so the start objective is a random subset's, in the data's own units (scale-,
#: offset- and sphere-free; ``GIOSearch._sample_start``); ``"box"`` uniform in the target's bounding box; ``"unit"``
#: the reference's, uniform in [uniform_low, uniform_high]^d (unit norm with ``normalize``).
START_SETS = ("sample", "box", "unit")
#: ``scale_factor`` by name: ``"spread"`` (the default) ``r / |grad(v0)|`` with ``r`` the target's RMS distance from
#: its mean, so the first step is ``lr * r`` in the data's units at any offset; ``"auto"`` the reference's ``|v0| /
#: |grad(v0)|`` (a step of ``lr * |v0|``: right on unit-norm data, far too long away from the origin).
SCALE_FACTORS = ("spread", "auto")
#: ``relaxed``: the paper's gradient search on the relaxed estimator (this module). ``exact``: greedy on the exact
#: k-NN estimate (:mod:`gioselect.exact`; its variant ``exact-sym`` stays there: EXPERIMENTS.md did not favour it).
OBJECTIVES = ("relaxed", "exact")
#: Why a run ended: a criterion's name, or one of the limits that always apply.
STOP_REASONS = (*CRITERIA, "max_iter", "budget", "pool_exhausted")


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run BLAS on one thread inside the block.

    GIO's loop is thousands of small matrix-vector products (n x d); OpenBLAS's threads cost more than they
    save there, 9-24x per pick on a loaded 2-core machine (benchmarks/results/bench_scale.md), with the same
    picks. faiss's K-means, outside the loop, keeps its threads.
    """
    if _BLAS_DEPTH[0]:  # nested (compat's fit around GIOSearch.run): the outer block already limits BLAS
        yield
        return
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a core dependency
        yield
        return
    # The loaded libraries are looked up again (a few milliseconds) whenever a module has been imported since
    # the last lookup: a BLAS library loaded after an earlier call (scipy's, faiss's, a Spark report's) comes
    # with an import and must be limited too. Repeated fits with no import in between reuse the lookup.
    key = len(sys.modules)
    if _BLAS_CONTROLLER[0] is None or _BLAS_CONTROLLER[1] != key:
        _BLAS_CONTROLLER[:] = [ThreadpoolController(), key]
    controller = _BLAS_CONTROLLER[0]
    _BLAS_DEPTH[0] += 1
    try:
        with controller.limit(limits=1, user_api="blas"):
            yield
    finally:
        _BLAS_DEPTH[0] -= 1


#: How many single_threaded_blas blocks are open (the limits are process-wide, so one counter).
_BLAS_DEPTH = [0]
#: [threadpoolctl controller, len(sys.modules) when it looked the libraries up] (None before the first block).
_BLAS_CONTROLLER: list[Any] = [None, -1]


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidParameterError(f"{name} must be True or False, got {value!r}")
    return bool(value)


@dataclass(frozen=True)
class GIOParams:
    """Every option of the GIO loop, with grad-info-opt's names.

    The defaults are this project's (:class:`gioselect.GIOSelector` says why each differs from the reference:
    ``stop_criterion="auto"``, ``max_iter=None``, ``start="sample"``; :class:`gioselect.compat.GIOKL` passes the
    reference's). See :class:`gioselect.GIOSelector` for the meaning of each. :meth:`validate` checks them all and
    returns the same object (parameters that only matter in some configurations are checked only there).
    """

    k: int = 5
    max_iter: int | None = None
    stop_criterion: str = "auto"
    min_difference: float = 0.0
    resets_allowed: bool = False
    max_resets: int = 2
    max_data_size: float = 1.0
    min_kl: float = 0.0
    max_sequential_increases: int = 3
    random_init_pct: float = 0.0
    random_restart_prob: float = 0.0
    scale_factor: float | str = "spread"
    v_init: str = "jump"  # the reference's fit() defaults to "mean"; see GIOSelector and EXPERIMENTS.md
    grad_desc_iter: int = 50
    discard_nearest_for_xy: bool = False
    normalize: bool = True
    lr: float = 0.01
    uniform_low: float = -1.0
    uniform_high: float = 1.0
    uniform_start_size: int = 20
    start: str = "sample"
    eps: float = DEFAULT_EPS
    objective: str = "relaxed"
    reference_max_iter: bool = False
    reference_sequential_bug: bool = False
    reference_max_resets_bug: bool = False

    def validate(self, *, strict: bool = True) -> GIOParams:
        """Check every parameter; raise :class:`InvalidParameterError` naming the first bad one.

        ``strict=False`` (the compatibility layer) accepts ``stop_criterion='max_resets'`` without
        ``resets_allowed``, which the reference documents as required but does not enforce.
        """
        check_int(self.k, "k", low=1)
        if self.max_iter is not None:
            check_int(self.max_iter, "max_iter", low=0)
        check_choice(self.stop_criterion, "stop_criterion", CRITERIA)
        check_real(self.min_difference, "min_difference")
        _check_bool(self.resets_allowed, "resets_allowed")
        check_int(self.max_resets, "max_resets", low=0)
        check_fraction(self.max_data_size, "max_data_size", allow_zero=False)
        check_real(self.min_kl, "min_kl")
        check_int(self.max_sequential_increases, "max_sequential_increases", low=0)
        check_real(self.random_init_pct, "random_init_pct", low=0.0, high=1.0)
        check_fraction(self.random_restart_prob, "random_restart_prob")
        if self.scale_factor not in SCALE_FACTORS:
            if isinstance(self.scale_factor, str):
                raise InvalidParameterError(
                    f"scale_factor must be 'auto', 'spread' or a positive number, got {self.scale_factor!r}"
                )
            check_real(self.scale_factor, "scale_factor", low=0.0, low_open=True)
        check_choice(self.v_init, "v_init", V_INITS)
        check_int(self.grad_desc_iter, "grad_desc_iter", low=0)
        _check_bool(self.discard_nearest_for_xy, "discard_nearest_for_xy")
        _check_bool(self.normalize, "normalize")
        check_real(self.lr, "lr", low=0.0, low_open=True)
        check_pair(self.uniform_low, self.uniform_high, ("uniform_low", "uniform_high"))
        check_int(self.uniform_start_size, "uniform_start_size", low=1)
        check_choice(self.start, "start", START_SETS)
        check_real(self.eps, "eps", low=0.0)
        check_choice(self.objective, "objective", OBJECTIVES)
        _check_bool(self.reference_max_iter, "reference_max_iter")
        _check_bool(self.reference_sequential_bug, "reference_sequential_bug")
        _check_bool(self.reference_max_resets_bug, "reference_max_resets_bug")
        if strict and self.stop_criterion == "max_resets" and not self.resets_allowed:
            raise InvalidParameterError(
                "stop_criterion='max_resets' needs resets_allowed=True (without resets it can never fire)"
            )
        return self

    def criterion(self) -> StoppingCriterion:
        opts = {f.name: getattr(self, f.name) for f in fields(self)}  # flat: asdict's deep copies cost ~0.4 ms
        return make_criterion(self.stop_criterion, reference_max_resets_bug=opts.pop("reference_max_resets_bug"),
                              **opts)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


#: Candidate sets up to this size (as float64) are converted once instead of per query.
_F64_CACHE_BYTES = 64 << 20


class CandidateSet:
    """The candidates with a "used" mask: nearest unused candidate to a point, in blocks, no copies.

    Distances use ``|c|^2 - 2 c.v + |v|^2`` in float64 with the squared norms computed once; ties go to the
    lowest index (as a stable sort does). O(M d) per query, in blocks of ``block_rows`` rows.
    """

    def __init__(self, points: np.ndarray, block_rows: int = 1 << 15) -> None:
        self.points = points
        self.size = int(points.shape[0])
        self.block_rows = int(block_rows)
        self.used = np.zeros(self.size, dtype=bool)
        self.n_used = 0
        self.sq_norms = np.empty(self.size, dtype=np.float64)
        for s in range(0, self.size, self.block_rows):
            b = np.asarray(points[s : s + self.block_rows], dtype=np.float64)
            self.sq_norms[s : s + b.shape[0]] = np.einsum("ij,ij->i", b, b)
        #: None: the compiled nearest-candidate pass when numba is installed; False: always numpy.
        self.use_fast: bool | None = None
        # The numpy pass keeps a small candidate set (centroids, a test-sized pool) as float64, made on its
        # first query, so that each query is one BLAS product instead of a conversion per block; larger ones
        # are converted block by block. The compiled pass reads the points as they are.
        self._small = points.ndim == 2 and self.size * points.shape[1] * 8 <= _F64_CACHE_BYTES
        self._f64: np.ndarray | None = None
        # Whether the compiled pass can read the points in place (decided once: the points do not change).
        self._compiled_ok = (type(points) is np.ndarray and points.flags.c_contiguous
                             and points.dtype in (np.float32, np.float64) and self.size <= self.block_rows * 8)

    @property
    def n_free(self) -> int:
        return self.size - self.n_used

    def nearest_unused(self, v: np.ndarray) -> int:
        """Index of the unused candidate nearest to ``v``; -1 when every candidate is used."""
        if self.n_free == 0:
            return -1
        v = np.asarray(v, dtype=np.float64)
        if self.use_fast is not False and self._compiled_ok:
            kernel = fast_nearest_kernel()
            if kernel is not None:  # one compiled pass over the candidates, used rows skipped
                return int(kernel(self.points, self.sq_norms, self.used, v)[0])
        if self._small and self._f64 is None:
            self._f64 = np.ascontiguousarray(self.points, dtype=np.float64)
        vv = float(v @ v)
        best_i, best_d = -1, math.inf
        for s in range(0, self.size, self.block_rows):
            e = min(self.size, s + self.block_rows)
            used = self.used[s:e]
            if used.all():
                continue
            block = self._f64[s:e] if self._f64 is not None else np.asarray(self.points[s:e], dtype=np.float64)
            d = self.sq_norms[s:e] - 2.0 * (block @ v) + vv
            d[used] = np.inf
            j = int(np.argmin(d))
            if d[j] < best_d:
                best_i, best_d = s + j, float(d[j])
        return best_i

    def mark_used(self, i: int) -> None:
        if not self.used[i]:
            self.used[i] = True
            self.n_used += 1

    def reset(self) -> None:
        """Every candidate usable again (the reference's pool refill), except blocked ones (``blocked``)."""
        blocked = getattr(self, "blocked", None)  # set by gioselect.exclude.block_candidates
        self.used[:] = blocked if blocked is not None else False
        self.n_used = int(self.used.sum())


@dataclass(frozen=True)
class PickEvent:
    """What one iteration did, for progress reporting and checkpoints.

    ``candidate`` is the pick's index (-1 when the run ended before picking), ``accepted`` whether it joined
    the selection, ``reset`` whether the pool was refilled instead, ``stop_reason`` set on the last event.
    """

    iteration: int
    candidate: int
    kl: float
    accepted: bool
    reset: bool
    n_selected: int
    stop_reason: str | None = None


EVENT_ACCEPTED, EVENT_RESET, EVENT_STOP = 1, 2, 3


@dataclass
class LoopState:
    """The greedy loop's state (what a checkpoint holds); each search extends it with what it records."""

    v: np.ndarray
    kl_prev: float
    i: int = 0  # the reference's i: accepted picks, minus one per reset
    total_iter: int = 0  # accepted picks
    n_iter: int = 0  # picks evaluated
    num_resets: int = 0
    increases: int = 0  # consecutive increases (or the reference's buggy counter)
    just_reset: bool = False
    accepted_weight: float = 0.0
    stop_reason: str | None = None
    selected: list[int] = field(default_factory=list)
    kl_trace: list[float] = field(default_factory=list)
    # Every evaluated pick: (candidate, value, EVENT_* code); kept in checkpoints so a resumed run's record is whole.
    history: list[tuple[int, float, int]] = field(default_factory=list)


class GIOSearch:
    """One GIO run over in-memory candidates; iterate :meth:`run` (or call :meth:`step`) to make picks.

    Parameters
    ----------
    candidates : array of shape (M, d)
        The pool (or the pool's K-means centroids). Validated by the caller; float32 is fine.
    target : array of shape (n, d), n > k
        Validated by the caller.
    params : GIOParams
        Validated by the caller.
    rng : numpy.random.Generator
        The one source of randomness.
    init : array of shape (m0, d), optional
        Explicit start set ``D``; otherwise ``random_init_pct`` of the candidates, or uniform points.
    weights : array of shape (M,), optional
        Rows each candidate stands for (cluster sizes when quantised); used only with ``budget``.
    budget : float, optional
        Stop before the accepted weight would exceed this (``budget_exact``: accept the crossing pick, the
        caller truncates it).
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
    ) -> None:
        self.params = params
        self.rng = rng
        self.cands = CandidateSet(candidates)
        self.target = target
        self.criterion = params.criterion()
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.budget = budget
        self.budget_exact = budget_exact
        self.objective = RelaxedKL(target, params.k, discard_nearest_for_xy=params.discard_nearest_for_xy,
                                   eps=params.eps)
        self.target_mean = np.asarray(target, dtype=np.float64).mean(axis=0)

        self.init_indices: np.ndarray | None = None
        self.start_points = self._start_set(init)
        need = 2 if params.discard_nearest_for_xy else 1
        if self.start_points.shape[0] < need:
            raise InvalidInputError(
                f"the start set has {self.start_points.shape[0]} point(s); at least {need} needed"
                + (" with discard_nearest_for_xy" if need == 2 else "")
                + " (raise random_init_pct or uniform_start_size, or pass init)"
            )
        self.objective.reset(self.start_points)
        self.initial_kl = self.objective.value()
        v = self.search_start(None)
        self.scale = self._scale(v)
        self.state = LoopState(v=v, kl_prev=self.initial_kl)
        logger.info("GIO start: %d start points, KL~ %.6g, scale %.6g", self.start_points.shape[0],
                    self.initial_kl, self.scale)

    # -- set-up --------------------------------------------------------------------------------------------
    def _start_set(self, init: np.ndarray | None) -> np.ndarray:
        p = self.params
        d = self.target.shape[1]
        if init is not None:
            return np.asarray(init, dtype=np.float64)
        if p.random_init_pct > 0:
            # Rows of the pool, drawn without replacement; they stay candidates too, as in the reference.
            amount = int(p.random_init_pct * self.cands.size)
            idx = np.asarray(self.rng.choice(self.cands.size, size=amount, replace=False), dtype=np.int64)
            self.init_indices = idx
            return np.asarray(self.cands.points[idx], dtype=np.float64).reshape(amount, d)
        if p.start == "sample":
            return self._sample_start()
        if p.start == "box":
            # Uniform in the target's bounding box, whatever the data's units. When the target is tighter than
            # the pool these points are nearer the target than every candidate: the objective then rises at
            # every pick and the older stop rules select nothing ("sample" does not have that failure).
            t = np.asarray(self.target, dtype=np.float64)
            lo, hi = t.min(axis=0), t.max(axis=0)
            return np.asarray(self.rng.uniform(lo, hi, size=(p.uniform_start_size, d)), dtype=np.float64)
        pts = self.rng.uniform(p.uniform_low, p.uniform_high, size=(p.uniform_start_size, d))
        if p.normalize:
            norms = np.linalg.norm(pts, axis=1, keepdims=True)
            pts = np.divide(pts, norms, out=pts.copy(), where=norms != 0)
        return pts

    def _sample_start(self) -> np.ndarray:
        """``uniform_start_size`` candidates drawn without replacement (all of them when fewer); they stay
        candidates, as ``random_init_pct``'s rows do.

        The start set enters the relaxed objective (its points' log-distances to the target are part of the mean
        over the sample) but not its gradient, so where it lies changes no pick: it decides only what the picks
        are compared with, and so when the stop rules on the objective fire. Drawn from the candidates, its value
        is that of a random subset of the pool, in the data's own units: a pick lowers the objective when it is
        nearer the target than that, at any scale or offset and on the sphere. Any fixed region fails somewhere:
        the target's bounding box (``"box"``) lies nearer a tight target than every candidate, so every pick
        raises the objective and ``increase`` selects nothing; the reference's unit-norm points (``"unit"``) do
        the same for data far from the unit sphere; points beyond every candidate make every pick lower it, and
        ``increase`` selects the whole pool.
        """
        n = min(self.params.uniform_start_size, self.cands.size)
        idx = np.sort(np.asarray(self.rng.choice(self.cands.size, size=n, replace=False), dtype=np.int64))
        return np.asarray(self.cands.points[idx], dtype=np.float64).reshape(n, self.target.shape[1])

    def search_start(self, after: np.ndarray | None) -> np.ndarray:
        """Start of the next gradient search, before the first (``after`` None; the step scale is taken there) and
        after each pick (``after``: the last search's end), per ``v_init``; the override point for other starts."""
        if self.params.v_init == "jump":
            return np.array(self.target[int(self.rng.integers(self.target.shape[0]))], dtype=np.float64)
        return after if self.params.v_init == "prev_opt" and after is not None else self.target_mean.copy()

    def descend_and_snap(self, v: np.ndarray, steps: int) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
        """A gradient search from ``v``, snapped: (end, nearest unused candidate, its point, its sq_dists)."""
        p, cs = self.params, self.cands
        fused = (self.objective.descend_and_pick(v, steps, p.lr, self.scale, cs.points, cs.sq_norms, cs.used)
                 if cs.use_fast is not False and cs._compiled_ok else None)
        if fused is not None:  # descent, nearest unused candidate and its distances in one compiled call
            return fused
        v = self.objective.descend(v, steps, p.lr, self.scale)
        idx = cs.nearest_unused(v)
        point = np.asarray(cs.points[idx], dtype=np.float64)
        return v, idx, point, self.objective.sq_dists(point)

    def _scale(self, v: np.ndarray) -> float:
        sf = self.params.scale_factor
        if sf not in SCALE_FACTORS:
            return float(sf)
        g = float(np.linalg.norm(self.objective.gradient(v)))
        if sf == "spread":
            t = np.asarray(self.target, dtype=np.float64) - self.target_mean
            vn = float(np.sqrt(np.einsum("ij,ij->i", t, t).mean()))
        else:
            vn = float(np.linalg.norm(v))
        if g == 0.0 or vn == 0.0:
            # The reference would divide by zero (or never move v); fall back to a unit-length first step.
            logger.warning("scale_factor=%r is degenerate here (|%s|=%g, |grad|=%g); using %s", sf,
                           "target spread" if sf == "spread" else "v", vn, g, "1.0" if g == 0.0 else "1/|grad|")
            return 1.0 if g == 0.0 else 1.0 / g
        return vn / g

    # -- the loop ------------------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.state.stop_reason is not None

    def _finish(self, reason: str, cand: int = -1, kl: float = math.nan) -> PickEvent:
        st = self.state
        st.stop_reason = reason
        if cand >= 0:
            st.history.append((cand, kl, EVENT_STOP))
        logger.info("GIO stop: %s after %d picks (%d evaluated)", reason, len(st.selected), st.n_iter)
        return PickEvent(st.n_iter, cand, kl, False, False, len(st.selected), reason)

    def step(self) -> PickEvent | None:
        """Run one iteration; ``None`` once the run has ended."""
        st, p = self.state, self.params
        if st.stop_reason is not None:
            return None
        if not p.reference_max_iter and p.max_iter is not None and st.total_iter >= p.max_iter:
            return self._finish("max_iter")
        if self.budget is not None and st.accepted_weight >= self.budget:
            return self._finish("budget")
        if self.cands.n_free == 0:
            return self._finish("pool_exhausted")

        restart = st.i == 0 or st.just_reset
        if not restart and p.random_restart_prob > 0:
            restart = bool(self.rng.random() < p.random_restart_prob)
        steps = p.grad_desc_iter * 3 if restart else p.grad_desc_iter
        st.v, idx, point, sq = self.descend_and_snap(st.v, steps)
        self.cands.mark_used(idx)
        kl = self.objective.value_if_added(point, sq)
        st.n_iter += 1

        if p.reference_max_iter and p.max_iter is not None and st.total_iter > p.max_iter:
            return self._finish("max_iter", idx, kl)
        st.v = self.search_start(st.v)  # where the next gradient search starts
        ctx = StopContext(kl, st.kl_prev, st.i, self.cands.size, st.num_resets, st.increases)
        # A budget is a size the caller asked for: no criterion ends the run before it.
        stop = self.budget is None and self.criterion.triggered(ctx)
        reset = False
        if stop:
            if p.reference_sequential_bug and st.just_reset:
                st.increases += 1
            if p.resets_allowed and st.num_resets < p.max_resets:
                st.num_resets += 1
                if p.v_init == "prev_opt":
                    st.v = self.target_mean.copy()
                self.cands.reset()
                st.i -= 1
                stop = False
                reset = True
                logger.info("GIO reset %d/%d: objective went from %.6g to %.6g", st.num_resets, p.max_resets,
                            st.kl_prev, kl)
            st.just_reset = True
        else:
            st.just_reset = False
            if p.reference_sequential_bug:
                st.increases = 0
        if stop:
            return self._finish(self.criterion.name, idx, kl)
        if reset:
            st.history.append((idx, kl, EVENT_RESET))
            return PickEvent(st.n_iter, idx, kl, False, True, len(st.selected))

        w = 1.0 if self.weights is None else float(self.weights[idx])
        if self.budget is not None and st.accepted_weight + w > self.budget and not self.budget_exact:
            return self._finish("budget", idx, kl)
        self.objective.add(point, sq)
        if not p.reference_sequential_bug:
            st.increases = st.increases + 1 if ctx.increased else 0
        st.selected.append(idx)
        st.kl_trace.append(kl)
        st.history.append((idx, kl, EVENT_ACCEPTED))
        st.kl_prev = kl
        st.i += 1
        st.total_iter += 1
        st.accepted_weight += w
        return PickEvent(st.n_iter, idx, kl, True, False, len(st.selected))

    def run(self) -> Iterator[PickEvent]:
        """Iterate over the iterations until the run ends (the last event carries ``stop_reason``)."""
        with single_threaded_blas():
            while (ev := self.step()) is not None:
                yield ev

    # -- checkpoints ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly: arrays and JSON-able scalars."""
        st = self.state
        obj = self.objective.get_state()
        return {
            "v": st.v.copy(),
            "used": self.cands.used.copy(),
            "nearest_sq": obj.nearest_sq,
            "selected": np.asarray(st.selected, dtype=np.int64),
            "kl_trace": np.asarray(st.kl_trace, dtype=np.float64),
            "history_candidate": np.asarray([h[0] for h in st.history], dtype=np.int64),
            "history_kl": np.asarray([h[1] for h in st.history], dtype=np.float64),
            "history_event": np.asarray([h[2] for h in st.history], dtype=np.int8),
            "scalars": {
                "kl_prev": st.kl_prev, "i": st.i, "total_iter": st.total_iter, "n_iter": st.n_iter,
                "num_resets": st.num_resets, "increases": st.increases, "just_reset": st.just_reset,
                "accepted_weight": st.accepted_weight, "stop_reason": st.stop_reason,
                "obj_m": obj.m, "obj_log_dist_sum": obj.log_dist_sum, "scale": self.scale,
                "initial_kl": self.initial_kl, "rng": self.rng.bit_generator.state,
            },
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` taken from a run on the same inputs and parameters."""
        sc = sd["scalars"]
        used = np.asarray(sd["used"], dtype=bool)
        if used.shape != self.cands.used.shape:
            raise InvalidInputError("checkpoint does not match the candidates (different pool size)")
        self.cands.used[:] = used
        self.cands.n_used = int(used.sum())
        self.objective.set_state(RelaxedKLState(int(sc["obj_m"]), float(sc["obj_log_dist_sum"]),
                                                np.asarray(sd["nearest_sq"], dtype=np.float64)))
        self.scale = float(sc["scale"])
        self.initial_kl = float(sc["initial_kl"])
        self.rng.bit_generator.state = sc["rng"]
        self.state = LoopState(
            v=np.asarray(sd["v"], dtype=np.float64).copy(), kl_prev=float(sc["kl_prev"]), i=int(sc["i"]),
            total_iter=int(sc["total_iter"]), n_iter=int(sc["n_iter"]), num_resets=int(sc["num_resets"]),
            increases=int(sc["increases"]), just_reset=bool(sc["just_reset"]),
            accepted_weight=float(sc["accepted_weight"]), stop_reason=sc["stop_reason"],
            selected=[int(i) for i in np.asarray(sd["selected"])],
            kl_trace=[float(x) for x in np.asarray(sd["kl_trace"])],
            history=[(int(c), float(v), int(e)) for c, v, e in zip(
                np.asarray(sd["history_candidate"]), np.asarray(sd["history_kl"]), np.asarray(sd["history_event"]),
                strict=True)],
        )
