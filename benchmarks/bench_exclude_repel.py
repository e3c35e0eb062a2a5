"""Does ``exclude_repel`` push the selection away from the exclusion set while the task number holds?

Real data: the BBC News sentences (``experiments/common.bbc_corpus_embeddings``, the on-disk cache). Per seed,
10 % of every domain's articles are held out (seeded); the target is the held-out sentences of
``--target-domain``, the exclusion set E those of ``--exclude-domain``, the pool a seeded ``--pool-rows``
sample of the sentences of the other articles (all five domains). ``GIOSelector(budget=--budget, seed=seed)
.fit(pool, target, exclude=E, exclude_repel=w)`` for every weight ``w`` (``--weights``), the near-duplicate
threshold at its default 0.95.

Reported per (seed, weight): the selection's share of target-domain sentences (the task number: domain
precision), its share of exclusion-domain sentences, the mean over selected rows of the highest cosine to
E (lower = further from E), and the k-NN estimates KL(target || S) and KL(E || S) (``gioselect.divergence.
kl_knn``, k=5; a larger KL(E || S) = further from E).

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_exclude_repel.py --out benchmarks/results/bench_exclude_repel.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))


def split(domains: np.ndarray, articles: np.ndarray, seed: int) -> np.ndarray:
    """Held-out mask: a seeded 10 % of every domain's articles (at least 2)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    held = np.zeros(domains.shape[0], dtype=bool)
    for d in np.unique(domains):
        arts = np.unique(articles[domains == d])
        pick = rng.choice(arts, size=max(2, arts.shape[0] // 10), replace=False)
        held |= (domains == d) & np.isin(articles, pick)
    return held


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target-domain", default="tech")
    ap.add_argument("--exclude-domain", default="business")
    ap.add_argument("--pool-rows", type=int, default=8000)
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--weights", default="0,0.5,1")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    from common import bbc_corpus, bbc_corpus_embeddings

    from gioselect import GIOSelector
    from gioselect.divergence import kl_knn

    recs = bbc_corpus()
    emb = bbc_corpus_embeddings(recs).astype(np.float32)
    dom = np.array([r["domain"] for r in recs])
    art = np.array([f"{r['domain']}/{r['article']}" for r in recs])
    weights = [float(w) for w in args.weights.split(",")]
    rows: list[dict[str, Any]] = []
    started = datetime.now(timezone.utc)
    for seed in (int(s) for s in args.seeds.split(",")):
        held = split(dom, art, seed)
        target = emb[held & (dom == args.target_domain)]
        excl = emb[held & (dom == args.exclude_domain)]
        rng = np.random.default_rng(np.random.SeedSequence([seed, 8]))
        pool_ids = np.sort(rng.choice(np.flatnonzero(~held), size=args.pool_rows, replace=False))
        pool, pdom = emb[pool_ids], dom[pool_ids]
        for w in weights:
            t0 = time.perf_counter()
            sel = GIOSelector(budget=args.budget, seed=seed).fit(pool, target, exclude=excl, exclude_repel=w)
            secs = time.perf_counter() - t0
            ids = sel.selected_indices_
            s = pool[ids]
            row = {"seed": seed, "weight": w, "picks": int(ids.shape[0]), "seconds": round(secs, 2),
                   "target_rows": int(target.shape[0]), "exclude_rows": int(excl.shape[0]),
                   "excluded_pool_rows": sel.exclusion_.n_excluded if sel.exclusion_ is not None else 0,
                   "target_domain_share": float(np.mean(pdom[ids] == args.target_domain)),
                   "exclude_domain_share": float(np.mean(pdom[ids] == args.exclude_domain)),
                   "mean_max_cos_to_exclude": float((s @ excl.T).max(axis=1).mean()),
                   "kl_target_sel": kl_knn(target, s, 5), "kl_exclude_sel": kl_knn(excl, s, 5),
                   "stop_reason": sel.result_.stop_reason}
            rows.append(row)
            print(json.dumps(row), flush=True)

    def agg(w: float, key: str) -> tuple[float, float]:
        xs = [r[key] for r in rows if r["weight"] == w]
        return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)

    keys = ("target_domain_share", "exclude_domain_share", "mean_max_cos_to_exclude", "kl_target_sel",
            "kl_exclude_sel")
    summary = {str(w): {k: agg(w, k) for k in keys} for w in weights}
    print("| weight | " + " | ".join(keys) + " |")
    for w in weights:
        print(f"| {w:g} | " + " | ".join(f"{m:.3f} ± {sd:.3f}" for m, sd in summary[str(w)].values()) + " |")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "benchmark": "exclude_repel", "date_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "parameters": vars(args) | {"out": str(args.out)},
            "load_average_after": list(os.getloadavg()), "runs": rows, "summary_mean_sd": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
