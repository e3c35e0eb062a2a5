"""The compiled (numba) gradient loop and nearest-candidate pass against the pure-numpy ones.

Without numba installed these tests are skipped: the numpy path is then the only one and every other test
runs it. With numba, the rest of the suite runs the compiled path; here both run side by side.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gioselect.divergence import RelaxedKL, fast_nearest_kernel, fast_path_available
from gioselect.optimize import CandidateSet, GIOParams
from gioselect.search import make_search

pytestmark = pytest.mark.skipif(not fast_path_available(), reason="numba not installed (the 'fast' extra)")


@pytest.mark.parametrize("start", ["random", "on_target", "far"])
def test_compiled_descent_equals_numpy_descent(start: str) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(130, 19))
    obj = RelaxedKL(x, 5)
    obj.reset(rng.normal(size=(11, 19)))
    # on a target point: that term is clipped (zero derivative) in the first step; far: huge distances
    v0 = {"random": rng.normal(size=19), "on_target": x[7].copy(), "far": np.full(19, 1e6)}[start]
    obj.use_fast = None
    fast = obj.descend(v0, 60, 0.01, 2.5)
    obj.use_fast = False
    slow = obj.descend(v0, 60, 0.01, 2.5)
    assert not np.shares_memory(fast, v0)
    # starting on a target point amplifies rounding over the steps (as in test_divergence)
    np.testing.assert_allclose(fast, slow, rtol=1e-6 if start == "on_target" else 1e-10, atol=1e-12)


def test_compiled_nearest_equals_numpy_nearest() -> None:
    rng = np.random.default_rng(9)
    for dtype in (np.float32, np.float64):
        pts = rng.normal(size=(500, 23)).astype(dtype)
        fast, slow = CandidateSet(pts), CandidateSet(pts)
        slow.use_fast = False
        for i in rng.choice(500, size=200, replace=False):
            v = rng.normal(size=23)
            assert fast.nearest_unused(v) == slow.nearest_unused(v)
            fast.mark_used(int(i))
            slow.mark_used(int(i))
    assert fast_nearest_kernel() is not None


def test_compiled_nearest_breaks_exact_ties_to_the_lowest_index() -> None:
    pts = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]], dtype=np.float32)
    cs = CandidateSet(pts)
    assert cs.nearest_unused(np.array([2.0, 0.0])) == 0
    cs.mark_used(0)
    assert cs.nearest_unused(np.array([2.0, 0.0])) == 2
    for i in (1, 2, 3):
        cs.mark_used(i)
    assert cs.nearest_unused(np.zeros(2)) == -1


def _picks(pool: np.ndarray, target: np.ndarray, init: np.ndarray, params: GIOParams, fast: bool,
           seed: int = 0) -> tuple[list[int], list[float]]:
    search = make_search(pool, target, params, seed=seed, init=init)
    if not fast:
        search.objective.use_fast = False
        search.cands.use_fast = False
    for _ in search.run():
        pass
    return search.state.selected, search.state.kl_trace


def test_benchmark_case_mixture64_same_picks_both_paths() -> None:
    """The benchmark's ``mixture64`` case (96 picks, identical to grad-info-opt's): the same rows, same order."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from bench_vs_reference import mixture64_case

    case = mixture64_case()
    params = GIOParams(max_iter=100, stop_criterion="increase", v_init="mean", start="unit", scale_factor="auto",
                       reference_max_iter=True).validate(strict=False)
    init = case.D.astype(np.float64)
    fast_rows, fast_kl = _picks(case.pool, case.target, init, params, fast=True)
    slow_rows, slow_kl = _picks(case.pool, case.target, init, params, fast=False)
    assert len(fast_rows) == 96
    assert fast_rows == slow_rows
    np.testing.assert_allclose(fast_kl, slow_kl, rtol=1e-12)


@pytest.mark.parametrize("v_init", ["jump", "prev_opt"])
def test_project_defaults_same_picks_both_paths(mixture8: dict[str, np.ndarray], v_init: str) -> None:
    params = GIOParams(max_iter=40, v_init=v_init, random_restart_prob=0.2).validate()
    init = mixture8["target"][:6].astype(np.float64) + 0.5
    a = _picks(mixture8["pool"], mixture8["target"], init, params, fast=True, seed=3)
    b = _picks(mixture8["pool"], mixture8["target"], init, params, fast=False, seed=3)
    assert a[0] == b[0] and len(a[0]) > 5
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12)


def test_single_threaded_blas_nests_and_restores() -> None:
    """BLAS runs on one thread inside the block, also after a nested block ends, and the limits come back after it."""
    from threadpoolctl import threadpool_info

    from gioselect.optimize import single_threaded_blas

    def threads() -> list[int]:
        return sorted(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")

    before = threads()
    with single_threaded_blas():
        with single_threaded_blas():
            assert set(threads()) <= {1}
        assert set(threads()) <= {1}
    assert threads() == before


def test_compiled_point_pass_equals_numpy() -> None:
    """A pick's squared distances and log-distance sum: compiled pass against numpy, clipped terms included."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(37, 13))  # 37 = 4 * 9 + 1: the four-row blocks and the remainder row
    fast, slow = RelaxedKL(x, 3), RelaxedKL(x, 3)
    slow.use_fast = False
    for p in (rng.normal(size=13), x[5].copy(), np.full(13, 1e12)):  # a target row (clipped at 1e-10), far away
        a, b = fast.sq_dists(p), slow.sq_dists(p)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
        assert fast.value_if_added(p, a) == pytest.approx(slow.value_if_added(p, b), rel=1e-12)
    assert a.min() >= 1e-10 and b.max() <= 1e20


def test_single_threaded_blas_looks_libraries_up_again_after_an_import() -> None:
    import types

    from gioselect import optimize

    with optimize.single_threaded_blas():
        pass
    first = optimize._BLAS_CONTROLLER[0]
    with optimize.single_threaded_blas():
        pass
    assert optimize._BLAS_CONTROLLER[0] is first  # nothing imported in between: the lookup is reused
    sys.modules["_gioselect_test_new_module"] = types.ModuleType("_gioselect_test_new_module")
    try:
        with optimize.single_threaded_blas():
            pass
        assert optimize._BLAS_CONTROLLER[0] is not first  # a module was imported: looked up again
    finally:
        del sys.modules["_gioselect_test_new_module"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_pick_kernel_equals_the_three_calls_and_numpy(dtype: type) -> None:
    """``descend_and_pick`` (one compiled call) gives the separate compiled calls' bits, and numpy's pick."""
    rng = np.random.default_rng(21)
    x = rng.normal(size=(90, 13))
    pts = rng.normal(0.3, 1.0, size=(400, 13)).astype(dtype)
    obj = RelaxedKL(x, 5)
    obj.reset(rng.normal(size=(7, 13)))
    cs = CandidateSet(pts)
    for i in rng.choice(400, size=50, replace=False):
        cs.mark_used(int(i))
    v0 = x.mean(axis=0)
    fused = obj.descend_and_pick(v0, 40, 0.01, 1.5, cs.points, cs.sq_norms, cs.used)
    assert fused is not None
    v, i, point, sq = fused
    kl_fused = obj.value_if_added(point, sq)
    v_sep = obj.descend(v0, 40, 0.01, 1.5)
    assert np.array_equal(v, v_sep)
    assert i == cs.nearest_unused(v_sep) and not cs.used[i]
    assert np.array_equal(point, pts[i].astype(np.float64))
    sq_sep = obj.sq_dists(point)
    assert np.array_equal(sq, sq_sep)
    assert obj.value_if_added(point, sq_sep) == kl_fused
    obj.use_fast = False
    cs.use_fast = False
    assert obj.descend_and_pick(v0, 40, 0.01, 1.5, cs.points, cs.sq_norms, cs.used) is None
    v_np = obj.descend(v0, 40, 0.01, 1.5)
    np.testing.assert_allclose(v, v_np, rtol=1e-10)
    assert cs.nearest_unused(v_np) == i
    np.testing.assert_allclose(obj.value_if_added(point), kl_fused, rtol=1e-12)
    obj.use_fast = None
    cs.used[:] = True
    none_left = obj.descend_and_pick(v0, 5, 0.01, 1.5, cs.points, cs.sq_norms, cs.used)
    assert none_left is not None and none_left[1] == -1


def test_float32_target_kernels_read_float32_with_the_same_bits() -> None:
    """A float32 target is read as float32 by the compiled kernels (half the memory): each value widens to the
    same float64, so the descent, the point pass and the one-call pick give the float64 copy's bits exactly;
    a float64 target that float32 cannot hold stays float64."""
    rng = np.random.default_rng(31)
    x32 = rng.normal(size=(61, 17)).astype(np.float32)  # 61 = 4 * 15 + 1: the four-row blocks and a remainder
    obj = RelaxedKL(x32, 5)
    assert obj._xk.dtype == np.float32 and obj.x.dtype == np.float64
    wide = RelaxedKL(x32, 5)
    wide._xk = wide.x  # the same object reading the float64 copy
    assert RelaxedKL(x32.astype(np.float64), 5)._xk.dtype == np.float32  # float64 holding float32 values
    assert RelaxedKL(x32.astype(np.float64) + 1e-9, 5)._xk.dtype == np.float64
    start = rng.normal(size=(9, 17))
    obj.reset(start)
    wide.reset(start)
    v0 = x32.mean(axis=0).astype(np.float64)
    assert np.array_equal(obj.descend(v0, 70, 0.01, 2.0), wide.descend(v0, 70, 0.01, 2.0))
    p = rng.normal(size=17)
    assert np.array_equal(obj.sq_dists(p), wide.sq_dists(p))
    assert obj.value_if_added(p) == wide.value_if_added(p)
    pts = rng.normal(size=(300, 17)).astype(np.float32)
    cs = CandidateSet(pts)
    a = obj.descend_and_pick(v0, 40, 0.01, 1.5, cs.points, cs.sq_norms, cs.used)
    b = wide.descend_and_pick(v0, 40, 0.01, 1.5, cs.points, cs.sq_norms, cs.used)
    assert a is not None and b is not None
    assert a[1] == b[1] and all(np.array_equal(u, w) for u, w in zip(a[::2] + a[3:], b[::2] + b[3:], strict=True))
    obj.use_fast = False  # and the numpy path (float64 throughout) agrees to rounding
    np.testing.assert_allclose(obj.descend(v0, 70, 0.01, 2.0), wide.descend(v0, 70, 0.01, 2.0), rtol=1e-10)
