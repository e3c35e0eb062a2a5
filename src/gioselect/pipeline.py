"""The main job: pool and target files in, a selection, its run record and a report out.

Phases: read (hash the inputs; embed text columns, cached on disk; open and validate), quantise (K-means on a
seeded sample of the pool, streamed assignment of every row; K-means of the target when it is larger than its K),
select (GIO on the centroids), explode (chosen clusters to pool rows), write (ids, selected rows in the pool's
format, trace, manifest, report).

Never lose or corrupt data
--------------------------
Everything is built in ``<out>.partial/`` beside the output directory. Phase results and the GIO loop state are
checkpointed there atomically (temp file + rename), so a run killed at any point (even ``kill -9``) continues
with ``resume=True`` to exactly the selection an uninterrupted run gives. The outputs are written into
``<out>.partial/result/`` and that folder is renamed to ``<out>`` only when complete. An existing ``<out>`` is
replaced only with ``force=True``, only when it is a previous gioselect result (its manifest and the known output
files, nothing else) and only once the new result is complete; anything else at ``<out>`` is refused before any
work. A lock (``<out>.partial.lock``) keeps a second run off the same output. Inputs are only read. The rules and
the only code that removes or renames anything are in :mod:`gioselect.outdir`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .engines import LocalEngine
from .errors import InvalidInputError, InvalidParameterError
from .io import EmbeddingSource, atomic_path, detect_format, input_fingerprint, open_table
from .io.folder import is_folder_table
from .job.config import (
    Progress,
    SelectConfig,
    default_memory_budget,
    parse_budget,
    parse_memory,
    resolved_path,
    text_fields,
)
from .job.record import (
    REPORT_POOL_ROWS,
    finite_or_none,
    report_sample_ids,
    run_warnings,
    versions,
    write_json,
    write_trace,
)
from .job.run import RunContext, run_job
from .job.seeds import Seeds
from .job.select import PickHook, run_gio
from .job.workdir import CHECKPOINT_FORMAT, load_npz, save_npz
from .quantize import ClusterMembers, plan_clusters, quantize_array, quantized_rows, select_candidates
from .selector import auto_budget
from .validation import check_embeddings, check_input_path

# SelectConfig and the parsers live in gioselect.job.config; they are re-exported here, where they always were.
__all__ = ["PickHook", "Progress", "SelectConfig", "default_memory_budget", "parse_budget", "parse_memory",
           "run_select"]

logger = logging.getLogger(__name__)

MIN_ROWS_PER_CLUSTER = 20  # below this average, warn that quantisation blurs the pool


def _input_record(path: Path, src: EmbeddingSource, sha: str, embedded: dict[str, Any] | None) -> dict[str, Any]:
    rec = {"path": str(path), "format": detect_format(path), "rows": src.n_rows, "dim": src.dim,
           "embedding_field": None if embedded else src.embedding_field, "bytes": path.stat().st_size,
           "sha256": sha}
    if path.is_dir():  # a folder (gioselect.io.folder): its data files, with sizes and hashes, and their total
        fp = input_fingerprint(path)
        rec.update(bytes=fp["bytes"], kind=fp["kind"], files=fp["files"])
    if embedded:
        rec["text"] = embedded
    return rec


def run_select(cfg: SelectConfig, *, resume: bool = False, force: bool = False, progress: Progress | None = None,
               command: list[str] | None = None, on_pick: PickHook | None = None) -> dict[str, Any]:
    """Run the whole selection job; returns the manifest (also written to ``<out>/manifest.json``).

    ``on_pick`` is called after every evaluated GIO pick with its :class:`gioselect.optimize.PickEvent`, before
    that pick's checkpoint is written (a hook that sleeps slows the run down; the resume tests use that).

    Raises
    ------
    OutputExistsError
        ``out`` exists and neither ``force`` nor a completed ``resume`` applies.
    ResumeError
        ``resume`` with a checkpoint made from other inputs or parameters.
    InvalidInputError, InvalidParameterError
        Bad files or parameters (nothing is left behind then).
    """
    cfg = cfg.validate()
    for p, what in ((cfg.pool, "pool"), (cfg.target, "target")):
        check_input_path(p, what, allow_dir=is_folder_table(p))
        detect_format(p)
    return run_job(cfg, _phases, resume=resume, force=force, progress=progress, command=command, on_pick=on_pick)


def _phases(ctx: RunContext) -> dict[str, Any]:
    """Hash the inputs (the resume fingerprint), then run the phases."""
    cfg = ctx.cfg
    t0 = time.monotonic()
    hashed = {"pool": cfg.pool, "target": cfg.target, **({"exclude": cfg.exclude} if cfg.exclude else {})}
    fps: dict[str, dict[str, Any]] = {}
    with ctx.prog("hashing inputs", len(hashed), "file") as upd:
        for which, path in hashed.items():  # by content: size and SHA-256 (a folder: of its data files)
            fp = input_fingerprint(path, which)
            fps[which] = {"path": resolved_path(path), "bytes": fp["bytes"], "sha256": fp["sha256"]}
            upd(1)
    if "exclude" in fps:
        del fps["exclude"]["path"]  # a moved or renamed exclusion file with the same content is the same run
    pool_sha, target_sha = fps["pool"]["sha256"], fps["target"]["sha256"]
    ctx.open_work({"config": cfg.fingerprint_dict(), "inputs": fps, "format": CHECKPOINT_FORMAT})
    ctx.timings["hash"] = time.monotonic() - t0
    return _run_phases(ctx, pool_sha, target_sha)


def _embed_file(cfg: SelectConfig, which: str, field_: str, work: Path, prog: Progress) -> tuple[Path, dict[str, Any]]:
    """Embed a text column into ``work/<which>_embeddings.npy`` (kept for resume); returns it and a record."""
    from .embed import EmbeddingCache, TextEmbedder, embed_texts
    from .io import read_texts

    dest = work / f"{which}_embeddings.npy"
    info_path = work / f"{which}_embeddings.json"
    if dest.exists() and info_path.exists():
        return dest, dict(json.loads(info_path.read_text()))
    src = Path(cfg.pool if which == "pool" else cfg.target)
    texts = read_texts(src, field_, name=which)
    cache = EmbeddingCache(cfg.cache_dir) if cfg.embed_cache else False
    with prog(f"embedding {which} text", len(texts), "text") as upd:
        emb, hit = embed_texts(texts, cfg.model, cache=cache, batch_size=cfg.embed_batch_size,
                               threads=cfg.threads, progress=upd, backend=cfg.embed_backend)
    with atomic_path(dest) as tmp:
        np.save(tmp, np.ascontiguousarray(emb, dtype=np.float32))
    info = {"text_field": field_, "model": TextEmbedder(cfg.model).model_id, "rows": len(texts),
            "dim": int(emb.shape[1]), "cache_hit": bool(hit)}
    logger.info("%s: %d texts embedded with %s (%s)", which, len(texts), info["model"],
                "from the cache" if hit else "computed")
    write_json(info_path, info)
    return dest, info


def _run_phases(ctx: RunContext, pool_sha: str, target_sha: str) -> dict[str, Any]:
    cfg, work, timings, prog, on_pick = ctx.cfg, ctx.work, ctx.timings, ctx.prog, ctx.on_pick
    engine = LocalEngine(cfg.memory_budget, cfg.threads)
    seeds = Seeds(cfg.seed)

    # -- read (and embed text) -----------------------------------------------------------------------------
    t0 = time.monotonic()
    embedded: dict[str, dict[str, Any]] = {}
    paths: dict[str, Path] = {"pool": Path(cfg.pool), "target": Path(cfg.target)}
    for which, tf in text_fields(cfg).items():
        if tf is not None:
            paths[which], embedded[which] = _embed_file(cfg, which, tf, work, prog)
    if embedded:
        timings["embed"] = time.monotonic() - t0
        t0 = time.monotonic()
    pool = engine.open(paths["pool"], None if "pool" in embedded else cfg.embedding_field, "pool")
    pool_rows = open_table(cfg.pool, name="pool") if "pool" in embedded else pool
    target_src = engine.open(paths["target"], None if "target" in embedded else
                             (cfg.target_embedding_field or cfg.embedding_field), "target")
    if target_src.dim != pool.dim:
        raise InvalidInputError(
            f"target: {cfg.target} has dimension {target_src.dim} but the pool {cfg.pool} has {pool.dim}"
        )
    budget_rows = parse_budget(cfg.budget, pool.n_rows)
    k = cfg.params.k
    if target_src.n_rows <= k:
        raise InvalidInputError(f"target: {cfg.target} has {target_src.n_rows} rows; more than k={k} are needed")
    with prog("reading target", target_src.n_rows, "row") as upd:
        target = check_embeddings(target_src.read_all(), f"target {cfg.target}")
        upd(target.shape[0])
    timings["read"] = time.monotonic() - t0
    exclusion = None
    if cfg.exclude is not None:  # -- the exclusion set (gioselect.exclude): rows that can never be selected
        from .exclude import exclusion_for_run

        t0 = time.monotonic()
        with prog("matching the exclusion set", None, "file") as upd:
            exclusion = exclusion_for_run(pool, cfg.exclude, embedding_field=cfg.embedding_field,
                                          text_field=cfg.text_field, model=cfg.model, cache_dir=cfg.cache_dir,
                                          embed_cache=cfg.embed_cache, threshold=cfg.exclude_threshold,
                                          block_rows=engine.block_rows(pool.dim))
            upd(1)
        timings["exclude"] = time.monotonic() - t0

    # -- quantise the pool ---------------------------------------------------------------------------------
    t0 = time.monotonic()
    plan = plan_clusters(cfg.clusters, cfg.target_clusters, pool.n_rows, int(target.shape[0]))
    kp = plan.pool_clusters
    quantized = kp > 0
    if quantized and pool.n_rows < MIN_ROWS_PER_CLUSTER * kp:
        logger.warning(
            "quantising %d pool rows into %d clusters leaves about %.1f rows per cluster, too few for K-means to "
            "mean much; consider --clusters 0 (no quantisation) or a smaller K", pool.n_rows, kp,
            pool.n_rows / kp)
    qfile = work / "pool_quantization.npz"
    kmeans_sample = 0
    cand_mode = None
    if quantized:
        if qfile.exists():
            q = load_npz(qfile)
            centroids, sizes, labels = q["centroids"], q["sizes"], q["labels"]
            candidates, cand_mode = q["candidates"], str(q["candidates_mode"])
            kmeans_sample = int(q["sample_rows"])
        else:
            with prog(f"K-means ({kp} clusters)", None, "step") as upd:
                raw_centroids, kmeans_sample = engine.kmeans(pool, kp, seed=seeds["pool_kmeans"],
                                                             niter=cfg.kmeans_iter)
                upd(1)
            with prog("assigning pool rows", pool.n_rows, "row") as upd:
                centroids, sizes, labels, medoids = engine.assign(pool, raw_centroids, progress=upd)
            norm_sample = engine.take(pool, engine.sample_ids(pool.n_rows, 1000, seeds["pool_kmeans"]))
            candidates, cand_mode = select_candidates(cfg.candidates, centroids, medoids, norm_sample,
                                                      lambda ids: engine.take(pool, ids))
            save_npz(qfile, centroids=centroids, sizes=sizes, labels=labels, candidates=candidates,
                      candidates_mode=np.str_(cand_mode), sample_rows=np.int64(kmeans_sample))
    else:
        candidates = _unquantized_candidates(pool, engine, cfg, prog)
        sizes = np.ones(pool.n_rows, dtype=np.int64)
        labels = None
    timings["quantize_pool"] = time.monotonic() - t0

    t0 = time.monotonic()
    kt = plan.target_clusters
    target_quantized = kt > 0
    if target_quantized:
        tfile = work / "target_quantization.npz"
        if tfile.exists():
            target_c = load_npz(tfile)["centroids"]
        else:
            with prog(f"K-means of the target ({kt} clusters)", None, "step") as upd:
                target_c = quantize_array(target, kt, seed=seeds["target_kmeans"], niter=cfg.kmeans_iter).centroids
                upd(1)
            save_npz(tfile, centroids=target_c)
        if target_c.shape[0] <= k:
            raise InvalidParameterError(
                f"target_clusters: the target quantises to {target_c.shape[0]} clusters; more than k={k} needed"
            )
    else:
        target_c = target
    timings["quantize_target"] = time.monotonic() - t0

    # -- size ----------------------------------------------------------------------------------------------
    size_est = None
    if budget_rows is None and cfg.params.stop_criterion == "auto":
        # The automatic size: how many pool rows look like the target (one streamed pass over the pool rows,
        # never the centroids); the run then fills exactly that many rows.
        t0 = time.monotonic()
        with prog("estimating the target-like share of the pool", None, "pass") as upd:
            _, size_est = auto_budget(pool, target, cfg.params, None, seeds["gio"])
            upd(1)
        assert size_est is not None
        budget_rows = size_est.rows
        timings["size_estimate"] = time.monotonic() - t0
    # The row-level pass ranks the rows of clusters worth refine_over times the budget, then keeps the budget.
    refining = quantized and cfg.refine != "none" and budget_rows is not None
    gio_budget = budget_rows  # GIO fills any budget exactly by cluster sizes (gioselect.job.select.run_gio)
    if refining and budget_rows is not None:
        gio_budget = math.ceil(cfg.refine_over * budget_rows)

    # -- select --------------------------------------------------------------------------------------------
    t0 = time.monotonic()
    search = run_gio(cfg.params, candidates, target_c, sizes, gio_budget, seeds["gio"], work, prog,
                     blocked=exclusion.mask if exclusion is not None and labels is None else None, on_pick=on_pick,
                     repel=(exclusion.vectors, cfg.exclude_repel) if exclusion is not None else None,
                     checkpoint_every=cfg.checkpoint_every, checkpoint_seconds=cfg.checkpoint_seconds)
    timings["select"] = time.monotonic() - t0
    st = search.state
    picks = np.asarray(st.selected, dtype=np.int64)

    # -- explode -------------------------------------------------------------------------------------------
    t0 = time.monotonic()
    # A budget (given, or the automatic size) is exact: the last cluster is cut to fill it.
    limit = budget_rows
    if labels is not None:
        members = ClusterMembers(labels, candidates.shape[0])
        with prog("choosing rows of the chosen clusters" if refining else "exploding clusters", None, "step") as upd:
            selected_ids = quantized_rows(picks, members, lambda ids: engine.take(pool, ids), target, candidates,
                                          budget_rows, how=cfg.refine, k=k, over=cfg.refine_over, limit=limit,
                                          seed=seeds["explode"])
            upd(1)
    else:
        _, first = np.unique(picks, return_index=True)
        selected_ids = picks[np.sort(first)]
        if limit is not None:
            selected_ids = selected_ids[:limit]
    if exclusion is not None:  # a chosen cluster's excluded rows are left out when it is exploded
        selected_ids = selected_ids[~exclusion.mask[selected_ids]]
    timings["explode"] = time.monotonic() - t0

    # -- write ---------------------------------------------------------------------------------------------
    t0 = time.monotonic()
    result = ctx.result_dir()
    np.save(result / "selected_ids.npy", selected_ids)
    sel_name = f"selected_rows{pool_rows.output_suffix}"  # a folder pool: parquet
    with prog("writing selected rows", None, "file") as upd:
        engine.write_selected(pool_rows, selected_ids, np.arange(selected_ids.shape[0], dtype=np.int64),
                              result / sel_name)
        upd(1)
    row_ids_name = None
    if pool_rows.format == "npy":  # a .npy has no columns for gio_row_id: the ids of its rows go beside it
        row_ids_name = "selected_row_ids.npy"
        np.save(result / row_ids_name, np.unique(selected_ids).astype(np.int64))
    write_trace(result / "kl_trace.csv", search.initial_kl, st.history, sizes, quantized)
    from .report import write_picks  # per-row gain and nearest target ids (gioselect.report)

    pick_cols = write_picks(result / "picks.csv", selected_ids, picks, labels, search.initial_kl, st.kl_trace,
                            lambda ids: engine.take(pool, ids), target)

    final_kl = float(st.kl_trace[-1]) if st.kl_trace else float(search.initial_kl)
    timings["write"] = time.monotonic() - t0
    manifest: dict[str, Any] = {
        "gioselect_version": __version__,
        "command": ctx.command,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "engine": engine.name,
        "seed": cfg.seed,
        "sub_seeds": seeds.as_dict(),
        "parameters": {**asdict(cfg.params), "clusters": cfg.clusters, "target_clusters": kt,
                       "candidates": cfg.candidates, "refine": cfg.refine, "refine_over": cfg.refine_over,
                       "kmeans_iter": cfg.kmeans_iter, "budget": cfg.budget, "budget_rows": budget_rows,
                       "budget_exact": cfg.budget_exact, "memory_budget": cfg.memory_budget,
                       "embedding_field": pool.embedding_field,
                       "target_embedding_field": target_src.embedding_field,
                       "text_field": text_fields(cfg)["pool"], "target_text_field": text_fields(cfg)["target"],
                       "model": cfg.model},
        "inputs": {"pool": _input_record(Path(cfg.pool), pool, pool_sha, embedded.get("pool")),
                   "target": _input_record(Path(cfg.target), target_src, target_sha, embedded.get("target"))},
        "counts": {"pool_rows": pool.n_rows, "target_rows": int(target.shape[0]),
                   "target_points_used": int(target_c.shape[0]), "candidates": int(candidates.shape[0]),
                   "kmeans_sample_rows": kmeans_sample, "selected_candidates": int(picks.shape[0]),
                   "distinct_selected_candidates": int(np.unique(picks).shape[0]),
                   "selected_rows": int(selected_ids.shape[0]), "picks_evaluated": st.n_iter,
                   "resets": st.num_resets},
        "clusters_decision": {"pool_clusters": kp, "target_clusters": kt, "rule": plan.rule},
        "quantization": ({"pool_clusters": int(candidates.shape[0]), "pool_clusters_requested": kp,
                          "target_clusters": int(target_c.shape[0]) if target_quantized else None,
                          "rule": plan.rule, "candidates": cand_mode,
                          "rows": (f"row-level pass ({cfg.refine}): the best rows of the chosen clusters"
                                   if refining else "chosen clusters exploded whole"),
                          "weighting": "none (each candidate is one point; sizes count only for --budget)"}
                         if quantized else None),
        "stop_reason": "auto" if size_est is not None and st.stop_reason == "budget" else st.stop_reason,
        "size_estimate": None if size_est is None else size_est.as_dict(),
        "initial_kl": finite_or_none(search.initial_kl),
        "final_kl": finite_or_none(final_kl),
        "scale_factor": finite_or_none(search.scale),
        "outputs": {"selected_ids": "selected_ids.npy", "selected_rows": sel_name, "kl_trace": "kl_trace.csv",
                    **({"selected_row_ids": row_ids_name} if row_ids_name else {}), "picks": "picks.csv",
                    "manifest": "manifest.json",
                    "report": "report.html" if cfg.report else None},
        "exclusion": {**exclusion.record(str(cfg.exclude)), "repel": cfg.exclude_repel,
                      **input_fingerprint(str(cfg.exclude), "exclude")}
        if exclusion is not None else None,
        "versions": versions(),
    }
    manifest["warnings"] = run_warnings(cfg, pool.n_rows, int(selected_ids.shape[0]), candidates, quantized,
                                            target)

    def report() -> None:
        _write_report(result, manifest, engine, pool, target, selected_ids, st.kl_trace, search.initial_kl,
                      seeds["report"], picks=pick_cols, pool_path=Path(cfg.pool), selected_path=result / sel_name,
                      report_fields=cfg.report_fields, text_field=cfg.text_field)

    return ctx.finish(result, manifest, report if cfg.report else None)


def _unquantized_candidates(pool: EmbeddingSource, engine: LocalEngine, cfg: SelectConfig,
                            prog: Progress) -> np.ndarray:
    """The pool rows as GIO candidates: a float32 .npy stays memory-mapped (checked in one streamed pass);
    other formats are read into memory, which must fit the memory budget."""
    need = pool.n_rows * pool.dim * 4
    with prog("reading pool", pool.n_rows, "row") as upd:
        if pool.format == "npy":
            mm = np.load(pool.path, mmap_mode="r", allow_pickle=False)
            if mm.dtype == np.float32:
                for _, block in pool.iter_blocks(engine.block_rows(pool.dim)):  # validates every row
                    upd(block.shape[0])
                return mm
        if need > cfg.memory_budget:
            raise InvalidParameterError(
                f"clusters=0 holds the whole pool in memory ({need / 2**30:.2f} GiB as float32), more than the "
                f"memory budget ({cfg.memory_budget / 2**30:.2f} GiB): quantise (--clusters K), raise "
                f"--memory-budget, or convert the pool to a float32 .npy (memory-mapped)"
            )
        out = check_embeddings(pool.read_all(), f"pool {cfg.pool}")
        upd(pool.n_rows)
        return out


def _write_report(result: Path, manifest: dict[str, Any], engine: LocalEngine, pool: EmbeddingSource,
                  target: np.ndarray, selected_ids: np.ndarray, kl_trace: list[float], initial_kl: float,
                  seed: int, **report_opts: Any) -> None:
    from .report import write_report

    t_idx, s_ids = report_sample_ids(target.shape[0], selected_ids, seed)
    p_ids = engine.sample_ids(pool.n_rows, REPORT_POOL_ROWS, seed)
    write_report(result / "report.html", manifest=manifest, kl_trace=kl_trace, initial_kl=initial_kl,
                 target_sample=target[t_idx], pool_sample=engine.take(pool, p_ids),
                 selected_sample=engine.take(pool, s_ids) if s_ids.shape[0] else None,
                 projection="tsne" if report_opts.get("text_field") else "pca", **report_opts)
