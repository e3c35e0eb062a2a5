"""A save_to_disk folder and a folder of parquet shards read as one pool by gioselect.io (real datasets, pyarrow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gioselect.cli import main
from gioselect.errors import InvalidInputError
from gioselect.io import (
    count_rows,
    detect_format,
    input_fingerprint,
    iter_text_blocks,
    open_embeddings,
    open_table,
    read_column,
    read_texts,
    write_selected_rows,
)
from gioselect.io.folder import folder_kind

datasets = pytest.importorskip("datasets")


def _pool(n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    c = rng.normal(size=(2, 8))
    lab = np.arange(n) % 2
    x = c[lab] + 0.2 * rng.normal(size=(n, 8))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), lab


def _texts(n: int) -> list[str]:
    return [f"row {i} says {'abc'[i % 3]}" for i in range(n)]


def _hf(tmp_path: Path, x: np.ndarray, shards: int = 3) -> Path:
    ds = datasets.Dataset.from_dict({"id": list(range(len(x))), "text": _texts(len(x)), "embedding": x.tolist()})
    ds.save_to_disk(str(tmp_path / "hf"), num_shards=shards)
    return tmp_path / "hf"


def _shards(tmp_path: Path, x: np.ndarray, size: int = 150) -> Path:
    d = tmp_path / "shards"
    d.mkdir()
    texts = _texts(len(x))
    for i, s in enumerate(range(0, len(x), size)):
        e = min(len(x), s + size)
        pq.write_table(pa.table({"id": np.arange(s, e), "text": texts[s:e], "embedding": list(x[s:e])}),
                       d / f"part-{i:05d}.parquet", row_group_size=64)
    (d / "_SUCCESS").write_text("")  # Spark's marker: ignored
    return d


@pytest.mark.parametrize("layout", ["save_to_disk", "parquet_shards"])
def test_a_folder_reads_as_one_table_with_continuous_row_ids(tmp_path: Path, layout: str) -> None:
    x, _ = _pool()
    folder = _hf(tmp_path, x) if layout == "save_to_disk" else _shards(tmp_path, x)
    assert folder_kind(folder) == layout
    assert detect_format(folder) == "folder"
    assert count_rows(folder) == 400
    src = open_embeddings(folder, name="pool")
    assert (src.n_rows, src.dim, src.embedding_field, src.format) == (400, 8, "embedding", "folder")
    assert len(src.files) == 3 and sum(src.file_rows) == 400
    np.testing.assert_array_equal(src.read_all(), x)
    # Blocks of 50 never cross a file boundary, and their row0s run on across the files.
    got = list(src.iter_blocks(50))
    bounds = np.cumsum([0, *src.file_rows])
    for row0, block in got:
        np.testing.assert_array_equal(block, x[row0 : row0 + len(block)])
        assert np.searchsorted(bounds, row0, "right") == np.searchsorted(bounds, row0 + len(block) - 1, "right")
    assert sum(len(b) for _, b in got) == 400
    idx = np.array([399, 0, int(bounds[1]) - 1, int(bounds[1]), int(bounds[2]), 5, 0])
    np.testing.assert_array_equal(src.read_rows(idx), x[idx])
    assert read_texts(folder, "text") == _texts(400)
    assert [r0 for r0, _ in iter_text_blocks(folder, "text", block_rows=100)][:2] == [0, 100]
    np.testing.assert_array_equal(read_column(folder, "id"), np.arange(400))
    assert open_table(folder).columns == ["id", "text", "embedding"]
    # The selection is written as one parquet file with every column and the gio columns.
    out = write_selected_rows(src, idx, tmp_path / "sel.parquet", rank=np.arange(len(idx)))
    t = pq.read_table(out)
    assert t["gio_row_id"].to_pylist() == sorted(set(idx.tolist()))
    assert t["id"].to_pylist() == sorted(set(idx.tolist()))
    assert t["text"].to_pylist() == [_texts(400)[i] for i in sorted(set(idx.tolist()))]
    assert t["gio_rank"].to_pylist() == [1, 5, 2, 3, 4, 0]  # rows 0 (ranks 1 and 6: the smallest), 5, ...
    with pytest.raises(Exception, match="written in the pool's format"):
        write_selected_rows(src, idx, tmp_path / "sel.jsonl")


def test_folder_fingerprint_is_by_content(tmp_path: Path) -> None:
    x, _ = _pool()
    folder = _shards(tmp_path, x)
    fp = input_fingerprint(folder)
    assert [f["name"] for f in fp["files"]] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert fp["bytes"] == sum(f.stat().st_size for f in folder.glob("*.parquet"))
    assert fp["kind"] == "parquet_shards"
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in folder.glob("*.parquet"):
        (copy / f.name).write_bytes(f.read_bytes())
    assert input_fingerprint(copy)["sha256"] == fp["sha256"]  # same content elsewhere: same fingerprint
    last = copy / "part-00002.parquet"
    pq.write_table(pq.read_table(last).slice(1), last)
    assert input_fingerprint(copy)["sha256"] != fp["sha256"]


def test_folder_errors_name_the_folder_and_file(tmp_path: Path) -> None:
    x, _ = _pool()
    folder = _shards(tmp_path, x)
    pq.write_table(pa.table({"other": [1]}), folder / "part-99999.parquet")
    with pytest.raises(InvalidInputError, match=r"part-99999\.parquet .*differ from part-00000\.parquet"):
        open_embeddings(folder)
    ds = datasets.Dataset.from_dict({"embedding": x.tolist()})
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(InvalidInputError, match="pass one split's folder"):
        open_embeddings(tmp_path / "dd")
    assert open_embeddings(tmp_path / "dd" / "train").n_rows == 400
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("x")
    with pytest.raises(InvalidInputError, match="neither a datasets save_to_disk folder"):
        detect_format(tmp_path / "plain")
    hf = _hf(tmp_path, x, shards=2)
    state = json.loads((hf / "state.json").read_text())
    (hf / state["_data_files"][1]["filename"]).unlink()
    with pytest.raises(InvalidInputError, match="missing data files"):
        open_embeddings(hf)


def test_cli_selects_from_a_folder_and_records_it(tmp_path: Path) -> None:
    x, lab = _pool()
    hf = _hf(tmp_path, x, shards=2)
    np.save(tmp_path / "target.npy", x[lab == 0][:60] + np.float32(0.01))
    common = ["--target", str(tmp_path / "target.npy"), "--clusters", "0", "--max-iter", "20", "-q", "--no-report"]
    assert main(["select", "--pool", str(hf), "--out", str(tmp_path / "out"), *common]) == 0
    ids = np.load(tmp_path / "out" / "selected_ids.npy")
    np.save(tmp_path / "pool.npy", x)
    assert main(["select", "--pool", str(tmp_path / "pool.npy"), "--out", str(tmp_path / "ref"), *common]) == 0
    np.testing.assert_array_equal(ids, np.load(tmp_path / "ref" / "selected_ids.npy"))  # same rows, same order
    rows = pq.read_table(tmp_path / "out" / "selected_rows.parquet")
    assert rows["id"].to_pylist() == sorted(ids.tolist())
    # No temporary copy: the manifest names the folder, its files with sizes and a content fingerprint.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "out", "pool.npy", "ref", "target.npy"]
    rec = json.loads((tmp_path / "out" / "manifest.json").read_text())["inputs"]["pool"]
    assert rec["path"] == str(hf) and rec["format"] == "folder" and rec["kind"] == "save_to_disk"
    assert [f["name"] for f in rec["files"]] == ["data-00000-of-00002.arrow", "data-00001-of-00002.arrow"]
    assert [f["bytes"] for f in rec["files"]] == [(hf / f["name"]).stat().st_size for f in rec["files"]]
    assert rec["sha256"] == input_fingerprint(hf)["sha256"] and rec["rows"] == 400
    # The same folder as parquet shards gives the same selection; the spark engine refuses save_to_disk.
    sh = _shards(tmp_path, x, size=130)
    assert main(["select", "--pool", str(sh), "--out", str(tmp_path / "sh"), *common]) == 0
    np.testing.assert_array_equal(ids, np.load(tmp_path / "sh" / "selected_ids.npy"))
    assert main(["select", "--pool", str(hf), "--out", str(tmp_path / "sp"), *common, "--engine", "spark"]) == 2
    # plan and evaluate take the folder as well.
    assert main(["plan", "--pool", str(hf), "--target", str(tmp_path / "target.npy"), "--clusters", "0",
                 "-q"]) == 0
    assert main(["evaluate", "--pool", str(sh), "--target", str(tmp_path / "target.npy"), "--out",
                 str(tmp_path / "ev"), "--methods", "gio,random", "--max-iter", "10", "--random-seeds", "1",
                 "-q"]) == 0

