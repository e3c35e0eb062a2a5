"""``picks.csv``: every selected row with its rank, the gain of the pick that chose it and its nearest target rows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .format import atomic_write_bytes

__all__ = ["write_picks"]

logger = logging.getLogger(__name__)

def write_picks(path: Path, selected_ids: np.ndarray, picks: np.ndarray, labels: np.ndarray | None,
                initial_kl: float, kl_trace: Sequence[float], take: Any, target: np.ndarray,
                block_rows: int = 16384, row_clusters: np.ndarray | None = None,
                nearest: np.ndarray | None = None, known: Any = None) -> dict[str, np.ndarray]:
    """Write ``picks.csv``: one line per selected row in rank order, with ``gio_row_id``, ``gio_rank``,
    ``gio_gain`` (the objective decrease of the pick that chose the row: a quantised pick's rows share their
    cluster's) and ``gio_nearest_target`` (the 3 nearest target rows, space-separated). Returns the columns.

    ``take(ids)`` reads pool rows (float32); they are read in blocks of ``block_rows``. ``row_clusters`` (the
    cluster of each selected row, in rank order) stands in for ``labels[selected_ids]`` where no pool-sized
    label vector is at hand (the Spark engine). ``nearest`` (the nearest target rows of each selected row, in rank
    order, shape (s, min(3, target rows))) stands in for reading the rows, when they were computed where the rows
    are (the Spark engine's executors); ``take`` is not called then. ``known``
    (:class:`gioselect.nearest.KnownNearest`, computed against ``target``) gives the nearest target rows of the
    rows it holds, which are then not read.
    """
    from ..frames import pick_gains
    from ..nearest import N_NEAREST_TARGETS, known_rows, nearest_targets, target_partition

    picks = np.asarray(picks, dtype=np.int64)
    trace = np.asarray(kl_trace, dtype=np.float64)[: picks.shape[0]]
    gains = pick_gains(initial_kl, trace)
    first: dict[int, float] = {}
    for c, g in zip(picks[: trace.shape[0]].tolist(), gains.tolist(), strict=True):
        first.setdefault(c, g)
    ids = np.asarray(selected_ids, dtype=np.int64)
    cand = (np.asarray(row_clusters, dtype=np.int64) if row_clusters is not None
            else ids if labels is None else np.asarray(labels)[ids])
    row_gain = np.array([first.get(int(c), math.nan) for c in cand], dtype=np.float64)
    n_near = min(N_NEAREST_TARGETS, int(target.shape[0]))
    if nearest is not None:
        near = np.asarray(nearest, dtype=np.int64)
        if near.shape != (ids.shape[0], n_near):
            raise ValueError(f"nearest: expected shape {(ids.shape[0], n_near)}, got {near.shape}")
    else:
        near, found = known_rows(known, target, ids)
        todo = np.flatnonzero(~found)  # positions of the rows to read and scan
        groups = target_partition(target, todo.shape[0])  # one for every block, when the work is worth it
        for s in range(0, todo.shape[0], block_rows):
            pos = todo[s : s + block_rows]
            near[pos] = nearest_targets(take(ids[pos]), target, n=n_near, partition=groups)
    # The lines, formatted column by column (one repr per distinct gain: a quantised pick's rows share it).
    uniq_bits, which = np.unique(row_gain.view(np.int64), return_inverse=True)  # by bits: -0.0 is not 0.0
    gain_text = [repr(g) for g in uniq_bits.view(np.float64).tolist()]
    near_text = map(" ".join, zip(*(map(str, near[:, j].tolist()) for j in range(near.shape[1])), strict=True))
    lines = map("{},{},{},{}\n".format, map(str, ids.tolist()), map(str, range(ids.shape[0])),
                map(gain_text.__getitem__, which.reshape(-1).tolist()), near_text)
    text = "gio_row_id,gio_rank,gio_gain,gio_nearest_target\n" + "".join(lines)
    atomic_write_bytes(Path(path), text.encode("utf-8"))
    return {"gio_row_id": ids, "gio_rank": np.arange(ids.shape[0], dtype=np.int64), "gio_gain": row_gain,
            "gio_nearest_target": near}
