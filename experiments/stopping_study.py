"""Automatic size and defaults: where each stop rule lands on GIO's own curve, and which GIO mode to default to.

Tasks (each a pool that is a mixture of target-like rows and others, so "how many" has an answer):

* ``bbc`` - BBC News sentences (all-MiniLM-L6-v2, 384-D, unit norm; ``experiments/common.py``'s corpus). For
  each target domain, the target is sentences of 10% of the domain's articles (held out of the pool), split
  in half: one half to select with, one to measure energy distance on. The pool is ``pool`` sentences drawn
  evenly from the five domains' other articles, so about 1/5 is the target's domain. Yardstick: F1 of
  retrieving the pool's rows of the target's domain.
* ``fashion`` - Fashion-MNIST quality mix: a pool of training images of which half are corrupted (noise,
  occlusion, blur, as in ``experiments/fashion_mnist.py``), a clean target from the test set; PCA-50 pixel
  features fitted on the pool. Yardsticks: F1 of retrieving the clean rows, and the accuracy on clean test
  images of a 1-NN classifier trained on the selection (labels the selector never sees).
* ``mixture`` - 16-D Gaussian mixture: the target is 60/30/10 over three components; the pool holds those
  three in the same proportions (40% of the pool) and two other components (60%). Yardstick: F1 of
  retrieving the three target components' rows, and energy distance to a held-out target sample.

For every task, seed and GIO mode (``relaxed-jump``, ``relaxed-mean``, ``exact``) GIO runs to a large budget
(the curve: the yardsticks at a grid of prefix sizes; with a budget no stop rule fires, so every prefix is the
selection that budget would give), once with the reference's ``increase`` stop (where it ends), and the size
estimator (:func:`gioselect.sizing.estimate_target_rows`, the ``stop_criterion="estimate"`` size) is scored on
the same curve. Reported: mean +- std over seeds of each yardstick at the best size on the curve, at the
estimate's size (``auto`` in the tables: the default before the F1 rule) and at the ``increase`` size.

Usage: ``python experiments/stopping_study.py --size full [--seed 0] [--out experiments/results]``;
``--size small`` runs in seconds (the tests use it); ``--tasks bbc,mixture`` picks tasks.

The suite's tasks: ``--suite bbc-business,mixture,...`` builds each with ``experiments/suite/tasks.py`` and, per
seed, estimates the size, keeps the classifier's out-of-fold score of every pool row and runs GIO (the library's
defaults) once, forced to 2x the larger of the estimate and the true count; it appends one JSON line per task and
seed to ``<out>/stopping_suite_<size>.jsonl`` (a rerun skips what is there). ``--summarize FILE[,FILE]`` prints the
size rules on those curves: the best size, the estimate, the true count and the F1-along-GIO's-order rule
(:func:`f1_along_order`). ``--implemented TASKS --rules f1,estimate`` runs the rules through the library (each
``stop_criterion`` with no budget) and scores them on one forced run (:func:`implemented_case`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import DOMAINS, bbc_corpus, bbc_corpus_embeddings, jsonable, markdown_table, result_paths, write_json

from gioselect import GIOSelector
from gioselect.evaluate import energy_distance
from gioselect.sizing import estimate_target_rows

NAME = "stopping_study"
MODES: dict[str, dict[str, Any]] = {
    "relaxed-jump": {"objective": "relaxed", "v_init": "jump"},
    "relaxed-mean": {"objective": "relaxed", "v_init": "mean"},
    "exact": {"objective": "exact"},
}
CONFIG: dict[str, dict[str, Any]] = {
    "small": {"seeds": 2, "bbc": {"pool": 600, "domains": ("tech",), "target": 60},
              "fashion": {"pool": 400, "target": 60, "pca": 10},
              "mixture": {"pool": 500, "target": 80, "d": 8}, "curve_factor": 2.0, "points": 8},
    "full": {"seeds": 3, "bbc": {"pool": 5000, "domains": ("business", "sports", "tech"), "target": 200},
             "fashion": {"pool": 2000, "target": 200, "pca": 50},
             "mixture": {"pool": 3000, "target": 300, "d": 16}, "curve_factor": 2.0, "points": 14},
}

logger = logging.getLogger(NAME)


# -- tasks -------------------------------------------------------------------------------------------------
def task_bbc(cfg: dict[str, Any], domain: str, seed: int, cache: dict[str, Any]) -> dict[str, Any]:
    if "emb" not in cache:
        recs = bbc_corpus()
        cache["emb"] = bbc_corpus_embeddings(recs)
        cache["dom"] = np.array([DOMAINS.index(r["domain"]) for r in recs])
        cache["art"] = np.array([r["article"] for r in recs])
    emb, dom, art = cache["emb"], cache["dom"], cache["art"]
    rng = np.random.default_rng([seed, 1])
    di = DOMAINS.index(domain)
    arts = np.unique(art[dom == di])
    held = rng.choice(arts, size=max(2, arts.shape[0] // 10), replace=False)
    in_target = (dom == di) & np.isin(art, held)
    t_rows = rng.permutation(np.flatnonzero(in_target))[: 2 * cfg["target"]]
    per = cfg["pool"] // len(DOMAINS)
    pool_rows = np.concatenate([rng.choice(np.flatnonzero((dom == j) & ~in_target), per, replace=False)
                                for j in range(len(DOMAINS))])
    pool_rows = rng.permutation(pool_rows)
    half = t_rows.shape[0] // 2
    return {"pool": emb[pool_rows], "target": emb[t_rows[:half]], "holdout": emb[t_rows[half:]],
            "positive": dom[pool_rows] == di, "labels": None}


def task_fashion(cfg: dict[str, Any], seed: int, cache: dict[str, Any]) -> dict[str, Any]:
    import fashion_mnist as fm

    if "fm" not in cache:
        data_dir = fm.find_data()
        if data_dir is None:
            raise FileNotFoundError("Fashion-MNIST not found: apt-get install -y dataset-fashion-mnist")
        cache["fm"] = fm.load_data(data_dir)
    d = cache["fm"]
    rng = np.random.default_rng([seed, 2])
    idx = rng.choice(d["xtr"].shape[0], cfg["pool"], replace=False)
    imgs = d["xtr"][idx].astype(np.float32) / 255.0
    bad = rng.permutation(cfg["pool"]) < cfg["pool"] // 2
    imgs[bad] = fm.corrupt(imgs[bad], rng.integers(0, 3, int(bad.sum())), rng)
    te = rng.permutation(d["xte"].shape[0])
    t_idx, ev_idx = te[: 2 * cfg["target"]], te[2 * cfg["target"]: 2 * cfg["target"] + 2000]
    flat = imgs.reshape(imgs.shape[0], -1)
    mu = flat.mean(axis=0)
    _, _, vt = np.linalg.svd(flat - mu, full_matrices=False)
    axes = vt[: cfg["pca"]].T

    def emb(x: np.ndarray) -> np.ndarray:
        return np.asarray((x.reshape(x.shape[0], -1).astype(np.float32) - mu) @ axes, dtype=np.float32)

    tx = emb(d["xte"][t_idx].astype(np.float32) / 255.0)
    half = tx.shape[0] // 2
    return {"pool": emb(imgs), "target": tx[:half], "holdout": tx[half:], "positive": ~bad,
            "labels": d["ytr"][idx], "eval_x": emb(d["xte"][ev_idx].astype(np.float32) / 255.0),
            "eval_y": d["yte"][ev_idx]}


def task_mixture(cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, 3])
    dim = cfg["d"]
    centers = rng.normal(0.0, 1.0, (5, dim)) * 3.0
    w_t = np.array([0.6, 0.3, 0.1])

    def draw(n: int, comps: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lab = rng.choice(comps, size=n, p=w / w.sum())
        return (centers[lab] + rng.normal(0.0, 1.0, (n, dim))).astype(np.float32), lab

    n_pos = int(0.4 * cfg["pool"])
    pos, _ = draw(n_pos, np.arange(3), w_t)
    neg, _ = draw(cfg["pool"] - n_pos, np.array([3, 4]), np.array([0.5, 0.5]))
    pool = np.vstack([pos, neg])
    positive = np.arange(pool.shape[0]) < n_pos
    perm = rng.permutation(pool.shape[0])
    t, _ = draw(2 * cfg["target"], np.arange(3), w_t)
    return {"pool": pool[perm], "target": t[: cfg["target"]], "holdout": t[cfg["target"]:],
            "positive": positive[perm], "labels": None}


# -- yardsticks --------------------------------------------------------------------------------------------
def f1(positive: np.ndarray, ids: np.ndarray) -> float:
    if ids.shape[0] == 0:
        return 0.0
    tp = float(positive[ids].sum())
    prec, rec = tp / ids.shape[0], tp / max(1, int(positive.sum()))
    return 0.0 if tp == 0 else 2 * prec * rec / (prec + rec)


def accuracy_1nn(task: dict[str, Any], ids: np.ndarray) -> float:
    if ids.shape[0] == 0:
        return 0.0
    tr = task["pool"][ids].astype(np.float64)
    ex = task["eval_x"].astype(np.float64)
    d2 = (ex * ex).sum(1)[:, None] - 2 * ex @ tr.T + (tr * tr).sum(1)[None, :]
    pred = task["labels"][ids][np.argmin(d2, axis=1)]
    return float((pred == task["eval_y"]).mean())


def measures(task: dict[str, Any], ids: np.ndarray, seed: int) -> dict[str, float]:
    out = {"size": float(ids.shape[0]), "f1": f1(task["positive"], ids),
           "precision": float(task["positive"][ids].mean()) if ids.shape[0] else 0.0}
    if ids.shape[0] >= 2:
        out["energy"] = float(energy_distance(task["holdout"], task["pool"][ids], max_rows=1000, seed=seed))
    if task.get("labels") is not None:
        out["accuracy"] = accuracy_1nn(task, ids)
    return out


def grid(top: int, points: int) -> list[int]:
    g = np.unique(np.round(np.geomspace(10, top, points)).astype(int))
    return [int(s) for s in g if s >= 2]


# -- one run -----------------------------------------------------------------------------------------------
def run_case(task: dict[str, Any], seed: int, conf: dict[str, Any]) -> dict[str, Any]:
    pool, target = task["pool"], task["target"]
    n_pos = int(task["positive"].sum())
    t0 = time.perf_counter()
    est = estimate_target_rows(pool, target, seed=seed)
    est_s = time.perf_counter() - t0
    top = min(pool.shape[0], int(conf["curve_factor"] * max(n_pos, est.rows)))
    sizes = sorted(set(grid(top, conf["points"])) | {max(2, min(est.rows, top))})
    yard = "accuracy" if task.get("labels") is not None else "f1"
    out: dict[str, Any] = {"true_rows": n_pos, "estimate": est.as_dict(), "estimate_seconds": est_s,
                           "yardstick": yard, "modes": {}}
    for mode in conf["modes"]:
        params = MODES[mode]
        t0 = time.perf_counter()
        # The exact greedy's picks cost a full pass over the candidates once its picks cover the target (no
        # candidate lowers the estimate, so lazy evaluation cannot skip any): its curve stops at 1.25x the
        # automatic size.
        mtop = top if mode != "exact" else min(top, max(20, int(1.25 * est.rows)))
        sel = GIOSelector(seed=seed, budget=mtop, **params).fit(pool, target)
        ids = sel.selected_indices_
        curve = [measures(task, ids[:s], seed) for s in sizes if s <= ids.shape[0]]
        secs = time.perf_counter() - t0
        inc = GIOSelector(seed=seed, stop_criterion="increase", **params).fit(pool, target).selected_indices_
        best = max(curve, key=lambda r: r[yard])
        auto = measures(task, ids[: min(est.rows, ids.shape[0])], seed)
        out["modes"][mode] = {"curve": curve, "best": best, "auto": auto,
                              "increase": measures(task, inc, seed), "seconds": secs}
        logger.info("  %s: best %s %.3f at %d; auto %.3f at %d; increase %.3f at %d (%.0fs)", mode, yard,
                    best[yard], best["size"], auto[yard], auto["size"], out["modes"][mode]["increase"][yard],
                    inc.shape[0], secs)
    return out


# -- the suite's tasks: one long run per (task, seed), every prefix scored --------------------------------------
def suite_case(name: str, size: str, seed: int, points: int = 24) -> dict[str, Any]:
    """One suite task (experiments/suite/tasks.py) at one seed: the size estimate, the classifier's scores and
    one GIO run (the library's defaults) forced to 2x the larger of the estimate and the true count.

    Mask tasks keep, per pick, whether it is target-like (F1 at every prefix is then exact); test-accuracy
    tasks score ``points`` geometric prefix sizes plus the estimate (a logistic regression per size)."""
    from suite.core import TASKS, run_gio, score

    from gioselect.sizing import _estimate

    task = TASKS[name].build(size, seed)
    pool, target = task.pool, task.target
    t0 = time.perf_counter()
    est, g_t, g_u = _estimate(pool, target, seed=seed, sample_rows=20000, folds=5, n_components=64, l2=1e-3,
                              block_rows=65536, pool_rows=None)
    est_s = time.perf_counter() - t0
    n_pos = int(task.mask.sum()) if task.mask is not None else -1
    top = min(pool.shape[0], int(2 * max(n_pos, est.rows)))
    t0 = time.perf_counter()
    ids, info = run_gio(task, {}, top, seed)
    secs = time.perf_counter() - t0
    out: dict[str, Any] = {"task": name, "seed": seed, "metric": task.metric, "pool_rows": int(pool.shape[0]),
                           "true_rows": n_pos, "estimate": est.as_dict(), "estimate_seconds": est_s,
                           "run_seconds": secs, "top": top, "ids": ids.tolist(),
                           "scored_pool": bool(g_u.shape[0] == pool.shape[0]),
                           "n_target": int(g_t.shape[0]), "candidates": info.get("candidates")}
    if out["scored_pool"]:
        out["pool_scores"] = g_u.tolist()
    if task.mask is not None:
        out["hits"] = task.mask[ids].astype(int).tolist()
    if task.metric == "test accuracy":
        sizes = sorted(set(grid(ids.shape[0], points)) | {max(2, min(est.rows, ids.shape[0]))})
        out["accuracy_curve"] = [{"size": s, "accuracy": score(task, ids[:s], seed)["accuracy"]} for s in sizes]
    logger.info("%s seed %d: estimate %d (truth %d), run to %d in %.0f s", name, seed, est.rows, n_pos, top, secs)
    return out


def implemented_case(name: str, size: str, seed: int, rules: Sequence[str] = ("f1",)) -> dict[str, Any]:
    """The size rules through the library (``stop_criterion`` in ``rules``: ``"f1"``, ``"auto"``,
    ``"estimate"``; the suite's ``select_quantized`` call), against the best prefix of one GIO run (the library's
    defaults) forced to 2x the larger of the rules' sizes and the true count (mask tasks only): each rule's gap,
    computed from what the implemented code selected. The first rule's numbers are also the record's top level."""
    from suite.core import TASKS, run_gio

    task = TASKS[name].build(size, seed)
    if task.mask is None:
        raise ValueError(f"{name}: --implemented needs a mask task (F1 yardstick)")
    n_pos = int(task.mask.sum())
    picked: dict[str, tuple[np.ndarray, dict[str, Any], float]] = {}
    for rule in rules:
        t0 = time.perf_counter()
        ids, info = run_gio(task, {"stop_criterion": rule}, None, seed)
        picked[rule] = (ids, info, time.perf_counter() - t0)
    top = min(task.pool.shape[0], int(2 * max(n_pos, *(v[0].shape[0] for v in picked.values()))))
    t0 = time.perf_counter()
    curve, _ = run_gio(task, {}, top, seed)
    curve_s = time.perf_counter() - t0
    f = _f1_prefixes(task.mask[curve].astype(float), n_pos)
    b = int(np.argmax(f))
    per_rule: dict[str, dict[str, Any]] = {}
    for rule, (ids, info, secs) in picked.items():
        got = 2.0 * float(task.mask[ids].sum()) / (ids.shape[0] + n_pos)
        per_rule[rule] = {"rule_rows": int(ids.shape[0]), "rule_f1": got, "gap": float(f[b]) - got,
                          "stop_reason": info["stop_reason"], "rule_seconds": secs,
                          "same_prefix": bool(np.array_equal(np.sort(curve[: ids.shape[0]]), np.sort(ids)))}
    first = per_rule[rules[0]]
    return {"task": name, "seed": seed, "true_rows": n_pos, **first, "best_rows": b + 1, "best_f1": float(f[b]),
            "curve_rows": int(curve.shape[0]), "curve_seconds": curve_s, "clusters": int(task.clusters or 0),
            "rules": per_rule}


def run_suite_curves(names: Sequence[str], size: str, seeds: Sequence[int], path: Path) -> None:
    """:func:`suite_case` for every task and seed, one JSON line each appended to ``path`` (a partial run keeps
    what finished)."""
    import json

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    done = set()
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            done.add((r["task"], r["seed"]))
    for name in names:
        for s in seeds:
            if (name, s) in done:
                continue
            rec = suite_case(name, size, s)
            with path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(jsonable(rec)) + "\n")


def _f1_prefixes(hits: np.ndarray, n_pos: int) -> np.ndarray:
    """F1 of retrieving the ``n_pos`` target-like rows with each prefix of the picks (``hits[i]``: pick i is one)."""
    tp = np.cumsum(hits)
    return 2.0 * tp / (np.arange(1, hits.shape[0] + 1) + n_pos)


def f1_along_order(rec: dict[str, Any]) -> int:
    """The size that maximises the plug-in F1 along GIO's order: each pick counted as target-like with the
    classifier's posterior (Elkan & Noto's ``(1 - c) / c * g / (1 - g)``, clipped to [0, 1]), the target-like
    total as the posteriors' pool sum. Needs the pool's out-of-fold scores (pools up to 20,000 rows)."""
    g = np.clip(np.asarray(rec["pool_scores"], dtype=float), 0.0, 1.0 - 1e-12)
    c = rec["estimate"]["diagnostics"]["c"]
    w = np.clip((1.0 - c) / c * g / (1.0 - g), 0.0, 1.0)
    ids = np.asarray(rec["ids"], dtype=np.int64)
    f = 2.0 * np.cumsum(w[ids]) / (np.arange(1, ids.shape[0] + 1) + w.sum())
    return int(np.argmax(f)) + 1


def suite_table(path: Path) -> str:
    """The size rules on every (task, seed) curve in ``path`` (a ``--suite`` run): the yardstick's best on the
    curve, and at the automatic size (``estimate``), at the true count (mask tasks), and at the F1-along-order
    size (:func:`f1_along_order`); mean +- std over seeds."""
    import json

    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        by.setdefault(r["task"], []).append(r)
    rows = []
    for task, rs in by.items():
        cells: dict[str, list[tuple[float, float]]] = {"best": [], "estimate": [], "truth": [], "f1-order": []}
        yard = "accuracy" if rs[0]["metric"] == "test accuracy" else "f1"
        for r in rs:
            if yard == "f1":
                f = _f1_prefixes(np.asarray(r["hits"], dtype=float), r["true_rows"])
                b = int(np.argmax(f))
                cells["best"].append((b + 1, f[b]))
                for key, n in (("estimate", r["estimate"]["rows"]), ("truth", r["true_rows"]),
                               ("f1-order", f1_along_order(r) if r.get("pool_scores") else -1)):
                    if n > 0:
                        k = min(n, f.shape[0])
                        cells[key].append((k, f[k - 1]))
            else:
                pts = r["accuracy_curve"]
                best = max(pts, key=lambda q: q["accuracy"])
                cells["best"].append((best["size"], best["accuracy"]))
                n = min(r["estimate"]["rows"], len(r["ids"]))
                at = [q for q in pts if q["size"] == max(2, n)]
                if at:
                    cells["estimate"].append((at[0]["size"], at[0]["accuracy"]))
        best_v = [v for _, v in cells["best"]]

        def cell(key: str, cells: dict[str, list[tuple[float, float]]] = cells, best_v: list[float] = best_v
                 ) -> str:
            c = cells[key]
            if not c:
                return "n/a"
            gaps = [b - v for b, (_, v) in zip(best_v, c, strict=False)]
            return (f"{summarize([v for _, v in c])} @ {size_summary([s for s, _ in c])} "
                    f"(gap {summarize(gaps)})")

        truth = size_summary([r["true_rows"] for r in rs]) if yard == "f1" else "n/a"
        rows.append([task, yard, str(len(rs)), str(rs[0]["pool_rows"]), truth,
                     f"{summarize([v for _, v in cells['best']])} @ {size_summary([s for s, _ in cells['best']])}",
                     cell("estimate"), cell("truth"), cell("f1-order")])
    return markdown_table(["task", "yardstick", "seeds", "pool", "target-like rows", "best on curve @ size",
                           "auto (estimate) @ size (gap)", "true count @ size (gap)",
                           "F1 along GIO's order @ size (gap)"], rows)


def summarize(values: Sequence[float]) -> str:
    a = np.asarray([v for v in values if v == v], dtype=float)
    if a.size == 0:
        return "n/a"
    return f"{a.mean():.3f} ± {a.std():.3f}" if a.size > 1 else f"{a.mean():.3f}"


def size_summary(values: Sequence[float]) -> str:
    a = np.asarray(values, dtype=float)
    return f"{a.mean():.0f} ± {a.std():.0f}"


def tables(results: dict[str, list[dict[str, Any]]]) -> str:
    parts = []
    rows = []
    for case, runs in results.items():
        e = [r["estimate"] for r in runs]
        rows.append([case, size_summary([r["true_rows"] for r in runs]), size_summary([x["rows"] for x in e]),
                     summarize([x["diagnostics"]["auc"] for x in e]), summarize([x["diagnostics"]["c"] for x in e]),
                     f"{np.mean([r['estimate_seconds'] for r in runs]):.1f}"])
    parts.append(markdown_table(["case", "target-like rows (truth)", "auto size (estimate)", "AUC", "c",
                                 "seconds"], rows))
    rows = []
    for case, runs in results.items():
        yard = runs[0]["yardstick"]
        for mode in MODES:
            if mode not in runs[0]["modes"]:
                continue
            ms = [r["modes"][mode] for r in runs]
            def at(key: str, ms: list[dict[str, Any]] = ms, yard: str = yard) -> str:
                return f"{summarize([m[key][yard] for m in ms])} @ {size_summary([m[key]['size'] for m in ms])}"

            rows.append([case, mode, yard, at("best"), at("auto"),
                         at("increase"),
                         summarize([m["best"][yard] - m["auto"][yard] for m in ms]),
                         summarize([m["auto"].get("energy", float("nan")) for m in ms]),
                         f"{np.mean([m['seconds'] for m in ms]):.0f}"])
    parts.append(markdown_table(["case", "mode", "yardstick", "best on curve @ size", "auto @ size",
                                 "increase @ size", "best - auto", "energy @ auto", "curve s"], rows))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=list(CONFIG), default="small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", default="bbc,fashion,mixture")
    ap.add_argument("--modes", default=",".join(MODES), help="GIO modes to compare (default all)")
    ap.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the size's)")
    ap.add_argument("--tag", default="", help="suffix of the result files")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--suite", default="", help="comma-separated suite tasks: write their curves (one JSON line "
                    "per task and seed) to <out>/stopping_suite_<size>.jsonl instead of the study above")
    ap.add_argument("--implemented", default="", help="comma-separated suite mask tasks: the F1 rule through the "
                    "library (stop_criterion='f1') against the best size on GIO's curve, one JSON line per task and "
                    "seed in <out>/stopping_implemented_<size>.jsonl")
    ap.add_argument("--rules", default="f1", help="with --implemented: comma-separated stop_criterion values to "
                    "measure on the same curve (f1, auto, estimate; default f1)")
    ap.add_argument("--summarize", default="", help="comma-separated .jsonl files of --suite runs: print their table")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    logger.setLevel(logging.INFO)
    if args.summarize:
        print("\n\n".join(suite_table(Path(p)) for p in args.summarize.split(",")))
        return 0
    if args.implemented:
        import json

        n_seeds = CONFIG[args.size]["seeds"] if args.seeds is None else args.seeds
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        args.out.mkdir(parents=True, exist_ok=True)
        with (args.out / f"stopping_implemented_{args.size}.jsonl").open("a", encoding="utf-8") as fh:
            for name in [t for t in args.implemented.split(",") if t]:
                for s in [args.seed + i for i in range(n_seeds)]:
                    rec = implemented_case(name, args.size, s, [r for r in args.rules.split(",") if r])
                    print(json.dumps(rec), flush=True)
                    fh.write(json.dumps(rec) + "\n")
                    fh.flush()
        return 0
    if args.suite:
        n_seeds = CONFIG[args.size]["seeds"] if args.seeds is None else args.seeds
        args.out.mkdir(parents=True, exist_ok=True)
        run_suite_curves([t for t in args.suite.split(",") if t], args.size,
                         [args.seed + i for i in range(n_seeds)], args.out / f"stopping_suite_{args.size}.jsonl")
        return 0
    conf = dict(CONFIG[args.size])
    conf["modes"] = [m for m in args.modes.split(",") if m]
    bad = [m for m in conf["modes"] if m not in MODES]
    if bad:
        ap.error(f"--modes: unknown {bad}; choose from {list(MODES)}")
    seeds = [args.seed + i for i in range(conf["seeds"] if args.seeds is None else args.seeds)]
    started = time.time()
    results: dict[str, list[dict[str, Any]]] = {}
    cache: dict[str, Any] = {}
    for name in args.tasks.split(","):
        cases: list[tuple[str, Any]] = []
        if name == "bbc":
            cases = [(f"bbc-{dom}", lambda s, dom=dom: task_bbc(conf["bbc"], dom, s, cache))
                     for dom in conf["bbc"]["domains"]]
        elif name == "fashion":
            cases = [("fashion-quality", lambda s: task_fashion(conf["fashion"], s, cache))]
        elif name == "mixture":
            cases = [("mixture-60/30/10", lambda s: task_mixture(conf["mixture"], s))]
        else:
            ap.error(f"--tasks: unknown task {name!r}")
        for case, make in cases:
            for s in seeds:
                logger.info("%s seed %d", case, s)
                results.setdefault(case, []).append(run_case(make(s), s, conf))
    text = tables(results)
    print(f"stopping_study --size {args.size} --seed {args.seed} (seeds {seeds}), {time.time() - started:.0f} s")
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path, _ = result_paths(args.out, NAME + args.tag, args.size)
    md_path = json_path.with_suffix(".md")
    write_json(json_path, {"size": args.size, "seeds": seeds, "config": jsonable(conf), "results": jsonable(results)})
    md_path.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
