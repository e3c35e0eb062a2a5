"""Finding and checking the vector or text column of a table, with one set of error messages for every format.

The formats with named columns (:mod:`.parquet`, :mod:`.folder`, :mod:`.csv`, :mod:`.jsonl`) all pick the
embedding column the same way (the one named, or the one column that holds vectors, preferring the usual
names) and the Arrow-typed ones (:mod:`.parquet`, :mod:`.folder`) check the column's type, row 0's vector and
a text column's type here. Messages start with ``where`` (the file or folder and its role) and name the column.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa

from ..errors import InvalidInputError, InvalidTypeError
from .source import check_texts
from .vectors import PREFERRED_EMBEDDING_FIELDS, choose_field, is_vector_type, list_lengths, missing_field

__all__ = ["arrow_text_field", "arrow_vector_dim", "arrow_vector_field", "resolve_field", "text_table_blocks"]


def resolve_field(field: str | None, columns: list[str], candidates: list[str], where: str,
                  preferred: tuple[str, ...] = PREFERRED_EMBEDDING_FIELDS, hint: str = "") -> str:
    """The embedding column: ``field`` when given (it must be one of ``columns``; ``hint`` ends the message
    otherwise), else the one of ``candidates`` (columns that hold vectors) that :func:`choose_field` picks."""
    if field is None:
        return choose_field(candidates, columns, where, preferred)
    if field not in columns:
        raise missing_field(field, columns, where, hint)
    return field


def _is_text_type(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def arrow_vector_field(schema: pa.Schema, field: str | None, where: str) -> str:
    """The embedding column of an Arrow schema (named, or the one list-of-numbers column), checked to be one
    column of a list-of-numbers type; a text column is named as such, with the option that embeds it."""
    columns = list(schema.names)
    vector_columns = [c for i, c in enumerate(columns) if is_vector_type(schema.field(i).type)]  # by position:
    field = resolve_field(field, columns, vector_columns, where)  # a name may stand twice
    if columns.count(field) > 1:
        raise InvalidInputError(f"{where}: has several columns named {field!r}")
    ftype = schema.field(field).type
    if not is_vector_type(ftype):
        raise InvalidTypeError(
            f"{where}: column {field!r} has type {ftype}; expected a list of numbers "
            "(list<float>, large_list<float> or fixed_size_list<float>)"
            + (f"; it holds text: embed it with --text-field {field}" if _is_text_type(ftype) else "")
        )
    return field


def arrow_vector_dim(first: pa.Array, field: str, where: str) -> int:
    """The dimension of row 0's vector (``first``: the column's first row), which must be a non-empty list."""
    if first.null_count:
        raise InvalidInputError(f"{where}: row 0 column {field!r} is null; expected a list of numbers")
    dim = int(list_lengths(first)[0])
    if dim == 0:
        raise InvalidInputError(f"{where}: row 0 column {field!r} is an empty list; vectors need a dimension")
    return dim


def arrow_text_field(schema: pa.Schema, field: str, where: str) -> None:
    """Check that ``field`` is a column of strings (dictionary-encoded strings too)."""
    if field not in schema.names:
        raise missing_field(field, list(schema.names), where)
    ftype = schema.field(field).type
    if pa.types.is_dictionary(ftype):
        ftype = ftype.value_type
    if not _is_text_type(ftype):
        raise InvalidTypeError(f"{where}: row 0 column {field!r} has type {ftype}, expected a string")


def text_table_blocks(tables: Iterable[pa.Table], field: str, where: str) -> Iterator[tuple[int, list[str]]]:
    """``(row0, texts)`` of each one-column table in turn, every value checked (:func:`check_texts`)."""
    row0 = 0
    for table in tables:
        texts = table.column(0).to_pylist()
        yield row0, check_texts(texts, row0, field, where)
        row0 += len(texts)
