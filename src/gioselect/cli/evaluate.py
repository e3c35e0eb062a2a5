"""``gioselect evaluate``: GIO against the baselines on held-out target rows, as a table or JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass
from .options import (
    EXIT_OK,
    add_gio_options,
    add_pool_target_out,
    add_text_options,
    add_verbosity,
    params_from_args,
    read_vectors,
    refuse_conflicts,
    tqdm_progress,
)

logger = logging.getLogger("gioselect.cli")

def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` command's subparser."""
    from ..evaluate import METHODS

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
    add_pool_target_out(io_)
    io_.add_argument("--embedding-field", default=None, help="vector column (detected)")
    io_.add_argument("--labels-field", default=None,
                     help="label column in both files: adds the downstream accuracy and label proportions")
    add_text_options(io_)
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
    add_gio_options(p)
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0, help="seed of the split, GIO and the baselines (0)")
    r.add_argument("--force", action="store_true",
                   help="replace a previous gioselect evaluation at --out (evaluation.json and .png, nothing else)")
    add_verbosity(r)
    p.set_defaults(func=_cmd_evaluate)


def _load_input(path: Path, args: argparse.Namespace, which: str) -> Any:
    """Vectors of an input file, embedding its text column first when --text-field is given."""
    from ..embed import EmbeddingCache, embed_texts
    from ..io import detect_format, read_texts

    field = args.text_field if which == "pool" else (args.target_text_field or args.text_field)
    if field is None or detect_format(path) == "npy":
        return read_vectors(path, args.embedding_field, which)
    texts = read_texts(path, field, name=which)
    cache = EmbeddingCache(args.cache_dir) if args.embed_cache else False
    with tqdm_progress(args.quiet, f"embedding {which}", len(texts), "text") as upd:
        emb, _ = embed_texts(texts, args.model, cache=cache, batch_size=args.embed_batch_size, progress=upd,
                             backend=args.embed_backend)
    return emb


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..errors import InvalidParameterError
    from ..evaluate import METHODS, compare_methods, plot_comparison
    from ..io import atomic_path, detect_format, read_column, read_texts
    from ..io.folder import is_folder_table
    from ..outdir import check_output_dir
    from ..pipeline import parse_budget
    from ..validation import check_input_path

    out: Path = args.out
    for p, what in ((args.pool, "pool"), (args.target, "target")):
        check_input_path(p, what, allow_dir=is_folder_table(p))
    refuse_conflicts(args)
    check_output_dir(out, [("pool", args.pool), ("target", args.target)], force=args.force, kind="evaluate")
    if args.random_seeds < 1:
        raise InvalidParameterError(f"--random-seeds must be >= 1, got {args.random_seeds}")
    if not 0 < args.holdout < 1:
        raise InvalidParameterError(f"--holdout must be in (0, 1), got {args.holdout}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InvalidParameterError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if not methods:
        raise InvalidParameterError(f"--methods: names no method (got {args.methods!r}); choose from "
                                    f"{', '.join(METHODS)}")
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
    params = {k: v for k, v in params_from_args(args).__dict__.items() if not k.startswith("reference_")}
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
        print(format_table(res))
        print(f"written: {out / 'evaluation.json'}, {out / 'evaluation.png'}")
    return EXIT_OK


def _jsonable(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def format_table(res: dict[str, Any]) -> str:
    """The ``evaluate`` result as a plain-text table (one row per method and size), with its legend."""
    from ..evaluate import COMPARE_METRICS, metric_header

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
