"""Vector columns to float32 matrices, the choice of the embedding column, and row-index checks.

Shared by every format and by the Spark engine: list-like Arrow arrays (``list``, ``large_list``,
``fixed_size_list`` of numbers) and string arrays of vectors ``"[0.1, 0.2]"`` become validated, C-contiguous
float32 blocks whose errors name the file, the 0-based row, the column and the element.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InvalidInputError, InvalidParameterError, InvalidTypeError

PREFERRED_EMBEDDING_FIELDS = ("embedding", "embeddings", "features", "vector", "vectors", "emb")


REFERENCE_CSV_FIELD = "_c2"


def fmt_names(names: Iterable[str]) -> str:
    """Quote a list of column names for a message."""
    names = list(names)
    return ", ".join(repr(n) for n in names) if names else "(none)"


def choose_field(candidates: list[str], columns: list[str], where: str, preferred: tuple[str, ...]) -> str:
    """Pick the embedding field among autodetected candidates, or say why it cannot be picked."""
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise InvalidInputError(
            f"{where}: found no column holding vectors (lists of numbers) among the columns "
            f"{fmt_names(columns)}; name the vector column with embedding_field (--embedding-field), or, if "
            "a column holds text, embed it with text_field (--text-field COLUMN)"
        )
    liked = [c for c in candidates if c in preferred]
    if len(liked) == 1:
        return liked[0]
    raise InvalidInputError(
        f"{where}: several columns hold vectors: {fmt_names(candidates)}; cannot tell which is the "
        "embedding, name it with embedding_field (--embedding-field)"
    )


def missing_field(field: str, columns: list[str], where: str, hint: str = "") -> InvalidInputError:
    """The error for an embedding or text column that does not exist."""
    return InvalidInputError(f"{where}: has no column {field!r}; its columns are {fmt_names(columns)}{hint}")


def check_indices(indices: Any, n_rows: int, what: str, where: str) -> np.ndarray:
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


def select_local(wanted: np.ndarray | None, row0: int, b: int) -> np.ndarray | None:
    """Positions within the block [row0, row0 + b) of the sorted global rows ``wanted`` (None: all)."""
    if wanted is None:
        return None
    lo, hi = np.searchsorted(wanted, [row0, row0 + b])
    return wanted[lo:hi] - row0


def finish_matrix(values: np.ndarray, rows: np.ndarray, where: str, what: str, *, copy: bool = True) -> np.ndarray:
    """Convert a (b, dim) block to float32 and check every value is finite; rows are global row numbers.

    A read-only view (of a memory map) is copied, so that the caller may modify the block, unless ``copy`` is
    false (a caller that only reads it)."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(values, dtype=np.float32)
    if copy and not out.flags.writeable:  # a view of a read-only memory map: hand out a copy the caller may modify
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


def is_numeric_type(t: pa.DataType) -> bool:
    """True for Arrow integer, floating and decimal types (not bool)."""
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def is_list_type(t: pa.DataType) -> bool:
    """True for list, large_list and fixed_size_list types."""
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))


def is_vector_type(t: pa.DataType) -> bool:
    """True for a list-like Arrow type of numbers."""
    return is_list_type(t) and is_numeric_type(t.value_type)


def list_lengths(arr: pa.Array) -> np.ndarray:
    """Length of every list in a list-like array (nulls count 0)."""
    if pa.types.is_fixed_size_list(arr.type):
        return np.full(len(arr), arr.type.list_size, dtype=np.int64)
    lengths = np.asarray(pc.list_value_length(arr).to_numpy(zero_copy_only=False))
    if arr.null_count:  # null lists come out as NaN
        lengths = np.nan_to_num(lengths, nan=0.0)
    return lengths.astype(np.int64)


def list_array_to_matrix(arr: pa.Array, rows: np.ndarray, dim: int, where: str, what: str) -> np.ndarray:
    """Turn a list-like Arrow array of numbers (one entry per row) into a validated float32 (b, dim) block."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not is_vector_type(arr.type):
        raise InvalidTypeError(f"{where}: {what} has type {arr.type}; expected a list of numbers")
    if arr.null_count:
        i = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise InvalidInputError(
            f"{where}: row {int(rows[i])} {what} is null; expected a list of {dim} numbers"
        )
    lengths = list_lengths(arr)
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
    return finish_matrix(flat.reshape(len(arr), dim), rows, where, what)


def parse_vector_text(text: Any) -> list[float]:
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


def looks_like_vector(text: Any) -> bool:
    """True when a csv field parses as a vector of numbers."""
    try:
        parse_vector_text(text)
    except (ValueError, TypeError):
        return False
    return True


def strings_to_matrix(arr: pa.Array, rows: np.ndarray, dim: int, where: str, what: str) -> np.ndarray:
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
                if bool(np.all(list_lengths(parts) == dim)):
                    nums = pc.cast(pc.utf8_trim_whitespace(parts.flatten()), pa.float64())
                    values = np.asarray(nums.to_numpy(zero_copy_only=False)).reshape(len(arr), dim)
    except pa.ArrowInvalid:
        values = None
    if values is None:
        values = np.empty((len(arr), dim), dtype=np.float64)
        for i, text in enumerate(arr.to_pylist()):
            try:
                vec = parse_vector_text(text)
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
    return finish_matrix(values, rows, where, what)
