"""Issue 13 item 1: a quantised run's automatic size against the unquantised run's, on the suite's pair of tasks.

For each seed: the suite's GIO call (``experiments/suite``'s ``run_gio``, the library's defaults, no budget, so
the F1 rule sizes the run) on ``bbc-40k-kmeans`` once per cluster weighting of the F1 rule
(``gioselect.quantize.F1_ROWS_PER_CLUSTER``: 0 = each cluster counts its medoid's posterior times its size, the
rule before this study; N > 0 = its size times the mean posterior of a sample of N x K pool rows), and on
``bbc-40k`` (the same data, unquantised) unless ``--no-unquantized``. ``--tasks`` runs other quantised tasks
instead: any of the suite's, or ``experiments/quantized_study.py``'s ``quantized-bbc-<domain>`` and
``quantized-fashion-<class>`` (quantised here with the study's K); ``--refine`` runs each quantised task once per
row-level pass (``auto``, the default: the pass at the F1 rule's size; ``none``: the kept clusters exploded
whole, as before that pass). One JSON line per run is appended to ``<out>/quantized_size_<size>.jsonl``: rows
selected, F1 of retrieving the pool's target-like rows (the task's mask), seconds, and the F1 rule's own record
(argmax, how far it ran).

Usage: ``python experiments/quantized_size.py --size full --seeds 0,1,2 [--weights 0,16] [--no-unquantized]
[--tasks bbc-40k-kmeans,quantized-fashion-9] [--refine auto,none] [--also-unquantized]``. ``--also-unquantized``
runs each of ``--tasks`` on its rows too (``clusters`` 0, the same pool and target; ``"clusters": 0`` in its line).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from common import jsonable

from gioselect import quantize


def run(name: str, size: str, seed: int, per_cluster: int | None, refine: str | None = None,
        unquantized: bool = False) -> dict[str, Any]:
    from suite.core import TASKS, run_gio

    task = TASKS[name].build(size, seed)
    assert task.mask is not None
    if unquantized:  # the same pool and target, GIO on the rows themselves
        task = dataclasses.replace(task, clusters=0)
    elif not task.clusters and task.info.get("study_clusters"):
        task = dataclasses.replace(task, clusters=int(task.info["study_clusters"]))
    if per_cluster is not None:
        quantize.F1_ROWS_PER_CLUSTER = per_cluster
    params: dict[str, Any] = {"stop_criterion": "auto"}
    if refine is not None and task.clusters:
        params["refine"] = refine
    t0 = time.perf_counter()
    ids, info = run_gio(task, params, None, seed)
    secs = time.perf_counter() - t0
    n_pos = int(task.mask.sum())
    hits = float(task.mask[ids].sum())
    return {"task": name, "seed": seed, "f1_rows_per_cluster": per_cluster, "rows": int(ids.shape[0]),
            "true_rows": n_pos, "f1": 2.0 * hits / (ids.shape[0] + n_pos), "precision": hits / max(ids.shape[0], 1),
            "picks": info["picks"], "stop_reason": info["stop_reason"], "seconds": secs,
            "clusters": task.clusters, "refine": params.get("refine")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=("small", "full"), default="small")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--weights", default="0,16", help="F1_ROWS_PER_CLUSTER values for the quantised task")
    ap.add_argument("--no-unquantized", action="store_true")
    ap.add_argument("--also-unquantized", action="store_true",
                    help="run every task of --tasks on its rows too (clusters 0: the same pool and target)")
    ap.add_argument("--tasks", default="bbc-40k-kmeans",
                    help="comma-separated quantised tasks (suite or quantized_study names)")
    ap.add_argument("--refine", default="auto", help="comma-separated row-level passes: auto, none, gio, knn, ...")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args(argv)
    from suite.core import TASKS

    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if any(t.startswith("quantized-") for t in names):
        import quantized_study

        quantized_study.register_tasks()
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        ap.error(f"--tasks: unknown {unknown}; known: {sorted(TASKS)}")
    passes = [r.strip() for r in args.refine.split(",") if r.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"quantized_size_{args.size}.jsonl"
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        jobs: list[tuple[str, int | None, str | None, bool]] = [
            (name, int(w), r, False) for name in names for w in args.weights.split(",") if w for r in passes]
        if args.also_unquantized:
            jobs += [(name, None, None, True) for name in names]
        if not args.no_unquantized:
            jobs.append(("bbc-40k", None, None, False))
        for name, per, ref, rows in jobs:
            rec = run(name, args.size, seed, per, ref, unquantized=rows)
            print(json.dumps(rec), flush=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(jsonable(rec)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
