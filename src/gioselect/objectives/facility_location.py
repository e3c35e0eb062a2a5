"""Facility location over the target as a :class:`~gioselect.objectives.base.BoundedObjective`.

``f(W) = sum_t max_{w in W} max(0, cos(t, w))`` (0 for the empty set), minimised as ``-f``: the same function
the facility-location baseline :func:`gioselect.peers.facility_location` maximises. It is monotone and
submodular, so a candidate's gain can only shrink as W grows and the gain found at an earlier W is an
upper bound at every later one: its single bound component is that stale gain, and the bound key never changes.

Small and closed-form, it is the second objective the lazy greedy (:mod:`gioselect.search.lazy_greedy`)
is tested on, where lazy and naive greedy must make the same picks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..validation import check_embeddings

__all__ = ["FacilityLocation"]

# Entries (float64) of one block of candidate-to-target similarities: 32 MiB.
_BLOCK_ELEMS = 1 << 22


def _unit(a: np.ndarray) -> np.ndarray:
    """float64 rows scaled to unit norm (zero rows stay zero)."""
    x = np.asarray(a, dtype=np.float64)
    norm = np.sqrt(np.einsum("ij,ij->i", x, x))
    norm[norm == 0.0] = 1.0
    return x / norm[:, None]


class FacilityLocation:
    """``-sum_t max_{w in W} max(0, cos(t, w))`` over candidate rows, grown one row at a time.

    Parameters
    ----------
    candidates : array of shape (M, d)
        Validated and held as float32; similarities to the target are computed a block of rows at a time.
    target : array of shape (n, d)
        The rows to cover.

    Notes
    -----
    Small and in memory (a closed-form reference for the optimiser); the pool-sized baseline is
    :func:`gioselect.peers.facility_location`.
    """

    def __init__(self, candidates: Any, target: Any) -> None:
        self.candidates = check_embeddings(candidates, "candidates")
        self.x = _unit(check_embeddings(target, "target", dim=self.candidates.shape[1]))
        self.n_candidates = int(self.candidates.shape[0])
        self.best = np.zeros(self.x.shape[0])  # each target row's cover by W
        self.bound_fill = (np.inf,)
        self._rows = max(1, _BLOCK_ELEMS // max(1, self.x.shape[0]))

    def value(self) -> float:
        """``-f(W)``."""
        return -float(self.best.sum())

    def gains(self, idx: np.ndarray) -> np.ndarray:
        """``f(W + c) - f(W)`` for each candidate ``idx[j]`` (float64, >= 0), in blocks of rows."""
        out = np.empty(idx.shape[0])
        for s in range(0, idx.shape[0], self._rows):
            sims = _unit(self.candidates[idx[s : s + self._rows]]) @ self.x.T
            out[s : s + self._rows] = np.maximum(sims - self.best[None, :], 0.0).sum(axis=1)
        return out

    def values_after(self, idx: np.ndarray) -> np.ndarray:
        """``-f(W + c)`` for each candidate ``idx[j]``."""
        return self.value() - self.gains(idx)

    def bound_key(self) -> int:
        """Always 0: a stale gain bounds every later one."""
        return 0

    def evaluate(self, idx: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Values after adding each candidate, and its gain as the bound component."""
        g = self.gains(idx)
        return self.value() - g, (g,)

    def lower_bounds(self, bounds: tuple[np.ndarray, ...]) -> np.ndarray:
        """``-f(W) - stale gain``: the gain can only have shrunk since."""
        return self.value() - bounds[0]

    def add(self, idx: int) -> None:
        """Add candidate ``idx``: each target row's cover becomes the larger of the two."""
        sims = _unit(self.candidates[idx : idx + 1]) @ self.x.T
        np.maximum(self.best, np.maximum(sims[0], 0.0), out=self.best)
