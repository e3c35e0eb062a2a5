"""The Objective and Search protocols, and the lazy greedy on objectives other than the exact KL.

Oracles: a naive greedy written here (every free candidate evaluated at every pick, lowest index on ties),
the facility-location baseline of gioselect.peers (its own lazy greedy, itself tested against apricot), and
closed forms (a modular function's greedy order is its sorted weights).
"""

from __future__ import annotations

import math
from collections.abc import Hashable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gioselect.objectives import BoundedObjective, ExactKL, ExactKLObjective, FacilityLocation, Objective
from gioselect.optimize import GIOParams, GIOSearch
from gioselect.peers import facility_location
from gioselect.search import Search, make_search
from gioselect.search.exact import ExactGreedySearch
from gioselect.search.lazy_greedy import LazyGreedy


def _naive(obj: Objective, picks: int) -> tuple[list[int], list[float]]:
    """Plain greedy: the lowest value after adding, over every free candidate, lowest index on ties."""
    used = np.zeros(obj.n_candidates, dtype=bool)
    out, vals = [], []
    for _ in range(picks):
        free = np.flatnonzero(~used)
        v = obj.values_after(free)
        j = int(free[np.flatnonzero(v <= v.min() + 1e-9 * (1 + abs(v.min())))[0]])
        out.append(j)
        vals.append(float(v[free == j][0]))
        used[j] = True
        obj.add(j)
    return out, vals


def _lazy(obj: BoundedObjective, picks: int, lazy: bool = True) -> tuple[list[int], list[float], LazyGreedy]:
    g = LazyGreedy(obj, lazy=lazy)
    used = np.zeros(obj.n_candidates, dtype=bool)
    out, vals = [], []
    for _ in range(picks):
        j, v = g.best(used)
        out.append(j)
        vals.append(v)
        used[j] = True
        obj.add(j)
    return out, vals, g


@pytest.fixture(scope="module")
def cover() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {"pool": rng.normal(size=(600, 6)).astype(np.float32), "target": rng.normal(size=(150, 6)) + 0.3}


# -- facility location: lazy = naive = the baseline -------------------------------------------------------------
def test_lazy_greedy_on_facility_location_equals_naive_greedy(cover: dict[str, np.ndarray]) -> None:
    lazy, lazy_vals, g = _lazy(FacilityLocation(cover["pool"], cover["target"]), 40)
    naive, naive_vals = _naive(FacilityLocation(cover["pool"], cover["target"]), 40)
    assert lazy == naive
    np.testing.assert_allclose(lazy_vals, naive_vals, rtol=1e-12, atol=1e-12)
    assert g.evaluations < 40 * cover["pool"].shape[0] // 4  # the stale gains pruned most evaluations


def test_lazy_greedy_on_facility_location_equals_the_peers_baseline(cover: dict[str, np.ndarray]) -> None:
    picks, _, _ = _lazy(FacilityLocation(cover["pool"], cover["target"]), 30)
    assert picks == facility_location(cover["pool"], cover["target"], 30).tolist()


def test_facility_location_value_is_the_closed_form(cover: dict[str, np.ndarray]) -> None:
    obj = FacilityLocation(cover["pool"], cover["target"])
    picks, vals, _ = _lazy(obj, 12)
    p = cover["pool"][picks].astype(np.float64)
    t = cover["target"]
    cos = (t / np.linalg.norm(t, axis=1)[:, None]) @ (p / np.linalg.norm(p, axis=1)[:, None]).T
    assert obj.value() == pytest.approx(-np.maximum(cos, 0.0).max(axis=1).sum(), rel=1e-9)  # float32 rows
    assert vals[-1] == pytest.approx(obj.value(), rel=1e-12)
    assert (np.diff(vals) <= 1e-12).all()  # f only grows


# -- a modular function: greedy takes the weights in sorted order ---------------------------------------------
class Modular:
    """``sum_{w in W} weight[w]``: every gain is fixed, so the stale value is exact; the key never changes."""

    def __init__(self, weights: np.ndarray) -> None:
        self.w = np.asarray(weights, dtype=np.float64)
        self.n_candidates = self.w.shape[0]
        self.total = 0.0
        self.bound_fill = (-math.inf,)

    def value(self) -> float:
        return self.total

    def values_after(self, idx: np.ndarray) -> np.ndarray:
        return self.total + self.w[idx]

    def bound_key(self) -> Hashable:
        return None

    def evaluate(self, idx: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        return self.values_after(idx), (self.w[idx],)

    def lower_bounds(self, bounds: tuple[np.ndarray, ...]) -> np.ndarray:
        return self.total + bounds[0]

    def add(self, idx: int) -> None:
        self.total += float(self.w[idx])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-50, 50), min_size=1, max_size=300), st.data())
def test_lazy_greedy_on_a_modular_function_takes_sorted_weights(weights: list[int], data: st.DataObject) -> None:
    w = np.asarray(weights, dtype=np.float64)
    picks = data.draw(st.integers(1, w.shape[0]))
    got, vals, _ = _lazy(Modular(w), picks)
    assert got == np.argsort(w, kind="stable")[:picks].tolist()  # ties: the lowest index first
    np.testing.assert_allclose(vals, np.cumsum(np.sort(w)[:picks]))
    assert got == _naive(Modular(w), picks)[0] == _lazy(Modular(w), picks, lazy=False)[0]


class KeyedModular(Modular):
    """Weights that change sign at every pick: a bound kept across the change would be wrong."""

    def bound_key(self) -> Hashable:
        return len(self.picked)

    def __init__(self, weights: np.ndarray) -> None:
        super().__init__(weights)
        self.picked: list[int] = []
        self.sign = 1.0

    def values_after(self, idx: np.ndarray) -> np.ndarray:
        return self.total + self.sign * self.w[idx]

    def evaluate(self, idx: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        return self.values_after(idx), (self.sign * self.w[idx],)

    def add(self, idx: int) -> None:
        self.total += self.sign * float(self.w[idx])
        self.picked.append(idx)
        self.sign = -self.sign


def test_a_new_bound_key_drops_the_stale_bounds() -> None:
    w = np.random.default_rng(0).normal(size=200)
    lazy, _, _ = _lazy(KeyedModular(w), 20)
    assert lazy == _naive(KeyedModular(w), 20)[0]


# -- the protocols ----------------------------------------------------------------------------------------------
def test_both_searches_and_the_objectives_implement_the_protocols(cover: dict[str, np.ndarray]) -> None:
    for objective, kind in (("relaxed", GIOSearch), ("exact", ExactGreedySearch), ("exact-sym", ExactGreedySearch)):
        s = make_search(cover["pool"], cover["target"], GIOParams(objective=objective, max_iter=3), seed=0)
        assert isinstance(s, kind) and isinstance(s, Search)
        assert len(list(s.run())) >= 1 and s.done
    est = ExactKL(cover["target"], 5, offset=0, symmetric=False)
    est.reset(np.zeros((0, 6)), None)
    for obj in (ExactKLObjective(est, cover["pool"], None), FacilityLocation(cover["pool"], cover["target"]),
                Modular(np.ones(3))):
        assert isinstance(obj, BoundedObjective) and isinstance(obj, Objective)


def test_exact_kl_objective_under_naive_greedy_makes_the_searchs_picks(cover: dict[str, np.ndarray]) -> None:
    """The exact search = the exact KL objective under the plain greedy (from the empty set, no stop)."""
    pool, target = cover["pool"][:200], cover["target"]
    s = make_search(pool, target, GIOParams(objective="exact", max_iter=15, stop_criterion="data_size"), seed=0)
    for _ in s.run():
        pass
    est = ExactKL(target, 5, offset=0, symmetric=False)
    est.reset(np.zeros((0, 6)), None)
    picks, vals = _naive(ExactKLObjective(est, pool, None), 15)
    assert s.state.selected == picks
    np.testing.assert_allclose(s.state.kl_trace, vals, rtol=1e-9, atol=1e-9)
