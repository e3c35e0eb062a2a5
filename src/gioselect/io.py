"""Readers and writers for pools and targets of embeddings: ``.npy``, parquet, csv/tsv and jsonl.

Everything here streams: a ``.npy`` file is memory-mapped and read in slices, parquet is read by row group and
record batch, csv with :func:`pyarrow.csv.open_csv` and jsonl line by line; memory per block is bounded by
``block_rows``. Files are validated cheaply when opened (existence, extension, empty file, embedding column,
dtype, first vector) and fully while blocks are read, with errors that name the file, the 0-based data row
and the column or field. Writers are atomic: they write a temporary file beside the target and ``os.replace``
it into place, removing the temporary file on any error.

Layouts
-------
npy
    A 2-D numeric array (float or int; bool, complex, string and object arrays are refused; pickles are
    never loaded).
parquet
    An embedding column of ``list``, ``large_list`` or ``fixed_size_list`` of numbers.
csv / tsv
    Either the layout of the reference package (grad-info-opt): tab-delimited, no header, columns named
    Spark-style ``_c0, _c1, _c2...`` with one column (``_c2`` there) holding the vector as a string
    ``"[0.1, 0.2, ...]"``; or a csv with a header row naming the columns. The delimiter is a tab for ``.tsv``
    and for a ``.csv`` whose first line contains a tab, a comma otherwise. A file has no header row when a
    field of its first line parses as a vector.
jsonl / ndjson
    One JSON object per line, the embedding field a list of numbers. Blank lines are skipped and do not
    count as rows.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from .errors import GIOError, InvalidInputError, InvalidParameterError, InvalidTypeError
from .validation import check_embeddings, check_int

__all__ = [
    "FORMATS",
    "PREFERRED_EMBEDDING_FIELDS",
    "RANK_COLUMN",
    "ROW_ID_COLUMN",
    "EmbeddingSource",
    "atomic_path",
    "count_rows",
    "detect_format",
    "file_sha256",
    "iter_text_blocks",
    "open_embeddings",
    "open_table",
    "read_column",
    "read_texts",
    "write_embeddings",
    "write_selected_rows",
]

logger = logging.getLogger(__name__)

FORMATS = ("npy", "parquet", "csv", "jsonl")
_EXTENSIONS = {
    ".npy": "npy",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
PREFERRED_EMBEDDING_FIELDS = ("embedding", "embeddings", "features", "vector", "vectors", "emb")
#: Column added by :func:`write_selected_rows`: the 0-based row of the pool.
ROW_ID_COLUMN = "gio_row_id"
#: Column added by :func:`write_selected_rows` when ``rank`` is given: position in the selection order.
RANK_COLUMN = "gio_rank"
_REFERENCE_CSV_FIELD = "_c2"
_WRITE_BLOCK_ROWS = 8192
_MAX_FIRST_LINE_BYTES = 1 << 28


# ----------------------------------------------------------------------------------------------------------
# small helpers


def _where(path: Path, name: str) -> str:
    """Prefix of every message about one input file."""
    return f"{name} file '{path}'"


def _accepted() -> str:
    """The accepted extensions, for messages."""
    return ", ".join(_EXTENSIONS)


def _fmt_names(names: Iterable[str]) -> str:
    """Quote a list of column names for a message."""
    names = list(names)
    return ", ".join(repr(n) for n in names) if names else "(none)"


def detect_format(path: str | os.PathLike[str]) -> str:
    """Tell a file's format from its extension.

    Parameters
    ----------
    path : str or path-like
        The file. Extensions are matched case-insensitively: ``.npy``; ``.parquet``, ``.pq``; ``.csv``,
        ``.tsv``; ``.jsonl``, ``.ndjson``.

    Returns
    -------
    str
        One of :data:`FORMATS`: ``"npy"``, ``"parquet"``, ``"csv"`` or ``"jsonl"``.

    Raises
    ------
    InvalidInputError
        The extension is not one of the accepted ones (the message names the file and lists them).
    """
    p = Path(path)
    fmt = _EXTENSIONS.get(p.suffix.lower())
    if fmt is None:
        ext = f"extension '{p.suffix}'" if p.suffix else "no extension"
        raise InvalidInputError(
            f"cannot tell the format of file '{p}' ({ext}); accepted extensions: {_accepted()}"
        )
    return fmt


def _check_file(path: Path, name: str) -> None:
    """Raise unless ``path`` is an existing, non-empty regular file."""
    where = _where(path, name)
    if not path.exists():
        raise InvalidInputError(f"{where}: no such file")
    if path.is_dir():
        raise InvalidInputError(
            f"{where}: is a directory (a Spark-style dataset of part files?); pass a single file"
        )
    if path.stat().st_size == 0:
        raise InvalidInputError(f"{where}: is empty (0 bytes, 0 rows)")


def _check_field_arg(field: str | None, what: str) -> None:
    """Check an optional column-name argument."""
    if field is not None and (not isinstance(field, str) or not field):
        raise InvalidParameterError(f"{what} must be a non-empty string or None, got {field!r}")


def _choose_field(candidates: list[str], columns: list[str], where: str, preferred: tuple[str, ...]) -> str:
    """Pick the embedding field among autodetected candidates, or say why it cannot be picked."""
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise InvalidInputError(
            f"{where}: found no column holding vectors (lists of numbers) among the columns "
            f"{_fmt_names(columns)}; name the vector column with embedding_field (--embedding-field), or, if "
            "a column holds text, embed it with text_field (--text-field COLUMN)"
        )
    liked = [c for c in candidates if c in preferred]
    if len(liked) == 1:
        return liked[0]
    raise InvalidInputError(
        f"{where}: several columns hold vectors: {_fmt_names(candidates)}; cannot tell which is the "
        "embedding, name it with embedding_field (--embedding-field)"
    )


def _missing_field(field: str, columns: list[str], where: str, hint: str = "") -> InvalidInputError:
    """The error for an embedding or text column that does not exist."""
    return InvalidInputError(f"{where}: has no column {field!r}; its columns are {_fmt_names(columns)}{hint}")


def _check_indices(indices: Any, n_rows: int, what: str, where: str) -> np.ndarray:
    """Validate 0-based row indices into a file of ``n_rows`` rows; return them as int64."""
    a = np.asarray(indices)
    if a.ndim != 1:
        raise InvalidParameterError(f"{what} must be a 1-D array of row numbers, got shape {a.shape}")
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    if a.dtype.kind not in "iu":
        raise InvalidParameterError(f"{what} must be integers (0-based row numbers), got dtype {a.dtype}")
    a64 = a.astype(np.int64)
    bad = np.flatnonzero((a64 < 0) | (a64 >= n_rows))
    if bad.size:
        i = int(bad[0])
        raise InvalidParameterError(
            f"{what}[{i}] = {a[i]} is out of range for {where} with {n_rows} rows "
            f"(valid: 0..{n_rows - 1}); {bad.size} bad value(s) in all"
        )
    return a64


def _finish_matrix(values: np.ndarray, rows: np.ndarray, where: str, what: str) -> np.ndarray:
    """Convert a (b, dim) block to float32 and check every value is finite; rows are global row numbers."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(values, dtype=np.float32)
    if not out.flags.writeable:  # a view of a read-only memory map: hand out a copy the caller may modify
        out = out.copy()
    if out.size == 0:
        return out
    # A float64 sum of finite float32 values cannot overflow; NaN and inf propagate.
    ok = np.isfinite(out.sum(axis=1, dtype=np.float64))
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        j = int(np.flatnonzero(~np.isfinite(out[i]))[0])
        src = values[i, j]
        if np.isnan(src):
            desc = "NaN"
        elif np.isinf(src):
            desc = "inf" if src > 0 else "-inf"
        else:
            desc = f"{float(src)!r}, which overflows float32"
        raise InvalidInputError(
            f"{where}: row {int(rows[i])} {what} element {j} is {desc}; embeddings must be finite "
            f"({int((~ok).sum())} bad row(s) in this block)"
        )
    return out


def _is_numeric_type(t: pa.DataType) -> bool:
    """True for Arrow integer, floating and decimal types (not bool)."""
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _is_list_type(t: pa.DataType) -> bool:
    """True for list, large_list and fixed_size_list types."""
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))


def _is_vector_type(t: pa.DataType) -> bool:
    """True for a list-like Arrow type of numbers."""
    return _is_list_type(t) and _is_numeric_type(t.value_type)


def _list_lengths(arr: pa.Array) -> np.ndarray:
    """Length of every list in a list-like array (nulls count 0)."""
    if pa.types.is_fixed_size_list(arr.type):
        return np.full(len(arr), arr.type.list_size, dtype=np.int64)
    lengths = np.asarray(pc.list_value_length(arr).to_numpy(zero_copy_only=False))
    if arr.null_count:  # null lists come out as NaN
        lengths = np.nan_to_num(lengths, nan=0.0)
    return lengths.astype(np.int64)


def _list_array_to_matrix(arr: pa.Array, rows: np.ndarray, dim: int, where: str, what: str) -> np.ndarray:
    """Turn a list-like Arrow array of numbers (one entry per row) into a validated float32 (b, dim) block."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not _is_vector_type(arr.type):
        raise InvalidTypeError(f"{where}: {what} has type {arr.type}; expected a list of numbers")
    if arr.null_count:
        i = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise InvalidInputError(
            f"{where}: row {int(rows[i])} {what} is null; expected a list of {dim} numbers"
        )
    lengths = _list_lengths(arr)
    bad = np.flatnonzero(lengths != dim)
    if bad.size:
        i = int(bad[0])
        raise InvalidInputError(
            f"{where}: row {int(rows[i])} {what} has {int(lengths[i])} values, expected {dim} "
            "(the length of row 0); rows must all have the same length"
        )
    values = arr.flatten()
    if values.null_count:
        k = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        raise InvalidTypeError(
            f"{where}: row {int(rows[k // dim])} {what} element {k % dim} is null; expected a number"
        )
    if pa.types.is_decimal(values.type):
        values = values.cast(pa.float64())
    flat = np.asarray(values.to_numpy(zero_copy_only=False))
    return _finish_matrix(flat.reshape(len(arr), dim), rows, where, what)


def _parse_vector_text(text: Any) -> list[float]:
    """Parse ``"[0.1, 0.2]"``; raise ValueError (not a bracketed list) or TypeError (non-numeric element)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("is empty; expected a vector like '[0.1, 0.2]'")
    t = text.strip()
    if len(t) < 2 or t[0] != "[" or t[-1] != "]":
        shown = t if len(t) <= 40 else t[:37] + "..."
        raise ValueError(f"is {shown!r}, not a vector like '[0.1, 0.2]'")
    body = t[1:-1].strip()
    if not body:
        raise ValueError("is an empty vector '[]'")
    out = []
    for k, item in enumerate(body.split(",")):
        s = item.strip()
        try:
            out.append(float(s))
        except ValueError:
            raise TypeError(f"element {k} is {s!r}, not a number") from None
    return out


def _looks_like_vector(text: Any) -> bool:
    """True when a csv field parses as a vector of numbers."""
    try:
        _parse_vector_text(text)
    except (ValueError, TypeError):
        return False
    return True


def _strings_to_matrix(arr: pa.Array, rows: np.ndarray, dim: int, where: str, what: str) -> np.ndarray:
    """Parse a string array of vectors ``"[0.1, 0.2]"`` into a validated float32 (b, dim) block."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    values: np.ndarray | None = None
    try:  # vectorised fast path; any anomaly falls back to the row-by-row parser, which names the row
        if arr.null_count == 0 and len(arr):
            s = pc.utf8_trim_whitespace(arr)
            framed = pc.and_(pc.starts_with(s, "["), pc.ends_with(s, "]"))
            if pc.all(framed).as_py():
                parts = pc.split_pattern(pc.utf8_slice_codeunits(s, 1, -1), ",")
                if bool(np.all(_list_lengths(parts) == dim)):
                    nums = pc.cast(pc.utf8_trim_whitespace(parts.flatten()), pa.float64())
                    values = np.asarray(nums.to_numpy(zero_copy_only=False)).reshape(len(arr), dim)
    except pa.ArrowInvalid:
        values = None
    if values is None:
        values = np.empty((len(arr), dim), dtype=np.float64)
        for i, text in enumerate(arr.to_pylist()):
            try:
                vec = _parse_vector_text(text)
            except ValueError as exc:
                raise InvalidInputError(f"{where}: row {int(rows[i])} {what} {exc}") from None
            except TypeError as exc:
                raise InvalidTypeError(f"{where}: row {int(rows[i])} {what} {exc}") from None
            if len(vec) != dim:
                raise InvalidInputError(
                    f"{where}: row {int(rows[i])} {what} has {len(vec)} values, expected {dim} "
                    "(the length of row 0); rows must all have the same length"
                )
            values[i] = vec
    return _finish_matrix(values, rows, where, what)


def _rebatch(batches: Iterable[pa.RecordBatch], block_rows: int) -> Iterator[pa.Table]:
    """Regroup record batches into tables of exactly ``block_rows`` rows (the last may be short)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        count += batch.num_rows
        while count >= block_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, block_rows)
            rest = table.slice(block_rows)
            pending = [b for b in rest.to_batches() if b.num_rows]
            count = rest.num_rows
    if count:
        yield pa.Table.from_batches(pending)


def _select_local(wanted: np.ndarray | None, row0: int, b: int) -> np.ndarray | None:
    """Positions within the block [row0, row0 + b) of the sorted global rows ``wanted`` (None: all)."""
    if wanted is None:
        return None
    lo, hi = np.searchsorted(wanted, [row0, row0 + b])
    return wanted[lo:hi] - row0


# ----------------------------------------------------------------------------------------------------------
# sources


class EmbeddingSource:
    """An opened file of embeddings, read in blocks; returned by :func:`open_embeddings`.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    format : str
        One of :data:`FORMATS`.
    n_rows : int
        Number of data rows (header and blank lines excluded).
    dim : int
        Length of each vector (from row 0).
    embedding_field : str or None
        The column holding the vectors (None for ``.npy``).
    columns : list of str
        All columns of the file, in order (empty for ``.npy``).
    name : str
        How the file is named in messages (``"pool"``, ``"target"``).
    """

    format = ""

    def __init__(
        self,
        path: Path,
        *,
        n_rows: int,
        dim: int,
        embedding_field: str | None,
        columns: list[str],
        name: str,
    ) -> None:
        self.path = path
        self.n_rows = n_rows
        self.dim = dim
        self.embedding_field = embedding_field
        self.columns = columns
        self.name = name

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(path='{self.path}', format={self.format!r}, n_rows={self.n_rows}, "
            f"dim={self.dim}, embedding_field={self.embedding_field!r})"
        )

    @property
    def where(self) -> str:
        """How messages name this file: ``"pool file '<path>'"``."""
        return _where(self.path, self.name)

    @property
    def _what(self) -> str:
        """How messages name the embedding column."""
        return f"column {self.embedding_field!r}" if self.embedding_field is not None else "vector"

    def iter_blocks(self, block_rows: int = 65536) -> Iterator[tuple[int, np.ndarray]]:
        """Read the whole file in blocks of rows, validating every value.

        Parameters
        ----------
        block_rows : int, default 65536
            Rows per block (the last block may be shorter; parquet blocks follow the file's row groups).

        Yields
        ------
        row0 : int
            Global 0-based row number of the block's first row.
        block : ndarray of shape (b, dim), float32, C-contiguous
            The vectors of rows ``row0 .. row0 + b - 1``.

        Raises
        ------
        InvalidInputError
            A NaN/inf, a ragged or null vector, or an unreadable file; the message names the file, the
            0-based row and the column.
        InvalidTypeError
            A non-numeric value.
        """
        block_rows = check_int(block_rows, "block_rows", low=1)
        return self._iter_blocks(block_rows)

    def _iter_blocks(self, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """Generator behind iter_blocks (block_rows already valid)."""
        for row0, _, block in self._blocks(block_rows, None):
            yield row0, block

    def read_rows(self, indices: np.ndarray) -> np.ndarray:
        """Read the given rows, in the given order.

        Parameters
        ----------
        indices : array of int, shape (k,)
            0-based rows, in any order; duplicates are fine.

        Returns
        -------
        ndarray of shape (k, dim), float32
            ``out[i]`` is row ``indices[i]``. Streaming formats are read in one pass (stopping after the
            last wanted row); ``.npy`` is fancy-indexed through the memory map.
        """
        idx = _check_indices(indices, self.n_rows, "indices", self.where)
        if idx.size == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if idx.size == 1 or bool(np.all(idx[1:] > idx[:-1])):  # already sorted and unique: no reordering copy
            return np.ascontiguousarray(self._take_sorted(idx))
        uniq, inverse = np.unique(idx, return_inverse=True)
        rows = self._take_sorted(uniq)
        return np.ascontiguousarray(rows[inverse.reshape(-1)])

    def read_all(self) -> np.ndarray:
        """Read every row into one float32 array of shape (n_rows, dim); for inputs that fit in memory."""
        out = np.empty((self.n_rows, self.dim), dtype=np.float32)
        for row0, _, block in self._blocks(65536, None):
            out[row0 : row0 + len(block)] = block
        return out

    def _take_sorted(self, uniq: np.ndarray) -> np.ndarray:
        """Rows ``uniq`` (sorted, unique, in range) as float32, in one streaming pass."""
        out = np.empty((len(uniq), self.dim), dtype=np.float32)
        filled = 0
        for _, _, block in self._blocks(65536, uniq):
            out[filled : filled + len(block)] = block
            filled += len(block)
        if filled != len(uniq):
            raise InvalidInputError(
                f"{self.where}: found {filled} of {len(uniq)} requested rows (file changed?)"
            )
        return out

    def _blocks(
        self, block_rows: int, wanted: np.ndarray | None
    ) -> Iterator[tuple[int, np.ndarray | None, np.ndarray]]:
        """Yield (row0, local positions or None, validated float32 rows); only ``wanted`` rows if given."""
        end = 0
        for row0, b, raw in self._raw_blocks(block_rows, wanted):
            end = row0 + b
            local = _select_local(wanted, row0, b)
            if local is not None and local.size == 0:
                continue
            rows = np.arange(row0, row0 + b, dtype=np.int64) if local is None else row0 + local
            yield row0, local, self._convert(raw, rows, local)
            if wanted is not None and end > wanted[-1]:
                return
        if wanted is None and end != self.n_rows:
            raise InvalidInputError(
                f"{self.where}: read {end} rows but counted {self.n_rows} when opened (did the file change?)"
            )

    def _raw_blocks(self, block_rows: int, wanted: np.ndarray | None) -> Iterator[tuple[int, int, Any]]:
        """Yield (row0, number of rows in the block, format-specific raw data)."""
        raise NotImplementedError

    def _convert(self, raw: Any, rows: np.ndarray, local: np.ndarray | None) -> np.ndarray:
        """Turn raw block data into validated float32 rows (``local``: which rows of the block)."""
        raise NotImplementedError


class _NpySource(EmbeddingSource):
    """A 2-D numeric ``.npy`` file, memory-mapped."""

    format = "npy"

    def _array(self) -> np.ndarray:
        """The memory map (opened per call, never with pickles allowed)."""
        try:
            return np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InvalidInputError(f"{self.where}: cannot be memory-mapped ({exc})") from exc

    def _raw_blocks(self, block_rows: int, wanted: np.ndarray | None) -> Iterator[tuple[int, int, Any]]:
        mm = self._array()
        for row0 in range(0, self.n_rows, block_rows):
            b = min(block_rows, self.n_rows - row0)
            yield row0, b, mm[row0 : row0 + b]

    def _convert(self, raw: Any, rows: np.ndarray, local: np.ndarray | None) -> np.ndarray:
        block = raw if local is None else raw[local]
        return _finish_matrix(np.asarray(block), rows, self.where, self._what)

    def _take_sorted(self, uniq: np.ndarray) -> np.ndarray:
        mm = self._array()
        out = np.empty((len(uniq), self.dim), dtype=np.float32)
        for a in range(0, len(uniq), 65536):
            part = uniq[a : a + 65536]
            out[a : a + len(part)] = _finish_matrix(np.asarray(mm[part]), part, self.where, self._what)
        return out


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
                for table in _rebatch(batches, block_rows):
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
                    for table in _rebatch(batches, block_rows):
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
        return _list_array_to_matrix(arr, rows, self.dim, self.where, self._what)


class _CsvSource(EmbeddingSource):
    """A csv/tsv file, with a header row or in the reference's headerless layout, read with pyarrow."""

    format = "csv"

    def __init__(
        self, path: Path, *, delimiter: str, has_header: bool, skip_rows: int, block_bytes: int, **kwargs: Any
    ) -> None:
        super().__init__(path, **kwargs)
        self.delimiter = delimiter
        self.has_header = has_header
        self._skip_rows = skip_rows
        self._block_bytes = block_bytes

    def _tables(self, block_rows: int, include: list[str] | None) -> Iterator[tuple[int, pa.Table]]:
        """Yield (row0, table of string columns of up to block_rows rows)."""
        reader = _open_csv_reader(
            self.path, self.columns, include, self.delimiter, self._skip_rows, self._block_bytes, self.where
        )
        row0 = 0
        try:
            for table in _rebatch(reader, block_rows):
                yield row0, table
                row0 += table.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise _csv_error(exc, self.where) from exc

    def _raw_blocks(self, block_rows: int, wanted: np.ndarray | None) -> Iterator[tuple[int, int, Any]]:
        for row0, table in self._tables(block_rows, [str(self.embedding_field)]):
            yield row0, table.num_rows, table.column(0)

    def _convert(self, raw: Any, rows: np.ndarray, local: np.ndarray | None) -> np.ndarray:
        arr = raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw
        if local is not None:
            arr = arr.take(pa.array(local))
        return _strings_to_matrix(arr, rows, self.dim, self.where, self._what)


class _JsonlSource(EmbeddingSource):
    """A JSON-lines file read line by line; blocks parsed with pyarrow, failing ones with the stdlib."""

    format = "jsonl"

    def _raw_blocks(self, block_rows: int, wanted: np.ndarray | None) -> Iterator[tuple[int, int, Any]]:
        want = None if wanted is None else wanted.tolist()
        ptr = 0
        lines: list[bytes] = []
        line_nos: list[int] = []
        row0 = 0
        row = -1
        for row, line_no, line in _iter_json_lines(self.path, self.where):
            if want is None:
                lines.append(line)
                line_nos.append(line_no)
            elif ptr < len(want) and want[ptr] == row:
                lines.append(line)
                line_nos.append(line_no)
                ptr += 1
            if row - row0 + 1 == block_rows:
                yield row0, block_rows, (lines, line_nos)
                lines, line_nos = [], []
                row0 = row + 1
                if want is not None and ptr == len(want):
                    return
        if row + 1 > row0:
            yield row0, row + 1 - row0, (lines, line_nos)

    def _convert(self, raw: Any, rows: np.ndarray, local: np.ndarray | None) -> np.ndarray:
        lines, line_nos = raw
        field = str(self.embedding_field)
        values = _json_vectors_fast(lines, field, self.dim)
        if values is None:
            values = _json_vectors_slow(lines, line_nos, rows, field, self.dim, self.where)
        return _finish_matrix(values, rows, self.where, self._what)


def _json_vectors_fast(lines: list[bytes], field: str, dim: int) -> np.ndarray | None:
    """Parse the vectors of a block of json lines with pyarrow; None when anything is off."""
    if not lines:
        return np.zeros((0, dim), dtype=np.float64)
    longest = max(len(line) for line in lines)
    schema = pa.schema([(field, pa.list_(pa.float64()))])
    try:
        table = pajson.read_json(
            io.BytesIO(b"\n".join(lines) + b"\n"),
            read_options=pajson.ReadOptions(block_size=max(1 << 20, 2 * (longest + 1))),
            parse_options=pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowException, OSError):
        return None
    if table.num_rows != len(lines):
        return None
    arr = table.column(0).combine_chunks()
    if arr.null_count or not bool(np.all(_list_lengths(arr) == dim)):
        return None
    flat = arr.flatten()
    if flat.null_count:
        return None
    return np.asarray(flat.to_numpy(zero_copy_only=False)).reshape(len(lines), dim)


def _json_vector(obj: Any, field: str, where: str, row: int, line_no: int) -> list[float]:
    """Check one parsed json object and return its embedding as a list of numbers."""
    at = f"{where}: row {row} (line {line_no})"
    if not isinstance(obj, dict):
        raise InvalidInputError(f"{at} is a JSON {type(obj).__name__}, expected an object")
    if field not in obj:
        raise _missing_field(field, list(obj), at)
    vec = obj[field]
    if not isinstance(vec, list):
        hint = f" (it holds text: embed it with --text-field {field})" if isinstance(vec, str) else ""
        raise InvalidTypeError(f"{at} field {field!r} is {_json_type(vec)}, expected a list of numbers{hint}")
    for k, x in enumerate(vec):
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise InvalidTypeError(
                f"{at} field {field!r} element {k} is {x!r} ({_json_type(x)}), expected a number"
            )
    return vec


def _json_type(x: Any) -> str:
    """JSON type name of a parsed value, for messages."""
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
        int: "a number",
        float: "a number",
    }
    return names.get(type(x), type(x).__name__)


def _json_vectors_slow(
    lines: list[bytes], line_nos: list[int], rows: np.ndarray, field: str, dim: int, where: str
) -> np.ndarray:
    """Parse json lines one by one with the stdlib, raising an error that names the first bad row."""
    out = np.empty((len(lines), dim), dtype=np.float64)
    for i, line in enumerate(lines):
        row = int(rows[i])
        obj = _loads(line, where, row, line_nos[i])
        vec = _json_vector(obj, field, where, row, line_nos[i])
        if len(vec) != dim:
            raise InvalidInputError(
                f"{where}: row {row} (line {line_nos[i]}) field {field!r} has {len(vec)} values, "
                f"expected {dim} "
                "(the length of row 0); rows must all have the same length"
            )
        try:
            out[i] = vec
        except OverflowError:  # an integer too large for float64
            raise InvalidInputError(
                f"{where}: row {row} (line {line_nos[i]}) field {field!r} holds a number too large "
                "for float64"
            ) from None
    return out


def _loads(line: bytes, where: str, row: int, line_no: int) -> Any:
    """json.loads with an error naming the row and line."""
    try:
        return json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{where}: row {row} (line {line_no}) is not valid JSON ({exc})") from None


def _iter_json_lines(path: Path, where: str) -> Iterator[tuple[int, int, bytes]]:
    """Yield (row, 1-based line number, line without its newline) for each non-blank line."""
    try:
        with open(path, "rb") as f:
            row = 0
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                if row == 0 and line_no == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]
                yield row, line_no, line.rstrip(b"\r\n")
                row += 1
    except OSError as exc:
        raise InvalidInputError(f"{where}: cannot be read ({exc})") from exc


# ----------------------------------------------------------------------------------------------------------
# csv plumbing


def _first_line(path: Path, where: str) -> tuple[str, int, int]:
    """Return (first non-blank line as text, its length in bytes, number of blank lines before it)."""
    with open(path, "rb") as f:
        buf = b""
        while True:
            chunk = f.read(1 << 20)
            buf += chunk
            if buf.startswith(b"\xef\xbb\xbf"):
                body = buf[3:]
            else:
                body = buf
            stripped = body.lstrip(b"\r\n")
            nl = stripped.find(b"\n")
            if nl >= 0 or not chunk:
                break
            if len(buf) > _MAX_FIRST_LINE_BYTES:
                raise InvalidInputError(f"{where}: first line is longer than {_MAX_FIRST_LINE_BYTES} bytes")
    blank = body[: len(body) - len(stripped)].count(b"\n")
    line = stripped if nl < 0 else stripped[:nl]
    try:
        text = line.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{where}: is not UTF-8 text ({exc})") from exc
    return text, len(line), blank


def _split_csv_line(text: str, delimiter: str) -> list[str]:
    """Split one csv line into fields (quotes honoured)."""
    try:
        return next(csv.reader([text], delimiter=delimiter))
    except (StopIteration, csv.Error):
        return [text]


def _sniff_csv(path: Path, where: str) -> tuple[str, list[str], int, int]:
    """Return (delimiter, fields of the first line, bytes in the first line, blank lines before it)."""
    text, nbytes, blank = _first_line(path, where)
    if not text.strip():
        raise InvalidInputError(f"{where}: is empty (no rows)")
    if path.suffix.lower() == ".tsv" or "\t" in text:
        delimiter = "\t"
    else:
        delimiter = ","
    return delimiter, _split_csv_line(text, delimiter), nbytes, blank


def _csv_error(exc: BaseException, where: str) -> InvalidInputError:
    """An Arrow csv error as InvalidInputError naming the file."""
    msg = str(exc)
    hint = ""
    if "straddl" in msg:
        hint = " (a row is much longer than the first one)"
    return InvalidInputError(f"{where}: cannot be parsed as csv: {msg}{hint}")


def _open_csv_reader(
    path: Path,
    columns: list[str],
    include: list[str] | None,
    delimiter: str,
    skip_rows: int,
    block_bytes: int,
    where: str,
) -> pacsv.CSVStreamingReader:
    """Open a streaming csv reader that reads ``include`` (default all) columns as strings."""
    wanted = columns if include is None else include
    try:
        return pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=columns, skip_rows=skip_rows, block_size=block_bytes),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in wanted},
                include_columns=wanted,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, OSError) as exc:
        raise _csv_error(exc, where) from exc


class _CsvLayout:
    """What sniffing a csv file found out."""

    def __init__(self, path: Path, where: str, *, need_header: bool = False) -> None:
        delimiter, fields, nbytes, blank = _sniff_csv(path, where)
        self.delimiter = delimiter
        self.has_header = need_header or not any(_looks_like_vector(f) for f in fields)
        if self.has_header:
            self.columns = fields
            dupes = sorted({c for c in fields if fields.count(c) > 1})
            if dupes:
                raise InvalidInputError(f"{where}: the header row repeats column name(s) {_fmt_names(dupes)}")
            self.skip_rows = blank + 1
        else:
            self.columns = [f"_c{i}" for i in range(len(fields))]
            self.skip_rows = blank
        self.block_bytes = max(4 << 20, 16 * (nbytes + 1))

    def reader(self, path: Path, include: list[str] | None, where: str) -> pacsv.CSVStreamingReader:
        """A streaming reader of string columns."""
        return _open_csv_reader(
            path, self.columns, include, self.delimiter, self.skip_rows, self.block_bytes, where
        )

    def count(self, path: Path, where: str) -> int:
        """Count data rows with one streaming pass (only the first column is converted)."""
        n = 0
        try:
            for batch in self.reader(path, self.columns[:1], where):
                n += batch.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise _csv_error(exc, where) from exc
        return n

    def first_row(self, path: Path, where: str) -> dict[str, str] | None:
        """The first data row as strings, or None if there is none."""
        try:
            for batch in self.reader(path, None, where):
                if batch.num_rows:
                    return {c: batch.column(i)[0].as_py() for i, c in enumerate(self.columns)}
        except (pa.ArrowException, OSError) as exc:
            raise _csv_error(exc, where) from exc
        return None


# ----------------------------------------------------------------------------------------------------------
# opening


def open_embeddings(
    path: str | os.PathLike[str], embedding_field: str | None = None, *, name: str = "pool"
) -> EmbeddingSource:
    """Open a file of embeddings for streaming, validating it cheaply up front.

    Parameters
    ----------
    path : str or path-like
        A ``.npy``, ``.parquet``/``.pq``, ``.csv``/``.tsv`` or ``.jsonl``/``.ndjson`` file (see the module
        docstring for the layouts).
    embedding_field : str, optional
        The column or field holding the vectors. When omitted it is autodetected: the single column of
        lists of numbers (parquet, jsonl) or of strings like ``"[0.1, 0.2]"`` (csv); if several qualify, the
        one named ``embedding``, ``embeddings``, ``features``, ``vector``, ``vectors`` or ``emb`` (``_c2``
        for the headerless reference csv). Ignored for ``.npy``.
    name : str, default "pool"
        How the file is named in messages (``"pool"``, ``"target"``).

    Returns
    -------
    EmbeddingSource
        With ``n_rows`` (csv and jsonl are counted with one streaming pass) and ``dim`` (from row 0).

    Raises
    ------
    InvalidInputError
        Missing file, unknown extension, empty file (0 rows), missing embedding column (the columns that
        exist are listed), ambiguous autodetection (the candidates are listed), corrupt parquet, a pickled
        or truncated ``.npy``, an array that is not 2-D, an empty first vector.
    InvalidTypeError
        A non-numeric dtype (bool, complex, strings, structured) or an embedding column that is not a list
        of numbers.
    """
    p = Path(path)
    _check_field_arg(embedding_field, "embedding_field")
    if not isinstance(name, str) or not name:
        raise InvalidParameterError(f"name must be a non-empty string, got {name!r}")
    fmt = detect_format(p)
    _check_file(p, name)
    opener = {"npy": _open_npy, "parquet": _open_parquet, "csv": _open_csv, "jsonl": _open_jsonl}[fmt]
    src = opener(p, embedding_field, name)
    logger.debug("opened %r", src)
    return src


def _read_npy_header(path: Path, where: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Read a .npy header without loading data: (shape, dtype, data offset)."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(f)
            else:
                shape, _, dtype = fmt.read_array_header_2_0(f)
            offset = f.tell()
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise InvalidInputError(f"{where}: is not a valid .npy file ({exc})") from exc
    return tuple(int(s) for s in shape), np.dtype(dtype), offset


def _check_npy_dtype(dtype: np.dtype, where: str) -> None:
    """Refuse pickles and non-numeric dtypes."""
    if dtype.hasobject:
        raise InvalidInputError(
            f"{where}: holds Python objects (dtype {dtype}), which can only be loaded by unpickling; "
            "refused for safety (unpickling can run arbitrary code). Save a numeric array instead, "
            "e.g. np.save(path, np.asarray(x, dtype=np.float32))"
        )
    if dtype.kind not in "iuf":
        kinds = {
            "b": "bool",
            "c": "complex",
            "U": "string",
            "S": "bytes",
            "V": "structured/void",
            "M": "datetime",
            "m": "timedelta",
        }
        raise InvalidTypeError(
            f"{where}: has dtype {dtype} ({kinds.get(dtype.kind, 'non-numeric')}); expected a numeric "
            "(float or int) array of embeddings"
        )


def _open_npy(path: Path, field: str | None, name: str) -> EmbeddingSource:
    """Open and check a .npy file."""
    where = _where(path, name)
    if field is not None:
        logger.warning("%s: embedding_field %r ignored, a .npy file has no fields", where, field)
    shape, dtype, offset = _read_npy_header(path, where)
    _check_npy_dtype(dtype, where)
    if len(shape) != 2:
        raise InvalidInputError(
            f"{where}: expected a 2-D array of shape (rows, dimensions), got {len(shape)}-D shape {shape}"
        )
    n, d = shape
    if n == 0:
        raise InvalidInputError(f"{where}: is empty (0 rows)")
    if d == 0:
        raise InvalidInputError(f"{where}: has 0 columns; embeddings need at least one dimension")
    need = offset + n * d * dtype.itemsize
    have = path.stat().st_size
    if have < need:
        raise InvalidInputError(
            f"{where}: is truncated ({have} bytes, the header promises shape {shape} {dtype}: {need} bytes)"
        )
    src = _NpySource(path, n_rows=n, dim=d, embedding_field=None, columns=[], name=name)
    src._array()  # fail now rather than at the first block
    return src


def _open_parquet(path: Path, field: str | None, name: str) -> EmbeddingSource:
    """Open and check a parquet file."""
    where = _where(path, name)
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
        n = int(pf.metadata.num_rows)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInputError(f"{where}: cannot be read as parquet (corrupt or truncated?): {exc}") from exc
    columns = list(schema.names)
    if n == 0:
        raise InvalidInputError(f"{where}: is empty (0 rows)")
    if field is None:
        candidates = [c for c in columns if _is_vector_type(schema.field(c).type)]
        field = _choose_field(candidates, columns, where, PREFERRED_EMBEDDING_FIELDS)
    elif field not in columns:
        raise _missing_field(field, columns, where)
    if columns.count(field) > 1:
        raise InvalidInputError(f"{where}: has several columns named {field!r}")
    ftype = schema.field(field).type
    if not _is_vector_type(ftype):
        raise InvalidTypeError(
            f"{where}: column {field!r} has type {ftype}; expected a list of numbers "
            "(list<float>, large_list<float> or fixed_size_list<float>)"
            + (f"; it holds text: embed it with --text-field {field}" if pa.types.is_string(ftype)
               or pa.types.is_large_string(ftype) else "")
        )
    try:
        first = next(pf.iter_batches(batch_size=1, columns=[field])).column(0)
    except (pa.ArrowException, OSError, StopIteration) as exc:
        raise InvalidInputError(f"{where}: cannot be read (corrupt parquet?): {exc}") from exc
    if first.null_count:
        raise InvalidInputError(f"{where}: row 0 column {field!r} is null; expected a list of numbers")
    dim = int(_list_lengths(first)[0])
    if dim == 0:
        raise InvalidInputError(f"{where}: row 0 column {field!r} is an empty list; vectors need a dimension")
    return _ParquetSource(path, n_rows=n, dim=dim, embedding_field=field, columns=columns, name=name)


def _open_csv(path: Path, field: str | None, name: str) -> EmbeddingSource:
    """Open and check a csv/tsv file."""
    where = _where(path, name)
    layout = _CsvLayout(path, where)
    columns = layout.columns
    first = layout.first_row(path, where)
    if first is None:
        raise InvalidInputError(f"{where}: is empty (0 rows; only a header row)")
    if field is None:
        candidates = [c for c in columns if _looks_like_vector(first[c])]
        preferred = PREFERRED_EMBEDDING_FIELDS if layout.has_header else (_REFERENCE_CSV_FIELD,)
        field = _choose_field(candidates, columns, where, preferred)
    elif field not in columns:
        hint = ""
        if not layout.has_header:
            hint = " (the file has no header row, so columns are named _c0, _c1, ... by position)"
        raise _missing_field(field, columns, where, hint)
    try:
        dim = len(_parse_vector_text(first[field]))
    except ValueError as exc:
        raise InvalidInputError(f"{where}: row 0 column {field!r} {exc}") from None
    except TypeError as exc:
        raise InvalidTypeError(f"{where}: row 0 column {field!r} {exc}") from None
    n = layout.count(path, where)
    return _CsvSource(
        path,
        delimiter=layout.delimiter,
        has_header=layout.has_header,
        skip_rows=layout.skip_rows,
        block_bytes=layout.block_bytes,
        n_rows=n,
        dim=dim,
        embedding_field=field,
        columns=columns,
        name=name,
    )


def _open_jsonl(path: Path, field: str | None, name: str) -> EmbeddingSource:
    """Open and check a jsonl file."""
    where = _where(path, name)
    first = next(_iter_json_lines(path, where), None)
    if first is None:
        raise InvalidInputError(f"{where}: is empty (only blank lines, 0 rows)")
    _, line_no, line = first
    obj = _loads(line, where, 0, line_no)
    if not isinstance(obj, dict):
        raise InvalidInputError(
            f"{where}: row 0 (line {line_no}) is a JSON {type(obj).__name__}, expected an object"
        )
    columns = list(obj)
    if field is None:
        candidates = [
            k
            for k, v in obj.items()
            if isinstance(v, list)
            and v
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        ]
        field = _choose_field(candidates, columns, where, PREFERRED_EMBEDDING_FIELDS)
    vec = _json_vector(obj, field, where, 0, line_no)
    if not vec:
        raise InvalidInputError(f"{where}: row 0 (line {line_no}) field {field!r} is an empty list")
    n = sum(1 for _ in _iter_json_lines(path, where))
    return _JsonlSource(path, n_rows=n, dim=len(vec), embedding_field=field, columns=columns, name=name)


def open_table(path: str | os.PathLike[str], *, name: str = "pool") -> EmbeddingSource:
    """Open a parquet/csv/jsonl file as rows only, with no embedding column needed (raw text inputs).

    The result serves :func:`write_selected_rows` (``n_rows``, ``columns``, the csv layout); it has
    ``dim == 0`` and ``embedding_field is None``, so its blocks cannot be read as vectors.
    """
    p = Path(path)
    fmt = detect_format(p)
    _check_file(p, name)
    where = _where(p, name)
    if fmt == "npy":
        raise InvalidInputError(f"{where}: a .npy file holds vectors, not text rows")
    n = count_rows(p)
    if n == 0:
        raise InvalidInputError(f"{where}: is empty (0 rows)")
    if fmt == "parquet":
        try:
            columns = list(pq.ParquetFile(p).schema_arrow.names)
        except (pa.ArrowException, OSError) as exc:
            raise InvalidInputError(f"{where}: cannot be read as parquet (corrupt or truncated?): {exc}") from exc
        return _ParquetSource(p, n_rows=n, dim=0, embedding_field=None, columns=columns, name=name)
    if fmt == "csv":
        layout = _CsvLayout(p, where)
        return _CsvSource(p, delimiter=layout.delimiter, has_header=layout.has_header, skip_rows=layout.skip_rows,
                          block_bytes=layout.block_bytes, n_rows=n, dim=0, embedding_field=None,
                          columns=layout.columns, name=name)
    _, line_no, line = next(_iter_json_lines(p, where))
    obj = _loads(line, where, 0, line_no)
    columns = list(obj) if isinstance(obj, dict) else []
    return _JsonlSource(p, n_rows=n, dim=0, embedding_field=None, columns=columns, name=name)


def read_column(path: str | os.PathLike[str], field: str, *, name: str = "input") -> np.ndarray:
    """All values of one column (labels, ids) of a parquet, csv (with a header) or jsonl file, in row order.

    Returns a numpy array (numeric when every value is a number, else object holding the values). Raises
    :class:`InvalidInputError` when the column is missing (listing the columns) or a value is null.
    """
    p = Path(path)
    fmt = detect_format(p)
    _check_file(p, name)
    where = _where(p, name)
    values: list[Any]
    if fmt == "npy":
        raise InvalidInputError(f"{where}: a .npy file has no named columns (asked for {field!r})")
    if fmt == "parquet":
        try:
            pf = pq.ParquetFile(p)
            columns = list(pf.schema_arrow.names)
            if field not in columns:
                raise _missing_field(field, columns, where)
            values = pf.read(columns=[field]).column(0).to_pylist()
        except (pa.ArrowException, OSError) as exc:
            raise InvalidInputError(f"{where}: cannot be read as parquet: {exc}") from exc
    elif fmt == "csv":
        layout = _CsvLayout(p, where)
        if field not in layout.columns:
            raise _missing_field(field, layout.columns, where)
        src = _CsvSource(p, delimiter=layout.delimiter, has_header=layout.has_header, skip_rows=layout.skip_rows,
                         block_bytes=layout.block_bytes, n_rows=0, dim=0, embedding_field=None,
                         columns=layout.columns, name=name)
        values = []
        for _, table in src._tables(65536, [field]):
            values.extend(table.column(field).to_pylist())
        try:  # csv cells are text: whole numbers become ints, so labels compare equal across formats
            values = [int(v) for v in values]
        except (TypeError, ValueError):
            pass
    else:
        values = []
        for row, line_no, line in _iter_json_lines(p, where):
            obj = _loads(line, where, row, line_no)
            if not isinstance(obj, dict) or field not in obj:
                cols = list(obj) if isinstance(obj, dict) else []
                raise _missing_field(field, cols, f"{where}: row {row} (line {line_no})")
            values.append(obj[field])
    for i, v in enumerate(values):
        if v is None:
            raise InvalidInputError(f"{where}: row {i} column {field!r} is null")
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def read_texts(path: str | os.PathLike[str], text_field: str, *, name: str = "input") -> list[str]:
    """Every value of a text column, in row order (checked as :func:`iter_text_blocks` checks them).

    Raises :class:`InvalidInputError` also when the file has no rows.
    """
    texts: list[str] = []
    for _, block in iter_text_blocks(path, text_field):
        texts.extend(block)
    if not texts:
        raise InvalidInputError(f"{_where(Path(path), name)}: has no rows in text field {text_field!r}")
    return texts


def count_rows(path: str | os.PathLike[str]) -> int:
    """Count the data rows of a file (header and blank lines excluded); a 0-byte file has 0 rows.

    A csv file is taken to have a header row unless a field of its first line parses as a vector (the
    headerless reference layout), as in :func:`open_embeddings`.

    Raises
    ------
    InvalidInputError
        Missing file, unknown extension, unreadable file.
    """
    p = Path(path)
    fmt = detect_format(p)
    where = _where(p, "input")
    if not p.is_file():
        raise InvalidInputError(f"{where}: no such file" if not p.exists() else f"{where}: is not a file")
    if p.stat().st_size == 0:
        return 0
    if fmt == "npy":
        shape, _, _ = _read_npy_header(p, where)
        return shape[0] if shape else 1
    if fmt == "parquet":
        try:
            return int(pq.ParquetFile(p).metadata.num_rows)
        except (pa.ArrowException, OSError) as exc:
            raise InvalidInputError(
                f"{where}: cannot be read as parquet (corrupt or truncated?): {exc}"
            ) from exc
    if fmt == "csv":
        text, _, _ = _first_line(p, where)
        if not text.strip():
            return 0
        return _CsvLayout(p, where).count(p, where)
    return sum(1 for _ in _iter_json_lines(p, where))


# ----------------------------------------------------------------------------------------------------------
# text


def iter_text_blocks(
    path: str | os.PathLike[str], text_field: str, block_rows: int = 4096
) -> Iterator[tuple[int, list[str]]]:
    """Stream a text column in blocks, for inputs that are raw text to be embedded.

    Parameters
    ----------
    path : str or path-like
        A jsonl, csv/tsv (with a header row) or parquet file.
    text_field : str
        The field or column holding the text.
    block_rows : int, default 4096
        Rows per block.

    Yields
    ------
    row0 : int
        0-based row of the block's first entry.
    texts : list of str
        The texts of rows ``row0 .. row0 + len(texts) - 1``.

    Raises
    ------
    InvalidInputError
        Missing file or field (the existing fields are listed), a csv without a header row, an empty file,
        a ``.npy`` file, an empty or whitespace-only text (the row is named).
    InvalidTypeError
        A value that is not a string (the row and the type are named).
    """
    p = Path(path)
    if not isinstance(text_field, str) or not text_field:
        raise InvalidParameterError(f"text_field must be a non-empty string, got {text_field!r}")
    block_rows = check_int(block_rows, "block_rows", low=1)
    fmt = detect_format(p)
    name = "text"
    _check_file(p, name)
    where = _where(p, name)
    if fmt == "npy":
        raise InvalidInputError(f"{where}: a .npy file holds vectors, not text; use jsonl, csv or parquet")
    if fmt == "parquet":
        return _text_blocks_parquet(p, text_field, block_rows, where)
    if fmt == "csv":
        return _text_blocks_csv(p, text_field, block_rows, where)
    return _text_blocks_jsonl(p, text_field, block_rows, where)


def _check_texts(texts: list[Any], row0: int, field: str, where: str) -> list[str]:
    """Check a block of text values: strings, not blank."""
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            kind = "null" if t is None else type(t).__name__
            raise InvalidTypeError(
                f"{where}: row {row0 + i} field {field!r} is {kind} ({t!r}), expected a string"
            )
        if not t.strip():
            raise InvalidInputError(f"{where}: row {row0 + i} field {field!r} is empty or whitespace only")
    return texts


def _text_blocks_parquet(
    path: Path, field: str, block_rows: int, where: str
) -> Iterator[tuple[int, list[str]]]:
    """Text blocks of a parquet column (checked eagerly, read lazily)."""
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInputError(f"{where}: cannot be read as parquet (corrupt or truncated?): {exc}") from exc
    if field not in schema.names:
        raise _missing_field(field, list(schema.names), where)
    ftype = schema.field(field).type
    if pa.types.is_dictionary(ftype):
        ftype = ftype.value_type
    if not (pa.types.is_string(ftype) or pa.types.is_large_string(ftype)):
        raise InvalidTypeError(f"{where}: row 0 column {field!r} has type {ftype}, expected a string")
    if pf.metadata.num_rows == 0:
        raise InvalidInputError(f"{where}: is empty (0 rows)")

    def gen() -> Iterator[tuple[int, list[str]]]:
        row0 = 0
        try:
            for table in _rebatch(pf.iter_batches(batch_size=block_rows, columns=[field]), block_rows):
                texts = table.column(0).to_pylist()
                yield row0, _check_texts(texts, row0, field, where)
                row0 += len(texts)
        except (pa.ArrowException, OSError) as exc:
            raise InvalidInputError(f"{where}: cannot be read (corrupt parquet?): {exc}") from exc

    return gen()


def _text_blocks_csv(path: Path, field: str, block_rows: int, where: str) -> Iterator[tuple[int, list[str]]]:
    """Text blocks of a csv column; the file must have a header row."""
    layout = _CsvLayout(path, where, need_header=True)
    _, fields, _, _ = _sniff_csv(path, where)
    if any(_looks_like_vector(f) for f in fields):
        raise InvalidInputError(
            f"{where}: has no header row (its first line holds a vector); text input needs a csv with a "
            "header row naming the columns"
        )
    if field not in layout.columns:
        raise _missing_field(field, layout.columns, where, " (the first line is read as the header row)")

    def gen() -> Iterator[tuple[int, list[str]]]:
        row0 = 0
        try:
            for table in _rebatch(layout.reader(path, [field], where), block_rows):
                texts = table.column(0).to_pylist()
                yield row0, _check_texts(texts, row0, field, where)
                row0 += len(texts)
        except (pa.ArrowException, OSError) as exc:
            raise _csv_error(exc, where) from exc
        if row0 == 0:
            raise InvalidInputError(f"{where}: is empty (0 rows; only a header row)")

    return gen()


def _text_blocks_jsonl(
    path: Path, field: str, block_rows: int, where: str
) -> Iterator[tuple[int, list[str]]]:
    """Text blocks of a jsonl field."""
    first = next(_iter_json_lines(path, where), None)
    if first is None:
        raise InvalidInputError(f"{where}: is empty (only blank lines, 0 rows)")
    obj = _loads(first[2], where, 0, first[1])
    if not isinstance(obj, dict):
        raise InvalidInputError(
            f"{where}: row 0 (line {first[1]}) is a JSON {type(obj).__name__}, expected an object"
        )
    if field not in obj:
        raise _missing_field(field, list(obj), where)

    def gen() -> Iterator[tuple[int, list[str]]]:
        texts: list[str] = []
        row0 = 0
        for row, line_no, line in _iter_json_lines(path, where):
            o = _loads(line, where, row, line_no)
            if not isinstance(o, dict):
                raise InvalidInputError(
                    f"{where}: row {row} (line {line_no}) is a JSON {type(o).__name__}, expected an object"
                )
            if field not in o:
                raise _missing_field(field, list(o), f"{where}: row {row} (line {line_no})")
            texts.append(o[field])
            if len(texts) == block_rows:
                yield row0, _check_texts(texts, row0, field, where)
                row0 += len(texts)
                texts = []
        if texts:
            yield row0, _check_texts(texts, row0, field, where)

    return gen()


# ----------------------------------------------------------------------------------------------------------
# writing


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``final_path``; move it into place only if the block succeeds.

    The temporary name is hidden (leading dot), unique, in the same directory (so ``os.replace`` is atomic)
    and keeps the final suffix (so ``np.save`` and format detection work). On success the file is fsynced
    and renamed over ``final_path`` (replacing an existing file); on any exception it is removed and the
    exception propagates. Missing parent directories are created.

    Examples
    --------
    >>> with atomic_path("out.npy") as tmp:  # doctest: +SKIP
    ...     np.save(tmp, arr)
    """
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{final.suffix}")
    try:
        yield tmp
        if not tmp.is_file():
            raise GIOError(f"atomic_path: nothing was written to the temporary file for '{final}'")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename durable; not possible everywhere
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def file_sha256(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks of ``chunk_bytes``."""
    p = Path(path)
    chunk_bytes = check_int(chunk_bytes, "chunk_bytes", low=1)
    if not p.is_file():
        raise InvalidInputError(f"file '{p}': no such file")
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


def write_embeddings(
    path: str | os.PathLike[str], array: np.ndarray, *, extra_columns: dict[str, list[Any]] | None = None
) -> Path:
    """Write embeddings to ``.npy`` or parquet, atomically.

    Parameters
    ----------
    path : str or path-like
        ``.npy`` or ``.parquet``/``.pq``. An existing file is replaced.
    array : array-like of shape (n, d)
        Finite numbers; stored as float32.
    extra_columns : dict of str to list, optional
        Parquet only: more columns (ids, text...), each of length n, written after ``embedding``.

    Returns
    -------
    pathlib.Path
        The written file. Parquet files hold a column ``embedding`` of type fixed_size_list<float32>[d].
    """
    p = Path(path)
    fmt = detect_format(p)
    if fmt not in ("npy", "parquet"):
        raise InvalidParameterError(f"write_embeddings writes .npy or .parquet files, not '{p}' ({fmt})")
    arr = check_embeddings(array, f"array for '{p}'")
    if fmt == "npy":
        if extra_columns:
            raise InvalidParameterError(
                f"extra_columns {_fmt_names(extra_columns)} cannot be stored in a .npy file; use .parquet"
            )
        with atomic_path(p) as tmp, open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        return p
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
    with atomic_path(p) as tmp:
        pq.write_table(pa.table(cols), tmp)
    return p


def _dedupe_selection(ids: np.ndarray, rank: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Sorted unique ids and, for each, the smallest rank it was given."""
    if rank is None:
        return np.unique(ids), None
    order = np.lexsort((rank, ids))
    ids_s = ids[order]
    keep = np.ones(len(ids_s), dtype=bool)
    keep[1:] = ids_s[1:] != ids_s[:-1]
    return ids_s[keep], rank[order][keep]


def write_selected_rows(
    source: EmbeddingSource | str | os.PathLike[str],
    ids: np.ndarray,
    out_path: str | os.PathLike[str],
    *,
    rank: np.ndarray | None = None,
    block_rows: int = _WRITE_BLOCK_ROWS,
) -> Path:
    """Write the selected pool rows in the pool's own format, with all original columns.

    One streaming pass over the pool; rows come out in ascending pool order, each at most once.

    Parameters
    ----------
    source : EmbeddingSource or path
        The pool (opened with :func:`open_embeddings`, or a path to open with autodetection).
    ids : array of int, shape (k,)
        Selected 0-based pool rows, in selection order; duplicates (after GIO resets) are written once.
    out_path : str or path-like
        Output file, same format as the pool (``.csv`` and ``.tsv`` are both csv). Written atomically;
        an existing file is replaced.
    rank : array of int, shape (k,), optional
        Rank of each id in the selection order (for example ``np.arange(k)``); written as ``gio_rank``. For
        a repeated id the smallest rank is kept.
    block_rows : int, default 8192
        Pool rows held in memory at once.

    Returns
    -------
    pathlib.Path
        ``out_path``. Parquet gets int64 columns ``gio_row_id`` (and ``gio_rank``); jsonl objects get the
        keys; csv gets the columns (as trailing unnamed columns in the headerless reference layout, where
        the delimiter and quoting follow the input); ``.npy`` pools give a ``.npy`` of the selected vectors
        in ascending id order, in the pool's dtype (ids are not stored in it). An existing
        ``gio_row_id``/``gio_rank`` column is overwritten.
    """
    src = source if isinstance(source, EmbeddingSource) else open_embeddings(source)
    ids64 = _check_indices(ids, src.n_rows, "ids", src.where)
    rank64: np.ndarray | None = None
    if rank is not None:
        r = np.asarray(rank)
        if r.shape != ids64.shape or (r.size and r.dtype.kind not in "iu"):
            raise InvalidParameterError(
                f"rank must be integers of the same shape as ids {ids64.shape}, "
                f"got dtype {r.dtype} shape {r.shape}"
            )
        rank64 = r.astype(np.int64)
    block_rows = check_int(block_rows, "block_rows", low=1)
    out = Path(out_path)
    out_fmt = detect_format(out)
    if out_fmt != src.format:
        raise InvalidParameterError(
            f"out_path '{out}' is {out_fmt}, but the pool '{src.path}' is {src.format}; selected rows are "
            f"written in the pool's format (give out_path a {src.format} extension)"
        )
    if out.exists() and out.resolve() == src.path.resolve():
        raise InvalidParameterError(f"out_path '{out}' is the pool file itself; choose another path")
    uniq, ranks = _dedupe_selection(ids64, rank64)
    writer = {
        "npy": _write_sel_npy,
        "parquet": _write_sel_parquet,
        "csv": _write_sel_csv,
        "jsonl": _write_sel_jsonl,
    }[src.format]
    writer(src, uniq, ranks, out, block_rows)
    logger.info("wrote %d selected row(s) of %s to '%s'", len(uniq), src.where, out)
    return out


def _warn_overwrite(src: EmbeddingSource, names: Iterable[str]) -> None:
    """Log when the pool already has the columns the writer adds."""
    clash = [c for c in names if c in src.columns]
    if clash:
        logger.warning("%s already has column(s) %s; overwriting them", src.where, _fmt_names(clash))


def _write_sel_npy(
    src: EmbeddingSource, uniq: np.ndarray, ranks: np.ndarray | None, out: Path, block_rows: int
) -> None:
    """Copy the selected rows of a .npy pool, keeping its dtype."""
    assert isinstance(src, _NpySource)
    mm = src._array()
    with atomic_path(out) as tmp:
        if len(uniq) == 0:
            with open(tmp, "wb") as f:
                np.save(f, np.zeros((0, src.dim), dtype=mm.dtype), allow_pickle=False)
            return
        dest = np.lib.format.open_memmap(tmp, mode="w+", dtype=mm.dtype, shape=(len(uniq), src.dim))
        try:
            for a in range(0, len(uniq), block_rows):
                dest[a : a + block_rows] = mm[uniq[a : a + block_rows]]
            dest.flush()
        finally:
            del dest


def _added_columns(row_ids: np.ndarray, ranks: np.ndarray | None) -> list[tuple[str, np.ndarray]]:
    """The gio columns for one block of selected rows."""
    cols = [(ROW_ID_COLUMN, row_ids)]
    if ranks is not None:
        cols.append((RANK_COLUMN, ranks))
    return cols


def _write_sel_parquet(
    src: EmbeddingSource, uniq: np.ndarray, ranks: np.ndarray | None, out: Path, block_rows: int
) -> None:
    """Write the selected rows of a parquet pool with all columns plus the gio columns."""
    assert isinstance(src, _ParquetSource)
    pf = src._file()
    extra = [ROW_ID_COLUMN] + ([RANK_COLUMN] if ranks is not None else [])
    _warn_overwrite(src, extra)
    schema = pf.schema_arrow
    for c in extra:
        if c in schema.names:
            schema = schema.remove(schema.get_field_index(c))
        schema = schema.append(pa.field(c, pa.int64()))

    def finish(table: pa.Table, row_ids: np.ndarray, rk: np.ndarray | None) -> pa.Table:
        for c, values in _added_columns(row_ids, rk):
            if c in table.column_names:
                table = table.drop_columns([c])
            table = table.append_column(pa.field(c, pa.int64()), pa.array(values, pa.int64()))
        return table.select(schema.names).cast(schema)

    with atomic_path(out) as tmp:
        with pq.ParquetWriter(tmp, schema) as writer:
            done = 0
            if len(uniq):
                for row0, table in src._tables(block_rows, None, uniq):
                    local = _select_local(uniq, row0, table.num_rows)
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


def _write_sel_csv(
    src: EmbeddingSource, uniq: np.ndarray, ranks: np.ndarray | None, out: Path, block_rows: int
) -> None:
    """Write the selected rows of a csv pool, keeping its delimiter and header convention."""
    assert isinstance(src, _CsvSource)
    extra = [ROW_ID_COLUMN] + ([RANK_COLUMN] if ranks is not None else [])
    names = list(src.columns)
    if src.has_header:
        _warn_overwrite(src, extra)
        names += [c for c in extra if c not in names]
    else:
        names += extra
    done = 0
    with atomic_path(out) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, delimiter=src.delimiter, lineterminator="\n")
            if src.has_header:
                w.writerow(names)
            if len(uniq):
                for row0, table in src._tables(block_rows, None):
                    local = _select_local(uniq, row0, table.num_rows)
                    assert local is not None
                    if not local.size:
                        continue
                    sub = table.take(pa.array(local))
                    cols: dict[str, list[Any]] = {
                        c: sub.column(i).to_pylist() for i, c in enumerate(src.columns)
                    }
                    rk = None if ranks is None else ranks[done : done + local.size]
                    added = {
                        c: [str(v) for v in vals.tolist()] for c, vals in _added_columns(row0 + local, rk)
                    }
                    if src.has_header:
                        cols.update(added)
                        w.writerows(zip(*(cols[c] for c in names), strict=True))
                    else:
                        w.writerows(zip(*cols.values(), *added.values(), strict=True))
                    done += local.size
                    if row0 + table.num_rows > uniq[-1]:
                        break
        if done != len(uniq):
            raise InvalidInputError(f"{src.where}: wrote {done} of {len(uniq)} selected rows (file changed?)")


def _write_sel_jsonl(
    src: EmbeddingSource, uniq: np.ndarray, ranks: np.ndarray | None, out: Path, block_rows: int
) -> None:
    """Write the selected lines of a jsonl pool with the gio keys added to each object."""
    assert isinstance(src, _JsonlSource)
    want = uniq.tolist()
    rk = None if ranks is None else ranks.tolist()
    _warn_overwrite(src, [ROW_ID_COLUMN] + ([RANK_COLUMN] if ranks is not None else []))
    ptr = 0
    with atomic_path(out) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            buf: list[str] = []
            if want:
                for row, line_no, line in _iter_json_lines(src.path, src.where):
                    if row != want[ptr]:
                        continue
                    obj = _loads(line, src.where, row, line_no)
                    if not isinstance(obj, dict):
                        raise InvalidInputError(
                            f"{src.where}: row {row} (line {line_no}) is not a JSON object"
                        )
                    obj[ROW_ID_COLUMN] = row
                    if rk is not None:
                        obj[RANK_COLUMN] = rk[ptr]
                    buf.append(json.dumps(obj, ensure_ascii=False))
                    ptr += 1
                    if len(buf) >= block_rows:
                        f.write("\n".join(buf) + "\n")
                        buf = []
                    if ptr == len(want):
                        break
            if buf:
                f.write("\n".join(buf) + "\n")
        if ptr != len(want):
            raise InvalidInputError(f"{src.where}: wrote {ptr} of {len(want)} selected rows (file changed?)")
