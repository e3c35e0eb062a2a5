"""The job on in-memory arrays (:func:`gioselect.selector.select_quantized`): the file job's phases, no files.

:func:`select_arrays` runs :func:`gioselect.job.phases.select_phases` on the local engine with the arrays as
its source: the same K-means, candidates, automatic size, GIO and row choice, with the same sub-seeds, as the
file job on the same rows; only checkpoints and the run record are left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..engines.local import LocalEngine
from ..errors import InvalidParameterError
from ..optimize import GIOParams
from ..quantize import REFINE_MODES
from ..selector import QuantizedSelection, cut_to_picks, result_from_search, validate_fit_inputs, with_size_estimate
from ..validation import check_int, check_real
from .phases import PhaseSettings, select_phases
from .seeds import Seeds

__all__ = ["ArraySource", "select_arrays"]

_NO_LIMIT = 1 << 50  # the arrays are in memory already: the engine's memory budget does not bind


class ArraySource:
    """An in-memory float32 array as an engine source (``n_rows``, ``dim``, blocks and rows by id)."""

    format = "array"

    def __init__(self, x: np.ndarray, name: str = "pool") -> None:
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.n_rows, self.dim = int(self.x.shape[0]), int(self.x.shape[1])
        self.path = Path(f"<{name} array>")
        self.embedding_field = None

    def iter_blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        for s in range(0, self.n_rows, rows):
            yield s, self.x[s : s + rows]

    def iter_views(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        return self.iter_blocks(rows)

    def read_rows(self, ids: np.ndarray) -> np.ndarray:
        return self.x[np.asarray(ids, dtype=np.int64)]

    def read_all(self) -> np.ndarray:
        return self.x


def select_arrays(pool: Any, target: Any, *, clusters: int | str = "auto", target_clusters: int | None = None,
                  budget: int | None = None, budget_exact: bool = False, seed: int = 0,
                  candidates: str = "auto", refine: str = "auto", refine_over: float | None = None,
                  **params: Any) -> QuantizedSelection:
    """:func:`gioselect.selector.select_quantized` on arrays (frames are unpacked there); same parameters.

    A budget is exact, as in the file job (``budget_exact`` is accepted for compatibility).
    """
    gp = GIOParams(**params).validate()
    pool_, target_, _ = validate_fit_inputs(pool, target, None, gp)
    check_int(seed, "seed", low=0)
    if budget is not None:
        check_int(budget, "budget", low=1)
    if refine not in REFINE_MODES:
        raise InvalidParameterError(f"refine: expected one of {', '.join(REFINE_MODES)}, got {refine!r}")
    if refine_over is not None:
        check_real(refine_over, "refine_over", low=1.0)
    settings = PhaseSettings(params=gp, clusters=clusters, target_clusters=target_clusters,
                             candidates=candidates, refine=refine, refine_over=refine_over, memory_budget=_NO_LIMIT)
    engine = LocalEngine(_NO_LIMIT)
    sel = select_phases(engine, ArraySource(pool_), np.ascontiguousarray(target_, dtype=np.float32), None,
                        settings, budget, Seeds(seed))
    res = with_size_estimate(result_from_search(sel.search), sel.size_estimate)
    if sel.size_estimate is not None and sel.size_estimate.f1 is not None:  # the F1 rule: the cut picks
        res = cut_to_picks(res, sel.picks, sel.size_estimate.as_dict())
    ids = np.asarray(sel.selection, dtype=np.int64)
    if sel.assignment is None:
        return QuantizedSelection(ids, res, int(pool_.shape[0]), int(sel.target_points.shape[0]), sel.plan.rule,
                                  None)
    return QuantizedSelection(ids, res, int(sel.candidates.shape[0]), int(sel.target_points.shape[0]), sel.plan.rule,
                              sel.candidates_mode, labels=sel.assignment.labels,
                              refine_rule=sel.refine_plan.rule if sel.refine_plan is not None else "")
