"""Where pool-sized work runs: ``local`` (numpy + faiss in this process) by default."""

from __future__ import annotations

from .local import LocalEngine

ENGINES = ("local",)

__all__ = ["ENGINES", "LocalEngine"]
