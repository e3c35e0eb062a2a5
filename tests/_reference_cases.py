"""Small deterministic cases for the conformance tests against grad-info-opt 0.1.2, and their diagnostics.

Every case gives the start set ``D`` explicitly, uses ``v_init='mean'`` and ``random_restart_prob=0``, so a
run of the reference is deterministic. All cases share the shapes (150 pool rows, 60 target rows, 12 start
points) so that the reference, which compiles its operations per array shape, reuses its compiled operations
from one case to the next; only the dimension differs.

"Well-conditioned" is measured with our own implementation (:func:`conditioning`):

* ``approach``: the closest v ever comes to a target point during every gradient step of the run. Each target
  point at distance r moves v by ``r_c**2 / r`` in one step, where ``r_c = sqrt(lr * scale * d / (n m))``
  (``critical_radius``, m = start set + v, the smallest of the run). Near ``r ~ r_c`` one step jumps by as
  much as the distance itself, and float32 (the reference) vs float64 (ours) rounding then sends v elsewhere
  (the design doc's 3-D example). The cases here keep ``approach`` several times ``r_c``.
* ``pick_margin``: at every pick, the gap between the nearest and the second-nearest unused candidate to v.
  A gap comparable to float32 rounding of v would make the projection itself a coin toss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gioselect.optimize import GIOParams
from gioselect.selector import make_search

#: grad-info-opt's fit() defaults where gioselect's differ (v_init, the stop rule, max_iter, the start set).
REFERENCE_DEFAULTS: dict[str, Any] = {"v_init": "mean", "stop_criterion": "increase", "max_iter": 100,
                                      "start": "unit", "scale_factor": "auto"}

N_POOL = 150
N_TARGET = 60
N_START = 12


@dataclass(frozen=True)
class Case:
    """Inputs of one conformance run: float32 pool, target and start set, and the extra ``fit`` arguments."""

    name: str
    pool: np.ndarray
    target: np.ndarray
    D: np.ndarray
    fit_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.pool.shape[1])


def _unit_rows(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def mixture_case(name: str, seed: int, dim: int, **fit_kwargs: Any) -> Case:
    """Pool from 4 Gaussian components (unit variance, centres ~ N(0, 9 I)), target from components 0 and 1,
    D = 12 uniform points in [-1, 1]^d scaled to unit norm (the reference's ``normalize=True`` start)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, (4, dim))
    pool = centres[rng.integers(4, size=N_POOL)] + rng.normal(0.0, 1.0, (N_POOL, dim))
    target = centres[rng.choice(2, size=N_TARGET)] + rng.normal(0.0, 1.0, (N_TARGET, dim))
    D = _unit_rows(rng.uniform(-1.0, 1.0, (N_START, dim)))
    return Case(name, pool.astype(np.float32), target.astype(np.float32), D.astype(np.float32),
                {"max_iter": 9, **fit_kwargs})


def ring_case(name: str, seed: int, **fit_kwargs: Any) -> Case:
    """2-D: target on a noisy ring of radius 3 around (3, 4), pool N((3, 4), 1.5^2 I), D uniform in [0, 8]^2.

    2-D is where v usually dives into a target point (the log-distance potential is harmonic there, so its
    only minima are the target points themselves). Inside a ring the potential is nearly flat, and with an
    explicit ``scale_factor`` v travels a little (enough to change the picks) but stays far from the ring.
    """
    rng = np.random.default_rng(seed)
    centre = np.array([3.0, 4.0])
    ang = rng.uniform(0.0, 2.0 * np.pi, N_TARGET)
    target = centre + 3.0 * np.c_[np.cos(ang), np.sin(ang)] + rng.normal(0.0, 0.15, (N_TARGET, 2))
    pool = centre + rng.normal(0.0, 1.5, (N_POOL, 2))
    D = rng.uniform(0.0, 8.0, (N_START, 2))
    kwargs = {"max_iter": 9, "normalize": False, "scale_factor": 100.0, **fit_kwargs}
    return Case(name, pool.astype(np.float32), target.astype(np.float32), D.astype(np.float32), kwargs)


def make_cases() -> dict[str, Case]:
    """The conformance cases by name (seeds chosen so that each is well-conditioned, see module doc)."""
    cases = [
        ring_case("ring2d", seed=2),
        mixture_case("mix8", seed=5, dim=8),  # stops on an increase after 8 picks
        mixture_case("mix16", seed=0, dim=16),
        mixture_case("mix8_discard", seed=2, dim=8, discard_nearest_for_xy=True),
        # min_difference stops after 4 picks; data_size (int(0.04 * 150) = 6) after 7, before max_iter.
        mixture_case("mix8_min_difference", seed=0, dim=8, stop_criterion="min_difference",
                     min_difference=0.08),
        mixture_case("mix16_data_size", seed=4, dim=16, stop_criterion="data_size", max_data_size=0.04),
    ]
    return {c.name: c for c in cases}


def pool_rows(W: Any, pool: np.ndarray, n_start: int) -> list[int]:
    """Pool row index of every selected row of ``W`` (rows after the first ``n_start``), by exact equality.

    Raises ``AssertionError`` if a row matches no pool row or several (the cases have no duplicate rows).
    """
    w = np.asarray(W, dtype=np.float32)[n_start:]
    out = []
    for j, row in enumerate(w):
        hits = np.flatnonzero((pool == row).all(axis=1))
        assert hits.size == 1, f"selected row {j} matches {hits.size} pool rows (expected exactly one)"
        out.append(int(hits[0]))
    return out


@dataclass(frozen=True)
class Conditioning:
    """Diagnostics of one of our runs (see module doc)."""

    approach: float
    critical_radius: float
    pick_margin: float
    selected: list[int]


def conditioning(case: Case) -> Conditioning:
    """Run our implementation on ``case`` and measure how close it comes to the two failure modes."""
    # The reference's fit() defaults to v_init='mean' (GIOParams defaults to 'jump'): name it.
    params = GIOParams(reference_max_iter=True, **{**REFERENCE_DEFAULTS, **case.fit_kwargs}).validate(strict=False)
    search = make_search(case.pool, case.target, params, seed=0, init=np.asarray(case.D, dtype=np.float64))
    x = search.objective.x
    approach = [math.inf]
    margins = [math.inf]
    grad = search.objective.gradient
    descend = search.objective.descend
    nearest = search.cands.nearest_unused

    def spy_gradient(v: np.ndarray) -> np.ndarray:
        approach[0] = min(approach[0], float(np.sqrt(((x - v) ** 2).sum(axis=1)).min()))
        return grad(v)

    def spy_descend(v: np.ndarray, steps: int, lr: float, scale: float) -> np.ndarray:
        # one step at a time (the same arithmetic: a step depends only on v), to see v before every step
        for _ in range(steps):
            approach[0] = min(approach[0], float(np.sqrt(((x - v) ** 2).sum(axis=1)).min()))
            v = descend(v, 1, lr, scale)
        return v

    def spy_nearest(v: np.ndarray) -> int:
        free = ~search.cands.used
        if free.sum() >= 2:
            dist = np.sort(np.sqrt(((search.cands.points[free].astype(np.float64) - v) ** 2).sum(axis=1)))
            margins[0] = min(margins[0], float(dist[1] - dist[0]))
        return nearest(v)

    search.objective.gradient = spy_gradient  # type: ignore[method-assign]
    search.objective.descend = spy_descend  # type: ignore[method-assign]
    # the separate descent and nearest-candidate calls (the same bits as the one-call pick), so the spies see them
    search.objective.descend_and_pick = lambda *a, **kw: None  # type: ignore[method-assign]
    search.cands.nearest_unused = spy_nearest  # type: ignore[method-assign]
    for _ in search.run():
        pass
    n, d = case.target.shape
    r_c = math.sqrt(params.lr * search.scale * d / (n * (case.D.shape[0] + 1)))
    return Conditioning(approach[0], r_c, margins[0], list(search.state.selected))
