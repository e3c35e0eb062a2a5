"""The objective protocols: a set function over the rows of a candidate array, grown one row at a time.

An objective is what a greedy search minimises; the search (:mod:`gioselect.search`) decides which row to
add. :class:`Objective` is the whole of what a plain greedy needs; :class:`BoundedObjective` adds the stale
bounds that let :class:`gioselect.search.lazy_greedy.LazyGreedy` skip most evaluations, as apricot keeps its
optimisers apart from its set functions.

Implementations: :class:`gioselect.objectives.exact_kl.ExactKLObjective` (the exact k-NN estimate of
KL(target || selection), ``objective="exact"``/``"exact-sym"``) and
:class:`gioselect.objectives.facility_location.FacilityLocation` (closed form, the reference the lazy greedy
is tested on). The relaxed estimate that the gradient search follows, :class:`gioselect.divergence.RelaxedKL`,
is a different kind of objective (a value and a gradient at a free point) and is not one of these.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["BoundedObjective", "Objective"]


@runtime_checkable
class Objective(Protocol):
    """A set function of the current set W, minimised by adding candidate rows one at a time.

    The gain of adding candidate c is ``value() - values_after([c])[0]`` (where ``value()`` is defined).
    """

    @property
    def n_candidates(self) -> int:
        """Number of candidate rows (indices run from 0 to ``n_candidates - 1``)."""
        ...

    def value(self) -> float:
        """The objective of the current set, measured as the next addition will be; NaN where undefined."""
        ...

    def values_after(self, idx: np.ndarray) -> np.ndarray:
        """The objective of W plus candidate ``idx[j]``, for each j (float64, shape ``idx.shape``)."""
        ...

    def add(self, idx: int) -> None:
        """Add candidate ``idx`` to W."""
        ...


@runtime_checkable
class BoundedObjective(Objective, Protocol):
    """An :class:`Objective` whose evaluations leave bounds that stay valid while W grows.

    Evaluating candidate c at a set W returns, besides its value, one number per bound component (``q`` of
    them). From those stale numbers, :meth:`lower_bounds` gives a lower bound of ``values_after(c)`` at every
    later W with the same :meth:`bound_key`; when the key changes, the stored bounds are dropped.
    """

    @property
    def bound_fill(self) -> tuple[float, ...]:
        """The ``q`` components of a candidate never evaluated (its lower bound must be ``-inf``)."""
        ...

    def bound_key(self) -> Hashable:
        """Stored bounds are valid while this is unchanged (e.g. the estimator's rank)."""
        ...

    def evaluate(self, idx: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """``values_after(idx)`` and the ``q`` bound components of each candidate (each shape ``idx.shape``)."""
        ...

    def lower_bounds(self, bounds: tuple[np.ndarray, ...]) -> np.ndarray | None:
        """Lower bounds of ``values_after`` of every candidate from its stored components (a new array);
        ``None`` when no bound is usable at the current set (every candidate is then evaluated)."""
        ...
