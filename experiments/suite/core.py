"""The suite's pieces: what a task is, what a method is, how one (task, method, size, seed) is run and scored,
and how the runs are aggregated (mean ± std over seeds, winners, mean ranks across tasks).

Nothing here knows about a particular data set: the tasks are registered in :mod:`suite.tasks`, the
methods below from :mod:`gioselect.evaluate`, :class:`gioselect.GIOSelector` (through
:func:`gioselect.selector.select_quantized`, so a task with ``clusters > 0`` gets the pipeline's
quantise-explode) and, when it is importable, :mod:`gioselect.peers`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gioselect.evaluate import BASELINES, downstream_accuracy, evaluate_selection
from gioselect.selector import select_quantized

logger = logging.getLogger("experiments.suite")

#: The numbers of one run, in table order: (key, heading, higher is better). ``size`` and ``seconds`` have
#: no better direction for the winner of a column except time (lower); size is equal by construction.
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("task", "task number", True),
    ("f1", "target-like F1", True),
    ("energy", "energy", False),
    ("mmd2", "MMD²", False),
    ("kl_target_sel", "KL(target‖sel)", False),
    ("kl_sel_target", "KL(sel‖target)", False),
    ("size", "size", False),
    ("seconds", "time (s)", False),
)
#: Columns that get a winner and a mean rank (size is equal for every method at one budget).
RANKED = tuple(c for c in COLUMNS if c[0] != "size")
#: Methods that are references, not selections at the compared size: never winners, never ranked.
REFERENCES = ("full",)
#: objective="exact" evaluates candidates exactly and its cost grows faster than the picks: on the loaded 2-core
#: machine 1,000 picks from a 10,000-row pool (32-D) took over 3 minutes, and 400 picks from 6,000 rows (384-D)
#: 255 s against 12 s for 100. The suite runs it where the pool and the size are at most these.
EXACT_MAX_POOL = 6000
EXACT_MAX_SIZE = 150
#: Energy distance and MMD² cost (n + m)² kernel values: each side is subsampled (seeded, without replacement,
#: by gioselect.evaluate's ``max_rows``) to at most this many rows. Measured on the loaded machine, scoring one
#: 6,000-row Fashion-MNIST selection took about 30 s before (the library's cap of 5,000 and the logistic
#: regression of the accuracy on a task whose number is not the accuracy); both are cut here. The held-out
#: splits have at most 2,000 rows, so only large selections are subsampled. KL is computed on every row.
METRIC_MAX_ROWS = 2000


# ---------------------------------------------------------------------------------------------------------
# tasks
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Task:
    """One selection problem with its yardsticks.

    ``pool`` (M x d) is what is selected from, ``target`` the rows the methods select with, ``holdout`` the
    held-out target split every distribution yardstick is measured on. The task number is ``metric``:
    for ``"test accuracy"`` a logistic regression trained on the selection's ``train_labels`` and scored on
    ``(test_x, test_y)``; for every other metric the share of picks in the boolean ``mask`` of target-like
    pool rows (then the size-aware F1 of retrieving the mask is reported too). ``pool_texts`` /
    ``target_texts`` are the raw texts for text methods (DSIR). ``unit_norm`` says whether the features have
    unit norm (it decides GIO's start set); ``clusters`` > 0 runs the GIO methods quantised.
    """

    name: str
    pool: np.ndarray
    target: np.ndarray
    holdout: np.ndarray
    metric: str
    fixed_size: int
    mask: np.ndarray | None = None
    train_labels: np.ndarray | None = None
    test_x: np.ndarray | None = None
    test_y: np.ndarray | None = None
    holdout_labels: np.ndarray | None = None
    pool_texts: list[str] | None = None
    target_texts: list[str] | None = None
    unit_norm: bool = True
    clusters: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.metric == "test accuracy":
            if self.train_labels is None or self.test_x is None or self.test_y is None:
                raise ValueError(f"task {self.name}: test accuracy needs train_labels, test_x and test_y")
        elif self.mask is None:
            raise ValueError(f"task {self.name}: metric {self.metric!r} needs a target-like mask over the pool")
        if self.mask is not None and self.mask.shape != (self.pool.shape[0],):
            raise ValueError(f"task {self.name}: mask has shape {self.mask.shape}, expected ({self.pool.shape[0]},)")


TaskBuilder = Callable[[str, int], Task]


@dataclass(frozen=True)
class TaskSpec:
    """A registered task: ``build(size, seed) -> Task``; ``sizes`` lists the suite sizes it runs at;
    ``prepare(size)``, if set, makes the data every seed's instance shares (e.g. fills the embedding cache),
    so that worker processes (``run_suite(jobs=...)``) find it ready instead of each making it."""

    name: str
    build: TaskBuilder
    description: str
    sizes: tuple[str, ...] = ("small", "full")
    needs: tuple[str, ...] = ()  # importable modules; the task is skipped (with the reason) without them
    prepare: Callable[[str], Any] | None = None
    #: Another task whose instances (same size and seed) have this one's data: the same pool, target, held-out
    #: split, mask and texts; only how GIO runs differs (``clusters``). When both are in a run, an instance of
    #: this task runs right after that task's, in the same process, and takes that task's records of every
    #: method that is not GIO at the same size instead of running it again (:func:`run_task`'s ``reuse``).
    same_data_as: str | None = None


TASKS: dict[str, TaskSpec] = {}


def register_task(name: str, description: str, *, sizes: tuple[str, ...] = ("small", "full"),
                  needs: tuple[str, ...] = (), prepare: Callable[[str], Any] | None = None,
                  same_data_as: str | None = None) -> Callable[[TaskBuilder], TaskBuilder]:
    """Decorator: register ``build(size, seed) -> Task`` under ``name`` (``prepare``, ``same_data_as``: see
    :class:`TaskSpec`)."""
    def deco(fn: TaskBuilder) -> TaskBuilder:
        TASKS[name] = TaskSpec(name, fn, description, sizes, needs, prepare, same_data_as)
        return fn
    return deco


def missing_needs(spec: TaskSpec) -> list[str]:
    """The modules of ``spec.needs`` that are not installed (found, not imported: importing
    sentence-transformers alone took 80 s of a loaded machine's time, and a task whose embeddings are cached
    never needs it)."""
    out = []
    for mod in spec.needs:
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(mod)
    return out


# ---------------------------------------------------------------------------------------------------------
# methods
# ---------------------------------------------------------------------------------------------------------
Runner = Callable[[Task, "int | None", int], tuple[np.ndarray, dict[str, Any]]]


@dataclass(frozen=True)
class Method:
    """A registered method: ``run(task, size, seed) -> (pool rows, info)``.

    ``size`` None asks for the method's own size (only GIO methods have one). ``needs_text`` methods are not
    applicable to tasks without raw text; ``max_pool`` skips pools larger than that (too slow to run there).
    ``params`` (GIO methods only) are the keyword arguments the method adds to the library's defaults: two GIO
    methods whose settings at a forced size are equal (:func:`forced_settings`) are one method, run once.
    """

    name: str
    run: Runner
    description: str
    kind: str = "baseline"
    needs_text: bool = False
    max_pool: int | None = None
    max_size: int | None = None
    params: Mapping[str, Any] | None = None

    def applicable(self, task: Task, size: int | None = None) -> str | None:
        """None when the method runs on ``task`` (at ``size``), else why not."""
        if self.needs_text and task.pool_texts is None:
            return "needs raw text; this task has embeddings only"
        if self.max_pool is not None and task.pool.shape[0] > self.max_pool:
            return f"pool of {task.pool.shape[0]} rows is over this method's limit of {self.max_pool}"
        if self.max_size is not None and size is not None and size > self.max_size:
            return f"size {size} is over this method's limit of {self.max_size}"
        return None


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    METHODS[method.name] = method
    return method


#: The suite's GIO modes: each changes one setting of the library's defaults (read at run time, so a change of
#: the defaults changes the modes with them). A mode that then equals the defaults (``gio-jump`` while the
#: default ``v_init`` is ``"jump"``) is not run a second time: :func:`run_task` lists it under ``same_as``.
GIO_MODES: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("gio-mean", {"v_init": "mean"}, "the library's defaults but v_init='mean' (the reference's: every gradient "
     "search starts at the target's mean)"),
    ("gio-jump", {"v_init": "jump"}, "the library's defaults but v_init='jump' (each gradient search starts at "
     "a random target point)"),
    ("gio-exact", {"objective": "exact"}, "the library's defaults but objective='exact' (greedy on the exact "
     "k-NN KL estimate, selection side at rank 1, no start points)"),
)
#: GIO settings that only decide when a run stops: at a forced size (``stop_criterion="data_size"``) they change
#: nothing, so :func:`forced_settings` leaves them out.
STOP_ONLY = ("stop_criterion", "min_difference", "min_kl", "max_sequential_increases", "max_iter",
             "max_data_size", "reference_sequential_bug", "reference_max_resets_bug", "reference_max_iter",
             "budget", "seed")


def start_params(task: Task, params: Mapping[str, Any]) -> dict[str, Any]:
    """GIO's start set for the task's feature scale: on features that are not unit-norm the relaxed objective
    starts from 1% of the pool (``random_init_pct=0.01``; see experiments/common.py), unless ``params`` says."""
    if task.unit_norm or params.get("objective", "relaxed") != "relaxed" or "random_init_pct" in params \
            or "init" in params:
        return {}
    return {"random_init_pct": 0.01}


FORCED = {"max_iter": None, "stop_criterion": "data_size", "max_data_size": 1.0}


def forced_settings(task: Task, params: Mapping[str, Any]) -> dict[str, Any]:
    """Every GIO setting a run of ``params`` on ``task`` forced to a size uses, the library's defaults filled
    in, without the settings that only decide when to stop (:data:`STOP_ONLY`). Equal dicts: equal runs."""
    from gioselect import GIOSelector

    full = GIOSelector(**{**start_params(task, params), **params, **FORCED}).get_params()
    return {k: v for k, v in full.items() if k not in STOP_ONLY}


def run_gio(task: Task, params: Mapping[str, Any], size: int | None, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """GIO on the task (quantised when ``task.clusters``): at its own stop rule (``size`` None) or forced to
    exactly ``size`` rows (``stop_criterion="data_size"``, no ``max_iter``, ``budget=size``, ``budget_exact``)."""
    p = {**start_params(task, params), **params}
    if size is not None:
        p.update(FORCED)
    qs = select_quantized(task.pool, task.target, clusters=task.clusters, seed=seed,
                          budget=size, budget_exact=size is not None, **p)
    ids = np.asarray(qs.ids, dtype=np.int64)
    info = {"params": {k: v for k, v in p.items()}, "stop_reason": qs.result.stop_reason,
            "candidates": qs.n_candidates, "picks": len(qs.result.selected_indices)}
    return ids, info


def gio_method(name: str, params: Mapping[str, Any], description: str) -> Method:
    """A GIO method with fixed keyword arguments (on top of the library's defaults at run time)."""
    frozen = dict(params)

    def run(task: Task, size: int | None, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        return run_gio(task, frozen, size, seed)

    exact = frozen.get("objective") == "exact"
    return Method(name, run, description, kind="gio", max_pool=EXACT_MAX_POOL if exact else None,
                  max_size=EXACT_MAX_SIZE if exact else None, params=frozen)


def _baseline(name: str) -> Runner:
    fn = BASELINES[name]

    def run(task: Task, size: int | None, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        if size is None and name != "full":
            raise ValueError(f"{name} has no size of its own")
        return np.asarray(fn(task.pool, task.target, size or 0, seed=seed), dtype=np.int64), {}
    return run


def _peers() -> Any:
    try:
        return importlib.import_module("gioselect.peers")
    except ImportError:
        return None


def _dsir(task: Task, size: int | None, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    assert task.pool_texts is not None and task.target_texts is not None and size is not None
    return np.asarray(_peers().dsir(task.pool_texts, task.target_texts, size, seed=seed), dtype=np.int64), {}


def _facility(task: Task, size: int | None, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    assert size is not None
    return np.asarray(_peers().facility_location(task.pool, task.target, size), dtype=np.int64), {}


def register_default_methods() -> None:
    """random, knn, herding, full; gio (library defaults) and its modes (:data:`GIO_MODES`); dsir/facility if
    importable."""
    METHODS.clear()
    register_method(gio_method("gio", {}, "gioselect.GIOSelector with the library's defaults at run time"))
    for name, params, desc in GIO_MODES:  # the start set follows each task's feature scale (start_params)
        register_method(gio_method(name, params, desc))
    for name, desc in (("random", "uniform pool rows (seeded)"),
                       ("knn", "round-robin nearest-neighbour retrieval (gioselect.evaluate.knn_retrieval)"),
                       ("herding", "kernel herding, greedy MMD (gioselect.evaluate.kernel_herding)"),
                       ("full", "the whole pool (a reference line: not ranked)")):
        register_method(Method(name, _baseline(name), desc))
    peers = _peers()
    if peers is not None and hasattr(peers, "dsir"):
        register_method(Method("dsir", _dsir, "hashed n-gram importance resampling (gioselect.peers.dsir)",
                               kind="peer", needs_text=True))
    if peers is not None and hasattr(peers, "facility_location"):
        register_method(Method("facility", _facility, "facility location, lazy greedy "
                               "(gioselect.peers.facility_location)", kind="peer"))


# ---------------------------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------------------------
def mask_f1(mask: np.ndarray, idx: np.ndarray) -> tuple[float, float, float]:
    """(precision, recall, F1) of the distinct picks ``idx`` as a retrieval of the pool rows where ``mask``.

    Size-aware: too few picks lose recall, too many lose precision. An empty selection scores 0 on all three
    (NaN precision would hide it)."""
    ids = np.unique(idx)
    hits = int(mask[ids].sum()) if ids.size else 0
    n_pos = int(mask.sum())
    p = hits / ids.size if ids.size else 0.0
    r = hits / n_pos if n_pos else 0.0
    return p, r, (2 * p * r / (p + r) if p + r > 0 else 0.0)


def score(task: Task, idx: np.ndarray, seed: int,
          sets: dict[bytes, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every number of one selection: the task number, F1 (mask tasks), energy distance and unbiased MMD² to
    the held-out split (each side subsampled, seeded, to at most :data:`METRIC_MAX_ROWS` rows), KL both ways
    (on every distinct pick), size; label TV where the task has labels; the downstream accuracy on
    ``"test accuracy"`` tasks (their task number; it is the costliest number on a large selection).

    ``sets``: the library's metrics (:func:`gioselect.evaluate.evaluate_selection`: functions of the sorted
    rows, repeats kept, at this seed) of the selections scored so far, by sorted rows; one found there is not
    computed again (the accuracy, which depends on the order of the rows, always is)."""
    labels = task.train_labels
    key = np.sort(np.asarray(idx, dtype=np.int64)).tobytes()
    r = sets.get(key) if sets is not None else None
    if r is None:
        r = evaluate_selection(task.pool, idx, task.holdout, seed=seed, labels=labels,
                               target_labels=task.holdout_labels if labels is not None else None,
                               max_rows=METRIC_MAX_ROWS)
        if sets is not None:
            sets[key] = r
    out: dict[str, Any] = {k: r[k] for k in ("size", "energy", "mmd2", "kl_target_sel", "kl_sel_target",
                                              "coverage")}
    if "label_tv" in r:
        out["label_tv"] = r["label_tv"]
    if task.metric == "test accuracy" and labels is not None and task.test_x is not None \
            and task.test_y is not None:
        out["accuracy"] = (downstream_accuracy(task.pool[idx], labels[idx], task.test_x, task.test_y, seed=seed)
                           if idx.size else math.nan)
    if task.mask is not None:
        p, rec, f1 = mask_f1(task.mask, idx)
        out.update(precision=p, recall=rec, f1=f1)
    else:
        out["f1"] = math.nan
    out["task"] = out["accuracy"] if task.metric == "test accuracy" else out["precision"]
    return out


@dataclass
class Run:
    """One run of a method: its picks (pool rows, in selection order), its info, and what it cost."""

    ids: np.ndarray
    info: dict[str, Any]
    seconds: float
    cpu_seconds: float


def execute(task: Task, method: Method, size: int | None, seed: int) -> Run:
    """Run ``method`` on ``task`` at ``size`` (None: its own), timed (wall and this process's CPU time)."""
    t0, c0 = time.perf_counter(), time.process_time()
    idx, info = method.run(task, size, seed)
    return Run(np.asarray(idx, dtype=np.int64), info, time.perf_counter() - t0, time.process_time() - c0)


def score_key(task: Task, idx: np.ndarray) -> bytes:
    """What :func:`score` depends on in a selection of ``task``: its sorted pool rows (repeats kept), or, on a
    ``"test accuracy"`` task, the rows in their order (the model is fitted on them in that order, and a fit's
    float sums depend on it). Equal keys, equal scores (at one seed): every number of :func:`score` is
    computed from the distinct rows, the repeat count or the mask, all seeded."""
    a = np.asarray(idx, dtype=np.int64)
    return (a if task.metric == "test accuracy" else np.sort(a)).tobytes()


def record(task: Task, method: Method, size: int | None, seed: int, run: Run, n: int | None = None,
           scores: dict[bytes, tuple[dict[str, Any], str]] | None = None,
           sets: dict[bytes, dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """Score the first ``n`` picks of ``run`` (all of them when ``n`` is None): the record of one table row.

    ``seconds``/``cpu_seconds`` are the run's; ``score_seconds`` the scoring's (metrics). ``scores``: the
    scores of this task instance so far, by :func:`score_key`, with the method that was scored; a selection
    scored before is not scored again (its record says ``score_of``: that method; ``score_seconds`` is then
    the look-up's), and a new one is added. ``sets``: as :func:`score`'s (on an accuracy task, an equal set
    in another order reuses the library's metrics and fits the model again)."""
    idx = run.ids if n is None else run.ids[:n]
    t0 = time.perf_counter()
    key = score_key(task, idx) if scores is not None else b""
    hit = scores.get(key) if scores is not None else None
    if hit is not None:
        scored, first = dict(hit[0]), hit[1]
        extra = {**extra, "score_of": first}
    else:
        scored = score(task, idx, seed, sets)
        if scores is not None:
            scores[key] = (scored, method.name)
    rec: dict[str, Any] = {"task": task.name, "method": method.name, "seed": seed, "requested": size,
                           **scored, "seconds": run.seconds, "cpu_seconds": run.cpu_seconds,
                           "score_seconds": time.perf_counter() - t0, "info": run.info, **extra}
    rec["task_number"] = rec.pop("task")
    logger.info("%s / %s / seed %d: size %d, %s %.3f, %.1f s", task.name, method.name, seed, rec["size"],
                task.metric, rec["task_number"], run.seconds)
    return rec


def run_one(task: Task, method: Method, size: int | None, seed: int) -> dict[str, Any]:
    """Run ``method`` on ``task`` at ``size`` (None: its own) and score it; the record of one run."""
    return record(task, method, size, seed, execute(task, method, size, seed))


BUDGET_NAMES = {"fixed": "fixed size", "own": "GIO's own size"}


#: Methods that are not GIO whose order does not depend on the size asked for, so the first N picks of a larger
#: run are the picks at N (tests/test_evaluate_baselines.py checks each on the code): ``herding`` (greedy MMD:
#: the size only decides when it stops; the bandwidth sample is drawn before, the same for every size),
#: ``facility`` (lazy greedy, cover restarts and the zero-gain fill in row order: none depends on the size) and
#: ``dsir`` (Gumbel top-k: one perturbed weight per pool row, drawn for the whole pool, sorted, cut). Not
#: ``random`` (numpy's draw without replacement of N rows is not the first N of a larger draw) nor ``knn``
#: (its neighbour depth grows with the size; it costs seconds).
PREFIX_BASELINES = ("herding", "facility", "dsir")


def prefix_consistent(task: Task, method: Method) -> bool:
    """Whether the first N picks of ``method`` forced to a larger size are its picks at size N.

    True for GIO on the rows themselves: its greedy never revisits a pick and a forced size only decides when
    it stops (tests/test_suite.py checks this on the code). Not for a quantised task (``clusters`` > 0): the
    row-level pass after the clusters depends on the size. True for the baselines of
    :data:`PREFIX_BASELINES`, on any task (they do not quantise)."""
    if method.kind == "gio":
        return task.clusters == 0
    return method.name in PREFIX_BASELINES


def same_data(a: Task, b: Task) -> bool:
    """Whether two task instances select from the same data: pool, target, held-out split, mask, labels and
    texts equal (what lets :func:`run_task` reuse one's records of the methods that are not GIO for the other)."""
    def eq(x: Any, y: Any) -> bool:
        if x is None or y is None:
            return x is None and y is None
        if isinstance(x, list):
            return x == y
        return bool(np.array_equal(x, y))
    return all(eq(getattr(a, f), getattr(b, f)) for f in (
        "pool", "target", "holdout", "mask", "train_labels", "test_x", "test_y", "holdout_labels", "pool_texts",
        "target_texts")) and a.metric == b.metric and a.fixed_size == b.fixed_size


def reusable(result: Mapping[str, Any]) -> dict[tuple[str, int | None], dict[str, Any]]:
    """The records of :func:`run_task`'s ``result`` that another task with the same data can take as they are:
    every method but the GIO ones (``full`` under size None, the others under their size)."""
    out: dict[tuple[str, int | None], dict[str, Any]] = {}
    for by in result["runs"].values():
        for name, rec in by.items():
            m = METHODS.get(name)
            if m is None or m.kind == "gio":
                continue
            req = rec.get("requested")
            out[(name, None if name == "full" or req is None else int(req))] = rec
    return out


#: The key of :func:`run_task`'s result holding the runs (picks) of the :data:`PREFIX_BASELINES` it ran, for a
#: task with the same data (``reuse``); not part of the recorded output (:func:`suite.report.run_unit` drops it).
PREFIX_RUNS = "_prefix_runs"


def run_task(task: Task, methods: Sequence[str], seed: int,
             reuse: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every method on one task instance at its fixed size and at GIO's own size.

    GIO (``gio``, the library's defaults) runs first at its own stop rule: the size it chooses is the second
    budget, at which every other method (GIO modes included, forced to that size) runs too. A GIO method runs
    once, to the larger budget, and the smaller budget's row scores the prefix of that run
    (:func:`prefix_consistent`; ``gio`` itself needs no second run when its own size is at least the fixed
    size); its ``seconds`` are then the one run's, shared by both rows (``prefix_of`` says of which size). A
    GIO mode whose forced settings equal an earlier GIO method's (:func:`forced_settings`) is not run: it is
    listed under ``same_as``. Methods not applicable to the task are listed with the reason. ``full`` runs
    once (its size is the pool's). ``phase_seconds`` sums the selection runs and the scoring.

    ``reuse``: the result of :func:`run_task` on another task with the same data and seed (:func:`same_data`;
    e.g. the same pool unquantised): a method that is not GIO is then not run again at a size that result has,
    its record is taken as it is (with ``shared_from``: that task's name; its ``seconds`` are that run's, and
    neither counts in this task's ``phase_seconds``). A method of :data:`PREFIX_BASELINES` that ran there to at
    least a size is not run again for it either: that run's first picks are scored here (``run_from``: that
    task's name; ``seconds`` that run's, not counted in ``phase_seconds``).

    Scores are computed once per distinct selection (:func:`score_key`): e.g. at a size equal to the pool
    every method selects every row, one score serves them all (the records say ``score_of``).
    """
    shared = reusable(reuse) if reuse is not None else {}
    shared_from = reuse["task"] if reuse is not None else None
    shared_runs: Mapping[str, Run] = reuse.get(PREFIX_RUNS, {}) if reuse is not None else {}
    prefix_runs: dict[str, Run] = {}
    scores: dict[bytes, tuple[dict[str, Any], str]] = {}
    sets: dict[bytes, dict[str, Any]] = {}

    def taken(name: str, n: int | None) -> dict[str, Any] | None:
        rec = shared.get((name, n))
        return None if rec is None else {**rec, "shared_from": shared_from}

    gio = METHODS["gio"]
    natural_run = execute(task, gio, None, seed)
    natural = record(task, gio, None, seed, natural_run, scores=scores, sets=sets)
    own = int(natural["size"])
    budgets: dict[str, int] = {"fixed": min(task.fixed_size, task.pool.shape[0])}
    if own > 0:
        budgets["own"] = own
    runs: dict[str, dict[str, dict[str, Any]]] = {b: {} for b in budgets}
    skipped: dict[str, str] = {}
    same_as: dict[str, str] = {}
    seen: list[tuple[dict[str, Any], str]] = []
    select_s, select_cpu = natural_run.seconds, natural_run.cpu_seconds
    order = ["gio", *(m for m in methods if m != "gio")]  # gio first: the modes are compared with it
    for name in order:
        m = METHODS[name]
        why = m.applicable(task)
        if why is not None:
            skipped[name] = why
            continue
        if m.params is not None:
            settings = forced_settings(task, m.params)
            dup = next((other for st, other in seen if st == settings), None)
            if dup is not None:
                same_as[name] = dup
                logger.info("%s: the same settings as %s at a forced size; not run again", name, dup)
                continue
            seen.append((settings, name))
        if name == "full":
            got = taken(name, None)
            if got is not None:
                for b in budgets:
                    runs[b][name] = got
                continue
            one = execute(task, m, None, seed)
            select_s, select_cpu = select_s + one.seconds, select_cpu + one.cpu_seconds
            rec = record(task, m, None, seed, one, scores=scores, sets=sets)
            for b in budgets:
                runs[b][name] = rec
            continue
        sizes: dict[str, int] = {}
        for b, n in budgets.items():
            why = m.applicable(task, n)
            if why is not None:
                skipped[f"{name} ({BUDGET_NAMES[b]})"] = why
            else:
                sizes[b] = n
        if not sizes:
            continue
        if prefix_consistent(task, m):
            longest = max(sizes.values())
            from_other: dict[str, Any] = {}
            if m.kind != "gio":
                got_all = {b: taken(name, n) for b, n in sizes.items()}
                for b, rec in got_all.items():
                    if rec is not None:
                        runs[b][name] = rec
                sizes = {b: n for b, n in sizes.items() if got_all[b] is None}
                if not sizes:
                    if name in shared_runs:
                        prefix_runs[name] = shared_runs[name]
                    continue
                longest = max(sizes.values())
            if name == "gio" and own >= longest:
                one = natural_run
            elif m.kind != "gio" and name in shared_runs and shared_runs[name].ids.size >= longest:
                one = shared_runs[name]
                from_other = {"run_from": shared_from}
            else:
                one = execute(task, m, longest, seed)
                select_s, select_cpu = select_s + one.seconds, select_cpu + one.cpu_seconds
            if m.kind != "gio":
                prefix_runs[name] = one
            for b, n in sizes.items():
                if name == "gio" and b == "own":
                    runs[b][name] = natural
                else:
                    runs[b][name] = record(task, m, n, seed, one, n, scores=scores, sets=sets,
                                           prefix_of=int(one.ids.size), **from_other)
            continue
        for b, n in sizes.items():
            if name == "gio" and b == "own":
                runs[b][name] = natural
                continue
            got = taken(name, n) if m.kind != "gio" else None
            if got is not None:
                runs[b][name] = got
                continue
            one = execute(task, m, n, seed)
            select_s, select_cpu = select_s + one.seconds, select_cpu + one.cpu_seconds
            runs[b][name] = record(task, m, n, seed, one, scores=scores, sets=sets)
    score_s = sum(r["score_seconds"] for r in {id(r): r for by in runs.values() for r in by.values()}.values()
                  if "shared_from" not in r)
    return {"task": task.name, "seed": seed, "metric": task.metric, "budgets": budgets, "own_size": own,
            "gio_stop_reason": natural["info"].get("stop_reason"), "runs": runs, "skipped": skipped,
            "same_as": same_as, "phase_seconds": {"select": select_s, "select_cpu": select_cpu, "score": score_s},
            "pool_rows": int(task.pool.shape[0]), "info": task.info, PREFIX_RUNS: prefix_runs}


def gio_curve(task: Task, seed: int, gio_kwargs: Mapping[str, Any], sizes: Sequence[int]) -> dict[str, Any]:
    """GIO's own curve: one run forced to ``max(sizes)`` rows, every prefix size scored.

    Also runs GIO with ``gio_kwargs`` at its own stop rule and records the size it chose, so an automatic
    size can be judged against the curve.
    """
    sz = sorted({int(s) for s in sizes if int(s) > 0})
    if not sz:
        raise ValueError("sizes: need at least one positive size")
    t0 = time.perf_counter()
    ids, info = run_gio(task, gio_kwargs, sz[-1], seed)
    seconds = time.perf_counter() - t0
    own, own_info = run_gio(task, gio_kwargs, None, seed)
    points = [{"size": s, **score(task, ids[:s], seed)} for s in sz if s <= ids.size]
    return {"task": task.name, "seed": seed, "metric": task.metric, "gio_kwargs": dict(gio_kwargs),
            "run_seconds": seconds, "own_size": int(own.size), "own_stop_reason": own_info["stop_reason"],
            "own_score": score(task, own, seed) if own.size else None, "points": points, "info": info}


# ---------------------------------------------------------------------------------------------------------
# aggregation
# ---------------------------------------------------------------------------------------------------------
def aggregate(results: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """``{task: {budget: {method: {column: {"mean", "std", "n"}}}}}`` over the seeds (std with ddof=0).

    Non-finite values are left out of the mean (``n`` counts the finite ones)."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for res in results:
        for b, by_method in res["runs"].items():
            for m, rec in by_method.items():
                groups.setdefault((res["task"], b, m), []).append(rec)
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for (t, b, m), recs in groups.items():
        cell: dict[str, Any] = {}
        keys = [c[0] for c in COLUMNS] + ["precision", "recall", "label_tv", "accuracy", "coverage"]
        for key in keys:
            col = "task_number" if key == "task" else key
            vals = np.array([float(r[col]) if r.get(col) is not None else math.nan for r in recs], dtype=float)
            if col not in recs[0]:
                continue
            fin = vals[np.isfinite(vals)]
            cell[key] = {"mean": float(fin.mean()) if fin.size else math.nan,
                         "std": float(fin.std()) if fin.size else math.nan, "n": int(fin.size)}
        out.setdefault(t, {}).setdefault(b, {})[m] = cell
    return out


def _mean(cell: Mapping[str, Any], key: str) -> float:
    v = cell.get(key)
    if isinstance(v, Mapping):
        return float(v["mean"])
    return math.nan if v is None else float(v)


def winners(by_method: Mapping[str, Mapping[str, Any]], columns: Sequence[tuple[str, str, bool]] = RANKED
            ) -> dict[str, list[str]]:
    """Per column, the methods with the best mean (ties: all of them); references and NaN never win."""
    out: dict[str, list[str]] = {}
    for key, _, higher in columns:
        vals = {m: _mean(c, key) for m, c in by_method.items() if m not in REFERENCES}
        vals = {m: v for m, v in vals.items() if math.isfinite(v)}
        if not vals:
            out[key] = []
            continue
        best = max(vals.values()) if higher else min(vals.values())
        out[key] = sorted(m for m, v in vals.items() if math.isclose(v, best, rel_tol=1e-12, abs_tol=1e-15))
    return out


def rank_values(values: Mapping[str, float], higher: bool) -> dict[str, float]:
    """Ranks 1 (best) .. n of the values, ties sharing their average rank, NaN ranked after every number."""
    items = list(values.items())
    def sort_key(kv: tuple[str, float]) -> tuple[int, float]:
        v = kv[1]
        if not math.isfinite(v):
            return (1, 0.0)
        return (0, -v if higher else v)
    order = sorted(items, key=sort_key)
    ranks: dict[str, float] = {}
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and sort_key(order[j + 1]) == sort_key(order[i]):
            j += 1
        for kk in range(i, j + 1):
            ranks[order[kk][0]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def mean_ranks(table: Mapping[str, Mapping[str, Mapping[str, Any]]],
               columns: Sequence[tuple[str, str, bool]] = RANKED) -> dict[str, dict[str, dict[str, float]]]:
    """Mean rank across tasks: ``table`` is ``{task: {method: cell}}`` at one budget (cells as in
    :func:`aggregate`, or plain numbers). Returns ``{column: {method: {"rank", "tasks"}}}``: in each task the
    methods present are ranked by their mean (references left out), and a method's ranks are averaged over
    the tasks it ran on. Columns a task does not have (all NaN, e.g. F1 on an accuracy task) are skipped."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for key, _, higher in columns:
        acc: dict[str, list[float]] = {}
        for by_method in table.values():
            vals = {m: _mean(c, key) for m, c in by_method.items() if m not in REFERENCES}
            if not any(math.isfinite(v) for v in vals.values()):
                continue
            for m, r in rank_values(vals, higher).items():
                acc.setdefault(m, []).append(r)
        out[key] = {m: {"rank": float(np.mean(r)), "tasks": len(r)} for m, r in sorted(acc.items())}
    return out
