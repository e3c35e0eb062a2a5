"""The Spark engine's side of the file job (:func:`gioselect.job.phases.run_phases`): open, fingerprint, write.

:class:`SparkJobEngine` is :class:`gioselect.engines.spark.SparkEngine` plus what a job on files needs: inputs
opened on the executors (a ``.npy`` target on the driver), fingerprinted (a single local file by its SHA-256,
else its files' names, sizes and times), text embedded on the executors into the work folder, the whole target
read to the driver (GIO, the size estimate and the row-level pass use it, as in-process), the selection written
as ``selected_ids.npy`` (streamed from parquet parts) and ``selected_rows.parquet/``, and the report's samples
fetched in one pass.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import InvalidInputError
from ..io import EmbeddingSource, atomic_path, file_sha256, open_embeddings
from ..job.config import Progress, SelectConfig, is_npy_path, text_fields
from ..job.record import versions
from ..validation import check_embeddings, check_target_fits
from .base import Assignment, JobInputs, target_field_errors
from .spark import RANK, ROW, SparkEngine, SparkSource, errors_from_spark, is_local_path, local_path
from .spark_base import batch_features, matrix_array

__all__ = ["SELECTED_ROWS_NAME", "SparkJobEngine"]

SELECTED_ROWS_NAME = "selected_rows.parquet"
NEAR = "__gio_near"


@dataclass(frozen=True)
class _NearestTargets:
    """On an executor: each row's ``n`` nearest target rows (:func:`gioselect.nearest.nearest_targets`, the
    function the in-process engine calls on the same float32 rows)."""

    target: np.ndarray
    n: int

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from ..nearest import nearest_targets, target_partition

        groups = None  # built once per task, on the first batch large enough for one
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if groups is None:
                groups = target_partition(self.target, batch.num_rows)
            near = nearest_targets(batch_features(batch, 1, self.target.shape[1]), self.target, n=self.n,
                                   partition=groups)
            yield pa.RecordBatch.from_arrays([batch.column(0), matrix_array(near, pa.int64())], names=[ROW, NEAR])


def fingerprint_input(src: SparkSource | EmbeddingSource) -> dict[str, Any]:
    """What identifies an input: the SHA-256 of a single local file, else its files' names, sizes, times."""
    if isinstance(src, EmbeddingSource):
        return {"sha256": file_sha256(src.path)}
    if len(src.files) == 1 and is_local_path(src.files[0]["path"]) and local_path(src.path).is_file():
        return {"sha256": file_sha256(local_path(src.path))}
    return {"sha256": None, "files": [[f["path"], f["size"], f["mtime"]] for f in src.files]}


def spark_record(src: SparkSource, fp: dict[str, Any], model: str | None) -> dict[str, Any]:
    """The manifest's record of an input (the in-process keys, plus the number of files)."""
    rec = {"path": src.path, "format": src.format, "rows": src.n_rows, "dim": src.dim,
           "embedding_field": src.embedding_field, "bytes": src.bytes, "files": len(src.files),
           "sha256": fp.get("sha256")}
    if src.text_field is not None:
        from ..embed import TextEmbedder

        rec["text"] = {"text_field": src.text_field, "model": TextEmbedder(model).model_id, "rows": src.n_rows,
                       "dim": src.dim, "embedded_on": "executors"}
    return rec


def npy_record(src: EmbeddingSource, fp: dict[str, Any]) -> dict[str, Any]:
    """The record of a ``.npy`` target (read on the driver)."""
    return {"path": str(src.path), "format": src.format, "rows": src.n_rows, "dim": src.dim,
            "embedding_field": None, "bytes": src.path.stat().st_size, "files": 1, "sha256": fp.get("sha256")}


def write_ids(selection_dir: Path, path: Path, n: int, progress: Any) -> None:
    """``selected_ids.npy`` in rank order, streamed from the selection's parquet parts into a memory map.

    The driver holds one record batch at a time; ranks are 0..n-1, so each batch scatters into place.
    """
    import pyarrow.dataset as ds

    with atomic_path(path) as tmp:
        if n == 0:
            with open(tmp, "wb") as fh:
                np.save(fh, np.zeros(0, dtype=np.int64))
            return
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int64, shape=(n,))
        filled = 0
        try:
            for batch in ds.dataset(str(selection_dir), format="parquet").to_batches(columns=[ROW, RANK]):
                rank = np.asarray(batch.column(1).to_numpy(zero_copy_only=False), dtype=np.int64)
                if rank.size and (rank.min() < 0 or rank.max() >= n):
                    raise InvalidInputError(f"selection: rank out of range 0..{n - 1} (internal error)")
                mm[rank] = np.asarray(batch.column(0).to_numpy(zero_copy_only=False), dtype=np.int64)
                filled += int(rank.size)
                progress(int(rank.size))
            mm.flush()
        finally:
            del mm
        if filled != n:
            raise InvalidInputError(f"selection: wrote {filled} of {n} selected row ids (internal error)")


class SparkJobEngine(SparkEngine):
    """:class:`SparkEngine` with the file job's operations (:class:`gioselect.engines.base.JobEngine`)."""

    def fingerprint(self, cfg: SelectConfig, prog: Progress) -> JobInputs:
        """Open both inputs (one counting pass each) and identify them."""
        t0 = time.monotonic()
        target_text = text_fields(cfg)["target"]
        with prog("opening inputs", 2, "file") as upd:
            pool = self.open(cfg.pool, cfg.embedding_field if cfg.text_field is None else None, "pool",
                             text_field=cfg.text_field)
            upd(1)
            target: SparkSource | EmbeddingSource
            if is_npy_path(cfg.target):
                target = open_embeddings(cfg.target, None, name="target")
            else:
                with target_field_errors(cfg.embedding_field, cfg.target_embedding_field):
                    target = self.open(cfg.target, (cfg.target_embedding_field or cfg.embedding_field)
                                       if target_text is None else None, "target", text_field=target_text)
            upd(1)
        opened = time.monotonic() - t0
        with prog("fingerprinting inputs", 2, "file") as upd:
            pool_fp = fingerprint_input(pool)
            upd(1)
            target_fp = fingerprint_input(target)
            upd(1)
        return JobInputs({"pool": pool_fp, "target": target_fp, "engine": "spark", "kmeans": self.kmeans_method},
                         state={"pool": pool, "target": target, "opened_s": opened})

    def open_inputs(self, inputs: JobInputs, cfg: SelectConfig, work: Path, prog: Progress,
                    timings: dict[str, float]) -> None:
        """Embed text columns on the executors (kept in ``work`` for resume); read the whole target."""
        pool: SparkSource = inputs.state["pool"]
        target: SparkSource | EmbeddingSource = inputs.state["target"]
        t0 = time.monotonic()
        embedded = False
        for which in ("pool", "target"):
            src = pool if which == "pool" else target
            if isinstance(src, SparkSource) and src.kind == "text":
                with prog(f"embedding {which} texts", None, "step") as upd:
                    src = self.embed_text(src, model=cfg.model, batch_size=cfg.embed_batch_size,
                                          path=str(work / f"{which}_embedded.parquet"))
                    upd(1)
                embedded = True
                if which == "pool":
                    pool = src
                else:
                    target = src
        if embedded:
            timings["embed"] = time.monotonic() - t0
        t0 = time.monotonic()
        check_target_fits(target.n_rows, target.dim, pool.dim, cfg.params.k, target=f"target: {cfg.target}",
                          pool=f"the pool {cfg.pool}")
        with prog("reading target", target.n_rows, "row") as upd:
            raw = target.read_all() if isinstance(target, EmbeddingSource) else self.read_all(target)
            inputs.target = check_embeddings(raw, f"target {cfg.target}")
            upd(target.n_rows)
        timings["read"] = inputs.state["opened_s"] + time.monotonic() - t0
        inputs.pool = inputs.rows = pool
        inputs.state.update(target_source=target if isinstance(target, SparkSource) else None, work=work,
                            memory_budget=cfg.memory_budget)
        inputs.fields = {"embedding_field": pool.embedding_field, "target_embedding_field": target.embedding_field}
        fp = inputs.fingerprint
        inputs.records = {
            "pool": spark_record(pool, fp["pool"], cfg.model),
            "target": (npy_record(target, fp["target"]) if isinstance(target, EmbeddingSource)
                       else spark_record(target, fp["target"], cfg.model)),
        }

    def exclusion(self, inputs: JobInputs, cfg: SelectConfig, prog: Progress) -> None:
        return None  # refused before the job (gioselect.spark.run_select_spark)

    def exclusion_record(self, exclusion: Any, cfg: SelectConfig) -> dict[str, Any]:
        return {}

    def write_selection(self, selection: tuple[Any, int], inputs: JobInputs, result: Path, prog: Progress
                        ) -> tuple[np.ndarray, dict[str, str]]:
        """The selection kept as parquet in the work folder, then ids and rows written from it."""
        frame, n_sel = selection
        pool = inputs.pool
        spath = inputs.state["work"] / "selection.parquet"
        with errors_from_spark(pool.where):
            frame.write.mode("overwrite").parquet(str(spath))
        frame = self.spark.read.parquet(str(spath))
        with prog("writing selected ids", n_sel, "row") as upd:
            write_ids(spath, result / "selected_ids.npy", n_sel, upd)
        with prog("writing selected rows (spark)", None, "file") as upd:
            self.write_selected(pool, frame, n_sel, str(result / SELECTED_ROWS_NAME))
            upd(1)
        ids = np.load(result / "selected_ids.npy", mmap_mode="r")
        return ids, {"selected_ids": "selected_ids.npy", "selected_rows": SELECTED_ROWS_NAME}

    def write_picks(self, result: Path, selected_ids: np.ndarray, picks: np.ndarray,
                    assignment: Assignment | None, search: Any, inputs: JobInputs,
                    known: Any = None) -> dict[str, np.ndarray]:
        """``picks.csv`` as the local engine writes it (:func:`gioselect.report.write_picks`).

        The driver holds what the file holds (the selected ids, each row's cluster, gain and 3 nearest target
        rows: 40 bytes a row); the nearest target rows are found on the executors (:class:`_NearestTargets`, the
        target broadcast with the task), in one pass over the pool, so no selected vector reaches the driver
        (a million selected 384-D rows would be 1.5 GB). Rows ``known`` holds (found by the row-level pass on
        the driver) are not sent.
        """
        from ..nearest import known_rows
        from ..report import write_picks

        pool: SparkSource = inputs.pool
        assert inputs.target is not None
        ids = np.asarray(selected_ids, dtype=np.int64)
        target = np.ascontiguousarray(inputs.target, dtype=np.float32)
        near, found = known_rows(known, inputs.target, ids)
        n_near = near.shape[1]
        todo = ids[~found]
        if todo.size:
            near[~found] = self.collect_rows(
                pool, todo, lambda uniq: self.vectors(pool, uniq).mapInArrow(
                    _NearestTargets(target, n_near), f"`{ROW}` long, `{NEAR}` array<long>"),
                NEAR, n_near, np.int64)
        row_clusters = None if assignment is None else self.row_clusters(assignment, ids)
        return write_picks(result / "picks.csv", ids, picks, None, search.initial_kl, search.state.kl_trace,
                           None, target, row_clusters=row_clusters, nearest=near)

    def report_rows(self, inputs: JobInputs, pool_ids: np.ndarray, selected_ids: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Both samples in one pass over the pool."""
        both = self.take(inputs.pool, np.concatenate([pool_ids, selected_ids]))
        n = pool_ids.shape[0]
        return both[:n], (both[n:] if selected_ids.shape[0] else None)

    def report_options(self, cfg: SelectConfig, inputs: JobInputs, result: Path, outputs: dict[str, str],
                       picks: dict[str, np.ndarray] | None) -> dict[str, Any]:
        return {"picks": picks}

    def manifest_extra(self) -> dict[str, Any]:
        sc = self.spark.sparkContext
        return {"spark": {"master": sc.master, "version": self.spark.version, "app_id": sc.applicationId,
                          "default_parallelism": sc.defaultParallelism, "kmeans": self.kmeans_method},
                "versions": {**versions(), "pyspark": self.spark.version}}
