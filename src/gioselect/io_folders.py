"""Folders as one pool: a Hugging Face ``save_to_disk`` folder, or a folder of parquet shards.

* **save_to_disk folder** (``datasets.Dataset.save_to_disk``): ``state.json`` lists the Arrow files
  (``data-00000-of-0000N.arrow``, Arrow IPC streams) in row order. A ``DatasetDict`` folder
  (``dataset_dict.json``) holds one folder per split: pass the split's folder (``folder/train``).
* **parquet shards**: every ``*.parquet`` (or ``*.pq``) file directly in the folder, in file-name order
  (``part-00000.parquet``, ``part-00001.parquet``, ...), all with the same columns.

:func:`consolidate` streams the folder's record batches, in that row order, into one parquet file (one batch in
memory at a time), which is what ``gioselect select --pool FOLDER`` then reads: row ``i`` of the pool is row
``i`` of that concatenation, and the selected rows are written as ``selected_rows.parquet``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InvalidInputError

__all__ = ["consolidate", "folder_files", "folder_kind", "iter_folder_batches"]

logger = logging.getLogger(__name__)


def folder_kind(folder: str | os.PathLike[str]) -> str:
    """``"save_to_disk"`` or ``"parquet_shards"``; an :class:`InvalidInputError` naming what was found otherwise."""
    p = Path(folder)
    if not p.is_dir():
        raise InvalidInputError(f"{p}: not a folder")
    if (p / "dataset_dict.json").exists():
        splits = sorted(c.name for c in p.iterdir() if c.is_dir())
        raise InvalidInputError(
            f"{p}: is a DatasetDict (splits {', '.join(splits)}); pass one split's folder, e.g. {p / splits[0]}"
            if splits else f"{p}: is a DatasetDict with no split folders")
    if (p / "state.json").exists():
        return "save_to_disk"
    if any(f.suffix.lower() in (".parquet", ".pq") for f in p.iterdir() if f.is_file()):
        return "parquet_shards"
    raise InvalidInputError(
        f"{p}: a folder pool must be a datasets save_to_disk folder (with state.json) or hold *.parquet shards")


def folder_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The folder's data files in row order."""
    p = Path(folder)
    kind = folder_kind(p)
    if kind == "save_to_disk":
        try:
            state = json.loads((p / "state.json").read_text())
            files = [p / d["filename"] for d in state["_data_files"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"{p / 'state.json'}: cannot read the list of data files ({exc})") from exc
        missing = [f.name for f in files if not f.exists()]
        if missing:
            raise InvalidInputError(f"{p}: state.json lists missing data files: {', '.join(missing)}")
        return files
    return sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in (".parquet", ".pq"))


def iter_folder_batches(folder: str | os.PathLike[str]) -> Iterator[pa.RecordBatch]:
    """The folder's rows as record batches, in row order; every file must have the first file's schema."""
    files = folder_files(folder)
    kind = folder_kind(folder)
    schema: pa.Schema | None = None
    for f in files:
        try:
            if kind == "save_to_disk":
                with pa.memory_map(str(f)) as src:
                    reader = pa.ipc.open_stream(src)
                    batches: Iterator[pa.RecordBatch] = iter(list(reader))
                    this = reader.schema
            else:
                pf = pq.ParquetFile(f)
                this = pf.schema_arrow
                batches = pf.iter_batches()
        except (pa.ArrowException, OSError) as exc:
            raise InvalidInputError(f"{f}: cannot be read ({exc})") from exc
        this = this.remove_metadata()
        if schema is None:
            schema = this
        elif not this.equals(schema):
            raise InvalidInputError(f"{f}: its columns ({this}) differ from {files[0].name}'s ({schema})")
        for b in batches:
            yield b.replace_schema_metadata(None)


def consolidate(folder: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Write the folder's rows, in order, to one parquet file ``dest`` (streamed; returns ``dest``)."""
    out = Path(dest)
    writer: pq.ParquetWriter | None = None
    n = 0
    try:
        for b in iter_folder_batches(folder):
            if writer is None:
                writer = pq.ParquetWriter(out, b.schema)
            writer.write_batch(b)
            n += b.num_rows
    finally:
        if writer is not None:
            writer.close()
    if n == 0:
        out.unlink(missing_ok=True)
        raise InvalidInputError(f"{folder}: the folder holds no rows")
    logger.info("%s: %d rows from %d file(s) read as one pool", folder, n, len(folder_files(folder)))
    return out
