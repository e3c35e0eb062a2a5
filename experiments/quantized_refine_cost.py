"""CPU cost of the ``gio`` row-level pass by size and dimension, and of the rest of a quantised job (issue 13).

Two measurements (CPU seconds, ``time.process_time``; run one at a time, ``nice -n 5``, and record the load):

* ``pass``: the library's ``gio`` pass alone (:func:`gioselect.job.select.gio_fill`, as the explode phase runs
  it) filling ``n`` rows from ``over * n`` read rows, for each size in ``--sizes`` and each dimension: 50-D
  (Fashion-MNIST training images, PCA-50) and 384-D (BBC sentence embeddings); the read rows are a seeded random
  subset of the pool (the pass's cost does not depend on which rows they are), the target ``--target`` rows
  (test images of class 5 / held-out tech sentences, as in ``quantized_precision.py``). Each point also gets its
  work in the unit of :func:`gioselect.quantize_refine.gio_pass_work` (n x d x (grad_desc_iter x T + over x n)),
  so the seconds per unit can be read off.
* ``job``: :func:`gioselect.select_quantized` with ``refine="knn"`` (K = 1500, a row budget) on a pool just over
  ``clusters="auto"``'s direct limit (``--job-rows``, default 120,000 rows): the BBC embeddings, repeated with
  small seeded noise (renormalised) to that many rows, and FM PCA-50 likewise; the rest of the job the ``gio``
  pass would be added to.

Run: ``python experiments/quantized_refine_cost.py --size full [--sizes 1000,3000,10000] [--dims 50,384]
[--no-job]``; writes ``results/quantized_refine_cost_<size><tag>.json`` after every point and prints the table.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bbc_corpus, bbc_corpus_embeddings, make_parser, markdown_table, run_header, setup_logging, write_json

from gioselect.job.select import gio_fill
from gioselect.optimize import GIOParams
from gioselect.quantize_refine import gio_pass_work

logger = logging.getLogger("experiments.quantized_refine_cost")


def data(dim: int, target_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pool, target): FM PCA-50 with class-5 test images (dim 50) or BBC with held-out tech sentences (384)."""
    rng = np.random.default_rng(seed)
    if dim == 50:
        from fashion_mnist import find_data, load_data

        from gioselect.embed import ImagePCA

        root = find_data()
        if root is None:
            raise SystemExit("Fashion-MNIST not found")
        d = load_data(root)
        pca = ImagePCA(50, seed=seed).fit(d["xtr"])
        t = np.sort(rng.choice(np.flatnonzero(d["yte"] == 5), size=target_rows, replace=False))
        return pca.transform(d["xtr"]).astype(np.float32), pca.transform(d["xte"][t]).astype(np.float32)
    recs = bbc_corpus()
    emb = np.asarray(bbc_corpus_embeddings(recs), dtype=np.float32)
    tech = np.flatnonzero(np.array([r["domain"] for r in recs]) == "tech")
    t = np.sort(rng.choice(tech, size=target_rows, replace=False))
    keep = np.ones(emb.shape[0], dtype=bool)
    keep[t] = False
    return emb[keep], emb[t]


def grown(pool: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """``pool`` repeated to ``rows`` rows with seeded noise (1% of the RMS spread; rows renormalised when the pool
    lies on the unit sphere)."""
    rng = np.random.default_rng(seed)
    reps = -(-rows // pool.shape[0])
    x = np.concatenate([pool] * reps)[:rows].astype(np.float32)
    spread = float(np.sqrt(((pool - pool.mean(0)) ** 2).sum(1).mean()))
    x[pool.shape[0]:] += rng.normal(0, 0.01 * spread / np.sqrt(pool.shape[1]),
                                    size=(rows - pool.shape[0], pool.shape[1])).astype(np.float32)
    if np.allclose(np.linalg.norm(pool[:100], axis=1), 1.0, atol=1e-3):
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def one_pass(pool: np.ndarray, target: np.ndarray, n: int, over: float, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    read = int(np.ceil(over * n))
    rows = pool[np.sort(rng.choice(pool.shape[0], size=min(read, pool.shape[0]), replace=False))]
    base: dict[str, Any] = {} if np.allclose(np.linalg.norm(pool[:100], axis=1), 1, atol=1e-3) else \
        {"random_init_pct": 0.01}
    params = GIOParams(**base)
    fill = gio_fill(params, target, seed)
    c0, w0 = time.process_time(), time.monotonic()
    got = fill(rows, n)
    cpu, wall = time.process_time() - c0, time.monotonic() - w0
    work = gio_pass_work(n, pool.shape[1], target.shape[0], over, params.grad_desc_iter)
    return {"n": n, "over": over, "read_rows": int(rows.shape[0]), "dim": int(pool.shape[1]),
            "target_rows": int(target.shape[0]), "picks": int(got.shape[0]), "cpu_s": round(cpu, 2),
            "wall_s": round(wall, 2), "work": work, "ns_per_work": round(1e9 * cpu / work, 4),
            "load": os.getloadavg()[0]}


def one_job(pool: np.ndarray, target: np.ndarray, budget: int, seed: int) -> dict[str, Any]:
    from gioselect import select_quantized

    c0, w0 = time.process_time(), time.monotonic()
    q = select_quantized(pool, target, clusters=1500, budget=budget, seed=seed, refine="knn")
    cpu, wall = time.process_time() - c0, time.monotonic() - w0
    return {"pool_rows": int(pool.shape[0]), "dim": int(pool.shape[1]), "target_rows": int(target.shape[0]),
            "budget": budget, "rows": int(q.ids.shape[0]), "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
            "load": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    ap = make_parser(__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,3000,10000", help="pass sizes n (rows kept)")
    ap.add_argument("--dims", default="50,384", help="50 (Fashion-MNIST PCA-50) and/or 384 (BBC)")
    ap.add_argument("--overs", default="2", help="the pass's over values")
    ap.add_argument("--target", type=int, default=300, help="target rows")
    ap.add_argument("--extra", default="", help="more pass points dim:n:over:target,...")
    ap.add_argument("--job-rows", type=int, default=120_000)
    ap.add_argument("--job-budgets", default="3000,10000")
    ap.add_argument("--no-job", action="store_true")
    ap.add_argument("--no-pass", action="store_true")
    ap.add_argument("--tag", default="")
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    started = time.monotonic()
    out = Path(args.out) / f"quantized_refine_cost_{args.size}{args.tag}.json"
    res: dict[str, list[dict[str, Any]]] = {"pass": [], "job": []}
    cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def get(dim: int, t: int) -> tuple[np.ndarray, np.ndarray]:
        if (dim, t) not in cache:
            cache[(dim, t)] = data(dim, t, args.seed)
        return cache[(dim, t)]

    def save() -> None:
        write_json(out, {**run_header("quantized_refine_cost", args, started), **res})

    points = [] if args.no_pass else [(int(d), int(n), float(o), args.target) for d in args.dims.split(",")
                                      for n in args.sizes.split(",") for o in args.overs.split(",")]
    points += [(int(d), int(n), float(o), int(t)) for d, n, o, t in (e.split(":") for e in args.extra.split(",") if e)]
    for dim, n, over, t in points:
        pool, target = get(dim, t)
        r = one_pass(pool, target, n, over, args.seed)
        logger.info("pass %s", r)
        res["pass"].append(r)
        save()
    if not args.no_job:
        for dim in (int(d) for d in args.dims.split(",")):
            pool, target = get(dim, args.target)
            big = grown(pool, args.job_rows, args.seed)
            for b in (int(x) for x in args.job_budgets.split(",")):
                r = one_job(big, target, b, args.seed)
                logger.info("job %s", r)
                res["job"].append(r)
                save()
    print(markdown_table(["dim", "n", "over", "read rows", "target", "CPU s", "work", "ns/work", "load"],
                         [[str(r["dim"]), str(r["n"]), f"{r['over']:g}", str(r["read_rows"]), str(r["target_rows"]),
                           f"{r['cpu_s']:.2f}", f"{r['work']:.3g}", f"{r['ns_per_work']:.3f}", f"{r['load']:.1f}"]
                          for r in res["pass"]]))
    if res["job"]:
        print(markdown_table(["pool rows", "dim", "budget", "CPU s", "wall s", "load"],
                             [[str(r["pool_rows"]), str(r["dim"]), str(r["budget"]), f"{r['cpu_s']:.1f}",
                               f"{r['wall_s']:.1f}", f"{r['load']:.1f}"] for r in res["job"]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
