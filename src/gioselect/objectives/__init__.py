"""Objectives a greedy search minimises: the protocols (:mod:`.base`) and one module per objective.

A new objective goes in a new module here, implementing :class:`Objective` (or :class:`BoundedObjective` to be
driven by the lazy greedy, :mod:`gioselect.search.lazy_greedy`).
"""

from __future__ import annotations

from .base import BoundedObjective, Objective
from .exact_kl import ExactKL, ExactKLObjective, balanced_rank
from .facility_location import FacilityLocation

__all__ = ["BoundedObjective", "ExactKL", "ExactKLObjective", "FacilityLocation", "Objective", "balanced_rank"]
