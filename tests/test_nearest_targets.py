"""nearest.nearest_targets (the ``gio_nearest_target`` column and ``picks.csv``) against a full stable sort.

The oracle measures every pair in float64 (sum of squared differences) and sorts stably; the function screens in
float32 first, so these cases include near-ties far below float32's resolution, large offsets and values whose
float32 squares overflow.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gioselect.nearest import _screen_error, nearest_target_scan, nearest_targets


def _oracle(rows: np.ndarray, target: np.ndarray, n: int) -> np.ndarray:
    """Every target distance of every row, sorted in full (ties: lowest id first)."""
    r, t = rows.astype(np.float64), target.astype(np.float64)
    diff = r[:, None, :] - t[None, :, :]
    d = np.einsum("ijk,ijk->ij", diff, diff)
    return np.argsort(d, axis=1, kind="stable")[:, : min(n, t.shape[0])]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 80), st.integers(1, 40), st.integers(1, 4), st.integers(1, 6), st.integers(1, 9),
       st.integers(0, 2**32 - 1), st.booleans())
def test_same_as_full_stable_sort(m: int, s: int, d: int, n: int, block: int, seed: int, grid: bool) -> None:
    rng = np.random.default_rng(seed)
    if grid:  # small integer coordinates: many exactly tied distances, at the n-th place too
        target = rng.integers(-2, 3, size=(m, d)).astype(np.float32)
        rows = rng.integers(-2, 3, size=(s, d)).astype(np.float32)
    else:
        target = rng.standard_normal((m, d)).astype(np.float32)
        rows = rng.standard_normal((s, d)).astype(np.float32)
    got = nearest_targets(rows, target, n=n, block_rows=block)
    assert got.dtype == np.int64 and got.shape == (s, min(n, m))
    np.testing.assert_array_equal(got, _oracle(rows, target, n))


def test_tie_at_the_cut_keeps_the_lowest_ids() -> None:
    # Target rows 5..9 all lie at distance 1 from the row, rows 0..4 farther: the 3 nearest are 5, 6, 7.
    target = np.vstack([np.full((5, 2), 3.0), np.tile([[1.0, 0.0]], (5, 1))])
    assert nearest_targets(np.zeros((1, 2)), target, n=3).tolist() == [[5, 6, 7]]
    # A tie with a lower id left out by the partition: target 0 ties with target 20 at the 1st place.
    target = np.vstack([[[0.0, 2.0]], np.full((19, 2), 9.0), [[2.0, 0.0]]])
    assert nearest_targets(np.zeros((1, 2)), target, n=1).tolist() == [[0]]


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 60), st.integers(1, 20), st.integers(1, 5), st.integers(1, 4),
       st.sampled_from([1e-9, 1e-6, 1e-3]), st.sampled_from([0.0, 1e3, 1e6]), st.integers(0, 2**32 - 1))
def test_near_ties_below_float32_resolution(m: int, s: int, d: int, n: int, spread: float, offset: float,
                                            seed: int) -> None:
    # Targets differ by far less than a float32 ulp of their coordinates: the screen keeps them all and the
    # float64 measure decides, as the oracle does.
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(d)
    target = offset + base + spread * rng.standard_normal((m, d))
    rows = offset + base + spread * rng.standard_normal((s, d)) * rng.choice([1.0, 1e3], size=(s, 1))
    np.testing.assert_array_equal(nearest_targets(rows, target, n=n, block_rows=7), _oracle(rows, target, n))


def test_values_whose_float32_squares_overflow() -> None:
    rng = np.random.default_rng(3)
    target = rng.standard_normal((30, 4)) * 1e20
    rows = np.vstack([rng.standard_normal((5, 4)) * 1e20, rng.standard_normal((5, 4)), [[1e25, 0, 0, 0]]])
    np.testing.assert_array_equal(nearest_targets(rows, target, n=3), _oracle(rows, target, 3))


def test_many_targets_at_one_distance_use_bounded_memory() -> None:
    # Every target ties with every other for each row: all are candidates and go through the exact measure in
    # chunks; the lowest ids win.
    target = np.ones((5000, 8))
    rows = np.zeros((600, 8))
    got = nearest_targets(rows, target, n=3, block_rows=256)
    assert got.shape == (600, 3) and (got == np.array([0, 1, 2])).all()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.integers(1, 30), st.integers(1, 6), st.integers(0, 4), st.integers(0, 8),
       st.integers(1, 9), st.integers(0, 2**32 - 1), st.booleans())
def test_scan_distances_within_the_screen_bound(m: int, s: int, d: int, n: int, k: int, block: int, seed: int,
                                               grid: bool) -> None:
    # ids: the oracle's (also when k > n, where the (n+1)-th screened value comes from the k passes); d2: the
    # max(n, k) smallest float64 squared distances of each row, to within the certified screen error.
    rng = np.random.default_rng(seed)
    if grid:
        target = rng.integers(-2, 3, size=(m, d)).astype(np.float32)
        rows = rng.integers(-2, 3, size=(s, d)).astype(np.float32)
    else:
        target = (rng.standard_normal((m, d)) * rng.choice([1e-3, 1.0, 1e3])).astype(np.float32)
        rows = (rng.standard_normal((s, d)) * rng.choice([1e-3, 1.0, 1e3])).astype(np.float32)
    ids, d2 = nearest_target_scan(rows, target, n=n, k=k, block_rows=block)
    p = min(max(n, k), m)
    assert ids.shape == (s, min(n, m)) and d2.shape == (s, p) and d2.dtype == np.float64
    np.testing.assert_array_equal(ids, _oracle(rows, target, n))
    r64, t64 = rows.astype(np.float64), target.astype(np.float64)
    full = np.sort(np.einsum("ijk,ijk->ij", r64[:, None, :] - t64[None], r64[:, None, :] - t64[None]), axis=1)
    mu = t64.mean(axis=0)
    a = np.linalg.norm(r64 - mu, axis=1)
    c = float(np.linalg.norm(t64 - mu, axis=1).max())
    bound = _screen_error(a, c, d + 1)[:, None]
    assert np.all(np.abs(d2 - full[:, :p]) <= bound)
    assert np.all(np.diff(d2, axis=1) >= 0.0)


def test_scan_of_overflowing_rows_gives_float64_distances() -> None:
    rng = np.random.default_rng(5)
    target = rng.standard_normal((12, 3)) * 1e20
    rows = np.vstack([rng.standard_normal((4, 3)) * 1e20, [[1e25, 0, 0]]])
    diff = rows[:, None, :] - target[None]
    exact = np.sort(np.einsum("ijk,ijk->ij", diff, diff), axis=1)[:, :5]
    for n in (2, 0):  # with ids, and distances only
        ids, d2 = nearest_target_scan(rows, target, n=n, k=5)
        np.testing.assert_array_equal(ids, _oracle(rows, target, n))
        np.testing.assert_allclose(d2, exact, rtol=1e-12)
