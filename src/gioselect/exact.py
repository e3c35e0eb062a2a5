"""The exact greedy search under its old import path: :mod:`gioselect.search.exact` (the search),
:mod:`gioselect.objectives.exact_kl` (the objective) and :mod:`gioselect.search.lazy_greedy` (the optimiser).
"""

from __future__ import annotations

from .objectives.exact_kl import ExactKL, balanced_rank
from .search.exact import EXACT_OBJECTIVES, RANK_SCHEDULES, ExactGreedySearch, ExactLoopState

__all__ = ["EXACT_OBJECTIVES", "RANK_SCHEDULES", "ExactGreedySearch", "ExactKL", "ExactLoopState", "balanced_rank"]
