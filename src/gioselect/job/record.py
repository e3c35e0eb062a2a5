"""The run record: manifest pieces, the KL trace, JSON written atomically; the report's sample sizes.

Shared by both engines (:mod:`gioselect.job.run`).
"""

from __future__ import annotations

import csv
import io as _io
import json
import logging
import platform
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..io import atomic_path
from ..optimize import EVENT_ACCEPTED, EVENT_RESET, EVENT_STOP
from ..validation import result_warnings
from .config import SelectConfig, parse_budget

__all__ = ["REPORT_POOL_ROWS", "REPORT_SELECTED_ROWS", "REPORT_TARGET_ROWS", "finite_or_none", "json_default",
           "report_sample_ids", "rounded", "run_warnings", "versions", "write_json",
           "write_trace"]

logger = logging.getLogger(__name__)

REPORT_TARGET_ROWS = 2000
REPORT_POOL_ROWS = 5000
REPORT_SELECTED_ROWS = 2000


def versions() -> dict[str, str]:
    """Versions of gioselect, Python and the libraries that shape the result."""
    out = {"gioselect": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for mod in ("faiss", "pyarrow", "matplotlib"):
        try:
            out[mod] = str(__import__(mod).__version__)
        except Exception:  # pragma: no cover - reported as missing
            out[mod] = "missing"
    return out


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented, key-sorted JSON, atomically (numpy scalars and paths converted)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n")


def json_default(o: Any) -> Any:
    """``json.dumps`` fallback for paths and numpy values."""
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def finite_or_none(x: float) -> float | None:
    """JSON has no NaN: undefined values (the exact objective's empty start set, its missing scale) are null."""
    return float(x) if np.isfinite(x) else None


def rounded(timings: dict[str, float]) -> dict[str, float]:
    """Timings rounded to 0.1 ms for the manifest."""
    return {k: round(v, 4) for k, v in timings.items()}


def run_warnings(cfg: SelectConfig, pool_rows: int, selected_rows: int, candidates: np.ndarray, quantized: bool,
                 target: np.ndarray, excluded_rows: int = 0, stop_reason: str | None = None) -> list[str]:
    """The degenerate-run warnings of a finished selection (logged, and kept in the manifest and report)."""
    warnings = result_warnings(
        pool_rows=pool_rows, selected_rows=selected_rows, candidates=candidates,
        target=target, clusters=cfg.clusters if isinstance(cfg.clusters, int) else 0, quantized=quantized,
        asked_all=cfg.budget is not None and parse_budget(cfg.budget, pool_rows) == pool_rows,
        excluded_rows=excluded_rows, budget_given=cfg.budget is not None, stop_reason=stop_reason)
    for w in warnings:
        logger.warning("%s", w)
    return warnings


def write_trace(path: Path, initial_kl: float, history: list[tuple[int, float, int]], sizes: np.ndarray,
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


def write_f1_curve(path: Path, f1: dict[str, Any]) -> None:
    """``f1_curve.csv``: the F1 rule's estimated F1 after each recorded pick (``pick``, ``rows``, ``estimated_f1``,
    ``kept``: 1 up to the prefix the selection was cut to)."""
    curve = f1.get("curve") or {"picks": [], "rows": [], "f1": []}
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["pick", "rows", "estimated_f1", "kept"])
    for p, r, v in zip(curve["picks"], curve["rows"], curve["f1"], strict=True):
        w.writerow([p, r, repr(float(v)), int(p <= int(f1["best_picks"]))])
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def report_sample_ids(n_target: int, selected_ids: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The report's seeded samples of target rows and of selected pool rows (sorted), the same on every engine.

    The pool sample comes from the engine (``sample_ids(n_rows, REPORT_POOL_ROWS, seed)``) with the same seed.
    """
    rng = np.random.default_rng(seed)
    t_idx = np.sort(rng.choice(n_target, size=min(REPORT_TARGET_ROWS, n_target), replace=False))
    s_ids = (np.sort(rng.choice(selected_ids, size=min(REPORT_SELECTED_ROWS, selected_ids.shape[0]), replace=False))
             if selected_ids.shape[0] else np.zeros(0, dtype=np.int64))
    return t_idx, s_ids
