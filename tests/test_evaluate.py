"""Yardsticks and baselines: closed forms, brute-force oracles, hand-made cases, and the design doc's warning."""

from __future__ import annotations

import logging
import math
import sys

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from conftest import brute_greedy_mmd
from gioselect.errors import (
    InvalidInputError,
    InvalidParameterError,
    InvalidTypeError,
    MissingDependencyError,
)
from gioselect.evaluate import (
    BASELINES,
    compare_methods,
    coverage,
    downstream_accuracy,
    duplicate_rate,
    energy_distance,
    evaluate_selection,
    full_pool,
    kernel_herding,
    kl_both_ways,
    knn_retrieval,
    label_proportions,
    median_heuristic,
    mmd2_unbiased,
    random_baseline,
    split_target,
    total_variation,
)
from gioselect.peers import facility_location

LOGGER = "gioselect.evaluate"


# --- brute-force oracles (full matrices, straight from the formulas) ----------------------------------------
def brute_mmd2(x: np.ndarray, y: np.ndarray, h: float) -> float:
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    n, m = len(x), len(y)
    kxx = np.exp(-cdist(x, x, "sqeuclidean") / (2 * h * h))
    kyy = np.exp(-cdist(y, y, "sqeuclidean") / (2 * h * h))
    kxy = np.exp(-cdist(x, y, "sqeuclidean") / (2 * h * h))
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())


def brute_energy(x: np.ndarray, y: np.ndarray) -> float:
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    n, m = len(x), len(y)
    return float(2 * cdist(x, y).mean() - cdist(x, x).sum() / (n * (n - 1)) - cdist(y, y).sum() / (m * (m - 1)))


def brute_median(a: np.ndarray) -> float:
    d = cdist(a.astype(np.float64), a.astype(np.float64))
    return float(np.median(d[np.triu_indices(len(a), k=1)]))


def oracle_round_robin(pool: np.ndarray, target: np.ndarray, budget: int) -> list[int]:
    """knn_retrieval's rule with full rankings (ties by lower row)."""
    d = cdist(target.astype(np.float64), pool.astype(np.float64))
    ranked = [sorted(range(len(pool)), key=lambda j, i=i: (d[i, j], j)) for i in range(len(target))]
    taken: set[int] = set()
    out: list[int] = []
    budget = min(budget, len(pool))
    while len(out) < budget:
        for r in ranked:
            j = next(j for j in r if j not in taken)
            taken.add(j)
            out.append(j)
            if len(out) == budget:
                break
    return out


def mixture(n: int, centers: np.ndarray, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    comp = rng.integers(0, len(centers), size=n)
    return (centers[comp] + scale * rng.normal(size=(n, centers.shape[1]))).astype(np.float32)


# --- split_target -------------------------------------------------------------------------------------------
def test_split_target_partitions_rows_and_is_seeded() -> None:
    target = np.zeros((11, 3))
    sel, hold = split_target(target, 0.3, seed=4)
    assert sel.dtype == np.int64 and hold.dtype == np.int64
    assert len(hold) == 3 and len(sel) == 8
    assert sorted(np.concatenate([sel, hold]).tolist()) == list(range(11))
    again = split_target(target, 0.3, seed=4)
    assert np.array_equal(again[0], sel) and np.array_equal(again[1], hold)
    others = {tuple(split_target(target, 0.3, seed=s)[1]) for s in range(10)}
    assert len(others) > 1


def test_split_target_keeps_a_row_on_each_side_and_checks_its_inputs() -> None:
    sel, hold = split_target(np.zeros((3, 2)), 0.01)
    assert len(hold) == 1 and len(sel) == 2
    sel, hold = split_target(np.zeros((3, 2)), 0.99)
    assert len(hold) == 2 and len(sel) == 1
    with pytest.raises(InvalidParameterError, match="holdout"):
        split_target(np.zeros((5, 2)), 1.0)
    with pytest.raises(InvalidInputError, match="at least 2"):
        split_target(np.zeros((1, 2)))


# --- KL both ways -------------------------------------------------------------------------------------------
def test_kl_both_ways_matches_the_gaussian_closed_form() -> None:
    # KL(N(0,I) || N(mu,I)) = |mu|^2 / 2 = 1 both ways. A wrong sign gives -1, a wrong factor 0.5 or 2.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 2))
    mu = np.array([1.0, 1.0])
    r = kl_both_ways(x, x + mu, k=5)
    assert set(r) == {"kl_target_sel", "kl_sel_target"}
    assert r["kl_target_sel"] == pytest.approx(1.0, abs=0.15)
    assert r["kl_sel_target"] == pytest.approx(1.0, abs=0.15)
    same = kl_both_ways(x, rng.normal(size=(3000, 2)), k=5)
    assert abs(same["kl_target_sel"]) < 0.1 and abs(same["kl_sel_target"]) < 0.1


def test_kl_both_ways_is_nan_with_a_logged_reason_when_a_side_is_too_small(caplog: pytest.LogCaptureFixture
                                                                            ) -> None:
    rng = np.random.default_rng(0)
    target = rng.normal(size=(30, 3))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        r = kl_both_ways(target, target[:5], k=5)  # exactly k rows: KL(target||sel) is defined, not the other
    assert math.isfinite(r["kl_target_sel"])
    assert math.isnan(r["kl_sel_target"])
    assert "kl_sel_target" in caplog.text and "k=5" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        r = kl_both_ways(target, target[:3], k=5)
    assert math.isnan(r["kl_target_sel"]) and math.isnan(r["kl_sel_target"])
    assert "kl_target_sel" in caplog.text
    r = kl_both_ways(target, np.zeros((0, 3)), k=5)
    assert math.isnan(r["kl_target_sel"]) and math.isnan(r["kl_sel_target"])
    with pytest.raises(InvalidInputError, match="dimension"):
        kl_both_ways(target, np.zeros((10, 4)))


# --- MMD ------------------------------------------------------------------------------------------------------
def test_mmd2_is_near_zero_for_one_distribution_and_positive_for_a_shift() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 5))
    y = rng.normal(size=(400, 5))
    same = mmd2_unbiased(x, y)
    shifted = mmd2_unbiased(x, y + 1.0)
    assert abs(same) < 0.01
    assert shifted > 0.1
    assert shifted > 20 * abs(same)


def test_mmd2_of_a_sample_with_itself_is_the_negative_closed_form() -> None:
    # Unbiased form, x == y: sxx/(n(n-1)) * 2 - 2 (sxx + n)/n^2 = (2/n) (mean_{i!=j} k - 1) < 0, not 0.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 4))
    h = 1.7
    k = np.exp(-cdist(x, x, "sqeuclidean") / (2 * h * h))
    off = (k.sum() - 50) / (50 * 49)
    got = mmd2_unbiased(x, x, bandwidth=h)
    assert got == pytest.approx((2 / 50) * (off - 1), rel=1e-5)
    assert got < 0


@pytest.mark.parametrize("block_rows", [1, 3, 7, 2048])
def test_mmd2_blocked_equals_brute_force(block_rows: int) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(23, 6)) + 5.0  # off the origin: the centring has something to do
    y = rng.normal(size=(17, 6)) * 1.5 + 5.2
    assert mmd2_unbiased(x, y, bandwidth=2.0, block_rows=block_rows) == pytest.approx(
        brute_mmd2(x, y, 2.0), rel=1e-5, abs=1e-9)
    h = brute_median(np.concatenate([x, y]).astype(np.float32))
    assert mmd2_unbiased(x, y, block_rows=block_rows) == pytest.approx(brute_mmd2(x, y, h), rel=1e-5, abs=1e-9)


def test_mmd2_subsamples_big_inputs_reproducibly() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 3))
    y = rng.normal(size=(300, 3)) + 0.5
    a = mmd2_unbiased(x, y, bandwidth=1.0, max_rows=100, seed=7)
    assert a == mmd2_unbiased(x, y, bandwidth=1.0, max_rows=100, seed=7)
    assert a != mmd2_unbiased(x, y, bandwidth=1.0, max_rows=100, seed=8)
    assert a != pytest.approx(mmd2_unbiased(x, y, bandwidth=1.0), rel=1e-9)
    assert mmd2_unbiased(x, y, bandwidth=1.0, max_rows=300) == pytest.approx(brute_mmd2(x, y, 1.0), rel=1e-6)


def test_mmd2_checks_its_parameters() -> None:
    x = np.zeros((5, 2))
    with pytest.raises(InvalidParameterError, match="bandwidth"):
        mmd2_unbiased(x, x, bandwidth="mean")
    with pytest.raises(InvalidParameterError, match="bandwidth"):
        mmd2_unbiased(x, x, bandwidth=0.0)
    with pytest.raises(InvalidInputError, match="at least 2"):
        mmd2_unbiased(x, x[:1])


def test_median_heuristic_is_the_median_pairwise_distance() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    assert median_heuristic(x) == pytest.approx(brute_median(x), rel=1e-6)
    # all points equal: a positive fallback, not 0 (a zero bandwidth would divide by zero)
    assert median_heuristic(np.ones((10, 3))) == 1.0


# --- energy distance ----------------------------------------------------------------------------------------
def test_energy_is_near_zero_for_one_distribution_and_positive_for_a_shift() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 5))
    y = rng.normal(size=(400, 5))
    same = energy_distance(x, y)
    shifted = energy_distance(x, y + 1.0)
    assert abs(same) < 0.05
    assert shifted > 0.5


def test_energy_of_a_sample_with_itself_is_minus_two_over_n_times_the_mean_distance() -> None:
    # The unbiased form is not 0 for identical multisets: the cross term counts the n zero i == j pairs.
    rng = np.random.default_rng(8)
    x = rng.normal(size=(40, 3))
    d = cdist(x, x)
    mean_off = d.sum() / (40 * 39)
    got = energy_distance(x, x)
    assert got == pytest.approx(-(2 / 40) * mean_off, rel=1e-6)
    assert got < 0


@pytest.mark.parametrize("block_rows", [1, 4, 2048])
def test_energy_blocked_equals_brute_force(block_rows: int) -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(size=(19, 4)) - 3.0
    y = rng.normal(size=(26, 4)) * 2.0
    assert energy_distance(x, y, block_rows=block_rows) == pytest.approx(brute_energy(x, y), rel=1e-6)


# --- coverage, duplicates, labels ---------------------------------------------------------------------------
def test_coverage_is_one_for_the_target_itself_and_zero_far_away() -> None:
    rng = np.random.default_rng(10)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    assert coverage(x, x, k=5) == 1.0
    assert coverage(x, x + 100.0, k=5) == 0.0
    half = coverage(x, x[:30], k=1)
    assert 0.5 <= half < 1.0  # the 30 selected rows cover themselves, not all of the rest


def test_coverage_on_a_hand_made_line() -> None:
    # target 0, 1, 2, 10 (k=1 radii: 1, 1, 1, 8); one selected point at 0.5 -> covers 0 and 1 only.
    target = np.array([[0.0], [1.0], [2.0], [10.0]])
    assert coverage(target, np.array([[0.5]]), k=1) == pytest.approx(0.5)
    with pytest.raises(InvalidInputError, match="more than k"):
        coverage(target, target, k=4)


def test_duplicate_rate_on_a_hand_list() -> None:
    assert duplicate_rate([1, 2, 2, 3, 1, 1]) == pytest.approx(0.5)  # 3 of 6 picks repeat an earlier one
    assert duplicate_rate(np.array([4, 5, 6])) == 0.0
    assert duplicate_rate([]) == 0.0
    with pytest.raises(InvalidTypeError):
        duplicate_rate([0.5, 1.0])


def test_label_proportions_and_total_variation() -> None:
    props = label_proportions(["a", "b", "a", "a"], ["a", "b", "c"])
    assert props == {"a": 0.75, "b": 0.25, "c": 0.0}
    target = {"a": 0.25, "b": 0.25, "c": 0.5}
    assert total_variation(props, target) == pytest.approx(0.5)
    assert total_variation(props, props) == 0.0
    assert total_variation({"a": 1.0}, {"b": 1.0}) == 1.0
    with pytest.raises(InvalidInputError, match="position 2 holds 'z'"):
        label_proportions(["a", "b", "z"], ["a", "b"])
    assert all(math.isnan(v) for v in label_proportions([], [0, 1]).values())


# --- downstream accuracy ------------------------------------------------------------------------------------
def _two_blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, 5)) + np.where(y[:, None] == 1, 4.0, -4.0)
    return x.astype(np.float32), y


@pytest.mark.parametrize("model", ["logreg", "knn"])
def test_downstream_accuracy_is_high_on_a_separable_problem(model: str) -> None:
    tx, ty = _two_blobs(80, 0)
    vx, vy = _two_blobs(200, 1)
    assert downstream_accuracy(tx, ty, vx, vy, model=model) >= 0.95
    # and it is a real measurement: flipped training labels give the opposite answer
    assert downstream_accuracy(tx, 1 - ty, vx, vy, model=model) <= 0.05


def test_downstream_accuracy_with_one_class_predicts_it() -> None:
    vx, vy = _two_blobs(200, 1)
    got = downstream_accuracy(np.zeros((3, 5)), [1, 1, 1], vx, vy)
    assert got == pytest.approx(np.mean(vy == 1))


def test_downstream_accuracy_checks_inputs_and_names_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    tx, ty = _two_blobs(20, 0)
    with pytest.raises(InvalidParameterError, match="model"):
        downstream_accuracy(tx, ty, tx, ty, model="svm")
    with pytest.raises(InvalidInputError, match="train_y"):
        downstream_accuracy(tx, ty[:5], tx, ty)
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")] + ["sklearn"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependencyError, match=r"gioselect\[experiments\]"):
        downstream_accuracy(tx, ty, tx, ty)


# --- evaluate_selection -------------------------------------------------------------------------------------
def test_evaluate_selection_reports_every_yardstick(tmp_path: pytest.TempPathFactory) -> None:
    rng = np.random.default_rng(11)
    pool, pool_y = _two_blobs(200, 2)
    target, target_y = _two_blobs(60, 3)
    test_x, test_y = _two_blobs(100, 4)
    path = tmp_path / "pool.npy"  # type: ignore[operator]
    np.save(path, pool)
    pool_mm = np.load(path, mmap_mode="r")
    idx = np.concatenate([rng.choice(200, 40, replace=False), [7, 7]])
    r = evaluate_selection(pool_mm, idx, target, labels=pool_y, test_x=test_x, test_y=test_y,
                           target_labels=target_y, seed=1)
    assert r["size"] == len(idx)
    assert r["n_distinct"] == len(np.unique(idx))
    assert r["duplicate_rate"] == pytest.approx(1 - len(np.unique(idx)) / len(idx))
    distinct = pool[np.unique(idx)]
    assert r["kl_target_sel"] == pytest.approx(kl_both_ways(target, distinct)["kl_target_sel"])
    assert r["bandwidth"] == pytest.approx(brute_median(target), rel=1e-6)
    assert r["mmd2"] == pytest.approx(brute_mmd2(target, distinct, r["bandwidth"]), rel=1e-5, abs=1e-9)
    assert r["energy"] == pytest.approx(brute_energy(target, distinct), rel=1e-6)
    assert r["coverage"] == pytest.approx(coverage(target, distinct))
    assert r["label_proportions"][1] == pytest.approx(np.mean(pool_y[idx] == 1))
    assert set(r["label_proportions"]) == {0, 1}
    assert r["label_tv"] == pytest.approx(abs(np.mean(pool_y[idx] == 1) - np.mean(target_y == 1)))
    assert r["downstream_accuracy"] >= 0.95


def test_evaluate_selection_of_an_empty_or_tiny_selection_gives_nan_not_a_crash(
        caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(12)
    pool = rng.normal(size=(30, 3)).astype(np.float32)
    target = rng.normal(size=(20, 3)).astype(np.float32)
    labels = rng.integers(0, 2, size=30)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        r = evaluate_selection(pool, np.array([], dtype=np.int64), target, labels=labels, test_x=target,
                               test_y=labels[:20])
    assert r["size"] == 0 and r["duplicate_rate"] == 0.0
    for key in ("kl_target_sel", "kl_sel_target", "mmd2", "energy", "coverage", "downstream_accuracy"):
        assert math.isnan(r[key]), key
    assert "mmd2 and energy are NaN" in caplog.text
    one = evaluate_selection(pool, [3], target)
    assert math.isnan(one["mmd2"]) and math.isnan(one["kl_target_sel"])
    assert one["coverage"] == pytest.approx(coverage(target, pool[[3]]))


def test_evaluate_selection_names_bad_inputs() -> None:
    pool = np.zeros((10, 2), dtype=np.float32)
    pool[4, 1] = np.nan
    target = np.random.default_rng(0).normal(size=(12, 2))
    with pytest.raises(InvalidInputError, match="position 1 holds 10"):
        evaluate_selection(pool, [0, 10], target)
    with pytest.raises(InvalidInputError, match="row 4"):
        evaluate_selection(pool, [0, 4], target)
    with pytest.raises(InvalidInputError, match="dimension"):
        evaluate_selection(pool, [0], np.zeros((5, 3)))
    with pytest.raises(InvalidParameterError, match="labels"):
        evaluate_selection(pool, [0], target, test_x=target, test_y=np.zeros(12))


# --- the design doc's warning, in miniature -----------------------------------------------------------------
def test_one_sided_kl_rewards_cluster_centres_and_the_two_sided_yardsticks_do_not() -> None:
    # 64-D mixture of 4 unit Gaussians. A "selection" of points at the cluster centres (plus tiny noise) is
    # nearer to every held-out target point than the target points are to each other, so KL(target || sel)
    # scores it better than a random subset of target-like points (the oracle). The reverse KL, MMD and
    # energy distance rank them the right way round. (Coverage is fooled too: every target point has a
    # centre inside its k-NN radius.)
    rng = np.random.default_rng(0)
    dim, m = 64, 40
    centers = rng.normal(0.0, 1.0, size=(4, dim))
    target = mixture(600, centers, rng)
    sel_rows, hold_rows = split_target(target, 0.5, seed=0)
    holdout = target[hold_rows]
    hug = (np.repeat(centers, m // 4, axis=0) + 0.01 * rng.normal(size=(m, dim))).astype(np.float32)
    oracle = target[sel_rows][rng.choice(len(sel_rows), m, replace=False)]
    pool = np.concatenate([hug, oracle])
    a = evaluate_selection(pool, np.arange(m), holdout)
    b = evaluate_selection(pool, np.arange(m, 2 * m), holdout)
    assert a["kl_target_sel"] < b["kl_target_sel"]  # the one-sided yardstick is fooled
    assert a["kl_sel_target"] > b["kl_sel_target"]
    assert a["mmd2"] > b["mmd2"]
    assert a["energy"] > b["energy"]
    assert a["coverage"] >= b["coverage"]


# --- baselines ----------------------------------------------------------------------------------------------
def test_random_baseline_is_seeded_distinct_and_capped() -> None:
    a = random_baseline(100, 30, seed=3)
    assert a.dtype == np.int64 and len(a) == 30 and len(set(a.tolist())) == 30
    assert a.min() >= 0 and a.max() < 100
    assert np.array_equal(a, random_baseline(100, 30, seed=3))
    assert not np.array_equal(a, random_baseline(100, 30, seed=4))
    assert sorted(random_baseline(10, 50, seed=0).tolist()) == list(range(10))
    assert len(random_baseline(10, 0, seed=0)) == 0


def test_full_pool() -> None:
    assert full_pool(4).tolist() == [0, 1, 2, 3]
    assert full_pool(4).dtype == np.int64


def test_knn_retrieval_on_a_hand_made_line() -> None:
    pool = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0], [5.0]], dtype=np.float32)
    # two targets far apart: alternate between their neighbourhoods
    got = knn_retrieval(pool, np.array([[0.1], [11.2]]), 7)
    assert got.tolist() == [0, 4, 1, 5, 2, 3, 6]
    assert knn_retrieval(pool, np.array([[0.1], [11.2]]), 3).tolist() == [0, 4, 1]
    # two targets sharing a nearest row: the second takes its next untaken one
    got = knn_retrieval(pool, np.array([[0.1], [0.2]]), 5)
    assert got.tolist() == [0, 1, 2, 6, 3]
    assert got.dtype == np.int64
    # ties go to the lower row, also across blocks
    tie_pool = np.array([[2.0], [1.0], [5.0], [-2.0]], dtype=np.float32)
    for block_rows in (1, 3, 4):
        assert knn_retrieval(tie_pool, np.array([[1.5]]), 4, block_rows=block_rows).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("block_rows", [2, 7, 65536])
def test_knn_retrieval_matches_the_round_robin_oracle(block_rows: int, tmp_path: pytest.TempPathFactory
                                                      ) -> None:
    rng = np.random.default_rng(13)
    pool = rng.normal(size=(60, 3)).astype(np.float32)
    target = rng.normal(size=(4, 3)).astype(np.float32) * 0.3  # crowded: many skips, lists run out
    path = tmp_path / "pool.npy"  # type: ignore[operator]
    np.save(path, pool)
    pool_mm = np.load(path, mmap_mode="r")
    for budget in (1, 9, 37, 60, 80):
        got = knn_retrieval(pool_mm, target, budget, block_rows=block_rows)
        assert got.tolist() == oracle_round_robin(pool, target, budget), budget


def test_kernel_herding_equals_brute_force_greedy_mmd() -> None:
    rng = np.random.default_rng(14)
    pool = rng.normal(size=(40, 3)).astype(np.float32) * 1.5
    target = (rng.normal(size=(25, 3)) + 0.7).astype(np.float32)
    want = brute_greedy_mmd(pool, target, 15, h=1.3)
    assert kernel_herding(pool, target, 15, bandwidth=1.3).tolist() == want
    assert kernel_herding(pool, target, 15, bandwidth=1.3, block_rows=6).tolist() == want


def test_kernel_herding_median_bandwidth_is_seeded_and_distinct() -> None:
    rng = np.random.default_rng(15)
    pool = rng.normal(size=(50, 4)).astype(np.float32)
    target = rng.normal(size=(20, 4)).astype(np.float32) + 0.5
    a = kernel_herding(pool, target, 50)
    assert a.dtype == np.int64 and sorted(a.tolist()) == list(range(50))
    assert np.array_equal(kernel_herding(pool, target, 10), a[:10])
    h = brute_median(np.concatenate([target, pool]))  # under 500 rows each: the sample is everything
    assert a[:10].tolist() == brute_greedy_mmd(pool, target, 10, h)


def test_kernel_herding_beats_random_on_mmd() -> None:
    rng = np.random.default_rng(16)
    centers = rng.normal(0.0, 4.0, size=(4, 8))
    pool = mixture(300, centers, rng)
    target = mixture(80, centers[:2], rng)
    h = median_heuristic(target)
    herd = kernel_herding(pool, target, 30)
    rand = random_baseline(300, 30, seed=0)
    assert mmd2_unbiased(target, pool[herd], bandwidth=h) < mmd2_unbiased(target, pool[rand], bandwidth=h)


def test_baselines_registry_shares_one_signature() -> None:
    rng = np.random.default_rng(17)
    pool = rng.normal(size=(30, 3)).astype(np.float32)
    target = rng.normal(size=(8, 3)).astype(np.float32)
    assert set(BASELINES) == {"random", "knn", "herding", "facility", "dsir", "full"}
    for name, fn in BASELINES.items():
        if name == "dsir":  # the one text method: refused without texts, tested below
            continue
        got = fn(pool, target, 12, seed=1)
        assert got.dtype == np.int64
        assert len(got) == (30 if name == "full" else 12), name
        assert len(set(got.tolist())) == len(got), name
    assert np.array_equal(BASELINES["knn"](pool, target, 12), knn_retrieval(pool, target, 12))


def test_baselines_check_their_inputs() -> None:
    pool = np.zeros((5, 2), dtype=np.float32)
    with pytest.raises(InvalidInputError, match="dimension"):
        knn_retrieval(pool, np.zeros((2, 3)), 2)
    with pytest.raises(InvalidParameterError, match="budget"):
        kernel_herding(pool, np.zeros((2, 2)), -1)
    bad = pool.copy()
    bad[3, 0] = np.inf
    with pytest.raises(InvalidInputError, match="row 3"):
        knn_retrieval(bad, np.zeros((2, 2)), 2, block_rows=2)


def test_dsir_and_facility_entries() -> None:
    rng = np.random.default_rng(3)
    pool = rng.normal(size=(6, 3)).astype(np.float32)
    target = rng.normal(size=(2, 3)).astype(np.float32)
    texts = ["apple pie", "pear tart", "plum jam", "fig roll", "apple crumble", "kiwi fool"]
    with pytest.raises(InvalidParameterError, match="dsir: needs the raw text"):
        BASELINES["dsir"](pool, target, 2)
    got = BASELINES["dsir"](pool, target, 2, seed=0, pool_texts=texts, target_texts=["apple", "apple"])
    assert sorted(got.tolist()) == [0, 4]  # the only texts with the target's word (all of two words)
    assert np.array_equal(BASELINES["facility"](pool, target, 4, seed=5), facility_location(pool, target, 4))


def test_compare_methods_with_dsir_and_facility() -> None:
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(2, 8)) * 3
    lab = np.repeat([0, 1], 60)
    pool = (centres[lab] + rng.normal(size=(120, 8))).astype(np.float32)
    target = (centres[np.zeros(40, dtype=int)] + rng.normal(size=(40, 8))).astype(np.float32)
    words = {0: ["goal", "match", "team", "league"], 1: ["bank", "shares", "profit", "market"]}
    pool_texts = [" ".join(rng.choice(words[int(c)], size=6)) for c in lab]
    target_texts = [" ".join(rng.choice(words[0], size=6)) for _ in range(40)]
    methods = ["random", "knn", "facility", "dsir"]
    with pytest.raises(InvalidParameterError, match="pool_texts= and target_texts="):
        compare_methods(pool, target, methods=methods, sizes=[10])
    with pytest.raises(InvalidInputError, match="pool_texts: has 119 texts, expected 120"):
        compare_methods(pool, target, methods=methods, sizes=[10], pool_texts=pool_texts[:-1],
                        target_texts=target_texts)
    res = compare_methods(pool, target, methods=methods, sizes=[10, 20], random_seeds=2, pool_labels=lab,
                          target_labels=np.zeros(40, dtype=int), pool_texts=pool_texts, target_texts=target_texts)
    for name in ("facility", "dsir"):
        rows = res["methods"][name]
        assert [r["size"] for r in rows] == [10, 20]
        # every text of class 0 has only the target's words, so both pick class 0 only: label TV 0
        assert rows[-1]["label_tv"] == pytest.approx(0.0), name
    assert res["methods"]["random"][-1]["label_tv"] > 0.2
