"""A save_to_disk folder and a folder of parquet shards read as one pool (real datasets and pyarrow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gioselect.cli import main
from gioselect.errors import InvalidInputError
from gioselect.io_folders import consolidate, folder_kind

datasets = pytest.importorskip("datasets")


def _pool(n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    c = rng.normal(size=(2, 8))
    lab = np.arange(n) % 2
    x = c[lab] + 0.2 * rng.normal(size=(n, 8))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), lab


def test_save_to_disk_and_shards_concatenate_in_order(tmp_path: Path) -> None:
    x, _ = _pool()
    ds = datasets.Dataset.from_dict({"id": list(range(400)), "embedding": x.tolist()})
    ds.save_to_disk(str(tmp_path / "hf"), num_shards=3)
    assert folder_kind(tmp_path / "hf") == "save_to_disk"
    t = pq.read_table(consolidate(tmp_path / "hf", tmp_path / "hf.parquet"))
    assert t["id"].to_pylist() == list(range(400))
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, s in enumerate(range(0, 400, 150)):
        pq.write_table(pa.table({"id": np.arange(s, min(400, s + 150)), "embedding": list(x[s : s + 150])}),
                       shards / f"part-{i:05d}.parquet")
    t2 = pq.read_table(consolidate(shards, tmp_path / "sh.parquet"))
    assert t2["id"].to_pylist() == list(range(400))
    pq.write_table(pa.table({"other": [1]}), shards / "part-99999.parquet")
    with pytest.raises(InvalidInputError, match=r"differ from part-00000\.parquet"):
        consolidate(shards, tmp_path / "bad.parquet")
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(InvalidInputError, match="pass one split's folder"):
        folder_kind(tmp_path / "dd")


def test_cli_selects_from_a_save_to_disk_folder(tmp_path: Path) -> None:
    x, lab = _pool()
    datasets.Dataset.from_dict({"id": list(range(400)), "embedding": x.tolist()}).save_to_disk(
        str(tmp_path / "hf"), num_shards=2)
    np.save(tmp_path / "target.npy", x[lab == 0][:60] + np.float32(0.01))
    common = ["--target", str(tmp_path / "target.npy"), "--clusters", "0", "--max-iter", "20", "-q", "--no-report"]
    assert main(["select", "--pool", str(tmp_path / "hf"), "--out", str(tmp_path / "out"), *common]) == 0
    ids = np.load(tmp_path / "out" / "selected_ids.npy")
    np.save(tmp_path / "pool.npy", x)
    assert main(["select", "--pool", str(tmp_path / "pool.npy"), "--out", str(tmp_path / "ref"), *common]) == 0
    np.testing.assert_array_equal(ids, np.load(tmp_path / "ref" / "selected_ids.npy"))  # same rows, same order
    rows = pq.read_table(tmp_path / "out" / "selected_rows.parquet")
    assert rows["id"].to_pylist() == sorted(ids.tolist())
    assert not (tmp_path / "out.pool.parquet").exists()
