"""What the commands share: exit codes, the GIO and run options, text and verbosity options, reading vectors,
the conflicting-options check and the progress bar.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..embed.models import DEFAULT_EMBED_BACKEND, EMBED_BACKENDS

if TYPE_CHECKING:
    from ..optimize import GIOParams as GIOParamsT

logger = logging.getLogger("gioselect.cli")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_DEGENERATE = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_PLAN_TOO_BIG = 3  # gioselect plan: the run would not fit the memory budget


def _max_iter(text: str) -> int | None:
    if text.lower() in ("none", "inf", "unlimited"):
        return None
    try:
        v = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'none', got {text!r}") from exc
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def _scale(text: str) -> float | str:
    if text in ("auto", "spread"):
        return text
    try:
        return float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected 'spread', 'auto' or a positive number, got {text!r}") from exc


def add_gio_options(p: argparse.ArgumentParser, *, max_iter_default: int | None = None) -> None:
    """The GIO core's options under CLI names (defaults are the library's)."""
    from ..optimize import OBJECTIVES, START_SETS, V_INITS, GIOParams
    from ..stopping import CRITERIA

    d = GIOParams()
    g = p.add_argument_group("GIO (the greedy gradient search)")
    g.add_argument("--objective", choices=list(OBJECTIVES), default=d.objective,
                   help="relaxed: the paper's gradient search (the options below); exact: greedy on the exact "
                        "k-NN KL estimate (default %(default)s)")
    g.add_argument("--k", type=int, default=d.k, help=f"neighbour rank of the k-NN KL estimator (default {d.k})")
    g.add_argument("--max-iter", type=_max_iter, default=max_iter_default, metavar="N|none",
                   help="most clusters (or rows, without quantisation) to pick; 'none' = no limit besides the "
                        "stopping criterion and --budget (default none)")
    g.add_argument("--stop", choices=list(CRITERIA), default=d.stop_criterion,
                   help="when to stop without --budget: auto (= f1) = the prefix of GIO's picks that maximises the "
                        "estimated F1 of retrieving the pool's target-like rows; "
                        "estimate = as many rows as the pool is estimated to hold drawn like the target "
                        "(docs/algorithm.md); the others watch the objective's trace. --budget N overrides any "
                        f"of them (default {d.stop_criterion})")
    g.add_argument("--min-difference", type=float, default=d.min_difference,
                   help="--stop min_difference: stop when the improvement is below this (default 0)")
    g.add_argument("--resets-allowed", action="store_true",
                   help="when the criterion fires, refill the candidates (duplicates possible) instead of stopping")
    g.add_argument("--max-resets", type=int, default=d.max_resets, help="resets allowed (default 2)")
    g.add_argument("--max-data-size", type=float, default=d.max_data_size,
                   help="--stop data_size: fraction of the candidates to stop past (default 1)")
    g.add_argument("--min-kl", type=float, default=d.min_kl, help="--stop min_kl: stop below this value (default 0)")
    g.add_argument("--max-sequential-increases", type=int, default=d.max_sequential_increases,
                   help="--stop sequential_increase_tolerance: increases in a row tolerated (default 3)")
    g.add_argument("--v-init", choices=list(V_INITS), default=d.v_init,
                   help=f"where each gradient search starts (default {d.v_init})")
    g.add_argument("--grad-desc-iter", type=int, default=d.grad_desc_iter,
                   help=f"gradient steps per pick, x3 on the first (default {d.grad_desc_iter})")
    g.add_argument("--lr", type=float, default=d.lr, help=f"gradient step size (default {d.lr})")
    g.add_argument("--scale-factor", type=_scale, default=d.scale_factor, metavar="spread|auto|X",
                   help="gradient scale; spread = target RMS radius/|grad(v0)|, auto = |v0|/|grad(v0)| "
                   f"(default {d.scale_factor})")
    g.add_argument("--random-restart-prob", type=float, default=d.random_restart_prob,
                   help="probability of a 3x longer gradient search at a pick (default 0)")
    g.add_argument("--random-init-pct", type=float, default=d.random_init_pct,
                   help="start from this fraction of the candidates instead of uniform points (default 0)")
    g.add_argument("--start", choices=list(START_SETS), default=d.start,
                   help="relaxed objective's start set: sample = random pool rows (any scale or offset), "
                        "box = uniform in the target's bounding box, "
                        "unit = the reference's uniform points in [low, high]^d (default %(default)s)")
    g.add_argument("--uniform-low", type=float, default=d.uniform_low, help="uniform start range low (default -1)")
    g.add_argument("--uniform-high", type=float, default=d.uniform_high, help="uniform start range high (default 1)")
    g.add_argument("--uniform-start-size", type=int, default=d.uniform_start_size,
                   help=f"number of uniform start points (default {d.uniform_start_size})")
    g.add_argument("--no-normalize", dest="normalize", action="store_false",
                   help="do not scale the uniform start points to unit norm")
    g.add_argument("--discard-nearest-for-xy", action="store_true",
                   help="drop each target point's nearest selected point from the estimate (target inside pool)")


def params_from_args(args: argparse.Namespace) -> GIOParamsT:
    """The :class:`~gioselect.optimize.GIOParams` the GIO options of ``args`` name, validated."""
    from ..optimize import GIOParams

    return GIOParams(
        k=args.k, max_iter=args.max_iter, stop_criterion=args.stop, min_difference=args.min_difference,
        resets_allowed=args.resets_allowed, max_resets=args.max_resets, max_data_size=args.max_data_size,
        min_kl=args.min_kl, max_sequential_increases=args.max_sequential_increases,
        random_init_pct=args.random_init_pct, random_restart_prob=args.random_restart_prob,
        scale_factor=args.scale_factor, v_init=args.v_init, grad_desc_iter=args.grad_desc_iter,
        normalize=args.normalize, lr=args.lr, uniform_low=args.uniform_low, uniform_high=args.uniform_high,
        uniform_start_size=args.uniform_start_size, discard_nearest_for_xy=args.discard_nearest_for_xy,
        objective=args.objective, start=args.start,
    )


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Add the options of a selection run (budget, quantisation, memory, seed, resume ...)."""
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0, help="seed for every random choice (default 0)")
    r.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its checkpoint in OUT.partial (same inputs and options)")
    r.add_argument("--force", action="store_true",
                   help="replace a previous gioselect result at --out (only that, and only once the new one is "
                        "complete; a folder holding anything else is refused)")
    r.add_argument("--memory-budget", default=None, metavar="SIZE",
                   help="memory for blocks and the K-means sample, e.g. 4G (default: a quarter of RAM)")
    r.add_argument("--threads", type=int, default=None, help="threads for faiss (default: all cores)")
    r.add_argument("--checkpoint-every", type=int, default=25, help="checkpoint every N picks (default 25)")
    r.add_argument("--checkpoint-seconds", type=float, default=30.0,
                   help="... or every this many seconds (default 30)")
    r.add_argument("--no-report", dest="report", action="store_false", help="skip report.html")
    r.add_argument("--engine", choices=["local", "spark"], default="local",
                   help="where pool-sized work runs: local (numpy + faiss, default) or spark (needs the 'spark' "
                        "extra; parquet/csv/jsonl inputs; selected rows written as a parquet directory)")
    r.add_argument("--spark-master", default=None, metavar="URL",
                   help="with --engine spark: local[2], spark://host:7077, yarn... (default: the active session "
                        "or local[*])")
    add_verbosity(r)


def add_pool_target_out(g: argparse._ArgumentGroup) -> None:
    """Add ``--pool``, ``--target`` and ``--out``."""
    g.add_argument("--pool", required=True, type=Path, help="the candidate pool file")
    g.add_argument("--target", required=True, type=Path, help="examples of what you want")
    g.add_argument("--out", required=True, type=Path, help="output directory (new or empty; see --force)")


def add_verbosity(g: argparse._ArgumentGroup) -> None:
    """Add ``--verbose`` and ``--quiet``."""
    v = g.add_mutually_exclusive_group()
    v.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary, errors only")
    v.add_argument("-v", "--verbose", action="store_true", help="log each phase")


def add_text_options(g: argparse._ArgumentGroup, *, target: bool = True) -> None:
    """Add the text-embedding options (``--text-field``, the model, its backend and cache)."""
    g.add_argument("--text-field", default=None,
                   help="the inputs are raw text in this column (jsonl/csv/parquet): embed them first (needs the "
                        "'text' extra); embeddings are cached on disk")
    if target:
        g.add_argument("--target-text-field", default=None,
                       help="text column of the target when it differs from --text-field")
    g.add_argument("--model", default=None,
                   help="sentence-transformers model: a local model directory (default: the packaged "
                        "all-MiniLM-L6-v2; nothing is downloaded)")
    g.add_argument("--embed-backend", choices=EMBED_BACKENDS, default=DEFAULT_EMBED_BACKEND,
                   help="how texts are embedded: 'onnx' (default; ONNX Runtime on the model exported locally once, "
                        "into $GIOSELECT_ONNX_DIR or ~/.cache/gioselect/onnx) or 'sentence-transformers' (its "
                        "encode); both give the same vectors to float32 rounding and share the embedding cache. "
                        "'onnx-int8': int8 weights in the feed-forward up-projections, about 2.5x faster than "
                        "sentence-transformers, vectors slightly different (cosine 0.99 or more on the demo) and "
                        "dependent on the texts embedded with them, with their own cache entries")
    g.add_argument("--embed-batch-size", type=int, default=64, help="texts per embedding batch (default 64)")
    g.add_argument("--no-embed-cache", dest="embed_cache", action="store_false",
                   help="do not read or write the embedding cache")
    g.add_argument("--cache-dir", type=Path, default=None,
                   help="embedding cache directory (default $GIOSELECT_CACHE_DIR or ~/.cache/gioselect/embeddings)")


def read_vectors(path: Path, embedding_field: str | None, name: str) -> Any:
    """All vectors of an embeddings file (the named or detected column), as one array."""
    from ..io import open_embeddings

    return open_embeddings(path, embedding_field, name=name).read_all()


@contextlib.contextmanager
def tqdm_progress(quiet: bool, desc: str, total: int | None, unit: str) -> Iterator[Callable[[int], None]]:
    """A tqdm progress bar on stderr (none with ``quiet``), yielding its ``update``."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, disable=True if quiet else None, file=sys.stderr,
               dynamic_ncols=True, leave=False)
    try:
        yield bar.update
    finally:
        bar.close()


#: GIO options that only the relaxed (gradient) objective uses.
_RELAXED_ONLY = ("lr", "v_init", "grad_desc_iter", "scale_factor", "random_restart_prob", "uniform_low",
                 "uniform_high", "uniform_start_size", "normalize", "random_init_pct")


def _explicit_options(argv: Sequence[str]) -> set[str]:
    """The destinations of the options given on the command line (not left at their defaults)."""
    from . import build_parser  # the whole parser; gioselect.cli imports this module

    parser = build_parser()
    stack: list[argparse.ArgumentParser] = [parser]
    while stack:
        p = stack.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
            elif action.dest not in ("help", "command"):
                action.default = argparse.SUPPRESS
    try:
        ns = parser.parse_args(list(argv))
    except SystemExit:  # pragma: no cover - the real parse succeeded
        return set()
    return set(vars(ns)) - {"command", "func"}


# options that only act on a quantised pool (--target-clusters quantises the target, which --clusters 0 allows,
# and then --kmeans-iter acts on it)
_QUANTISED_ONLY = ("kmeans_iter", "candidates", "refine", "refine_over", "refine_whole")


def refuse_conflicts(args: argparse.Namespace) -> None:
    """Options that contradict each other are refused before any work."""
    from ..errors import InvalidParameterError

    given = _explicit_options(args.argv)
    if getattr(args, "objective", None) == "exact":
        bad = [f"--{d.replace('_', '-')}" for d in _RELAXED_ONLY if d in given]
        if bad:
            shown = ", ".join("--no-normalize" if b == "--normalize" else b for b in bad)
            raise InvalidParameterError(
                f"--objective exact has no gradient search, so {shown} would do nothing; drop "
                f"{'it' if len(bad) == 1 else 'them'} or use --objective relaxed"
            )
    if hasattr(args, "exclude") and args.exclude is None:
        bad = [f"--{d.replace('_', '-')}" for d in ("exclude_threshold", "exclude_repel") if d in given]
        if bad:
            raise InvalidParameterError(
                f"{' and '.join(bad)} without --exclude would do nothing; pass --exclude FILE (the set to keep "
                f"out) or drop {'it' if len(bad) == 1 else 'them'}"
            )
    if "clusters" in given and str(getattr(args, "clusters", "")) == "0":
        target_kmeans = bool(getattr(args, "target_clusters", None))  # K-means on the target uses --kmeans-iter
        bad = [f"--{d.replace('_', '-')}" for d in _QUANTISED_ONLY
               if d in given and not (d == "kmeans_iter" and target_kmeans)]
        if bad:
            raise InvalidParameterError(
                f"--clusters 0 selects from the rows themselves (no K-means), so {', '.join(bad)} would do "
                f"nothing; drop {'it' if len(bad) == 1 else 'them'}, or pass --clusters K (or auto) to quantise"
            )
    for text, emb in (("text_field", "embedding_field"), ("target_text_field", "target_embedding_field")):
        if getattr(args, text, None) is not None and getattr(args, emb, None) is not None:
            raise InvalidParameterError(
                f"--{text.replace('_', '-')} {getattr(args, text)!r} with --{emb.replace('_', '-')} "
                f"{getattr(args, emb)!r}: an input is either text to embed or vectors, not both; drop one of them"
            )
