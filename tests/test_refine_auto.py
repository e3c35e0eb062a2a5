"""``refine="auto"`` (the default row-level pass): ``gio`` under the cost cap, ``knn`` above, the rule recorded."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import gioselect.quantize_refine as qr
from gioselect.errors import InvalidParameterError
from gioselect.job.select import gio_fill
from gioselect.optimize import GIOParams
from gioselect.quantize import REFINE_MODES, ClusterMembers, refine
from gioselect.quantize_refine import (
    REFINE_AUTO_MAX_WORK,
    REFINE_GIO_OVER,
    REFINE_OVER,
    default_over,
    gio_pass_work,
    plan_refine,
)
from gioselect.selector import select_quantized


def blobs(n: int, dim: int = 6, k: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 10, size=(k, dim))
    return (centers[rng.integers(k, size=n)] + rng.normal(size=(n, dim))).astype(np.float32)


def test_gio_pass_work_is_the_closed_form() -> None:
    # 10 picks, 4-D, each 50 steps over 7 target points and a scan of ceil(1.5 * 10) = 15 read rows
    assert gio_pass_work(10, 4, 7, 1.5) == 10 * 4 * (50 * 7 + 15)
    assert gio_pass_work(10, 4, 7, 2.0, grad_desc_iter=3) == 10 * 4 * (3 * 7 + 20)
    assert gio_pass_work(0, 384, 300, 2.0) == 0.0
    assert default_over("gio") == REFINE_GIO_OVER == 2.0 and default_over("knn") == REFINE_OVER == 1.5
    assert "auto" in REFINE_MODES


def _largest_under_cap(dim: int, n_target: int) -> int:
    """The largest size whose gio pass (over 2) is within the cap, by bisection on the closed form."""
    lo, hi = 1, 10_000_000
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if gio_pass_work(mid, dim, n_target, REFINE_GIO_OVER) <= REFINE_AUTO_MAX_WORK else (lo, mid)
    return lo


@pytest.mark.parametrize(("dim", "n_target"), [(50, 300), (384, 300), (384, 1500)])
def test_auto_takes_gio_up_to_the_cap_and_knn_above(dim: int, n_target: int) -> None:
    n = _largest_under_cap(dim, n_target)
    under = plan_refine("auto", None, n, dim, n_target)
    over = plan_refine("auto", None, n + 1, dim, n_target)
    assert (under.refine, under.over) == ("gio", 2.0)
    assert (over.refine, over.over) == ("knn", 1.5)
    work = gio_pass_work(n, dim, n_target, 2.0)
    # the rule states the decision and its basis, in words
    assert under.rule == (f"auto: gio, over 2 (the gio pass's work {n} rows x {dim}-D x (50 x {n_target} target "
                          f"points + {math.ceil(2 * n)} read rows) = {work:.4g} <= {REFINE_AUTO_MAX_WORK:.4g})")
    assert over.rule.startswith("auto: knn, over 1.5 (the gio pass's work ") and over.rule.endswith(
        f" > {REFINE_AUTO_MAX_WORK:.4g})")
    # a bigger target makes the pass dearer: the cap comes at fewer rows
    assert _largest_under_cap(dim, 10 * n_target) < n


def test_auto_keeps_knn_on_the_1e6_benchmark_and_gio_on_the_measured_tasks() -> None:
    # 1e6 x 384 at --budget 30%: 300,000 rows, knn (as before: the benchmark's cost is unchanged)
    assert plan_refine("auto", None, 300_000, 384, 1).refine == "knn"
    # the precision study's tasks: Fashion-MNIST 6,000 rows of PCA-50, BBC 1,000 rows of 384-D, 300 target points
    assert plan_refine("auto", None, 6000, 50, 300).refine == "gio"
    assert plan_refine("auto", None, 1000, 384, 300).refine == "gio"


def test_explicit_pass_wins_and_over_is_the_passes_own() -> None:
    huge, small = 10_000_000, 10
    assert plan_refine("gio", None, huge, 384, 300) == qr.RefinePlan("gio", 2.0, "explicit: gio, over 2")
    assert plan_refine("knn", None, small, 50, 300) == qr.RefinePlan("knn", 1.5, "explicit: knn, over 1.5")
    assert plan_refine("share", 1.25, small, 50, 300).over == 1.25
    assert plan_refine("none", None, small, 50, 300).refine == "none"
    # an explicit over applies to the pass auto picks, and to its cost estimate
    p = plan_refine("auto", 3.0, small, 50, 300)
    assert (p.refine, p.over) == ("gio", 3.0) and f"+ {3 * small} read rows" in p.rule
    assert plan_refine("auto", 1.25, huge, 50, 300).over == 1.25
    # the exact objective: the pass's cost was measured for the relaxed one only
    e = plan_refine("auto", None, small, 50, 300, objective="exact")
    assert e.refine == "knn" and "relaxed objective only" in e.rule
    # no row size (the F1 rule sets it after GIO): no pass, said so
    f = plan_refine("auto", None, None, 50, 300)
    assert f.rule.startswith("auto: no row-level pass") and "exploded whole" in f.rule
    with pytest.raises(InvalidParameterError, match="refine_over"):
        plan_refine("auto", 0.5, small, 50, 300)


def test_gio_pass_with_empty_and_one_row_clusters() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 3)).astype(np.float32)
    t = rng.normal(size=(10, 3)).astype(np.float32)
    # clusters 0 and 2 empty, cluster 1 one row (row 19), cluster 3 rows 0-18
    m = ClusterMembers(np.array([3] * 19 + [1], dtype=np.int32), 4)
    fill = gio_fill(GIOParams(), t, 0)
    read = x.__getitem__
    assert refine([0, 2], m, read, t, 2, how="gio", over=2.0, fill=fill).shape == (0,)  # only empty clusters
    assert refine([1], m, read, t, 1, how="gio", over=2.0, fill=fill).tolist() == [19]  # one row: its row
    assert refine([2, 1], m, read, t, 3, how="gio", over=2.0, fill=fill).tolist() == [19]  # fewer rows than asked
    got = refine([0, 1, 2, 3], m, read, t, 4, how="gio", over=2.0, fill=fill)
    assert got.shape == (4,) and np.unique(got).shape == (4,)
    # the same rows as GIO run directly on the read rows (all 20, ascending)
    np.testing.assert_array_equal(got, fill(x, 4))


def test_select_quantized_auto_is_gio_under_the_cap_and_knn_above(monkeypatch: pytest.MonkeyPatch) -> None:
    x = blobs(1500, 6, 5, seed=3)
    t = x[np.argsort(((x - x[0]) ** 2).sum(axis=1))[:60]] + 0.01
    kw = {"clusters": 30, "target_clusters": 0, "budget": 150, "seed": 1}
    auto = select_quantized(x, t, **kw)
    gio = select_quantized(x, t, refine="gio", **kw)
    assert auto.refine_rule.startswith("auto: gio, over 2 (") and gio.refine_rule == "explicit: gio, over 2"
    np.testing.assert_array_equal(auto.ids, gio.ids)
    assert auto.ids.shape == (150,) and np.unique(auto.ids).shape == (150,)
    monkeypatch.setattr(qr, "REFINE_AUTO_MAX_WORK", 0.0)  # every pass over the cap
    above = select_quantized(x, t, **kw)
    knn = select_quantized(x, t, refine="knn", **kw)
    assert above.refine_rule.startswith("auto: knn, over 1.5 (") and " > 0)" in above.refine_rule
    np.testing.assert_array_equal(above.ids, knn.ids)
    assert not np.array_equal(np.sort(above.ids), np.sort(auto.ids))
    # unquantised: no pass, no rule
    assert select_quantized(x, t, clusters=0, budget=20, seed=1).refine_rule == ""


def test_cli_states_the_refine_decision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gioselect.cli import main

    x = blobs(900, 6, 5, seed=7)
    np.save(tmp_path / "pool.npy", x)
    np.save(tmp_path / "target.npy", x[np.argsort(((x - x[0]) ** 2).sum(axis=1))[:60]] + 0.01)
    base = ["select", "--pool", str(tmp_path / "pool.npy"), "--target", str(tmp_path / "target.npy"),
            "--clusters", "30", "--target-clusters", "0", "--budget", "123"]
    assert main([*base, "--out", str(tmp_path / "auto")]) == 0
    out = capsys.readouterr().out
    assert "row-level pass: auto: gio, over 2 (the gio pass's work 123 rows x 6-D x (50 x 60 target points" in out
    m = json.loads((tmp_path / "auto" / "manifest.json").read_text())
    assert m["parameters"]["refine"] == "auto" and m["parameters"]["refine_over"] is None
    d = m["refine_decision"]
    assert (d["refine"], d["refine_over"]) == ("gio", 2.0) and d["rule"].startswith("auto: gio")
    assert m["quantization"]["rows"].startswith("row-level pass (gio)")
    assert "row-level pass" in (tmp_path / "auto" / "report.html").read_text()
    assert main([*base, "--out", str(tmp_path / "knn"), "--refine", "knn", "--no-report"]) == 0
    assert "row-level pass: explicit: knn, over 1.5" in capsys.readouterr().out
    m = json.loads((tmp_path / "knn" / "manifest.json").read_text())
    assert m["refine_decision"] == {"refine": "knn", "refine_over": 1.5, "rule": "explicit: knn, over 1.5"}
    # the same rows as the explicit gio pass
    assert main([*base, "--out", str(tmp_path / "gio"), "--refine", "gio", "--no-report", "-q"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "gio" / "selected_ids.npy"),
                                  np.load(tmp_path / "auto" / "selected_ids.npy"))
    assert main([*base, "--out", str(tmp_path / "bad"), "--refine-over", "0.5", "--no-report", "-q"]) == 2
    assert "refine_over" in capsys.readouterr().err


def test_gio_pass_on_few_rows_with_random_init_pct_uses_the_default_start() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    t = rng.normal(size=(12, 3)).astype(np.float32)
    got = gio_fill(GIOParams(random_init_pct=0.01), t, 0)(x, 10)  # 0.4 start points: the default start instead
    np.testing.assert_array_equal(got, gio_fill(GIOParams(), t, 0)(x, 10))
    assert got.shape == (10,) and np.unique(got).shape == (10,)


@pytest.mark.parametrize("how", ["gio", "knn"])
def test_budget_filled_by_the_pass_is_the_stop_reason_when_gio_ran_out_of_clusters(how: str) -> None:
    """A budget of 60% of the pool: GIO counts clusters towards over x the budget (more than the pool), runs out of
    candidates, and the pass still keeps exactly the budget's rows. The run ended because the budget was met, so
    that is its stop reason (it said ``pool_exhausted``). Another reason GIO stopped for (``max_iter``; the pass
    then fills the budget from the nearest other clusters) is kept."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = select_quantized(x, x[:200] + 0.01, clusters=60, budget=1800, seed=0, refine=how)
    assert q.ids.shape == (1800,) and np.unique(q.ids).shape == (1800,)
    assert q.result.stop_reason == "budget"
    short = select_quantized(x, x[:200] + 0.01, clusters=60, budget=1800, seed=0, refine=how, max_iter=5)
    assert short.ids.shape == (1800,) and short.result.stop_reason == "max_iter"
