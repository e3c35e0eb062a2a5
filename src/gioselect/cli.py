"""Command-line interface: ``gioselect <command> ...``. The only module that prints or draws progress bars.

Exit codes: 0 success, 2 bad input or usage (the message names the path or parameter), 1 unexpected failure (the
traceback with ``-v``), 3 a degenerate run (``select`` wrote a result but selected nothing), 130 interrupted
(Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import json
import logging
import shlex
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import GIOError, MissingDependencyError

if TYPE_CHECKING:
    from .optimize import GIOParams as GIOParamsT
    from .optimize import PickEvent

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_DEGENERATE = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
#: OS errors that a user's paths or machine cause (a read-only or full disk, a file where a folder should be...):
#: exit 2 with the path, not 1.
_USER_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
                          errno.EISDIR, errno.ELOOP, errno.ENAMETOOLONG, errno.ENOENT, errno.EEXIST})

logger = logging.getLogger("gioselect.cli")


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on usage errors already; keep its behaviour, with our program name."""


def _add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="run one of the paper's consistency checks",
        description=(
            "Run one of the paper's consistency checks and print PASS/FAIL with the numbers (exit 0 on PASS, 1 on "
            "FAIL). 'self': pool and target from one distribution; GIO must pick at least --min-share of the pool "
            "and the objective must fall. With --target only, the target file is split in two halves (pool and "
            "target). 'negative': a pool far from the target; GIO must pick at most --max-share. 'quantization': "
            "KL(target || K-means centroids of the target) must be at most --max-kl. With no files, the reference "
            "README's 2-D set-ups are used."
        ),
    )
    p.add_argument("which", choices=["self", "negative", "quantization"], help="which check to run")
    p.add_argument("--pool", type=Path, default=None, help="pool file (self, negative)")
    p.add_argument("--target", type=Path, default=None, help="target file")
    p.add_argument("--embedding-field", default=None, help="vector column of parquet/jsonl/csv files (detected)")
    p.add_argument("--clusters", type=int, default=None,
                   help="quantization: K-means clusters (default: a tenth of the target's rows, at most 1500)")
    p.add_argument("--min-share", type=float, default=0.5, help="self: least share of the pool picked (0.5)")
    p.add_argument("--max-share", type=float, default=0.05, help="negative: most share of the pool picked (0.05)")
    p.add_argument("--max-kl", type=float, default=1.0, help="quantization: largest KL allowed (1.0)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the synthetic data and GIO (default 0)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of one line")
    _add_gio_options(p, max_iter_default=None)
    _add_verbosity(p.add_argument_group("run"))
    p.set_defaults(func=_cmd_check)


def _read_vectors(path: Path, embedding_field: str | None, name: str) -> Any:
    from .io import open_embeddings

    return open_embeddings(path, embedding_field, name=name).read_all()


def _cmd_check(args: argparse.Namespace) -> int:
    import numpy as np

    from .checks import CheckResult, negative_consistency, readme_gaussians, self_consistency
    from .errors import InvalidParameterError
    from .quantize import quantization_consistency

    params = _gio_params(args).__dict__ if (args.pool or args.target) else {}
    gio = {k: v for k, v in params.items() if not k.startswith("reference_")}
    res: CheckResult
    if args.which == "quantization":
        if args.target is not None:
            target = _read_vectors(args.target, args.embedding_field, "target")
        else:
            target = readme_gaussians(3000, seed=args.seed)
        k = args.clusters if args.clusters is not None else max(2, min(1500, target.shape[0] // 10))
        q = quantization_consistency(target, k, seed=args.seed, max_kl=args.max_kl)
        res = CheckResult("quantization-consistency", q.passed, q.message, dict(q.metrics))
    elif args.which == "self":
        pool = target = None
        if args.target is not None:
            target = _read_vectors(args.target, args.embedding_field, "target")
            if args.pool is not None:
                pool = _read_vectors(args.pool, args.embedding_field, "pool")
            else:
                perm = np.random.default_rng(args.seed).permutation(target.shape[0])
                half = target.shape[0] // 2
                pool, target = target[perm[:half]], target[perm[half:]]
        elif args.pool is not None:
            raise InvalidParameterError("check self: give --target (and optionally --pool)")
        res = self_consistency(pool, target, min_share=args.min_share, seed=args.seed, **gio)
    else:
        if (args.pool is None) != (args.target is None):
            raise InvalidParameterError("check negative: give both --pool and --target, or neither")
        pool = target = None
        if args.pool is not None:
            pool = _read_vectors(args.pool, args.embedding_field, "pool")
            target = _read_vectors(args.target, args.embedding_field, "target")
        res = negative_consistency(pool, target, max_share=args.max_share, seed=args.seed, **gio)
    if args.json:  # asked for explicitly: printed with -q too
        print(json.dumps({"name": res.name, "passed": res.passed, "message": res.message,
                          "metrics": res.metrics}, indent=2))
    elif not args.quiet:  # -q: the exit code alone says PASS (0) or FAIL (1)
        print(res)
    return EXIT_OK if res.passed else EXIT_FAILURE


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
    if text == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive number, got {text!r}") from exc


def _add_gio_options(p: argparse.ArgumentParser, *, max_iter_default: int | None = None) -> None:
    """The GIO core's options under CLI names (defaults are the library's)."""
    from .optimize import OBJECTIVES, START_SETS, V_INITS, GIOParams
    from .stopping import CRITERIA

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
                   help="when to stop without --budget: auto = as many rows as the pool is estimated to hold "
                        "drawn like the target (positive-unlabeled estimate, docs/algorithm.md); the others watch "
                        f"the objective's trace. --budget N overrides any of them (default {d.stop_criterion})")
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
    g.add_argument("--scale-factor", type=_scale, default=d.scale_factor, metavar="auto|X",
                   help="gradient scale; auto = |v0|/|grad(v0)| (default auto)")
    g.add_argument("--random-restart-prob", type=float, default=d.random_restart_prob,
                   help="probability of a 3x longer gradient search at a pick (default 0)")
    g.add_argument("--random-init-pct", type=float, default=d.random_init_pct,
                   help="start from this fraction of the candidates instead of uniform points (default 0)")
    g.add_argument("--start", choices=list(START_SETS), default=d.start,
                   help="relaxed objective's start set: box = uniform in the target's bounding box (any scale), "
                        "unit = the reference's uniform points in [low, high]^d (default %(default)s)")
    g.add_argument("--uniform-low", type=float, default=d.uniform_low, help="uniform start range low (default -1)")
    g.add_argument("--uniform-high", type=float, default=d.uniform_high, help="uniform start range high (default 1)")
    g.add_argument("--uniform-start-size", type=int, default=d.uniform_start_size,
                   help=f"number of uniform start points (default {d.uniform_start_size})")
    g.add_argument("--no-normalize", dest="normalize", action="store_false",
                   help="do not scale the uniform start points to unit norm")
    g.add_argument("--discard-nearest-for-xy", action="store_true",
                   help="drop each target point's nearest selected point from the estimate (target inside pool)")


def _gio_params(args: argparse.Namespace) -> GIOParamsT:
    from .optimize import GIOParams

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


def _add_run_options(p: argparse.ArgumentParser) -> None:
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
    _add_verbosity(r)


def _add_pool_target_out(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--pool", required=True, type=Path, help="the candidate pool file")
    g.add_argument("--target", required=True, type=Path, help="examples of what you want")
    g.add_argument("--out", required=True, type=Path, help="output directory (new or empty; see --force)")


def _add_verbosity(g: argparse._ArgumentGroup) -> None:
    v = g.add_mutually_exclusive_group()
    v.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary, errors only")
    v.add_argument("-v", "--verbose", action="store_true", help="log each phase")


def _add_text_options(g: argparse._ArgumentGroup, *, target: bool = True) -> None:
    g.add_argument("--text-field", default=None,
                   help="the inputs are raw text in this column (jsonl/csv/parquet): embed them first (needs the "
                        "'text' extra); embeddings are cached on disk")
    if target:
        g.add_argument("--target-text-field", default=None,
                       help="text column of the target when it differs from --text-field")
    g.add_argument("--model", default=None,
                   help="sentence-transformers model: a local model directory (default: the packaged "
                        "all-MiniLM-L6-v2; nothing is downloaded)")
    g.add_argument("--embed-backend", choices=("onnx", "sentence-transformers"), default="onnx",
                   help="how texts are embedded: 'onnx' (default; ONNX Runtime on the model exported locally once, "
                        "into $GIOSELECT_ONNX_DIR or ~/.cache/gioselect/onnx) or 'sentence-transformers' (its "
                        "encode); both give the same vectors to float32 rounding and share the embedding cache")
    g.add_argument("--embed-batch-size", type=int, default=64, help="texts per embedding batch (default 64)")
    g.add_argument("--no-embed-cache", dest="embed_cache", action="store_false",
                   help="do not read or write the embedding cache")
    g.add_argument("--cache-dir", type=Path, default=None,
                   help="embedding cache directory (default $GIOSELECT_CACHE_DIR or ~/.cache/gioselect/embeddings)")


def _add_select(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "select",
        help="select the pool rows whose distribution is closest to the target",
        description=(
            "Select the rows of POOL whose distribution is closest to TARGET with GIO, quantising the pool with "
            "K-means first (--clusters). Inputs: .npy (2-D float), .parquet (an embedding column), .csv/.tsv "
            "(grad-info-opt's layout: a '[0.1, ...]' vector column) or .jsonl. Writes into OUT: selected_ids.npy "
            "(0-based pool rows in selection order), selected_rows.<ext> (the rows, all columns, plus gio_row_id "
            "and gio_rank), kl_trace.csv, manifest.json (the run record) and report.html."
        ),
    )
    io_ = p.add_argument_group("inputs and outputs")
    _add_pool_target_out(io_)
    io_.add_argument("--embedding-field", default=None,
                     help="embedding column of parquet/jsonl/csv inputs (default: detected)")
    io_.add_argument("--target-embedding-field", default=None,
                     help="embedding column of the target, when it differs from the pool's")
    _add_text_options(io_)
    q = p.add_argument_group("quantisation (K-means, then explode chosen clusters to their rows)")
    q.add_argument("--clusters", type=_clusters_arg, default="auto",
                   help="pool clusters K; 0 = no quantisation, GIO on the rows themselves; 'auto' (default): no "
                        "quantisation up to 100,000 pool rows, 1500 clusters above (the target: as it is up to "
                        "10,000 rows, 1500 clusters above); the decision is printed and kept in the manifest")
    q.add_argument("--target-clusters", type=int, default=None,
                   help="target clusters when the target is larger (default: same as --clusters; 0 = never)")
    q.add_argument("--kmeans-iter", type=int, default=20, help="K-means iterations (default 20)")
    q.add_argument("--candidates", choices=("auto", "centroid", "renormalized", "medoid"), default="auto",
                   help="what stands for a cluster in GIO (auto: the medoid, the member row nearest its centroid)")
    q.add_argument("--refine", choices=("knn", "share", "relaxed", "none"), default="knn",
                   help="the row-level pass over the chosen clusters when the size is known (knn, default: their "
                        "rows nearest the target; none: explode the chosen clusters whole, as in the paper)")
    q.add_argument("--refine-over", type=float, default=1.5,
                   help="the pass ranks the rows of clusters worth this many times the size (1.5)")
    b = p.add_argument_group("budget")
    b.add_argument("--budget", default=None, metavar="N|P%",
                   help="stop before the selection would exceed N rows or P%% of the pool")
    b.add_argument("--budget-exact", action="store_true",
                   help="fill the budget exactly, cutting the last cluster to a seeded random part of its rows")
    _add_curation_options(p)
    _add_gio_options(p)
    _add_run_options(p)
    p.set_defaults(func=_cmd_select)


def _add_curation_options(p: argparse.ArgumentParser) -> None:
    c = p.add_argument_group("exclusion set and report")
    c.add_argument("--exclude", type=Path, default=None, metavar="FILE",
                   help="an evaluation set to keep out: pool rows at cosine >= --exclude-threshold to one of its rows "
                        "are never selected (same vector column, or --text-field embedded with the same model); the "
                        "manifest lists them")
    c.add_argument("--exclude-threshold", type=float, default=0.95,
                   help="cosine similarity from which a pool row is a near-duplicate (default 0.95)")
    c.add_argument("--exclude-repel", type=float, default=0.0, metavar="W",
                   help="also push the selection away from --exclude: minimise KL(target||S) - W KL(exclude||S) "
                        "(default 0: off)")
    c.add_argument("--report-field", action="append", default=[], metavar="COLUMN",
                   help="break the selection down by this pool column in report.html (repeatable)")


@contextlib.contextmanager
def _tqdm_progress(quiet: bool, desc: str, total: int | None, unit: str) -> Iterator[Callable[[int], None]]:
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


def _refuse_conflicts(args: argparse.Namespace) -> None:
    """Options that contradict each other are refused before any work."""
    from .errors import InvalidParameterError

    given = _explicit_options(args.argv)
    if getattr(args, "objective", None) == "exact":
        bad = [f"--{d.replace('_', '-')}" for d in _RELAXED_ONLY if d in given]
        if bad:
            shown = ", ".join("--no-normalize" if b == "--normalize" else b for b in bad)
            raise InvalidParameterError(
                f"--objective exact has no gradient search, so {shown} would do nothing; drop "
                f"{'it' if len(bad) == 1 else 'them'} or use --objective relaxed"
            )
    for text, emb in (("text_field", "embedding_field"), ("target_text_field", "target_embedding_field")):
        if getattr(args, text, None) is not None and getattr(args, emb, None) is not None:
            raise InvalidParameterError(
                f"--{text.replace('_', '-')} {getattr(args, text)!r} with --{emb.replace('_', '-')} "
                f"{getattr(args, emb)!r}: an input is either text to embed or vectors, not both; drop one of them"
            )


def _resume_command(args: argparse.Namespace) -> str:
    cmd = list(args.command_line or ["gioselect", *args.argv])
    if "--resume" not in cmd:
        cmd.append("--resume")
    return shlex.join(cmd)


def _clusters_arg(text: str) -> int | str:
    """``--clusters``: ``auto`` or an integer K >= 0."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 0, got {text!r}") from None
    if k < 0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 0, got {k}")
    return k


def _cmd_select(args: argparse.Namespace) -> int:
    if args.engine == "spark":
        from .errors import InvalidParameterError
        from .io.folder import SAVE_TO_DISK, folder_kind, is_folder_table

        if args.exclude is not None or args.report_field:
            raise InvalidParameterError("--exclude and --report-field need --engine local (the default)")
        for path, opt in ((args.pool, "--pool"), (args.target, "--target")):
            if is_folder_table(path) and folder_kind(path) == SAVE_TO_DISK:
                raise InvalidParameterError(
                    f"{opt} {path} is a datasets save_to_disk folder (Arrow stream files), which the spark engine "
                    "cannot read; use --engine local, or write it as parquet shards (Dataset.to_parquet)")
    from .pipeline import SelectConfig, default_memory_budget, parse_memory, run_select
    from .report import render_summary_text

    _refuse_conflicts(args)

    cfg = SelectConfig(
        pool=args.pool, target=args.target, out=args.out, params=_gio_params(args),
        embedding_field=args.embedding_field, target_embedding_field=args.target_embedding_field,
        clusters=args.clusters, target_clusters=args.target_clusters, kmeans_iter=args.kmeans_iter,
        candidates=args.candidates, refine=args.refine, refine_over=args.refine_over,
        budget=args.budget, budget_exact=args.budget_exact, seed=args.seed,
        memory_budget=parse_memory(args.memory_budget) if args.memory_budget else default_memory_budget(),
        checkpoint_every=args.checkpoint_every, checkpoint_seconds=args.checkpoint_seconds, threads=args.threads,
        report=args.report, text_field=args.text_field, target_text_field=args.target_text_field,
        model=args.model, embed_batch_size=args.embed_batch_size, embed_cache=args.embed_cache,
        cache_dir=args.cache_dir, embed_backend=args.embed_backend,
        exclude=args.exclude, exclude_threshold=args.exclude_threshold, report_fields=tuple(args.report_field),
        exclude_repel=args.exclude_repel,
    )
    command = ["gioselect", *sys.argv[1:]] if args.command_line is None else args.command_line
    progress = functools.partial(_tqdm_progress, args.quiet)
    if args.engine == "spark":
        from .spark import run_select_spark

        manifest = run_select_spark(cfg, spark_master=args.spark_master, resume=args.resume, force=args.force,
                                    progress=progress, command=command, on_pick=getattr(args, "on_pick", None))
    else:
        if args.spark_master is not None:
            from .errors import InvalidParameterError

            raise InvalidParameterError("--spark-master goes with --engine spark")
        manifest = run_select(cfg, resume=args.resume, force=args.force, progress=progress, command=command,
                              on_pick=getattr(args, "on_pick", None))
    if not args.quiet:
        print(render_summary_text(manifest))
        print(f"outputs in {args.out}")
    else:  # the library logged them; -q hides warnings, but a degenerate result is never silent
        for w in manifest.get("warnings") or []:
            print(f"gioselect: warning: {w}", file=sys.stderr)
    counts = manifest.get("counts", {})
    selected, pool_rows = int(counts.get("selected_rows", 1)), int(counts.get("pool_rows", 0))
    if selected == 0:
        print(f"gioselect: nothing was selected; the result is in {args.out} (exit {EXIT_DEGENERATE})",
              file=sys.stderr)
        return EXIT_DEGENERATE
    params = manifest.get("parameters", {})
    asked_all = params.get("budget") is not None and params.get("budget_rows") == pool_rows
    if pool_rows and selected >= pool_rows and not asked_all:
        print(f"gioselect: the whole pool ({pool_rows} rows) was selected, which is no selection; the result is in "
              f"{args.out} (exit {EXIT_DEGENERATE}); pass --budget {pool_rows} if that is what you want",
              file=sys.stderr)
        return EXIT_DEGENERATE
    return EXIT_OK


def _add_embed(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed",
        help="turn text or images into embedding vectors (.npy or .parquet)",
        description=(
            "Embed a text column (jsonl/csv/parquet; --text-field) with a local sentence-transformers model (default: "
            "the packaged all-MiniLM-L6-v2, normalised float32 vectors; cached on disk by model and content), or "
            "images (an IDX file such as Fashion-MNIST's, a .npy of shape (N, H, W[, C]), or a folder of PNG/JPEG "
            "files) as flattened pixels scaled to [0, 1], optionally reduced by PCA (--pca-dim). Writes .npy, or "
            ".parquet with an 'embedding' column, a 'row_id' column and (for text) the text column."
        ),
    )
    p.add_argument("--input", required=True, type=Path, help="text file, IDX/.npy images or an image folder")
    p.add_argument("--out", required=True, type=Path, help="output .npy or .parquet")
    g = p.add_argument_group("text")
    _add_text_options(g, target=False)
    im = p.add_argument_group("images (used when --text-field is not given)")
    im.add_argument("--pca-dim", type=int, default=None, help="reduce pixels to this many PCA components")
    im.add_argument("--seed", type=int, default=0, help="seed of the PCA fitting sample (default 0)")
    r = p.add_argument_group("run")
    r.add_argument("--threads", type=int, default=None,
                   help="embedding threads (torch or ONNX Runtime; default: all cores)")
    r.add_argument("--force", action="store_true",
                   help="replace an earlier output of gioselect embed (a file it could have written; nothing else)")
    _add_verbosity(r)
    p.set_defaults(func=_cmd_embed)


def _cmd_embed(args: argparse.Namespace) -> int:
    from .embed import EmbeddingCache, TextEmbedder, embed_texts, image_embeddings, load_images
    from .errors import InvalidParameterError
    from .io import detect_format, read_texts, write_embeddings
    from .outdir import check_output_file
    from .validation import check_input_path

    out: Path = args.out
    if out.suffix.lower() not in (".npy", ".parquet", ".pq") or detect_format(out) not in ("npy", "parquet"):
        raise InvalidParameterError(f"--out {out}: must end in .npy or .parquet")
    check_input_path(args.input, "--input", allow_dir=True)
    check_output_file(out, [("--input", args.input), ("model", args.model)], force=args.force)
    if args.text_field is None and args.input.is_file() and args.input.suffix.lower() in (
            ".jsonl", ".json", ".csv", ".tsv", ".parquet", ".pq"):
        raise InvalidParameterError(
            f"--input {args.input} is a table ({args.input.suffix.lower()[1:]}): name its text column with "
            "--text-field (images come as IDX, .npy or a folder of PNG/JPEG files)"
        )
    extra: dict[str, list[object]] = {}
    if args.text_field is not None:
        texts = read_texts(args.input, args.text_field)
        cache = EmbeddingCache(args.cache_dir) if args.embed_cache else False
        with _tqdm_progress(args.quiet, "embedding", len(texts), "text") as upd:
            emb, hit = embed_texts(texts, args.model, cache=cache, batch_size=args.embed_batch_size,
                                   threads=args.threads, progress=upd, backend=args.embed_backend)
        what = f"{len(texts)} texts with {TextEmbedder(args.model).model_id}"
        how = "reused from the cache (no model run)" if hit else "computed"
        extra[args.text_field] = list(texts)
    else:
        if args.pca_dim is not None and args.pca_dim < 1:
            raise InvalidParameterError(f"--pca-dim must be >= 1, got {args.pca_dim}")
        images = load_images(args.input)
        emb = image_embeddings(images, pca_dim=args.pca_dim, seed=args.seed)
        what = f"{emb.shape[0]} images"
        how = f"as {'PCA-' + str(args.pca_dim) + ' of ' if args.pca_dim else ''}scaled pixels"
    if out.suffix.lower() != ".npy":
        extra = {"row_id": list(range(emb.shape[0])), **extra}
        write_embeddings(out, emb, extra_columns=extra)
    else:
        write_embeddings(out, emb)
    if not args.quiet:
        print(f"embedded {what}: {how}; {emb.shape[0]} x {emb.shape[1]} float32 written to {out}")
    return EXIT_OK


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    from .evaluate import METHODS

    p = sub.add_parser(
        "evaluate",
        help="compare GIO with random, nearest-neighbour retrieval, kernel herding, facility location, DSIR and "
             "the full pool",
        description=(
            "Split the target into a part the methods select with and a held-out part the metrics use; select "
            "with each method at equal budgets (default: GIO's own selection size); print a table and write "
            "evaluation.json and evaluation.png into OUT. Metrics, all against the held-out target: k-NN KL both "
            "ways, unbiased MMD^2 and energy distance, coverage, duplicate rate and, with --labels-field, the "
            "accuracy of a classifier trained on the selection and the label total variation. An oracle line "
            "(random subsets of the selecting part of the target) gives each number a scale. The inputs are read "
            "into memory. The method dsir (hashed n-gram importance resampling) selects by the raw text, so it "
            "needs text inputs (--text-field); it is refused on embedding-only inputs."
        ),
    )
    io_ = p.add_argument_group("inputs and outputs")
    _add_pool_target_out(io_)
    io_.add_argument("--embedding-field", default=None, help="vector column (detected)")
    io_.add_argument("--labels-field", default=None,
                     help="label column in both files: adds the downstream accuracy and label proportions")
    _add_text_options(io_)
    e = p.add_argument_group("evaluation")
    e.add_argument("--methods", default="gio,random,knn,herding,full",
                   help=f"comma-separated, from {','.join(METHODS)} (default: gio,random,knn,herding,full); "
                        "dsir needs --text-field (it resamples by the raw text)")
    e.add_argument("--budget", default=None, metavar="N[,N...]",
                   help="selection size(s) to compare at (default: the size GIO selects by itself); GIO keeps "
                        "its stopping rule, so sizes beyond what it selects are left out for GIO")
    e.add_argument("--holdout", type=float, default=0.5, help="share of the target held out for measuring (0.5)")
    e.add_argument("--random-seeds", type=int, default=5, help="seeds of the random baseline (5)")
    e.add_argument("--clusters", type=int, default=0, help="GIO's pool clusters (default 0: none)")
    _add_gio_options(p)
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0, help="seed of the split, GIO and the baselines (0)")
    r.add_argument("--force", action="store_true",
                   help="replace a previous gioselect evaluation at --out (evaluation.json and .png, nothing else)")
    _add_verbosity(r)
    p.set_defaults(func=_cmd_evaluate)


def _load_input(path: Path, args: argparse.Namespace, which: str) -> Any:
    """Vectors of an input file, embedding its text column first when --text-field is given."""
    from .embed import EmbeddingCache, embed_texts
    from .io import detect_format, read_texts

    field = args.text_field if which == "pool" else (args.target_text_field or args.text_field)
    if field is None or detect_format(path) == "npy":
        return _read_vectors(path, args.embedding_field, which)
    texts = read_texts(path, field, name=which)
    cache = EmbeddingCache(args.cache_dir) if args.embed_cache else False
    with _tqdm_progress(args.quiet, f"embedding {which}", len(texts), "text") as upd:
        emb, _ = embed_texts(texts, args.model, cache=cache, batch_size=args.embed_batch_size, progress=upd,
                             backend=args.embed_backend)
    return emb


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .errors import InvalidParameterError
    from .evaluate import METHODS, compare_methods, plot_comparison
    from .io import atomic_path, detect_format, read_column, read_texts
    from .io.folder import is_folder_table
    from .outdir import check_output_dir
    from .pipeline import parse_budget
    from .validation import check_input_path

    out: Path = args.out
    for p, what in ((args.pool, "pool"), (args.target, "target")):
        check_input_path(p, what, allow_dir=is_folder_table(p))
    _refuse_conflicts(args)
    check_output_dir(out, [("pool", args.pool), ("target", args.target)], force=args.force, kind="evaluate")
    if args.random_seeds < 1:
        raise InvalidParameterError(f"--random-seeds must be >= 1, got {args.random_seeds}")
    if not 0 < args.holdout < 1:
        raise InvalidParameterError(f"--holdout must be in (0, 1), got {args.holdout}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InvalidParameterError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    pool_texts = target_texts = None
    if "dsir" in methods:
        # dsir resamples by the raw text: refuse embedding-only inputs before any embedding work.
        tfield = args.target_text_field or args.text_field
        if args.text_field is None:
            raise InvalidParameterError(
                "--methods dsir: needs the raw text of the pool and the target (hashed n-gram importance "
                "resampling does not work on embeddings); give the text column with --text-field (and "
                "--target-text-field if the target's differs), or leave dsir out of --methods")
        for path, which in ((args.pool, "--pool"), (args.target, "--target")):
            if detect_format(path) == "npy":
                raise InvalidParameterError(
                    f"--methods dsir: {which} {path} is a .npy file of embeddings with no text; dsir needs a "
                    "jsonl/csv/parquet file with the text column given by --text-field")
        pool_texts = read_texts(args.pool, args.text_field, name="pool")
        target_texts = read_texts(args.target, tfield, name="target")
    sizes = None
    budgets = [x.strip() for x in args.budget.split(",")] if args.budget else []
    if budgets:
        for x in budgets:
            if not x.endswith("%"):
                try:
                    int(x)
                except ValueError as exc:
                    raise InvalidParameterError(
                        f"--budget: expected whole numbers or percentages like 5% separated by commas, got "
                        f"{args.budget!r}") from exc
    pool = _load_input(args.pool, args, "pool")
    if budgets:  # N or P% of the pool, as for select
        sizes = [int(parse_budget(x, int(pool.shape[0])) or 0) for x in budgets]
    target = _load_input(args.target, args, "target")
    plab = tlab = None
    if args.labels_field:
        plab = read_column(args.pool, args.labels_field, name="pool")
        tlab = read_column(args.target, args.labels_field, name="target")
    params = {k: v for k, v in _gio_params(args).__dict__.items() if not k.startswith("reference_")}
    res = compare_methods(pool, target, methods=methods, sizes=sizes, holdout=args.holdout, gio_params=params,
                          clusters=args.clusters, random_seeds=args.random_seeds, pool_labels=plab,
                          target_labels=tlab, seed=args.seed, pool_texts=pool_texts, target_texts=target_texts,
                          progress=None if args.quiet else (lambda m: print(f"... {m}", file=sys.stderr)))
    res["inputs"] = {"pool": str(args.pool), "target": str(args.target), "labels_field": args.labels_field}
    res["gio_params"] = params
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "evaluation.json") as tmp:
        tmp.write_text(json.dumps(res, indent=2, default=_jsonable) + "\n")
    with atomic_path(out / "evaluation.png") as tmp:
        plot_comparison(res, tmp)
    if not args.quiet:
        print(_format_table(res))
        print(f"written: {out / 'evaluation.json'}, {out / 'evaluation.png'}")
    return EXIT_OK


def _jsonable(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _format_table(res: dict[str, Any]) -> str:
    from .evaluate import COMPARE_METRICS, metric_header

    cols = [m for m in COMPARE_METRICS if any(m in r for rows in res["methods"].values() for r in rows)]
    head = ["method", "size", *(metric_header(m) for m in cols)]
    lines = []
    for name, rows in res["methods"].items():
        for r in rows:
            cells = [name, str(r["size"])]
            for m in cols:
                v = r.get(m)
                sd = r.get(f"{m}_std")
                cells.append("n/a" if v is None else (f"{v:.4g}" + (f" ±{sd:.2g}" if sd is not None else "")))
            lines.append(cells)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    split = res["split"]
    title = (f"target split: {split['target_select']} rows select, {split['target_holdout']} held out (metrics); "
             f"GIO: {res['gio'].get('selected', 'n/a')} rows, stop {res['gio'].get('stop_reason', 'n/a')}")
    legend = "↓ lower is better, ↑ higher is better"
    return "\n".join([title, fmt.format(*head), *(fmt.format(*line) for line in lines), legend])


EXIT_PLAN_TOO_BIG = 3  # gioselect plan: the run would not fit the memory budget


def _add_plan(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="estimate a select run's phases, time and peak memory on this machine, before running it",
        description=(
            "Print the phases of 'gioselect select' for these inputs and options, with the estimated time (from "
            "a short calibration on this machine) and peak memory of each, and whether the run fits the memory "
            "budget. Exit 0 when it fits, 3 when it does not, 2 on bad input. Takes select's options."
        ),
    )
    g = p.add_argument_group("inputs")
    g.add_argument("--pool", required=True, type=Path, help="the candidate pool file")
    g.add_argument("--target", required=True, type=Path, help="examples of what you want")
    g.add_argument("--embedding-field", default=None, help="embedding column (default: detected)")
    g.add_argument("--target-embedding-field", default=None, help="embedding column of the target")
    g.add_argument("--text-field", default=None, help="the inputs are text in this column (rows counted, 384 dims)")
    g.add_argument("--clusters", type=int, default=1500, help="pool clusters K; 0 = no quantisation (1500)")
    g.add_argument("--target-clusters", type=int, default=None, help="target clusters (default: --clusters)")
    g.add_argument("--kmeans-iter", type=int, default=20, help="K-means iterations (default 20)")
    g.add_argument("--budget", default=None, metavar="N|P%", help="row budget")
    g.add_argument("--memory-budget", default=None, metavar="SIZE", help="e.g. 4G (default: a quarter of RAM)")
    g.add_argument("--threads", type=int, default=None, help="threads for faiss (default: all cores)")
    _add_verbosity(g)
    _add_gio_options(p)
    p.set_defaults(func=_cmd_plan)


def _cmd_plan(args: argparse.Namespace) -> int:
    from .pipeline import SelectConfig, default_memory_budget, parse_memory
    from .plan import format_plan, make_plan

    cfg = SelectConfig(
        pool=args.pool, target=args.target, out=Path("unused-by-plan"), params=_gio_params(args),
        embedding_field=args.embedding_field, target_embedding_field=args.target_embedding_field,
        clusters=args.clusters, target_clusters=args.target_clusters, kmeans_iter=args.kmeans_iter,
        budget=args.budget, memory_budget=parse_memory(args.memory_budget) if args.memory_budget
        else default_memory_budget(), threads=args.threads, text_field=args.text_field,
    ).validate()
    plan = make_plan(cfg)
    if not args.quiet:
        print(format_plan(plan))
    return EXIT_OK if plan.fits else EXIT_PLAN_TOO_BIG


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gioselect",
        description=(
            "Training-data selection with GIO (Gradient Information Optimization, Everaert & Potts 2023): pick "
            "the rows of a large pool whose distribution is closest to a small target set."
        ),
        epilog="Exit codes: 0 success, 2 bad input or usage, 1 unexpected failure, 3 select wrote a result but "
               "selected nothing, 130/143 interrupted (a select run then prints its --resume command). "
               "'gioselect COMMAND --help' describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"gioselect {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in _COMMANDS:
        add(sub)
    return parser


_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_select, _add_embed, _add_evaluate, _add_check,
                                                                  _add_plan]


def main(argv: Sequence[str] | None = None, *, on_pick: Callable[[PickEvent], None] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it).

    ``on_pick`` is passed to the selection job (:func:`gioselect.pipeline.run_select`): called after every
    evaluated GIO pick, for a caller that embeds the CLI (the resume tests slow the picks down with it).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.on_pick = on_pick
        args.command_line = None if argv is None else ["gioselect", *argv]
    except SystemExit as exc:  # --help, --version (0) and usage errors (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    level = logging.WARNING
    if getattr(args, "verbose", False):
        level = logging.INFO
    if getattr(args, "quiet", False):
        level = logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    func: Callable[[argparse.Namespace], int] = args.func
    verbose = bool(getattr(args, "verbose", False))
    with _sigterm_as_interrupt():
        try:
            return func(args)
        except MissingDependencyError as exc:
            print(f"gioselect: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except GIOError as exc:
            print(f"gioselect: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt as exc:
            return _interrupted(args, exc)
        except OSError as exc:
            if exc.errno in _USER_ERRNOS:
                where = f"{exc.filename}: " if exc.filename else ""
                if verbose:
                    traceback.print_exc()
                print(f"gioselect: error: {where}{exc.strerror or exc}", file=sys.stderr)
                return EXIT_USAGE
            return _unexpected(exc, verbose)
        except Exception as exc:  # unexpected: the traceback with --verbose, a one-line hint otherwise
            return _unexpected(exc, verbose)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it unwinds like Ctrl-C (locks released, checkpoint kept)."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise _Terminated()

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _interrupted(args: argparse.Namespace, exc: KeyboardInterrupt) -> int:
    what = "terminated (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted"
    code = EXIT_TERMINATED if isinstance(exc, _Terminated) else EXIT_INTERRUPTED
    if args.command == "select":
        from .outdir import work_dir_for

        work = work_dir_for(args.out)
        if work.exists():
            print(f"gioselect: {what}; the work so far is kept in {work}. Continue with:\n  "
                  f"{_resume_command(args)}", file=sys.stderr)
            return code
    print(f"gioselect: {what}; no output was written", file=sys.stderr)
    return code


def _unexpected(exc: BaseException, verbose: bool) -> int:
    if verbose:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    hint = "" if verbose else " (run again with -v for the full traceback)"
    print(f"gioselect: unexpected failure: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
    return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
