"""The csv/tsv format: a header row naming the columns, or the reference package's headerless layout.

The reference package (grad-info-opt) writes tab-delimited files with no header, columns named Spark-style
``_c0, _c1, _c2...`` and one column (``_c2`` there) holding the vector as a string ``"[0.1, 0.2, ...]"``.
The delimiter is a tab for ``.tsv`` and for a ``.csv`` whose first line contains a tab, a comma otherwise. A
file has no header row when a field of its first line parses as a vector. Files are read with
:func:`pyarrow.csv.open_csv`, every column as strings.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from ..errors import InvalidInputError, InvalidTypeError
from .columns import resolve_field, text_table_blocks
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
    PREFERRED_EMBEDDING_FIELDS,
    REFERENCE_CSV_FIELD,
    fmt_names,
    looks_like_vector,
    missing_field,
    parse_vector_text,
    select_local,
    strings_to_matrix,
)

_MAX_FIRST_LINE_BYTES = 1 << 28


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
            for table in rebatch(reader, block_rows):
                yield row0, table
                row0 += table.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise _csv_error(exc, self.where, self.path) from exc

    def _raw_blocks(self, block_rows: int, wanted: np.ndarray | None) -> Iterator[tuple[int, int, Any]]:
        for row0, table in self._tables(block_rows, [str(self.embedding_field)]):
            yield row0, table.num_rows, table.column(0)

    def _convert(self, raw: Any, rows: np.ndarray, local: np.ndarray | None) -> np.ndarray:
        arr = raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw
        if local is not None:
            arr = arr.take(pa.array(local))
        return strings_to_matrix(arr, rows, self.dim, self.where, self._what)


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


def split_csv_line(text: str, delimiter: str) -> list[str]:
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
    return delimiter, split_csv_line(text, delimiter), nbytes, blank


def _first_bad_utf8_line(path: Path, limit: int = 1 << 30) -> int | None:
    """The 1-based line number of the first line of ``path`` that is not valid UTF-8 (None: none in the first
    ``limit`` bytes, or the file cannot be read). One streaming pass, a line at a time."""
    try:
        with open(path, "rb") as fh:
            read = 0
            for number, line in enumerate(fh, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    return number
                read += len(line)
                if read > limit:
                    return None
    except OSError:
        return None
    return None


def _csv_error(exc: BaseException, where: str, path: Path | None = None) -> InvalidInputError:
    """An Arrow csv error as InvalidInputError naming the file (and, for text that is not UTF-8, the line)."""
    msg = str(exc)
    hint = ""
    if "straddl" in msg:
        hint = " (a row is much longer than the first one)"
    elif "UTF8" in msg and path is not None:
        line = _first_bad_utf8_line(path)
        if line is not None:
            hint = f" (line {line} of the file is not valid UTF-8: save the file as UTF-8)"
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
        raise _csv_error(exc, where, path) from exc


class _CsvLayout:
    """What sniffing a csv file found out."""

    def __init__(self, path: Path, where: str, *, need_header: bool = False) -> None:
        delimiter, fields, nbytes, blank = _sniff_csv(path, where)
        self.delimiter = delimiter
        self.has_header = need_header or not any(looks_like_vector(f) for f in fields)
        if self.has_header:
            self.columns = fields
            dupes = sorted({c for c in fields if fields.count(c) > 1})
            if dupes:
                raise InvalidInputError(f"{where}: the header row repeats column name(s) {fmt_names(dupes)}")
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
            raise _csv_error(exc, where, path) from exc
        return n

    def first_row(self, path: Path, where: str) -> dict[str, str] | None:
        """The first data row as strings, or None if there is none."""
        try:
            for batch in self.reader(path, None, where):
                if batch.num_rows:
                    return {c: batch.column(i)[0].as_py() for i, c in enumerate(self.columns)}
        except (pa.ArrowException, OSError) as exc:
            raise _csv_error(exc, where, path) from exc
        return None


def open_source(path: Path, field: str | None, name: str) -> EmbeddingSource:
    """Open and check a csv/tsv file (the file exists and is not empty)."""
    where = describe_file(path, name)
    layout = _CsvLayout(path, where)
    columns = layout.columns
    first = layout.first_row(path, where)
    if first is None:
        raise InvalidInputError(f"{where}: is empty (0 rows; only a header row)")
    field = resolve_field(
        field, columns, [c for c in columns if looks_like_vector(first[c])], where,
        PREFERRED_EMBEDDING_FIELDS if layout.has_header else (REFERENCE_CSV_FIELD,),
        "" if layout.has_header else " (the file has no header row, so columns are named _c0, _c1, ... by position)")
    try:
        dim = len(parse_vector_text(first[field]))
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


def text_blocks(path: Path, field: str, block_rows: int, where: str) -> Iterator[tuple[int, list[str]]]:
    """Text blocks of a csv column; the file must have a header row."""
    layout = _CsvLayout(path, where, need_header=True)
    _, fields, _, _ = _sniff_csv(path, where)
    if any(looks_like_vector(f) for f in fields):
        raise InvalidInputError(
            f"{where}: has no header row (its first line holds a vector); text input needs a csv with a "
            "header row naming the columns"
        )
    if field not in layout.columns:
        raise missing_field(field, layout.columns, where, " (the first line is read as the header row)")

    def gen() -> Iterator[tuple[int, list[str]]]:
        rows = 0
        try:
            for row0, texts in text_table_blocks(rebatch(layout.reader(path, [field], where), block_rows), field,
                                                 where):
                rows += len(texts)
                yield row0, texts
        except (pa.ArrowException, OSError) as exc:
            raise _csv_error(exc, where, path) from exc
        if rows == 0:
            raise InvalidInputError(f"{where}: is empty (0 rows; only a header row)")

    return gen()


def write_selected(
    src: EmbeddingSource, uniq: np.ndarray, ranks: np.ndarray | None, out: Path, block_rows: int
) -> None:
    """Write the selected rows of a csv pool, keeping its delimiter and header convention."""
    assert isinstance(src, _CsvSource)
    extra = [ROW_ID_COLUMN] + ([RANK_COLUMN] if ranks is not None else [])
    names = list(src.columns)
    if src.has_header:
        warn_overwrite(src, extra)
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
                    local = select_local(uniq, row0, table.num_rows)
                    assert local is not None
                    if not local.size:
                        continue
                    sub = table.take(pa.array(local))
                    cols: dict[str, list[Any]] = {
                        c: sub.column(i).to_pylist() for i, c in enumerate(src.columns)
                    }
                    rk = None if ranks is None else ranks[done : done + local.size]
                    added = {
                        c: [str(v) for v in vals.tolist()] for c, vals in added_columns(row0 + local, rk)
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


def open_rows(path: Path, n: int, name: str) -> EmbeddingSource:
    """Open a csv file of ``n`` rows (already counted, n > 0) with no embedding column."""
    where = describe_file(path, name)
    layout = _CsvLayout(path, where)
    return _CsvSource(path, delimiter=layout.delimiter, has_header=layout.has_header, skip_rows=layout.skip_rows,
                     block_bytes=layout.block_bytes, n_rows=n, dim=0, embedding_field=None,
                     columns=layout.columns, name=name)


def read_values(path: Path, field: str, name: str) -> list[Any]:
    """Every value of one csv column, in row order; whole numbers become ints."""
    where = describe_file(path, name)
    layout = _CsvLayout(path, where)
    if field not in layout.columns:
        raise missing_field(field, layout.columns, where)
    src = _CsvSource(path, delimiter=layout.delimiter, has_header=layout.has_header, skip_rows=layout.skip_rows,
                    block_bytes=layout.block_bytes, n_rows=0, dim=0, embedding_field=None,
                    columns=layout.columns, name=name)
    values: list[Any] = []
    for _, table in src._tables(65536, [field]):
        values.extend(table.column(field).to_pylist())
    try:  # csv cells are text: whole numbers become ints, so labels compare equal across formats
        values = [int(v) for v in values]
    except (TypeError, ValueError):
        pass
    return values


def read_table(path: Path, name: str) -> pa.Table:
    """The whole csv file as a table of string columns, its layout (delimiter, header row or none) sniffed as
    for reading; a headerless file's columns are named ``_c0, _c1, ...``."""
    where = describe_file(path, name)
    layout = _CsvLayout(path, where)
    try:
        return layout.reader(path, None, where).read_all()
    except (pa.ArrowException, OSError) as exc:
        raise _csv_error(exc, where, path) from exc


def count(path: Path, where: str) -> int:
    """Data rows of a non-empty csv file (header and blank lines excluded), with one streaming pass."""
    text, _, _ = _first_line(path, where)
    if not text.strip():
        return 0
    return _CsvLayout(path, where).count(path, where)
