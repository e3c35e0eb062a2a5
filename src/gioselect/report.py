"""Run report: the objective curve, a 2-D picture of the selection, and one self-contained HTML file.

The pipeline calls :func:`write_report` at the end of ``gioselect select`` with the run record
(``manifest.json`` as a dict), the objective trace and small samples of target, pool and selection.
Everything here is deterministic: identical inputs give identical bytes (no timestamps except those in the
manifest, PNG metadata stripped), so reports can be diffed and cached.

Plots use matplotlib's object-oriented API on an Agg canvas, without pyplot: no global backend switch and
no figure registry to leak into, so the functions are safe to call from a library, a notebook or a thread.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import logging
import math
import numbers
import os
import re
import secrets
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidInputError, InvalidTypeError, MissingDependencyError
from .validation import check_embeddings, check_int

__all__ = ["pca_2d", "plot_kl_trace", "plot_projection", "render_summary_text", "write_report"]

logger = logging.getLogger(__name__)

_NA = "n/a"
_BLOCK_ROWS = 65536  # rows projected at a time: bounds the float64 working copy
_PNG_METADATA: dict[str, Any] = {"Software": None}  # matplotlib otherwise stamps its version into every PNG
_DPI = 100
_COLORS = {"pool": "#9e9e9e", "selected": "#d62728", "target": "#1f77b4", "trace": "#1f77b4"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:60em;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
.sub{color:#666;margin-top:0}.note{color:#666;font-style:italic}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;
vertical-align:top}th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em;word-break:break-all}
img{max-width:100%;height:auto}footer{margin-top:2em;color:#888;font-size:.85em}
"""


# --------------------------------------------------------------------------------------------- projection


def _pca_fit(fit_on: np.ndarray, seed: int, max_fit_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (d,), components (2, d) and explained-variance ratios (2,) of a seeded subsample; input valid."""
    n, d = fit_on.shape
    if n > max_fit_rows:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(n, size=max_fit_rows, replace=False))
        sample = check_embeddings(fit_on[idx], "fit_on", dtype=np.float64)
    else:
        sample = check_embeddings(fit_on, "fit_on", dtype=np.float64)
    mean = sample.mean(axis=0)
    _, s, vt = np.linalg.svd(sample - mean, full_matrices=False)
    comps = np.zeros((2, d), dtype=np.float64)
    ratios = np.zeros(2, dtype=np.float64)
    k = min(2, vt.shape[0], d)
    comps[:k] = vt[:k]
    total = float(np.sum(s.astype(np.float64) ** 2))
    if total > 0.0:
        ratios[:k] = s[:k] ** 2 / total
    # Sign convention (scikit-learn's svd_flip on V): each axis's largest-magnitude loading is positive.
    for i in range(k):
        j = int(np.argmax(np.abs(comps[i])))
        if comps[i, j] < 0:
            comps[i] = -comps[i]
    return mean, comps, ratios


def _project(arr: np.ndarray, name: str, mean: np.ndarray, comps: np.ndarray) -> np.ndarray:
    """Project ``arr`` block by block, validating each block (finite, right dimension) on the way."""
    d = mean.shape[0]
    out = np.empty((arr.shape[0], 2), dtype=np.float64)
    for r0 in range(0, arr.shape[0], _BLOCK_ROWS):
        block = check_embeddings(arr[r0 : r0 + _BLOCK_ROWS], name, dim=d, dtype=np.float64, row_offset=r0)
        out[r0 : r0 + block.shape[0]] = (block - mean) @ comps.T
    return out


def _as_2d(arr: Any, name: str, *, dim: int | None = None, min_rows: int = 0) -> np.ndarray:
    """Check type, shape and dimension without copying (memory maps stay on disk); values come later."""
    if not isinstance(arr, np.ndarray):  # lists and the like are small: validate them whole
        return check_embeddings(arr, name, dim=dim, min_rows=min_rows)
    if arr.ndim != 2:
        check_embeddings(arr, name)  # raises (shape checks come before any copy) with the usual message
    check_embeddings(arr[:0], name, dim=dim, min_rows=0)  # dtype and dimension, on an empty view
    if arr.shape[0] < min_rows:
        raise InvalidInputError(f"{name}: is empty (0 rows); at least {min_rows} row(s) are needed")
    return arr


def pca_2d(
    fit_on: np.ndarray, *arrays: np.ndarray, seed: int = 0, max_fit_rows: int = 20000
) -> list[np.ndarray]:
    """Project arrays onto the first two principal axes of ``fit_on``.

    The PCA is fitted (centred, float64, numpy SVD) on at most ``max_fit_rows`` rows of ``fit_on`` drawn
    without replacement with ``numpy.random.default_rng(seed)``; the other rows are only projected.

    Parameters
    ----------
    fit_on : ndarray of shape (n, d)
        Rows the axes are fitted on (at least one). Memory maps are read block by block.
    *arrays : ndarray of shape (m_i, d)
        Arrays to project (zero rows allowed). Pass ``fit_on`` again to get its own projection.
    seed : int, default 0
        Seed of the subsample (used only when ``n > max_fit_rows``).
    max_fit_rows : int, default 20000
        Largest number of rows the SVD is computed on (at least 2).

    Returns
    -------
    list of ndarray of float64, shape (m_i, 2)
        One projection per array in ``arrays``, in order. The sign of each axis is fixed so that its
        largest-magnitude loading is positive. When ``d < 2`` or the fit rows span fewer than two directions,
        the missing coordinates are zero.

    Raises
    ------
    InvalidInputError
        An array is not 2-D, has a NaN/inf, or its dimension differs from ``fit_on``'s; ``fit_on`` is empty.
    InvalidTypeError
        Non-numeric data.
    InvalidParameterError
        ``seed`` or ``max_fit_rows`` out of range.
    """
    seed = check_int(seed, "seed", low=0)
    max_fit_rows = check_int(max_fit_rows, "max_fit_rows", low=2)
    fit = _as_2d(fit_on, "fit_on", min_rows=1)
    d = fit.shape[1]
    checked = [_as_2d(a, f"arrays[{i}]", dim=d) for i, a in enumerate(arrays)]
    mean, comps, _ = _pca_fit(fit, seed, max_fit_rows)
    return [_project(a, f"arrays[{i}]", mean, comps) for i, a in enumerate(checked)]


# --------------------------------------------------------------------------------------------- plots


def _new_figure(width: float = 7.0, height: float = 4.6) -> Any:
    """A matplotlib Figure on an Agg canvas (no pyplot: nothing global changes, nothing to close)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is a core dependency
        raise MissingDependencyError(
            "plots need matplotlib; install it with `pip install matplotlib`"
        ) from exc
    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _png_bytes(fig: Any) -> bytes:
    """Render a figure to PNG bytes without metadata that would differ between runs or versions."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata=_PNG_METADATA)
    return buf.getvalue()


def _trace_values(kl_trace: Any) -> np.ndarray:
    """The trace as a 1-D float64 array with non-finite values turned into gaps (NaN)."""
    try:
        y = np.asarray(kl_trace, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"kl_trace: expected a sequence of numbers ({exc})") from exc
    if y.ndim != 1:
        raise InvalidInputError(f"kl_trace: expected a 1-D sequence of numbers, got shape {y.shape}")
    y = y.copy()
    y[~np.isfinite(y)] = np.nan
    return y


def _initial_value(initial_kl: Any) -> float | None:
    """``initial_kl`` as a float, or None when absent."""
    if initial_kl is None:
        return None
    if isinstance(initial_kl, bool) or not isinstance(initial_kl, numbers.Real):
        raise InvalidTypeError(f"initial_kl: expected a number or None, got {initial_kl!r}")
    return float(initial_kl)


def _kl_trace_png(kl_trace: Any, initial_kl: Any, title: str, picks_label: str) -> bytes:
    """PNG of the objective against the pick number (0 = start set)."""
    y = _trace_values(kl_trace)
    init = _initial_value(initial_kl)
    x = np.arange(1, y.size + 1, dtype=np.float64)
    if init is not None:
        x = np.concatenate([[0.0], x])
        y = np.concatenate([[init if math.isfinite(init) else np.nan], y])
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    finite = np.isfinite(y)
    if not finite.any():
        ax.text(0.5, 0.5, "no objective values recorded", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.plot(x, y, color=_COLORS["trace"], lw=1.5, marker="o" if y.size <= 60 else None, ms=3,
                label="objective")
        last = int(np.flatnonzero(finite)[-1])
        ax.axvline(x[last], color="#555555", ls=":", lw=1)
        ax.plot([x[last]], [y[last]], "s", color=_COLORS["selected"], ms=7,
                label=f"stop after {int(x[last]):,} {picks_label}: {y[last]:.4g}")
        best = int(np.nanargmin(y))
        if best != last:
            ax.plot([x[best]], [y[best]], "v", color="#2ca02c", ms=7,
                    label=f"minimum at {int(x[best]):,} {picks_label}: {y[best]:.4g}")
        ax.legend(loc="best", fontsize=9)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"{picks_label} (0 = start set)")
    ax.set_ylabel("objective (k-NN KL estimate)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return _png_bytes(fig)


TSNE_MAX_ROWS = 1000
"""Most points (target + pool + selection samples) the t-SNE map embeds; each sample is cut in proportion."""


def _pca_fit_k(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, the first ``k`` principal axes (rows) and their singular values, by numpy SVD."""
    mean = x.mean(axis=0)
    _, sv, vt = np.linalg.svd(x - mean, full_matrices=False)
    return mean, vt[:k], sv[:k]


def _has_tsne(*samples: Any) -> bool:
    """Whether the t-SNE map can be drawn: scikit-learn installed and at least 10 points."""
    try:
        import sklearn.manifold  # noqa: F401
    except ImportError:
        logger.info("scikit-learn is not installed: the report's map falls back to PCA")
        return False
    return sum(0 if a is None else int(np.shape(a)[0]) for a in samples) >= 10


def tsne_2d(arrays: Sequence[np.ndarray], seed: int = 0, max_rows: int = TSNE_MAX_ROWS) -> list[np.ndarray] | None:
    """A joint 2-D t-SNE map of ``arrays`` (scikit-learn, cosine metric, PCA start), each cut to a seeded share
    of ``max_rows``; ``None`` when scikit-learn is not installed or there are too few rows (then use PCA)."""
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        logger.info("scikit-learn is not installed: the report's map falls back to PCA")
        return None
    total = sum(a.shape[0] for a in arrays)
    if total < 10:
        return None
    rng = np.random.default_rng(seed)
    cut = []
    for a in arrays:
        m = min(a.shape[0], max(1, round(max_rows * a.shape[0] / max(total, max_rows))))
        cut.append(a[np.sort(rng.choice(a.shape[0], size=m, replace=False))] if a.shape[0] > m else a)
    both = np.concatenate(cut).astype(np.float64)
    if both.shape[1] > 50:  # the usual first step: PCA to 50 dimensions keeps the neighbourhoods, costs less
        mean, comps, _ = _pca_fit_k(both, 50)
        both = (both - mean) @ comps.T
    perplexity = float(min(30.0, max(2.0, (both.shape[0] - 1) / 3.0)))
    from threadpoolctl import threadpool_limits

    # One thread: on a shared machine the OpenMP/BLAS threads of t-SNE oversubscribe the cores (10x slower).
    with threadpool_limits(1):
        emb = TSNE(n_components=2, perplexity=perplexity, init="pca", metric="cosine", random_state=seed,
                   max_iter=300, n_jobs=1).fit_transform(both)
    out, s0 = [], 0
    for a in cut:
        out.append(emb[s0 : s0 + a.shape[0]])
        s0 += a.shape[0]
    return out


def _projection_png(target: Any, pool_sample: Any, selected_sample: Any, title: str,
                    projection: str = "pca") -> bytes:
    """PNG scatter of pool sample, selection and target in the PCA plane of target + pool sample (or, with
    ``projection="tsne"``, a t-SNE map of bounded samples of the three)."""
    tgt = check_embeddings(target, "target", min_rows=0, dtype=np.float64)
    d = tgt.shape[1]
    pool = check_embeddings(pool_sample, "pool_sample", dim=d, min_rows=0, dtype=np.float64)
    if selected_sample is None:
        sel = np.empty((0, d), dtype=np.float64)
    else:
        sel = check_embeddings(selected_sample, "selected_sample", dim=d, min_rows=0, dtype=np.float64)
    both = np.concatenate([tgt, pool])
    if both.shape[0] == 0:
        raise InvalidInputError("target and pool_sample: both are empty; the projection needs a row")
    mapped = tsne_2d([pool, sel, tgt]) if projection == "tsne" else None
    if mapped is not None:
        p_pool, p_sel, p_tgt = mapped
        xlabel, ylabel = "t-SNE 1", "t-SNE 2"
    else:
        mean, comps, ratios = _pca_fit(both, 0, max(2, both.shape[0]))
        p_pool, p_sel, p_tgt = ((a - mean) @ comps.T for a in (pool, sel, tgt))
        xlabel = f"PC1 ({100 * ratios[0]:.1f}% of variance)"
        ylabel = f"PC2 ({100 * ratios[1]:.1f}% of variance)"
    fig = _new_figure(7.0, 5.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(p_pool[:, 0], p_pool[:, 1], s=4, c=_COLORS["pool"], alpha=0.5, linewidths=0,
               label=f"pool sample (n={p_pool.shape[0]:,})")
    ax.scatter(p_sel[:, 0], p_sel[:, 1], s=12, c=_COLORS["selected"], alpha=0.8, linewidths=0,
               label=f"selected (n={p_sel.shape[0]:,})")
    ax.scatter(p_tgt[:, 0], p_tgt[:, 1], s=22, c=_COLORS["target"], marker="x", linewidths=1.0,
               label=f"target (n={p_tgt.shape[0]:,})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best", fontsize=9, markerscale=1.5)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return _png_bytes(fig)


def plot_kl_trace(
    kl_trace: Sequence[float],
    initial_kl: float | None,
    path: Path,
    *,
    title: str = "GIO objective per pick",
    picks_label: str = "picks",
) -> Path:
    """Plot the objective after each pick and write it as a PNG.

    Parameters
    ----------
    kl_trace : sequence of float, shape (s,)
        Objective after each accepted pick. Non-finite values are drawn as gaps.
    initial_kl : float or None
        Objective of the start set, drawn at x = 0; omitted when None.
    path : path-like
        Where to write the PNG (atomically; parent directories are created).
    title : str, default "GIO objective per pick"
        Axes title.
    picks_label : str, default "picks"
        What one step is called on the x axis and in the legend (for example ``"clusters"``).

    Returns
    -------
    Path
        ``path``. The last finite point is marked as the stop, and the minimum when it comes earlier.
        Identical inputs give identical bytes.

    Raises
    ------
    InvalidInputError
        ``kl_trace`` is not a 1-D sequence of numbers.
    InvalidTypeError
        ``initial_kl`` is not a number or None.
    """
    out = Path(path)
    _atomic_write_bytes(out, _kl_trace_png(kl_trace, initial_kl, str(title), str(picks_label)))
    return out


def plot_projection(
    target: np.ndarray,
    pool_sample: np.ndarray,
    selected_sample: np.ndarray,
    path: Path,
    *,
    title: str = "Target, pool sample and selection (PCA of target + pool sample)",
) -> Path:
    """Scatter target, pool sample and selection in the PCA plane of target and pool sample; write a PNG.

    Parameters
    ----------
    target : ndarray of shape (m, d)
        Target rows (or a sample of them), drawn as blue crosses.
    pool_sample : ndarray of shape (p, d)
        A sample of the pool, drawn small and grey.
    selected_sample : ndarray of shape (q, d)
        A sample of the selection, drawn red. Zero rows allowed.
    path : path-like
        Where to write the PNG (atomically; parent directories are created).
    title : str
        Axes title.

    Returns
    -------
    Path
        ``path``. The legend gives the number of points of each kind. Identical inputs give identical bytes.

    Raises
    ------
    InvalidInputError
        An array is not 2-D, has a NaN/inf, dimensions differ, or target and pool sample are both empty.
    InvalidTypeError
        Non-numeric data.
    """
    out = Path(path)
    _atomic_write_bytes(out, _projection_png(target, pool_sample, selected_sample, str(title)))
    return out


# --------------------------------------------------------------------------------------------- formatting


def _get(d: Any, *keys: str) -> Any:
    """``d[k1][k2]...`` or None when any level is missing or not a mapping."""
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def _fmt(value: Any) -> str:
    """Plain-text rendering of a manifest value (not escaped): None -> n/a, ints grouped, floats 6 digits."""
    if value is None:
        return _NA
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


def _esc(value: Any) -> str:
    """A manifest value formatted and HTML-escaped (quotes too, so it is safe inside attributes)."""
    return html.escape(_fmt(value), quote=True)


def _fmt_bytes(n: Any) -> str:
    """``1.5 MiB (1,572,864 bytes)``; other values go through :func:`_fmt`."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or int(n) < 0:
        return _fmt(n)
    v = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if v < 1024 or unit == "TiB":
            break
        v /= 1024
    if unit == "bytes":
        return f"{int(n):,} bytes"
    return f"{v:.1f} {unit} ({int(n):,} bytes)"


def _fmt_seconds(s: Any) -> str:
    """Seconds to ``12.3 s`` / ``2 min 05.0 s``; other values go through :func:`_fmt`."""
    if isinstance(s, bool) or not isinstance(s, numbers.Real) or not math.isfinite(float(s)):
        return _fmt(s)
    v = float(s)
    if v < 60:
        return f"{v:.3g} s" if v < 10 else f"{v:.1f} s"
    m, sec = divmod(v, 60.0)
    if m < 60:
        return f"{int(m)} min {sec:04.1f} s"
    h, m = divmod(m, 60.0)
    return f"{int(h)} h {int(m):02d} min {sec:04.1f} s"


def _fmt_command(cmd: Any) -> str:
    """The command line as one string (argv lists are shell-quoted)."""
    if isinstance(cmd, (list, tuple)) and all(isinstance(c, str) for c in cmd):
        return shlex.join(cmd)
    return _fmt(cmd)


def _wall_time(manifest: Mapping[str, Any]) -> float | None:
    """``timings_s['total']`` when present, else the sum of the numeric phase times, else None."""
    t = _get(manifest, "timings_s")
    if not isinstance(t, Mapping) or not t:
        return None
    total = t.get("total")
    if isinstance(total, numbers.Real) and not isinstance(total, bool):
        return float(total)
    vals = [float(v) for v in t.values() if isinstance(v, numbers.Real) and not isinstance(v, bool)]
    return sum(vals) if vals else None


def _final_objective(manifest: Mapping[str, Any], trace: np.ndarray) -> Any:
    """``final_kl`` from the manifest, else the last finite trace value, else None."""
    v = _get(manifest, "final_kl")
    if v is not None:
        return v
    finite = trace[np.isfinite(trace)]
    return float(finite[-1]) if finite.size else None


def _selected_text(manifest: Mapping[str, Any]) -> str:
    """Selected rows, with the selected clusters when the run was quantised (plain text)."""
    rows = _get(manifest, "counts", "selected_rows")
    cands = _get(manifest, "counts", "selected_candidates")
    text = _fmt(rows)
    if cands is not None and _get(manifest, "quantization") is not None:
        text += f" ({_fmt(cands)} clusters)"
    return text


def _quantization_text(manifest: Mapping[str, Any]) -> str:
    """``none`` or ``P pool clusters, T target clusters`` (plain text)."""
    q = _get(manifest, "quantization")
    rule = _get(manifest, "clusters_decision", "rule")
    why = f" ({_fmt(rule)})" if rule is not None else ""
    if q is None:
        return ("none" + why) if isinstance(manifest, Mapping) and "quantization" in manifest else _NA
    cands = _get(q, "candidates")
    what = f", candidates: {_fmt(cands)}" if cands is not None else ""
    return (f"{_fmt(_get(q, 'pool_clusters'))} pool clusters, "
            f"{_fmt(_get(q, 'target_clusters'))} target clusters{what}{why}")


# --------------------------------------------------------------------------------------------- HTML


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], num_cols: Sequence[int] = ()) -> str:
    """An HTML table; header and cells must already be escaped."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if i in num_cols else f"<td>{c}</td>" for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


def _kv_table(rows: Sequence[tuple[str, str]]) -> str:
    """Two-column key/value table; keys and values must already be escaped."""
    return "<table>\n" + "\n".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "\n</table>"


def _img(png: bytes, alt: str) -> str:
    """An <img> with the PNG inlined as a base64 data URI."""
    b64 = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt, quote=True)}" src="data:image/png;base64,{b64}">'


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _mapping_rows(m: Any, *, sort: bool) -> list[tuple[str, str]]:
    """Escaped (key, value) rows of a mapping; empty when ``m`` is not a mapping."""
    if not isinstance(m, Mapping):
        return []
    items = [(str(k), v) for k, v in m.items()]
    if sort:
        items.sort(key=lambda kv: kv[0])
    return [(f"<code>{html.escape(k)}</code>", _esc(v)) for k, v in items]


def _inputs_section(manifest: Mapping[str, Any]) -> str:
    inputs = _get(manifest, "inputs")
    if not isinstance(inputs, Mapping) or not inputs:
        return _note("No input files recorded.")
    rows = []
    for role, info in inputs.items():
        sha = _get(info, "sha256")
        sha_text = html.escape(sha[:16], quote=True) if isinstance(sha, str) else _esc(sha)
        rows.append([
            html.escape(str(role)),
            f"<code>{_esc(_get(info, 'path'))}</code>",
            _esc(_get(info, "format")),
            _esc(_get(info, "rows")),
            _esc(_get(info, "dim")),
            html.escape(_fmt_bytes(_get(info, "bytes"))),
            f"<code>{sha_text}</code>",
        ])
    header = ["input", "path", "format", "rows", "dim", "size", "sha256 (prefix)"]
    return _table(header, rows, num_cols=(3, 4))


def _timings_section(manifest: Mapping[str, Any]) -> str:
    t = _get(manifest, "timings_s")
    if not isinstance(t, Mapping) or not t:
        return _note("No timings recorded.")
    wall = _wall_time(manifest)
    rows = []
    for phase, sec in t.items():
        share = _NA
        if (wall and isinstance(sec, numbers.Real) and not isinstance(sec, bool) and str(phase) != "total"
                and math.isfinite(float(sec))):
            share = f"{100.0 * float(sec) / wall:.1f}%"
        rows.append([html.escape(str(phase)), html.escape(_fmt_seconds(sec)), share])
    return _table(["phase", "time", "share of wall time"], rows, num_cols=(1, 2))


def _extra(extra_sections: Any) -> list[tuple[str, str]]:
    """Validate ``extra_sections`` as (heading, html) string pairs."""
    out = []
    for i, item in enumerate(extra_sections):
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(s, str) for s in item)):
            raise InvalidTypeError(
                f"extra_sections[{i}]: expected a (heading, html) pair of strings, got {item!r}"
            )
        out.append((item[0], item[1]))
    return out


def _warnings(m: Mapping[str, Any]) -> list[Any]:
    w = m.get("warnings")
    return list(w) if isinstance(w, (list, tuple)) else []


def _warnings_html(m: Mapping[str, Any]) -> str:
    """The run's degenerate-result warnings (manifest ``warnings``), in a red box above the summary."""
    items = _warnings(m)
    if not items:
        return ""
    lis = "".join(f"<li>{html.escape(str(w))}</li>" for w in items)
    return ('<div class="warnings" style="border:2px solid #b00;padding:0.5em 1em;color:#700">'
            f"<strong>Warning{'s' if len(items) > 1 else ''}</strong><ul>{lis}</ul></div>")


def write_report(
    path: Path,
    *,
    manifest: dict,
    kl_trace: Sequence[float],
    initial_kl: float | None,
    target_sample: np.ndarray | None,
    pool_sample: np.ndarray | None,
    selected_sample: np.ndarray | None,
    extra_sections: Sequence[tuple[str, str]] = (),
    projection: str = "pca",
    picks: Mapping[str, np.ndarray] | None = None,
    pool_path: Path | None = None,
    selected_path: Path | None = None,
    report_fields: Sequence[str] = (),
    text_field: str | None = None,
) -> Path:
    """Write the run report: one self-contained HTML file, readable offline.

    Sections: summary (selected count, pool and target rows, candidates, quantisation, stop reason,
    initial and final objective, wall time, seed), objective curve, 2-D projection, parameters, inputs
    (path, format, rows, dim, size, sha256 prefix), timings per phase, outputs, package versions, then
    ``extra_sections``. Values come from ``manifest``; missing keys show as "n/a". Every manifest value is
    HTML-escaped. Plots are PNGs inlined as base64 data URIs; there is no external CSS, script or font.
    Identical inputs give identical bytes.

    Parameters
    ----------
    path : path-like
        Output file. Written atomically (temporary file in the same directory, then ``os.replace``), so a
        failure leaves either the old file or none; parent directories are created.
    manifest : dict
        The run record (keys as in ``manifest.json``: ``gioselect_version``, ``command``, ``created_utc``,
        ``parameters``, ``seed``, ``inputs``, ``counts``, ``stop_reason``, ``initial_kl``, ``final_kl``,
        ``timings_s``, ``versions``, ``quantization``, ``outputs``). All optional.
    kl_trace : sequence of float, shape (s,)
        Objective after each pick (may be empty).
    initial_kl : float or None
        Objective of the start set (x = 0 of the curve). Also used in the summary when the manifest has none.
    target_sample, pool_sample : ndarray of shape (m, d) or None
        Samples for the projection; when either is None the projection is skipped with a note.
    selected_sample : ndarray of shape (q, d) or None
        Sample of the selection; None draws no selected points.
    extra_sections : sequence of (str, str), default ()
        ``(heading, html)`` pairs appended in order. The heading is escaped; the HTML is inserted as given
        and must already be escaped by the caller.
    projection : {"pca", "tsne"}, default "pca"
        The 2-D map: PCA of target + pool sample, or a t-SNE map (scikit-learn; at most
        :data:`TSNE_MAX_ROWS` points; PCA when scikit-learn is missing). The CLI uses t-SNE for text pools.
    picks : mapping, optional
        What :func:`write_picks` returns: the "Picks" section lists the first :data:`PICKS_SHOWN` rows by rank
        with their gain, nearest target ids and a preview of their fields (read from ``selected_path``).
    pool_path, selected_path : path, optional
        The pool file (for ``report_fields``) and the selected rows file (for the previews).
    report_fields : sequence of str
        Pool columns to break the selection down by: counts and shares, selection against pool.
    text_field : str, optional
        The text column, shown first in the previews.

    The manifest's ``stop_reason`` is explained in words, and a ``warnings`` list in the manifest (the
    warnings the run printed) is shown in full.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InvalidTypeError
        ``manifest`` is not a mapping, ``initial_kl`` is not a number, or ``extra_sections`` are not
        string pairs.
    InvalidInputError
        ``kl_trace`` is not 1-D numeric, or the samples are malformed (not 2-D, NaN/inf, dimensions differ).
    """
    if not isinstance(manifest, Mapping):
        raise InvalidTypeError(f"manifest: expected a dict (the run record), got {type(manifest).__name__}")
    out = Path(path)
    trace = _trace_values(kl_trace)
    init_arg = _initial_value(initial_kl)
    extras = _extra(extra_sections)
    m = manifest
    version = _get(m, "gioselect_version")

    init_val = _get(m, "initial_kl")
    if init_val is None:
        init_val = init_arg
    summary = [
        ("selected rows", html.escape(_selected_text(m))),
        ("pool rows", _esc(_get(m, "counts", "pool_rows"))),
        ("target rows", _esc(_get(m, "counts", "target_rows"))),
        ("candidates", _esc(_get(m, "counts", "candidates"))),
        ("quantisation", html.escape(_quantization_text(m))),
        ("stop reason", html.escape(_stop_text(_get(m, "stop_reason")))),
        ("initial objective", _esc(init_val)),
        ("final objective", _esc(_final_objective(m, trace))),
        ("wall time", html.escape(_fmt_seconds(_wall_time(m)))),
        ("seed", _esc(_get(m, "seed"))),
    ]
    if _get(m, "exclusion") is not None:
        ex = m["exclusion"]
        summary.append(("excluded rows", html.escape(
            f"{_fmt(ex.get('excluded_rows'))} ({_fmt(ex.get('duplicates'))} duplicates, "
            f"{_fmt(ex.get('near_duplicates'))} near-duplicates at cosine >= {_fmt(ex.get('threshold'))} to "
            f"{_fmt(ex.get('exclude_rows'))} rows of {_fmt(ex.get('source'))})")))

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>gioselect report</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<h1>gioselect selection report</h1>",
        f'<p class="sub">created {_esc(_get(m, "created_utc"))} (UTC) &middot; gioselect {_esc(version)}</p>',
        f"<p>Command: <code>{html.escape(_fmt_command(_get(m, 'command')))}</code></p>",
        '<h2 id="summary">Summary</h2>',
        _warnings_html(m),
        _kv_table(summary),
        '<h2 id="objective">Objective per pick</h2>',
    ]
    qlabel = "clusters" if _get(m, "quantization") is not None else "picks"
    if np.isfinite(trace).any() or (init_arg is not None and math.isfinite(init_arg)):
        png = _kl_trace_png(trace, init_arg, "GIO objective per pick", qlabel)
        parts.append(_img(png, "objective (k-NN KL estimate) against the number of picks"))
    else:
        parts.append(_note("No objective values recorded; the curve is skipped."))

    parts.append('<h2 id="projection">2-D projection</h2>')
    if target_sample is None or pool_sample is None:
        parts.append(_note("Samples were not provided; the projection is skipped."))
    else:
        title = "Target, pool sample and selection"
        if projection == "tsne" and not _has_tsne(target_sample, pool_sample, selected_sample):
            projection = "pca"
        png = _projection_png(target_sample, pool_sample, selected_sample, title, projection)
        if projection == "tsne":
            parts.append(_img(png, "target, pool sample and selection in a t-SNE map"))
            parts.append(_note(f"t-SNE map (scikit-learn, cosine) of at most {TSNE_MAX_ROWS} sampled points; "
                               "distances between far-apart groups are not meaningful, neighbourhoods are."))
        else:
            parts.append(_img(png, "target, pool sample and selection in the PCA plane of target and pool"))
            parts.append(_note("Axes: first two principal components of target and pool sample together."))
    parts += _warnings_section(m)
    parts += _picks_section(picks, selected_path, text_field)
    parts += _breakdown_section(picks, pool_path, report_fields)

    param_rows = _mapping_rows(_get(m, "parameters"), sort=True)
    version_rows = _mapping_rows(_get(m, "versions"), sort=True)
    output_rows = _mapping_rows(_get(m, "outputs"), sort=False)
    parts += [
        '<h2 id="parameters">Parameters</h2>',
        _kv_table(param_rows) if param_rows else _note("No parameters recorded."),
        '<h2 id="inputs">Inputs</h2>',
        _inputs_section(m),
        '<h2 id="timings">Timings</h2>',
        _timings_section(m),
        '<h2 id="outputs">Outputs</h2>',
        _kv_table(output_rows) if output_rows else _note("No outputs recorded."),
        '<h2 id="versions">Package versions</h2>',
        _kv_table(version_rows) if version_rows else _note("No package versions recorded."),
    ]
    for heading, body in extras:
        parts += [f"<h2>{html.escape(heading)}</h2>", body]
    parts += [f"<footer>Generated by gioselect {_esc(version)}.</footer>", "</body>", "</html>", ""]

    _atomic_write_bytes(out, "\n".join(parts).encode("utf-8"))
    logger.info("wrote report %s", out)
    return out


# --------------------------------------------------------------------------------------------- text summary


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
        f"selected {_selected_text(m)} of {_fmt(_get(m, 'counts', 'pool_rows'))} pool rows "
        f"(target: {_fmt(_get(m, 'counts', 'target_rows'))} rows)",
    ]
    if _get(m, "quantization") is not None or _get(m, "clusters_decision") is not None:
        lines.append(f"quantisation: {_quantization_text(m)}")
    lines.append(f"stop reason: {_fmt(_get(m, 'stop_reason'))}")
    lines.extend(f"WARNING: {_fmt(w)}" for w in _warnings(m))
    lines.append(f"objective (k-NN KL): {_fmt(_get(m, 'initial_kl'))} -> {_fmt(_get(m, 'final_kl'))}")
    wall = f"wall time: {_fmt_seconds(_wall_time(m))}"
    t = _get(m, "timings_s")
    if isinstance(t, Mapping) and t:
        wall += " (" + ", ".join(f"{k} {_fmt_seconds(v)}" for k, v in t.items() if str(k) != "total") + ")"
    lines.append(wall)
    outputs = _get(m, "outputs")
    if isinstance(outputs, Mapping) and outputs:
        lines.append("outputs: " + ", ".join(_fmt(v) for v in outputs.values()))
    return "\n".join(_plain(line) for line in lines)


# --------------------------------------------------------------------------------------------- files


def _atomic_write_bytes(path: Path, data: bytes) -> None:
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


# --------------------------------------------------------------------------------------------- picks


PICKS_SHOWN = 50
"""Picks the report lists (by rank); ``picks.csv`` has all of them."""

PREVIEW_CHARS = 160

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
}


def _stop_text(reason: Any) -> str:
    if reason is None:
        return _NA
    return f"{reason}: {_STOP_TEXT[reason]}" if reason in _STOP_TEXT else str(reason)


def write_picks(path: Path, selected_ids: np.ndarray, picks: np.ndarray, labels: np.ndarray | None,
                initial_kl: float, kl_trace: Sequence[float], take: Any, target: np.ndarray,
                block_rows: int = 16384) -> dict[str, np.ndarray]:
    """Write ``picks.csv``: one line per selected row in rank order, with ``gio_row_id``, ``gio_rank``,
    ``gio_gain`` (the objective decrease of the pick that chose the row: a quantised pick's rows share their
    cluster's) and ``gio_nearest_target`` (the 3 nearest target rows, space-separated). Returns the columns.

    ``take(ids)`` reads pool rows (float32); they are read in blocks of ``block_rows``.
    """
    from .frames import N_NEAREST_TARGETS, nearest_targets, pick_gains

    picks = np.asarray(picks, dtype=np.int64)
    trace = np.asarray(kl_trace, dtype=np.float64)[: picks.shape[0]]
    gains = pick_gains(initial_kl, trace)
    first: dict[int, float] = {}
    for c, g in zip(picks[: trace.shape[0]].tolist(), gains.tolist(), strict=True):
        first.setdefault(c, g)
    ids = np.asarray(selected_ids, dtype=np.int64)
    cand = ids if labels is None else np.asarray(labels)[ids]
    row_gain = np.array([first.get(int(c), math.nan) for c in cand], dtype=np.float64)
    n_near = min(N_NEAREST_TARGETS, int(target.shape[0]))
    near = np.empty((ids.shape[0], n_near), dtype=np.int64)
    for s in range(0, ids.shape[0], block_rows):
        near[s : s + block_rows] = nearest_targets(take(ids[s : s + block_rows]), target, n=n_near)
    buf = io.StringIO()
    buf.write("gio_row_id,gio_rank,gio_gain,gio_nearest_target\n")
    for r, (i, g, nn) in enumerate(zip(ids.tolist(), row_gain.tolist(), near.tolist(), strict=True)):
        buf.write(f"{i},{r},{g!r},{' '.join(map(str, nn))}\n")
    _atomic_write_bytes(Path(path), buf.getvalue().encode("utf-8"))
    return {"gio_row_id": ids, "gio_rank": np.arange(ids.shape[0], dtype=np.int64), "gio_gain": row_gain,
            "gio_nearest_target": near}


def _preview_records(path: Path | None, positions: np.ndarray) -> list[dict[str, Any]] | None:
    """The rows at ``positions`` of a selected-rows file (parquet/jsonl/csv) as dicts; None for .npy."""
    if path is None or not Path(path).exists() or Path(path).suffix.lower() == ".npy":
        return None
    p = Path(path)
    want = set(positions.tolist())
    suffix = p.suffix.lower()
    if suffix == ".jsonl":
        got: dict[int, dict[str, Any]] = {}
        with open(p, encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if i in want:
                    got[i] = json.loads(line)
        return [got.get(int(i), {}) for i in positions]
    import pyarrow as pa

    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(p)
    else:
        import pyarrow.csv as pacsv

        table = pacsv.read_csv(p, parse_options=pacsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ","))
    cols = [f.name for f in table.schema if not pa.types.is_list(f.type) and not pa.types.is_fixed_size_list(f.type)]
    return table.select(cols).take(pa.array(positions, type=pa.int64())).to_pylist()


def _preview_text(rec: Mapping[str, Any], text_field: str | None) -> str:
    skip = {"gio_row_id", "gio_rank"}
    items = [(k, v) for k, v in rec.items() if k not in skip and not isinstance(v, (list, dict))]
    if text_field is not None and text_field in rec:
        text = str(rec[text_field])
        rest = ", ".join(f"{k}={v}" for k, v in items if k != text_field)
        text = text + (f"  [{rest}]" if rest else "")
    else:
        text = ", ".join(f"{k}={v}" for k, v in items)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _picks_section(picks: Mapping[str, np.ndarray] | None, selected_path: Path | None,
                   text_field: str | None) -> list[str]:
    if picks is None:
        return []
    ids = np.asarray(picks["gio_row_id"], dtype=np.int64)
    out = ['<h2 id="picks">Picks</h2>']
    if ids.shape[0] == 0:
        return [*out, _note("Nothing was selected.")]
    shown = min(PICKS_SHOWN, ids.shape[0])
    positions = np.searchsorted(np.sort(ids), ids[:shown])  # the selected-rows file is in ascending row order
    records = _preview_records(selected_path, positions)
    rows = []
    for j in range(shown):
        g = float(picks["gio_gain"][j])
        near = " ".join(str(int(x)) for x in picks["gio_nearest_target"][j])
        preview = _preview_text(records[j], text_field) if records is not None else "(vectors only)"
        rows.append([str(j), str(int(ids[j])), "n/a" if not math.isfinite(g) else f"{g:.4g}", near,
                     html.escape(preview)])
    out.append(_note(f"The first {shown} of {ids.shape[0]:,} selected rows in selection order. Gain: how much "
                     "the pick lowered the objective (a quantised pick's rows share it). Nearest target rows: "
                     "the target examples this row stands for. All rows: picks.csv."))
    out.append(_table(["rank", "pool row", "gain", "nearest target rows", "preview"], rows, num_cols=(0, 1, 2)))
    return out


def _breakdown_section(picks: Mapping[str, np.ndarray] | None, pool_path: Path | None,
                       fields: Sequence[str]) -> list[str]:
    if not fields or picks is None or pool_path is None:
        return []
    from .io import read_column

    ids = np.asarray(picks["gio_row_id"], dtype=np.int64)
    out: list[str] = []
    for f in fields:
        values = read_column(pool_path, f, name="pool").astype(str)
        uniq, pool_counts = np.unique(values, return_counts=True)
        sel_counts = dict(zip(*np.unique(values[ids], return_counts=True), strict=True))
        order = np.argsort(-pool_counts, kind="stable")[:40]
        rows = []
        for i in order:
            sc = int(sel_counts.get(uniq[i], 0))
            rows.append([html.escape(str(uniq[i])), f"{sc:,}", f"{100 * sc / max(1, ids.shape[0]):.1f}%",
                         f"{int(pool_counts[i]):,}", f"{100 * pool_counts[i] / values.shape[0]:.1f}%"])
        out += [f"<h2>Selection by {html.escape(f)}</h2>",
                _table([html.escape(f), "selected", "share of selection", "pool", "share of pool"], rows,
                       num_cols=(1, 2, 3, 4))]
        if uniq.shape[0] > 40:
            out.append(_note(f"The 40 most common of {uniq.shape[0]:,} values."))
    return out


def _warnings_section(m: Mapping[str, Any]) -> list[str]:
    warns = _get(m, "warnings")
    if not warns:
        return ['<h2 id="warnings">Warnings</h2>', _note("The run printed no warnings.")]
    items = "".join(f"<li>{_esc(w)}</li>" for w in warns)
    return ['<h2 id="warnings">Warnings</h2>', f"<ul>{items}</ul>"]
