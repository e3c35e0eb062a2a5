"""The row-level pass against a brute-force ranking, the nearest target rows it finds for ``picks.csv``, and the
job's CPU seconds per phase (manifest ``cpu_s``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from scipy.spatial.distance import cdist

from gioselect.cli import main
from gioselect.frames import nearest_targets
from gioselect.job.run import PhaseTimings
from gioselect.nearest import KnownNearest
from gioselect.quantize import ClusterMembers, refine
from gioselect.report import write_picks


def test_refine_keeps_the_oracle_rows() -> None:
    """The pass's rows equal a float64 brute-force ranking of the rows of the clusters it reads."""
    rng = np.random.default_rng(3)
    n, k_cl = 3000, 30
    x = rng.normal(size=(n, 16)).astype(np.float32)
    labels = rng.integers(0, k_cl, size=n).astype(np.int32)
    m = ClusterMembers(labels, k_cl)
    t = rng.normal(size=(120, 16)).astype(np.float32) + 0.5
    reads: list[int] = []

    def read(i: np.ndarray) -> np.ndarray:
        reads.append(len(i))
        return x[i]

    chosen = rng.permutation(k_cl).tolist()
    n_rows = 700
    got = refine(chosen, m, read, t, n_rows, k=5, over=1.5, whole=0.0, block_rows=256)
    assert reads  # the rows were read (whole=0: no cluster kept unread)
    sizes = np.diff(m.starts)[chosen]
    take = chosen[: int(np.searchsorted(np.cumsum(sizes), 1.5 * n_rows, side="left")) + 1]
    rows = np.sort(m.rows_of(take))
    score = np.sort(cdist(x[rows].astype(np.float64), t.astype(np.float64)), axis=1)[:, :5].mean(axis=1)
    want = rows[np.lexsort((rows, score))][:n_rows]
    # float32 search against a float64 ranking: the same rows unless the boundary's scores are within float32
    # noise of each other (the set is compared; the order within it may differ by such noise)
    s = np.sort(score)
    assert s[n_rows] - s[n_rows - 1] > 1e-5  # the case is generic: no near-tie at the boundary
    assert set(got.tolist()) == set(want.tolist()) and got.shape == want.shape
    shared = refine(chosen, m, read, t, n_rows, how="share", over=1.5, block_rows=256)
    assert shared.shape == (n_rows,) and len(set(shared.tolist())) == n_rows
    assert set(shared.tolist()) <= set(rows.tolist())  # rows of the clusters within 1.5 x the size


def test_phase_timings_record_cpu_seconds_per_phase() -> None:
    timings = PhaseTimings()
    start = time.process_time()
    timings["a"] = 1.5
    sum(i * i for i in range(200_000))  # some CPU for phase b
    timings["b"] = 2.5
    end = time.process_time()
    assert dict(timings) == {"a": 1.5, "b": 2.5}
    assert set(timings.cpu) == {"a", "b"} and min(timings.cpu.values()) >= 0.0
    # the phases partition the process's CPU seconds since the clock started (up to the clock's own reads)
    assert timings.cpu["a"] + timings.cpu["b"] <= end - start + timings.cpu["a"] + 1e-6
    assert timings.cpu["b"] <= end - start + 1e-6
    timings["b"] = 3.0  # a phase set twice adds up its CPU seconds
    assert timings["b"] == 3.0 and timings.cpu["b"] >= 0.0


def test_manifest_has_cpu_seconds_for_every_timed_phase(tmp_path: Path) -> None:
    """End to end, quantised with a budget (the row-level pass runs): ``cpu_s`` beside ``timings_s``."""
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 4, size=(4, 8))
    pool = (centers[rng.integers(4, size=2400)] + rng.normal(size=(2400, 8))).astype(np.float32)
    target = (centers[:1] + rng.normal(size=(150, 8))).astype(np.float32)
    np.save(tmp_path / "pool.npy", pool)
    np.save(tmp_path / "target.npy", target)
    out = tmp_path / "out"
    assert main(["select", "--pool", str(tmp_path / "pool.npy"), "--target", str(tmp_path / "target.npy"),
                 "--out", str(out), "--clusters", "40", "--budget", "300", "--seed", "0", "--no-report", "-q"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["quantization"]["rows"].startswith("row-level pass (gio)")  # refine="auto": small, so gio
    assert m["refine_decision"]["rule"].startswith("auto: gio, over 2")
    assert set(m["cpu_s"]) == set(m["timings_s"]) and {"select", "explode"} <= set(m["cpu_s"])
    assert all(v >= 0.0 for v in m["cpu_s"].values())
    phases = sum(v for k, v in m["cpu_s"].items() if k != "total")
    assert m["cpu_s"]["total"] >= phases - 1e-3  # the process's CPU seconds so far include every phase's
    assert len(np.load(out / "selected_ids.npy")) == 300


# -- the nearest target rows found by the pass, reused by picks.csv ---------------------------------------------
def test_known_nearest_add_lookup_keep_and_match() -> None:
    t = np.zeros((10, 2), dtype=np.float32)
    known = KnownNearest(t)
    known.add(np.array([7, 2]), np.array([[1, 2, 3], [4, 5, 6]]))
    known.add(np.array([11]), np.array([[0, 9, 8]]))
    assert len(known) == 3
    found, near = known.lookup(np.array([2, 3, 11, 7, 100, 0]))
    assert found.tolist() == [True, False, True, True, False, False]
    assert near.dtype == np.int64 and near.tolist() == [[4, 5, 6], [0, 9, 8], [1, 2, 3]]
    known.keep(np.array([11, 5]))
    found, near = known.lookup(np.array([2, 11, 7]))
    assert found.tolist() == [False, True, False] and near.tolist() == [[0, 9, 8]] and len(known) == 1
    assert known.matches(t) and known.matches(t.copy()) and not known.matches(t + 1) and not known.matches(t[:5])
    empty = KnownNearest(t)
    assert empty.lookup(np.array([0, 1]))[0].tolist() == [False, False]


def test_refine_records_the_exact_nearest_targets_of_the_ranked_rows_it_keeps() -> None:
    rng = np.random.default_rng(4)
    n, k_cl = 2000, 25
    x = rng.normal(size=(n, 12)).astype(np.float32)
    x[::7] = x[1::7][: x[::7].shape[0]]  # duplicated rows: exactly tied distances
    m = ClusterMembers(rng.integers(0, k_cl, size=n).astype(np.int32), k_cl)
    t = rng.normal(size=(90, 12)).astype(np.float32)
    t[5] = t[6]  # a tied pair of target rows: the lower id comes first
    chosen = rng.permutation(k_cl).tolist()
    known = KnownNearest(t)
    got = refine(chosen, m, lambda i: x[i], t, 600, k=5, over=1.5, whole=0.5, block_rows=128, known=known)
    plain = refine(chosen, m, lambda i: x[i], t, 600, k=5, over=1.5, whole=0.5, block_rows=128)
    np.testing.assert_array_equal(got, plain)  # recording changes nothing the pass returns
    found, near = known.lookup(got)
    assert 0 < found.sum() < got.shape[0]  # the ranked rows are known; the clusters kept whole are not
    core = got[: int(np.flatnonzero(found)[0])]
    assert not found[: core.shape[0]].any() and found[core.shape[0]:].all()
    np.testing.assert_array_equal(near, nearest_targets(x[got[found]], t, n=3))


def test_picks_csv_is_the_same_with_the_known_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    pool = rng.normal(size=(400, 6)).astype(np.float32)
    t = rng.normal(size=(30, 6)).astype(np.float32)
    sel = rng.permutation(400)[:150]
    labels = rng.integers(0, 20, size=400)
    picks = np.unique(labels[sel])[:5]
    reads: list[np.ndarray] = []

    def take(i: np.ndarray) -> np.ndarray:
        reads.append(np.asarray(i))
        return pool[i]

    known = KnownNearest(t)
    known.add(sel[40:], nearest_targets(pool[sel[40:]], t, n=3))
    trace = [9.0, 8.0, 7.5, 7.2, 7.0]
    a = write_picks(tmp_path / "a.csv", sel, picks, labels, 10.0, trace, take, t, block_rows=32, known=known)
    assert sorted(np.concatenate(reads).tolist()) == sorted(sel[:40].tolist())  # only the unknown rows were read
    b = write_picks(tmp_path / "b.csv", sel, picks, labels, 10.0, trace, lambda i: pool[i], t, block_rows=32)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    np.testing.assert_array_equal(a["gio_nearest_target"], b["gio_nearest_target"])
    wrong = KnownNearest(t + 1.0)  # computed against another target: not used
    wrong.add(sel, np.zeros((150, 3), dtype=np.int64))
    write_picks(tmp_path / "c.csv", sel, picks, labels, 10.0, trace, lambda i: pool[i], t, known=wrong)
    assert (tmp_path / "c.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_cli_knn_pass_picks_csv_nearest_targets_are_exact(tmp_path: Path) -> None:
    """End to end with ``--refine knn``: every picks.csv row's nearest target rows equal the float64 oracle's."""
    rng = np.random.default_rng(6)
    centers = rng.normal(0, 3, size=(5, 8))
    pool = (centers[rng.integers(5, size=3000)] + rng.normal(size=(3000, 8))).astype(np.float32)
    target = (centers[:2].repeat(60, axis=0) + rng.normal(size=(120, 8))).astype(np.float32)
    np.save(tmp_path / "pool.npy", pool)
    np.save(tmp_path / "target.npy", target)
    out = tmp_path / "out"
    assert main(["select", "--pool", str(tmp_path / "pool.npy"), "--target", str(tmp_path / "target.npy"),
                 "--out", str(out), "--clusters", "60", "--budget", "700", "--refine", "knn", "--seed", "0",
                 "--no-report", "-q"]) == 0
    lines = (out / "picks.csv").read_text().splitlines()[1:]
    ids = np.array([int(r.split(",")[0]) for r in lines])
    near = np.array([[int(v) for v in r.split(",")[3].split()] for r in lines])
    assert ids.shape == (700,) and set(ids.tolist()) == set(np.load(out / "selected_ids.npy").tolist())
    d = cdist(pool[ids].astype(np.float64), target.astype(np.float64), "sqeuclidean")
    np.testing.assert_array_equal(near, np.argsort(d, axis=1, kind="stable")[:, :3])
