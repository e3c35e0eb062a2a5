"""Checks on user-supplied arrays and parameters, with messages that say what was wrong and where."""

from __future__ import annotations

import errno
import numbers
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import InvalidInputError, InvalidParameterError, InvalidTypeError

__all__ = [
    "IMAGE_SUFFIXES",
    "check_choice",
    "check_embeddings",
    "check_fraction",
    "check_input_path",
    "check_int",
    "check_pair",
    "check_real",
    "result_warnings",
]


def check_embeddings(
    arr: Any,
    name: str,
    *,
    dim: int | None = None,
    min_rows: int = 1,
    dtype: type | None = np.float32,
    row_offset: int = 0,
) -> np.ndarray:
    """Validate a 2-D array of embeddings and return it as a C-contiguous array of ``dtype``.

    Parameters
    ----------
    arr : array-like of shape (n, d)
        The embeddings. Lists of lists, numpy arrays and memory maps are accepted.
    name : str
        How to name the array in error messages (``"pool"``, ``"target"``, a file path...).
    dim : int, optional
        Required number of columns, for example the pool's when checking the target.
    min_rows : int, default 1
        Fewest rows accepted.
    dtype : numpy dtype or None, default float32
        Storage dtype of the returned array (float32 storage, float64 only where sums need it). ``None`` keeps
        float64 input as float64 and stores anything else as float32.
    row_offset : int, default 0
        Added to row numbers in messages, for arrays that are one block of a larger file.

    Raises
    ------
    InvalidTypeError
        Non-numeric or complex data.
    InvalidInputError
        Not 2-D, too few rows, zero columns, wrong number of columns, or a NaN/inf (the first bad row is named).
    """
    if arr is None:
        raise InvalidTypeError(f"{name}: expected a 2-D array of embeddings, got None")
    mod = type(arr).__module__ or ""
    if mod.startswith("scipy.sparse") or (hasattr(arr, "tocsr") and hasattr(arr, "toarray")):
        raise InvalidTypeError(
            f"{name}: got a sparse matrix ({type(arr).__name__}); GIO needs dense embeddings: pass "
            "X.toarray() (or reduce it first, e.g. with TruncatedSVD)"
        )
    if isinstance(arr, (str, bytes, dict)):
        raise InvalidTypeError(f"{name}: expected a 2-D array of embeddings, got {type(arr).__name__}")
    if isinstance(arr, np.ndarray) and arr.dtype == object:
        raise InvalidTypeError(
            f"{name}: expected numeric embeddings, got an object array (ragged rows or mixed types?)"
        )
    try:
        a = np.asarray(arr)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise InvalidInputError(f"{name}: cannot be read as a 2-D array of numbers ({exc})") from exc
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise InvalidTypeError(
            f"{name}: expected a numeric (float) array of embeddings, got dtype {a.dtype}"
            + (" (ragged rows?)" if a.dtype == object else "")
        )
    if np.issubdtype(a.dtype, np.complexfloating):
        raise InvalidTypeError(f"{name}: complex values are not embeddings (dtype {a.dtype})")
    if a.ndim != 2:
        raise InvalidInputError(
            f"{name}: expected a 2-D array of shape (rows, dimensions), got {a.ndim}-D shape {a.shape}"
        )
    if a.shape[0] < min_rows:
        if a.shape[0] == 0:
            raise InvalidInputError(f"{name}: is empty (0 rows); at least {min_rows} row(s) are needed")
        raise InvalidInputError(f"{name}: has {a.shape[0]} rows; at least {min_rows} are needed")
    if a.shape[1] == 0:
        raise InvalidInputError(f"{name}: has 0 columns; embeddings need at least one dimension")
    if dim is not None and a.shape[1] != dim:
        raise InvalidInputError(f"{name}: has dimension {a.shape[1]}, expected {dim} (to match the other input)")
    if dtype is None:
        dtype = np.float64 if a.dtype == np.float64 else np.float32
    out: np.ndarray = np.ascontiguousarray(a, dtype=dtype)
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        col = int(np.flatnonzero(~np.isfinite(out[bad]))[0])
        what = "NaN" if np.isnan(out[bad, col]) else "inf"
        src = a[bad, col]
        if np.isfinite(src):  # finite in the input but overflowed on conversion
            what = f"{src!r}, which overflows {np.dtype(dtype).name}"
        raise InvalidInputError(
            f"{name}: row {bad + row_offset} column {col} is {what}; embeddings must be finite "
            f"({int((~finite).sum())} bad row(s) in all)"
        )
    return out


def check_target_fits(target_rows: int, target_dim: int, pool_dim: int, k: int, *, target: str = "target",
                      pool: str = "the pool") -> None:
    """The target has the pool's dimension and more than ``k`` rows (the k-NN estimate needs them); ``target`` and
    ``pool`` name them in the message (e.g. ``"target: t.npy"``, ``"the pool p.npy"``)."""
    if target_dim != pool_dim:
        raise InvalidInputError(f"{target} has dimension {target_dim} but {pool} has {pool_dim}")
    if target_rows <= k:
        raise InvalidInputError(f"{target} has {target_rows} rows; more than k={k} are needed")


def check_int(value: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Check an integer parameter lies in ``[low, high]`` (either bound optional)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidParameterError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if low is not None and v < low:
        raise InvalidParameterError(f"{name} must be >= {low}, got {v}")
    if high is not None and v > high:
        raise InvalidParameterError(f"{name} must be <= {high}, got {v}")
    return v


def check_real(value: Any, name: str, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
    """Check a finite real parameter lies in the given interval (open or closed at each end)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise InvalidParameterError(f"{name} must be finite, got {v}")
    if low is not None and (v < low or (low_open and v == low)):
        raise InvalidParameterError(f"{name} must be {'>' if low_open else '>='} {low}, got {v}")
    if high is not None and (v > high or (high_open and v == high)):
        raise InvalidParameterError(f"{name} must be {'<' if high_open else '<='} {high}, got {v}")
    return v


def check_fraction(value: Any, name: str, *, allow_zero: bool = True) -> float:
    """Check a parameter is a fraction in [0, 1] (or (0, 1] when ``allow_zero`` is false)."""
    return check_real(value, name, low=0.0, high=1.0, low_open=not allow_zero)


def check_choice(value: Any, name: str, choices: Iterable[str]) -> str:
    """Check a string parameter is one of ``choices``; the error lists the valid names."""
    opts = list(choices)
    if not isinstance(value, str) or value not in opts:
        raise InvalidParameterError(f"{name} must be one of {', '.join(repr(c) for c in opts)}; got {value!r}")
    return value


def check_pair(low: Any, high: Any, names: tuple[str, str]) -> tuple[float, float]:
    """Check two reals with ``low < high``."""
    lo = check_real(low, names[0])
    hi = check_real(high, names[1])
    if not lo < hi:
        raise InvalidParameterError(f"{names[0]} must be less than {names[1]}, got {lo} and {hi}")
    return lo, hi


#: The image files an image folder holds (:func:`gioselect.embed.images.load_images` reads them; hidden files are
#: skipped).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _holds_images(folder: str, look: int = 1000) -> bool:
    """Whether one of the first ``look`` entries of ``folder`` is an image file :data:`IMAGE_SUFFIXES` names, as
    ``gioselect embed`` reads them."""
    try:
        with os.scandir(folder) as it:
            for i, entry in enumerate(it):
                if i >= look:
                    break
                if entry.name.lower().endswith(IMAGE_SUFFIXES) and not entry.name.startswith("."):
                    return True
    except OSError:
        return False
    return False


def check_input_path(path: Any, what: str, *, allow_dir: bool = False) -> None:
    """Check that an input file can be opened; the message says what is wrong with it.

    Raises
    ------
    InvalidInputError
        Missing, a dangling link or a link loop, a folder (unless ``allow_dir``), or unreadable.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        if os.path.lexists(p):
            try:
                os.stat(p)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise InvalidInputError(
                        f"{what}: {p} is a symbolic link loop (it points back to itself); give the real file"
                    ) from exc
            raise InvalidInputError(
                f"{what}: {p} is a symbolic link whose target {os.readlink(p)!r} does not exist"
            )
        parent = os.path.dirname(os.path.abspath(p))
        while parent and not os.path.lexists(parent):
            parent = os.path.dirname(parent)
        if parent and os.path.isfile(parent):
            raise InvalidInputError(f"{what}: {p} does not exist ({parent} is a file, not a folder)")
        raise InvalidInputError(f"{what}: {p} does not exist")
    if os.path.isdir(p):
        if not allow_dir:
            hint = ""
            if _holds_images(p):
                hint = (f"; a folder of images is embedded first (gioselect embed --input {p} --out <file>.npy), "
                        "then that file is the input")
            raise InvalidInputError(f"{what}: {p} is a folder, not a file{hint}")
        return
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise InvalidInputError(f"{what}: {p} cannot be read ({exc.strerror or exc})") from exc


def _all_rows_identical(arr: Any, block_rows: int = 65536) -> bool:
    """Whether every row equals the first (streamed in blocks, stops at the first differing block)."""
    n = int(arr.shape[0])
    if n < 2:
        return False
    first = np.asarray(arr[0])
    for start in range(0, n, block_rows):
        if not (np.asarray(arr[start:start + block_rows]) == first).all():
            return False
    return True


def result_warnings(*, pool_rows: int, selected_rows: int, candidates: Any, target: Any, clusters: int,
                    quantized: bool, asked_all: bool = False, excluded_rows: int = 0,
                    budget_given: bool = False, stop_reason: str | None = None) -> list[str]:
    """Warnings about a degenerate selection, read from the result itself (whatever the stop rule was).

    Nothing selected (``excluded_rows``: pool rows the exclusion set blocked; ``budget_given``: a row budget was
    asked for; ``stop_reason``: the run's), the whole pool selected, all candidates (rows or centroids)
    identical, all target rows identical, and ``clusters`` >= the pool's rows (quantisation silently off).
    """
    out: list[str] = []
    if selected_rows == 0 and excluded_rows >= pool_rows > 0:
        out.append(f"nothing was selected (0 rows): --exclude blocked all {pool_rows} pool rows (each is a "
                   "near-duplicate of an exclusion row), so nothing was left to pick; check --exclude and "
                   "--exclude-threshold")
    elif selected_rows == 0 and budget_given:  # no stop rule fires before a budget: advising one cannot help
        out.append("nothing was selected (0 rows) although a budget was given: --max-iter or the exclusion set "
                   "allowed no pick")
    elif selected_rows == 0 and stop_reason not in (None, "auto-f1", "auto", "max_iter", "pool_exhausted"):
        out.append(f"nothing was selected (0 rows): the stop rule fired before any pick was kept (stop reason "
                   f"{stop_reason!r}); try another --stop, or --budget N to select N rows anyway")
    elif selected_rows == 0:
        out.append("nothing was selected (0 rows): the automatic size found no target-like pool row, the start "
                   "set already sits closer to the target than any pool row, or --max-iter/--budget allowed no "
                   "pick (pass --budget N to select N rows anyway)")
    elif selected_rows >= pool_rows and not asked_all:  # not when a budget asked for every row
        why = ("the automatic size judged every pool row target-like (is the pool drawn like the target?)"
               if stop_reason == "auto-f1" else "the stopping rule never fired")
        out.append(f"the whole pool was selected ({selected_rows} of {pool_rows} rows): the selection is no "
                   f"selection; {why} (try --budget, --max-iter or another --stop)")
    if _all_rows_identical(candidates):
        what = "centroids" if quantized else "pool rows"
        out.append(f"all {int(candidates.shape[0])} {what} are identical: the pool holds one distinct point, so "
                   "there is nothing to choose between")
    elif quantized and int(candidates.shape[0]) == 1 and clusters == 1:
        out.append("--clusters 1 quantised the pool into a single cluster: GIO had one candidate, so nothing was "
                   "chosen between (the selection is that cluster's rows, or a random part of them with a budget); "
                   "use more clusters or --clusters 0")
    elif quantized and int(candidates.shape[0]) == 1:
        out.append("the pool quantised into a single cluster: its rows are (nearly) identical")
    if _all_rows_identical(target):
        out.append(f"all {int(target.shape[0])} target rows are identical: the k-NN estimate of the target "
                   "is degenerate")
    if clusters > 0 and not quantized and clusters >= pool_rows:
        out.append(f"--clusters {clusters} >= the pool's {pool_rows} rows: quantisation is off and GIO runs on "
                   "the rows themselves (pass --clusters 0 to say so)")
    return out
