"""Studies of the paper's open questions (issue 16), one subcommand each, all on data available offline.

``python experiments/studies.py STUDY --size small|full [--seed S] [--out DIR]`` writes
``<out>/studies_<STUDY>_<size>.json`` (every run's numbers, their mean and std over the seeds, the GIO settings
as ``GIOSelector.get_params()``, the wall time) and prints the markdown table of EXPERIMENTS.md. ``STUDY all``
runs every study in turn. ``--size small`` takes seconds (the tests run it); ``--size full`` a few minutes on 2
cores, 3 seeds.

Studies:

* ``target_size`` - Fashion-MNIST: GIO, kNN retrieval and random at one budget while the target grows from 10
  to 1,000 images, for a target like the test set ("broad") and one drawn from a sub-mode of it, the four
  "tops" classes ("narrow"). Task number: accuracy on the whole test distribution (and on the target's own).
* ``ablation`` - one part of GIO removed at a time, at a fixed budget, on Fashion-MNIST and on a 16-D Gaussian
  mixture with a 60/30/10 target: the gradient search replaced by the nearest pool row to a random target
  row, or by the exact minimiser of the relaxed objective, or by the exact greedy; quantisation added;
  the other start set; the default stopping rule instead of a fixed size.
* ``sparse_pools`` - constructed pools that are not dense around the optimum (a hole, a shell, a sparse pool;
  2-D and 8-D): for each GIO pick, its rank among the unused rows by the objective GIO optimises, and at equal
  size the exact k-NN KL and energy distance to a held-out target of GIO, the exact greedy and random.
* ``data_types`` - tabular (scikit-learn's breast-cancer table, target a sub-population) and time series
  (Cylinder-Bell-Funnel windows, half with sensor faults, embedded by 16 simple features).
* ``active_learning`` - Fashion-MNIST, labels revealed only for queried rows: random, GIO alone, uncertainty
  sampling from the whole pool and from a GIO pre-filtered pool, at equal label budgets.
* ``quality_levels`` - the Fashion-MNIST quality mix (corrupted images in the pool, clean target) at 10-90%
  corrupted: GIO, the exact greedy, kNN, herding, random and, when ``gioselect.peers`` provides them,
  facility location and DSIR.
* ``quality_text`` - the BBC News quality mix (sentences with shuffled words, swapped letters or spliced
  halves in the pool, clean target; all-MiniLM-L6-v2 embeddings) at 10-90% corrupted: the same methods, and
  DSIR on the raw text when ``gioselect.peers`` provides it.

GIO settings: every study runs ``GIOSelector``'s defaults with the stopping rule replaced by a fixed size
(``max_iter`` = the budget, ``stop_criterion="data_size"``, which never fires before the pool is used up), so
every method is compared at the same size, and, on features that are not of unit norm, the start set taken
from 1% of the pool (``random_init_pct=0.01``; see experiments/common.py). The exact parameters of each run
are in the JSON (``gio_params``).
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import RESULTS_DIR, jsonable, markdown_table, setup_logging, write_json

from gioselect import GIOSelector, kl_knn
from gioselect.embed import ImagePCA
from gioselect.evaluate import (
    downstream_accuracy,
    energy_distance,
    knn_retrieval,
    random_baseline,
)
from gioselect.selector import select_quantized

NAME = "studies"
STUDIES = ("target_size", "ablation", "sparse_pools", "data_types", "active_learning", "quality_levels",
           "quality_text")
logger = logging.getLogger("experiments.studies")
Row = dict[str, Any]


# ---------------------------------------------------------------------------------------------------------
# GIO at a fixed size, and the shared bits
# ---------------------------------------------------------------------------------------------------------
def gio_params(budget: int | None, *, unit_norm: bool, **overrides: Any) -> dict[str, Any]:
    """``GIOSelector()``'s defaults with a fixed size (``budget`` picks, no early stop) and the start set.

    ``budget=None`` keeps the default stopping rule and ``max_iter``.
    """
    p = GIOSelector().get_params()
    p.pop("seed", None)
    p.pop("budget", None)
    if budget is not None:
        p.update(max_iter=int(budget), stop_criterion="data_size", max_data_size=1.0)
    if not unit_norm:
        p["random_init_pct"] = 0.01
    p.update(overrides)
    return p


def run_gio(pool: np.ndarray, target: np.ndarray, params: Mapping[str, Any], seed: int) -> tuple[np.ndarray, Row]:
    """Fit GIO; the distinct selected rows in order and a record (the selector's ``get_params()`` included)."""
    t0 = time.monotonic()
    sel = GIOSelector(**params, seed=seed).fit(pool, target)
    idx = np.asarray(sel.selected_indices_, dtype=np.int64)
    _, first = np.unique(idx, return_index=True)
    idx = idx[np.sort(first)]
    return idx, {"size": int(idx.size), "stop_reason": sel.stop_reason_, "seconds": round(time.monotonic() - t0, 2),
                 "gio_params": sel.get_params()}


def summarize_rows(rows: Sequence[Row], keys: Sequence[str], metrics: Sequence[str]) -> list[Row]:
    """Group ``rows`` by ``keys`` (first-seen order) and give each metric's mean, std (ddof 0) and n."""
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
    out = []
    for gkey, members in groups.items():
        row: Row = dict(zip(keys, gkey, strict=True))
        row["n"] = len(members)
        for m in metrics:
            vals = np.array([float(r[m]) for r in members if r.get(m) is not None], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            row[m] = float(vals.mean()) if vals.size else math.nan
            row[f"{m}_std"] = float(vals.std()) if vals.size else math.nan
        out.append(row)
    return out


def pm(row: Mapping[str, Any], metric: str, digits: int = 3, pct: bool = False) -> str:
    """``mean ± std`` of a summarised row."""
    m, s = row.get(metric, math.nan), row.get(f"{metric}_std", math.nan)
    if m is None or not math.isfinite(m):
        return "n/a"
    if pct:
        return f"{100 * m:.1f} ± {100 * s:.1f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def pivot(summary: Sequence[Row], row_keys: Sequence[str], col_key: str, metric: str, *, digits: int = 3,
          pct: bool = False, cols: Sequence[Any] | None = None) -> str:
    """A markdown table: one line per ``row_keys`` value, one column per ``col_key`` value, cells ``metric``."""
    cols = list(cols) if cols is not None else list(dict.fromkeys(r[col_key] for r in summary))
    lines: dict[tuple, dict[Any, str]] = {}
    for r in summary:
        lines.setdefault(tuple(r[k] for k in row_keys), {})[r[col_key]] = pm(r, metric, digits, pct)
    body = [[str(v) for v in key] + [cells.get(c, "-") for c in cols] for key, cells in lines.items()]
    return markdown_table([*row_keys, *map(str, cols)], body)


@functools.lru_cache(maxsize=1)
def fm_data() -> dict[str, np.ndarray]:
    """Fashion-MNIST (the loader of experiments/fashion_mnist.py); FileNotFoundError with the install hint."""
    import fashion_mnist as fm

    d = fm.find_data()
    if d is None:
        raise FileNotFoundError(f"Fashion-MNIST not found; install it with `{fm.INSTALL_HINT}`")
    return fm.load_data(d)


def accuracy(x: np.ndarray, y: np.ndarray, idx: np.ndarray, ev_x: np.ndarray, ev_y: np.ndarray, seed: int) -> float:
    """Test accuracy of the standardised logistic regression trained on rows ``idx`` (NaN for no rows)."""
    if idx.size == 0:
        return math.nan
    return downstream_accuracy(x[idx], y[idx], ev_x, ev_y, seed=seed)


def energy(x: np.ndarray, idx: np.ndarray, ref: np.ndarray, seed: int) -> float:
    """Energy distance from the selected rows to a reference (held-out) sample (NaN for fewer than 2 rows)."""
    if idx.size < 2:
        return math.nan
    return energy_distance(x[idx], ref, max_rows=2000, seed=seed)


def nearest_to_random_target(pool: np.ndarray, target: np.ndarray, budget: int, seed: int) -> np.ndarray:
    """The "no gradient search" ablation: each pick is the unused pool row nearest to a random target row."""
    rng = np.random.default_rng(seed)
    p = pool.astype(np.float64)
    used = np.zeros(p.shape[0], dtype=bool)
    p_sq = np.einsum("ij,ij->i", p, p)
    out = []
    for _ in range(min(budget, p.shape[0])):
        t = target[rng.integers(target.shape[0])].astype(np.float64)
        d2 = p_sq - 2.0 * (p @ t)
        d2[used] = np.inf
        j = int(np.argmin(d2))
        used[j] = True
        out.append(j)
    return np.asarray(out, dtype=np.int64)


def relaxed_scores(pool: np.ndarray, target: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Each pool row's contribution to GIO's relaxed objective: the mean over target rows of log(distance + eps).

    The relaxed estimate of KL(target || sample) is ``d`` times the mean of log(|x_i - w_j| + eps) over target
    rows i and sample rows j, plus terms that depend only on the sizes (gioselect.divergence.RelaxedKL). It is
    additive over the sample, so the pool row that lowers it most is the same at every step: the one with the
    lowest score here. Blocks of 2,048 pool rows.
    """
    t = target.astype(np.float64)
    t_sq = np.einsum("ij,ij->i", t, t)
    out = np.empty(pool.shape[0], dtype=np.float64)
    for r0 in range(0, pool.shape[0], 2048):
        p = pool[r0:r0 + 2048].astype(np.float64)
        d2 = np.einsum("ij,ij->i", p, p)[:, None] - 2.0 * (p @ t.T) + t_sq[None, :]
        out[r0:r0 + p.shape[0]] = np.log(np.sqrt(np.maximum(d2, 0.0)) + eps).mean(axis=1)
    return out


def relaxed_argmin(pool: np.ndarray, target: np.ndarray, budget: int) -> np.ndarray:
    """The exact greedy minimiser of the relaxed objective (no gradient, no snap): lowest scores first."""
    return np.argsort(relaxed_scores(pool, target), kind="stable")[:budget].astype(np.int64)


def exact_greedy(pool: np.ndarray, target: np.ndarray, budget: int, seed: int) -> tuple[np.ndarray, Row]:
    """GIO with ``objective="exact"`` (greedy on the exact k-NN KL estimate) at a fixed size."""
    return run_gio(pool, target, gio_params(budget, unit_norm=True, objective="exact",
                                            random_init_pct=0.0), seed)


def baseline_picks(x: np.ndarray, tgt: np.ndarray, budget: int, rs: int, names: Sequence[str], *,
                   texts: Sequence[str] | None = None, tgt_texts: Sequence[str] | None = None
                   ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The picks of the benchmark suite's methods ``names`` (experiments/suite: ``random``, ``knn``,
    ``herding``, and ``facility``/``dsir`` when ``gioselect.peers`` provides them) at ``budget``, run by the
    suite's method registry on this pool and target (``texts``: the raw text DSIR needs). Returns the picks in
    the order of ``names`` (the peers that are registered) and, per method that cannot run here, why not."""
    from suite import METHODS, Task

    task = Task("study", x, tgt, tgt, "none", budget, mask=np.zeros(x.shape[0], dtype=bool),
                pool_texts=list(texts) if texts is not None else None,
                target_texts=list(tgt_texts) if tgt_texts is not None else None, unit_norm=False)
    picks: dict[str, np.ndarray] = {}
    notes: dict[str, str] = {}
    for name in names:
        if name not in METHODS:
            continue
        why = METHODS[name].applicable(task, budget)
        if why is not None:
            notes[name] = f"not run: {why}"
            continue
        ids, _ = METHODS[name].run(task, budget, rs)
        picks[name] = np.asarray(ids, dtype=np.int64)
    return picks, notes


PEERS = ("facility", "dsir")


def registered_peers() -> list[str]:
    """The peers of :data:`PEERS` the suite registered (those ``gioselect.peers`` provides)."""
    from suite import METHODS

    return [p for p in PEERS if p in METHODS]


# ---------------------------------------------------------------------------------------------------------
# 1. target size and representativeness
# ---------------------------------------------------------------------------------------------------------
TS_CFG = {
    "small": {"pool": 400, "pca": 10, "targets": [10, 30], "budget": 30, "eval": 200, "seeds": [0, 1]},
    "full": {"pool": 4000, "pca": 30, "targets": [10, 30, 100, 300, 1000], "budget": 300, "eval": 2000,
             "seeds": [0, 1, 2]},
}


def study_target_size(size: str, seed: int) -> Row:
    """GIO / kNN / random at one budget as the target grows, broad (test-like) and narrow (tops only)."""
    import fashion_mnist as fm

    cfg = TS_CFG[size]
    d = fm_data()
    rows: list[Row] = []
    params = gio_params(cfg["budget"], unit_norm=False)
    for s in cfg["seeds"]:
        rs = seed * 1000 + s
        rng = np.random.default_rng([rs, 1])
        pool_rows = np.sort(rng.choice(d["xtr"].shape[0], cfg["pool"], replace=False))
        pca = ImagePCA(cfg["pca"], seed=rs, fit_rows=5000).fit(d["xtr"][pool_rows])
        x, y = pca.transform(d["xtr"][pool_rows]), d["ytr"][pool_rows]
        te, yte = pca.transform(d["xte"]), d["yte"]
        perm = rng.permutation(te.shape[0])
        t_half, e_half = perm[: perm.size // 2], perm[perm.size // 2:]
        ev = rng.choice(e_half, cfg["eval"], replace=False)
        ev_tops = e_half[np.isin(yte[e_half], fm.TOPS)][: cfg["eval"]]
        rnd = random_baseline(x.shape[0], cfg["budget"], seed=rs)
        acc_rnd = accuracy(x, y, rnd, te[ev], yte[ev], rs)
        acc_rnd_tops = accuracy(x, y, rnd, te[ev_tops], yte[ev_tops], rs)
        for kind in ("broad", "narrow"):
            src = t_half if kind == "broad" else t_half[np.isin(yte[t_half], fm.TOPS)]
            own_ev = ev if kind == "broad" else ev_tops
            for n in cfg["targets"]:
                tgt = te[rng.choice(src, n, replace=False)]
                picks = {"knn": knn_retrieval(x, tgt, cfg["budget"])}
                picks["gio"], info = run_gio(x, tgt, params, rs)
                for method, idx in picks.items():
                    rows.append({"target": kind, "target_size": n, "method": method, "seed": rs,
                                 "size": int(idx.size),
                                 "acc_full_test": accuracy(x, y, idx, te[ev], yte[ev], rs),
                                 "acc_target_dist": accuracy(x, y, idx, te[own_ev], yte[own_ev], rs),
                                 "tops_share": float(np.isin(y[idx], fm.TOPS).mean()),
                                 **({"gio_seconds": info["seconds"]} if method == "gio" else {})})
                rows.append({"target": kind, "target_size": n, "method": "random", "seed": rs,
                             "size": int(rnd.size), "acc_full_test": acc_rnd,
                             "acc_target_dist": acc_rnd if kind == "broad" else acc_rnd_tops,
                             "tops_share": float(np.isin(y[rnd], fm.TOPS).mean())})
                logger.info("target_size seed %d %s n=%d done", rs, kind, n)
    summary = summarize_rows(rows, ["target", "target_size", "method"],
                             ["size", "acc_full_test", "acc_target_dist", "tops_share"])
    return {"config": cfg, "gio_params": params, "rows": rows, "summary": summary,
            "methods": ["gio", "knn", "random"]}


def table_target_size(res: Row) -> str:
    parts = []
    for metric, title in (("acc_full_test", "accuracy on the whole test distribution"),
                          ("acc_target_dist", "accuracy on the target's own distribution"),
                          ("tops_share", "share of tops among the picks")):
        lines = []
        for r in res["summary"]:
            lines.append({**r, "col": f"{r['target']}/{r['method']}"})
        parts.append(f"{title} (%, mean ± std), budget {res['config']['budget']}:\n\n"
                     + pivot(lines, ["target_size"], "col", metric, pct=True))
    return "\n\n".join(parts)


# ---------------------------------------------------------------------------------------------------------
# 2. component ablation
# ---------------------------------------------------------------------------------------------------------
AB_CFG = {
    "small": {"pool": 400, "pca": 10, "target": 80, "eval": 200, "budget": 30, "clusters": 60, "mix_pool": 500,
              "mix_target": 200, "dim": 16, "seeds": [0, 1]},
    "full": {"pool": 4000, "pca": 30, "target": 300, "eval": 2000, "budget": 200, "clusters": 400,
             "mix_pool": 4000, "mix_target": 1000, "dim": 16, "seeds": [0, 1, 2]},
}
AB_VARIANTS = ("gio", "no-gradient: nearest row to a random target row", "no-gradient: argmin of relaxed objective",
               "exact greedy (objective=exact)", "with quantisation (K-means)", "other start set",
               "default stop rule (own size)", "random at GIO's own size", "random", "knn")


def _ablation_picks(x: np.ndarray, tgt: np.ndarray, budget: int, clusters: int, rs: int, unit_norm_start: bool
                    ) -> tuple[dict[str, np.ndarray], Row]:
    """Every ablation's picks on one (pool, target)."""
    base = gio_params(budget, unit_norm=False)
    other_start = gio_params(budget, unit_norm=True)  # the 20 uniform unit-norm points (the default start)
    if unit_norm_start:
        base, other_start = other_start, base
    picks: dict[str, np.ndarray] = {}
    info: Row = {"gio_params": base, "other_start_params": other_start}
    picks["gio"], r = run_gio(x, tgt, base, rs)
    info["gio_seconds"] = r["seconds"]
    picks[AB_VARIANTS[1]] = nearest_to_random_target(x, tgt, budget, rs)
    picks[AB_VARIANTS[2]] = relaxed_argmin(x, tgt, budget)
    picks[AB_VARIANTS[3]], r = exact_greedy(x, tgt, budget, rs)
    info["exact_seconds"] = r["seconds"]
    qparams = {**base, "max_iter": None}
    if qparams.get("random_init_pct", 0.0) > 0:  # 1% of the centroids, at least 2 of them
        qparams["random_init_pct"] = max(float(qparams["random_init_pct"]), 2.0 / clusters)
    t0 = time.monotonic()
    qs = select_quantized(x, tgt, clusters=clusters, budget=budget, budget_exact=True, seed=rs, **qparams)
    info["quantised_seconds"] = round(time.monotonic() - t0, 2)
    picks[AB_VARIANTS[4]] = qs.ids
    picks[AB_VARIANTS[5]], _ = run_gio(x, tgt, other_start, rs)
    own_params = gio_params(None, unit_norm=unit_norm_start)  # the default stop and max_iter, same start
    own, r = run_gio(x, tgt, own_params, rs)
    info["own_stop"] = {"size": r["size"], "stop_reason": r["stop_reason"], "gio_params": own_params}
    picks[AB_VARIANTS[6]] = own
    picks[AB_VARIANTS[7]] = random_baseline(x.shape[0], max(int(own.size), 1), seed=rs)
    picks.update(baseline_picks(x, tgt, budget, rs, ("random", "knn"))[0])
    return picks, info


def study_ablation(size: str, seed: int) -> Row:
    """Each part of GIO removed in turn, on Fashion-MNIST and on a Gaussian mixture with a 60/30/10 target."""
    from compare_objectives import mixture

    cfg = AB_CFG[size]
    d = fm_data()
    rows: list[Row] = []
    infos: list[Row] = []
    b = cfg["budget"]
    for s in cfg["seeds"]:
        rs = seed * 1000 + s
        rng = np.random.default_rng([rs, 2])
        # Fashion-MNIST, test-like target
        pool_rows = np.sort(rng.choice(d["xtr"].shape[0], cfg["pool"], replace=False))
        pca = ImagePCA(cfg["pca"], seed=rs, fit_rows=5000).fit(d["xtr"][pool_rows])
        x, y = pca.transform(d["xtr"][pool_rows]), d["ytr"][pool_rows]
        te, yte = pca.transform(d["xte"]), d["yte"]
        perm = rng.permutation(te.shape[0])
        tgt, ev = te[perm[: cfg["target"]]], perm[cfg["target"]: cfg["target"] + cfg["eval"]]
        picks, info = _ablation_picks(x, tgt, b, cfg["clusters"], rs, unit_norm_start=False)
        infos.append({"task": "fashion-mnist", "seed": rs, **info})
        for v, idx in picks.items():
            rows.append({"task": "fashion-mnist", "variant": v, "seed": rs, "size": int(idx.size),
                         "accuracy": accuracy(x, y, idx, te[ev], yte[ev], rs),
                         "energy": energy(x, idx, te[ev], rs)})
        # Gaussian mixture: 8 components in the pool, the target on 3 of them at 60/30/10
        centers = rng.normal(0.0, 3.0, size=(8, cfg["dim"]))
        mx, mcomp = mixture(rng, cfg["mix_pool"], centers, [1.0] * 8)
        w = [0.6, 0.3, 0.1]
        mt, _ = mixture(rng, cfg["mix_target"], centers[:3], w)
        mh, _ = mixture(rng, cfg["mix_target"], centers[:3], w)
        picks, info = _ablation_picks(mx, mt, b, cfg["clusters"], rs, unit_norm_start=False)
        infos.append({"task": "mixture-60/30/10", "seed": rs, **info})
        want = np.array(w + [0.0] * 5)
        for v, idx in picks.items():
            shares = np.bincount(mcomp[idx], minlength=8) / max(idx.size, 1)
            rows.append({"task": "mixture-60/30/10", "variant": v, "seed": rs, "size": int(idx.size),
                         "energy": energy(mx, idx, mh, rs), "label_tv": 0.5 * float(np.abs(shares - want).sum())})
        logger.info("ablation seed %d done", rs)
    summary = summarize_rows(rows, ["task", "variant"], ["size", "accuracy", "energy", "label_tv"])
    return {"config": cfg, "variants": list(AB_VARIANTS), "rows": rows, "summary": summary, "runs": infos}


def table_ablation(res: Row) -> str:
    body = []
    for r in res["summary"]:
        fash = r["task"] == "fashion-mnist"
        body.append([r["task"], r["variant"], pm(r, "size", 0),
                     pm(r, "accuracy", pct=True) if fash else "-", pm(r, "energy"),
                     "-" if fash else pm(r, "label_tv")])
    return markdown_table(["task", "variant", "size", "accuracy %", "energy to held-out", "component TV"], body)


# ---------------------------------------------------------------------------------------------------------
# 3. pools that are not locally dense around the optimum
# ---------------------------------------------------------------------------------------------------------
SP_CFG = {
    "small": {"dims": [2], "pool": 300, "sparse_pool": 60, "target": 150, "budget": 20, "seeds": [0, 1]},
    "full": {"dims": [2, 8], "pool": 2000, "sparse_pool": 150, "target": 300, "budget": 50, "seeds": [0, 1, 2]},
}
SP_CASES = ("dense", "hole", "shell", "sparse", "hole, elongated target")
SP_METHODS = ("gio", "relaxed argmin", "exact greedy", "random")


def make_pool(case: str, d: int, n_pool: int, n_sparse: int, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """A constructed pool and the target's axis scales (target = N(0, diag(scales^2))).

    dense: N(0, 1.5^2 I); hole: the same without every row within the target's median radius of 0; shell: a
    thin shell (noise 0.05) at twice that radius; sparse: ``n_sparse`` rows of N(0, 3^2 I); "hole, elongated
    target": the hole pool with a target stretched 3x along the first axis (the objective is then not
    isotropic, so the nearest rows to the optimum are not the best ones).
    """
    scales = np.ones(d)
    if case == "hole, elongated target":
        scales[0] = 3.0
    r_med = float(np.median(np.linalg.norm(rng.normal(size=(4000, d)) * scales, axis=1)))
    if case == "dense":
        pool = rng.normal(0.0, 1.5, size=(n_pool, d))
    elif case in ("hole", "hole, elongated target"):
        cand = rng.normal(0.0, 1.5, size=(n_pool * 8, d)) * (scales if case != "hole" else 1.0)
        cand = cand[np.linalg.norm(cand, axis=1) > r_med]
        pool = cand[:n_pool]
    elif case == "shell":
        u = rng.normal(size=(n_pool, d))
        pool = 2.0 * r_med * u / np.linalg.norm(u, axis=1, keepdims=True) + rng.normal(0.0, 0.05, (n_pool, d))
    elif case == "sparse":
        pool = rng.normal(0.0, 3.0, size=(n_sparse, d))
    else:
        raise ValueError(f"case: unknown {case!r}")
    return pool.astype(np.float32), scales


def snap_quality(order: np.ndarray, scores: np.ndarray) -> Row:
    """For each pick in ``order``: its percentile among the then-unused rows by ``scores`` (0 = the best row)
    and its regret (score minus the best unused score); the share of picks outside the best 10% ("poor")."""
    unused = np.ones(scores.size, dtype=bool)
    pct, regret = [], []
    for j in order:
        avail = scores[unused]
        pct.append(float(np.mean(avail < scores[j])))
        regret.append(float(scores[j] - avail.min()))
        unused[j] = False
    p = np.array(pct)
    return {"poor_share": float(np.mean(p > 0.10)), "median_percentile": float(np.median(p)),
            "mean_regret": float(np.mean(regret)), "best_pick_share": float(np.mean(p == 0.0))}


def pairwise_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances, shape (len(a), len(b)) (small constructed sets only)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    d2 = np.einsum("ij,ij->i", a64, a64)[:, None] - 2.0 * (a64 @ b64.T) + np.einsum("ij,ij->i", b64, b64)[None, :]
    return np.sqrt(np.maximum(d2, 0.0))


def exact_step_quality(order: np.ndarray, pool: np.ndarray, target: np.ndarray) -> Row:
    """For each pick in ``order``, given the picks before it: its percentile among the unused rows by the
    objective of ``objective="exact"`` (the rank-1 Wang estimate; at a fixed size only the sum over target rows
    of log(distance to the nearest selected row) varies), 0 = the row the exact greedy would take."""
    dist = np.maximum(pairwise_dist(pool, target), 1e-12)  # (M, n)
    nearest = np.full(target.shape[0], np.inf)
    unused = np.ones(pool.shape[0], dtype=bool)
    pct = []
    for j in order:
        vals = np.log(np.minimum(dist, nearest[None, :])).sum(axis=1)
        avail = vals[unused]
        pct.append(float(np.mean(avail < vals[j] - 1e-9 * max(1.0, abs(vals[j])))))
        nearest = np.minimum(nearest, dist[j])
        unused[j] = False
    p = np.array(pct)
    return {"exact_poor_share": float(np.mean(p > 0.10)), "exact_median_percentile": float(np.median(p))}


def study_sparse_pools(size: str, seed: int) -> Row:
    """How often snapping the gradient optimum to the nearest row picks a poor row, and what it costs."""
    cfg = SP_CFG[size]
    rows: list[Row] = []
    b = cfg["budget"]
    for d in cfg["dims"]:
        for case in SP_CASES:
            for s in cfg["seeds"]:
                rs = seed * 1000 + s
                rng = np.random.default_rng([rs, 3, d, SP_CASES.index(case)])
                pool, scales = make_pool(case, d, cfg["pool"], cfg["sparse_pool"], rng)
                tgt = (rng.normal(size=(cfg["target"], d)) * scales).astype(np.float32)
                hold = (rng.normal(size=(cfg["target"], d)) * scales).astype(np.float32)
                scores = relaxed_scores(pool, tgt)
                picks: dict[str, np.ndarray] = {}
                gp = gio_params(b, unit_norm=False, random_init_pct=max(0.01, 2.0 / pool.shape[0]))
                picks["gio"], _ = run_gio(pool, tgt, gp, rs)
                picks["relaxed argmin"] = relaxed_argmin(pool, tgt, b)
                picks["exact greedy"], _ = exact_greedy(pool, tgt, b, rs)
                picks["random"] = random_baseline(pool.shape[0], b, seed=rs)
                for m, idx in picks.items():
                    snap = {**snap_quality(idx, scores), **exact_step_quality(idx, pool, tgt)}
                    rows.append({"dim": d, "case": case, "method": m, "seed": rs, "size": int(idx.size),
                                 "kl_exact": float(kl_knn(hold, pool[idx], k=5)) if idx.size > 5 else math.nan,
                                 "energy": energy(pool, idx, hold, rs),
                                 "relaxed_objective": float(d * scores[idx].mean()) if idx.size else math.nan,
                                 **snap})
                logger.info("sparse_pools d=%d %s seed %d done", d, case, rs)
    summary = summarize_rows(rows, ["dim", "case", "method"],
                             ["size", "poor_share", "median_percentile", "mean_regret", "best_pick_share",
                              "exact_poor_share", "exact_median_percentile",
                              "kl_exact", "energy", "relaxed_objective"])
    return {"config": cfg, "cases": list(SP_CASES), "methods": list(SP_METHODS), "rows": rows,
            "summary": summary, "gio_params": gio_params(b, unit_norm=False)}


def table_sparse_pools(res: Row) -> str:
    body = []
    by = {(r["dim"], r["case"], r["method"]): r for r in res["summary"]}
    for (d, case, m), r in by.items():
        if m != "gio":
            continue
        ex, rnd = by[(d, case, "exact greedy")], by[(d, case, "random")]
        body.append([str(d), case, pm(r, "poor_share", pct=True), pm(r, "median_percentile", pct=True),
                     pm(r, "exact_poor_share", pct=True), pm(rnd, "exact_poor_share", pct=True),
                     pm(r, "kl_exact", 2), pm(ex, "kl_exact", 2), pm(rnd, "kl_exact", 2),
                     pm(r, "energy"), pm(ex, "energy"), pm(rnd, "energy")])
    return markdown_table(["dim", "pool", "GIO picks outside the relaxed best 10% (%)",
                           "GIO median percentile, relaxed (%)", "GIO picks outside the exact best 10% (%)",
                           "random picks outside the exact best 10% (%)",
                           "KL exact: GIO", "exact greedy", "random", "energy: GIO", "exact greedy", "random"],
                          body)


# ---------------------------------------------------------------------------------------------------------
# 4. other data types: tabular and time series
# ---------------------------------------------------------------------------------------------------------
DT_CFG = {
    "small": {"tab_target": 40, "tab_budget": 30, "ts_pool": 400, "ts_target": 60, "ts_eval": 300,
              "ts_budget": 40, "seeds": [0, 1]},
    "full": {"tab_target": 50, "tab_budget": 60, "ts_pool": 3000, "ts_target": 150, "ts_eval": 1000,
             "ts_budget": 200, "seeds": [0, 1, 2]},
}
DT_METHODS = ("gio", "exact greedy", "random", "knn", "herding")
TS_LEN = 128


def cbf(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cylinder-Bell-Funnel series (Saito 1994), length 128: ``(series (n, 128), class 0/1/2)``."""
    t = np.arange(1, TS_LEN + 1, dtype=np.float64)
    cls = rng.integers(0, 3, size=n)
    a = rng.integers(16, 33, size=n).astype(np.float64)
    b = a + rng.integers(32, 97, size=n)
    eta = rng.normal(size=n)
    on = (t[None, :] >= a[:, None]) & (t[None, :] <= b[:, None])
    up = (t[None, :] - a[:, None]) / (b - a)[:, None]
    shape = np.where(cls[:, None] == 0, 1.0, np.where(cls[:, None] == 1, up, 1.0 - up))
    x = (6.0 + eta)[:, None] * on * shape + rng.normal(size=(n, TS_LEN))
    return x, cls


def sensor_faults(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A third each: 5 spikes of +-15; a flat-lined stretch of 40 steps; a linear drift of 0 to 8."""
    out = x.copy()
    kind = np.arange(x.shape[0]) % 3
    for i in range(x.shape[0]):
        if kind[i] == 0:
            pos = rng.choice(TS_LEN, 5, replace=False)
            out[i, pos] += rng.choice([-15.0, 15.0], 5)
        elif kind[i] == 1:
            s0 = int(rng.integers(0, TS_LEN - 40))
            out[i, s0:s0 + 40] = out[i, s0]
        else:
            out[i] += np.linspace(0.0, 8.0, TS_LEN)
    return out


def series_features(x: np.ndarray) -> np.ndarray:
    """16 simple features per window: mean, std, min, max, argmax and argmin (as a fraction), slope of a line
    fit, std and max |.| of the first difference, share of zero differences, six segment means."""
    t = np.linspace(-1.0, 1.0, x.shape[1])
    dx = np.diff(x, axis=1)
    segs = np.array_split(x, 6, axis=1)
    f = np.column_stack([x.mean(1), x.std(1), x.min(1), x.max(1), x.argmax(1) / x.shape[1], x.argmin(1) / x.shape[1],
                         (x * t).sum(1) / (t * t).sum(), dx.std(1), np.abs(dx).max(1), (np.abs(dx) < 1e-9).mean(1),
                         *[sg.mean(1) for sg in segs]])
    return f.astype(np.float32)


def _methods_at(x: np.ndarray, tgt: np.ndarray, budget: int, rs: int) -> tuple[dict[str, np.ndarray], Row]:
    picks: dict[str, np.ndarray] = {}
    params = gio_params(budget, unit_norm=False)
    picks["gio"], info = run_gio(x, tgt, params, rs)
    picks["exact greedy"], _ = exact_greedy(x, tgt, budget, rs)
    picks.update(baseline_picks(x, tgt, budget, rs, ("random", "knn", "herding"))[0])
    return picks, {"gio_params": params, "gio_seconds": info["seconds"]}


def study_data_types(size: str, seed: int) -> Row:
    """Tabular (breast cancer, sub-population target) and time series (CBF with sensor faults)."""
    from sklearn.datasets import load_breast_cancer

    cfg = DT_CFG[size]
    rows: list[Row] = []
    runs: list[Row] = []
    bc = load_breast_cancer()
    bx, by = bc.data.astype(np.float64), bc.target.astype(np.int64)
    radius = bx[:, list(bc.feature_names).index("mean radius")]
    for s in cfg["seeds"]:
        rs = seed * 1000 + s
        rng = np.random.default_rng([rs, 4])
        # tabular: the pool is 60% of the rows; target and evaluation are the large-radius rows of the rest
        perm = rng.permutation(bx.shape[0])
        n_pool = int(0.6 * bx.shape[0])
        pool_r, rest = perm[:n_pool], perm[n_pool:]
        big = rest[radius[rest] > np.median(radius)]
        t_r, e_r = big[: cfg["tab_target"]], big[cfg["tab_target"]:]
        mu, sd = bx[pool_r].mean(0), bx[pool_r].std(0) + 1e-12
        z = ((bx - mu) / sd).astype(np.float32)
        x, y = z[pool_r], by[pool_r]
        picks, info = _methods_at(x, z[t_r], cfg["tab_budget"], rs)
        runs.append({"task": "tabular", "seed": rs, "pool": int(x.shape[0]), "target": int(t_r.size),
                     "eval": int(e_r.size), **info})
        pool_big = radius[pool_r] > np.median(radius)
        for m, idx in picks.items():
            rows.append({"task": "tabular: breast cancer, large-radius target", "method": m, "seed": rs,
                         "size": int(idx.size), "accuracy": accuracy(x, y, idx, z[e_r], by[e_r], rs),
                         "in_subpopulation": float(pool_big[idx].mean())})
        # time series: CBF windows, half of the pool with sensor faults; clean target and evaluation
        xs, ys = cbf(cfg["ts_pool"], rng)
        bad = np.zeros(xs.shape[0], dtype=bool)
        bad[rng.permutation(xs.shape[0])[: xs.shape[0] // 2]] = True
        xs[bad] = sensor_faults(xs[bad], rng)
        tx, _ = cbf(cfg["ts_target"], rng)
        exs, eys = cbf(cfg["ts_eval"], rng)
        fp, ft, fe = series_features(xs), series_features(tx), series_features(exs)
        mu2, sd2 = fp.mean(0), fp.std(0) + 1e-6
        fp, ft, fe = ((fp - mu2) / sd2).astype(np.float32), ((ft - mu2) / sd2), ((fe - mu2) / sd2)
        picks, info = _methods_at(fp, ft, cfg["ts_budget"], rs)
        runs.append({"task": "time series", "seed": rs, "pool": int(fp.shape[0]), **info})
        for m, idx in picks.items():
            rows.append({"task": "time series: CBF, half with sensor faults", "method": m, "seed": rs,
                         "size": int(idx.size), "accuracy": accuracy(fp, ys, idx, fe, eys, rs),
                         "clean_share": float((~bad[idx]).mean())})
        logger.info("data_types seed %d done", rs)
    summary = summarize_rows(rows, ["task", "method"], ["size", "accuracy", "in_subpopulation", "clean_share"])
    return {"config": cfg, "methods": list(DT_METHODS), "rows": rows, "summary": summary, "runs": runs}


def table_data_types(res: Row) -> str:
    body = [[r["task"], r["method"], pm(r, "size", 0), pm(r, "accuracy", pct=True),
             pm(r, "in_subpopulation", pct=True) if r["task"].startswith("tabular") else pm(r, "clean_share", pct=True)]
            for r in res["summary"]]
    return markdown_table(["task", "method", "size", "accuracy %", "sub-population / clean share %"], body)


# ---------------------------------------------------------------------------------------------------------
# 5. active learning
# ---------------------------------------------------------------------------------------------------------
AL_CFG = {
    "small": {"pool": 400, "pca": 10, "target": 60, "eval": 200, "budgets": [20, 40], "batch": 10,
              "prefilter": 120, "settings": ["test"], "seeds": [0, 1]},
    "full": {"pool": 5000, "pca": 30, "target": 300, "eval": 2000, "budgets": [50, 100, 200, 400], "batch": 10,
             "prefilter": 1000, "settings": ["test", "tops"], "seeds": [0, 1, 2]},
}
AL_METHODS = ("random", "gio", "uncertainty (whole pool)", "uncertainty (GIO pre-filtered pool)")


class LabelOracle:
    """Reveals a pool row's label only when it is queried; counts the queries."""

    def __init__(self, labels: np.ndarray) -> None:
        self._labels = labels
        self.queried: list[int] = []

    def query(self, rows: Sequence[int]) -> np.ndarray:
        self.queried.extend(int(r) for r in rows)
        return self._labels[np.asarray(rows, dtype=np.int64)]


def _fit(x: np.ndarray, y: np.ndarray, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed)).fit(x, y)


def uncertainty_sampling(x: np.ndarray, oracle: LabelOracle, candidates: np.ndarray, start: np.ndarray,
                         budgets: Sequence[int], batch: int, seed: int,
                         score: Callable[[np.ndarray, np.ndarray, int], float]) -> dict[int, float]:
    """Margin sampling: label ``start``, then ``batch`` rows at a time with the smallest gap between the two
    most probable classes among the unlabelled ``candidates``; ``score(rows, labels, budget)`` at each budget."""
    rng = np.random.default_rng(seed)
    labelled = [int(i) for i in start]
    ys = list(oracle.query(labelled))
    out: dict[int, float] = {}
    for b in sorted(budgets):
        while len(labelled) < b:
            avail = np.setdiff1d(candidates, np.asarray(labelled), assume_unique=False)
            want = min(batch, b - len(labelled), avail.size)
            if want == 0:
                break
            if np.unique(ys).size < 2:
                pick = rng.choice(avail, want, replace=False)
            else:
                proba = _fit(x[labelled], np.asarray(ys), seed).predict_proba(x[avail])
                top2 = np.sort(proba, axis=1)[:, -2:] if proba.shape[1] > 1 else np.zeros((avail.size, 2))
                pick = avail[np.argsort(top2[:, 1] - top2[:, 0], kind="stable")[:want]]
            labelled.extend(int(i) for i in pick)
            ys.extend(oracle.query(pick))
        out[b] = score(np.asarray(labelled), np.asarray(ys), b)
    return out


def study_active_learning(size: str, seed: int) -> Row:
    """Random, GIO, uncertainty sampling on the pool and on a GIO pre-filtered pool, at equal label budgets."""
    import fashion_mnist as fm

    cfg = AL_CFG[size]
    d = fm_data()
    rows: list[Row] = []
    top = max(cfg["budgets"])
    pre_params = gio_params(cfg["prefilter"], unit_norm=False)
    for s in cfg["seeds"]:
        rs = seed * 1000 + s
        rng = np.random.default_rng([rs, 5])
        pool_rows = np.sort(rng.choice(d["xtr"].shape[0], cfg["pool"], replace=False))
        pca = ImagePCA(cfg["pca"], seed=rs, fit_rows=5000).fit(d["xtr"][pool_rows])
        x, hidden = pca.transform(d["xtr"][pool_rows]), d["ytr"][pool_rows]
        te, yte = pca.transform(d["xte"]), d["yte"]
        perm = rng.permutation(te.shape[0])
        t_half, e_half = perm[: perm.size // 2], perm[perm.size // 2:]
        for setting in cfg["settings"]:
            w = [0.1] * 10 if setting == "test" else fm.tops_weights()
            tgt = te[fm.class_sample(t_half, yte, w, cfg["target"], rng)]
            ev = fm.class_sample(e_half, yte, w, cfg["eval"], rng)

            def score(idx: np.ndarray, labels: np.ndarray, b: int, _x: np.ndarray = x, _ev_x: np.ndarray = te[ev],
                      _ev_y: np.ndarray = yte[ev], _seed: int = rs) -> float:
                return downstream_accuracy(_x[idx], labels, _ev_x, _ev_y, seed=_seed)

            gio_order, info = run_gio(x, tgt, pre_params, rs)
            res: dict[str, dict[int, float]] = {}
            orc = LabelOracle(hidden)
            rnd = random_baseline(x.shape[0], top, seed=rs)
            res["random"] = {b: score(rnd[:b], orc.query(rnd[:b]), b) for b in cfg["budgets"]}
            orc = LabelOracle(hidden)
            res["gio"] = {b: score(gio_order[:b], orc.query(gio_order[:b]), b) for b in cfg["budgets"]}
            orc = LabelOracle(hidden)
            res[AL_METHODS[2]] = uncertainty_sampling(x, orc, np.arange(x.shape[0]), rnd[: cfg["batch"]],
                                                      cfg["budgets"], cfg["batch"], rs, score)
            assert len(orc.queried) == top and len(set(orc.queried)) == top
            orc = LabelOracle(hidden)
            res[AL_METHODS[3]] = uncertainty_sampling(x, orc, np.sort(gio_order), gio_order[: cfg["batch"]],
                                                      cfg["budgets"], cfg["batch"], rs, score)
            for m, by_b in res.items():
                for b, acc in by_b.items():
                    rows.append({"setting": setting, "method": m, "budget": b, "seed": rs, "accuracy": acc})
            rows.append({"setting": setting, "method": "_gio_prefilter", "budget": int(gio_order.size),
                         "seed": rs, "seconds": info["seconds"]})
            logger.info("active_learning seed %d %s done", rs, setting)
    rows_m = [r for r in rows if not r["method"].startswith("_")]
    summary = summarize_rows(rows_m, ["setting", "method", "budget"], ["accuracy"])
    return {"config": cfg, "methods": list(AL_METHODS), "gio_params": pre_params, "rows": rows, "summary": summary}


def table_active_learning(res: Row) -> str:
    parts = []
    for setting in res["config"]["settings"]:
        sm = [r for r in res["summary"] if r["setting"] == setting]
        parts.append(f"setting `{setting}`, accuracy (%) by label budget:\n\n"
                     + pivot(sm, ["method"], "budget", "accuracy", pct=True))
    return "\n\n".join(parts)


# ---------------------------------------------------------------------------------------------------------
# 6. varying synthetic-data quality
# ---------------------------------------------------------------------------------------------------------
QL_CFG = {
    "small": {"pool": 300, "pca": 10, "target": 60, "eval": 200, "budget": 30, "levels": [0.1, 0.9],
              "seeds": [0, 1]},
    "full": {"pool": 3000, "pca": 30, "target": 300, "eval": 2000, "budget": 300,
             "levels": [0.1, 0.3, 0.5, 0.7, 0.9], "seeds": [0, 1, 2]},
}
QL_METHODS = ("gio", "exact greedy", "knn", "herding", "random")


def study_quality_levels(size: str, seed: int) -> Row:
    """The Fashion-MNIST quality mix at several corrupted shares: clean share and accuracy of each method."""
    import fashion_mnist as fm

    cfg = QL_CFG[size]
    d = fm_data()
    peers = registered_peers()
    peer_notes: dict[str, str] = {}
    rows: list[Row] = []
    params = gio_params(cfg["budget"], unit_norm=False)
    for s in cfg["seeds"]:
        rs = seed * 1000 + s
        for level in cfg["levels"]:
            rng = np.random.default_rng([rs, 6, round(100 * level)])
            mix = np.sort(rng.choice(d["xtr"].shape[0], cfg["pool"], replace=False))
            imgs = d["xtr"][mix].astype(np.float32) / 255.0
            bad = np.zeros(mix.size, dtype=bool)
            bad[rng.permutation(mix.size)[: round(level * mix.size)]] = True
            kinds = np.full(mix.size, -1)
            kinds[bad] = np.arange(int(bad.sum())) % len(fm.CORRUPTIONS)
            imgs[bad] = fm.corrupt(imgs[bad], kinds[bad], rng)
            pca = ImagePCA(cfg["pca"], seed=rs, fit_rows=5000).fit(imgs)
            x, y = pca.transform(imgs), d["ytr"][mix]
            te = pca.transform(d["xte"].astype(np.float32) / 255.0)
            perm = rng.permutation(te.shape[0])
            tgt, ev = te[perm[: cfg["target"]]], perm[cfg["target"]: cfg["target"] + cfg["eval"]]
            picks: dict[str, np.ndarray] = {}
            picks["gio"], _ = run_gio(x, tgt, params, rs)
            picks["exact greedy"], _ = exact_greedy(x, tgt, cfg["budget"], rs)
            more, notes = baseline_picks(x, tgt, cfg["budget"], rs, ("knn", "herding", "random", *PEERS))
            picks.update(more)
            peer_notes.update(notes)  # e.g. DSIR wants text, not image features
            for m, idx in picks.items():
                rows.append({"corrupted": level, "method": m, "seed": rs, "size": int(idx.size),
                             "clean_share": float((~bad[idx]).mean()),
                             "accuracy": accuracy(x, y, idx, te[ev], d["yte"][ev], rs)})
            logger.info("quality_levels seed %d level %.1f done", rs, level)
    summary = summarize_rows(rows, ["corrupted", "method"], ["size", "clean_share", "accuracy"])
    methods = list(QL_METHODS) + [m for m in peers if m not in peer_notes]
    return {"config": cfg, "methods": methods, "peers_found": sorted(peers), "peer_notes": peer_notes,
            "gio_params": params, "rows": rows, "summary": summary}


def table_quality_levels(res: Row) -> str:
    parts = []
    for metric, title in (("clean_share", "clean share of the picks"), ("accuracy", "accuracy on clean test")):
        parts.append(f"{title} (%), budget {res['config']['budget']}:\n\n"
                     + pivot(res["summary"], ["method"], "corrupted", metric, pct=True))
    return "\n\n".join(parts)


QT_CFG = {
    "small": {"pool": 120, "target": 40, "budget": 30, "levels": [0.1, 0.9], "seeds": [0, 1]},
    "full": {"pool": 2000, "target": 300, "budget": 300, "levels": [0.1, 0.3, 0.5, 0.7, 0.9], "seeds": [0, 1, 2]},
}
QT_CORRUPTIONS = ("word order shuffled", "characters swapped", "sentences spliced")


def corrupt_sentence(text: str, other: str, kind: int, rng: np.random.Generator) -> str:
    """One corrupted sentence: 0 shuffles the words; 1 swaps two adjacent letters in every word of 3+ letters;
    2 splices the first half of ``text`` (by words) to the second half of ``other``."""
    words = text.split()
    if kind == 0:
        return " ".join(words[i] for i in rng.permutation(len(words)))
    if kind == 1:
        out = []
        for w in words:
            if len(w) >= 3:
                j = int(rng.integers(0, len(w) - 1))
                w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
            out.append(w)
        return " ".join(out)
    ow = other.split()
    return " ".join(words[: max(1, len(words) // 2)] + ow[len(ow) // 2:])


def study_quality_text(size: str, seed: int) -> Row:
    """The BBC News quality mix (text, where DSIR applies) at several corrupted shares: the clean share picked.

    The pool rows, the target rows and one corrupted version of every pool sentence are drawn once (from the base
    seed), so the corrupted sentences are embedded once (all-MiniLM-L6-v2, cached on disk); each seed then draws
    which pool rows are corrupted at each level, and the methods' seeds.
    """
    from common import bbc_corpus, bbc_corpus_embeddings

    from gioselect.embed import embed_texts

    cfg = QT_CFG[size]
    records = bbc_corpus()
    emb = bbc_corpus_embeddings(records)
    rng = np.random.default_rng([seed, 7])
    rows_ = rng.choice(len(records), cfg["pool"] + cfg["target"], replace=False)
    pool_r, tgt_r = rows_[: cfg["pool"]], rows_[cfg["pool"]:]
    clean_txt = [records[i]["text"] for i in pool_r]
    kinds = np.arange(pool_r.size) % len(QT_CORRUPTIONS)
    others = rng.choice(len(records), pool_r.size)
    bad_txt = [corrupt_sentence(t, records[o]["text"], int(k), rng) for t, o, k in zip(clean_txt, others, kinds,
                                                                                          strict=True)]
    t0 = time.monotonic()
    bad_emb, _ = embed_texts(bad_txt, cache=True)
    embed_seconds = round(time.monotonic() - t0, 1)
    bad_emb = np.asarray(bad_emb, dtype=np.float32)
    tgt, tgt_txt = emb[tgt_r], [records[i]["text"] for i in tgt_r]
    peers = registered_peers()
    peer_notes: dict[str, str] = {}
    rows: list[Row] = []
    params = gio_params(cfg["budget"], unit_norm=True)
    b = cfg["budget"]
    for s in cfg["seeds"]:
        rs = seed * 1000 + s
        for level in cfg["levels"]:
            g = np.random.default_rng([rs, 8, round(100 * level)])
            bad = np.zeros(pool_r.size, dtype=bool)
            bad[g.permutation(pool_r.size)[: round(level * pool_r.size)]] = True
            x = np.where(bad[:, None], bad_emb, emb[pool_r]).astype(np.float32)
            texts = [bt if is_bad else ct for ct, bt, is_bad in zip(clean_txt, bad_txt, bad, strict=True)]
            picks: dict[str, np.ndarray] = {}
            picks["gio"], _ = run_gio(x, tgt, params, rs)
            picks["exact greedy"], _ = exact_greedy(x, tgt, b, rs)
            more, notes = baseline_picks(x, tgt, b, rs, ("knn", "herding", "random", *PEERS), texts=texts,
                                         tgt_texts=tgt_txt)
            picks.update(more)
            peer_notes.update(notes)
            for m, idx in picks.items():
                rows.append({"corrupted": level, "method": m, "seed": rs, "size": int(idx.size),
                             "clean_share": float((~bad[idx]).mean()) if idx.size else math.nan})
            logger.info("quality_text seed %d level %.1f done", rs, level)
    summary = summarize_rows(rows, ["corrupted", "method"], ["size", "clean_share"])
    methods = list(QL_METHODS) + [m for m in peers if m not in peer_notes]
    return {"config": cfg, "methods": methods, "peers_found": sorted(peers), "peer_notes": peer_notes,
            "corruptions": list(QT_CORRUPTIONS), "embed_seconds": embed_seconds, "gio_params": params,
            "examples": [{"clean": c, "corrupted": t, "kind": QT_CORRUPTIONS[int(k)]}
                         for c, t, k in list(zip(clean_txt, bad_txt, kinds, strict=True))[:3]],
            "rows": rows, "summary": summary}


def table_quality_text(res: Row) -> str:
    return (f"clean share of the picks (%), budget {res['config']['budget']}:\n\n"
            + pivot(res["summary"], ["method"], "corrupted", "clean_share", pct=True))


# ---------------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------------
RUNNERS: dict[str, tuple[Callable[[str, int], Row], Callable[[Row], str]]] = {
    "target_size": (study_target_size, table_target_size),
    "ablation": (study_ablation, table_ablation),
    "sparse_pools": (study_sparse_pools, table_sparse_pools),
    "data_types": (study_data_types, table_data_types),
    "active_learning": (study_active_learning, table_active_learning),
    "quality_levels": (study_quality_levels, table_quality_levels),
    "quality_text": (study_quality_text, table_quality_text),
}


def run_study(name: str, size: str, seed: int, out: Path) -> tuple[Path, Row, str]:
    """Run one study, write its JSON, return ``(path, result, markdown table)``."""
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    fn, table = RUNNERS[name]
    t0 = time.monotonic()
    with threadpool_limits(1):  # one BLAS thread: the machine is shared, and threads there only contend
        res = fn(size, seed)
    res = {"study": name, "size": size, "seed": seed,
           "command": f"python experiments/studies.py {name} --size {size} --seed {seed}",
           "gio_defaults": GIOSelector().get_params(), **res,
           "wall_time_s": round(time.monotonic() - t0, 1),
           "date": time.strftime("%Y-%m-%d", time.gmtime())}
    path = out / f"{NAME}_{name}_{size}.json"
    write_json(path, jsonable(res))
    return path, res, table(res)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", choices=(*STUDIES, "all"))
    ap.add_argument("--size", choices=("small", "full"), default="small")
    ap.add_argument("--seed", type=int, default=0, help="base seed; every random choice derives from it")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    for name in STUDIES if args.study == "all" else (args.study,):
        try:
            path, res, tbl = run_study(name, args.size, args.seed, args.out)
        except FileNotFoundError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return 2
        print(f"\n## {name} ({res['wall_time_s']} s)\n\n{tbl}\n\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
