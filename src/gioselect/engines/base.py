"""The engine protocol: the pool-sized operations the job (:mod:`gioselect.job`) asks of wherever it runs.

A narrow interface in the spirit of faiss contrib's ``DatasetAssign``: open a source, K-means on a seeded sample,
assign every row to its nearest centroid, fetch rows by id, draw seeded row samples, write the selected rows.
Everything centroid-sized (GIO itself, the run record) happens in the job, on the driver. The local engine
(:mod:`gioselect.engines.local`) is the reference; the Spark engine (:mod:`gioselect.engines.spark`) is tested to
give the same answer. A new engine is one module here implementing these methods.

Sources are the engine's own handles (an :class:`gioselect.io.EmbeddingSource` locally, a Spark source on Spark)
with ``n_rows`` and ``dim``; the job only passes them back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Engine"]


@runtime_checkable
class Engine(Protocol):
    """What the job needs from an engine (``name`` goes into the manifest)."""

    name: str

    def open(self, path: Any, embedding_field: str | None, name: str) -> Any:
        """Open an input of vectors; the returned source has ``n_rows`` and ``dim``. Errors name the file."""
        ...

    def kmeans(self, source: Any, k: int, *, seed: int, niter: int = 20) -> tuple[np.ndarray, int]:
        """K-means on a seeded sample of ``source``; returns (centroids, rows in the sample)."""
        ...

    def assign(self, source: Any, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any, Any]:
        """Label every row with its nearest centroid, dropping empty clusters.

        Returns (centroids of the non-empty clusters, their sizes, the labels, the engine's extra): locally
        the labels array and each cluster's medoid row; on Spark the kept cluster ids and the assignment frame.
        """
        ...

    def take(self, source: Any, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` of ``source`` as float32, in the order given."""
        ...

    def sample_ids(self, n_rows: int, n: int, seed: int) -> np.ndarray:
        """A seeded sorted sample of ``min(n, n_rows)`` distinct row ids (the report's pool sample)."""
        ...

    def write_selected(self, source: Any, selection: Any, extra: Any, out_path: Any) -> Path | str:
        """Write the selected rows in the source's format to ``out_path``."""
        ...
