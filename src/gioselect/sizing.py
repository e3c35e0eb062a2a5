"""How many pool rows look like the target: a mixture-proportion estimate that sizes a GIO selection.

The question behind every budget
--------------------------------
A user with a pool G and a target X wants the rows of G that are "like X". Think of the pool as a mixture::

    G ~ pi * P_X + (1 - pi) * Q

(a share ``pi`` of its rows drawn like the target, the rest from anything else). The number of rows worth
selecting is then ``pi * |G|``; GIO's job is which rows, this module's is how many. GIO's own objective does
not answer it: the k-NN estimate of KL(X || selection) keeps falling with the size in high dimension, or rises
at the first noisy pick (the ``increase`` rule), so neither its minimum nor its first rise is a size
(EXPERIMENTS.md, "Automatic size and defaults").

The estimator (positive-unlabeled learning)
-------------------------------------------
Label the target rows ``s = 1`` and a seeded uniform sample of pool rows ``s = 0`` and fit a probabilistic
classifier ``g(x) ~ P(s = 1 | x)``: an L2-regularised logistic regression fitted by Newton's method in numpy,
on the features standardised on the training rows and projected onto their first ``n_components`` principal
axes (scale- and offset-free; O(d) per scored row). Every score used is out-of-fold (``folds``-fold
cross-fitting over the target rows and the pool sample), so no score comes from a row the model was fitted on.

The share is then read off the ranking (Blanchard, Lee & Scott 2010; Scott 2015, mixture-proportion
estimation): above a score threshold ``t`` that only target-like rows pass, ``P_G(g >= t) = pi * P_X(g >= t)``;
other rows above ``t`` only add to the left side, so::

    pi_hat = min over t of  P_G(g >= t) / P_X(g >= t)

with ``t`` at the target scores' 30%, 40%, ..., 90% quantiles (a threshold that keeps at least 30% of the
target, so the ratio is not one of a handful of rows). It needs only that the classifier ranks target-like
rows above the others, not that its probabilities are calibrated.

Elkan & Noto's (2008) estimates are recorded beside it (``diagnostics``): ``c`` = the mean out-of-fold score of
target rows, the pool mean of the weights ``(1 - c) / c * g / (1 - g)`` (``share_elkan_noto``) and
``n_target (1 - c) / (c n_sample)`` (``share_prior``). They assume ``g`` is constant on the positives, which a
logistic model cannot be (it tends to 1, not to ``c``, deep inside the target's region): on two 4-D Gaussians
with known shares 0.1 / 0.3 / 0.6 they gave 0.15-0.22 / 0.35-0.42 / 0.65-0.72, the ranking estimate
0.097-0.102 / 0.287-0.295 / 0.571-0.572 (``tests/test_sizing.py`` holds it to +-0.05).

The pool is read once, in blocks: a uniform sample of ``sample_rows`` rows (every row of a smaller pool) is
kept by reservoir sampling, and the share is measured on that sample; ``diagnostics["share_se"]`` is its
delta-method standard error. When target-like and other rows are not told apart (``diagnostics["auc"]``
near 0.5) no estimate can be good: the ratio then tends to 1 (the whole pool). The estimate is a size for
GIO, which then fills exactly ``rows`` with its best-matching rows (``stop_criterion="auto"``).

F1 along GIO's order (``stop_criterion="f1"``)
----------------------------------------------
The same classifier also sizes a run without trusting ``share``: each pool row gets Elkan & Noto's posterior
``w = clip((1 - c) / c * g / (1 - g), 0, 1)`` (how likely it is target-like), the target-like total is
``W = sum of w`` over the pool (the pool sample's out-of-fold posteriors, scaled to the pool's row count), and
after GIO's first ``n`` picks ``i_1..i_n`` the plug-in F1 of retrieving the target-like rows is::

    F1(n) = 2 * (w_i1 + ... + w_in) / (n + W)

(precision ``sum w / n``, recall ``sum w / W``). The selection is the largest prefix whose ``F1`` is at least
``(1 - F1_TOLERANCE)`` times its maximum (``F1_TOLERANCE`` = 0.02): the estimated F1 is flat near its maximum, and
the posteriors count rows distributed like the target, which undercounts the pool's target-like rows when the
target is narrower than them, so the argmax itself errs short (on every suite task measured; EXPERIMENTS.md,
"Automatic size and defaults (issue 17)", fifth pass). The run keeps picking until ``F1`` has stayed below that
line for ``max(50, ceil(0.25 * n_kept))`` picks (capped at the pool and ``max_iter``), then keeps that prefix
(:class:`F1Prefix`), or nothing when the argmax prefix's posteriors sum to less than half a row (nothing in the
pool looks like the target). Picks of a pool no larger than the sample are weighted with their out-of-fold posteriors
(row for row); other rows by the model refitted once on all training rows (:class:`PosteriorScorer`). On
the quantised path a chosen cluster counts its size times the mean posterior of its sampled rows
(:func:`gioselect.quantize.cluster_target_like`), ``n`` counts rows, and the kept prefix is the argmax
(``QUANTIZED_F1_TOLERANCE``); that prefix only says how far GIO goes: the row-level pass ranks the rows of the chosen
clusters and this rule (``F1_TOLERANCE``) along that ranking, row by row, sets the size
(:class:`gioselect.quantize_f1.RowF1`). Measured in EXPERIMENTS.md ("Automatic size and defaults", "The size of a
quantised run set by rows").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .logistic import FoldMoments, auc, coordinate_sd, fit_logistic, project, sigmoid
from .validation import check_embeddings, check_int, check_real

__all__ = ["F1_TOLERANCE", "QUANTIZED_F1_TOLERANCE", "F1Prefix", "PosteriorScorer", "SizeEstimate",
           "estimate_target_rows", "f1_curve", "sampled_curve"]

logger = logging.getLogger(__name__)

#: Method names recorded in :class:`SizeEstimate`.
METHOD = "pu-roc"
#: The F1 rule keeps the largest prefix of GIO's picks whose estimated F1 is within this fraction of the best
#: (:class:`F1Prefix`): the estimated F1 is flat near its maximum and its posteriors undercount target-like rows,
#: so the argmax errs short (EXPERIMENTS.md, "Automatic size and defaults (issue 17)", fifth pass).
F1_TOLERANCE = 0.02
#: The same on a quantised run whose clusters count their own rows' posteriors
#: (:func:`gioselect.quantize.cluster_target_like`): the argmax. That count does not err short (its argmax was at
#: or past the best size on 2 of 3 seeds of the whole-corpus task), and the 2% on top of it kept off-target
#: clusters whole (EXPERIMENTS.md, "Automatic size and defaults", the lead's note after the fifth pass).
QUANTIZED_F1_TOLERANCE = 0.0
#: Target-score quantiles whose thresholds the ROC estimate takes the smallest ratio over.
QUANTILES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class SizeEstimate:
    """How many pool rows are estimated to be drawn like the target.

    Attributes
    ----------
    rows : int
        ``round(share * pool_rows)``, at least 1 when ``share > 0``.
    share : float
        Estimated mixture proportion ``pi`` in [0, 1].
    method : str
        ``"pu-roc"``.
    pool_rows : int
        Rows of the pool.
    diagnostics : dict
        ``share_se`` (standard error of ``share``), ``threshold_target_share`` (target share above the
        threshold that gave the estimate), Elkan & Noto's ``c``, ``share_elkan_noto`` and ``share_prior``, ``auc``
        (out-of-fold target-vs-pool AUC), ``sample_rows``, ``target_rows``, ``folds``, ``n_components``,
        ``l2``.
    """

    rows: int
    share: float
    method: str
    pool_rows: int
    diagnostics: dict[str, Any] = field(default_factory=dict)
    #: The classifier refitted on all training rows (scores any row; ``stop_criterion="f1"``).
    scorer: PosteriorScorer | None = field(default=None, repr=False, compare=False)
    #: Out-of-fold posteriors of the pool rows, row for row, when the sample is the whole pool (else None).
    pool_posteriors: np.ndarray | None = field(default=None, repr=False, compare=False)
    #: The F1 rule's outcome (:meth:`F1Prefix.as_dict` and ``reason``), once a ``stop_criterion="f1"`` run ended.
    f1: dict[str, Any] | None = field(default=None, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the pool-sized posteriors (they serve the run only)."""
        return {**self.__dict__, "pool_posteriors": None}

    @property
    def target_like_total(self) -> float:
        """``W``: the pool sample's out-of-fold posteriors summed and scaled to the pool's row count."""
        return float(self.diagnostics.get("target_like_total", float("nan")))

    def posteriors(self, rows: np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
        """Posteriors ``w`` of pool rows ``rows`` (shape (b, d)); ``ids`` (their pool row numbers) picks the
        out-of-fold posteriors when the sample is the whole pool."""
        if ids is not None and self.pool_posteriors is not None:
            return np.asarray(self.pool_posteriors[np.asarray(ids, dtype=np.int64)], dtype=np.float64)
        if self.scorer is None:
            raise InvalidInputError("size estimate: no fitted classifier to score rows with")
        return self.scorer.posterior(rows)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able record (manifests, reports)."""
        d: dict[str, Any] = {"rows": self.rows, "share": self.share, "method": self.method,
                             "pool_rows": self.pool_rows, "diagnostics": dict(self.diagnostics)}
        if self.f1 is not None:
            d["f1"] = dict(self.f1)
        return d


@dataclass(frozen=True)
class PosteriorScorer:
    """The size estimate's classifier refitted once on all training rows: scores any row.

    ``g(x) = sigmoid(((x - mu) / sd) @ axes / psd @ w[:-1] + w[-1])``; :meth:`posterior` is Elkan & Noto's
    ``clip((1 - c) / c * g / (1 - g), 0, 1)`` with ``c`` the mean out-of-fold target score.
    """

    mu: np.ndarray
    sd: np.ndarray
    axes: np.ndarray
    psd: np.ndarray
    w: np.ndarray
    c: float

    def score(self, rows: np.ndarray) -> np.ndarray:
        """``g``: the classifier's probability that each row is a target row."""
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        z = (((x - self.mu) / self.sd) @ self.axes / self.psd) @ self.w[:-1] + self.w[-1]
        return np.asarray(sigmoid(z), dtype=np.float64)

    def posterior(self, rows: np.ndarray) -> np.ndarray:
        """``w`` in [0, 1]: how likely each row is drawn like the target."""
        return _posterior(self.score(rows), self.c)


def _posterior(g: np.ndarray, c: float) -> np.ndarray:
    g = np.clip(np.asarray(g, dtype=np.float64), 0.0, 1.0 - 1e-12)
    return np.asarray(np.clip((1.0 - c) / c * g / (1.0 - g), 0.0, 1.0), dtype=np.float64)


def f1_curve(weights: np.ndarray, total: float, rows: np.ndarray | None = None) -> np.ndarray:
    """Plug-in F1 after each prefix of picks: ``2 * cumsum(weights) / (cumsum(rows) + total)``.

    ``weights`` are the picks' target-like counts (posteriors, times cluster sizes when quantised), ``rows``
    the rows each pick stands for (ones by default), ``total`` the pool's target-like total ``W``.
    """
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    n = np.cumsum(np.ones_like(w) if rows is None else np.asarray(rows, dtype=np.float64).reshape(-1))
    return np.asarray(2.0 * np.cumsum(w) / np.maximum(n + float(total), 1e-300), dtype=np.float64)


def sampled_curve(weights: np.ndarray, total: float, rows: np.ndarray | None = None, *, points: int,
                  marks: Iterable[int] = ()) -> dict[str, list[float]]:
    """:func:`f1_curve` at most ``points`` evenly spaced picks, always with the picks ``marks`` (0-based) and the
    last: ``picks`` (1-based), ``rows`` (cumulative) and ``f1``, for run records, reports and ``f1_curve.csv``."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    n = w.shape[0]
    if n == 0:
        return {"picks": [], "rows": [], "f1": []}
    r = np.ones(n) if rows is None else np.asarray(rows, dtype=np.float64).reshape(-1)
    f = f1_curve(w, total, r)
    cum = np.cumsum(r)
    keep = np.unique(np.concatenate([np.linspace(0, n - 1, min(n, points)).round().astype(np.int64),
                                     np.asarray(list(marks), dtype=np.int64), [n - 1]]))
    return {"picks": (keep + 1).tolist(), "rows": [round(float(x)) for x in cum[keep]],
            "f1": [float(x) for x in f[keep]]}


class F1Prefix:
    """Follows the plug-in F1 (:func:`f1_curve`) pick by pick and says when to stop.

    The kept prefix is the largest whose F1 is at least ``(1 - tolerance)`` times the best (the argmax itself
    when ``tolerance`` is 0). Stop rule: the F1 has stayed below that line for
    ``max(min_patience, ceil(patience * n_kept))`` picks. ``best_picks`` / ``best_rows`` / ``best_f1`` describe
    the argmax prefix, ``last_*`` the kept one; the selection is cut to it (``kept_picks``), or is empty when the
    argmax prefix is expected to hold fewer than half a target-like row (:attr:`empty`).
    """

    def __init__(self, total: float, *, min_patience: int = 50, patience: float = 0.25,
                 tolerance: float = F1_TOLERANCE) -> None:
        self.total = float(total)
        self.min_patience = int(check_int(min_patience, "min_patience", low=1))
        self.patience = float(check_real(patience, "patience", low=0.0))
        self.tolerance = float(check_real(tolerance, "tolerance", low=0.0, high=1.0))
        self.picks = 0
        self.rows = 0.0
        self.hits = 0.0
        self.best_f1 = 0.0
        self.best_picks = 0
        self.best_rows = 0.0
        self.best_hits = 0.0
        # The largest prefix so far whose F1 is within ``tolerance`` of the best so far (the kept prefix).
        self.last_f1 = 0.0
        self.last_picks = 0
        self.last_rows = 0.0
        self.last_hits = 0.0

    def add(self, weight: float, rows: float = 1.0) -> None:
        """Count one pick worth ``weight`` target-like rows out of ``rows`` rows."""
        self.picks += 1
        self.rows += float(rows)
        self.hits += float(weight)
        f = 2.0 * self.hits / max(self.rows + self.total, 1e-300)
        if f > self.best_f1:
            self.best_f1, self.best_picks, self.best_rows, self.best_hits = f, self.picks, self.rows, self.hits
        # Checked against the best so far: a later, higher best is itself a new last prefix, so the last prefix
        # within tolerance of the final best is the same as if the whole curve were known.
        if f > 0.0 and f >= (1.0 - self.tolerance) * self.best_f1:
            self.last_f1, self.last_picks, self.last_rows, self.last_hits = f, self.picks, self.rows, self.hits

    @property
    def empty(self) -> bool:
        """True when the argmax prefix is expected to hold fewer than half a target-like row (``round`` of its
        posteriors' sum is 0, as :attr:`SizeEstimate.rows` rounds the share): nothing in the pool looks like the
        target, and the selection is empty rather than a few rows of near-zero posterior."""
        return self.best_hits < 0.5

    @property
    def kept_picks(self) -> int:
        """Picks of the selection: the largest prefix whose F1 is at least ``(1 - tolerance)`` times the best
        (:attr:`best_picks` when ``tolerance`` is 0), or 0 when :attr:`empty`."""
        return 0 if self.empty else self.last_picks

    @property
    def kept_rows(self) -> float:
        """Rows of the selection (those of :attr:`kept_picks`), or 0 when :attr:`empty`."""
        return 0.0 if self.empty else self.last_rows

    @property
    def done(self) -> bool:
        """True once the F1 has stayed below ``(1 - tolerance)`` times its best for the patience window (counted
        from the kept prefix; with ``tolerance`` 0: has not improved)."""
        wait = max(self.min_patience, math.ceil(self.patience * self.last_picks))
        return self.picks - self.last_picks >= wait

    def as_dict(self) -> dict[str, Any]:
        """JSON-able record: the kept prefix (``best_*``), the argmax (``argmax_*``) and how far the run went."""
        return {"rule": "f1_along_order", "best_picks": self.kept_picks, "best_rows": round(self.kept_rows),
                "best_f1": 0.0 if self.empty else self.last_f1, "best_target_like": self.last_hits,
                "argmax_picks": self.best_picks, "argmax_rows": round(self.best_rows), "argmax_f1": self.best_f1,
                "tolerance": self.tolerance, "empty": self.empty, "ran_picks": self.picks,
                "ran_rows": round(self.rows), "target_like_total": self.total, "min_patience": self.min_patience,
                "patience": self.patience}


PoolLike = Any  # ndarray, an object with iter_blocks(), or a callable returning blocks


def _blocks(pool: PoolLike, block_rows: int) -> Iterator[np.ndarray]:
    """The pool as float32 blocks of rows, whatever was passed."""
    if isinstance(pool, np.ndarray) or (hasattr(pool, "shape") and hasattr(pool, "__getitem__")):
        n = int(pool.shape[0])
        for s in range(0, n, block_rows):
            yield np.asarray(pool[s : s + block_rows], dtype=np.float32)
        return
    if hasattr(pool, "iter_blocks"):
        src: Iterable[Any] = pool.iter_blocks(block_rows)
    elif callable(pool):
        src = pool()
    else:
        src = pool
    for item in src:
        block = item[1] if isinstance(item, tuple) else item
        yield np.asarray(block, dtype=np.float32)


def _reservoir(pool: PoolLike, size: int, rng: np.random.Generator, block_rows: int
               ) -> tuple[np.ndarray, int, int]:
    """A uniform sample of ``size`` pool rows in one pass (Algorithm R, vectorised per block).

    Returns the sample (float32, in pool order of arrival), the pool's row count and its dimension.
    """
    if hasattr(pool, "reservoir_sample"):  # a pool read by id (gioselect.engines.base.RowSampler): same draws
        return tuple(pool.reservoir_sample(size, rng, block_rows))
    sample: np.ndarray | None = None
    seen = 0
    dim = -1
    for block in _blocks(pool, block_rows):
        if block.ndim != 2:
            raise InvalidInputError(f"pool: expected blocks of shape (rows, dim), got shape {block.shape}")
        if not np.isfinite(block).all():
            bad = int(np.argwhere(~np.isfinite(block))[0, 0])
            raise InvalidInputError(f"pool: row {seen + bad} has a NaN or infinite value")
        if dim < 0:
            dim = int(block.shape[1])
            sample = np.empty((size, dim), dtype=np.float32)
        elif block.shape[1] != dim:
            raise InvalidInputError(f"pool: row {seen} has dimension {block.shape[1]}, earlier rows {dim}")
        assert sample is not None
        b = block.shape[0]
        fill = min(b, max(0, size - seen))
        if fill:
            sample[seen : seen + fill] = block[:fill]
        if b > fill:
            # Row t (0-based, t >= size) replaces a random slot with probability size / (t + 1).
            t = np.arange(seen + fill, seen + b)
            j = np.floor(rng.random(t.shape[0]) * (t + 1)).astype(np.int64)
            keep = j < size
            # Later rows overwrite earlier ones in the same slot, as the sequential algorithm does.
            sample[j[keep]] = block[fill:][keep]
        seen += b
    if sample is None or seen == 0:
        raise InvalidInputError("pool: has no rows")
    return sample[: min(size, seen)], seen, dim


def estimate_target_rows(
    pool: PoolLike,
    target: Any,
    *,
    seed: int | np.random.Generator = 0,
    sample_rows: int = 20000,
    folds: int = 5,
    n_components: int = 64,
    l2: float = 1e-3,
    block_rows: int = 65536,
    pool_rows: int | None = None,
) -> SizeEstimate:
    """Estimate how many pool rows are drawn like the target (positive-unlabeled mixture-proportion estimate).

    Parameters
    ----------
    pool : array of shape (M, d), an object with ``iter_blocks(block_rows)`` (an
        :class:`~gioselect.io.EmbeddingSource`), a callable returning an iterable of blocks, or an iterable of
        blocks (each block an array of shape (b, d) or a ``(row0, array)`` pair)
        The pool; read once, in blocks, keeping a uniform sample of ``sample_rows`` rows.
    target : array-like of shape (n, d)
        The target rows (at least ``2 * folds``).
    seed : int or Generator, default 0
        Seeds the reservoir sample and the folds.
    sample_rows : int, default 20000
        Pool rows the classifier is fitted and the share measured on (every row of a smaller pool).
    folds : int, default 5
        Cross-fitting folds (>= 2): every score used is out-of-fold.
    n_components : int, default 64
        Principal axes of the standardised training rows the classifier sees (at most d).
    l2 : float, default 1e-3
        Ridge penalty of the logistic regression (on the mean loss).
    block_rows : int, default 65536
        Rows per block when reading an array pool.
    pool_rows : int, optional
        The pool's row count, checked against the rows read when given.

    Returns
    -------
    SizeEstimate

    Raises
    ------
    InvalidInputError
        An empty pool, a non-finite value, a dimension mismatch or too few target rows.

    Notes
    -----
    ``share`` is the ranking estimate (the smallest ratio of pool to target share above a threshold); see the
    module docstring for why, and for the Elkan-Noto estimates recorded in ``diagnostics``.
    """
    return _estimate(pool, target, seed=seed, sample_rows=sample_rows, folds=folds, n_components=n_components,
                     l2=l2, block_rows=block_rows, pool_rows=pool_rows)[0]


def _estimate(
    pool: PoolLike,
    target: Any,
    *,
    seed: int | np.random.Generator,
    sample_rows: int,
    folds: int,
    n_components: int,
    l2: float,
    block_rows: int,
    pool_rows: int | None,
) -> tuple[SizeEstimate, np.ndarray, np.ndarray]:
    """:func:`estimate_target_rows` and its out-of-fold scores: (estimate, target scores, pool-sample scores).

    When the pool has at most ``sample_rows`` rows the sample is the whole pool in order, so the pool scores
    are row for row (the study in ``experiments/stopping_study.py`` reads them)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(check_int(seed, "seed", low=0))
    check_int(sample_rows, "sample_rows", low=2)
    check_int(folds, "folds", low=2)
    check_int(n_components, "n_components", low=1)
    check_real(l2, "l2", low=0.0)
    check_int(block_rows, "block_rows", low=1)
    sample, n_pool, dim = _reservoir(pool, sample_rows, rng, block_rows)
    if pool_rows is not None and int(pool_rows) != n_pool:
        raise InvalidInputError(f"pool: read {n_pool} rows, expected pool_rows={pool_rows}")
    tgt = check_embeddings(target, "target", dim=dim)
    n_t, n_u = int(tgt.shape[0]), int(sample.shape[0])
    if n_t < 2 * folds or n_u < 2 * folds:
        raise InvalidInputError(
            f"target: {n_t} rows and a pool sample of {n_u}; the automatic size's estimate needs at least "
            f"{2 * folds} of each (with folds={folds}): add rows, or give a budget (--budget N; budget= in Python) "
            f"or another stop rule (--stop)"
        )

    x = np.vstack([tgt.astype(np.float64), sample.astype(np.float64)])
    y = np.concatenate([np.ones(n_t), np.zeros(n_u)])
    fold = np.concatenate([rng.permutation(n_t) % folds, rng.permutation(n_u) % folds])
    scores = np.empty(x.shape[0], dtype=np.float64)
    r = min(n_components, dim)
    moments = FoldMoments(x, fold, folds)
    for f in range(folds):
        tr, te = fold != f, fold == f
        mu, sd, axes = moments.scaling(f, r)
        proj = project(x, mu, sd, axes)  # every row's coordinates, without a copy of the rows per fold
        psd = coordinate_sd(proj[tr])
        feats = np.hstack([proj[tr] / psd, np.ones((int(tr.sum()), 1))])
        w = fit_logistic(feats, y[tr], l2)
        te_feats = np.hstack([proj[te] / psd, np.ones((int(te.sum()), 1))])
        scores[te] = sigmoid(te_feats @ w)

    g_t, g_u = scores[:n_t], scores[n_t:]
    c = float(np.clip(g_t.mean(), 1e-12, 1.0))
    g_u = np.clip(g_u, 0.0, 1.0 - 1e-12)
    # Unclipped: a positive scored above c gets a weight above 1, one below c less; clipping at 1 biases the
    # share down (by 0.05 at a true share of 0.6 on two Gaussians, where the logistic model is exact).
    weights = (1.0 - c) / c * g_u / (1.0 - g_u)
    share_en = float(np.clip(weights.mean(), 0.0, 1.0))
    share_prior = float(np.clip(n_t * (1.0 - c) / (c * n_u), 0.0, 1.0))
    # Mixture-proportion estimate from the ranking alone (Blanchard, Lee & Scott 2010; Scott 2015): above a
    # threshold that only target-like rows pass, pool share / target share = pi; negatives above it push the
    # ratio up, so take the smallest over thresholds at target quantiles where the target share is >= 0.3.
    fx = np.sort(g_t)[::-1]
    best = (math.inf, 0.0, 0.0)
    for q in QUANTILES:
        t = fx[min(n_t - 1, max(0, int(q * n_t) - 1))]
        a, b = float((g_u >= t).mean()), float((g_t >= t).mean())
        if a / b < best[0]:
            best = (a / b, a, b)
    ratio, a, b = best
    share = float(np.clip(ratio, 0.0, 1.0))
    # Delta-method standard error of the ratio of two sample proportions.
    se = ratio * math.sqrt((1 - a) / max(a * n_u, 1e-12) + (1 - b) / (b * n_t)) if a > 0 else 0.0
    rows = round(share * n_pool)
    if share > 0 and rows == 0:
        rows = 1
    # The classifier refitted once on every training row, to score any row (stop_criterion="f1"); the pool
    # sample's posteriors stay out-of-fold, and their sum, scaled to the pool, is the target-like total.
    scorer = _fit_scorer(x, y, r, l2, c, moments)
    post_u = _posterior(g_u, c)
    total = float(post_u.sum()) * n_pool / n_u
    diag = {"c": c, "target_like_total": total,
            "share_se": se, "share_elkan_noto": share_en, "share_prior": share_prior,
            "threshold_target_share": b, "auc": auc(g_t, g_u), "sample_rows": n_u,
            "target_rows": n_t, "folds": folds, "n_components": r, "l2": float(l2)}
    logger.info("size estimate: %d of %d pool rows (share %.4f +- %.4f, c %.3f, AUC %.3f)", rows, n_pool, share,
                se, c, diag["auc"])
    est = SizeEstimate(rows=rows, share=share, method=METHOD, pool_rows=n_pool, diagnostics=diag, scorer=scorer,
                       pool_posteriors=post_u if n_u == n_pool else None)
    return est, g_t, g_u


def _fit_scorer(x: np.ndarray, y: np.ndarray, r: int, l2: float, c: float,
                moments: FoldMoments) -> PosteriorScorer:
    """The fold models' recipe (standardise, principal axes, logistic regression) on all training rows ``x``
    (``moments``: their :class:`FoldMoments`)."""
    mu, sd, axes = moments.scaling(None, r)
    proj = project(x, mu, sd, axes)
    psd = coordinate_sd(proj)
    w = fit_logistic(np.hstack([proj / psd, np.ones((proj.shape[0], 1))]), y, l2)
    return PosteriorScorer(mu=mu, sd=sd, axes=axes, psd=psd, w=w, c=c)


# Type of what estimate_target_rows accepts as a pool, for callers' annotations.
BlockFactory = Callable[[], Iterable[Any]]
