"""Readers and writers for pools and targets of embeddings: ``.npy``, parquet, csv/tsv, jsonl and folders.

One module per format (:mod:`.npy`, :mod:`.parquet`, :mod:`.csv`, :mod:`.jsonl`, and :mod:`.folder` for a
datasets ``save_to_disk`` folder or a folder of parquet shards), each with the same few
functions (``open_source``, ``count``, ``write_selected``; and ``open_rows``, ``read_values``, ``text_blocks``
for the formats with named columns); :mod:`.api` checks arguments and picks the format module by the file's
extension. Shared pieces: :mod:`.source` (the :class:`EmbeddingSource` base class and the columns the writers
add), :mod:`.vectors` (vector columns to float32 matrices, choice of the embedding column, row-index checks)
and :mod:`.files` (atomic writes, hashing, file checks). See :mod:`gioselect.io.api` for the layouts.
"""

from .api import (
    FORMATS,
    check_columns,
    count_rows,
    detect_format,
    input_fingerprint,
    iter_text_blocks,
    open_embeddings,
    open_table,
    read_column,
    read_texts,
    write_embeddings,
    write_selected_rows,
)
from .files import atomic_path, file_sha256
from .source import RANK_COLUMN, ROW_ID_COLUMN, EmbeddingSource
from .vectors import PREFERRED_EMBEDDING_FIELDS

__all__ = [
    "FORMATS",
    "PREFERRED_EMBEDDING_FIELDS",
    "RANK_COLUMN",
    "ROW_ID_COLUMN",
    "EmbeddingSource",
    "atomic_path",
    "check_columns",
    "count_rows",
    "detect_format",
    "file_sha256",
    "input_fingerprint",
    "iter_text_blocks",
    "open_embeddings",
    "open_table",
    "read_column",
    "read_texts",
    "write_embeddings",
    "write_selected_rows",
]
