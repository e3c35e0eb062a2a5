"""Why a quantised selection misses a target: cluster purity and coverage of the chosen clusters (issue 13, item 2).

Reads the selections ``quantized_precision.py --save-dir DIR`` wrote (one ``.npz`` per task: every pool row's
cluster, the target-class flags, GIO's chosen clusters at ``over`` 1.5 and each method's rows) and reports, per
target:

* ``class_rows``: the pool's rows of the target class; ``in_chosen``: the share of them inside the clusters the
  pass reads (the chosen clusters covering 1.5 x the size); ``in_unchosen``: the rest, out of the pass's reach;
* ``chosen_purity``: the target-class share of the rows the pass reads; ``mixed_rows``: the share of those rows
  in mixed clusters (target-class share between 0.2 and 0.8);
* ``core_precision`` / ``ranked_precision``: the default pass's kept-whole prefix (``whole`` 0.5) and its ranked
  part; ``ranked_pool_precision``: the target-class share of the rows it ranks;
* ``unq_in_chosen``: the share of unquantised GIO's rows inside the pass's clusters, and their precision inside
  and outside (``unq_prec_in`` / ``unq_prec_out``).

Run: ``python experiments/quantized_diagnose.py DIR``; prints a markdown table. With ``--results F1,F2,...``
(result files of ``quantized_precision.py``) it prints instead, per method, each target's precision and its
difference from unquantised GIO, and per method the targets within 2 points, the mean difference and the worst.
With ``--fm-class-counts`` it prints, per saved Fashion-MNIST task, how many rows of each class the default pass,
``gio`` over 1.5 and kNN retrieval selected.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table

from gioselect.quantize import cover_clusters


def diagnose(npz: Path, over: float = 1.5, whole: float = 0.5) -> dict[str, Any]:
    """The diagnosis of one saved task (see the module docstring)."""
    z = np.load(npz)
    lab, sizes, in_dom = z["labels"], z["sizes"], z["in_dom"].astype(bool)
    size = int(z["unquantized"].shape[0]) if "unquantized" in z else int(z["knn_retrieval"].shape[0])
    chosen = z[f"chosen_over{over:g}"]
    clusters = cover_clusters(chosen, sizes, int(np.ceil(over * size)))
    pure = np.bincount(lab, weights=in_dom.astype(np.float64), minlength=sizes.shape[0]) / np.maximum(1, sizes)
    read = np.isin(lab, clusters)
    n_core = int(np.searchsorted(np.cumsum(sizes[clusters]), whole * size, side="right"))
    core = np.isin(lab, clusters[:n_core])
    out: dict[str, Any] = {"task": npz.stem, "size": size, "class_rows": int(in_dom.sum()),
                           "in_chosen": float(in_dom[read].sum() / in_dom.sum()),
                           "chosen_purity": float(in_dom[read].mean()),
                           "mixed_rows": float(((pure[lab] > 0.2) & (pure[lab] < 0.8))[read].mean()),
                           "core_rows": int(core.sum()), "core_precision": float(in_dom[core].mean()),
                           "ranked_pool_precision": float(in_dom[read & ~core].mean())}
    out["in_unchosen"] = 1.0 - out["in_chosen"]
    dflt = "medoid|knn|over1.5|whole0.5"
    if dflt in z:
        sel = z[dflt]
        ranked = sel[~core[sel]]
        out["ranked_precision"] = float(in_dom[ranked].mean()) if ranked.size else float("nan")
        out["default_precision"] = float(in_dom[sel].mean())
    if "unquantized" in z:
        u = z["unquantized"]
        ins = read[u]
        out["unq_precision"] = float(in_dom[u].mean())
        out["unq_in_chosen"] = float(ins.mean())
        out["unq_prec_in"] = float(in_dom[u[ins]].mean()) if ins.any() else float("nan")
        out["unq_prec_out"] = float(in_dom[u[~ins]].mean()) if (~ins).any() else float("nan")
    return out


def results_table(files: list[Path], methods: list[str]) -> str:
    """Precision (difference from unquantised) per target and method over result files; the last rows count the
    targets within 2 points and give the mean and worst difference. A target seen twice keeps its last entry."""
    import json

    res: dict[tuple[str, str, int], dict[str, Any]] = {}
    for f in files:
        for r in json.loads(f.read_text())["results"]:
            if "unquantized" in r["precision"]:
                res[(r["task"], r["domain"], int(r["seed"]))] = r
    rows, diffs = [], {m: [] for m in methods}
    for (task, dom, seed), r in sorted(res.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])):
        p, u = r["precision"], r["precision"]["unquantized"]
        cells = [f"{task} {dom}", str(seed), f"{100 * u:.1f}"]
        for m in methods:
            if m in p:
                diffs[m].append(100 * (p[m] - u))
                cells.append(f"{100 * p[m]:.1f} ({100 * (p[m] - u):+.1f})")
            else:
                cells.append("")
        rows.append(cells)
    rows.append(["**within 2 points**", "", "",
                 *(f"{sum(d >= -2.0 for d in diffs[m])} of {len(diffs[m])}" for m in methods)])
    rows.append(["mean difference", "", "", *(f"{np.mean(diffs[m]):+.1f}" if diffs[m] else "" for m in methods)])
    rows.append(["worst", "", "", *(f"{min(diffs[m]):+.1f}" if diffs[m] else "" for m in methods)])
    return markdown_table(["target", "seed", "unquantized", *methods], rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path, nargs="?", help="the --save-dir of quantized_precision.py")
    ap.add_argument("--results", default="", help="comma-separated result files: print the methods' table")
    ap.add_argument("--methods", default="knn_retrieval,medoid/knn/over1.5/whole0.5,medoid/share/over1.5,"
                    "medoid/gio/over1.5,medoid/gio/over2", help="methods of the --results table")
    ap.add_argument("--fm-class-counts", action="store_true", help="rows per class of each saved FM selection")
    args = ap.parse_args(argv)
    if args.fm_class_counts:
        from fashion_mnist import find_data, load_data

        y = load_data(find_data())["ytr"]
        cells = []
        for f in sorted(args.dir.glob("fashion_mnist_*.npz")):
            z = np.load(f)
            for m in ("medoid|knn|over1.5|whole0.5", "medoid|gio|over1.5", "knn_retrieval"):
                if m in z:
                    cells.append([f.stem, m, *(str(c) for c in np.bincount(y[z[m]], minlength=10))])
        print(markdown_table(["task", "selection", *(str(c) for c in range(10))], cells))
        return 0
    if args.results:
        print(results_table([Path(f) for f in args.results.split(",")], args.methods.split(",")))
        return 0
    rows = [diagnose(f) for f in sorted(args.dir.glob("*.npz"))]
    keys = ["class_rows", "in_chosen", "in_unchosen", "chosen_purity", "mixed_rows", "core_precision",
            "ranked_pool_precision", "ranked_precision", "default_precision", "unq_precision", "unq_in_chosen",
            "unq_prec_in", "unq_prec_out"]
    cells = [[r["task"], *(f"{100 * r[k]:.1f}" if isinstance(r.get(k), float) else str(r.get(k, ""))
                           for k in keys)] for r in rows]
    print(markdown_table(["task", *keys], cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
