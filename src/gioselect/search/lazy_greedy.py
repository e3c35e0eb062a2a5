"""The lazy greedy optimiser: the next pick of any :class:`~gioselect.objectives.base.BoundedObjective`.

Each pick evaluates candidates in order of their stale lower bounds, in batches (64, then doubling), and
stops as soon as no unevaluated candidate's bound can beat the best exact value found; the evaluated
candidates' bounds are refreshed. When the objective's :meth:`bound_key` changes every bound is dropped, and
``lazy=False`` (or an objective with no usable bound at the current set) evaluates every free candidate.

Ties: candidates whose values are within ``1e-9 * (1 + |best|)`` of the best count as tied and the lowest
index wins, in both the lazy and the exhaustive evaluation, so the two make the same picks even though a
block's floating-point rounding can differ in the last bits between them.

It knows nothing of what it minimises (the exact KL estimate, facility location, ...), and the search that
uses it (:class:`gioselect.search.exact.ExactGreedySearch`) owns the loop, the stopping rules and checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Hashable

import numpy as np

from ..objectives.base import BoundedObjective

__all__ = ["FIRST_LAZY_BATCH", "TIE_RTOL", "LazyGreedy", "tie_break"]

#: Candidates evaluated by the first lazy round of a pick; later rounds of the same pick double it.
FIRST_LAZY_BATCH = 64
#: Relative tolerance under which two candidates' values count as tied (the lowest index wins).
TIE_RTOL = 1e-9


def tie_break(idx: np.ndarray, val: np.ndarray) -> tuple[int, float]:
    """The lowest index among the candidates whose value ties the minimum, and that minimum."""
    best = float(val.min())
    tied = val <= best + TIE_RTOL * (1.0 + abs(best))
    return int(idx[tied].min()), best


class LazyGreedy:
    """Picks, one at a time, the free candidate whose addition gives the lowest objective value.

    Parameters
    ----------
    objective : BoundedObjective
        What is minimised; only its candidates' indices are seen here.
    lazy : bool, default True
        Use the stale bounds; ``False`` evaluates every free candidate at every pick (same picks, slower).

    Attributes
    ----------
    key : hashable or None
        The bound key the stored bounds are valid for.
    bounds : tuple of ndarray
        The stored bound components, one array of ``n_candidates`` per component.
    evaluations : int
        Candidates evaluated so far.
    """

    def __init__(self, objective: BoundedObjective, *, lazy: bool = True) -> None:
        self.objective = objective
        self.lazy = bool(lazy)
        self.key: Hashable | None = None
        n = objective.n_candidates
        self.bounds = tuple(np.full(n, f) for f in objective.bound_fill)
        self.evaluations = 0

    def invalidate(self, key: Hashable) -> None:
        """Drop every stored bound; the new ones are for ``key``."""
        self.key = key
        for b, f in zip(self.bounds, self.objective.bound_fill, strict=True):
            b.fill(f)

    def _evaluate(self, idx: np.ndarray) -> np.ndarray:
        vals, comps = self.objective.evaluate(idx)
        for b, c in zip(self.bounds, comps, strict=True):
            b[idx] = c
        self.evaluations += int(idx.shape[0])
        return vals

    def best(self, used: np.ndarray) -> tuple[int, float]:
        """The pick among the candidates not ``used`` (at least one) and the objective value after adding it."""
        key = self.objective.bound_key()
        if self.key != key:
            self.invalidate(key)
        free = np.flatnonzero(~used)
        lb = self.objective.lower_bounds(self.bounds) if self.lazy else None
        if lb is None:
            vals = self._evaluate(free)
            j, _ = tie_break(free, vals)
            return j, float(vals[free == j][0])
        lb[used] = np.inf  # +inf marks "not to evaluate": used, or evaluated in this pick
        seen_idx: list[np.ndarray] = []
        seen_val: list[np.ndarray] = []
        best = math.inf
        batch = FIRST_LAZY_BATCH
        remaining = free.shape[0]
        while remaining:
            take = min(batch, remaining)
            cand = np.argpartition(lb, take - 1)[:take] if take < lb.shape[0] else np.flatnonzero(lb < np.inf)
            if math.isfinite(best):
                cand = cand[lb[cand] <= best + TIE_RTOL * (1.0 + abs(best))]
            if cand.shape[0] == 0:
                break
            cand.sort()
            vals = self._evaluate(cand)
            lb[cand] = np.inf
            remaining -= cand.shape[0]
            seen_idx.append(cand)
            seen_val.append(vals)
            best = min(best, float(vals.min()))
            if not remaining or float(lb.min()) > best + TIE_RTOL * (1.0 + abs(best)):
                break
            batch *= 2
        all_idx = np.concatenate(seen_idx)
        all_val = np.concatenate(seen_val)
        j, _ = tie_break(all_idx, all_val)
        return j, float(all_val[all_idx == j][0])
