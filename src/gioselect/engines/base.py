"""The engine protocol: the pool-sized operations the job (:mod:`gioselect.job.phases`) asks of wherever it runs.

A narrow interface in the spirit of faiss contrib's ``DatasetAssign``: K-means on a seeded sample, assign every
row to its nearest centroid (with each cluster's medoid), fetch rows by id, draw seeded row samples, the rows of a
set of clusters, explode chosen clusters, and, for the file job, fingerprint, open, write and sample for the
report. Everything centroid-sized (GIO itself, the row-level pass's scoring, the run record) happens in the job,
on the driver, once for every engine. The local engine (:mod:`gioselect.engines.local`) is the reference; the
Spark engine (:mod:`gioselect.engines.spark`, :mod:`gioselect.engines.spark_job`) is tested to give the same
answer. A new engine is one module here implementing these methods.

Sources are the engine's own handles (an :class:`gioselect.io.EmbeddingSource` locally, a Spark source on Spark)
with ``n_rows`` and ``dim``; the job only passes them back. So is a *selection* (the chosen pool rows in rank
order: an id array locally, a ``(row id, rank)`` DataFrame on Spark) and an assignment's ``labels``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Assignment", "Engine", "JobEngine", "JobInputs", "RowSampler", "reservoir_ids", "target_field_errors"]


@dataclass
class Assignment:
    """Every pool row labelled with its nearest centroid, empty clusters dropped.

    ``centroids`` and ``sizes`` of the kept clusters, ``medoids`` (the member row nearest each centroid, ties:
    the lowest row), and ``labels``: the engine's handle on the row labels (an array locally, the assignment
    frame and the kept cluster ids on Spark).
    """

    centroids: np.ndarray
    sizes: np.ndarray
    medoids: np.ndarray
    labels: Any


@dataclass
class JobInputs:
    """What the file job opened: filled by :meth:`JobEngine.fingerprint` then :meth:`JobEngine.open_inputs`.

    ``fingerprint`` identifies the inputs for resume; ``pool`` is the vector source, ``rows`` what the selected
    rows are written from, ``target`` the whole target on the driver, ``records`` the manifest's ``inputs``,
    ``fields`` the embedding and text fields used, ``state`` the engine's own.
    """

    fingerprint: dict[str, Any]
    pool: Any = None
    rows: Any = None
    target: np.ndarray | None = None
    records: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)


def reservoir_ids(n_rows: int, size: int, rng: np.random.Generator, block_rows: int = 65536) -> np.ndarray:
    """The row ids a one-pass reservoir sample (Algorithm R, vectorised per block) keeps, slot by slot.

    It draws from ``rng`` exactly what :func:`gioselect.sizing.estimate_target_rows` draws while it streams a
    pool of ``n_rows`` rows, so ``take(reservoir_ids(...))`` is the sample it would keep, without reading the
    rows that are not kept (the draws do not depend on ``block_rows``).
    """
    m = min(int(size), int(n_rows))
    ids = np.arange(m, dtype=np.int64)
    seen = m
    while seen < n_rows:
        t = np.arange(seen, min(int(n_rows), seen + block_rows), dtype=np.int64)
        j = np.floor(rng.random(t.shape[0]) * (t + 1)).astype(np.int64)
        keep = j < size
        ids[j[keep]] = t[keep]
        seen += t.shape[0]
    return ids


@dataclass
class RowSampler:
    """A pool for :func:`gioselect.sizing.estimate_target_rows` read by id: its reservoir sample is drawn from
    the row ids (:func:`reservoir_ids`) and only those rows are fetched (``take``); the estimate is the one a
    streamed pass over the same rows gives."""

    n_rows: int
    dim: int
    take: Callable[[np.ndarray], np.ndarray]

    def reservoir_sample(self, size: int, rng: np.random.Generator, block_rows: int) -> tuple[np.ndarray, int, int]:
        """(sample, rows, dim), as the streamed reservoir returns them."""
        from ..errors import InvalidInputError

        if self.n_rows == 0:
            raise InvalidInputError("pool: has no rows")
        rows = np.asarray(self.take(reservoir_ids(self.n_rows, size, rng, block_rows)), dtype=np.float32)
        if not np.isfinite(rows).all():
            raise InvalidInputError("pool: a sampled row has a NaN or infinite value")
        return rows, self.n_rows, self.dim


@runtime_checkable
class Engine(Protocol):
    """What the selection phases need from an engine (``name`` goes into the manifest)."""

    name: str
    kmeans_used: dict[str, str]

    def kmeans(self, source: Any, k: int, *, seed: int, niter: int = 20) -> tuple[np.ndarray, int]:
        """K-means on a seeded sample of ``source``; returns (centroids, rows in the sample)."""
        ...

    def assign_pool(self, source: Any, centroids: np.ndarray, *, work: Path | None,
                    progress: Callable[[int], None] | None = None) -> Assignment:
        """Label every row with its nearest centroid, dropping empty clusters (kept in ``work`` if given)."""
        ...

    def assignment_state(self, assignment: Assignment) -> dict[str, np.ndarray]:
        """Arrays that, saved beside the centroids, let :meth:`restore_assignment` rebuild ``assignment``."""
        ...

    def restore_assignment(self, saved: dict[str, np.ndarray], work: Path) -> Any | None:
        """The labels handle of a checkpointed assignment, or None when it cannot be restored."""
        ...

    def pool_vectors(self, source: Any, memory_budget: int, progress: Callable[[int], None]) -> np.ndarray:
        """Every pool row (an unquantised pool's candidates), validated; may be memory-mapped."""
        ...

    def quantize_target(self, target: np.ndarray, source: Any, k: int, *, seed: int, niter: int) -> np.ndarray:
        """The target's K-means centroids (``target`` is the whole target; ``source`` the engine's handle)."""
        ...

    def size_pool(self, source: Any) -> Any:
        """The pool as :func:`gioselect.sizing.estimate_target_rows` reads it (blocks, or a :class:`RowSampler`)."""
        ...

    def take(self, source: Any, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` of ``source`` as float32, in the order given."""
        ...

    def take_block_rows(self, source: Any, memory_budget: int) -> int:
        """The most rows one :meth:`take` should fetch in a loop over many rows (the row-level pass)."""
        ...

    def sample_ids(self, n_rows: int, n: int, seed: int) -> np.ndarray:
        """A seeded sorted sample of ``min(n, n_rows)`` distinct row ids (the report's pool sample)."""
        ...

    def row_clusters(self, assignment: Assignment, ids: np.ndarray) -> np.ndarray:
        """The cluster (index into ``assignment.centroids``) of each pool row ``ids``, in the given order."""
        ...

    def members(self, assignment: Assignment) -> Any:
        """The cluster membership for :func:`gioselect.quantize.quantized_rows` (``starts``, ``rows_of``)."""
        ...

    def explode(self, picks: np.ndarray, assignment: Assignment, *, limit: int | None, seed: int) -> Any:
        """The selection of the chosen clusters whole, the last one cut at ``limit`` (:func:`quantize.explode`)."""
        ...

    def selection(self, ids: np.ndarray) -> Any:
        """The selection of pool rows ``ids`` (in rank order), which the driver holds."""
        ...

    def quantization_record(self) -> dict[str, Any]:
        """Engine keys of the manifest's ``quantization`` section (which K-means ran)."""
        ...


@runtime_checkable
class JobEngine(Engine, Protocol):
    """What the file job (:func:`gioselect.job.phases.run_phases`) needs besides the phases."""

    def fingerprint(self, cfg: Any, prog: Any) -> JobInputs:
        """Identify the inputs (what resume checks); may open them."""
        ...

    def open_inputs(self, inputs: JobInputs, cfg: Any, work: Path, prog: Any, timings: dict[str, float]) -> None:
        """Embed text, open the pool, check the target (:func:`gioselect.validation.check_target_fits`, before
        reading it), read the whole target; fills ``inputs``."""
        ...

    def exclusion(self, inputs: JobInputs, cfg: Any, prog: Any) -> Any | None:
        """The exclusion set (:mod:`gioselect.exclude`) when the engine supports it, else None."""
        ...

    def exclusion_record(self, exclusion: Any, cfg: Any) -> dict[str, Any]:
        """The manifest's record of the exclusion set."""
        ...

    def write_selection(self, selection: Any, inputs: JobInputs, result: Path, prog: Any
                        ) -> tuple[np.ndarray, dict[str, str]]:
        """Write ``selected_ids.npy`` and the selected rows; returns (the ids, the output names)."""
        ...

    def write_picks(self, result: Path, selected_ids: np.ndarray, picks: np.ndarray, assignment: Assignment | None,
                    search: Any, inputs: JobInputs, known: Any = None) -> dict[str, np.ndarray] | None:
        """``picks.csv`` where the engine writes it (returns its columns), else None. ``known``
        (:class:`gioselect.nearest.KnownNearest` or None): nearest target rows the row-level pass already found,
        which the engine may reuse instead of computing them again."""
        ...

    def report_rows(self, inputs: JobInputs, pool_ids: np.ndarray, selected_ids: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The report's pool sample and selected sample (None when nothing was selected)."""
        ...

    def report_options(self, cfg: Any, inputs: JobInputs, result: Path, outputs: dict[str, str],
                       picks: dict[str, np.ndarray] | None) -> dict[str, Any]:
        """Extra keyword arguments of :func:`gioselect.report.write_report`."""
        ...

    def manifest_extra(self) -> dict[str, Any]:
        """Engine sections of the manifest (merged over the common keys)."""
        ...


@contextmanager
def target_field_errors(embedding_field: str | None, target_embedding_field: str | None) -> Iterator[None]:
    """Open the target inside this: an error about its vector column names the option that sets it.

    Without ``--target-embedding-field`` the target's column is looked up by the pool's ``--embedding-field``;
    when the target names it otherwise, or holds several vector columns, the error says to give
    ``--target-embedding-field`` (the readers' messages name ``--embedding-field``, the pool's option).
    """
    from ..errors import InvalidInputError

    try:
        yield
    except InvalidInputError as exc:
        msg = str(exc)
        if target_embedding_field is not None:
            raise
        if "has no column" in msg and embedding_field is not None:
            raise InvalidInputError(
                f"{msg}; the target's vector column was looked up by --embedding-field {embedding_field!r}: name "
                "the target's own with --target-embedding-field") from exc
        if "embedding_field (--embedding-field)" in msg:
            raise InvalidInputError(msg.replace("embedding_field (--embedding-field)",
                                                "target_embedding_field (--target-embedding-field)")) from exc
        raise
