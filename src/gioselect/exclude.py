"""Keep an evaluation set out of the selection: duplicates and near-duplicates of it are never selected.

A pool row is *excluded* when its cosine similarity to some row of the exclusion set (an evaluation or test set)
is at least ``threshold`` (:data:`DEFAULT_THRESHOLD` = 0.95). Rows at cosine 1 (to within
:data:`DUPLICATE_COSINE`) are counted as duplicates, the rest as near-duplicates. Zero vectors have no direction
and are never matched.

The pool is streamed in blocks against a faiss inner-product index of the (unit-normalised) exclusion set, so
only the exclusion set and one block are in memory. The result, :class:`Exclusion`, is a boolean mask over the
pool rows that the search applies to its candidate set before the first pick
(:func:`block_candidates`): an excluded row can never be the nearest unused candidate, also not after a reset.
With quantisation the mask is applied to the rows when the chosen clusters are exploded (a centroid stands for
rows that are not excluded too).

Optionally the objective also pushes away from the exclusion set E (``exclude_repel=w``, ``--exclude-repel W``,
:func:`repel_from`): GIO then minimises ``KL~(X || S) - w KL~(E || S)`` (the relaxed k-NN estimator for both
terms), so that picks near E, which lower ``KL~(E || S)``, are penalised. ``w = 0`` (the default) is the plain
objective.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidInputError, InvalidParameterError
from .validation import check_embeddings, check_real

__all__ = ["DEFAULT_THRESHOLD", "DUPLICATE_COSINE", "Exclusion", "block_candidates", "find_near_duplicates",
           "repel_from"]

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.95
"""Cosine similarity at or above which a pool row counts as a near-duplicate of an exclusion row."""

DUPLICATE_COSINE = 1.0 - 1e-6
"""Cosine at or above which a match is reported as a duplicate rather than a near-duplicate."""

RECORD_LIMIT = 1000
"""Most excluded rows listed one by one in the manifest (the counts are always complete)."""


@dataclass(frozen=True)
class Exclusion:
    """Which pool rows an exclusion set keeps out.

    Attributes
    ----------
    mask : ndarray of bool, shape (n_pool,)
        True for the excluded rows.
    row_ids : ndarray of int64
        The excluded pool rows, ascending.
    cosine : ndarray of float64
        Each excluded row's highest cosine to the exclusion set.
    nearest : ndarray of int64
        The exclusion-set row it matched.
    threshold : float
    n_exclude_rows : int
        Rows in the exclusion set.
    """

    mask: np.ndarray
    row_ids: np.ndarray
    cosine: np.ndarray
    nearest: np.ndarray
    threshold: float
    n_exclude_rows: int
    #: The exclusion set's vectors (float32), for the objective that pushes away from it (:func:`repel_from`).
    vectors: np.ndarray | None = None

    @property
    def n_excluded(self) -> int:
        return int(self.row_ids.shape[0])

    @property
    def n_duplicates(self) -> int:
        return int((self.cosine >= DUPLICATE_COSINE).sum())

    def record(self, source: str | None = None, limit: int = RECORD_LIMIT) -> dict[str, Any]:
        """The manifest entry: threshold, counts, and the first ``limit`` excluded rows with their match."""
        rows = [{"row": int(r), "cosine": round(float(c), 6), "exclude_row": int(e)}
                for r, c, e in zip(self.row_ids[:limit], self.cosine[:limit], self.nearest[:limit], strict=True)]
        return {"source": source, "threshold": self.threshold, "exclude_rows": self.n_exclude_rows,
                "excluded_rows": self.n_excluded, "duplicates": self.n_duplicates,
                "near_duplicates": self.n_excluded - self.n_duplicates, "rows": rows,
                "rows_truncated": self.n_excluded > limit}


def _unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    norms = np.linalg.norm(a.astype(np.float64), axis=1)
    out = np.zeros_like(a)
    ok = norms > 0
    out[ok] = (a[ok] / norms[ok, None]).astype(np.float32)
    return out


def find_near_duplicates(
    pool: Any,
    exclude: Any,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    n_rows: int | None = None,
    block_rows: int = 65536,
) -> Exclusion:
    """Pool rows whose cosine to some row of ``exclude`` is at least ``threshold``.

    Parameters
    ----------
    pool : array-like of shape (n, d), or an iterable of ``(row0, block)`` pairs
        The pool, whole or streamed in blocks (as :meth:`gioselect.io.EmbeddingSource.iter_blocks` yields).
    exclude : array-like of shape (m, d)
        The evaluation set to keep out.
    threshold : float in (0, 1], default 0.95
    n_rows : int, optional
        Pool rows; required when ``pool`` is a block iterator.
    block_rows : int
        Block size when ``pool`` is an array.

    Returns
    -------
    Exclusion
    """
    import faiss

    thr = check_real(threshold, "exclude_threshold", low=0.0, high=1.0, low_open=True)
    ex = check_embeddings(exclude, "exclude")
    index = faiss.IndexFlatIP(ex.shape[1])
    index.add(_unit(ex))
    if isinstance(pool, np.ndarray) or not isinstance(pool, Iterable) or isinstance(pool, (list, tuple)):
        arr = check_embeddings(pool, "pool", dim=ex.shape[1])
        n_rows = arr.shape[0]
        blocks: Iterable[tuple[int, np.ndarray]] = ((s, arr[s : s + block_rows]) for s in range(0, n_rows, block_rows))
    else:
        if n_rows is None:
            raise InvalidParameterError("n_rows: needed when the pool is given as blocks")
        blocks = pool
    mask = np.zeros(int(n_rows), dtype=bool)
    cos_all: list[np.ndarray] = []
    near_all: list[np.ndarray] = []
    for row0, block in blocks:
        if block.shape[1] != ex.shape[1]:
            raise InvalidInputError(f"exclude: dimension {ex.shape[1]} but the pool has {block.shape[1]}")
        sims, idx = index.search(_unit(block), 1)
        hit = sims[:, 0] >= thr - 1e-7  # float32 inner products of unit vectors: allow rounding at the threshold
        if hit.any():
            mask[row0 + np.flatnonzero(hit)] = True
            cos_all.append(np.minimum(sims[hit, 0].astype(np.float64), 1.0))
            near_all.append(idx[hit, 0].astype(np.int64))
    row_ids = np.flatnonzero(mask).astype(np.int64)
    cosine = np.concatenate(cos_all) if cos_all else np.zeros(0)
    nearest = np.concatenate(near_all) if near_all else np.zeros(0, dtype=np.int64)
    logger.info("exclusion set of %d rows: %d pool rows at cosine >= %.3g are excluded", ex.shape[0],
                row_ids.shape[0], thr)
    return Exclusion(mask, row_ids, cosine, nearest, float(thr), int(ex.shape[0]), np.asarray(ex, dtype=np.float32))


def repel_from(search: Any, exclusion: np.ndarray | None, weight: float) -> None:
    """Make ``search`` minimise ``KL~(target || S) - weight * KL~(exclusion || S)`` instead of its objective.

    A pick near the exclusion set lowers ``KL~(exclusion || S)``, so the second term penalises it
    (:class:`gioselect.divergence.RepelledKL`). ``weight=0`` (or no exclusion set) leaves the search as it is:
    the same picks, byte for byte. Call it right after the search is built, before the first step: the start
    value and the automatic step scale are recomputed with the new objective. Only the relaxed objective
    (:class:`gioselect.optimize.GIOSearch`, without ``discard_nearest_for_xy``) has this term.
    """
    w = check_real(weight, "exclude_repel", low=0.0)
    if w == 0.0 or exclusion is None:
        return
    from .divergence import RepelledKL
    from .optimize import GIOSearch

    if not isinstance(search, GIOSearch):
        raise InvalidParameterError("exclude_repel: needs objective='relaxed' (the gradient search)")
    p = search.params
    if p.discard_nearest_for_xy:
        raise InvalidParameterError("exclude_repel: not available with discard_nearest_for_xy")
    ex = check_embeddings(exclusion, "exclude", dim=search.target.shape[1])
    if ex.shape[0] <= p.k:
        raise InvalidInputError(f"exclude: has {ex.shape[0]} rows; pushing away from it (exclude_repel > 0) needs "
                                f"more than k={p.k}")
    obj = RepelledKL(search.target, ex, w, p.k, eps=p.eps)
    obj.reset(search.start_points)
    search.objective = obj
    search.initial_kl = obj.value()
    search.state.kl_prev = search.initial_kl
    search.scale = search._scale(search.state.v)
    logger.info("objective pushed away from %d exclusion rows (weight %g): start value %.6g, scale %.6g",
                ex.shape[0], w, search.initial_kl, search.scale)


def block_candidates(search: Any, mask: np.ndarray | None) -> None:
    """Mark the candidates in ``mask`` as used before the search starts, and keep them blocked after resets.

    Works on :class:`gioselect.optimize.GIOSearch` (its candidate set) and
    :class:`gioselect.exact.ExactGreedySearch`.
    """
    if mask is None:
        return
    holder = getattr(search, "cands", search)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != holder.used.shape:
        raise InvalidInputError(f"exclude: a mask over {mask.shape[0]} rows for {holder.used.shape[0]} candidates")
    holder.blocked = mask.copy()
    holder.used |= mask
    holder.n_used = int(holder.used.sum())


def exclusion_for_run(pool: Any, exclude_path: Any, *, embedding_field: str | None, text_field: str | None,
                      model: str | None, cache_dir: Any, embed_cache: bool, threshold: float,
                      block_rows: int) -> Exclusion:
    """The exclusion of a ``gioselect select --exclude FILE`` run: ``pool`` is the (embedded) pool's
    :class:`~gioselect.io.EmbeddingSource`, streamed in ``block_rows`` blocks; ``exclude_path`` is read with
    the pool's vector column, or its ``text_field`` is embedded with the pool's model when the pool is text."""
    from pathlib import Path

    from .io import detect_format, open_embeddings, read_texts

    path = Path(exclude_path)
    if not path.exists():
        raise InvalidInputError(f"exclude: {path} does not exist")
    if text_field is not None and detect_format(path) != "npy":
        from .embed import EmbeddingCache, embed_texts

        texts = read_texts(path, text_field, name="exclude")
        vecs, _ = embed_texts(texts, model, cache=EmbeddingCache(cache_dir) if embed_cache else False)
    else:
        vecs = open_embeddings(path, embedding_field, name="exclude").read_all()
    return find_near_duplicates(pool.iter_blocks(block_rows), vecs, threshold=threshold, n_rows=pool.n_rows)
