"""Pool rows against the target: each row's nearest target rows, exactly, and its kNN score.

:func:`nearest_targets` gives ``picks.csv``'s and the frames' ``gio_nearest_target`` column (and the Spark engine's
executor-side nearest targets); :func:`score_rows` ranks the rows of the row-level pass
(:func:`gioselect.quantize.refine`) and, with :class:`KnownNearest`, records the nearest target rows of the rows
it scores so that ``picks.csv`` need not read and scan them again. Both run on :func:`nearest_target_scan`: a
float32 screen with a certified error bound, float64 where the screen cannot decide.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "N_NEAREST_TARGETS",
    "PRUNE_MIN_TARGETS",
    "SCORE_BLOCK_ROWS",
    "KnownNearest",
    "TargetPartition",
    "known_rows",
    "nearest_target_scan",
    "nearest_targets",
    "score_rows",
    "target_partition",
]

N_NEAREST_TARGETS = 3
"""How many nearest target ids ``gio_nearest_target`` lists."""

SCORE_BLOCK_ROWS = 16_384
"""Pool rows :func:`score_rows` reads at a time by default."""


class KnownNearest:
    """Nearest target rows (:func:`nearest_targets`) already found for some pool rows, to be reused.

    The row-level pass finds them while it scores rows (:func:`score_rows`); ``picks.csv``
    then looks them up instead of reading and scanning those rows again. They hold only for ``target``, the
    array they were computed against (:meth:`matches`).
    """

    def __init__(self, target: np.ndarray) -> None:
        self.target = target
        self._ids: list[np.ndarray] = []
        self._near: list[np.ndarray] = []
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, row_ids: np.ndarray, near: np.ndarray) -> None:
        """Record ``near`` (shape (len(row_ids), n)) as the nearest target rows of pool rows ``row_ids``."""
        row_ids = np.asarray(row_ids, dtype=np.int64)
        if near.shape[0] != row_ids.shape[0]:
            raise ValueError(f"near: expected {row_ids.shape[0]} rows, got {near.shape[0]}")
        self._ids.append(row_ids)
        self._near.append(np.asarray(near, dtype=np.int32 if self.target.shape[0] < 2**31 else np.int64))
        self._sorted = None

    def _table(self) -> tuple[np.ndarray, np.ndarray]:
        if self._sorted is None:
            n = min(N_NEAREST_TARGETS, int(self.target.shape[0]))
            ids = np.concatenate(self._ids) if self._ids else np.empty(0, dtype=np.int64)
            near = np.concatenate(self._near) if self._near else np.empty((0, n), dtype=np.int64)
            order = np.argsort(ids, kind="stable")
            self._sorted = ids[order], near[order]
            self._ids, self._near = [self._sorted[0]], [self._sorted[1]]
        return self._sorted

    def keep(self, row_ids: np.ndarray) -> None:
        """Forget every row but ``row_ids`` (the rows kept by the pass)."""
        ids, near = self._table()
        keep = np.isin(ids, np.asarray(row_ids, dtype=np.int64))
        self._ids, self._near, self._sorted = [ids[keep]], [near[keep]], None

    def __len__(self) -> int:
        return int(sum(a.shape[0] for a in self._ids))

    def lookup(self, row_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(found, near)``: which of ``row_ids`` are known (bool mask) and their nearest target rows (int64)."""
        ids, near = self._table()
        row_ids = np.asarray(row_ids, dtype=np.int64)
        pos = np.minimum(np.searchsorted(ids, row_ids), max(ids.shape[0] - 1, 0))
        found = (ids[pos] == row_ids) if ids.shape[0] else np.zeros(row_ids.shape[0], dtype=bool)
        return found, near[pos[found]].astype(np.int64)

    def matches(self, target: np.ndarray) -> bool:
        """Whether ``target`` is the array (or an equal one) these were computed against."""
        t = self.target
        return target is t or (target.shape == t.shape and bool(np.array_equal(target, t)))


def known_rows(known: KnownNearest | None, target: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(near, found)`` for pool rows ``ids``: the nearest target rows ``known`` holds for them (when it was
    computed against ``target``) and which rows those are; the other rows of ``near`` (int64, shape
    (len(ids), min(3, target rows))) are zero, for the caller to compute."""
    near = np.zeros((ids.shape[0], min(N_NEAREST_TARGETS, int(target.shape[0]))), dtype=np.int64)
    found = np.zeros(ids.shape[0], dtype=bool)
    if known is not None and known.matches(target):
        found, got = known.lookup(ids)
        near[found] = got
    return near, found


def nearest_targets(rows: np.ndarray, target: np.ndarray, n: int = N_NEAREST_TARGETS,
                    block_rows: int = 4096, partition: TargetPartition | None = None) -> np.ndarray:
    """The ``n`` nearest target rows (Euclidean, ascending distance; ties: lowest id) of each row, shape (s, n).

    The ids of :func:`nearest_target_scan`. Against a large target (at least :data:`PRUNE_MIN_TARGETS` rows)
    each row is compared only with the groups of target rows that could hold one of its ``n`` nearest
    (:class:`TargetPartition`); the ids are the same. ``partition`` (built on ``target``) is reused across
    calls; without one, a call with enough work (:func:`target_partition`) builds its own.
    """
    rows = np.asarray(rows, dtype=np.float64)
    if partition is None:
        partition = target_partition(target, rows.shape[0])
    if partition is None:
        return nearest_target_scan(rows, target, n, block_rows=block_rows)[0]
    if not partition.useful:  # the target it holds, screened whole
        return partition.screen.scan_rows(rows, n, block_rows=block_rows)[0]
    return partition.nearest(rows, n, block_rows)


PRUNE_MIN_TARGETS = 2048
"""Targets smaller than this are always scanned whole by :func:`nearest_targets` (the screen is cheap there)."""

PRUNE_MIN_PAIRS = 50_000_000
"""Rows x target rows below which a call of :func:`nearest_targets` does not build its own partition."""


def target_partition(target: np.ndarray, rows: int) -> TargetPartition | None:
    """A :class:`TargetPartition` of ``target`` when :func:`nearest_targets` on ``rows`` rows is worth one."""
    m = int(target.shape[0])
    if m < PRUNE_MIN_TARGETS or rows * m < PRUNE_MIN_PAIRS:
        return None
    return TargetPartition(target)


class TargetPartition:
    """The target's rows in groups (a few Lloyd iterations), each with its centre, so that a row is
    compared only with the groups that could hold its nearest target rows; the answer stays exact.

    For a row ``x`` and a target row ``t`` of the group with centre ``c``, ``|x - t| >= |x - c| - |t - c|`` (the
    triangle inequality). Rows are taken in groups by their nearest centre (their home); ``u``, an upper bound
    on the ``n``-th smallest distance of a row to its home's members (the float32 screen's ``n``-th smallest
    value against them plus its certified error, :func:`_screen_error`), bounds its ``n``-th nearest distance
    from above. A target row whose bound exceeds ``u`` for every row of a sub-block of the home is none of
    their ``n`` nearest, nor tied with them, so it is left out: per group, the target rows with ``|t - c|`` below
    ``min_x (|x - c| - u(x))``. The sub-block's rows (:data:`PRUNE_SUB_ROWS` of the home's, in the order of how
    many target rows each alone would need) are then screened (:func:`nearest_target_scan`) against the other
    target rows only, ids ascending so that ties still go to the lowest id. The distances to the centres are
    float64 with a relative margin of 1e-9, far beyond their rounding. Sub-blocks that keep more than half the
    target, rows whose bounds are not finite, and homes with fewer than ``n`` members or more than half the target
    are screened against the whole target.

    Where the target has no cluster structure (sentence embeddings: nothing is left out) the partition stops
    pruning after :data:`PRUNE_PROBE_ROWS` rows (:attr:`useful` turns false), having cost a few Lloyd iterations
    and one chunk's bounds; on clustered data it left out 80 % of the pairs (the scale benchmark's Gaussian
    mixture) and 54 % (Fashion-MNIST PCA features; BENCHMARKS.md).
    """

    def __init__(self, target: np.ndarray, groups: int | None = None, *, seed: int = 0, iters: int = 6) -> None:
        self.screen = _Screen(target)
        tgt = self.screen.tgt
        m = self.screen.m
        g = int(groups) if groups is not None else int(min(256, max(16, round(np.sqrt(m)))))
        g = max(1, min(g, m))
        labels = _lloyd_labels(tgt - self.screen.mu, g, seed=seed, iters=iters)
        used, labels = np.unique(labels, return_inverse=True)
        self.labels = labels.astype(np.int64)
        self.groups = int(used.shape[0])
        counts = np.bincount(self.labels, minlength=self.groups)
        self.centres = _group_sums(tgt, self.labels, self.groups) / counts[:, None]
        diff = tgt - self.centres[self.labels]
        self.spread = np.sqrt(np.einsum("ij,ij->i", diff, diff)) * (1.0 + _PRUNE_MARGIN)  # |t - c|, rounded up
        self.members = np.split(np.argsort(self.labels, kind="stable"), np.cumsum(counts)[:-1])
        self._sorted_spread = [np.sort(self.spread[mem]) for mem in self.members]
        # Each group's members as the screen has them, [-2 t, |t|^2] (centred, float32), contiguous: a row's
        # screened values against them in one product, for the upper bound u(x).
        self._member_aug = [np.ascontiguousarray(self.screen.t_aug[mem]) for mem in self.members]
        self._member_norm_max = np.array([self.screen.norms[mem].max() if mem.shape[0] else 0.0
                                          for mem in self.members])
        self._x_aug = np.empty((0, self.screen.t_aug.shape[1]), dtype=np.float32)  # reused across chunks
        self.pairs_scanned = 0  # row x target pairs screened so far, and what the whole target would have been
        self.pairs_whole = 0
        self.useful = bool(np.isfinite(self.centres).all() and np.isfinite(self.spread).all())

    def nearest(self, rows: np.ndarray, n: int, block_rows: int = 4096) -> np.ndarray:
        """:func:`nearest_targets` of float64 ``rows`` against the partitioned target."""
        scr = self.screen
        s = rows.shape[0]
        n = min(int(n), scr.m)
        out = np.empty((s, n), dtype=np.int64)
        if s == 0 or n == 0:
            return out
        whole: list[np.ndarray] = []
        c0 = 0
        while c0 < s:
            if not self.useful:  # the rest of the rows: the whole target
                whole.append(np.arange(c0, s))
                break
            # The first PRUNE_PROBE_ROWS rows a partition sees decide whether it keeps pruning.
            size = PRUNE_PROBE_ROWS if self.pairs_whole < PRUNE_PROBE_ROWS * scr.m else PRUNE_CHUNK_ROWS
            w = self._pruned(rows[c0 : c0 + size], n, block_rows, out[c0 : c0 + size])
            whole.append(c0 + w)
            self.pairs_scanned += w.shape[0] * scr.m
            self.pairs_whole += min(size, s - c0) * scr.m
            if self.pairs_whole >= PRUNE_PROBE_ROWS * scr.m and self.pairs_scanned > 0.75 * self.pairs_whole:
                self.useful = False
            c0 += size
        rest = np.concatenate(whole)
        for s0 in range(0, rest.shape[0], block_rows):
            r = rest[s0 : s0 + block_rows]
            out[r] = scr.scan(rows[r], n, n)[0]
        return out

    def _pruned(self, rows: np.ndarray, n: int, block_rows: int, out: np.ndarray) -> np.ndarray:
        """Fill ``out`` for the rows of one chunk that a pruned screen can answer; return the others' positions."""
        scr = self.screen
        m = scr.m
        xc = rows - scr.mu
        cc = self.centres - scr.mu
        with np.errstate(over="ignore", invalid="ignore"):
            xn = np.sqrt(np.einsum("ij,ij->i", xc, xc))
            cn = np.sqrt(np.einsum("ij,ij->i", cc, cc))
            tol = _PRUNE_MARGIN * (xn[:, None] + cn[None, :]) ** 2
            d2c = xn[:, None] ** 2 + cn[None, :] ** 2 - 2.0 * (xc @ cc.T)
            near = np.sqrt(np.maximum(d2c - tol, 0.0))  # |x - c|, rounded down
            ok = np.isfinite(d2c).all(axis=1) & np.isfinite(xn)
        home = np.argmin(np.where(np.isfinite(d2c), d2c, np.inf), axis=1)
        # u(x): an upper bound on the n-th smallest distance of each row to its home's members (inf: the row takes
        # the whole target): the n-th smallest screened value (float32, :func:`nearest_target_scan`'s) plus |x|^2
        # and the screen's certified error bound, with the margin.
        upper = np.full(rows.shape[0], np.inf)
        order = np.argsort(home, kind="stable")
        bounds = np.searchsorted(home[order], np.arange(self.groups + 1))
        if self._x_aug.shape[0] < rows.shape[0]:
            self._x_aug = np.empty((rows.shape[0], xc.shape[1] + 1), dtype=np.float32)
        x_aug = self._x_aug[: rows.shape[0]]
        with np.errstate(over="ignore", invalid="ignore"):
            x_aug[:, :-1] = xc
            x_aug[:, -1] = 1.0
        for h in range(self.groups):
            r = order[bounds[h] : bounds[h + 1]]
            mem = self.members[h]
            if r.size == 0 or mem.shape[0] < n or mem.shape[0] > 0.5 * m:  # no bound, or no saving
                continue
            step = max(1, (1 << 22) // mem.shape[0])  # at most 4M values (16 MB) at a time
            with np.errstate(over="ignore", invalid="ignore"):
                for u0 in range(0, r.shape[0], step):
                    ru = r[u0 : u0 + step]
                    nth = np.partition(x_aug[ru] @ self._member_aug[h].T, n - 1, axis=1)[:, n - 1]
                    xr = xn[ru]
                    err = _screen_error(xr, float(self._member_norm_max[h]), xc.shape[1] + 1)
                    d2 = nth.astype(np.float64) + xr**2 + err
                    upper[ru] = np.sqrt(d2 + _PRUNE_MARGIN * (xr + self._member_norm_max[h]) ** 2)
        ok &= np.isfinite(upper)
        whole = [np.flatnonzero(~ok)]
        # Target t of group g can be one of row x's n nearest only if |t - c_g| >= |x - c_g| - u(x). A home's rows
        # are screened in sub-blocks, each against the targets one of its rows could need, and in the order of
        # how many targets each row alone would need, so that a sub-block's rows need alike.
        with np.errstate(invalid="ignore"):
            lack = near - upper[:, None]
        need_rows = np.zeros(rows.shape[0])
        for g in range(self.groups):
            sg = self._sorted_spread[g]
            need_rows += sg.shape[0] - np.searchsorted(sg, lack[:, g])
        good = np.flatnonzero(ok)
        order = good[np.lexsort((need_rows[good], home[good]))]
        bounds = np.searchsorted(home[order], np.arange(self.groups + 1))
        for h in range(self.groups):
            r = order[bounds[h] : bounds[h + 1]]
            for s0 in range(0, r.shape[0], PRUNE_SUB_ROWS):
                rr = r[s0 : s0 + PRUNE_SUB_ROWS]
                keep = self.spread >= np.min(lack[rr], axis=0)[self.labels]
                keep[self.members[h]] = True
                cand = np.flatnonzero(keep)
                if cand.shape[0] > 0.5 * m:
                    whole.append(rr)
                    continue
                self.pairs_scanned += rr.shape[0] * cand.shape[0]
                out[rr] = scr.scan(rows[rr], n, n, cand)[0]
        return np.concatenate(whole)


PRUNE_CHUNK_ROWS = 16_384
"""Rows :class:`TargetPartition` bounds and groups by home at a time."""

PRUNE_SUB_ROWS = 256
"""Rows of one home screened together against the targets any of them could need."""

PRUNE_PROBE_ROWS = 4096
"""Rows after which a :class:`TargetPartition` that leaves out less than a quarter of the pairs stops pruning."""

_PRUNE_MARGIN = 1e-9


def _lloyd_labels(x: np.ndarray, g: int, *, seed: int, iters: int, sample: int = 64,
                  block_rows: int = 65_536) -> np.ndarray:
    """Group label of each row of ``x``: ``iters`` float32 Lloyd iterations from ``g`` seeded rows, trained on
    at most ``sample * g`` seeded rows, then every row assigned. Any grouping keeps :class:`TargetPartition`
    exact; a good one only makes it prune more."""
    m = x.shape[0]
    rng = np.random.default_rng(seed)
    x32 = np.asarray(x, dtype=np.float32)
    train = x32[np.sort(rng.choice(m, size=sample * g, replace=False))] if m > sample * g else x32
    cent = train[rng.choice(train.shape[0], size=g, replace=False)].copy()

    def assign(z: np.ndarray) -> np.ndarray:
        lab = np.empty(z.shape[0], dtype=np.int64)
        cn = np.einsum("ij,ij->i", cent, cent)
        for s0 in range(0, z.shape[0], block_rows):
            lab[s0 : s0 + block_rows] = np.argmin(cn[None, :] - 2.0 * (z[s0 : s0 + block_rows] @ cent.T), axis=1)
        return lab

    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(iters):
            lab = assign(train)
            counts = np.bincount(lab, minlength=g)
            nz = counts > 0
            onehot = np.zeros((g, train.shape[0]), dtype=np.float32)
            onehot[lab, np.arange(train.shape[0])] = 1.0
            cent[nz] = (onehot @ train)[nz] / counts[nz, None].astype(np.float32)
        return assign(x32)


def _group_sums(x: np.ndarray, labels: np.ndarray, g: int) -> np.ndarray:
    """float64 sum of the rows of ``x`` with each label ``0..g-1`` (zero where a label has no row)."""
    order = np.argsort(labels, kind="stable")
    lab = labels[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    out = np.zeros((g, x.shape[1]))
    out[lab[starts]] = np.add.reduceat(np.asarray(x, dtype=np.float64)[order], starts, axis=0)
    return out


def nearest_target_scan(rows: np.ndarray, target: np.ndarray, n: int = N_NEAREST_TARGETS, k: int = 0,
                        block_rows: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``n`` nearest target rows and its ``max(n, k)`` smallest squared distances: ``(ids, d2)``.

    ``ids`` (shape (s, n), int64): ascending distance, ties broken by the lowest id, as if every (row, target)
    pair's float64 sum of squared differences were computed and sorted stably. ``d2`` (shape (s, max(n, k)),
    float64, ascending): the j-th smallest squared distance of each row to the target, within the screen's
    certified float32 error bound (:func:`_screen_error`) of its float64 value; rows whose float32 values could
    overflow get float64 values. With ``k <= n`` these are the distances of ``ids``' targets, to within that bound.

    The float64 distances decide, but computing them for every pair made this the slowest step of writing a
    large selection (``picks.csv``: 3 nearest of a 10,000-row target for 143,000 selected rows took 44 of a
    job's 63 s), so the pairs are screened first: squared distances in float32 (both sides centred on the
    target's mean, one single-precision matrix product), the ``max(n, k)`` smallest of each row found by as
    many argmin passes, and the answer certified from the screen's error bound ``e`` of the row: where the next
    screened distance lies more than ``2 e`` beyond the ``n``-th (no other target can be nearer; one more argmin
    pass when ``k <= n``) and consecutive ones among the first ``n`` are more than ``2 e`` apart (their order
    is sure), the ``n`` found are the answer as they are (about 80 % of rows on the BBC benchmark pool, whose
    rows are noisy copies of sentences; more where near-ties are rarer). Only the other rows are measured in
    float64: a row with a near-tie among its ``n`` on those ``n`` targets, a row with another target inside the
    limit on every target inside it. Rows whose float32 values could overflow are measured on every target.
    """
    return _Screen(target).scan_rows(rows, n, k, block_rows)


class _Screen:
    """A target prepared for the float32 screen of :func:`nearest_target_scan` (all of it, or some of its rows)."""

    def __init__(self, target: np.ndarray) -> None:
        self.tgt = np.asarray(target, dtype=np.float64)
        self.m, d = self.tgt.shape
        self.mu = self.tgt.mean(axis=0) if self.m else np.zeros(d)
        tc = self.tgt - self.mu
        self.norms = np.sqrt(np.einsum("ij,ij->i", tc, tc))  # centred target norms
        with np.errstate(over="ignore", invalid="ignore"):  # overflowing rows are measured in full
            # Screened value of a pair: |t|^2 - 2 x.t, one matrix product of [x, 1] with [-2 t, |t|^2] (|x|^2 is
            # the same for every target of a row, so it changes neither the order nor the gaps and is left out).
            t_aug = np.empty((self.m, d + 1), dtype=np.float32)
            t_aug[:, :d] = tc
            t_aug[:, d] = np.einsum("ij,ij->i", t_aug[:, :d], t_aug[:, :d])
            t_aug[:, :d] *= -2.0
        self.t_aug = t_aug
        self._t_aug_t = np.ascontiguousarray(t_aug.T)

    def scan_rows(self, rows: np.ndarray, n: int, k: int = 0,
                  block_rows: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """:func:`nearest_target_scan` of ``rows`` against this target, ``block_rows`` rows at a time."""
        rows = np.asarray(rows, dtype=np.float64)
        s = rows.shape[0]
        n = min(int(n), self.m)
        p = min(max(n, int(k)), self.m)  # screened distances kept per row
        out = np.empty((s, n), dtype=np.int64)
        out_d2 = np.empty((s, p), dtype=np.float64)
        if p == 0 or s == 0:
            return out, out_d2
        for s0 in range(0, s, block_rows):
            out[s0 : s0 + block_rows], out_d2[s0 : s0 + block_rows] = self.scan(rows[s0 : s0 + block_rows], n, p)
        return out, out_d2

    def scan(self, b: np.ndarray, n: int, p: int,
             cand: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One block of float64 rows ``b`` against the target (or its rows ``cand``, ascending): ``(ids, d2)`` of
        :func:`nearest_target_scan`, ids of the whole target, ``1 <= p``, ``n <= p <= len(cand)``."""
        if cand is None:
            t_aug_t, tgt_ids, c_max = self._t_aug_t, None, float(self.norms.max())
        else:
            t_aug_t, tgt_ids, c_max = self.t_aug[cand].T, cand, float(self.norms[cand].max())  # BLAS takes .T as is
        m = t_aug_t.shape[1]
        d = t_aug_t.shape[0] - 1
        nb = b.shape[0]
        out = np.empty((nb, n), dtype=np.int64)
        out_d2 = np.empty((nb, p), dtype=np.float64)
        cols = np.arange(n)

        def exact(ri: np.ndarray, ci: np.ndarray) -> np.ndarray:
            return _pair_distances(b, self.tgt, ri, ci if tgt_ids is None else tgt_ids[ci])

        def ids(ci: np.ndarray) -> np.ndarray:
            return ci if tgt_ids is None else tgt_ids[ci]

        with np.errstate(over="ignore", invalid="ignore"):  # overflowing rows are measured in full below
            bc = b - self.mu
            b_sq = np.einsum("ij,ij->i", bc, bc)
            b_norm = np.sqrt(b_sq)
            b_aug = np.empty((nb, d + 1), dtype=np.float32)
            b_aug[:, :d] = bc
            b_aug[:, d] = 1.0
            d32 = b_aug @ t_aug_t
            # The p smallest screened distances of each row: p argmin passes, each taking one entry out.
            r_ix = np.arange(nb)
            taken = np.empty((nb, p), dtype=np.int64)
            kept = np.empty((nb, p), dtype=np.float32)
            for j in range(p):
                a = np.argmin(d32, axis=1)
                taken[:, j] = a
                kept[:, j] = d32[r_ix, a]
                d32[r_ix, a] = np.inf
            out_d2[:] = np.maximum(b_sq[:, None] + kept.astype(np.float64), 0.0)
            err = _screen_error(b_norm, c_max, d + 1)
            limit = kept[:, max(n, 1) - 1].astype(np.float64) + 2.0 * err
            full = ~(((b_norm + c_max) ** 2 < 1e37) & np.isfinite(limit))  # float32 could overflow
            if n == 0:  # distances only: rows that could overflow are measured on every target
                fr = np.flatnonzero(full)
                if fr.size:
                    ex = exact(np.repeat(fr, m), np.tile(np.arange(m), fr.size))
                    out_d2[fr] = np.sort(ex.reshape(fr.size, m), axis=1)[:, :p]
                return out, out_d2
            lim32 = np.nextafter(np.where(full, 0.0, limit).astype(np.float32), np.float32(np.inf))
            # The next screened distance (the (n+1)-th): beyond the limit (almost every row), the n taken are the
            # only candidates; the other rows ("open") are screened against every target.
            nxt = kept[:, n] if p > n else d32[r_ix, np.argmin(d32, axis=1)]
            open_mask = (nxt <= lim32) | full
            measure = open_mask.copy()
            if n > 1:  # a near-tie among the n: their order needs the float64 distances
                gaps = np.diff(kept[:, :n].astype(np.float64), axis=1)
                measure |= np.any(gaps <= 2.0 * err[:, None], axis=1)
            sure = np.flatnonzero(~measure)
            out[sure] = ids(taken[sure, :n])
            exact_rows = np.flatnonzero(measure)
            if exact_rows.size == 0:
                return out, out_d2
            tied = np.flatnonzero(measure & ~open_mask)
            open_rows = np.flatnonzero(open_mask)
            ri_parts = [np.repeat(tied, n)]
            ci_parts = [taken[tied, :n].ravel()]
            if open_rows.size:
                sub = d32[open_rows]
                sub[np.arange(open_rows.size)[:, None], taken[open_rows]] = kept[open_rows]
                mask = sub <= lim32[open_rows, None]
                mask[full[open_rows]] = True  # every target is a candidate
                oi, oc = np.nonzero(mask)
                ri_parts.append(open_rows[oi])
                ci_parts.append(oc)
            ri, ci = np.concatenate(ri_parts), np.concatenate(ci_parts)
            ex = exact(ri, ci)
            order = np.lexsort((ci, ex, ri))  # by row, then distance, then target id
            starts = np.searchsorted(ri[order], exact_rows)
            out[exact_rows] = ids(ci[order[starts[:, None] + cols[None, :]]])
            fr = np.flatnonzero(full)
            if fr.size:  # measured on every target: their p smallest distances in float64
                fs = np.searchsorted(ri[order], fr)
                out_d2[fr] = ex[order[fs[:, None] + np.arange(p)[None, :]]]
        return out, out_d2


def _screen_error(row_norm: np.ndarray, target_norm: float, dim: int) -> np.ndarray:
    """Worst-case error of a float32 screened distance of each row (float64, per row), up to the row's constant.

    The screened value is ``|t|^2 - 2 x.t``, a length-``dim`` dot product (``dim`` = dimension + 1) of
    ``[x, 1]`` with ``[-2 t, |t|^2]``. With ``u = 2**-24`` the unit roundoff and ``a``, ``c`` the row's and the
    largest target norm (centred), the conversion to float32 moves a squared distance by at most about
    ``2u (a + c)^2``, computing ``|t|^2`` in float32 errs by ``gamma c^2`` and the product by ``gamma (2ac + c^2)``
    (``gamma = dim u / (1 - dim u)``, any summation order). Since ``2ac + 2c^2 <= 2 (a + c)^2`` their sum is at most
    ``2 (gamma + u) (a + c)^2``; the bound returned is ``4 (gamma + 4u) (a + c)^2``, twice that with room to spare.
    The float64 centring (``x - mean``) errs by ``2**-53`` relative, far inside the float32 terms.
    """
    u = 2.0**-24
    gamma = dim * u / max(1.0 - dim * u, 0.5)
    return 4.0 * (gamma + 4.0 * u) * (row_norm + target_norm) ** 2


def _pair_distances(rows: np.ndarray, target: np.ndarray, ri: np.ndarray, ci: np.ndarray,
                    max_elements: int = 1 << 22) -> np.ndarray:
    """float64 squared distance of each pair ``(rows[ri[k]], target[ci[k]])``, in chunks of bounded size."""
    out = np.empty(ri.shape[0], dtype=np.float64)
    step = max(1, max_elements // max(rows.shape[1], 1))
    for k in range(0, ri.shape[0], step):
        diff = rows[ri[k : k + step]] - target[ci[k : k + step]]
        out[k : k + step] = np.einsum("ij,ij->i", diff, diff)
    return out


def _relaxed_scores(block: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``how="relaxed"`` score of each row of ``block``: its own term of the relaxed estimate, mean_i
    log(|x_i - w| + eps), in chunks of rows (lower is better)."""
    b = np.ascontiguousarray(block, dtype=np.float32)
    out = np.empty(b.shape[0], dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    tn = np.einsum("ij,ij->i", t, t)
    step = max(1, 4_000_000 // max(1, t.shape[0]))
    for s in range(0, b.shape[0], step):
        w = b[s : s + step].astype(np.float64)
        d2 = np.einsum("ij,ij->i", w, w)[:, None] + tn[None, :] - 2.0 * (w @ t.T)
        out[s : s + step] = np.log(np.sqrt(np.clip(d2, 1e-10, 1e20)) + 1e-8).mean(axis=1)
    return out


def score_rows(ids: np.ndarray, read_rows: Callable[[np.ndarray], np.ndarray], target: np.ndarray, *,
               how: str = "knn", k: int = 5, block_rows: int = SCORE_BLOCK_ROWS,
               known: KnownNearest | None = None) -> np.ndarray:
    """Scores (float64, lower is better) of pool rows ``ids``, read ``block_rows`` at a time by ``read_rows``.

    ``how="knn"``: mean distance to the row's ``k`` nearest target points (the float32 screen of
    :func:`nearest_target_scan`; each distance within its certified error); ``how="relaxed"``:
    the row's term of the relaxed objective, the mean log distance to every target point. Memory: one block and
    its scores. ``known`` (knn only) records each row's nearest target rows (``picks.csv``'s), found in the same
    scan of ``target`` at the cost of a few more argmin passes.
    """
    ids = np.asarray(ids, dtype=np.int64)
    out = np.empty(ids.shape[0], dtype=np.float64)
    if how not in ("knn", "relaxed"):
        raise ValueError(f"unknown row score {how!r}")
    kk = max(1, min(int(k), int(target.shape[0])))
    n_near = N_NEAREST_TARGETS if known is not None else 0  # the relaxed score never reaches the scan
    screen = _Screen(target) if how == "knn" else None  # prepared once for every block
    for s in range(0, ids.shape[0], block_rows):
        blk = ids[s : s + block_rows]
        rows = read_rows(blk)
        if screen is None:  # how == "relaxed"
            out[s : s + block_rows] = _relaxed_scores(rows, target)
            continue
        near, d2 = screen.scan_rows(rows, n_near, kk)
        out[s : s + block_rows] = np.sqrt(d2[:, :kk]).mean(axis=1)
        if known is not None:
            known.add(blk, near)
    return out
