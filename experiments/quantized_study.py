"""Quantised selection: faithful candidates and the row-level pass, against unquantised GIO on the same data.

Two tasks, every target domain in turn:

* **BBC** (:func:`common.bbc_corpus`, every sentence, all-MiniLM-L6-v2 unit embeddings): per domain, 10% of its
  articles are held out; the target is ``target`` sentences of them; the pool is every sentence of the other
  articles of all five domains (about 38,000 rows).
* **Fashion-MNIST**: the pool is the 60,000 training images, the target ``target`` test images of one class;
  features are a 50-component PCA fitted on the pool (:class:`gioselect.embed.ImagePCA`).

Domain precision is the share of selected rows from the target's domain (class). Methods:

* ``auto`` sizes - GIO's own stopping rule (the library defaults: ``v_init="jump"``, ``stop_criterion=
  "increase"``, ``max_iter=100``): unquantised, and quantised with raw centroids, renormalised centroids or
  medoids as candidates. A quantised run's size is reported two ways: ``rows`` (every chosen cluster exploded
  whole, the paper's explode) and ``picks`` (one row per accepted pick, what the row-level pass returns).
* ``equal`` size S = the number of pool rows of the target's domain (Fashion-MNIST: 6,000) or, on BBC,
  ``bbc_equal_size`` rows (1,000 in the full run: unquantised GIO at 7,900 picks over 38,000 x 384 candidates
  takes too long for five domains on 2 shared cores): unquantised GIO filled to S rows
  (``stop_criterion="data_size"``, ``budget=S``), the kNN-retrieval baseline, and quantised variants
  ``<candidates>/<pass>``: GIO on the candidates with cluster sizes counted to ``over * S`` rows, then
  ``none`` (explode whole clusters in selection order, the last one cut at random: the old behaviour, over=1),
  ``knn`` / ``relaxed`` (rank the rows of the chosen clusters by mean distance to their k nearest target points /
  by their term of the relaxed objective, keep the S best), or ``gio`` (GIO again on the rows of the chosen
  clusters, filled to S).

Run: ``python experiments/quantized_study.py --size small|full [--seed S]``; writes
``results/quantized_study_<size>.json`` and prints the tables.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    DOMAINS,
    bbc_corpus,
    bbc_corpus_embeddings,
    make_parser,
    markdown_table,
    run_header,
    setup_logging,
    write_json,
)

from gioselect.evaluate import knn_retrieval
from gioselect.optimize import GIOParams
from gioselect.quantize import (
    ClusterMembers,
    assign_blocks,
    drop_empty,
    explode,
    kmeans_centroids,
    medoid_ids,
    on_unit_sphere,
    refine,
    training_sample_indices,
)
from gioselect.selector import make_search

logger = logging.getLogger("experiments.quantized_study")

SETTINGS: dict[str, dict[str, Any]] = {
    "small": {"bbc_domains": DOMAINS[:2], "bbc_sentences_per_domain": 1500, "fm_classes": [0], "fm_rows": 6000,
              "target": 200, "clusters": [100], "seeds": 1, "gio_rows": True, "bbc_equal_size": 300},
    "full": {"bbc_domains": DOMAINS, "bbc_sentences_per_domain": None, "fm_classes": [0, 1, 5, 7, 8],
             "fm_rows": 60000, "target": 300, "clusters": [1500], "seeds": 1, "gio_rows": False,
             "bbc_equal_size": 1000},
}
CANDIDATES = ("centroid", "renormalized", "medoid")
PASSES = ("none", "share", "knn", "relaxed")
OVER = (1.5, 2.0)


def run(search: Any) -> Any:
    for _ in search.run():
        pass
    return search


def distinct(idx: np.ndarray) -> np.ndarray:
    _, first = np.unique(idx, return_index=True)
    return np.asarray(idx, dtype=np.int64)[np.sort(first)]


def quantise(pool: np.ndarray, k: int, seed: int) -> dict[str, Any]:
    idx = training_sample_indices(pool.shape[0], k, seed=seed)
    cents = kmeans_centroids(pool[idx], k, seed=seed)
    labels, sq = assign_blocks(((s, pool[s : s + 65536]) for s in range(0, pool.shape[0], 65536)), cents,
                               pool.shape[0])
    c, sizes, labels = drop_empty(cents, labels)
    med = medoid_ids(labels, sq, c.shape[0])
    cand = {"centroid": c,
            "renormalized": (c / np.linalg.norm(c, axis=1, keepdims=True)).astype(np.float32),
            "medoid": pool[med]}
    return {"cand": cand, "sizes": sizes, "labels": labels, "members": ClusterMembers(labels, c.shape[0])}


def one_task(name: str, pool: np.ndarray, dom: np.ndarray, target: np.ndarray, target_dom: Any,
             clusters: list[int], seed: int, unit: bool, gio_rows: bool, equal_size: int | None = None
             ) -> dict[str, Any]:
    """Every method on one (pool, target); precision = share of rows with ``dom == target_dom``."""
    t0 = time.monotonic()
    in_dom = dom == target_dom
    size_eq = int(in_dom.sum()) if equal_size is None else min(int(equal_size), int(in_dom.sum()))

    def prec(idx: np.ndarray) -> float:
        return float(in_dom[idx].mean()) if idx.size else float("nan")

    base: dict[str, Any] = {} if unit else {"random_init_pct": 0.01}
    auto_p = GIOParams(**base)
    fill_p = GIOParams(**base, max_iter=None, stop_criterion="data_size", max_data_size=1.0)
    res: dict[str, Any] = {"task": name, "domain": str(target_dom), "pool_rows": int(pool.shape[0]),
                           "equal_size": size_eq, "auto": {}, "equal": {}}
    s = run(make_search(pool, target, auto_p, seed=seed))
    u = distinct(np.asarray(s.state.selected, dtype=np.int64))
    res["auto"]["unquantized"] = {"size": int(u.size), "precision": prec(u)}
    t1 = time.monotonic()
    s = run(make_search(pool, target, fill_p, seed=seed, budget=float(size_eq)))
    u = distinct(np.asarray(s.state.selected, dtype=np.int64))
    res["equal"]["unquantized"] = {"size": int(u.size), "precision": prec(u), "seconds": time.monotonic() - t1}
    kn = knn_retrieval(pool, target, size_eq)
    res["equal"]["knn_retrieval"] = {"size": int(kn.size), "precision": prec(kn)}
    logger.info("%s %s: unquantised auto %d rows, equal %d rows precision %.3f (knn %.3f) %.0f s", name,
                target_dom, res["auto"]["unquantized"]["size"], size_eq, res["equal"]["unquantized"]["precision"],
                res["equal"]["knn_retrieval"]["precision"], time.monotonic() - t0)

    def read(ids: np.ndarray) -> np.ndarray:
        return pool[ids]

    for k in clusters:
        q = quantise(pool, k, seed)
        sizes, members = q["sizes"], q["members"]
        for cname in CANDIDATES:
            cand = q["cand"][cname]
            s = run(make_search(cand, target, auto_p, seed=seed))
            picks = distinct(np.asarray(s.state.selected, dtype=np.int64))
            rows = explode(picks, members)
            byp = refine(picks, members, read, target, int(picks.size), how="knn")
            res["auto"][f"K{k}/{cname}"] = {"picks": int(picks.size), "rows": int(rows.size),
                                            "precision_rows": prec(rows), "precision_picks": prec(byp)}
            fallback = _centroid_order(cand, target)
            s = run(make_search(cand, target, fill_p, seed=seed, weights=sizes, budget=float(size_eq)))
            ch = np.asarray(s.state.selected, dtype=np.int64)
            old = explode(ch, members, limit=size_eq, seed=seed)
            res["equal"][f"K{k}/{cname}/none"] = {"size": int(old.size), "precision": prec(old)}
            for over in OVER:
                s = run(make_search(cand, target, fill_p, seed=seed, weights=sizes, budget=over * size_eq,
                                    budget_exact=True))
                ch = np.asarray(s.state.selected, dtype=np.int64)
                for how in PASSES[1:]:
                    t1 = time.monotonic()
                    ids = refine(ch, members, read, target, size_eq, how=how, over=over, fallback=fallback)
                    res["equal"][f"K{k}/{cname}/{how}/over{over:g}"] = {
                        "size": int(ids.size), "precision": prec(ids), "seconds": time.monotonic() - t1}
                if gio_rows and over == 2.0:
                    ids = refine(ch, members, read, target, int(2 * size_eq), how="none", over=1.0,
                                 fallback=fallback)
                    s = run(make_search(pool[ids], target, fill_p, seed=seed, budget=float(size_eq)))
                    sel = ids[distinct(np.asarray(s.state.selected, dtype=np.int64))]
                    res["equal"][f"K{k}/{cname}/gio/over2"] = {"size": int(sel.size), "precision": prec(sel)}
            logger.info("%s %s K=%d %s: auto %d picks / %d rows; equal none %.3f knn %.3f", name, target_dom, k,
                        cname, picks.size, rows.size, res["equal"][f"K{k}/{cname}/none"]["precision"],
                        res["equal"][f"K{k}/{cname}/knn/over2"]["precision"])
    res["seconds"] = round(time.monotonic() - t0, 1)
    return res


def _centroid_order(cand: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Clusters ordered by their candidate's mean distance to its 5 nearest target points (best first)."""
    d2 = (np.einsum("ij,ij->i", cand, cand)[:, None] + np.einsum("ij,ij->i", target, target)[None]
          - 2.0 * cand @ target.T)
    d = np.sqrt(np.maximum(np.sort(d2, axis=1)[:, :5], 0)).mean(axis=1)
    return np.argsort(d, kind="stable")


def bbc_tasks(cfg: dict[str, Any], seed: int) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, Any]]:
    recs = bbc_corpus()
    emb = bbc_corpus_embeddings(recs)
    dom = np.array([r["domain"] for r in recs])
    art = np.array([f"{r['domain']}/{r['article']}" for r in recs])
    rng = np.random.default_rng(seed)
    keep = np.ones(len(recs), dtype=bool)
    if cfg["bbc_sentences_per_domain"] is not None:
        keep[:] = False
        for d in DOMAINS:
            ids = np.flatnonzero(dom == d)
            keep[rng.choice(ids, size=min(ids.size, cfg["bbc_sentences_per_domain"]), replace=False)] = True
    tasks = []
    for d in cfg["bbc_domains"]:
        arts = np.unique(art[dom == d])
        held = set(rng.choice(arts, size=max(2, arts.size // 10), replace=False).tolist())
        is_held = np.array([a in held for a in art])
        t_ids = np.flatnonzero(is_held)
        t_ids = np.sort(rng.choice(t_ids, size=min(cfg["target"], t_ids.size), replace=False))
        p_ids = np.flatnonzero(~is_held & keep)
        tasks.append(("bbc", emb[p_ids], dom[p_ids], emb[t_ids], d))
    return tasks


def fm_tasks(cfg: dict[str, Any], seed: int) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, Any]]:
    from fashion_mnist import find_data, load_data

    from gioselect.embed import ImagePCA

    root = find_data()
    if root is None:
        logger.warning("Fashion-MNIST not found: skipped")
        return []
    data = load_data(root)
    rng = np.random.default_rng(seed)
    n = cfg["fm_rows"]
    p_ids = np.sort(rng.choice(data["xtr"].shape[0], size=n, replace=False)) if n < data["xtr"].shape[0] \
        else np.arange(data["xtr"].shape[0])
    pca = ImagePCA(50, seed=seed).fit(data["xtr"][p_ids])
    pool = pca.transform(data["xtr"][p_ids])
    test = pca.transform(data["xte"])
    tasks = []
    for c in cfg["fm_classes"]:
        ids = np.flatnonzero(data["yte"] == c)
        t = np.sort(rng.choice(ids, size=cfg["target"], replace=False))
        tasks.append(("fashion_mnist", pool, data["ytr"][p_ids], test[t], int(c)))
    return tasks


def summary(results: list[dict[str, Any]]) -> str:
    lines = []
    for task in sorted({r["task"] for r in results}):
        rs = [r for r in results if r["task"] == task]
        for part in ("auto", "equal"):
            names = list(rs[0][part])
            rows = []
            for m in names:
                cells = [m]
                for field in (["size", "picks", "rows", "precision", "precision_rows", "precision_picks"]
                              if part == "auto" else ["precision"]):
                    vals = np.array([r[part][m].get(field, np.nan) for r in rs], dtype=float)
                    if np.isnan(vals).all():
                        cells.append("")
                        continue
                    cells.append(f"{vals.mean():.3f} ± {vals.std():.3f}" if "prec" in field
                                 else f"{vals.mean():.0f} ± {vals.std():.0f}")
                rows.append(cells)
            head = (["method", "size", "picks", "rows", "precision", "precision (rows)", "precision (picks)"]
                    if part == "auto" else ["method", "precision"])
            lines.append(f"### {task}, {part} size ({len(rs)} targets)\n")
            lines.append(markdown_table(head, rows))
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = make_parser(__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="fashion_mnist,bbc", help="comma-separated: fashion_mnist, bbc")
    args = ap.parse_args(argv)
    wanted = set(args.tasks.split(","))
    setup_logging(getattr(args, "verbose", False))
    started = time.monotonic()
    cfg = SETTINGS[args.size]
    results = []
    for s in range(cfg["seeds"]):
        seed = args.seed + s
        tasks = (fm_tasks(cfg, seed) if "fashion_mnist" in wanted else []) + (
            bbc_tasks(cfg, seed) if "bbc" in wanted else [])
        for name, pool, dom, target, tdom in tasks:
            unit = on_unit_sphere(pool[:1000])
            results.append(one_task(name, pool, dom, target, tdom, cfg["clusters"], seed, unit, cfg["gio_rows"],
                                    cfg["bbc_equal_size"] if name == "bbc" else None))
            suffix = "" if len(wanted) == 2 else "_" + args.tasks
            write_json(Path(args.out) / f"quantized_study_{args.size}{suffix}.json",
                       {**run_header("quantized_study", args, started), "settings": cfg, "results": results})
    print(summary(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
