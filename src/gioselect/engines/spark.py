"""The Spark engine: pool-sized work on a Spark cluster, the GIO core on the driver.

What runs where
---------------
Executors read the pool (parquet, csv/tsv in the reference's layout or with a header, jsonl; a single file or
a directory of part files), validate and convert the embedding column (the same checks and messages as
:mod:`gioselect.io`), embed a text column when asked (``mapInPandas`` with
:class:`gioselect.embed.TextEmbedder`, the model loaded once per Python worker process), train K-means on a
seeded sample of the pool, assign every pool row to its nearest centroid (faiss, as the in-process engine),
and join the chosen clusters back to the pool rows to write the selection. The driver holds only
centroid-sized data: the centroids and cluster sizes (K x d), the target points used (at most
``target_clusters`` rows, or the whole target when it is not quantised), the GIO state, and small samples for
the report. The pool is never collected to the driver.

Row ids
-------
``gio_row_id`` is the 0-based row in the input's order: files in path order, rows in file order (blank
lines of csv/jsonl do not count, as in :mod:`gioselect.io`). ``monotonically_increasing_id`` alone is not
contiguous, so one cheap counting pass groups rows by the file split that holds them (``_metadata.file_path``,
``_metadata.file_block_start``) and records each split's row count and smallest
``monotonically_increasing_id``; the driver turns these (one row per split) into offsets, and a broadcast join
gives every row ``offset + monotonically_increasing_id - smallest``. Like ``RDD.zipWithIndex`` this relies on
a file scan producing the same partitions on every pass, which Spark does for unchanged files and settings.
DataFrames given to :func:`gioselect.spark.select` are numbered in partition order the same way (by the
partition index in the upper bits of ``monotonically_increasing_id``), unless they already have a
``gio_row_id`` column.

K-means
-------
K-means trains on a seeded sample of at most ``K * 256`` rows, chosen by
:func:`gioselect.quantize.training_sample_indices` exactly as the in-process engine does (its size depends on
K, never on the pool). Then every pool row is assigned to its nearest centroid with faiss in one pass on the
executors, clusters left empty are dropped (as :func:`gioselect.quantize.drop_empty`), and the centroids are
the GIO candidates. Training:

``kmeans="lloyd"``: Lloyd iterations distributed over the sample, cached on the executors: each iteration
broadcasts the K x d centroids, every partition assigns its rows with faiss and sums them per cluster, and a
tree reduction brings the (K x d) sums to the driver. Initialisation: K distinct sample rows drawn with the
seed (faiss's own initialisation); a cluster left empty keeps its centroid. This is MLlib's data flow with
faiss's BLAS-based assignment inside each task (MLlib's per-point loops were 8x slower on one machine).
``kmeans="mllib"``: :class:`pyspark.ml.clustering.KMeans` (k-means||, ``initSteps``, ``tol``, seeded) on the
same sample. ``kmeans="driver"``: the sample is collected and trained with faiss on the driver, which is
exactly the in-process K-means (same rows, same seed, same centroids). ``kmeans="auto"`` (default): ``driver``
when the sample is at most 256 MiB as float32 (each distributed iteration costs a Spark job, about a second
even on tiny data), ``lloyd`` otherwise.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..errors import (
    InvalidInputError,
    InvalidParameterError,
)
from ..io.vectors import (
    fmt_names,
)
from ..quantize import (
    MAX_POINTS_PER_CENTROID,
    ClusterMembers,
    explode,
    kmeans_centroids,
    quantize_array,
    training_sample_indices,
)
from ..validation import check_embeddings
from .base import Assignment, RowSampler
from .spark_base import (
    ASSIGNMENT_NAME,
    CLUSTER,
    DIST,
    DRIVER_KMEANS_BYTES,
    FEAT,
    KMEANS_METHODS,
    RANK,
    ROW,
    SPARK_INSTALL_HINT,
    SparkSource,
    TextEmbedBatches,
    batch_features,
    col_ref,
    collect_table,
    errors_from_spark,
    faiss_threads,
    is_local_path,
    local_path,
    spark_path,
    spark_session,
    task_threads,
)
from .spark_open import SparkReader

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from .base import Engine

__all__ = [
    "CLUSTER", "DIST", "DRIVER_KMEANS_BYTES", "KMEANS_METHODS", "RANK", "ROW", "SPARK_INSTALL_HINT",
    "SparkEngine", "SparkMembers", "SparkSource", "TextEmbedBatches", "errors_from_spark", "explode_plan",
    "is_local_path", "local_path", "spark_path", "spark_session"
]

logger = logging.getLogger(__name__)


@dataclass
class _LloydStep:
    """One Lloyd iteration over a partition: per-cluster sums and counts of its rows, pickled into one row."""

    centroids: np.ndarray

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import faiss

        faiss_threads(task_threads())
        k, d = self.centroids.shape
        index = faiss.IndexFlatL2(d)
        index.add(np.ascontiguousarray(self.centroids, dtype=np.float32))
        sums = np.zeros((k, d), dtype=np.float64)
        counts = np.zeros(k, dtype=np.int64)
        inertia = 0.0
        for batch in batches:
            if batch.num_rows == 0:
                continue
            x = batch_features(batch, 1, d)
            dist, idx = index.search(x, 1)
            lab = idx[:, 0]
            order = np.argsort(lab, kind="stable")
            uniq, starts = np.unique(lab[order], return_index=True)
            sums[uniq] += np.add.reduceat(x[order].astype(np.float64), starts, axis=0)
            counts += np.bincount(lab, minlength=k)
            inertia += float(dist.sum(dtype=np.float64))
        yield pa.RecordBatch.from_arrays(
            [pa.array([pickle.dumps((sums, counts, inertia), protocol=4)], pa.binary())], names=["stats"]
        )


def _add_stats(
    a: tuple[np.ndarray, np.ndarray, float], b: tuple[np.ndarray, np.ndarray, float]
) -> tuple[np.ndarray, np.ndarray, float]:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


class SparkEngine(SparkReader):
    """Pool-sized work on Spark executors; the same operations as :class:`gioselect.engines.LocalEngine`.

    Parameters
    ----------
    spark : SparkSession
        The session to run in (the engine never creates or stops one).
    kmeans : {"auto", "driver", "lloyd", "mllib"}, default "auto"
        K-means implementation (see the module docstring).
    init_mode : {"k-means||", "random"}, default "k-means||"
        MLlib's initialisation (``kmeans="mllib"`` only).
    init_steps : int, default 2
        MLlib's k-means|| steps.
    tol : float, default 1e-4
        MLlib's convergence tolerance.
    broadcast_rows : int, default 4_000_000
        Selections up to this many rows are broadcast to the executors when the selected rows are written
        (16 bytes a row); larger ones are joined with a shuffle.
    driver_kmeans_bytes : int, default 256 MiB
        Largest K-means sample (float32 bytes) that ``kmeans="auto"`` trains on the driver.

    Attributes
    ----------
    kmeans_used : dict
        The K-means implementation each input was trained with (``{"pool": "driver", ...}``).
    """

    name = "spark"

    def __init__(
        self,
        spark: SparkSession,
        *,
        kmeans: str = "auto",
        init_mode: str = "k-means||",
        init_steps: int = 2,
        tol: float = 1e-4,
        broadcast_rows: int = 4_000_000,
        driver_kmeans_bytes: int = DRIVER_KMEANS_BYTES,
    ) -> None:
        self.spark = spark
        self.kmeans_method = kmeans
        self.init_mode = init_mode
        self.init_steps = init_steps
        self.tol = tol
        self.broadcast_rows = broadcast_rows
        self.driver_kmeans_bytes = driver_kmeans_bytes
        self.kmeans_used: dict[str, str] = {}
        self.cached: list[Any] = []  # frames persisted for an in-memory run (gioselect.spark.select unpersists)

    def check_params(self) -> None:
        if self.kmeans_method not in KMEANS_METHODS:
            raise InvalidParameterError(f"kmeans must be one of {KMEANS_METHODS}, got {self.kmeans_method!r}")
        if self.init_mode not in ("k-means||", "random"):
            raise InvalidParameterError(f"init_mode must be 'k-means||' or 'random', got {self.init_mode!r}")

    # -- K-means -------------------------------------------------------------------------------------------

    def kmeans(self, src: SparkSource, k: int, *, seed: int, niter: int = 20) -> tuple[np.ndarray, int]:
        """Train K-means on a seeded sample of at most ``k * 256`` rows; returns (centroids, sample size).

        The sample is cached on the executors while K-means runs; the driver holds the K x d centroids.
        """
        from pyspark import StorageLevel

        idx = training_sample_indices(
            src.n_rows, k, seed=seed, max_points_per_centroid=MAX_POINTS_PER_CENTROID
        )
        method = self.kmeans_method
        if method == "auto":
            method = "driver" if idx.shape[0] * src.dim * 4 <= self.driver_kmeans_bytes else "lloyd"
        self.kmeans_used[src.name] = method
        if method == "driver":
            return kmeans_centroids(self.take(src, idx), k, seed=seed, niter=niter), int(idx.shape[0])
        sample = self.vectors(src, idx if idx.shape[0] < src.n_rows else None)
        parts = max(1, min(self.spark.sparkContext.defaultParallelism, -(-idx.shape[0] // 4096)))
        sample = sample.repartition(parts)
        if method == "mllib":
            from pyspark.ml.clustering import KMeans
            from pyspark.ml.functions import array_to_vector
            from pyspark.sql import functions as F

            train = sample.select(array_to_vector(F.col(FEAT)).alias("features")).persist(
                StorageLevel.MEMORY_AND_DISK
            )
            try:
                with errors_from_spark(src.where):
                    train.count()
                    model = KMeans(
                        k=int(k),
                        seed=int(seed),
                        maxIter=int(niter),
                        initMode=self.init_mode,
                        initSteps=int(self.init_steps),
                        tol=float(self.tol),
                        featuresCol="features",
                    ).fit(train)
                cents = np.asarray(model.clusterCenters(), dtype=np.float32)
            finally:
                train.unpersist()
            return np.ascontiguousarray(cents), int(idx.shape[0])
        sample = sample.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            with errors_from_spark(src.where):
                sample.count()
                rng = np.random.default_rng(seed)
                init_ids = idx[rng.choice(idx.shape[0], size=k, replace=False)]
                table = collect_table(sample.join(self._ids_frame(init_ids), ROW, "left_semi"))
                got = np.asarray(table.column(ROW).to_numpy(), dtype=np.int64)
                x = np.asarray(
                    table.column(FEAT).combine_chunks().flatten().to_numpy(zero_copy_only=False),
                    dtype=np.float32,
                ).reshape(len(got), src.dim)
                order = np.argsort(got)
                cents = np.ascontiguousarray(x[order][np.searchsorted(got[order], init_ids)])
                for it in range(int(niter)):
                    stats = (
                        sample.mapInArrow(_LloydStep(cents), "stats binary")
                        .rdd.map(lambda r: pickle.loads(r[0]))
                        .treeReduce(_add_stats, depth=2)
                    )
                    sums, counts, inertia = stats
                    full = counts > 0
                    new = cents.copy()
                    new[full] = (sums[full] / counts[full, None]).astype(np.float32)
                    cents = new
                    logger.debug(
                        "K-means iteration %d: objective %.6g, %d empty clusters",
                        it + 1,
                        inertia,
                        int((~full).sum()),
                    )
        finally:
            sample.unpersist()
        return cents, int(idx.shape[0])

    def assign(
        self, src: SparkSource, centroids: np.ndarray, *, path: str | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, DataFrame]:
        """Label every row with its nearest centroid (faiss, on the executors); drop empty clusters.

        Returns (centroids of non-empty clusters, their sizes, their indices into ``centroids``, and the
        assignment DataFrame ``(row id, cluster index into the given centroids)``). With ``path`` the
        assignment is written there as parquet (a checkpoint, 12 bytes a row) and read back; otherwise it is
        cached.
        """
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        cents = np.ascontiguousarray(centroids, dtype=np.float32)
        labels = src.raw.mapInArrow(src.converter(cents), f"`{ROW}` long, `{CLUSTER}` int, `{DIST}` float")
        with errors_from_spark(src.where):
            if path is not None:
                labels.write.mode("overwrite").parquet(path)
                labels = self.spark.read.parquet(path)
            else:
                labels = labels.persist(StorageLevel.MEMORY_AND_DISK)
            counts = labels.groupBy(CLUSTER).agg(F.count(F.lit(1)).alias("n")).collect()
        sizes = np.zeros(cents.shape[0], dtype=np.int64)
        for r in counts:
            sizes[int(r[CLUSTER])] = int(r["n"])
        if int(sizes.sum()) != src.n_rows:
            raise InvalidInputError(
                f"{src.where}: assigned {int(sizes.sum())} rows but counted {src.n_rows} "
                "(did the input change?)"
            )
        keep = np.flatnonzero(sizes > 0)
        if keep.shape[0] < cents.shape[0]:
            logger.info("dropping %d empty cluster(s) of %d", cents.shape[0] - keep.shape[0], cents.shape[0])
        return cents[keep], sizes[keep], keep.astype(np.int64), labels

    def medoids(self, labels: DataFrame, cluster_ids: np.ndarray) -> np.ndarray:
        """Each kept cluster's member row nearest its centroid (ties: the lowest row), as
        :func:`gioselect.quantize.medoid_ids`: one aggregation of the assignment, K rows to the driver."""
        from pyspark.sql import functions as F

        best = labels.groupBy(CLUSTER).agg(F.min(F.struct(col_ref(DIST), col_ref(ROW))).alias("m"))
        table = collect_table(best.select(col_ref(CLUSTER), F.col(f"m.{ROW}").alias(ROW)))
        got = np.asarray(table.column(CLUSTER).to_numpy(), dtype=np.int64)
        rows = np.asarray(table.column(ROW).to_numpy(), dtype=np.int64)
        by_cluster = np.full(int(cluster_ids.max()) + 1 if cluster_ids.size else 0, -1, dtype=np.int64)
        by_cluster[got] = rows
        return by_cluster[cluster_ids]

    # -- the phases' operations (gioselect.engines.base.Engine) ---------------------------------------------

    def assign_pool(self, src: SparkSource, centroids: np.ndarray, *, work: Path | None = None,
                    progress: Callable[[int], None] | None = None) -> Assignment:
        """:meth:`assign` with the medoids, the labels kept in ``work/pool_assignment.parquet`` (else cached)."""
        path = str(work / ASSIGNMENT_NAME) if work is not None else None
        cents, sizes, cluster_ids, labels = self.assign(src, centroids, path=path)
        if path is None:
            self.cached.append(labels)
        with errors_from_spark(src.where):
            medoids = self.medoids(labels, cluster_ids)
        if progress is not None:
            progress(src.n_rows)
        return Assignment(cents, sizes, medoids, (labels, cluster_ids))

    def assignment_state(self, assignment: Assignment) -> dict[str, np.ndarray]:
        return {"cluster_ids": np.asarray(assignment.labels[1], dtype=np.int64)}

    def restore_assignment(self, saved: dict[str, np.ndarray], work: Path) -> Any | None:
        path = work / ASSIGNMENT_NAME
        if "cluster_ids" not in saved or not (path / "_SUCCESS").exists():
            return None
        return self.load_assignment(str(path)), saved["cluster_ids"]

    def pool_vectors(self, src: SparkSource, memory_budget: int, progress: Callable[[int], None]) -> np.ndarray:
        """Every pool row on the driver: an unquantised pool (``clusters=0``, or ``"auto"`` up to
        ``AUTO_MAX_DIRECT_ROWS`` rows) is GIO's candidates, held in memory. Refused (before anything is read)
        when rows x dim x 4 bytes exceed ``memory_budget``: the driver is one machine."""
        need = src.n_rows * src.dim * 4
        if need > memory_budget:
            raise InvalidParameterError(
                f"clusters=0 on the Spark engine collects the whole pool to the driver ({src.n_rows} rows x "
                f"{src.dim} dims = {need / 2**30:.2f} GiB as float32), more than the memory budget "
                f"({memory_budget / 2**30:.2f} GiB): quantise (--clusters auto or K > 0) or raise --memory-budget"
            )
        out = check_embeddings(self.read_all(src), src.where)
        progress(src.n_rows)
        return out

    def quantize_target(self, target: np.ndarray, src: SparkSource | None, k: int, *, seed: int,
                        niter: int) -> np.ndarray:
        """The target's centroids: on the driver exactly as in-process when the target is within the driver
        K-means limit (``kmeans="auto"``) or was read from a ``.npy``, else on the executors."""
        method = self.kmeans_method
        small = target.shape[0] * target.shape[1] * 4 <= self.driver_kmeans_bytes
        if src is None or method == "driver" or (method == "auto" and small):
            self.kmeans_used["target"] = "driver"
            return quantize_array(target, k, seed=seed, niter=niter).centroids
        raw, _ = self.kmeans(src, k, seed=seed, niter=niter)
        cents, _, _, labels = self.assign(src, raw)
        labels.unpersist()
        return cents

    def size_pool(self, src: SparkSource) -> RowSampler:
        """The pool for the size estimate: its reservoir sample drawn by id, only those rows fetched."""
        return RowSampler(src.n_rows, src.dim, lambda ids: self.take(src, ids))

    def row_clusters(self, assignment: Assignment, ids: np.ndarray) -> np.ndarray:
        """The cluster (index into ``assignment.centroids``) of each pool row ``ids``, in the given order: one
        join of the assignment with the ids; 12 bytes a row reach the driver."""
        from pyspark.sql import functions as F

        frame, cluster_ids = assignment.labels
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return np.empty(0, dtype=np.int64)
        uniq = np.unique(ids)
        want = self.spark.createDataFrame(pa.table({ROW: pa.array(uniq, pa.int64())}))
        want = F.broadcast(want) if uniq.shape[0] <= self.broadcast_rows else want
        with errors_from_spark():
            table = collect_table(frame.join(want, ROW).select(ROW, CLUSTER))
        got = np.asarray(table.column(ROW).to_numpy(), dtype=np.int64)
        raw = np.asarray(table.column(CLUSTER).to_numpy(), dtype=np.int64)
        order = np.argsort(got)
        got, raw = got[order], raw[order]
        if got.shape[0] != uniq.shape[0] or not np.array_equal(got, uniq):
            raise InvalidInputError(f"assignment: found {got.shape[0]} of {uniq.shape[0]} selected rows "
                                    "(internal error)")
        cl = np.asarray(cluster_ids, dtype=np.int64)  # ascending: the kept clusters' raw indices
        return np.searchsorted(cl, raw[np.searchsorted(got, ids)]).astype(np.int64)

    def members(self, assignment: Assignment) -> SparkMembers:
        labels, cluster_ids = assignment.labels
        return SparkMembers(labels, cluster_ids, assignment.sizes)

    def quantization_record(self) -> dict[str, Any]:
        return {"kmeans": self.kmeans_used.get("pool"), "target_kmeans": self.kmeans_used.get("target")}

    def load_assignment(self, path: str) -> DataFrame:
        return self.spark.read.parquet(path)

    # -- explode and write ---------------------------------------------------------------------------------

    def explode(
        self, picks: np.ndarray, assignment: Assignment, *, limit: int | None, seed: int
    ) -> tuple[DataFrame, int]:
        """The selected rows ``(row id, rank)`` of the chosen clusters, as :func:`gioselect.quantize.explode`.

        Clusters come in pick order (a repeated pick counts once), rows of a cluster in ascending row id, so
        ``rank = rows of the earlier clusters + position in the cluster``: a join of the assignment with the
        chosen cluster ids and their offsets, and a window over each chosen cluster. With ``limit`` the
        cluster that crosses it is cut to a seeded random subset of its rows (the driver collects that one
        cluster's row ids, about N/K of them, to draw exactly the rows the in-process engine draws).
        """
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        frame, cluster_ids = assignment.labels
        full, cut, total = explode_plan(picks, assignment.sizes, limit)
        parts: list[DataFrame] = []
        if full:
            chosen = self.spark.createDataFrame(
                pa.table(
                    {
                        CLUSTER: pa.array([int(cluster_ids[c]) for c, _ in full], pa.int32()),
                        "__gio_offset": pa.array([int(o) for _, o in full], pa.int64()),
                    }
                )
            )
            w = Window.partitionBy(CLUSTER).orderBy(ROW)
            parts.append(
                frame.join(F.broadcast(chosen), CLUSTER).select(
                    col_ref(ROW), (F.col("__gio_offset") + F.row_number().over(w) - 1).alias(RANK)
                )
            )
        if cut is not None:
            c, room, offset = cut
            members = frame.where(F.col(CLUSTER) == int(cluster_ids[c])).select(ROW)
            rows = np.sort(np.asarray(collect_table(members).column(ROW).to_numpy(), dtype=np.int64))
            # explode() on a one-cluster membership draws the same positions as on the real row ids
            pos = explode(
                np.zeros(1, dtype=np.int64),
                ClusterMembers(np.zeros(rows.shape[0], np.int32), 1),
                limit=room,
                seed=seed,
            )
            kept = rows[pos]
            parts.append(
                self.spark.createDataFrame(
                    pa.table(
                        {
                            ROW: pa.array(kept, pa.int64()),
                            RANK: pa.array(offset + np.arange(kept.shape[0], dtype=np.int64), pa.int64()),
                        }
                    )
                )
            )
        if not parts:
            empty = pa.table({ROW: pa.array([], pa.int64()), RANK: pa.array([], pa.int64())})
            return self.spark.createDataFrame(empty), 0
        sel = parts[0]
        for p in parts[1:]:
            sel = sel.unionByName(p)
        return sel, total

    def selection(self, ids: np.ndarray) -> tuple[DataFrame, int]:
        """The selection ``(row id, rank)`` of rows the driver holds, and its size."""
        return self.selection_frame(ids), int(np.asarray(ids).shape[0])

    def selection_frame(self, ids: np.ndarray) -> DataFrame:
        """``(row id, rank)`` for a selection the driver holds (a pool of <= K rows)."""
        ids = np.asarray(ids, dtype=np.int64)
        return self.spark.createDataFrame(
            pa.table({ROW: pa.array(ids, pa.int64()), RANK: pa.array(np.arange(ids.shape[0]), pa.int64())})
        )

    def selected_rows(self, src: SparkSource, selection: DataFrame, n_selected: int) -> DataFrame:
        """The selected rows with all original columns plus ``gio_row_id`` and ``gio_rank``."""
        from pyspark.sql import functions as F

        from ..io import RANK_COLUMN, ROW_ID_COLUMN

        clash = [c for c in (ROW_ID_COLUMN, RANK_COLUMN) if c in src.columns]
        if clash:
            logger.warning("%s already has column(s) %s; overwriting them", src.where, fmt_names(clash))
        sel = F.broadcast(selection) if n_selected <= self.broadcast_rows else selection
        joined = src.frame.join(sel, ROW)
        cols = [col_ref(c) for c in src.columns if c not in clash]
        return joined.select(
            *cols, F.col(ROW).alias(ROW_ID_COLUMN), F.col(RANK).cast("long").alias(RANK_COLUMN)
        )

    def write_selected(self, src: SparkSource, selection: DataFrame, n_selected: int, out_path: str) -> str:
        """Write the selected rows as a parquet directory of part files, in ascending ``gio_row_id``."""
        from ..io import ROW_ID_COLUMN

        rows = self.selected_rows(src, selection, n_selected)
        with errors_from_spark(src.where):
            rows.orderBy(ROW_ID_COLUMN).write.mode("overwrite").parquet(out_path)
        return out_path



class SparkMembers(ClusterMembers):
    """The cluster membership on Spark for the row-level pass: sizes on the driver, rows fetched on demand.

    :meth:`rows_of` collects the rows of the clusters asked for in one pass over the assignment (the pass asks
    for clusters worth about ``refine_over`` times the selection, so what reaches the driver is bounded by it).
    """

    def __init__(self, labels: DataFrame, cluster_ids: np.ndarray, sizes: np.ndarray) -> None:
        self.labels, self.cluster_ids = labels, np.asarray(cluster_ids, dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))]).astype(np.int64)

    def members(self, c: int) -> np.ndarray:
        return self.rows_of([c])

    def rows_of(self, clusters: Any) -> np.ndarray:
        from pyspark.sql import functions as F

        cl = np.asarray(clusters, dtype=np.int64)
        if cl.size == 0:
            return np.empty(0, dtype=np.int64)
        raw = self.cluster_ids[cl]
        table = collect_table(self.labels.where(F.col(CLUSTER).isin([int(c) for c in raw])).select(ROW, CLUSTER))
        rows = np.asarray(table.column(ROW).to_numpy(), dtype=np.int64)
        got = np.asarray(table.column(CLUSTER).to_numpy(), dtype=np.int64)
        position = np.full(int(raw.max()) + 1, -1, dtype=np.int64)
        position[raw] = np.arange(raw.shape[0])
        order = np.lexsort((rows, position[got]))
        return rows[order]


def explode_plan(
    picks: np.ndarray, sizes: np.ndarray, limit: int | None
) -> tuple[list[tuple[int, int]], tuple[int, int, int] | None, int]:
    """What :func:`gioselect.quantize.explode` does with the chosen clusters, in sizes only.

    Returns ``full`` ((cluster, rows before it) for every cluster taken whole, in pick order, repeats
    dropped), ``cut`` ((cluster, rows kept, rows before it) for the cluster cut at ``limit``, or None) and the
    number of rows selected.
    """
    seen: set[int] = set()
    full: list[tuple[int, int]] = []
    cut: tuple[int, int, int] | None = None
    total = 0
    for c in np.asarray(picks, dtype=np.int64).tolist():
        if c in seen:
            continue
        seen.add(c)
        s = int(sizes[c])
        if limit is not None and total + s > limit:
            room = limit - total
            if room > 0:
                cut = (c, room, total)
                total += room
            break
        full.append((c, total))
        total += s
    return full, cut, total


if TYPE_CHECKING:  # mypy checks that this engine implements the protocol

    def _implements_engine(engine: SparkEngine) -> Engine:
        return engine
