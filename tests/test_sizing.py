"""The automatic size (stop_criterion="auto", alias "f1": the F1 rule; "estimate"), exact budgets and the
scale-free start set."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from gioselect import GIOSelector
from gioselect.cli import main
from gioselect.errors import InvalidInputError
from gioselect.optimize import GIOParams
from gioselect.search import size_rule
from gioselect.selector import select_quantized
from gioselect.sizing import estimate_target_rows
from gioselect.stopping import CRITERIA


def two_gaussians(share: float, n: int = 3000, d: int = 4, sep: float = 6.0, seed: int = 0,
                  scale: float = 1.0, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool: ``share`` of rows from N(0, I), the rest from N(sep e_0, I); target: 300 rows of N(0, I)."""
    rng = np.random.default_rng(seed)
    n_pos = round(share * n)
    shift = np.zeros(d)
    shift[0] = sep
    pool = np.vstack([rng.normal(0, 1, (n_pos, d)), rng.normal(0, 1, (n - n_pos, d)) + shift])
    positive = np.arange(n) < n_pos
    perm = rng.permutation(n)
    target = rng.normal(0, 1, (300, d))
    return ((pool[perm] * scale + offset).astype(np.float32), (target * scale + offset).astype(np.float32),
            positive[perm])


@pytest.mark.parametrize("share", [0.1, 0.3, 0.6])
def test_estimate_recovers_a_known_share(share: float) -> None:
    pool, target, _ = two_gaussians(share)
    est = estimate_target_rows(pool, target, seed=0)
    assert est.method == "pu-roc" and est.pool_rows == 3000
    assert abs(est.share - share) < 0.05
    assert est.rows == round(est.share * 3000)
    assert est.diagnostics["auc"] > 0.6 and 0 < est.diagnostics["c"] < 1


def test_estimate_is_scale_and_offset_free() -> None:
    a = estimate_target_rows(*two_gaussians(0.3)[:2], seed=1)
    b = estimate_target_rows(*two_gaussians(0.3, scale=40.0, offset=100.0)[:2], seed=1)
    assert abs(a.share - b.share) < 1e-3


def test_block_sources_give_the_array_answer() -> None:
    pool, target, _ = two_gaussians(0.3)
    ref = estimate_target_rows(pool, target, seed=2)
    from_callable = estimate_target_rows(lambda: (pool[s:s + 700] for s in range(0, 3000, 700)), target, seed=2)
    from_pairs = estimate_target_rows([(s, pool[s:s + 1000]) for s in range(0, 3000, 1000)], target, seed=2)
    assert from_callable.rows == ref.rows == from_pairs.rows
    assert from_callable.share == pytest.approx(ref.share)


def test_reservoir_sample_of_a_large_pool() -> None:
    pool, target, _ = two_gaussians(0.25, n=6000)
    est = estimate_target_rows(lambda: (pool[s:s + 512] for s in range(0, 6000, 512)), target, seed=0,
                               sample_rows=1500)
    assert est.diagnostics["sample_rows"] == 1500 and est.pool_rows == 6000
    assert abs(est.share - 0.25) < 0.06
    assert est.diagnostics["share_se"] < 0.03


def test_estimate_rejects_bad_input() -> None:
    pool, target, _ = two_gaussians(0.3)
    with pytest.raises(InvalidInputError, match="target"):
        estimate_target_rows(pool, target[:6], seed=0)
    with pytest.raises(InvalidInputError, match="dimension"):
        estimate_target_rows(pool, target[:, :3], seed=0)
    bad = pool.copy()
    bad[17, 1] = np.nan
    with pytest.raises(InvalidInputError, match="row 17"):
        estimate_target_rows(bad, target, seed=0)
    with pytest.raises(InvalidInputError, match="no rows"):
        estimate_target_rows(np.zeros((0, 4), dtype=np.float32), target, seed=0)


@pytest.mark.parametrize("objective", ["relaxed", "exact"])
def test_estimate_stop_selects_the_estimated_size(objective: str) -> None:
    # The estimate rule (stop_criterion="estimate"; the default "auto" before the F1 rule).
    pool, target, positive = two_gaussians(0.2, n=1500)
    sel = GIOSelector(seed=0, objective=objective, stop_criterion="estimate").fit(pool, target)
    est = sel.size_estimate_
    assert est is not None and abs(est.share - 0.2) < 0.05
    assert sel.stop_reason_ == "auto"
    assert len(sel.selected_indices_) == est.rows
    assert sel.result_.size_estimate == est.as_dict()
    if objective == "relaxed":
        assert positive[sel.selected_indices_].mean() > 0.95
    # The exact greedy is not held to it: once its picks cover the target (about one per target row), no
    # candidate lowers the estimate and ties go to the lowest index (docs/algorithm.md, "Defaults").


@pytest.mark.parametrize("objective", ["relaxed", "exact"])
def test_default_auto_is_the_f1_rule(objective: str) -> None:
    # The default size is the F1 rule: the same rows as stop_criterion="f1" (its alias), cut to the argmax of
    # the estimated F1, which is not the estimate's size.
    pool, target, positive = two_gaussians(0.2, n=1500)
    sel = GIOSelector(seed=0, objective=objective).fit(pool, target)
    alias = GIOSelector(seed=0, objective=objective, stop_criterion="f1").fit(pool, target)
    np.testing.assert_array_equal(sel.selected_indices_, alias.selected_indices_)
    est = sel.size_estimate_
    assert est is not None and est.f1 is not None and sel.stop_reason_ == "auto-f1"
    assert len(np.unique(sel.selected_indices_)) == est.f1["best_rows"]
    assert est.f1["reason"].startswith(f"auto: largest prefix within 2% of the best estimated F1 at "
                                       f"n={est.f1['best_rows']}")
    curve = est.f1["curve"]  # the estimated F1 per pick: its argmax, and the last point within 2% the kept prefix
    f = np.asarray(curve["f1"])
    assert curve["picks"][int(np.argmax(f))] == est.f1["argmax_picks"] == curve["rows"][int(np.argmax(f))]
    last = int(np.flatnonzero(f >= (1 - est.f1["tolerance"]) * f.max())[-1])
    assert curve["picks"][last] == est.f1["best_picks"] >= est.f1["argmax_picks"]
    assert curve["picks"][-1] == est.f1["ran_picks"]
    if objective == "relaxed":
        assert positive[sel.selected_indices_].mean() > 0.9


@pytest.mark.parametrize("objective", ["relaxed", "exact"])
@pytest.mark.parametrize("stop", ["increase", "auto", "min_kl", "min_difference"])
def test_budget_is_exact_whatever_the_stop_rule(objective: str, stop: str) -> None:
    pool, target, _ = two_gaussians(0.2, n=600)
    sel = GIOSelector(seed=0, objective=objective, stop_criterion=stop, min_kl=1e9, min_difference=1e9,
                      budget=333).fit(pool, target)
    assert len(sel.selected_indices_) == 333 and len(np.unique(sel.selected_indices_)) == 333
    assert sel.stop_reason_ == "budget" and sel.size_estimate_ is None


def test_budget_larger_than_the_target_like_rows_on_a_far_pool() -> None:
    # Every pick raises the objective, so 'increase' alone would stop at once; the budget still gets 25 rows.
    rng = np.random.default_rng(0)
    target = rng.normal([3, 4], 0.7, size=(40, 2))
    pool = rng.normal([300, 400], 0.7, size=(50, 2))
    alone = GIOSelector(seed=0, stop_criterion="increase").fit(pool, target)
    assert len(alone.selected_indices_) < 25
    assert len(GIOSelector(seed=0, stop_criterion="increase", budget=25).fit(pool, target).selected_indices_) == 25


@pytest.mark.parametrize("budget", [1, 97, 250])
def test_quantised_budget_is_exact(budget: int) -> None:
    pool, target, _ = two_gaussians(0.2, n=1200)
    qs = select_quantized(pool, target, clusters=60, budget=budget, seed=0, stop_criterion="increase")
    assert qs.ids.shape[0] == budget and np.unique(qs.ids).shape[0] == budget


def test_quantised_estimate_size_counts_pool_rows_not_clusters() -> None:
    pool, target, positive = two_gaussians(0.2, n=1200)
    qs = select_quantized(pool, target, clusters=60, seed=0, stop_criterion="estimate")
    est = qs.result.size_estimate
    assert est is not None and qs.ids.shape[0] == est["rows"] and abs(est["rows"] - 240) < 60
    assert qs.result.stop_reason == "auto"
    assert positive[qs.ids].mean() > 0.9


def test_quantised_default_is_the_f1_rule_in_rows() -> None:
    # Quantised, the default is the F1 rule too: candidates weighted by posterior x cluster rows, the kept
    # clusters exploded whole, so the selection is exactly the argmax prefix's rows ("f1" is the same run).
    pool, target, positive = two_gaussians(0.2, n=1200)
    qs = select_quantized(pool, target, clusters=60, seed=0)
    alias = select_quantized(pool, target, clusters=60, seed=0, stop_criterion="f1")
    np.testing.assert_array_equal(qs.ids, alias.ids)
    est = qs.result.size_estimate
    assert est is not None and qs.result.stop_reason == "auto-f1"
    assert qs.ids.shape[0] == est["f1"]["best_rows"] and abs(qs.ids.shape[0] - 240) < 60
    assert positive[qs.ids].mean() > 0.9


def test_size_rule_names_one_rule_per_run() -> None:
    assert size_rule("auto", None) == "f1" and size_rule("f1", None) == "f1"
    assert size_rule("estimate", None) == "estimate"
    for stop in ("auto", "f1", "estimate"):
        assert size_rule(stop, 10.0) is None  # a budget is exact
    assert size_rule("increase", None) is None and size_rule("data_size", None) is None
    assert GIOParams().stop_criterion == "auto" and "estimate" in CRITERIA


@pytest.mark.parametrize("objective", ["relaxed", "exact"])
def test_integer_vectors_around_100_select_sensibly(objective: str) -> None:
    # A new user's data: integer counts around 100, far from the unit sphere the reference's start assumed.
    rng = np.random.default_rng(5)
    good = np.rint(rng.normal(100, 4, (400, 6)))
    other = np.rint(rng.normal(100, 4, (1600, 6)) + np.array([25, 0, 0, 0, 0, 0]))
    pool = np.vstack([good, other]).astype(np.float32)
    target = np.rint(rng.normal(100, 4, (200, 6))).astype(np.float32)
    sel = GIOSelector(seed=0, objective=objective).fit(pool, target)
    idx = sel.selected_indices_
    assert 300 <= len(idx) <= 500
    # precision 0.93, F1 0.965 measured (relaxed: 429 rows, every good row in; the argmax prefix was 406 rows)
    assert (idx < 400).mean() > 0.9 and 2 * (idx < 400).sum() / (len(idx) + 400) > 0.94
    if objective == "relaxed":
        # the default start set is pool rows (start="sample"), in the data's own units
        start = sel.result_.start_points
        assert (start[:, None, :] == pool[None, :, :].astype(np.float64)).all(axis=2).any(axis=1).all()
        # With a budget and the reference's unit-norm start the run still fills the budget (no silent 0 rows).
        ref = GIOSelector(seed=0, start="unit", budget=100).fit(pool, target)
        assert len(ref.selected_indices_) == 100


def _cli_data(tmp: Path) -> tuple[Path, Path, np.ndarray]:
    pool, target, positive = two_gaussians(0.25, n=800, d=5)
    np.save(tmp / "pool.npy", (pool * 10 + 100).astype(np.float32))
    np.save(tmp / "target.npy", (target * 10 + 100).astype(np.float32))
    return tmp / "pool.npy", tmp / "target.npy", positive


def test_cli_auto_size_and_exact_budget(tmp_path: Path) -> None:
    p, t, positive = _cli_data(tmp_path)
    assert main(["select", "--pool", str(p), "--target", str(t), "--out", str(tmp_path / "auto"),
                 "--clusters", "0", "-q"]) == 0
    man = json.loads((tmp_path / "auto" / "manifest.json").read_text())
    ids = np.load(tmp_path / "auto" / "selected_ids.npy")
    # the default: the F1 rule, cut to the largest prefix within 2% of its best estimated F1
    assert man["stop_reason"] == "auto-f1" and man["size_estimate"]["f1"]["best_rows"] == ids.shape[0]
    assert man["size_reason"].startswith(f"auto: largest prefix within 2% of the best estimated F1 at n={ids.shape[0]}")
    # the curve: in the manifest, as f1_curve.csv (kept = the selection's prefix) and in the report
    curve = man["size_estimate"]["f1"]["curve"]
    f = np.asarray(curve["f1"])
    assert curve["rows"][int(np.argmax(f))] == man["size_estimate"]["f1"]["argmax_rows"] <= ids.shape[0]
    assert curve["rows"][int(np.flatnonzero(f >= 0.98 * f.max())[-1])] == ids.shape[0] < curve["rows"][-1]
    with open(tmp_path / "auto" / "f1_curve.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert man["outputs"]["f1_curve"] == "f1_curve.csv" and len(rows) == len(curve["rows"])
    assert max(int(r["rows"]) for r in rows if r["kept"] == "1") == ids.shape[0]
    html = (tmp_path / "auto" / "report.html").read_text()
    assert 'id="size"' in html and "estimated F1" in html
    assert abs(ids.shape[0] - 200) < 50 and positive[ids].mean() > 0.9
    assert man["warnings"] == []
    assert main(["select", "--pool", str(p), "--target", str(t), "--out", str(tmp_path / "est"),
                 "--clusters", "0", "--stop", "estimate", "-q"]) == 0
    man = json.loads((tmp_path / "est" / "manifest.json").read_text())
    ids = np.load(tmp_path / "est" / "selected_ids.npy")
    assert man["stop_reason"] == "auto" and man["size_estimate"]["rows"] == ids.shape[0]
    assert man["size_estimate"].get("f1") is None and abs(ids.shape[0] - 200) < 50
    assert main(["select", "--pool", str(p), "--target", str(t), "--out", str(tmp_path / "b"), "--clusters", "40",
                 "--budget", "123", "--stop", "increase", "-q"]) == 0
    man = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert np.load(tmp_path / "b" / "selected_ids.npy").shape[0] == 123
    assert man["counts"]["selected_rows"] == 123 and man["size_estimate"] is None


def test_f1_rule_with_no_pick_does_not_blame_the_target(caplog: pytest.LogCaptureFixture) -> None:
    # max_iter=0 on a pool full of target-like rows: the warning must say no pick was made, not that nothing
    # looks like the target
    pool, target, _ = two_gaussians(0.3)
    with caplog.at_level("WARNING", logger="gioselect.search"):
        sel = GIOSelector(seed=0, max_iter=0).fit(pool, target)
    assert sel.selected_indices_.shape == (0,)
    msgs = [r.getMessage() for r in caplog.records if r.name == "gioselect.search"]
    assert msgs and all("no pool row looks like the target" not in m for m in msgs)
    assert any("before its first pick" in m and "max_iter" in m for m in msgs)


def test_cli_auto_size_on_a_small_target_says_how_to_run_anyway(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # 6 target rows: the automatic size cannot run; the message must name what a CLI user can do (no --folds)
    p, t, _ = _cli_data(tmp_path)
    np.save(tmp_path / "t6.npy", np.load(t)[:6])
    assert main(["select", "--pool", str(p), "--target", str(tmp_path / "t6.npy"), "--out", str(tmp_path / "o"),
                 "-q"]) == 2
    err = capsys.readouterr().err
    assert "--budget" in err and "lower folds" not in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_fold_scaling_from_moments_equals_the_direct_one(offset: float) -> None:
    """Each fold's training-row scaling from the folds' sums and Gram matrices (logistic.FoldMoments) equals the direct
    computation on the training rows (mean, std, eigenvectors of the standardised covariance, projections),
    with a constant column and rows far from the origin."""
    from gioselect.logistic import FoldMoments, principal_scaling, project

    rng = np.random.default_rng(7)
    x = rng.normal(size=(900, 6)) * np.array([1.0, 2.0, 0.5, 3.0, 1.5, 0.7]) + offset
    x[:, 3] = offset + 2.0  # constant
    x[:, 1] += 0.8 * x[:, 0]
    fold = rng.permutation(900) % 5
    moments = FoldMoments(x, fold, 5)
    for f in [*range(5), None]:
        got_mu, got_sd, got_axes = moments.scaling(f, 4)
        xtr = x if f is None else x[fold != f]
        mu, sd = xtr.mean(axis=0), xtr.std(axis=0)
        sd[sd == 0] = 1.0
        xs = (xtr - mu) / sd
        _evals, evecs = np.linalg.eigh(xs.T @ xs / xs.shape[0])
        axes = evecs[:, ::-1][:, :4]
        np.testing.assert_allclose(got_mu, mu, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(got_sd, sd, rtol=1e-7)
        assert got_sd[3] == 1.0
        signs = np.sign(np.sum(got_axes * axes, axis=0))  # eigenvectors are defined up to sign
        np.testing.assert_allclose(got_axes * signs, axes, atol=1e-7)
        np.testing.assert_allclose(project(xtr, got_mu, got_sd, got_axes) * signs, xs @ axes, atol=1e-6)
    direct = principal_scaling(x, 4)
    np.testing.assert_allclose(direct[3], direct[4].std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(np.abs(direct[4]), np.abs(project(x, *moments.scaling(None, 4))), atol=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_size_classifier_reaches_the_regularised_optimum_on_heavy_tailed_features(seed: int) -> None:
    """``fit_logistic``'s damped Newton steps land on the optimum scipy's L-BFGS finds. Heavy-tailed standardised
    features (Student t, 1.5 degrees of freedom) are where full Newton steps overshoot: undamped, the same
    iterations ended 0.016 and 58 nats above the optimum on two of these six seeds (the size classifier's failure
    on Fashion-MNIST ankle boots: AUC 0.5 where the classes separate at 0.95)."""
    from scipy.optimize import minimize

    from gioselect.logistic import fit_logistic

    rng = np.random.default_rng(seed)
    pos = rng.standard_t(1.5, size=(60, 8)) * 3 + 1.0
    neg = rng.standard_t(1.5, size=(1500, 8))
    x = np.vstack([pos, neg])
    x = np.hstack([(x - x.mean(0)) / x.std(0), np.ones((x.shape[0], 1))])
    y = np.r_[np.ones(60), np.zeros(1500)]
    l2 = 1e-3
    reg = np.full(x.shape[1], l2)
    reg[-1] = 0.0

    def objective(w: np.ndarray) -> float:
        return float(np.logaddexp(0.0, (1 - 2 * y) * (x @ w)).mean() + 0.5 * reg @ (w * w))

    best = minimize(objective, np.zeros(x.shape[1]), method="L-BFGS-B", options={"maxiter": 5000, "gtol": 1e-12})
    assert objective(fit_logistic(x, y, l2)) <= best.fun + 1e-7
