"""The phase list, written once for every engine: quantise -> candidates -> size -> GIO -> choose rows.

:func:`select_phases` runs the selection itself against the :class:`gioselect.engines.base.Engine` protocol
(checkpointed in the work folder when it is given, in memory otherwise): the file job (:func:`run_phases`, on
either engine) and :func:`gioselect.spark.select` (DataFrames in a session) call it. :func:`run_phases` adds
what a file job has around it: fingerprint (resume), open and embed, the exclusion set, write, run record and
report. The phases, in order:

1. quantise: :func:`gioselect.quantize.plan_clusters` decides K (``clusters="auto"``: from the pool and target
   sizes); K-means on a seeded sample of the pool, every row assigned to its nearest centroid, the medoid of each
   cluster found in the same pass; the candidates (medoids by default) chosen; the target quantised when large;
2. size: with no budget, the size rule :func:`gioselect.search.size_rule` names. Both fit the target-vs-pool
   classifier of :func:`gioselect.sizing.estimate_target_rows` on a seeded reservoir sample of pool rows (never
   the centroids). The F1 rule (``stop_criterion="auto"``, the default, or ``"f1"``): GIO's picks are cut to the
   largest prefix within 2% of the best plug-in F1 (:class:`gioselect.search.F1Sizer`; when quantised, a cluster
   counts its size times the mean posterior of the sampled pool rows in it, :func:`_cluster_target_like`, the kept
   prefix is the argmax (``QUANTIZED_F1_TOLERANCE``), and the same rule along the row-level pass's ranking of the
   chosen clusters' rows sets the size, :class:`gioselect.quantize_f1.RowF1`). The estimate rule
   (``"estimate"``): the estimated number of target-like pool rows is the budget (quantised, the row-level pass
   keeps that many);
3. select: GIO on the candidates (:func:`gioselect.job.select.run_gio`), to the pass's ``over`` times the size
   when the row-level pass follows (:func:`gioselect.quantize.plan_refine` decides the pass: ``refine="auto"``,
   the default, takes ``gio`` while its estimated cost is small and ``knn`` above). Under the F1 rule the size is
   known only once the rule is done, so the pass is planned then and GIO goes on until its picks hold ``over``
   times the size (``reach``);
4. choose rows: the row-level pass inside the chosen clusters (:func:`gioselect.quantize.quantized_rows`; under the
   F1 rule it ranks every row it read and keeps the rule's prefix of them), or the chosen clusters exploded whole
   (``refine="none"``, or a stop rule other than the F1 rule and no budget).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, quantize
from ..engines.base import Assignment, Engine, JobEngine
from ..errors import InvalidParameterError
from ..nearest import KnownNearest
from ..optimize import GIOParams
from ..quantize import (
    REFINE_WHOLE,
    ClusterPlan,
    RefinePlan,
    RowF1,
    plan_clusters,
    plan_refine,
    quantized_rows,
    select_candidates,
)
from ..selector import F1Sizer, auto_budget, size_rule
from ..sizing import SizeEstimate
from .config import Progress, SelectConfig, no_progress, parse_budget, text_fields
from .record import (
    REPORT_POOL_ROWS,
    finite_or_none,
    report_sample_ids,
    run_warnings,
    versions,
    write_f1_curve,
    write_trace,
)
from .run import RunContext
from .seeds import Seeds
from .select import PickHook, distinct_picks, gio_fill, reach_prefix, run_gio
from .workdir import CHECKPOINT_FORMAT, load_npz, save_npz

__all__ = ["MIN_ROWS_PER_CLUSTER", "PhaseSettings", "Selected", "run_phases", "select_phases"]

logger = logging.getLogger(__name__)

MIN_ROWS_PER_CLUSTER = 20  # below this average, warn that quantisation blurs the pool


@dataclass(frozen=True)
class PhaseSettings:
    """The options of the selection phases (a :class:`SelectConfig` minus files and output)."""

    params: GIOParams
    clusters: int | str = "auto"
    target_clusters: int | None = None
    kmeans_iter: int = 20
    candidates: str = "auto"
    refine: str = "auto"
    refine_over: float | None = None  # None: the pass's own (gioselect.quantize_refine.default_over)
    refine_whole: float = REFINE_WHOLE
    memory_budget: int = 1 << 30
    checkpoint_every: int = 25
    checkpoint_seconds: float = 30.0

    @classmethod
    def of(cls, cfg: SelectConfig) -> PhaseSettings:
        return cls(params=cfg.params, clusters=cfg.clusters, target_clusters=cfg.target_clusters,
                   kmeans_iter=cfg.kmeans_iter, candidates=cfg.candidates, refine=cfg.refine,
                   refine_over=cfg.refine_over, refine_whole=cfg.refine_whole, memory_budget=cfg.memory_budget,
                   checkpoint_every=cfg.checkpoint_every, checkpoint_seconds=cfg.checkpoint_seconds)


@dataclass
class Selected:
    """What the phases made: the plan, candidates, assignment (None: unquantised), target points, size, the
    finished search, its picks, and the selection (the engine's handle)."""

    plan: ClusterPlan
    candidates: np.ndarray
    sizes: np.ndarray
    assignment: Assignment | None
    target_points: np.ndarray
    budget_rows: int | None
    size_estimate: SizeEstimate | None
    search: Any
    picks: np.ndarray
    selection: Any
    refining: bool
    candidates_mode: str | None
    kmeans_sample: int
    refine_plan: RefinePlan | None = None  # quantised runs: the row-level pass used and why
    known_nearest: KnownNearest | None = None  # nearest target rows the pass found (reused by picks.csv)


def _cluster_target_like(engine: Engine, pool: Any, asg: Assignment, candidates: np.ndarray,
                         size_est: SizeEstimate, seeds: Seeds) -> np.ndarray | None:
    """The F1 rule's count per cluster on a quantised run (:func:`gioselect.quantize.cluster_target_like`): the
    mean posterior of a seeded sample of pool rows (``F1_ROWS_PER_CLUSTER`` per cluster on average, at most
    ``F1_MAX_SAMPLE_ROWS``) in each cluster, times its size. None when ``F1_ROWS_PER_CLUSTER`` is 0 (each
    candidate's posterior times its size)."""
    per = quantize.F1_ROWS_PER_CLUSTER
    if per <= 0 or size_est.scorer is None:
        return None
    seed = int(np.random.SeedSequence([seeds["gio"], 0xF1]).generate_state(1)[0])
    ids = engine.sample_ids(pool.n_rows, min(per * int(asg.sizes.shape[0]), quantize.F1_MAX_SAMPLE_ROWS), seed)
    post = size_est.scorer.posterior(engine.take(pool, ids))
    return quantize.cluster_target_like(post, engine.row_clusters(asg, ids), size_est.scorer.posterior(candidates),
                                        asg.sizes)


def select_phases(engine: Engine, pool: Any, target: np.ndarray, target_source: Any, settings: PhaseSettings,
                  budget_rows: int | None, seeds: Seeds, *, work: Path | None = None,
                  prog: Progress = no_progress, timings: dict[str, float] | None = None,
                  on_pick: PickHook | None = None, blocked: np.ndarray | None = None,
                  repel: tuple[np.ndarray | None, float] | None = None) -> Selected:
    """Quantise, choose candidates, size, run GIO and choose the rows, on ``engine``.

    ``target`` is the whole target (on the driver; ``target_source`` is the engine's handle on it, for a
    distributed K-means), ``budget_rows`` the row budget (None: sized by the stop rule), ``work`` the folder
    for checkpoints (None: nothing is written), ``blocked`` a mask of pool rows GIO may not pick (unquantised
    runs only), ``repel`` (the exclusion set's vectors, the weight of the objective's push away from them).
    """
    timings = {} if timings is None else timings
    k = settings.params.k

    # -- quantise the pool ---------------------------------------------------------------------------------
    t0 = time.monotonic()
    plan = plan_clusters(settings.clusters, settings.target_clusters, pool.n_rows, int(target.shape[0]))
    kp = plan.pool_clusters
    if kp > 0 and pool.n_rows < MIN_ROWS_PER_CLUSTER * kp:
        logger.warning(
            "quantising %d pool rows into %d clusters leaves about %.1f rows per cluster, too few for K-means to "
            "mean much; consider --clusters 0 (no quantisation) or a smaller K", pool.n_rows, kp,
            pool.n_rows / kp)
    kmeans_sample, cand_mode = 0, None
    asg: Assignment | None = None
    if kp > 0:
        asg, candidates, cand_mode, kmeans_sample = _quantize_pool(engine, pool, kp, settings, seeds, work, prog)
        sizes = asg.sizes
    else:
        with prog("reading pool", pool.n_rows, "row") as upd:
            candidates = engine.pool_vectors(pool, settings.memory_budget, upd)
        sizes = np.ones(pool.n_rows, dtype=np.int64)
    timings["quantize_pool"] = time.monotonic() - t0

    # -- quantise the target -------------------------------------------------------------------------------
    t0 = time.monotonic()
    kt = plan.target_clusters
    target_c = target
    if kt > 0:
        tfile = work / "target_quantization.npz" if work is not None else None
        if tfile is not None and tfile.exists():
            tq = load_npz(tfile)
            target_c = tq["centroids"]
            engine.kmeans_used["target"] = str(tq["kmeans"])
        else:
            with prog(f"K-means of the target ({kt} clusters)", None, "step") as upd:
                target_c = engine.quantize_target(target, target_source, kt, seed=seeds["target_kmeans"],
                                                  niter=settings.kmeans_iter)
                upd(1)
            if tfile is not None:
                save_npz(tfile, centroids=target_c, kmeans=np.array(engine.kmeans_used.get("target", "")))
        if target_c.shape[0] <= k:
            raise InvalidParameterError(
                f"target_clusters: the target quantises to {target_c.shape[0]} clusters; more than k={k} needed"
            )
    timings["quantize_target"] = time.monotonic() - t0

    # -- size ----------------------------------------------------------------------------------------------
    size_est = None
    rule = size_rule(settings.params.stop_criterion, budget_rows)
    f1_rule = rule == "f1"
    if rule is not None:
        # How many pool rows look like the target (a sample of the pool rows, never the centroids): the F1 rule's
        # classifier, or (the estimate rule) the size the run then fills exactly.
        t0 = time.monotonic()
        with prog("estimating the target-like share of the pool", None, "pass") as upd:
            _, size_est = auto_budget(engine.size_pool(pool), target, settings.params, None, seeds["gio"])
            upd(1)
        assert size_est is not None
        if not f1_rule:
            budget_rows = size_est.rows
        timings["size_estimate"] = time.monotonic() - t0
    # The row-level pass (refine="auto": gio while its cost is small, knn above) ranks the rows of clusters worth
    # its over times the budget, then keeps the budget.
    def refine_plan(rows: int | None) -> RefinePlan:
        return plan_refine(settings.refine, settings.refine_over, rows, int(candidates.shape[1]),
                           int(target_c.shape[0]), objective=settings.params.objective,
                           grad_desc_iter=settings.params.grad_desc_iter)

    # Quantised with the F1 rule, the pass follows the size the rule finds: GIO goes on past it until its picks
    # hold the pass's over times that size (``reach``), then the pass keeps the size's rows of them.
    after_f1 = f1_rule and asg is not None and settings.refine != "none"
    rplan = None if asg is None or after_f1 else refine_plan(budget_rows)
    if rplan is not None:
        logger.info("row-level pass: %s", rplan.rule)
    refining = rplan is not None and rplan.refine != "none" and budget_rows is not None
    gio_budget = budget_rows  # GIO fills any budget exactly by cluster sizes (gioselect.job.select.run_gio)
    if refining and rplan is not None and budget_rows is not None:
        gio_budget = math.ceil(rplan.over * budget_rows)

    def reach(rows: int) -> int:  # the rows the pass reads at the F1 rule's size
        return math.ceil(refine_plan(rows).over * rows) if rows > 0 else 0

    # -- select --------------------------------------------------------------------------------------------
    t0 = time.monotonic()
    sizer = None
    if f1_rule:
        assert size_est is not None
        sizer = F1Sizer(size_est, candidates, sizes if asg is not None else None,
                        None if asg is None else _cluster_target_like(engine, pool, asg, candidates, size_est, seeds))
    search = run_gio(settings.params, candidates, target_c, sizes, gio_budget, seeds["gio"], work, prog,
                     blocked=blocked if asg is None else None, on_pick=on_pick,
                     checkpoint_every=settings.checkpoint_every, checkpoint_seconds=settings.checkpoint_seconds,
                     repel=repel, sizer=sizer, reach=reach if after_f1 else None)
    timings["select"] = time.monotonic() - t0
    picks = np.asarray(search.state.selected, dtype=np.int64)
    if sizer is not None:  # the F1 rule's kept prefix: its picks, exactly its rows
        budget_rows = sizer.best_rows
        size_est = sizer.finished()
        if after_f1 and budget_rows > 0:  # ... or the picks the row-level pass reads, to keep that many rows
            rplan = refine_plan(budget_rows)
            logger.info("row-level pass at the F1 rule's size: %s", rplan.rule)
            refining = True
            picks = reach_prefix(picks, sizes, reach(budget_rows))
        else:
            picks = sizer.cut(picks)
            if after_f1:
                rplan = refine_plan(None)

    # -- choose the rows -----------------------------------------------------------------------------------
    t0 = time.monotonic()
    limit = budget_rows  # a budget (given, or the automatic size) is exact: the last cluster is cut to fill it
    known = None
    if asg is not None:
        with prog("choosing rows of the chosen clusters" if refining else "exploding clusters", None, "step") as upd:
            if refining and rplan is not None:
                fill = gio_fill(settings.params, target_c, seeds["explode"]) if rplan.refine == "gio" else None
                known = KnownNearest(target) if rplan.refine == "knn" else None  # only knn's scan finds them
                # After the F1 rule's cluster-level size, the same rule along the pass's ranking of the rows it
                # read sets the size (gioselect.quantize_f1.RowF1).
                row_f1 = (RowF1(size_est.posteriors, size_est.target_like_total)
                          if after_f1 and size_est is not None else None)
                ids = quantized_rows(picks, engine.members(asg), lambda i: engine.take(pool, i), target,
                                     candidates, budget_rows, how=rplan.refine, k=k, over=rplan.over,
                                     whole=settings.refine_whole, limit=limit, seed=seeds["explode"], fill=fill,
                                     block_rows=engine.take_block_rows(pool, settings.memory_budget), known=known,
                                     size=row_f1)
                if row_f1 is not None and size_est is not None:
                    size_est = replace(size_est, f1=row_f1.record(dict(size_est.f1 or {})))
                    logger.info("automatic size along the row-level pass: %d rows (the clusters' rule: %s)",
                                ids.shape[0], budget_rows)
                    budget_rows = int(ids.shape[0])
                    if budget_rows == 0:
                        logger.warning("automatic size (F1 rule): no row the row-level pass ranked looks like the "
                                       "target; the selection is empty (pass a budget to select anyway)")
                if (search.state.stop_reason == "pool_exhausted" and not after_f1 and budget_rows is not None
                        and len(ids) >= budget_rows):  # GIO ran out of clusters on its way to over x the budget,
                    search.state.stop_reason = "budget"  # and the pass still filled the budget: that ended the run
                selection = engine.selection(ids)
            else:
                selection = engine.explode(picks, asg, limit=limit, seed=seeds["explode"])
            upd(1)
    else:
        ids = distinct_picks(picks)
        selection = engine.selection(ids[:limit] if limit is not None else ids)
    timings["explode"] = time.monotonic() - t0
    return Selected(plan, candidates, sizes, asg, target_c, budget_rows, size_est, search, picks, selection,
                    refining, cand_mode, kmeans_sample, rplan, known)


def _quantize_pool(engine: Engine, pool: Any, kp: int, settings: PhaseSettings, seeds: Seeds, work: Path | None,
                   prog: Progress) -> tuple[Assignment, np.ndarray, str, int]:
    """K-means, assignment and candidates of the pool (resumed from ``work/pool_quantization.npz``)."""
    qfile = work / "pool_quantization.npz" if work is not None else None
    if qfile is not None and qfile.exists():
        q = load_npz(qfile)
        labels = engine.restore_assignment(q, qfile.parent)
        if labels is not None:
            engine.kmeans_used["pool"] = str(q["kmeans"])
            asg = Assignment(q["centroids"], q["sizes"], q["medoids"], labels)
            return asg, q["candidates"], str(q["candidates_mode"]), int(q["sample_rows"])
    with prog(f"K-means ({kp} clusters)", None, "step") as upd:
        raw, kmeans_sample = engine.kmeans(pool, kp, seed=seeds["pool_kmeans"], niter=settings.kmeans_iter)
        upd(1)
    with prog("assigning pool rows", pool.n_rows, "row") as upd:
        asg = engine.assign_pool(pool, raw, work=work, progress=upd)
    norm_sample = engine.take(pool, engine.sample_ids(pool.n_rows, 1000, seeds["pool_kmeans"]))
    candidates, mode = select_candidates(settings.candidates, asg.centroids, asg.medoids, norm_sample,
                                         lambda ids: engine.take(pool, ids))
    if qfile is not None:
        save_npz(qfile, centroids=asg.centroids, sizes=asg.sizes, medoids=asg.medoids, candidates=candidates,
                 candidates_mode=np.str_(mode), sample_rows=np.int64(kmeans_sample),
                 kmeans=np.array(engine.kmeans_used.get("pool", "")), **engine.assignment_state(asg))
    return asg, candidates, mode, kmeans_sample


# ----------------------------------------------------------------------------------------------------------
# the file job around the phases


def run_phases(ctx: RunContext, engine: JobEngine) -> dict[str, Any]:
    """The whole file job on ``engine`` inside :func:`gioselect.job.run.run_job`; returns the manifest."""
    cfg, work, timings, prog = ctx.cfg, ctx.work, ctx.timings, ctx.prog
    seeds = Seeds(cfg.seed)
    t0 = time.monotonic()
    inp = engine.fingerprint(cfg, prog)  # by content (a single file: its SHA-256)
    ctx.open_work({"config": cfg.fingerprint_dict(), **inp.fingerprint, "format": CHECKPOINT_FORMAT})
    timings["hash"] = time.monotonic() - t0
    engine.open_inputs(inp, cfg, work, prog, timings)
    pool, target = inp.pool, inp.target
    assert target is not None  # open_inputs checked its dimension and rows (validation.check_target_fits)
    budget_rows = parse_budget(cfg.budget, pool.n_rows)
    exclusion = engine.exclusion(inp, cfg, prog)

    sel = select_phases(engine, pool, target, inp.state.get("target_source"), PhaseSettings.of(cfg), budget_rows,
                        seeds, work=work, prog=prog, timings=timings, on_pick=ctx.on_pick,
                        blocked=exclusion.mask if exclusion is not None else None,
                        repel=(exclusion.vectors, cfg.exclude_repel) if exclusion is not None else None)
    selection = sel.selection
    if exclusion is not None:  # a chosen cluster's excluded rows are left out when it is exploded
        selection = selection[~exclusion.mask[selection]]

    # -- write ---------------------------------------------------------------------------------------------
    t0 = time.monotonic()
    result = ctx.result_dir()
    selected_ids, outputs = engine.write_selection(selection, inp, result, prog)
    st, search = sel.search.state, sel.search
    quantized = sel.assignment is not None
    write_trace(result / "kl_trace.csv", search.initial_kl, st.history, sel.sizes, quantized)
    pick_cols = engine.write_picks(result, selected_ids, sel.picks, sel.assignment, search, inp,
                                   known=sel.known_nearest)
    if pick_cols is not None:
        outputs["picks"] = "picks.csv"
    kept = len(st.kl_trace)
    if sel.size_estimate is not None and sel.size_estimate.f1 is not None:
        # The F1 rule: its curve, and the objective's value at the kept prefix (the run went past it).
        write_f1_curve(result / "f1_curve.csv", sel.size_estimate.f1)
        outputs["f1_curve"] = "f1_curve.csv"
        first: dict[int, int] = {}
        for i, c in enumerate(st.selected):
            first.setdefault(int(c), i)
        kept = first[int(sel.picks[-1])] + 1 if sel.picks.shape[0] else 0
    final_kl = float(st.kl_trace[kept - 1]) if kept else float(search.initial_kl)
    timings["write"] = time.monotonic() - t0
    manifest = _manifest(ctx, engine, inp, sel, seeds, selected_ids, outputs, final_kl,
                         engine.exclusion_record(exclusion, cfg) if exclusion is not None else None)

    def report() -> None:
        from ..report import write_report

        t_idx, s_ids = report_sample_ids(target.shape[0], selected_ids, seeds["report"])
        p_ids = engine.sample_ids(pool.n_rows, REPORT_POOL_ROWS, seeds["report"])
        pool_sample, sel_sample = engine.report_rows(inp, p_ids, s_ids)
        write_report(result / "report.html", manifest=manifest, kl_trace=st.kl_trace, initial_kl=search.initial_kl,
                     target_sample=target[t_idx], pool_sample=pool_sample, selected_sample=sel_sample,
                     **engine.report_options(cfg, inp, result, outputs, pick_cols))

    return ctx.finish(result, manifest, report if cfg.report else None)


def _manifest(ctx: RunContext, engine: JobEngine, inp: Any, sel: Selected, seeds: Seeds, selected_ids: np.ndarray,
              outputs: dict[str, str], final_kl: float, exclusion: dict[str, Any] | None) -> dict[str, Any]:
    cfg = ctx.cfg
    st, search, plan, rp = sel.search.state, sel.search, sel.plan, sel.refine_plan
    quantized = sel.assignment is not None
    n_sel = int(selected_ids.shape[0])
    target = inp.target
    kp, kt = plan.pool_clusters, plan.target_clusters
    manifest: dict[str, Any] = {
        "gioselect_version": __version__,
        "command": ctx.command,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "engine": engine.name,
        "seed": cfg.seed,
        "sub_seeds": seeds.as_dict(),
        "parameters": {**asdict(cfg.params), "clusters": cfg.clusters, "target_clusters": kt,
                       "candidates": cfg.candidates, "refine": cfg.refine, "refine_over": cfg.refine_over,
                       "refine_whole": cfg.refine_whole,
                       "kmeans_iter": cfg.kmeans_iter, "budget": cfg.budget, "budget_rows": sel.budget_rows,
                       "budget_exact": cfg.budget_exact, "memory_budget": cfg.memory_budget,
                       "embedding_field": inp.fields.get("embedding_field"),
                       "target_embedding_field": inp.fields.get("target_embedding_field"),
                       "text_field": text_fields(cfg)["pool"], "target_text_field": text_fields(cfg)["target"],
                       "model": cfg.model},
        "inputs": inp.records,
        "counts": {"pool_rows": inp.pool.n_rows, "target_rows": int(target.shape[0]),
                   "target_points_used": int(sel.target_points.shape[0]), "candidates": int(sel.candidates.shape[0]),
                   "kmeans_sample_rows": sel.kmeans_sample, "selected_candidates": int(sel.picks.shape[0]),
                   "distinct_selected_candidates": int(np.unique(sel.picks).shape[0]),
                   "selected_rows": n_sel, "picks_evaluated": st.n_iter, "resets": st.num_resets},
        "clusters_decision": {"pool_clusters": kp, "target_clusters": kt, "rule": plan.rule},
        "refine_decision": (None if rp is None else {"refine": rp.refine, "refine_over": rp.over, "rule": rp.rule}),
        "quantization": ({"pool_clusters": int(sel.candidates.shape[0]), "pool_clusters_requested": kp,
                          "target_clusters": int(sel.target_points.shape[0]) if kt > 0 else None,
                          "rule": plan.rule, "candidates": sel.candidates_mode,
                          "rows": (f"row-level pass ({rp.refine}): the best rows of the chosen clusters"
                                   if sel.refining and rp is not None else "chosen clusters exploded whole"),
                          "weighting": ("none in the objective (each candidate is one point); sizes count for --budget "
                                        "and, times a row sample's mean posterior, for the F1 rule"),
                          **engine.quantization_record()}
                         if quantized else None),
        "stop_reason": ("auto-f1" if sel.size_estimate is not None and sel.size_estimate.f1 is not None
                        else "auto" if sel.size_estimate is not None and st.stop_reason == "budget"
                        else st.stop_reason),
        "size_estimate": None if sel.size_estimate is None else sel.size_estimate.as_dict(),
        "size_reason": (None if sel.size_estimate is None or sel.size_estimate.f1 is None
                        else sel.size_estimate.f1["reason"]),
        "initial_kl": finite_or_none(search.initial_kl),
        "final_kl": finite_or_none(final_kl),
        "scale_factor": finite_or_none(search.scale),
        "outputs": {**outputs, "kl_trace": "kl_trace.csv", "manifest": "manifest.json",
                    "report": "report.html" if cfg.report else None},
        "exclusion": exclusion,
        "versions": versions(),
    }
    manifest.update(engine.manifest_extra())
    manifest["warnings"] = run_warnings(cfg, inp.pool.n_rows, n_sel, sel.candidates, quantized, target,
                                        int(exclusion.get("excluded_rows", 0)) if exclusion else 0,
                                        manifest["stop_reason"])
    return manifest
