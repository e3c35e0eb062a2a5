"""The select phase of every engine and entry point: GIO on the candidates, checkpointed and resumable."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..exclude import block_candidates, repel_from
from ..optimize import GIOParams, PickEvent, single_threaded_blas
from ..selector import F1Sizer, make_search
from .config import Progress, no_progress
from .workdir import Checkpointer, load_gio_state

__all__ = ["PickHook", "run_gio"]

logger = logging.getLogger(__name__)

PickHook = Callable[[PickEvent], None]
"""Called after every evaluated pick (accepted, reset or stop) with its event; progress bars and tests use it."""


def run_gio(params: GIOParams, candidates: np.ndarray, target: np.ndarray, sizes: np.ndarray,
            budget_rows: int | None, seed: int, work: Path | None, prog: Progress = no_progress,
            blocked: np.ndarray | None = None, on_pick: PickHook | None = None, checkpoint_every: int = 25,
            checkpoint_seconds: float = 30.0, repel: tuple[np.ndarray | None, float] | None = None,
            sizer: F1Sizer | None = None, reach: Callable[[int], int] | None = None) -> Any:
    """GIO on the candidates, resumed from and checkpointed to ``work`` (None: in memory, no checkpoints).

    Every entry point runs its select phase here (:func:`gioselect.job.phases.select_phases`): the file jobs
    (checkpointed every ``checkpoint_every`` picks or ``checkpoint_seconds`` seconds), :func:`gioselect.spark.select`
    and :func:`gioselect.selector.select_quantized` (in memory). A budget is always
    filled exactly by GIO's sizes (the explode phase decides whether the last cluster is cut).

    Returns the finished search (``GIOSearch`` or ``ExactGreedySearch``). The estimated size (the estimate rule,
    :func:`gioselect.search.size_rule`) is decided before, from the pool's rows
    (:func:`gioselect.job.phases.select_phases`), and arrives as ``budget_rows``; without a budget the search runs
    to its own stop rule. With ``sizer`` (the F1 rule: ``stop_criterion="auto"`` or ``"f1"``) every
    accepted pick is fed to it and the run ends (stop reason ``"auto-f1"``) once its F1 has stopped improving; a
    resumed run feeds it the picks already made first, so it ends where the uninterrupted run would.
    ``reach`` (quantised, with the F1 rule and a row-level pass after it): once the sizer is done, the run goes
    on, the sizer no longer fed, until the distinct picks hold ``reach(sizer.best_rows)`` rows (``sizes``), the
    clusters the pass then ranks rows from.
    """
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
    if sizer is not None:
        sizer.add_all(search.state.selected)
    held = _Held(sizes, search.state.selected)  # rows of the distinct picks, for ``reach``
    need: list[int] = []  # reach(sizer.best_rows), once the sizer is done

    def sized() -> bool:  # the F1 rule's size is known and the picks reach as far as the pass reads
        if sizer is None or not sizer.done:
            return False
        if reach is None:
            return True
        if not need:
            need.append(int(reach(sizer.best_rows)))
        return held.rows >= need[0]

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
            if ev.accepted:
                held.add(ev.candidate)
                if sizer is not None and not sizer.done:
                    sizer.add(ev.candidate)
                if sized():
                    search.state.stop_reason = "auto-f1"
            if ckpt is not None:
                ckpt.maybe(search, force=search.done)
            if search.done:
                break
    return search


class _Held:
    """Rows held by the distinct picks so far (``sizes``: rows per candidate)."""

    def __init__(self, sizes: np.ndarray, picks: Any) -> None:
        self.sizes = sizes
        self.seen: set[int] = set()
        self.rows = 0.0
        for c in np.asarray(picks, dtype=np.int64).reshape(-1):
            self.add(int(c))

    def add(self, candidate: int) -> None:
        c = int(candidate)
        if c >= 0 and c not in self.seen:
            self.seen.add(c)
            self.rows += float(self.sizes[c])


def reach_prefix(picks: np.ndarray, sizes: np.ndarray, rows: int) -> np.ndarray:
    """The shortest prefix of the distinct ``picks`` whose ``sizes`` hold at least ``rows`` rows (all of them
    when they hold fewer)."""
    d = distinct_picks(picks)
    held = np.cumsum(np.asarray(sizes, dtype=np.float64)[d]) if d.shape[0] else np.zeros(0)
    return d[: int(np.searchsorted(held, float(rows), side="left")) + 1] if rows > 0 else d[:0]


def distinct_picks(picks: Any) -> np.ndarray:
    """The distinct entries of ``picks`` in the order of their first pick (after a reset a candidate can be
    picked again)."""
    picks = np.asarray(picks, dtype=np.int64)
    _, first = np.unique(picks, return_index=True)
    return picks[np.sort(first)]


def gio_fill(params: GIOParams, target: np.ndarray, seed: int) -> Callable[..., np.ndarray]:
    """The ``gio`` row-level pass's GIO (:func:`gioselect.quantize.refine`): ``fill(rows, n, stop=None)`` runs GIO
    with the run's own parameters on ``rows`` (the chosen clusters' rows), filled to ``n`` picks (stop
    ``data_size``, no pick limit), and returns the positions of its distinct picks in order (at most ``n``).
    ``stop(position)`` is called with each new distinct pick; the run ends after the first for which it returns
    True (the F1 rule along the pass, :class:`gioselect.quantize_f1.RowF1`).

    Every pick scans the rows, so the pass costs about an unquantised GIO run of ``n`` picks on those rows
    (EXPERIMENTS.md, "Quantised selection"); it is for sizes up to some thousands of rows.
    """
    filled = dataclasses.replace(params, stop_criterion="data_size", max_data_size=1.0, max_iter=None)

    def fill(rows: np.ndarray, n: int, stop: Callable[[int], bool] | None = None) -> np.ndarray:
        p = filled
        if p.random_init_pct > 0 and int(p.random_init_pct * rows.shape[0]) < 1:
            # too few rows read for a random_init_pct start set: the default start instead of no start point
            logger.info("gio pass: %d rows x random_init_pct %g is no start point; the default start set is used",
                        rows.shape[0], p.random_init_pct)
            p = dataclasses.replace(p, random_init_pct=0.0)
        search = make_search(rows, target, p, seed=seed, budget=float(n))
        blas = single_threaded_blas() if p.objective == "relaxed" else contextlib.nullcontext()
        seen: set[int] = set()
        ended = False
        if stop is not None:  # a start set's picks first
            for c in distinct_picks(search.state.selected):
                seen.add(int(c))
                ended = ended or stop(int(c))
        with blas:
            for ev in () if ended else search.run():
                if stop is not None and ev.accepted and ev.candidate >= 0 and ev.candidate not in seen:
                    seen.add(ev.candidate)
                    if stop(int(ev.candidate)):
                        break
        return distinct_picks(search.state.selected)[:n]

    return fill
