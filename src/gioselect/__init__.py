"""gioselect: training-data selection with GIO (Gradient Information Optimization).

Pick the subset of a large candidate pool whose distribution is closest to a small target set, by greedily
minimising a k-nearest-neighbour estimate of KL(target || selection) (Everaert & Potts, arXiv 2306.11670).

Public API
----------
GIOSelector, select, GIOResult
    The estimator and its functional form.
kl_knn, kl_relaxed
    The exact (Wang-Kulkarni-Verdu) and relaxed k-NN KL estimators.
gioselect.compat.GIOKL
    Drop-in replacement for grad-info-opt's ``GIOKL``.
gioselect.checks
    The paper's consistency checks.
"""

from __future__ import annotations

import logging

from .divergence import kl_knn, kl_relaxed
from .errors import (
    GIOError,
    InvalidInputError,
    InvalidParameterError,
    InvalidTypeError,
    MissingDependencyError,
    NotFittedError,
)
from .selector import GIOResult, GIOSelector, select, select_quantized
from .sizing import SizeEstimate, estimate_target_rows

__version__ = "0.1.0"

__all__ = [
    "GIOError",
    "GIOResult",
    "GIOSelector",
    "InvalidInputError",
    "InvalidParameterError",
    "InvalidTypeError",
    "MissingDependencyError",
    "NotFittedError",
    "SizeEstimate",
    "__version__",
    "estimate_target_rows",
    "kl_knn",
    "kl_relaxed",
    "select",
    "select_quantized",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
