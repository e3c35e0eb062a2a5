"""The F1 size rule on a quantised run (re-exported by :mod:`gioselect.quantize`).

Two steps. Under the F1 rule (:class:`gioselect.search.F1Sizer`) a chosen cluster stands for its rows, not for its
candidate point: it counts its size times the mean posterior of the pool rows of one seeded uniform sample that
fell in it (:func:`cluster_target_like`; the job's select phase draws the sample, ``gioselect.job.phases``). The
argmax of that cluster-level F1 says how far GIO goes: on until its picks hold the row-level pass's ``over`` times
that size. Then the row-level pass ranks the rows of those clusters, and :class:`RowF1` applies the unquantised
run's rule to the ranking (the largest prefix within ``F1_TOLERANCE`` of the best estimated F1, each row counting
its own posterior): that prefix is the selection. So the size is set by rows, as an unquantised run's is, and no
longer by whole clusters (EXPERIMENTS.md, "The size of a quantised run set by rows").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .sizing import F1_TOLERANCE, F1Prefix, sampled_curve

__all__ = ["F1_MAX_SAMPLE_ROWS", "F1_ROWS_PER_CLUSTER", "RowF1", "cluster_target_like"]

#: Pool rows per cluster (on average) that the F1 rule's cluster weights are averaged over
#: (:func:`cluster_target_like`): a seeded uniform sample of ``F1_ROWS_PER_CLUSTER * K`` pool rows. 0: each
#: cluster counts its candidate's posterior times its size instead (EXPERIMENTS.md, "Quantised selection").
F1_ROWS_PER_CLUSTER = 16
#: ... and at most this many rows in all (about 150 MB at 384-D float32), however large K is.
F1_MAX_SAMPLE_ROWS = 100_000


def cluster_target_like(sample_posteriors: np.ndarray, sample_clusters: np.ndarray,
                        candidate_posteriors: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Each cluster's expected number of target-like rows, for the F1 rule on a quantised run.

    A cluster stands for its rows, not for its candidate point: its count is its size times the mean posterior
    of the sampled pool rows that fell in it (``sample_posteriors``, ``sample_clusters``: a uniform sample's
    posteriors and clusters). A cluster no sampled row fell in counts its candidate's posterior times its size.

    Parameters
    ----------
    sample_posteriors : numpy.ndarray
        Posterior (in [0, 1]) of each sampled pool row, shape (s,).
    sample_clusters : numpy.ndarray
        Cluster (index into ``sizes``) of each sampled row, shape (s,).
    candidate_posteriors : numpy.ndarray
        Posterior of each cluster's candidate point, shape (K,).
    sizes : numpy.ndarray
        Rows in each cluster, shape (K,).

    Returns
    -------
    numpy.ndarray
        float64, shape (K,), each in [0, size].
    """
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1)
    k = sizes.shape[0]
    lab = np.asarray(sample_clusters, dtype=np.int64).reshape(-1)
    post = np.asarray(sample_posteriors, dtype=np.float64).reshape(-1)
    if lab.shape != post.shape:
        raise ValueError(f"cluster_target_like: {post.shape[0]} posteriors for {lab.shape[0]} sampled rows")
    if lab.size and (lab.min() < 0 or lab.max() >= k):
        raise ValueError(f"cluster_target_like: a sampled row's cluster is outside [0, {k})")
    total = np.bincount(lab, weights=post, minlength=k)
    count = np.bincount(lab, minlength=k)
    cand = np.asarray(candidate_posteriors, dtype=np.float64).reshape(-1)
    mean = np.where(count > 0, total / np.maximum(count, 1), cand)
    return np.asarray(np.clip(mean, 0.0, 1.0) * sizes, dtype=np.float64)


class RowF1:
    """The F1 rule along the row-level pass's ranking of the rows it read (a quantised run with the automatic size).

    ``posterior(rows)`` gives each row's posterior (:meth:`gioselect.sizing.SizeEstimate.posteriors`), ``total``
    the pool's target-like total ``W``. The pass (:func:`gioselect.quantize.refine`) feeds it the rows in its order,
    best first (:meth:`add`), and stops once :attr:`done`; the selection is the first :attr:`kept` rows. The rule
    is :class:`gioselect.sizing.F1Prefix`'s with the unquantised run's tolerance (``F1_TOLERANCE``) and patience.
    """

    def __init__(self, posterior: Callable[[np.ndarray], np.ndarray], total: float,
                 tolerance: float = F1_TOLERANCE) -> None:
        self.posterior = posterior
        self.prefix = F1Prefix(total, tolerance=tolerance)
        self.weights: list[float] = []
        self.how = ""  # the pass that ranked the rows (set by refine)
        self.read = 0  # rows the pass read

    def add(self, weights: np.ndarray) -> bool:
        """Count rows with these posteriors, in the pass's order, until :attr:`done`; returns :attr:`done`."""
        for w in np.asarray(weights, dtype=np.float64).reshape(-1):
            if self.prefix.done:
                break
            self.prefix.add(float(w))
            self.weights.append(float(w))
        return self.prefix.done

    @property
    def done(self) -> bool:
        return self.prefix.done

    @property
    def kept(self) -> int:
        """Rows of the selection: the kept prefix (0 when nothing in it looks like the target)."""
        return round(self.prefix.kept_rows)

    def record(self, clusters: dict[str, Any], points: int = 200) -> dict[str, Any]:
        """The size's record (``size_estimate.f1``): :meth:`gioselect.sizing.F1Prefix.as_dict` along the ranked rows
        (``picks`` count rows here), its ``curve`` (at most ``points`` evenly spaced rows, with the argmax, the kept
        prefix and the last), ``reason``, and ``clusters``, the cluster-level rule's record that set how far GIO
        went."""
        f = self.prefix.as_dict()
        f["rule"] = "f1_along_row_pass"
        f["curve"] = sampled_curve(np.asarray(self.weights), self.prefix.total, points=points,
                                   marks=(max(self.prefix.best_picks - 1, 0), max(self.prefix.last_picks - 1, 0)))
        why = (f"F1 had stayed more than {100 * self.prefix.tolerance:g}% below its best for "
               f"{f['ran_picks'] - self.prefix.last_picks} rows" if self.done
               else f"the pass's {self.read} rows ran out")
        head = (f"auto: nothing selected: no row the {self.how} pass ranked looks like the target (best prefix "
                f"{f['argmax_rows']} rows, {f['best_target_like']:.2f} expected target-like rows)" if f["empty"] else
                f"auto: largest prefix of the {self.how} pass's ranking within {100 * self.prefix.tolerance:g}% of the "
                f"best estimated F1, n={f['best_rows']} (F1 {f['best_f1']:.3f}; best {f['argmax_f1']:.3f} at "
                f"n={f['argmax_rows']}; target-like total {f['target_like_total']:.1f})")
        f["reason"] = (f"{head}; ranked {f['ran_rows']} of the {self.read} rows read ({why}); the pass read the "
                       f"clusters GIO chose up to its over x the cluster-level size {clusters.get('best_rows')}")
        f["clusters"] = dict(clusters)
        return f
