"""Checks of the inputs every yardstick and baseline shares: pool shapes, row indices, labels, selections."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidInputError, InvalidTypeError
from ..validation import check_embeddings


def pool_shape(arr: Any, name: str) -> tuple[Any, int, int]:
    """Return ``(array, n_rows, dim)`` for a 2-D array-like without copying ndarrays/memmaps."""
    a = arr if hasattr(arr, "shape") and hasattr(arr, "__getitem__") else np.asarray(arr)
    shape = tuple(a.shape)
    if len(shape) != 2:
        raise InvalidInputError(f"{name}: expected a 2-D array of shape (rows, dimensions), got shape {shape}")
    if shape[0] == 0:
        raise InvalidInputError(f"{name}: is empty (0 rows); at least 1 row is needed")
    if shape[1] == 0:
        raise InvalidInputError(f"{name}: has 0 columns; embeddings need at least one dimension")
    return a, int(shape[0]), int(shape[1])


def check_indices(indices: Any, n_pool: int, name: str = "indices") -> np.ndarray:
    """Validate 1-D integer row indices into a pool of ``n_pool`` rows; returns int64."""
    a = np.asarray(indices)
    if a.ndim != 1:
        raise InvalidInputError(f"{name}: expected a 1-D array of pool row indices, got shape {a.shape}")
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise InvalidTypeError(f"{name}: expected integer pool row indices, got dtype {a.dtype}")
    bad = np.flatnonzero((a < 0) | (a >= n_pool))
    if bad.size:
        i = int(bad[0])
        raise InvalidInputError(
            f"{name}: position {i} holds {int(a[i])}, outside the pool's rows 0..{n_pool - 1} "
            f"({bad.size} out-of-range index(es) in all)"
        )
    return a.astype(np.int64, copy=False)


def check_labels(labels: Any, n: int, name: str, what: str) -> np.ndarray:
    """A 1-D label array of length ``n`` (``what`` names the rows it must match)."""
    a = np.asarray(labels)
    if a.ndim != 1:
        raise InvalidInputError(f"{name}: expected a 1-D array of labels, got shape {a.shape}")
    if a.shape[0] != n:
        raise InvalidInputError(f"{name}: has {a.shape[0]} labels, expected {n} (one per row of {what})")
    return a


def check_selection(selection: Any, dim: int) -> np.ndarray:
    """Validate a selection's embeddings; 0 rows allowed (an empty selection is measurable, as NaN)."""
    a = np.asarray(selection)
    if a.ndim == 2 and a.shape[0] == 0:
        if a.shape[1] != dim:
            raise InvalidInputError(f"selection: has dimension {a.shape[1]}, expected {dim} (the target's)")
        return np.zeros((0, dim), dtype=np.float32)
    return check_embeddings(a, "selection", dim=dim)


def take_rows(pool: Any, rows: np.ndarray, dim: int) -> np.ndarray:
    """Gather and validate ``pool[rows]``, naming the pool row of a bad value."""
    if rows.size == 0:
        return np.zeros((0, dim), dtype=np.float32)
    got = np.asarray(pool[rows])
    if np.issubdtype(got.dtype, np.floating):
        finite = np.isfinite(got).all(axis=1)
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            raise InvalidInputError(f"pool: row {int(rows[bad])} (selected) is not finite; embeddings must be")
    return check_embeddings(got, "pool[indices]", dim=dim)


def subsample_rows(a: np.ndarray, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``max_rows`` rows of ``a``, drawn without replacement (all of them, in order, if fewer)."""
    if a.shape[0] <= max_rows:
        return a
    keep = np.sort(rng.choice(a.shape[0], size=max_rows, replace=False))
    return a[keep]
