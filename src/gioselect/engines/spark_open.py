"""Opening inputs on Spark: files and DataFrames numbered, embedding columns checked, rows read by id.

:class:`SparkReader` is the reading half of :class:`gioselect.engines.spark.SparkEngine` (see that module's
docstring for how rows are numbered).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..errors import (
    InvalidInputError,
    InvalidParameterError,
    InvalidTypeError,
)
from ..io.csv import split_csv_line
from ..io.files import describe_file
from ..io.vectors import (
    PREFERRED_EMBEDDING_FIELDS,
    REFERENCE_CSV_FIELD,
    choose_field,
    fmt_names,
    looks_like_vector,
    missing_field,
    parse_vector_text,
)
from .spark_base import (
    BAD,
    BLOCK_COL,
    CORRUPT_COL,
    DELTA_COL,
    FEAT,
    FILE_COL,
    MID_COL,
    PART_COL,
    RAW,
    ROW,
    SparkSource,
    TextEmbedBatches,
    col_ref,
    collect_table,
    detect_spark_format,
    errors_from_spark,
    is_local_path,
    is_string_spark_type,
    is_vector_spark_type,
    local_path,
    spark_path,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["SparkReader"]

logger = logging.getLogger(__name__)


class SparkReader:
    """Open inputs and read their rows (the engine's ``spark`` session is set by the subclass)."""

    spark: SparkSession

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
        fmt = detect_spark_format(spath, name)
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
        has_bad = fmt == "jsonl" and CORRUPT_COL in columns
        if has_bad:
            columns.remove(CORRUPT_COL)
        if key_order is not None:  # Spark sorts json columns by name; keep the file's order
            columns = [c for c in key_order if c in columns] + [c for c in columns if c not in key_order]
        types = {f.name: f.dataType for f in df.schema.fields}
        field_name, kind = self._choose_column(
            columns, types, fmt, embedding_field, text_field, where, header=header_fields is not None, df=df
        )
        keys = [F_metadata("file_path").alias(FILE_COL), F_metadata("file_block_start").alias(BLOCK_COL)]
        extra = [
            F_metadata("file_size").alias("__gio_fsize"),
            F_metadata("file_modification_time").cast("long").alias("__gio_mtime"),
        ]
        with errors_from_spark(where):
            frame, n_rows, stats = number_rows(
                self.spark, df, columns + ([CORRUPT_COL] if has_bad else []), keys, [FILE_COL, BLOCK_COL], extra
            )
        if n_rows == 0:
            raise InvalidInputError(f"{where}: is empty (0 rows)")
        files: dict[str, dict[str, Any]] = {}
        for r in stats:
            files.setdefault(
                r[FILE_COL],
                {
                    "path": r[FILE_COL],
                    "size": int(r["__gio_fsize"] or 0),
                    "mtime": int(r["__gio_mtime"] or 0),
                    "rows": 0,
                },
            )["rows"] += int(r["n"])
        first_file = min(f for f, v in files.items() if v["rows"] > 0)
        raw_cols = [col_ref(ROW).alias(ROW), col_ref(field_name).alias(RAW)] + (
            [col_ref(CORRUPT_COL).alias(BAD)] if has_bad else []
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
            frame=frame.drop(CORRUPT_COL) if has_bad else frame,
            raw=raw,
            kind=kind,
            where=where,
            has_bad=has_bad,
            files=sorted(files.values(), key=lambda v: v["path"]),
        )
        if kind != "text":
            with errors_from_spark(where):
                row0 = (
                    self._reader(fmt, csv_opts).load(first_file).select(col_ref(field_name)).limit(1).collect()
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
            if not is_string_spark_type(types[text_field]):
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
            if not is_vector_spark_type(t):
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
        candidates = [c for c in columns if is_vector_spark_type(types[c])]
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
            frame = df.select(*[col_ref(c) for c in columns], col_ref(ROW_ID_COLUMN).cast("long").alias(ROW))
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
            warn_if_shuffled(df, where)
            frame, n_rows, _ = number_rows(
                self.spark, df, columns, [F.shiftright(F.col(MID_COL), 33).alias(PART_COL)], [PART_COL], []
            )
        if n_rows == 0:
            raise InvalidInputError(f"{where}: is empty (0 rows)")
        raw = frame.select(col_ref(ROW).alias(ROW), col_ref(field_name).alias(RAW))
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
        raw = emb.select(col_ref(ROW).alias(ROW), col_ref(FEAT).alias(RAW))
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
        return self.collect_rows(src, ids, lambda uniq: self.vectors(src, uniq), FEAT, src.dim, np.float32)

    def collect_rows(self, src: SparkSource, ids: np.ndarray, frame: Callable[[np.ndarray], DataFrame],
                     column: str, width: int, dtype: Any) -> np.ndarray:
        """The list column ``column`` (``width`` values a row, as ``dtype``) of ``frame(unique ids)``, a
        ``(row id, column)`` frame computed on the executors, for the rows ``ids`` in the order given."""
        uniq = np.unique(ids)
        with errors_from_spark(src.where):
            table = collect_table(frame(uniq))
        got = np.asarray(table.column(ROW).to_numpy(), dtype=np.int64)
        x = np.asarray(
            table.column(column).combine_chunks().flatten().to_numpy(zero_copy_only=False), dtype=dtype
        ).reshape(len(got), width)
        order = np.argsort(got)
        got, x = got[order], x[order]
        if got.shape[0] != uniq.shape[0] or not np.array_equal(got, uniq):
            raise InvalidInputError(
                f"{src.where}: found {got.shape[0]} of {uniq.shape[0]} requested rows (did the input change?)"
            )
        return np.ascontiguousarray(x[np.searchsorted(got, ids)])

    def take_block_rows(self, src: SparkSource, memory_budget: int) -> int:
        """Rows one :meth:`take` may fetch. Each take is a pass over the pool, so as many as fit a quarter of
        ``memory_budget`` and half of ``spark.driver.maxResultSize`` (a larger collect fails), and at least
        :data:`gioselect.quantize.REFINE_BLOCK_ROWS`."""
        from ..job.config import parse_memory
        from ..quantize import REFINE_BLOCK_ROWS

        cap = int(memory_budget) // 4
        limit = parse_memory(str(self.spark.conf.get("spark.driver.maxResultSize", "1g")))
        if limit > 0:
            cap = min(cap, limit // 2)
        return max(REFINE_BLOCK_ROWS, cap // (4 * src.dim + 16))

    def read_all(self, src: SparkSource) -> np.ndarray:
        """Every row, in row order: only what the driver holds anyway (the target, a pool of <= K rows)."""
        with errors_from_spark(src.where):
            table = collect_table(self.vectors(src))
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


def F_metadata(name: str) -> Any:
    """A field of Spark's hidden ``_metadata`` column of file sources."""
    from pyspark.sql import functions as F

    return F.col(f"_metadata.{name}")


def number_rows(
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

    if key_names == [PART_COL]:  # the partition index is the upper bits of monotonically_increasing_id
        base = df.select(*[col_ref(c) for c in columns], F.monotonically_increasing_id().alias(MID_COL))
        base = base.select("*", *keys)
    else:  # _metadata must be read from the scan itself, next to monotonically_increasing_id
        base = df.select(
            *[col_ref(c) for c in columns], F.monotonically_increasing_id().alias(MID_COL), *keys, *extra
        )
    aggs = [F.count(F.lit(1)).alias("n"), F.min(MID_COL).alias("m0")]
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
            DELTA_COL: pa.array([row[-1] for row in rows], pa.int64()),
        }
    )
    if BLOCK_COL in key_names:
        table = table.cast(pa.schema([(FILE_COL, pa.string()), (BLOCK_COL, pa.int64()), (DELTA_COL, pa.int64())]))
    else:
        table = table.cast(pa.schema([(PART_COL, pa.int64()), (DELTA_COL, pa.int64())]))
    splits = F.broadcast(spark.createDataFrame(table))
    frame = base.join(splits, key_names).select(
        *[col_ref(c) for c in columns], (F.col(MID_COL) + F.col(DELTA_COL)).alias(ROW)
    )
    return frame, offset, stats


def warn_if_shuffled(df: DataFrame, where: str) -> None:
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


