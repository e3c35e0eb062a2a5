"""Quantised selection at equal size on every target: the row-level pass's variants against unquantised GIO.

A lean companion of ``quantized_study.py`` (same tasks, same helpers; issue 13, item 2): only medoid candidates
and the passes still in question, so that every BBC domain and the Fashion-MNIST classes fit in one run.
Per task (``quantized_study.bbc_tasks`` / ``fm_tasks``: BBC every sentence, 300 held-out target sentences of one
domain, equal size ``--bbc-size`` rows; Fashion-MNIST's 60,000 training images, 300 test images of one class,
equal size 6,000), domain precision of:

* ``unquantized``: GIO on the rows filled to the equal size; ``knn_retrieval``;
* ``medoid/none``: GIO on K = 1500 medoids to the size, clusters exploded whole (the last one cut);
* ``medoid/knn/over<o>``: GIO to ``o`` times the size, the rows of those clusters ranked by mean distance to their
  5 nearest target points, the best kept (the library default is over 1.5);
* ``medoid/knn/over1.5/whole<w>``: the same, but the first chosen clusters holding ``w`` times the size are kept
  whole and only the rest is ranked (``refine(..., whole=w)``);
* ``medoid/share/over1.5``: round-robin over the target;
* ``medoid/libgio/over<o>``: the library's ``gio`` pass (``refine(..., how="gio", fill=gio_fill(...))``, the code
  the job's explode phase runs) on the same chosen clusters;
* ``library/auto`` (``--library-auto``): the whole library call, :func:`gioselect.select_quantized` with its
  defaults (``refine="auto"``) and K = 1500, ``target_clusters=0``, ``budget`` the equal size (its own K-means and
  medoids; the pass it chose is recorded in ``refine_rule``);
* prototypes (not in the library): ``medoid/gio/over<o>[/whole<w>]``, GIO run again on the rows of the chosen
  clusters covering ``o`` times the size (with ``w``: the kept-whole prefix as ``refine`` keeps it, its rows GIO's
  start set), filled to the size; ``medoid/spread/over<o>/whole<w>``, ``knn`` with only the prefix's tight
  clusters (mean member distance to the medoid at most the median) kept whole; ``--pick a|b``, per run the
  variant whose selection has the lowest k-NN KL (``kl_knn``, k = 5) to the target.

Every selection's k-NN KL to the target and each pass's CPU seconds go into the results; ``--save-dir`` writes
each task's selections (``.npz``, read by ``quantized_diagnose.py``); ``--baseline`` fills in the unquantised
numbers of a quantised-only run (``--no-unquantized``) from earlier seeded runs of the same targets.

Run: ``python experiments/quantized_precision.py --size full [--tasks bbc,fashion_mnist] [--fm-classes 5]
[--seeds 1] [--variants gio:2:0,...] [--save-dir DIR] [--baseline FILE,...] [--pick a|b]``; writes
``results/quantized_precision_<size><tag>.json`` after every task and prints the table.
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
from quantized_study import _centroid_order, distinct, quantise, run

from gioselect.divergence import kl_knn
from gioselect.evaluate import knn_retrieval
from gioselect.job.select import gio_fill
from gioselect.optimize import GIOParams
from gioselect.quantize import cover_clusters, explode, on_unit_sphere, refine
from gioselect.search import make_search

logger = logging.getLogger("experiments.quantized_precision")

#: Task sizes (the former quantized_study's settings, kept here so that the recorded results stay reproducible).
SETTINGS: dict[str, dict[str, Any]] = {
    "small": {"bbc_domains": DOMAINS[:2], "bbc_sentences_per_domain": 1500, "fm_classes": [0], "fm_rows": 6000,
              "target": 200, "clusters": [100], "seeds": 1, "gio_rows": True, "bbc_equal_size": 300},
    "full": {"bbc_domains": DOMAINS, "bbc_sentences_per_domain": None, "fm_classes": [0, 1, 5, 7, 8],
             "fm_rows": 60000, "target": 300, "clusters": [1500], "seeds": 1, "gio_rows": False,
             "bbc_equal_size": 1000},
}


def bbc_tasks(cfg: dict[str, Any], seed: int) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, Any]]:
    """(name, pool, pool domains, target, target domain) per BBC domain: 10% of its articles held out as target."""
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
    """(name, pool, pool classes, target, target class) per Fashion-MNIST class: PCA-50 features, test-set targets."""
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


#: (name, over, pass, whole) of every quantised variant (``--variants`` picks others: ``knn:1.25:0.5,...``)
VARIANTS: tuple[tuple[str, float, str, float], ...] = (
    ("medoid/knn/over1.5", 1.5, "knn", 0.0), ("medoid/knn/over1.25", 1.25, "knn", 0.0),
    ("medoid/knn/over1.5/whole0.5", 1.5, "knn", 0.5), ("medoid/share/over1.5", 1.5, "share", 0.0))


def parse_variants(text: str) -> tuple[tuple[str, float, str, float], ...]:
    if text == "none":  # no script variant (with --library-auto: the library's call only)
        return ()
    out = []
    for item in text.split(","):
        how, over, whole = item.split(":")
        name = f"medoid/{how}/over{float(over):g}" + (f"/whole{float(whole):g}" if float(whole) else "")
        out.append((name, float(over), how, float(whole)))
    return tuple(out)


#: ``--library-auto``: also run the library's whole call with its defaults (``library/auto``).
LIBRARY_AUTO = False
#: ``--fm-only``: the Fashion-MNIST classes to run (the targets are still drawn in ``--fm-classes`` order).
FM_ONLY: set[int] | None = None

#: Folder for each task's selections (``--save-dir``: one ``<task>_<target>_seed<s>.npz``), or None.
SAVE_DIR: Path | None = None

#: The last pool's quantisation (the Fashion-MNIST classes of one seed share one pool): (key, quantise result).
_QUANT: dict[str, Any] = {}


def quantise_cached(pool: np.ndarray, k: int, seed: int) -> dict[str, Any]:
    """``quantised_study.quantise``, reused while the pool (same object), K and seed stay the same."""
    key = (id(pool), pool.shape, k, seed)
    if _QUANT.get("key") != key:
        _QUANT.clear()
        _QUANT.update(key=key, q=quantise(pool, k, seed))
    return dict(_QUANT["q"])


def split_core(chosen: np.ndarray, members: Any, size: int, over: float, whole: float,
               fallback: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``refine``'s split of the chosen clusters' rows: (the kept-whole prefix's rows, the rest's rows)."""
    sizes = np.diff(members.starts)
    clusters = cover_clusters(chosen, sizes, int(np.ceil(max(1.0, over) * size)))
    if int(sizes[clusters].sum()) < size:
        clusters = cover_clusters(chosen, sizes, size, fallback=fallback)
    n_core = int(np.searchsorted(np.cumsum(sizes[clusters]), whole * size, side="right")) if whole > 0 else 0
    return members.rows_of(clusters[:n_core]), np.sort(members.rows_of(clusters[n_core:]))


def refine_gio(chosen: np.ndarray, members: Any, pool: np.ndarray, target: np.ndarray, size: int, over: float,
               whole: float, fallback: np.ndarray, params: GIOParams, seed: int) -> np.ndarray:
    """Prototype pass ``gio``: the kept-whole prefix as ``refine`` keeps it, then GIO on the rest's rows (its
    start set the prefix's rows, so each boundary row is ranked by its own contribution to the objective given the
    prefix) filled to the size."""
    core, rest = split_core(chosen, members, size, over, whole, fallback)
    room = size - core.shape[0]
    if rest.shape[0] <= room:
        return np.concatenate([core, rest])
    init = pool[core] if core.size else None
    s = run(make_search(pool[rest], target, params, seed=seed, init=init, budget=float(room)))
    return np.concatenate([core, rest[distinct(np.asarray(s.state.selected, dtype=np.int64))][:room]])


def refine_spread(chosen: np.ndarray, members: Any, pool: np.ndarray, target: np.ndarray, size: int, over: float,
                  whole: float, fallback: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Prototype pass ``spread``: as ``knn`` with ``whole``, but only the prefix's tight clusters (mean member
    distance to the medoid at most the median over all clusters) are kept whole; its spread ones are ranked with
    the rest."""
    sizes = np.diff(members.starts)
    clusters = cover_clusters(chosen, sizes, int(np.ceil(max(1.0, over) * size)))
    if int(sizes[clusters].sum()) < size:
        clusters = cover_clusters(chosen, sizes, size, fallback=fallback)
    n_core = int(np.searchsorted(np.cumsum(sizes[clusters]), whole * size, side="right")) if whole > 0 else 0
    prefix = clusters[:n_core]
    tight = prefix[spread[prefix] <= np.median(spread)]
    core = members.rows_of(tight)
    rest = np.sort(members.rows_of(np.setdiff1d(clusters, tight)))
    from gioselect.nearest import score_rows

    scores = score_rows(rest, lambda i: pool[i], target, how="knn")
    return np.concatenate([core, rest[np.lexsort((rest, scores))[: size - core.shape[0]]]]).astype(np.int64)


def cluster_spread(pool: np.ndarray, cand: np.ndarray, members: Any) -> np.ndarray:
    """Each cluster's mean member distance to its candidate (the medoid)."""
    lab = _labels(members)
    d = np.empty(pool.shape[0], dtype=np.float64)
    for s in range(0, pool.shape[0], 65536):
        diff = pool[s: s + 65536].astype(np.float64) - cand[lab[s: s + 65536]]
        d[s: s + 65536] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return np.bincount(lab, weights=d, minlength=cand.shape[0]) / np.maximum(1, np.diff(members.starts))


def _labels(members: Any) -> np.ndarray:
    """Each pool row's cluster, from a ``ClusterMembers``."""
    lab = np.empty(members.order.shape[0], dtype=np.int64)
    lab[members.order] = np.repeat(np.arange(members.starts.shape[0] - 1), np.diff(members.starts))
    return lab


def one_task(name: str, pool: np.ndarray, dom: np.ndarray, target: np.ndarray, target_dom: Any, k: int,
             seed: int, equal_size: int | None, unquantized: bool) -> dict[str, Any]:
    t0 = time.monotonic()
    in_dom = dom == target_dom
    size = int(in_dom.sum()) if equal_size is None else min(int(equal_size), int(in_dom.sum()))

    def prec(idx: np.ndarray) -> float:
        return float(in_dom[idx].mean()) if idx.size else float("nan")

    base: dict[str, Any] = {} if on_unit_sphere(pool[:1000]) else {"random_init_pct": 0.01}
    fill = GIOParams(**base, max_iter=None, stop_criterion="data_size", max_data_size=1.0)
    res: dict[str, Any] = {"task": name, "domain": str(target_dom), "seed": seed, "pool_rows": int(pool.shape[0]),
                           "equal_size": size, "precision": {}, "rows": {}, "kl": {},
                           "target_sum": round(float(np.asarray(target, dtype=np.float64).sum()), 4)}
    saved: dict[str, np.ndarray] = {}

    def record(method: str, idx: np.ndarray) -> None:
        res["precision"][method], res["rows"][method] = prec(idx), int(idx.size)
        res["kl"][method] = kl_knn(target, pool[idx]) if idx.size > 5 else float("nan")
        saved[method] = np.asarray(idx, dtype=np.int64)

    q = quantise_cached(pool, k, seed)
    cand, sizes, members = q["cand"]["medoid"], q["sizes"], q["members"]
    fallback = _centroid_order(cand, target)
    s = run(make_search(cand, target, fill, seed=seed, weights=sizes, budget=float(size)))
    ids = explode(np.asarray(s.state.selected, dtype=np.int64), members, limit=size, seed=seed)
    record("medoid/none", ids)
    chosen: dict[float, np.ndarray] = {}
    spread: np.ndarray | None = None
    for vname, over, how, whole in VARIANTS:
        if over not in chosen:
            s = run(make_search(cand, target, fill, seed=seed, weights=sizes, budget=over * size, budget_exact=True))
            chosen[over] = np.asarray(s.state.selected, dtype=np.int64)
            saved[f"chosen_over{over:g}"] = chosen[over]
        tv = time.process_time()
        if how == "libgio":
            ids = refine(chosen[over], members, lambda i: pool[i], target, size, how="gio", over=over,
                         fallback=fallback, fill=gio_fill(fill, target, seed))
        elif how == "gio":
            ids = refine_gio(chosen[over], members, pool, target, size, over, whole, fallback, fill, seed)
        elif how == "spread":
            if spread is None:
                spread = cluster_spread(pool, cand, members)
            ids = refine_spread(chosen[over], members, pool, target, size, over, whole, fallback, spread)
        else:
            ids = refine(chosen[over], members, lambda i: pool[i], target, size, how=how, over=over,
                         fallback=fallback, whole=whole)
        res.setdefault("pass_cpu_seconds", {})[vname] = round(time.process_time() - tv, 2)
        record(vname, ids)
    record("knn_retrieval", knn_retrieval(pool, target, size))
    if LIBRARY_AUTO:
        from gioselect import select_quantized

        tv = time.process_time()
        qs = select_quantized(pool, target, clusters=k, target_clusters=0, budget=size, seed=seed, **base)
        res.setdefault("pass_cpu_seconds", {})["library/auto (whole call)"] = round(time.process_time() - tv, 2)
        res["refine_rule"] = qs.refine_rule
        record("library/auto", np.asarray(qs.ids, dtype=np.int64))
    logger.info("%s %s seed %d quantised: %s (%.0f s)", name, target_dom, seed,
                {m: round(v, 3) for m, v in res["precision"].items()}, time.monotonic() - t0)
    if unquantized:
        t1 = time.monotonic()
        s = run(make_search(pool, target, fill, seed=seed, budget=float(size)))
        u = distinct(np.asarray(s.state.selected, dtype=np.int64))
        record("unquantized", u)
        res["unquantized_seconds"] = round(time.monotonic() - t1, 1)
        logger.info("%s %s seed %d unquantised %.3f (%.0f s)", name, target_dom, seed,
                    res["precision"]["unquantized"], time.monotonic() - t1)
    res["seconds"] = round(time.monotonic() - t0, 1)
    if SAVE_DIR is not None:
        SAVE_DIR.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(SAVE_DIR / f"{name}_{target_dom}_seed{seed}.npz", labels=_labels(members),
                            sizes=np.asarray(sizes), in_dom=in_dom,
                            **{m.replace("/", "|"): v for m, v in saved.items()})
    return res


#: Prototype ``pick``: groups of variants of which each run keeps the one whose selection has the lowest k-NN KL
#: to the target (``--pick a|b,c|d``; the variants must be among ``--variants``).
PICKS: list[list[str]] = []


def add_picks(results: list[dict[str, Any]], picks: list[list[str]]) -> None:
    """Add each pick group's result (``pick(a|b)``: precision, rows and KL of its lowest-KL member) in place."""
    for r in results:
        for group in picks:
            have = [m for m in group if m in r.get("kl", {})]
            if len(have) < len(group):
                continue
            best = min(have, key=lambda m: r["kl"][m])
            name = "pick(" + "|".join(group) + ")"
            for key in ("precision", "rows", "kl"):
                r[key][name] = r[key][best]
            r.setdefault("picked", {})[name] = best


def add_baseline(results: list[dict[str, Any]], files: list[Path]) -> None:
    """Fill ``unquantized`` (and ``knn_retrieval``) from earlier result files of the same tasks and seeds (the
    runs are seeded, so a quantised-only run compares with them)."""
    import json

    known: dict[tuple[str, str, int], dict[str, Any]] = {}
    for f in files:
        for r in json.loads(Path(f).read_text())["results"]:
            if "unquantized" in r["precision"]:
                known[(r["task"], r["domain"], int(r["seed"]))] = {**r, "file": Path(f).name}
    for r in results:
        b = known.get((r["task"], r["domain"], int(r["seed"])))
        if b is not None and "target_sum" in b and b["target_sum"] != r["target_sum"]:
            b = None  # another target (Fashion-MNIST targets are drawn in --fm-classes order)
        if b is not None and "unquantized" not in r["precision"]:
            r["precision"]["unquantized"] = b["precision"]["unquantized"]
            r["rows"]["unquantized"] = b["rows"]["unquantized"]
            r["baseline_from"] = b["file"]


def table(results: list[dict[str, Any]]) -> str:
    methods = ["unquantized", "knn_retrieval", "medoid/none", *(v[0] for v in VARIANTS),
               *(["library/auto"] if LIBRARY_AUTO else []),
               *("pick(" + "|".join(g) + ")" for g in PICKS)]
    head = ["task", "target", "seed", *methods]
    rows = []
    for r in results:
        p = r["precision"]
        u = p.get("unquantized")
        cells = [r["task"], r["domain"], str(r["seed"])]
        for m in methods:
            if m not in p:
                cells.append("")
            elif m == "unquantized" or u is None:
                cells.append(f"{100 * p[m]:.1f}")
            else:
                cells.append(f"{100 * p[m]:.1f} ({100 * (p[m] - u):+.1f})")
        rows.append(cells)
    return markdown_table(head, rows)


def main(argv: list[str] | None = None) -> int:
    ap = make_parser(__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="bbc,fashion_mnist", help="comma-separated, in this order: bbc, fashion_mnist")
    ap.add_argument("--bbc-domains", default=",".join(DOMAINS))
    ap.add_argument("--fm-classes", default="5,0,1,7",
                    help="Fashion-MNIST target classes, in run order (the targets are drawn in this order, so a "
                         "class's target depends on the classes before it)")
    ap.add_argument("--bbc-size", type=int, default=None, help="BBC equal size (default: the settings', 1,000 full)")
    ap.add_argument("--seeds", type=int, default=1, help="seeds --seed, --seed + 1, ...")
    ap.add_argument("--no-unquantized", action="store_true", help="skip the (slow) unquantised runs")
    ap.add_argument("--variants", default=None,
                    help="pass:over:whole,... instead of the default variants ('none': no variant)")
    ap.add_argument("--tag", default="", help="suffix of the results file name")
    ap.add_argument("--save-dir", type=Path, default=None, help="write each task's selections there (.npz)")
    ap.add_argument("--pick", default="", help="prototype: variant groups a|b,c|d, each run keeping the lowest-KL")
    ap.add_argument("--baseline", default="", help="comma-separated result files to take unquantised numbers from")
    ap.add_argument("--library-auto", action="store_true", help="also the library's select_quantized defaults")
    ap.add_argument("--fm-only", default="", help="run only these of --fm-classes (drawn in --fm-classes order)")
    args = ap.parse_args(argv)
    global VARIANTS, SAVE_DIR, PICKS, LIBRARY_AUTO, FM_ONLY
    SAVE_DIR = args.save_dir
    LIBRARY_AUTO = args.library_auto
    FM_ONLY = {int(c) for c in args.fm_only.split(",")} if args.fm_only else None
    PICKS = [g.split("|") for g in args.pick.split(",") if g]
    baseline = [Path(f) for f in args.baseline.split(",") if f]
    if args.variants:
        VARIANTS = parse_variants(args.variants)
    setup_logging(args.verbose)
    started = time.monotonic()
    cfg = dict(SETTINGS[args.size])
    cfg["bbc_domains"] = args.bbc_domains.split(",")
    cfg["fm_classes"] = [int(c) for c in args.fm_classes.split(",")]
    bbc_size = args.bbc_size or cfg["bbc_equal_size"]
    results: list[dict[str, Any]] = []
    out = Path(args.out) / f"quantized_precision_{args.size}{args.tag}.json"
    for s in range(args.seeds):
        seed = args.seed + s
        for task in args.tasks.split(","):
            tasks = bbc_tasks(cfg, seed) if task == "bbc" else fm_tasks(cfg, seed)
            for name, pool, dom, target, tdom in tasks:
                if name == "fashion_mnist" and FM_ONLY is not None and int(tdom) not in FM_ONLY:
                    continue
                results.append(one_task(name, pool, dom, target, tdom, cfg["clusters"][0], seed,
                                        bbc_size if name == "bbc" else None, not args.no_unquantized))
                add_picks(results[-1:], PICKS)
                add_baseline(results[-1:], baseline)
                write_json(out, {**run_header("quantized_precision", args, started), "settings": cfg,
                                 "variants": [list(v) for v in VARIANTS], "results": results})
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
