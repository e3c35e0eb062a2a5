"""Single-machine scale benchmark: ``gioselect select`` end to end against the faiss K-means floor.

For each pool size (default 1e4, 1e5, 1e6 rows x 384-D float32, a clustered Gaussian mixture written as a
``.npy`` in blocks, never whole in memory) and a 10k-row target, with K = 1500 clusters:

1. **floor**: a fresh subprocess that does only what no K-means-quantised selector can avoid: read the same
   K-means training sample the pipeline reads (``K * 256`` rows chosen by
   :func:`gioselect.quantize.training_sample_indices` with the pipeline's sub-seed), train ``faiss.Kmeans``
   with the same ``niter``, and assign every row of the memory-mapped pool to its nearest centroid in one
   streamed pass (same block size as the pipeline's local engine).
2. **end to end**: a fresh subprocess running the ``gioselect select`` CLI with the same seed and K; its
   per-phase timings come from the ``manifest.json`` it writes.

Both children are timed from the parent (wall clock, including interpreter start and imports) and from inside
(the floor's own clock, the manifest's ``total``); their CPU seconds (user + system, from ``os.wait4``) are
recorded too. Memory: ``ru_maxrss`` of the child from ``os.wait4`` (exact peak of the whole resident set,
file-backed pages included) and a sampler thread that reads ``/proc/<pid>/status`` (``VmRSS``, ``RssAnon``,
``RssFile``) and ``/proc/<pid>/smaps`` every ``--sample-interval`` seconds. "RSS beyond the memory-mapped
input" is the peak over the samples of ``sum(Rss) - Rss(mappings of the pool file)``, both from one pass over
``smaps`` (anonymous memory plus resident pages of shared libraries and other files); the peak of ``RssAnon``
is reported beside it. Sampled peaks can miss spikes shorter than the interval.

The goals (from the issue, at 1e6 rows): end to end <= 2 x one brute-force assignment pass (same run), RSS
beyond the mapped input <= 2.5 GB, GIO ("select") phase <= 10 % of the total.

Usage::

    .venv/bin/python benchmarks/bench_scale.py --sizes 1e4,1e5 --out benchmarks/results/bench_scale.json
    nohup .venv/bin/python benchmarks/bench_scale.py --sizes 1e4,1e5,1e6 ... > bench.log 2>&1 &

The machine is shared and timings are noisy; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

GOAL_RATIO = 2.0  # end to end / one brute-force assignment pass, same run
GOAL_RSS_BYTES = 2_500_000_000  # "2.5 GB" read strictly: 2.5e9 bytes (2.33 GiB)
GOAL_GIO_SHARE = 0.10
GOAL_ROWS = 1_000_000
GEN_BLOCK_ROWS = 65_536
N_COMPONENTS = 64
TARGET_COMPONENTS = 12
DATA_FORMAT = 1  # bump when the generator changes, so that kept data is regenerated


# ----------------------------------------------------------------------------------------------------------
# synthetic data


def _mixture(dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Component centres (C, d), per-component noise scales (C,) and pool weights (C,) of the mixture."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    centres = rng.normal(0.0, 1.0, size=(N_COMPONENTS, dim)).astype(np.float32)
    scales = rng.uniform(0.3, 0.8, size=N_COMPONENTS).astype(np.float32)
    weights = rng.dirichlet(np.full(N_COMPONENTS, 2.0))
    return centres, scales, weights


def _sample_mixture(rng: np.random.Generator, n: int, centres: np.ndarray, scales: np.ndarray,
                    weights: np.ndarray) -> np.ndarray:
    """``n`` float32 rows of the mixture: centre of a drawn component plus isotropic noise of its scale."""
    comp = rng.choice(centres.shape[0], size=n, p=weights)
    x = rng.standard_normal((n, centres.shape[1]), dtype=np.float32)
    x *= scales[comp, None]
    x += centres[comp]
    return x


def write_pool(path: Path, n_rows: int, dim: int, seed: int) -> float:
    """Write the pool ``.npy`` block by block through ``open_memmap``; returns seconds taken.

    Block ``i`` draws from its own generator (``SeedSequence([seed, 1, i])``), so the file depends only on
    ``(n_rows, dim, seed)``.
    """
    t0 = time.perf_counter()
    centres, scales, weights = _mixture(dim, seed)
    tmp = path.with_name(path.name + ".tmp.npy")
    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_rows, dim))
    for i, start in enumerate(range(0, n_rows, GEN_BLOCK_ROWS)):
        b = min(GEN_BLOCK_ROWS, n_rows - start)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 1, i]))
        mm[start:start + b] = _sample_mixture(rng, b, centres, scales, weights)
    mm.flush()
    del mm
    os.replace(tmp, path)
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------------------------------------
# real embeddings: the BBC News corpus (``--data bbc``)


def _bbc(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings, domain names, held-out mask) of every BBC sentence, from the experiments' on-disk cache.

    Held out: a seeded 10 % of every domain's articles (at least 2), as in ``experiments/bbc_domains.py``.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    from common import bbc_corpus, bbc_corpus_embeddings

    recs = bbc_corpus()
    emb = bbc_corpus_embeddings(recs)
    dom = np.array([r["domain"] for r in recs])
    art = np.array([r["article"] for r in recs])
    held = np.zeros(len(recs), dtype=bool)
    rng = np.random.default_rng(np.random.SeedSequence([args.seed, 3]))
    for d in sorted(set(dom.tolist())):
        arts = np.unique(art[dom == d])
        h = rng.permutation(arts)[: max(2, arts.size // 10)]
        held |= (dom == d) & np.isin(art, h)
    return emb, dom, held


def write_bbc_target(path: Path, args: argparse.Namespace) -> None:
    """The target: every sentence of ``--bbc-domain``'s held-out articles (not in the pool)."""
    emb, dom, held = _bbc(args)
    np.save(path, np.ascontiguousarray(emb[held & (dom == args.bbc_domain)], dtype=np.float32))


def write_bbc_pool(path: Path, n_rows: int, args: argparse.Namespace) -> float:
    """The pool: the BBC sentences not held out (all five domains), repeated in a seeded order to ``n_rows``
    rows, each copy plus N(0, ``--bbc-noise``^2) per coordinate (the embeddings have unit norm, so 0.005 per
    coordinate is a norm of about 0.1); written block by block like :func:`write_pool`."""
    t0 = time.perf_counter()
    emb, _, held = _bbc(args)
    base = np.ascontiguousarray(emb[~held], dtype=np.float32)
    rng0 = np.random.default_rng(np.random.SeedSequence([args.seed, 4]))
    reps = -(-n_rows // base.shape[0])
    order = np.concatenate([rng0.permutation(base.shape[0]) for _ in range(reps)])[:n_rows]
    tmp = path.with_name(path.name + ".tmp.npy")
    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_rows, base.shape[1]))
    for i, start in enumerate(range(0, n_rows, GEN_BLOCK_ROWS)):
        b = min(GEN_BLOCK_ROWS, n_rows - start)
        rng = np.random.default_rng(np.random.SeedSequence([args.seed, 5, i]))
        x = rng.standard_normal((b, base.shape[1]), dtype=np.float32)
        x *= np.float32(args.bbc_noise)
        x += base[order[start:start + b]]
        mm[start:start + b] = x
    mm.flush()
    del mm
    os.replace(tmp, path)
    return time.perf_counter() - t0


def write_target(path: Path, n_rows: int, dim: int, seed: int) -> None:
    """The target: a few of the pool's components (other weights), so that GIO has something to choose."""
    centres, scales, _ = _mixture(dim, seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    comps = rng.choice(N_COMPONENTS, size=TARGET_COMPONENTS, replace=False)
    w = rng.dirichlet(np.full(TARGET_COMPONENTS, 2.0))
    np.save(path, _sample_mixture(rng, n_rows, centres[comps], scales[comps], w))


def _ensure(path: Path, spec: dict[str, Any], make: Any) -> float:
    """Make ``path`` unless it exists with a sidecar recording the same ``spec``; returns seconds spent."""
    side = path.with_name(path.name + ".json")
    if path.exists() and side.exists() and json.loads(side.read_text()) == spec:
        return 0.0
    t0 = time.perf_counter()
    make()
    side.write_text(json.dumps(spec))
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------------------------------------
# the floor (runs in a child process: ``bench_scale.py _floor ...``)


def _floor_main(argv: list[str]) -> int:
    """K-means on the pipeline's training sample plus one streamed assignment pass; prints JSON timings."""
    p = argparse.ArgumentParser(prog="bench_scale.py _floor")
    p.add_argument("--pool", type=Path, required=True)
    p.add_argument("--clusters", type=int, required=True)
    p.add_argument("--kmeans-iter", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-budget", default=None)
    p.add_argument("--assign-only", action="store_true",
                   help="no K-means: assign to K seeded pool rows (the pass costs the same for any centroids)")
    a = p.parse_args(argv)
    t_start = time.perf_counter()
    import faiss

    from gioselect.engines import LocalEngine
    from gioselect.job import Seeds, default_memory_budget, parse_memory  # same sub-seed as the pipeline
    from gioselect.quantize import kmeans_centroids, training_sample_indices

    t_import = time.perf_counter() - t_start
    mm = np.load(a.pool, mmap_mode="r")
    n, d = mm.shape
    engine = LocalEngine(parse_memory(a.memory_budget) if a.memory_budget else default_memory_budget())
    ppc = engine.points_per_centroid(a.clusters, d)
    seed = Seeds(a.seed).pool_kmeans
    t0 = time.perf_counter()
    if a.assign_only:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(n, size=a.clusters, replace=False))
    else:
        idx = training_sample_indices(n, a.clusters, seed=seed, max_points_per_centroid=ppc)
    sample = np.ascontiguousarray(mm[idx], dtype=np.float32)
    t_sample = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    # the pipeline's own K-means (sample rule, iteration cap and convergence test of this checkout)
    cents = sample if a.assign_only else kmeans_centroids(sample, a.clusters, seed=seed, niter=a.kmeans_iter)
    t_kmeans, c_kmeans = time.perf_counter() - t0, time.process_time() - c0
    del sample
    t0, c0 = time.perf_counter(), time.process_time()
    index = faiss.IndexFlatL2(d)
    index.add(np.ascontiguousarray(cents, dtype=np.float32))
    labels = np.empty(n, dtype=np.int32)
    rows = engine.block_rows(d)
    for s in range(0, n, rows):
        _, lab = index.search(np.ascontiguousarray(mm[s:s + rows], dtype=np.float32), 1)
        labels[s:s + lab.shape[0]] = lab[:, 0]
    t_assign, c_assign = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"import_s": t_import, "sample_s": t_sample, "kmeans_s": t_kmeans, "assign_s": t_assign,
                      "kmeans_cpu_s": c_kmeans, "assign_cpu_s": c_assign,
                      "total_s": t_sample + t_kmeans + t_assign, "sample_rows": int(idx.shape[0]),
                      "assign_only": bool(a.assign_only), "points_per_centroid": ppc,
                      "block_rows": rows, "nonempty_clusters": int(np.unique(labels).shape[0]),
                      "faiss_threads": faiss.omp_get_max_threads()}))
    return 0


# ----------------------------------------------------------------------------------------------------------
# running a child with memory sampling


def _status_kb(pid: int) -> dict[str, int]:
    """The ``kB`` fields of ``/proc/<pid>/status`` that describe memory."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("Vm", "Rss")):
                key, _, val = line.partition(":")
                out[key] = int(val.split()[0])
    return out


def _smaps_kb(pid: int, path: str) -> tuple[int, int, int]:
    """One pass over ``/proc/<pid>/smaps``: resident kB of all mappings, of the mappings of ``path``, and the
    anonymous kB. Reading one file keeps the three consistent (a mapping removed during the walk lowers both
    sums instead of leaving a stale total beside a fresh zero, as ``status`` then ``smaps`` would at exit)."""
    total = mapped = anon = 0
    inside = False
    with open(f"/proc/{pid}/smaps") as fh:
        for line in fh:
            first = line.split(maxsplit=1)[0]
            if not first.endswith(":"):  # a mapping header: "start-end perms offset dev inode [path]"
                inside = line.rstrip("\n").endswith(path)
            elif first == "Rss:":
                kb = int(line.split()[1])
                total += kb
                if inside:
                    mapped += kb
            elif first == "Anonymous:":
                anon += int(line.split()[1])
    return total, mapped, anon


class _Sampler(threading.Thread):
    """Polls a child's memory until it exits; keeps the peaks (kB) and a timeline at about 1 s resolution."""

    def __init__(self, pid: int, mapped: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.mapped, self.interval = pid, mapped, interval
        self.stop = threading.Event()
        self.peak = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0, "RssShmem": 0, "VmHWM": 0, "smaps_rss": 0,
                     "smaps_anon": 0, "pool_mapped": 0, "beyond_mapped": 0}
        self.samples = 0
        self.timeline: list[tuple[float, int, int, int]] = []  # (s, smaps rss, anon, pool mapped) in kB

    def run(self) -> None:
        t0 = time.perf_counter()
        last = -1.0
        while not self.stop.is_set():
            try:
                st = _status_kb(self.pid)
                total, mapped, anon = _smaps_kb(self.pid, self.mapped)
            except (OSError, ValueError, IndexError):
                break
            if "VmRSS" not in st or total == 0:  # zombie
                break
            self.samples += 1
            for key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                self.peak[key] = max(self.peak[key], st.get(key, 0))
            for key, val in (("smaps_rss", total), ("smaps_anon", anon), ("pool_mapped", mapped),
                             ("beyond_mapped", total - mapped)):
                self.peak[key] = max(self.peak[key], val)
            now = time.perf_counter() - t0
            if now - last >= 1.0:
                self.timeline.append((round(now, 2), total, anon, mapped))
                last = now
            self.stop.wait(self.interval)


def run_child(cmd: list[str], mapped: Path, interval: float, ok: tuple[int, ...] = (0,)) -> dict[str, Any]:
    """Run ``cmd``; wall time, exact peak RSS (``wait4``) and sampled memory peaks, all in bytes. An exit code
    outside ``ok`` raises."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = _Sampler(proc.pid, str(mapped.resolve()), interval)
    sampler.start()
    out_chunks: list[str] = []
    err_chunks: list[str] = []
    readers = [threading.Thread(target=lambda f=f, b=b: b.append(f.read()), daemon=True)
               for f, b in ((proc.stdout, out_chunks), (proc.stderr, err_chunks))]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.stop.set()
    sampler.join()
    for r in readers:
        r.join()
    stdout, stderr = "".join(out_chunks), "".join(err_chunks)
    if proc.returncode not in ok:
        raise RuntimeError(f"{shlex.join(cmd)} exited with {proc.returncode}:\n{stderr[-4000:]}")
    kb = 1024
    return {
        "exit_code": proc.returncode,
        "wall_s": wall,
        "stdout": stdout,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "maxrss_bytes": usage.ru_maxrss * kb,  # Linux: kB
        "sampled_peak_bytes": {k: v * kb for k, v in sampler.peak.items()},
        "samples": sampler.samples,
        "timeline_kb": sampler.timeline,
    }


# ----------------------------------------------------------------------------------------------------------
# one size


def _floor(pool: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "_floor", "--pool", str(pool), "--clusters",
           str(args.clusters), "--kmeans-iter", str(args.kmeans_iter), "--seed", str(args.seed)]
    if args.memory_budget:
        cmd += ["--memory-budget", args.memory_budget]
    if args.floor == "assign":
        cmd.append("--assign-only")
    res = run_child(cmd, pool, args.sample_interval)
    res["inner"] = json.loads(res.pop("stdout").strip().splitlines()[-1])
    res["command"] = shlex.join(cmd)
    return res


def _cli() -> str:
    exe = Path(sys.executable).parent / "gioselect"
    return str(exe) if exe.exists() else "gioselect"


def _end_to_end(pool: Path, target: Path, out: Path, args: argparse.Namespace,
                extra: tuple[str, ...] = ()) -> dict[str, Any]:
    cmd = [_cli(), "select", "--pool", str(pool), "--target", str(target), "--out", str(out), "--clusters",
           str(args.clusters), "--kmeans-iter", str(args.kmeans_iter), "--seed", str(args.seed), "--quiet"]
    if args.no_report:
        cmd.append("--no-report")
    if args.memory_budget:
        cmd += ["--memory-budget", args.memory_budget]
    cmd += [*args.cli_arg, *extra]
    res = run_child(cmd, pool, args.sample_interval, ok=(0, 3))  # 3: ran to the end, selected nothing
    res.pop("stdout")
    res["exit_code"] = res.get("exit_code", 0)
    manifest = json.loads((out / "manifest.json").read_text())
    res["timings_s"] = manifest["timings_s"]
    res["phase_cpu_s"] = manifest.get("cpu_s", {})  # the job's own CPU seconds per phase (gioselect.job.run)
    res["counts"] = manifest["counts"]
    res["stop_reason"] = manifest["stop_reason"]
    res["command"] = shlex.join(cmd)
    if not args.keep_data:
        shutil.rmtree(out, ignore_errors=True)
    return res


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def _summarise(n: int, floors: list[dict[str, Any]], e2es: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the repeats, the ratios and the goal verdicts (floor fields are None without a floor)."""
    e_wall = _median([e["wall_s"] for e in e2es])
    e_total = _median([e["timings_s"]["total"] for e in e2es])
    phases = sorted({k for e in e2es for k in e["timings_s"]})
    ph = {k: _median([e["timings_s"].get(k, 0.0) for e in e2es]) for k in phases}
    gio_share = _median([e["timings_s"].get("select", 0.0) / e["timings_s"]["total"] for e in e2es])
    e_cpu = _median([e["cpu_s"] for e in e2es])
    beyond = max(e["sampled_peak_bytes"]["beyond_mapped"] for e in e2es)
    anon = max(e["sampled_peak_bytes"]["RssAnon"] for e in e2es)
    out: dict[str, Any] = {
        "rows": n,
        "e2e_wall_s": e_wall,
        "e2e_manifest_total_s": e_total,
        "e2e_phases_s": ph,
        "e2e_cpu_s": e_cpu,
        "e2e_maxrss_bytes": max(e["maxrss_bytes"] for e in e2es),
        "e2e_anon_peak_bytes": anon,
        "e2e_pool_mapped_peak_bytes": max(e["sampled_peak_bytes"]["pool_mapped"] for e in e2es),
        "e2e_beyond_mapped_peak_bytes": beyond,
        "gio_share": gio_share,
        "picks": [e["counts"].get("selected_candidates") for e in e2es],
        "selected_rows": [e["counts"].get("selected_rows") for e in e2es],
    }
    if floors:
        f_inner = _median([f["inner"]["total_s"] for f in floors])
        f_assign = _median([f["inner"]["assign_s"] for f in floors])
        out.update({
            "floor_wall_s": _median([f["wall_s"] for f in floors]),
            "floor_inner_s": f_inner,
            "floor_phases_s": {k: _median([f["inner"][k] for f in floors]) for k in
                               ("sample_s", "kmeans_s", "assign_s", "import_s")},
            "floor_cpu_s": _median([f["cpu_s"] for f in floors]),
            "floor_maxrss_bytes": max(f["maxrss_bytes"] for f in floors),
            "floor_anon_peak_bytes": max(f["sampled_peak_bytes"]["RssAnon"] for f in floors),
            "floor_beyond_mapped_peak_bytes": max(f["sampled_peak_bytes"]["beyond_mapped"] for f in floors),
            "ratio_inner": e_total / f_inner,
            "ratio_to_assign": e_total / f_assign,
            # CPU seconds (all threads): the child's whole run over the floor's assignment pass alone; less
            # sensitive to the machine's load than the wall-clock ratio
            "floor_assign_cpu_s": _median([f["inner"]["assign_cpu_s"] for f in floors]),
            "ratio_to_assign_cpu": e_cpu / _median([f["inner"]["assign_cpu_s"] for f in floors]),
        })
    ratio = out.get("ratio_to_assign")
    out["goals"] = {
        "applies": n == GOAL_ROWS,
        "e2e_le_2x_assign": None if ratio is None else bool(ratio <= GOAL_RATIO),
        "rss_beyond_mapped_le_2.5GB": bool(beyond <= GOAL_RSS_BYTES),
        "gio_share_le_10pct": bool(gio_share <= GOAL_GIO_SHARE),
    }
    return out


def bench_size(n: int, args: argparse.Namespace, workdir: Path, target: Path) -> dict[str, Any]:
    pool = workdir / f"pool_{args.data}_{n}x{args.dim}_s{args.seed}.npy"
    spec = {"rows": n, "dim": args.dim, "seed": args.seed, "format": DATA_FORMAT, "data": args.data,
            "domain": args.bbc_domain, "noise": args.bbc_noise}
    if args.data == "bbc":
        gen_s = _ensure(pool, spec, lambda: write_bbc_pool(pool, n, args))
    else:
        gen_s = _ensure(pool, spec, lambda: write_pool(pool, n, args.dim, args.seed))
    _log(f"[{n:>9,}] pool {pool.name} ({pool.stat().st_size / 2**30:.2f} GiB) ready in {gen_s:.1f} s, "
         f"load {os.getloadavg()[0]:.1f}")
    floors: list[dict[str, Any]] = []
    e2es: list[dict[str, Any]] = []
    loads: list[float] = []
    nonrefined: list[dict[str, Any]] = []
    if args.compare_refine:
        summary = _bench_refine(n, args, workdir, pool, target, floors, e2es, nonrefined, loads)
    else:
        for rep in range(args.repeats):
            # Alternate the order so that drift in the machine's load does not always favour one side.
            order = ("floor", "e2e") if rep % 2 == 0 else ("e2e", "floor")
            for what in order:
                if what == "floor":
                    if args.floor == "none":
                        continue
                    floors.append(_floor(pool, args))
                    _log_floor(n, rep, floors[-1])
                else:
                    out = workdir / f"out_{n}_{rep}"
                    shutil.rmtree(out, ignore_errors=True)
                    e2es.append(_end_to_end(pool, target, out, args))
                    _log_e2e(n, rep, "", e2es[-1])
                loads.append(os.getloadavg()[0])
        summary = _summarise(n, floors, e2es)
        summary["load_average_1min_after_each_run"] = loads
    if not args.keep_data:
        for p in (pool, pool.with_name(pool.name + ".json")):
            p.unlink(missing_ok=True)
    return {"rows": n, "pool_bytes": n * args.dim * 4, "generate_s": gen_s, "summary": summary, "floor_runs": floors,
            "e2e_runs": e2es, "e2e_refine_none_runs": nonrefined}


def _log_floor(n: int, rep: int, f: dict[str, Any]) -> None:
    _log(f"[{n:>9,}] rep {rep} floor: {f['wall_s']:.1f} s wall, inner {f['inner']['total_s']:.1f} s "
         f"(K-means {f['inner']['kmeans_s']:.1f}, assign {f['inner']['assign_s']:.1f}), "
         f"maxrss {f['maxrss_bytes'] / 2**20:.0f} MiB")


def _log_e2e(n: int, rep: int, what: str, e: dict[str, Any]) -> None:
    _log(f"[{n:>9,}] rep {rep} e2e{what}: {e['wall_s']:.1f} s wall, {e['cpu_s']:.1f} CPU s, load "
         f"{e.get('load_1min_before', float('nan')):.1f} -> {e.get('load_1min_after', float('nan')):.1f}, "
         f"phases {e['timings_s']}, phase CPU s {e.get('phase_cpu_s')}, counts {e['counts']}, "
         f"maxrss {e['maxrss_bytes'] / 2**20:.0f} MiB")


def _bench_refine(n: int, args: argparse.Namespace, workdir: Path, pool: Path, target: Path,
                  floors: list[dict[str, Any]], e2es: list[dict[str, Any]], nonrefined: list[dict[str, Any]],
                  loads: list[float]) -> dict[str, Any]:
    """``--compare-refine``: the default row-level pass, ``--refine none`` and every ``--refine-variant``,
    interleaved: each repeat runs every setting once, in the listed order on even repeats and reversed on odd
    ones, so that drift in the machine's load does not favour one setting. Each run records the 1-minute load
    average before and after it; the comparisons report the median and the range of the per-repeat ratios."""
    settings: list[tuple[str, tuple[str, ...]]] = [("default", ()), ("none", ("--refine", "none"))]
    settings += [(v, tuple(shlex.split(v))) for v in args.refine_variant]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in settings}
    for rep in range(args.repeats):
        if args.floor != "none":
            floors.append(_floor(pool, args))
            _log_floor(n, rep, floors[-1])
        for i, (name, extra) in enumerate(settings if rep % 2 == 0 else settings[::-1]):
            out = workdir / f"out_{n}_{rep}_{i}"
            shutil.rmtree(out, ignore_errors=True)
            before = os.getloadavg()[0]
            e = _end_to_end(pool, target, out, args, extra)
            e["setting"], e["rep"], e["load_1min_before"] = name, rep, before
            e["load_1min_after"] = os.getloadavg()[0]
            loads.append(e["load_1min_after"])
            runs[name].append(e)
            _log_e2e(n, rep, "" if name == "default" else f" {name}", e)
    e2es.extend(runs["default"])
    nonrefined.extend(runs["none"])
    summary = _summarise(n, floors, e2es)
    summary["load_average_1min_after_each_run"] = loads
    summary["refine_compare"] = _refine_compare(e2es, nonrefined)
    for variant, _ in settings[2:]:
        summary.setdefault("refine_variants", {})[variant] = {"compare": _refine_compare(runs[variant], nonrefined),
                                                              "runs": runs[variant]}
    return summary


def _refine_compare(refined: list[dict[str, Any]], plain: list[dict[str, Any]]) -> dict[str, Any]:
    """The default (row-level pass) against ``--refine none``: totals, CPU seconds, phases, picks, GIO shares."""
    def side(runs: list[dict[str, Any]]) -> dict[str, Any]:
        phases = sorted({k for e in runs for k in e["timings_s"]})
        return {"total_s": _median([e["timings_s"]["total"] for e in runs]),
                "cpu_s": _median([e["cpu_s"] for e in runs]),
                "phases_s": {k: _median([e["timings_s"].get(k, 0.0) for e in runs]) for k in phases},
                "picks": [e["counts"].get("selected_candidates") for e in runs],
                "gio_share": _median([e["timings_s"].get("select", 0.0) / e["timings_s"]["total"] for e in runs])}

    a, b = side(refined), side(plain)
    # Per repeat (both sides of one repeat ran back to back): the ratio's median and range.
    per_rep = [(r["cpu_s"] / p["cpu_s"], r["timings_s"]["total"] / p["timings_s"]["total"])
               for r, p in zip(refined, plain, strict=False)]
    return {"refine_default": a, "refine_none": b, "total_ratio": a["total_s"] / b["total_s"],
            "cpu_ratio_per_rep": [c for c, _ in per_rep], "total_ratio_per_rep": [t for _, t in per_rep],
            "cpu_ratio_median_per_rep": _median([c for c, _ in per_rep]) if per_rep else None,
            "cpu_ratio": a["cpu_s"] / b["cpu_s"], "goal_added_max": 0.10,
            "goal_met_total": bool(a["total_s"] <= 1.10 * b["total_s"]),
            "goal_met_cpu": bool(a["cpu_s"] <= 1.10 * b["cpu_s"])}


# ----------------------------------------------------------------------------------------------------------
# reporting


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                            "cpus_usable": len(os.sched_getaffinity(0)), "cpu_model": platform.processor() or "?"}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    info["ram_bytes"] = int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return info


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("faiss", "gioselect"):
        try:
            out[mod] = str(__import__(mod).__version__)
        except Exception:  # reported as missing
            out[mod] = "missing"
    return out


def _gib(b: float) -> str:
    return f"{b / 2**30:.2f}"


def _num(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def markdown_table(results: list[dict[str, Any]]) -> str:
    """Two markdown tables: time (with the phases) and memory, one row per pool size."""
    order = ["hash", "embed", "read", "quantize_pool", "quantize_target", "select", "explode", "write", "report"]
    seen = {k for r in results for k in r["summary"]["e2e_phases_s"] if k != "total"}
    phase_names = [k for k in order if k in seen] + sorted(seen - set(order))
    lines = [
        "| rows | floor inner s (K-means + assign) | e2e wall s | e2e manifest total s | "
        + " | ".join(phase_names) + " | e2e / assign pass | e2e / assign pass (CPU s) | e2e / floor | picks | "
        "GIO share | load (1 min) |",
        "|" + "---:|" * (10 + len(phase_names)),
    ]
    for r in results:
        s = r["summary"]
        fp = s.get("floor_phases_s")
        ph = s["e2e_phases_s"]
        floor = "-" if fp is None else f"{s['floor_inner_s']:.1f} ({fp['kmeans_s']:.1f} + {fp['assign_s']:.1f})"
        cells = [f"{r['rows']:,}", floor, f"{s['e2e_wall_s']:.1f}", f"{s['e2e_manifest_total_s']:.1f}"]
        cells += [f"{ph[p]:.2f}" if p in ph else "-" for p in phase_names]
        cpu = "-" if s.get("ratio_to_assign_cpu") is None else (
            f"{s['ratio_to_assign_cpu']:.2f} ({s['e2e_cpu_s']:.1f}/{s['floor_assign_cpu_s']:.1f})")
        cells += [_num(s.get("ratio_to_assign"), ".2f"), cpu, _num(s.get("ratio_inner"), ".2f"),
                  ", ".join(str(p) for p in s["picks"]), f"{100 * s['gio_share']:.1f} %",
                  ", ".join(f"{x:.0f}" for x in s.get("load_average_1min_after_each_run", []))]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| rows | pool file GiB | floor peak RSS GiB (wait4) | floor beyond mapped GiB | "
        "e2e peak RSS GiB (wait4) | e2e peak pool-mapped GiB | e2e peak RSS beyond mapped GiB | e2e peak anon GiB |",
        "|" + "---:|" * 8,
    ]
    for r in results:
        s = r["summary"]
        fr = s.get("floor_maxrss_bytes")
        fb = s.get("floor_beyond_mapped_peak_bytes")
        lines.append(
            f"| {r['rows']:,} | {_gib(r['pool_bytes'])} | {'-' if fr is None else _gib(fr)} | "
            f"{'-' if fb is None else _gib(fb)} | {_gib(s['e2e_maxrss_bytes'])} | "
            f"{_gib(s['e2e_pool_mapped_peak_bytes'])} | {_gib(s['e2e_beyond_mapped_peak_bytes'])} | "
            f"{_gib(s['e2e_anon_peak_bytes'])} |"
        )
    return "\n".join(lines)


def goals_text(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        s = r["summary"]
        g = s["goals"]
        tag = "goal size" if g["applies"] else "for reference"

        def yn(ok: bool | None) -> str:
            return "not measured" if ok is None else ("met" if ok else "NOT met")

        lines.append(
            f"- {r['rows']:,} rows ({tag}): end to end / one assignment pass {_num(s.get('ratio_to_assign'), '.2f')} "
            f"wall, {_num(s.get('ratio_to_assign_cpu'), '.2f')} CPU s "
            f"(<= {GOAL_RATIO}: {yn(g['e2e_le_2x_assign'])}); RSS beyond the mapped input "
            f"{_gib(s['e2e_beyond_mapped_peak_bytes'])} GiB (<= 2.5 GB: {yn(g['rss_beyond_mapped_le_2.5GB'])}); "
            f"GIO share {100 * s['gio_share']:.1f} % (<= 10 %: {yn(g['gio_share_le_10pct'])})"
        )
        rc = s.get("refine_compare")
        if rc:
            a, b = rc["refine_default"], rc["refine_none"]
            lines.append(
                f"  - row-level pass: total {a['total_s']:.1f} s (picks {a['picks']}, GIO share "
                f"{100 * a['gio_share']:.1f} %) vs --refine none {b['total_s']:.1f} s (picks {b['picks']}, GIO "
                f"share {100 * b['gio_share']:.1f} %): x{rc['total_ratio']:.3f} wall, x{rc['cpu_ratio']:.3f} CPU s "
                f"(adds <= 10 %: {yn(rc['goal_met_total'])} wall, {yn(rc['goal_met_cpu'])} CPU s)"
            )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# K-means quality (``bench_scale.py quality ...``): the levers' effect on the selection, not on time


def _variant(text: str) -> tuple[int, int, float]:
    """``PPC:NITER:TOL`` (tol 0 = all iterations, faiss alone)."""
    try:
        ppc, niter, tol = text.split(":")
        return int(ppc), int(niter), float(tol)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--variant: expected PPC:NITER:TOL like 32:20:1e-3, got {text!r}") from exc


def _content_key(x: np.ndarray) -> str:
    """A cheap identity of an array's content (shape and every 97th row), for memoising its K-means."""
    import hashlib

    return f"{x.shape}:" + hashlib.sha1(np.ascontiguousarray(x[::97]).tobytes()).hexdigest()


def _quality_main(argv: list[str]) -> int:
    """Per K-means variant: quantisation consistency and the domain precision of quantised GIO on BBC."""
    p = argparse.ArgumentParser(prog="bench_scale.py quality")
    p.add_argument("--variant", type=_variant, action="append", default=[],
                   help="PPC:NITER:TOL, repeatable (default 256:20:0 = the old default, and 32:20:1e-3)")
    p.add_argument("--clusters", type=int, default=500, help="K for the BBC pool and targets (default 500)")
    p.add_argument("--budget", type=int, default=2000, help="rows selected per domain (default 2000)")
    p.add_argument("--synthetic-clusters", type=int, default=1500,
                   help="K of the consistency check on the synthetic 10k x 384 target (default 1500)")
    p.add_argument("--consistency-clusters", type=int, default=150,
                   help="K of the consistency check on the tech domain's pool sentences (default 150)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    variants = a.variant or [(256, 20, 0.0), (32, 20, 1e-3)]
    import gioselect.quantize as gq
    from gioselect.selector import select_quantized

    started = datetime.now(timezone.utc)
    emb, dom, held = _bbc(a)
    pool, pool_dom = np.ascontiguousarray(emb[~held]), dom[~held]
    domains = sorted(set(dom.tolist()))
    targets = {d: np.ascontiguousarray(emb[held & (dom == d)]) for d in domains}
    centres, scales, _ = _mixture(384, a.seed)
    rng = np.random.default_rng(np.random.SeedSequence([a.seed, 2]))
    comps = rng.choice(N_COMPONENTS, size=TARGET_COMPONENTS, replace=False)
    synth = _sample_mixture(rng, 10_000, centres[comps], scales[comps], rng.dirichlet(np.full(TARGET_COMPONENTS, 2.0)))
    original = gq.quantize_array
    rows: list[dict[str, Any]] = []
    try:
        for ppc, niter, tol in variants:
            memo: dict[tuple[str, int, int], Any] = {}
            kmeans_s: list[float] = []

            def quantize(x: np.ndarray, k: int, *, seed: int = 0, niter_: int = niter, ppc_: int = ppc,
                         tol_: float = tol, memo: dict[tuple[str, int, int], Any] = memo,
                         kmeans_s: list[float] = kmeans_s, **_: Any) -> Any:
                x32 = np.ascontiguousarray(x, dtype=np.float32)
                key = (_content_key(x32), int(k), int(seed))
                if key not in memo:
                    if x32.shape[0] <= k:
                        memo[key] = original(x32, k, seed=seed)
                    else:
                        t0 = time.perf_counter()
                        idx = gq.training_sample_indices(x32.shape[0], k, seed=seed, max_points_per_centroid=ppc_)
                        cents = gq.kmeans_centroids(x32[idx], k, seed=seed, niter=niter_, tol=tol_)
                        kmeans_s.append(time.perf_counter() - t0)
                        labels, _ = gq.assign_blocks(gq._iter_array_blocks(x32, 65536), cents, x32.shape[0])
                        c, sizes, labels = gq.drop_empty(cents, labels)
                        memo[key] = gq.QuantizedArray(c, sizes, labels)
                return memo[key]

            gq.quantize_array = quantize  # type: ignore[assignment]
            row: dict[str, Any] = {"points_per_centroid": ppc, "niter": niter, "tol": tol, "domains": {}}
            for d in domains:
                # the studies' fixed-size settings (experiments/studies.py): start at 1 % of the candidates (at
                # least 2), pick until the row budget is filled
                sel = select_quantized(pool, targets[d], clusters=a.clusters, budget=a.budget, budget_exact=True,
                                       seed=a.seed, random_init_pct=max(0.01, 2.0 / a.clusters),
                                       stop_criterion="data_size", max_data_size=1.0, max_iter=None)
                prec = float(np.mean(pool_dom[sel.ids] == d)) if sel.ids.size else float("nan")
                row["domains"][d] = {"precision": prec, "selected_rows": int(sel.ids.size),
                                     "picks": len(sel.result.selected_indices),
                                     "target_rows": int(targets[d].shape[0])}
                _log(f"[quality {ppc}:{niter}:{tol:g}] {d}: precision {prec:.3f} ({sel.ids.size} rows)")
            row["mean_precision"] = float(np.mean([v["precision"] for v in row["domains"].values()]))
            # one domain's pool sentences at K = --consistency-clusters, so that the sample rule bites
            # (the whole pool's exact k-NN KL costs a 35k x 35k distance pass)
            q = gq.quantization_consistency(pool[pool_dom == "tech"], a.consistency_clusters, seed=a.seed)
            row["consistency_bbc_tech"] = {"passed": q.passed, **q.metrics}
            q = gq.quantization_consistency(synth, a.synthetic_clusters, seed=a.seed)
            row["consistency_synthetic_target"] = {"passed": q.passed, **q.metrics}
            row["pool_kmeans_s"] = kmeans_s[:1]
            _log(f"[quality {ppc}:{niter}:{tol:g}] mean precision {row['mean_precision']:.3f}; consistency "
                 f"bbc {row['consistency_bbc_tech']}, synthetic {row['consistency_synthetic_target']}")
            rows.append(row)
            if a.out is not None:
                a.out.parent.mkdir(parents=True, exist_ok=True)
                a.out.write_text(json.dumps({
                    "benchmark": "bench_scale quality", "date_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "command": shlex.join([Path(sys.executable).name, *sys.argv]), "machine": machine_info(),
                    "versions": versions(), "load_average_after": list(os.getloadavg()),
                    "parameters": {"clusters": a.clusters, "budget": a.budget, "budget_exact": True, "seed": a.seed,
                                   "gio": "random_init_pct=max(0.01, 2/K), stop_criterion=data_size, max_iter=None",
                                   "synthetic_clusters": a.synthetic_clusters,
                                   "consistency_clusters": a.consistency_clusters},
                    "data": {"pool": f"BBC sentences not held out ({pool.shape[0]} rows, 5 domains)",
                             "targets": {d: int(t.shape[0]) for d, t in targets.items()},
                             "held_out": "a seeded 10 % of each domain's articles"},
                    "variants": rows}, indent=2) + "\n")
    finally:
        gq.quantize_array = original  # type: ignore[assignment]
    for r in rows:
        print(f"{r['points_per_centroid']}:{r['niter']}:{r['tol']:g}  mean precision {r['mean_precision']:.3f}  "
              + "  ".join(f"{d} {v['precision']:.3f}" for d, v in r["domains"].items())
              + f"  KL bbc {r['consistency_bbc_tech']['kl_centroids']:.3f}"
              f"  KL synth {r['consistency_synthetic_target']['kl_centroids']:.3f}")
    return 0


# ----------------------------------------------------------------------------------------------------------


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(float(t)) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--sizes: expected numbers like 1e4,1e5, got {text!r}") from exc
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(f"--sizes: expected positive row counts, got {text!r}")
    return sizes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--sizes", type=_sizes, default=_sizes("1e4,1e5,1e6"), help="pool rows (default 1e4,1e5,1e6)")
    p.add_argument("--dim", type=int, default=384, help="embedding dimension (default 384)")
    p.add_argument("--targets", type=int, default=10_000, help="target rows (default 10000)")
    p.add_argument("--clusters", type=int, default=1500, help="K for the pool and the target (default 1500)")
    p.add_argument("--kmeans-iter", type=int, default=20, help="K-means iterations (default 20, the CLI's)")
    p.add_argument("--seed", type=int, default=0, help="data and selection seed (default 0)")
    p.add_argument("--workdir", type=Path, default=None, help="where the data and outputs go (default: a temp dir)")
    p.add_argument("--out", type=Path, default=None, help="JSON results file")
    p.add_argument("--markdown", type=Path, default=None, help="also write the tables and verdicts as markdown")
    p.add_argument("--repeats", type=int, default=1, help="runs of each side per size (default 1)")
    p.add_argument("--keep-data", action="store_true", help="keep the generated files and outputs (reused later)")
    p.add_argument("--no-report", action="store_true", help="pass --no-report to gioselect select")
    p.add_argument("--cli-arg", action="append", default=[], help="extra argument for gioselect select (repeat)")
    p.add_argument("--sample-interval", type=float, default=0.1, help="memory sampling period, s (default 0.1)")
    p.add_argument("--data", choices=("mixture", "bbc"), default="mixture",
                   help="pool and target: the synthetic mixture (default) or BBC sentence embeddings repeated with "
                        "noise, target a domain's held-out sentences (--dim is then 384)")
    p.add_argument("--bbc-domain", default="tech", help="--data bbc: the target domain (default tech)")
    p.add_argument("--bbc-noise", type=float, default=0.005, help="--data bbc: noise sd per coordinate (0.005)")
    p.add_argument("--floor", choices=("full", "assign", "none"), default="full",
                   help="the floor child: K-means + assignment pass (default), the assignment pass alone (to K "
                        "seeded pool rows), or none (end to end only)")
    p.add_argument("--memory-budget", default=None, help="--memory-budget for gioselect select and the floor")
    p.add_argument("--compare-refine", action="store_true",
                   help="also run every end-to-end selection with --refine none (the row-level pass's cost)")
    p.add_argument("--refine-variant", action="append", default=[], metavar="ARGS",
                   help="with --compare-refine: also run with these extra gioselect select arguments (one string, "
                        "e.g. '--refine-whole 0'), compared with --refine none (repeat)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_floor":
        return _floor_main(argv[1:])
    if argv and argv[0] == "quality":
        return _quality_main(argv[1:])
    args = parse_args(argv)
    started = datetime.now(timezone.utc)
    owns_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="bench_scale_")) if owns_workdir else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    results: list[dict[str, Any]] = []
    try:
        if args.data == "bbc":
            args.dim = 384
            target = workdir / f"target_bbc_{args.bbc_domain}_s{args.seed}.npy"
            _ensure(target, {"data": "bbc", "domain": args.bbc_domain, "seed": args.seed, "format": DATA_FORMAT},
                    lambda: write_bbc_target(target, args))
        else:
            target = workdir / f"target_{args.targets}x{args.dim}_s{args.seed}.npy"
            _ensure(target, {"rows": args.targets, "dim": args.dim, "seed": args.seed, "format": DATA_FORMAT},
                    lambda: write_target(target, args.targets, args.dim, args.seed))
        for n in args.sizes:
            results.append(bench_size(n, args, workdir, target))
            _write(args, started, load_before, results, partial=n != args.sizes[-1])
    finally:
        if owns_workdir and not args.keep_data:
            shutil.rmtree(workdir, ignore_errors=True)
    print(markdown_table(results))
    print()
    print(goals_text(results))
    return 0


def _write(args: argparse.Namespace, started: datetime, load_before: tuple[float, float, float],
           results: list[dict[str, Any]], partial: bool) -> None:
    """Write the JSON (and markdown) after every size, so that a long run leaves its results as it goes."""
    doc = {
        "benchmark": "bench_scale",
        "date_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "finished_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "partial": partial,
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "versions": versions(),
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "data": {"pool": f"{N_COMPONENTS}-component Gaussian mixture, float32, generated in {GEN_BLOCK_ROWS}-row "
                         "blocks (open_memmap)",
                 "target": f"{TARGET_COMPONENTS} of the pool's components, other weights"},
        "memory_notes": ("maxrss = ru_maxrss of the child from wait4 (exact peak resident set incl. file pages); "
                         "sampled peaks from /proc/<pid>/status and /proc/<pid>/smaps every sample_interval s; "
                         "beyond_mapped = max over samples of sum(Rss) - Rss of the pool file's mappings, both from "
                         "one smaps pass; RssAnon = anonymous pages (status); timeline_kb = (s, smaps Rss, "
                         "Anonymous, pool-mapped Rss) about every second"),
        "goals": {"rows": GOAL_ROWS, "e2e_over_floor_max": GOAL_RATIO, "rss_beyond_mapped_max_bytes": GOAL_RSS_BYTES,
                  "gio_share_max": GOAL_GIO_SHARE},
        "results": results,
        "self_rusage_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(
            f"Command: `{doc['command']}`\n\nMachine: {doc['machine']}\n\nVersions: {doc['versions']}\n\n"
            f"{markdown_table(results)}\n\n{goals_text(results)}\n"
        )


if __name__ == "__main__":
    sys.exit(main())
