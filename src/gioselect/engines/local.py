"""The in-process engine: numpy + faiss on one machine, streaming the pool from disk in blocks.

It is the reference engine: every other engine is tested to give the same answer. Its operations are the
pool-sized steps of the pipeline; everything centroid-sized runs in the GIO core.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..io import EmbeddingSource, open_embeddings, write_selected_rows
from ..quantize import (
    MAX_POINTS_PER_CENTROID,
    assign_blocks,
    drop_empty,
    kmeans_centroids,
    medoid_ids,
    training_sample_indices,
)

if TYPE_CHECKING:
    from .base import Engine

__all__ = ["LocalEngine"]

logger = logging.getLogger(__name__)

# Working copies per block row: the float32 block, its validation mask and faiss's search buffers.
_BLOCK_OVERHEAD = 4


class LocalEngine:
    """Pool-sized work in this process, within ``memory_budget`` bytes.

    Parameters
    ----------
    memory_budget : int
        Bytes the engine may use for blocks and the K-means sample (the memory-mapped input is not counted).
    threads : int, optional
        faiss/OpenMP threads (default: all cores).
    """

    name = "local"

    def __init__(self, memory_budget: int, threads: int | None = None) -> None:
        self.memory_budget = int(memory_budget)
        self.threads = threads

    def open(self, path: str | Path, embedding_field: str | None, name: str) -> EmbeddingSource:
        return open_embeddings(path, embedding_field, name=name)

    def block_rows(self, dim: int) -> int:
        """Rows per streamed block: a tenth of the budget, between 1,024 and 1,048,576 rows."""
        rows = self.memory_budget // 10 // max(1, dim * 4 * _BLOCK_OVERHEAD)
        return int(min(1 << 20, max(1024, rows)))

    def points_per_centroid(self, k: int, dim: int) -> int:
        """``MAX_POINTS_PER_CENTROID`` (32) training points per centroid, fewer if the sample would exceed half
        the budget."""
        fit = self.memory_budget // 2 // max(1, k * dim * 4 * 2)
        ppc = int(min(MAX_POINTS_PER_CENTROID, max(1, fit)))
        if ppc < MAX_POINTS_PER_CENTROID:
            logger.warning("memory budget allows %d K-means training points per centroid (default %d)", ppc,
                           MAX_POINTS_PER_CENTROID)
        return ppc

    def kmeans(self, source: EmbeddingSource, k: int, *, seed: int, niter: int = 20) -> tuple[np.ndarray, int]:
        """Train K-means on a seeded sample of the pool; returns (centroids, sample size)."""
        ppc = self.points_per_centroid(k, source.dim)
        idx = training_sample_indices(source.n_rows, k, seed=seed, max_points_per_centroid=ppc)
        sample = source.read_rows(idx)
        cents = kmeans_centroids(sample, k, seed=seed, niter=niter, threads=self.threads)
        return cents, int(idx.shape[0])

    def assign(self, source: EmbeddingSource, centroids: np.ndarray, *,
               progress: Callable[[int], None] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Stream the pool and label every row with its nearest centroid; drop empty clusters.

        Returns (centroids of non-empty clusters, their sizes, labels into them, and each one's medoid: the
        member row nearest its centroid).
        """
        labels, sq = assign_blocks(source.iter_blocks(self.block_rows(source.dim)), centroids, source.n_rows,
                                   progress=progress)
        cents, sizes, labels = drop_empty(centroids, labels)
        return cents, sizes, labels, medoid_ids(labels, sq, cents.shape[0])

    def take(self, source: EmbeddingSource, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` of the pool (float32, in the given order)."""
        return source.read_rows(np.asarray(ids, dtype=np.int64))

    def sample_ids(self, n_rows: int, n: int, seed: int) -> np.ndarray:
        """A seeded sorted sample of ``min(n, n_rows)`` row ids."""
        rng = np.random.default_rng(seed)
        m = min(n, n_rows)
        return np.sort(rng.choice(n_rows, size=m, replace=False)).astype(np.int64)

    def write_selected(self, source: EmbeddingSource | Path, ids: np.ndarray, rank: np.ndarray,
                       out_path: Path) -> Path:
        return write_selected_rows(source, ids, out_path, rank=rank)


if TYPE_CHECKING:  # mypy checks that this engine implements the protocol

    def _implements_engine(engine: LocalEngine) -> Engine:
        return engine
