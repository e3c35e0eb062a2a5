"""Stopping criteria of the GIO loop: small objects behind one protocol, chosen by name only at the edge.

Six criteria are those of grad-info-opt 0.1.2 (``stop_criterion=...``). Three more never fire by themselves:
they name an automatic size, which the selector, ``select_quantized``, the job and the Spark job turn into a
size through one function (:func:`gioselect.search.size_rule`). ``"auto"`` (the default) and its alias ``"f1"``
follow the plug-in F1 of the picks (:class:`gioselect.search.F1Sizer`), end the run when it stops improving and
cut the selection to its best prefix. ``"estimate"`` makes the estimated number of target-like pool rows
(:func:`gioselect.sizing.estimate_target_rows`) the run's row budget before it starts.
Each is asked, after the
candidate pick has been evaluated and before it is accepted, whether the loop should stop. What happens then
(stop, or with ``resets_allowed`` refill the pool and go on) is the loop's business, not the criterion's.
``max_iter`` and a row budget are not criteria here: they always apply, whatever the criterion. A budget
also silences the criterion: a run given a budget of N rows returns N rows (or the whole pool, if smaller),
whatever ``stop_criterion`` says.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol

from .validation import check_choice, check_fraction, check_int, check_real

__all__ = [
    "CRITERIA",
    "F1",
    "SIZE_RULES",
    "Auto",
    "DataSize",
    "Estimate",
    "Increase",
    "MaxResets",
    "MinDifference",
    "MinKL",
    "SequentialIncrease",
    "StopContext",
    "StoppingCriterion",
    "make_criterion",
]


@dataclass(frozen=True)
class StopContext:
    """What a criterion sees about the pick under test.

    Attributes
    ----------
    kl : float
        Objective value with the candidate pick added.
    kl_prev : float
        Objective value before it (after the last accepted pick, or at the start).
    n_accepted : int
        Picks accepted so far (the reference's ``i``: a reset takes one off).
    pool_size : int
        Number of candidates (``len(train)`` in the reference).
    num_resets : int
        Resets done so far.
    consecutive_increases : int
        Increases of the objective in a row just before this pick.
    """

    kl: float
    kl_prev: float
    n_accepted: int
    pool_size: int
    num_resets: int
    consecutive_increases: int

    @property
    def increased(self) -> bool:
        return self.kl - self.kl_prev > 0


class StoppingCriterion(Protocol):
    """A stopping rule: ``triggered(ctx)`` is true when the pick under test should end the run."""

    name: ClassVar[str]

    def triggered(self, ctx: StopContext) -> bool: ...


@dataclass(frozen=True)
class Increase:
    """Stop when the objective goes up."""

    name: ClassVar[str] = "increase"

    def triggered(self, ctx: StopContext) -> bool:
        return ctx.increased


@dataclass(frozen=True)
class MaxResets:
    """Reset on every increase of the objective; stop on the one after ``max_resets`` resets.

    Needs ``resets_allowed`` (the loop turns a firing criterion into a reset while resets remain).
    ``reference_bug=True`` reproduces grad-info-opt 0.1.2, which fires only once ``num_resets == max_resets``
    - a count no reset can ever reach, since resets happen only when the criterion fires - so it never stops.
    """

    max_resets: int = 2
    reference_bug: bool = False
    name: ClassVar[str] = "max_resets"

    def triggered(self, ctx: StopContext) -> bool:
        if self.reference_bug:
            return ctx.increased and ctx.num_resets == self.max_resets
        return ctx.increased


@dataclass(frozen=True)
class MinDifference:
    """Stop when the improvement ``kl_prev - kl`` is below ``min_difference``."""

    min_difference: float = 0.0
    name: ClassVar[str] = "min_difference"

    def triggered(self, ctx: StopContext) -> bool:
        return ctx.kl_prev - ctx.kl < self.min_difference


@dataclass(frozen=True)
class SequentialIncrease:
    """Tolerate ``max_sequential_increases`` increases in a row; stop on the next one.

    The points accepted during the tolerated increases stay in the selection.
    """

    max_sequential_increases: int = 3
    name: ClassVar[str] = "sequential_increase_tolerance"

    def triggered(self, ctx: StopContext) -> bool:
        return ctx.increased and ctx.consecutive_increases >= self.max_sequential_increases


@dataclass(frozen=True)
class MinKL:
    """Stop when the objective falls below ``min_kl``."""

    min_kl: float = 0.0
    name: ClassVar[str] = "min_kl"

    def triggered(self, ctx: StopContext) -> bool:
        return ctx.kl < self.min_kl


@dataclass(frozen=True)
class DataSize:
    """Stop once more than ``max_data_size`` (a fraction of the pool) picks have been accepted."""

    max_data_size: float = 1.0
    name: ClassVar[str] = "data_size"

    def triggered(self, ctx: StopContext) -> bool:
        return ctx.n_accepted > int(self.max_data_size * ctx.pool_size)


@dataclass(frozen=True)
class Auto:
    """Never fires: the automatic size (the default), the F1 rule (:func:`gioselect.search.size_rule`; the same
    as ``"f1"``).

    A search built directly with ``stop_criterion="auto"`` and no budget runs to ``max_iter`` or the end of the
    pool.
    """

    name: ClassVar[str] = "auto"

    def triggered(self, ctx: StopContext) -> bool:
        return False


@dataclass(frozen=True)
class F1:
    """Never fires by itself: the caller follows the plug-in F1 of the picks (:class:`gioselect.sizing.F1Prefix`)
    and cuts the selection to the largest prefix within 2% of its best (``stop_criterion="f1"``, an alias of
    ``"auto"``).

    A search built directly with ``stop_criterion="f1"`` runs to ``max_iter`` or the end of the pool.
    """

    name: ClassVar[str] = "f1"

    def triggered(self, ctx: StopContext) -> bool:
        return False


@dataclass(frozen=True)
class Estimate:
    """Never fires: the run's size is the row budget set from the estimated number of target-like pool rows
    (:func:`gioselect.sizing.estimate_target_rows`; before issue 17's F1 rule, the default ``"auto"``).

    A search built directly with ``stop_criterion="estimate"`` and no budget runs to ``max_iter`` or the end of
    the pool.
    """

    name: ClassVar[str] = "estimate"

    def triggered(self, ctx: StopContext) -> bool:
        return False


#: Registry: criterion name -> (class, name of its one parameter or None).
CRITERIA: dict[str, tuple[type, str | None]] = {
    "auto": (Auto, None),
    "f1": (F1, None),
    "estimate": (Estimate, None),
    "increase": (Increase, None),
    "max_resets": (MaxResets, "max_resets"),
    "min_difference": (MinDifference, "min_difference"),
    "sequential_increase_tolerance": (SequentialIncrease, "max_sequential_increases"),
    "min_kl": (MinKL, "min_kl"),
    "data_size": (DataSize, "max_data_size"),
}


#: The criteria that name an automatic size (never fire; :func:`gioselect.search.size_rule` decides the size).
SIZE_RULES = ("auto", "f1", "estimate")


def make_criterion(name: str, *, reference_max_resets_bug: bool = False, **params: Any) -> StoppingCriterion:
    """Build the criterion called ``name`` from the loop's parameters (unused ones are ignored).

    Parameters
    ----------
    name : str
        One of :data:`CRITERIA`.
    **params
        ``max_resets`` (int >= 0), ``min_difference`` (real), ``max_sequential_increases`` (int >= 0),
        ``min_kl`` (real), ``max_data_size`` (fraction in (0, 1]); each is checked only for the criterion
        that uses it.
    reference_max_resets_bug : bool, default False
        Build ``max_resets`` with grad-info-opt's never-firing condition.
    """
    check_choice(name, "stop_criterion", CRITERIA)
    cls, pname = CRITERIA[name]
    if pname is None:
        return cls()
    if pname not in params:
        return cls(reference_bug=reference_max_resets_bug) if name == "max_resets" else cls()
    value = params[pname]
    if name == "max_resets":
        return MaxResets(check_int(value, pname, low=0), bool(reference_max_resets_bug))
    if pname == "max_sequential_increases":
        value = check_int(value, pname, low=0)
    elif pname == "max_data_size":
        value = check_fraction(value, pname, allow_zero=False)
    else:
        value = check_real(value, pname)
    return cls(value)


def describe(criterion: StoppingCriterion) -> dict[str, Any]:
    """``{"name": ..., <param>: value}`` for run records."""
    return {"name": criterion.name, **asdict(criterion)}  # type: ignore[call-overload]
