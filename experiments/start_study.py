"""Where each gradient search starts: hybrid starts for GIO, prototyped as suite methods (issue 17, item 3).

The suite's recorded run (EXPERIMENTS.md, first section) has no GIO mode that wins both kinds of task: at the
fixed size ``v_init='mean'`` (every search starts at the target's mean) beats the default ``'jump'`` (a random
target row) by 5-17 points on every BBC task and the spelling pairs, and collapses on Fashion-MNIST and the
mixture, where ``jump`` wins. Under the relaxed estimator the gradient's direction does not depend on the picks
already made (docs/algorithm.md, "What the relaxed objective does and does not reward"): where a search starts
decides where it ends, so the start is the lever. The variants below change only that
(:meth:`gioselect.optimize.GIOSearch.search_start`; ``start-best2`` also :meth:`~gioselect.optimize.GIOSearch.
descend_and_snap`), each a subclass of :class:`~gioselect.optimize.GIOSearch`, none a library default:

* ``start-shrink25`` / ``-shrink50`` / ``-shrink75``: ``v = (1 - a) x_j + a mean`` for a random target row
  ``x_j`` (a = 0.25, 0.5, 0.75). *Why*: ``jump``'s starts cover every part of the target but include its
  outlying rows, whose nearest pool rows are off-target; ``mean``'s one start is central but covers one spot;
  a point between the two keeps the random anchor and moves it toward the target's centre. a = 0 is ``jump``
  and a = 1 is ``mean``, pick for pick (``tests/test_start_study.py``).
* ``start-best2``: every search runs twice, from a jump start and from the mean, and the candidate whose
  addition gives the lower objective is the pick. *Why*: GIO is a greedy on the objective, so let the objective
  choose, at each pick, which of the two starts does better (twice the gradient cost).
* ``start-peak``: jump to the k-NN density peak of a random target row (quick-shift on the target's k-NN
  graph: each row points to the densest of itself and its k nearest rows, followed to a row that is its own
  densest). *Why*: a peak is a typical row of its part of the target, never an outlier, and a random row's
  peak is drawn with the weight of its basin, so a 60/30/10 target keeps its proportions.
* ``start-dense50``: jump among the target rows whose k-th-neighbour distance is at most the median (the
  denser half). *Why*: the same aim as the peaks with more starting rows; the sparse half of the target is where
  the outliers are.
* ``start-mean25``: start at the mean for the first quarter of the target's row count of searches, then jump.
  *Why*: ``mean``'s advantage is in the first picks (the target's core); once the core is taken, ``jump``
  covers the rest.

Each variant runs through the suite's own GIO path (:func:`suite.core.run_gio`, i.e.
:func:`gioselect.selector.select_quantized` with the library's defaults forced to a size): only the class of
the search is swapped (:func:`searches`), so a variant's run differs from the ``gio`` row's only by its start.
A variant has no size of its own: it runs at the task's fixed size and at ``gio``'s own size.

Commands::

    python experiments/start_study.py run --size full --seeds 3 --out DIR [--tasks ...] [--methods ...]
    python experiments/start_study.py summarize DIR/suite_full.json [MORE.json ...] [--recorded JSON] [--out PATH]

``run`` takes the suite's options (``python experiments/suite --help``), one process only (``--jobs 1``: the
suite's worker processes know only the built-in methods); by default the suite's 11 smaller tasks (not the
whole corpus) with ``gio``, ``gio-mean``, ``knn`` (to check the recorded run's peers) and every variant.
``summarize`` merges one or more ``run`` outputs, checks the ``gio``, ``gio-mean`` and ``knn`` records against the
recorded run (the tasks and seeds are deterministic), takes every other method's records from there where the data
is the same (:func:`combine`), and prints the comparison: task number and energy per task and size, mean ranks
against the peers, the rows within 1 point of the best method. The recorded study (EXPERIMENTS.md, "Hybrid starts
for the gradient search") is ``results/start_study_full_run{1,2,3}.json``, summarised in
``results/start_study_full.{md,json}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gioselect.optimize import GIOSearch

NAME = "start_study"
#: The suite's tasks of this study: every full-size task but the whole corpus (bbc-40k, bbc-40k-kmeans).
STUDY_TASKS = ("bbc-business", "bbc-entertainment", "bbc-politics", "bbc-sports", "bbc-tech", "bbc-quality",
               "speller", "fashion-test", "fashion-tops", "fashion-quality", "mixture")
#: Tasks on text (sentence embeddings, spelling-pair features): where ``gio-mean`` won the recorded run.
TEXT_TASKS = STUDY_TASKS[:7]
#: Methods whose records ``summarize`` checks against the recorded run (the study runs them again).
CHECKED = ("gio", "gio-mean", "knn")
#: Methods whose energy distance depends only on the task instance's data and seed (no GIO, no model fit): the
#: recorded run's records of an instance are used only where these agree with the study's to the last bit.
SAME_DATA = ("knn",)
#: The recorded run's peers: every variant is ranked against these, in ``gio``'s seat.
PEERS = ("random", "knn", "herding", "dsir", "facility")
RECORDED = Path(__file__).resolve().parent / "results" / "suite_full.json"


# ---------------------------------------------------------------------------------------------------------
# the starts (subclasses of GIOSearch)
# ---------------------------------------------------------------------------------------------------------
def target_knn(target: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each target row's ``k`` nearest other rows (nearest first, ties to the lower index) and its squared
    distance to the k-th of them (lower: denser). O(n^2 d) once per run; targets are hundreds of rows."""
    x = np.asarray(target, dtype=np.float64)
    n = x.shape[0]
    sq = np.einsum("ij,ij->i", x, x)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    np.fill_diagonal(d2, np.inf)
    kk = max(1, min(int(k), n - 1))
    nn = np.argsort(d2, axis=1, kind="stable")[:, :kk]
    return nn, d2[np.arange(n), nn[:, -1]]


def density_peaks(target: np.ndarray, k: int) -> np.ndarray:
    """Quick-shift on the target's k-NN graph: for each row, the row reached by moving to the densest of the
    current row and its ``k`` nearest rows (:func:`target_knn`) until the current row is that densest one.

    Each move goes to a strictly denser row (a tie keeps the current row), so there are no cycles."""
    nn, rk = target_knn(target, k)
    n = nn.shape[0]
    cand = np.concatenate([np.arange(n)[:, None], nn], axis=1)  # itself first: it wins ties
    parent = cand[np.arange(n), np.argmin(rk[cand], axis=1)]
    root = parent.copy()
    for _ in range(n):
        nxt = parent[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    return root


class _Start(GIOSearch):
    """A GIOSearch with :meth:`random_row`, the draw every variant's start is built on."""

    def random_row(self) -> np.ndarray:
        """A random target row: the draw ``v_init='jump'`` makes (same generator call, same bits)."""
        return np.array(self.target[int(self.rng.integers(self.target.shape[0]))], dtype=np.float64)


class ShrinkStart(_Start):
    """``v = (1 - a) x_j + a mean``: a random target row moved a share ``a`` of the way to the target's mean.

    Written so that a = 0 gives the row and a = 1 the mean exactly (``v_init='jump'`` / ``'mean'``)."""

    def __init__(self, *args: Any, a: float, **kwargs: Any) -> None:
        self.a = float(a)
        super().__init__(*args, **kwargs)

    def search_start(self, after: np.ndarray | None) -> np.ndarray:
        x = self.random_row()
        return (1.0 - self.a) * x + self.a * self.target_mean


class BestOfTwo(_Start):
    """Two gradient searches per pick, from a jump start and from the target's mean; the candidate whose
    addition gives the lower objective value is the pick (ties: the jump start's)."""

    def search_start(self, after: np.ndarray | None) -> np.ndarray:
        return self.random_row()

    def descend_and_snap(self, v: np.ndarray, steps: int) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
        a = super().descend_and_snap(v, steps)
        b = super().descend_and_snap(self.target_mean.copy(), steps)
        if b[1] == a[1]:
            return a
        va = self.objective.value_if_added(a[2], a[3])
        vb = self.objective.value_if_added(b[2], b[3])
        return b if vb < va else a


class PeakStart(_Start):
    """Jump to the density peak (:func:`density_peaks`, the search's ``k``) of a random target row."""

    def __init__(self, candidates: np.ndarray, target: np.ndarray, params: Any, *args: Any, **kwargs: Any) -> None:
        self.peaks = density_peaks(target, params.k)
        super().__init__(candidates, target, params, *args, **kwargs)

    def search_start(self, after: np.ndarray | None) -> np.ndarray:
        j = int(self.rng.integers(self.target.shape[0]))
        return np.array(self.target[int(self.peaks[j])], dtype=np.float64)


class DenseStart(_Start):
    """Jump among the target rows whose squared distance to their k-th nearest row is at most the ``q``
    quantile (the denser share ``q`` of the target)."""

    def __init__(self, candidates: np.ndarray, target: np.ndarray, params: Any, *args: Any, q: float = 0.5,
                 **kwargs: Any) -> None:
        _, rk = target_knn(target, params.k)
        self.rows = np.flatnonzero(rk <= np.quantile(rk, q))
        super().__init__(candidates, target, params, *args, **kwargs)

    def search_start(self, after: np.ndarray | None) -> np.ndarray:
        return np.array(self.target[int(self.rows[int(self.rng.integers(self.rows.size))])], dtype=np.float64)


class MeanThenJump(_Start):
    """The target's mean for the first ``ceil(share * n_target)`` searches (picks evaluated), then jump."""

    def __init__(self, candidates: np.ndarray, target: np.ndarray, *args: Any, share: float, **kwargs: Any) -> None:
        self.switch = math.ceil(float(share) * target.shape[0])
        super().__init__(candidates, target, *args, **kwargs)

    def search_start(self, after: np.ndarray | None) -> np.ndarray:
        st = getattr(self, "state", None)  # None before the first search
        done = 0 if st is None else st.n_iter
        return self.target_mean.copy() if done < self.switch else self.random_row()


SearchFactory = Callable[..., GIOSearch]


def _with(cls: type[GIOSearch], **opts: Any) -> SearchFactory:
    def make(*args: Any, **kwargs: Any) -> GIOSearch:
        return cls(*args, **opts, **kwargs)
    return make


#: name -> (search factory, description with the one-sentence justification).
VARIANTS: dict[str, tuple[SearchFactory, str]] = {
    "start-shrink25": (_with(ShrinkStart, a=0.25), "v = 0.75 x_j + 0.25 mean: jump's random anchor, moved a "
                       "quarter of the way to the target's centre, away from outlying target rows"),
    "start-shrink50": (_with(ShrinkStart, a=0.5), "v = (x_j + mean) / 2: halfway between jump and mean"),
    "start-shrink75": (_with(ShrinkStart, a=0.75), "v = 0.25 x_j + 0.75 mean: near the mean, still anchored "
                       "on a random target row"),
    "start-best2": (_with(BestOfTwo), "two searches per pick (jump start, mean); the objective keeps the "
                    "candidate that lowers it more: GIO's own greedy criterion picks the start"),
    "start-peak": (_with(PeakStart), "jump to a random target row's k-NN density peak: typical rows only, "
                   "each part of the target drawn with its basin's weight"),
    "start-dense50": (_with(DenseStart, q=0.5), "jump among the denser half of the target rows (k-th "
                      "neighbour distance at most the median): the outliers are in the sparse half"),
    "start-mean25": (_with(MeanThenJump, share=0.25), "the mean for the first n_target/4 searches, then jump: "
                     "mean's advantage is the target's core, taken by the first picks"),
}


@contextlib.contextmanager
def searches(factory: SearchFactory) -> Iterator[None]:
    """Inside the block, the library's runs build their relaxed searches with ``factory`` (called as
    :class:`~gioselect.optimize.GIOSearch` is) instead of ``GIOSearch``: every entry point runs its select
    phase through :func:`gioselect.job.select.run_gio`, which builds the search with the ``make_search`` bound in
    that module, and that name is swapped here. Not thread-safe; one run at a time."""
    import gioselect.job.select as job_select

    original = job_select.make_search

    def make(candidates: np.ndarray, target: np.ndarray, params: Any, *, seed: Any = None,
             init: np.ndarray | None = None, weights: np.ndarray | None = None, budget: float | None = None,
             budget_exact: bool = False) -> Any:
        if params.objective != "relaxed":
            return original(candidates, target, params, seed=seed, init=init, weights=weights, budget=budget,
                            budget_exact=budget_exact)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        return factory(candidates, target, params, rng, init=init, weights=weights, budget=budget,
                       budget_exact=budget_exact)

    job_select.make_search = make
    try:
        yield
    finally:
        job_select.make_search = original


def run_variant(factory: SearchFactory, task: Any, size: int | None, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The suite's forced GIO run (:func:`suite.core.run_gio`, the library's defaults) with ``factory``'s search."""
    from suite.core import run_gio

    if size is None:
        raise ValueError("a start variant has no size of its own: it runs at the fixed size and at gio's own size")
    if task.clusters:
        raise ValueError(f"task {task.name}: the start variants run on the rows (clusters=0), not quantised")
    with searches(factory):
        return run_gio(task, {}, size, seed)


def register_variants(names: Sequence[str] | None = None) -> list[str]:
    """Register the variants (all, or ``names``) in the suite's method registry; returns their names.

    Each is a GIO method (``kind="gio"``: prefix-consistent on the rows, so one run serves both sizes) without
    ``params`` (so the suite never takes it for the default with the same settings)."""
    from suite import Method, register_method

    out = []
    for name in names if names is not None else VARIANTS:
        factory, desc = VARIANTS[name]

        def run(task: Any, size: int | None, seed: int, _f: SearchFactory = factory) -> tuple[np.ndarray, Any]:
            return run_variant(_f, task, size, seed)

        register_method(Method(name, run, desc, kind="gio"))
        out.append(name)
    return out


# ---------------------------------------------------------------------------------------------------------
# the comparison with the recorded run
# ---------------------------------------------------------------------------------------------------------
def combine(studies: Sequence[Mapping[str, Any]], recorded: Mapping[str, Any], checked: Sequence[str] = CHECKED
            ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The task instances of one or more study outputs, merged (the same task and seed must have the same budgets
    in each; a method in two of them keeps the first's record, and the two are compared), with the recorded run's
    records of every other method added where the recorded instance has the same size at that budget (GIO's own
    size can differ when the data does) and the :data:`SAME_DATA` methods' energy distances are equal to the last
    bit (the BBC embeddings in the cache may differ from the recorded run's by float rounding: then every number
    does a little, and nothing is taken). The records of ``checked`` methods present in both are compared (size,
    task number, energy). Returns the instances and the check: ``compared``, ``mismatches`` (``task/seed/budget/
    method`` with the largest difference), ``filled`` and ``not_filled`` (``task/seed/budget``)."""
    rec = {(r["task"], r["seed"]): r for r in recorded["results"]}
    merged: dict[tuple[str, int], dict[str, Any]] = {}
    check: dict[str, Any] = {"compared": 0, "mismatches": [], "filled": [], "not_filled": []}

    def compare(where: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
        check["compared"] += 1
        diff = max(abs(float(a[c]) - float(b[c])) for c in ("task_number", "energy", "size"))
        if diff > 1e-12:
            check["mismatches"].append((where, diff))

    for study in studies:
        for r in study["results"]:
            key = (r["task"], int(r["seed"]))
            cur = merged.setdefault(key, {"task": r["task"], "seed": int(r["seed"]), "budgets": dict(r["budgets"]),
                                          "runs": {}})
            if cur["budgets"] != r["budgets"]:
                raise ValueError(f"{key}: budgets {r['budgets']} in one study output, {cur['budgets']} in another")
            for b, by in r["runs"].items():
                row = cur["runs"].setdefault(b, {})
                for m, one in by.items():
                    if m in row:
                        compare(f"{key[0]}/{key[1]}/{b}/{m} (two study outputs)", row[m], one)
                    else:
                        row[m] = one
    for key, cur in merged.items():
        base = rec.get(key)
        for b, row in cur["runs"].items():
            where = f"{key[0]}/{key[1]}/{b}"
            same = (base is not None and base["budgets"].get(b) == cur["budgets"][b]
                    and all(row[m]["energy"] == base["runs"][b][m]["energy"] for m in SAME_DATA
                            if m in row and m in base["runs"][b]))
            if not same:
                check["not_filled"].append(where)
                continue
            for m, one in base["runs"][b].items():
                if m not in row:
                    row[m] = one
                elif m in checked:
                    compare(f"{where}/{m}", row[m], one)
            check["filled"].append(where)
    return [merged[k] for k in sorted(merged)], check


def _mean(cell: Mapping[str, Any] | None, key: str) -> float:
    return math.nan if cell is None or key not in cell else float(cell[key]["mean"])


def comparison(results: Sequence[Mapping[str, Any]], variants: Sequence[str], recorded_methods: Sequence[str]
               ) -> dict[str, Any]:
    """Per (task, budget): every method's mean task number and energy, the best recorded method; per candidate
    (``gio``, ``gio-mean``, each variant): mean ranks against :data:`PEERS` and the rows within 1 point."""
    from suite import aggregate, mean_ranks

    agg = aggregate(results)
    tasks = [t for t in STUDY_TASKS if t in agg]
    recorded_methods = [m for m in recorded_methods if m not in ("full", "gio-jump", "gio-exact")]
    rows = []
    for t in tasks:
        for b in ("fixed", "own"):
            by = agg[t].get(b, {})
            rec_vals = {m: _mean(by.get(m), "task") for m in recorded_methods if m in by}
            rec_vals = {m: v for m, v in rec_vals.items() if math.isfinite(v)}
            best = max(rec_vals, key=lambda m: rec_vals[m])
            energies = {m: _mean(by.get(m), "energy") for m in rec_vals}
            best_e = min((m for m in energies if math.isfinite(energies[m])), key=lambda m: energies[m])
            rows.append({"task": t, "budget": b, "size": _mean(by.get("gio"), "size"), "best": best,
                         "best_task": rec_vals[best], "best_energy": best_e,
                         "task_number": {m: _mean(c, "task") for m, c in by.items()},
                         "energy": {m: _mean(c, "energy") for m, c in by.items()}})
    candidates = ["gio", "gio-mean", *variants]
    cols = [("task", "task number", True), ("energy", "energy", False)]
    ranks: dict[str, Any] = {}
    for c in candidates:
        ranks[c] = {}
        for b in ("fixed", "own"):
            table = {t: {m: cell for m, cell in agg[t].get(b, {}).items() if m in (c, *PEERS)} for t in tasks}
            mr = mean_ranks({t: by for t, by in table.items() if c in by}, cols)
            ranks[c][b] = {k: mr[k][c]["rank"] for k, _, _ in cols}
            ranks[c][b]["tasks"] = mr["task"][c]["tasks"]
            ranks[c][b]["best_peer"] = {k: min((mr[k][p]["rank"], p) for p in PEERS if p in mr[k]) for k, _, _ in cols}
    summary = {}
    for c in candidates:
        have = [r for r in rows if math.isfinite(r["task_number"].get(c, math.nan))]
        within = [f"{r['task']}/{r['budget']}" for r in have if r["task_number"][c] >= r["best_task"] - 0.01]
        d = {(r["task"], r["budget"]): r["task_number"][c] - r["task_number"]["gio"] for r in have}
        text = [v for (t, _), v in d.items() if t in TEXT_TASKS]
        other = [v for (t, _), v in d.items() if t not in TEXT_TASKS]
        summary[c] = {"within_1_point": within, "rows": len(have),
                      "at_least_gio": sum(v >= 0 for v in d.values()),
                      "min_vs_gio_text": min(text) if text else math.nan,
                      "mean_vs_gio_text": float(np.mean(text)) if text else math.nan,
                      "min_vs_gio_other": min(other) if other else math.nan,
                      "mean_vs_gio_other": float(np.mean(other)) if other else math.nan}
    return {"rows": rows, "ranks": ranks, "summary": summary, "candidates": candidates}


def markdown(comp: Mapping[str, Any], check: Mapping[str, Any]) -> str:
    """The comparison as markdown tables (task numbers in %, energy as it is)."""
    cands = list(comp["candidates"])
    short = {c: c.replace("start-", "") for c in cands}
    mism = check["mismatches"]
    lines = [f"Compared {check['compared']} records ({', '.join(CHECKED)}, the recorded run and the study, or two "
             f"study outputs): {check['compared'] - len(mism)} equal"
             + ("." if not mism else ", " + "; ".join(f"{w} differs by up to {d:.3g}" for w, d in mism) + "."),
             "Recorded records used for (task/seed/budget): " + (", ".join(check["filled"]) or "none")
             + "; not used (GIO's own size or kNN's energy differs): " + (", ".join(check["not_filled"]) or "none")
             + ".", ""]
    titles = {"task_number": ("Task number (%), mean over the seeds; best: the best of the suite's methods (GIO "
                              "modes and peers, not the variants) by task number; `*`: within 1 point of it", 100.0,
                              1),
              "energy": ("Energy distance to the held-out split, mean over the seeds (lower is better); best: the "
                         "best of the suite's methods by energy", 1.0, 4)}
    for key, (title, scale, digits) in titles.items():
        lines += [f"**{title}**", ""]
        head = ["task", "size", "best (method)", *[short[c] for c in cands]]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * len(cands)]
        for r in comp["rows"]:
            bm = r["best"] if key == "task_number" else r["best_energy"]
            cells = []
            for c in cands:
                v = r[key].get(c, math.nan)
                s = "n/a" if not math.isfinite(v) else f"{scale * v:.{digits}f}"
                if key == "task_number" and math.isfinite(v) and v >= r["best_task"] - 0.01:
                    s += "*"
                cells.append(s)
            size = "N" if r["budget"] == "fixed" else f"own {r['size']:.0f}"
            best = f"{scale * r[key][bm]:.{digits}f} ({bm})"
            lines.append(f"| {r['task']} | {size} | {best} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["**Mean rank** against the peers (" + ", ".join(PEERS) + "), each candidate in gio's seat (rank 1 "
              "best; the best peer's rank in brackets), and the rows within 1 point of the best method:", "",
              "| candidate | task no., fixed | energy, fixed | task no., own | energy, own | within 1 point | "
              "rows >= gio | text rows: mean / min vs gio | other rows: mean / min vs gio |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in cands:
        rk, sm = comp["ranks"][c], comp["summary"][c]
        cells = []
        for b in ("fixed", "own"):
            for k in ("task", "energy"):
                bp = rk[b]["best_peer"][k]
                cells.append(f"{rk[b][k]:.2f} ({bp[1]} {bp[0]:.2f}; {rk[b]['tasks']} tasks)")
        lines.append(f"| {c} | " + " | ".join(cells) + f" | {len(sm['within_1_point'])} of {sm['rows']} | "
                     f"{sm['at_least_gio']} | {100 * sm['mean_vs_gio_text']:+.1f} / {100 * sm['min_vs_gio_text']:+.1f}"
                     f" | {100 * sm['mean_vs_gio_other']:+.1f} / {100 * sm['min_vs_gio_other']:+.1f} |")
    lines.append("")
    for c in cands:
        lines.append(f"- {c} within 1 point: " + (", ".join(comp["summary"][c]["within_1_point"]) or "none"))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------------
def _run(argv: list[str]) -> int:
    from suite.cli import main as suite_main
    from suite.cli import make_parser

    args, _ = make_parser().parse_known_args(argv)
    if args.jobs != 1 or args.curve is not None or args.merge is not None:
        print("start_study run: one process only (--jobs 1; the suite's workers know only the built-in methods), "
              "no --curve or --merge", file=sys.stderr)
        return 2
    register_variants()
    if args.tasks is None:
        argv = [*argv, "--tasks", ",".join(STUDY_TASKS)]
    if args.methods is None:
        argv = [*argv, "--methods", ",".join(["gio", "gio-mean", "knn", *VARIANTS])]
    return int(suite_main(argv))


def _summarize(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python experiments/start_study.py summarize")
    ap.add_argument("study", type=Path, nargs="+", help="the suite JSON(s) that `run` wrote")
    ap.add_argument("--recorded", type=Path, default=RECORDED, help="the recorded suite run (every peer)")
    ap.add_argument("--out", type=Path, default=None, help="also write the tables (markdown) and numbers (JSON) "
                    "here: <out>.md and <out>.json")
    args = ap.parse_args(argv)
    studies = [json.loads(p.read_text(encoding="utf-8")) for p in args.study]
    recorded = json.loads(args.recorded.read_text(encoding="utf-8"))
    variants = [m for m in VARIANTS if any(m in st["methods"] for st in studies)]
    results, check = combine(studies, recorded)
    comp = comparison(results, variants, recorded["methods"])
    md = markdown(comp, check)
    print(md)
    if args.out is not None:
        from common import write_json

        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(md + "\n", encoding="utf-8")
        write_json(args.out.with_suffix(".json"), {"check": check, "studies": [
            {k: st.get(k) for k in ("command", "date", "wall_time_s", "cpu_time_s", "load_start", "load_end", "tasks",
                                    "methods", "seeds")} for st in studies], **comp})
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("run", "summarize"):
        print("usage: python experiments/start_study.py run [suite options] | summarize STUDY.json [--recorded "
              "JSON] [--out PATH]", file=sys.stderr)
        return 2
    return _run(argv[1:]) if argv[0] == "run" else _summarize(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
