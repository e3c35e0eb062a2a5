"""Tests for gioselect.io: readers and writers of .npy, parquet, csv/tsv and jsonl, and atomic writes.

Pools are written here with numpy, pyarrow, csv and json directly (not with gioselect's writers), so the
readers are checked against files made independently of them.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gioselect.errors import GIOError, InvalidInputError, InvalidParameterError, InvalidTypeError
from gioselect.io import (
    FORMATS,
    EmbeddingSource,
    atomic_path,
    count_rows,
    detect_format,
    file_sha256,
    iter_text_blocks,
    open_embeddings,
    write_embeddings,
    write_selected_rows,
)

N, D = 13, 4
# Texts that exercise quoting: delimiters, quotes, brackets, non-ASCII.
TEXTS = [
    "plain",
    "comma, inside",
    'quote " inside',
    "no tab",
    "[not a vector]",
    "ünïcödé ✓",
    "x",
    '"starts with quote"',
    "ends with bracket]",
    "7",
    "   padded   ",
    "semi;colon",
    "last",
]
KINDS = ("npy", "parquet", "csv_header", "csv_reference", "tsv_reference", "jsonl")


def make_pool(seed: int = 0, n: int = N, d: int = D) -> np.ndarray:
    """A small float32 pool with varied magnitudes."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) * rng.choice([1e-3, 1.0, 1e3], size=(n, 1))).astype(np.float32)


def vec_text(row: np.ndarray) -> str:
    """A vector as the reference writes it: str(list) of floats, e.g. '[0.1, 0.2]'."""
    return "[" + ", ".join(repr(float(v)) for v in row) + "]"


def write_pool(kind: str, directory: Path, arr: np.ndarray, texts: list[str] | None = None) -> Path:
    """Write ``arr`` (and ids, texts) in one of KINDS, independently of gioselect.io."""
    texts = texts if texts is not None else [TEXTS[i % len(TEXTS)] for i in range(len(arr))]
    ids = [f"id{i:03d}" for i in range(len(arr))]
    if kind == "npy":
        p = directory / "pool.npy"
        np.save(p, arr)
    elif kind == "parquet":
        p = directory / "pool.parquet"
        table = pa.table(
            {"id": ids, "text": texts, "embedding": pa.array(arr.tolist(), type=pa.list_(pa.float32()))}
        )
        pq.write_table(table, p, row_group_size=5)  # several row groups
    elif kind == "csv_header":
        p = directory / "pool.csv"
        with open(p, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["id", "text", "embedding"])
            for i, row in enumerate(arr):
                w.writerow([ids[i], texts[i], vec_text(row)])
    elif kind in ("csv_reference", "tsv_reference"):
        # grad-info-opt's layout: tab-delimited, no header, vector in the third column.
        p = directory / ("pool.csv" if kind == "csv_reference" else "pool.tsv")
        lines = [f"{ids[i]}\t{texts[i]}\t{vec_text(row)}" for i, row in enumerate(arr)]
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif kind == "jsonl":
        p = directory / "pool.jsonl"
        with open(p, "w", encoding="utf-8") as f:
            for i, row in enumerate(arr):
                f.write(
                    json.dumps({"id": ids[i], "text": texts[i], "embedding": [float(v) for v in row]}) + "\n"
                )
    else:  # pragma: no cover
        raise AssertionError(kind)
    return p


def write_jsonl(path: Path, objs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------------
# formats and round trips


def test_detect_format() -> None:
    assert FORMATS == ("npy", "parquet", "csv", "jsonl", "folder")
    cases = {
        "a.npy": "npy",
        "a.PARQUET": "parquet",
        "a.pq": "parquet",
        "a.csv": "csv",
        "a.tsv": "csv",
        "a.jsonl": "jsonl",
        "a.ndjson": "jsonl",
        "dir/x.y.Jsonl": "jsonl",
    }
    for name, fmt in cases.items():
        assert detect_format(name) == fmt
    with pytest.raises(InvalidInputError, match=r"pool\.txt.*\.npy.*\.parquet.*\.jsonl"):
        detect_format("pool.txt")
    with pytest.raises(InvalidInputError, match="no extension"):
        detect_format("pool")


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip(kind: str, tmp_path: Path) -> None:
    arr = make_pool()
    src = open_embeddings(write_pool(kind, tmp_path, arr))
    assert isinstance(src, EmbeddingSource)
    assert (src.n_rows, src.dim) == (N, D)
    assert src.format == detect_format(src.path)
    blocks = list(src.iter_blocks(block_rows=5))
    assert [r0 for r0, _ in blocks] == [0, 5, 10]
    for _, b in blocks:
        assert b.dtype == np.float32 and b.flags.c_contiguous and b.flags.writeable and b.shape[1] == D
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), arr)
    idx = np.array([12, 0, 5, 5, 3, 12, 7, 0])
    got = src.read_rows(idx)
    assert got.dtype == np.float32 and got.shape == (len(idx), D)
    np.testing.assert_array_equal(got, arr[idx])
    np.testing.assert_array_equal(src.read_all(), arr)
    assert src.read_rows(np.array([], dtype=np.int64)).shape == (0, D)
    assert count_rows(src.path) == N


@pytest.mark.parametrize("kind", KINDS)
def test_columns_and_fields(kind: str, tmp_path: Path) -> None:
    src = open_embeddings(write_pool(kind, tmp_path, make_pool()))
    expected = {
        "npy": (None, []),
        "parquet": ("embedding", ["id", "text", "embedding"]),
        "csv_header": ("embedding", ["id", "text", "embedding"]),
        "csv_reference": ("_c2", ["_c0", "_c1", "_c2"]),
        "tsv_reference": ("_c2", ["_c0", "_c1", "_c2"]),
        "jsonl": ("embedding", ["id", "text", "embedding"]),
    }[kind]
    assert (src.embedding_field, src.columns) == expected


def test_reference_csv_layout(tmp_path: Path) -> None:
    """The exact lines grad-info-opt reads: id<TAB>text<TAB>[0.1, 0.2], no header, .csv extension."""
    p = tmp_path / "ref.csv"
    p.write_text('0\thello world\t[0.1, 0.2]\n1\tsecond, with comma\t[0.3, -0.4]\n2\t"quoted"\t[5, 6e-1]\n')
    src = open_embeddings(p)
    assert src.columns == ["_c0", "_c1", "_c2"] and src.embedding_field == "_c2"
    assert src.n_rows == 3 and src.dim == 2
    np.testing.assert_allclose(
        src.read_all(), np.array([[0.1, 0.2], [0.3, -0.4], [5.0, 0.6]], dtype=np.float32)
    )
    # Naming the column explicitly works the same; a header-style name does not exist here.
    assert open_embeddings(p, "_c2").embedding_field == "_c2"
    with pytest.raises(InvalidInputError, match=r"'embedding'.*'_c0', '_c1', '_c2'.*no header row"):
        open_embeddings(p, "embedding")


def test_int_npy_is_converted(tmp_path: Path) -> None:
    a = np.arange(12, dtype=np.int64).reshape(6, 2)
    np.save(tmp_path / "i.npy", a)
    got = open_embeddings(tmp_path / "i.npy").read_all()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, a.astype(np.float32))


def test_fixed_size_list_and_large_list_parquet(tmp_path: Path) -> None:
    arr = make_pool(1, n=7, d=3)
    for typ, name in [(pa.list_(pa.float64(), 3), "fixed"), (pa.large_list(pa.float16()), "large")]:
        p = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"vec": pa.array(arr.tolist(), type=typ)}), p)
        src = open_embeddings(p)
        assert src.embedding_field == "vec" and src.dim == 3
        expected = arr.astype(np.float16).astype(np.float32) if name == "large" else arr
        np.testing.assert_array_equal(src.read_rows(np.array([6, 0, 6])), expected[[6, 0, 6]])


def test_jsonl_blank_lines_and_int_values(tmp_path: Path) -> None:
    p = tmp_path / "p.ndjson"
    p.write_text('\n{"v": [1, 2]}\n\n{"v": [3.5, 4]}\r\n   \n{"v": [5, 6]}')
    src = open_embeddings(p)
    assert src.n_rows == 3 and count_rows(p) == 3
    np.testing.assert_array_equal(src.read_all(), [[1, 2], [3.5, 4], [5, 6]])


def test_comma_csv_header_detects_other_name(tmp_path: Path) -> None:
    p = tmp_path / "p.csv"
    p.write_text('label,emb_col\na,"[1, 2, 3]"\nb,"[4, 5, 6]"\n')
    src = open_embeddings(p)
    assert src.embedding_field == "emb_col" and src.columns == ["label", "emb_col"] and src.n_rows == 2
    np.testing.assert_array_equal(src.read_all(), [[1, 2, 3], [4, 5, 6]])


# ------------------------------------------------------------------------------------------------------
# properties: any block size gives the same array


@pytest.fixture(scope="module")
def pool_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, dict[str, EmbeddingSource]]:
    arr = make_pool(5, n=23, d=3)
    srcs = {}
    for kind in KINDS:
        d = tmp_path_factory.mktemp(kind)
        srcs[kind] = open_embeddings(write_pool(kind, d, arr))
    return arr, srcs


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(KINDS), block_rows=st.integers(1, 30))
def test_any_block_size_same_array(
    pool_files: tuple[np.ndarray, dict[str, EmbeddingSource]], kind: str, block_rows: int
) -> None:
    arr, srcs = pool_files
    blocks = list(srcs[kind].iter_blocks(block_rows))
    starts = [r0 for r0, _ in blocks]
    sizes = [len(b) for _, b in blocks]
    assert starts == list(np.cumsum([0, *sizes[:-1]]))
    assert all(0 < s <= block_rows for s in sizes)
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), arr)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(KINDS), idx=st.lists(st.integers(0, 22), max_size=40))
def test_read_rows_any_order(
    pool_files: tuple[np.ndarray, dict[str, EmbeddingSource]], kind: str, idx: list[int]
) -> None:
    arr, srcs = pool_files
    np.testing.assert_array_equal(
        srcs[kind].read_rows(np.array(idx, dtype=np.int64)), arr[idx].reshape(-1, 3)
    )


def test_read_rows_rejects_bad_indices(tmp_path: Path) -> None:
    src = open_embeddings(write_pool("jsonl", tmp_path, make_pool()))
    with pytest.raises(InvalidParameterError, match=r"indices\[1\] = 13 is out of range.*13 rows"):
        src.read_rows(np.array([0, 13]))
    with pytest.raises(InvalidParameterError, match="out of range"):
        src.read_rows(np.array([-1]))
    with pytest.raises(InvalidParameterError, match="integers"):
        src.read_rows(np.array([0.0, 1.0]))
    with pytest.raises(InvalidParameterError, match="block_rows"):
        src.iter_blocks(0)


# ------------------------------------------------------------------------------------------------------
# autodetect of the embedding field


def test_autodetect_parquet_prefers_known_name(tmp_path: Path) -> None:
    p = tmp_path / "p.parquet"
    pq.write_table(pa.table({"id": [1, 2], "other": [[1.0], [2.0]], "features": [[1.0, 2.0], [3.0, 4.0]]}), p)
    src = open_embeddings(p)
    assert src.embedding_field == "features" and src.dim == 2
    assert open_embeddings(p, "other").dim == 1


def test_autodetect_jsonl_single_list_field(tmp_path: Path) -> None:
    rows = [{"t": "a", "tags": ["x"], "vec": [1, 2]}, {"t": "b", "tags": [], "vec": [3, 4]}]
    p = write_jsonl(tmp_path / "p.jsonl", rows)
    src = open_embeddings(p)
    assert src.embedding_field == "vec" and src.columns == ["t", "tags", "vec"]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_autodetect_ambiguous(fmt: str, tmp_path: Path) -> None:
    rows = [{"a": [1.0, 2.0], "b": [3.0, 4.0]}, {"a": [5.0, 6.0], "b": [7.0, 8.0]}]
    p = tmp_path / f"p.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), p)
    elif fmt == "jsonl":
        write_jsonl(p, rows)
    else:
        p.write_text('a,b\n"[1, 2]","[3, 4]"\n"[5, 6]","[7, 8]"\n')
    with pytest.raises(InvalidInputError, match=r"several columns hold vectors: 'a', 'b'.*embedding_field"):
        open_embeddings(p)
    np.testing.assert_array_equal(open_embeddings(p, "b").read_all(), [[3, 4], [7, 8]])


def test_autodetect_none_found(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "p.jsonl", [{"text": "hi", "n": 3}])
    with pytest.raises(InvalidInputError, match=r"no column holding vectors.*'text', 'n'"):
        open_embeddings(p)


# ------------------------------------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize("ext", [".npy", ".parquet", ".csv", ".jsonl"])
def test_missing_file(ext: str, tmp_path: Path) -> None:
    p = tmp_path / f"nope{ext}"
    with pytest.raises(InvalidInputError, match=r"target file '.*nope.*': no such file"):
        open_embeddings(p, name="target")


def test_unknown_extension(tmp_path: Path) -> None:
    p = tmp_path / "pool.txt"
    p.write_text("1 2 3\n")
    with pytest.raises(InvalidInputError, match=r"pool\.txt.*accepted extensions: \.npy"):
        open_embeddings(p)


@pytest.mark.parametrize("ext", [".npy", ".parquet", ".csv", ".tsv", ".jsonl"])
def test_zero_byte_file(ext: str, tmp_path: Path) -> None:
    p = tmp_path / f"empty{ext}"
    p.write_bytes(b"")
    with pytest.raises(InvalidInputError, match="empty"):
        open_embeddings(p)
    assert count_rows(p) == 0


def test_empty_without_rows(tmp_path: Path) -> None:
    np.save(tmp_path / "e.npy", np.zeros((0, 3), dtype=np.float32))
    pq.write_table(pa.table({"embedding": pa.array([], type=pa.list_(pa.float32()))}), tmp_path / "e.parquet")
    (tmp_path / "e.csv").write_text("id,embedding\n")
    (tmp_path / "e.jsonl").write_text("\n\n  \n")
    for name in ["e.npy", "e.parquet", "e.csv", "e.jsonl"]:
        with pytest.raises(InvalidInputError, match=r"empty.*0 rows|0 rows.*empty"):
            open_embeddings(tmp_path / name)
    assert count_rows(tmp_path / "e.jsonl") == 0


def test_ragged_vectors(tmp_path: Path) -> None:
    good = [[1.0, 2.0, 3.0]] * 5
    rows = [*good[:3], [1.0, 2.0], *good[3:]]
    write_jsonl(tmp_path / "r.jsonl", [{"embedding": r} for r in rows])
    pq.write_table(pa.table({"embedding": rows}), tmp_path / "r.parquet")
    (tmp_path / "r.tsv").write_text("".join(f"{i}\tt\t{r}\n" for i, r in enumerate(rows)))
    for name in ["r.jsonl", "r.parquet", "r.tsv"]:
        src = open_embeddings(tmp_path / name)
        assert src.dim == 3
        with pytest.raises(InvalidInputError, match=r"row 3 .*has 2 values, expected 3"):
            list(src.iter_blocks(2))
        with pytest.raises(InvalidInputError, match=r"row 3 .*has 2 values, expected 3"):
            src.read_rows(np.array([5, 3]))
        np.testing.assert_array_equal(src.read_rows(np.array([4, 0])), [good[0], good[0]])


def test_non_numeric_values(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "s.jsonl", [{"embedding": [1, 2]}, {"embedding": [3, 4]}, {"embedding": [5, "six"]}]
    )
    with pytest.raises(InvalidTypeError, match=r"row 2 \(line 3\) field 'embedding' element 1 is 'six'"):
        open_embeddings(tmp_path / "s.jsonl").read_all()
    write_jsonl(tmp_path / "b.jsonl", [{"embedding": [1, 2]}, {"embedding": [True, 4]}])
    with pytest.raises(InvalidTypeError, match=r"row 1 .*element 0 is True"):
        open_embeddings(tmp_path / "b.jsonl").read_all()
    write_jsonl(tmp_path / "n.jsonl", [{"embedding": [1, 2]}, {"embedding": None}])
    with pytest.raises(InvalidTypeError, match=r"row 1 .*'embedding' is null"):
        open_embeddings(tmp_path / "n.jsonl").read_all()
    (tmp_path / "s.tsv").write_text("0\ta\t[1, 2]\n1\tb\t[1, abc]\n")
    with pytest.raises(InvalidTypeError, match=r"row 1 column '_c2' element 1 is 'abc'"):
        list(open_embeddings(tmp_path / "s.tsv").iter_blocks())
    (tmp_path / "u.tsv").write_text("0\ta\t[1, 2]\n1\tb\tnot a vector\n")
    with pytest.raises(InvalidInputError, match=r"row 1 column '_c2' is 'not a vector'"):
        open_embeddings(tmp_path / "u.tsv").read_all()
    pq.write_table(pa.table({"embedding": [["a", "b"]]}), tmp_path / "s.parquet")
    with pytest.raises(InvalidTypeError, match=r"column 'embedding' has type list<.*string.*>"):
        open_embeddings(tmp_path / "s.parquet", "embedding")
    pq.write_table(pa.table({"embedding": [[1.0, None]]}), tmp_path / "null.parquet")
    with pytest.raises(InvalidTypeError, match=r"row 0 column 'embedding' element 1 is null"):
        open_embeddings(tmp_path / "null.parquet").read_all()


@pytest.mark.parametrize(
    ("dtype", "word"),
    [
        (np.bool_, "bool"),
        (np.complex64, "complex"),
        ("<U3", "string"),
        ([("a", "f4"), ("b", "f4")], "structured"),
    ],
)
def test_non_numeric_npy(dtype: object, word: str, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((3, 2), dtype=dtype))
    with pytest.raises(InvalidTypeError, match=word):
        open_embeddings(tmp_path / "x.npy")


@pytest.mark.parametrize("kind", ["npy", "parquet", "csv_header", "tsv_reference", "jsonl"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_names_row(kind: str, bad: float, tmp_path: Path) -> None:
    arr = make_pool()
    arr[9, 2] = bad
    src = open_embeddings(write_pool(kind, tmp_path, arr))
    word = "NaN" if np.isnan(bad) else ("-inf" if bad < 0 else "inf")
    with pytest.raises(InvalidInputError, match=rf"row 9 .*element 2 is {word}\b.*finite"):
        list(src.iter_blocks(4))
    with pytest.raises(InvalidInputError, match=rf"row 9 .*element 2 is {word}\b.*finite"):
        list(src.iter_views(4))
    with pytest.raises(InvalidInputError, match=r"row 9 "):
        src.read_rows(np.array([0, 9]))
    np.testing.assert_array_equal(src.read_rows(np.array([8, 10])), arr[[8, 10]])


@pytest.mark.parametrize("dtype", ["f4", "f8", "i2"])
def test_iter_views_are_the_blocks_and_a_float32_npy_is_not_copied(dtype: str, tmp_path: Path) -> None:
    """iter_views yields iter_blocks' rows; for a float32 .npy they are read-only views of the memory map (no
    copy), for other dtypes converted copies; iter_blocks still hands out writable blocks."""
    arr = (make_pool() * 10).astype(dtype)
    np.save(tmp_path / "x.npy", arr)
    src = open_embeddings(tmp_path / "x.npy")
    blocks, views = list(src.iter_blocks(4)), list(src.iter_views(4))
    assert [r for r, _ in views] == [r for r, _ in blocks] == list(range(0, arr.shape[0], 4))
    for (_, b), (_, v) in zip(blocks, views, strict=True):
        np.testing.assert_array_equal(v, b)
        assert v.dtype == np.float32 and b.flags.writeable
        assert v.flags.writeable == (dtype != "f4")
        if dtype == "f4":
            assert isinstance(v.base, np.memmap) or isinstance(v, np.memmap)
    with pytest.raises(InvalidParameterError, match="block_rows"):
        src.iter_views(0)


def test_float32_overflow_is_named(tmp_path: Path) -> None:
    a = np.ones((3, 2))
    a[1, 0] = 1e300
    np.save(tmp_path / "big.npy", a)
    with pytest.raises(InvalidInputError, match=r"row 1 .*element 0 is 1e\+300, which overflows float32"):
        open_embeddings(tmp_path / "big.npy").read_all()


def test_missing_embedding_column(tmp_path: Path) -> None:
    for kind in ["parquet", "csv_header", "jsonl"]:
        d = tmp_path / kind
        d.mkdir()
        p = write_pool(kind, d, make_pool())
        with pytest.raises(InvalidInputError, match=r"no column 'vec'.*'id', 'text', 'embedding'"):
            open_embeddings(p, "vec")


def test_wrong_type_embedding_column(tmp_path: Path) -> None:
    p = write_pool("parquet", tmp_path, make_pool())
    with pytest.raises(InvalidTypeError, match=r"column 'text' has type string"):
        open_embeddings(p, "text")
    q = write_pool("jsonl", tmp_path, make_pool())
    with pytest.raises(InvalidTypeError, match=r"field 'text' is a string, expected a list of numbers"):
        open_embeddings(q, "text")


def test_pickle_npy_refused(tmp_path: Path) -> None:
    p = tmp_path / "obj.npy"
    np.save(p, np.array([[1.0, 2.0], [3.0, 4.0]], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidInputError, match=r"Python objects.*refused for safety"):
        open_embeddings(p)
    with pytest.raises(InvalidInputError, match="refused for safety"):
        write_selected_rows(p, np.array([0]), tmp_path / "out.npy")


def test_npy_not_2d_and_truncated(tmp_path: Path) -> None:
    np.save(tmp_path / "one.npy", np.zeros(5, dtype=np.float32))
    with pytest.raises(InvalidInputError, match=r"2-D.*1-D shape \(5,\)"):
        open_embeddings(tmp_path / "one.npy")
    np.save(tmp_path / "three.npy", np.zeros((2, 2, 2), dtype=np.float32))
    with pytest.raises(InvalidInputError, match="3-D"):
        open_embeddings(tmp_path / "three.npy")
    np.save(tmp_path / "t.npy", np.zeros((100, 4), dtype=np.float32))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:-50])
    with pytest.raises(InvalidInputError, match="truncated"):
        open_embeddings(tmp_path / "t.npy")
    (tmp_path / "junk.npy").write_bytes(b"not an npy file at all")
    with pytest.raises(InvalidInputError, match=r"not a valid \.npy"):
        open_embeddings(tmp_path / "junk.npy")


def test_corrupt_parquet(tmp_path: Path) -> None:
    p = write_pool("parquet", tmp_path, make_pool())
    data = p.read_bytes()
    bad = tmp_path / "cut.parquet"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError, match=r"cut\.parquet.*parquet"):
        open_embeddings(bad)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InvalidInputError, match="parquet"):
        open_embeddings(junk)


def test_invalid_json_line(tmp_path: Path) -> None:
    p = tmp_path / "p.jsonl"
    p.write_text('{"embedding": [1, 2]}\n{"embedding": [3, 4]\n')
    with pytest.raises(InvalidInputError, match=r"row 1 \(line 2\) is not valid JSON"):
        open_embeddings(p).read_all()
    q = tmp_path / "q.jsonl"
    q.write_text('{"embedding": [1, 2]}\n{"other": [3, 4]}\n')
    with pytest.raises(InvalidInputError, match=r"row 1 \(line 2\).*no column 'embedding'.*'other'"):
        open_embeddings(q).read_all()


def test_csv_wrong_field_count(tmp_path: Path) -> None:
    p = tmp_path / "p.tsv"
    p.write_text("0\ta\t[1, 2]\n1\tb\t[3, 4]\textra\n")
    with pytest.raises(InvalidInputError, match=r"p\.tsv.*csv"):
        open_embeddings(p)


# ------------------------------------------------------------------------------------------------------
# writing the selected rows


SEL_IDS = np.array([7, 2, 2, 11, 0, 12])
SEL_RANK = np.arange(len(SEL_IDS))
SEL_ROWS = [0, 2, 7, 11, 12]  # ascending, each once
SEL_RANKS = [4, 1, 0, 3, 5]  # the smallest rank of each


@pytest.mark.parametrize("kind", KINDS)
def test_write_selected_rows(kind: str, tmp_path: Path) -> None:
    arr = make_pool()
    pool = write_pool(kind, tmp_path, arr)
    out = tmp_path / "out" / f"sel{pool.suffix}"
    assert write_selected_rows(pool, SEL_IDS, out, rank=SEL_RANK) == out
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temp file left
    texts = [TEXTS[i] for i in SEL_ROWS]
    ids = [f"id{i:03d}" for i in SEL_ROWS]
    if kind == "npy":
        got = np.load(out)
        assert got.dtype == arr.dtype
        np.testing.assert_array_equal(got, arr[SEL_ROWS])
        return
    if kind == "parquet":
        t = pq.read_table(out)
        assert t.column_names == ["id", "text", "embedding", "gio_row_id", "gio_rank"]
        assert t.schema.field("gio_row_id").type == pa.int64()
        assert t.column("id").to_pylist() == ids and t.column("text").to_pylist() == texts
        assert t.column("gio_row_id").to_pylist() == SEL_ROWS
        assert t.column("gio_rank").to_pylist() == SEL_RANKS
    elif kind == "jsonl":
        objs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [list(o) for o in objs] == [["id", "text", "embedding", "gio_row_id", "gio_rank"]] * 5
        assert [o["id"] for o in objs] == ids and [o["text"] for o in objs] == texts
        assert [o["gio_row_id"] for o in objs] == SEL_ROWS and [o["gio_rank"] for o in objs] == SEL_RANKS
    elif kind == "csv_header":
        with open(out, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        assert rows[0] == ["id", "text", "embedding", "gio_row_id", "gio_rank"]
        assert [r[0] for r in rows[1:]] == ids and [r[1] for r in rows[1:]] == texts
        assert [int(r[3]) for r in rows[1:]] == SEL_ROWS and [int(r[4]) for r in rows[1:]] == SEL_RANKS
    else:  # headerless reference layout: gio columns appended at the end, still tab-delimited, no header
        with open(out, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        with open(pool, newline="", encoding="utf-8") as f:  # field values as a csv parser sees them
            pool_rows = list(csv.reader(f, delimiter="\t"))
        assert all(len(r) == 5 for r in rows) and len(rows) == 5
        assert [r[:3] for r in rows] == [pool_rows[i] for i in SEL_ROWS]
        assert [r[0] for r in rows] == ids and rows[2][1] == "starts with quote"
        assert [int(r[3]) for r in rows] == SEL_ROWS and [int(r[4]) for r in rows] == SEL_RANKS
        assert "\t" in out.read_text().splitlines()[0]
    back = open_embeddings(out)
    assert back.embedding_field == ("_c2" if "reference" in kind else "embedding")
    np.testing.assert_array_equal(back.read_all(), arr[SEL_ROWS])


@pytest.mark.parametrize("kind", ["parquet", "csv_header", "tsv_reference", "jsonl"])
def test_write_selected_rows_without_rank_small_blocks(kind: str, tmp_path: Path) -> None:
    arr = make_pool()
    src = open_embeddings(write_pool(kind, tmp_path, arr))
    out = tmp_path / f"sel{src.path.suffix}"
    write_selected_rows(src, np.array([12, 5, 6, 5]), out, block_rows=2)
    back = open_embeddings(out)
    assert "gio_rank" not in back.columns
    np.testing.assert_array_equal(back.read_all(), arr[[5, 6, 12]])
    assert back.n_rows == 3


@pytest.mark.parametrize("dtype", ["<f4", ">f8", "<i2"])
def test_write_selected_npy_is_the_file_np_save_writes(dtype: str, tmp_path: Path) -> None:
    """A .npy pool's selected rows: the same bytes as np.save of those rows (header, dtype and byte order kept),
    across block boundaries."""
    arr = (make_pool() * 100).astype(dtype)
    np.save(tmp_path / "pool.npy", arr)
    out = tmp_path / "sel.npy"
    write_selected_rows(open_embeddings(tmp_path / "pool.npy"), np.array([12, 5, 6, 5, 0]), out, block_rows=2)
    np.save(tmp_path / "want.npy", arr[[0, 5, 6, 12]])
    assert out.read_bytes() == (tmp_path / "want.npy").read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


@pytest.mark.parametrize("kind", ["npy", "parquet", "csv_header", "jsonl"])
def test_write_selected_rows_empty_selection(kind: str, tmp_path: Path) -> None:
    src = open_embeddings(write_pool(kind, tmp_path, make_pool()))
    out = tmp_path / f"sel{src.path.suffix}"
    write_selected_rows(src, np.array([], dtype=np.int64), out)
    assert out.exists() and count_rows(out) == 0


def test_write_selected_rows_errors_leave_nothing(tmp_path: Path) -> None:
    pool = write_pool("jsonl", tmp_path, make_pool())
    out = tmp_path / "o" / "sel.jsonl"
    with pytest.raises(InvalidParameterError, match=r"ids\[1\] = 99 is out of range"):
        write_selected_rows(pool, np.array([1, 99]), out)
    with pytest.raises(InvalidParameterError, match=r"pool's format"):
        write_selected_rows(pool, np.array([1]), tmp_path / "sel.parquet")
    with pytest.raises(InvalidParameterError, match="rank"):
        write_selected_rows(pool, np.array([1, 2]), out, rank=np.array([0]))
    with pytest.raises(InvalidParameterError, match="pool file itself"):
        write_selected_rows(pool, np.array([1]), pool)
    assert not out.exists() and not (tmp_path / "sel.parquet").exists()
    # A bad line met while writing: the temporary file is removed, no output appears.
    lines = pool.read_text().splitlines()
    lines[4] = "[1, 2]"
    pool.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInputError, match=r"row 4 \(line 5\) is not a JSON object"):
        write_selected_rows(open_embeddings(pool), np.array([1, 4]), out)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_write_selected_rows_overwrites_existing_gio_column(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "p.jsonl", [{"embedding": [i, i], "gio_row_id": 100 + i} for i in range(4)])
    out = write_selected_rows(p, np.array([3, 1]), tmp_path / "o.jsonl")
    assert [json.loads(line)["gio_row_id"] for line in out.read_text().splitlines()] == [1, 3]


# ------------------------------------------------------------------------------------------------------
# text


def test_iter_text_blocks_each_format(tmp_path: Path) -> None:
    texts = [f"text number {i}" for i in range(7)]
    arr = make_pool(n=7)
    for kind in ["parquet", "csv_header", "jsonl"]:
        d = tmp_path / kind
        d.mkdir()
        p = write_pool(kind, d, arr, texts=texts)
        blocks = list(iter_text_blocks(p, "text", block_rows=3))
        assert [r0 for r0, _ in blocks] == [0, 3, 6]
        assert [t for _, b in blocks for t in b] == texts


def test_iter_text_blocks_errors(tmp_path: Path) -> None:
    p = write_jsonl(
        tmp_path / "t.jsonl", [{"text": "a", "id": 1}, {"text": "b", "id": 2}, {"text": 5, "id": 3}]
    )
    with pytest.raises(InvalidInputError, match=r"no column 'body'.*'text', 'id'"):
        iter_text_blocks(p, "body")
    with pytest.raises(InvalidTypeError, match=r"row 2 field 'text' is int"):
        list(iter_text_blocks(p, "text"))
    q = write_jsonl(tmp_path / "w.jsonl", [{"text": "a"}, {"text": "  \t "}])
    with pytest.raises(InvalidInputError, match=r"row 1 field 'text' is empty or whitespace"):
        list(iter_text_blocks(q, "text"))
    r = write_jsonl(tmp_path / "n.jsonl", [{"text": "a"}, {"text": None}])
    with pytest.raises(InvalidTypeError, match=r"row 1 field 'text' is null"):
        list(iter_text_blocks(r, "text"))
    c = tmp_path / "t.csv"
    c.write_text("id,text\n1,hello\n2,\n")
    with pytest.raises(InvalidInputError, match=r"row 1 field 'text' is empty"):
        list(iter_text_blocks(c, "text"))
    with pytest.raises(InvalidInputError, match=r"no column 'body'.*'id', 'text'"):
        iter_text_blocks(c, "body")
    ref = write_pool("csv_reference", tmp_path, make_pool())
    with pytest.raises(InvalidInputError, match="no header row"):
        iter_text_blocks(ref, "_c1")
    pq.write_table(pa.table({"text": ["a", None]}), tmp_path / "t.parquet")
    with pytest.raises(InvalidTypeError, match=r"row 1 field 'text' is null"):
        list(iter_text_blocks(tmp_path / "t.parquet", "text"))
    pq.write_table(pa.table({"text": [1, 2]}), tmp_path / "i.parquet")
    with pytest.raises(InvalidTypeError, match=r"column 'text' has type int64"):
        iter_text_blocks(tmp_path / "i.parquet", "text")
    np.save(tmp_path / "v.npy", np.zeros((2, 2)))
    with pytest.raises(InvalidInputError, match="not text"):
        iter_text_blocks(tmp_path / "v.npy", "text")
    with pytest.raises(InvalidInputError, match="no such file"):
        iter_text_blocks(tmp_path / "missing.jsonl", "text")
    (tmp_path / "h.csv").write_text("id,text\n")
    with pytest.raises(InvalidInputError, match="empty"):
        list(iter_text_blocks(tmp_path / "h.csv", "text"))


# ------------------------------------------------------------------------------------------------------
# atomic writes, hashes, write_embeddings


def test_atomic_path_exception_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "out.npy"
    with pytest.raises(RuntimeError, match="boom"), atomic_path(final) as tmp:
        assert tmp.parent == tmp_path and tmp != final and tmp.suffix == ".npy"
        np.save(tmp, np.zeros(3))
        assert tmp.exists()
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_old_file_on_error_and_replaces_on_success(tmp_path: Path) -> None:
    final = tmp_path / "f.txt"
    final.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert final.read_text() == "old" and list(tmp_path.iterdir()) == [final]
    with atomic_path(final) as tmp:
        tmp.write_text("new")
        assert final.read_text() == "old"
    assert final.read_text() == "new" and list(tmp_path.iterdir()) == [final]
    with pytest.raises(GIOError, match="nothing was written"), atomic_path(tmp_path / "never.txt"):
        pass
    assert list(tmp_path.iterdir()) == [final]


def test_file_sha256(tmp_path: Path) -> None:
    p = tmp_path / "b.bin"
    data = bytes(range(256)) * 100
    p.write_bytes(data)
    assert file_sha256(p, chunk_bytes=1000) == hashlib.sha256(data).hexdigest()
    with pytest.raises(InvalidInputError, match="no such file"):
        file_sha256(tmp_path / "nope")


def test_write_embeddings(tmp_path: Path) -> None:
    arr = make_pool(3, n=6, d=5).astype(np.float64)
    p = write_embeddings(tmp_path / "e.npy", arr)
    got = np.load(p)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, arr.astype(np.float32))
    q = write_embeddings(
        tmp_path / "e.parquet", arr, extra_columns={"id": list(range(6)), "text": list("abcdef")}
    )
    t = pq.read_table(q)
    assert t.column_names == ["embedding", "id", "text"]
    assert t.schema.field("embedding").type == pa.list_(pa.float32(), 5)
    src = open_embeddings(q)
    assert src.embedding_field == "embedding"
    np.testing.assert_array_equal(src.read_all(), arr.astype(np.float32))
    with pytest.raises(InvalidParameterError, match=r"extra_columns\['id'\] has 2 values, expected 6"):
        write_embeddings(tmp_path / "x.parquet", arr, extra_columns={"id": [1, 2]})
    with pytest.raises(InvalidParameterError, match=r"cannot be stored in a \.npy"):
        write_embeddings(tmp_path / "x.npy", arr, extra_columns={"id": list(range(6))})
    with pytest.raises(InvalidParameterError, match=r"\.npy or \.parquet"):
        write_embeddings(tmp_path / "x.csv", arr)
    bad = arr.copy()
    bad[2, 1] = np.nan
    with pytest.raises(InvalidInputError, match="row 2"):
        write_embeddings(tmp_path / "x.npy", bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npy", "e.parquet"]


def test_io_does_not_import_pandas() -> None:
    """pandas is an optional extra; the readers and writers must work without it."""
    import ast

    import gioselect.io as gio_io

    imported: set[str] = set()
    for module in sorted(Path(gio_io.__file__).parent.glob("*.py")):  # every module of the io package
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "numpy" in imported and "pyarrow" in imported
    assert "pandas" not in imported


def test_read_texts_returns_every_row_and_refuses_no_rows(tmp_path: Path) -> None:
    from gioselect.io import read_texts

    p = tmp_path / "t.jsonl"
    p.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(9000)))
    texts = read_texts(p, "text")
    assert len(texts) == 9000 and texts[0] == "row 0" and texts[-1] == "row 8999"  # more than one block
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(InvalidInputError):
        read_texts(empty, "text", name="pool")
