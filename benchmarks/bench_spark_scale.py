"""The Spark engine (``local[2]``) on the scale benchmark's pool, written as parquet: 1e7 x 384 float32 by default.

``bench_scale.py`` runs the in-process engine on a ``.npy`` pool; the Spark engine reads parquet, csv or jsonl
(executors cannot share a memory map). This script writes **the same rows** as ``bench_scale.py``'s synthetic
mixture pool (its generator, block ``i`` from ``SeedSequence([seed, 1, i])``, 65,536 rows a block) as a parquet
file (``id`` int64 and ``embedding`` ``fixed_size_list<float32>[dim]``, one row group per block, never whole in
memory), the same 10,000-row ``.npy`` target (``bench_scale.write_target``), and runs the selection job in a fresh
child process on each engine asked for (``--runs spark``, ``--runs local,spark``) with the settings of
``bench_scale.py``'s 1e7 run: K = 1500, ``kmeans_iter`` 20, seed 0, ``--memory-budget 4G``, the CLI's defaults
otherwise. Spark runs through :func:`gioselect.spark.run_select_spark` with ``spark_master="local[2]"``,
``kmeans="auto"`` and ``spark.driver.memory`` = ``--driver-memory``.

Recorded per run: wall seconds (from the parent, JVM start included), the manifest's phase timings and CPU seconds
(the driver process), the child's CPU seconds from ``os.wait4`` (it and every descendant it waited for: the JVM
and the Spark Python workers), peak RSS sampled from ``/proc`` by role (driver Python, JVM, Spark Python workers,
their sum at one instant; ``bench_spark._proc_tree``), and the 1-minute load average before and after.
``--check-rows N`` first checks that the parquet's first N rows equal ``bench_scale.write_pool``'s (a small
``.npy`` written for the check only).

Usage (from the repository root)::

    SPARK_LOCAL_IP=127.0.0.1 PYTHONPATH=src nohup .venv/bin/python benchmarks/bench_spark_scale.py \\
        --rows 1e7 --workdir <dir> --out benchmarks/results/bench_spark_1e7.json > bench_spark_1e7.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_scale
from bench_spark import RssSampler


def write_pool_parquet(path: Path, n_rows: int, dim: int, seed: int) -> float:
    """``bench_scale.write_pool``'s rows as parquet, block by block; returns seconds taken."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    centres, scales, weights = bench_scale._mixture(dim, seed)
    schema = pa.schema([("id", pa.int64()), ("embedding", pa.list_(pa.float32(), dim))])
    tmp = path.with_name(path.name + ".tmp")
    with pq.ParquetWriter(tmp, schema, compression="none") as w:
        for i, start in enumerate(range(0, n_rows, bench_scale.GEN_BLOCK_ROWS)):
            b = min(bench_scale.GEN_BLOCK_ROWS, n_rows - start)
            rng = np.random.default_rng(np.random.SeedSequence([seed, 1, i]))
            x = bench_scale._sample_mixture(rng, b, centres, scales, weights)
            emb = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(x, np.float32).reshape(-1)), dim)
            w.write_table(pa.table({"id": np.arange(start, start + b, dtype=np.int64), "embedding": emb},
                                   schema=schema))
    os.replace(tmp, path)
    return time.perf_counter() - t0


def check_rows(pool: Path, n: int, dim: int, seed: int, work: Path) -> bool:
    """The parquet's first ``n`` rows equal ``bench_scale.write_pool``'s file of ``n`` rows, ``n`` rounded down to
    whole generator blocks (a block's rows depend on its length, so a shorter file's last block differs)."""
    import pyarrow.parquet as pq

    n = max(1, n // bench_scale.GEN_BLOCK_ROWS) * bench_scale.GEN_BLOCK_ROWS
    ref = work / f"check_{n}x{dim}_s{seed}.npy"
    bench_scale.write_pool(ref, n, dim, seed)
    want = np.load(ref)
    got: list[np.ndarray] = []
    have = 0
    for batch in pq.ParquetFile(pool).iter_batches(batch_size=bench_scale.GEN_BLOCK_ROWS, columns=["embedding"]):
        flat = batch.column(0).values.to_numpy(zero_copy_only=False)
        got.append(flat.reshape(-1, dim))
        have += got[-1].shape[0]
        if have >= n:
            break
    ref.unlink()
    return bool(np.array_equal(np.concatenate(got)[:n], want))


def child(spec: dict[str, Any]) -> None:
    from gioselect.job.config import SelectConfig, parse_memory

    cfg = SelectConfig(pool=Path(spec["pool"]), target=Path(spec["target"]), out=Path(spec["out"]),
                       embedding_field="embedding",
                       clusters=spec["clusters"], kmeans_iter=spec["kmeans_iter"], seed=spec["seed"],
                       memory_budget=parse_memory(spec["memory_budget"]), report=True)
    if spec["engine"] == "spark":
        from gioselect.spark import run_select_spark

        manifest = run_select_spark(cfg, spark_master="local[2]", kmeans="auto", spark_conf={
            "spark.driver.memory": spec["driver_memory"], "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "8"})
    else:
        from gioselect.pipeline import run_select

        manifest = run_select(cfg)
    Path(spec["result"]).write_text(json.dumps(manifest, default=str))


def run_child(spec: dict[str, Any], interval: float) -> dict[str, Any]:
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    sampler = RssSampler(proc.pid, interval)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    peaks = sampler.stop()
    wall = time.monotonic() - t0
    Path(spec["result"]).with_suffix(".log").write_text(out)  # the whole child output (Spark's errors are long)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{spec['engine']} run failed (whole output in {spec['result'][:-5]}.log):\n{out[-4000:]}")
    m = json.loads(Path(spec["result"]).read_text())
    return {"engine": spec["engine"], "wall_s": round(wall, 1),
            "cpu_s_wait4": round(usage.ru_utime + usage.ru_stime, 1),
            "maxrss_child_bytes": usage.ru_maxrss * 1024, "peak_rss_bytes": peaks,
            "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2),
            "timings_s": m.get("timings_s"), "phase_cpu_s": m.get("cpu_s"), "counts": m.get("counts"),
            "stop_reason": m.get("stop_reason"), "quantization": m.get("quantization")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=lambda s: int(float(s)), default=10_000_000, help="pool rows (default 1e7)")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--targets", type=int, default=10_000)
    ap.add_argument("--clusters", type=int, default=1500)
    ap.add_argument("--kmeans-iter", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory-budget", default="4G")
    ap.add_argument("--driver-memory", default="4g", help="spark.driver.memory (default 4g)")
    ap.add_argument("--runs", default="spark", help="engines, comma-separated: spark, local (default spark)")
    ap.add_argument("--check-rows", type=int, default=200_000,
                    help="check the parquet's first N rows against bench_scale's .npy (0: skip; default 200000)")
    ap.add_argument("--workdir", type=Path, default=None, help="data and outputs (default: a temp dir, kept)")
    ap.add_argument("--sample-interval", type=float, default=0.5)
    ap.add_argument("--out", type=Path, default=None, help="JSON results (rewritten after every run)")
    args = ap.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_spark_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    pool = work / f"pool_{args.rows}x{args.dim}_s{args.seed}_v{bench_scale.DATA_FORMAT}.parquet"
    target = work / f"target_{args.targets}x{args.dim}_s{args.seed}.npy"
    record: dict[str, Any] = {"benchmark": "bench_spark_scale", "date_utc": datetime.now(timezone.utc).isoformat(),
                              "command": " ".join([Path(sys.executable).name, *sys.argv]),
                              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                          "python": platform.python_version()},
                              "settings": {k: v for k, v in vars(args).items() if k not in ("child", "out", "workdir")},
                              "runs": []}
    if not pool.exists():
        load0 = os.getloadavg()[0]
        record["pool_write_s"] = round(write_pool_parquet(pool, args.rows, args.dim, args.seed), 1)
        print(f"pool {pool.name}: {pool.stat().st_size / 2**30:.2f} GiB in {record['pool_write_s']} s, "
              f"load {load0:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
    record["pool_bytes"] = pool.stat().st_size
    if not target.exists():
        bench_scale.write_target(target, args.targets, args.dim, args.seed)
    if args.check_rows:
        n_check = min(args.check_rows, args.rows)
        record["rows_equal_bench_scale"] = check_rows(pool, n_check, args.dim, args.seed, work)
        print(f"first {n_check} rows (whole blocks) equal bench_scale's: {record['rows_equal_bench_scale']}",
              flush=True)
    for engine in [r.strip() for r in args.runs.split(",") if r.strip()]:
        out = work / f"out_{engine}"
        spec = {"engine": engine, "pool": str(pool), "target": str(target), "out": str(out),
                "result": str(work / f"result_{engine}.json"), "clusters": args.clusters,
                "kmeans_iter": args.kmeans_iter, "seed": args.seed, "memory_budget": args.memory_budget,
                "driver_memory": args.driver_memory}
        res = run_child(spec, args.sample_interval)
        record["runs"].append(res)
        print(json.dumps(res), flush=True)
        if args.out:
            args.out.write_text(json.dumps(record, indent=2))
    if args.out:
        args.out.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
