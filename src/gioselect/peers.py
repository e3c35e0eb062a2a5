"""The selection methods users reach for instead of GIO: DSIR and facility location.

Both return int64 pool row ids in pick order, with no repeats, ``budget`` of them when the pool allows, so they
slot into :func:`gioselect.evaluate.compare_methods` beside GIO and the baselines of :mod:`gioselect.evaluate`.

DSIR (:func:`dsir`)
-------------------
Data Selection with Importance Resampling (Xie, Santurkar, Ma & Liang 2023, "Data Selection for Language Models
via Importance Resampling", arXiv 2302.03169), hashed n-gram variant, on raw text:

1. each text is lower-cased and split by the word-punctuation tokenizer (the regular expression
   ``\\w+|[^\\w\\s]+``, the one of nltk's ``WordPunctTokenizer``); its unigrams and, for ``ngrams=2``, its
   bigrams (joined by a space) are hashed into ``num_buckets`` buckets by ``sha256(ngram) mod num_buckets``;
2. bag-of-n-grams models: ``p_target`` and ``p_pool`` are the bucket counts over all target / pool texts,
   normalised to sum 1;
3. a pool text's log importance weight is ``sum over its n-grams of log(p_target + 1e-8) - log(p_pool + 1e-8)``;
4. resampling without replacement by the Gumbel top-k trick: the ``budget`` largest ``log w + Gumbel(0, 1)``
   (seeded), returned in decreasing order of that perturbed score, so every prefix is itself a sample
   without replacement of its size. ``top_k=True`` drops the noise (the deterministic top-k of the package).

Implementation choice, decided by reading the source of the reference package ``data-selection==1.0.3``
(``data_selection.HashedNgramDSIR``): it cannot be called cleanly in memory. It reads only JSON-lines files
from disk, writes its weights and the selected rows to a cache and an output directory, forks a joblib worker
per core, draws its Gumbel noise from numpy's global random state (no seed argument), and by default drops
every text shorter than ``min_example_length=100`` tokens (every sentence). So this module is a numpy
re-implementation of the same steps (same tokenizer, hash, smoothing constant and Gumbel top-k), with the
package's length filter as an option defaulting to off. It needs no third-party package;
``tests/test_peers.py`` checks it against the package on small cases (written to files in a temporary
directory, one worker, ``min_example_length=0``): the same log importance weights to 1e-12 and the same
top-k set. The package fits the pool model on its first 10^9 tokens (``num_tokens_to_fit="auto"``, i.e.
``100000 * num_buckets``); here it is fitted on every pool token, which is the same for any pool under 10^9
tokens. Memory: the hashed n-gram ids of every text (one int64 per n-gram) and two ``num_buckets`` vectors;
no text x bucket matrix is built.

Facility location (:func:`facility_location`)
---------------------------------------------
Maximise ``f(S) = sum over target rows t of max over s in S of sim(t, s)`` with
``sim(t, s) = max(0, cos(t, s))`` (cosine similarity clipped at 0, so f is monotone submodular and
non-negative; a zero vector has similarity 0 to everything) by the lazy greedy algorithm (Minoux 1978):
every candidate keeps an upper bound on its gain (its last computed gain; gains only shrink as S grows), the
candidates with the largest bounds are re-evaluated a batch at a time, and one is picked once its fresh gain
is at least every remaining bound. Ties go to the lower pool row. The picks are exactly those of the plain
greedy algorithm with that tie-break (tested against a naive greedy and against apricot-select's
``FacilityLocationSelection(optimizer="naive")``).

State: the target's current best similarity (n floats) and two pool-length vectors (bounds, used flags).
Gains are computed in blocks of pool rows against the whole target (``block_rows x n`` similarities). The
``M x n`` similarity matrix is kept only when it fits in ``memory_budget`` (then each re-evaluation costs O(n));
otherwise re-evaluated rows are read again and their similarities recomputed (O(n d) each), so memory stays at
one block whatever the pool's size. The batch of re-evaluated candidates doubles while stale bounds keep
beating the best fresh gain, which bounds the Python overhead when gains fall fast.

When every gain is zero before the budget is reached (each target row already has its most similar pool row
in S: at most ``n`` picks do it), the cover is restarted: the best similarities are reset to 0 and greedy
continues over the unused rows, so the selection is a sequence of successive covers of the target, each as
good as greedy can make it without the rows already taken. Rows with zero similarity to every target row
(all cosines <= 0) have zero gain even then; they come last, in row order.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InvalidInputError, InvalidParameterError, InvalidTypeError
from .validation import check_embeddings, check_int

__all__ = ["dsir", "dsir_log_weights", "facility_location", "hashed_ngrams"]

logger = logging.getLogger(__name__)

#: The pattern of nltk's WordPunctTokenizer, which data-selection uses by default.
_WORDPUNCT = re.compile(r"\w+|[^\w\s]+", re.UNICODE | re.MULTILINE | re.DOTALL)
#: Smoothing added to both bag-of-n-gram probabilities before the log (as in data-selection).
_SMOOTH = 1e-8
#: Default bytes of one block of facility-location similarities (pool rows x target rows, float64).
_FACILITY_BLOCK_BYTES = 32 << 20
#: Candidates re-evaluated together in one lazy-greedy step.
_LAZY_BATCH = 32


# ---------------------------------------------------------------------------------------------------------
# DSIR
# ---------------------------------------------------------------------------------------------------------
def _check_texts(texts: Any, name: str) -> list[str]:
    if isinstance(texts, (str, bytes)) or not hasattr(texts, "__iter__"):
        raise InvalidTypeError(f"{name}: expected a sequence of strings (one text per row), got {type(texts).__name__}")
    out = list(texts)
    if not out:
        raise InvalidInputError(f"{name}: is empty (0 texts); at least 1 is needed")
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InvalidTypeError(f"{name}: row {i} is {type(t).__name__}, expected a string")
    return out


def hashed_ngrams(texts: Sequence[str], *, ngrams: int = 2, num_buckets: int = 10_000
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Hashed n-gram bucket ids of each text, flattened.

    Parameters
    ----------
    texts : sequence of str
    ngrams : int >= 1, default 2
        ``2`` gives unigrams and bigrams; ``n`` gives every order 1..n.
    num_buckets : int >= 1, default 10000

    Returns
    -------
    (buckets, lengths) : int64 arrays
        ``buckets`` holds every text's n-gram buckets one text after another (unigrams first, then each higher
        order in text order, as data-selection counts them); ``lengths[i]`` is the number of tokens of text i
        (the quantity data-selection's ``min_example_length`` filters on). The n-gram count of text i is
        ``sum_k max(0, lengths[i] - k + 1)`` for k = 1..ngrams.
    """
    n = check_int(ngrams, "ngrams", low=1)
    nb = check_int(num_buckets, "num_buckets", low=1)
    memo: dict[str, int] = {}

    def bucket(s: str) -> int:
        b = memo.get(s)
        if b is None:
            b = int.from_bytes(hashlib.sha256(s.encode("utf-8")).digest(), "big") % nb
            memo[s] = b
        return b

    flat: list[int] = []
    lengths = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        words = _WORDPUNCT.findall(text.lower())
        lengths[i] = len(words)
        flat.extend(bucket(w) for w in words)
        for k in range(2, n + 1):
            flat.extend(bucket(" ".join(words[j : j + k])) for j in range(len(words) - k + 1))
    return np.asarray(flat, dtype=np.int64), lengths


def _row_of(lengths: np.ndarray, ngrams: int) -> np.ndarray:
    counts = sum(np.maximum(lengths - k + 1, 0) for k in range(1, ngrams + 1))
    return np.repeat(np.arange(lengths.shape[0], dtype=np.int64), counts)


def dsir_log_weights(pool_texts: Sequence[str], target_texts: Sequence[str], *, ngrams: int = 2,
                     num_buckets: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """DSIR's log importance weight of every pool text, and every pool text's token count.

    ``log w_i = sum over the hashed n-grams g of text i of log(p_target[g] + 1e-8) - log(p_pool[g] + 1e-8)``,
    where ``p_target`` / ``p_pool`` are the normalised bucket counts over all target / pool texts (see the
    module docstring).

    Returns
    -------
    (log_weights, lengths) : float64 and int64 arrays of shape (len(pool_texts),)
        A text with no tokens has log weight 0.

    Raises
    ------
    InvalidInputError
        Empty inputs, or pool or target texts without a single token.
    """
    pool = _check_texts(pool_texts, "pool_texts")
    target = _check_texts(target_texts, "target_texts")
    n = check_int(ngrams, "ngrams", low=1)
    nb = check_int(num_buckets, "num_buckets", low=1)
    pb, plen = hashed_ngrams(pool, ngrams=n, num_buckets=nb)
    tb, _ = hashed_ngrams(target, ngrams=n, num_buckets=nb)
    for name, b in (("pool_texts", pb), ("target_texts", tb)):
        if b.size == 0:
            raise InvalidInputError(f"{name}: no text holds a single word or punctuation token; DSIR needs text")
    p_pool = np.bincount(pb, minlength=nb).astype(np.float64)
    p_pool /= p_pool.sum()
    p_target = np.bincount(tb, minlength=nb).astype(np.float64)
    p_target /= p_target.sum()
    log_diff = np.log(p_target + _SMOOTH) - np.log(p_pool + _SMOOTH)
    weights = np.bincount(_row_of(plen, n), weights=log_diff[pb], minlength=len(pool))
    return weights, plen


def dsir(pool_texts: Sequence[str], target_texts: Sequence[str], budget: int, *, seed: int = 0, ngrams: int = 2,
         num_buckets: int = 10_000, min_example_length: int = 0, top_k: bool = False) -> np.ndarray:
    """Hashed n-gram importance resampling (DSIR, Xie et al. 2023) of pool texts towards target texts.

    Parameters
    ----------
    pool_texts : sequence of str
        The raw text of each pool row.
    target_texts : sequence of str
        The raw text of each target row.
    budget : int >= 0
        Rows to select.
    seed : int, default 0
        Seeds the Gumbel noise.
    ngrams : int >= 1, default 2
        Unigrams and bigrams.
    num_buckets : int >= 1, default 10000
        Hash buckets of the n-gram models.
    min_example_length : int >= 0, default 0
        Pool texts with fewer tokens are never selected (data-selection's filter; its default of 100 would drop
        every sentence, hence 0 here).
    top_k : bool, default False
        Take the ``budget`` largest log weights instead of resampling (no noise; ties to the lower row).

    Returns
    -------
    ndarray of int64, shape (min(budget, eligible rows),)
        Pool rows in decreasing order of the (perturbed) log weight, no repeats. Fewer than ``budget`` only when
        fewer pool texts pass ``min_example_length`` (logged).
    """
    b = check_int(budget, "budget", low=0)
    rng = np.random.default_rng(check_int(seed, "seed", low=0))
    min_len = check_int(min_example_length, "min_example_length", low=0)
    logw, lengths = dsir_log_weights(pool_texts, target_texts, ngrams=ngrams, num_buckets=num_buckets)
    eligible = np.flatnonzero(lengths >= min_len)
    score = logw if top_k else logw + rng.gumbel(size=logw.shape[0])
    order = eligible[np.lexsort((eligible, -score[eligible]))]
    if order.shape[0] < b:
        logger.warning("dsir: only %d of %d pool texts have at least %d tokens; selecting %d, not %d",
                       order.shape[0], logw.shape[0], min_len, order.shape[0], b)
    logger.info("dsir: %d of %d pool texts selected (%s, %d-grams, %d buckets)", min(b, order.shape[0]),
                logw.shape[0], "top-k" if top_k else "Gumbel top-k resampling", ngrams, num_buckets)
    return order[:b].astype(np.int64)


# ---------------------------------------------------------------------------------------------------------
# facility location
# ---------------------------------------------------------------------------------------------------------
def _unit64(a: Any) -> np.ndarray:
    """float64 rows scaled to unit norm (zero rows stay zero)."""
    x = np.asarray(a, dtype=np.float64)
    norm = np.sqrt(np.einsum("ij,ij->i", x, x))
    norm[norm == 0.0] = 1.0
    return x / norm[:, None]


def facility_location(pool: Any, target: Any, budget: int, *, memory_budget: int | None = None,
                      block_rows: int | None = None) -> np.ndarray:
    """Greedy facility location over the target: the pool rows that best cover every target row.

    Maximises ``f(S) = sum_t max_{s in S} max(0, cos(t, s))`` by lazy greedy evaluated in blocks of pool rows;
    restarts the cover when every gain is zero (see the module docstring for the method, the tie-break and the
    fill rule).

    Parameters
    ----------
    pool : array of shape (M, d)
        A memory map is fine (read block by block).
    target : array of shape (n, d)
    budget : int >= 0
    memory_budget : int, optional
        Bytes for similarities. When the whole ``M x n`` float64 similarity matrix fits, it is computed once
        (block by block) and kept, and every later gain costs O(n); otherwise gains are recomputed from the pool
        rows (O(n d) each) in blocks of ``block_rows x n`` similarities that fit. Default: a quarter of physical
        memory (at least 512 MiB), as :func:`gioselect.pipeline.default_memory_budget`.
    block_rows : int, optional
        Pool rows per block; default as many as fit in ``min(memory_budget, 32 MiB)``.

    Returns
    -------
    ndarray of int64, shape (min(budget, M),)
        Pool rows in pick order, no repeats.
    """
    from .evaluate import pool_shape
    from .pipeline import default_memory_budget

    pool_a, n_pool, dim = pool_shape(pool, "pool")
    x = _unit64(check_embeddings(target, "target", dim=dim))
    b = min(check_int(budget, "budget", low=0), n_pool)
    n_t = x.shape[0]
    mem = default_memory_budget() if memory_budget is None else check_int(memory_budget, "memory_budget", low=1)
    row_bytes = 8 * (n_t + dim)
    if block_rows is not None:
        br = check_int(block_rows, "block_rows", low=1)
    else:
        if mem < row_bytes:
            raise InvalidParameterError(
                f"memory_budget: {mem} bytes cannot hold one pool row's similarities to the {n_t} target rows "
                f"({row_bytes} bytes); raise it")
        br = max(1, min(mem, _FACILITY_BLOCK_BYTES) // row_bytes)
    br = min(br, n_pool)
    if b == 0:
        return np.zeros(0, dtype=np.int64)
    keep = n_pool * n_t * 8 + br * row_bytes <= mem  # the whole similarity matrix fits: compute it once

    best = np.zeros(n_t)
    used = np.zeros(n_pool, dtype=bool)
    cached: np.ndarray | None = np.empty((n_pool, n_t)) if keep else None

    def sims(rows: np.ndarray | slice, offset: int = 0, validate: bool = False) -> np.ndarray:
        if cached is not None and not validate:
            return cached[rows]
        raw = pool_a[rows]
        if validate:
            raw = check_embeddings(raw, "pool", dim=dim, row_offset=offset)
        s = _unit64(raw) @ x.T
        np.maximum(s, 0.0, out=s)
        if cached is not None:
            cached[rows] = s
        return s

    def gains_of(s: np.ndarray) -> np.ndarray:
        return np.maximum(s - best, 0.0).sum(axis=1)

    def full_pass(validate: bool) -> list[tuple[float, int]]:
        """Fresh gains of every unused row, blockwise, as a heap of (-gain, row)."""
        heap: list[tuple[float, int]] = []
        for r0 in range(0, n_pool, br):
            g = gains_of(sims(slice(r0, r0 + br), r0, validate))
            heap.extend((-float(v), r0 + i) for i, v in enumerate(g) if not used[r0 + i])
        heapq.heapify(heap)
        return heap

    heap = full_pass(validate=True)
    out = np.empty(b, dtype=np.int64)
    got = 0
    restarts = 0
    evaluated = 0
    restarted_empty = False  # a restart found no positive gain: the rest are zero-similarity rows
    batch_size = _LAZY_BATCH
    while got < b:
        if restarted_empty:
            rest = np.flatnonzero(~used)[: b - got]
            out[got : got + rest.shape[0]] = rest
            got += rest.shape[0]
            break
        batch = [heapq.heappop(heap) for _ in range(min(batch_size, len(heap)))]
        rows = np.array([r for _, r in batch], dtype=np.int64)
        s = sims(rows)
        fresh = gains_of(s)
        evaluated += rows.shape[0]
        # best fresh candidate: largest gain, then lowest row
        j = int(np.lexsort((rows, -fresh))[0])
        key = (-float(fresh[j]), int(rows[j]))
        if heap and heap[0] < key:  # a stale bound may still beat it: push back fresh bounds, look further
            for g, r in zip(fresh, rows, strict=True):
                heapq.heappush(heap, (-float(g), int(r)))
            batch_size = min(2 * batch_size, max(_LAZY_BATCH, br))
            continue
        batch_size = _LAZY_BATCH
        if fresh[j] <= 0.0:  # every remaining gain is zero: restart the cover
            restarts += 1
            best[:] = 0.0
            heap = full_pass(validate=False)
            restarted_empty = not heap or heap[0][0] >= 0.0
            continue
        pick = int(rows[j])
        used[pick] = True
        np.maximum(best, s[j], out=best)
        out[got] = pick
        got += 1
        for i, (g, r) in enumerate(zip(fresh, rows, strict=True)):
            if i != j:
                heapq.heappush(heap, (-float(g), int(r)))
    logger.info("facility location: %d picks from %d pool rows over %d target rows, %d gain evaluations, "
                "%d cover restart(s), similarities %s", got, n_pool, n_t, evaluated, restarts,
                "kept" if keep else "recomputed in blocks")
    return out
