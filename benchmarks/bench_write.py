"""The write phase of a large selection, piece by piece: what ``gioselect select`` does after GIO for a .npy pool.

Times (wall and CPU seconds) the three pieces of the local engine's write step on an existing pool, target and
selection: the selected rows (``write_selected_rows``), ``selected_row_ids.npy`` and ``picks.csv``
(``report.write_picks``: per-row gain and the 3 nearest target rows). To compare two versions of the code, run it
once per checkout with ``PYTHONPATH`` pointing at that checkout's ``src``, and compare the files it wrote. Example
(from the repository root, on the pool, target and selection of a ``bench_scale.py --data bbc`` run)::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_write.py --pool POOL.npy --target TARGET.npy \\
        --selection OUT/selected_ids.npy --out-dir write_out
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gioselect.io import open_embeddings, write_selected_rows
from gioselect.report import write_picks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", type=Path, required=True, help="the pool (.npy)")
    ap.add_argument("--target", type=Path, required=True, help="the target embeddings (.npy)")
    ap.add_argument("--selection", type=Path, required=True, help="selected pool row ids (.npy, selection order)")
    ap.add_argument("--out-dir", type=Path, required=True, help="where the outputs are written")
    args = ap.parse_args(argv)
    pool = open_embeddings(args.pool)
    target = np.load(args.target).astype(np.float32)
    sel = np.load(args.selection).astype(np.int64)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"rows": int(sel.shape[0]), "pool_rows": pool.n_rows, "target_rows": int(target.shape[0]),
                           "load_average_1min_at_start": os.getloadavg()[0]}

    def timed(name: str, f: Callable[[], object]) -> None:
        t, c = time.perf_counter(), time.process_time()
        f()
        res[name] = {"wall_s": round(time.perf_counter() - t, 1), "cpu_s": round(time.process_time() - c, 1)}
        print(name, res[name], flush=True)

    out = args.out_dir
    timed("selected_rows", lambda: write_selected_rows(pool, sel, out / "selected_rows.npy",
                                                       rank=np.arange(sel.shape[0])))
    timed("selected_row_ids", lambda: np.save(out / "selected_row_ids.npy", np.unique(sel)))
    # Ten picks with made-up gains: the gains only fill a column; the cost is the rows and their nearest targets.
    timed("picks_csv", lambda: write_picks(out / "picks.csv", sel, np.arange(10), np.zeros(pool.n_rows, np.int64),
                                           1.5, np.linspace(1.0, 0.5, 10), pool.read_rows, target))
    res["load_average_1min_at_end"] = os.getloadavg()[0]
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
