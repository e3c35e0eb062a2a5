"""The public estimator: ``GIOSelector(**params).fit(pool, target)`` and the functional ``select``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .optimize import GIOParams, GIOSearch, PickEvent
from .sizing import SizeEstimate, estimate_target_rows
from .validation import check_embeddings, check_int, check_real

__all__ = ["GIOResult", "GIOSelector", "QuantizedSelection", "auto_budget", "select", "select_quantized"]

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


def _validate_fit_inputs(
    pool: Any, target: Any, init: Any, params: GIOParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
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


def _with_estimate(res: GIOResult, est: SizeEstimate | None) -> GIOResult:
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
) -> GIOSearch:
    """A :class:`GIOSearch` on validated inputs (for callers that drive the loop themselves)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if params.objective != "relaxed":
        from .exact import ExactGreedySearch

        return ExactGreedySearch(pool, target, params, rng, init=init, weights=weights,  # type: ignore[return-value]
                                 budget=budget, budget_exact=budget_exact)
    return GIOSearch(pool, target, params, rng, init=init, weights=weights, budget=budget,
                     budget_exact=budget_exact)


def result_from_search(search: GIOSearch) -> GIOResult:
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


class GIOSelector:
    """Select the rows of a pool whose distribution is closest to a target set (GIO).

    Greedily minimises the relaxed k-NN estimate of KL(target || start set + selection): each next point is
    found by gradient descent in embedding space and snapped to the nearest unused pool row. By default the
    run selects as many rows as the pool is estimated to hold rows drawn like the target
    (``stop_criterion="auto"``); ``budget=N`` selects exactly N.

    Parameters
    ----------
    k : int, default 5
        Neighbour rank of the k-NN estimator (the target needs more than k rows).
    max_iter : int or None, default None
        Most points accepted (``None``: no limit besides the pool, the budget and the stopping criterion).
    stop_criterion : str, default "auto"
        ``"auto"``: select as many rows as the pool is estimated to hold rows drawn like the target
        (:func:`gioselect.sizing.estimate_target_rows`: positive-unlabeled learning, Elkan & Noto 2008), i.e.
        the run's budget is that estimate; ``size_estimate_`` records it. The criteria of grad-info-opt, which
        watch the objective's trace and stop where it rises or flattens: ``"increase"`` (the objective went
        up; the reference's default, which stops 1-2 orders of magnitude before the best size in
        EXPERIMENTS.md, "Automatic size and defaults"), ``"max_resets"`` (went up again after ``max_resets`` resets,
        each caused by an increase; needs ``resets_allowed``), ``"min_difference"`` (improvement below
        ``min_difference``),
        ``"sequential_increase_tolerance"`` (more than ``max_sequential_increases`` increases in a row),
        ``"min_kl"`` (objective below ``min_kl``), ``"data_size"`` (more than ``max_data_size`` of the pool).
    min_difference, max_resets, max_data_size, min_kl, max_sequential_increases
        The criteria's parameters (defaults 0, 2, 1.0, 0, 3).
    resets_allowed : bool, default False
        When the criterion fires, refill the pool with every row (duplicates become possible) and go on, up to
        ``max_resets`` times.
    v_init : {"jump", "mean", "prev_opt"}, default "jump"
        Where each gradient search starts: a random target point every time (``"jump"``); the target mean
        every time (``"mean"``, grad-info-opt's default); or the target mean first and then the previous
        optimum. The default departs from the reference on evidence (EXPERIMENTS.md, "Relaxed gradient vs
        exact greedy"): with ``"mean"`` every search ends near the same spot, the selection grows outward from
        it and fills one component of a multi-modal target; ``"jump"`` follows the target's components in
        proportion (with the automatic size it was the best mode on the mixture and image tasks of
        EXPERIMENTS.md, "Automatic size and defaults", and 0.014 F1 behind ``"mean"`` on BBC
        sentences). With ``"jump"`` the reference's ``"increase"`` rule stops at the first noisy rise.
    grad_desc_iter : int, default 50
        Gradient steps per pick (x3 on the first pick, after a reset, and with ``random_restart_prob``).
    lr : float, default 0.01
        Step size; each step moves v by ``lr * scale * gradient``.
    scale_factor : "auto" or float, default "auto"
        Gradient scale; ``"auto"`` is ``|v0| / |grad(v0)|``, computed once per run.
    random_restart_prob : float in [0, 1], default 0
        Probability of a 3x-long gradient search at each pick.
    start : {"box", "unit"}, default "box"
        The start set when neither ``init`` nor ``random_init_pct`` is given (relaxed objective only):
        ``uniform_start_size`` points uniform in the target's bounding box (``"box"``: the same at any scale
        and offset of the data), or the reference's uniform points in [low, high]^d, scaled to unit norm when
        ``normalize`` (``"unit"``: sensible only for unit-norm embeddings; on a pool of vectors around 100 its
        start points lie far from everything). They stay in the estimate.
    uniform_low, uniform_high, uniform_start_size, normalize : default -1, 1, 20, True
        ``start="unit"``'s range and normalisation; ``uniform_start_size`` applies to both.
    random_init_pct : float in [0, 1], default 0
        Start instead from this fraction of the pool's rows (drawn at random; they remain candidates).
    discard_nearest_for_xy : bool, default False
        Drop each target point's nearest selected point from the estimate (when the target is part of the pool).
    eps : float, default 1e-8
        Added to distances inside the logs.
    objective : {"relaxed", "exact"}, default "relaxed"
        ``"relaxed"``: the paper's gradient search on the relaxed estimator (every option above applies).
        ``"exact"``: greedy selection on the exact k-NN estimate of KL(target || selection), each pick the pool
        row that lowers it most (no start points, no gradient options; better than relaxed at small budgets in
        EXPERIMENTS.md). See :mod:`gioselect.exact`.
    budget : int, optional
        Rows in the selection (with ``weights``, the most total weight): the run selects exactly this many
        (or the whole pool when smaller) whatever ``stop_criterion`` says, only ``max_iter`` can end it first.
    seed : int, optional
        Seeds every random choice (start set, ``jump``, restarts). Same seed, same inputs, same selection.
    reference_max_iter, reference_sequential_bug, reference_max_resets_bug : bool, default False
        Reproduce grad-info-opt 0.1.2's off-by-one ``max_iter`` (up to ``max_iter + 1`` picks) and its
        never-firing ``sequential_increase_tolerance`` and ``max_resets`` criteria.

    Attributes
    ----------
    selected_indices_ : ndarray of int64
        Pool rows in selection order, start points excluded.
    kl_trace_ : ndarray of float64
        Objective after each accepted pick.
    initial_kl_ : float
    stop_reason_ : str
    n_iter_ : int
    size_estimate_ : SizeEstimate or None
        The automatic size (``stop_criterion="auto"`` and no ``budget``), with the estimator's diagnostics.
    result_ : GIOResult
        All of the above and more.

    Examples
    --------
    >>> import numpy as np
    >>> from gioselect import GIOSelector
    >>> rng = np.random.default_rng(0)
    >>> pool = np.vstack([rng.normal(0, 1, (300, 8)), rng.normal(6, 1, (300, 8))])
    >>> target = rng.normal(0, 1, (100, 8))
    >>> sel = GIOSelector(max_iter=50, seed=0).fit(pool, target)
    >>> bool((sel.selected_indices_ < 300).all())
    True
    """

    def __init__(
        self,
        *,
        k: int = 5,
        max_iter: int | None = None,
        stop_criterion: str = "auto",
        min_difference: float = 0.0,
        resets_allowed: bool = False,
        max_resets: int = 2,
        max_data_size: float = 1.0,
        min_kl: float = 0.0,
        max_sequential_increases: int = 3,
        random_init_pct: float = 0.0,
        random_restart_prob: float = 0.0,
        scale_factor: float | str = "auto",
        v_init: str = "jump",
        grad_desc_iter: int = 50,
        discard_nearest_for_xy: bool = False,
        normalize: bool = True,
        lr: float = 0.01,
        uniform_low: float = -1.0,
        uniform_high: float = 1.0,
        uniform_start_size: int = 20,
        start: str = "box",
        eps: float = 1e-8,
        objective: str = "relaxed",
        budget: int | None = None,
        seed: int | None = None,
        reference_max_iter: bool = False,
        reference_sequential_bug: bool = False,
        reference_max_resets_bug: bool = False,
    ) -> None:
        self.k = k
        self.max_iter = max_iter
        self.stop_criterion = stop_criterion
        self.min_difference = min_difference
        self.resets_allowed = resets_allowed
        self.max_resets = max_resets
        self.max_data_size = max_data_size
        self.min_kl = min_kl
        self.max_sequential_increases = max_sequential_increases
        self.random_init_pct = random_init_pct
        self.random_restart_prob = random_restart_prob
        self.scale_factor = scale_factor
        self.v_init = v_init
        self.grad_desc_iter = grad_desc_iter
        self.discard_nearest_for_xy = discard_nearest_for_xy
        self.normalize = normalize
        self.lr = lr
        self.uniform_low = uniform_low
        self.uniform_high = uniform_high
        self.uniform_start_size = uniform_start_size
        self.start = start
        self.eps = eps
        self.objective = objective
        self.budget = budget
        self.seed = seed
        self.reference_max_iter = reference_max_iter
        self.reference_sequential_bug = reference_sequential_bug
        self.reference_max_resets_bug = reference_max_resets_bug

    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters as a dict."""
        return {name: getattr(self, name) for name in (*GIOParams.names(), "budget", "seed")}

    def set_params(self, **params: Any) -> GIOSelector:
        """Change parameters (unknown names are an error)."""
        valid = set(self.get_params())
        for name, value in params.items():
            if name not in valid:
                raise TypeError(f"unknown parameter {name!r}; valid: {', '.join(sorted(valid))}")
            setattr(self, name, value)
        return self

    def _params(self) -> GIOParams:
        return GIOParams(**{n: getattr(self, n) for n in GIOParams.names()}).validate()

    def fit(
        self,
        pool: Any,
        target: Any,
        init: Any = None,
        *,
        weights: Any = None,
        callback: Callable[[PickEvent], None] | None = None,
    ) -> GIOSelector:
        """Run GIO.

        Parameters
        ----------
        pool : array-like of shape (M, d)
            Candidates (rows of the pool, or cluster centroids).
        target : array-like of shape (n, d), n > k
            Examples of what you want.
        init : array-like of shape (m0, d), optional
            Explicit start set (the reference's ``D``); kept in the estimate, never returned as selected.
        weights : array-like of shape (M,), optional
            Rows each candidate stands for, counted against ``budget`` (cluster sizes when quantised).
        callback : callable, optional
            Called with each :class:`~gioselect.optimize.PickEvent` (progress bars, logging).

        Returns
        -------
        self
        """
        params = self._params()
        pool_, target_, init_ = _validate_fit_inputs(pool, target, init, params)
        budget = None
        if self.budget is not None:
            budget = check_real(self.budget, "budget", low=0.0, low_open=True)
        w = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64).reshape(-1)
            if w.shape[0] != pool_.shape[0] or not np.isfinite(w).all() or (w < 0).any():
                raise InvalidInputError(
                    f"weights: expected {pool_.shape[0]} finite non-negative numbers (one per pool row)"
                )
        if self.seed is not None and not isinstance(self.seed, np.random.Generator):
            check_int(self.seed, "seed", low=0)
        if self.seed is not None and not isinstance(self.seed, np.random.Generator):
            seed: int | np.random.Generator | None = int(self.seed)
        else:
            seed = self.seed
        est = None
        if w is None:
            budget, est = auto_budget(pool_, target_, params, budget, seed)
        search = make_search(pool_, target_, params, seed=seed, init=init_, weights=w, budget=budget)
        for event in search.run():
            if callback is not None:
                callback(event)
        self._set_result(_with_estimate(result_from_search(search), est))
        self.size_estimate_ = est
        return self

    def _set_result(self, res: GIOResult) -> None:
        self.result_ = res
        self.selected_indices_ = res.selected_indices
        self.kl_trace_ = res.kl_trace
        self.initial_kl_ = res.initial_kl
        self.stop_reason_ = res.stop_reason
        self.n_iter_ = res.n_iter
        self.n_resets_ = res.n_resets
        self.init_indices_ = res.init_indices
        self.scale_factor_ = res.scale_factor

    def __repr__(self) -> str:
        defaults = GIOSelector().get_params()
        changed = {k: v for k, v in self.get_params().items() if defaults.get(k) != v}
        return f"GIOSelector({', '.join(f'{k}={v!r}' for k, v in changed.items())})"


def select(pool: Any, target: Any, init: Any = None, **params: Any) -> GIOResult:
    """Functional form: ``GIOSelector(**params).fit(pool, target, init).result_``.

    Returns
    -------
    GIOResult
        ``.selected_indices`` are pool rows in selection order.
    """
    weights = params.pop("weights", None)
    callback = params.pop("callback", None)
    return GIOSelector(**params).fit(pool, target, init, weights=weights, callback=callback).result_


@dataclass(frozen=True)
class QuantizedSelection:
    """In-memory GIO with optional quantisation: ``ids`` are pool rows in selection order (clusters exploded)."""

    ids: np.ndarray
    result: GIOResult
    n_candidates: int
    n_target_points: int


def select_quantized(pool: Any, target: Any, *, clusters: int = 0, target_clusters: int | None = None,
                     budget: int | None = None, budget_exact: bool = False, seed: int = 0,
                     **params: Any) -> QuantizedSelection:
    """GIO on in-memory arrays with the pipeline's quantise-explode (``clusters=0``: on the rows themselves).

    The same steps as ``gioselect select`` without the files: K-means of the pool into ``clusters`` (and of the
    target into ``target_clusters``, default ``clusters``, when it is larger), GIO on the centroids with cluster
    sizes counted against ``budget`` (rows), then each chosen cluster exploded to its rows (ascending).

    Returns
    -------
    QuantizedSelection
    """
    from .quantize import ClusterMembers, explode, quantize_array

    gp = GIOParams(**params).validate()
    pool_, target_, _ = _validate_fit_inputs(pool, target, None, gp)
    check_int(clusters, "clusters", low=0)
    check_int(seed, "seed", low=0)
    if budget is not None:
        check_int(budget, "budget", low=1)
    seeds = np.random.SeedSequence(seed).spawn(3)
    s_pool, s_target, s_gio = (int(s.generate_state(1)[0]) for s in seeds)
    # A budget is exact (the last cluster cut); "auto" without one sizes the run from the pool's rows.
    fbudget, est = auto_budget(pool_, target_, gp, None if budget is None else float(budget), seed)
    if est is not None:
        budget = est.rows
    budget_exact = budget_exact or budget is not None
    kt = clusters if target_clusters is None else check_int(target_clusters, "target_clusters", low=0)
    target_c = target_
    if kt > 0 and target_.shape[0] > kt:
        target_c = quantize_array(target_, kt, seed=s_target).centroids
    if clusters > 0 and pool_.shape[0] > clusters:
        q = quantize_array(pool_, clusters, seed=s_pool)
        search = make_search(q.centroids, target_c, gp, seed=s_gio, weights=q.sizes, budget=fbudget,
                             budget_exact=budget_exact)
        for _ in search.run():
            pass
        res = _with_estimate(result_from_search(search), est)
        ids = explode(res.selected_indices, ClusterMembers(q.labels, q.centroids.shape[0]),
                      limit=budget if budget_exact else None, seed=s_gio)
        return QuantizedSelection(ids, res, int(q.centroids.shape[0]), int(target_c.shape[0]))
    search = make_search(pool_, target_c, gp, seed=s_gio, budget=fbudget, budget_exact=budget_exact)
    for _ in search.run():
        pass
    res = _with_estimate(result_from_search(search), est)
    _, first = np.unique(res.selected_indices, return_index=True)
    ids = res.selected_indices[np.sort(first)]
    return QuantizedSelection(ids, res, int(pool_.shape[0]), int(target_c.shape[0]))
