"""The compiled (numba) loops of GIO's search: the gradient descent of one pick and the nearest unused candidate.

Optional: without numba (the ``fast`` extra), or with ``GIOSELECT_NO_NUMBA=1``, the getters here return None
and the callers (:meth:`gioselect.divergence.RelaxedKL.descend`, :class:`gioselect.optimize.CandidateSet`) run
the same arithmetic in numpy.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

_KERNEL: list[Any] = []  # [descend, nearest, point, pick kernel], each None without numba, once looked up


def _descend_kernel_py(x: np.ndarray, x_sq: np.ndarray, row_w: np.ndarray, v: np.ndarray, steps: int,
                       factor: float, eps: float, lo: float, hi: float) -> None:  # pragma: no cover - compiled
    """``steps`` gradient steps on ``v`` in place (no discard), as the numpy loop of
    :meth:`gioselect.divergence.RelaxedKL.descend`.

    One pass over the rows of ``x`` per step, four rows at a time: their four dot products with ``v`` (four
    independent sums, so the FMA units are not waiting on one chain) give their squared distances, then the
    same four rows (still in the L1 cache) are added into ``X^T c`` with their coefficients in one sweep of
    ``X^T c``; so the target is read once per step, not twice (it is memory-bound at text sizes: 860 x 384
    float64 is 2.6 MB; :class:`RelaxedKL` passes a float32 ``x`` when that holds the target exactly, each value
    widened to the same float64 as it is read, so the same bits from half the bytes). Rows left over (``n mod 4``)
    go one at a time. Compiled with reassociated sums
    (vectorised dot products, as BLAS's; float64 throughout): the last bits differ from numpy's. Row i's
    coefficient is ``row_w[i] / (r_i (r_i + eps))`` (all ones for the plain objective: the same arithmetic;
    negative for the rows of an exclusion set, :class:`RepelledKL`); a clipped distance (outside ``(lo, hi)``)
    has zero derivative, so its coefficient is 0 (``x`` is finite, so ``0 * x`` adds nothing).
    """
    n, d = x.shape
    g = np.empty(d)
    n4 = n - n % 4
    for _ in range(steps):
        vv = 0.0
        for j in range(d):
            vv += v[j] * v[j]
        for j in range(d):
            g[j] = 0.0
        tot = 0.0
        for i in range(0, n4, 4):
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            a3 = 0.0
            for j in range(d):
                vj = v[j]
                a0 += x[i, j] * vj
                a1 += x[i + 1, j] * vj
                a2 += x[i + 2, j] * vj
                a3 += x[i + 3, j] * vj
            s0 = x_sq[i] - 2.0 * a0 + vv
            s1 = x_sq[i + 1] - 2.0 * a1 + vv
            s2 = x_sq[i + 2] - 2.0 * a2 + vv
            s3 = x_sq[i + 3] - 2.0 * a3 + vv
            c0 = row_w[i] / (s0 + eps * math.sqrt(s0)) if lo < s0 < hi else 0.0
            c1 = row_w[i + 1] / (s1 + eps * math.sqrt(s1)) if lo < s1 < hi else 0.0
            c2 = row_w[i + 2] / (s2 + eps * math.sqrt(s2)) if lo < s2 < hi else 0.0
            c3 = row_w[i + 3] / (s3 + eps * math.sqrt(s3)) if lo < s3 < hi else 0.0
            tot += (c0 + c1) + (c2 + c3)
            for j in range(d):
                g[j] += (x[i, j] * c0 + x[i + 1, j] * c1) + (x[i + 2, j] * c2 + x[i + 3, j] * c3)
        for i in range(n4, n):
            a = 0.0
            for j in range(d):
                a += x[i, j] * v[j]
            si = x_sq[i] - 2.0 * a + vv
            if lo < si < hi:  # clipped distances have zero derivative (as the clip in RelaxedKL.gradient)
                c = row_w[i] / (si + eps * math.sqrt(si))
                tot += c
                for j in range(d):
                    g[j] += x[i, j] * c
        for j in range(d):
            v[j] -= factor * (v[j] * tot - g[j])


def _nearest_kernel_py(points: np.ndarray, sq_norms: np.ndarray, used: np.ndarray,
                       v: np.ndarray) -> tuple[int, float]:  # pragma: no cover - compiled
    """``(i, d)``: the unused row of ``points`` nearest to ``v`` by ``|p|^2 - 2 p.v + |v|^2`` (float64 sums;
    the lowest index on ties), ``(-1, inf)`` when every row is used. One pass, no temporary."""
    n, d = points.shape
    vv = 0.0
    for j in range(d):
        vv += v[j] * v[j]
    best_i, best_d = -1, np.inf
    for i in range(n):
        if used[i]:
            continue
        a = 0.0
        for j in range(d):
            a += np.float64(points[i, j]) * v[j]
        di = sq_norms[i] - 2.0 * a + vv
        if di < best_d:
            best_i, best_d = i, di
    return best_i, best_d


def _point_kernel_py(x: np.ndarray, x_sq: np.ndarray, p: np.ndarray, eps: float, lo: float, hi: float,
                     out: np.ndarray) -> float:  # pragma: no cover - compiled
    """The clipped squared distances from every row of ``x`` to ``p`` into ``out`` (as
    :meth:`gioselect.divergence.RelaxedKL.sq_dists`), and ``sum_i log(sqrt(out[i]) + eps)`` returned (as its
    log-distance sum): the per-pick work of the search in one pass instead of about ten numpy calls."""
    n, d = x.shape
    pp = 0.0
    for j in range(d):
        pp += p[j] * p[j]
    total = 0.0
    for i in range(n):
        a = 0.0
        for j in range(d):
            a += x[i, j] * p[j]
        si = min(max(x_sq[i] - 2.0 * a + pp, lo), hi)
        out[i] = si
        total += math.log(math.sqrt(si) + eps)
    return total


# The compiled kernels the one-pick kernel calls (set when numba compiles them; numba reads globals at compile
# time, and a module-level function, unlike a closure, can be cached on disk).
_DESCEND_C: Any = None
_NEAREST_C: Any = None
_POINT_C: Any = None


def _pick_kernel_py(x: np.ndarray, x_sq: np.ndarray, row_w: np.ndarray, v: np.ndarray, steps: int, factor: float,
                    eps: float, lo: float, hi: float, points: np.ndarray, sq_norms: np.ndarray, used: np.ndarray,
                    p: np.ndarray, out: np.ndarray) -> tuple[int, float]:  # pragma: no cover - compiled
    """One pick of the search in one compiled call: :func:`_descend_kernel_py` on ``v`` in place, then
    :func:`_nearest_kernel_py` (the unused candidate nearest to it; -1 if none), that candidate as float64 into
    ``p`` and :func:`_point_kernel_py` of it into ``out``; returns ``(i, log-distance sum)``. The same compiled
    functions as the separate calls, so the same bits, without the trips through Python between them."""
    _DESCEND_C(x, x_sq, row_w, v, steps, factor, eps, lo, hi)
    i = _NEAREST_C(points, sq_norms, used, v)[0]
    if i < 0:
        return i, 0.0
    for j in range(points.shape[1]):
        p[j] = np.float64(points[i, j])
    return i, _POINT_C(x, x_sq, p, eps, lo, hi, out)


def fast_descend_kernel() -> Any:
    """The numba-compiled :func:`_descend_kernel_py`, or None when numba is not installed (or disabled with
    ``GIOSELECT_NO_NUMBA=1``). Compiled on first use (about a second; cached on disk by numba when it can)."""
    if not _KERNEL:
        kernel = None
        if os.environ.get("GIOSELECT_NO_NUMBA", "") in ("", "0"):
            try:
                import numba
            except ImportError:
                logger.debug("numba not installed: GIO's gradient loop runs in numpy (pip install 'gioselect[fast]')")
            else:
                # reassociated sums (vectorised dot products), like BLAS's, and for the gradient loop and the
                # point pass fused multiply-adds (contract: one rounding instead of two, ~1.2x on the loop): the
                # last bits of a distance may differ from numpy's, an exact tie between two candidates may then
                # break the other way. The nearest-candidate pass, which decides the pick, keeps separate
                # multiplies and adds.
                kernel = _jit(numba, _descend_kernel_py, fastmath={"reassoc", "contract"})
                nearest = _jit(numba, _nearest_kernel_py, fastmath={"reassoc"})
                point = _jit(numba, _point_kernel_py, fastmath={"reassoc", "contract"})
                global _DESCEND_C, _NEAREST_C, _POINT_C
                _DESCEND_C, _NEAREST_C, _POINT_C = kernel, nearest, point
                _KERNEL.extend([nearest, point, _jit(numba, _pick_kernel_py)])
        _KERNEL.insert(0, kernel)
        if len(_KERNEL) == 1:
            _KERNEL.extend([None, None, None])
    return _KERNEL[0]


def _jit(numba: Any, func: Any, **options: Any) -> Any:
    try:
        return numba.njit(cache=True, nogil=True, **options)(func)
    except RuntimeError:  # no writable cache location: compile in every process instead
        return numba.njit(nogil=True, **options)(func)


def fast_nearest_kernel() -> Any:
    """The compiled :func:`_nearest_kernel_py` (for :class:`gioselect.optimize.CandidateSet`), or None."""
    fast_descend_kernel()
    return _KERNEL[1]


def fast_path_available() -> bool:
    """True when GIO's gradient loop runs compiled (numba importable and not disabled)."""
    return fast_descend_kernel() is not None


def fast_point_kernel() -> Any:
    """The compiled :func:`_point_kernel_py` (for :meth:`gioselect.divergence.RelaxedKL.sq_dists`), or None."""
    fast_descend_kernel()
    return _KERNEL[2]


def fast_pick_kernel() -> Any:
    """The compiled one-pick kernel (descent, nearest unused candidate, point pass; for
    :meth:`gioselect.divergence.RelaxedKL.descend_and_pick`), or None."""
    fast_descend_kernel()
    return _KERNEL[3]
