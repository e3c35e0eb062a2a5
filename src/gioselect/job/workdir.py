"""The run's work folder ``<out>.partial/``: its fingerprint (what resume checks), phase checkpoints, GIO state.

Everything here is written atomically (temp file + rename, :func:`gioselect.io.atomic_path`), so a run killed at
any point leaves either the old or the new file. Removing folders is :mod:`gioselect.outdir`'s alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ResumeError
from ..io import atomic_path
from ..outdir import remove_work_dir
from .record import json_default, write_json

__all__ = ["CHECKPOINT_FORMAT", "Checkpointer", "fingerprint_differences", "load_gio_state", "load_npz",
           "open_work_dir", "save_npz"]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 2


def save_npz(path: Path, **arrays: Any) -> None:
    """Write ``arrays`` to ``path`` (``.npz``) atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` checkpoint, read into memory (no pickles); a damaged one is a
    :class:`ResumeError` naming it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, EOFError, zipfile.BadZipFile) as exc:  # numpy's own text would suggest unpickling it
        raise ResumeError(f"{path}: unreadable checkpoint (not a valid .npz file of arrays); rerun without "
                          "--resume to start over") from exc
    except OSError as exc:
        raise ResumeError(f"{path}: unreadable checkpoint ({exc}); rerun without --resume to start over") from exc


class Checkpointer:
    """Writes the GIO loop state every ``every`` accepted picks or ``seconds`` seconds, atomically."""

    def __init__(self, path: Path, every: int, seconds: float) -> None:
        self.path, self.every, self.seconds = path, every, seconds
        self.last_time = time.monotonic()
        self.since = 0

    def maybe(self, search: Any, force: bool = False) -> None:
        """Count one pick; write the state when due (or when ``force``)."""
        self.since += 1
        if force or self.since >= self.every or time.monotonic() - self.last_time >= self.seconds:
            sd = search.state_dict()
            scalars = json.dumps(sd.pop("scalars"), default=json_default)
            save_npz(self.path, scalars=np.array(scalars), **sd)
            self.since = 0
            self.last_time = time.monotonic()


def load_gio_state(path: Path) -> dict[str, Any]:
    """The search state a :class:`Checkpointer` wrote (for ``load_state_dict``)."""
    raw = load_npz(path)
    sd: dict[str, Any] = {k: v for k, v in raw.items() if k != "scalars"}
    sd["scalars"] = json.loads(str(raw["scalars"]))
    return sd


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 or not isinstance(v, str) or "/" in v else text[:13] + "...'"


def fingerprint_differences(old: Any, new: dict[str, Any]) -> list[str]:
    """What differs between a checkpoint's fingerprint and this run's, as ``name: old -> new`` lines."""
    if not isinstance(old, dict):
        return ["the checkpoint has no readable record of its inputs and parameters"]
    fo, fn = _flatten(old), _flatten(new)
    lines = []
    for key in sorted(set(fo) | set(fn)):
        if fo.get(key, "<absent>") != fn.get(key, "<absent>"):
            name = key.removeprefix("config.params.").removeprefix("config.").removeprefix("inputs.")
            lines.append(f"{name}: {_short(fo.get(key, '<absent>'))} in the checkpoint, "
                         f"{_short(fn.get(key, '<absent>'))} now")
    return lines


def open_work_dir(work: Path, fingerprint: dict[str, Any], resume: bool) -> bool:
    """Set up ``work`` for a run identified by ``fingerprint``; returns whether it was made afresh.

    With ``resume`` and a matching fingerprint the folder (and its checkpoints) is kept; a mismatch is a
    :class:`ResumeError` (the folder is left alone). Without ``resume`` a stale folder is discarded.
    """
    fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True, default=json_default))
    fp_hash = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
    if work.exists():
        old = work / "fingerprint.json"
        if resume and old.exists():
            try:
                record = json.loads(old.read_text())
            except (OSError, ValueError) as exc:
                raise ResumeError(f"{old}: unreadable checkpoint record ({exc}); rerun without --resume") from exc
            if record.get("hash") != fp_hash:
                diff = fingerprint_differences(record.get("fingerprint"), fingerprint)
                shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
                raise ResumeError(
                    f"--resume: {work} holds a run with other inputs or parameters ({shown}); rerun with the "
                    f"original ones, or without --resume (the checkpoint is then discarded)"
                )
            logger.info("resuming from %s", work)
        else:
            if resume:
                logger.info("no checkpoint in %s; starting afresh", work)
            remove_work_dir(work)
    elif resume:
        logger.info("nothing to resume at %s; starting afresh", work)
    fresh = not work.exists()
    work.mkdir(parents=True, exist_ok=True)
    write_json(work / "fingerprint.json", {"hash": fp_hash, "fingerprint": fingerprint})
    return fresh

