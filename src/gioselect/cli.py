"""Command-line interface: ``gioselect <command> ...``. The only module that prints or draws progress bars.

Exit codes: 0 success, 2 bad input or usage, 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .errors import GIOError, MissingDependencyError

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

logger = logging.getLogger("gioselect.cli")


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on usage errors already; keep its behaviour, with our program name."""


def _add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="run one of the paper's consistency checks",
        description=(
            "Run one of the paper's consistency checks and print PASS/FAIL with the numbers. "
            "'self': pool and target from one distribution, GIO must pick most of the pool and the objective "
            "must fall. 'negative': pool far from the target, GIO must pick (almost) nothing. With no files, "
            "the reference README's 2-D set-ups are used."
        ),
    )
    p.add_argument("which", choices=["self", "negative"], help="which check to run")
    p.add_argument("--seed", type=int, default=0, help="random seed for the synthetic data and GIO (default 0)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of one line")
    p.set_defaults(func=_cmd_check)


def _cmd_check(args: argparse.Namespace) -> int:
    from .checks import negative_consistency, self_consistency

    fn = self_consistency if args.which == "self" else negative_consistency
    res = fn(seed=args.seed)
    if args.json:
        print(json.dumps({"name": res.name, "passed": res.passed, "message": res.message,
                          "metrics": res.metrics}, indent=2))
    else:
        print(res)
    return EXIT_OK if res.passed else EXIT_FAILURE


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gioselect",
        description=(
            "Training-data selection with GIO (Gradient Information Optimization, Everaert & Potts 2023): pick "
            "the rows of a large pool whose distribution is closest to a small target set."
        ),
        epilog="Exit codes: 0 success, 2 bad input or usage, 1 unexpected failure. "
               "'gioselect COMMAND --help' describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"gioselect {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in _COMMANDS:
        add(sub)
    return parser


_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_check]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) and usage errors (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    level = logging.WARNING
    if getattr(args, "verbose", False):
        level = logging.INFO
    if getattr(args, "quiet", False):
        level = logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except MissingDependencyError as exc:
        print(f"gioselect: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except GIOError as exc:
        print(f"gioselect: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gioselect: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # unexpected: keep the traceback available with --verbose
        logger.debug("unexpected failure", exc_info=True)
        print(f"gioselect: unexpected failure: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
