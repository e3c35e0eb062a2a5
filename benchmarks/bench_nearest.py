"""Each row's 3 nearest target rows (``picks.csv``'s ``gio_nearest_target``) against a large target: the whole-target
screen against the grouped one (``nearest.TargetPartition``), side by side in one process, on three kinds of data.

Cases (each ``--rows`` rows against a ``--target-rows`` target, both float32):
- ``mixture``: the 384-D Gaussian mixture of ``bench_scale.py`` (64 components; the target drawn from 12 of them,
  the rows from the target's components, as a selection is);
- ``fashion``: Fashion-MNIST PCA-50 features (PCA fitted on the training images); rows are the first training
  images (of one class with ``--fashion-class``), the target the first test images of every class;
- ``bbc``: all-MiniLM-L6-v2 embeddings of BBC sentences (the experiments' cache); rows and target are disjoint
  sentences of one domain, the rows plus N(0, 0.005^2) noise as in ``bench_scale.py --data bbc``.

Per case and repeat (interleaved: whole, grouped, whole, ...): wall and CPU seconds of ``nearest_targets`` on the
rows in blocks of 16,384 (as ``picks.csv`` calls it; the grouped side builds one partition first, counted in its
time), the share of row x target pairs the grouped side screened, and whether the ids are equal. Run from the
repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_nearest.py --out benchmarks/results/bench_nearest.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from gioselect import nearest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 16_384


def _mixture(rows: int, target_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_scale as bs

    centres, scales, _ = bs._mixture(384, seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    comps = rng.choice(bs.N_COMPONENTS, size=bs.TARGET_COMPONENTS, replace=False)
    w = rng.dirichlet(np.full(bs.TARGET_COMPONENTS, 2.0))
    target = bs._sample_mixture(rng, target_rows, centres[comps], scales[comps], w)
    x = bs._sample_mixture(np.random.default_rng(np.random.SeedSequence([seed, 7])), rows, centres[comps],
                           scales[comps], w)
    return x, target


def _fashion(rows: int, target_rows: int, seed: int, cls: int) -> tuple[np.ndarray, np.ndarray] | None:
    sys.path.insert(0, str(ROOT / "experiments"))
    from fashion_mnist import find_data, load_data

    from gioselect.embed import ImagePCA

    root = find_data()
    if root is None:
        return None
    data = load_data(root)
    pca = ImagePCA(50, seed=seed).fit(data["xtr"])
    pool = data["xtr"] if cls < 0 else data["xtr"][data["ytr"] == cls]
    x = pca.transform(pool[:rows]).astype(np.float32)
    return x, pca.transform(data["xte"][:target_rows]).astype(np.float32)


def _bbc(rows: int, target_rows: int, seed: int, domain: str) -> tuple[np.ndarray, np.ndarray]:
    sys.path.insert(0, str(ROOT / "experiments"))
    from common import bbc_corpus, bbc_corpus_embeddings

    recs = bbc_corpus()
    emb = bbc_corpus_embeddings(recs)
    ids = np.flatnonzero(np.array([r["domain"] for r in recs]) == domain)
    rng = np.random.default_rng(seed)
    ids = rng.permutation(ids)
    target = np.ascontiguousarray(emb[ids[:target_rows]], dtype=np.float32)
    base = emb[ids[target_rows:]]
    x = base[rng.integers(base.shape[0], size=rows)] + 0.005 * rng.standard_normal((rows, emb.shape[1]))
    return x.astype(np.float32), target


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def _whole(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.vstack([nearest.nearest_target_scan(x[s : s + BLOCK], t, 3)[0] for s in range(0, x.shape[0], BLOCK)])


def _grouped(x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, float]:
    part = nearest.TargetPartition(t)
    ids = np.vstack([nearest.nearest_targets(x[s : s + BLOCK], t, 3, partition=part)
                     for s in range(0, x.shape[0], BLOCK)])
    return ids, part.pairs_scanned / max(part.pairs_whole, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="mixture,fashion,bbc")
    ap.add_argument("--rows", type=int, default=49_152)
    ap.add_argument("--target-rows", type=int, default=10_000)
    ap.add_argument("--bbc-target-rows", type=int, default=4_000, help="bbc: target rows (a domain has ~8,000)")
    ap.add_argument("--fashion-class", type=int, default=-1, help="fashion: rows of this class only (-1: all)")
    ap.add_argument("--bbc-domain", default="tech")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    started = datetime.now(UTC)
    res: dict[str, Any] = {"started_utc": started.isoformat(timespec="seconds"), "command": " ".join(sys.argv),
                           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                       "processor": platform.processor()},
                           "load_before": os.getloadavg(), "cases": {}}
    for case in a.cases.split(","):
        if case == "mixture":
            data = _mixture(a.rows, a.target_rows, a.seed)
        elif case == "fashion":
            got = _fashion(a.rows, a.target_rows, a.seed, a.fashion_class)
            if got is None:
                print("fashion: Fashion-MNIST not found, skipped", flush=True)
                continue
            data = got
        elif case == "bbc":
            data = _bbc(a.rows, a.bbc_target_rows, a.seed, a.bbc_domain)
        else:
            raise SystemExit(f"unknown case {case!r}")
        x, t = data
        runs: list[dict[str, Any]] = []
        for rep in range(a.repeats):
            ref, w_whole, c_whole = _timed(lambda: _whole(x, t))  # noqa: B023
            (ids, share), w_grp, c_grp = _timed(lambda: _grouped(x, t))  # noqa: B023
            runs.append({"whole_wall_s": w_whole, "whole_cpu_s": c_whole, "grouped_wall_s": w_grp,
                         "grouped_cpu_s": c_grp, "pairs_screened": share, "equal": bool(np.array_equal(ids, ref))})
            print(f"{case} rep {rep}: whole {w_whole:.2f} s ({c_whole:.2f} CPU s), grouped {w_grp:.2f} s "
                  f"({c_grp:.2f} CPU s), pairs screened {share:.3f}, equal {runs[-1]['equal']}", flush=True)
        med = {k: float(np.median([r[k] for r in runs])) for k in runs[0] if k != "equal"}
        med["wall_ratio"] = float(np.median([r["grouped_wall_s"] / r["whole_wall_s"] for r in runs]))
        med["cpu_ratio"] = float(np.median([r["grouped_cpu_s"] / r["whole_cpu_s"] for r in runs]))
        res["cases"][case] = {"rows": int(x.shape[0]), "target_rows": int(t.shape[0]), "dim": int(x.shape[1]),
                              "runs": runs, "median": med, "all_equal": all(r["equal"] for r in runs)}
        print(f"{case}: median grouped / whole: wall {med['wall_ratio']:.3f}, CPU {med['cpu_ratio']:.3f}",
              flush=True)
    res["load_after"] = os.getloadavg()
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=2) + "\n")
    return 0 if all(c["all_equal"] for c in res["cases"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
