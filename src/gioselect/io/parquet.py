"""The parquet format: an embedding column of ``list``, ``large_list`` or ``fixed_size_list`` of numbers.

Read by row group and record batch, so memory per block is bounded by ``block_rows``; row groups that hold
none of the wanted rows are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InvalidInputError, InvalidParameterError, InvalidTypeError
from .columns import arrow_text_field, arrow_vector_dim, arrow_vector_field, text_table_blocks
from .files import atomic_path, describe_file
from .source import (
    RANK_COLUMN,
    ROW_ID_COLUMN,
    EmbeddingSource,
    added_columns,
    rebatch,
    warn_overwrite,
)
from .vectors import (
    list_array_to_matrix,
    missing_field,
    select_local,
)


class _ParquetSource(EmbeddingSource):
    """A parquet file with a list-of-numbers embedding column, read by row group and record batch."""

    format = "parquet"

    def _file(self) -> pq.ParquetFile:
        """Open the file, turning Arrow errors into InvalidInputError."""
        try:
            return pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as exc:
            raise InvalidInputError(f"{self.where}: cannot be read as parquet ({exc})") from exc

    def _tables(
        self, block_rows: int, columns: list[str] | None, wanted: np.ndarray | None
    ) -> Iterator[tuple[int, pa.Table]]:
        """Yield (row0, table of <= block_rows rows); with ``wanted``, skip row groups holding none."""
        pf = self._file()
        try:
            if wanted is None:
                batches = pf.iter_batches(batch_size=block_rows, columns=columns, use_threads=True)
                row0 = 0
                for table in rebatch(batches, block_rows):
                    yield row0, table
                    row0 += table.num_rows
                return
            start = 0
            for rg in range(pf.metadata.num_row_groups):
                size = pf.metadata.row_group(rg).num_rows
                lo, hi = np.searchsorted(wanted, [start, start + size])
                if hi > lo:
                    batches = pf.iter_batches(batch_size=block_rows, row_groups=[rg], columns=columns)
                    row0 = start
                    for table in rebatch(batches, block_rows):
                        yield row0, table
                        row0 += table.num_rows
                start += size
                if start > wanted[-1]:
                    return
        except (pa.ArrowException, OSError) as exc:
            raise InvalidInputError(f"{self.where}: cannot be read (corrupt parquet?): {exc}") from exc

    def _raw_blocks(self, block_rows: int, wanted: np.ndarray | None) -> Iterator[tuple[int, int, Any]]:
        for row0, table in self._tables(block_rows, [str(self.embedding_field)], wanted):
            yield row0, table.num_rows, table.column(0)

    def _convert(self, raw: Any, rows: np.ndarray, local: np.ndarray | None) -> np.ndarray:
        arr = raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw
        if local is not None:
            arr = arr.take(pa.array(local))
        return list_array_to_matrix(arr, rows, self.dim, self.where, self._what)


def open_source(path: Path, field: str | None, name: str) -> EmbeddingSource:
    """Open and check a parquet file (the file exists and is not empty)."""
    where = describe_file(path, name)
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
        n = int(pf.metadata.num_rows)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInputError(f"{where}: cannot be read as parquet (corrupt or truncated?): {exc}") from exc
    columns = list(schema.names)
    if n == 0:
        raise InvalidInputError(f"{where}: is empty (0 rows)")
    field = arrow_vector_field(schema, field, where)
    try:
        first = next(pf.iter_batches(batch_size=1, columns=[field])).column(0)
    except (pa.ArrowException, OSError, StopIteration) as exc:
        raise InvalidInputError(f"{where}: cannot be read (corrupt parquet?): {exc}") from exc
    dim = arrow_vector_dim(first, field, where)
    return _ParquetSource(path, n_rows=n, dim=dim, embedding_field=field, columns=columns, name=name)


def text_blocks(
    path: Path, field: str, block_rows: int, where: str
) -> Iterator[tuple[int, list[str]]]:
    """Text blocks of a parquet column (checked eagerly, read lazily)."""
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInputError(f"{where}: cannot be read as parquet (corrupt or truncated?): {exc}") from exc
    arrow_text_field(schema, field, where)
    if pf.metadata.num_rows == 0:
        raise InvalidInputError(f"{where}: is empty (0 rows)")

    def gen() -> Iterator[tuple[int, list[str]]]:
        try:
            yield from text_table_blocks(rebatch(pf.iter_batches(batch_size=block_rows, columns=[field]),
                                                 block_rows), field, where)
        except (pa.ArrowException, OSError) as exc:
            raise InvalidInputError(f"{where}: cannot be read (corrupt parquet?): {exc}") from exc

    return gen()


def write_selected(
    src: EmbeddingSource, uniq: np.ndarray, ranks: np.ndarray | None, out: Path, block_rows: int
) -> None:
    """Write the selected rows of a parquet pool with all columns plus the gio columns."""
    assert isinstance(src, _ParquetSource)
    pf = src._file()
    extra = [ROW_ID_COLUMN] + ([RANK_COLUMN] if ranks is not None else [])
    warn_overwrite(src, extra)
    schema = pf.schema_arrow
    for c in extra:
        if c in schema.names:
            schema = schema.remove(schema.get_field_index(c))
        schema = schema.append(pa.field(c, pa.int64()))

    def finish(table: pa.Table, row_ids: np.ndarray, rk: np.ndarray | None) -> pa.Table:
        for c, values in added_columns(row_ids, rk):
            if c in table.column_names:
                table = table.drop_columns([c])
            table = table.append_column(pa.field(c, pa.int64()), pa.array(values, pa.int64()))
        return table.select(schema.names).cast(schema)

    with atomic_path(out) as tmp:
        with pq.ParquetWriter(tmp, schema) as writer:
            done = 0
            if len(uniq):
                for row0, table in src._tables(block_rows, None, uniq):
                    local = select_local(uniq, row0, table.num_rows)
                    assert local is not None
                    if not local.size:
                        continue
                    rk = None if ranks is None else ranks[done : done + local.size]
                    writer.write_table(finish(table.take(pa.array(local)), row0 + local, rk))
                    done += local.size
            else:
                writer.write_table(schema.empty_table())
        if done != len(uniq):
            raise InvalidInputError(f"{src.where}: wrote {done} of {len(uniq)} selected rows (file changed?)")


def open_rows(path: Path, n: int, name: str) -> EmbeddingSource:
    """Open a parquet file of ``n`` rows (already counted, n > 0) with no embedding column."""
    where = describe_file(path, name)
    try:
        columns = list(pq.ParquetFile(path).schema_arrow.names)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInputError(f"{where}: cannot be read as parquet (corrupt or truncated?): {exc}") from exc
    return _ParquetSource(path, n_rows=n, dim=0, embedding_field=None, columns=columns, name=name)


def read_values(path: Path, field: str, name: str) -> list[Any]:
    """Every value of one parquet column, in row order."""
    where = describe_file(path, name)
    try:
        pf = pq.ParquetFile(path)
        columns = list(pf.schema_arrow.names)
        if field not in columns:
            raise missing_field(field, columns, where)
        values: list[Any] = pf.read(columns=[field]).column(0).to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInputError(f"{where}: cannot be read as parquet: {exc}") from exc
    return values


def count(path: Path, where: str) -> int:
    """Rows of a non-empty parquet file, from its metadata."""
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInputError(
            f"{where}: cannot be read as parquet (corrupt or truncated?): {exc}"
        ) from exc


def write_matrix(path: Path, arr: np.ndarray, extra_columns: dict[str, list[Any]] | None) -> None:
    """Write a checked float32 matrix as a fixed_size_list column ``embedding`` plus ``extra_columns``."""
    n, d = arr.shape
    cols: dict[str, pa.Array] = {
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1), type=pa.float32()), d)
    }
    for col, values in (extra_columns or {}).items():
        if not isinstance(col, str) or not col or col in cols:
            raise InvalidParameterError(f"extra_columns: bad or repeated column name {col!r}")
        if len(values) != n:
            raise InvalidParameterError(
                f"extra_columns[{col!r}] has {len(values)} values, expected {n} (one per row)"
            )
        try:
            cols[col] = pa.array(values)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise InvalidTypeError(
                f"extra_columns[{col!r}] cannot be stored as one column type: {exc}"
            ) from exc
    with atomic_path(path) as tmp:
        pq.write_table(pa.table(cols), tmp)
