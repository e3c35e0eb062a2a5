"""GIO and the baselines at equal budgets, measured on a held-out part of the target (:func:`compare_methods`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError
from ..peers import dsir
from ..validation import check_embeddings, check_int
from .baselines import BASELINES, DSIR_NEEDS_TEXT, full_pool, random_baseline
from .inputs import check_labels, pool_shape
from .metrics import evaluate_selection, split_target

#: Metrics reported per method and size (numeric keys of evaluate_selection).
COMPARE_METRICS = ("kl_target_sel", "kl_sel_target", "mmd2", "energy", "coverage", "duplicate_rate",
                   "downstream_accuracy", "label_tv")
METHODS = ("gio", "random", "knn", "herding", "facility", "dsir", "full")
METRIC_DIRECTION = {"kl_target_sel": "lower", "kl_sel_target": "lower", "mmd2": "lower", "energy": "lower",
                    "coverage": "higher", "duplicate_rate": "lower", "downstream_accuracy": "higher",
                    "label_tv": "lower"}
"""Which way is better for each metric of :data:`COMPARE_METRICS`."""


def metric_header(metric: str) -> str:
    """The metric's name with an arrow saying which way is better (``mmd2 ↓``, ``coverage ↑``)."""
    d = METRIC_DIRECTION.get(metric)
    return metric if d is None else f"{metric} {'↓' if d == 'lower' else '↑'}"


def _numeric(d: Mapping[str, Any]) -> dict[str, float]:
    return {m: float(d[m]) for m in COMPARE_METRICS if m in d and d[m] is not None}


def compare_methods(
    pool: Any,
    target: Any,
    *,
    methods: Sequence[str] = ("gio", "random", "knn", "herding"),
    sizes: Sequence[int] | None = None,
    holdout: float = 0.5,
    gio_params: Mapping[str, Any] | None = None,
    clusters: int = 0,
    random_seeds: int = 5,
    pool_labels: Any = None,
    target_labels: Any = None,
    k: int = 5,
    seed: int = 0,
    max_rows: int = 5000,
    progress: Callable[[str], None] | None = None,
    pool_texts: Sequence[str] | None = None,
    target_texts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Select with each method at equal budgets and measure every yardstick on a held-out part of the target.

    The target is split (``holdout`` share, seeded) into a part the methods select with and a held-out part the
    metrics use. GIO (:func:`gioselect.selector.select_quantized` with ``gio_params`` and ``clusters``) runs
    first; without ``sizes`` the budget is GIO's own selection size. Greedy methods (gio, knn, herding,
    facility) and dsir (whose Gumbel top-k order makes every prefix a sample without replacement) are
    measured on prefixes of one run at the largest size; ``random`` is averaged over ``random_seeds`` seeds
    (mean and std); ``full`` is the whole pool; the ``oracle`` line is random subsets of the selecting part of
    the target itself (target-like data the methods never saw), capped at its size.

    With ``pool_labels`` and ``target_labels`` the downstream proxy (a classifier trained on the selection,
    scored on the held-out target) and the label total variation are included.

    ``dsir`` selects by the raw text, so it needs ``pool_texts`` (one per pool row) and ``target_texts`` (one
    per target row; the same split applies to them); without them it raises :class:`InvalidParameterError`.
    Its rows are still measured by their embeddings.

    Returns
    -------
    dict
        ``{"sizes", "split": {...}, "methods": {name: [{"size", metrics..., "<metric>_std"...}, ...]},
        "gio": {...}}``.
    """
    from ..selector import select_quantized

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InvalidParameterError(f"methods: unknown {unknown}; choose from {', '.join(METHODS)}")
    pool_, n_pool, dim = pool_shape(pool, "pool")
    target_ = check_embeddings(target, "target", dim=dim)
    if "dsir" in methods:
        if pool_texts is None or target_texts is None:
            raise InvalidParameterError(DSIR_NEEDS_TEXT)
        pool_texts = list(pool_texts)
        target_texts = list(target_texts)
        for name, texts, n_rows, what in (("pool_texts", pool_texts, n_pool, "pool"),
                                          ("target_texts", target_texts, target_.shape[0], "target")):
            if len(texts) != n_rows:
                raise InvalidInputError(f"{name}: has {len(texts)} texts, expected {n_rows} (one per {what} row)")
    sel_idx, hold_idx = split_target(target_, holdout, seed=seed)
    gio_k = int(dict(gio_params or {}).get("k", 5))
    if ("gio" in methods or sizes is None) and sel_idx.shape[0] <= gio_k:
        raise InvalidInputError(
            f"target: its {target_.shape[0]} rows split with holdout={holdout:g} leave {sel_idx.shape[0]} to select "
            f"with and {hold_idx.shape[0]} held out; GIO's k-NN estimate needs more than k={gio_k} to select with: "
            f"add target rows or hold out less (--holdout)")
    t_sel, t_hold = target_[sel_idx], target_[hold_idx]
    plab = None if pool_labels is None else check_labels(pool_labels, n_pool, "pool_labels", "pool rows")
    tlab = None if target_labels is None else check_labels(target_labels, target_.shape[0], "target_labels",
                                                            "target rows")
    hold_lab = None if tlab is None else tlab[hold_idx]
    say = progress or (lambda msg: None)

    gio_info: dict[str, Any] = {}
    ranked: dict[str, np.ndarray] = {}
    if "gio" in methods or sizes is None:
        say("gio")
        t0 = time.perf_counter()
        budget = None if sizes is None else int(max(sizes))
        qs = select_quantized(pool_, t_sel, clusters=clusters, budget=budget, seed=seed, **dict(gio_params or {}))
        ranked["gio"] = qs.ids
        gio_info = {"selected": int(qs.ids.shape[0]), "stop_reason": qs.result.stop_reason,
                    "candidates": qs.n_candidates, "seconds": time.perf_counter() - t0}
    if sizes is None:
        if ranked["gio"].shape[0] == 0:
            raise InvalidInputError("GIO selected nothing, so there is no budget to compare at; pass sizes")
        sizes = [int(ranked["gio"].shape[0])]
    sizes = sorted({check_int(s, "size", low=1) for s in sizes})
    top = max(sizes)
    if top > n_pool:
        raise InvalidParameterError(f"sizes: {top} is more than the pool's {n_pool} rows")
    for name in ("knn", "herding", "facility"):
        if name in methods:
            say(name)
            ranked[name] = BASELINES[name](pool_, t_sel, top, seed=seed)
    if "dsir" in methods:
        say("dsir")
        assert pool_texts is not None and target_texts is not None
        ranked["dsir"] = dsir(pool_texts, [target_texts[i] for i in sel_idx], top, seed=seed)

    def measure(p: Any, ids: np.ndarray, labels: np.ndarray | None) -> dict[str, float]:
        return _numeric(evaluate_selection(p, ids, t_hold, k=k, labels=labels,
                                           test_x=t_hold if labels is not None and hold_lab is not None else None,
                                           test_y=hold_lab if labels is not None else None, seed=seed,
                                           target_labels=hold_lab, max_rows=max_rows))

    out: dict[str, list[dict[str, Any]]] = {}
    for name in methods:
        rows: list[dict[str, Any]] = []
        if name == "full":
            say("full")
            rows.append({"size": n_pool, **measure(pool_, full_pool(n_pool), plab)})
        elif name == "random":
            say("random")
            for s in sizes:
                runs = [measure(pool_, random_baseline(n_pool, s, seed=seed + r), plab) for r in range(random_seeds)]
                rows.append(_mean_std(s, runs))
        else:
            for s in sizes:
                ids = ranked[name][:s]
                if ids.shape[0] < s:
                    continue  # GIO stopped before this size
                rows.append({"size": s, **measure(pool_, ids, plab)})
        out[name] = rows
    say("oracle")
    oracle = []
    tsel_lab = None if tlab is None else tlab[sel_idx]
    for s in sizes:
        m = min(s, t_sel.shape[0])
        runs = [measure(t_sel, np.sort(np.random.default_rng(seed + r).choice(t_sel.shape[0], m, replace=False)),
                        tsel_lab) for r in range(random_seeds)]
        oracle.append(_mean_std(m, runs))
    out["oracle"] = oracle
    return {"sizes": list(sizes), "methods": out, "gio": gio_info,
            "split": {"target_select": int(t_sel.shape[0]), "target_holdout": int(t_hold.shape[0]),
                      "holdout": holdout, "seed": seed},
            "pool_rows": n_pool, "k": k, "random_seeds": random_seeds, "clusters": clusters}


def _mean_std(size: int, runs: list[dict[str, float]]) -> dict[str, Any]:
    row: dict[str, Any] = {"size": size}
    for key in runs[0]:
        vals = np.array([r[key] for r in runs], dtype=float)
        row[key] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
        row[f"{key}_std"] = float(np.nanstd(vals)) if np.isfinite(vals).any() else float("nan")
    return row
