"""``gioselect check``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass
from .options import EXIT_FAILURE, EXIT_OK, add_gio_options, add_verbosity, params_from_args, read_vectors

logger = logging.getLogger("gioselect.cli")

def add_check(sub: argparse._SubParsersAction) -> None:
    """Add the ``check`` command's subparser."""
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
    add_gio_options(p, max_iter_default=None)
    add_verbosity(p.add_argument_group("run"))
    p.set_defaults(func=_cmd_check)


def _cmd_check(args: argparse.Namespace) -> int:
    import numpy as np

    from ..checks import CheckResult, negative_consistency, readme_gaussians, self_consistency
    from ..errors import InvalidInputError, InvalidParameterError
    from ..quantize import quantization_consistency

    params = params_from_args(args).__dict__ if (args.pool or args.target) else {}
    gio = {k: v for k, v in params.items() if not k.startswith("reference_")}
    res: CheckResult
    if args.which == "quantization":
        if args.target is not None:
            target = read_vectors(args.target, args.embedding_field, "target")
        else:
            target = readme_gaussians(3000, seed=args.seed)
        k = args.clusters if args.clusters is not None else max(2, min(1500, target.shape[0] // 10))
        q = quantization_consistency(target, k, seed=args.seed, max_kl=args.max_kl)
        res = CheckResult("quantization-consistency", q.passed, q.message, dict(q.metrics))
    elif args.which == "self":
        pool = target = None
        if args.target is not None:
            target = read_vectors(args.target, args.embedding_field, "target")
            if args.pool is not None:
                pool = read_vectors(args.pool, args.embedding_field, "pool")
            else:
                perm = np.random.default_rng(args.seed).permutation(target.shape[0])
                half = target.shape[0] // 2
                k = int(gio.get("k", 5))
                if target.shape[0] - half <= k:
                    raise InvalidInputError(
                        f"check self: --target {args.target} has {target.shape[0]} rows, split into a pool half "
                        f"of {half} and a target half of {target.shape[0] - half}; the k-NN estimate needs more "
                        f"than k={k} target rows: give more rows, or a --pool")
                pool, target = target[perm[:half]], target[perm[half:]]
        elif args.pool is not None:
            raise InvalidParameterError("check self: give --target (and optionally --pool)")
        res = self_consistency(pool, target, min_share=args.min_share, seed=args.seed, **gio)
    else:
        if (args.pool is None) != (args.target is None):
            raise InvalidParameterError("check negative: give both --pool and --target, or neither")
        pool = target = None
        if args.pool is not None:
            pool = read_vectors(args.pool, args.embedding_field, "pool")
            target = read_vectors(args.target, args.embedding_field, "target")
        res = negative_consistency(pool, target, max_share=args.max_share, seed=args.seed, **gio)
    if args.json:  # asked for explicitly: printed with -q too
        print(json.dumps({"name": res.name, "passed": res.passed, "message": res.message,
                          "metrics": res.metrics}, indent=2))
    elif not args.quiet:  # -q: the exit code alone says PASS (0) or FAIL (1)
        print(res)
    return EXIT_OK if res.passed else EXIT_FAILURE
