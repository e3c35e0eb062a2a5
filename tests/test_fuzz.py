"""Hypothesis fuzzing of every reader and of ``GIOSelector.fit``: no crash other than a typed gioselect error.

Each property writes (or builds) a random, mostly malformed input, calls the public function, and accepts either a
result of the promised shape and type or a :class:`gioselect.errors.GIOError` (which the CLI turns into exit 2).
Any other exception (IndexError, KeyError, a bare ValueError from numpy or pyarrow...) fails the test. The
examples add up to 1,300 and run in seconds.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gioselect import GIOSelector
from gioselect.embed import load_idx_labels, load_images
from gioselect.errors import GIOError
from gioselect.io import open_embeddings, open_table, read_column, read_texts

# Derandomised: the same examples on every run (a reproducible suite); deadline off (first calls import faiss).
FAST = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                              st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                          max_leaves=12)
vector = st.lists(st.one_of(st.floats(-1e6, 1e6), st.integers(-5, 5)), min_size=0, max_size=4)


def _expect_typed(fn: Callable[[], Any]) -> Any:
    """Run ``fn``; a gioselect error is fine, anything else propagates and fails the test."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    except GIOError:
        return None


def _readers(p: Path) -> None:
    """Every reader on one file: embeddings (blocks and whole), the table view, a text and a label column."""
    def read_all() -> None:
        src = open_embeddings(p, None, name="pool")
        arr = src.read_all()
        assert arr.ndim == 2 and arr.shape == (src.n_rows, src.dim) and np.isfinite(arr).all()
        n = sum(b.shape[0] for _, b in src.iter_blocks(3))
        assert n == src.n_rows

    _expect_typed(read_all)
    _expect_typed(lambda: open_table(p, name="pool").n_rows)
    texts = _expect_typed(lambda: read_texts(p, "text", name="pool"))
    assert texts is None or all(isinstance(t, str) for t in texts)
    _expect_typed(lambda: read_column(p, "y", name="pool"))


def _write(suffix: str, data: bytes) -> Callable[[Callable[[Path], None]], None]:
    def run(check: Callable[[Path], None]) -> None:
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / f"input{suffix}"
            p.write_bytes(data)
            check(p)
    return run


row = st.one_of(
    st.fixed_dictionaries({"embedding": st.one_of(vector, json_value)},
                          optional={"text": st.one_of(st.text(max_size=8), json_scalar), "y": json_scalar}),
    json_value,
)


@settings(FAST, max_examples=250)
@given(rows=st.lists(row, max_size=6), junk=st.one_of(st.just(""), st.text(max_size=10)))
def test_jsonl_readers(rows: list[Any], junk: str) -> None:
    text = "".join(json.dumps(r) + "\n" for r in rows) + junk
    _write(".jsonl", text.encode())(_readers)


cell = st.one_of(st.text(alphabet="0123456789.,-[] e\"naif", max_size=12), st.floats().map(str))


@settings(FAST, max_examples=200)
@given(header=st.booleans(), rows=st.lists(st.lists(cell, min_size=1, max_size=4), max_size=6),
       sep=st.sampled_from([",", "\t"]))
def test_csv_readers(header: bool, rows: list[list[str]], sep: str) -> None:
    lines = ([sep.join(["text", "embedding", "y"])] if header else []) + [sep.join(r) for r in rows]
    suffix = ".csv" if sep == "," else ".tsv"
    _write(suffix, ("\n".join(lines) + "\n").encode())(_readers)


dtypes = st.sampled_from(["f4", "f8", "f2", "i4", "u1", "?", "c8", "U3", "O", "V4", "M8[s]"])


@settings(FAST, max_examples=200)
@given(dtype=dtypes, shape=st.lists(st.integers(0, 4), min_size=0, max_size=3), cut=st.integers(0, 200),
       fill=st.sampled_from([0.0, 1.0, np.nan, np.inf, 1e39]))
def test_npy_readers(dtype: str, shape: list[int], cut: int, fill: float) -> None:
    import io

    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = np.full(shape, fill).astype(dtype) if dtype != "O" else np.empty(shape, dtype=object)
    except (ValueError, TypeError, OverflowError):
        arr = np.zeros(shape, dtype="f4")
    np.save(buf, arr, allow_pickle=True)
    data = buf.getvalue()
    if cut % 3 == 0:
        data = data[: max(0, len(data) - cut)]  # truncated file
    _write(".npy", data)(_readers)
    _write(".npy", data)(lambda p: _expect_typed(lambda: load_images(p)))


pa_column = st.one_of(
    st.lists(st.one_of(st.none(), vector), max_size=5).map(lambda v: pa.array(v, type=pa.list_(pa.float64()))),
    st.lists(st.one_of(st.none(), st.text(max_size=4)), max_size=5).map(pa.array),
    st.lists(st.one_of(st.none(), st.integers(-5, 5)), max_size=5).map(lambda v: pa.array(v, type=pa.int64())),
    st.lists(st.floats(), max_size=5).map(lambda v: pa.array(v, type=pa.float32())),
)


@settings(FAST, max_examples=200)
@given(cols=st.dictionaries(st.sampled_from(["embedding", "text", "y", "vec", "emb"]), pa_column, max_size=3),
       cut=st.integers(0, 400))
def test_parquet_readers(cols: dict[str, pa.Array], cut: int) -> None:
    import io

    n = min((len(c) for c in cols.values()), default=0)
    table = pa.table({k: v.slice(0, n) for k, v in cols.items()}) if cols else pa.table({"x": pa.array([], pa.int8())})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    data = buf.getvalue()
    if cut % 4 == 0:
        data = data[: max(0, len(data) - cut)]
    _write(".parquet", data)(_readers)


@settings(FAST, max_examples=150)
@given(magic=st.sampled_from([b"\x00\x00\x08\x03", b"\x00\x00\x08\x01", b"\x00\x00\x0d\x03", b"\x01\x02\x03\x04",
                              b""]),
       dims=st.lists(st.integers(0, 5), max_size=4), body=st.binary(max_size=64))
def test_idx_readers(magic: bytes, dims: list[int], body: bytes) -> None:
    data = magic + b"".join(int(d).to_bytes(4, "big") for d in dims) + body
    for suffix in (".idx", "-ubyte"):
        _write(suffix, data)(lambda p: _expect_typed(lambda: load_images(p)))
        _write(suffix, data)(lambda p: _expect_typed(lambda: load_idx_labels(p)))


finite = st.floats(-3, 3, width=32)
odd = st.sampled_from([np.nan, np.inf, -np.inf, 1e39, 0.0])


def _array(draw: st.DrawFn, rows: int, dim: int) -> Any:
    a = np.array(draw(st.lists(finite, min_size=rows * dim, max_size=rows * dim)), dtype=np.float64)
    a = a.reshape(rows, dim) if dim else np.zeros((rows, 0))
    if rows and dim and draw(st.integers(0, 9)) == 0:
        a[draw(st.integers(0, rows - 1)), draw(st.integers(0, dim - 1))] = draw(odd)
    shape = draw(st.sampled_from(["2d", "2d", "2d", "1d", "3d", "list", "int"]))
    if shape == "1d":
        return a.ravel()
    if shape == "3d":
        return a[None]
    if shape == "list":
        return a.tolist()
    if shape == "int":
        return np.round(a).astype(np.int64) if np.isfinite(a).all() else a
    return a


@st.composite
def fit_case(draw: st.DrawFn) -> tuple[Any, Any, dict[str, Any]]:
    dim = draw(st.integers(0, 3))
    pool = _array(draw, draw(st.integers(0, 25)), dim)
    target = _array(draw, draw(st.integers(0, 12)), draw(st.sampled_from([dim, dim, dim, dim + 1])))
    params = draw(st.fixed_dictionaries({}, optional={
        "k": st.integers(-1, 6),
        "max_iter": st.one_of(st.none(), st.integers(-1, 6)),
        "stop_criterion": st.sampled_from(["increase", "max_resets", "min_difference",
                                           "sequential_increase_tolerance", "min_kl", "data_size", "bogus"]),
        "resets_allowed": st.booleans(),
        "max_resets": st.integers(-1, 3),
        "max_data_size": st.floats(-0.5, 1.5),
        "min_kl": st.floats(-5, 5),
        "v_init": st.sampled_from(["jump", "mean", "prev_opt", "nope"]),
        "grad_desc_iter": st.integers(-1, 4),
        "lr": st.one_of(st.floats(-0.1, 0.5), st.just(float("nan"))),
        "scale_factor": st.one_of(st.just("auto"), st.floats(-1, 2), st.just("huge")),
        "uniform_start_size": st.integers(-1, 5),
        "uniform_low": st.floats(-2, 2),
        "uniform_high": st.floats(-2, 2),
        "random_init_pct": st.floats(-0.5, 1.5),
        "random_restart_prob": st.floats(-0.5, 1.5),
        "discard_nearest_for_xy": st.booleans(),
        "normalize": st.booleans(),
        "objective": st.sampled_from(["relaxed", "exact", "other"]),
        "budget": st.one_of(st.none(), st.integers(-1, 30)),
    }))
    params.setdefault("grad_desc_iter", 3)
    params.setdefault("max_iter", 4)
    return pool, target, params


@settings(FAST, max_examples=300)
@given(case=fit_case(), seed=st.integers(0, 3))
def test_fit_raises_only_typed_errors(case: tuple[Any, Any, dict[str, Any]], seed: int) -> None:
    pool, target, params = case

    def fit() -> None:
        sel = GIOSelector(seed=seed, **params).fit(pool, target)
        ids = np.asarray(sel.selected_indices_)
        n = np.asarray(pool).shape[0]
        assert ids.ndim == 1 and ((ids >= 0) & (ids < n)).all()

    _expect_typed(fit)
