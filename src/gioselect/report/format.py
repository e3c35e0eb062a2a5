"""Plain-text pieces of the report: value formatting, the run record's summary lines (also printed by the
CLI, :func:`render_summary_text`), the stop reasons in words, and the atomic file write.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import math
import numbers
import os
import re
import secrets
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidTypeError

__all__ = ["NA", "atomic_write_bytes", "dig", "escape", "final_objective", "fmt_bytes", "fmt_command", "fmt_seconds",
           "fmt_value", "quantization_text", "render_summary_text", "run_warnings", "selected_text", "stop_text",
           "wall_time"]

logger = logging.getLogger(__name__)

NA = "n/a"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")




def dig(d: Any, *keys: str) -> Any:
    """``d[k1][k2]...`` or None when any level is missing or not a mapping."""
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def fmt_value(value: Any) -> str:
    """Plain-text rendering of a manifest value (not escaped): None -> n/a, ints grouped, floats 6 digits."""
    if value is None:
        return NA
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return f"{float(value):.6g}"
    if isinstance(value, str):
        return value
    if isinstance(value, (Mapping, list, tuple)):
        try:
            return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
        except (TypeError, ValueError):  # mixed-type keys cannot be sorted
            return str(value)
    return str(value)


def escape(value: Any) -> str:
    """A manifest value formatted and HTML-escaped (quotes too, so it is safe inside attributes)."""
    return html.escape(fmt_value(value), quote=True)


def fmt_bytes(n: Any) -> str:
    """``1.5 MiB (1,572,864 bytes)``; other values go through :func:`fmt_value`."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or int(n) < 0:
        return fmt_value(n)
    v = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if v < 1024 or unit == "TiB":
            break
        v /= 1024
    if unit == "bytes":
        return f"{int(n):,} bytes"
    return f"{v:.1f} {unit} ({int(n):,} bytes)"


def fmt_seconds(s: Any) -> str:
    """Seconds to ``12.3 s`` / ``2 min 05.0 s``; other values go through :func:`fmt_value`."""
    if isinstance(s, bool) or not isinstance(s, numbers.Real) or not math.isfinite(float(s)):
        return fmt_value(s)
    v = float(s)
    if v < 60:
        return f"{v:.3g} s" if v < 10 else f"{v:.1f} s"
    m, sec = divmod(v, 60.0)
    if m < 60:
        return f"{int(m)} min {sec:04.1f} s"
    h, m = divmod(m, 60.0)
    return f"{int(h)} h {int(m):02d} min {sec:04.1f} s"


def fmt_command(cmd: Any) -> str:
    """The command line as one string (argv lists are shell-quoted)."""
    if isinstance(cmd, (list, tuple)) and all(isinstance(c, str) for c in cmd):
        return shlex.join(cmd)
    return fmt_value(cmd)


def wall_time(manifest: Mapping[str, Any]) -> float | None:
    """``timings_s['total']`` when present, else the sum of the numeric phase times, else None."""
    t = dig(manifest, "timings_s")
    if not isinstance(t, Mapping) or not t:
        return None
    total = t.get("total")
    if isinstance(total, numbers.Real) and not isinstance(total, bool):
        return float(total)
    vals = [float(v) for v in t.values() if isinstance(v, numbers.Real) and not isinstance(v, bool)]
    return sum(vals) if vals else None


def final_objective(manifest: Mapping[str, Any], trace: np.ndarray) -> Any:
    """``final_kl`` from the manifest, else the last finite trace value, else None."""
    v = dig(manifest, "final_kl")
    if v is not None:
        return v
    finite = trace[np.isfinite(trace)]
    return float(finite[-1]) if finite.size else None


def selected_text(manifest: Mapping[str, Any]) -> str:
    """Selected rows, with the selected clusters when the run was quantised (plain text)."""
    rows = dig(manifest, "counts", "selected_rows")
    cands = dig(manifest, "counts", "selected_candidates")
    text = fmt_value(rows)
    if cands is not None and dig(manifest, "quantization") is not None:
        text += f" ({fmt_value(cands)} clusters)"
    return text


def quantization_text(manifest: Mapping[str, Any]) -> str:
    """``none`` or ``P pool clusters, T target clusters`` (plain text)."""
    q = dig(manifest, "quantization")
    rule = dig(manifest, "clusters_decision", "rule")
    why = f" ({fmt_value(rule)})" if rule is not None else ""
    if q is None:
        return ("none" + why) if isinstance(manifest, Mapping) and "quantization" in manifest else NA
    cands = dig(q, "candidates")
    what = f", candidates: {fmt_value(cands)}" if cands is not None else ""
    return (f"{fmt_value(dig(q, 'pool_clusters'))} pool clusters, "
            f"{fmt_value(dig(q, 'target_clusters'))} target clusters{what}{why}")


def run_warnings(m: Mapping[str, Any]) -> list[Any]:
    """The run record's ``warnings`` list (empty when there is none)."""
    w = m.get("warnings")
    return list(w) if isinstance(w, (list, tuple)) else []




def _plain(text: str) -> str:
    """Text with control characters (terminal escapes from user-supplied values) shown as escapes."""
    return _CONTROL.sub(lambda mo: repr(mo.group(0))[1:-1], text)


def render_summary_text(manifest: dict) -> str:
    """A few lines summarising a run, for the CLI to print at the end.

    Parameters
    ----------
    manifest : dict
        The run record (same keys as for :func:`write_report`); missing keys show as "n/a".

    Returns
    -------
    str
        Lines separated by ``\\n``, no trailing newline. Control characters in values are escaped.

    Raises
    ------
    InvalidTypeError
        ``manifest`` is not a mapping.
    """
    if not isinstance(manifest, Mapping):
        raise InvalidTypeError(f"manifest: expected a dict (the run record), got {type(manifest).__name__}")
    m = manifest
    lines = [
        f"selected {selected_text(m)} of {fmt_value(dig(m, 'counts', 'pool_rows'))} pool rows "
        f"(target: {fmt_value(dig(m, 'counts', 'target_rows'))} rows)",
    ]
    if dig(m, "quantization") is not None or dig(m, "clusters_decision") is not None:
        lines.append(f"quantisation: {quantization_text(m)}")
    if dig(m, "refine_decision", "rule") is not None:
        lines.append(f"row-level pass: {fmt_value(dig(m, 'refine_decision', 'rule'))}")
    lines.append(f"stop reason: {fmt_value(dig(m, 'stop_reason'))}")
    if dig(m, "size_reason") is not None:
        lines.append(f"size: {fmt_value(dig(m, 'size_reason'))}")
    lines.extend(f"WARNING: {fmt_value(w)}" for w in run_warnings(m))
    lines.append(f"objective (k-NN KL): {fmt_value(dig(m, 'initial_kl'))} -> {fmt_value(dig(m, 'final_kl'))}")
    wall = f"wall time: {fmt_seconds(wall_time(m))}"
    t = dig(m, "timings_s")
    if isinstance(t, Mapping) and t:
        wall += " (" + ", ".join(f"{k} {fmt_seconds(v)}" for k, v in t.items() if str(k) != "total") + ")"
    lines.append(wall)
    outputs = dig(m, "outputs")
    if isinstance(outputs, Mapping) and outputs:
        written = [v for v in outputs.values() if v is not None]  # None: not written (e.g. --no-report)
        lines.append("outputs: " + ", ".join(fmt_value(v) for v in written))
    return "\n".join(_plain(line) for line in lines)




def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file next to ``path``, fsync, then ``os.replace``; clean up on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # os.open with 0o666 (not mkstemp's 0o600) so the final file gets the usual umask-based permissions.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_STOP_TEXT = {
    "increase": "the objective went up with the next pick (criterion 'increase')",
    "sequential_increase_tolerance": "the objective went up several picks in a row (sequential_increase_tolerance)",
    "min_difference": "the improvement fell below min_difference",
    "max_resets": "the objective went up again after the allowed resets (max_resets)",
    "min_kl": "the objective fell below min_kl",
    "data_size": "the selection reached max_data_size of the pool (data_size)",
    "max_iter": "the most picks allowed (max_iter) were made",
    "budget": "the next pick would exceed the row budget (--budget)",
    "pool_exhausted": "every candidate was used",
    "auto-f1": "GIO ran past the best prefix of the estimated F1 and was cut to it (the automatic size: the F1 rule)",
    "auto": "the run filled the estimated number of target-like pool rows (the automatic size: the estimate)",
}


def stop_text(reason: Any) -> str:
    """A stop reason with its meaning in words (``n/a`` for none)."""
    if reason is None:
        return NA
    return f"{reason}: {_STOP_TEXT[reason]}" if reason in _STOP_TEXT else str(reason)
