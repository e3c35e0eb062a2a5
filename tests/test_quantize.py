"""K-means quantisation, streamed assignment, explosion, and the quantisation consistency check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from gioselect.engines import LocalEngine
from gioselect.errors import InvalidParameterError
from gioselect.job.select import distinct_picks as distinct_in_order
from gioselect.quantize import (
    AUTO_MAX_DIRECT_ROWS,
    DEFAULT_CLUSTERS,
    KMEANS_TOL,
    MAX_POINTS_PER_CENTROID,
    REFINE_WHOLE,
    ClusterMembers,
    RowF1,
    assign_blocks,
    auto_clusters,
    candidate_points,
    cluster_target_like,
    cover_clusters,
    drop_empty,
    explode,
    kmeans_centroids,
    medoid_ids,
    on_unit_sphere,
    plan_clusters,
    quantization_consistency,
    quantize_array,
    quantized_rows,
    refine,
    score_rows,
    share_order,
    training_sample_indices,
)
from gioselect.selector import select_quantized
from gioselect.sizing import F1Prefix, f1_curve


def blobs(n: int = 2000, dim: int = 6, k: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 10, size=(k, dim))
    return (centers[rng.integers(k, size=n)] + rng.normal(size=(n, dim))).astype(np.float32)


def test_kmeans_is_seeded_and_deterministic() -> None:
    x = blobs()
    a = kmeans_centroids(x, 8, seed=3)
    b = kmeans_centroids(x, 8, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (8, 6) and a.dtype == np.float32


def test_streamed_assignment_equals_brute_force() -> None:
    x = blobs(900)
    c = kmeans_centroids(x, 7, seed=0)
    blocks = ((s, x[s : s + 128]) for s in range(0, 900, 128))
    labels, sq = assign_blocks(blocks, c, 900)
    d = cdist(x, c, "sqeuclidean")
    np.testing.assert_array_equal(labels, d.argmin(1))
    np.testing.assert_allclose(sq, d.min(1), rtol=1e-4, atol=1e-3)


def test_assignment_detects_missing_rows() -> None:
    x = blobs(100)
    c = x[:3]
    with pytest.raises(RuntimeError, match="row 50 was not assigned"):
        assign_blocks([(0, x[:50])], c, 100)


def test_training_sample_is_capped_and_seeded() -> None:
    assert training_sample_indices(300, 10, seed=0).tolist() == list(range(300))
    s1 = training_sample_indices(100_000, 10, seed=1, max_points_per_centroid=50)
    s2 = training_sample_indices(100_000, 10, seed=1, max_points_per_centroid=50)
    assert s1.shape == (500,) and (np.diff(s1) > 0).all()
    np.testing.assert_array_equal(s1, s2)


def _objective(x: np.ndarray, c: np.ndarray) -> float:
    return float(cdist(x, c, "sqeuclidean").min(1).sum())


def test_kmeans_without_tol_is_faiss_itself() -> None:
    faiss = pytest.importorskip("faiss")
    x = blobs(1500, k=6)
    km = faiss.Kmeans(6, 9, niter=12, seed=4, max_points_per_centroid=167, min_points_per_centroid=1, verbose=False)
    km.train(x)
    np.testing.assert_array_equal(kmeans_centroids(x, 9, seed=4, niter=12, tol=None), km.centroids)


def test_kmeans_convergence_test_is_faiss_with_fewer_iterations() -> None:
    # the early stop continues faiss's own iterations one call at a time: its centroids are exactly those of
    # faiss run for some m < niter iterations, and its objective is within 1 % of the full run's
    x = blobs(3000, k=5, seed=2)
    early = kmeans_centroids(x, 5, seed=1, niter=40, tol=KMEANS_TOL)
    same = [m for m in range(1, 40) if np.array_equal(kmeans_centroids(x, 5, seed=1, niter=m, tol=None), early)]
    assert same, "the early-stopped centroids are not faiss's after any number of iterations below 40"
    full = kmeans_centroids(x, 5, seed=1, niter=40, tol=None)
    assert _objective(x, early) <= _objective(x, full) * 1.01


def test_default_sample_rule_is_32_points_per_centroid() -> None:
    assert MAX_POINTS_PER_CENTROID == 32
    assert training_sample_indices(100_000, 100, seed=0).shape == (3_200,)
    assert training_sample_indices(3_000, 100, seed=0).shape == (3_000,)  # all rows when fewer
    assert LocalEngine(1 << 30).points_per_centroid(1500, 384) == 32
    # a budget too small for the default sample lowers it: 64 MiB / 2 / (1500 * 384 * 4 * 2) -> 7
    assert LocalEngine(64 << 20).points_per_centroid(1500, 384) == 7


def test_drop_empty_renumbers() -> None:
    cents = np.arange(8, dtype=np.float32).reshape(4, 2)
    labels = np.array([0, 3, 3, 0, 3], dtype=np.int32)
    c, sizes, lab = drop_empty(cents, labels)
    np.testing.assert_array_equal(c, cents[[0, 3]])
    np.testing.assert_array_equal(sizes, [2, 3])
    np.testing.assert_array_equal(lab, [0, 1, 1, 0, 1])


def test_quantize_array_small_input_is_identity() -> None:
    x = blobs(20)
    q = quantize_array(x, 50)
    np.testing.assert_array_equal(q.centroids, x)
    assert (q.sizes == 1).all()


def test_quantize_array_sizes_add_up() -> None:
    x = blobs(3000)
    q = quantize_array(x, 40, seed=2)
    assert q.sizes.sum() == 3000 and (q.sizes > 0).all()
    np.testing.assert_array_equal(np.bincount(q.labels, minlength=len(q.sizes)), q.sizes)


def test_explode_order_dedup_and_exact_limit() -> None:
    labels = np.array([2, 0, 1, 2, 0, 2, 1, 1, 2], dtype=np.int32)
    m = ClusterMembers(labels, 3)
    np.testing.assert_array_equal(m.members(2), [0, 3, 5, 8])
    ids = explode([2, 0, 2], m)
    np.testing.assert_array_equal(ids, [0, 3, 5, 8, 1, 4])  # cluster 2 once, then cluster 0
    cut = explode([0, 2], m, limit=4, seed=0)
    assert cut.shape == (4,) and cut[:2].tolist() == [1, 4]
    assert set(cut[2:].tolist()) <= {0, 3, 5, 8} and cut[2] < cut[3]
    assert explode([], m).shape == (0,)


def test_quantization_consistency_check() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 2)).astype(np.float32)
    res = quantization_consistency(x, 300, seed=0)
    assert res.passed, res.message
    assert res.metrics["kl_centroids"] < 0.5
    # The verdict follows the threshold: an impossible one gives FAIL.
    bad = quantization_consistency(x, 300, seed=0, max_kl=-10.0)
    assert not bad.passed


# -- faithful candidates --------------------------------------------------------------------------------------
def test_medoid_is_the_member_nearest_its_centroid() -> None:
    x = blobs(600, 4, 6, seed=3)
    cents = kmeans_centroids(x, 6, seed=0)
    labels, sq = assign_blocks([(0, x)], cents, x.shape[0])
    c, _, labels = drop_empty(cents, labels)
    med = medoid_ids(labels, sq, c.shape[0])
    for j in range(c.shape[0]):  # oracle: brute force over the members
        mem = np.flatnonzero(labels == j)
        d = ((x[mem].astype(np.float64) - c[j]) ** 2).sum(axis=1)
        assert labels[med[j]] == j and np.isclose(d.min(), ((x[med[j]] - c[j]) ** 2).sum(), rtol=1e-4)


def test_medoid_ids_empty_cluster_and_ties() -> None:
    labels = np.array([0, 2, 0, 2], dtype=np.int32)
    med = medoid_ids(labels, np.array([1.0, 0.5, 1.0, 0.5], dtype=np.float32), 3)
    assert med.tolist() == [0, -1, 1]  # ties go to the lowest row; cluster 1 is empty


def test_renormalized_candidates_have_unit_norm_and_sphere_detection() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8)).astype(np.float32)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert on_unit_sphere(u) and not on_unit_sphere(x) and not on_unit_sphere(u[:0])
    c = candidate_points("renormalized", u[:5] * 0.3, lambda: u[:0])
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(candidate_points("medoid", u[:5], lambda: u[10:15]), u[10:15])


# -- the row-level pass ---------------------------------------------------------------------------------------
def test_score_rows_knn_matches_brute_force() -> None:
    x = blobs(300, 5, 3, seed=1)
    t = blobs(40, 5, 3, seed=2)
    got = score_rows(np.arange(300), lambda i: x[i], t, how="knn", k=3, block_rows=64)
    want = np.sort(cdist(x, t), axis=1)[:, :3].mean(axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    rel = score_rows(np.arange(300), lambda i: x[i], t, how="relaxed", block_rows=50)
    np.testing.assert_allclose(rel, np.log(cdist(x, t) + 1e-8).mean(axis=1), rtol=1e-6, atol=1e-6)


def test_refine_keeps_the_rows_nearest_the_target_and_exact_size() -> None:
    # cluster 0 holds rows near the target (0..4) and far ones (5..9); cluster 1 only far rows
    x = np.zeros((15, 2), dtype=np.float32)
    x[:5, 0] = np.arange(5) * 0.01
    x[5:10, 0] = 50 + np.arange(5)
    x[10:, 0] = 100 + np.arange(5)
    labels = np.array([0] * 10 + [1] * 5, dtype=np.int32)
    m = ClusterMembers(labels, 2)
    t = np.zeros((6, 2), dtype=np.float32)
    t[:, 1] = np.arange(6) * 0.01
    ids = refine([0, 1], m, lambda i: x[i], t, 4, k=2, over=2.0)
    assert sorted(ids.tolist()) == [0, 1, 2, 3] and ids.shape == (4,)
    # more rows than the chosen clusters hold: the fallback order fills exactly
    ids = refine([1], m, lambda i: x[i], t, 7, k=2, over=1.0, fallback=np.array([0, 1]))
    assert ids.shape == (7,) and set(ids.tolist()) >= set(range(5))


def test_refine_empty_and_single_row_clusters() -> None:
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    labels = np.array([1, 3, 3, 3], dtype=np.int32)  # cluster 0 and 2 are empty, cluster 1 has one row
    m = ClusterMembers(labels, 4)
    t = x[:2] + 0.1
    assert refine([0, 2], m, lambda i: x[i], t, 2, k=2).shape == (0,)  # only empty clusters: nothing to take
    assert refine([1], m, lambda i: x[i], t, 1, k=2).tolist() == [0]
    assert refine([0, 1, 2, 3], m, lambda i: x[i], t, 2, k=2, how="knn").tolist() == [1, 0]  # best first
    assert refine([], m, lambda i: x[i], t, 0, k=2).shape == (0,)
    assert cover_clusters([3, 1, 3], np.array([0, 1, 0, 3]), 3).tolist() == [3]


def test_refine_gio_takes_fill_order_tops_up_short_answers_and_needs_fill() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    labels = np.repeat(np.arange(4), 10).astype(np.int32)
    m = ClusterMembers(labels, 4)
    t = x[:6] + 0.01
    cand = np.sort(m.rows_of([2]))  # over x 3 = 6 rows: cluster 2 (10 rows) covers it alone
    seen: list[np.ndarray] = []

    def fill(answer: list[int]) -> Callable[[np.ndarray, int], np.ndarray]:
        def run(rows: np.ndarray, n: int) -> np.ndarray:
            seen.append(rows.copy())
            return np.array(answer[:n])
        return run

    ids = refine([2, 0], m, lambda i: x[i], t, 3, how="gio", over=2.0, whole=0.5, fill=fill([7, 2, 9, 4]))
    np.testing.assert_array_equal(seen[0], x[cand])  # every row of the cluster read: nothing kept whole
    assert ids.tolist() == cand[[7, 2, 9]].tolist()  # GIO's order, cut to the size
    # a short answer (2 of 3): the row nearest the target among the others fills it
    ids = refine([2, 0], m, lambda i: x[i], t, 3, how="gio", over=2.0, fill=fill([7, 2]))
    left = np.setdiff1d(np.arange(10), [7, 2])
    score = np.sort(cdist(x[cand[left]].astype(np.float64), t.astype(np.float64)), axis=1)[:, :5].mean(axis=1)
    assert ids.tolist() == [*cand[[7, 2]].tolist(), cand[left[np.argmin(score)]]]
    with pytest.raises(InvalidParameterError, match="fill"):
        refine([2, 0], m, lambda i: x[i], t, 3, how="gio")


def _posterior(rows: np.ndarray) -> np.ndarray:  # a stand-in classifier: target-like near the origin's x = 0
    return np.clip(1.0 - np.abs(np.asarray(rows, dtype=np.float64)[:, 0]) / 2.0, 0.0, 1.0)


def _kept(weights: np.ndarray, total: float) -> int:
    p = F1Prefix(total)
    for w in weights:
        if p.done:
            break
        p.add(float(w))
    return round(p.kept_rows)


def test_refine_sized_ranks_every_read_row_and_keeps_the_f1_prefix() -> None:
    """``size=RowF1``: the pass ranks every row it read (the first clusters kept whole, then the others by their
    k-NN score), counts their posteriors in that order and returns the F1 rule's kept prefix: any number of rows
    from 0 to every row read, not the cluster-level size."""
    rng = np.random.default_rng(11)
    x = rng.normal(0, 1.5, size=(120, 3)).astype(np.float32)
    labels = rng.integers(0, 8, size=120).astype(np.int32)
    m = ClusterMembers(labels, 8)
    t = (rng.normal(0, 0.3, size=(30, 3)) * np.array([1, 3, 3])).astype(np.float32)
    chosen = [3, 1, 6, 0, 2, 5]
    for total in (8.0, 30.0, 80.0):
        size = RowF1(_posterior, total)
        got = refine(chosen, m, lambda i: x[i], t, 20, how="knn", over=2.0, whole=0.5, size=size)
        clusters = cover_clusters(np.array(chosen), np.diff(m.starts), 40)
        read = m.rows_of(clusters)
        sizes = np.diff(m.starts)[clusters]
        n_core = int(np.searchsorted(np.cumsum(sizes), 0.5 * 20, side="right"))
        core = read[: int(sizes[:n_core].sum())]
        rest = np.sort(read[core.shape[0]:])
        sc = score_rows(rest, lambda i: x[i], t, k=5)
        order = np.concatenate([core, rest[np.lexsort((rest, sc))]])
        n = _kept(_posterior(x[order]), total)
        assert size.read == read.shape[0] and size.how == "knn"
        np.testing.assert_array_equal(got, order[:n])
        curve = f1_curve(_posterior(x[order]), total)
        assert n > 0 and curve[n - 1] >= 0.98 * curve[: len(size.weights)].max()
        rec = size.record({"best_rows": 20})
        assert rec["best_rows"] == n and rec["clusters"] == {"best_rows": 20} and "knn pass" in rec["reason"]
    # nothing target-like among the rows read: an empty selection, and the record says so
    empty = RowF1(lambda r: np.zeros(len(r)), 5.0)
    assert refine(chosen, m, lambda i: x[i], t, 20, how="knn", over=2.0, size=empty).shape[0] == 0
    assert empty.record({})["reason"].startswith("auto: nothing selected")


def test_refine_gio_sized_feeds_the_rule_pick_by_pick_and_stops_gio() -> None:
    """``how="gio"`` with ``size``: GIO is asked for every read row, each distinct pick's posterior goes to the rule
    as it is made, GIO stops once the rule is done, and the kept prefix of its order is the selection; a GIO run
    that ends first is continued by the remaining rows nearest the target."""
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1.5, size=(450, 3)).astype(np.float32)
    labels = np.repeat(np.arange(3), 150).astype(np.int32)
    m = ClusterMembers(labels, 3)
    t = rng.normal(0, 0.3, size=(20, 3)).astype(np.float32)
    rows = np.sort(m.rows_of([1, 0]))  # over 2 x 100 rows: clusters 1 and 0
    asked: list[int] = []
    calls = [0]

    def fill(answer: np.ndarray) -> Callable[..., np.ndarray]:
        def run(r: np.ndarray, n: int, stop: Callable[[int], bool] | None = None) -> np.ndarray:
            asked.append(n)
            assert stop is not None
            for i, p in enumerate(answer):
                calls[0] += 1
                if stop(int(p)):
                    return answer[: i + 1]
            return answer
        return run

    answer = np.argsort(np.abs(x[rows][:, 0]), kind="stable")  # a GIO stand-in: rows nearest x = 0 first
    size = RowF1(_posterior, 60.0)
    got = refine([1, 0, 2], m, lambda i: x[i], t, 100, how="gio", over=2.0, fill=fill(answer), size=size)
    n = _kept(_posterior(x[rows[answer]]), 60.0)
    assert asked == [300] and size.done and calls[0] == len(size.weights) < 300  # stopped before the end
    assert 0 < n < len(size.weights)
    np.testing.assert_array_equal(got, rows[answer[:n]])
    # GIO ends after 5 picks: the rule goes on along the other rows, nearest the target first
    size = RowF1(_posterior, 60.0)
    got = refine([1, 0, 2], m, lambda i: x[i], t, 100, how="gio", over=2.0, fill=fill(answer[:5]), size=size)
    left = np.setdiff1d(np.arange(300), answer[:5])
    sc = score_rows(left, lambda p: x[rows][p], t, k=5)
    order = np.concatenate([answer[:5], left[np.lexsort((left, sc))]])
    n = _kept(_posterior(x[rows[order]]), 60.0)
    assert n > 5 and got.shape[0] == n
    np.testing.assert_array_equal(got, rows[order[:n]])
    # no chosen cluster: nothing to read, nothing selected (and GIO is not run)
    for how in ("gio", "knn"):
        none = refine([], m, lambda i: x[i], t, 10, how=how, fill=fill(answer), size=RowF1(_posterior, 5.0))
        assert none.shape == (0,)


def test_gio_pass_equals_gio_on_the_clusters_rows() -> None:
    """Oracle: the library's ``gio`` pass is GIO (data_size fill, the run's parameters) on the sorted rows of the
    chosen clusters covering ``over`` x the size; exactly the size, distinct rows."""
    from gioselect.job.select import gio_fill
    from gioselect.optimize import GIOParams
    from gioselect.search import make_search

    rng = np.random.default_rng(11)
    x = rng.normal(size=(600, 8)).astype(np.float32)
    labels = rng.integers(0, 12, size=600).astype(np.int32)
    m = ClusterMembers(labels, 12)
    t = (rng.normal(size=(80, 8)) + 0.7).astype(np.float32)
    params = GIOParams()
    chosen = [4, 9, 4, 1, 7, 0]
    got = quantized_rows(np.array(chosen), m, lambda i: x[i], t, x[:12], 70, how="gio", over=2.0, seed=0,
                         fill=gio_fill(params, t, 3))
    sizes = np.diff(m.starts)
    take = cover_clusters(chosen, sizes, 140)
    rows = np.sort(m.rows_of(take))
    s = make_search(x[rows], t, GIOParams(stop_criterion="data_size", max_iter=None), seed=3, budget=70.0)
    for _ in s.run():
        pass
    picks = np.asarray(s.state.selected, dtype=np.int64)
    _, first = np.unique(picks, return_index=True)
    want = rows[picks[np.sort(first)]][:70]
    assert want.shape == (70,)
    np.testing.assert_array_equal(got, want)
    assert np.unique(got).shape[0] == 70 and set(got.tolist()) <= set(rows.tolist())
    # stop=: called with each new distinct pick in GIO's order; GIO ends after the first that returns True
    fill = gio_fill(params, t, 3)
    full = fill(x[rows], rows.shape[0])
    fed: list[int] = []
    short = fill(x[rows], rows.shape[0], lambda p: fed.append(p) is None and len(fed) == 25)
    assert fed == full[:25].tolist() and short.tolist() == full[:25].tolist()


def _whole_oracle(chosen: list[int], m: ClusterMembers, x: np.ndarray, t: np.ndarray, n_rows: int, over: float,
                  whole: float, k: int) -> np.ndarray:
    """What ``refine(..., whole=w)`` must return, written out: distinct chosen clusters up to ``over * n_rows``
    rows; the longest prefix of them within ``w * n_rows`` rows kept whole; the rest ranked by brute force."""
    order = list(dict.fromkeys(chosen))
    sizes = [m.size(c) for c in order]
    cum = np.cumsum(sizes) if sizes else np.zeros(0)
    need = int(np.ceil(over * n_rows))
    take = order[: int(np.searchsorted(cum, need, side="left")) + 1] if need > 0 else []
    if sum(m.size(c) for c in take) <= n_rows:
        return m.rows_of(take)[:n_rows]
    tc = np.cumsum([m.size(c) for c in take])
    n_core = int(np.searchsorted(tc, whole * n_rows, side="right"))
    core = m.rows_of(take[:n_core])
    rest = np.sort(m.rows_of(take[n_core:]))
    kk = min(k, t.shape[0])
    score = np.sort(cdist(x[rest].astype(np.float64), t.astype(np.float64)), axis=1)[:, :kk].mean(axis=1)
    best = rest[np.lexsort((rest, score))][: n_rows - core.shape[0]]
    return np.concatenate([core, best])


def test_refine_whole_keeps_the_first_clusters_and_ranks_only_the_boundary() -> None:
    """``whole``: oracle equivalence on random memberships with empty and one-row clusters, every budget."""
    rng = np.random.default_rng(7)
    for trial in range(40):
        n_clusters = int(rng.integers(1, 9))
        labels = rng.integers(0, n_clusters, size=int(rng.integers(1, 60))).astype(np.int32)
        labels[: min(2, labels.shape[0])] = n_clusters  # cluster n_clusters: at most two rows
        if trial % 3 == 0:
            labels[0] = n_clusters + 1  # a one-row cluster
        m = ClusterMembers(labels, n_clusters + 3)  # cluster n_clusters + 2 is empty
        x = rng.normal(size=(labels.shape[0], 3)).astype(np.float32)
        t = rng.normal(size=(int(rng.integers(1, 8)), 3)).astype(np.float32)
        chosen = rng.integers(0, n_clusters + 3, size=int(rng.integers(0, 12))).tolist()
        n_rows = int(rng.integers(0, labels.shape[0] + 1))
        for whole in (0.0, 0.3, 0.5, 1.0):
            got = refine(chosen, m, x.__getitem__, t, n_rows, k=2, over=1.5, whole=whole)
            want = _whole_oracle(chosen, m, x, t, n_rows, 1.5, whole, 2)
            np.testing.assert_array_equal(got, want, err_msg=f"trial {trial}, whole {whole}")
            assert np.unique(got).shape == got.shape and got.shape[0] <= n_rows
    # the kept clusters are not read: only the boundary's rows reach read_rows
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    m = ClusterMembers(np.repeat(np.arange(4), 5).astype(np.int32), 4)
    seen: list[int] = []

    def read(i: np.ndarray) -> np.ndarray:
        seen.extend(i.tolist())
        return x[i]

    got = refine([0, 1, 2, 3], m, read, x[:3], 10, k=1, over=2.0, whole=0.5)
    assert got[:5].tolist() == [0, 1, 2, 3, 4] and sorted(seen) == list(range(5, 20))
    with pytest.raises(InvalidParameterError, match="refine_whole"):
        refine([0, 1, 2, 3], m, read, x[:3], 10, whole=1.5)


def test_quantized_rows_budget_is_exact_and_explode_without_budget() -> None:
    x = blobs(400, 4, 4, seed=5)
    q = quantize_array(x, 10, seed=0)
    m = ClusterMembers(q.labels, q.centroids.shape[0])
    t = x[:30]
    for budget in (1, 37, 250, 400):
        ids = quantized_rows(np.array([0]), m, lambda i: x[i], t, q.centroids, budget)
        assert ids.shape == (budget,) and np.unique(ids).shape == (budget,)
    # no row count (GIO's stopping rule set the size): the chosen clusters whole, as explode
    np.testing.assert_array_equal(quantized_rows(np.array([2, 5, 2]), m, lambda i: x[i], t, q.centroids, None),
                                  explode([2, 5], m))
    np.testing.assert_array_equal(quantized_rows(np.array([2, 5]), m, lambda i: x[i], t, q.centroids, 30,
                                                 how="none", limit=30, seed=4), explode([2, 5], m, limit=30, seed=4))


def test_select_quantized_exact_budget_and_row_precision() -> None:
    # two well separated groups; the target is drawn like group A; K-means clusters mix nothing across groups
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, size=(600, 6)) + 8
    b = rng.normal(0, 1, size=(900, 6))
    pool = np.concatenate([a, b]).astype(np.float32)
    target = (rng.normal(0, 1, size=(80, 6)) + 8).astype(np.float32)
    res = select_quantized(pool, target, clusters=40, budget=300, seed=1, random_init_pct=0.1, max_iter=None,
                           stop_criterion="data_size", max_data_size=1.0)
    assert res.ids.shape == (300,) and np.unique(res.ids).shape == (300,)
    assert (res.ids < 600).mean() == 1.0 and res.candidates == "medoid" and res.clusters_rule.startswith("explicit")


# -- K for the user ---------------------------------------------------------------------------------------------
def test_auto_clusters_rule() -> None:
    assert auto_clusters(AUTO_MAX_DIRECT_ROWS, 500)[:2] == (0, 0)
    assert auto_clusters(AUTO_MAX_DIRECT_ROWS + 1, 500)[:2] == (DEFAULT_CLUSTERS, 0)
    assert auto_clusters(10**6, 20_000)[:2] == (DEFAULT_CLUSTERS, DEFAULT_CLUSTERS)
    p = plan_clusters("auto", None, 5000, 300)
    assert (p.pool_clusters, p.target_clusters) == (0, 0) and "no quantisation" in p.rule


def test_explicit_clusters_win_and_k_at_least_rows_warns(caplog: pytest.LogCaptureFixture) -> None:
    assert plan_clusters(64, None, 5000, 300).pool_clusters == 64
    assert plan_clusters(64, None, 5000, 30).target_clusters == 0  # the target is not larger than K
    assert plan_clusters(64, 8, 5000, 30).target_clusters == 8
    with caplog.at_level("WARNING", logger="gioselect.quantize"):
        p = plan_clusters(5000, None, 5000, 300)
    assert p.pool_clusters == 0 and "no quantisation" in caplog.text
    with pytest.raises(InvalidParameterError, match="clusters"):
        plan_clusters("many", None, 10, 10)


def test_cli_default_states_the_k_decision_and_budget_is_exact(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from gioselect.cli import main

    x = blobs(900, 6, 5, seed=7)
    np.save(tmp_path / "pool.npy", x)
    # one blob's rows (a target like all five would make the whole pool target-like: the F1 rule keeps it all)
    np.save(tmp_path / "target.npy", x[np.argsort(((x - x[0]) ** 2).sum(axis=1))[:60]] + 0.01)
    base = ["select", "--pool", str(tmp_path / "pool.npy"), "--target", str(tmp_path / "target.npy"), "--no-report"]
    assert main([*base, "--out", str(tmp_path / "auto")]) == 0
    out = capsys.readouterr().out
    assert "quantisation: none (auto: pool of 900 rows <= 100000: no quantisation" in out
    m = json.loads((tmp_path / "auto" / "manifest.json").read_text())
    assert m["clusters_decision"]["pool_clusters"] == 0 and m["quantization"] is None
    assert main([*base, "--out", str(tmp_path / "q"), "--clusters", "30", "--budget", "123", "-q",
                 "--refine", "knn"]) == 0
    m = json.loads((tmp_path / "q" / "manifest.json").read_text())
    ids = np.load(tmp_path / "q" / "selected_ids.npy")
    assert ids.shape == (123,) and np.unique(ids).shape == (123,) and m["counts"]["selected_rows"] == 123
    assert m["quantization"]["candidates"] == "medoid" and m["quantization"]["rule"] == "explicit: 30 pool clusters"
    assert main([*base, "--out", str(tmp_path / "bad"), "--clusters", "many"]) == 2
    assert m["parameters"]["refine_whole"] == REFINE_WHOLE
    # --refine-whole: the same rows as the library's pass on the job's own clusters (read from its picks.csv)
    assert main([*base, "--out", str(tmp_path / "w0"), "--clusters", "30", "--budget", "123", "-q",
                 "--refine", "knn", "--refine-whole", "0"]) == 0
    m0 = json.loads((tmp_path / "w0" / "manifest.json").read_text())
    assert m0["parameters"]["refine_whole"] == 0.0 and m0["counts"]["selected_rows"] == 123
    ids0 = np.load(tmp_path / "w0" / "selected_ids.npy")
    assert np.unique(ids0).shape == (123,) and not np.array_equal(np.sort(ids0), np.sort(ids))
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "bad2"), "--clusters", "30", "--refine-whole", "1.5"]) == 2
    assert "refine_whole" in capsys.readouterr().err
    # --clusters 0 has no clusters to refine: a quantisation option with it is refused, not silently ignored
    assert main([*base, "--out", str(tmp_path / "bad3"), "--clusters", "0", "--refine", "knn",
                 "--candidates", "centroid"]) == 2
    err = capsys.readouterr().err
    assert "--clusters 0" in err and "--candidates, --refine would do nothing" in err
    assert not (tmp_path / "bad3").exists()
    assert main([*base, "--out", str(tmp_path / "ok0"), "--clusters", "0", "--target-clusters", "20",
                 "--kmeans-iter", "3", "--max-iter", "3"]) in (0, 3)  # the target's K-means takes --kmeans-iter
    assert "--clusters 0" not in capsys.readouterr().err


def test_share_order_is_round_robin_over_the_target_and_streamed() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    t = rng.normal(size=(7, 3)).astype(np.float32)
    ids = np.arange(10, 200, dtype=np.int64)
    # oracle: each target point's full ranking, round-major, first come first served
    rank = np.argsort(cdist(t, x[ids]), axis=1, kind="stable")
    flat = ids[rank.T.reshape(-1)]
    _, first = np.unique(flat, return_index=True)
    want = flat[np.sort(first)][:40]
    for block in (16, 1000):
        got = share_order(ids, lambda i: x[i], t, 40, block_rows=block)
        np.testing.assert_array_equal(got, want)
    assert share_order(ids, lambda i: x[i], t, 500).shape == (190,)  # all rows, when fewer than asked
    assert share_order(ids[:0], lambda i: x[i], t, 5).shape == (0,)


# -- the F1 rule's count per cluster (issue 13 item 1) ----------------------------------------------------------
def test_cluster_target_like_closed_form() -> None:
    # cluster 0: sampled posteriors 0.2, 0.4 -> mean 0.3 x 10 rows; cluster 1: one row at 1.0 x 4 rows;
    # cluster 2: no sampled row -> its candidate's posterior 0.5 x 6 rows
    got = cluster_target_like(np.array([0.2, 1.0, 0.4]), np.array([0, 1, 0]), np.array([0.9, 0.1, 0.5]),
                              np.array([10, 4, 6]))
    np.testing.assert_allclose(got, [3.0, 4.0, 3.0])
    assert got.dtype == np.float64
    with pytest.raises(ValueError, match="2 posteriors for 3 sampled rows"):
        cluster_target_like(np.array([0.2, 0.4]), np.array([0, 1, 0]), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="outside"):
        cluster_target_like(np.array([0.2]), np.array([3]), np.zeros(3), np.ones(3))


def test_f1_rule_counts_each_cluster_by_its_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Quantised F1 rule: with a sample that covers every row, a cluster counts the sum of its rows' posteriors
    (oracle: a bincount over the run's own labels), and the kept prefix's target-like count is their sum."""
    import gioselect.quantize as q

    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, size=(300, 5)) + 6
    b = rng.normal(0, 1, size=(600, 5))
    pool = np.concatenate([a, b]).astype(np.float32)
    target = (rng.normal(0, 1, size=(60, 5)) + 6).astype(np.float32)
    seen: dict[str, np.ndarray] = {}
    real = q.cluster_target_like

    def spy(post: np.ndarray, clusters: np.ndarray, cand: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        seen.update(post=post, clusters=clusters, sizes=np.asarray(sizes), out=real(post, clusters, cand, sizes))
        return seen["out"]

    monkeypatch.setattr(q, "F1_ROWS_PER_CLUSTER", 1000)  # 1000 x K > the pool: every row sampled
    monkeypatch.setattr(q, "cluster_target_like", spy)
    res = select_quantized(pool, target, clusters=30, seed=2, stop_criterion="auto")
    assert res.labels is not None and res.result.stop_reason == "auto-f1"
    np.testing.assert_array_equal(seen["clusters"], res.labels)  # every row, in row order
    oracle = np.bincount(res.labels, weights=seen["post"], minlength=seen["sizes"].shape[0])
    np.testing.assert_allclose(seen["out"], oracle, rtol=1e-12, atol=1e-12)
    f1 = res.result.size_estimate["f1"]
    fc = f1["clusters"]  # the cluster-level rule, which set how far GIO went
    order = distinct_in_order(res.result.selected_indices)
    kept = order[: fc["best_picks"]]
    assert fc["best_rows"] == int(seen["sizes"][kept].sum()) > 0
    assert fc["best_target_like"] == pytest.approx(float(oracle[kept].sum()), rel=1e-9)
    # the row-level pass (gio at this size, over 2) read the clusters picked after the kept prefix too: GIO went
    # on until its picks held twice the size, and no further
    assert "auto: gio, over 2" in res.refine_rule
    held = np.cumsum(seen["sizes"][order])
    assert held[-1] >= 2 * fc["best_rows"] > held[-2]
    assert set(np.unique(res.labels[res.ids])) <= set(order.tolist())
    # ... and the size is the F1 rule's along the pass's rows: about group A's 300 rows, not the kept clusters'
    assert f1["rule"] == "f1_along_row_pass" and f1["best_rows"] == res.ids.shape[0] == len(np.unique(res.ids))
    assert 270 <= res.ids.shape[0] <= 340 and (res.ids < 300).mean() > 0.9


def test_f1_rule_without_the_sample_counts_the_candidate(monkeypatch: pytest.MonkeyPatch) -> None:
    import gioselect.quantize as q

    called: list[int] = []
    monkeypatch.setattr(q, "F1_ROWS_PER_CLUSTER", 0)
    monkeypatch.setattr(q, "cluster_target_like", lambda *a: called.append(1))
    x = blobs(600, 5, 3, seed=1)
    res = select_quantized(x, x[:40], clusters=12, seed=0, stop_criterion="auto")
    assert not called and res.result.stop_reason == "auto-f1"


def test_f1_rule_sample_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    import gioselect.quantize as q

    sampled: list[int] = []
    real = q.cluster_target_like

    def spy(post: np.ndarray, clusters: np.ndarray, cand: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        sampled.append(int(post.shape[0]))
        return real(post, clusters, cand, sizes)

    monkeypatch.setattr(q, "F1_MAX_SAMPLE_ROWS", 50)
    monkeypatch.setattr(q, "cluster_target_like", spy)
    x = blobs(600, 5, 3, seed=1)
    select_quantized(x, x[:40], clusters=12, seed=0, stop_criterion="auto")
    assert sampled == [50]  # 16 x 12 = 192 rows asked, capped at 50
