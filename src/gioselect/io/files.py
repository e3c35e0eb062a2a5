"""File helpers shared by every format: how messages name a file, up-front file checks, atomic writes, hashing."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from ..errors import GIOError, InvalidInputError
from ..validation import check_int

__all__ = ["atomic_path", "check_file", "describe_file", "file_sha256"]


def describe_file(path: Path, name: str) -> str:
    """Prefix of every message about one input file."""
    return f"{name} file '{path}'"


def check_file(path: Path, name: str) -> None:
    """Raise unless ``path`` is an existing, non-empty regular file."""
    where = describe_file(path, name)
    if not path.exists():
        raise InvalidInputError(f"{where}: no such file")
    if path.is_dir():
        raise InvalidInputError(
            f"{where}: is a directory (a Spark-style dataset of part files?); pass a single file"
        )
    if path.stat().st_size == 0:
        raise InvalidInputError(f"{where}: is empty (0 bytes, 0 rows)")


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``final_path``; move it into place only if the block succeeds.

    The temporary name is hidden (leading dot), unique, in the same directory (so ``os.replace`` is atomic)
    and keeps the final suffix (so ``np.save`` and format detection work). On success the file is fsynced
    and renamed over ``final_path`` (replacing an existing file); on any exception it is removed and the
    exception propagates. Missing parent directories are created.

    Examples
    --------
    >>> with atomic_path("out.npy") as tmp:  # doctest: +SKIP
    ...     np.save(tmp, arr)
    """
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{final.suffix}")
    try:
        yield tmp
        if not tmp.is_file():
            raise GIOError(f"atomic_path: nothing was written to the temporary file for '{final}'")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename durable; not possible everywhere
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def file_sha256(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks of ``chunk_bytes``."""
    p = Path(path)
    chunk_bytes = check_int(chunk_bytes, "chunk_bytes", low=1)
    if not p.is_file():
        raise InvalidInputError(f"file '{p}': no such file")
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()
