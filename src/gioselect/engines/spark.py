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

import contextlib
import logging
import os
import pickle
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from .. import errors as _errors
from ..errors import (
    GIOError,
    InvalidInputError,
    InvalidParameterError,
    InvalidTypeError,
    MissingDependencyError,
)
from ..io import detect_format
from ..io.csv import split_csv_line
from ..io.files import describe_file
from ..io.vectors import (
    PREFERRED_EMBEDDING_FIELDS,
    REFERENCE_CSV_FIELD,
    choose_field,
    fmt_names,
    list_array_to_matrix,
    looks_like_vector,
    missing_field,
    parse_vector_text,
    strings_to_matrix,
)
from ..quantize import (
    MAX_POINTS_PER_CENTROID,
    ClusterMembers,
    assign_blocks,
    explode,
    kmeans_centroids,
    quantize_array,
    training_sample_indices,
)
from ..validation import check_embeddings
from .base import Assignment, RowSampler

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from .base import Engine

__all__ = ["KMEANS_METHODS", "SparkEngine", "SparkSource", "spark_session"]

logger = logging.getLogger(__name__)

KMEANS_METHODS = ("auto", "driver", "lloyd", "mllib")
#: ``kmeans="auto"`` trains on the driver when the K-means sample is at most this many bytes (float32).
DRIVER_KMEANS_BYTES = 256 << 20
SPARK_INSTALL_HINT = "pip install 'gioselect[spark]' (pyspark and pandas; Spark also needs Java 17 or later)"

# Internal column names (the user's columns are kept as they are; these never reach the output).
ROW = "__gio_row_id"
RAW = "__gio_raw"
BAD = "__gio_bad"
FEAT = "__gio_features"
CLUSTER = "__gio_cluster"
RANK = "__gio_rank"
DIST = "__gio_sq_dist"
ASSIGNMENT_NAME = "pool_assignment.parquet"  # the assignment checkpoint in the work folder
_MID = "__gio_mid"
_FILE = "__gio_file"
_BLK = "__gio_blk"
_PART = "__gio_part"
_DELTA = "__gio_delta"
_CORRUPT = "_corrupt_record"
_ERR_TAG = "GIOSELECT-ERROR"
_ERR_RE = re.compile(rf"\[{_ERR_TAG}:(\w+)\](.*?)\[/{_ERR_TAG}\]", re.S)
_NUMERIC_SPARK = (
    "byte",
    "short",
    "int",
    "bigint",
    "float",
    "double",
    "decimal",
    "tinyint",
    "smallint",
    "long",
)
_SCHEME_RE = re.compile(r"^([A-Za-z][\w+.-]*):/(?!/)")


def _pyspark() -> Any:
    """Import pyspark, or say how to install it."""
    try:
        import pyspark
        from pyspark.sql import functions  # noqa: F401 - fail here rather than later
    except ImportError as exc:
        raise MissingDependencyError(f"the spark engine needs pyspark: {SPARK_INSTALL_HINT}") from exc
    return pyspark


def spark_session(
    master: str | None = None, *, app_name: str = "gioselect", conf: dict[str, str] | None = None
) -> tuple[SparkSession, bool]:
    """The active SparkSession, or a new one; returns ``(session, created)``.

    Parameters
    ----------
    master : str, optional
        ``spark.master`` for a new session (``local[*]`` when neither this nor ``spark-submit`` sets one). An
        already active session is reused as it is (and ``created`` is False: the caller must not stop it).
    app_name : str, default "gioselect"
    conf : dict, optional
        More settings for a new session (``spark.driver.memory`` and the like must be set here or by
        ``spark-submit``: they cannot change once the JVM runs).
    """
    _pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        if master is not None and active.sparkContext.master != master:
            logger.warning(
                "a SparkSession with master %s is already running; using it, not %s",
                active.sparkContext.master,
                master,
            )
        return active, False
    # Python workers must run this interpreter (its venv has gioselect, numpy, faiss, pyarrow).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    elif "spark.master" not in (conf or {}) and not os.environ.get("MASTER"):
        builder = builder.config("spark.master", os.environ.get("SPARK_MASTER", "local[*]"))
    settings = {"spark.ui.showConsoleProgress": "false", "spark.sql.execution.arrow.pyspark.enabled": "true"}
    settings.update(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session, True


def spark_path(p: str | os.PathLike[str]) -> str:
    """A path for Spark: ``Path`` turns ``s3a://b/k`` into ``s3a:/b/k``; put the double slash back."""
    return _SCHEME_RE.sub(r"\1://", str(p))


def is_local_path(path: str) -> bool:
    """True for a plain path or a ``file:`` URI."""
    m = re.match(r"^([A-Za-z][\w+.-]*)://", path)
    return m is None or m.group(1).lower() == "file"


def local_path(path: str) -> Path:
    return Path(re.sub(r"^file://", "", path))


def _detect_spark_format(path: str, name: str) -> str:
    """parquet, csv or jsonl from the extension (of the directory, or of its part files)."""
    where = describe_file(Path(path), name)
    p = Path(path)
    if (
        is_local_path(path)
        and local_path(path).is_dir()
        and p.suffix.lower() not in (".parquet", ".pq", ".csv", ".tsv", ".jsonl", ".ndjson", ".json")
    ):
        found = sorted(
            q.suffix.lower()
            for q in local_path(path).iterdir()
            if q.is_file() and not q.name.startswith(("_", "."))
        )
        if not found:
            raise InvalidInputError(f"{where}: is an empty directory")
        p = Path("part" + found[0])
    if p.suffix.lower() == ".json":  # Spark writes line-delimited json with this extension
        return "jsonl"
    fmt = detect_format(p)
    if fmt == "folder":  # a directory of parquet part files (Spark's own output, or shards): Spark reads it
        return "parquet"
    if fmt == "npy":
        raise InvalidInputError(
            f"{where}: the spark engine reads parquet, csv/tsv or jsonl, not .npy (executors cannot share "
            "a memory map); convert it, e.g. gioselect.io.write_embeddings('pool.parquet', "
            "np.load('pool.npy')), or use the local engine"
        )
    return fmt


# ----------------------------------------------------------------------------------------------------------
# errors raised on executors


def _shipped(exc: GIOError) -> RuntimeError:
    """Wrap an input error raised in a Python worker so the driver can raise it again with its type."""
    return RuntimeError(f"[{_ERR_TAG}:{type(exc).__name__}]{exc}[/{_ERR_TAG}]")


@contextlib.contextmanager
def errors_from_spark(where: str | None = None) -> Iterator[None]:
    """Re-raise input errors shipped from executors, and Spark's path errors, as gioselect errors."""
    try:
        yield
    except GIOError:
        raise
    except Exception as exc:
        text = str(exc)
        m = _ERR_RE.search(text)
        if m is not None:
            cls = getattr(_errors, m.group(1), None)
            if not (isinstance(cls, type) and issubclass(cls, GIOError)):
                cls = InvalidInputError
            raise cls(m.group(2)) from None
        if where is not None and ("PATH_NOT_FOUND" in text or "does not exist" in text):
            raise InvalidInputError(f"{where}: no such file or directory") from None
        if where is not None and type(exc).__name__ in (
            "AnalysisException",
            "SparkException",
            "Py4JJavaError",
            "IllegalArgumentException",
        ):
            first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
            raise InvalidInputError(f"{where}: cannot be read by Spark: {first[:500]}") from exc
        raise


# ----------------------------------------------------------------------------------------------------------
# executor-side functions (pickled into the tasks; they import what they need)


def _task_threads() -> int:
    """CPU cores of the running task (``spark.task.cpus``), 1 outside a task."""
    try:
        from pyspark import TaskContext

        tc = TaskContext.get()
        return max(1, int(tc.cpus())) if tc is not None else 1
    except Exception:  # pragma: no cover - older pyspark
        return 1


def _features(batch: pa.RecordBatch, col: int, dim: int) -> np.ndarray:
    """The float32 (n, dim) matrix of a converted ``array<float>`` column (no nulls: converted already)."""
    arr = batch.column(col)
    flat = arr.flatten() if len(arr) else pa.array([], pa.float32())
    return np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(arr), dim)


def _matrix_array(x: np.ndarray) -> pa.Array:
    """A (n, d) float32 matrix as an Arrow ``list<float>`` column."""
    n, d = x.shape
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32) if n else np.zeros(1, np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(x).reshape(-1), pa.float32()))


@dataclass
class _Converter:
    """Validate and convert a batch's raw vectors; output the vectors, or each row's nearest centroid."""

    kind: str  # "list" (Arrow list of numbers) or "string" (csv "[0.1, ...]")
    dim: int
    where: str
    what: str
    has_bad: bool = False
    centroids: np.ndarray | None = None

    def matrix(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        rows = np.asarray(batch.column(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        if self.has_bad:
            bad = batch.column(2)
            if bad.null_count < len(bad):
                i = int(np.flatnonzero(~np.asarray(bad.is_null().to_numpy(zero_copy_only=False)))[0])
                text = str(bad[i].as_py())
                raise InvalidInputError(
                    f"{self.where}: row {int(rows[i])} is not valid JSON, or holds a value of another type "
                    f"than the other rows ({text[:60]!r})"
                )
        raw = batch.column(1)
        if self.kind == "string":
            return rows, strings_to_matrix(raw, rows, self.dim, self.where, self.what)
        return rows, list_array_to_matrix(raw, rows, self.dim, self.where, self.what)

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        threads = _task_threads()
        for batch in batches:
            if batch.num_rows == 0:
                continue
            try:
                rows, x = self.matrix(batch)
            except GIOError as exc:
                raise _shipped(exc) from None
            if self.centroids is None:
                yield pa.RecordBatch.from_arrays(
                    [pa.array(rows, pa.int64()), _matrix_array(x)], names=[ROW, FEAT]
                )
            else:
                _faiss_threads(threads)
                labels, sq = assign_blocks([(0, x)], self.centroids, x.shape[0])
                yield pa.RecordBatch.from_arrays(
                    [pa.array(rows, pa.int64()), pa.array(labels, pa.int32()), pa.array(sq, pa.float32())],
                    names=[ROW, CLUSTER, DIST],
                )


def _faiss_threads(n: int) -> None:
    import faiss

    faiss.omp_set_num_threads(int(n))


@dataclass
class _LloydStep:
    """One Lloyd iteration over a partition: per-cluster sums and counts of its rows, pickled into one row."""

    centroids: np.ndarray

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import faiss

        _faiss_threads(_task_threads())
        k, d = self.centroids.shape
        index = faiss.IndexFlatL2(d)
        index.add(np.ascontiguousarray(self.centroids, dtype=np.float32))
        sums = np.zeros((k, d), dtype=np.float64)
        counts = np.zeros(k, dtype=np.int64)
        inertia = 0.0
        for batch in batches:
            if batch.num_rows == 0:
                continue
            x = _features(batch, 1, d)
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


@dataclass
class TextEmbedBatches:
    """``mapInPandas`` body: embed a text column with TextEmbedder (model cached per Python worker)."""

    text_col: str
    out_col: str
    model: str | None
    batch_size: int
    where: str
    row_col: str | None = None
    keep: list[str] | None = None

    def __call__(self, frames: Iterator[Any]) -> Iterator[Any]:
        from ..embed import TextEmbedder

        embedder = TextEmbedder(self.model, batch_size=self.batch_size, threads=_task_threads())
        for pdf in frames:
            if len(pdf) == 0:
                continue
            texts = pdf[self.text_col].tolist()
            rows = pdf[self.row_col].to_numpy() if self.row_col is not None else None
            try:
                for i, t in enumerate(texts):
                    at = f"row {int(rows[i])}" if rows is not None else f"a row (batch position {i})"
                    if not isinstance(t, str):
                        kind = "null" if t is None else type(t).__name__
                        raise InvalidTypeError(
                            f"{self.where}: {at} field {self.text_col!r} is {kind} ({t!r:.60}), "
                            "expected a string"
                        )
                    if not t.strip():
                        raise InvalidInputError(
                            f"{self.where}: {at} field {self.text_col!r} is empty or whitespace only"
                        )
                emb = embedder.embed(texts)
            except GIOError as exc:
                raise _shipped(exc) from None
            out = pdf[self.keep] if self.keep is not None else pdf.copy()
            out = out.assign(**{self.out_col: list(emb)})
            yield out


# ----------------------------------------------------------------------------------------------------------
# sources


@dataclass
class SparkSource:
    """An input opened by :class:`SparkEngine`: its rows numbered, its embedding column checked.

    Attributes
    ----------
    path : str
        The file or directory (or ``"<DataFrame>"``).
    format : str
        ``parquet``, ``csv``, ``jsonl`` or ``dataframe``.
    name : str
        ``pool`` or ``target`` (how messages name it).
    n_rows, dim : int
        Rows, and the vector length of row 0.
    embedding_field : str or None
        The vector column (None when ``text_field`` is embedded).
    text_field : str or None
        The text column embedded on the executors, if any.
    columns : list of str
        The original columns, in order.
    frame : DataFrame
        The original columns plus the row id column (recomputed from the input on each use).
    raw : DataFrame
        Row id, raw vector column (and the JSON corrupt-record column when present).
    """

    path: str
    format: str
    name: str
    n_rows: int
    dim: int
    embedding_field: str | None
    text_field: str | None
    columns: list[str]
    frame: Any
    raw: Any
    kind: str
    where: str
    has_bad: bool = False
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def what(self) -> str:
        return f"column {self.embedding_field!r}" if self.embedding_field is not None else "vector"

    @property
    def bytes(self) -> int:
        return int(sum(int(f.get("size") or 0) for f in self.files))

    def converter(self, centroids: np.ndarray | None = None) -> _Converter:
        return _Converter(self.kind, self.dim, self.where, self.what, self.has_bad, centroids)


def _col(name: str) -> Any:
    """A column reference that survives dots and spaces in the name."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _is_vector_spark_type(t: Any) -> bool:
    from pyspark.sql.types import ArrayType

    return isinstance(t, ArrayType) and t.elementType.simpleString().split("(")[0] in _NUMERIC_SPARK


def _is_string_spark_type(t: Any) -> bool:
    from pyspark.sql.types import StringType

    return isinstance(t, StringType)


def _collect_table(df: DataFrame) -> pa.Table:
    """Collect a small DataFrame as an Arrow table."""
    to_arrow = getattr(df, "toArrow", None)
    if to_arrow is not None:
        return to_arrow()
    return pa.Table.from_pandas(df.toPandas(), preserve_index=False)  # pragma: no cover - pyspark < 4


class SparkEngine:
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

    # -- opening -------------------------------------------------------------------------------------------

    def _reader(self, fmt: str, csv_opts: dict[str, Any] | None) -> Any:
        r = self.spark.read.format("json" if fmt == "jsonl" else fmt)
        for key, value in (csv_opts or {}).items():
            r = r.option(key, value)
        return r

    def _first_line(self, path: str) -> str | None:
        rows = self.spark.read.text(path).where("trim(value) != ''").limit(1).collect()
        return None if not rows else str(rows[0][0]).lstrip("\ufeff")

    def open(
        self,
        path: str | os.PathLike[str],
        embedding_field: str | None,
        name: str,
        *,
        text_field: str | None = None,
    ) -> SparkSource:
        """Open a parquet, csv/tsv or jsonl file (or a directory of part files) on the executors.

        Checks the columns like :func:`gioselect.io.open_embeddings` (missing or ambiguous embedding column,
        wrong type, empty input) and numbers the rows; one counting pass over the input, plus row 0.
        """
        spath = spark_path(path)
        where = describe_file(Path(spath), name) if is_local_path(spath) else f"{name} file '{spath}'"
        fmt = _detect_spark_format(spath, name)
        if is_local_path(spath):
            lp = local_path(spath)
            if not lp.exists():
                raise InvalidInputError(f"{where}: no such file")
            if lp.is_file() and lp.stat().st_size == 0:
                raise InvalidInputError(f"{where}: is empty (0 bytes, 0 rows)")
        csv_opts: dict[str, Any] | None = None
        header_fields: list[str] | None = None
        key_order: list[str] | None = None
        with errors_from_spark(where):
            if fmt == "csv":
                first = self._first_line(spath)
                if first is None:
                    raise InvalidInputError(f"{where}: is empty (no rows)")
                delim = "\t" if Path(spath).suffix.lower() == ".tsv" or "\t" in first else ","
                fields = split_csv_line(first, delim)
                has_header = not any(looks_like_vector(f) for f in fields)
                if has_header:
                    dupes = sorted({c for c in fields if fields.count(c) > 1})
                    if dupes:
                        raise InvalidInputError(
                            f"{where}: the header row repeats column name(s) {fmt_names(dupes)}"
                        )
                    header_fields = fields
                csv_opts = {
                    "sep": delim,
                    "header": str(has_header).lower(),
                    "quote": '"',
                    "escape": '"',
                    "inferSchema": "false",
                    "mode": "PERMISSIVE",
                }
            elif fmt == "jsonl":
                first = self._first_line(spath)
                if first is None:
                    raise InvalidInputError(f"{where}: is empty (only blank lines, 0 rows)")
                import json

                try:
                    obj = json.loads(first)
                    key_order = list(obj) if isinstance(obj, dict) else None
                except ValueError:
                    key_order = None
            df = self._reader(fmt, csv_opts).load(spath)
        columns = list(df.columns)
        has_bad = fmt == "jsonl" and _CORRUPT in columns
        if has_bad:
            columns.remove(_CORRUPT)
        if key_order is not None:  # Spark sorts json columns by name; keep the file's order
            columns = [c for c in key_order if c in columns] + [c for c in columns if c not in key_order]
        types = {f.name: f.dataType for f in df.schema.fields}
        field_name, kind = self._choose_column(
            columns, types, fmt, embedding_field, text_field, where, header=header_fields is not None, df=df
        )
        keys = [F_metadata("file_path").alias(_FILE), F_metadata("file_block_start").alias(_BLK)]
        extra = [
            F_metadata("file_size").alias("__gio_fsize"),
            F_metadata("file_modification_time").cast("long").alias("__gio_mtime"),
        ]
        with errors_from_spark(where):
            frame, n_rows, stats = _number_rows(
                self.spark, df, columns + ([_CORRUPT] if has_bad else []), keys, [_FILE, _BLK], extra
            )
        if n_rows == 0:
            raise InvalidInputError(f"{where}: is empty (0 rows)")
        files: dict[str, dict[str, Any]] = {}
        for r in stats:
            files.setdefault(
                r[_FILE],
                {
                    "path": r[_FILE],
                    "size": int(r["__gio_fsize"] or 0),
                    "mtime": int(r["__gio_mtime"] or 0),
                    "rows": 0,
                },
            )["rows"] += int(r["n"])
        first_file = min(f for f, v in files.items() if v["rows"] > 0)
        raw_cols = [_col(ROW).alias(ROW), _col(field_name).alias(RAW)] + (
            [_col(_CORRUPT).alias(BAD)] if has_bad else []
        )
        raw = frame.select(*raw_cols)
        src = SparkSource(
            path=spath,
            format=fmt,
            name=name,
            n_rows=n_rows,
            dim=0,
            columns=columns,
            embedding_field=None if kind == "text" else field_name,
            text_field=field_name if kind == "text" else None,
            frame=frame.drop(_CORRUPT) if has_bad else frame,
            raw=raw,
            kind=kind,
            where=where,
            has_bad=has_bad,
            files=sorted(files.values(), key=lambda v: v["path"]),
        )
        if kind != "text":
            with errors_from_spark(where):
                row0 = (
                    self._reader(fmt, csv_opts).load(first_file).select(_col(field_name)).limit(1).collect()
                )
            src.dim = self._dim_of_row0(row0[0][0] if row0 else None, kind, where, field_name)
        return src

    def _choose_column(
        self,
        columns: list[str],
        types: dict[str, Any],
        fmt: str,
        embedding_field: str | None,
        text_field: str | None,
        where: str,
        *,
        header: bool,
        df: DataFrame,
    ) -> tuple[str, str]:
        """(column, kind): the embedding column as io.open_embeddings picks it, or the text column."""
        hint = (
            ""
            if fmt != "csv" or header
            else (" (the file has no header row, so columns are named _c0, _c1, ... by position)")
        )
        if text_field is not None:
            if text_field not in columns:
                raise missing_field(text_field, columns, where, hint)
            if not _is_string_spark_type(types[text_field]):
                raise InvalidTypeError(
                    f"{where}: column {text_field!r} has type {types[text_field].simpleString()}, "
                    "expected a string"
                )
            return text_field, "text"
        if embedding_field is not None:
            if embedding_field not in columns:
                raise missing_field(embedding_field, columns, where, hint)
            t = types[embedding_field]
            if fmt == "csv":
                return embedding_field, "string"
            if not _is_vector_spark_type(t):
                raise InvalidTypeError(
                    f"{where}: column {embedding_field!r} has type {t.simpleString()}; expected a list of "
                    "numbers (array<float> or array<double>)"
                )
            return embedding_field, "list"
        if fmt == "csv":
            with errors_from_spark(where):
                first = df.limit(1).collect()
            if not first:
                raise InvalidInputError(f"{where}: is empty (0 rows; only a header row)")
            candidates = [c for c in columns if looks_like_vector(first[0][c])]
            preferred = PREFERRED_EMBEDDING_FIELDS if header else (REFERENCE_CSV_FIELD,)
            return choose_field(candidates, columns, where, preferred), "string"
        candidates = [c for c in columns if _is_vector_spark_type(types[c])]
        return choose_field(candidates, columns, where, PREFERRED_EMBEDDING_FIELDS), "list"

    @staticmethod
    def _dim_of_row0(value: Any, kind: str, where: str, field_name: str) -> int:
        """The vector length of row 0, with io's messages for a bad row 0."""
        if kind == "string":
            try:
                return len(parse_vector_text(value))
            except ValueError as exc:
                raise InvalidInputError(f"{where}: row 0 column {field_name!r} {exc}") from None
            except TypeError as exc:
                raise InvalidTypeError(f"{where}: row 0 column {field_name!r} {exc}") from None
        if value is None:
            raise InvalidInputError(
                f"{where}: row 0 column {field_name!r} is null; expected a list of numbers"
            )
        if len(value) == 0:
            raise InvalidInputError(
                f"{where}: row 0 column {field_name!r} is an empty list; vectors need a dimension"
            )
        return len(value)

    def from_dataframe(
        self, df: DataFrame, embedding_col: str | None, name: str, *, text_col: str | None = None
    ) -> SparkSource:
        """A DataFrame as a source: rows numbered in partition order (or by its ``gio_row_id`` column)."""
        from pyspark.sql import functions as F

        from ..io import ROW_ID_COLUMN

        where = f"{name} DataFrame"
        columns = list(df.columns)
        types = {f.name: f.dataType for f in df.schema.fields}
        field_name, kind = self._choose_column(
            columns, types, "dataframe", embedding_col, text_col, where, header=True, df=df
        )
        if ROW_ID_COLUMN in columns:
            t = types[ROW_ID_COLUMN].simpleString()
            if t not in ("bigint", "int", "smallint", "tinyint"):
                raise InvalidTypeError(
                    f"{where}: column {ROW_ID_COLUMN!r} has type {t}; expected integer row ids"
                )
            # the caller's own row numbers: kept as they are (and not repeated among the output columns)
            columns = [c for c in columns if c != ROW_ID_COLUMN]
            frame = df.select(*[_col(c) for c in columns], _col(ROW_ID_COLUMN).cast("long").alias(ROW))
            st = frame.agg(
                F.count(F.lit(1)).alias("n"),
                F.countDistinct(ROW).alias("u"),
                F.min(ROW).alias("lo"),
                F.max(ROW).alias("hi"),
            ).collect()[0]
            n_rows = int(st["n"])
            if n_rows and (int(st["u"]) != n_rows or int(st["lo"]) != 0 or int(st["hi"]) != n_rows - 1):
                raise InvalidInputError(
                    f"{where}: column {ROW_ID_COLUMN!r} must hold the row numbers 0..{n_rows - 1}, each once "
                    f"(found {int(st['u'])} distinct values from {st['lo']} to {st['hi']})"
                )
        else:
            _warn_if_shuffled(df, where)
            frame, n_rows, _ = _number_rows(
                self.spark, df, columns, [F.shiftright(F.col(_MID), 33).alias(_PART)], [_PART], []
            )
        if n_rows == 0:
            raise InvalidInputError(f"{where}: is empty (0 rows)")
        raw = frame.select(_col(ROW).alias(ROW), _col(field_name).alias(RAW))
        src = SparkSource(
            path="<DataFrame>",
            format="dataframe",
            name=name,
            n_rows=n_rows,
            dim=0,
            columns=columns,
            embedding_field=None if kind == "text" else field_name,
            text_field=field_name if kind == "text" else None,
            frame=frame,
            raw=raw,
            kind=kind,
            where=where,
        )
        if kind != "text":
            first = raw.where(F.col(ROW) == 0).select(RAW).limit(1).collect()  # scans partitions lazily
            src.dim = self._dim_of_row0(first[0][0] if first else None, kind, where, field_name)
        return src

    def embed_text(
        self, src: SparkSource, *, model: str | None = None, batch_size: int = 64, path: str | None = None
    ) -> SparkSource:
        """Embed the source's text column on the executors; its vectors then come from the embeddings.

        With ``path`` the embeddings are written there as parquet (and read back: a resumable checkpoint);
        otherwise they are cached on the executors (memory and disk).
        """
        if src.kind != "text" or src.text_field is None:
            raise InvalidParameterError(f"{src.where}: has no text column to embed")
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        if path is not None and is_local_path(path) and (local_path(path) / "_SUCCESS").exists():
            emb = self.spark.read.parquet(path)
        else:
            fn = TextEmbedBatches(RAW, FEAT, model, batch_size, src.where, row_col=ROW, keep=[ROW])
            emb = src.raw.select(ROW, RAW).mapInPandas(fn, f"`{ROW}` long, `{FEAT}` array<float>")
            with errors_from_spark(src.where):
                if path is not None:
                    emb.write.mode("overwrite").parquet(path)
                    emb = self.spark.read.parquet(path)
                else:
                    emb = emb.persist(StorageLevel.MEMORY_AND_DISK)
                    emb.count()
        raw = emb.select(_col(ROW).alias(ROW), _col(FEAT).alias(RAW))
        first = raw.where(F.col(ROW) == 0).limit(1).collect()
        dim = self._dim_of_row0(first[0][RAW] if first else None, "list", src.where, str(src.text_field))
        return SparkSource(
            path=src.path,
            format=src.format,
            name=src.name,
            n_rows=src.n_rows,
            dim=dim,
            embedding_field=None,
            text_field=src.text_field,
            columns=src.columns,
            frame=src.frame,
            raw=raw,
            kind="list",
            where=src.where,
            files=src.files,
        )

    # -- vectors -------------------------------------------------------------------------------------------

    def _ids_frame(self, ids: np.ndarray) -> DataFrame:
        """A one-column DataFrame of row ids (sent from the driver; only ever K-sized or sample-sized)."""
        from pyspark.sql import functions as F

        table = pa.table({ROW: pa.array(np.asarray(ids, dtype=np.int64))})
        return F.broadcast(self.spark.createDataFrame(table))

    def vectors(self, src: SparkSource, ids: np.ndarray | None = None) -> DataFrame:
        """Validated vectors ``(row id, array<float>)`` of every row, or of the rows ``ids``."""
        raw = src.raw
        if ids is not None:
            raw = raw.join(self._ids_frame(ids), ROW, "left_semi")
        return raw.mapInArrow(src.converter(), f"`{ROW}` long, `{FEAT}` array<float>")

    def take(self, src: SparkSource, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` (float32, in the given order); one pass, only those rows reach the driver."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return np.zeros((0, src.dim), dtype=np.float32)
        uniq = np.unique(ids)
        with errors_from_spark(src.where):
            table = _collect_table(self.vectors(src, uniq))
        got = np.asarray(table.column(ROW).to_numpy(), dtype=np.int64)
        x = np.asarray(
            table.column(FEAT).combine_chunks().flatten().to_numpy(zero_copy_only=False), dtype=np.float32
        ).reshape(len(got), src.dim)
        order = np.argsort(got)
        got, x = got[order], x[order]
        if got.shape[0] != uniq.shape[0] or not np.array_equal(got, uniq):
            raise InvalidInputError(
                f"{src.where}: found {got.shape[0]} of {uniq.shape[0]} requested rows (did the input change?)"
            )
        return np.ascontiguousarray(x[np.searchsorted(got, ids)])

    def read_all(self, src: SparkSource) -> np.ndarray:
        """Every row, in row order: only what the driver holds anyway (the target, a pool of <= K rows)."""
        with errors_from_spark(src.where):
            table = _collect_table(self.vectors(src))
        got = np.asarray(table.column(ROW).to_numpy(), dtype=np.int64)
        x = np.asarray(
            table.column(FEAT).combine_chunks().flatten().to_numpy(zero_copy_only=False), dtype=np.float32
        ).reshape(len(got), src.dim)
        order = np.argsort(got)
        if got.shape[0] != src.n_rows or not np.array_equal(got[order], np.arange(src.n_rows)):
            raise InvalidInputError(
                f"{src.where}: read {got.shape[0]} rows but counted {src.n_rows} (did the input change?)"
            )
        return np.ascontiguousarray(x[order])

    @staticmethod
    def sample_ids(n_rows: int, n: int, seed: int) -> np.ndarray:
        """A seeded sorted sample of ``min(n, n_rows)`` row ids (the in-process engine's draw)."""
        rng = np.random.default_rng(seed)
        m = min(n, n_rows)
        return np.sort(rng.choice(n_rows, size=m, replace=False)).astype(np.int64)

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
                table = _collect_table(sample.join(self._ids_frame(init_ids), ROW, "left_semi"))
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

        best = labels.groupBy(CLUSTER).agg(F.min(F.struct(_col(DIST), _col(ROW))).alias("m"))
        table = _collect_table(best.select(_col(CLUSTER), F.col(f"m.{ROW}").alias(ROW)))
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
        """Every pool row on the driver (an unquantised pool: at most ``AUTO_MAX_DIRECT_ROWS`` under "auto")."""
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
                    _col(ROW), (F.col("__gio_offset") + F.row_number().over(w) - 1).alias(RANK)
                )
            )
        if cut is not None:
            c, room, offset = cut
            members = frame.where(F.col(CLUSTER) == int(cluster_ids[c])).select(ROW)
            rows = np.sort(np.asarray(_collect_table(members).column(ROW).to_numpy(), dtype=np.int64))
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
        cols = [_col(c) for c in src.columns if c not in clash]
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


def F_metadata(name: str) -> Any:
    """A field of Spark's hidden ``_metadata`` column of file sources."""
    from pyspark.sql import functions as F

    return F.col(f"_metadata.{name}")


def _number_rows(
    spark: SparkSession,
    df: DataFrame,
    columns: list[str],
    keys: list[Any],
    key_names: list[str],
    extra: list[Any],
) -> tuple[DataFrame, int, list[Any]]:
    """Add contiguous 0-based row ids: a counting pass per split (or partition), a broadcast join of offsets.

    ``keys`` identify the unit whose rows are contiguous in ``monotonically_increasing_id`` (a file split, or
    a partition); units are ordered by those keys. Returns (frame of ``columns`` + row id, row count, per-unit
    statistics).
    """
    from pyspark.sql import functions as F

    if key_names == [_PART]:  # the partition index is the upper bits of monotonically_increasing_id
        base = df.select(*[_col(c) for c in columns], F.monotonically_increasing_id().alias(_MID))
        base = base.select("*", *keys)
    else:  # _metadata must be read from the scan itself, next to monotonically_increasing_id
        base = df.select(
            *[_col(c) for c in columns], F.monotonically_increasing_id().alias(_MID), *keys, *extra
        )
    aggs = [F.count(F.lit(1)).alias("n"), F.min(_MID).alias("m0")]
    aggs += [F.max(c).alias(c) for c in ("__gio_fsize", "__gio_mtime") if c in base.columns]
    stats = sorted(
        base.groupBy(*key_names).agg(*aggs).collect(), key=lambda r: tuple(r[k] for k in key_names)
    )
    offset = 0
    rows = []
    for r in stats:
        rows.append((*[r[k] for k in key_names], offset - int(r["m0"])))
        offset += int(r["n"])
    table = pa.table(
        {
            **{k: [row[i] for row in rows] for i, k in enumerate(key_names)},
            _DELTA: pa.array([row[-1] for row in rows], pa.int64()),
        }
    )
    if _BLK in key_names:
        table = table.cast(pa.schema([(_FILE, pa.string()), (_BLK, pa.int64()), (_DELTA, pa.int64())]))
    else:
        table = table.cast(pa.schema([(_PART, pa.int64()), (_DELTA, pa.int64())]))
    splits = F.broadcast(spark.createDataFrame(table))
    frame = base.join(splits, key_names).select(
        *[_col(c) for c in columns], (F.col(_MID) + F.col(_DELTA)).alias(ROW)
    )
    return frame, offset, stats


def _warn_if_shuffled(df: DataFrame, where: str) -> None:
    """Row ids follow the partition order: warn when a shuffle makes that order vary between passes."""
    try:
        plan = str(df._jdf.queryExecution().executedPlan().toString())
    except Exception:  # Spark Connect, or a changed internal API: nothing to check
        return
    if "Exchange" in plan and "InMemoryTableScan" not in plan and "Scan ExistingRDD" not in plan:
        logger.warning(
            "%s: its plan has a shuffle, so its row order may differ between passes; cache or "
            "checkpoint it, or give it a gio_row_id column, for stable gio_row_id values",
            where,
        )


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
        table = _collect_table(self.labels.where(F.col(CLUSTER).isin([int(c) for c in raw])).select(ROW, CLUSTER))
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
