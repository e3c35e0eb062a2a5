"""The ``.npy`` format: a 2-D numeric array, memory-mapped and read in slices; pickles are never loaded.

A numeric dtype (float or int) is required: bool, complex, string, structured and object arrays are refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError, InvalidTypeError
from ..validation import check_int
from .files import atomic_path, describe_file
from .source import EmbeddingSource
from .vectors import finish_matrix, fmt_names

logger = logging.getLogger(__name__)


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

    def iter_views(self, block_rows: int = 65536) -> Iterator[tuple[int, np.ndarray]]:
        block_rows = check_int(block_rows, "block_rows", low=1)
        return self._views(block_rows)

    def _views(self, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        for row0, b, raw in self._raw_blocks(block_rows, None):
            rows = np.arange(row0, row0 + b, dtype=np.int64)
            yield row0, finish_matrix(np.asarray(raw), rows, self.where, self._what, copy=False)

    def _convert(self, raw: Any, rows: np.ndarray, local: np.ndarray | None) -> np.ndarray:
        block = raw if local is None else raw[local]
        return finish_matrix(np.asarray(block), rows, self.where, self._what)

    def _take_sorted(self, uniq: np.ndarray) -> np.ndarray:
        mm = self._array()
        out = np.empty((len(uniq), self.dim), dtype=np.float32)
        for a in range(0, len(uniq), 65536):
            part = uniq[a : a + 65536]
            out[a : a + len(part)] = finish_matrix(np.asarray(mm[part]), part, self.where, self._what)
        return out


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


def open_source(path: Path, field: str | None, name: str) -> EmbeddingSource:
    """Open and check a .npy file (the file exists and is not empty)."""
    where = describe_file(path, name)
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


def write_selected(
    src: EmbeddingSource, uniq: np.ndarray, ranks: np.ndarray | None, out: Path, block_rows: int
) -> None:
    """Copy the selected rows of a .npy pool, keeping its dtype: the header ``np.save`` writes, then the rows in
    blocks with plain writes (a memory-mapped destination faults in every page it fills: 0.45 s against 0.2 s for
    300,000 x 384 float32 rows; the same bytes)."""
    assert isinstance(src, _NpySource)
    mm = src._array()
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        if len(uniq) == 0:
            np.save(f, np.zeros((0, src.dim), dtype=mm.dtype), allow_pickle=False)
            return
        header = {"descr": np.lib.format.dtype_to_descr(mm.dtype), "fortran_order": False,
                  "shape": (len(uniq), src.dim)}
        np.lib.format.write_array_header_1_0(f, header)  # a 2-D numeric array's header always fits version 1.0
        for a in range(0, len(uniq), block_rows):
            f.write(np.ascontiguousarray(mm[uniq[a : a + block_rows]]).data)


def count(path: Path, where: str) -> int:
    """Rows of a non-empty .npy file, from its header (a 0-D array counts as one row)."""
    shape, _, _ = _read_npy_header(path, where)
    return shape[0] if shape else 1


def write_matrix(path: Path, arr: np.ndarray, extra_columns: dict[str, list[Any]] | None) -> None:
    """Write a checked float32 matrix to ``path`` atomically; a .npy file has no room for extra columns."""
    if extra_columns:
        raise InvalidParameterError(
            f"extra_columns {fmt_names(extra_columns)} cannot be stored in a .npy file; use .parquet"
        )
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, arr, allow_pickle=False)
