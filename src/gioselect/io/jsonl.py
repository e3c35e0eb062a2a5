"""The jsonl/ndjson format: one JSON object per line, the embedding field a list of numbers.

Blank lines are skipped and do not count as rows; a UTF-8 byte-order mark on the first line is ignored.
Blocks are parsed with :func:`pyarrow.json.read_json`; a block that fails is parsed again line by line with
the stdlib, so that the error names the first bad row and line.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from ..errors import InvalidInputError, InvalidTypeError
from .files import atomic_path, describe_file
from .source import RANK_COLUMN, ROW_ID_COLUMN, EmbeddingSource, check_texts, warn_overwrite
from .vectors import PREFERRED_EMBEDDING_FIELDS, choose_field, finish_matrix, list_lengths, missing_field


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
        return finish_matrix(values, rows, self.where, self._what)


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
    if arr.null_count or not bool(np.all(list_lengths(arr) == dim)):
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
        raise missing_field(field, list(obj), at)
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


def open_source(path: Path, field: str | None, name: str) -> EmbeddingSource:
    """Open and check a jsonl file (the file exists and is not empty)."""
    where = describe_file(path, name)
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
        field = choose_field(candidates, columns, where, PREFERRED_EMBEDDING_FIELDS)
    vec = _json_vector(obj, field, where, 0, line_no)
    if not vec:
        raise InvalidInputError(f"{where}: row 0 (line {line_no}) field {field!r} is an empty list")
    n = sum(1 for _ in _iter_json_lines(path, where))
    return _JsonlSource(path, n_rows=n, dim=len(vec), embedding_field=field, columns=columns, name=name)


def text_blocks(
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
        raise missing_field(field, list(obj), where)

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
                raise missing_field(field, list(o), f"{where}: row {row} (line {line_no})")
            texts.append(o[field])
            if len(texts) == block_rows:
                yield row0, check_texts(texts, row0, field, where)
                row0 += len(texts)
                texts = []
        if texts:
            yield row0, check_texts(texts, row0, field, where)

    return gen()


def write_selected(
    src: EmbeddingSource, uniq: np.ndarray, ranks: np.ndarray | None, out: Path, block_rows: int
) -> None:
    """Write the selected lines of a jsonl pool with the gio keys added to each object."""
    assert isinstance(src, _JsonlSource)
    want = uniq.tolist()
    rk = None if ranks is None else ranks.tolist()
    warn_overwrite(src, [ROW_ID_COLUMN] + ([RANK_COLUMN] if ranks is not None else []))
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


def open_rows(path: Path, n: int, name: str) -> EmbeddingSource:
    """Open a jsonl file of ``n`` rows (already counted, n > 0) with no embedding column."""
    where = describe_file(path, name)
    _, line_no, line = next(_iter_json_lines(path, where))
    obj = _loads(line, where, 0, line_no)
    columns = list(obj) if isinstance(obj, dict) else []
    return _JsonlSource(path, n_rows=n, dim=0, embedding_field=None, columns=columns, name=name)


def read_values(path: Path, field: str, name: str) -> list[Any]:
    """Every value of one jsonl field, in row order."""
    where = describe_file(path, name)
    values: list[Any] = []
    for row, line_no, line in _iter_json_lines(path, where):
        obj = _loads(line, where, row, line_no)
        if not isinstance(obj, dict) or field not in obj:
            cols = list(obj) if isinstance(obj, dict) else []
            raise missing_field(field, cols, f"{where}: row {row} (line {line_no})")
        values.append(obj[field])
    return values


def count(path: Path, where: str) -> int:
    """Non-blank lines of a jsonl file."""
    return sum(1 for _ in _iter_json_lines(path, where))
