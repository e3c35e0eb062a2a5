"""The in-process engine: numpy + faiss on one machine, streaming the pool from disk in blocks.

It is the reference engine: every other engine is tested to give the same answer. Its operations are the
pool-sized steps of the pipeline; everything centroid-sized runs in the GIO core.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidParameterError
from ..io import (
    EmbeddingSource,
    atomic_path,
    check_columns,
    detect_format,
    input_fingerprint,
    open_embeddings,
    open_table,
    write_selected_rows,
)
from ..job.config import Progress, SelectConfig, resolved_path, text_fields
from ..job.record import write_json
from ..quantize import (
    MAX_POINTS_PER_CENTROID,
    REFINE_BLOCK_ROWS,
    ClusterMembers,
    assign_blocks,
    drop_empty,
    explode,
    kmeans_centroids,
    medoid_ids,
    quantize_array,
    training_sample_indices,
)
from ..validation import check_embeddings, check_target_fits
from .base import Assignment, JobInputs, RowSampler, target_field_errors

if TYPE_CHECKING:
    from .base import Engine, JobEngine

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
        self.kmeans_used: dict[str, str] = {}

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
        labels, sq = assign_blocks(source.iter_views(self.block_rows(source.dim)), centroids, source.n_rows,
                                   progress=progress)
        cents, sizes, labels = drop_empty(centroids, labels)
        return cents, sizes, labels, medoid_ids(labels, sq, cents.shape[0])

    def assign_pool(self, source: EmbeddingSource, centroids: np.ndarray, *, work: Path | None = None,
                    progress: Callable[[int], None] | None = None) -> Assignment:
        """:meth:`assign` as an :class:`Assignment` (the labels array is the handle)."""
        cents, sizes, labels, medoids = self.assign(source, centroids, progress=progress)
        return Assignment(cents, sizes, medoids, labels)

    def assignment_state(self, assignment: Assignment) -> dict[str, np.ndarray]:
        return {"labels": np.asarray(assignment.labels)}

    def restore_assignment(self, saved: dict[str, np.ndarray], work: Path) -> np.ndarray | None:
        return saved.get("labels")

    def pool_vectors(self, source: EmbeddingSource, memory_budget: int, progress: Callable[[int], None]
                     ) -> np.ndarray:
        """The pool rows as GIO candidates: a float32 .npy stays memory-mapped (checked in one streamed pass);
        other formats are read into memory, which must fit the memory budget."""
        need = source.n_rows * source.dim * 4
        if source.format == "npy":
            mm = np.load(source.path, mmap_mode="r", allow_pickle=False)
            if mm.dtype == np.float32:
                for _, block in source.iter_views(self.block_rows(source.dim)):  # validates every row
                    progress(block.shape[0])
                return mm
        if need > memory_budget:
            raise InvalidParameterError(
                f"clusters=0 holds the whole pool in memory ({need / 2**30:.2f} GiB as float32), more than the "
                f"memory budget ({memory_budget / 2**30:.2f} GiB): quantise (--clusters K), raise "
                f"--memory-budget, or convert the pool to a float32 .npy (memory-mapped)"
            )
        out = check_embeddings(source.read_all(), f"pool {source.path}")
        progress(source.n_rows)
        return out

    def quantize_target(self, target: np.ndarray, source: object, k: int, *, seed: int, niter: int) -> np.ndarray:
        return quantize_array(target, k, seed=seed, niter=niter).centroids

    def size_pool(self, source: EmbeddingSource) -> RowSampler:
        """The pool for the size estimate: its reservoir sample drawn by id (:func:`reservoir_ids`, the draws of a
        streamed pass) and only those rows read; every row was validated already, by the assignment pass or
        :meth:`pool_vectors`. A ``.npy`` reads them through its memory map instead of a pass over the file (0.9 s
        of a 1e6 x 384 job); the other formats in one pass that converts only those rows."""
        return RowSampler(source.n_rows, source.dim, source.read_rows)

    def row_clusters(self, assignment: Assignment, ids: np.ndarray) -> np.ndarray:
        """The cluster (index into ``assignment.centroids``) of each pool row ``ids``, in the given order."""
        return np.asarray(assignment.labels, dtype=np.int64)[np.asarray(ids, dtype=np.int64)]

    def members(self, assignment: Assignment) -> ClusterMembers:
        return ClusterMembers(assignment.labels, assignment.centroids.shape[0])

    def explode(self, picks: np.ndarray, assignment: Assignment, *, limit: int | None, seed: int) -> np.ndarray:
        return explode(picks, self.members(assignment), limit=limit, seed=seed)

    def selection(self, ids: np.ndarray) -> np.ndarray:
        return np.asarray(ids, dtype=np.int64)

    def take(self, source: EmbeddingSource, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` of the pool (float32, in the given order)."""
        return source.read_rows(np.asarray(ids, dtype=np.int64))

    def take_block_rows(self, source: EmbeddingSource, memory_budget: int) -> int:
        """:data:`gioselect.quantize.REFINE_BLOCK_ROWS`: a read from the pool file costs the rows it reads."""
        return REFINE_BLOCK_ROWS

    def sample_ids(self, n_rows: int, n: int, seed: int) -> np.ndarray:
        """A seeded sorted sample of ``min(n, n_rows)`` row ids."""
        rng = np.random.default_rng(seed)
        m = min(n, n_rows)
        return np.sort(rng.choice(n_rows, size=m, replace=False)).astype(np.int64)

    def write_selected(self, source: EmbeddingSource | Path, ids: np.ndarray, rank: np.ndarray,
                       out_path: Path) -> Path:
        return write_selected_rows(source, ids, out_path, rank=rank)


    # -- the file job (gioselect.job.phases.run_phases) -----------------------------------------------------

    def fingerprint(self, cfg: SelectConfig, prog: Progress) -> JobInputs:
        """The inputs by content: size and SHA-256 (a folder: of its data files); the exclusion set by content."""
        hashed = {"pool": cfg.pool, "target": cfg.target, **({"exclude": cfg.exclude} if cfg.exclude else {})}
        fps: dict[str, dict[str, Any]] = {}
        with prog("hashing inputs", len(hashed), "file") as upd:
            for which, path in hashed.items():
                fp = input_fingerprint(path, which)
                fps[which] = {"path": resolved_path(path), "bytes": fp["bytes"], "sha256": fp["sha256"]}
                upd(1)
        if "exclude" in fps:
            del fps["exclude"]["path"]  # a moved or renamed exclusion file with the same content is the same run
        return JobInputs({"inputs": fps})

    def open_inputs(self, inputs: JobInputs, cfg: SelectConfig, work: Path, prog: Progress,
                    timings: dict[str, float]) -> None:
        """Embed text columns (kept in ``work`` for resume), open the pool, read the whole target."""
        check_columns(cfg.pool, cfg.report_fields)  # the report reads them at the end: refuse a wrong name now
        t0 = time.monotonic()
        embedded: dict[str, dict[str, Any]] = {}
        paths: dict[str, Path] = {"pool": Path(cfg.pool), "target": Path(cfg.target)}
        for which, tf in text_fields(cfg).items():
            if tf is not None:
                paths[which], embedded[which] = embed_file(cfg, which, tf, work, prog)
        if embedded:
            timings["embed"] = time.monotonic() - t0
            t0 = time.monotonic()
        pool = self.open(paths["pool"], None if "pool" in embedded else cfg.embedding_field, "pool")
        with target_field_errors(cfg.embedding_field, cfg.target_embedding_field):
            target_src = self.open(paths["target"], None if "target" in embedded else
                                   (cfg.target_embedding_field or cfg.embedding_field), "target")
        check_target_fits(target_src.n_rows, target_src.dim, pool.dim, cfg.params.k, target=f"target: {cfg.target}",
                          pool=f"the pool {cfg.pool}")
        with prog("reading target", target_src.n_rows, "row") as upd:
            target = check_embeddings(target_src.read_all(), f"target {cfg.target}")
            upd(target.shape[0])
        timings["read"] = time.monotonic() - t0
        fps = inputs.fingerprint["inputs"]
        inputs.pool, inputs.target = pool, target
        inputs.rows = open_table(cfg.pool, name="pool") if "pool" in embedded else pool
        inputs.fields = {"embedding_field": pool.embedding_field,
                         "target_embedding_field": target_src.embedding_field}
        inputs.records = {
            "pool": input_record(Path(cfg.pool), pool, fps["pool"]["sha256"], embedded.get("pool")),
            "target": input_record(Path(cfg.target), target_src, fps["target"]["sha256"], embedded.get("target"))}

    def exclusion(self, inputs: JobInputs, cfg: SelectConfig, prog: Progress) -> Any | None:
        """The exclusion set (:mod:`gioselect.exclude`): rows that can never be selected."""
        if cfg.exclude is None:
            return None
        from ..exclude import exclusion_for_run

        with prog("matching the exclusion set", None, "file") as upd:
            exclusion = exclusion_for_run(inputs.pool, cfg.exclude, embedding_field=cfg.embedding_field,
                                          text_field=cfg.text_field, model=cfg.model, cache_dir=cfg.cache_dir,
                                          embed_cache=cfg.embed_cache, threshold=cfg.exclude_threshold,
                                          block_rows=self.block_rows(inputs.pool.dim))
            upd(1)
        return exclusion

    def exclusion_record(self, exclusion: Any, cfg: SelectConfig) -> dict[str, Any]:
        return {**exclusion.record(str(cfg.exclude)), "repel": cfg.exclude_repel,
                **input_fingerprint(str(cfg.exclude), "exclude")}

    def write_selection(self, selection: np.ndarray, inputs: JobInputs, result: Path, prog: Progress
                        ) -> tuple[np.ndarray, dict[str, str]]:
        """``selected_ids.npy``, the selected rows in the pool's format (and ``selected_row_ids.npy`` for .npy)."""
        rows = inputs.rows
        np.save(result / "selected_ids.npy", selection)
        sel_name = f"selected_rows{rows.output_suffix}"  # a folder pool: parquet
        with prog("writing selected rows", None, "file") as upd:
            self.write_selected(rows, selection, np.arange(selection.shape[0], dtype=np.int64), result / sel_name)
            upd(1)
        outputs = {"selected_ids": "selected_ids.npy", "selected_rows": sel_name}
        if rows.format == "npy":  # a .npy has no columns for gio_row_id: the ids of its rows go beside it
            outputs["selected_row_ids"] = "selected_row_ids.npy"
            np.save(result / "selected_row_ids.npy", np.unique(selection).astype(np.int64))
        return selection, outputs

    def write_picks(self, result: Path, selected_ids: np.ndarray, picks: np.ndarray,
                    assignment: Assignment | None, search: Any, inputs: JobInputs,
                    known: Any = None) -> dict[str, np.ndarray]:
        """``picks.csv``: per-row gain and nearest target ids (:func:`gioselect.report.write_picks`; the rows
        ``known`` holds are not read again)."""
        from ..report import write_picks

        pool = inputs.pool
        assert inputs.target is not None
        return write_picks(result / "picks.csv", selected_ids, picks,
                           None if assignment is None else assignment.labels, search.initial_kl,
                           search.state.kl_trace, lambda ids: self.take(pool, ids), inputs.target, known=known)

    def report_rows(self, inputs: JobInputs, pool_ids: np.ndarray, selected_ids: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        pool = inputs.pool
        return self.take(pool, pool_ids), (self.take(pool, selected_ids) if selected_ids.shape[0] else None)

    def report_options(self, cfg: SelectConfig, inputs: JobInputs, result: Path, outputs: dict[str, str],
                       picks: dict[str, np.ndarray] | None) -> dict[str, Any]:
        return {"projection": "tsne" if cfg.text_field else "pca", "picks": picks, "pool_path": Path(cfg.pool),
                "selected_path": result / outputs["selected_rows"], "report_fields": cfg.report_fields,
                "text_field": cfg.text_field}

    def quantization_record(self) -> dict[str, Any]:
        return {}

    def manifest_extra(self) -> dict[str, Any]:
        return {}


def input_record(path: Path, src: EmbeddingSource, sha: str, embedded: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest's record of an input file (or folder) of the local job."""
    rec = {"path": str(path), "format": detect_format(path), "rows": src.n_rows, "dim": src.dim,
           "embedding_field": None if embedded else src.embedding_field, "bytes": path.stat().st_size,
           "sha256": sha}
    if path.is_dir():  # a folder (gioselect.io.folder): its data files, with sizes and hashes, and their total
        fp = input_fingerprint(path)
        rec.update(bytes=fp["bytes"], kind=fp["kind"], files=fp["files"])
    if embedded:
        rec["text"] = embedded
    return rec


def embed_file(cfg: SelectConfig, which: str, field_: str, work: Path, prog: Progress) -> tuple[Path, dict[str, Any]]:
    """Embed a text column into ``work/<which>_embeddings.npy`` (kept for resume); returns it and a record."""
    from ..embed import EmbeddingCache, TextEmbedder, embed_texts
    from ..io import read_texts

    dest = work / f"{which}_embeddings.npy"
    info_path = work / f"{which}_embeddings.json"
    if dest.exists() and info_path.exists():
        return dest, dict(json.loads(info_path.read_text()))
    src = Path(cfg.pool if which == "pool" else cfg.target)
    texts = read_texts(src, field_, name=which)
    cache = EmbeddingCache(cfg.cache_dir) if cfg.embed_cache else False
    with prog(f"embedding {which} text", len(texts), "text") as upd:
        emb, hit = embed_texts(texts, cfg.model, cache=cache, batch_size=cfg.embed_batch_size,
                               threads=cfg.threads, progress=upd, backend=cfg.embed_backend)
    with atomic_path(dest) as tmp:
        np.save(tmp, np.ascontiguousarray(emb, dtype=np.float32))
    info = {"text_field": field_, "model": TextEmbedder(cfg.model).model_id, "rows": len(texts),
            "dim": int(emb.shape[1]), "cache_hit": bool(hit), "backend": cfg.embed_backend}
    logger.info("%s: %d texts embedded with %s (%s)", which, len(texts), info["model"],
                "from the cache" if hit else "computed")
    write_json(info_path, info)
    return dest, info


if TYPE_CHECKING:  # mypy checks that this engine implements the protocol

    def _implements_engine(engine: LocalEngine) -> Engine:
        return engine

    def _implements_job_engine(engine: LocalEngine) -> JobEngine:
        return engine
