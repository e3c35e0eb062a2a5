"""Yardsticks that judge a selection, and the baselines to judge it against at equal budget.

Why more than one number
------------------------
The k-NN estimate of KL(target || selection) is one-sided: in high dimensions a cluster centre is nearer to
every target point than the target points are to each other, so a selection that hugs the target's cluster
centres scores *better* than a random sample of the target itself (see ``docs/algorithm.md``,
"What the relaxed objective does and does not reward"). A selection is therefore judged two-sided:

* :func:`kl_both_ways` - KL(target || selection) and KL(selection || target), k-NN estimates;
* :func:`mmd2_unbiased` and :func:`energy_distance` - kernel two-sample distances (unbiased U-statistics);
* :func:`coverage` - the share of target points that have a selected point within their own k-NN radius;
* :func:`duplicate_rate`, :func:`label_proportions` / :func:`total_variation` - repeats and class ratios;
* :func:`downstream_accuracy` - a proxy classifier trained on the selection (scikit-learn, optional).

:func:`evaluate_selection` computes all of them in one dict. Always measure against a *held-out* part of the
target (:func:`split_target`), never the part used for selecting: a selection that copies the target it was
fitted to would otherwise look perfect.

Baselines
---------
Every baseline returns int64 pool row indices, ``budget`` of them unless the pool is smaller:

* :func:`random_baseline` - uniform without replacement (seeded);
* :func:`knn_retrieval` - the embedding analogue of the paper's BM25 baseline: round-robin nearest neighbours;
* :func:`kernel_herding` - greedy MMD minimisation (kernel herding without repeats);
* :func:`gioselect.peers.facility_location` (``"facility"``) - greedy facility location over the target
  (clipped cosine similarity, lazy greedy in blocks);
* :func:`gioselect.peers.dsir` (``"dsir"``) - hashed n-gram importance resampling (Xie et al. 2023) on the raw
  *text* of the pool and the target; it is the one method that needs ``pool_texts`` / ``target_texts``;
* :func:`full_pool` - the whole pool.

:data:`BASELINES` maps their names (chosen at the CLI edge) to callables with one signature
``(pool, target, budget, *, seed=0) -> indices`` (the ``"dsir"`` entry also takes ``pool_texts=`` and
``target_texts=`` and refuses to run without them). :func:`compare_methods` runs GIO and the baselines at equal
budgets on a target split into a selecting part and a held-out part, with an oracle line;
:func:`plot_comparison` draws each metric against selection size.

Memory
------
Pairwise sums are computed in blocks of at most ``block_rows x block_rows`` distances; the baselines stream
the pool in blocks of rows and keep only pool-length vectors (never a pool x target matrix).

Layout
------
:mod:`.metrics` holds the yardsticks of one selection and :func:`evaluate_selection`; :mod:`.twosample` the
kernel two-sample distances; :mod:`.baselines` the baselines and :data:`BASELINES`; :mod:`.compare` the
comparison at equal budget; :mod:`.plot` its figure; :mod:`.inputs` the input checks they share. Every name
is importable from ``gioselect.evaluate``.
"""

from __future__ import annotations

from .baselines import BASELINES, Baseline, full_pool, kernel_herding, knn_retrieval, random_baseline
from .compare import COMPARE_METRICS, METHODS, METRIC_DIRECTION, compare_methods, metric_header
from .inputs import pool_shape
from .metrics import (
    coverage,
    downstream_accuracy,
    duplicate_rate,
    evaluate_selection,
    kl_both_ways,
    label_proportions,
    split_target,
    total_variation,
)
from .plot import plot_comparison
from .twosample import DEFAULT_BLOCK_ROWS, MEDIAN_ROWS, energy_distance, median_heuristic, mmd2_unbiased

__all__ = [
    "BASELINES",
    "COMPARE_METRICS",
    "DEFAULT_BLOCK_ROWS",
    "MEDIAN_ROWS",
    "METHODS",
    "METRIC_DIRECTION",
    "Baseline",
    "compare_methods",
    "coverage",
    "downstream_accuracy",
    "duplicate_rate",
    "energy_distance",
    "evaluate_selection",
    "full_pool",
    "kernel_herding",
    "kl_both_ways",
    "knn_retrieval",
    "label_proportions",
    "median_heuristic",
    "metric_header",
    "mmd2_unbiased",
    "plot_comparison",
    "pool_shape",
    "random_baseline",
    "split_target",
    "total_variation",
]
