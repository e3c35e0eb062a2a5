"""``gioselect plan``: what a run would use (memory, quantisation) before running it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass
from .options import EXIT_OK, EXIT_PLAN_TOO_BIG, add_gio_options, add_verbosity, params_from_args

logger = logging.getLogger("gioselect.cli")

def add_plan(sub: argparse._SubParsersAction) -> None:
    """Add the ``plan`` command's subparser."""
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
    add_verbosity(g)
    add_gio_options(p)
    p.set_defaults(func=_cmd_plan)


def _cmd_plan(args: argparse.Namespace) -> int:
    from ..pipeline import SelectConfig, default_memory_budget, parse_memory
    from ..plan import format_plan, make_plan

    cfg = SelectConfig(
        pool=args.pool, target=args.target, out=Path("unused-by-plan"), params=params_from_args(args),
        embedding_field=args.embedding_field, target_embedding_field=args.target_embedding_field,
        clusters=args.clusters, target_clusters=args.target_clusters, kmeans_iter=args.kmeans_iter,
        budget=args.budget, memory_budget=parse_memory(args.memory_budget) if args.memory_budget
        else default_memory_budget(), threads=args.threads, text_field=args.text_field,
    ).validate()
    plan = make_plan(cfg)
    if not args.quiet:
        print(format_plan(plan))
    return EXIT_OK if plan.fits else EXIT_PLAN_TOO_BIG
