"""Drop-in replacement for grad-info-opt 0.1.2's ``GIO.GIOKL.GIOKL``, on numpy arrays, with no Spark session.

A user of grad-info-opt switches by changing one import::

    # from GIO import GIOKL            (grad-info-opt)
    from gioselect.compat import GIOKL

    gio_kl = GIOKL(uniform_low=0, uniform_high=8, uniform_start_size=100, dim=2)
    W, kl_divs, _ = gio_kl.fit(X_test, X, normalize=False)

The constructor and ``fit`` keep the reference's parameter names, defaults and return shape
(``W`` with the start points first, the list of KL values, and the state tuple
``(v, scale_factor, just_reset, num_resets, increases, adder, kl_divs)``). What differs, on purpose:

* numpy in and out (jax arrays are accepted as input: anything ``numpy.asarray`` takes);
* nothing is printed; progress goes to the ``gioselect`` loggers;
* randomness is seedable (``seed=`` on the constructor; unseeded by default, like the reference);
* ``max_iter`` keeps the reference's off-by-one (up to ``max_iter + 1`` points are added), so selections have
  the same length;
* two criteria that never fire in the reference work here: ``sequential_increase_tolerance`` stops after
  ``max_sequential_increases`` increases in a row, and ``max_resets`` resets on each increase and stops once
  the resets are used up. ``reference_sequential_bug=True`` / ``reference_max_resets_bug=True`` reproduce the
  reference (run to ``max_iter``);
* inputs are validated and bad ones raise :mod:`gioselect.errors` exceptions.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .divergence import DEFAULT_EPS, RelaxedKL, kl_relaxed
from .errors import InvalidInputError
from .optimize import GIOParams, GIOSearch, single_threaded_blas
from .selector import make_search, validate_fit_inputs
from .validation import check_embeddings, check_int, check_pair, check_real

__all__ = ["GIOKL"]

logger = logging.getLogger(__name__)


class GIOKL:
    """grad-info-opt's ``GIOKL`` on numpy.

    Parameters
    ----------
    uniform_low, uniform_high : float, default -1, 1
        Range of the uniform start points.
    uniform_start_size : int, default 20
        Number of uniform start points (used when neither ``D`` nor ``random_init_pct`` is given).
    dim : int, default 768
        Dimension of the uniform start points; must equal the data's.
    seed : int or numpy.random.Generator, optional
        Seeds every random choice (not in the reference, which is unseeded).
    """

    def __init__(self, uniform_low: float = -1, uniform_high: float = 1, uniform_start_size: int = 20,
                 dim: int = 768, *, seed: int | np.random.Generator | None = None) -> None:
        self.uniform_low = uniform_low
        self.uniform_high = uniform_high
        self.uniform_start_size = uniform_start_size
        self.dim = dim
        self.seed = seed
        self.random_init = False
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def calculate_statistical_distance(self, x: Any, y: Any, k: int = 5, eps: float = DEFAULT_EPS,
                                       discard_nearest_for_xy: bool = False) -> float:
        """The relaxed k-NN estimate of KL(x || y) (see :func:`gioselect.divergence.kl_relaxed`)."""
        return kl_relaxed(x, y, k, discard_nearest_for_xy=discard_nearest_for_xy, eps=eps)

    def gradient_descend(self, X: Any, W: Any, v: Any, scaling_factor: float, max_iterations: int,
                         lr: float = 0.01, k: int = 5, discard_nearest_for_xy: bool = False) -> np.ndarray:
        """``max_iterations`` steps of ``v <- v - lr * scaling_factor * grad`` on KL~(X || W + [v])."""
        x = check_embeddings(X, "X")
        w = check_embeddings(W, "W", dim=x.shape[1])
        v_ = check_embeddings(np.asarray(v).reshape(1, -1), "v", dim=x.shape[1], dtype=np.float64)[0]
        steps = check_int(max_iterations, "max_iterations", low=0)
        if x.shape[0] <= k:
            raise InvalidInputError(f"X: has {x.shape[0]} rows; needs more than k={k}")
        obj = RelaxedKL(x, k, discard_nearest_for_xy=discard_nearest_for_xy)
        obj.reset(w)
        return obj.descend(v_, steps, check_real(lr, "lr"), check_real(scaling_factor, "scaling_factor"))

    def fit(
        self,
        train: Any,
        X: Any,
        D: Any = None,
        k: int = 5,
        max_iter: int = 100,
        stop_criterion: str = "increase",
        min_difference: float = 0,
        resets_allowed: bool = False,
        max_resets: int = 2,
        max_data_size: float = 1,
        min_kl: float = 0,
        max_sequential_increases: int = 3,
        random_init_pct: float = 0,
        random_restart_prob: float = 0,
        scale_factor: float | str = "auto",
        v_init: str = "mean",
        grad_desc_iter: int = 50,
        discard_nearest_for_xy: bool = False,
        normalize: bool = True,
        lr: float = 0.01,
        *,
        reference_sequential_bug: bool = False,
        reference_max_resets_bug: bool = False,
    ) -> tuple[np.ndarray, list[float], tuple[Any, ...]]:
        """Run GIO as grad-info-opt's ``GIOKL.fit`` does (same names, defaults and return shape).

        Returns
        -------
        W : ndarray of shape (m0 + s, d)
            The start set followed by the selected points (drop the first m0 rows for the selection).
        kl_divs : list of float
            The objective after each accepted point.
        state : tuple
            ``(v, scale_factor, just_reset, num_resets, increases, adder, kl_divs)`` where ``adder`` is the
            candidates not yet used.
        """
        params = GIOParams(
            k=k, max_iter=max_iter, stop_criterion=stop_criterion, min_difference=min_difference,
            resets_allowed=resets_allowed, max_resets=max_resets, max_data_size=max_data_size, min_kl=min_kl,
            max_sequential_increases=max_sequential_increases, random_init_pct=random_init_pct,
            random_restart_prob=random_restart_prob, scale_factor=scale_factor, v_init=v_init,
            grad_desc_iter=grad_desc_iter, discard_nearest_for_xy=discard_nearest_for_xy, normalize=normalize,
            lr=lr, uniform_low=self.uniform_low, uniform_high=self.uniform_high,
            uniform_start_size=self.uniform_start_size, start="unit", objective="relaxed", reference_max_iter=True,
            reference_sequential_bug=reference_sequential_bug,
            reference_max_resets_bug=reference_max_resets_bug,
        ).validate(strict=False)
        check_pair(self.uniform_low, self.uniform_high, ("uniform_low", "uniform_high"))
        pool, target, init = validate_fit_inputs(train, X, D, params)
        if D is None and not random_init_pct:
            self.random_init = True
            if pool.shape[1] != self.dim:
                raise InvalidInputError(
                    f"dim={self.dim} (the uniform start's dimension) does not match the data's {pool.shape[1]}"
                )
        with single_threaded_blas():  # the set-up's small products too (BLAS threads only contend here)
            search = make_search(pool, target, params, seed=self._rng, init=init)
            assert isinstance(search, GIOSearch)  # objective="relaxed"
            for _ in search.run():
                pass
        st = search.state
        picks = np.asarray(pool[np.asarray(st.selected, dtype=np.int64)], dtype=pool.dtype)
        W = np.concatenate([search.start_points.astype(pool.dtype, copy=False), picks.reshape(-1, pool.shape[1])])
        kl_divs = [float(x) for x in st.kl_trace]
        adder = np.asarray(pool[~search.cands.used])
        state = (st.v, search.scale, st.just_reset, st.num_resets, st.increases, adder, kl_divs)
        return W, kl_divs, state
