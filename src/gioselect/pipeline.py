"""The main job: pool and target files in, a selection, its run record and a report out.

Phases: read (hash the inputs; embed text columns, cached on disk; open and validate), quantise (K-means on a
seeded sample of the pool, streamed assignment of every row; K-means of the target when it is larger than its K),
select (GIO on the centroids), explode (chosen clusters to pool rows), write (ids, selected rows in the pool's
format, trace, manifest, report).

Never lose or corrupt data
--------------------------
Everything is built in ``<out>.partial/`` beside the output directory. Phase results and the GIO loop state are
checkpointed there atomically (temp file + rename), so a run killed at any point (even ``kill -9``) continues
with ``resume=True`` to exactly the selection an uninterrupted run gives. The outputs are written into
``<out>.partial/result/`` and that folder is renamed to ``<out>`` only when complete. An existing ``<out>`` is
replaced only with ``force=True``, only when it is a previous gioselect result (its manifest and the known output
files, nothing else) and only once the new result is complete; anything else at ``<out>`` is refused before any
work. A lock (``<out>.partial.lock``) keeps a second run off the same output. Inputs are only read. The rules and
the only code that removes or renames anything are in :mod:`gioselect.outdir`.
"""

from __future__ import annotations

import logging
from typing import Any

from .engines import LocalEngine
from .io import detect_format
from .io.folder import is_folder_table
from .job.config import (
    Progress,
    SelectConfig,
    default_memory_budget,
    parse_budget,
    parse_memory,
)
from .job.phases import run_phases
from .job.run import RunContext, run_job
from .job.select import PickHook
from .validation import check_input_path

# SelectConfig and the parsers live in gioselect.job.config; they are re-exported here, where they always were.
__all__ = ["PickHook", "Progress", "SelectConfig", "default_memory_budget", "parse_budget", "parse_memory",
           "run_select"]

logger = logging.getLogger(__name__)


def run_select(cfg: SelectConfig, *, resume: bool = False, force: bool = False, progress: Progress | None = None,
               command: list[str] | None = None, on_pick: PickHook | None = None) -> dict[str, Any]:
    """Run the whole selection job; returns the manifest (also written to ``<out>/manifest.json``).

    The phases are :func:`gioselect.job.phases.run_phases` on the :class:`gioselect.engines.LocalEngine`.
    ``on_pick`` is called after every evaluated GIO pick with its :class:`gioselect.optimize.PickEvent`, before
    that pick's checkpoint is written (a hook that sleeps slows the run down; the resume tests use that).

    Raises
    ------
    OutputExistsError
        ``out`` exists and neither ``force`` nor a completed ``resume`` applies.
    ResumeError
        ``resume`` with a checkpoint made from other inputs or parameters.
    InvalidInputError, InvalidParameterError
        Bad files or parameters (nothing is left behind then).
    """
    cfg = cfg.validate()
    for p, what in ((cfg.pool, "pool"), (cfg.target, "target")):
        check_input_path(p, what, allow_dir=is_folder_table(p))
        detect_format(p)

    def phases(ctx: RunContext) -> dict[str, Any]:
        return run_phases(ctx, LocalEngine(cfg.memory_budget, cfg.threads))

    return run_job(cfg, phases, resume=resume, force=force, progress=progress, command=command, on_pick=on_pick)
