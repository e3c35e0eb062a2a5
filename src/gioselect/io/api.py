"""Readers and writers for pools and targets of embeddings: ``.npy``, parquet, csv/tsv and jsonl.

Everything here streams: a ``.npy`` file is memory-mapped and read in slices, parquet is read by row group and
record batch, csv with :func:`pyarrow.csv.open_csv` and jsonl line by line; memory per block is bounded by
``block_rows``. Files are validated cheaply when opened (existence, extension, empty file, embedding column,
dtype, first vector) and fully while blocks are read, with errors that name the file, the 0-based data row
and the column or field. Writers are atomic: they write a temporary file beside the target and ``os.replace``
it into place, removing the temporary file on any error.

This module checks the arguments and picks the format module by the file's extension; each format module
(:mod:`.npy`, :mod:`.parquet`, :mod:`.csv`, :mod:`.jsonl`) does the reading and writing.

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
folder
    A Hugging Face ``save_to_disk`` folder (its Arrow files in ``state.json``'s order) or a folder of parquet
    shards (file-name order), read as one table with row ids running on across the files; the selected rows
    are written as parquet (:mod:`.folder`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError
from ..validation import check_embeddings, check_int
from . import csv, folder, jsonl, npy, parquet
from .files import check_file, describe_file, file_sha256
from .source import EmbeddingSource
from .vectors import check_indices, missing_field

__all__ = [
    "FORMATS",
    "check_columns",
    "count_rows",
    "detect_format",
    "input_fingerprint",
    "iter_text_blocks",
    "open_embeddings",
    "open_table",
    "read_column",
    "read_texts",
    "write_embeddings",
    "write_selected_rows",
]

logger = logging.getLogger(__name__)

FORMATS = ("npy", "parquet", "csv", "jsonl", "folder")


_EXTENSIONS = {
    ".npy": "npy",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


_WRITE_BLOCK_ROWS = 8192
# The module of each format, and of those that hold named columns (every one but npy).
_MODULES: dict[str, ModuleType] = {"npy": npy, "parquet": parquet, "csv": csv, "jsonl": jsonl, "folder": folder}
_TABLE_MODULES: dict[str, ModuleType] = {"parquet": parquet, "csv": csv, "jsonl": jsonl, "folder": folder}
# The format the selected rows are written in, when it is not the input's own.
_OUTPUT_FORMATS = {"folder": "parquet"}


def _check_input(p: Path, fmt: str, name: str) -> None:
    """The up-front check of an input: a non-empty file (a folder checks its own files when opened)."""
    if fmt != "folder":
        check_file(p, name)


def _accepted() -> str:
    """The accepted extensions, for messages."""
    return ", ".join(_EXTENSIONS)


def detect_format(path: str | os.PathLike[str]) -> str:
    """Tell a file's format from its extension.

    Parameters
    ----------
    path : str or path-like
        The file. Extensions are matched case-insensitively: ``.npy``; ``.parquet``, ``.pq``; ``.csv``,
        ``.tsv``; ``.jsonl``, ``.ndjson``. An existing folder that is a datasets ``save_to_disk`` folder (or
        ``DatasetDict``) or holds ``*.parquet`` shards is ``"folder"`` (:mod:`gioselect.io.folder`).

    Returns
    -------
    str
        One of :data:`FORMATS`: ``"npy"``, ``"parquet"``, ``"csv"``, ``"jsonl"`` or ``"folder"``.

    Raises
    ------
    InvalidInputError
        The extension is not one of the accepted ones (the message names the file and lists them), or a
        folder without an accepted extension is not one of the folders above.
    """
    p = Path(path)
    if p.is_dir():
        if folder.is_folder_table(p):
            return "folder"
        if p.suffix.lower() not in _EXTENSIONS:
            folder.folder_kind(p)  # raises, saying what a folder input must hold
    fmt = _EXTENSIONS.get(p.suffix.lower())
    if fmt is None:
        ext = f"extension '{p.suffix}'" if p.suffix else "no extension"
        raise InvalidInputError(
            f"cannot tell the format of file '{p}' ({ext}); accepted extensions: {_accepted()}"
        )
    return fmt


def input_fingerprint(path: str | os.PathLike[str], name: str = "input") -> dict[str, Any]:
    """What identifies an input by content: ``{"bytes": ..., "sha256": ...}``.

    For a file, its size and SHA-256. For a folder (``"folder"`` format) also ``"kind"`` and ``"files"``, each
    data file's ``name``, ``bytes`` and ``sha256`` in row order; ``sha256`` then hashes those entries together
    and ``bytes`` is their total (:func:`gioselect.io.folder.fingerprint`).
    """
    p = Path(path)
    if p.is_dir() and detect_format(p) == "folder":
        return folder.fingerprint(p, name)
    if not p.is_file():
        raise InvalidInputError(f"{describe_file(p, name)}: no such file")
    return {"bytes": int(p.stat().st_size), "sha256": file_sha256(p)}


def _check_field_arg(field: str | None, what: str) -> None:
    """Check an optional column-name argument."""
    if field is not None and (not isinstance(field, str) or not field):
        raise InvalidParameterError(f"{what} must be a non-empty string or None, got {field!r}")


def open_embeddings(
    path: str | os.PathLike[str], embedding_field: str | None = None, *, name: str = "pool"
) -> EmbeddingSource:
    """Open a file of embeddings for streaming, validating it cheaply up front.

    Parameters
    ----------
    path : str or path-like
        A ``.npy``, ``.parquet``/``.pq``, ``.csv``/``.tsv`` or ``.jsonl``/``.ndjson`` file, or a datasets
        ``save_to_disk`` folder or a folder of parquet shards, read as one table (see the module docstring for
        the layouts).
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
    _check_input(p, fmt, name)
    src = _MODULES[fmt].open_source(p, embedding_field, name)
    logger.debug("opened %r", src)
    return src


def open_table(path: str | os.PathLike[str], *, name: str = "pool") -> EmbeddingSource:
    """Open a parquet/csv/jsonl file as rows only, with no embedding column needed (raw text inputs).

    The result serves :func:`write_selected_rows` (``n_rows``, ``columns``, the csv layout); it has
    ``dim == 0`` and ``embedding_field is None``, so its blocks cannot be read as vectors.
    """
    p = Path(path)
    fmt = detect_format(p)
    _check_input(p, fmt, name)
    where = describe_file(p, name)
    if fmt == "npy":
        raise InvalidInputError(f"{where}: a .npy file holds vectors, not text rows")
    n = count_rows(p)
    if n == 0:
        raise InvalidInputError(f"{where}: is empty (0 rows)")
    return _TABLE_MODULES[fmt].open_rows(p, n, name)


def check_columns(path: str | os.PathLike[str], fields: Sequence[str], *, name: str = "pool",
                  option: str = "--report-field") -> None:
    """Check that a parquet, csv (with a header), jsonl file or folder has the named columns, from its header
    (or first row) alone, before a job reads them at its end (:func:`read_column`)."""
    if not fields:
        return
    p = Path(path)
    fmt = detect_format(p)
    _check_input(p, fmt, name)
    where = describe_file(p, name)
    if fmt == "npy":
        raise InvalidInputError(f"{where}: a .npy file has no named columns (asked for {fields[0]!r} by {option})")
    columns = list(_TABLE_MODULES[fmt].open_rows(p, 1, name).columns)  # n is not used to find the columns
    for f in fields:
        if f not in columns:
            raise missing_field(f, columns, where, f" (asked for by {option})")


def read_column(path: str | os.PathLike[str], field: str, *, name: str = "input",
                allow_null: bool = False) -> np.ndarray:
    """All values of one column (labels, ids) of a parquet, csv (with a header) or jsonl file, in row order.

    Returns a numpy array (numeric when every value is a number, else object holding the values). Raises
    :class:`InvalidInputError` when the column is missing (listing the columns) or a value is null (unless
    ``allow_null``: then nulls are kept as ``None``).
    """
    p = Path(path)
    fmt = detect_format(p)
    _check_input(p, fmt, name)
    where = describe_file(p, name)
    if fmt == "npy":
        raise InvalidInputError(f"{where}: a .npy file has no named columns (asked for {field!r})")
    values = _TABLE_MODULES[fmt].read_values(p, field, name)
    for i, v in enumerate(values):
        if v is None and not allow_null:
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
        raise InvalidInputError(f"{describe_file(Path(path), name)}: has no rows in text field {text_field!r}")
    return texts


def count_rows(path: str | os.PathLike[str]) -> int:
    """Count the data rows of a file (header and blank lines excluded); a 0-byte file has 0 rows; a folder
    (:mod:`.folder`) has the sum of its files' rows.

    A csv file is taken to have a header row unless a field of its first line parses as a vector (the
    headerless reference layout), as in :func:`open_embeddings`.

    Raises
    ------
    InvalidInputError
        Missing file, unknown extension, unreadable file.
    """
    p = Path(path)
    fmt = detect_format(p)
    where = describe_file(p, "input")
    if fmt == "folder":
        return int(folder.count(p, f"input folder '{p}'"))
    if not p.is_file():
        raise InvalidInputError(f"{where}: no such file" if not p.exists() else f"{where}: is not a file")
    if p.stat().st_size == 0:
        return 0
    return _MODULES[fmt].count(p, where)


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
    _check_input(p, fmt, name)
    where = describe_file(p, name)
    if fmt == "npy":
        raise InvalidInputError(f"{where}: a .npy file holds vectors, not text; use jsonl, csv or parquet")
    return _TABLE_MODULES[fmt].text_blocks(p, text_field, block_rows, where)


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
        npy.write_matrix(p, arr, extra_columns)
    else:
        parquet.write_matrix(p, arr, extra_columns)
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
        in ascending id order, in the pool's dtype (ids are not stored in it); a folder pool gives parquet. An existing
        ``gio_row_id``/``gio_rank`` column is overwritten.
    """
    src = source if isinstance(source, EmbeddingSource) else open_embeddings(source)
    ids64 = check_indices(ids, src.n_rows, "ids", src.where)
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
    want = _OUTPUT_FORMATS.get(src.format, src.format)
    if out_fmt != want:
        raise InvalidParameterError(
            f"out_path '{out}' is {out_fmt}, but the pool '{src.path}' is {src.format}; selected rows are "
            f"written in the pool's format (give out_path a {want} extension)"
        )
    if out.exists() and out.resolve() == src.path.resolve():
        raise InvalidParameterError(f"out_path '{out}' is the pool file itself; choose another path")
    uniq, ranks = _dedupe_selection(ids64, rank64)
    _MODULES[src.format].write_selected(src, uniq, ranks, out, block_rows)
    logger.info("wrote %d selected row(s) of %s to '%s'", len(uniq), src.where, out)
    return out
