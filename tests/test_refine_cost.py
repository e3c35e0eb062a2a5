"""The row-level pass against a brute-force ranking, and the job's CPU seconds per phase (manifest ``cpu_s``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from scipy.spatial.distance import cdist

from gioselect.cli import main
from gioselect.job.run import PhaseTimings
from gioselect.quantize import ClusterMembers, refine


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
