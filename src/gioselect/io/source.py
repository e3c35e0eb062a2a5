"""The base class of an opened file, :class:`EmbeddingSource`, and what its format subclasses share.

A format module (``npy``, ``parquet``, ``csv``, ``jsonl``) subclasses :class:`EmbeddingSource` with
``_raw_blocks`` (read the file in blocks) and ``_convert`` (turn a block into validated float32 rows); the
base class streams, selects and checks rows on top of those two.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import InvalidInputError, InvalidTypeError
from ..validation import check_int
from .files import describe_file
from .vectors import check_indices, fmt_names, select_local

logger = logging.getLogger(__name__)


#: Column added by :func:`write_selected_rows`: the 0-based row of the pool.
ROW_ID_COLUMN = "gio_row_id"


#: Column added by :func:`write_selected_rows` when ``rank`` is given: position in the selection order.
RANK_COLUMN = "gio_rank"


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
        return describe_file(self.path, self.name)

    @property
    def output_suffix(self) -> str:
        """Extension of the file :func:`write_selected_rows` writes for this input: its own (a folder's: parquet)."""
        return self.path.suffix.lower()

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

    def iter_views(self, block_rows: int = 65536) -> Iterator[tuple[int, np.ndarray]]:
        """:meth:`iter_blocks` for a caller that only reads the blocks: the same rows, validated the same way, but
        a block may be a read-only view (a float32 ``.npy``'s memory map, not copied: a full pass over a 1e6 x 384
        pool copies 1.5 GB otherwise). Writing into one raises ``ValueError``."""
        return self.iter_blocks(block_rows)

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
        idx = check_indices(indices, self.n_rows, "indices", self.where)
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
            local = select_local(wanted, row0, b)
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


def rebatch(batches: Iterable[pa.RecordBatch], block_rows: int) -> Iterator[pa.Table]:
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


def check_texts(texts: list[Any], row0: int, field: str, where: str) -> list[str]:
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


def added_columns(row_ids: np.ndarray, ranks: np.ndarray | None) -> list[tuple[str, np.ndarray]]:
    """The gio columns for one block of selected rows."""
    cols = [(ROW_ID_COLUMN, row_ids)]
    if ranks is not None:
        cols.append((RANK_COLUMN, ranks))
    return cols


def warn_overwrite(src: EmbeddingSource, names: Iterable[str]) -> None:
    """Log when the pool already has the columns the writer adds."""
    clash = [c for c in names if c in src.columns]
    if clash:
        logger.warning("%s already has column(s) %s; overwriting them", src.where, fmt_names(clash))
