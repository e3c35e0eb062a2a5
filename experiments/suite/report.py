"""Running the whole suite and writing its results: one JSON (every run) and one markdown table."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from common import markdown_table

from .core import COLUMNS, METHODS, RANKED, REFERENCES, TASKS, aggregate, mean_ranks, missing_needs, run_task, winners

logger = logging.getLogger("experiments.suite")

#: The tasks each size runs by default (small: the ones that fit in the test suite's minute).
DEFAULT_TASKS = {
    "small": ("bbc-tech", "bbc-quality", "speller", "fashion-test", "fashion-quality", "mixture", "bbc-40k",
              "bbc-40k-kmeans"),
    "full": ("bbc-business", "bbc-entertainment", "bbc-politics", "bbc-sports", "bbc-tech", "bbc-quality",
             "speller", "fashion-test", "fashion-tops", "fashion-quality", "mixture", "bbc-40k", "bbc-40k-kmeans"),
}


def run_suite(size: str, tasks: Sequence[str], methods: Sequence[str], seeds: Sequence[int], *,
              progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every task x method x seed at the task's fixed size and at GIO's own size; aggregated.

    ``progress`` gets the output so far (as :func:`summarise` makes it) after every finished task instance
    (task and seed), so a long run can be written out as it goes."""
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    skipped_tasks: dict[str, str] = {}
    for name in tasks:
        spec = TASKS[name]
        miss = missing_needs(spec)
        if miss:
            skipped_tasks[name] = f"needs {', '.join(miss)}"
            logger.warning("task %s skipped: needs %s", name, ", ".join(miss))
            continue
        for seed in seeds:
            t0 = time.perf_counter()
            try:
                task = spec.build(size, seed)
            except (ImportError, FileNotFoundError) as exc:
                skipped_tasks[name] = str(exc)
                logger.warning("task %s skipped: %s", name, exc)
                break
            t1 = time.perf_counter()
            res = run_task(task, methods, seed)
            res["build_seconds"] = t1 - t0
            res["seconds"] = time.perf_counter() - t0
            results.append(res)
            logger.info("task %s seed %d done in %.1f s (build %.1f s, GIO's own size %d)", name, seed,
                        res["seconds"], t1 - t0, res["own_size"])
            if progress is not None:
                progress(summarise(size, tasks, methods, seeds, results, skipped_tasks,
                                   time.perf_counter() - started))
    return summarise(size, tasks, methods, seeds, results, skipped_tasks, time.perf_counter() - started)


def summarise(size: str, tasks: Sequence[str], methods: Sequence[str], seeds: Sequence[int],
              results: Sequence[Mapping[str, Any]], skipped_tasks: Mapping[str, str], wall_time_s: float
              ) -> dict[str, Any]:
    """The suite's output from its runs: the runs, the aggregate, the winners, the mean ranks, the timings."""
    agg = aggregate(results)
    budgets = sorted({b for res in results for b in res["runs"]})
    ranks = {b: mean_ranks({t: agg[t][b] for t in agg if b in agg[t]}) for b in budgets}
    wins = {t: {b: winners(agg[t][b]) for b in agg[t]} for t in agg}
    task_seconds: dict[str, list[float]] = {}
    build_seconds: dict[str, list[float]] = {}
    for res in results:
        task_seconds.setdefault(res["task"], []).append(float(res["seconds"]))
        build_seconds.setdefault(res["task"], []).append(float(res["build_seconds"]))
    return {"size": size, "seeds": list(seeds), "tasks": list(tasks), "methods": list(methods),
            "method_descriptions": {m: METHODS[m].description for m in methods if m in METHODS},
            "task_descriptions": {t: TASKS[t].description for t in tasks if t in TASKS},
            "skipped_tasks": dict(skipped_tasks), "task_seconds": task_seconds, "build_seconds": build_seconds,
            "wall_time_s": wall_time_s, "results": list(results), "aggregate": agg, "winners": wins,
            "mean_ranks": ranks}


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
    return summarise(sizes.pop(), list(dict.fromkeys(tasks)), methods, seeds, results, skipped,
                     sum(float(o["wall_time_s"]) for o in outputs))


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


def markdown(out: Mapping[str, Any], command: str) -> str:
    """The suite's tables: per task and budget, one row per method (winners in bold), then mean ranks."""
    agg, wins = out["aggregate"], out["winners"]
    runs = out.get("commands")
    head = (f"Runs: {'; '.join(f'`{c}`' for c in runs)}, merged by `{command}`" if runs
            else f"Command: `{command}`")
    lines = [f"{head}; seeds {out['seeds']}; wall time {out['wall_time_s'] / 60:.1f} min.",
             "", "Task numbers and F1 are percentages; mean ± std over the seeds (std ddof=0). Bold: the best "
             "mean of the column (`full` is the whole pool, a reference, never bold nor ranked). Energy, MMD² "
             "and the KLs are measured against the held-out target split.", ""]
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
    lines += ["### Time per task", "", "Wall time of one task instance (one seed): building it (data, features, "
              "embeddings from the cache) and running and scoring every method at both sizes.", ""]
    trows = []
    for t in out["tasks"]:
        if t in out["task_seconds"]:
            tot, bld = out["task_seconds"][t], out["build_seconds"][t]
            trows.append([t, str(len(tot)), f"{sum(bld) / len(bld):.0f}", f"{sum(tot) / len(tot):.0f}",
                          f"{sum(tot):.0f}"])
    lines += [markdown_table(["task", "seeds", "build (s, mean)", "per seed (s, mean)", "all seeds (s)"], trows),
              ""]
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
