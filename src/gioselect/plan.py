"""``gioselect plan``: what a ``select`` run will do on this machine, before it runs.

The estimate is built from the inputs' sizes (rows, dimension, read from the file headers without reading the
data), the options (K, k, ``max_iter``/budget, ``grad_desc_iter``) and a short calibration on this machine:

* **read**: the pool is streamed once (hashing and validation); calibrated by timing one block of the file.
* **quantise**: K-means on ``min(rows, 256 K)`` sampled rows for ``kmeans_iter`` iterations, then every row
  assigned in blocks; calibrated by timing one nearest-centroid search of a block on this machine.
* **select**: each pick costs ``grad_desc_iter`` gradient steps over the target (O(n d) each) plus one
  nearest-unused search over the candidates (O(M d)); calibrated by timing those two kernels. The number of picks
  is ``max_iter`` when given, else the budget's rows / mean cluster size, else (stopping decides) a bound of
  ``min(candidates, 1000)`` that is shown as such.

Peak memory is the largest of the phases' working sets: the K-means sample, the candidates (centroids, or the
whole pool when ``clusters=0`` and it is not a float32 .npy, which is memory-mapped), and two pool blocks. The run
fits when that peak is at most the memory budget. The estimate is an order of magnitude, not a promise: the
number of picks is decided by the stopping rule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Phase", "Plan", "format_plan", "make_plan"]

DEFAULT_PICK_BOUND = 1000


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    peak_bytes: int
    note: str = ""


@dataclass(frozen=True)
class Plan:
    pool_rows: int
    target_rows: int
    dim: int
    candidates: int
    picks: int
    picks_note: str
    memory_budget: int
    phases: list[Phase] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return float(sum(p.seconds for p in self.phases))

    @property
    def peak_bytes(self) -> int:
        return max((p.peak_bytes for p in self.phases), default=0)

    @property
    def fits(self) -> bool:
        return self.peak_bytes <= self.memory_budget


def _time(fn: Any, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def make_plan(cfg: Any, *, calibrate_rows: int = 4096) -> Plan:
    """The plan of ``run_select(cfg)`` (a :class:`gioselect.pipeline.SelectConfig`) on this machine.

    Text inputs (``text_field``) are not embedded here: their rows are counted and the dimension is that of the
    packaged model (384); the embedding phase is listed without a time.
    """
    import faiss

    from .engines import LocalEngine
    from .engines.base import target_field_errors
    from .io import count_rows, open_embeddings
    from .pipeline import parse_budget
    from .validation import check_target_fits

    engine = LocalEngine(cfg.memory_budget, cfg.threads)
    text = cfg.text_field is not None
    if text:
        n, d = count_rows(cfg.pool), 384
        n_t = count_rows(cfg.target)
        pool_src = None
    else:
        pool_src = open_embeddings(cfg.pool, cfg.embedding_field, name="pool")
        with target_field_errors(cfg.embedding_field, cfg.target_embedding_field):
            target_src = open_embeddings(cfg.target, cfg.target_embedding_field or cfg.embedding_field,
                                         name="target")
        n, d, n_t = pool_src.n_rows, pool_src.dim, target_src.n_rows
        check_target_fits(n_t, target_src.dim, d, cfg.params.k, target=f"target: {cfg.target}",  # as select does
                          pool=f"the pool {cfg.pool}")
    p = cfg.params
    k_clusters = cfg.clusters if cfg.clusters > 0 and n > cfg.clusters else 0
    m = k_clusters or n
    kt = cfg.clusters if cfg.target_clusters is None else cfg.target_clusters
    n_tp = kt if kt > 0 and n_t > kt else n_t
    block = min(engine.block_rows(d), max(n, 1))
    rng = np.random.default_rng(0)
    cal = rng.normal(size=(min(calibrate_rows, max(n, 1)), d)).astype(np.float32)
    phases: list[Phase] = []

    # read: one calibrated pass over the pool's file
    read_s = 0.0
    if pool_src is not None:
        rows = min(block, n)
        t = time.perf_counter()
        for _, _b in pool_src.iter_blocks(rows):
            break
        read_s = (time.perf_counter() - t) * n / max(rows, 1) * 2  # hash + validate
    if text:
        phases.append(Phase("embed", float("nan"), 0, f"{n + n_t:,} texts with the text model (cached on disk)"))
    phases.append(Phase("read", read_s, 2 * block * d * 4 + n_t * d * 4, f"{n:,} x {d} pool rows streamed"))

    if k_clusters:
        sample = min(n, 256 * k_clusters)
        index = faiss.IndexFlatL2(d)
        index.add(rng.normal(size=(k_clusters, d)).astype(np.float32))
        per_row = _time(lambda: index.search(cal, 1)) / cal.shape[0]
        km_s = per_row * sample * cfg.kmeans_iter + per_row * n
        phases.append(Phase("quantise", km_s, sample * d * 4 * 2 + k_clusters * d * 8 + n * 8,
                            f"K-means K={k_clusters:,} on {sample:,} sampled rows, then {n:,} rows assigned"))
        cand_bytes = k_clusters * d * 8
    else:
        mmapped = (not text) and pool_src is not None and pool_src.format == "npy" and \
            np.load(cfg.pool, mmap_mode="r").dtype == np.float32
        cand_bytes = 0 if mmapped else n * d * 4
        phases.append(Phase("quantise", 0.0, cand_bytes,
                            "none (--clusters 0): " + ("the .npy pool is memory-mapped" if mmapped else
                                                       "the pool is held in memory as float32")))
    budget_rows = parse_budget(cfg.budget, n)
    if p.max_iter is not None:
        picks, note = min(int(p.max_iter), m), "max_iter"
    elif budget_rows is not None:
        picks, note = min(m, max(1, int(np.ceil(budget_rows / (n / m))))), "the budget"
    else:
        picks, note = min(m, DEFAULT_PICK_BOUND), "a bound: the stopping rule decides"
    tgt = rng.normal(size=(n_tp, d))
    v = rng.normal(size=d)
    step_s = _time(lambda: ((tgt - v) ** 2).sum(axis=1))
    cands = cal.astype(np.float64)
    search_s = _time(lambda: cands @ v) * m / cands.shape[0]
    sel_s = picks * (p.grad_desc_iter * step_s * 2 + search_s)
    phases.append(Phase("select", sel_s, cand_bytes + n_tp * d * 8 * 3 + m * 9,
                        f"about {picks:,} picks ({note}) over {m:,} candidates, {n_tp:,} target points"))
    phases.append(Phase("write", read_s / 2, 2 * block * d * 4, "selected rows, trace, manifest, report"))
    return Plan(n, n_t, d, m, picks, note, int(cfg.memory_budget), phases)


def _fmt_bytes(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if b < 1024 or unit == "TiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024
    return f"{b:.1f} TiB"  # pragma: no cover


def _fmt_s(s: float) -> str:
    if not np.isfinite(s):
        return "?"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def format_plan(plan: Plan) -> str:
    """The plan as the table ``gioselect plan`` prints."""
    lines = [f"pool {plan.pool_rows:,} rows x {plan.dim} dims, target {plan.target_rows:,} rows, "
             f"{plan.candidates:,} candidates",
             f"{'phase':<10} {'time':>10} {'peak memory':>12}  what"]
    for ph in plan.phases:
        lines.append(f"{ph.name:<10} {_fmt_s(ph.seconds):>10} {_fmt_bytes(ph.peak_bytes):>12}  {ph.note}")
    verdict = "fits" if plan.fits else "does NOT fit"
    lines.append(f"total about {_fmt_s(plan.seconds)}; peak memory {_fmt_bytes(plan.peak_bytes)} {verdict} the "
                 f"memory budget of {_fmt_bytes(plan.memory_budget)}")
    return "\n".join(lines)
