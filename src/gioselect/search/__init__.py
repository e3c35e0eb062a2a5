"""Searches: the :class:`Search` protocol, building one (:func:`make_search`) and freezing its result.

Layout: :mod:`.base` (the :class:`Search` protocol), :mod:`.exact` (the exact greedy search),
:mod:`.lazy_greedy` (the optimiser it uses, for any :class:`gioselect.objectives.BoundedObjective`); the
relaxed gradient search is :class:`gioselect.optimize.GIOSearch`. This module: :func:`make_search`,
:class:`GIOResult`, the automatic size.

Shared by the estimator (:mod:`gioselect.selector`), the job (:mod:`gioselect.job`) and the reference shim
(:mod:`gioselect.compat`); :mod:`gioselect.selector` re-exports these names.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import InvalidInputError, SelectionWarning
from ..optimize import GIOParams, GIOSearch
from ..sizing import (
    F1_TOLERANCE,
    QUANTIZED_F1_TOLERANCE,
    F1Prefix,
    SizeEstimate,
    estimate_target_rows,
    sampled_curve,
)
from ..stopping import SIZE_RULES
from ..validation import check_embeddings
from .base import Search
from .exact import ExactGreedySearch

__all__ = ["F1Sizer", "GIOResult", "Search", "auto_budget", "make_search", "result_from_search", "size_rule",
           "validate_fit_inputs", "warn_degenerate", "with_size_estimate"]

logger = logging.getLogger(__name__)

#: Most points of the estimated-F1 curve kept in the run record (:meth:`F1Sizer.curve`).
CURVE_POINTS = 400


@dataclass(frozen=True)
class GIOResult:
    """The outcome of one GIO run.

    Attributes
    ----------
    selected_indices : ndarray of int64, shape (s,)
        Rows of the pool (or of the candidates, when quantised) in selection order; start points excluded.
        A row can appear twice only after a reset (``resets_allowed``).
    kl_trace : ndarray of float64, shape (s,)
        The objective (relaxed k-NN KL of target vs start set + selection) after each accepted pick.
    initial_kl : float
        The objective of the start set alone.
    stop_reason : str
        The criterion that fired, or ``"max_iter"``, ``"budget"``, ``"pool_exhausted"``; ``"auto-f1"`` when the
        F1 rule cut the run (:class:`F1Sizer`), ``"auto"`` when the run filled the estimated size (the estimate
        rule, :func:`size_rule`).
    n_iter : int
        Picks evaluated, including one rejected by the stopping rule and ones undone by a reset.
    n_resets : int
        Pool refills done (``resets_allowed``).
    start_points : ndarray, shape (m0, d)
        The start set the estimate included (uniform points, pool rows, or the given ``init``).
    init_indices : ndarray of int64 or None
        Pool rows used as start points with ``random_init_pct``.
    scale_factor : float
        The gradient scale used (computed once when ``scale_factor='auto'``).
    """

    selected_indices: np.ndarray
    kl_trace: np.ndarray
    initial_kl: float
    stop_reason: str
    n_iter: int
    n_resets: int
    start_points: np.ndarray
    init_indices: np.ndarray | None
    scale_factor: float
    params: dict[str, Any] = field(default_factory=dict)
    #: The automatic size (a size criterion without a budget, :func:`size_rule`): :meth:`SizeEstimate.as_dict`.
    size_estimate: dict[str, Any] | None = None


def validate_fit_inputs(
    pool: Any, target: Any, init: Any, params: GIOParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Check pool, target (more than ``k`` rows, the pool's dimension) and an optional start set; float arrays."""
    pool_ = check_embeddings(pool, "pool")
    target_ = check_embeddings(target, "target", dim=pool_.shape[1])
    if target_.shape[0] <= params.k:
        raise InvalidInputError(
            f"target: has {target_.shape[0]} rows; the k-NN estimator needs more than k={params.k} "
            f"(lower k or add target rows)"
        )
    init_ = None
    if init is not None:
        init_ = check_embeddings(init, "init", dim=pool_.shape[1], dtype=np.float64)
    return pool_, target_, init_


def size_rule(stop_criterion: str, budget: float | None) -> str | None:
    """Which automatic size a run gets: ``"f1"``, ``"estimate"`` or None (a budget was given, or the criterion
    watches the objective's trace).

    The one place that reads the size criteria (:data:`gioselect.stopping.SIZE_RULES`), for the selector, the job
    (both engines) and ``select_quantized``. ``"auto"`` (the default) and its alias ``"f1"`` are the F1 rule
    (:class:`F1Sizer`; quantised, each cluster's expected target-like rows, the chosen clusters
    exploded whole); ``"estimate"`` is the estimated number of target-like
    rows as the run's budget (quantised, with the row-level pass). On ``bbc-40k-kmeans`` the F1 rule was ahead of
    the estimate on every seed measured (EXPERIMENTS.md, "Automatic size and defaults (issue 17)").
    """
    if budget is not None or stop_criterion not in SIZE_RULES:
        return None
    return "estimate" if stop_criterion == "estimate" else "f1"


def auto_budget(pool: Any, target: np.ndarray, params: GIOParams, budget: float | None,
                seed: int | np.random.Generator | None) -> tuple[float | None, SizeEstimate | None]:
    """The run's row budget and the size estimate behind it (:func:`size_rule` decides which applies).

    ``budget`` when given (no estimate). The F1 rule (``stop_criterion="auto"`` or ``"f1"``): no budget, and the
    estimate whose classifier :class:`F1Sizer` weights the picks with. The estimate rule (``"estimate"``): the
    estimated number of target-like pool rows (:func:`gioselect.sizing.estimate_target_rows`) as the budget.
    Other criteria: no budget, no estimate.

    ``pool`` is the pool's rows (an array or a block source), never the cluster centroids. The estimate draws
    from its own generator (derived from ``seed``), so the GIO run's random choices are the same with or
    without it.
    """
    rule = size_rule(params.stop_criterion, budget)
    if rule is None:
        return budget, None
    if isinstance(seed, np.random.Generator):
        rng = np.random.default_rng(seed.bit_generator.seed_seq.spawn(1)[0])  # type: ignore[attr-defined]
    else:
        rng = np.random.default_rng(None if seed is None else [int(seed), 0x5153])
    est = estimate_target_rows(pool, target, seed=rng)
    if rule == "f1":  # no budget: the run follows the plug-in F1 (F1Sizer) instead
        return None, est
    what = f"stop_criterion={params.stop_criterion!r} (the estimated number of target-like rows)"
    if est.rows == 0:
        logger.warning("%s: no pool row looks like the target (estimated share %.4g); the "
                       "selection is empty (pass a budget to select anyway)", what, est.share)
    elif est.rows >= est.pool_rows:
        logger.warning("%s: every pool row looks like the target (estimated share %.4g); "
                       "the selection is the whole pool", what, est.share)
    return float(est.rows), est


class F1Sizer:
    """The F1 rule's size (``stop_criterion="auto"`` or its alias ``"f1"``), shared by
    :class:`gioselect.selector.GIOSelector` and the job's select phase (:func:`gioselect.job.select.run_gio`):
    feed it GIO's accepted picks, stop when :attr:`done`, keep the first :attr:`best_picks` distinct picks.

    Each candidate counts its posterior (:meth:`gioselect.sizing.SizeEstimate.posteriors`) times the rows it
    stands for (``sizes``: cluster row counts when quantised, else one), or, when ``target_like`` is given
    (quantised: :func:`gioselect.quantize.cluster_target_like`), that count; the target-like total is the size
    estimate's ``target_like_total``. Picked again after a reset, a candidate counts nothing.
    """

    def __init__(self, est: SizeEstimate, candidates: np.ndarray, sizes: np.ndarray | None = None,
                 target_like: np.ndarray | None = None, tolerance: float | None = None) -> None:
        self.est = est
        self.candidates = candidates
        self.sizes = None if sizes is None else np.asarray(sizes, dtype=np.float64)
        # quantised: each cluster's target-like rows, when given (gioselect.quantize.cluster_target_like)
        self.target_like = None if target_like is None else np.asarray(target_like, dtype=np.float64)
        # The kept prefix: within ``tolerance`` of the best F1 (default: F1_TOLERANCE on rows, 0 (the argmax) when
        # each cluster counts its own rows' posteriors: that count does not err short; QUANTIZED_F1_TOLERANCE).
        if tolerance is None:
            tolerance = QUANTIZED_F1_TOLERANCE if target_like is not None else F1_TOLERANCE
        self.prefix = F1Prefix(est.target_like_total, tolerance=tolerance)
        self.seen: set[int] = set()
        self.order: list[int] = []
        self.weights: list[float] = []  # each distinct pick's target-like count (posterior x rows)
        self.rows: list[float] = []  # and the rows it stands for
        self._warned = False

    def add(self, candidate: int) -> None:
        """Count one accepted pick."""
        c = int(candidate)
        if c < 0 or c in self.seen:
            return
        self.seen.add(c)
        self.order.append(c)
        if self.sizes is None:
            w, r = float(self.est.posteriors(self.candidates[c : c + 1], np.array([c]))[0]), 1.0
        else:
            assert self.est.scorer is not None
            r = float(self.sizes[c])
            w = (float(self.target_like[c]) if self.target_like is not None
                 else float(self.est.scorer.posterior(self.candidates[c : c + 1])[0]) * r)
        self.prefix.add(w, r)
        self.weights.append(w)
        self.rows.append(r)

    def curve(self, points: int = CURVE_POINTS) -> dict[str, list[float]]:
        """The estimated F1 after each distinct pick (:func:`gioselect.sizing.f1_curve`), at most ``points`` of
        them (evenly spaced picks, always with the argmax, the kept prefix and the last): ``picks``, ``rows``
        (cumulative) and ``f1``; for the run record, the report's chart and ``f1_curve.csv``."""
        return sampled_curve(np.asarray(self.weights), self.prefix.total, np.asarray(self.rows), points=points,
                             marks=(max(self.prefix.best_picks - 1, 0), max(self.prefix.last_picks - 1, 0)))

    def add_all(self, picks: Any) -> None:
        """Count picks already made (a resumed run), up to the one after which the rule was done: a run that went
        on past its size (for the row-level pass, :func:`gioselect.job.select.run_gio`'s ``reach``) stopped
        feeding it there."""
        for c in np.asarray(picks, dtype=np.int64).reshape(-1):
            if self.done:
                break
            self.add(int(c))

    @property
    def done(self) -> bool:
        return self.prefix.done

    @property
    def best_picks(self) -> int:
        """Distinct picks kept: the largest prefix within the tolerance of the best estimated F1
        (:attr:`gioselect.sizing.F1Prefix.kept_picks`), or 0 when nothing looks like the target
        (:attr:`gioselect.sizing.F1Prefix.empty`)."""
        return self.prefix.kept_picks

    def cut(self, picks: np.ndarray) -> np.ndarray:
        """The first ``best_picks`` distinct picks of ``picks`` (in order)."""
        return np.asarray(self.order[: self.best_picks], dtype=np.int64)

    @property
    def best_rows(self) -> int:
        """Rows kept (the kept prefix's picks' sizes summed; 0 when empty)."""
        return round(self.prefix.kept_rows)

    def finished(self) -> SizeEstimate:
        """The size estimate with the F1 rule's outcome (``f1``: argmax, how far the run went, ``reason`` and
        ``curve``, the estimated F1 along the picks: :meth:`curve`)."""
        f = self.prefix.as_dict()
        f["curve"] = self.curve()
        tol = f"{100 * self.prefix.tolerance:g}%"
        below = f"more than {tol} below its best" if self.prefix.tolerance > 0 else "below its best"
        why = (f"F1 had stayed {below} for {f['ran_picks'] - self.prefix.last_picks} picks"
               if self.done
               else "the pool, max_iter or the exclusion set ended the run first")
        if f["empty"]:
            if not self._warned and f["ran_picks"] == 0:  # not the classifier's verdict: no pick was made
                logger.warning("automatic size (F1 rule): the run ended before its first pick (%s); the selection "
                               "is empty", why)
                self._warned = True
            if not self._warned:
                logger.warning("automatic size (F1 rule): no pool row looks like the target (the best prefix's "
                               "expected target-like rows: %.2g); the selection is empty (pass a budget to select "
                               "anyway)", f["best_target_like"])
                self._warned = True
            f["reason"] = (f"auto: nothing selected: the prefix maximising the estimated F1 (n="
                           f"{round(self.prefix.best_rows)}) holds {f['best_target_like']:.2f} expected "
                           f"target-like rows, fewer than half a row (target-like total "
                           f"{f['target_like_total']:.1f}); ran to {f['ran_rows']} ({why})")
        elif self.prefix.tolerance > 0:
            f["reason"] = (f"auto: largest prefix within {tol} of the best estimated F1 at n={f['best_rows']} (F1 "
                           f"{f['best_f1']:.3f}; best {f['argmax_f1']:.3f} at n={f['argmax_rows']}; target-like "
                           f"total {f['target_like_total']:.1f}); ran to {f['ran_rows']} ({why})")
        else:
            f["reason"] = (f"auto: the prefix maximising the estimated F1, n={f['best_rows']} (F1 {f['best_f1']:.3f}; "
                           f"target-like total {f['target_like_total']:.1f}); ran to {f['ran_rows']} ({why})")
        return replace(self.est, f1=f)


def with_size_estimate(res: GIOResult, est: SizeEstimate | None) -> GIOResult:
    """``res`` with the automatic size recorded (its budget stop reported as ``"auto"``)."""
    if est is None:
        return res
    reason = "auto" if res.stop_reason == "budget" else res.stop_reason
    return replace(res, stop_reason=reason, size_estimate=est.as_dict())


def make_search(
    pool: np.ndarray,
    target: np.ndarray,
    params: GIOParams,
    *,
    seed: int | np.random.Generator | None = None,
    init: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    budget: float | None = None,
    budget_exact: bool = False,
) -> Search:
    """The search ``params.objective`` names, on validated inputs (for callers that drive the loop themselves):
    :class:`~gioselect.optimize.GIOSearch` for ``"relaxed"``, :class:`~gioselect.search.exact.ExactGreedySearch`
    for the exact objectives."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if params.objective != "relaxed":
        return ExactGreedySearch(pool, target, params, rng, init=init, weights=weights,
                                 budget=budget, budget_exact=budget_exact)
    return GIOSearch(pool, target, params, rng, init=init, weights=weights, budget=budget,
                     budget_exact=budget_exact)


def result_from_search(search: Search) -> GIOResult:
    """Freeze a finished (or interrupted) search into a :class:`GIOResult`."""
    st = search.state
    return GIOResult(
        selected_indices=np.asarray(st.selected, dtype=np.int64),
        kl_trace=np.asarray(st.kl_trace, dtype=np.float64),
        initial_kl=float(search.initial_kl),
        stop_reason=str(st.stop_reason),
        n_iter=st.n_iter,
        n_resets=st.num_resets,
        start_points=search.start_points,
        init_indices=search.init_indices,
        scale_factor=float(search.scale),  # NaN for the exact objectives (no gradient)
        params=dict(search.params.__dict__),
    )


def warn_degenerate(res: GIOResult, pool_rows: int, budget: float | None) -> None:
    """A :class:`~gioselect.errors.SelectionWarning` when nothing or (unasked) the whole pool was selected
    (:meth:`gioselect.selector.GIOSelector.fit` calls it: ``stacklevel`` points at fit's caller)."""
    n = int(np.unique(res.selected_indices).shape[0])
    if n == 0:
        why = ("the automatic size found no target-like pool row" if res.stop_reason in ("auto-f1", "auto")
               else "the stop rule fired before any pick was kept")
        hint = ("max_iter or exclude allowed no pick" if budget is not None
                else f"{why}, or max_iter or exclude allowed no pick; pass budget=N to select N rows anyway")
        msg = f"nothing was selected (0 rows; stop reason {res.stop_reason!r}): {hint}"
    elif n >= pool_rows and budget is not None and budget > pool_rows:
        msg = (f"budget={budget:g} is more than the pool's {pool_rows} rows: the whole pool was selected, which "
               "is no selection; pass a budget below the pool's size")
    elif n >= pool_rows and not (budget is not None and budget >= pool_rows):
        msg = (f"the whole pool was selected ({n} of {pool_rows} rows; stop reason {res.stop_reason!r}): the "
               "selection is no selection; pass budget=N, max_iter or another stop_criterion")
    else:
        return
    warnings.warn(msg, SelectionWarning, stacklevel=3)
