"""The paper's consistency checks."""

from __future__ import annotations

import numpy as np

from gioselect.checks import negative_consistency, readme_gaussians, self_consistency


def test_self_consistency_passes_on_the_readme_setup() -> None:
    r = self_consistency()
    assert r.passed, r.message
    assert r.metrics["share"] >= 0.5
    assert r.metrics["final_kl"] < r.metrics["initial_kl"]
    assert "PASS self-consistency" in str(r)


def test_negative_consistency_passes_on_the_readme_setup() -> None:
    r = negative_consistency()
    assert r.passed, r.message
    assert r.metrics["picked"] == 0


def test_checks_can_fail() -> None:
    # Same distribution for pool and target is not "negative": the check must say FAIL.
    pool = readme_gaussians(100, seed=8)
    target = readme_gaussians(100, seed=9)
    r = negative_consistency(pool, target, uniform_low=0.0, uniform_high=8.0, uniform_start_size=100,
                             normalize=False)
    assert not r.passed and r.metrics["share"] > 0.05
    far = readme_gaussians(100, mean=(300.0, 400.0), seed=8)
    r2 = self_consistency(far, target, uniform_low=0.0, uniform_high=8.0, uniform_start_size=100,
                          normalize=False)
    assert not r2.passed and r2.metrics["picked"] == 0
    assert "(need a fall)" in r2.message  # the objective's requirement is stated beside the share's


def test_cli_check_self_names_the_split_of_a_small_target(tmp_path, capsys) -> None:
    from gioselect.cli import main

    np.save(tmp_path / "t.npy", readme_gaussians(9, seed=1))
    assert main(["check", "self", "--target", str(tmp_path / "t.npy")]) == 2
    err = capsys.readouterr().err  # it said "target: has 4 rows" of a 9-row file
    assert "has 9 rows, split into a pool half of 4 and a target half of 5" in err


def test_readme_gaussians_moments() -> None:
    x = readme_gaussians(20000, seed=1)
    np.testing.assert_allclose(x.mean(0), [3, 4], atol=0.03)
    np.testing.assert_allclose(np.cov(x.T), np.eye(2) * 0.5, atol=0.03)
