"""Folders read as one table: a Hugging Face ``save_to_disk`` folder, or a folder of parquet shards.

* **save_to_disk folder** (``datasets.Dataset.save_to_disk``): ``state.json`` lists the Arrow files
  (``data-00000-of-0000N.arrow``, Arrow IPC streams) in row order. A ``DatasetDict`` folder
  (``dataset_dict.json``) holds one folder per split: pass the split's folder (``folder/train``).
* **parquet shards**: every ``*.parquet`` (or ``*.pq``) file directly in the folder, in file-name order
  (``part-00000.parquet``, ``part-00001.parquet``, ...), all with the same columns (schema metadata aside).
  Hidden files (a leading ``.`` or ``_``, such as Spark's ``_SUCCESS``) are ignored.

Row ``i`` of the folder is row ``i`` of the concatenation of its files in that order: row ids run on across
shard boundaries. The files are streamed one record batch at a time (Arrow files through a memory map), so
memory per block is bounded by ``block_rows``; files holding none of the wanted rows are skipped. The selected
rows of a folder pool are written as one parquet file (:func:`write_selected`), with every column plus
``gio_row_id``/``gio_rank``.

:func:`fingerprint` identifies a folder by content: the name, size and SHA-256 of each data file, in row order,
hashed together (renaming, reordering or changing a shard changes it; ``state.json``'s bookkeeping does not).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InvalidInputError
from .columns import arrow_text_field, arrow_vector_dim, arrow_vector_field, text_table_blocks
from .files import atomic_path, file_sha256
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


def _describe(path: Path, name: str) -> str:
    """Prefix of every message about one input folder."""
    return f"{name} folder '{path}'"


SAVE_TO_DISK = "save_to_disk"
PARQUET_SHARDS = "parquet_shards"
_SHARD_SUFFIXES = (".parquet", ".pq")


def _shards(p: Path) -> list[Path]:
    return sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in _SHARD_SUFFIXES
                  and not f.name.startswith((".", "_")))


def is_folder_table(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder this module reads (save_to_disk, DatasetDict or parquet shards)."""
    p = Path(path)
    if not p.is_dir():
        return False
    if (p / "state.json").is_file() or (p / "dataset_dict.json").is_file():
        return True
    try:
        return bool(_shards(p))
    except OSError:
        return False


def folder_kind(path: str | os.PathLike[str], name: str = "input") -> str:
    """``"save_to_disk"`` or ``"parquet_shards"``; an :class:`InvalidInputError` naming what was found otherwise."""
    return _kind(Path(path), _describe(Path(path), name))


def _kind(p: Path, where: str) -> str:
    if not p.is_dir():
        raise InvalidInputError(f"{where}: not a folder")
    if (p / "dataset_dict.json").exists():
        splits = sorted(c.name for c in p.iterdir() if c.is_dir())
        raise InvalidInputError(
            f"{where}: is a DatasetDict (splits {', '.join(splits)}); pass one split's folder, e.g. {p / splits[0]}"
            if splits else f"{where}: is a DatasetDict with no split folders")
    if (p / "state.json").exists():
        return SAVE_TO_DISK
    if _shards(p):
        return PARQUET_SHARDS
    raise InvalidInputError(
        f"{where}: is a folder but neither a datasets save_to_disk folder (with state.json) nor a folder of "
        "*.parquet shards")


def folder_files(path: str | os.PathLike[str], name: str = "input") -> list[Path]:
    """The folder's data files in row order."""
    return _files(Path(path), _describe(Path(path), name))


def _files(p: Path, where: str) -> list[Path]:
    if _kind(p, where) == PARQUET_SHARDS:
        return _shards(p)
    try:
        state = json.loads((p / "state.json").read_text())
        files = [p / d["filename"] for d in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{where}: cannot read the list of data files in state.json ({exc})") from exc
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise InvalidInputError(f"{where}: state.json lists missing data files: {', '.join(missing)}")
    if not files:
        raise InvalidInputError(f"{where}: state.json lists no data files")
    return files


def _schema(f: Path, kind: str) -> pa.Schema:
    if kind == SAVE_TO_DISK:
        with pa.memory_map(str(f)) as src:
            return pa.ipc.open_stream(src).schema.remove_metadata()
    return pq.ParquetFile(f).schema_arrow.remove_metadata()


def _file_rows(f: Path, kind: str) -> int:
    if kind == PARQUET_SHARDS:
        return int(pq.ParquetFile(f).metadata.num_rows)
    with pa.memory_map(str(f)) as src:  # an IPC stream has no footer: count its batches (zero-copy)
        return sum(b.num_rows for b in pa.ipc.open_stream(src))


def _batches(f: Path, kind: str, columns: list[str] | None, block_rows: int) -> Iterator[pa.RecordBatch]:
    """One file's record batches (only ``columns``), without schema metadata."""
    if kind == PARQUET_SHARDS:
        for b in pq.ParquetFile(f).iter_batches(batch_size=block_rows, columns=columns):
            yield b
        return
    with pa.memory_map(str(f)) as src:
        for b in pa.ipc.open_stream(src):
            yield b.select(columns) if columns is not None else b


class _FolderSource(EmbeddingSource):
    """A folder of Arrow or parquet files read as one table, file after file."""

    format = "folder"

    def __init__(self, path: Path, *, kind: str, files: list[Path], file_rows: list[int],
                 schema: pa.Schema, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.kind = kind
        self.files = files
        self.file_rows = file_rows
        self.schema = schema

    @property
    def where(self) -> str:
        return _describe(self.path, self.name)

    @property
    def output_suffix(self) -> str:
        return ".parquet"

    def _tables(self, block_rows: int, columns: list[str] | None,
                wanted: np.ndarray | None) -> Iterator[tuple[int, pa.Table]]:
        """Yield (global row0, table of <= block_rows rows), file by file; files holding no wanted row skipped."""
        start = 0
        for f, n in zip(self.files, self.file_rows, strict=True):
            if wanted is not None:
                lo, hi = np.searchsorted(wanted, [start, start + n])
                if hi == lo:
                    start += n
                    if start > wanted[-1]:
                        return
                    continue
            row0 = start
            try:
                for table in rebatch(_batches(f, self.kind, columns, block_rows), block_rows):
                    yield row0, table
                    row0 += table.num_rows
            except (pa.ArrowException, OSError) as exc:
                raise InvalidInputError(f"{self.where}: file {f.name} cannot be read: {exc}") from exc
            if row0 != start + n:
                raise InvalidInputError(
                    f"{self.where}: file {f.name} has {row0 - start} rows, {n} when opened (did it change?)")
            start += n

    def _raw_blocks(self, block_rows: int, wanted: np.ndarray | None) -> Iterator[tuple[int, int, Any]]:
        for row0, table in self._tables(block_rows, [str(self.embedding_field)], wanted):
            yield row0, table.num_rows, table.column(0)

    def _convert(self, raw: Any, rows: np.ndarray, local: np.ndarray | None) -> np.ndarray:
        arr = raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw
        if local is not None:
            arr = arr.take(pa.array(local))
        return list_array_to_matrix(arr, rows, self.dim, self.where, self._what)


def _open(path: Path, where: str) -> tuple[str, list[Path], list[int], pa.Schema]:
    """Kind, files, rows per file and the common schema of a folder; every file must have the first one's."""
    kind = _kind(path, where)
    files = _files(path, where)
    schema: pa.Schema | None = None
    rows: list[int] = []
    for f in files:
        try:
            this = _schema(f, kind)
            rows.append(_file_rows(f, kind))
        except (pa.ArrowException, OSError) as exc:
            raise InvalidInputError(f"{where}: file {f.name} cannot be read ({exc})") from exc
        if schema is None:
            schema = this
        elif not this.equals(schema):
            raise InvalidInputError(
                f"{where}: the columns of {f.name} ({', '.join(this.names)}: {this.types}) differ from "
                f"{files[0].name}'s ({', '.join(schema.names)}: {schema.types}); every shard needs the same columns")
    assert schema is not None
    return kind, files, rows, schema


def open_source(path: Path, field: str | None, name: str) -> EmbeddingSource:
    """Open and check a folder: its files, their shared columns, the embedding column and row 0's vector."""
    where = _describe(path, name)
    kind, files, rows, schema = _open(path, where)
    n = sum(rows)
    if n == 0:
        raise InvalidInputError(f"{where}: is empty (0 rows in {len(files)} file(s))")
    columns = list(schema.names)
    field = arrow_vector_field(schema, field, where)
    src = _FolderSource(path, kind=kind, files=files, file_rows=rows, schema=schema, n_rows=n, dim=1,
                        embedding_field=field, columns=columns, name=name)
    first = next(t for _, t in src._tables(1, [field], np.zeros(1, dtype=np.int64))).column(0)
    src.dim = arrow_vector_dim(first.combine_chunks(), field, where)
    return src


def open_rows(path: Path, n: int, name: str) -> EmbeddingSource:
    """Open a folder of ``n`` rows (already counted, n > 0) with no embedding column."""
    kind, files, rows, schema = _open(path, _describe(path, name))
    return _FolderSource(path, kind=kind, files=files, file_rows=rows, schema=schema, n_rows=n, dim=0,
                         embedding_field=None, columns=list(schema.names), name=name)


def count(path: Path, where: str) -> int:
    """Rows of a folder: the sum over its files."""
    return sum(_open(path, where)[2])


def read_values(path: Path, field: str, name: str) -> list[Any]:
    """Every value of one column, in row order."""
    src = open_rows(path, 1, name)
    if field not in src.columns:
        raise missing_field(field, src.columns, src.where)
    assert isinstance(src, _FolderSource)
    out: list[Any] = []
    for _, table in src._tables(65536, [field], None):
        out.extend(table.column(0).to_pylist())
    return out


def text_blocks(path: Path, field: str, block_rows: int, where: str) -> Iterator[tuple[int, list[str]]]:
    """Text blocks of a column (checked eagerly, read lazily)."""
    src = open_rows(path, 1, "text")
    assert isinstance(src, _FolderSource)
    arrow_text_field(src.schema, field, where)
    if sum(src.file_rows) == 0:
        raise InvalidInputError(f"{where}: is empty (0 rows)")

    def gen() -> Iterator[tuple[int, list[str]]]:
        yield from text_table_blocks((t for _, t in src._tables(block_rows, [field], None)), field, where)

    return gen()


def write_selected(
    src: EmbeddingSource, uniq: np.ndarray, ranks: np.ndarray | None, out: Path, block_rows: int
) -> None:
    """Write the selected rows of a folder as one parquet file: all columns plus the gio columns."""
    assert isinstance(src, _FolderSource)
    extra = [ROW_ID_COLUMN] + ([RANK_COLUMN] if ranks is not None else [])
    warn_overwrite(src, extra)
    schema = src.schema
    for c in extra:
        if c in schema.names:
            schema = schema.remove(schema.get_field_index(c))
        schema = schema.append(pa.field(c, pa.int64()))
    done = 0
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        if len(uniq):
            for row0, table in src._tables(block_rows, None, uniq):
                local = select_local(uniq, row0, table.num_rows)
                assert local is not None
                if not local.size:
                    continue
                part = table.take(pa.array(local))
                rk = None if ranks is None else ranks[done : done + local.size]
                for c, values in added_columns(row0 + local, rk):
                    if c in part.column_names:
                        part = part.drop_columns([c])
                    part = part.append_column(pa.field(c, pa.int64()), pa.array(values, pa.int64()))
                writer.write_table(part.select(schema.names).cast(schema))
                done += local.size
        else:
            writer.write_table(schema.empty_table())
    if done != len(uniq):
        raise InvalidInputError(f"{src.where}: wrote {done} of {len(uniq)} selected rows (did it change?)")


_FINGERPRINTS: dict[tuple[Any, ...], dict[str, Any]] = {}


def fingerprint(path: str | os.PathLike[str], name: str = "input") -> dict[str, Any]:
    """What identifies a folder by content: ``{"kind", "bytes", "sha256", "files": [{"name", "bytes", "sha256"}]}``.

    ``sha256`` hashes each data file's name, size and SHA-256, in row order; ``bytes`` is the data files' total.
    The result is kept for the process while no file's size or modification time changes (a run hashes its
    inputs once for the resume fingerprint and once more for the manifest).
    """
    p = Path(path)
    where = _describe(p, name)
    kind, files = _kind(p, where), _files(p, where)
    stats = [f.stat() for f in files]
    key = (os.path.realpath(p), tuple((f.name, s.st_size, s.st_mtime_ns) for f, s in zip(files, stats, strict=True)))
    if key not in _FINGERPRINTS:
        h = hashlib.sha256()
        entries = []
        for f, s in zip(files, stats, strict=True):
            sha = file_sha256(f)
            entries.append({"name": f.name, "bytes": int(s.st_size), "sha256": sha})
            h.update(f"{f.name}\0{s.st_size}\0{sha}\n".encode())
        _FINGERPRINTS[key] = {"kind": kind, "bytes": int(sum(s.st_size for s in stats)), "sha256": h.hexdigest(),
                              "files": entries}
    return dict(_FINGERPRINTS[key])
