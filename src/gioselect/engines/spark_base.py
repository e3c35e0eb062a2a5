"""The Spark engine's foundations: session, paths, errors shipped from executors, batch converters, sources.

Shared by :mod:`gioselect.engines.spark_open` (opening and reading inputs) and :mod:`gioselect.engines.spark`
(K-means, assignment, explode, write). Nothing here imports pyspark at import time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from .. import errors as _errors
from ..errors import (
    GIOError,
    InvalidInputError,
    InvalidTypeError,
    MissingDependencyError,
)
from ..io import detect_format
from ..io.files import describe_file
from ..io.vectors import (
    list_array_to_matrix,
    strings_to_matrix,
)
from ..quantize import (
    assign_blocks,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


__all__ = [
    "ASSIGNMENT_NAME",
    "BAD",
    "BLOCK_COL",
    "CLUSTER",
    "CORRUPT_COL",
    "DELTA_COL",
    "DIST",
    "DRIVER_KMEANS_BYTES",
    "ERR_RE",
    "ERR_TAG",
    "FEAT",
    "FILE_COL",
    "KMEANS_METHODS",
    "MID_COL",
    "NUMERIC_SPARK",
    "PART_COL",
    "RANK",
    "RAW",
    "ROW",
    "SCHEME_RE",
    "SPARK_INSTALL_HINT",
    "Converter",
    "SparkSource",
    "TextEmbedBatches",
    "batch_features",
    "col_ref",
    "collect_table",
    "detect_spark_format",
    "errors_from_spark",
    "faiss_threads",
    "import_pyspark",
    "is_local_path",
    "is_string_spark_type",
    "is_vector_spark_type",
    "local_path",
    "matrix_array",
    "shipped",
    "spark_path",
    "spark_session",
    "task_threads"
]

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
MID_COL = "__gio_mid"
FILE_COL = "__gio_file"
BLOCK_COL = "__gio_blk"
PART_COL = "__gio_part"
DELTA_COL = "__gio_delta"
CORRUPT_COL = "_corrupt_record"
ERR_TAG = "GIOSELECT-ERROR"
ERR_RE = re.compile(rf"\[{ERR_TAG}:(\w+)\](.*?)\[/{ERR_TAG}\]", re.S)
NUMERIC_SPARK = (
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
SCHEME_RE = re.compile(r"^([A-Za-z][\w+.-]*):/(?!/)")


def import_pyspark() -> Any:
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
    import_pyspark()
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
    return SCHEME_RE.sub(r"\1://", str(p))


def is_local_path(path: str) -> bool:
    """True for a plain path or a ``file:`` URI."""
    m = re.match(r"^([A-Za-z][\w+.-]*)://", path)
    return m is None or m.group(1).lower() == "file"


def local_path(path: str) -> Path:
    return Path(re.sub(r"^file://", "", path))


def detect_spark_format(path: str, name: str) -> str:
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


def shipped(exc: GIOError) -> RuntimeError:
    """Wrap an input error raised in a Python worker so the driver can raise it again with its type."""
    return RuntimeError(f"[{ERR_TAG}:{type(exc).__name__}]{exc}[/{ERR_TAG}]")


@contextlib.contextmanager
def errors_from_spark(where: str | None = None) -> Iterator[None]:
    """Re-raise input errors shipped from executors, and Spark's path errors, as gioselect errors."""
    try:
        yield
    except GIOError:
        raise
    except Exception as exc:
        text = str(exc)
        m = ERR_RE.search(text)
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


def task_threads() -> int:
    """CPU cores of the running task (``spark.task.cpus``), 1 outside a task."""
    try:
        from pyspark import TaskContext

        tc = TaskContext.get()
        return max(1, int(tc.cpus())) if tc is not None else 1
    except Exception:  # pragma: no cover - older pyspark
        return 1


def batch_features(batch: pa.RecordBatch, col: int, dim: int) -> np.ndarray:
    """The float32 (n, dim) matrix of a converted ``array<float>`` column (no nulls: converted already)."""
    arr = batch.column(col)
    flat = arr.flatten() if len(arr) else pa.array([], pa.float32())
    return np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(arr), dim)


def matrix_array(x: np.ndarray, value_type: pa.DataType | None = None) -> pa.Array:
    """A (n, d) matrix as an Arrow list column (``list<float>`` unless ``value_type`` says otherwise)."""
    n, d = x.shape
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32) if n else np.zeros(1, np.int32))
    values = pa.array(np.ascontiguousarray(x).reshape(-1), pa.float32() if value_type is None else value_type)
    return pa.ListArray.from_arrays(offsets, values)


@dataclass
class Converter:
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
        threads = task_threads()
        for batch in batches:
            if batch.num_rows == 0:
                continue
            try:
                rows, x = self.matrix(batch)
            except GIOError as exc:
                raise shipped(exc) from None
            if self.centroids is None:
                yield pa.RecordBatch.from_arrays(
                    [pa.array(rows, pa.int64()), matrix_array(x)], names=[ROW, FEAT]
                )
            else:
                faiss_threads(threads)
                labels, sq = assign_blocks([(0, x)], self.centroids, x.shape[0])
                yield pa.RecordBatch.from_arrays(
                    [pa.array(rows, pa.int64()), pa.array(labels, pa.int32()), pa.array(sq, pa.float32())],
                    names=[ROW, CLUSTER, DIST],
                )


def faiss_threads(n: int) -> None:
    import faiss

    faiss.omp_set_num_threads(int(n))


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

        embedder = TextEmbedder(self.model, batch_size=self.batch_size, threads=task_threads())
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
                raise shipped(exc) from None
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

    def converter(self, centroids: np.ndarray | None = None) -> Converter:
        return Converter(self.kind, self.dim, self.where, self.what, self.has_bad, centroids)


def col_ref(name: str) -> Any:
    """A column reference that survives dots and spaces in the name."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def is_vector_spark_type(t: Any) -> bool:
    from pyspark.sql.types import ArrayType

    return isinstance(t, ArrayType) and t.elementType.simpleString().split("(")[0] in NUMERIC_SPARK


def is_string_spark_type(t: Any) -> bool:
    from pyspark.sql.types import StringType

    return isinstance(t, StringType)


def collect_table(df: DataFrame) -> pa.Table:
    """Collect a small DataFrame as an Arrow table."""
    to_arrow = getattr(df, "toArrow", None)
    if to_arrow is not None:
        return to_arrow()
    return pa.Table.from_pandas(df.toPandas(), preserve_index=False)  # pragma: no cover - pyspark < 4


