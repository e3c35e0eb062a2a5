"""Conformance with the reference package grad-info-opt 0.1.2 (module ``GIO``, class ``GIO.GIOKL.GIOKL``).

The reference is run on small deterministic cases (explicit start set ``D``, ``v_init='mean'``,
``random_restart_prob=0``; see ``_reference_cases.py``) with the same float32 inputs as ours, and we check:
the same pool rows picked in the same order, the same KL trace (1e-3 relative), and the same values of
``calculate_statistical_distance`` (1e-4 relative).

The reference re-traces its gradient at every step and compiles its operations for every new array shape, so
it needs seconds per pick: its SparkSession is started once per module and each case is run once and cached.
All cases share their array shapes, which lets the reference reuse compiled operations between cases.

Why only well-conditioned cases: the reference descends in float32 with the expanded distance formula, we in
float64. When v passes very close to a target point the fixed-size step on a sum of log-distances spikes, and
the rounding difference then sends v somewhere else entirely (typical of 2-D mixtures with the automatic
scale, where v dives into a target point). Each case asserts, as a precondition computed with our code, that
v's closest approach to any target point stays several times the radius at which one step jumps as far as the
distance itself, and that every pick is unambiguous (the nearest unused candidate beats the second by 1e-3).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from gioselect import GIOSelector
from gioselect.compat import GIOKL
from gioselect.divergence import kl_relaxed

try:
    from _reference_cases import REFERENCE_DEFAULTS, Case, conditioning, make_cases, pool_rows
except ImportError:  # tests/ imported as a package
    from tests._reference_cases import REFERENCE_DEFAULTS, Case, conditioning, make_cases, pool_rows

_HINT = "`make test` installs it (or: pip install --no-deps grad-info-opt==0.1.2; plus jax, pyspark, pandas)"
jnp = pytest.importorskip("jax.numpy", reason=f"jax is needed to run the reference; {_HINT}")
ref_module = pytest.importorskip(
    "GIO.GIOKL", reason=f"the reference grad-info-opt 0.1.2 (module GIO) is not importable; {_HINT}"
)

pytestmark = [
    pytest.mark.reference,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

CASES = make_cases()
#: Closest approach of v to a target point, in units of the critical radius (see _reference_cases).
MIN_APPROACH_RATIO = 4.0
#: Smallest gap between the nearest and second-nearest unused candidate at any pick.
MIN_PICK_MARGIN = 1e-3


@pytest.fixture(scope="module")
def reference() -> Any:
    """One reference GIOKL (its constructor starts a SparkSession, which takes seconds)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    try:
        return ref_module.GIOKL(dim=2)
    except Exception as exc:  # no Java, no loopback, ...
        pytest.skip(f"the reference's SparkSession could not start ({type(exc).__name__}: {exc})")


RefFit = tuple[list[int], list[float], float]


@pytest.fixture(scope="module")
def reference_fit(reference: Any) -> Callable[[str], RefFit]:
    """``get(case_name) -> (pool rows picked, KL trace, scale factor)``, each case run once per module."""
    cache: dict[str, RefFit] = {}

    def get(name: str) -> RefFit:
        if name not in cache:
            c = CASES[name]
            W, kl_divs, state = reference.fit(jnp.asarray(c.pool), jnp.asarray(c.target), D=jnp.asarray(c.D),
                                              **c.fit_kwargs)
            cache[name] = (pool_rows(W, c.pool, c.D.shape[0]), [float(x) for x in kl_divs], float(state[1]))
        return cache[name]

    return get


def _check_conditioning(case: Case) -> list[int]:
    cond = conditioning(case)
    assert cond.approach > MIN_APPROACH_RATIO * cond.critical_radius, (
        f"precondition: case {case.name} is ill-conditioned (v comes within {cond.approach:.3g} of a target "
        f"point; critical radius {cond.critical_radius:.3g}); choose another seed"
    )
    assert cond.pick_margin > MIN_PICK_MARGIN, (
        f"precondition: case {case.name} has a near-tie between candidates ({cond.pick_margin:.3g})"
    )
    return cond.selected


@pytest.mark.parametrize("name", list(CASES))
def test_fit_matches_reference(name: str, reference_fit: Callable[[str], RefFit]) -> None:
    case = CASES[name]
    our_diag_rows = _check_conditioning(case)
    ref_rows, ref_kl, ref_scale = reference_fit(name)

    W, kl_divs, state = GIOKL(dim=case.dim).fit(case.pool, case.target, D=case.D, **case.fit_kwargs)
    assert isinstance(W, np.ndarray)
    assert W.shape == (case.D.shape[0] + len(ref_rows), case.dim)
    np.testing.assert_array_equal(W[: case.D.shape[0]], case.D)
    our_rows = pool_rows(W, case.pool, case.D.shape[0])

    assert len(our_rows) == len(ref_rows), f"{name}: we picked {len(our_rows)}, the reference {len(ref_rows)}"
    first_diff = next((j for j, (a, b) in enumerate(zip(our_rows, ref_rows, strict=True)) if a != b), None)
    assert our_rows == ref_rows, f"{name}: first differing pick {first_diff}: ours {our_rows}, ref {ref_rows}"
    np.testing.assert_allclose(kl_divs, ref_kl, rtol=1e-3, err_msg=f"{name}: KL trace")
    if case.fit_kwargs.get("scale_factor", "auto") == "auto":
        assert state[1] == pytest.approx(ref_scale, rel=1e-3)
    assert our_diag_rows == our_rows  # the diagnostics ran the very same search


@pytest.mark.parametrize("name", ["mix16", "mix8_discard", "mix16_data_size"])
def test_selector_matches_reference(name: str, reference_fit: Callable[[str], RefFit]) -> None:
    # The public estimator (not only the compat layer) gives the reference's pool rows, start set excluded.
    case = CASES[name]
    ref_rows, ref_kl, _ = reference_fit(name)
    # The reference's fit() defaults to v_init='mean'; GIOSelector's default is 'jump', so name it.
    sel = GIOSelector(reference_max_iter=True, **{**REFERENCE_DEFAULTS, **case.fit_kwargs}).fit(
        case.pool, case.target, init=case.D)
    assert sel.selected_indices_.tolist() == ref_rows
    np.testing.assert_allclose(sel.kl_trace_, ref_kl, rtol=1e-3)


def test_stop_criteria_cases_stop_early(reference_fit: Callable[[str], RefFit]) -> None:
    # The criterion cases only test something if the reference stopped on the criterion, before max_iter.
    for name in ("mix8", "mix8_min_difference", "mix16_data_size"):
        rows = reference_fit(name)[0]
        assert 0 < len(rows) < CASES[name].fit_kwargs["max_iter"] + 1, name
    assert len(reference_fit("mix16_data_size")[0]) == int(0.04 * 150) + 1


def _pair(seed: int, n: int, m: int, dim: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (n, dim))
    y = rng.normal(shift, 1.3, (m, dim))
    return x.astype(np.float32), y.astype(np.float32)


PAIRS = {  # (seed, n, m, dim, shift, k)
    "2d": (10, 40, 25, 2, 0.7, 5),
    "8d": (11, 50, 30, 8, 0.5, 5),
    "16d_k3": (12, 30, 45, 16, 0.3, 3),
}


@pytest.mark.parametrize("discard", [False, True])
@pytest.mark.parametrize("pair", list(PAIRS))
def test_statistical_distance_matches_reference(pair: str, discard: bool, reference: Any) -> None:
    seed, n, m, dim, shift, k = PAIRS[pair]
    x, y = _pair(seed, n, m, dim, shift)
    ref_value = float(reference.calculate_statistical_distance(jnp.asarray(x), jnp.asarray(y), k=k,
                                                               discard_nearest_for_xy=discard))
    assert abs(ref_value) > 0.1  # a relative comparison needs a value away from 0
    ours = GIOKL(dim=dim).calculate_statistical_distance(x, y, k=k, discard_nearest_for_xy=discard)
    assert ours == pytest.approx(ref_value, rel=1e-4)
    assert kl_relaxed(x, y, k, discard_nearest_for_xy=discard) == pytest.approx(ref_value, rel=1e-4)


@pytest.mark.parametrize("discard", [False, True])
def test_gradient_descend_matches_reference(discard: bool, reference: Any) -> None:
    # The first pick's descent of the mix8 case: 150 steps from the target mean with the automatic scale.
    case = CASES["mix8"]
    v0 = case.target.astype(np.float64).mean(axis=0).astype(np.float32)
    ours_kl = GIOKL(dim=case.dim)
    scale = 300.0
    ours = ours_kl.gradient_descend(case.target, case.D, v0, scale, 150, discard_nearest_for_xy=discard)
    ref = reference.gradient_descend(jnp.asarray(case.target), jnp.asarray(case.D), jnp.asarray(v0), scale,
                                     150, discard_nearest_for_xy=discard)
    ref = np.asarray(ref, dtype=np.float64)
    assert np.linalg.norm(ref - v0) > 0.5  # v travelled: the comparison is not trivial
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * float(np.linalg.norm(ref)))
