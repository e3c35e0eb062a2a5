"""The yardsticks of one selection: the held-out split, two-sided k-NN KL, coverage, repeats, class shares,
the downstream proxy classifier, and :func:`evaluate_selection`, which computes them all in one dict."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import numpy as np

from ..divergence import kl_knn, knn_distances
from ..errors import InvalidInputError, InvalidParameterError, InvalidTypeError, MissingDependencyError
from ..validation import check_choice, check_embeddings, check_int, check_real
from .inputs import check_indices, check_labels, check_selection, pool_shape, take_rows
from .twosample import MEDIAN_ROWS, energy_distance, median_of_union, mmd2_unbiased

logger = logging.getLogger(__name__)

_EXPERIMENTS_HINT = "pip install 'gioselect[experiments]'"
_MODELS = ("logreg", "knn")


def split_target(target: np.ndarray, holdout: float = 0.5, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split the target's rows into a part to select with and a held-out part to measure against.

    Parameters
    ----------
    target : array of shape (n, d), n >= 2
        Only its number of rows is used.
    holdout : float in (0, 1), default 0.5
        Share of rows held out; rounded, and at least one row goes to each part.
    seed : int, default 0

    Returns
    -------
    (select_idx, holdout_idx) : two sorted int64 arrays of row indices, disjoint, together ``0..n-1``.
    """
    shape = np.shape(target)
    if len(shape) < 1:
        raise InvalidInputError("target: expected an array of rows, got a scalar")
    n = int(shape[0])
    if n < 2:
        raise InvalidInputError(f"target: has {n} row(s); splitting needs at least 2")
    h = check_real(holdout, "holdout", low=0.0, high=1.0, low_open=True, high_open=True)
    rng = np.random.default_rng(check_int(seed, "seed", low=0))
    n_hold = min(max(round(h * n), 1), n - 1)
    perm = rng.permutation(n)
    return np.sort(perm[n_hold:]).astype(np.int64), np.sort(perm[:n_hold]).astype(np.int64)


def kl_both_ways(target: np.ndarray, selection: np.ndarray, k: int = 5) -> dict[str, float]:
    """k-NN estimates of KL(target || selection) and KL(selection || target).

    Parameters
    ----------
    target : array of shape (n, d)
        Held-out target rows.
    selection : array of shape (m, d)
        The selected rows (0 rows allowed). Duplicate rows make k-NN distances zero (floored at
        :data:`gioselect.divergence.MIN_DIST`) and blow up the estimate: pass distinct rows.
    k : int, default 5

    Returns
    -------
    dict
        ``{"kl_target_sel": KL(target||selection), "kl_sel_target": KL(selection||target)}`` by
        :func:`gioselect.divergence.kl_knn`. KL(a || b) needs more than k rows in ``a`` and at least k in
        ``b``; when that fails the value is NaN and a warning is logged saying why.
    """
    k_ = check_int(k, "k", low=1)
    x = check_embeddings(target, "target")
    s = check_selection(selection, x.shape[1])
    out: dict[str, float] = {}
    for key, (a, an), (b, bn) in (
        ("kl_target_sel", (x, "target"), (s, "selection")),
        ("kl_sel_target", (s, "selection"), (x, "target")),
    ):
        if a.shape[0] <= k_ or b.shape[0] < k_:
            logger.warning(
                "%s is NaN: KL(%s || %s) needs more than k=%d %s rows and at least k %s rows; have %d and %d",
                key, an, bn, k_, an, bn, a.shape[0], b.shape[0],
            )
            out[key] = math.nan
        else:
            out[key] = kl_knn(a, b, k_)
    return out


def coverage(target: Any, selection: Any, k: int = 5) -> float:
    """Share of target points that have a selected point within their own k-NN radius.

    Target point ``x_i`` is covered when its nearest selected point is no farther than ``rho_k(i)``, its k-th
    nearest neighbour among the other target points (:func:`gioselect.divergence.knn_distances` with
    ``exclude_self``). Distances are floored at ``MIN_DIST``, so a selection containing the target covers it.

    Parameters
    ----------
    target : array of shape (n, d), n > k
    selection : array of shape (m, d), m >= 1
    k : int, default 5

    Returns
    -------
    float in [0, 1]
    """
    k_ = check_int(k, "k", low=1)
    x = check_embeddings(target, "target")
    if x.shape[0] <= k_:
        raise InvalidInputError(f"target: has {x.shape[0]} rows; coverage with k={k_} needs more than k")
    s = check_embeddings(selection, "selection", dim=x.shape[1])
    rho = knn_distances(x, x, k_, exclude_self=True)[:, -1]
    near = knn_distances(x, s, 1)[:, 0]
    return float(np.mean(near <= rho))


def duplicate_rate(indices: Any) -> float:
    """Share of picks that repeat an earlier pick: ``1 - distinct / len``; 0.0 for no picks.

    Parameters
    ----------
    indices : 1-D array of int
    """
    a = np.asarray(indices)
    if a.ndim != 1:
        raise InvalidInputError(f"indices: expected a 1-D array, got shape {a.shape}")
    if a.size == 0:
        return 0.0
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise InvalidTypeError(f"indices: expected integer indices, got dtype {a.dtype}")
    return 1.0 - np.unique(a).size / a.size


def label_proportions(labels_of_selection: Any, classes: Iterable[Hashable]) -> dict[Any, float]:
    """Share of each class among the selection's labels.

    Parameters
    ----------
    labels_of_selection : 1-D array
        One label per pick (repeat picks count again: this is the training set's composition).
    classes : iterable
        Every class to report, including ones with no pick (they get 0.0).

    Returns
    -------
    dict
        ``{class: share}`` in the order of ``classes``; every share NaN (logged) for an empty selection.

    Raises
    ------
    InvalidInputError
        A label that is not in ``classes`` (the first one and its position are named).
    """
    lab = np.asarray(labels_of_selection)
    if lab.ndim != 1:
        raise InvalidInputError(f"labels_of_selection: expected a 1-D array of labels, got shape {lab.shape}")
    cls = list(np.asarray(list(classes)).tolist())
    if len(set(cls)) != len(cls):
        raise InvalidInputError("classes: contains duplicates")
    if lab.size == 0:
        logger.warning("label proportions of an empty selection are undefined (NaN)")
        return {c: math.nan for c in cls}
    values, counts = np.unique(lab, return_counts=True)
    known = set(cls)
    for v in values.tolist():
        if v not in known:
            pos = int(np.flatnonzero(lab == np.asarray(v, dtype=lab.dtype))[0])
            raise InvalidInputError(f"labels_of_selection: position {pos} holds {v!r}, which is not in classes")
    count = dict(zip(values.tolist(), counts.tolist(), strict=True))
    return {c: count.get(c, 0) / lab.size for c in cls}


def total_variation(p: Mapping[Any, float], q: Mapping[Any, float]) -> float:
    """Total-variation distance ``0.5 * sum_c |p_c - q_c|`` between two class-share dicts.

    A class missing from one dict counts as 0 there. In [0, 1] for proportions; NaN if either holds NaN.
    """
    keys = list(p) + [c for c in q if c not in p]
    return 0.5 * float(sum(abs(float(p.get(c, 0.0)) - float(q.get(c, 0.0))) for c in keys))


def downstream_accuracy(train_x: Any, train_y: Any, test_x: Any, test_y: Any, *, model: str = "logreg",
                        seed: int = 0) -> float:
    """Accuracy on (test_x, test_y) of a small classifier trained on (train_x, train_y).

    Parameters
    ----------
    train_x : array of shape (s, d), s >= 1
        For example the selected pool rows.
    train_y : 1-D array of length s
    test_x : array of shape (t, d)
    test_y : 1-D array of length t
    model : {"logreg", "knn"}, default "logreg"
        ``"logreg"``: standardised features then ``LogisticRegression(max_iter=5000)``; ``"knn"``:
        ``KNeighborsClassifier(n_neighbors=min(5, s))`` on the raw embeddings.
    seed : int, default 0
        ``random_state`` of the model.

    Returns
    -------
    float
        Share of correct test predictions. A training set with a single class gives the accuracy of always
        predicting that class (no model is fitted).

    Raises
    ------
    MissingDependencyError
        scikit-learn is not installed (``pip install 'gioselect[experiments]'``).
    """
    m = check_choice(model, "model", _MODELS)
    sd = check_int(seed, "seed", low=0)
    tx = check_embeddings(train_x, "train_x")
    ty = check_labels(train_y, tx.shape[0], "train_y", "train_x")
    vx = check_embeddings(test_x, "test_x", dim=tx.shape[1])
    vy = check_labels(test_y, vx.shape[0], "test_y", "test_x")
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as exc:
        raise MissingDependencyError(
            f"downstream_accuracy needs scikit-learn; install it with `{_EXPERIMENTS_HINT}`"
        ) from exc
    classes = np.unique(ty)
    if classes.size == 1:
        logger.info("downstream accuracy: the training set has one class (%r); predicting it always",
                    classes[0])
        return float(np.mean(vy == classes[0]))
    clf: Any
    if m == "logreg":
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=sd))
    else:
        clf = KNeighborsClassifier(n_neighbors=min(5, tx.shape[0]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(tx, ty)
        pred = clf.predict(vx)
    for w in caught:  # the library logs, it does not warn
        logger.warning("downstream accuracy (%s): %s", m, w.message)
    return float(np.mean(pred == vy))


def evaluate_selection(
    pool: Any,
    indices: Any,
    target_holdout: Any,
    *,
    k: int = 5,
    labels: Any = None,
    test_x: Any = None,
    test_y: Any = None,
    seed: int = 0,
    target_labels: Any = None,
    model: str = "logreg",
    max_rows: int = 5000,
) -> dict[str, Any]:
    """Every yardstick of :mod:`gioselect.evaluate` for one selection, in one dict.

    Parameters
    ----------
    pool : array of shape (M, d)
        The candidate pool (a memory map is fine: only the selected rows are read).
    indices : 1-D int array
        The selection, pool row numbers (repeats allowed).
    target_holdout : array of shape (n, d), n >= 2
        Held-out target rows (:func:`split_target`), never the rows the selection was made from.
    k : int, default 5
        Neighbour rank of the KL estimates and of coverage.
    labels : 1-D array of length M, optional
        Pool labels: gives ``label_proportions`` (and ``label_tv`` with ``target_labels``), and is needed for
        the downstream accuracy.
    test_x, test_y : optional
        Labelled test data (target-like): gives ``downstream_accuracy`` of ``model`` trained on the picks.
    seed : int, default 0
        Seeds the bandwidth sample, the subsamples of the two-sample statistics and the model.
    target_labels : 1-D array of length n, optional
        Labels of ``target_holdout``, for the class-ratio comparison.
    model : {"logreg", "knn"}, default "logreg"
    max_rows : int, default 5000
        Subsample size per side for MMD and energy distance.

    Returns
    -------
    dict
        ``size`` (picks), ``n_distinct``, ``duplicate_rate``, ``kl_target_sel``, ``kl_sel_target``,
        ``bandwidth`` (median heuristic of the held-out target, fixed so MMDs of different selections against
        one target compare), ``mmd2``, ``energy``, ``coverage``; with labels ``label_proportions``
        (and ``target_label_proportions``, ``label_tv``); with test data ``downstream_accuracy``.
        The distribution metrics use the distinct picks (a repeated row would make k-NN distances 0); class
        shares and the downstream model use the picks as given (the training set, repeats included).
        A metric that cannot be computed on this selection (too few rows) is NaN, with a logged reason.
    """
    pool_a, n_pool, dim = pool_shape(pool, "pool")
    idx = check_indices(indices, n_pool)
    k_ = check_int(k, "k", low=1)
    sd = check_int(seed, "seed", low=0)
    check_choice(model, "model", _MODELS)
    x = check_embeddings(target_holdout, "target_holdout", dim=dim, min_rows=2)
    if (test_x is None) != (test_y is None):
        raise InvalidParameterError("test_x and test_y must be given together")
    if test_x is not None and labels is None:
        raise InvalidParameterError("downstream accuracy (test_x, test_y) needs labels: one per pool row")

    distinct, inverse = np.unique(idx, return_inverse=True)
    sel = take_rows(pool_a, distinct, dim)
    out: dict[str, Any] = {
        "size": int(idx.size),
        "n_distinct": int(distinct.size),
        "duplicate_rate": duplicate_rate(idx),
    }
    out.update(kl_both_ways(x, sel, k_))
    h = median_of_union(x, None, MEDIAN_ROWS, np.random.default_rng(sd))
    out["bandwidth"] = h
    if sel.shape[0] >= 2:
        out["mmd2"] = mmd2_unbiased(x, sel, bandwidth=h, max_rows=max_rows, seed=sd)
        out["energy"] = energy_distance(x, sel, max_rows=max_rows, seed=sd)
    else:
        logger.warning("mmd2 and energy are NaN: they need at least 2 distinct selected rows, have %d",
                       sel.shape[0])
        out["mmd2"] = out["energy"] = math.nan
    if sel.shape[0] >= 1 and x.shape[0] > k_:
        out["coverage"] = coverage(x, sel, k_)
    else:
        logger.warning("coverage is NaN: it needs a selected row and more than k=%d held-out target rows "
                       "(have %d and %d)", k_, sel.shape[0], x.shape[0])
        out["coverage"] = math.nan

    if labels is not None:
        lab = check_labels(labels, n_pool, "labels", "pool")
        sel_lab = lab[idx]
        extra = [np.asarray(a) for a in (target_labels, test_y) if a is not None]
        classes = np.unique(np.concatenate([np.unique(lab), *[np.unique(e) for e in extra]]))
        out["label_proportions"] = label_proportions(sel_lab, classes)
        if target_labels is not None:
            tl = check_labels(target_labels, x.shape[0], "target_labels", "target_holdout")
            out["target_label_proportions"] = label_proportions(tl, classes)
            out["label_tv"] = total_variation(out["label_proportions"], out["target_label_proportions"])
        if test_x is not None:
            if idx.size == 0:
                logger.warning("downstream_accuracy is NaN: the selection is empty")
                out["downstream_accuracy"] = math.nan
            else:
                out["downstream_accuracy"] = downstream_accuracy(sel[inverse], sel_lab, test_x, test_y,
                                                                 model=model, seed=sd)
    elif target_labels is not None:
        raise InvalidParameterError("target_labels need labels (one per pool row) to compare against")
    return out
