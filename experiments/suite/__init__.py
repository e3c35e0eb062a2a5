"""The benchmark suite: one yardstick for selection quality, on real data, with the peers users would pick.

Every task (:mod:`suite.tasks`) runs with every method at a fixed size and at GIO's own size (the size that
``GIOSelector()``'s default stop rule chooses), for several seeds (each seed is a new instance of the task:
new held-out articles, new pool sample); each run is scored on the task number, the size-aware F1 of
retrieving the pool's target-like rows, energy distance and unbiased MMD² to the held-out target split, the
k-NN KL both ways, the selection size and the wall time. The runs are aggregated into mean ± std over the
seeds, the winner of each column, and a mean-rank table across tasks.

Pieces (import ``suite`` with ``experiments/`` on ``sys.path``):

* :class:`Task`, :data:`TASKS`, :func:`register_task` - the task registry (``build(size, seed) -> Task``);
* :class:`Method`, :data:`METHODS`, :func:`register_method`, :func:`gio_method` - the method registry
  (``random``, ``knn``, ``herding``, ``full``; ``gio`` and its modes :data:`GIO_MODES`, each one setting
  changed from the library's defaults; ``dsir``/``facility`` from ``gioselect.peers`` when it is importable);
* :func:`execute`, :func:`record`, :func:`run_one`, :func:`run_task`, :func:`run_suite`, :func:`score` -
  running and scoring. Each GIO method, and each baseline whose order does not depend on the size
  (:data:`PREFIX_BASELINES`: herding, facility, dsir), runs once per task and seed, to the larger size, and
  the smaller size scores its prefix (:func:`prefix_consistent`); a mode whose settings equal an earlier
  method's (:func:`forced_settings`) is not run again; a selection is scored once per task instance
  (:func:`score_key`: equal selections, e.g. every method at the whole pool, share one score).
  :func:`merge` pools the runs of several outputs (tasks run in separate processes) and aggregates them
  again;
* :func:`task_groups`, :func:`run_unit`, :func:`same_data` - tasks with the same data (``same_data_as``: the
  whole corpus quantised and not) run as one unit, the methods that are not GIO once; ``run_suite(jobs=N)``
  runs the units in N worker processes;
* :func:`gio_curve` - GIO's own curve: one run to the largest size, every prefix scored;
* :func:`aggregate`, :func:`winners`, :func:`mean_ranks`, :func:`markdown` - the tables.

Command line: ``python experiments/suite --size small|full [--jobs N]`` (``make suite`` runs the full size
with ``--jobs 2``) writes
``experiments/results/suite_<size>.json`` and ``.md``; ``--curve TASK`` writes GIO's curve on one task.
"""

from __future__ import annotations

from . import tasks as tasks  # registers the tasks
from .core import (
    COLUMNS,
    GIO_MODES,
    METHODS,
    PREFIX_BASELINES,
    RANKED,
    TASKS,
    Method,
    Run,
    Task,
    aggregate,
    execute,
    forced_settings,
    gio_curve,
    gio_method,
    mask_f1,
    mean_ranks,
    prefix_consistent,
    rank_values,
    record,
    register_default_methods,
    register_method,
    register_task,
    run_gio,
    run_one,
    run_task,
    same_data,
    score,
    score_key,
    winners,
)
from .report import DEFAULT_TASKS, markdown, merge, run_suite, run_unit, summarise, task_groups

register_default_methods()

__all__ = [
    "COLUMNS",
    "DEFAULT_TASKS",
    "GIO_MODES",
    "METHODS",
    "PREFIX_BASELINES",
    "RANKED",
    "TASKS",
    "Method",
    "Run",
    "Task",
    "aggregate",
    "execute",
    "forced_settings",
    "gio_curve",
    "gio_method",
    "markdown",
    "mask_f1",
    "mean_ranks",
    "merge",
    "prefix_consistent",
    "rank_values",
    "record",
    "register_default_methods",
    "register_method",
    "register_task",
    "run_gio",
    "run_one",
    "run_suite",
    "run_task",
    "run_unit",
    "same_data",
    "score",
    "score_key",
    "summarise",
    "task_groups",
    "winners",
]
