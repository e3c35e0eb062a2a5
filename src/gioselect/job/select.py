"""The select phase of every engine and entry point: GIO on the candidates, checkpointed and resumable."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..exclude import block_candidates, repel_from
from ..optimize import GIOParams, PickEvent, single_threaded_blas
from ..selector import auto_budget, make_search
from .config import Progress, no_progress
from .workdir import Checkpointer, load_gio_state

__all__ = ["PickHook", "run_gio"]

logger = logging.getLogger(__name__)

PickHook = Callable[[PickEvent], None]
"""Called after every evaluated pick (accepted, reset or stop) with its event; progress bars and tests use it."""


def run_gio(params: GIOParams, candidates: np.ndarray, target: np.ndarray, sizes: np.ndarray,
            budget_rows: int | None, seed: int, work: Path | None, prog: Progress = no_progress,
            blocked: np.ndarray | None = None, on_pick: PickHook | None = None, checkpoint_every: int = 25,
            checkpoint_seconds: float = 30.0, repel: tuple[np.ndarray | None, float] | None = None) -> Any:
    """GIO on the candidates, resumed from and checkpointed to ``work`` (None: in memory, no checkpoints).

    Every entry point runs its select phase here: the file jobs (checkpointed every ``checkpoint_every`` picks
    or ``checkpoint_seconds`` seconds) and :func:`gioselect.spark.select` (in memory). A budget is always
    filled exactly by GIO's sizes (the explode phase decides whether the last cluster is cut).

    Returns the finished search (``GIOSearch`` or ``ExactGreedySearch``). With ``stop_criterion="auto"`` and no
    ``budget_rows`` (a caller that did not size the run from the pool's rows, as the local job does), the size is
    estimated here from the candidates, each standing for its cluster's rows (``sizes``), and kept in
    ``search.size_estimate``.
    """
    if budget_rows is None and params.stop_criterion == "auto":
        sz = np.asarray(sizes, dtype=np.int64)

        def rows_as_centroids() -> Iterator[np.ndarray]:
            for i in range(candidates.shape[0]):
                row = np.asarray(candidates[i], dtype=np.float32)[None, :]
                for s0 in range(0, int(sz[i]), 65536):
                    yield np.broadcast_to(row, (min(65536, int(sz[i]) - s0), row.shape[1]))

        _, est = auto_budget(rows_as_centroids, target, params, None, seed)
        assert est is not None
        budget_rows = est.rows
        sizes = sz
    else:
        est = None
    search = make_search(candidates, target, params, seed=seed,
                         weights=sizes if budget_rows is not None else None,
                         budget=float(budget_rows) if budget_rows is not None else None,
                         budget_exact=budget_rows is not None)
    block_candidates(search, blocked)  # the exclusion set's rows (gioselect.exclude)
    if repel is not None:  # and the objective's push away from it (a no-op at weight 0)
        repel_from(search, *repel)
    ckpt = None
    if work is not None:
        sfile = work / "gio_state.npz"
        if sfile.exists():
            search.load_state_dict(load_gio_state(sfile))
            logger.info("resumed GIO after %d picks", len(search.state.selected))
        ckpt = Checkpointer(sfile, checkpoint_every, checkpoint_seconds)
    max_picks = params.max_iter if params.max_iter is not None else int(candidates.shape[0])
    # The relaxed loop is small matrix-vector products (one BLAS thread is faster); the exact greedy scores
    # candidates in blocks, where BLAS threads help.
    blas = single_threaded_blas() if params.objective == "relaxed" else contextlib.nullcontext()
    with prog("selecting (GIO)", max_picks, "pick") as upd, blas:
        upd(len(search.state.selected))
        while (ev := search.step()) is not None:
            if ev.accepted:
                upd(1)
            if on_pick is not None:
                on_pick(ev)
            if ckpt is not None:
                ckpt.maybe(search, force=search.done)
    search.size_estimate = est  # type: ignore[attr-defined]
    return search
