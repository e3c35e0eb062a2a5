"""Estimators: closed forms, brute-force oracles, finite differences, invariances, degenerate inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from gioselect.divergence import (
    MIN_DIST,
    RelaxedKL,
    iter_sq_dist_blocks,
    kl_knn,
    kl_relaxed,
    knn_distances,
    relaxed_gradient,
)
from gioselect.errors import InvalidInputError, InvalidParameterError, InvalidTypeError


def brute_relaxed(x: np.ndarray, w: np.ndarray, k: int, discard: bool = False, eps: float = 1e-8) -> float:
    """The relaxed estimator written straight from the formula, with full matrices (oracle)."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    n, d = x.shape
    m = w.shape[0]
    dxx = np.sqrt(np.clip(cdist(x, x, "sqeuclidean"), 1e-10, 1e20))
    np.fill_diagonal(dxx, np.inf)
    rho = np.sort(dxx, axis=1)[:, k - 1]
    dxw = np.sort(np.sqrt(np.clip(cdist(x, w, "sqeuclidean"), 1e-10, 1e20)), axis=1)
    if discard:
        dxw = dxw[:, 1:]
    first = d * np.mean(np.log(dxw + eps))
    second = d * np.mean(np.log(rho + eps))
    ranks = np.arange(1, m + 1)
    return float(first - second + np.mean(np.log(k * m / (ranks * (n - 1)))))


def brute_kl_knn(x: np.ndarray, w: np.ndarray, k: int) -> float:
    n, d = x.shape
    dxx = cdist(x, x)
    np.fill_diagonal(dxx, np.inf)
    rho = np.sort(dxx, axis=1)[:, k - 1]
    nu = np.sort(cdist(x, w), axis=1)[:, k - 1]
    return float(d / n * np.sum(np.log(nu / rho)) + math.log(w.shape[0] / (n - 1)))


# -- closed forms -------------------------------------------------------------------------------------------
def test_kl_knn_matches_gaussian_mean_shift() -> None:
    # KL(N(0, I) || N(mu, I)) = |mu|^2 / 2 = 1.0 here.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2))
    w = rng.normal(size=(4000, 2)) + np.array([1.0, 1.0])
    assert kl_knn(x, w, k=5) == pytest.approx(1.0, abs=0.15)


def test_kl_knn_matches_gaussian_scale_change() -> None:
    # KL(N(0, s1^2 I) || N(0, s2^2 I)) = d/2 (r - 1 - ln r), r = s1^2 / s2^2; d=3, s1=1, s2=2 -> 0.9431
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 3))
    w = rng.normal(size=(4000, 3)) * 2.0
    r = 0.25
    expected = 1.5 * (r - 1 - math.log(r))
    assert kl_knn(x, w, k=5) == pytest.approx(expected, abs=0.12)


def test_kl_knn_near_zero_for_same_distribution() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, 4))
    w = rng.normal(size=(3000, 4))
    assert abs(kl_knn(x, w, k=5)) < 0.1


# -- oracles ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 3, 5])
def test_kl_knn_equals_brute_force(k: int) -> None:
    rng = np.random.default_rng(k)
    x = rng.normal(size=(70, 5))
    w = rng.normal(size=(40, 5)) + 0.3
    assert kl_knn(x, w, k) == pytest.approx(brute_kl_knn(x, w, k), rel=1e-9)


@pytest.mark.parametrize("discard", [False, True])
@pytest.mark.parametrize("dim", [1, 2, 9])
def test_kl_relaxed_equals_formula(discard: bool, dim: int) -> None:
    rng = np.random.default_rng(dim)
    x = rng.normal(size=(50, dim))
    w = rng.normal(size=(23, dim)) * 1.5
    assert kl_relaxed(x, w, 5, discard_nearest_for_xy=discard) == pytest.approx(
        brute_relaxed(x, w, 5, discard), rel=1e-10
    )


@pytest.mark.parametrize("exclude_self", [False, True])
def test_knn_distances_blocked_equals_brute_force(exclude_self: bool) -> None:
    rng = np.random.default_rng(5)
    q = rng.normal(size=(37, 3))
    ref = q if exclude_self else rng.normal(size=(53, 3))
    full = cdist(q, ref)
    if exclude_self:
        np.fill_diagonal(full, np.inf)
    expected = np.sort(full, axis=1)[:, :4]
    for block in (1, 7, 50, 10**6):  # blocks of one element up to everything at once
        got = knn_distances(q, ref, 4, exclude_self=exclude_self, block_elems=block)
        np.testing.assert_allclose(got, np.maximum(expected, MIN_DIST), rtol=1e-9, atol=1e-12)


def test_sq_dist_blocks_cover_the_matrix_once() -> None:
    rng = np.random.default_rng(6)
    a = rng.normal(size=(29, 4))
    b = rng.normal(size=(31, 4))
    seen = np.zeros((29, 31), dtype=int)
    out = np.zeros((29, 31))
    for r0, c0, d in iter_sq_dist_blocks(a, b, block_elems=40):
        assert d.size <= max(40, d.shape[1])
        seen[r0 : r0 + d.shape[0], c0 : c0 + d.shape[1]] += 1
        out[r0 : r0 + d.shape[0], c0 : c0 + d.shape[1]] = d
    assert (seen == 1).all()
    np.testing.assert_allclose(out, cdist(a, b, "sqeuclidean"), rtol=1e-9, atol=1e-12)


# -- the gradient -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("discard", [False, True])
@pytest.mark.parametrize("dim", [2, 6])
def test_gradient_matches_finite_differences(discard: bool, dim: int) -> None:
    rng = np.random.default_rng(10 + dim)
    x = rng.normal(size=(40, dim))
    w = rng.normal(size=(12, dim))
    v = rng.normal(size=dim) * 0.7
    g = relaxed_gradient(v, x, w, 5, discard_nearest_for_xy=discard)
    h = 1e-6
    fd = np.empty(dim)
    for j in range(dim):
        e = np.zeros(dim)
        e[j] = h
        up = kl_relaxed(x, np.vstack([w, v + e]), 5, discard_nearest_for_xy=discard)
        dn = kl_relaxed(x, np.vstack([w, v - e]), 5, discard_nearest_for_xy=discard)
        fd[j] = (up - dn) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7)


def test_gradient_does_not_depend_on_which_points_were_selected() -> None:
    # The derivative trick: only m enters the gradient, not the points of W.
    rng = np.random.default_rng(11)
    x = rng.normal(size=(30, 3))
    v = rng.normal(size=3)
    g1 = relaxed_gradient(v, x, rng.normal(size=(8, 3)))
    g2 = relaxed_gradient(v, x, rng.normal(size=(8, 3)) + 5)
    np.testing.assert_allclose(g1, g2, rtol=1e-12)


# -- the incremental state ----------------------------------------------------------------------------------
@pytest.mark.parametrize("discard", [False, True])
def test_incremental_state_equals_recomputation(discard: bool) -> None:
    rng = np.random.default_rng(12)
    x = rng.normal(size=(45, 4))
    w = rng.normal(size=(20, 4))
    inc = RelaxedKL(x, 5, discard_nearest_for_xy=discard)
    inc.reset(w[:2])
    for j in range(2, 20):
        predicted = inc.value_if_added(w[j])
        assert inc.add(w[j]) == pytest.approx(predicted, rel=1e-13)
        assert inc.value() == pytest.approx(brute_relaxed(x, w[: j + 1], 5, discard), rel=1e-10)


def test_state_round_trip() -> None:
    rng = np.random.default_rng(13)
    x = rng.normal(size=(30, 3))
    a = RelaxedKL(x, 3, discard_nearest_for_xy=True)
    a.reset(rng.normal(size=(5, 3)))
    b = RelaxedKL(x, 3, discard_nearest_for_xy=True)
    b.set_state(a.get_state())
    p = rng.normal(size=3)
    assert a.value_if_added(p) == b.value_if_added(p)
    np.testing.assert_array_equal(a.gradient(p), b.gradient(p))


# -- duplicates and zero distances --------------------------------------------------------------------------
def test_duplicates_give_finite_values_and_gradients() -> None:
    rng = np.random.default_rng(14)
    base = rng.normal(size=(10, 3))
    x = np.vstack([base, base, base])  # every target point thrice: rho can be 0
    w = base[:4].copy()  # sample points exactly on target points
    for discard in (False, True):
        assert math.isfinite(kl_relaxed(x, w, 2, discard_nearest_for_xy=discard))
        g = relaxed_gradient(x[0], x, w, 2, discard_nearest_for_xy=discard)  # v exactly on a target point
        assert np.isfinite(g).all()
    assert math.isfinite(kl_knn(x, w, 2))
    assert math.isfinite(kl_knn(x, np.vstack([w, w]), 5))


def test_exactly_coincident_target_point_contributes_no_gradient() -> None:
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    w = np.array([[5.0, 5.0]])
    g_on = relaxed_gradient(x[3], x, w, 1)
    # Removing the coincident point changes the normaliser only: compare the direction of the sum.
    diff = x[3] - x[:3]
    r = np.linalg.norm(diff, axis=1)
    manual = (2 / (4 * 2)) * np.sum(diff / (r * (r + 1e-8))[:, None], axis=0)
    np.testing.assert_allclose(g_on, manual, rtol=1e-9)


# -- invariances (properties) -------------------------------------------------------------------------------
arrays = st.integers(min_value=0, max_value=2**32 - 1)


@settings(max_examples=25, deadline=None)
@given(seed=arrays, shift=st.floats(-50, 50), scale=st.floats(0.5, 20))
def test_kl_knn_is_translation_and_scale_invariant(seed: int, shift: float, scale: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(25, 3))
    w = rng.normal(size=(15, 3)) + 0.5
    base = kl_knn(x, w, 3)
    moved = kl_knn(x * scale + shift, w * scale + shift, 3)
    assert moved == pytest.approx(base, rel=1e-6, abs=1e-6)


@settings(max_examples=25, deadline=None)
@given(seed=arrays)
def test_relaxed_is_permutation_invariant_in_the_sample(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(20, 2))
    w = rng.normal(size=(9, 2))
    perm = rng.permutation(9)
    for discard in (False, True):
        assert kl_relaxed(x, w[perm], 4, discard_nearest_for_xy=discard) == pytest.approx(
            kl_relaxed(x, w, 4, discard_nearest_for_xy=discard), rel=1e-12
        )


# -- input validation ---------------------------------------------------------------------------------------
def test_errors_name_the_problem() -> None:
    x = np.zeros((10, 2)) + np.arange(10)[:, None]
    with pytest.raises(InvalidInputError, match="more than k=5"):
        kl_knn(x[:5], x, 5)
    with pytest.raises(InvalidInputError, match="dimension 3, expected 2"):
        kl_knn(x, np.ones((6, 3)), 5)
    with pytest.raises(InvalidInputError, match="at least 5"):
        kl_knn(x, x[:4], 5)
    bad = x.copy()
    bad[7, 1] = np.nan
    with pytest.raises(InvalidInputError, match="row 7 column 1 is NaN"):
        kl_relaxed(bad, x, 5)
    with pytest.raises(InvalidParameterError, match="k must be >= 1"):
        kl_relaxed(x, x, 0)
    with pytest.raises(InvalidTypeError, match="numeric"):
        kl_knn(np.array([["a", "b"]] * 10), x, 2)
    with pytest.raises(InvalidInputError, match="at least 2"):
        kl_relaxed(x, x[:1], 5, discard_nearest_for_xy=True)


@pytest.mark.parametrize("near", [False, True])
def test_fused_descent_equals_plain_gradient_steps(near: bool) -> None:
    rng = np.random.default_rng(21)
    x = rng.normal(size=(80, 7))
    obj = RelaxedKL(x, 5)
    obj.reset(rng.normal(size=(9, 7)))
    v0 = x[3].copy() if near else rng.normal(size=7)  # on a target point: a clipped, zero-derivative term
    fused = obj.descend(v0, 40, 0.01, 3.0)
    plain = np.array(v0, dtype=np.float64)
    for _ in range(40):
        plain -= 0.01 * 3.0 * obj.gradient(plain)
    # Starting on a target point amplifies rounding (1/(s + eps r) vs 1/(r (r + eps))) over the steps; a wrong
    # handling of the clipped term would differ by O(1).
    np.testing.assert_allclose(fused, plain, rtol=1e-6 if near else 1e-11, atol=1e-12)


@pytest.mark.parametrize("discard", [False, True])
def test_add_after_value_if_added_returns_the_same_value_as_recomputing(discard: bool) -> None:
    """``add`` reuses ``value_if_added``'s value for the same distances; it equals ``value()`` bit for bit, and a
    state changed in between (a reset, another point's distances) is recomputed."""
    rng = np.random.default_rng(41)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    obj = RelaxedKL(x, 3, discard_nearest_for_xy=discard)
    obj.reset(rng.normal(size=(4, 6)))
    for _ in range(6):
        p = rng.normal(size=6)
        sq = obj.sq_dists(p)
        predicted = obj.value_if_added(p, sq)
        assert obj.add(p, sq) == predicted == obj.value()
    p, q = rng.normal(size=6), rng.normal(size=6)
    sq_p = obj.sq_dists(p)
    obj.value_if_added(p, sq_p)
    sq_q = obj.sq_dists(q)
    assert obj.add(q, sq_q) == obj.value()  # not p's prediction
    obj.value_if_added(p, sq_p)
    obj.reset(rng.normal(size=(5, 6)))
    assert obj.add(p, sq_p) == obj.value()
