"""Data frames in, data frames out: pandas, polars and Hugging Face ``datasets.Dataset``.

:class:`~gioselect.GIOSelector`, :func:`gioselect.select` and :func:`gioselect.select_quantized` accept, besides
arrays, a pandas or polars ``DataFrame`` or a ``datasets.Dataset`` for the pool, the target and the exclusion
set. The vectors come from

* ``vector_column``: a column whose cells are equal-length lists/arrays of numbers (detected when there is
  exactly one such column), or
* ``text_column``: a column of strings, embedded offline with the packaged all-MiniLM-L6-v2 (or ``model``; the
  ``text`` extra; results are cached like the CLI's), or
* when neither is given nor detected, every numeric column of a pandas/polars frame (the scikit-learn
  convention: one feature per column).

When the pool is a frame the selection comes back as the same kind of object, subset to the selected rows in
ascending row order, with these columns added (an existing column of the same name is replaced):

``gio_row_id``
    0-based position of the row in the pool (not the pandas index, which is kept as it was).
``gio_rank``
    0-based position of the row in the selection order (picks first to last; a quantised pick's rows share
    the pick's place and are numbered in ascending row order).
``gio_gain``
    How much the pick that chose this row lowered the objective (previous value minus new value; positive is
    good). In a quantised run of :func:`~gioselect.select_quantized` one pick chooses a whole cluster, so every
    row of the cluster carries that pick's gain (the per-cluster value of the CLI's ``picks.csv``); a cluster
    picked again after a reset keeps the gain of its first pick.
``gio_nearest_target``
    The ids (0-based rows of the target) of the :data:`N_NEAREST_TARGETS` target rows nearest to this row: the
    part of the target this row stands for.

The libraries are imported only when such an object is passed; none of them is a dependency of the core.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidInputError, InvalidParameterError
from .nearest import N_NEAREST_TARGETS, nearest_targets
from .validation import check_embeddings

__all__ = [
    "ADDED_COLUMNS",
    "N_NEAREST_TARGETS",
    "FrameVectors",
    "frame_kind",
    "is_frame",
    "nearest_targets",
    "pick_gains",
    "subset_frame",
    "to_vectors",
]

logger = logging.getLogger(__name__)

ADDED_COLUMNS = ("gio_row_id", "gio_rank", "gio_gain", "gio_nearest_target")


def frame_kind(obj: Any) -> str | None:
    """``"pandas"``, ``"polars"``, ``"datasets"`` for a supported frame, else ``None`` (no library imported)."""
    mod = type(obj).__module__.split(".")[0]
    name = type(obj).__name__
    if mod == "pandas" and name == "DataFrame":
        return "pandas"
    if mod == "polars" and name == "DataFrame":
        return "polars"
    if mod == "datasets" and name == "Dataset":
        return "datasets"
    return None


def is_frame(obj: Any) -> bool:
    """Whether ``obj`` is a pandas/polars DataFrame or a ``datasets.Dataset``."""
    return frame_kind(obj) is not None


@dataclass(frozen=True)
class FrameVectors:
    """The vectors of one input and where they came from (``kind`` is ``None`` for plain arrays)."""

    vectors: np.ndarray
    kind: str | None
    source: str  # "array", "vector column 'emb'", "text column 'text'", "numeric columns"
    n_rows: int
    columns: tuple[str, ...] = ()


def _columns(obj: Any, kind: str) -> list[str]:
    if kind == "pandas":
        return [str(c) for c in obj.columns]
    if kind == "polars":
        return list(obj.columns)
    return list(obj.column_names)


def _n_rows(obj: Any, kind: str) -> int:
    return int(obj.shape[0]) if kind in ("pandas", "polars") else int(obj.num_rows)


def _first_cell(obj: Any, kind: str, col: str) -> Any:
    if _n_rows(obj, kind) == 0:
        return None
    if kind == "pandas":
        return obj[col].iloc[0]
    if kind == "polars":
        return obj[col][0]
    return obj[0][col]


def _is_vector_cell(v: Any) -> bool:
    if hasattr(v, "to_list") and not isinstance(v, str):  # polars Series cell of a List column
        v = v.to_list()
    if isinstance(v, np.ndarray):
        return v.ndim == 1 and v.size > 0 and np.issubdtype(v.dtype, np.number)
    if isinstance(v, (list, tuple)):
        return len(v) > 0 and all(isinstance(x, (int, float, np.number)) and not isinstance(x, bool) for x in v[:8])
    return False


def _vector_columns(obj: Any, kind: str) -> list[str]:
    if kind == "datasets":
        from datasets import Sequence as HFSequence  # the Feature types describe the columns without reading them

        out = []
        for name, feat in obj.features.items():
            inner = getattr(feat, "feature", None)
            if isinstance(feat, (HFSequence, list)) or type(feat).__name__ in ("List", "LargeList", "Array2D"):
                dtype = getattr(inner, "dtype", "") if inner is not None else ""
                if isinstance(feat, list) and feat:
                    dtype = getattr(feat[0], "dtype", "")
                if str(dtype).startswith(("float", "int")):
                    out.append(name)
        return out
    if kind == "polars":
        import polars as pl

        return [c for c, t in obj.schema.items()
                if isinstance(t, (pl.List, pl.Array)) and t.inner is not None and t.inner.is_numeric()]
    return [c for c in _columns(obj, kind) if _is_vector_cell(_first_cell(obj, kind, c))]


def _numeric_columns(obj: Any, kind: str) -> list[str]:
    if kind == "pandas":
        import pandas as pd

        return [str(c) for c in obj.columns
                if pd.api.types.is_numeric_dtype(obj[c]) and not pd.api.types.is_bool_dtype(obj[c])]
    if kind == "polars":
        return [c for c, t in obj.schema.items() if t.is_numeric()]
    return []


def _column_values(obj: Any, kind: str, col: str) -> Any:
    if kind == "pandas":
        return obj[col].to_list()
    if kind == "polars":
        return obj[col].to_list()
    return obj.with_format("numpy")[col]


def _vector_matrix(obj: Any, kind: str, col: str, name: str) -> np.ndarray:
    where = f"{name}: column {col!r}"
    values = _column_values(obj, kind, col)
    if isinstance(values, np.ndarray) and values.dtype != object and values.ndim == 2:
        arr = values
    else:
        cells = list(values)
        lengths = {len(c) if c is not None and hasattr(c, "__len__") else -1 for c in cells}
        if -1 in lengths:
            row = next(i for i, c in enumerate(cells) if c is None or not hasattr(c, "__len__"))
            raise InvalidInputError(f"{where}, row {row}: expected a list of numbers, got {cells[row]!r}")
        if len(lengths) > 1:
            first = len(cells[0])
            row = next(i for i, c in enumerate(cells) if len(c) != first)
            raise InvalidInputError(
                f"{where}, row {row}: has {len(cells[row])} numbers but row 0 has {first}; every vector must have "
                f"the same length")
        try:
            arr = np.asarray([np.asarray(c, dtype=np.float64) for c in cells], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{where}: expected lists of numbers ({exc})") from exc
    return check_embeddings(arr, where)


def _texts(obj: Any, kind: str, col: str, name: str) -> list[str]:
    values = obj[col].to_list() if kind in ("pandas", "polars") else list(obj[col])
    for i, t in enumerate(values):
        if not isinstance(t, str) or not t.strip():
            raise InvalidInputError(f"{name}: column {col!r}, row {i}: expected non-empty text, got {t!r}")
    return values


def to_vectors(
    obj: Any,
    name: str,
    *,
    vector_column: str | None = None,
    text_column: str | None = None,
    model: str | None = None,
    dim: int | None = None,
    like: FrameVectors | None = None,
) -> FrameVectors:
    """The vectors of an array or a frame (see the module docstring for how columns are chosen).

    Parameters
    ----------
    obj : array-like, pandas/polars DataFrame or datasets.Dataset
    name : str
        ``"pool"``, ``"target"``, ``"exclude"``: how messages name it.
    vector_column, text_column : str, optional
        The column holding the vectors, or the text to embed (at most one of them).
    model : str, optional
        Sentence-transformers model for ``text_column`` (default: the packaged all-MiniLM-L6-v2).
    dim : int, optional
        Required dimension (the pool's, when converting the target).
    like : FrameVectors, optional
        The pool's vectors, when converting the target or the exclusion set: if both come from numeric columns,
        the columns are matched by name (in the pool's order), and other names are refused.

    Returns
    -------
    FrameVectors
    """
    kind = frame_kind(obj)
    if kind is None:
        arr = check_embeddings(obj, name, dim=dim)
        return FrameVectors(arr, None, "array", int(arr.shape[0]))
    if vector_column is not None and text_column is not None:
        raise InvalidParameterError("vector_column and text_column: give at most one")
    cols = _columns(obj, kind)
    n = _n_rows(obj, kind)
    if n == 0:
        raise InvalidInputError(f"{name}: the {kind} frame has no rows")
    for param, col in (("vector_column", vector_column), ("text_column", text_column)):
        if col is not None and col not in cols:
            raise InvalidInputError(f"{name}: no column {col!r} ({param}); columns: {', '.join(cols)}")
    if text_column is not None:
        from .embed import embed_texts

        vecs, _ = embed_texts(_texts(obj, kind, text_column, name), model)
        arr = check_embeddings(vecs, f"{name}: embeddings of column {text_column!r}", dim=dim)
        return FrameVectors(arr, kind, f"text column {text_column!r}", n, (text_column,))
    if vector_column is None:
        found = _vector_columns(obj, kind)
        if len(found) > 1:
            raise InvalidInputError(
                f"{name}: several vector columns ({', '.join(found)}); name one with vector_column=")
        if len(found) == 1:
            vector_column = found[0]
    if vector_column is not None:
        arr = _vector_matrix(obj, kind, vector_column, name)
        if dim is not None and arr.shape[1] != dim:
            raise InvalidInputError(
                f"{name}: column {vector_column!r} has dimension {arr.shape[1]}, expected {dim} (the pool's)")
        return FrameVectors(arr, kind, f"vector column {vector_column!r}", n, (vector_column,))
    numeric = _numeric_columns(obj, kind)
    if not numeric:
        raise InvalidInputError(
            f"{name}: no vector column (lists of numbers) and no numeric columns in the {kind} frame; columns: "
            f"{', '.join(cols)}; pass vector_column= or text_column=")
    if like is not None and like.source == "numeric columns" and numeric != list(like.columns):
        if sorted(numeric) != sorted(like.columns):
            raise InvalidInputError(
                f"{name}: numeric columns {', '.join(numeric)} are not the pool's ({', '.join(like.columns)}); "
                "vectors are compared dimension by dimension, so give it the pool's column names")
        numeric = list(like.columns)  # the same names in another order: the pool's order
    values = obj[numeric].to_numpy() if kind == "pandas" else obj.select(numeric).to_numpy()
    arr = check_embeddings(np.asarray(values, dtype=np.float64), f"{name}: columns {', '.join(numeric)}", dim=dim)
    return FrameVectors(arr, kind, "numeric columns", n, tuple(numeric))


def pick_gains(initial_kl: float, kl_trace: np.ndarray) -> np.ndarray:
    """The objective decrease of each accepted pick: ``previous value - value after the pick``."""
    trace = np.asarray(kl_trace, dtype=np.float64)
    prev = np.concatenate([[float(initial_kl)], trace[:-1]]) if trace.size else trace
    return prev - trace


def _drop_existing(obj: Any, kind: str) -> Any:
    present = [c for c in ADDED_COLUMNS if c in _columns(obj, kind)]
    if not present:
        return obj
    logger.warning("the pool already has column(s) %s; they are replaced by the selection's", ", ".join(present))
    if kind == "pandas":
        return obj.drop(columns=present)
    if kind == "polars":
        return obj.drop(present)
    return obj.remove_columns(present)


def subset_frame(obj: Any, row_ids: np.ndarray, ranks: np.ndarray, gains: np.ndarray,
                 nearest: np.ndarray) -> Any:
    """``obj``'s rows ``row_ids`` (ascending order) with the ``gio_*`` columns; the same kind of object.

    ``ranks``, ``gains`` and ``nearest`` are aligned with ``row_ids`` (any order; the result is sorted by row).
    """
    kind = frame_kind(obj)
    if kind is None:
        raise InvalidInputError(f"expected a pandas/polars DataFrame or a datasets.Dataset, got {type(obj).__name__}")
    order = np.argsort(row_ids, kind="stable")
    ids = np.asarray(row_ids, dtype=np.int64)[order]
    cols: dict[str, Any] = {
        "gio_row_id": ids,
        "gio_rank": np.asarray(ranks, dtype=np.int64)[order],
        "gio_gain": np.asarray(gains, dtype=np.float64)[order],
    }
    near = np.asarray(nearest, dtype=np.int64)[order]
    obj = _drop_existing(obj, kind)
    if kind == "pandas":
        out = obj.iloc[ids].copy()
        for c, v in cols.items():
            out[c] = v
        out["gio_nearest_target"] = [list(map(int, r)) for r in near]
        return out
    if kind == "polars":
        import polars as pl

        out = obj[ids.tolist()] if ids.size else obj.clear()
        return out.with_columns(
            *(pl.Series(c, v) for c, v in cols.items()),
            pl.Series("gio_nearest_target", [list(map(int, r)) for r in near], dtype=pl.List(pl.Int64)),
        )
    from datasets.utils import logging as hf_logging

    quiet = hf_logging.is_progress_bar_enabled()
    if quiet:  # the library prints a bar for each column added to a selection; the CLI owns output
        hf_logging.disable_progress_bar()
    try:
        out = obj.select(ids.tolist())
        for c, v in cols.items():
            out = out.add_column(c, v.tolist())
        return out.add_column("gio_nearest_target", [list(map(int, r)) for r in near])
    finally:
        if quiet:
            hf_logging.enable_progress_bar()


FIT_OPTIONS = ("vector_column", "text_column", "model", "exclude", "exclude_threshold")
"""Keyword options of :func:`gioselect.select` and :func:`gioselect.select_quantized` that this module handles."""


def _first_pick_gains(picks: np.ndarray, gains: np.ndarray, picked_as: np.ndarray) -> np.ndarray:
    """The gain of each row's pick: ``picked_as[j]`` is the candidate that stands for row ``j`` (itself, or its
    cluster); a candidate picked again after a reset keeps the gain of its first pick."""
    picks = np.asarray(picks, dtype=np.int64)
    _, first = np.unique(picks, return_index=True)
    gain_of = dict(zip(picks[first].tolist(), np.asarray(gains, dtype=np.float64)[first].tolist(), strict=True))
    return np.array([gain_of[int(c)] for c in picked_as], dtype=np.float64)


def select_quantized_frame(inner: Any, pool: Any, target: Any, **params: Any) -> Any:
    """:func:`gioselect.select_quantized` for frames and ``exclude=``: convert, select on arrays, convert back.

    Excluded rows are left out of the arrays that are quantised and searched, and the ids are mapped back to the
    pool's rows, so an excluded row can never be selected and does not shape a centroid either.
    """
    from dataclasses import replace

    from .exclude import DEFAULT_THRESHOLD, find_near_duplicates

    opts = {k: params.pop(k) for k in FIT_OPTIONS if k in params}
    cols = {k: opts.get(k) for k in ("vector_column", "text_column", "model")}
    pv = to_vectors(pool, "pool", **cols)
    tv = to_vectors(target, "target", dim=pv.vectors.shape[1], like=pv, **cols)
    exclusion = None
    keep = np.arange(pv.n_rows, dtype=np.int64)
    pool_arr = pv.vectors
    if opts.get("exclude") is not None:
        ev = to_vectors(opts["exclude"], "exclude", dim=pv.vectors.shape[1], like=pv, **cols)
        exclusion = find_near_duplicates(pv.vectors, ev.vectors,
                                         threshold=opts.get("exclude_threshold", DEFAULT_THRESHOLD))
        keep = np.flatnonzero(~exclusion.mask).astype(np.int64)
        if keep.size == 0:
            raise InvalidInputError("exclude: every pool row is a near-duplicate of the exclusion set")
        pool_arr = pv.vectors[keep]
    qs = inner(pool_arr, tv.vectors, **params)
    ids = keep[qs.ids]
    res = replace(qs.result, selected_indices=keep[qs.result.selected_indices]) if qs.n_candidates == keep.size \
        else qs.result
    frame = None
    if pv.kind is not None:
        ranks = np.arange(ids.shape[0], dtype=np.int64)
        gains = pick_gains(qs.result.initial_kl, qs.result.kl_trace)
        # Unquantised, each pick is a row; quantised, a cluster, whose rows all carry its gain.
        row_gains = _first_pick_gains(qs.result.selected_indices, gains,
                                      qs.ids if qs.labels is None else np.asarray(qs.labels)[qs.ids])
        frame = subset_frame(pool, ids, ranks, row_gains, nearest_targets(pv.vectors[ids], tv.vectors))
    return replace(qs, ids=ids, result=res, frame=frame, exclusion=exclusion)
