"""The objective that pushes the selection away from an exclusion set: KL~(X || S) - w KL~(E || S)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from gioselect import GIOSelector
from gioselect.cli import main
from gioselect.divergence import RelaxedKL, RepelledKL, kl_relaxed
from gioselect.errors import InvalidInputError, InvalidParameterError
from gioselect.exclude import repel_from
from gioselect.optimize import GIOParams
from gioselect.search import make_search


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(70, 6))
    e = rng.normal(size=(40, 6)) + 1.5
    s = rng.normal(size=(12, 6)) + 0.5
    v = rng.normal(size=6)
    return x, e, s, v


def test_value_is_the_difference_of_the_two_estimates() -> None:
    x, e, s, _ = _data()
    obj = RepelledKL(x, e, 0.7, 5)
    obj.reset(s)
    assert obj.value() == pytest.approx(kl_relaxed(x, s, 5) - 0.7 * kl_relaxed(e, s, 5), rel=1e-12)
    p = s[0] + 0.3
    want = kl_relaxed(x, np.vstack([s, p]), 5) - 0.7 * kl_relaxed(e, np.vstack([s, p]), 5)
    assert obj.value_if_added(p) == pytest.approx(want, rel=1e-12)
    assert obj.add(p) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("weight", [0.3, 1.0, 2.5])
def test_gradient_matches_finite_differences(weight: float) -> None:
    x, e, s, v = _data(1)
    obj = RepelledKL(x, e, weight, 5)
    obj.reset(s)
    g = obj.gradient(v)
    h = 1e-6
    fd = np.array([(obj.value_if_added(v + h * u) - obj.value_if_added(v - h * u)) / (2 * h) for u in np.eye(6)])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-8)
    # the repel term points the other way: it is not the plain gradient
    plain = RelaxedKL(x, 5)
    plain.reset(s)
    assert np.linalg.norm(g - plain.gradient(v)) > 1e-3 * np.linalg.norm(g)


@pytest.mark.parametrize("fast", [None, False])
def test_descent_equals_repeated_gradient_steps(fast: bool | None) -> None:
    x, e, s, v = _data(2)
    obj = RepelledKL(x, e, 0.8, 5)
    obj.reset(s)
    obj.use_fast = fast
    got = obj.descend(v, 30, 0.01, 2.0)
    want = v.copy()
    for _ in range(30):
        want -= 0.01 * 2.0 * obj.gradient(want)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_state_round_trip() -> None:
    x, e, s, _ = _data(3)
    a = RepelledKL(x, e, 0.5, 5)
    a.reset(s)
    b = RepelledKL(x, e, 0.5, 5)
    b.set_state(a.get_state())
    assert b.value() == a.value()
    assert b.add(s[1] + 0.1) == a.add(s[1] + 0.1)


def _mixture(seed: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool from three blobs; target from blob 0; the exclusion set from blob 1, which sits next to blob 0."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0] * 8, [2.0] + [0.0] * 7, [0.0] * 7 + [8.0]])
    pool = np.vstack([c + rng.normal(size=(150, 8)) for c in centres]).astype(np.float32)
    target = (centres[0] + rng.normal(size=(60, 8))).astype(np.float32)
    exclude = (centres[1] + rng.normal(size=(60, 8))).astype(np.float32)
    return pool, target, exclude


def test_weight_zero_is_the_plain_run_and_a_weight_moves_away() -> None:
    pool, target, exclude = _mixture()
    kw = {"max_iter": 60, "seed": 0}
    plain = GIOSelector(**kw).fit(pool, target).selected_indices_
    zero = GIOSelector(**kw).fit(pool, target, exclude=exclude, exclude_threshold=0.9999,
                                 exclude_repel=0.0).selected_indices_
    assert np.array_equal(plain, zero)
    pushed = GIOSelector(**kw).fit(pool, target, exclude=exclude, exclude_threshold=0.9999,
                                   exclude_repel=1.0).selected_indices_
    assert not np.array_equal(plain, pushed)

    def mean_dist_to_exclusion(ids: np.ndarray) -> float:
        d = np.linalg.norm(pool[ids][:, None, :] - exclude[None, :, :], axis=2)
        return float(d.min(axis=1).mean())

    assert mean_dist_to_exclusion(pushed) > mean_dist_to_exclusion(plain)


def test_errors_name_the_parameter() -> None:
    pool, target, exclude = _mixture()
    with pytest.raises(InvalidParameterError, match="exclude_repel"):
        GIOSelector(max_iter=5).fit(pool, target, exclude_repel=1.0)
    with pytest.raises(InvalidParameterError, match="exclude_repel"):
        GIOSelector(max_iter=5).fit(pool, target, exclude=exclude, exclude_repel=-1.0)
    search = make_search(pool, target, GIOParams(max_iter=5).validate(), seed=0)
    with pytest.raises(InvalidInputError, match="exclude"):
        repel_from(search, exclude[:3], 1.0)


def test_cli_exclude_repel_on_bbc_sentences(tmp_path: Path) -> None:
    """End to end on real embeddings: BBC tech target, business exclusion set; the picks move away from it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
    from common import bbc_corpus, bbc_corpus_embeddings

    recs = bbc_corpus()
    emb = bbc_corpus_embeddings(recs)
    dom = np.array([r["domain"] for r in recs])
    rng = np.random.default_rng(0)
    tech, business = np.flatnonzero(dom == "tech"), np.flatnonzero(dom == "business")
    pool_ids = rng.choice(emb.shape[0], 1500, replace=False)
    rest = np.setdiff1d(np.arange(emb.shape[0]), pool_ids)
    target = emb[rng.choice(np.intersect1d(rest, tech), 120, replace=False)]
    excl = emb[rng.choice(np.intersect1d(rest, business), 120, replace=False)]
    np.save(tmp_path / "pool.npy", emb[pool_ids])
    np.save(tmp_path / "target.npy", target)
    np.save(tmp_path / "eval.npy", excl)
    base = ["select", "--pool", str(tmp_path / "pool.npy"), "--target", str(tmp_path / "target.npy"),
            "--clusters", "0", "--budget", "60", "-q", "--no-report", "--exclude", str(tmp_path / "eval.npy")]
    assert main([*base, "--out", str(tmp_path / "w0")]) == 0
    assert main([*base, "--out", str(tmp_path / "w1"), "--exclude-repel", "1"]) == 0
    m = json.loads((tmp_path / "w1" / "manifest.json").read_text())
    assert m["exclusion"]["repel"] == 1.0
    a, b = (np.load(tmp_path / d / "selected_ids.npy") for d in ("w0", "w1"))
    assert len(a) == len(b) == 60

    def nearest_cos(ids: np.ndarray) -> float:
        return float((emb[pool_ids][ids] @ excl.T).max(axis=1).mean())

    assert nearest_cos(b) < nearest_cos(a)
    assert main([*base[:-2], "--out", str(tmp_path / "bad"), "--exclude-repel", "1"]) == 2  # no --exclude
    assert main([*base, "--out", str(tmp_path / "bad2"), "--exclude-repel", "-1"]) == 2
