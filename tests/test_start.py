"""The default start set (``start="sample"``) at any scale, offset and on the sphere, with every stop rule.

The start set enters the relaxed objective but not its gradient, so it decides when the stop rules fire, not
which rows are picked. These tests run each stop rule on three kinds of real or realistic data and ask for a
selection that is neither empty nor the whole pool and mostly target-like; and they pin the failure the
bounding-box start had (a tight target: every pick raised the objective, ``increase`` selected nothing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gioselect import GIOSelector
from gioselect.optimize import GIOParams, GIOSearch

DATA = Path(__file__).resolve().parent / "data" / "bbc_sample.npz"

#: Every stop rule, with the options it needs to be able to stop before the end of the pool.
RULES: dict[str, dict[str, Any]] = {
    "auto": {},
    "increase": {"stop_criterion": "increase"},
    "min_difference": {"stop_criterion": "min_difference", "min_difference": 0.0},
    "sequential_increase_tolerance": {"stop_criterion": "sequential_increase_tolerance",
                                      "max_sequential_increases": 3},
    "max_resets": {"stop_criterion": "max_resets", "resets_allowed": True, "max_resets": 2},
    "min_kl": {"stop_criterion": "min_kl", "min_kl": -1e9},  # never reached: the run ends at max_iter
    "data_size": {"stop_criterion": "data_size", "max_data_size": 0.3},
}


def _integers(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer vectors around 100 (counts, say): a target-like cluster and two others in the pool."""
    rng = np.random.default_rng(seed)
    d = 8
    centers = np.array([np.full(d, 100.0), np.full(d, 100.0) + 12.0 * np.eye(d)[0], np.full(d, 88.0)])
    lab = rng.integers(0, 3, 300)
    pool = np.rint(centers[lab] + rng.normal(0, 2.0, (300, d))).astype(np.float32)
    target = np.rint(centers[0] + rng.normal(0, 2.0, (60, d))).astype(np.float32)
    return pool, target, lab == 0


def _offset(seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Small-scale features far from the origin: two blobs of spread 0.01 around 300 (float32 keeps 5 digits)."""
    rng = np.random.default_rng(seed)
    d = 6
    a, b = np.full(d, 300.0), np.full(d, 300.0) + 0.04
    lab = rng.random(300) < 0.4
    pool = np.where(lab[:, None], a, b) + rng.normal(0, 0.01, (300, d))
    target = a + rng.normal(0, 0.01, (50, d))
    return pool.astype(np.float64), target, lab


def _text() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit-norm sentence embeddings (a real BBC News sample, tests/data/make_bbc_sample.py); tech target."""
    z = np.load(DATA)
    return z["pool"].astype(np.float32), z["target"].astype(np.float32), z["pool_domain"] == "tech"


CASES = {"integers-around-100": _integers, "offset": _offset, "unit-text": _text}


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("case", list(CASES))
def test_every_stop_rule_selects_something_sensible(case: str, rule: str) -> None:
    pool, target, positive = CASES[case]()
    # max_iter (30 picks; fewer than each case's target-like rows) applies to every rule but "auto"
    sel = GIOSelector(seed=3, max_iter=None if rule == "auto" else 30, **RULES[rule]).fit(pool, target)
    ids = sel.selected_indices_
    assert 0 < ids.size < pool.shape[0], f"{case}/{rule}: selected {ids.size} of {pool.shape[0]}"
    # mostly rows like the target, well above the pool's share of them
    share = float(positive.mean())
    assert float(positive[ids].mean()) >= min(0.9, 2.0 * share), (case, rule, ids.size, positive[ids].mean())


def _tight_target() -> tuple[np.ndarray, np.ndarray]:
    """The failure case of the bounding-box start: 12 near-copies of one sentence, a pool of other sentences."""
    z = np.load(DATA)
    pool, target = z["pool"].astype(np.float64), z["target"].astype(np.float64)
    rng = np.random.default_rng(0)
    tight = target[0] + rng.normal(0, 0.01, (12, target.shape[1]))
    tight /= np.linalg.norm(tight, axis=1, keepdims=True)
    return pool, tight


def test_box_start_fails_on_a_tight_target_and_the_default_does_not() -> None:
    pool, tight = _tight_target()
    picked = {}
    for start in ("box", "sample"):
        p = GIOParams(stop_criterion="increase", start=start, max_iter=100).validate()
        s = GIOSearch(pool, tight, p, np.random.default_rng(1))
        list(s.run())
        picked[start] = len(s.state.selected)
    assert picked["box"] == 0  # why "box" is no longer the default
    assert 0 < picked["sample"] < pool.shape[0]


def test_sample_start_is_rows_of_the_pool_and_changes_no_pick() -> None:
    pool, target, _ = _integers()
    p = GIOParams(start="sample", v_init="mean", uniform_start_size=20).validate()
    s = GIOSearch(pool, target, p, np.random.default_rng(0))
    # the start points are 20 distinct pool rows
    match = (s.start_points[:, None, :] == pool[None, :, :].astype(np.float64)).all(axis=2)
    assert match.any(axis=1).all() and len({int(np.argmax(r)) for r in match}) == 20
    # with v_init="mean" nothing random follows the start set: the picks of a 40-row budget are the same
    # whichever start set (the start set is in the objective's value, not in its gradient)
    a = GIOSelector(seed=0, v_init="mean", start="sample", budget=40).fit(pool, target).selected_indices_
    b = GIOSelector(seed=0, v_init="mean", start="box", budget=40).fit(pool, target).selected_indices_
    np.testing.assert_array_equal(a, b)


def test_start_set_of_a_pool_smaller_than_uniform_start_size() -> None:
    pool, target, _ = _integers()
    s = GIOSearch(pool[:7], target, GIOParams().validate(),
                  np.random.default_rng(0))
    assert s.start_points.shape == (7, pool.shape[1])


def test_degenerate_step_scale_warning_names_the_scale_factor_in_use(caplog: pytest.LogCaptureFixture) -> None:
    # an all-zero target: the default scale_factor="spread" has no spread; the warning must not blame "auto"
    pool, target, _ = _integers()
    with caplog.at_level("WARNING", logger="gioselect.optimize"):
        GIOSelector(seed=0, budget=3).fit(pool, np.zeros_like(target))
    msgs = [r.getMessage() for r in caplog.records if "degenerate here" in r.getMessage()]
    assert msgs and all("scale_factor='spread'" in m and "'auto'" not in m for m in msgs)
