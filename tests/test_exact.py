"""Greedy selection on the exact k-NN KL estimate (gioselect.exact.ExactGreedySearch).

Oracles: a brute-force evaluation of every candidate written here from the estimator's formula (sorting full
distance matrices), checked itself against gioselect.kl_knn; lazy vs exhaustive evaluation; an uninterrupted
run vs a checkpointed and resumed one.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from scipy.special import digamma

from gioselect import kl_knn
from gioselect.errors import InvalidInputError, InvalidParameterError
from gioselect.exact import ExactGreedySearch, balanced_rank
from gioselect.objectives.exact_kl import ExactKL
from gioselect.optimize import EVENT_ACCEPTED, EVENT_RESET, EVENT_STOP, GIOParams
from gioselect.selector import result_from_search

MIN_DIST = 1e-5


def _params(**kw: object) -> GIOParams:
    # GIOParams does not validate on construction, so objective="exact" can be named before it is wired in.
    kw.setdefault("objective", "exact")
    # The loop's criteria are tested as grad-info-opt defines them: the reference's stop unless one is given.
    kw.setdefault("stop_criterion", "increase")
    return GIOParams(**kw)  # type: ignore[arg-type]


def _search(pool: np.ndarray, target: np.ndarray, seed: int = 0, **kw: object) -> ExactGreedySearch:
    opts = {k: kw.pop(k) for k in ("init", "weights", "budget", "budget_exact", "rank_schedule", "lazy") if k in kw}
    return ExactGreedySearch(pool, target, _params(**kw), np.random.default_rng(seed), **opts)  # type: ignore[arg-type]


def _run(search: ExactGreedySearch) -> ExactGreedySearch:
    for _ in search.run():
        pass
    return search


# -- a brute-force oracle, straight from the formulas ---------------------------------------------------------
def _dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.sqrt(((a[:, None, :].astype(np.float64) - b[None, :, :].astype(np.float64)) ** 2).sum(-1))
    return np.maximum(d, MIN_DIST)


def _rank(k: int, m_eff: int, n: int, schedule: str) -> int:
    if schedule == "fixed":
        return max(1, min(k, m_eff))
    if schedule == "one":
        return 1
    return max(1, min(k, m_eff, math.floor(k * m_eff / (n - 1) + 0.5)))


def brute_value(x: np.ndarray, w: np.ndarray, k: int, rank: int, off: int = 0, sym: bool = False) -> float:
    """F_rank(W) (+ R_rank(W)) from full sorted distance matrices."""
    n, d = x.shape
    m = w.shape[0]
    dxx = _dist(x, x)
    np.fill_diagonal(dxx, np.inf)
    rho = np.sort(dxx, axis=1)[:, k - 1]
    nu = np.sort(_dist(x, w), axis=1)[:, rank - 1 + off]
    f = d * np.mean(np.log(nu) - np.log(rho)) + digamma(k) - digamma(rank) + math.log((m - off) / (n - 1))
    if not sym or m - 1 < rank:
        return float(f)
    dww = _dist(w, w)
    np.fill_diagonal(dww, np.inf)
    rw = np.sort(dww, axis=1)[:, rank - 1]
    nux = np.sort(_dist(w, x), axis=1)[:, k - 1]
    r = d * np.mean(np.log(nux) - np.log(rw)) + digamma(rank) - digamma(k) + math.log(n / (m - 1))
    return float(f + r)


def brute_pick(pool: np.ndarray, x: np.ndarray, w: np.ndarray, used: np.ndarray, k: int, schedule: str,
               sym: bool, off: int = 0) -> tuple[int, float]:
    m_after = w.shape[0] + 1
    off_ = off if m_after >= 2 else 0
    rank = _rank(k, m_after - off_, x.shape[0], schedule)
    vals = np.full(pool.shape[0], np.inf)
    for c in np.flatnonzero(~used):
        vals[c] = brute_value(x, np.vstack([w, pool[c : c + 1]]), k, rank, off_, sym)
    best = vals.min()
    c = int(np.flatnonzero(vals <= best + 1e-9 * (1 + abs(best)))[0])
    return c, float(vals[c])


@pytest.fixture
def tiny() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    pool = rng.normal(size=(24, 3)).astype(np.float32)
    target = rng.normal(0.3, 1.0, size=(14, 3))
    return {"pool": pool, "target": target}


@pytest.fixture
def mix4() -> dict[str, np.ndarray]:
    """4-D: pool of 400 from 5 components, target of 120 from the first three, 60/30/10."""
    rng = np.random.default_rng(5)
    centers = rng.normal(0.0, 5.0, size=(5, 4))
    pc = rng.choice(5, size=400)
    pool = (centers[pc] + rng.normal(size=(400, 4))).astype(np.float32)
    tc = rng.choice(3, size=120, p=[0.6, 0.3, 0.1])
    target = centers[tc] + rng.normal(size=(120, 4))
    return {"pool": pool, "pool_comp": pc, "target": target, "target_comp": tc}


# -- the oracle itself ----------------------------------------------------------------------------------------
def test_brute_value_at_rank_k_is_kl_knn(tiny: dict[str, np.ndarray]) -> None:
    w = tiny["pool"][:9]
    assert brute_value(tiny["target"], w, 3, 3) == pytest.approx(kl_knn(tiny["target"], w, 3), rel=1e-9)


def test_objective_value_matches_brute_force_and_kl_knn(tiny: dict[str, np.ndarray]) -> None:
    x, w = tiny["target"], tiny["pool"][:10].astype(np.float64)
    for sym in (False, True):
        o = ExactKL(x, 3, offset=0, symmetric=sym, schedule="balanced")
        o.reset(w, np.log(np.sort(_dist(w, x), axis=1)[:, 2]) if sym else None)
        for rank in (1, 2, 3):
            assert o.value(rank, 0) == pytest.approx(brute_value(x, w, 3, rank, 0, sym), rel=1e-9, abs=1e-9)
    o = ExactKL(x, 3, offset=0, symmetric=False, schedule="fixed")
    o.reset(w, None)
    assert o.value(3, 0) == pytest.approx(kl_knn(x, w, 3), rel=1e-9)


# -- picks equal brute force ----------------------------------------------------------------------------------
@pytest.mark.parametrize("objective", ["exact", "exact-sym"])
@pytest.mark.parametrize("schedule", ["balanced", "fixed", "one"])
@pytest.mark.parametrize("lazy", [True, False])
def test_every_pick_is_the_brute_force_argmin(tiny: dict[str, np.ndarray], objective: str, schedule: str,
                                              lazy: bool) -> None:
    pool, x = tiny["pool"], tiny["target"]
    s = _search(pool, x, k=3, max_iter=12, stop_criterion="data_size", objective=objective,
                rank_schedule=schedule, lazy=lazy)
    used = np.zeros(pool.shape[0], dtype=bool)
    w = np.zeros((0, 3))
    while (ev := s.step()) is not None and ev.accepted:
        c, val = brute_pick(pool, x, w, used, 3, schedule, objective == "exact-sym")
        assert ev.candidate == c
        assert ev.kl == pytest.approx(val, rel=1e-7, abs=1e-9)
        used[c] = True
        w = np.vstack([w, pool[c : c + 1].astype(np.float64)])
    assert len(s.state.selected) == 12


def test_picks_with_discard_nearest_equal_brute_force(tiny: dict[str, np.ndarray]) -> None:
    pool, x = tiny["pool"], tiny["target"]
    s = _search(pool, x, k=2, max_iter=8, stop_criterion="data_size", discard_nearest_for_xy=True)
    used = np.zeros(pool.shape[0], dtype=bool)
    w = np.zeros((0, 3))
    for ev in s.run():
        if not ev.accepted:
            break
        c, val = brute_pick(pool, x, w, used, 2, "one", False, off=1)
        assert (ev.candidate, ev.kl) == (c, pytest.approx(val, rel=1e-7, abs=1e-9))
        used[c] = True
        w = np.vstack([w, pool[c : c + 1].astype(np.float64)])


def test_first_pick_minimises_mean_log_distance(tiny: dict[str, np.ndarray]) -> None:
    pool, x = tiny["pool"], tiny["target"]
    ev = _search(pool, x, k=3).step()
    assert ev is not None and ev.accepted
    assert ev.candidate == int(np.argmin(np.log(_dist(pool, x)).mean(axis=1)))


# -- lazy evaluation -------------------------------------------------------------------------------------------
def test_gain_is_not_monotone_but_the_bound_is() -> None:
    """Why plain lazy greedy is wrong here: at rank 2 a candidate's gain can grow as the set grows."""
    x = np.array([[0.0], [20.0], [40.0], [60.0]])
    o = ExactKL(x, 2, offset=0, symmetric=False, schedule="fixed")
    o.reset(np.array([[10.0], [30.0]]), None)  # nu_2(x_0) = 30
    c = np.array([[1.0]])
    v0, u0, _ = o.evaluate(c, None, 2, 0)
    base0 = o.value(2, 0)
    o.add(np.array([0.5]), 0.0)  # now x_0 has a near neighbour: c completes its 2-nearest pair
    v1, u1, _ = o.evaluate(c, None, 2, 0)
    base1 = o.value(2, 0)
    # gain in the forward sum, undoing the size term: gain = base - value + log((m+1)/m)
    g0 = base0 - v0[0] + math.log(3 / 2)
    g1 = base1 - v1[0] + math.log(4 / 3)
    assert g1 > g0 + 1e-6
    scale = x.shape[1] / x.shape[0]
    assert scale * u0[0] >= g0 - 1e-12 and scale * u1[0] >= g1 - 1e-12
    assert u1[0] <= u0[0]


def test_bounds_bound_every_later_gain(mix4: dict[str, np.ndarray]) -> None:
    """u(c; W) >= gain(c; W') and u(c; W') <= u(c; W) for W ⊂ W' (same rank), on random sets."""
    pool, x = mix4["pool"].astype(np.float64), mix4["target"]
    rng = np.random.default_rng(0)
    for rank in (1, 2, 4):
        order = rng.permutation(pool.shape[0])
        o = ExactKL(x, 5, offset=0, symmetric=False, schedule="fixed")
        o.reset(pool[order[:10]], None)
        cand = pool[order[200:260]]
        _, u0, _ = o.evaluate(cand, None, rank, 0)
        for j in order[10:60]:
            o.add(pool[j], 0.0)
        base = o.value(rank, 0)
        v1, u1, _ = o.evaluate(cand, None, rank, 0)
        gain1 = (x.shape[0] / x.shape[1]) * (base - v1 + math.log((o.m + 1) / o.m))
        assert (u1 <= u0 + 1e-9).all()
        assert (gain1 <= u0 + 1e-7).all()
        assert (gain1 >= -1e-7).all()


@pytest.mark.parametrize(("objective", "schedule"), [("exact", "one"), ("exact", "balanced"),
                                                  ("exact-sym", "one"), ("exact-sym", "balanced")])
def test_lazy_and_exhaustive_make_the_same_selection(mix4: dict[str, np.ndarray], objective: str,
                                                     schedule: str) -> None:
    runs = [_run(_search(mix4["pool"], mix4["target"], k=5, max_iter=70, stop_criterion="data_size",
                         objective=objective, rank_schedule=schedule, lazy=lazy)) for lazy in (True, False)]
    assert runs[0].state.selected == runs[1].state.selected
    np.testing.assert_allclose(runs[0].state.kl_trace, runs[1].state.kl_trace, rtol=1e-9, atol=1e-9)
    assert runs[0].state.evaluations < runs[1].state.evaluations  # the bounds prune evaluations
    if schedule == "balanced":
        assert len(set(runs[0].state.rank_trace)) > 1  # the bounds were dropped and rebuilt at a rank change


def test_float32_and_float64_candidates_give_the_same_picks(mix4: dict[str, np.ndarray]) -> None:
    a = _run(_search(mix4["pool"], mix4["target"], max_iter=40, stop_criterion="data_size"))
    b = _run(_search(mix4["pool"].astype(np.float64), mix4["target"], max_iter=40, stop_criterion="data_size"))
    assert a.state.selected == b.state.selected


# -- the trace and the stop ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("objective", "schedule"), [("exact", "one"), ("exact", "balanced"), ("exact-sym", "one")])
def test_trace_non_increasing_until_the_stop(mix4: dict[str, np.ndarray], objective: str, schedule: str) -> None:
    s = _run(_search(mix4["pool"], mix4["target"], k=5, max_iter=None, objective=objective,
                     rank_schedule=schedule))
    st = s.state
    assert st.stop_reason == "increase"
    k = 5
    tr, prev, ranks = np.array(st.kl_trace), np.array(st.prev_trace), np.array(st.rank_trace)
    # after the warm-up, every accepted pick lowered the estimate at its rank ...
    assert (tr[k:] <= prev[k:]).all()
    # ... so the trace never rises while the rank stays the same
    same = ranks[k + 1 :] == ranks[k:-1]
    assert (np.diff(tr[k:])[same] <= 0).all()
    # and the run stopped on the first pick that would have raised it
    cand, kl, code = st.history[-1]
    assert code == EVENT_STOP and cand >= 0
    assert kl > s.obj.value(*s.obj.rank_key(s.obj.m + 1))


def test_no_stop_during_the_warm_up(tiny: dict[str, np.ndarray]) -> None:
    s = _run(_search(tiny["pool"], tiny["target"], k=4, max_iter=None, rank_schedule="fixed"))
    assert len(s.state.selected) >= 4


def test_2d_fixed_rank_stalls_and_rank_one_does_not() -> None:
    """Pool and target from one 2-D Gaussian: rank k stops right after its first k picks, which hug the mode."""
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(300, 2)).astype(np.float32)
    target = rng.normal(size=(300, 2))
    sel_t, hold = target[:150], target[150:]

    def coverage(sel: np.ndarray) -> float:  # share of held-out points with a pick inside their 5-NN radius
        dh = _dist(hold, hold)
        np.fill_diagonal(dh, np.inf)
        return float(np.mean(_dist(hold, sel).min(axis=1) <= np.sort(dh, axis=1)[:, 4]))

    fixed = _run(_search(pool, sel_t, k=5, max_iter=None, rank_schedule="fixed"))
    assert fixed.state.stop_reason == "increase"
    assert len(fixed.state.selected) <= 6
    assert coverage(pool[fixed.state.selected]) < 0.2
    for schedule in ("one", "balanced"):
        s = _run(_search(pool, sel_t, k=5, max_iter=None, rank_schedule=schedule))
        assert s.state.stop_reason == "increase"
        assert len(s.state.selected) >= 40
        assert coverage(pool[s.state.selected]) > 0.7
        assert (max(s.state.rank_trace) >= 2) == (schedule == "balanced")  # the balanced rank ramps up


def test_negative_case_selects_almost_nothing() -> None:
    rng = np.random.default_rng(1)
    pool = (rng.normal(size=(200, 3)) + 300.0).astype(np.float32)
    target = rng.normal(size=(80, 3))
    s = _run(_search(pool, target, k=5, max_iter=None))
    assert s.state.stop_reason == "increase"
    assert len(s.state.selected) <= 5  # only the warm-up


def test_mixture_picks_follow_the_target_components_and_proportions(mix4: dict[str, np.ndarray]) -> None:
    s = _run(_search(mix4["pool"], mix4["target"], k=5, max_iter=60, stop_criterion="data_size"))
    comp = mix4["pool_comp"][s.state.selected]
    assert (comp < 3).all()
    share = np.bincount(comp, minlength=3)[:3] / comp.size
    assert 0.5 * np.abs(share - np.array([0.6, 0.3, 0.1])).sum() < 0.15


# -- limits, budget, start sets, resets ------------------------------------------------------------------------
def test_max_iter_and_pool_exhausted(tiny: dict[str, np.ndarray]) -> None:
    s = _run(_search(tiny["pool"], tiny["target"], k=3, max_iter=7, stop_criterion="data_size"))
    assert (len(s.state.selected), s.state.stop_reason) == (7, "max_iter")
    s = _run(_search(tiny["pool"], tiny["target"], k=3, max_iter=None, stop_criterion="data_size"))
    assert s.state.stop_reason == "pool_exhausted"
    assert sorted(s.state.selected) == list(range(tiny["pool"].shape[0]))


def test_budget_with_weights(mix4: dict[str, np.ndarray]) -> None:
    w = np.random.default_rng(2).integers(1, 6, size=mix4["pool"].shape[0]).astype(float)
    s = _run(_search(mix4["pool"], mix4["target"], max_iter=None, stop_criterion="data_size", weights=w,
                     budget=40.0))
    st = s.state
    assert st.stop_reason == "budget"
    assert st.accepted_weight == pytest.approx(w[st.selected].sum()) and st.accepted_weight <= 40.0
    assert st.accepted_weight + w[st.history[-1][0]] > 40.0  # the next pick would have crossed it
    e = _run(_search(mix4["pool"], mix4["target"], max_iter=None, stop_criterion="data_size", weights=w,
                     budget=40.0, budget_exact=True))
    assert e.state.accepted_weight >= 40.0 and e.state.selected[: len(st.selected)] == st.selected


def test_explicit_init_set_is_in_the_estimate(tiny: dict[str, np.ndarray]) -> None:
    pool, x = tiny["pool"], tiny["target"]
    init = np.random.default_rng(3).normal(size=(4, 3))
    s = _search(pool, x, k=3, max_iter=5, stop_criterion="data_size", init=init)
    rank = _rank(3, 4, x.shape[0], "one")
    assert s.initial_kl == pytest.approx(brute_value(x, init, 3, rank), rel=1e-9)
    np.testing.assert_array_equal(s.start_points, init)
    w, used = init.copy(), np.zeros(pool.shape[0], dtype=bool)
    for ev in s.run():
        if not ev.accepted:
            break
        c, val = brute_pick(pool, x, w, used, 3, "one", False)
        assert (ev.candidate, ev.kl) == (c, pytest.approx(val, rel=1e-7))
        used[c] = True
        w = np.vstack([w, pool[c : c + 1].astype(np.float64)])
    assert s.state.selected and all(0 <= i < pool.shape[0] for i in s.state.selected)


def test_random_init_pct_draws_start_rows(mix4: dict[str, np.ndarray]) -> None:
    s = _search(mix4["pool"], mix4["target"], random_init_pct=0.05, max_iter=3)
    assert s.init_indices is not None and s.init_indices.shape == (20,)
    np.testing.assert_array_equal(s.start_points, mix4["pool"][s.init_indices].astype(np.float64))
    assert s.obj.m == 20 and math.isfinite(s.initial_kl)


def test_resets_refill_the_pool(mix4: dict[str, np.ndarray]) -> None:
    s = _run(_search(mix4["pool"], mix4["target"], max_iter=None, resets_allowed=True, max_resets=2,
                     stop_criterion="max_resets"))
    codes = [h[2] for h in s.state.history]
    assert codes.count(EVENT_RESET) == 2 and codes[-1] == EVENT_STOP
    assert s.state.num_resets == 2 and s.state.stop_reason == "max_resets"


def test_result_from_search_accepts_the_exact_search(mix4: dict[str, np.ndarray]) -> None:
    s = _run(_search(mix4["pool"], mix4["target"], max_iter=10, stop_criterion="data_size"))
    res = result_from_search(s)  # type: ignore[arg-type]
    assert res.selected_indices.tolist() == s.state.selected and res.stop_reason == "max_iter"
    assert math.isnan(res.scale_factor) and math.isnan(res.initial_kl)


def test_bad_objective_or_schedule_is_refused(tiny: dict[str, np.ndarray]) -> None:
    with pytest.raises(InvalidParameterError, match="objective"):
        _search(tiny["pool"], tiny["target"], objective="relaxed")
    with pytest.raises(InvalidParameterError, match="rank_schedule"):
        _search(tiny["pool"], tiny["target"], rank_schedule="linear")
    with pytest.raises(InvalidInputError, match="k=5"):
        _search(tiny["pool"], tiny["target"][:5], k=5)


def test_rank_one_gains_only_shrink(mix4: dict[str, np.ndarray]) -> None:
    """At rank 1 the bound is the gain itself (facility location): stale gains bound the later ones."""
    pool, x = mix4["pool"].astype(np.float64), mix4["target"]
    o = ExactKL(x, 5, offset=0, symmetric=False)
    o.reset(pool[:3], None)
    cand = pool[100:160]
    v0, u0, _ = o.evaluate(cand, None, 1, 0)
    g0 = (x.shape[0] / x.shape[1]) * (o.value(1, 0) - v0 + math.log(4 / 3))
    np.testing.assert_allclose(g0, u0, rtol=1e-9, atol=1e-9)
    for j in range(3, 40):
        o.add(pool[j], 0.0)
    _, u1, _ = o.evaluate(cand, None, 1, 0)
    assert (u1 <= u0 + 1e-12).all() and (u1 < u0).any()


def test_balanced_rank_schedule() -> None:
    assert [balanced_rank(5, m, 101) for m in (1, 9, 10, 30, 50, 100, 500)] == [1, 1, 1, 2, 3, 5, 5]
    assert balanced_rank(5, 2, 3) == 2  # never more than the set's size


# -- checkpoint and resume -------------------------------------------------------------------------------------
def _roundtrip(sd: dict[str, object]) -> dict[str, object]:
    """Through the pipeline's on-disk format: npz arrays plus the scalars as JSON."""
    scalars = json.dumps(sd.pop("scalars"))
    buf = io.BytesIO()
    np.savez(buf, scalars=np.array(scalars), **sd)  # type: ignore[arg-type]
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        out: dict[str, object] = {k: z[k] for k in z.files if k != "scalars"}
        out["scalars"] = json.loads(str(z["scalars"]))
    return out


@pytest.mark.parametrize("objective", ["exact", "exact-sym"])
def test_resume_continues_to_the_same_selection(mix4: dict[str, np.ndarray], objective: str) -> None:
    kw = {"k": 5, "max_iter": 45, "objective": objective, "random_init_pct": 0.02, "stop_criterion": "increase"}
    full = _run(_search(mix4["pool"], mix4["target"], seed=4, **kw))
    part = _search(mix4["pool"], mix4["target"], seed=4, **kw)
    for _ in range(17):
        part.step()
    sd = _roundtrip(part.state_dict())
    resumed = _search(mix4["pool"], mix4["target"], seed=4, **kw)
    resumed.load_state_dict(sd)
    assert resumed.state.selected == part.state.selected
    _run(resumed)
    assert resumed.state.selected == full.state.selected
    assert resumed.state.history == full.state.history
    assert resumed.state.stop_reason == full.state.stop_reason
    assert resumed.state.evaluations == full.state.evaluations


def test_checkpoint_of_another_pool_is_refused(mix4: dict[str, np.ndarray]) -> None:
    s = _search(mix4["pool"], mix4["target"], max_iter=3)
    s.step()
    other = _search(mix4["pool"][:100], mix4["target"], max_iter=3)
    with pytest.raises(InvalidInputError, match="pool size"):
        other.load_state_dict(s.state_dict())


def test_events_mirror_the_history(mix4: dict[str, np.ndarray]) -> None:
    s = _search(mix4["pool"], mix4["target"], max_iter=None)
    events = list(s.run())
    assert [e.candidate for e in events if e.accepted] == s.state.selected
    assert events[-1].stop_reason == s.state.stop_reason
    assert [h[2] for h in s.state.history[:-1]] == [EVENT_ACCEPTED] * len(s.state.selected)


def test_runs_on_quantised_candidates_with_a_row_budget(mix4: dict[str, np.ndarray]) -> None:
    """As the pipeline drives it: K-means centroids as candidates, cluster sizes as weights, then explode."""
    from gioselect.quantize import ClusterMembers, explode, quantize_array

    q = quantize_array(mix4["pool"], 40, seed=0)
    s = _run(_search(q.centroids, mix4["target"], max_iter=None, weights=q.sizes.astype(float), budget=120.0,
                     budget_exact=True))
    assert s.state.stop_reason in ("budget", "increase")
    rows = explode(np.asarray(s.state.selected), ClusterMembers(q.labels, q.centroids.shape[0]), limit=120, seed=0)
    assert 0 < rows.shape[0] <= 120
    assert np.isin(mix4["pool_comp"][rows], [0, 1, 2]).mean() > 0.9
