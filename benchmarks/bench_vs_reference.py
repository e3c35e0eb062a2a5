"""Speed and agreement of gioselect's GIO core against the reference package grad-info-opt 0.1.2.

Runs the reference's ``GIO.GIOKL.GIOKL.fit`` once per case (it is slow: seconds per pick) and ours
(``gioselect.compat.GIOKL.fit``, the same signature) ``--repeats`` times on identical float32 inputs and the
same explicit start set ``D``, so both runs are deterministic. Reports, per case: seconds (ours: median),
the speed ratio, the number of picks by each, how much the selections overlap (longest common prefix of the
pool rows in pick order, and the Jaccard index of the sets), the KL traces' largest relative difference, and a
conditioning diagnostic of the case (how close v comes to a target point, see tests/_reference_cases.py),
and how much our own selection moves when the target is perturbed by about one float32 ulp.

Cases
-----
readme
    The reference README's example: target ``np.random.seed(1)``, 100 points of N((3, 4), 0.5 I); pool the
    same with seed 5; ``GIOKL(uniform_low=0, uniform_high=8, uniform_start_size=100, dim=2)``,
    ``fit(pool, X, normalize=False)``; D = 100 points uniform in [0, 8]^2 from a seeded generator.
mixture64
    64-D Gaussian mixture, 8 components; pool 2000 points from all, target 300 from two; D = 20 uniform
    points in [-1, 1]^64 scaled to unit norm (the reference's default start); ``max_iter=100``.

Usage::

    SPARK_LOCAL_IP=127.0.0.1 .venv/bin/python benchmarks/bench_vs_reference.py \\
        --case readme --case mixture64 --repeats 5 --out benchmarks/results/bench_vs_reference.json

A full run takes about 20 minutes on 2 cores (nearly all of it the reference).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _reference_cases import Case, conditioning, pool_rows

CASE_NAMES = ("readme", "mixture64")


# -- cases ---------------------------------------------------------------------------------------------------
def readme_case() -> Case:
    """The reference README's 2-D example, with an explicit seeded start set."""
    # The README's own generation, with numpy's legacy global generator, reproduced exactly.
    np.random.seed(1)  # noqa: NPY002
    target = np.random.multivariate_normal([3, 4], np.eye(2) * 0.5, 100)  # noqa: NPY002
    np.random.seed(5)  # noqa: NPY002
    pool = np.random.multivariate_normal([3, 4], np.eye(2) * 0.5, 100)  # noqa: NPY002
    D = np.random.default_rng(2024).uniform(0.0, 8.0, (100, 2))
    return Case("readme", pool.astype(np.float32), target.astype(np.float32), D.astype(np.float32),
                {"normalize": False})


def mixture64_case() -> Case:
    """2000 x 64 pool from 8 unit-variance components, 300 targets from components 0 and 1."""
    rng = np.random.default_rng(64)
    d = 64
    centres = rng.normal(0.0, 3.0, (8, d))
    pool = centres[rng.integers(8, size=2000)] + rng.normal(0.0, 1.0, (2000, d))
    target = centres[rng.choice(2, size=300)] + rng.normal(0.0, 1.0, (300, d))
    D = rng.uniform(-1.0, 1.0, (20, d))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    return Case("mixture64", pool.astype(np.float32), target.astype(np.float32), D.astype(np.float32),
                {"max_iter": 100})


CASES: dict[str, Callable[[], Case]] = {"readme": readme_case, "mixture64": mixture64_case}
# The reference's constructor arguments per case (only used for the uniform start, which D replaces).
REF_CTOR: dict[str, dict[str, Any]] = {
    "readme": {"uniform_low": 0, "uniform_high": 8, "uniform_start_size": 100, "dim": 2},
    "mixture64": {"uniform_start_size": 20, "dim": 64},
}


# -- measurements --------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, and the versions that matter."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gb = math.nan
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024**2, 1)
                break

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "gioselect": version("gioselect"),
        "grad-info-opt": version("grad-info-opt"),
        "jax": version("jax"),
        "pyspark": version("pyspark"),
    }


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def jaccard(a: list[int], b: list[int]) -> float:
    sa, sb = set(a), set(b)
    return 1.0 if not sa and not sb else len(sa & sb) / len(sa | sb)


def max_rel_diff(a: list[float], b: list[float], upto: int | None = None) -> float | None:
    n = min(len(a), len(b)) if upto is None else upto
    if n == 0:
        return None
    x, y = np.asarray(a[:n], dtype=np.float64), np.asarray(b[:n], dtype=np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-12)))


def run_ours(case: Case, repeats: int, cpu: list[float] | None = None) -> tuple[list[float], list[int], list[float]]:
    """``repeats`` fits: their wall seconds, the pool rows picked and the KL trace; ``cpu`` (if given) gets each
    fit's thread CPU seconds (what the fit itself used, whatever else the machine runs)."""
    from gioselect.compat import GIOKL

    times: list[float] = []
    rows: list[int] = []
    kl: list[float] = []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.thread_time()
        W, kl, _state = GIOKL(**REF_CTOR[case.name]).fit(case.pool, case.target, D=case.D, **case.fit_kwargs)
        times.append(time.perf_counter() - t0)
        if cpu is not None:
            cpu.append(time.thread_time() - c0)
        rows = pool_rows(W, case.pool, case.D.shape[0])
    return times, rows, [float(x) for x in kl]


def self_sensitivity(case: Case, base_rows: list[int], runs: int) -> list[dict[str, Any]]:
    """Our selection again with the target perturbed by about one float32 ulp (seeded), against ``base_rows``.

    If a one-ulp change of the input changes our own pick order, the case is chaotic: no implementation (the
    reference in float32 included) can be expected to reproduce the order, only at best the set.
    """
    from gioselect.compat import GIOKL

    out = []
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        ulp = np.spacing(np.abs(case.target)).astype(np.float64)
        t = (case.target + np.round(rng.uniform(-1.0, 1.0, case.target.shape)) * ulp).astype(np.float32)
        W, _kl, _state = GIOKL(**REF_CTOR[case.name]).fit(case.pool, t, D=case.D, **case.fit_kwargs)
        rows = pool_rows(W, case.pool, case.D.shape[0])
        out.append({"seed": seed, "changed_values": int((t != case.target).sum()), "picks": len(rows),
                    "common_prefix": common_prefix(base_rows, rows), "jaccard": jaccard(base_rows, rows)})
    return out


def run_reference(case: Case, ref: Any) -> tuple[float, list[int], list[float], int]:
    import jax
    import jax.numpy as jnp

    ref.uniform_low = REF_CTOR[case.name].get("uniform_low", -1)
    ref.uniform_high = REF_CTOR[case.name].get("uniform_high", 1)
    ref.uniform_start_size = REF_CTOR[case.name]["uniform_start_size"]
    ref.dim = REF_CTOR[case.name]["dim"]
    # Start each run with JAX's compilation caches empty, as in a fresh process (the reference's time is mostly
    # tracing and per-shape compilation; a second run in the same process would reuse the first's).
    with contextlib.suppress(AttributeError):
        jax.clear_caches()
    pool, target, D = jnp.asarray(case.pool), jnp.asarray(case.target), jnp.asarray(case.D)
    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):  # it prints a line per pick
        W, kl, _state = ref.fit(pool, target, D=D, **case.fit_kwargs)
        W = np.asarray(W)
    seconds = time.perf_counter() - t0
    rows = pool_rows(W, case.pool, case.D.shape[0])
    return seconds, rows, [float(x) for x in kl], out.getvalue().count("\n")


def _spread(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def interleaved(name: str, case: Case, res: dict[str, Any], ref: Any, repeats: int, rounds: int,
                blocks: list[dict[str, Any]], our_rows: list[int], log: Callable[[str], None],
                on_round: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    """``rounds`` reference runs, each followed by a block of ``repeats`` runs of ours (the first block ran
    before the first reference run): both sides measured in the same minutes, in one process, at the same
    priority. Round r's ratio is the reference's time over the median of ours in the blocks just before and
    just after it. ``res`` is updated (and ``on_round`` called) after every round, so an interrupted run keeps
    the rounds it finished."""
    res["ours"]["blocks"] = blocks
    res["rounds"] = []
    for r in range(rounds):
        log(f"[{name}] round {r + 1}/{rounds}: reference running, load {os.getloadavg()[0]:.2f} ...")
        load0 = os.getloadavg()
        ref_s, ref_rows, ref_kl, lines = run_reference(case, ref)
        load1 = os.getloadavg()
        t, rows, _kl = run_ours(case, repeats)
        blocks.append({"loadavg_before": load1, "seconds": t, "loadavg_after": os.getloadavg(),
                       "same_rows_as_first_block": rows == our_rows})
        around = blocks[-2]["seconds"] + blocks[-1]["seconds"]
        res["rounds"].append({
            "reference_seconds": ref_s, "reference_loadavg_before_after": [load0, load1],
            "reference_picks": len(ref_rows), "reference_printed_lines": lines,
            "ours_median_around": statistics.median(around),
            "speed_ratio": ref_s / statistics.median(around),
            "same_selection": ref_rows == our_rows, "common_prefix": common_prefix(our_rows, ref_rows),
            "jaccard": jaccard(our_rows, ref_rows), "kl_max_rel_diff": max_rel_diff(res["ours"]["kl_trace"], ref_kl),
            "reference_rows": ref_rows,
        })
        ours_all = [x for b in blocks for x in b["seconds"]]
        res["summary"] = {
            "rounds_done": r + 1,
            "reference_seconds": _spread([x["reference_seconds"] for x in res["rounds"]]),
            "ours_seconds_all_blocks": _spread(ours_all),
            "ours_block_medians": [statistics.median(b["seconds"]) for b in blocks],
            "speed_ratio": _spread([x["speed_ratio"] for x in res["rounds"]]),
            "same_selection_every_round": all(x["same_selection"] for x in res["rounds"]),
        }
        x = res["rounds"][-1]
        log(f"[{name}] round {r + 1}: reference {ref_s:.1f} s (load {load0[0]:.2f} -> {load1[0]:.2f}), ours "
            f"{x['ours_median_around']:.4f} s around it, ratio {x['speed_ratio']:.0f}x, same selection "
            f"{x['same_selection']} (common prefix {x['common_prefix']}), KL max rel diff {x['kl_max_rel_diff']}")
        if on_round is not None:
            on_round(res)
    return res


def bench_case(name: str, repeats: int, ref: Any | None, log: Callable[[str], None],
               sensitivity: int = 3, rounds: int = 1,
               on_round: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    case = CASES[name]()
    res: dict[str, Any] = {
        "pool": list(case.pool.shape), "target": list(case.target.shape), "start_points": case.D.shape[0],
        "fit_kwargs": case.fit_kwargs, "reference_ctor": REF_CTOR[name],
    }
    cond = conditioning(case)
    res["conditioning"] = {
        "closest_approach": cond.approach, "critical_radius": cond.critical_radius,
        "approach_ratio": cond.approach / cond.critical_radius, "min_pick_margin": cond.pick_margin,
    }
    log(f"[{name}] conditioning: v comes within {cond.approach:.4g} of a target point "
        f"({cond.approach / cond.critical_radius:.3g} x the critical radius {cond.critical_radius:.3g})")

    run_ours(case, 1)  # one untimed fit first (numba loads its compiled kernels from the disk cache)
    load0 = os.getloadavg()
    cpu: list[float] = []
    blocks = [{"loadavg_before": load0, "seconds": (first := run_ours(case, repeats, cpu))[0]}]
    times, our_rows, our_kl = first
    blocks[0]["loadavg_after"] = os.getloadavg()
    ours_s = statistics.median(times)
    res["ours"] = {"seconds_median": ours_s, "seconds_min": min(times), "seconds_all": times,
                   "cpu_seconds_median": statistics.median(cpu), "cpu_seconds_min": min(cpu), "cpu_seconds_all": cpu,
                   "repeats": repeats, "picks": len(our_rows),
                   "rows": our_rows, "kl_trace": our_kl, "loadavg_before_after": [load0, os.getloadavg()]}
    log(f"[{name}] ours: {ours_s:.4f} s wall (median of {repeats}; fastest {min(times):.4f}), thread CPU "
        f"{statistics.median(cpu):.4f} s (fastest {min(cpu):.4f}), {len(our_rows)} picks, load {load0[0]:.2f}")
    if sensitivity:
        sens = self_sensitivity(case, our_rows, sensitivity)
        res["self_sensitivity"] = sens
        log(f"[{name}] ours with the target moved by ~1 ulp: common prefix "
            f"{[r['common_prefix'] for r in sens]} of {len(our_rows)}, picks {[r['picks'] for r in sens]}")
    if ref is None:
        return res

    if rounds > 1 or on_round is not None:
        return interleaved(name, case, res, ref, repeats, rounds, blocks, our_rows, log, on_round)
    log(f"[{name}] reference: running (about 5 s per pick on 2 cores) ...")
    load0 = os.getloadavg()
    ref_s, ref_rows, ref_kl, lines = run_reference(case, ref)
    prefix = common_prefix(our_rows, ref_rows)
    # The machine may be shared: the 1-minute load averages say how busy it was around each measurement.
    res["reference"] = {"seconds": ref_s, "picks": len(ref_rows), "rows": ref_rows, "kl_trace": ref_kl,
                        "printed_lines": lines, "loadavg_before_after": [load0, os.getloadavg()]}
    res["comparison"] = {
        "speed_ratio": ref_s / ours_s,
        # Ours takes a fraction of a second, so on a busy machine its median is a snapshot of the load;
        # the fastest run is the better estimate of its cost on a quiet one.
        "speed_ratio_vs_fastest": ref_s / min(times),
        "same_selection": our_rows == ref_rows,
        "common_prefix": prefix,
        "first_difference": None if our_rows == ref_rows else prefix,
        "jaccard": jaccard(our_rows, ref_rows),
        "kl_max_rel_diff": max_rel_diff(our_kl, ref_kl),
        "kl_max_rel_diff_common_prefix": max_rel_diff(our_kl, ref_kl, prefix),
    }
    c = res["comparison"]
    log(f"[{name}] reference: {ref_s:.1f} s, {len(ref_rows)} picks; ratio {c['speed_ratio']:.0f}x; "
        f"same selection: {c['same_selection']} (common prefix {prefix}, Jaccard {c['jaccard']:.3f}); "
        f"KL max rel diff {c['kl_max_rel_diff']}")
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append", choices=CASE_NAMES, help="repeatable; default: all cases")
    parser.add_argument("--repeats", type=int, default=5, help="runs of ours per case (median); default 5")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--ours-only", action="store_true", help="skip the reference (quick check of ours)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="reference runs, each followed by --repeats runs of ours (interleaved; default 1: the "
                             "original layout, ours then the reference once)")
    parser.add_argument("--sensitivity", type=int, default=3,
                        help="runs of ours with the target moved by ~1 float32 ulp (default 3; 0: none)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    names = list(dict.fromkeys(args.case or CASE_NAMES))

    def log(msg: str) -> None:
        print(msg, flush=True)

    report: dict[str, Any] = {
        "benchmark": "GIO core vs grad-info-opt 0.1.2",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
        # BLAS/OpenMP thread pinning is set by the caller's environment (before numpy is imported): recorded here.
        "thread_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                                      "XLA_FLAGS")},
        "nice": os.nice(0),
        "cases": {},
    }
    ref = None
    if not args.ours_only:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        from GIO.GIOKL import GIOKL as RefGIOKL

        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            ref = RefGIOKL()
        report["reference_constructor_seconds"] = time.perf_counter() - t0
        log(f"reference constructor (SparkSession start): {report['reference_constructor_seconds']:.1f} s "
            f"(not counted in the per-case times)")

    def save() -> None:
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            tmp = args.out.with_name(args.out.name + ".tmp")
            tmp.write_text(json.dumps(report, indent=2) + "\n")
            tmp.replace(args.out)

    for name in names:
        def keep(res: dict[str, Any], name: str = name) -> None:
            report["cases"][name] = res
            save()

        on_round = keep if args.rounds > 1 else None
        report["cases"][name] = bench_case(name, args.repeats, ref, log, args.sensitivity, args.rounds, on_round)
        save()  # after every case, so a long run that is interrupted keeps what it measured
    if args.out is not None:
        log(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
