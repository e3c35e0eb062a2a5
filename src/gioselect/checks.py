"""The paper's consistency checks, as functions returning a pass/fail verdict with the numbers behind it.

* :func:`self_consistency`: pool and target drawn from one distribution: the objective falls and GIO picks a
  large share of the pool (the reference picks 94 of 100 on its README example).
* :func:`negative_consistency`: pool far from the target: GIO picks nothing, or almost nothing.

Each runs on the paper's 2-D set-ups by default, or on arrays you pass.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import SelectionWarning
from .selector import GIOSelector
from .validation import check_fraction, check_int

__all__ = ["CheckResult", "negative_consistency", "readme_gaussians", "self_consistency"]

# The reference README's start set: 100 uniform points in [0, 8]^2, not normalised (and its step scale).
_README_START = {"start": "unit", "uniform_low": 0.0, "uniform_high": 8.0, "uniform_start_size": 100,
                 "normalize": False, "scale_factor": "auto"}


@dataclass(frozen=True)
class CheckResult:
    """Verdict of one check: ``passed``, a one-line ``message``, and the ``metrics`` it was judged on."""

    name: str
    passed: bool
    message: str
    metrics: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'} {self.name}: {self.message}"


def readme_gaussians(n: int = 100, *, mean: tuple[float, float] = (3.0, 4.0), var: float = 0.5,
                     seed: int = 0) -> np.ndarray:
    """``n`` points of the 2-D Gaussian of the reference README (mean (3, 4), covariance 0.5 I), float32."""
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(mean, np.eye(2) * var, size=n).astype(np.float32)


def _run(pool: np.ndarray, target: np.ndarray, params: dict[str, Any]) -> GIOSelector:
    opts = {"max_iter": None, **params}
    with warnings.catch_warnings():  # the checks judge how much was picked themselves (negative: nothing)
        warnings.simplefilter("ignore", SelectionWarning)
        return GIOSelector(**opts).fit(pool, target)


def self_consistency(pool: Any = None, target: Any = None, *, min_share: float = 0.5, seed: int = 0,
                     **params: Any) -> CheckResult:
    """Pool and target from one distribution: the objective must fall and at least ``min_share`` be picked.

    With no arrays, uses the reference README's set-up: 100 pool and 100 target points from the same 2-D
    Gaussian (different draws), a start set of 100 uniform points in [0, 8]^2. ``params`` go to
    :class:`~gioselect.GIOSelector` (default ``max_iter=None``: run until the stopping criterion fires).
    """
    check_fraction(min_share, "min_share")
    check_int(seed, "seed", low=0)
    if pool is None or target is None:
        pool = readme_gaussians(100, seed=seed + 5)
        target = readme_gaussians(100, seed=seed + 1)
        params = {**_README_START, **params}
    sel = _run(np.asarray(pool), np.asarray(target), {"seed": seed, **params})
    n_pool = np.asarray(pool).shape[0]
    picked = len(set(sel.selected_indices_.tolist()))
    share = picked / n_pool
    final = float(sel.kl_trace_[-1]) if len(sel.kl_trace_) else float(sel.initial_kl_)
    steps = np.diff(np.concatenate([[sel.initial_kl_], sel.kl_trace_]))
    falling = float((steps < 0).mean()) if len(steps) else 0.0
    passed = final < sel.initial_kl_ and share >= min_share
    msg = (f"picked {picked} of {n_pool} ({share:.0%}, need >= {min_share:.0%}); objective "
           f"{sel.initial_kl_:.4g} -> {final:.4g} (need a fall), falling at {falling:.0%} of picks; stop: "
           f"{sel.stop_reason_}")
    return CheckResult("self-consistency", bool(passed), msg, {
        "picked": picked, "pool_size": n_pool, "share": share, "initial_kl": float(sel.initial_kl_),
        "final_kl": final, "falling_share": falling, "stop_reason": sel.stop_reason_,
        "kl_trace": sel.kl_trace_.tolist(),
    })


def negative_consistency(pool: Any = None, target: Any = None, *, max_share: float = 0.05, seed: int = 0,
                         **params: Any) -> CheckResult:
    """Pool far from the target: at most ``max_share`` of the pool may be picked.

    With no arrays: target from the README Gaussian at (3, 4), pool from the same shape centred at
    (300, 400) (the reference picks 0 there), start set of 100 uniform points in [0, 8]^2.
    """
    check_fraction(max_share, "max_share")
    check_int(seed, "seed", low=0)
    if pool is None or target is None:
        pool = readme_gaussians(100, mean=(300.0, 400.0), seed=seed + 5)
        target = readme_gaussians(100, seed=seed + 1)
        params = {**_README_START, **params}
    sel = _run(np.asarray(pool), np.asarray(target), {"seed": seed, **params})
    n_pool = np.asarray(pool).shape[0]
    picked = len(set(sel.selected_indices_.tolist()))
    share = picked / n_pool
    passed = share <= max_share
    msg = (f"picked {picked} of {n_pool} ({share:.0%}, allowed <= {max_share:.0%}); stop: {sel.stop_reason_}")
    return CheckResult("negative-consistency", bool(passed), msg, {
        "picked": picked, "pool_size": n_pool, "share": share, "initial_kl": float(sel.initial_kl_),
        "stop_reason": sel.stop_reason_, "kl_trace": sel.kl_trace_.tolist(),
    })
