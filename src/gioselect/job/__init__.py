"""The selection job, written once: configuration, seeds, the work folder, the run record and the phases.

``config`` (:class:`SelectConfig`, budget and memory parsing), ``seeds`` (named sub-seeds), ``workdir``
(checkpoints and resume), ``record`` (manifest pieces, trace), ``run`` (every phase once, against an engine
of :mod:`gioselect.engines`). :func:`gioselect.pipeline.run_select`, :func:`gioselect.spark.run_select_spark`
and :func:`gioselect.spark.select` are entry points to it.
"""

from __future__ import annotations

from .config import Progress, SelectConfig, default_memory_budget, parse_budget, parse_memory
from .seeds import Seeds

__all__ = ["Progress", "Seeds", "SelectConfig", "default_memory_budget", "parse_budget", "parse_memory"]
