"""Running the whole suite and writing its results: one JSON (every run) and one markdown table."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from common import markdown_table

from .core import (
    COLUMNS,
    METHODS,
    PREFIX_RUNS,
    RANKED,
    REFERENCES,
    TASKS,
    Task,
    aggregate,
    mean_ranks,
    missing_needs,
    run_task,
    same_data,
    winners,
)

logger = logging.getLogger("experiments.suite")

#: The tasks each size runs by default (small: the ones that fit in the test suite's minute).
DEFAULT_TASKS = {
    "small": ("bbc-tech", "bbc-quality", "speller", "fashion-test", "fashion-quality", "mixture", "bbc-40k",
              "bbc-40k-kmeans"),
    "full": ("bbc-business", "bbc-entertainment", "bbc-politics", "bbc-sports", "bbc-tech", "bbc-quality",
             "speller", "fashion-test", "fashion-tops", "fashion-quality", "mixture", "bbc-40k", "bbc-40k-kmeans"),
}


#: Wall seconds of one task instance (one seed) in the last recorded full run (EXPERIMENTS.md): the order in
#: which ``jobs > 1`` hands out the instances, longest first, so that no long one starts last. A task not
#: listed counts as 60 s. Only the order depends on these numbers, never what is measured.
COST_HINT = {"bbc-40k": 640.0, "bbc-40k-kmeans": 670.0, "fashion-quality": 370.0, "fashion-test": 310.0,
             "fashion-tops": 165.0, "bbc-quality": 160.0, "speller": 145.0, "bbc-business": 135.0,
             "bbc-entertainment": 115.0, "bbc-politics": 95.0, "bbc-sports": 57.0, "bbc-tech": 45.0,
             "mixture": 37.0}


def run_suite(size: str, tasks: Sequence[str], methods: Sequence[str], seeds: Sequence[int], *,
              progress: Callable[[dict[str, Any]], None] | None = None, jobs: int = 1) -> dict[str, Any]:
    """Every task x method x seed at the task's fixed size and at GIO's own size; aggregated.

    The task instances (task, seed) run in units (:func:`task_groups`, :func:`run_unit`): a task with the same
    data as another (``bbc-40k-kmeans`` and ``bbc-40k``) runs right after it, taking its records of the methods
    that are not GIO. ``jobs`` > 1 runs the units in that many worker processes (``spawn``), longest first
    (:data:`COST_HINT`), each worker's BLAS and text embedder on one thread; the data every instance of a task
    shares (the embedding of the BBC corpus and of the corrupted sentences, :attr:`TaskSpec.prepare`) is made
    once, in this process with every core, before the workers start (:func:`_run_parallel`); the instances
    then read it from the on-disk cache. Its wall seconds are the output's ``prepare_seconds`` (0 with one
    process: the first task that needs the data makes it, with every core, inside its build time). The
    workers use the default method registry (:func:`register_default_methods`), so every name of ``methods``
    must be in it. The results are in task and seed order whatever the order they finished in; the CPU time
    is this process's plus its workers'.

    ``progress`` gets the output so far (as :func:`summarise` makes it) after every finished task instance
    (task and seed), so a long run can be written out as it goes."""
    started, cpu_started = time.perf_counter(), time.process_time()
    child_cpu_started = _children_cpu()
    load_start = load_average()
    results: list[dict[str, Any]] = []
    skipped_tasks: dict[str, str] = {}
    names: list[str] = []
    for name in tasks:
        spec = TASKS[name]
        miss = missing_needs(spec)
        if miss:
            skipped_tasks[name] = f"needs {', '.join(miss)}"
            logger.warning("task %s skipped: needs %s", name, ", ".join(miss))
            continue
        names.append(name)
    units = [(group, seed) for group in task_groups(names) for seed in seeds]

    def cpu_so_far() -> float:
        # the workers' CPU time is counted once they have exited (after the run); until then, that of the
        # finished instances (a partial output leaves out the running ones and the shared-data job)
        workers = _children_cpu() - child_cpu_started
        if jobs > 1:
            workers = max(workers, sum(float(r["cpu_seconds"]) for r in results))
        return time.process_time() - cpu_started + workers

    def done(res: dict[str, Any]) -> None:
        results.append(res)
        logger.info("task %s seed %d done in %.1f s (build %.1f s, GIO's own size %d)", res["task"], res["seed"],
                    res["seconds"], res["build_seconds"], res["own_size"])
        if progress is not None:
            progress(summarise(size, tasks, methods, seeds, _ordered(results, tasks, seeds), skipped_tasks,
                               time.perf_counter() - started, cpu_so_far(), (load_start, load_average())))

    if jobs <= 1:
        for group, seed in units:
            if any(n in skipped_tasks for n in group):
                continue
            res_list, why = run_unit(size, group, seed, methods)
            for res in res_list:
                done(res)
            if why is not None:
                skipped_tasks[group[len(res_list)]] = why
    prep_s = 0.0
    if jobs > 1:
        prep_s = _run_parallel(size, units, methods, jobs, done, skipped_tasks)
    out = summarise(size, tasks, methods, seeds, _ordered(results, tasks, seeds), skipped_tasks,
                    time.perf_counter() - started, cpu_so_far(), (load_start, load_average()))
    out["prepare_seconds"] = prep_s
    return out


def task_groups(names: Sequence[str]) -> list[tuple[str, ...]]:
    """``names`` in groups that run as one unit: a task whose ``same_data_as`` is also in ``names`` goes right
    after that task, in its group (:func:`run_unit`); every other task alone."""
    groups: dict[str, list[str]] = {}
    for name in names:
        base = TASKS[name].same_data_as
        if base is not None and base in names:
            groups.setdefault(base, [base]).append(name)
        else:
            groups.setdefault(name, [name])
    return [tuple(g) for g in groups.values()]


def run_unit(size: str, group: Sequence[str], seed: int, methods: Sequence[str]
             ) -> tuple[list[dict[str, Any]], str | None]:
    """The instances (one seed) of a group of tasks (:func:`task_groups`): the first as :func:`run_instance`,
    each later one with the first's records of the methods that are not GIO (same data, checked by
    :func:`same_data`). Returns the results and, if a task could not be built, why (the results stop there)."""
    out: list[dict[str, Any]] = []
    first: Task | None = None
    for name in group:
        spec = TASKS[name]
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            task = spec.build(size, seed)
        except (ImportError, FileNotFoundError) as exc:
            logger.warning("task %s skipped: %s", name, exc)
            return out, str(exc)
        t1, c1 = time.perf_counter(), time.process_time()
        reuse = None
        if first is not None:
            if not same_data(first, task):
                raise ValueError(f"task {name}: same_data_as={spec.same_data_as!r}, but the seed-{seed} instances "
                                 "differ in their data")
            reuse = out[0]
        res = run_task(task, methods, seed, reuse=reuse)
        res["build_seconds"], res["build_cpu_seconds"] = t1 - t0, c1 - c0
        res["seconds"], res["cpu_seconds"] = time.perf_counter() - t0, time.process_time() - c0
        res["load_end"] = load_average()
        out.append(res)
        if first is None:
            first = task
    for res in out:  # the picks were for the later tasks of the group, not for the record
        res.pop(PREFIX_RUNS, None)
    return out, None


def _ordered(results: Sequence[dict[str, Any]], tasks: Sequence[str], seeds: Sequence[int]) -> list[dict[str, Any]]:
    pos = {t: i for i, t in enumerate(tasks)}
    spos = {s: i for i, s in enumerate(seeds)}
    return sorted(results, key=lambda r: (pos.get(r["task"], len(pos)), spos.get(r["seed"], len(spos))))


def _children_cpu() -> float:
    """User + system CPU seconds of this process's finished (waited-for) child processes."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return 0.0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return float(ru.ru_utime + ru.ru_stime)


def _worker_init(sys_path: list[str], fashion_dir: Any, verbose: bool) -> None:
    """A worker process: the parent's import path and Fashion-MNIST folder, its logging, BLAS and the text
    embedder on one thread (``jobs`` processes share the cores: a second thread each would only contend)."""
    import logging as _logging
    import sys

    sys.path[:] = sys_path
    from common import setup_logging
    from threadpoolctl import threadpool_limits

    from . import tasks as suite_tasks

    suite_tasks.FASHION_DATA_DIR = fashion_dir
    suite_tasks.EMBED_THREADS = 1
    setup_logging(verbose)
    _logging.getLogger("experiments.suite").setLevel(_logging.INFO)
    threadpool_limits(limits=1)


def prepare_tasks(size: str, names: Sequence[str]) -> dict[str, str]:
    """Run the ``prepare`` of every task of ``names`` that has one, in turn (each makes its data once: the
    first embeds the BBC corpus into the cache when it is cold). Returns ``{task: why}`` for the tasks whose
    data could not be made."""
    failed: dict[str, str] = {}
    done: set[Any] = set()
    for name in names:
        prep = TASKS[name].prepare
        if prep is None or prep in done:
            continue
        t0 = time.perf_counter()
        try:
            prep(size)
        except (ImportError, FileNotFoundError) as exc:
            failed[name] = str(exc)
            logger.warning("task %s skipped: %s", name, exc)
            continue
        done.add(prep)
        logger.info("task %s: shared data ready in %.1f s", name, time.perf_counter() - t0)
    return failed


def _run_parallel(size: str, units: Sequence[tuple[tuple[str, ...], int]], methods: Sequence[str], jobs: int,
                  done: Callable[[dict[str, Any]], None], skipped_tasks: dict[str, str]) -> float:
    """The units in ``jobs`` spawned workers. The shared data (:func:`prepare_tasks`) is made first, in this
    process, before the workers start, with every core (a cold cache embeds the BBC corpus with the ONNX
    backend on all threads, instead of on one worker's single thread while the other worker runs the rest);
    warm, it only reads the cache. Units go out longest first (:data:`COST_HINT`), one per free worker, so a
    long one is never queued behind short ones. Returns the seconds the shared data took."""
    import multiprocessing
    import sys
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    from . import tasks as suite_tasks

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"jobs > 1: method(s) {unknown} are not registered")

    def cost(u: tuple[tuple[str, ...], int]) -> float:
        return -sum(COST_HINT.get(n, 60.0) for n in u[0])

    needs_prep = [n for n in dict.fromkeys(n for g, _ in units for n in g) if TASKS[n].prepare is not None]
    t0 = time.perf_counter()
    skipped_tasks.update(prepare_tasks(size, needs_prep))
    prep_s = time.perf_counter() - t0
    if needs_prep:
        logger.info("shared data of %s ready in %.1f s, before the workers start", ", ".join(needs_prep), prep_s)
    queue = sorted(units, key=cost)
    verbose = logging.getLogger("gioselect").isEnabledFor(logging.INFO)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init,
                             initargs=(list(sys.path), suite_tasks.FASHION_DATA_DIR, verbose)) as ex:
        running: dict[Future[Any], tuple[str, ...]] = {}

        def next_unit() -> tuple[tuple[str, ...], int] | None:
            while queue:
                u = queue.pop(0)
                if not any(n in skipped_tasks for n in u[0]):
                    return u
            return None

        while True:
            while len(running) < jobs:
                u = next_unit()
                if u is None:
                    break
                running[ex.submit(run_unit, size, u[0], u[1], list(methods))] = u[0]
            if not running:
                break
            finished, _ = wait(set(running), return_when=FIRST_COMPLETED)
            for f in finished:
                group = running.pop(f)
                res_list, why = f.result()
                for res in res_list:
                    done(res)
                if why is not None:
                    skipped_tasks[group[len(res_list)]] = why


def load_average() -> list[float] | None:
    """The machine's 1-, 5- and 15-minute load averages (None where the platform has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def summarise(size: str, tasks: Sequence[str], methods: Sequence[str], seeds: Sequence[int],
              results: Sequence[Mapping[str, Any]], skipped_tasks: Mapping[str, str], wall_time_s: float,
              cpu_time_s: float | None = None, load: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """The suite's output from its runs: the runs, the aggregate, the winners, the mean ranks, the timings
    (wall and CPU time of the whole run and of each task instance, the load average at its start and end)."""
    agg = aggregate(results)
    budgets = sorted({b for res in results for b in res["runs"]})
    ranks = {b: mean_ranks({t: agg[t][b] for t in agg if b in agg[t]}) for b in budgets}
    wins = {t: {b: winners(agg[t][b]) for b in agg[t]} for t in agg}
    task_seconds: dict[str, list[float]] = {}
    build_seconds: dict[str, list[float]] = {}
    task_cpu: dict[str, list[float]] = {}
    phases: dict[str, dict[str, list[float]]] = {}
    same_as: dict[str, str] = {}
    for res in results:
        task_seconds.setdefault(res["task"], []).append(float(res["seconds"]))
        build_seconds.setdefault(res["task"], []).append(float(res["build_seconds"]))
        task_cpu.setdefault(res["task"], []).append(float(res.get("cpu_seconds", math.nan)))
        ph = phases.setdefault(res["task"], {"build": [], "select": [], "score": []})
        ph["build"].append(float(res["build_seconds"]))
        for key in ("select", "score"):
            ph[key].append(float(res.get("phase_seconds", {}).get(key, math.nan)))
        same_as.update(res.get("same_as", {}))
    return {"size": size, "seeds": list(seeds), "tasks": list(tasks), "methods": list(methods),
            "method_descriptions": {m: METHODS[m].description for m in methods if m in METHODS},
            "task_descriptions": {t: TASKS[t].description for t in tasks if t in TASKS},
            "skipped_tasks": dict(skipped_tasks), "task_seconds": task_seconds, "build_seconds": build_seconds,
            "task_cpu_seconds": task_cpu, "phase_seconds": phases, "same_as": same_as,
            "wall_time_s": wall_time_s, "cpu_time_s": cpu_time_s,
            "load_start": load[0] if load else None, "load_end": load[1] if load else None,
            "results": list(results), "aggregate": agg, "winners": wins, "mean_ranks": ranks}


def merge(outputs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One output from several suite outputs of the same size (e.g. tasks run in separate processes):
    the runs are pooled and aggregated again; the wall time is the sum."""
    if not outputs:
        raise ValueError("merge: nothing to merge")
    sizes = {o["size"] for o in outputs}
    if len(sizes) != 1:
        raise ValueError(f"merge: outputs of different sizes {sorted(sizes)}")
    tasks = [t for o in outputs for t in o["tasks"] if any(r["task"] == t for r in o["results"])
             or t in o["skipped_tasks"]]
    methods = list(dict.fromkeys(m for o in outputs for m in o["methods"]))
    seeds = sorted({s for o in outputs for s in o["seeds"]})
    skipped = {t: why for o in outputs for t, why in o["skipped_tasks"].items()}
    results = [r for o in outputs for r in o["results"]]
    cpu = [o.get("cpu_time_s") for o in outputs]
    return summarise(sizes.pop(), list(dict.fromkeys(tasks)), methods, seeds, results, skipped,
                     sum(float(o["wall_time_s"]) for o in outputs),
                     sum(float(c) for c in cpu) if all(c is not None for c in cpu) else None,
                     (outputs[0].get("load_start"), outputs[-1].get("load_end")))


def _cell(cell: Mapping[str, Any] | None, key: str) -> str:
    if cell is None or key not in cell:
        return "n/a"
    m, s = float(cell[key]["mean"]), float(cell[key]["std"])
    if not math.isfinite(m):
        return "n/a"
    if key in ("task", "f1"):
        return f"{100 * m:.1f} ± {100 * s:.1f}"
    if key == "size":
        return f"{m:.0f}" if s == 0 else f"{m:.0f} ± {s:.0f}"
    if key == "seconds":
        return f"{m:.2f}"
    digits = 5 if key == "mmd2" else 4 if key == "energy" else 2
    return f"{m:.{digits}f} ± {s:.{digits}f}"


BUDGET_TITLE = {"fixed": "fixed size", "own": "GIO's own size"}


def _avg(vals: Sequence[float]) -> float:
    fin = [v for v in vals if math.isfinite(v)]
    return sum(fin) / len(fin) if fin else math.nan


def _load(load: Any) -> str:
    return "n/a" if not load else "/".join(f"{float(v):.2f}" for v in load)


def markdown(out: Mapping[str, Any], command: str) -> str:
    """The suite's tables: per task and budget, one row per method (winners in bold), then mean ranks."""
    agg, wins = out["aggregate"], out["winners"]
    runs = out.get("commands")
    head = (f"Runs: {'; '.join(f'`{c}`' for c in runs)}, merged by `{command}`" if runs
            else f"Command: `{command}`")
    cpu = out.get("cpu_time_s")
    timing = f"wall time {out['wall_time_s'] / 60:.1f} min"
    if cpu is not None:
        timing += f", CPU time {cpu / 60:.1f} min"
    if out.get("load_start") is not None:
        timing += f"; load average (1/5/15 min) {_load(out['load_start'])} at the start, " \
                  f"{_load(out.get('load_end'))} at the end"
    if out.get("jobs"):
        timing += f"; {out['jobs']} worker process{'es' if out['jobs'] > 1 else ''}"
    cache = out.get("embedding_cache")
    if cache:
        timing += ("; cold embedding cache (empty at the start: the corpus is embedded in the run)"
                   if cache.get("cold") else "; warm embedding cache")
    lines = [f"{head}; seeds {out['seeds']}; {timing}.",
             "", "Task numbers and F1 are percentages; mean ± std over the seeds (std ddof=0). Bold: the best "
             "mean of the column (`full` is the whole pool, a reference, never bold nor ranked). Energy, MMD² "
             "and the KLs are measured against the held-out target split. Each GIO method runs once per task "
             "and seed, to the larger of the two sizes; the smaller size's row scores the first picks of that "
             "run (GIO's greedy is prefix-consistent), so both rows show that one run's time.", ""]
    same = out.get("same_as") or {}
    if same:
        lines += ["Not run twice: " + "; ".join(
            f"`{m}` has the same settings as `{o}` at a forced size (with the library's defaults of this run)"
            f", so its rows are `{o}`'s" for m, o in same.items()) + ".", ""]
    for t in out["tasks"]:
        if t not in agg:
            lines += [f"### {t}", "", f"not in this output: {out['skipped_tasks'].get(t, 'not run (yet)')}", ""]
            continue
        res0 = next(r for r in out["results"] if r["task"] == t)
        own = [r["own_size"] for r in out["results"] if r["task"] == t]
        lines += [f"### {t}", "", f"{out['task_descriptions'][t]}. Task number: {res0['metric']}; pool "
                  f"{res0['pool_rows']} rows; GIO's own sizes {own}"
                  f" (stop: {res0['gio_stop_reason']}); "
                  f"{sum(out['task_seconds'][t]):.0f} s for {len(out['task_seconds'][t])} seeds.", ""]
        skipped = res0["skipped"]
        if skipped:
            lines += ["Not run here: " + "; ".join(f"{m} ({why})" for m, why in skipped.items()) + ".", ""]
        for b in ("fixed", "own"):
            if b not in agg[t]:
                continue
            lines += [f"{BUDGET_TITLE[b]}:", ""]
            rows = []
            for m in sorted(out["methods"], key=lambda m: m in REFERENCES):  # the references last
                cell = agg[t][b].get(m)
                if cell is None:
                    continue
                row = [m]
                for key, _, _ in COLUMNS:
                    txt = _cell(cell, key)
                    if key != "size" and m not in REFERENCES and m in wins[t][b].get(key, []):
                        txt = f"**{txt}**"
                    row.append(txt)
                rows.append(row)
            lines += [markdown_table(["method"] + [c[1] for c in COLUMNS], rows), ""]
    lines += ["### Time per task", "", "One task instance (one seed): building it (data, features, embeddings "
              "from the cache), the selection runs of every method, and scoring them (the metrics); wall time "
              "(the machine is shared: see the load) and this process's CPU time (load-independent; it counts "
              "both cores when the linear algebra uses both).", ""]
    trows = []
    phases = out.get("phase_seconds", {})
    cpus = out.get("task_cpu_seconds", {})
    for t in out["tasks"]:
        if t in out["task_seconds"]:
            tot, bld = out["task_seconds"][t], out["build_seconds"][t]
            ph = phases.get(t, {})
            cp = cpus.get(t, [])
            trows.append([t, str(len(tot)), f"{_avg(bld):.1f}", f"{_avg(ph.get('select', [])):.1f}",
                          f"{_avg(ph.get('score', [])):.1f}", f"{_avg(tot):.1f}", f"{sum(tot):.0f}",
                          f"{sum(cp):.0f}" if cp and all(math.isfinite(c) for c in cp) else "n/a"])
    lines += [markdown_table(["task", "seeds", "build (s, mean)", "selection (s, mean)", "metrics (s, mean)",
                              "per seed (s, mean)", "all seeds, wall (s)", "all seeds, CPU (s)"], trows), ""]
    lines += ["### Mean rank across tasks", "",
              "Rank 1 = best in a task (ties share the average rank); averaged over the tasks a method ran on "
              "(the count after the rank when it is not every task).", ""]
    for b, ranks in out["mean_ranks"].items():
        lines += [f"{BUDGET_TITLE[b]}:", ""]
        methods = [m for m in out["methods"] if m not in REFERENCES and any(m in ranks[k] for k, _, _ in RANKED)]
        n_tasks = max((v["tasks"] for k, _, _ in RANKED for v in ranks[k].values()), default=0)
        rows = []
        for m in methods:
            row = [m]
            for key, _, _ in RANKED:
                v = ranks[key].get(m)
                if v is None:
                    row.append("n/a")
                else:
                    per = {mm: vv["rank"] for mm, vv in ranks[key].items()}
                    txt = f"{v['rank']:.2f}" + (f" ({v['tasks']})" if v["tasks"] != n_tasks else "")
                    row.append(f"**{txt}**" if v["rank"] == min(per.values()) else txt)
            rows.append(row)
        lines += [markdown_table(["method"] + [c[1] for c in RANKED], rows), ""]
    return "\n".join(lines)
