"""The row-level pass's cost: one quantised ``run_select`` with ``refine="none"`` and one with ``refine="knn"``
(the default), side by side on the same pool, target and budget, in one process.

Data: :func:`bench_scale.write_pool` / :func:`bench_scale.write_target` (the scale benchmark's Gaussian mixture).
``python benchmarks/bench_refine.py --rows 2e5 --budget 10%`` prints one JSON record per run and the ratio of
the end-to-end times. GIO fills the budget (``stop_criterion="data_size"``, no ``max_iter``) so that both runs
select the budget's rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import write_pool, write_target

from gioselect.optimize import GIOParams
from gioselect.pipeline import SelectConfig, run_select


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--rows", type=float, default=2e5)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--targets", type=int, default=10_000)
    p.add_argument("--clusters", type=int, default=1500)
    p.add_argument("--budget", default="10%")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_refine_") as tmp:
        d = Path(tmp)
        pool, target = d / "pool.npy", d / "target.npy"
        write_pool(pool, int(args.rows), args.dim, args.seed)
        write_target(target, args.targets, args.dim, args.seed)
        res = {}
        for refine in ("none", "knn"):
            cfg = SelectConfig(pool=pool, target=target, out=d / f"out_{refine}", clusters=args.clusters,
                               params=GIOParams(max_iter=None, stop_criterion="data_size", max_data_size=1.0),
                               budget=args.budget, seed=args.seed, refine=refine, report=False)
            t0 = time.monotonic()
            m = run_select(cfg)
            wall = time.monotonic() - t0
            res[refine] = {"wall_s": round(wall, 2), "timings_s": m["timings_s"],
                           "selected_rows": m["counts"]["selected_rows"], "picks": m["counts"]["selected_candidates"]}
            print(json.dumps({"refine": refine, **res[refine]}), flush=True)
        ratio = round(res["knn"]["wall_s"] / res["none"]["wall_s"], 3)
        print(json.dumps({"rows": int(args.rows), "dim": args.dim, "budget": args.budget, "cpus": os.cpu_count(),
                          "load_avg": os.getloadavg(), "ratio_total": ratio}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
