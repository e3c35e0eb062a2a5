"""Spark engine on one machine (``local[2]``) against the in-process engine, on the same parquet job.

For each pool size (default 1e5 and 1e6 rows x 64-D float32: a Gaussian mixture written as parquet with an
``id`` column and a ``fixed_size_list<float>`` ``embedding`` column, in row groups of 65,536, never whole in
memory) and a 10,000-row target from 12 of the 64 components, with K = 1500 clusters, ``--budget 10%`` and
GIO's ``normalize=False`` (with the default unit-norm start set GIO stops at its first pick on this data):

1. **local**: :func:`gioselect.pipeline.run_select` (faiss K-means on the ``K * 256``-row sample, streamed
   assignment, selected rows written as one parquet file);
2. **spark**: :func:`gioselect.spark.run_select_spark` with ``spark_master="local[2]"`` and the default
   ``kmeans="auto"`` (at these sizes: the same faiss K-means on the driver; assignment, explode and write on
   Spark);
3. **spark-lloyd**: the same with ``kmeans="lloyd"`` (K-means distributed over the executors too, as on a
   cluster).

Every run is a fresh subprocess (interpreter start, imports and the SparkSession/JVM start are included in its
wall time; the manifest's ``total`` is the job alone). Memory is sampled every ``--sample-interval`` seconds
from ``/proc``: the RSS of the child Python process (the driver), of the JVM it starts (the Spark driver and,
in local mode, the executors' JVM side), and of the Spark Python workers (the executors' Python side); peaks
of each and of their sum at one instant. Short spikes between samples can be missed. Spark gets
``spark.driver.memory=2g``.

Usage::

    .venv/bin/python benchmarks/bench_spark.py --sizes 1e5 --out benchmarks/results/bench_spark.json
    nohup .venv/bin/python benchmarks/bench_spark.py --sizes 1e5,1e6 \\
        --out benchmarks/results/bench_spark.json > bench_spark.log 2>&1 &

The goal (from the issue): the Spark engine on one machine within 3x of the in-process engine's wall time.
The machine is shared: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

GOAL_RATIO = 3.0
DIM = 64
CLUSTERS = 1500
N_COMPONENTS = 64
TARGET_COMPONENTS = 12
TARGET_ROWS = 10_000
ROW_GROUP = 65_536
DATA_FORMAT = 1


def _mixture(dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    centres = rng.normal(0.0, 1.0, size=(N_COMPONENTS, dim)).astype(np.float32)
    scales = rng.uniform(0.3, 0.8, size=N_COMPONENTS).astype(np.float32)
    weights = rng.dirichlet(np.full(N_COMPONENTS, 2.0))
    return centres, scales, weights


def _write_parquet(
    path: Path, n: int, centres: np.ndarray, scales: np.ndarray, weights: np.ndarray, rng: np.random.Generator
) -> None:
    """``n`` mixture rows as parquet (``id``, ``component``, ``embedding``), written block by block."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = centres.shape[1]
    schema = pa.schema(
        [("id", pa.int64()), ("component", pa.int32()), ("embedding", pa.list_(pa.float32(), d))]
    )
    tmp = path.with_suffix(".tmp.parquet")
    with pq.ParquetWriter(tmp, schema) as w:
        for a in range(0, n, ROW_GROUP):
            b = min(n, a + ROW_GROUP)
            comp = rng.choice(centres.shape[0], size=b - a, p=weights)
            x = centres[comp] + rng.normal(size=(b - a, d)).astype(np.float32) * scales[comp, None]
            emb = pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float32).reshape(-1)), d)
            w.write_table(
                pa.table(
                    {
                        "id": np.arange(a, b, dtype=np.int64),
                        "component": comp.astype(np.int32),
                        "embedding": emb,
                    },
                    schema=schema,
                )
            )
    os.replace(tmp, path)


def make_data(workdir: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    tag = f"v{DATA_FORMAT}_d{DIM}_s{seed}"
    pool = workdir / f"pool_{n}_{tag}.parquet"
    target = workdir / f"target_{TARGET_ROWS}_{tag}.parquet"
    centres, scales, weights = _mixture(DIM, seed)
    if not pool.exists():
        _write_parquet(
            pool, n, centres, scales, weights, np.random.default_rng(np.random.SeedSequence([seed, n]))
        )
    if not target.exists():
        tw = np.zeros_like(weights)
        tw[:TARGET_COMPONENTS] = weights[:TARGET_COMPONENTS]
        _write_parquet(
            target,
            TARGET_ROWS,
            centres,
            scales,
            tw / tw.sum(),
            np.random.default_rng(np.random.SeedSequence([seed, 1])),
        )
    return pool, target


# ----------------------------------------------------------------------------------------------------------
# one run, in a child process


def child(spec: dict[str, Any]) -> None:
    from gioselect.optimize import GIOParams
    from gioselect.pipeline import SelectConfig, run_select

    # normalize=False: the default start set (unit-norm points) makes GIO stop at its first pick on this data
    cfg = SelectConfig(
        pool=Path(spec["pool"]),
        target=Path(spec["target"]),
        out=Path(spec["out"]),
        clusters=CLUSTERS,
        budget="10%",
        seed=0,
        report=True,
        params=GIOParams(normalize=False, v_init="mean"),  # as recorded (the default was "mean" then)
    )
    t0 = time.monotonic()
    if spec["engine"] == "local":
        manifest = run_select(cfg)
    else:
        from gioselect.spark import run_select_spark

        manifest = run_select_spark(
            cfg,
            spark_master="local[2]",
            kmeans=spec["kmeans"],
            spark_conf={
                "spark.driver.memory": "2g",
                "spark.ui.enabled": "false",
                "spark.sql.shuffle.partitions": "8",
            },
        )
    wall = time.monotonic() - t0
    Path(spec["result"]).write_text(json.dumps({"job_wall_s": wall, "manifest": manifest}, default=str))


def _proc_tree(root: int) -> dict[int, str]:
    """pid -> role ('driver', 'jvm', 'worker') of ``root`` and its descendants."""
    parents: dict[int, int] = {}
    cmds: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        cmds[int(entry)] = cmd
    out = {root: "driver"}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if pid not in out and ppid in out:
                cmd = cmds.get(pid, "")
                out[pid] = "jvm" if "java" in cmd.split(" ")[0] else "worker"
                changed = True
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssSampler:
    """Peak RSS of a process tree by role ('driver', 'jvm', 'worker') and of their sum at one instant, sampled
    every ``interval`` seconds from ``/proc`` on a thread until :meth:`stop`."""

    def __init__(self, pid: int, interval: float) -> None:
        self.peaks = {"driver": 0, "jvm": 0, "worker": 0, "total": 0}
        self._pid, self._interval, self._done = pid, interval, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            by_role = {"driver": 0, "jvm": 0, "worker": 0}
            for pid, role in _proc_tree(self._pid).items():
                by_role[role] += _rss(pid)
            for role, v in by_role.items():
                self.peaks[role] = max(self.peaks[role], v)
            self.peaks["total"] = max(self.peaks["total"], sum(by_role.values()))
            self._done.wait(self._interval)

    def stop(self) -> dict[str, int]:
        self._done.set()
        self._thread.join()
        return self.peaks


def run_child(spec: dict[str, Any], interval: float) -> dict[str, Any]:
    result = Path(spec["result"])
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sampler = RssSampler(proc.pid, interval)
    out, _ = proc.communicate()
    peaks = sampler.stop()
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['engine']} run failed:\n{out[-4000:]}")
    res = json.loads(result.read_text())
    m = res["manifest"]
    return {
        "engine": spec["engine"],
        "kmeans": spec.get("kmeans"),
        "wall_s": round(wall, 2),
        "job_s": round(res["job_wall_s"], 2),
        "timings_s": m["timings_s"],
        "peak_rss_bytes": peaks,
        "selected_rows": m["counts"]["selected_rows"],
        "final_kl": m["final_kl"],
        "stop_reason": m["stop_reason"],
        "quantization": m.get("quantization"),
        "pool_rows": m["counts"]["pool_rows"],
    }


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
        with open("/proc/meminfo") as fh:
            info["ram_bytes"] = (
                int(next(line for line in fh if line.startswith("MemTotal")).split()[1]) * 1024
            )
        info["loadavg_start"] = os.getloadavg()
    except (OSError, StopIteration):
        pass
    try:
        import pyspark

        info["pyspark"] = pyspark.__version__
        info["java"] = subprocess.run(
            ["java", "-version"], capture_output=True, text=True
        ).stderr.splitlines()[0]
    except Exception:
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--sizes", default="1e5,1e6", help="pool sizes, comma-separated (default 1e5,1e6)")
    ap.add_argument("--runs", default="local,spark,spark-lloyd", help="which runs (default all three)")
    ap.add_argument(
        "--workdir", type=Path, default=None, help="where data and outputs go (default: a temp dir)"
    )
    ap.add_argument("--keep-data", action="store_true", help="keep the generated parquet files")
    ap.add_argument("--sample-interval", type=float, default=0.2)
    ap.add_argument("--out", type=Path, default=None, help="JSON results (rewritten after every run)")
    args = ap.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_spark_"))
    work.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "benchmark": "bench_spark",
        "date_utc": datetime.now(timezone.utc).isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "settings": {
            "dim": DIM,
            "clusters": CLUSTERS,
            "target_rows": TARGET_ROWS,
            "budget": "10%",
            "gio": "normalize=False",
            "spark_master": "local[2]",
            "spark.driver.memory": "2g",
        },
        "goal_ratio": GOAL_RATIO,
        "results": [],
    }
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    try:
        for size in [int(float(s)) for s in args.sizes.split(",")]:
            t = time.monotonic()
            pool, target = make_data(work, size)
            print(
                f"data {size}: {pool.stat().st_size / 2**20:.0f} MiB in {time.monotonic() - t:.1f}s",
                flush=True,
            )
            row: dict[str, Any] = {"rows": size, "pool_bytes": pool.stat().st_size, "runs": []}
            record["results"].append(row)
            for name in runs:
                out = work / f"out_{size}_{name}"
                shutil.rmtree(out, ignore_errors=True)
                spec = {
                    "engine": "local" if name == "local" else "spark",
                    "kmeans": {"spark": "auto", "spark-lloyd": "lloyd"}.get(name),
                    "pool": str(pool),
                    "target": str(target),
                    "out": str(out),
                    "result": str(work / f"res_{size}_{name}.json"),
                }
                res = run_child(spec, args.sample_interval)
                res["run"] = name
                res["loadavg_after"] = os.getloadavg()
                row["runs"].append(res)
                print(
                    json.dumps(
                        {
                            k: res[k]
                            for k in ("run", "wall_s", "job_s", "peak_rss_bytes", "selected_rows", "final_kl")
                        }
                    ),
                    flush=True,
                )
                shutil.rmtree(out, ignore_errors=True)
                if args.out:
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps(record, indent=2) + "\n")
            local = next((r for r in row["runs"] if r["run"] == "local"), None)
            if local:
                for r in row["runs"]:
                    r["ratio_to_local"] = round(r["wall_s"] / local["wall_s"], 2)
                    r["job_ratio_to_local"] = round(r["job_s"] / local["job_s"], 2)
            if args.out:
                args.out.write_text(json.dumps(record, indent=2) + "\n")
    finally:
        if not args.keep_data and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(record["results"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
