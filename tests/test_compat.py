"""gioselect.compat.GIOKL: the reference's signature, defaults and return shape, on numpy."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from gioselect import GIOSelector
from gioselect.compat import GIOKL
from gioselect.divergence import kl_relaxed
from gioselect.errors import InvalidInputError

REFERENCE_FIT_DEFAULTS = {
    "D": None, "k": 5, "max_iter": 100, "stop_criterion": "increase", "min_difference": 0,
    "resets_allowed": False, "max_resets": 2, "max_data_size": 1, "min_kl": 0, "max_sequential_increases": 3,
    "random_init_pct": 0, "random_restart_prob": 0, "scale_factor": "auto", "v_init": "mean",
    "grad_desc_iter": 50, "discard_nearest_for_xy": False, "normalize": True, "lr": 0.01,
}


def test_signatures_match_the_reference() -> None:
    init = inspect.signature(GIOKL.__init__).parameters
    assert [(n, p.default) for n, p in init.items() if n not in ("self", "seed")] == [
        ("uniform_low", -1), ("uniform_high", 1), ("uniform_start_size", 20), ("dim", 768)]
    fit = inspect.signature(GIOKL.fit).parameters
    positional = [n for n, p in fit.items() if p.kind is p.POSITIONAL_OR_KEYWORD and n != "self"]
    assert positional == ["train", "X", *REFERENCE_FIT_DEFAULTS]
    for name, default in REFERENCE_FIT_DEFAULTS.items():
        assert fit[name].default == default, name


def test_fit_return_shape(mixture8: dict[str, np.ndarray]) -> None:
    pool, target = mixture8["pool"], mixture8["target"]
    gio = GIOKL(uniform_start_size=6, dim=8, seed=0)
    W, kl_divs, state = gio.fit(pool, target, max_iter=9, stop_criterion="min_kl", min_kl=-1e9)
    assert gio.random_init is True
    assert W.shape == (6 + 10, 8)  # the reference's off-by-one: max_iter + 1 picks
    assert isinstance(kl_divs, list) and len(kl_divs) == 10
    v, scale, just_reset, num_resets, _increases, adder, kl_again = state
    assert v.shape == (8,) and scale > 0 and just_reset is False and num_resets == 0
    assert adder.shape == (160 - 10 - 1, 8)  # the pick that hit max_iter is removed too, as in the reference
    assert kl_again == kl_divs
    # The last W rows are pool rows and the KL trace is the relaxed estimate of each prefix.
    picks = W[6:]
    assert all((pool == row).all(axis=1).any() for row in picks)
    assert kl_divs[-1] == pytest.approx(kl_relaxed(target, W, 5), rel=1e-9)


def test_given_D_is_kept_first_and_matches_selector(mixture8: dict[str, np.ndarray]) -> None:
    pool, target = mixture8["pool"], mixture8["target"]
    D = np.random.default_rng(0).uniform(-1, 1, size=(10, 8)).astype(np.float32)
    W, kl_divs, _ = GIOKL(dim=8).fit(pool, target, D=D, max_iter=7)
    np.testing.assert_array_equal(W[:10], D)
    sel = GIOSelector(max_iter=7, reference_max_iter=True, v_init="mean", scale_factor="auto").fit(
        pool, target, init=D)
    np.testing.assert_array_equal(W[10:], pool[sel.selected_indices_])
    np.testing.assert_allclose(kl_divs, sel.kl_trace_)


def test_seeded_uniform_start_is_reproducible(mixture8: dict[str, np.ndarray]) -> None:
    a = GIOKL(dim=8, seed=5).fit(mixture8["pool"], mixture8["target"], max_iter=4)[0]
    b = GIOKL(dim=8, seed=5).fit(mixture8["pool"], mixture8["target"], max_iter=4)[0]
    np.testing.assert_array_equal(a, b)
    norms = np.linalg.norm(a[:20], axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-6)  # normalize=True by default


def test_dim_must_match(mixture8: dict[str, np.ndarray]) -> None:
    with pytest.raises(InvalidInputError, match="dim=768"):
        GIOKL().fit(mixture8["pool"], mixture8["target"])


def test_statistical_distance_and_gradient_descend(mixture8: dict[str, np.ndarray]) -> None:
    gio = GIOKL(dim=8)
    x, w = mixture8["target"], mixture8["pool"][:12]
    assert gio.calculate_statistical_distance(x, w) == pytest.approx(kl_relaxed(x, w), rel=1e-12)
    v0 = x.mean(0)
    v = gio.gradient_descend(x, w, v0, 1.0, 0)
    np.testing.assert_allclose(v, v0, rtol=1e-6)
    v = gio.gradient_descend(x, w, v0, 5.0, 20)
    assert gio.calculate_statistical_distance(x, np.vstack([w, v])) < gio.calculate_statistical_distance(
        x, np.vstack([w, v0]))


def test_max_resets_without_resets_runs_like_the_reference(mixture8: dict[str, np.ndarray]) -> None:
    # The reference documents resets_allowed as required for 'max_resets' but does not enforce it; compat
    # accepts it too (and it then never fires), while GIOSelector refuses it.
    W, _, _ = GIOKL(dim=8, seed=0).fit(mixture8["pool"], mixture8["target"], stop_criterion="max_resets",
                                       max_iter=3)
    assert W.shape[0] == 20 + 4
