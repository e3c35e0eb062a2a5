"""The selection job in-process (gioselect.job): seeds, the one 'target is text' rule, runs on npy and parquet
inputs, resume after an interruption, force, and the array entry point agreeing with the file job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gioselect.errors import OutputExistsError
from gioselect.job import Seeds, SelectConfig
from gioselect.job.config import text_fields
from gioselect.optimize import GIOParams, PickEvent
from gioselect.pipeline import run_select
from gioselect.selector import select_quantized

N, DIM = 1200, 6


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(11)
    centers = rng.normal(scale=4.0, size=(4, DIM))
    comp = rng.integers(0, 4, size=N)
    pool = (centers[comp] + rng.normal(size=(N, DIM))).astype(np.float32)
    target = (centers[rng.integers(0, 2, size=200)] + rng.normal(size=(200, DIM))).astype(np.float32)
    d = tmp_path_factory.mktemp("job")
    np.save(d / "pool.npy", pool)
    np.save(d / "target.npy", target)
    pq.write_table(pa.table({"id": np.arange(N), "embedding": pa.array(list(pool), type=pa.list_(pa.float32()))}),
                   d / "pool.parquet")
    return d


def _cfg(d: Path, out: Path, pool: str = "pool.npy", **kw: Any) -> SelectConfig:
    base: dict[str, Any] = {"clusters": 30, "seed": 4, "report": False, "checkpoint_every": 1,
                            "params": GIOParams(max_iter=12, stop_criterion="increase")}
    base.update(kw)
    return SelectConfig(pool=d / pool, target=d / "target.npy", out=out, **base)


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name not in ("manifest.json", "report.html")}


def test_seeds_are_the_spawned_children_of_one_seed_sequence() -> None:
    children = np.random.SeedSequence(7).spawn(5)
    expected = [int(c.generate_state(1)[0]) for c in children]
    s = Seeds(7)
    assert list(s.values()) == expected
    assert list(s) == ["pool_kmeans", "target_kmeans", "gio", "explode", "report"]
    assert (s.pool_kmeans, s.target_kmeans, s.gio, s.explode, s.report) == tuple(expected)
    assert s.as_dict() == dict(zip(s, expected, strict=True))
    assert s.generator("gio").integers(1 << 30) == np.random.default_rng(expected[2]).integers(1 << 30)


@pytest.mark.parametrize(("target", "text_field", "target_text_field", "want"), [
    ("t.npy", "text", None, None),  # a .npy holds vectors, whatever the pool is
    ("t.NPY", "text", "body", None),
    ("t.parquet", "text", None, "text"),  # the target inherits the pool's text column
    ("t.jsonl", "text", "body", "body"),
    ("parts", "text", None, "text"),  # a Spark directory of part files: the old in-process rule raised here
    ("t.parquet", None, None, None),
])
def test_one_rule_for_target_is_text(target: str, text_field: str | None, target_text_field: str | None,
                                     want: str | None) -> None:
    cfg = SelectConfig(pool=Path("p.parquet"), target=Path(target), out=Path("o"), text_field=text_field,
                       target_text_field=target_text_field)
    assert text_fields(cfg) == {"pool": text_field, "target": want}


@pytest.mark.parametrize("pool", ["pool.npy", "pool.parquet"])
@pytest.mark.parametrize("clusters", [30, 0])
def test_job_runs_in_process_and_resumes_to_the_same_bytes(inputs: Path, tmp_path: Path, pool: str,
                                                           clusters: int) -> None:
    m = run_select(_cfg(inputs, tmp_path / "full", pool, clusters=clusters))
    full = _outputs(tmp_path / "full")
    assert m["counts"]["selected_candidates"] > 3 and (m["quantization"] is None) == (clusters == 0)
    assert json.loads((tmp_path / "full" / "manifest.json").read_text())["sub_seeds"] == Seeds(4).as_dict()

    class Stop(Exception):
        pass

    picks: list[PickEvent] = []

    def interrupt(ev: PickEvent) -> None:  # an interruption after the third pick's checkpoint is due
        picks.append(ev)
        if len(picks) == 3:
            raise Stop

    cfg = _cfg(inputs, tmp_path / "cut", pool, clusters=clusters)
    with pytest.raises(Stop):
        run_select(cfg, on_pick=interrupt)
    work = tmp_path / "cut.partial"
    assert (work / "gio_state.npz").exists() and not (tmp_path / "cut").exists()
    assert all(isinstance(ev, PickEvent) for ev in picks)
    resumed = run_select(cfg, resume=True)
    assert _outputs(tmp_path / "cut") == full and not work.exists()
    assert resumed["counts"] == m["counts"]


def test_force_replaces_a_previous_result_only_when_asked(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "sel"
    run_select(_cfg(inputs, out))
    before = _outputs(out)
    with pytest.raises(OutputExistsError):
        run_select(_cfg(inputs, out, seed=5))
    assert _outputs(out) == before
    run_select(_cfg(inputs, out, seed=5), force=True)
    assert _outputs(out) != before and not out.with_name("sel.partial").exists()


def test_select_quantized_cuts_the_last_cluster_as_the_file_job_does(inputs: Path, tmp_path: Path) -> None:
    """Same seed, same quantisation, same budget: the array entry point and the file job select the same rows
    (the last chosen cluster is cut with the job's explode sub-seed; it was cut with the GIO seed)."""
    params = GIOParams(stop_criterion="increase", max_iter=None)
    kw: dict[str, Any] = {"clusters": 30, "target_clusters": 0, "candidates": "centroid", "refine": "none"}
    cut = 0
    for seed in (1, 2, 3):
        m = run_select(_cfg(inputs, tmp_path / f"s{seed}", budget="150", seed=seed, params=params, **kw))
        ids = np.load(tmp_path / f"s{seed}" / "selected_ids.npy")
        q = select_quantized(np.load(inputs / "pool.npy"), np.load(inputs / "target.npy"), budget=150, seed=seed,
                             stop_criterion="increase", max_iter=None, **kw)
        np.testing.assert_array_equal(q.ids, ids)
        cut += m["counts"]["selected_rows"] == 150
    assert cut == 3  # every run cut its last cluster, where the seed matters


# --- one phase list (gioselect.job.phases) ------------------------------------------------------------------


def test_size_estimate_by_id_equals_the_streamed_one() -> None:
    """The Spark engine sizes a run by drawing the reservoir sample's row ids and fetching only those rows
    (gioselect.engines.base.RowSampler): the same estimate as a streamed pass over every row."""
    from gioselect.engines.base import RowSampler, reservoir_ids
    from gioselect.sizing import estimate_target_rows

    rng = np.random.default_rng(5)
    pool = rng.normal(size=(7000, 4)).astype(np.float32)
    pool[:1500] += 3.0
    target = (rng.normal(size=(300, 4)) + 3.0).astype(np.float32)
    fetched: list[int] = []

    def take(ids: np.ndarray) -> np.ndarray:
        fetched.append(int(ids.shape[0]))
        return pool[ids]

    for sample_rows, block_rows in ((2000, 65536), (2000, 999), (9000, 512)):
        want = estimate_target_rows(pool, target, seed=3, sample_rows=sample_rows, block_rows=block_rows)
        got = estimate_target_rows(RowSampler(7000, 4, take), target, seed=3, sample_rows=sample_rows,
                                   block_rows=block_rows)
        assert got == want
        assert fetched[-1] == min(sample_rows, 7000)
    ids = reservoir_ids(7000, 2000, np.random.default_rng(0), 100)
    assert np.unique(ids).shape[0] == 2000 and ids.min() >= 0 and ids.max() < 7000
    assert 1000 < int((ids >= 2000).sum()) < 1700  # about 5/7 of the slots hold rows past the first 2000


def test_local_size_pool_reads_only_the_sample_and_equals_the_streamed_estimate(tmp_path: Path) -> None:
    """The local engine's size pool (a RowSampler over read_rows) gives the estimate a streamed pass over the
    file gives, for a memory-mapped .npy and a streamed JSONL file, and reads only the sampled rows."""
    from gioselect.engines.base import RowSampler
    from gioselect.engines.local import LocalEngine
    from gioselect.io import open_embeddings
    from gioselect.sizing import estimate_target_rows

    rng = np.random.default_rng(2)
    pool = rng.normal(size=(6000, 3)).astype(np.float32)
    pool[:900] += 2.5
    target = (rng.normal(size=(200, 3)) + 2.5).astype(np.float32)
    np.save(tmp_path / "pool.npy", pool)
    with open(tmp_path / "pool.jsonl", "w") as f:
        f.write("".join(json.dumps({"emb": r}) + "\n" for r in pool.tolist()))
    for name in ("pool.npy", "pool.jsonl"):
        src = open_embeddings(tmp_path / name)
        sized = LocalEngine(1 << 30).size_pool(src)
        assert isinstance(sized, RowSampler)
        calls: list[int] = []

        def counted(ids: np.ndarray, src: Any = src, calls: list[int] = calls) -> np.ndarray:
            calls.append(int(ids.shape[0]))
            return src.read_rows(ids)

        sized.take = counted
        want = estimate_target_rows(src, target, seed=4, sample_rows=1500)
        assert estimate_target_rows(sized, target, seed=4, sample_rows=1500) == want
        assert calls == [1500]
        assert 500 < want.rows < 1400  # about 900 of 6000 rows are drawn like the target


def test_select_phases_in_memory_equals_the_file_job(inputs: Path, tmp_path: Path) -> None:
    """The phases without a work folder (what gioselect.spark.select runs) choose the file job's rows."""
    from gioselect.engines import LocalEngine
    from gioselect.io import open_embeddings
    from gioselect.job.phases import PhaseSettings, select_phases

    cfg = _cfg(inputs, tmp_path / "out", clusters=30, budget="150")
    run_select(cfg)
    engine = LocalEngine(cfg.memory_budget)
    pool = open_embeddings(inputs / "pool.npy", None, name="pool")
    target = np.load(inputs / "target.npy")
    sel = select_phases(engine, pool, target, None, PhaseSettings.of(cfg), 150, Seeds(cfg.seed))
    np.testing.assert_array_equal(sel.selection, np.load(tmp_path / "out" / "selected_ids.npy"))
    assert sel.refining and sel.candidates_mode == "medoid" and sel.selection.shape[0] == 150


def test_damaged_checkpoint_is_a_resume_error_not_a_crash(tmp_path: Path) -> None:
    from gioselect.errors import ResumeError
    from gioselect.job.workdir import load_gio_state

    bad = tmp_path / "gio_state.npz"
    bad.write_bytes(b"garbage")  # numpy took it for a pickle and suggested loading it unsafely (exit 1)
    with pytest.raises(ResumeError, match=r"unreadable checkpoint .*rerun without --resume") as err:
        load_gio_state(bad)
    assert "pickle" not in str(err.value)
