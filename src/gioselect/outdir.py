"""Output-folder safety for every command: what ``--out`` may be, what ``--force`` may replace, and the run lock.

One implementation for the in-process and the Spark job, ``embed`` and ``evaluate``.

The rules
---------
* ``--out`` is checked before any computation: it is not ``.``, ``..`` or ``/``; the nearest existing ancestor is
  a folder (not a regular file) in which a file can be created (a probe file is created and removed); it is not
  a symbolic link; it is not an input, does not hold an input, and does not lie inside an input folder (a
  directory of parquet part files, a model folder).
* ``--force`` replaces only a previous gioselect result: a folder whose ``manifest.json`` has a
  ``gioselect_version`` key and which holds the known output files and nothing else (``evaluate``: only
  ``evaluation.json`` and ``evaluation.png``; ``embed``: a ``.npy`` of 2-D float32 or a parquet file whose
  columns are the ones ``embed`` writes). Anything else is refused with or without ``--force``.
* The replacement happens only once the new result is whole: the old result is moved into the run's own work
  folder ``OUT.partial/``, the new one is renamed into place, and then the old one's known files are deleted
  one by one. Unknown files are never deleted: a folder that still holds anything unknown is left in place.
* The work folder ``OUT.partial/`` is the tool's own (it holds ``fingerprint.json``, or is empty); removing it
  deletes only names the tool writes there and leaves anything else.
* ``OUT.partial.lock`` is an ``fcntl`` lock held for the whole run, with the holder's pid, host and start time:
  a second run on the same ``--out`` is refused at once, and a lock left by a killed run (the kernel releases
  the lock of a dead process) is reported and taken over.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import InvalidParameterError, OutputExistsError, OutputLockedError

__all__ = [
    "RESULT_FILES",
    "OutputPlan",
    "check_output_dir",
    "check_output_file",
    "is_gioselect_result",
    "publish_result",
    "remove_work_dir",
    "run_lock",
    "work_dir_for",
]

logger = logging.getLogger(__name__)

#: The fixed names of a ``select`` result; ``selected_rows.<ext>`` comes in addition (a file, or a parquet
#: directory of part files from the Spark engine).
RESULT_FILES = frozenset({"selected_ids.npy", "selected_row_ids.npy", "picks.csv", "kl_trace.csv", "manifest.json",
                          "report.html", "f1_curve.csv"})
_SELECTED_ROWS = re.compile(r"^selected_rows\.(npy|parquet|pq|csv|tsv|jsonl|json)$")
EVALUATION_FILES = frozenset({"evaluation.json", "evaluation.png"})
#: What the tool writes into ``OUT.partial/``: checkpoints, embeddings, Spark parquet folders, the result
#: being built, a previous result being replaced, and the hidden temporary files of atomic writes.
_WORK_NAME = re.compile(
    r"^(fingerprint\.json|[a-z0-9_-]+\.(npz|npy|json|parquet)|result|old-result|\..+\.tmp(\.\w+)?)$"
)
_TMP_NAME = re.compile(r"^\..+\.tmp(\.\w+)?$")  # io.atomic_path's temporary files
_SPARK_PART = re.compile(r"^(_SUCCESS|part-.*|\..*\.crc|_committed_.*|_started_.*)$")
LOCK_KEY = "gioselect_lock"


@dataclass(frozen=True)
class OutputPlan:
    """The checked output location of a run.

    ``state`` is ``"new"`` (nothing there, or an empty folder), ``"replace"`` (a previous gioselect result that
    ``force`` allows replacing) or ``"complete"`` (a previous result and ``resume``: nothing to do).
    """

    out: Path
    work: Path
    lock: Path
    state: str


def _name_check(out: Path, option: str) -> Path:
    text = str(out)
    if not text.strip():
        raise InvalidParameterError(f"{option}: empty path; name a new folder for the results, e.g. {option} runs/sel")
    if out.name in ("", ".", "..") or text.rstrip("/") in ("", ".", ".."):
        raise InvalidParameterError(
            f"{option} {text}: name a new folder for the results (e.g. {option} runs/sel), not the current, "
            "parent or root folder"
        )
    absolute = Path(os.path.abspath(out))
    if absolute == absolute.parent:
        raise InvalidParameterError(f"{option} {text}: the root folder cannot be an output")
    return absolute


def _check_parent_writable(absolute: Path, option: str, given: Path) -> None:
    """The nearest existing ancestor must be a folder where a file can be created."""
    anc = absolute.parent
    while not os.path.lexists(anc):
        anc = anc.parent
    if not anc.is_dir():
        what = "a regular file" if anc.is_file() else "not a folder"
        raise InvalidParameterError(
            f"{option} {given}: {anc} is {what}, so nothing can be created under it; choose another {option}"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".gioselect-probe-", dir=anc)
    except OSError as exc:
        raise InvalidParameterError(
            f"{option} {given}: cannot write in {anc} ({exc.strerror or exc}); choose a writable location"
        ) from exc
    os.close(fd)
    os.unlink(probe)  # the probe file was created just above, by this function


def _within(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def _local_inputs(inputs: Iterable[tuple[str, Any]]) -> list[tuple[str, str]]:
    """(what, real path) for inputs on the local file system (Spark URIs such as hdfs:// are skipped)."""
    out = []
    for what, p in inputs:
        if p is None:
            continue
        s = str(p)
        if "://" in s and not s.startswith("file://"):
            continue
        s = s.removeprefix("file://")
        if os.path.lexists(s):
            out.append((what, os.path.realpath(s)))
    return out


def _check_against_inputs(absolute: Path, inputs: Sequence[tuple[str, Any]], option: str, given: Path,
                          also: Sequence[Path] = ()) -> None:
    for place in (absolute, *also):
        real = os.path.realpath(place)
        for what, inp in _local_inputs(inputs):
            label = f"{option} {given}" if place == absolute else f"{option} {given} (its work folder {place})"
            if real == inp:
                raise InvalidParameterError(f"{label} is the {what} input {inp}; choose another {option}")
            if _within(inp, real):
                raise InvalidParameterError(
                    f"{label} holds the {what} input {inp}; choose a new folder that holds no input"
                )
            if os.path.isdir(inp) and _within(real, inp):
                raise InvalidParameterError(
                    f"{label} lies inside the {what} input folder {inp}; choose a folder outside it"
                )


def _entries(d: Path) -> list[str]:
    return sorted(os.listdir(d))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _is_spark_parquet_dir(d: Path) -> bool:
    try:
        names = _entries(d)
    except OSError:
        return False
    return bool(names) and all(_SPARK_PART.match(n) and (d / n).is_file() and not (d / n).is_symlink()
                               for n in names)


def _not_result_entries(d: Path) -> list[str]:
    """The entries of ``d`` that a ``select`` result does not have (all of them without a gioselect manifest)."""
    m = _read_json(d / "manifest.json")
    if not isinstance(m, dict) or "gioselect_version" not in m:
        return _entries(d)
    bad = []
    for name in _entries(d):
        p = d / name
        if p.is_symlink():
            bad.append(name)
        elif name in RESULT_FILES and p.is_file():
            continue
        elif _SELECTED_ROWS.match(name) and (p.is_file() or _is_spark_parquet_dir(p)):
            continue
        else:
            bad.append(name)
    return bad


def is_gioselect_result(d: Path) -> bool:
    """Whether ``d`` is a folder written by ``gioselect select`` and holds nothing else.

    It must have a ``manifest.json`` with a ``gioselect_version`` key, and every entry must be one of the
    output files (``selected_rows.<ext>`` may be a Spark parquet folder of part files).
    """
    if d.is_symlink() or not d.is_dir():
        return False
    return not _not_result_entries(d)


def _is_evaluation(d: Path) -> bool:
    if d.is_symlink() or not d.is_dir():
        return False
    names = _entries(d)
    if not set(names) <= EVALUATION_FILES or "evaluation.json" not in names:
        return False
    ev = _read_json(d / "evaluation.json")
    return isinstance(ev, dict) and "methods" in ev and all((d / n).is_file() for n in names)


def _is_work_dir(d: Path) -> bool:
    if d.is_symlink() or not d.is_dir():
        return False
    names = _entries(d)
    if not names:
        return True
    fp = _read_json(d / "fingerprint.json")
    return isinstance(fp, dict) and "hash" in fp


def _foreign(d: Path, limit: int = 5, names: list[str] | None = None) -> str:
    names = _entries(d) if names is None else names
    shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
    return shown


def work_dir_for(out: Path) -> Path:
    """``OUT.partial`` beside ``OUT`` (absolute)."""
    absolute = Path(os.path.abspath(out))
    return absolute.with_name(absolute.name + ".partial")


def check_output_dir(out: Path, inputs: Sequence[tuple[str, Any]], *, force: bool, resume: bool = False,
                     kind: str = "select", option: str = "--out") -> OutputPlan:
    """Check an output folder before any work; see the module docstring for the rules.

    Parameters
    ----------
    out : Path
        The output folder as the user gave it.
    inputs : sequence of (name, path)
        The run's inputs (pool, target, model folder...); paths that do not exist locally are ignored.
    force, resume : bool
        The run's options.
    kind : {"select", "evaluate"}
        Which result may be replaced with ``force``.

    Raises
    ------
    InvalidParameterError
        An unusable location (the message names it and why).
    OutputExistsError
        Something is at ``out`` that may not be replaced.
    """
    absolute = _name_check(out, option)
    work = absolute.with_name(absolute.name + ".partial")
    lock = absolute.with_name(absolute.name + ".partial.lock")
    _check_parent_writable(absolute, option, out)
    _check_against_inputs(absolute, inputs, option, out, also=(work,) if kind == "select" else ())
    state = "new"
    if os.path.lexists(absolute):
        if absolute.is_symlink():
            raise InvalidParameterError(
                f"{option} {out} is a symbolic link; give the real folder (gioselect never writes through links)"
            )
        if not absolute.is_dir():
            raise OutputExistsError(
                f"{option} {out} is a file, not a folder; it is never replaced (even with --force): choose "
                f"another {option}"
            )
        if _entries(absolute):
            ours = is_gioselect_result(absolute) if kind == "select" else _is_evaluation(absolute)
            what = "gioselect result" if kind == "select" else "gioselect evaluation"
            if not ours:
                odd = _not_result_entries(absolute) if kind == "select" else None
                raise OutputExistsError(
                    f"{option} {out} exists and holds files that are not a previous {what} "
                    f"({_foreign(absolute, names=odd)}); --force "
                    f"only replaces a previous {what}, so nothing was touched: choose another {option}"
                )
            if resume and not force and kind == "select":
                state = "complete"
            elif not force:
                raise OutputExistsError(
                    f"{option} {out} exists and holds a previous {what}; pass --force to replace it (once the new "
                    f"one is complete) or choose another {option}"
                )
            else:
                state = "replace"
    if kind == "select" and os.path.lexists(work) and not _is_work_dir(work):
        raise OutputExistsError(
            f"{work} exists and is not a gioselect work folder (no fingerprint.json); gioselect builds its "
            f"result there, so move it away or choose another {option}"
        )
    return OutputPlan(out=absolute, work=work, lock=lock, state=state)


def _looks_like_embed_output(p: Path) -> bool:
    """A file that ``gioselect embed`` could have written: .npy 2-D float32, or parquet of its columns."""
    if p.is_symlink() or not p.is_file():
        return False
    if p.suffix.lower() == ".npy":
        import numpy as np

        try:
            with open(p, "rb") as fh:
                fmt = np.lib.format  # the public readers: numpy 2 dropped the private _read_array_header
                version = fmt.read_magic(fh)
                read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, _, dtype = read(fh)
        except Exception:
            return False
        return bool(dtype == np.float32 and len(shape) == 2)
    try:
        import pyarrow.parquet as pq

        names = pq.read_schema(p).names
    except Exception:
        return False
    return bool(names) and names[0] == "embedding" and "row_id" in names and len(names) <= 3


def check_output_file(out: Path, inputs: Sequence[tuple[str, Any]], *, force: bool,
                      option: str = "--out") -> Path:
    """Check an output file (``embed``) before any work: as :func:`check_output_dir`, for one file.

    ``force`` replaces only a file ``embed`` could have written (see the module docstring); a folder, a link,
    an input or any other file is refused.
    """
    absolute = _name_check(out, option)
    _check_parent_writable(absolute, option, out)
    _check_against_inputs(absolute, inputs, option, out)
    if os.path.lexists(absolute):
        if absolute.is_symlink():
            raise InvalidParameterError(f"{option} {out} is a symbolic link; give the real file")
        if absolute.is_dir():
            raise OutputExistsError(f"{option} {out} is a folder; it is never replaced (even with --force)")
        if not force:
            raise OutputExistsError(f"{option} {out} exists; pass --force to replace it")
        if not _looks_like_embed_output(absolute):
            raise OutputExistsError(
                f"{option} {out} exists and does not look like a file gioselect embed wrote (a 2-D float32 .npy, "
                "or a parquet file of embedding, row_id and text columns); --force only replaces such files, "
                "so nothing was touched"
            )
    return absolute


# -- removal (only what the tool made) ---------------------------------------------------------------------


def _remove_known_tree(d: Path, known: Any) -> bool:
    """Delete the entries of ``d`` whose names ``known(name, path)`` accepts, then ``d`` if empty.

    Returns whether ``d`` is gone. Anything not accepted stays, with a warning.
    """
    if not d.is_dir() or d.is_symlink():
        return False
    for name in _entries(d):
        p = d / name
        if not known(name, p):
            continue
        if p.is_dir() and not p.is_symlink():
            if name in ("result", "old-result"):
                remove_result_dir(p)
            elif name.endswith(".parquet") and known is _work_known:
                # A Spark parquet folder the run wrote under this name into its own work folder.
                shutil.rmtree(p, ignore_errors=True)
            elif _SELECTED_ROWS.match(name):
                shutil.rmtree(p, ignore_errors=True)  # checked by ``known``: Spark part files only
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    try:
        d.rmdir()
        return True
    except OSError:
        left = _foreign(d) if d.exists() else ""
        if left:
            logger.warning("%s: left in place because it holds files gioselect did not write (%s)", d, left)
        return not d.exists()


def remove_result_dir(d: Path) -> bool:
    """Delete the output files of a (new or old) result folder by name; anything else is left in place."""
    def known(name: str, p: Path) -> bool:
        if p.is_symlink():
            return False
        if name in RESULT_FILES or _TMP_NAME.match(name):
            return p.is_file()
        if _SELECTED_ROWS.match(name):
            return p.is_file() or _is_spark_parquet_dir(p)
        return False

    return _remove_known_tree(d, known)


def remove_work_dir(work: Path) -> bool:
    """Delete the run's work folder ``OUT.partial``: only names the tool writes there (see ``_WORK_NAME``)."""
    if not os.path.lexists(work):
        return True
    if not _is_work_dir(work):
        logger.warning("%s is not a gioselect work folder; left alone", work)
        return False
    return _remove_known_tree(work, _work_known)


def _work_known(name: str, p: Path) -> bool:
    return bool(_WORK_NAME.match(name)) and not p.is_symlink()


def publish_result(result: Path, out: Path, work: Path, *, force: bool) -> None:
    """Move the finished ``result`` (inside ``work``) to ``out``.

    An existing ``out`` is replaced only with ``force`` and only if it is a previous gioselect result (checked
    again now, under the run lock): it is first moved into ``work/old-result`` (the tool's own folder), the
    new result is renamed into place, and the old one's output files are then deleted by name.
    """
    old: Path | None = None
    if os.path.lexists(out):
        empty = out.is_dir() and not out.is_symlink() and not _entries(out)
        if not empty:
            if not (force and is_gioselect_result(out)):
                raise OutputExistsError(
                    f"{out} changed during the run and may not be replaced; the new result is kept in {result}"
                )
            old = work / "old-result"
            if os.path.lexists(old):
                remove_result_dir(old)
            os.replace(out, old)  # a verified gioselect result, moved into the run's own work folder
    os.replace(result, out)  # onto nothing, or onto an empty folder (rename(2) refuses a non-empty one)
    if old is not None:
        remove_result_dir(old)


# -- the run lock ------------------------------------------------------------------------------------------


def _describe(info: Any) -> str:
    if not isinstance(info, dict):
        return "another gioselect run"
    return (f"another gioselect run (pid {info.get('pid')} on {info.get('host')}, started "
            f"{info.get('started_utc')})")


@contextlib.contextmanager
def run_lock(lock_path: Path, out: Path, command: Sequence[str] | None = None) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``lock_path`` (``OUT.partial.lock``) for the block.

    Raises
    ------
    OutputLockedError
        Another live process holds the lock (the message names its pid, host and start time).
    OutputExistsError
        ``lock_path`` exists and is not a gioselect lock file.
    """
    import fcntl

    while True:
        if os.path.lexists(lock_path) and (lock_path.is_symlink() or not lock_path.is_file()):
            raise OutputExistsError(f"{lock_path} exists and is not a gioselect lock file; move it away")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_json(lock_path)
            os.close(fd)
            raise OutputLockedError(
                f"--out {out}: {_describe(info)} is writing this output (lock {lock_path}); wait for it to "
                "finish or choose another --out"
            ) from None
        except OSError:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file between our open and lock: try again on the new one
    try:
        raw = os.read(fd, 1 << 16)
        if raw.strip():
            try:
                prev = json.loads(raw)
            except ValueError:
                prev = None
            if not (isinstance(prev, dict) and prev.get(LOCK_KEY)):
                os.close(fd)
                raise OutputExistsError(f"{lock_path} exists and is not a gioselect lock file; move it away")
            logger.warning("%s: found the lock of a run that did not finish (pid %s on %s, started %s, no longer "
                           "running); taking over", lock_path, prev.get("pid"), prev.get("host"),
                           prev.get("started_utc"))
        info = {LOCK_KEY: 1, "pid": os.getpid(), "host": socket.gethostname(),
                "started_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "command": list(command) if command else None}
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode())
        os.fsync(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    try:
        yield
    finally:
        try:
            if os.fstat(fd).st_ino == os.stat(lock_path).st_ino:
                os.unlink(lock_path)  # our own lock file (same inode as the descriptor we hold)
        except OSError:
            pass
        os.close(fd)
