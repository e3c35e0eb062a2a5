"""nearest.TargetPartition: the nearest target rows, comparing each row with only the groups of target rows that
could hold them, against a full float64 stable sort (the ids must not change), and how much it leaves out.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gioselect import nearest
from gioselect.nearest import TargetPartition, nearest_target_scan, nearest_targets, target_partition
from gioselect.report import write_picks


def _oracle(rows: np.ndarray, target: np.ndarray, n: int) -> np.ndarray:
    """Every target distance of every row, sorted in full (ties: lowest id first)."""
    r, t = rows.astype(np.float64), target.astype(np.float64)
    diff = r[:, None, :] - t[None, :, :]
    d = np.einsum("ijk,ijk->ij", diff, diff)
    return np.argsort(d, axis=1, kind="stable")[:, : min(n, t.shape[0])]


def _blobs(rng: np.random.Generator, centres: np.ndarray, rows: int, scale: float) -> np.ndarray:
    return centres[rng.integers(centres.shape[0], size=rows)] + scale * rng.standard_normal((rows, centres.shape[1]))


def _spy_partitions(monkeypatch: pytest.MonkeyPatch) -> list[TargetPartition]:
    """Make ``nearest.target_partition`` record every partition it builds in the list returned."""
    built: list[TargetPartition] = []
    real = nearest.target_partition

    def spy(t: np.ndarray, rows: int) -> TargetPartition | None:
        got = real(t, rows)
        if got is not None:
            built.append(got)
        return got

    monkeypatch.setattr(nearest, "target_partition", spy)
    return built


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 12), st.integers(1, 300), st.integers(1, 80), st.integers(1, 6), st.integers(1, 5),
       st.integers(1, 40), st.sampled_from([0.05, 0.5, 3.0]), st.sampled_from([0.0, 1e4]), st.booleans(),
       st.sampled_from([1, 7, 256]), st.integers(0, 2**32 - 1))
def test_same_ids_as_the_full_sort(blobs: int, m: int, s: int, d: int, n: int, groups: int, spread: float,
                                   offset: float, grid: bool, sub_rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = offset + 10.0 * rng.standard_normal((blobs, d))
    target = _blobs(rng, centres, m, spread)
    rows = _blobs(rng, centres, s, spread)
    if grid:  # rounded coordinates: exact ties and duplicated target rows, within and across groups
        target, rows = np.round(target), np.round(rows)
    target, rows = target.astype(np.float32), rows.astype(np.float32)
    part = TargetPartition(target, groups=groups, seed=seed % 7)
    with mock.patch.object(nearest, "PRUNE_SUB_ROWS", sub_rows):  # rows of a home screened together
        got = nearest_targets(rows, target, n=n, block_rows=1 + seed % 9, partition=part)
    assert got.dtype == np.int64 and got.shape == (s, min(n, m))
    np.testing.assert_array_equal(got, _oracle(rows, target, n))


def test_separated_groups_are_left_out_and_the_ids_hold() -> None:
    rng = np.random.default_rng(0)
    centres = 30.0 * rng.standard_normal((8, 16))
    target = _blobs(rng, centres, 2000, 1.0).astype(np.float32)
    rows = _blobs(rng, centres[:2], 3000, 1.0).astype(np.float32)
    part = TargetPartition(target, groups=16)
    got = nearest_targets(rows, target, n=3, partition=part)
    np.testing.assert_array_equal(got, _oracle(rows, target, 3))
    assert part.useful
    # The rows lie in 2 of the 8 blobs, so about a quarter of the target could hold their nearest rows.
    assert part.pairs_scanned < 0.5 * part.pairs_whole


def test_sub_blocks_of_a_home_screen_fewer_pairs() -> None:
    # Overlapping blobs: the rows of one home need different target rows. One sub-block per home screens the
    # union of what its rows need (here more than half the target, so the whole of it); sub-blocks of rows that
    # need alike screen far fewer pairs. The ids are the same.
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((8, 16))
    target = _blobs(rng, centres, 2000, 0.5).astype(np.float32)
    rows = _blobs(rng, centres[:2], 3000, 0.5).astype(np.float32)
    part = TargetPartition(target, groups=16)
    got = nearest_targets(rows, target, n=3, partition=part)
    np.testing.assert_array_equal(got, _oracle(rows, target, 3))
    whole_homes = TargetPartition(target, groups=16)
    with mock.patch.object(nearest, "PRUNE_SUB_ROWS", 10**9):
        np.testing.assert_array_equal(nearest_targets(rows, target, n=3, partition=whole_homes), got)
    assert part.pairs_scanned < 0.6 * whole_homes.pairs_scanned


def test_a_tie_in_another_group_keeps_the_lowest_id() -> None:
    # Two groups of 5; the row is at distance 1 from target 2 (group A) and from target 7 (group B), everything
    # else farther. Whichever group is its home, the other one must be kept, and the lower id wins the 1st place.
    a = np.array([[-5.0, 0.0], [-6.0, 0.0], [-1.0, 0.0], [-5.5, 0.5], [-5.5, -0.5]])
    b = -a
    target = np.vstack([a, b]).astype(np.float32)
    for x in ([0.0, 0.0], [1e-3, 0.0], [-1e-3, 0.0]):
        row = np.array([x], dtype=np.float32)
        part = TargetPartition(target, groups=2)
        assert nearest_targets(row, target, n=2, partition=part).tolist() == _oracle(row, target, 2).tolist()
    row = np.zeros((1, 2), dtype=np.float32)
    assert nearest_targets(row, target, n=1, partition=TargetPartition(target, groups=2)).tolist() == [[2]]


def test_groups_smaller_than_n_and_one_row_groups() -> None:
    rng = np.random.default_rng(1)
    target = (5.0 * rng.standard_normal((40, 3))).astype(np.float32)
    rows = (5.0 * rng.standard_normal((50, 3))).astype(np.float32)
    for groups, n in ((40, 3), (40, 1), (25, 4), (1, 3)):
        part = TargetPartition(target, groups=groups)
        np.testing.assert_array_equal(nearest_targets(rows, target, n=n, partition=part), _oracle(rows, target, n))
    one = target[:1]
    assert nearest_targets(rows, one, n=3, partition=TargetPartition(one)).tolist() == [[0]] * 50


def test_rows_whose_bounds_overflow_are_scanned_whole() -> None:
    rng = np.random.default_rng(2)
    target = rng.standard_normal((60, 4))
    rows = rng.standard_normal((30, 4))
    rows[::3] *= 1e160  # float64 squares overflow: no finite bound, the whole target is screened (and measured)
    part = TargetPartition(target, groups=6)
    np.testing.assert_array_equal(nearest_targets(rows, target, n=3, partition=part), _oracle(rows, target, 3))


def test_stops_pruning_where_it_leaves_nothing_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nearest, "PRUNE_PROBE_ROWS", 100)
    rng = np.random.default_rng(3)
    target = rng.standard_normal((500, 64)).astype(np.float32)  # no cluster structure in 64 dimensions
    rows = rng.standard_normal((400, 64)).astype(np.float32)
    part = TargetPartition(target)
    first = nearest_targets(rows[:200], target, n=3, partition=part)
    assert not part.useful and part.pairs_scanned > 0.75 * part.pairs_whole
    seen = part.pairs_whole
    rest = nearest_targets(rows[200:], target, n=3, partition=part)  # the plain screen: not counted
    assert part.pairs_whole == seen
    np.testing.assert_array_equal(np.vstack([first, rest]), _oracle(rows, target, 3))


def test_built_only_where_it_pays(monkeypatch: pytest.MonkeyPatch) -> None:
    target = np.zeros((nearest.PRUNE_MIN_TARGETS - 1, 2), dtype=np.float32)
    assert target_partition(target, 10**9) is None
    big = np.random.default_rng(4).standard_normal((nearest.PRUNE_MIN_TARGETS, 2)).astype(np.float32)
    assert target_partition(big, 1) is None
    assert isinstance(target_partition(big, nearest.PRUNE_MIN_PAIRS), TargetPartition)
    built: list[int] = []
    real = nearest.TargetPartition

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, target: np.ndarray, **kw: object) -> None:
            built.append(target.shape[0])
            super().__init__(target, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(nearest, "TargetPartition", Spy)
    monkeypatch.setattr(nearest, "PRUNE_MIN_PAIRS", 1)
    rows = np.random.default_rng(5).standard_normal((300, 2)).astype(np.float32)
    got = nearest_targets(rows, big, n=3)  # no partition given: the call builds its own
    assert built == [big.shape[0]]
    np.testing.assert_array_equal(got, nearest_target_scan(rows, big, 3)[0])


def test_picks_csv_is_the_same_with_the_partition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(6)
    centres = 20.0 * rng.standard_normal((12, 8))
    target = _blobs(rng, centres, nearest.PRUNE_MIN_TARGETS + 100, 1.0).astype(np.float32)
    pool = _blobs(rng, centres, 6000, 1.0).astype(np.float32)
    sel = rng.permutation(6000)[:5000]
    picks = np.arange(5000)
    trace = np.linspace(9.0, 1.0, 5000)
    monkeypatch.setattr(nearest, "PRUNE_MIN_PAIRS", 1000)
    built = _spy_partitions(monkeypatch)
    a = write_picks(tmp_path / "a.csv", sel, picks, None, 10.0, trace, lambda i: pool[i], target, block_rows=700)
    assert len(built) == 1 and built[0].pairs_scanned < 0.5 * built[0].pairs_whole  # one, reused, and it pruned
    monkeypatch.setattr(nearest, "PRUNE_MIN_TARGETS", 10**9)
    write_picks(tmp_path / "b.csv", sel, picks, None, 10.0, trace, lambda i: pool[i], target, block_rows=700)
    assert len(built) == 1
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    np.testing.assert_array_equal(a["gio_nearest_target"], _oracle(pool[sel], target, 3))


def test_spark_executor_function_builds_one_partition_per_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Spark engine's executor-side nearest targets (run here in-process on Arrow batches, since the
    thresholds cannot be patched in Spark's workers): one partition per task, on its first large batch, and the
    ids of the in-process engine."""
    pa = pytest.importorskip("pyarrow")
    from gioselect.engines.spark_base import matrix_array
    from gioselect.engines.spark_job import _NearestTargets

    rng = np.random.default_rng(7)
    centres = 20.0 * rng.standard_normal((10, 6))
    target = _blobs(rng, centres, 3000, 1.0).astype(np.float32)
    rows = _blobs(rng, centres[:3], 1200, 1.0).astype(np.float32)
    monkeypatch.setattr(nearest, "PRUNE_MIN_TARGETS", 1000)
    monkeypatch.setattr(nearest, "PRUNE_MIN_PAIRS", 300 * 3000)
    built = _spy_partitions(monkeypatch)
    sizes = [0, 100, 400, 700]  # an empty batch, one too small for a partition, then two that share one
    starts = np.cumsum([0, *sizes])
    batches = [pa.RecordBatch.from_arrays([pa.array(np.arange(a, b), pa.int64()), matrix_array(rows[a:b])],
                                          names=["r", "f"]) for a, b in itertools.pairwise(starts)]
    out = list(_NearestTargets(target, 3)(iter(batches)))
    assert len(built) == 1 and built[0].pairs_scanned < 0.5 * built[0].pairs_whole
    got = np.vstack([np.asarray(b.column(1).flatten()).reshape(-1, 3) for b in out])
    np.testing.assert_array_equal(np.concatenate([b.column(0).to_numpy() for b in out]), np.arange(1200))
    np.testing.assert_array_equal(got, _oracle(rows, target, 3))


def test_bench_nearest_runs_and_checks_the_ids(tmp_path: Path) -> None:
    """benchmarks/bench_nearest.py, on a small mixture case: it runs, prunes, and records equal ids."""
    import importlib.util
    import json

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_nearest.py"
    spec = importlib.util.spec_from_file_location("bench_nearest", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "r.json"
    assert mod.main(["--cases", "mixture", "--rows", "3000", "--target-rows", "2500", "--repeats", "1",
                     "--out", str(out)]) == 0
    case = json.loads(out.read_text())["cases"]["mixture"]
    assert case["all_equal"] and case["rows"] == 3000 and case["target_rows"] == 2500
    assert 0.0 < case["median"]["pairs_screened"] < 0.6
