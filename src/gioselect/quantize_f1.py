"""The F1 size rule's count per cluster on a quantised run (re-exported by :mod:`gioselect.quantize`).

Under the F1 rule (:class:`gioselect.search.F1Sizer`) a chosen cluster stands for its rows, not for its candidate
point: it counts its size times the mean posterior of the pool rows of one seeded uniform sample that fell in it.
The job's select phase draws the sample and calls :func:`cluster_target_like` (``gioselect.job.phases``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["F1_MAX_SAMPLE_ROWS", "F1_ROWS_PER_CLUSTER", "cluster_target_like"]

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
