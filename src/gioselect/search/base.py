"""The :class:`Search` protocol: what the selector, the job and the CLI need of a selection run.

Two searches implement it: the relaxed gradient search :class:`gioselect.optimize.GIOSearch` (GIO's own loop;
its objective is :class:`gioselect.divergence.RelaxedKL`) and the exact greedy
:class:`gioselect.search.exact.ExactGreedySearch` (over :mod:`gioselect.objectives`, picked by
:class:`gioselect.search.lazy_greedy.LazyGreedy`). :func:`gioselect.search.make_search` builds one by
``params.objective``. A new search goes in a new module of this package and is added to ``make_search``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..optimize import GIOParams, LoopState, PickEvent

__all__ = ["Search"]


@runtime_checkable
class Search(Protocol):
    """One selection run, driven one pick at a time, checkpointable.

    Attributes (read-only here): ``params`` (the run's :class:`~gioselect.optimize.GIOParams`), ``state``
    (a :class:`~gioselect.optimize.LoopState`: picks, trace, history, stop reason), ``initial_kl`` (the
    objective of the start set), ``scale`` (the gradient scale, NaN without a gradient), ``start_points`` and
    ``init_indices`` (the start set and the pool rows it was drawn from).
    """

    @property
    def params(self) -> GIOParams: ...

    @property
    def state(self) -> LoopState: ...

    @property
    def initial_kl(self) -> float: ...

    @property
    def scale(self) -> float: ...

    @property
    def start_points(self) -> np.ndarray: ...

    @property
    def init_indices(self) -> np.ndarray | None: ...

    @property
    def done(self) -> bool:
        """Whether the run has ended (``state.stop_reason`` is set)."""
        ...

    def step(self) -> PickEvent | None:
        """Make one pick (or end the run); ``None`` once the run has ended."""
        ...

    def run(self) -> Iterator[PickEvent]:
        """Iterate over the picks until the run ends (the last event carries ``stop_reason``)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly: arrays and JSON-able scalars (a ``"scalars"`` dict)."""
        ...

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` taken from a run on the same inputs and parameters."""
        ...
