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

_KERNEL: list[Any] = []  # [descend kernel or None, nearest kernel or None] once looked up


def _descend_kernel_py(x: np.ndarray, x_sq: np.ndarray, row_w: np.ndarray, v: np.ndarray, steps: int,
                       factor: float, eps: float, lo: float, hi: float) -> None:  # pragma: no cover - compiled
    """``steps`` gradient steps on ``v`` in place (no discard), as the numpy loop of
    :meth:`gioselect.divergence.RelaxedKL.descend`.

    One pass over the rows of ``x`` per step: the row's dot product with ``v`` gives its squared distance,
    then the same row (still in the L1 cache) is added into ``X^T c`` with its coefficient; so the target is
    read once per step, not twice (it is memory-bound at text sizes: 860 x 384 float64 is 2.6 MB). Compiled
    with reassociated sums (vectorised dot products, as BLAS's): the last bits differ from numpy's. Row i's
    coefficient is ``row_w[i] / (r_i (r_i + eps))`` (all ones for the plain objective: the same arithmetic;
    negative for the rows of an exclusion set, :class:`RepelledKL`).
    """
    n, d = x.shape
    g = np.empty(d)
    for _ in range(steps):
        vv = 0.0
        for j in range(d):
            vv += v[j] * v[j]
        for j in range(d):
            g[j] = 0.0
        tot = 0.0
        for i in range(n):
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
                kernel = _jit(numba, _descend_kernel_py, fastmath={"reassoc"})
                # reassociated sums (vectorised dot products), like BLAS's: the last bits of a distance may
                # differ from numpy's, an exact tie between two candidates may then break the other way
                _KERNEL.append(_jit(numba, _nearest_kernel_py, fastmath={"reassoc"}))
        _KERNEL.insert(0, kernel)
        if len(_KERNEL) == 1:
            _KERNEL.append(None)
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
