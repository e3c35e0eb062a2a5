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
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..optimize import GIOParams, GIOSearch
from ..sizing import SizeEstimate, estimate_target_rows
from ..validation import check_embeddings
from .base import Search
from .exact import ExactGreedySearch

__all__ = ["GIOResult", "Search", "auto_budget", "make_search", "result_from_search", "validate_fit_inputs",
           "with_size_estimate"]

logger = logging.getLogger(__name__)


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
        The criterion that fired, or ``"max_iter"``, ``"budget"``, ``"pool_exhausted"``; ``"auto"`` when the
        run filled the size estimated by ``stop_criterion="auto"``.
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
    #: The automatic size (``stop_criterion="auto"`` without a budget): :meth:`SizeEstimate.as_dict`.
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


def auto_budget(pool: Any, target: np.ndarray, params: GIOParams, budget: float | None,
                seed: int | np.random.Generator | None) -> tuple[float | None, SizeEstimate | None]:
    """The run's row budget: ``budget`` when given; with ``stop_criterion="auto"`` and no budget, the
    estimated number of target-like pool rows (:func:`gioselect.sizing.estimate_target_rows`).

    ``pool`` is the pool's rows (an array or a block source), never the cluster centroids. The estimate draws
    from its own generator (derived from ``seed``), so the GIO run's random choices are the same with or
    without it.
    """
    if budget is not None or params.stop_criterion != "auto":
        return budget, None
    if isinstance(seed, np.random.Generator):
        rng = np.random.default_rng(seed.bit_generator.seed_seq.spawn(1)[0])  # type: ignore[attr-defined]
    else:
        rng = np.random.default_rng(None if seed is None else [int(seed), 0x5153])
    est = estimate_target_rows(pool, target, seed=rng)
    if est.rows == 0:
        logger.warning("stop_criterion='auto': no pool row looks like the target (estimated share %.4g); the "
                       "selection is empty (pass a budget to select anyway)", est.share)
    elif est.rows >= est.pool_rows:
        logger.warning("stop_criterion='auto': every pool row looks like the target (estimated share %.4g); "
                       "the selection is the whole pool", est.share)
    return float(est.rows), est


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
