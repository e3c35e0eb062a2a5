"""Command-line interface: ``gioselect <command> ...``. The only module that prints or draws progress bars.

Exit codes: 0 success, 2 bad input or usage (the message names the path or parameter), 1 unexpected failure (the
traceback with ``-v``), 3 a degenerate run (``select`` wrote a result but selected nothing), 130 interrupted
(Ctrl-C), 143 terminated (SIGTERM).

Layout: one module per command (:mod:`.select`, :mod:`.embed`, :mod:`.evaluate`, :mod:`.check`, :mod:`.plan`),
each with its ``add_*`` parser function and its ``_cmd_*`` runner; :mod:`.options` holds what they share (exit
codes, the GIO options, progress). This module builds the parser and maps errors to exit codes.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import GIOError, MissingDependencyError
from .check import add_check
from .embed import add_embed
from .evaluate import add_evaluate
from .options import (
    EXIT_DEGENERATE,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PLAN_TOO_BIG,
    EXIT_TERMINATED,
    EXIT_USAGE,
)
from .plan import add_plan
from .select import add_select, resume_command

if TYPE_CHECKING:
    from ..optimize import PickEvent

__all__ = ["EXIT_DEGENERATE", "EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_PLAN_TOO_BIG", "EXIT_TERMINATED",
           "EXIT_USAGE", "build_parser", "main"]

#: OS errors that a user's paths or machine cause (a read-only or full disk, a file where a folder should be...):
#: exit 2 with the path, not 1.
_USER_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
                          errno.EISDIR, errno.ELOOP, errno.ENAMETOOLONG, errno.ENOENT, errno.EEXIST})

logger = logging.getLogger("gioselect.cli")


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on usage errors already; keep its behaviour, with our program name."""


def build_parser() -> argparse.ArgumentParser:
    """The ``gioselect`` argument parser, with every command's subparser."""
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


_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_select, add_embed, add_evaluate, add_check,
                                                                  add_plan]


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
        from ..outdir import work_dir_for

        work = work_dir_for(args.out)
        if work.exists():
            print(f"gioselect: {what}; the work so far is kept in {work}. Continue with:\n  "
                  f"{resume_command(args)}", file=sys.stderr)
            return code
    print(f"gioselect: {what}; no output was written", file=sys.stderr)
    return code


def _unexpected(exc: BaseException, verbose: bool) -> int:
    if verbose:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    hint = "" if verbose else " (run again with -v for the full traceback)"
    print(f"gioselect: unexpected failure: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
    return EXIT_FAILURE

