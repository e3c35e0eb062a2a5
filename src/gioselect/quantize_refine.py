"""``refine="auto"``: which row-level pass a quantised run with a known size uses (re-exported by
:mod:`gioselect.quantize`).

A quantised run with a row size (``--budget``, or the estimate rule's size) keeps that many rows of the chosen
clusters through a row-level pass (:func:`gioselect.quantize.refine`). ``gio`` (GIO again on every row of the
chosen clusters) is the precise pass: it held every measured target within 2 points of unquantised GIO, where
``knn`` missed four Fashion-MNIST classes on every seed (EXPERIMENTS.md, "Quantised selection"). But every GIO
pick scans the target ``grad_desc_iter`` times and the read rows once, so its cost grows with the square of the
size. :func:`plan_refine` estimates that cost (:func:`gio_pass_work`) and takes ``gio`` while it is at most
:data:`REFINE_AUTO_MAX_WORK`, ``knn`` above; each pass with its own ``over`` (:func:`default_over`) unless one is
given. The decision, in words, goes into the CLI output, the manifest and the report, as ``clusters="auto"``'s
(:class:`gioselect.quantize.ClusterPlan`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import InvalidParameterError

__all__ = ["REFINE_AUTO_MAX_WORK", "REFINE_GIO_OVER", "REFINE_OVER", "RefinePlan", "default_over", "gio_pass_work",
           "plan_refine"]

#: The ``gio`` pass reads the rows of the chosen clusters worth this many times the size (fmq5: 30 of 30
#: Fashion-MNIST class-seed pairs within 2 points at 2, 28 of 30 at 1.5).
REFINE_GIO_OVER = 2.0
#: ``refine="auto"`` takes ``gio`` while :func:`gio_pass_work` is at most this, ``knn`` above. Measured (EXPERIMENTS.md,
#: "Quantised selection", auto6): 0.24-0.46 CPU ns per unit up to 1.3e11 units, so at most about 5-9 CPU s, against
#: 9-15 CPU s for the rest of a quantised job at 120,000 rows (50-D / 384-D) and about 90 at 1e6 x 384. With 300
#: target points that is up to about 10,900 rows at 50-D and 2,580 at 384-D. It was 1e10 until the F1 rule's sizes
#: got the pass: on Fashion-MNIST they fell at 1.0-1.4e10 units for 5 classes of 10, where ``knn`` cost 0.01-0.05
#: F1 against whole clusters and ``gio`` gained 0.00-0.04 (EXPERIMENTS.md, "The automatic size of a quantised run,
#: then the row-level pass").
REFINE_AUTO_MAX_WORK = 2e10
#: Every other pass ranks the rows of chosen clusters worth this many times the size (``refine``'s ``over``). 1.25
#: would meet the pass's cost goal at 1e6 rows but lost target rows on mixed clusters (EXPERIMENTS.md).
REFINE_OVER = 1.5


def default_over(how: str) -> float:
    """The ``over`` a pass uses when none is given: :data:`REFINE_GIO_OVER` for ``gio``, :data:`REFINE_OVER` for
    the others."""
    return REFINE_GIO_OVER if how == "gio" else REFINE_OVER


def gio_pass_work(n_rows: int, dim: int, n_target: int, over: float, grad_desc_iter: int = 50) -> float:
    """The ``gio`` pass's cost model: ``n_rows * dim * (grad_desc_iter * n_target + ceil(over * n_rows))``.

    ``n_rows`` picks, each ``grad_desc_iter`` gradient steps over the ``n_target`` target points the run uses and
    one scan of the ``ceil(over * n_rows)`` read rows, every term ``dim`` multiply-adds (the three-times-longer
    first descent is left out).
    """
    return float(n_rows) * float(dim) * (float(grad_desc_iter) * float(n_target) + math.ceil(over * n_rows))


@dataclass(frozen=True)
class RefinePlan:
    """The row-level pass a quantised run uses: ``refine`` (resolved: never ``"auto"``), its ``over``, and
    ``rule``, the decision in words."""

    refine: str
    over: float
    rule: str


def plan_refine(refine: str, over: float | None, n_rows: int | None, dim: int, n_target: int, *,
                objective: str = "relaxed", grad_desc_iter: int = 50) -> RefinePlan:
    """Resolve ``refine`` (``"auto"`` or a pass) and ``over`` (None: :func:`default_over`) for a quantised run
    keeping ``n_rows`` rows (None: no row size, so no pass: the chosen clusters are exploded whole) of ``dim``
    columns, GIO's target having ``n_target`` points.

    ``"auto"``: ``gio`` while :func:`gio_pass_work` is at most :data:`REFINE_AUTO_MAX_WORK` (and the objective is
    the relaxed one, the only one the pass's cost was measured for), ``knn`` above. An explicit pass always wins.
    """
    if refine == "none":
        return RefinePlan("none", default_over("none") if over is None else float(over),
                          "explicit: none (the chosen clusters exploded whole)")
    if n_rows is None:
        return RefinePlan(refine, default_over(refine) if over is None else float(over),
                          f"{'auto' if refine == 'auto' else 'explicit: ' + refine}: no row-level pass, the size "
                          "is GIO's own (stop rule), so the chosen clusters are exploded whole")
    if refine != "auto":
        o = default_over(refine) if over is None else float(over)
        return RefinePlan(refine, o, f"explicit: {refine}, over {o:g}")
    if over is not None and not over >= 1.0:
        raise InvalidParameterError(f"refine_over: expected a number >= 1, got {over!r}")
    o_gio = REFINE_GIO_OVER if over is None else float(over)
    work = gio_pass_work(n_rows, dim, n_target, o_gio, grad_desc_iter)
    what = (f"the gio pass's work {n_rows} rows x {dim}-D x ({grad_desc_iter} x {n_target} target points + "
            f"{math.ceil(o_gio * n_rows)} read rows) = {work:.4g}")
    if objective != "relaxed":
        o = REFINE_OVER if over is None else float(over)
        return RefinePlan("knn", o, f"auto: knn, over {o:g} (objective {objective!r}: the gio pass's cost is "
                                    "measured for the relaxed objective only)")
    if work <= REFINE_AUTO_MAX_WORK:
        return RefinePlan("gio", o_gio, f"auto: gio, over {o_gio:g} ({what} <= {REFINE_AUTO_MAX_WORK:.4g})")
    o = REFINE_OVER if over is None else float(over)
    return RefinePlan("knn", o, f"auto: knn, over {o:g} ({what} > {REFINE_AUTO_MAX_WORK:.4g})")
