"""The GIO loop through GIOSelector: every option, criteria, limits, determinism, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from gioselect import GIOSelector as _GIOSelector
from gioselect import select as _select
from gioselect.errors import InvalidInputError, InvalidParameterError, InvalidTypeError
from gioselect.optimize import CandidateSet, GIOParams
from gioselect.selector import make_search, result_from_search

# These tests exercise the loop's criteria and options as grad-info-opt defines them, so they run with the
# reference's stop, start set and max_iter; the project's defaults (stop "auto", start "box", no max_iter) are
# tested in tests/test_sizing.py.
LOOP_DEFAULTS = {"stop_criterion": "increase", "start": "unit", "max_iter": 100}


def GIOSelector(**params: object) -> _GIOSelector:
    return _GIOSelector(**{**LOOP_DEFAULTS, **params})  # type: ignore[arg-type]


def select(pool: object, target: object, init: object = None, **params: object) -> object:
    return _select(pool, target, init, **{**LOOP_DEFAULTS, **params})


FAR = {"uniform_low": 0.0, "uniform_high": 8.0, "uniform_start_size": 30, "normalize": False}


def far_pool(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Target near (3, 4), pool near (300, 400): every pick raises the objective."""
    rng = np.random.default_rng(seed)
    target = rng.normal([3, 4], 0.7, size=(40, 2)).astype(np.float32)
    pool = rng.normal([300, 400], 0.7, size=(50, 2)).astype(np.float32)
    return pool, target


def test_picks_come_from_the_target_components(mixture8: dict[str, np.ndarray]) -> None:
    sel = GIOSelector(max_iter=30, seed=0).fit(mixture8["pool"], mixture8["target"])
    comps = mixture8["pool_comp"][sel.selected_indices_]
    assert 10 <= len(sel.selected_indices_) <= 30
    assert np.isin(comps, [0, 1]).all()
    assert set(np.unique(comps)) == {0, 1}  # the default 'jump' reaches both target components


def test_selected_indices_exclude_start_points_and_are_unique(mixture8: dict[str, np.ndarray]) -> None:
    sel = GIOSelector(max_iter=40, seed=1, uniform_start_size=7).fit(mixture8["pool"], mixture8["target"])
    idx = sel.selected_indices_
    assert idx.dtype == np.int64
    assert len(np.unique(idx)) == len(idx)
    assert (idx >= 0).all() and (idx < len(mixture8["pool"])).all()
    assert len(sel.kl_trace_) == len(idx)
    assert sel.result_.start_points.shape == (7, 8)


def test_increase_criterion_trace_never_rises(blobs2d: dict[str, np.ndarray]) -> None:
    sel = GIOSelector(max_iter=None, seed=0, **FAR).fit(blobs2d["pool"], blobs2d["target"])
    trace = np.concatenate([[sel.initial_kl_], sel.kl_trace_])
    assert (np.diff(trace) <= 0).all()
    assert sel.stop_reason_ in ("increase", "pool_exhausted")
    assert sel.n_iter_ >= len(sel.kl_trace_)


def test_max_iter_is_exact_and_the_reference_quirk_adds_one(mixture8: dict[str, np.ndarray]) -> None:
    common = {"stop_criterion": "min_kl", "min_kl": -1e9, "seed": 3}
    a = GIOSelector(max_iter=12, **common).fit(mixture8["pool"], mixture8["target"])
    b = GIOSelector(max_iter=12, reference_max_iter=True, **common).fit(mixture8["pool"], mixture8["target"])
    assert len(a.selected_indices_) == 12 and a.stop_reason_ == "max_iter"
    assert len(b.selected_indices_) == 13 and b.stop_reason_ == "max_iter"
    np.testing.assert_array_equal(a.selected_indices_, b.selected_indices_[:12])
    z = GIOSelector(max_iter=0, **common).fit(mixture8["pool"], mixture8["target"])
    assert len(z.selected_indices_) == 0 and z.n_iter_ == 0


def test_pool_exhaustion_stops_cleanly() -> None:
    rng = np.random.default_rng(0)
    target = rng.normal(size=(30, 3)).astype(np.float32)
    pool = rng.normal(size=(9, 3)).astype(np.float32)
    sel = GIOSelector(max_iter=None, stop_criterion="min_kl", min_kl=-1e9, seed=0).fit(pool, target)
    assert sorted(sel.selected_indices_.tolist()) == list(range(9))
    assert sel.stop_reason_ == "pool_exhausted"


def test_a_degenerate_selection_warns_in_python(mixture8: dict[str, np.ndarray]) -> None:
    import warnings

    from gioselect.errors import SelectionWarning

    pool, target = far_pool()
    # the CLI exits 3 with a warning; fit was silent (its log records go to a NullHandler)
    with pytest.warns(SelectionWarning, match="nothing was selected"):
        GIOSelector(seed=0, **FAR).fit(pool, target)
    with pytest.warns(SelectionWarning, match="the whole pool was selected"):
        GIOSelector(max_iter=None, stop_criterion="min_kl", min_kl=-1e9, seed=0).fit(pool[:9], target)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SelectionWarning)  # asked for: the whole pool by budget, or a real selection
        GIOSelector(budget=9, seed=0).fit(pool[:9], target)
        GIOSelector(budget=9.0, seed=0).fit(pool[:9], target)  # a whole number as a float is a row count
        GIOSelector(max_iter=10, seed=0).fit(mixture8["pool"], mixture8["target"])
    # a budget past the pool returns the pool (documented) but says so: it is not what was asked for
    with pytest.warns(SelectionWarning, match=r"budget=50 is more than the pool's 9 rows"):
        sel = GIOSelector(budget=50, seed=0).fit(pool[:9], target)
    assert sorted(sel.selected_indices_.tolist()) == list(range(9))


def test_a_fractional_budget_without_weights_is_refused(mixture8: dict[str, np.ndarray]) -> None:
    from gioselect.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match=r"budget: expected a whole number of rows, got 2.5"):
        GIOSelector(budget=2.5, seed=0).fit(mixture8["pool"], mixture8["target"])
    # with weights a budget counts weight, which may be fractional
    w = np.full(mixture8["pool"].shape[0], 0.5)
    sel = GIOSelector(budget=2.5, max_iter=None, seed=0).fit(mixture8["pool"], mixture8["target"], weights=w)
    assert len(sel.selected_indices_) >= 1


def test_min_difference_stops_at_once_when_threshold_is_huge(mixture8: dict[str, np.ndarray]) -> None:
    sel = GIOSelector(stop_criterion="min_difference", min_difference=1e9, seed=0).fit(
        mixture8["pool"], mixture8["target"])
    assert len(sel.selected_indices_) == 0 and sel.stop_reason_ == "min_difference" and sel.n_iter_ == 1


def test_min_kl_stops_once_below(mixture8: dict[str, np.ndarray]) -> None:
    full = GIOSelector(stop_criterion="min_kl", min_kl=-1e9, max_iter=40, seed=0).fit(
        mixture8["pool"], mixture8["target"])
    threshold = float(full.kl_trace_[9])  # the value after the 10th pick
    sel = GIOSelector(stop_criterion="min_kl", min_kl=threshold, max_iter=40, seed=0).fit(
        mixture8["pool"], mixture8["target"])
    assert sel.stop_reason_ == "min_kl"
    assert (sel.kl_trace_ >= threshold).all()
    np.testing.assert_array_equal(sel.selected_indices_, full.selected_indices_[: len(sel.selected_indices_)])


def test_data_size_stops_past_the_fraction(mixture8: dict[str, np.ndarray]) -> None:
    sel = GIOSelector(stop_criterion="data_size", max_data_size=0.05, max_iter=None, seed=0).fit(
        mixture8["pool"], mixture8["target"])
    # The reference's rule: stop once more than int(0.05 * 160) = 8 picks are accepted.
    assert sel.stop_reason_ == "data_size" and len(sel.selected_indices_) == 9


def test_sequential_increase_tolerance_works_and_reference_bug_is_opt_in() -> None:
    pool, target = far_pool()
    sel = GIOSelector(stop_criterion="sequential_increase_tolerance", max_sequential_increases=2, max_iter=20,
                      seed=0, **FAR).fit(pool, target)
    assert sel.stop_reason_ == "sequential_increase_tolerance"
    assert len(sel.selected_indices_) == 2  # two tolerated increases, the third stops
    assert np.all(np.diff(np.concatenate([[sel.initial_kl_], sel.kl_trace_])) > 0)
    bug = GIOSelector(stop_criterion="sequential_increase_tolerance", max_sequential_increases=2, max_iter=20,
                      reference_sequential_bug=True, seed=0, **FAR).fit(pool, target)
    assert bug.stop_reason_ == "max_iter" and len(bug.selected_indices_) == 20


def test_resets_refill_the_pool_up_to_max_resets() -> None:
    pool, target = far_pool(1)
    sel = GIOSelector(stop_criterion="max_resets", resets_allowed=True, max_resets=2, seed=0, **FAR).fit(
        pool, target)
    assert sel.stop_reason_ == "max_resets"
    assert sel.n_resets_ == 2 and len(sel.selected_indices_) == 0 and sel.n_iter_ == 3
    with pytest.raises(InvalidParameterError, match="resets_allowed=True"):
        GIOSelector(stop_criterion="max_resets").fit(pool, target)


def test_resets_allow_duplicates(blobs2d: dict[str, np.ndarray]) -> None:
    pool = blobs2d["pool"][:12]
    sel = GIOSelector(stop_criterion="min_kl", min_kl=-1e9, resets_allowed=True, max_iter=30, seed=0).fit(
        pool, blobs2d["target"])
    # min_kl never fires, so resets only follow pool exhaustion? No: resets follow a fired criterion only.
    assert sel.stop_reason_ == "pool_exhausted" and sel.n_resets_ == 0
    inc = GIOSelector(stop_criterion="increase", resets_allowed=True, max_resets=3, max_iter=60, seed=0,
                      **FAR).fit(pool, blobs2d["target"])
    assert inc.n_resets_ == 3
    assert len(inc.selected_indices_) > len(set(inc.selected_indices_.tolist()))


def test_budget_counts_weights_and_budget_exact(mixture8: dict[str, np.ndarray]) -> None:
    w = np.arange(1, 161, dtype=float) % 7 + 1
    sel = GIOSelector(budget=40, max_iter=None, stop_criterion="min_kl", min_kl=-1e9, seed=0).fit(
        mixture8["pool"], mixture8["target"], weights=w)
    total = w[sel.selected_indices_].sum()
    assert sel.stop_reason_ == "budget" and total <= 40
    nxt = make_search(mixture8["pool"], mixture8["target"],
                      GIOParams(max_iter=None, stop_criterion="min_kl", min_kl=-1e9).validate(), seed=0,
                      weights=w, budget=40, budget_exact=True)
    res = result_from_search(_run(nxt))
    assert w[res.selected_indices].sum() >= 40 and w[res.selected_indices[:-1]].sum() < 40


def _run(search):  # type: ignore[no-untyped-def]
    for _ in search.run():
        pass
    return search


def test_zero_gradient_steps_pick_by_distance_to_the_target_mean(mixture8: dict[str, np.ndarray]) -> None:
    pool, target = mixture8["pool"], mixture8["target"]
    sel = GIOSelector(grad_desc_iter=0, max_iter=25, stop_criterion="min_kl", min_kl=-1e9, v_init="mean").fit(
        pool, target)
    order = np.argsort(np.linalg.norm(pool.astype(np.float64) - target.astype(np.float64).mean(0), axis=1),
                       kind="stable")
    np.testing.assert_array_equal(sel.selected_indices_, order[:25])


@pytest.mark.parametrize("v_init", ["mean", "prev_opt", "jump"])
def test_same_seed_same_selection(mixture8: dict[str, np.ndarray], v_init: str) -> None:
    kw = {"v_init": v_init, "max_iter": 20, "random_restart_prob": 0.3, "seed": 11}
    a = GIOSelector(**kw).fit(mixture8["pool"], mixture8["target"])
    b = GIOSelector(**kw).fit(mixture8["pool"], mixture8["target"])
    np.testing.assert_array_equal(a.selected_indices_, b.selected_indices_)
    np.testing.assert_array_equal(a.kl_trace_, b.kl_trace_)


def test_jump_follows_the_targets_components(mixture8: dict[str, np.ndarray]) -> None:
    # 'mean' grows from one spot; 'jump' starts at random target points and reaches both target components.
    pool, comp = mixture8["pool"], mixture8["pool_comp"]
    sel = GIOSelector(v_init="jump", max_iter=30, seed=4, stop_criterion="min_kl", min_kl=-1e9).fit(
        pool, mixture8["target"])
    picked = comp[sel.selected_indices_]
    assert set(np.unique(picked)) == {0, 1}


def test_random_init_pct_uses_pool_rows(mixture8: dict[str, np.ndarray]) -> None:
    sel = GIOSelector(random_init_pct=0.1, max_iter=5, seed=2).fit(mixture8["pool"], mixture8["target"])
    assert sel.init_indices_ is not None and len(sel.init_indices_) == 16
    np.testing.assert_array_equal(sel.result_.start_points, mixture8["pool"][sel.init_indices_])
    with pytest.raises(InvalidInputError, match="start set has 0"):
        GIOSelector(random_init_pct=0.001).fit(mixture8["pool"], mixture8["target"])


def test_explicit_init_is_used(mixture8: dict[str, np.ndarray]) -> None:
    init = mixture8["pool"][:5] + 0.5
    sel = GIOSelector(max_iter=3).fit(mixture8["pool"], mixture8["target"], init=init)
    np.testing.assert_allclose(sel.result_.start_points, init, rtol=1e-6)


def test_fixed_scale_factor_and_lr_are_used(mixture8: dict[str, np.ndarray]) -> None:
    a = GIOSelector(max_iter=5, scale_factor=1e-9, seed=0).fit(mixture8["pool"], mixture8["target"])
    assert a.scale_factor_ == 1e-9
    # A negligible step keeps v at the mean: same picks as no steps at all.
    b = GIOSelector(max_iter=5, grad_desc_iter=0, seed=0).fit(mixture8["pool"], mixture8["target"])
    np.testing.assert_array_equal(a.selected_indices_, b.selected_indices_)


def test_checkpoint_resume_gives_the_uninterrupted_selection(mixture8: dict[str, np.ndarray]) -> None:
    params = GIOParams(v_init="jump", random_restart_prob=0.5, max_iter=25, stop_criterion="min_kl",
                       min_kl=-1e9).validate()
    full = result_from_search(_run(make_search(mixture8["pool"], mixture8["target"], params, seed=9)))
    first = make_search(mixture8["pool"], mixture8["target"], params, seed=9)
    for _ in range(11):
        first.step()
    saved = first.state_dict()
    second = make_search(mixture8["pool"], mixture8["target"], params, seed=12345)  # seed is overwritten
    second.load_state_dict(saved)
    res = result_from_search(_run(second))
    np.testing.assert_array_equal(res.selected_indices, full.selected_indices)
    np.testing.assert_array_equal(res.kl_trace, full.kl_trace)


def test_candidate_set_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(300, 5)).astype(np.float32)
    cs = CandidateSet(pts, block_rows=37)
    used = rng.random(300) < 0.4
    for i in np.flatnonzero(used):
        cs.mark_used(int(i))
    for _ in range(20):
        v = rng.normal(size=5)
        d = cdist(v[None, :], pts.astype(np.float64))[0]
        d[used] = np.inf
        assert cs.nearest_unused(v) == int(np.argmin(d))
    cs.reset()
    assert cs.n_free == 300


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_pool=st.integers(6, 40), dim=st.integers(1, 6),
       v_init=st.sampled_from(["mean", "prev_opt", "jump"]))
def test_selection_invariants(seed: int, n_pool: int, dim: int, v_init: str) -> None:
    rng = np.random.default_rng(seed)
    pool = rng.normal(size=(n_pool, dim)).astype(np.float32)
    target = rng.normal(size=(12, dim)).astype(np.float32)
    res = select(pool, target, k=3, max_iter=None, v_init=v_init, seed=seed, grad_desc_iter=5)
    idx = res.selected_indices
    assert len(set(idx.tolist())) == len(idx) <= n_pool
    assert len(res.kl_trace) == len(idx)
    assert np.isfinite(res.kl_trace).all()
    trace = np.concatenate([[res.initial_kl], res.kl_trace])
    assert (np.diff(trace) <= 0).all()  # 'increase' accepts no rise


# -- validation ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"k": 0}, "k must be >= 1"),
        ({"max_iter": -1}, "max_iter must be >= 0"),
        ({"stop_criterion": "bogus"}, "'increase', 'max_resets', 'min_difference'"),
        ({"v_init": "median"}, "v_init must be one of 'mean', 'prev_opt', 'jump'"),
        ({"lr": 0}, "lr must be > 0"),
        ({"scale_factor": "big"}, "scale_factor must be 'auto'"),
        ({"scale_factor": -1.0}, "scale_factor must be > 0"),
        ({"grad_desc_iter": 2.5}, "grad_desc_iter must be an integer"),
        ({"random_restart_prob": 1.5}, "random_restart_prob must be <= 1"),
        ({"random_init_pct": -0.1}, "random_init_pct must be >= 0"),
        ({"max_data_size": 0}, "max_data_size must be > 0"),
        ({"uniform_low": 2, "uniform_high": 1}, "uniform_low must be less than uniform_high"),
        ({"uniform_start_size": 0}, "uniform_start_size must be >= 1"),
        ({"max_resets": -1}, "max_resets must be >= 0"),
        ({"min_kl": float("nan")}, "min_kl must be finite"),
        ({"resets_allowed": "yes"}, "resets_allowed must be True or False"),
        ({"budget": 0}, "budget must be > 0"),
        ({"seed": -3}, "seed must be >= 0"),
        ({"objective": "fancy"}, "objective must be one of"),
    ],
)
def test_bad_parameters(params: dict, match: str, mixture8: dict[str, np.ndarray]) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        GIOSelector(**params).fit(mixture8["pool"], mixture8["target"])


def test_bad_inputs(mixture8: dict[str, np.ndarray]) -> None:
    pool, target = mixture8["pool"], mixture8["target"]
    with pytest.raises(InvalidInputError, match="pool: expected a 2-D array"):
        GIOSelector().fit(pool[0], target)
    with pytest.raises(InvalidInputError, match="target: has dimension 3, expected 8"):
        GIOSelector().fit(pool, target[:, :3])
    with pytest.raises(InvalidInputError, match="pool: is empty"):
        GIOSelector().fit(pool[:0], target)
    with pytest.raises(InvalidInputError, match="more than k=5"):
        GIOSelector().fit(pool, target[:5])
    bad = pool.copy()
    bad[42, 3] = np.inf
    with pytest.raises(InvalidInputError, match="pool: row 42 column 3 is inf"):
        GIOSelector().fit(bad, target)
    with pytest.raises(InvalidTypeError, match="target: expected a numeric"):
        GIOSelector().fit(pool, target.astype(str))
    with pytest.raises(InvalidInputError, match="weights"):
        GIOSelector().fit(pool, target, weights=np.ones(3))
    with pytest.raises(ValueError, match="unknown parameter 'kk'"):
        GIOSelector().set_params(kk=3)


def test_repr_and_params_round_trip() -> None:
    s = _GIOSelector(k=3, v_init="mean")
    assert repr(s) == "GIOSelector(k=3, v_init='mean')"
    assert GIOSelector(**s.get_params()).get_params() == s.get_params()


def test_max_resets_reference_bug_never_fires() -> None:
    pool, target = far_pool(1)
    bug = GIOSelector(stop_criterion="max_resets", resets_allowed=True, max_resets=2, max_iter=15, seed=0,
                      reference_max_resets_bug=True, **FAR).fit(pool, target)
    assert bug.stop_reason_ == "max_iter" and bug.n_resets_ == 0 and len(bug.selected_indices_) == 15
