"""``python experiments/suite``: run the suite (or GIO's curve on one task) and write JSON + markdown."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from common import RESULTS_DIR, jsonable, setup_logging, write_json

from .core import METHODS, TASKS, gio_curve
from .report import DEFAULT_TASKS, markdown, merge, run_suite

logger = logging.getLogger("experiments.suite")


def _csv(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def make_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python experiments/suite",
                                 description="The benchmark suite: every task x method x seed, one JSON + one table")
    ap.add_argument("--size", choices=("small", "full"), default="small",
                    help="small: seconds, for the tests; full: the recorded run (make suite)")
    ap.add_argument("--seeds", type=int, default=3, help="how many seeds: --seed .. --seed+N-1 (3)")
    ap.add_argument("--seed", type=int, default=0,
                    help="the first seed (0); each seed is a new task instance, so e.g. --seed 3 runs instances "
                         "no recorded run has used")
    ap.add_argument("--tasks", type=_csv, default=None,
                    help=f"comma-separated task names (default: the size's list); known: {', '.join(TASKS)}")
    ap.add_argument("--methods", type=_csv, default=None,
                    help=f"comma-separated method names (default: all registered: {', '.join(METHODS)})")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for suite_<size>.json and .md")
    ap.add_argument("--jobs", type=int, default=1,
                    help="task instances (task, seed) run in this many worker processes at once, longest first "
                         "(1: in this process; make suite: 2, one per core)")
    ap.add_argument("--curve", metavar="TASK", default=None,
                    help="instead of the suite: GIO's own curve on TASK (one run to the largest size, every "
                         "prefix scored), written to curve_<task>_<size>.json")
    ap.add_argument("--curve-sizes", type=lambda s: [int(x) for x in _csv(s)], default=None,
                    help="prefix sizes of --curve (default: 10 sizes up to 4x the task's fixed size)")
    ap.add_argument("--gio", type=json.loads, default={},
                    help="GIO keyword arguments for --curve, as JSON (default: the library's defaults)")
    ap.add_argument("--merge", type=Path, nargs="+", default=None, metavar="JSON",
                    help="instead of running: pool the runs of these suite JSONs (same size) into one output")
    ap.add_argument("--verbose", action="store_true", help="log the library's progress too")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    setup_logging(args.verbose)
    logging.getLogger("experiments.suite").setLevel(logging.INFO)
    if args.seeds < 1 or args.seed < 0:
        print(f"--seeds: expected at least 1 and --seed at least 0, got --seeds {args.seeds} --seed {args.seed}",
              file=sys.stderr)
        return 2
    seeds = list(range(args.seed, args.seed + args.seeds))
    if args.curve is not None:
        if args.curve not in TASKS:
            print(f"--curve: unknown task {args.curve!r}; known: {', '.join(TASKS)}", file=sys.stderr)
            return 2
        return _curve(args, seeds)
    command = ("python experiments/suite " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    if args.merge is not None:
        outs = [json.loads(p.read_text(encoding="utf-8")) for p in args.merge]
        if any(o["size"] != args.size for o in outs):
            print(f"--merge: every file must be a --size {args.size} output", file=sys.stderr)
            return 2
        out = merge(outs)
        out["commands"] = [o.get("command") for o in outs]
        out["machine"], out["date"] = outs[0].get("machine"), outs[0].get("date")
        _write(args, out, command)
        return 0
    tasks = args.tasks or list(DEFAULT_TASKS[args.size])
    methods = args.methods or list(METHODS)
    bad = [t for t in tasks if t not in TASKS] + [m for m in methods if m not in METHODS]
    if bad:
        print(f"unknown task(s) or method(s): {', '.join(bad)}; tasks: {', '.join(TASKS)}; methods: "
              f"{', '.join(METHODS)}", file=sys.stderr)
        return 2
    if "gio" not in methods:
        methods = ["gio", *methods]  # GIO's own size is one of the two budgets
    extra = {"command": command, "date": time.strftime("%Y-%m-%d", time.gmtime()),
             "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": _cpus()}}

    def progress(partial: dict[str, Any]) -> None:  # written as it goes: a long run keeps its finished tasks
        _write(args, {**partial, **extra}, command, quiet=True)

    if args.jobs < 1:
        print(f"--jobs: expected a positive number of processes, got {args.jobs}", file=sys.stderr)
        return 2
    extra["jobs"] = args.jobs
    extra["embedding_cache"] = {"GIOSELECT_CACHE_DIR_set": bool(os.environ.get("GIOSELECT_CACHE_DIR")),
                                "entries_at_start": _cache_entries()}
    extra["embedding_cache"]["cold"] = extra["embedding_cache"]["entries_at_start"] == 0
    out = run_suite(args.size, tasks, methods, seeds, progress=progress, jobs=args.jobs)
    extra["embedding_cache"]["entries_at_end"] = _cache_entries()
    _write(args, {**out, **extra}, command)
    return 0


def _write(args: argparse.Namespace, out: dict[str, Any], command: str, quiet: bool = False) -> None:
    json_path = write_json(args.out / f"suite_{args.size}.json", out)
    md = markdown(out, out.get("command") or command)
    md_path = args.out / f"suite_{args.size}.md"
    md_path.write_text(f"# Benchmark suite ({args.size})\n\n{md}\n", encoding="utf-8")
    if not quiet:
        print(md)
        print(f"\nwrote {json_path} and {md_path} ({out['wall_time_s']:.0f} s)")


def _cache_entries() -> int:
    """How many entries the embedding cache (``$GIOSELECT_CACHE_DIR`` or the default folder) holds: 0 at the
    start of a cold-cache run."""
    from gioselect.embed import EmbeddingCache

    d = EmbeddingCache().directory
    return sum(1 for _ in d.glob("*.npy")) if d.is_dir() else 0


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 0


def _curve(args: argparse.Namespace, seeds: list[int]) -> int:
    spec = TASKS[args.curve]
    curves: list[dict[str, Any]] = []
    for seed in seeds:
        task = spec.build(args.size, seed)
        sizes = args.curve_sizes or sorted({max(1, round(task.fixed_size * f)) for f in
                                            (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4)})
        sizes = [s for s in sizes if s <= task.pool.shape[0]]
        curves.append(gio_curve(task, seed, args.gio, sizes))
        logger.info("curve %s seed %d: own size %d", args.curve, seed, curves[-1]["own_size"])
    path = write_json(args.out / f"curve_{args.curve}_{args.size}.json",
                      {"task": args.curve, "size": args.size, "gio_kwargs": args.gio, "curves": curves})
    for c in curves:
        print(f"seed {c['seed']}: GIO's own size {c['own_size']} ({c['own_stop_reason']})")
        for p in c["points"]:
            print(f"  size {p['size']:6d}  {c['metric']} {p['task']:.3f}  energy {p['energy']:.4f}  "
                  f"mmd2 {p['mmd2']:.5f}")
    print(f"wrote {path}")
    return 0


def run_experiment(name: str, description: str, tasks: dict[str, tuple[str, ...]], argv: list[str] | None = None,
                   *, check: Any = None, extra_args: Any = None, methods: Any = None) -> int:
    """A named experiment as a front end of the suite: its ``tasks`` (per size) with every method, written to
    ``<out>/<name>_<size>.json`` and ``.md`` in the suite's format (the suite's runner, metrics and tables).

    Arguments: ``--size``, ``--seed`` (the first seed), ``--seeds`` (how many: default 3 at full size, 1 at
    small), ``--methods``, ``--out``, ``--verbose``; ``extra_args(parser)`` adds more and ``check(args)``
    returns an exit code (not None: stop with it, e.g. 2 for missing data) before anything runs. ``methods``
    (a list, or a function called after ``check`` that returns one) replaces every registered method as the
    default of ``--methods``."""
    ap = argparse.ArgumentParser(prog=f"python experiments/{name}.py", description=description)
    ap.add_argument("--size", choices=("small", "full"), default="small",
                    help="small: seconds, for the tests; full: the recorded run")
    ap.add_argument("--seed", type=int, default=0, help="the first seed (each seed is a new task instance)")
    ap.add_argument("--seeds", type=int, default=None, help="how many seeds (default: 3 full, 1 small)")
    ap.add_argument("--methods", type=_csv, default=None,
                    help=f"comma-separated method names (default: all registered: {', '.join(METHODS)})")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"folder for {name}_<size>.json and .md")
    ap.add_argument("--verbose", action="store_true", help="log the library's progress too")
    if extra_args is not None:
        extra_args(ap)
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    logging.getLogger("experiments.suite").setLevel(logging.INFO)
    if check is not None:
        code = check(args)
        if code is not None:
            return int(code)
    default = methods() if callable(methods) else methods
    chosen = list(args.methods or default or METHODS)
    bad = [m for m in chosen if m not in METHODS]
    if bad:
        print(f"unknown method(s): {', '.join(bad)}; known: {', '.join(METHODS)}", file=sys.stderr)
        return 2
    if "gio" not in chosen:
        chosen = ["gio", *chosen]
    n = args.seeds if args.seeds is not None else (3 if args.size == "full" else 1)
    seeds = list(range(args.seed, args.seed + n))
    command = (f"python experiments/{name}.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    out = run_suite(args.size, list(tasks[args.size]), chosen, seeds)
    out.update(experiment=name, command=command, date=time.strftime("%Y-%m-%d", time.gmtime()),
               machine={"python": platform.python_version(), "platform": platform.platform(), "cpus": _cpus()})
    json_path = write_json(args.out / f"{name}_{args.size}.json", out)
    md = markdown(out, command)
    md_path = args.out / f"{name}_{args.size}.md"
    md_path.write_text(f"# {name} ({args.size})\n\n{md}\n", encoding="utf-8")
    print(md)
    print(f"\nwrote {json_path} and {md_path} ({out['wall_time_s']:.0f} s)")
    return 0


__all__ = ["jsonable", "main", "make_parser", "run_experiment"]
