"""The report's pictures: the objective curve and a 2-D map (PCA, or t-SNE when scikit-learn is there) of target,
pool and selection, as PNG bytes or files. matplotlib's object-oriented API on an Agg canvas, no pyplot.
"""

from __future__ import annotations

import io
import logging
import math
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError, InvalidTypeError, MissingDependencyError
from ..validation import check_embeddings, check_int
from .format import atomic_write_bytes

__all__ = ["TSNE_MAX_ROWS", "f1_curve_png", "has_tsne", "initial_value", "kl_trace_png", "pca_2d", "plot_kl_trace",
           "plot_projection", "projection_png", "trace_values", "tsne_2d"]

logger = logging.getLogger(__name__)

_BLOCK_ROWS = 65536  # rows projected at a time: bounds the float64 working copy
_PNG_METADATA: dict[str, Any] = {"Software": None}  # matplotlib otherwise stamps its version into every PNG
_DPI = 100
_COLORS = {"pool": "#9e9e9e", "selected": "#d62728", "target": "#1f77b4", "trace": "#1f77b4"}




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


def trace_values(kl_trace: Any) -> np.ndarray:
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


def initial_value(initial_kl: Any) -> float | None:
    """``initial_kl`` as a float, or None when absent."""
    if initial_kl is None:
        return None
    if isinstance(initial_kl, bool) or not isinstance(initial_kl, numbers.Real):
        raise InvalidTypeError(f"initial_kl: expected a number or None, got {initial_kl!r}")
    return float(initial_kl)


def kl_trace_png(kl_trace: Any, initial_kl: Any, title: str, picks_label: str) -> bytes:
    """PNG of the objective against the pick number (0 = start set)."""
    y = trace_values(kl_trace)
    init = initial_value(initial_kl)
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


def f1_curve_png(curve: Any, best_rows: Any, title: str) -> bytes:
    """PNG of the F1 rule's estimated F1 against the rows selected (``curve``: the run record's
    ``size_estimate.f1.curve``, with ``rows`` and ``f1``), the kept prefix (``best_rows``) marked."""
    x = np.asarray(curve.get("rows", []) if isinstance(curve, dict) else [], dtype=np.float64).reshape(-1)
    y = np.asarray(curve.get("f1", []) if isinstance(curve, dict) else [], dtype=np.float64).reshape(-1)
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    if x.size == 0 or x.size != y.size or not np.isfinite(y).any():
        ax.text(0.5, 0.5, "no estimated F1 recorded", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.plot(x, y, color=_COLORS["trace"], lw=1.5, marker="o" if y.size <= 60 else None, ms=3,
                label="estimated F1")
        b = int(np.nanargmax(y))
        kept = float(best_rows) if isinstance(best_rows, numbers.Real) else float(x[b])
        ax.axvline(kept, color=_COLORS["selected"], ls=":", lw=1)
        ax.plot([x[b]], [y[b]], "s", color=_COLORS["selected"], ms=7,
                label=f"maximum at {int(x[b]):,} rows: {y[b]:.3f} (kept {int(kept):,})")
        ax.plot([x[-1]], [y[-1]], "v", color="#555555", ms=6, label=f"run ended at {int(x[-1]):,} rows")
        ax.legend(loc="best", fontsize=9)
    ax.set_xlabel("rows selected")
    ax.set_ylabel("estimated F1 of retrieving target-like rows")
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


def has_tsne(*samples: Any) -> bool:
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


def projection_png(target: Any, pool_sample: Any, selected_sample: Any, title: str,
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
    atomic_write_bytes(out, kl_trace_png(kl_trace, initial_kl, str(title), str(picks_label)))
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
    atomic_write_bytes(out, projection_png(target, pool_sample, selected_sample, str(title)))
    return out
