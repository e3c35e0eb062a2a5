"""The main job: pool and target files in, a selection, its run record and a report out.

Phases: read (hash the inputs; embed text columns, cached on disk; open and validate), quantise (K-means on a
seeded sample of the pool, streamed assignment of every row; K-means of the target when it is larger than its K),
select (GIO on the centroids), explode (chosen clusters to pool rows), write (ids, selected rows in the pool's
format, trace, manifest, report).

Never lose or corrupt data
--------------------------
Everything is built in ``<out>.partial/`` beside the output directory. Phase results and the GIO loop state are
checkpointed there atomically (temp file + rename), so a run killed at any point (even ``kill -9``) continues
with ``resume=True`` to exactly the selection an uninterrupted run gives. The outputs are written into
``<out>.partial/result/`` and that folder is renamed to ``<out>`` only when complete. An existing ``<out>`` is
replaced only with ``force=True``, only when it is a previous gioselect result (its manifest and the known output
files, nothing else) and only once the new result is complete; anything else at ``<out>`` is refused before any
work. A lock (``<out>.partial.lock``) keeps a second run off the same output. Inputs are only read. The rules and
the only code that removes or renames anything are in :mod:`gioselect.outdir`.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io as _io
import json
import logging
import math
import os
import platform
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import __version__
from .engines import LocalEngine
from .errors import GIOError, InvalidInputError, InvalidParameterError, ResumeError
from .exclude import block_candidates
from .io import EmbeddingSource, atomic_path, detect_format, input_fingerprint, open_table
from .io.folder import is_folder_table
from .optimize import EVENT_ACCEPTED, EVENT_RESET, EVENT_STOP, GIOParams, single_threaded_blas
from .outdir import check_output_dir, publish_result, remove_result_dir, remove_work_dir, run_lock
from .quantize import (
    CANDIDATE_MODES,
    REFINE_MODES,
    ClusterMembers,
    plan_clusters,
    quantize_array,
    quantized_rows,
    select_candidates,
)
from .selector import auto_budget, make_search
from .validation import check_embeddings, check_input_path, check_int, check_real, result_warnings

__all__ = ["Progress", "SelectConfig", "default_memory_budget", "parse_budget", "run_select"]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 2
REPORT_TARGET_ROWS = 2000
REPORT_POOL_ROWS = 5000
REPORT_SELECTED_ROWS = 2000
MIN_ROWS_PER_CLUSTER = 20  # below this average, warn that quantisation blurs the pool


class Progress(Protocol):
    """Progress factory the CLI passes in: ``with progress(desc, total, unit) as update: update(n)``."""

    def __call__(self, desc: str, total: int | None, unit: str) -> contextlib.AbstractContextManager[
            Callable[[int], None]]: ...


@contextlib.contextmanager
def _no_progress(desc: str, total: int | None, unit: str) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


def default_memory_budget() -> int:
    """A quarter of physical memory (at least 512 MiB)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        total = 8 << 30
    return max(512 << 20, int(total) // 4)


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)


def parse_memory(text: str) -> int:
    """'4G', '512MiB', '1e9'-style sizes (powers of 1024 for K/M/G/T) to bytes."""
    m = _SIZE_RE.match(text)
    if not m:
        try:
            return int(float(text))
        except ValueError as exc:
            raise InvalidParameterError(f"--memory-budget: cannot read {text!r}; use e.g. 4G or 512M") from exc
    num = float(m.group(1))
    unit = (m.group(2) or "").lower()[:1]
    mult = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[unit]
    return int(num * mult)


def parse_budget(text: str | int | None, pool_rows: int) -> int | None:
    """``"N"`` rows or ``"P%"`` of the pool to a row count; checked against the pool size."""
    if text is None:
        return None
    s = str(text).strip()
    if s.endswith("%"):
        try:
            pct = float(s[:-1])
        except ValueError as exc:
            raise InvalidParameterError(f"budget: {text!r} is not a number of rows or a percentage like 10%") from exc
        if not 0 < pct <= 100:
            raise InvalidParameterError(f"budget: a percentage must be in (0, 100], got {s}")
        rows = int(pct / 100.0 * pool_rows)
        if rows < 1:
            raise InvalidParameterError(f"budget: {s} of {pool_rows} pool rows is less than one row")
        return rows
    try:
        rows = int(s)
    except ValueError as exc:
        raise InvalidParameterError(f"budget: {text!r} is not a number of rows or a percentage like 10%") from exc
    if rows <= 0:
        raise InvalidParameterError(f"budget: must be a positive number of rows, got {rows}")
    if rows > pool_rows:
        raise InvalidParameterError(f"budget: {rows} rows is more than the pool's {pool_rows} rows")
    return rows


@dataclass(frozen=True)
class SelectConfig:
    """Everything that defines a selection run (what goes into the run record and the resume fingerprint).

    ``clusters="auto"`` decides from the pool and target sizes (:func:`gioselect.quantize.auto_clusters`);
    ``clusters=0`` turns quantisation off (GIO runs on the pool rows themselves). ``target_clusters=None``
    uses ``clusters`` for the target too. ``candidates`` is what stands for a cluster in GIO
    (:data:`gioselect.quantize.CANDIDATE_MODES`), ``refine`` the row-level pass that picks the rows of the chosen
    clusters (``"none"``: explode them whole), ``refine_over`` how many rows' worth of clusters it ranks per
    selected row. ``budget`` is ``"N"`` rows or ``"P%"`` of the pool.
    """

    pool: Path
    target: Path
    out: Path
    params: GIOParams = field(default_factory=GIOParams)
    embedding_field: str | None = None
    target_embedding_field: str | None = None
    clusters: int | str = "auto"
    target_clusters: int | None = None
    candidates: str = "auto"
    refine: str = "knn"
    refine_over: float = 1.5
    kmeans_iter: int = 20
    budget: str | None = None
    budget_exact: bool = False
    seed: int = 0
    memory_budget: int = field(default_factory=default_memory_budget)
    checkpoint_every: int = 25
    checkpoint_seconds: float = 30.0
    threads: int | None = None
    report: bool = True
    text_field: str | None = None
    target_text_field: str | None = None
    model: str | None = None
    embed_batch_size: int = 64
    embed_cache: bool = True
    cache_dir: Path | None = None
    embed_backend: str = "onnx"
    exclude: Path | None = None  # an evaluation set to keep out (gioselect.exclude)
    exclude_threshold: float = 0.95
    report_fields: tuple[str, ...] = ()  # pool columns the report breaks the selection down by

    def validate(self) -> SelectConfig:
        self.params.validate()
        if self.clusters != "auto":
            if isinstance(self.clusters, str):
                raise InvalidParameterError(f"clusters: expected 'auto' or an integer >= 0, got {self.clusters!r}")
            check_int(self.clusters, "clusters", low=0)
        if self.candidates not in CANDIDATE_MODES:
            raise InvalidParameterError(
                f"candidates: expected one of {', '.join(CANDIDATE_MODES)}, got {self.candidates!r}")
        if self.refine not in REFINE_MODES:
            raise InvalidParameterError(f"refine: expected one of {', '.join(REFINE_MODES)}, got {self.refine!r}")
        check_real(self.refine_over, "refine_over", low=1.0)
        if self.target_clusters is not None:
            check_int(self.target_clusters, "target_clusters", low=0)
        check_int(self.kmeans_iter, "kmeans_iter", low=1)
        check_int(self.seed, "seed", low=0)
        check_int(self.memory_budget, "memory_budget", low=64 << 10)
        check_int(self.checkpoint_every, "checkpoint_every", low=1)
        check_real(self.checkpoint_seconds, "checkpoint_seconds", low=0.0)
        if self.threads is not None:
            check_int(self.threads, "threads", low=1)
        check_int(self.embed_batch_size, "embed_batch_size", low=1)
        if self.budget_exact and self.budget is None:
            raise InvalidParameterError("budget_exact needs a budget")
        for text, emb, opt in ((self.text_field, self.embedding_field, "--text-field with --embedding-field"),
                               (self.target_text_field, self.target_embedding_field,
                                "--target-text-field with --target-embedding-field")):
            if text is not None and emb is not None:
                raise InvalidParameterError(
                    f"{opt}: the input is either text to embed (text_field={text!r}) or vectors "
                    f"(embedding_field={emb!r}), not both; drop one of them"
                )
        kt = self.clusters if self.target_clusters is None else self.target_clusters
        if isinstance(kt, int) and 0 < kt <= self.params.k:
            name = "target_clusters (--target-clusters)" if self.target_clusters is not None else (
                "clusters (--clusters; the target uses it too unless --target-clusters is given)")
            raise InvalidParameterError(
                f"{name} = {kt}: the target would be quantised to at most {kt} points, but the k-NN estimate "
                f"needs more than k={self.params.k}; use more clusters, or --target-clusters 0 to keep the "
                "target's rows"
            )
        return self

    def fingerprint_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("out", "checkpoint_every", "checkpoint_seconds", "threads", "report", "memory_budget",
                    "embed_batch_size", "embed_cache", "cache_dir", "embed_backend", "report_fields",
                    "exclude"):  # the exclusion set counts by content (run_select), not by path
            d.pop(key)
        d["pool"] = _resolved(self.pool)
        d["target"] = _resolved(self.target)
        if self.model is not None and Path(self.model).exists():
            d["model"] = str(Path(self.model).resolve())
        return d


def _resolved(p: Path | str) -> str:
    """An input's absolute path with links resolved (Spark URIs such as ``hdfs://...`` as given)."""
    s = str(p)
    if "://" in s and not s.startswith("file://"):
        return s
    return os.path.realpath(s.removeprefix("file://"))


def _inputs(cfg: SelectConfig) -> list[tuple[str, Any]]:
    """The run's inputs, for the output checks: pool, target and a local model folder."""
    out: list[tuple[str, Any]] = [("pool", cfg.pool), ("target", cfg.target)]
    if cfg.model is not None and Path(cfg.model).exists():
        out.append(("model", cfg.model))
    return out


def _seeds(seed: int) -> dict[str, int]:
    """Independent sub-seeds for each random phase, derived from the run's seed."""
    names = ("pool_kmeans", "target_kmeans", "gio", "explode", "report")
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {n: int(c.generate_state(1)[0]) for n, c in zip(names, children, strict=True)}


def _input_record(path: Path, src: EmbeddingSource, sha: str, embedded: dict[str, Any] | None) -> dict[str, Any]:
    rec = {"path": str(path), "format": detect_format(path), "rows": src.n_rows, "dim": src.dim,
           "embedding_field": None if embedded else src.embedding_field, "bytes": path.stat().st_size,
           "sha256": sha}
    if path.is_dir():  # a folder (gioselect.io.folder): its data files, with sizes and hashes, and their total
        fp = input_fingerprint(path)
        rec.update(bytes=fp["bytes"], kind=fp["kind"], files=fp["files"])
    if embedded:
        rec["text"] = embedded
    return rec


def _versions() -> dict[str, str]:
    out = {"gioselect": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for mod in ("faiss", "pyarrow", "matplotlib"):
        try:
            out[mod] = str(__import__(mod).__version__)
        except Exception:  # pragma: no cover - reported as missing
            out[mod] = "missing"
    return out


def _save_npz(path: Path, **arrays: Any) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


class _Checkpointer:
    """Writes the GIO loop state every ``every`` accepted picks or ``seconds`` seconds, atomically."""

    def __init__(self, path: Path, every: int, seconds: float) -> None:
        self.path, self.every, self.seconds = path, every, seconds
        self.last_time = time.monotonic()
        self.since = 0

    def maybe(self, search: Any, force: bool = False) -> None:
        self.since += 1
        if force or self.since >= self.every or time.monotonic() - self.last_time >= self.seconds:
            sd = search.state_dict()
            scalars = json.dumps(sd.pop("scalars"), default=_json_default)
            _save_npz(self.path, scalars=np.array(scalars), **sd)
            self.since = 0
            self.last_time = time.monotonic()


def _load_gio_state(path: Path) -> dict[str, Any]:
    raw = _load_npz(path)
    sd: dict[str, Any] = {k: v for k, v in raw.items() if k != "scalars"}
    sd["scalars"] = json.loads(str(raw["scalars"]))
    return sd


def _debug_delay() -> float:
    # For the resume tests only: slow each pick down so that a test can kill the process mid-run.
    try:
        return float(os.environ.get("GIOSELECT_DEBUG_PICK_DELAY", "0"))
    except ValueError:
        return 0.0


def run_select(cfg: SelectConfig, *, resume: bool = False, force: bool = False, progress: Progress | None = None,
               command: list[str] | None = None) -> dict[str, Any]:
    """Run the whole selection job; returns the manifest (also written to ``<out>/manifest.json``).

    Raises
    ------
    OutputExistsError
        ``out`` exists and neither ``force`` nor a completed ``resume`` applies.
    ResumeError
        ``resume`` with a checkpoint made from other inputs or parameters.
    InvalidInputError, InvalidParameterError
        Bad files or parameters (nothing is left behind then).
    """
    cfg = cfg.validate()
    prog: Progress = progress or _no_progress
    t_start = time.monotonic()
    timings: dict[str, float] = {}
    for p, what in ((cfg.pool, "pool"), (cfg.target, "target")):
        check_input_path(p, what, allow_dir=is_folder_table(p))
        detect_format(p)
    plan = check_output_dir(Path(cfg.out), _inputs(cfg), force=force, resume=resume)  # before any work
    out, work = plan.out, plan.work
    out.parent.mkdir(parents=True, exist_ok=True)
    with run_lock(plan.lock, out, command):
        plan = check_output_dir(Path(cfg.out), _inputs(cfg), force=force, resume=resume)  # again, locked
        if plan.state == "complete":
            logger.info("%s is already complete; nothing to resume", out)
            remove_work_dir(work)  # left by a run killed between publishing and cleaning up
            return dict(json.loads((out / "manifest.json").read_text()))
        t0 = time.monotonic()
        hashed = {"pool": cfg.pool, "target": cfg.target, **({"exclude": cfg.exclude} if cfg.exclude else {})}
        fps: dict[str, dict[str, Any]] = {}
        with prog("hashing inputs", len(hashed), "file") as upd:
            for which, path in hashed.items():  # by content: size and SHA-256 (a folder: of its data files)
                fp = input_fingerprint(path, which)
                fps[which] = {"path": _resolved(path), "bytes": fp["bytes"], "sha256": fp["sha256"]}
                upd(1)
        if "exclude" in fps:
            del fps["exclude"]["path"]  # a moved or renamed exclusion file with the same content is the same run
        pool_sha, target_sha = fps["pool"]["sha256"], fps["target"]["sha256"]
        fingerprint = {"config": cfg.fingerprint_dict(), "inputs": fps, "format": CHECKPOINT_FORMAT}
        fresh = _open_work_dir(work, fingerprint, resume)
        timings["hash"] = time.monotonic() - t0
        try:
            return _run_phases(cfg, work, out, pool_sha, target_sha, timings, t_start, prog, force, command)
        except GIOError:
            # Bad input found after set-up (a NaN deep in the pool, say): nothing worth resuming was made.
            if fresh:
                remove_work_dir(work)
            raise


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 or not isinstance(v, str) or "/" in v else text[:13] + "...'"


def _fingerprint_differences(old: Any, new: dict[str, Any]) -> list[str]:
    """What differs between a checkpoint's fingerprint and this run's, as ``name: old -> new`` lines."""
    if not isinstance(old, dict):
        return ["the checkpoint has no readable record of its inputs and parameters"]
    fo, fn = _flatten(old), _flatten(new)
    lines = []
    for key in sorted(set(fo) | set(fn)):
        if fo.get(key, "<absent>") != fn.get(key, "<absent>"):
            name = key.removeprefix("config.params.").removeprefix("config.").removeprefix("inputs.")
            lines.append(f"{name}: {_short(fo.get(key, '<absent>'))} in the checkpoint, "
                         f"{_short(fn.get(key, '<absent>'))} now")
    return lines


def _open_work_dir(work: Path, fingerprint: dict[str, Any], resume: bool) -> bool:
    """Set up ``work`` for a run identified by ``fingerprint``; returns whether it was made afresh.

    With ``resume`` and a matching fingerprint the folder (and its checkpoints) is kept; a mismatch is a
    :class:`ResumeError` (the folder is left alone). Without ``resume`` a stale folder is discarded.
    """
    fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True, default=_json_default))
    fp_hash = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
    if work.exists():
        old = work / "fingerprint.json"
        if resume and old.exists():
            try:
                record = json.loads(old.read_text())
            except (OSError, ValueError) as exc:
                raise ResumeError(f"{old}: unreadable checkpoint record ({exc}); rerun without --resume") from exc
            if record.get("hash") != fp_hash:
                diff = _fingerprint_differences(record.get("fingerprint"), fingerprint)
                shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
                raise ResumeError(
                    f"--resume: {work} holds a run with other inputs or parameters ({shown}); rerun with the "
                    f"original ones, or without --resume (the checkpoint is then discarded)"
                )
            logger.info("resuming from %s", work)
        else:
            if resume:
                logger.info("no checkpoint in %s; starting afresh", work)
            remove_work_dir(work)
    elif resume:
        logger.info("nothing to resume at %s; starting afresh", work)
    fresh = not work.exists()
    work.mkdir(parents=True, exist_ok=True)
    _write_json(work / "fingerprint.json", {"hash": fp_hash, "fingerprint": fingerprint})
    return fresh


def _text_field(cfg: SelectConfig, which: str) -> str | None:
    """The text column of the pool or target, or None when it holds vectors."""
    if which == "pool":
        return cfg.text_field
    if detect_format(cfg.target) == "npy":
        return None
    return cfg.target_text_field or cfg.text_field


def _embed_file(cfg: SelectConfig, which: str, field_: str, work: Path, prog: Progress) -> tuple[Path, dict[str, Any]]:
    """Embed a text column into ``work/<which>_embeddings.npy`` (kept for resume); returns it and a record."""
    from .embed import EmbeddingCache, TextEmbedder, embed_texts
    from .io import read_texts

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
            "dim": int(emb.shape[1]), "cache_hit": bool(hit)}
    logger.info("%s: %d texts embedded with %s (%s)", which, len(texts), info["model"],
                "from the cache" if hit else "computed")
    _write_json(info_path, info)
    return dest, info


def _run_phases(cfg: SelectConfig, work: Path, out: Path, pool_sha: str, target_sha: str,
                timings: dict[str, float], t_start: float, prog: Progress, force: bool,
                command: list[str] | None) -> dict[str, Any]:
    engine = LocalEngine(cfg.memory_budget, cfg.threads)
    seeds = _seeds(cfg.seed)

    # -- read (and embed text) -----------------------------------------------------------------------------
    t0 = time.monotonic()
    embedded: dict[str, dict[str, Any]] = {}
    paths: dict[str, Path] = {"pool": Path(cfg.pool), "target": Path(cfg.target)}
    for which in ("pool", "target"):
        tf = _text_field(cfg, which)
        if tf is not None:
            paths[which], embedded[which] = _embed_file(cfg, which, tf, work, prog)
    if embedded:
        timings["embed"] = time.monotonic() - t0
        t0 = time.monotonic()
    pool = engine.open(paths["pool"], None if "pool" in embedded else cfg.embedding_field, "pool")
    pool_rows = open_table(cfg.pool, name="pool") if "pool" in embedded else pool
    target_src = engine.open(paths["target"], None if "target" in embedded else
                             (cfg.target_embedding_field or cfg.embedding_field), "target")
    if target_src.dim != pool.dim:
        raise InvalidInputError(
            f"target: {cfg.target} has dimension {target_src.dim} but the pool {cfg.pool} has {pool.dim}"
        )
    budget_rows = parse_budget(cfg.budget, pool.n_rows)
    k = cfg.params.k
    if target_src.n_rows <= k:
        raise InvalidInputError(f"target: {cfg.target} has {target_src.n_rows} rows; more than k={k} are needed")
    with prog("reading target", target_src.n_rows, "row") as upd:
        target = check_embeddings(target_src.read_all(), f"target {cfg.target}")
        upd(target.shape[0])
    timings["read"] = time.monotonic() - t0
    exclusion = None
    if cfg.exclude is not None:  # -- the exclusion set (gioselect.exclude): rows that can never be selected
        from .exclude import exclusion_for_run

        t0 = time.monotonic()
        with prog("matching the exclusion set", None, "file") as upd:
            exclusion = exclusion_for_run(pool, cfg.exclude, embedding_field=cfg.embedding_field,
                                          text_field=cfg.text_field, model=cfg.model, cache_dir=cfg.cache_dir,
                                          embed_cache=cfg.embed_cache, threshold=cfg.exclude_threshold,
                                          block_rows=engine.block_rows(pool.dim))
            upd(1)
        timings["exclude"] = time.monotonic() - t0

    # -- quantise the pool ---------------------------------------------------------------------------------
    t0 = time.monotonic()
    plan = plan_clusters(cfg.clusters, cfg.target_clusters, pool.n_rows, int(target.shape[0]))
    kp = plan.pool_clusters
    quantized = kp > 0
    if quantized and pool.n_rows < MIN_ROWS_PER_CLUSTER * kp:
        logger.warning(
            "quantising %d pool rows into %d clusters leaves about %.1f rows per cluster, too few for K-means to "
            "mean much; consider --clusters 0 (no quantisation) or a smaller K", pool.n_rows, kp,
            pool.n_rows / kp)
    qfile = work / "pool_quantization.npz"
    kmeans_sample = 0
    cand_mode = None
    if quantized:
        if qfile.exists():
            q = _load_npz(qfile)
            centroids, sizes, labels = q["centroids"], q["sizes"], q["labels"]
            candidates, cand_mode = q["candidates"], str(q["candidates_mode"])
            kmeans_sample = int(q["sample_rows"])
        else:
            with prog(f"K-means ({kp} clusters)", None, "step") as upd:
                raw_centroids, kmeans_sample = engine.kmeans(pool, kp, seed=seeds["pool_kmeans"],
                                                             niter=cfg.kmeans_iter)
                upd(1)
            with prog("assigning pool rows", pool.n_rows, "row") as upd:
                centroids, sizes, labels, medoids = engine.assign(pool, raw_centroids, progress=upd)
            norm_sample = engine.take(pool, engine.sample_ids(pool.n_rows, 1000, seeds["pool_kmeans"]))
            candidates, cand_mode = select_candidates(cfg.candidates, centroids, medoids, norm_sample,
                                                      lambda ids: engine.take(pool, ids))
            _save_npz(qfile, centroids=centroids, sizes=sizes, labels=labels, candidates=candidates,
                      candidates_mode=np.str_(cand_mode), sample_rows=np.int64(kmeans_sample))
    else:
        candidates = _unquantized_candidates(pool, engine, cfg, prog)
        sizes = np.ones(pool.n_rows, dtype=np.int64)
        labels = None
    timings["quantize_pool"] = time.monotonic() - t0

    t0 = time.monotonic()
    kt = plan.target_clusters
    target_quantized = kt > 0
    if target_quantized:
        tfile = work / "target_quantization.npz"
        if tfile.exists():
            target_c = _load_npz(tfile)["centroids"]
        else:
            with prog(f"K-means of the target ({kt} clusters)", None, "step") as upd:
                target_c = quantize_array(target, kt, seed=seeds["target_kmeans"], niter=cfg.kmeans_iter).centroids
                upd(1)
            _save_npz(tfile, centroids=target_c)
        if target_c.shape[0] <= k:
            raise InvalidParameterError(
                f"target_clusters: the target quantises to {target_c.shape[0]} clusters; more than k={k} needed"
            )
    else:
        target_c = target
    timings["quantize_target"] = time.monotonic() - t0

    # -- size ----------------------------------------------------------------------------------------------
    size_est = None
    if budget_rows is None and cfg.params.stop_criterion == "auto":
        # The automatic size: how many pool rows look like the target (one streamed pass over the pool rows,
        # never the centroids); the run then fills exactly that many rows.
        t0 = time.monotonic()
        with prog("estimating the target-like share of the pool", None, "pass") as upd:
            _, size_est = auto_budget(pool, target, cfg.params, None, seeds["gio"])
            upd(1)
        assert size_est is not None
        budget_rows = size_est.rows
        timings["size_estimate"] = time.monotonic() - t0
    # The row-level pass ranks the rows of clusters worth refine_over times the budget, then keeps the budget.
    refining = quantized and cfg.refine != "none" and budget_rows is not None
    gio_budget = budget_rows
    gio_cfg = cfg
    if refining and budget_rows is not None:
        gio_budget = math.ceil(cfg.refine_over * budget_rows)
        gio_cfg = replace(cfg, budget_exact=True)

    # -- select --------------------------------------------------------------------------------------------
    t0 = time.monotonic()
    search = _run_gio(gio_cfg, candidates, target_c, sizes, gio_budget, seeds["gio"], work, prog,
                      blocked=exclusion.mask if exclusion is not None and labels is None else None)
    timings["select"] = time.monotonic() - t0
    st = search.state
    picks = np.asarray(st.selected, dtype=np.int64)

    # -- explode -------------------------------------------------------------------------------------------
    t0 = time.monotonic()
    # A budget (given, or the automatic size) is exact: the last cluster is cut to fill it.
    limit = budget_rows
    if labels is not None:
        members = ClusterMembers(labels, candidates.shape[0])
        with prog("choosing rows of the chosen clusters" if refining else "exploding clusters", None, "step") as upd:
            selected_ids = quantized_rows(picks, members, lambda ids: engine.take(pool, ids), target, candidates,
                                          budget_rows, how=cfg.refine, k=k, over=cfg.refine_over, limit=limit,
                                          seed=seeds["explode"])
            upd(1)
    else:
        _, first = np.unique(picks, return_index=True)
        selected_ids = picks[np.sort(first)]
        if limit is not None:
            selected_ids = selected_ids[:limit]
    if exclusion is not None:  # a chosen cluster's excluded rows are left out when it is exploded
        selected_ids = selected_ids[~exclusion.mask[selected_ids]]
    timings["explode"] = time.monotonic() - t0

    # -- write ---------------------------------------------------------------------------------------------
    t0 = time.monotonic()
    result = work / "result"
    if result.exists():
        remove_result_dir(result)
    result.mkdir()
    np.save(result / "selected_ids.npy", selected_ids)
    sel_name = f"selected_rows{pool_rows.output_suffix}"  # a folder pool: parquet
    with prog("writing selected rows", None, "file") as upd:
        engine.write_selected(pool_rows, selected_ids, np.arange(selected_ids.shape[0], dtype=np.int64),
                              result / sel_name)
        upd(1)
    row_ids_name = None
    if pool_rows.format == "npy":  # a .npy has no columns for gio_row_id: the ids of its rows go beside it
        row_ids_name = "selected_row_ids.npy"
        np.save(result / row_ids_name, np.unique(selected_ids).astype(np.int64))
    _write_trace(result / "kl_trace.csv", search.initial_kl, st.history, sizes, quantized)
    from .report import write_picks  # per-row gain and nearest target ids (gioselect.report)

    pick_cols = write_picks(result / "picks.csv", selected_ids, picks, labels, search.initial_kl, st.kl_trace,
                            lambda ids: engine.take(pool, ids), target)

    final_kl = float(st.kl_trace[-1]) if st.kl_trace else float(search.initial_kl)
    timings["write"] = time.monotonic() - t0
    manifest: dict[str, Any] = {
        "gioselect_version": __version__,
        "command": command,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "engine": engine.name,
        "seed": cfg.seed,
        "sub_seeds": seeds,
        "parameters": {**asdict(cfg.params), "clusters": cfg.clusters, "target_clusters": kt,
                       "candidates": cfg.candidates, "refine": cfg.refine, "refine_over": cfg.refine_over,
                       "kmeans_iter": cfg.kmeans_iter, "budget": cfg.budget, "budget_rows": budget_rows,
                       "budget_exact": cfg.budget_exact, "memory_budget": cfg.memory_budget,
                       "embedding_field": pool.embedding_field,
                       "target_embedding_field": target_src.embedding_field,
                       "text_field": _text_field(cfg, "pool"), "target_text_field": _text_field(cfg, "target"),
                       "model": cfg.model},
        "inputs": {"pool": _input_record(Path(cfg.pool), pool, pool_sha, embedded.get("pool")),
                   "target": _input_record(Path(cfg.target), target_src, target_sha, embedded.get("target"))},
        "counts": {"pool_rows": pool.n_rows, "target_rows": int(target.shape[0]),
                   "target_points_used": int(target_c.shape[0]), "candidates": int(candidates.shape[0]),
                   "kmeans_sample_rows": kmeans_sample, "selected_candidates": int(picks.shape[0]),
                   "distinct_selected_candidates": int(np.unique(picks).shape[0]),
                   "selected_rows": int(selected_ids.shape[0]), "picks_evaluated": st.n_iter,
                   "resets": st.num_resets},
        "clusters_decision": {"pool_clusters": kp, "target_clusters": kt, "rule": plan.rule},
        "quantization": ({"pool_clusters": int(candidates.shape[0]), "pool_clusters_requested": kp,
                          "target_clusters": int(target_c.shape[0]) if target_quantized else None,
                          "rule": plan.rule, "candidates": cand_mode,
                          "rows": (f"row-level pass ({cfg.refine}): the best rows of the chosen clusters"
                                   if refining else "chosen clusters exploded whole"),
                          "weighting": "none (each candidate is one point; sizes count only for --budget)"}
                         if quantized else None),
        "stop_reason": "auto" if size_est is not None and st.stop_reason == "budget" else st.stop_reason,
        "size_estimate": None if size_est is None else size_est.as_dict(),
        "initial_kl": _finite_or_none(search.initial_kl),
        "final_kl": _finite_or_none(final_kl),
        "scale_factor": _finite_or_none(search.scale),
        "outputs": {"selected_ids": "selected_ids.npy", "selected_rows": sel_name, "kl_trace": "kl_trace.csv",
                    **({"selected_row_ids": row_ids_name} if row_ids_name else {}), "picks": "picks.csv",
                    "manifest": "manifest.json",
                    "report": "report.html" if cfg.report else None},
        "exclusion": {**exclusion.record(str(cfg.exclude)), **input_fingerprint(str(cfg.exclude), "exclude")}
        if exclusion is not None else None,
        "versions": _versions(),
    }
    manifest["warnings"] = _result_warnings(cfg, pool.n_rows, int(selected_ids.shape[0]), candidates, quantized,
                                            target)
    if cfg.report:
        # The report shows the timings up to here; the manifest adds the report's own time.
        t1 = time.monotonic()
        manifest["timings_s"] = {**_rounded(timings), "total": round(t1 - t_start, 4)}
        with prog("writing report", None, "file") as upd, single_threaded_blas():
            _write_report(result, manifest, engine, pool, target, selected_ids, st.kl_trace, search.initial_kl,
                          seeds["report"], picks=pick_cols, pool_path=Path(cfg.pool), selected_path=result / sel_name,
                          report_fields=cfg.report_fields, text_field=cfg.text_field)
            upd(1)
        timings["report"] = time.monotonic() - t1
    timings["total"] = time.monotonic() - t_start
    manifest["timings_s"] = _rounded(timings)
    _write_json(result / "manifest.json", manifest)

    _publish(result, out, force)
    remove_work_dir(work)
    return manifest


def _run_gio(cfg: SelectConfig, candidates: np.ndarray, target: np.ndarray, sizes: np.ndarray,
             budget_rows: int | None, seed: int, work: Path, prog: Progress,
             blocked: np.ndarray | None = None) -> Any:
    """The select phase of every engine: GIO on the candidates, resumed from and checkpointed to ``work``.

    Returns the finished search (``GIOSearch`` or ``ExactGreedySearch``). With ``stop_criterion="auto"`` and no
    ``budget_rows`` (a caller that did not size the run from the pool's rows, as the local job does), the size is
    estimated here from the candidates, each standing for its cluster's rows (``sizes``), and kept in
    ``search.size_estimate``.
    """
    if budget_rows is None and cfg.params.stop_criterion == "auto":
        sz = np.asarray(sizes, dtype=np.int64)

        def rows_as_centroids() -> Iterator[np.ndarray]:
            for i in range(candidates.shape[0]):
                row = np.asarray(candidates[i], dtype=np.float32)[None, :]
                for s0 in range(0, int(sz[i]), 65536):
                    yield np.broadcast_to(row, (min(65536, int(sz[i]) - s0), row.shape[1]))

        _, est = auto_budget(rows_as_centroids, target, cfg.params, None, seed)
        assert est is not None
        budget_rows = est.rows
        sizes = sz
    else:
        est = None
    search = make_search(candidates, target, cfg.params, seed=seed,
                         weights=sizes if budget_rows is not None else None,
                         budget=float(budget_rows) if budget_rows is not None else None,
                         budget_exact=budget_rows is not None)
    block_candidates(search, blocked)  # the exclusion set's rows (gioselect.exclude)
    sfile = work / "gio_state.npz"
    if sfile.exists():
        search.load_state_dict(_load_gio_state(sfile))
        logger.info("resumed GIO after %d picks", len(search.state.selected))
    ckpt = _Checkpointer(sfile, cfg.checkpoint_every, cfg.checkpoint_seconds)
    delay = _debug_delay()
    max_picks = cfg.params.max_iter if cfg.params.max_iter is not None else int(candidates.shape[0])
    # The relaxed loop is small matrix-vector products (one BLAS thread is faster); the exact greedy scores
    # candidates in blocks, where BLAS threads help.
    blas = single_threaded_blas() if cfg.params.objective == "relaxed" else contextlib.nullcontext()
    with prog("selecting (GIO)", max_picks, "pick") as upd, blas:
        upd(len(search.state.selected))
        while (ev := search.step()) is not None:
            if ev.accepted:
                upd(1)
            if delay:
                time.sleep(delay)
            ckpt.maybe(search, force=search.done)
    search.size_estimate = est  # type: ignore[attr-defined]
    return search


def _unquantized_candidates(pool: EmbeddingSource, engine: LocalEngine, cfg: SelectConfig,
                            prog: Progress) -> np.ndarray:
    """The pool rows as GIO candidates: a float32 .npy stays memory-mapped (checked in one streamed pass);
    other formats are read into memory, which must fit the memory budget."""
    need = pool.n_rows * pool.dim * 4
    with prog("reading pool", pool.n_rows, "row") as upd:
        if pool.format == "npy":
            mm = np.load(pool.path, mmap_mode="r", allow_pickle=False)
            if mm.dtype == np.float32:
                for _, block in pool.iter_blocks(engine.block_rows(pool.dim)):  # validates every row
                    upd(block.shape[0])
                return mm
        if need > cfg.memory_budget:
            raise InvalidParameterError(
                f"clusters=0 holds the whole pool in memory ({need / 2**30:.2f} GiB as float32), more than the "
                f"memory budget ({cfg.memory_budget / 2**30:.2f} GiB): quantise (--clusters K), raise "
                f"--memory-budget, or convert the pool to a float32 .npy (memory-mapped)"
            )
        out = check_embeddings(pool.read_all(), f"pool {cfg.pool}")
        upd(pool.n_rows)
        return out


def _finite_or_none(x: float) -> float | None:
    """JSON has no NaN: undefined values (the exact objective's empty start set, its missing scale) are null."""
    return float(x) if np.isfinite(x) else None


def _rounded(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in timings.items()}


def _publish(result: Path, out: Path, force: bool) -> None:
    """Move the finished result folder (``<work>/result``) to ``out``; see :func:`gioselect.outdir.publish_result`."""
    publish_result(result, out, result.parent, force=force)


def _result_warnings(cfg: SelectConfig, pool_rows: int, selected_rows: int, candidates: np.ndarray,
                     quantized: bool, target: np.ndarray) -> list[str]:
    """The degenerate-run warnings of a finished selection (logged, and kept in the manifest and report)."""
    warnings = result_warnings(
        pool_rows=pool_rows, selected_rows=selected_rows, candidates=candidates,
        target=target, clusters=cfg.clusters if isinstance(cfg.clusters, int) else 0, quantized=quantized,
        asked_all=cfg.budget is not None and parse_budget(cfg.budget, pool_rows) == pool_rows)
    for w in warnings:
        logger.warning("%s", w)
    return warnings


def _write_trace(path: Path, initial_kl: float, history: list[tuple[int, float, int]], sizes: np.ndarray,
                 quantized: bool) -> None:
    """One row per evaluated pick: accepted ones numbered from 1, plus the start, resets and the stopping pick."""
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    unit = "cluster" if quantized else "row"
    w.writerow(["iteration", "kl", f"picked_{unit}", "rows", "accepted", "event"])
    w.writerow([0, repr(float(initial_kl)), "", 0, "", "start"])
    it = 0
    names = {EVENT_ACCEPTED: "accepted", EVENT_RESET: "reset", EVENT_STOP: "stop"}
    for cand, kl, code in history:
        accepted = code == EVENT_ACCEPTED
        it += accepted
        w.writerow([it if accepted else "", repr(float(kl)), cand, int(sizes[cand]), int(accepted), names[code]])
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def _write_report(result: Path, manifest: dict[str, Any], engine: LocalEngine, pool: EmbeddingSource,
                  target: np.ndarray, selected_ids: np.ndarray, kl_trace: list[float], initial_kl: float,
                  seed: int, **report_opts: Any) -> None:
    from .report import write_report

    rng = np.random.default_rng(seed)
    t_idx = np.sort(rng.choice(target.shape[0], size=min(REPORT_TARGET_ROWS, target.shape[0]), replace=False))
    p_ids = engine.sample_ids(pool.n_rows, REPORT_POOL_ROWS, seed)
    s_ids = np.sort(rng.choice(selected_ids, size=min(REPORT_SELECTED_ROWS, selected_ids.shape[0]),
                               replace=False)) if selected_ids.shape[0] else selected_ids
    write_report(result / "report.html", manifest=manifest, kl_trace=kl_trace, initial_kl=initial_kl,
                 target_sample=target[t_idx], pool_sample=engine.take(pool, p_ids),
                 selected_sample=engine.take(pool, s_ids) if s_ids.shape[0] else None,
                 projection="tsne" if report_opts.get("text_field") else "pca", **report_opts)
