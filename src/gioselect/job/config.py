"""What defines a selection run: :class:`SelectConfig`, the size parsers and the rules read from it.

Shared by both engines (:mod:`gioselect.job.run`); strings choose things only here, at the edge.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..embed.models import backend_variant
from ..errors import InvalidParameterError
from ..optimize import GIOParams
from ..quantize import CANDIDATE_MODES, REFINE_MODES, REFINE_WHOLE
from ..validation import check_int, check_real

__all__ = [
    "Progress",
    "SelectConfig",
    "default_memory_budget",
    "is_npy_path",
    "no_progress",
    "parse_budget",
    "parse_memory",
    "resolved_path",
    "run_inputs",
    "text_fields",
]


class Progress(Protocol):
    """Progress factory the CLI passes in: ``with progress(desc, total, unit) as update: update(n)``."""

    def __call__(self, desc: str, total: int | None, unit: str) -> contextlib.AbstractContextManager[
            Callable[[int], None]]: ...


@contextlib.contextmanager
def no_progress(desc: str, total: int | None, unit: str) -> Iterator[Callable[[int], None]]:
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
    clusters (``"auto"``, the default: ``"gio"`` while its estimated cost is small, ``"knn"`` above,
    :func:`gioselect.quantize.plan_refine`; ``"none"``: explode them whole; ``"gio"``: GIO again on their rows),
    ``refine_over`` how many rows' worth of clusters it takes per selected row (None: the pass's own, 2 for ``gio``
    and 1.5 for the others), ``refine_whole`` the share of the size that the first
    chosen clusters fill whole, unranked.
    ``budget`` is ``"N"`` rows or ``"P%"`` of the pool.
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
    refine: str = "auto"
    refine_over: float | None = None
    refine_whole: float = REFINE_WHOLE
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
    exclude_repel: float = 0.0  # weight of -KL~(exclude || S) in the objective (gioselect.exclude.repel_from)
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
        if self.refine_over is not None:
            check_real(self.refine_over, "refine_over", low=1.0)
        check_real(self.refine_whole, "refine_whole", low=0.0, high=1.0)
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
        if not (self.exclude_repel >= 0.0):  # also NaN
            raise InvalidParameterError(f"exclude_repel (--exclude-repel) must be >= 0, got {self.exclude_repel}")
        if self.exclude_repel and self.exclude is None:
            raise InvalidParameterError("--exclude-repel needs --exclude (the set to push away from)")
        return self

    def fingerprint_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("out", "checkpoint_every", "checkpoint_seconds", "threads", "report", "memory_budget",
                    "embed_batch_size", "embed_cache", "cache_dir", "embed_backend", "report_fields",
                    "exclude"):  # the exclusion set counts by content (run_select), not by path
            d.pop(key)
        if not self.exclude_repel:  # off: the same fingerprint as before the option existed
            d.pop("exclude_repel")
        variant = backend_variant(self.embed_backend)
        if variant is not None and (self.text_field or self.target_text_field):  # int8 vectors: a different run
            d["embed_backend"] = variant
        d["pool"] = resolved_path(self.pool)
        d["target"] = resolved_path(self.target)
        if self.model is not None and Path(self.model).exists():
            d["model"] = str(Path(self.model).resolve())
        return d



def resolved_path(p: Path | str) -> str:
    """An input's absolute path with links resolved (Spark URIs such as ``hdfs://...`` as given)."""
    s = str(p)
    if "://" in s and not s.startswith("file://"):
        return s
    return os.path.realpath(s.removeprefix("file://"))


def run_inputs(cfg: SelectConfig) -> list[tuple[str, Any]]:
    """The run's inputs, for the output checks (:mod:`gioselect.outdir`): pool, target, the exclusion set and a
    local model folder."""
    out: list[tuple[str, Any]] = [("pool", cfg.pool), ("target", cfg.target)]
    if cfg.exclude is not None:
        out.append(("exclude", cfg.exclude))
    if cfg.model is not None and Path(cfg.model).exists():
        out.append(("model", cfg.model))
    return out


def is_npy_path(path: Path | str) -> bool:
    """Whether an input is a ``.npy`` file (vectors only, never text), by its extension (any case)."""
    return Path(str(path)).suffix.lower() == ".npy"


def text_fields(cfg: SelectConfig) -> dict[str, str | None]:
    """The text column of the pool and of the target (None: vectors); the one rule of every engine and entry point.

    The pool is text when ``text_field`` is given. The target is text when it is not a ``.npy`` (by extension, so
    that a directory of part files is judged like a file) and ``target_text_field``, else ``text_field``, is given.
    """
    target = None if is_npy_path(cfg.target) else (cfg.target_text_field or cfg.text_field)
    return {"pool": cfg.text_field, "target": target}
