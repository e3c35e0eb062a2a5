"""Where pool-sized work runs: ``local`` (numpy + faiss in this process) by default, or ``spark``
(:mod:`gioselect.engines.spark`, imported only when asked for: pyspark is an optional dependency)."""

from __future__ import annotations

from .base import Engine
from .local import LocalEngine

ENGINES = ("local", "spark")

__all__ = ["ENGINES", "Engine", "LocalEngine"]
