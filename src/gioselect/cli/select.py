"""``gioselect select``: the selection job from the command line (its options, ``--resume``, the summary).
"""

from __future__ import annotations

import argparse
import functools
import logging
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass
from .options import (
    EXIT_DEGENERATE,
    EXIT_OK,
    add_gio_options,
    add_pool_target_out,
    add_run_options,
    add_text_options,
    params_from_args,
    refuse_conflicts,
    tqdm_progress,
)

logger = logging.getLogger("gioselect.cli")

def add_select(sub: argparse._SubParsersAction) -> None:
    """Add the ``select`` command's subparser."""
    p = sub.add_parser(
        "select",
        help="select the pool rows whose distribution is closest to the target",
        description=(
            "Select the rows of POOL whose distribution is closest to TARGET with GIO, quantising the pool with "
            "K-means first (--clusters). Inputs: .npy (2-D float), .parquet (an embedding column), .csv/.tsv "
            "(grad-info-opt's layout: a '[0.1, ...]' vector column) or .jsonl. Writes into OUT: selected_ids.npy "
            "(0-based pool rows in selection order), selected_rows.<ext> (the rows, all columns, plus gio_row_id "
            "and gio_rank), kl_trace.csv, f1_curve.csv (the automatic size's estimated F1 per pick), manifest.json "
            "(the run record) and report.html."
        ),
    )
    io_ = p.add_argument_group("inputs and outputs")
    add_pool_target_out(io_)
    io_.add_argument("--embedding-field", default=None,
                     help="embedding column of parquet/jsonl/csv inputs (default: detected)")
    io_.add_argument("--target-embedding-field", default=None,
                     help="embedding column of the target, when it differs from the pool's")
    add_text_options(io_)
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
    q.add_argument("--refine", choices=("auto", "knn", "share", "relaxed", "gio", "none"), default="auto",
                   help="the row-level pass over the chosen clusters when the size is known (auto, default: gio "
                        "while its estimated cost is small, knn above, the decision printed and kept in the "
                        "manifest; gio: GIO again on their rows, more precise, costs about an unquantised run of "
                        "the size's picks; knn: their rows nearest the target; none: explode the chosen clusters "
                        "whole, as in the paper)")
    q.add_argument("--refine-over", type=float, default=None, metavar="F",
                   help="the pass reads the rows of clusters worth this many times the size (default: 2 for gio, "
                        "1.5 for the others)")
    q.add_argument("--refine-whole", type=float, default=None, metavar="W",
                   help="the first chosen clusters holding up to W times the size are kept whole, unranked; the "
                        "pass ranks only the rest (0..1; default 0.5)")
    b = p.add_argument_group("budget")
    b.add_argument("--budget", default=None, metavar="N|P%",
                   help="select exactly N rows or P%% of the pool, whatever --stop says (when quantised the last "
                        "cluster is cut to a seeded random part of its rows; --exclude and --max-iter can leave fewer)")
    b.add_argument("--budget-exact", action="store_true",
                   help="kept for old command lines: every budget is exact now")
    _add_curation_options(p)
    add_gio_options(p)
    add_run_options(p)
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


def resume_command(args: argparse.Namespace) -> str:
    """The command line that continues an interrupted ``select`` run (the same one with ``--resume``)."""
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
        from ..errors import InvalidParameterError
        from ..io.folder import SAVE_TO_DISK, folder_kind, is_folder_table

        if args.exclude is not None or args.report_field:
            raise InvalidParameterError("--exclude and --report-field need --engine local (the default)")
        for path, opt in ((args.pool, "--pool"), (args.target, "--target")):
            if is_folder_table(path) and folder_kind(path) == SAVE_TO_DISK:
                raise InvalidParameterError(
                    f"{opt} {path} is a datasets save_to_disk folder (Arrow stream files), which the spark engine "
                    "cannot read; use --engine local, or write it as parquet shards (Dataset.to_parquet)")
    from ..pipeline import SelectConfig, default_memory_budget, parse_memory, run_select
    from ..report import render_summary_text

    refuse_conflicts(args)

    cfg = SelectConfig(
        pool=args.pool, target=args.target, out=args.out, params=params_from_args(args),
        embedding_field=args.embedding_field, target_embedding_field=args.target_embedding_field,
        clusters=args.clusters, target_clusters=args.target_clusters, kmeans_iter=args.kmeans_iter,
        candidates=args.candidates, refine=args.refine,
        **({} if args.refine_over is None else {"refine_over": args.refine_over}),
        **({} if args.refine_whole is None else {"refine_whole": args.refine_whole}),
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
    progress = functools.partial(tqdm_progress, args.quiet)
    if args.engine == "spark":
        from ..spark import run_select_spark

        manifest = run_select_spark(cfg, spark_master=args.spark_master, resume=args.resume, force=args.force,
                                    progress=progress, command=command, on_pick=getattr(args, "on_pick", None))
    else:
        if args.spark_master is not None:
            from ..errors import InvalidParameterError

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
