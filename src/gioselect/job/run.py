"""The life of a file job, written once for every engine: output checks, lock, work folder, record, publish.

:func:`run_job` is the frame that :func:`gioselect.pipeline.run_select` (local engine) and
:func:`gioselect.spark.run_select_spark` (Spark engine) run their phases in:

1. the output rules (:func:`gioselect.outdir.check_output_dir`) before any work, and again under the run lock;
2. a finished output with ``resume`` is returned as it is (a work folder left beside it is removed);
3. the phases run with a :class:`RunContext`: :meth:`RunContext.open_work` checks the resume fingerprint and
   keeps or discards the checkpoints (:mod:`gioselect.job.workdir`); an input error after that removes a
   work folder this run made;
4. :meth:`RunContext.finish` writes the report (on one BLAS thread), the timings and the manifest, publishes
   ``<work>/result`` to ``<out>`` and removes the work folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import GIOError
from ..optimize import single_threaded_blas
from ..outdir import check_output_dir, publish_result, remove_result_dir, remove_work_dir, run_lock
from .config import Progress, SelectConfig, no_progress, run_inputs
from .record import rounded, write_json
from .select import PickHook
from .workdir import open_work_dir

__all__ = ["PhaseTimings", "RunContext", "run_job"]

logger = logging.getLogger(__name__)


class PhaseTimings(dict[str, float]):
    """The phases' wall seconds (``timings[phase] = seconds``, set as each phase ends) and, beside them in
    :attr:`cpu`, the process's CPU seconds (all threads, :func:`time.process_time`) since the previous phase
    ended (or since the job started): the phases run one after the other, so each phase's CPU is what the
    process spent up to its end after the one before."""

    def __init__(self) -> None:
        super().__init__()
        self.cpu: dict[str, float] = {}
        self._cpu_mark = time.process_time()

    def __setitem__(self, phase: str, seconds: float) -> None:
        now = time.process_time()
        self.cpu[phase] = self.cpu.get(phase, 0.0) + now - self._cpu_mark
        self._cpu_mark = now
        super().__setitem__(phase, seconds)


@dataclass
class RunContext:
    """What the phases of one run share: the configuration, folders, options, timings."""

    cfg: SelectConfig
    out: Path
    work: Path
    resume: bool
    force: bool
    command: list[str] | None
    prog: Progress
    on_pick: PickHook | None
    t_start: float
    timings: PhaseTimings = field(default_factory=PhaseTimings)
    fresh: bool = False

    def open_work(self, fingerprint: dict[str, Any]) -> None:
        """Set up the work folder for a run identified by ``fingerprint`` (resume or start afresh)."""
        self.fresh = open_work_dir(self.work, fingerprint, self.resume)

    def result_dir(self) -> Path:
        """An empty ``<work>/result`` (a partial one from a killed run is discarded)."""
        result = self.work / "result"
        if result.exists():
            remove_result_dir(result)
        result.mkdir()
        return result

    def finish(self, result: Path, manifest: dict[str, Any], report: Callable[[], None] | None) -> dict[str, Any]:
        """Report (when asked), timings and manifest into ``result``; publish it to ``out``; returns the manifest.

        The report shows the timings up to its start; the manifest adds the report's own time.
        """
        if report is not None:
            t1 = time.monotonic()
            manifest["timings_s"] = {**rounded(self.timings), "total": round(t1 - self.t_start, 4)}
            with self.prog("writing report", None, "file") as upd, single_threaded_blas():
                report()
                upd(1)
            self.timings["report"] = time.monotonic() - t1
        self.timings["total"] = time.monotonic() - self.t_start
        manifest["timings_s"] = rounded(self.timings)
        manifest["cpu_s"] = {**rounded({k: v for k, v in self.timings.cpu.items() if k != "total"}),
                             "total": round(time.process_time(), 4)}
        write_json(result / "manifest.json", manifest)
        publish_result(result, self.out, self.work, force=self.force)
        remove_work_dir(self.work)
        return manifest


def run_job(cfg: SelectConfig, phases: Callable[[RunContext], dict[str, Any]], *, resume: bool, force: bool,
            progress: Progress | None, command: list[str] | None, on_pick: PickHook | None,
            session: Callable[[], contextlib.AbstractContextManager[Any]] | None = None) -> dict[str, Any]:
    """Run ``phases`` inside the output checks and the lock; returns the manifest.

    ``cfg`` is validated and its inputs checked by the caller. ``session`` is entered (under the lock, after
    the output checks) around the phases: the Spark session's lifetime.
    """
    t_start = time.monotonic()
    plan = check_output_dir(Path(cfg.out), run_inputs(cfg), force=force, resume=resume)  # before any work
    out, work = plan.out, plan.work
    out.parent.mkdir(parents=True, exist_ok=True)
    with run_lock(plan.lock, out, command):
        plan = check_output_dir(Path(cfg.out), run_inputs(cfg), force=force, resume=resume)  # again, locked
        if plan.state == "complete":
            logger.info("%s is already complete; nothing to resume", out)
            remove_work_dir(work)  # left by a run killed between publishing and cleaning up
            return dict(json.loads((out / "manifest.json").read_text()))
        ctx = RunContext(cfg=cfg, out=out, work=work, resume=resume, force=force, command=command,
                         prog=progress or no_progress, on_pick=on_pick, t_start=t_start)
        with session() if session is not None else contextlib.nullcontext():
            try:
                return phases(ctx)
            except GIOError:
                # Bad input found after set-up (a NaN deep in the pool, say): nothing worth resuming was made.
                if ctx.fresh:
                    remove_work_dir(work)
                raise
