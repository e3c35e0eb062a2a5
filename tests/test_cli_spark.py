"""`gioselect select --engine spark` end to end on a parquet pool, against the in-process engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import gaussian_mixture
from gioselect.cli import main

pytest.importorskip("pyspark")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def test_spark_engine_cli_matches_local(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 5, size=(5, 8))
    pool, comp = gaussian_mixture(2000, 8, centers, seed=1)
    target, _ = gaussian_mixture(200, 8, centers[:2], seed=2)
    pq.write_table(pa.table({"id": np.arange(2000), "embedding": pa.array(pool.tolist(), type=pa.list_(pa.float32()))}),
                   tmp_path / "pool.parquet", row_group_size=500)
    pq.write_table(pa.table({"embedding": pa.array(target.tolist(), type=pa.list_(pa.float32()))}),
                   tmp_path / "target.parquet")
    common = ["select", "--pool", str(tmp_path / "pool.parquet"), "--target", str(tmp_path / "target.parquet"),
              "--clusters", "40", "--seed", "1", "-q"]  # the defaults otherwise: the same phases on both engines
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--out", str(tmp_path / "spark"), "--engine", "spark", "--spark-master", "local[2]"]) == 0
    local_ids = np.load(tmp_path / "local" / "selected_ids.npy")
    spark_ids = np.load(tmp_path / "spark" / "selected_ids.npy")
    # The default K-means for a job this small is the same faiss run on the driver: identical selections.
    np.testing.assert_array_equal(spark_ids, local_ids)
    assert np.isin(comp[spark_ids], [0, 1]).mean() > 0.85  # the two target components are 40% of the pool
    rows = pq.read_table(tmp_path / "spark" / "selected_rows.parquet")
    assert sorted(rows.column("gio_row_id").to_pylist()) == sorted(spark_ids.tolist())
    assert rows.column("id").to_pylist() == rows.column("gio_row_id").to_pylist()
    m = json.loads((tmp_path / "spark" / "manifest.json").read_text())
    assert m["engine"] == "spark" and m["counts"]["selected_rows"] == len(spark_ids)
    assert main([*common, "--out", str(tmp_path / "x"), "--spark-master", "local[2]"]) == 2
    assert "--spark-master goes with --engine spark" in capsys.readouterr().err


@pytest.mark.slow  # a Spark session of its own (a JVM start)
def test_spark_engine_reads_a_folder_of_parquet_shards_as_the_local_engine_does(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 5, size=(4, 8))
    pool, _ = gaussian_mixture(900, 8, centers, seed=3)
    target, _ = gaussian_mixture(150, 8, centers[:1], seed=4)
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, s in enumerate(range(0, 900, 250)):  # shard boundaries at 250, 500, 750: row ids run on across them
        part = pool[s : s + 250]
        pq.write_table(pa.table({"id": np.arange(s, s + len(part)),
                                 "embedding": pa.array(part.tolist(), type=pa.list_(pa.float32()))}),
                       shards / f"part-{i:05d}.parquet")
    np.save(tmp_path / "target.npy", target.astype(np.float32))
    common = ["select", "--pool", str(shards), "--target", str(tmp_path / "target.npy"), "--clusters", "30",
              "--seed", "1", "-q", "--no-report"]  # the defaults otherwise: the same phases on both engines
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--out", str(tmp_path / "spark"), "--engine", "spark", "--spark-master", "local[2]"]) == 0
    local_ids = np.load(tmp_path / "local" / "selected_ids.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "spark" / "selected_ids.npy"), local_ids)
    local_rows = pq.read_table(tmp_path / "local" / "selected_rows.parquet")
    assert local_rows.column("id").to_pylist() == sorted(local_ids.tolist())


def _picks(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()]


@pytest.mark.slow  # three Spark jobs, each a session of its own
def test_spark_engine_selects_unquantised_and_writes_picks_csv_as_local(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--clusters 0`` (GIO on the rows, collected to the driver within the memory budget) and ``picks.csv``
    on the Spark engine: the same selection and the same file, byte for byte, as the local engine, unquantised
    and quantised; a pool larger than the memory budget is refused with a message naming the limit."""
    rng = np.random.default_rng(4)
    centers = rng.normal(0, 5, size=(4, 16))
    pool, _ = gaussian_mixture(1200, 16, centers, seed=5)
    pool[7] = 60.0  # an outlier row: alone in its cluster when quantised
    target, _ = gaussian_mixture(120, 16, centers[:1], seed=6)
    pq.write_table(pa.table({"embedding": pa.array(pool.tolist(), type=pa.list_(pa.float32()))}),
                   tmp_path / "pool.parquet", row_group_size=400)
    pq.write_table(pa.table({"embedding": pa.array(target.tolist(), type=pa.list_(pa.float32()))}),
                   tmp_path / "target.parquet")
    base = ["select", "--pool", str(tmp_path / "pool.parquet"), "--target", str(tmp_path / "target.parquet"),
            "--seed", "2", "-q", "--no-report"]
    spark = ["--engine", "spark", "--spark-master", "local[2]"]
    for clusters, budget in (("0", "10%"), ("30", "25%")):
        common = [*base, "--clusters", clusters, "--budget", budget]
        assert main([*common, "--out", str(tmp_path / f"local{clusters}")]) == 0
        assert main([*common, "--out", str(tmp_path / f"spark{clusters}"), *spark]) == 0
        lo, sp = tmp_path / f"local{clusters}", tmp_path / f"spark{clusters}"
        np.testing.assert_array_equal(np.load(sp / "selected_ids.npy"), np.load(lo / "selected_ids.npy"))
        assert (sp / "picks.csv").read_bytes() == (lo / "picks.csv").read_bytes()
        rows = _picks(sp / "picks.csv")
        assert rows[0] == ["gio_row_id", "gio_rank", "gio_gain", "gio_nearest_target"]
        assert [int(r[0]) for r in rows[1:]] == np.load(sp / "selected_ids.npy").tolist()
        m = json.loads((sp / "manifest.json").read_text())
        assert m["outputs"]["picks"] == "picks.csv"
        assert (m["quantization"] is None) == (clusters == "0")
    # 1200 x 16 x 4 bytes = 75 KiB > 64 KiB: refused before any GIO work, naming the limit
    capsys.readouterr()
    assert main([*base, "--clusters", "0", "--memory-budget", "64K", "--out", str(tmp_path / "big"), *spark]) == 2
    err = capsys.readouterr().err
    assert "collects the whole pool to the driver" in err and "memory budget (0.00 GiB)" in err
    assert not (tmp_path / "big").exists()
