"""The column handling shared by the formats (gioselect.io.columns): one message per mistake, whatever the format.

Each mistake is made in a parquet file and in a folder of parquet shards (the two Arrow-typed formats), and
the messages must be the same but for the file's description; csv uses the same column choice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gioselect.errors import InvalidInputError, InvalidTypeError
from gioselect.io import open_embeddings, read_texts
from gioselect.io.columns import arrow_text_field, arrow_vector_dim, arrow_vector_field, resolve_field


def _both(tmp_path: Path, table: pa.Table) -> tuple[Path, Path]:
    """The table as one parquet file and as a folder of two parquet shards."""
    f = tmp_path / "t.parquet"
    pq.write_table(table, f)
    d = tmp_path / "shards"
    d.mkdir()
    half = table.num_rows // 2
    pq.write_table(table.slice(0, half), d / "part-00000.parquet")
    pq.write_table(table.slice(half), d / "part-00001.parquet")
    return f, d


def _message(exc_type: type[Exception], fn: object, *args: object, **kw: object) -> str:
    with pytest.raises(exc_type) as info:
        fn(*args, **kw)  # type: ignore[operator]
    return str(info.value)


def _vectors(n: int = 6, d: int = 3) -> pa.Array:
    return pa.array(np.arange(n * d, dtype=np.float32).reshape(n, d).tolist(), type=pa.list_(pa.float32()))


@pytest.mark.parametrize(("table", "field", "exc", "expected"), [
    (pa.table({"text": ["a b"] * 6}), "text", InvalidTypeError,
     "column 'text' has type string; expected a list of numbers (list<float>, large_list<float> or "
     "fixed_size_list<float>); it holds text: embed it with --text-field text"),
    (pa.table({"emb": _vectors()}), "vec", InvalidInputError, "has no column 'vec'; its columns are 'emb'"),
    (pa.table({"a": _vectors(), "b": _vectors()}), None, InvalidInputError, "several columns hold vectors: 'a', 'b'"),
    (pa.table({"emb": pa.array([None] * 6, type=pa.list_(pa.float32()))}), "emb", InvalidInputError,
     "row 0 column 'emb' is null; expected a list of numbers"),
    (pa.table({"emb": pa.array([[]] * 6, type=pa.list_(pa.float32()))}), "emb", InvalidInputError,
     "row 0 column 'emb' is an empty list; vectors need a dimension"),
])
def test_parquet_and_folder_give_the_same_vector_column_errors(tmp_path: Path, table: pa.Table, field: str | None,
                                                               exc: type[Exception], expected: str) -> None:
    f, d = _both(tmp_path, table)
    got_f = _message(exc, open_embeddings, f, field, name="pool")
    got_d = _message(exc, open_embeddings, d, field, name="pool")
    assert expected in got_f and expected in got_d
    assert got_f.startswith("pool file") and got_d.startswith(f"pool folder '{d}'")
    assert got_f.split(": ", 1)[1] == got_d.split(": ", 1)[1]


def test_parquet_and_folder_give_the_same_text_column_errors(tmp_path: Path) -> None:
    f, d = _both(tmp_path, pa.table({"emb": _vectors(), "n": pa.array(range(6))}))
    msgs = [_message(InvalidTypeError, read_texts, p, "n") for p in (f, d)]
    assert all("row 0 column 'n' has type int64, expected a string" in m for m in msgs)
    msgs = [_message(InvalidInputError, read_texts, p, "body") for p in (f, d)]
    assert all("has no column 'body'; its columns are 'emb', 'n'" in m for m in msgs)
    (tmp_path / "ok").mkdir()
    f2, d2 = _both(tmp_path / "ok", pa.table({"t": pa.array(["x y", "z", "w", "v", "u", "s"]).dictionary_encode()}))
    assert read_texts(f2, "t") == read_texts(d2, "t") == ["x y", "z", "w", "v", "u", "s"]  # dictionary strings


def test_the_helpers_directly() -> None:
    schema = pa.schema([("embedding", pa.list_(pa.float32())), ("other", pa.list_(pa.float64())),
                        ("text", pa.large_string())])
    assert arrow_vector_field(schema, None, "w") == "embedding"  # the usual name wins among two vector columns
    assert arrow_vector_field(schema, "other", "w") == "other"
    arrow_text_field(schema, "text", "w")
    assert arrow_vector_dim(pa.array([[1.0, 2.0]], type=pa.list_(pa.float32())), "e", "w") == 2
    assert resolve_field(None, ["_c0", "_c2"], ["_c0", "_c2"], "w", ("_c2",)) == "_c2"
    with pytest.raises(InvalidInputError, match=r"^w: has no column 'x'; its columns are '_c0' \(by position\)$"):
        resolve_field("x", ["_c0"], [], "w", hint=" (by position)")
    dup = pa.schema([("e", pa.list_(pa.float32())), ("e", pa.list_(pa.float32()))])
    with pytest.raises(InvalidInputError, match="several columns named 'e'"):
        arrow_vector_field(dup, "e", "w")


def test_csv_without_a_header_names_columns_by_position(tmp_path: Path) -> None:
    p = tmp_path / "ref.tsv"
    p.write_text("".join(f"{i}\tx\t[{i}.0, 1.0]\n" for i in range(5)))
    assert open_embeddings(p).embedding_field == "_c2"
    msg = _message(InvalidInputError, open_embeddings, p, "emb")
    assert "has no column 'emb'; its columns are '_c0', '_c1', '_c2' (the file has no header row" in msg
