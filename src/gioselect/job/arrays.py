"""The job on in-memory arrays (:func:`gioselect.selector.select_quantized`): quantise, select, choose rows.

The same phases, seeds and row choice as the file job (:mod:`gioselect.job.run`) without files, checkpoints or a
run record: K-means of the pool and the target, GIO on one candidate per cluster, the row-level pass or the
explode of the chosen clusters with the job's ``explode`` sub-seed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InvalidParameterError
from ..optimize import GIOParams
from ..quantize import (
    REFINE_MODES,
    ClusterMembers,
    assign_blocks,
    drop_empty,
    kmeans_centroids,
    medoid_ids,
    plan_clusters,
    quantize_array,
    quantized_rows,
    select_candidates,
    training_sample_indices,
)
from ..selector import (
    QuantizedSelection,
    auto_budget,
    make_search,
    result_from_search,
    validate_fit_inputs,
    with_size_estimate,
)
from ..validation import check_int, check_real
from .seeds import Seeds

__all__ = ["select_arrays"]


def select_arrays(pool: Any, target: Any, *, clusters: int | str = "auto", target_clusters: int | None = None,
                  budget: int | None = None, budget_exact: bool = False, seed: int = 0,
                  candidates: str = "auto", refine: str = "knn", refine_over: float = 1.5,
                  **params: Any) -> QuantizedSelection:
    """:func:`gioselect.selector.select_quantized` on arrays (frames are unpacked there); same parameters."""
    gp = GIOParams(**params).validate()
    pool_, target_, _ = validate_fit_inputs(pool, target, None, gp)
    check_int(seed, "seed", low=0)
    if budget is not None:
        check_int(budget, "budget", low=1)
    if refine not in REFINE_MODES:
        raise InvalidParameterError(f"refine: expected one of {', '.join(REFINE_MODES)}, got {refine!r}")
    check_real(refine_over, "refine_over", low=1.0)
    plan = plan_clusters(clusters, target_clusters, pool_.shape[0], target_.shape[0])
    seeds = Seeds(seed)  # the file job's sub-seeds for the same seed
    s_pool, s_target, s_gio = seeds.pool_kmeans, seeds.target_kmeans, seeds.gio
    # A budget is exact (the last cluster cut); "auto" without one sizes the run from the pool's rows.
    fbudget, est = auto_budget(pool_, target_, gp, None if budget is None else float(budget), seed)
    if est is not None:
        budget = est.rows
    budget_exact = budget_exact or budget is not None
    target_c = target_
    if plan.target_clusters > 0:
        target_c = quantize_array(target_, plan.target_clusters, seed=s_target).centroids
    if plan.pool_clusters > 0:
        kp = plan.pool_clusters
        idx = training_sample_indices(pool_.shape[0], kp, seed=s_pool)
        raw = kmeans_centroids(pool_[idx], kp, seed=s_pool)
        labels, sq = assign_blocks(((s, pool_[s : s + 65536]) for s in range(0, pool_.shape[0], 65536)), raw,
                                   pool_.shape[0])
        cents, sizes, labels = drop_empty(raw, labels)
        rng = np.random.default_rng(s_pool)
        sample = pool_[np.sort(rng.choice(pool_.shape[0], size=min(1000, pool_.shape[0]), replace=False))]
        cand, mode = select_candidates(candidates, cents, medoid_ids(labels, sq, cents.shape[0]), sample,
                                       lambda ids: pool_[ids])
        refining = refine != "none" and budget is not None
        gio_budget = None if budget is None else (math.ceil(refine_over * budget) if refining else budget)
        search = make_search(cand, target_c, gp, seed=s_gio, weights=sizes,
                             budget=None if gio_budget is None else float(gio_budget),
                             budget_exact=budget_exact or refining)
        for _ in search.run():
            pass
        res = with_size_estimate(result_from_search(search), est)
        ids = quantized_rows(res.selected_indices, ClusterMembers(labels, cand.shape[0]), lambda i: pool_[i],
                             target_, cand, budget, how=refine, k=gp.k, over=refine_over,
                             limit=budget if budget_exact else None, seed=seeds.explode)
        return QuantizedSelection(ids, res, int(cand.shape[0]), int(target_c.shape[0]), plan.rule, mode,
                                  labels=labels)
    search = make_search(pool_, target_c, gp, seed=s_gio, budget=fbudget, budget_exact=budget_exact)
    for _ in search.run():
        pass
    res = with_size_estimate(result_from_search(search), est)
    _, first = np.unique(res.selected_indices, return_index=True)
    ids = res.selected_indices[np.sort(first)]
    return QuantizedSelection(ids, res, int(pool_.shape[0]), int(target_c.shape[0]), plan.rule, None)
