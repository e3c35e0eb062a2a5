"""Exceptions raised by gioselect.

Every error the library raises on purpose derives from :class:`GIOError`, so callers can catch them all;
each also derives from the built-in type a Python user would expect (``ValueError``, ``TypeError``,
``ImportError``), so generic handlers keep working.
"""

from __future__ import annotations

__all__ = [
    "GIOError",
    "InvalidInputError",
    "InvalidParameterError",
    "InvalidTypeError",
    "MissingDependencyError",
    "OutputExistsError",
    "OutputLockedError",
    "ResumeError",
    "SelectionWarning",
]


class GIOError(Exception):
    """Base class of every error gioselect raises on purpose."""


class InvalidInputError(GIOError, ValueError):
    """Input data is malformed: wrong shape, non-finite values, dimension mismatch, empty, unreadable."""


class InvalidTypeError(GIOError, TypeError):
    """Input has the wrong type or dtype (for example strings where floats are expected)."""


class InvalidParameterError(GIOError, ValueError):
    """A parameter is out of its range or is not one of the accepted names."""


class MissingDependencyError(GIOError, ImportError):
    """An optional dependency is not installed; the message says how to install it."""


class OutputExistsError(GIOError, FileExistsError):
    """The output location exists and overwriting was not asked for."""


class ResumeError(GIOError, ValueError):
    """A run cannot be resumed: no checkpoint, or the checkpoint belongs to other inputs or parameters."""


class OutputLockedError(GIOError, RuntimeError):
    """Another gioselect run holds the lock of the same output (``OUT.partial.lock``)."""


class NotFittedError(GIOError, ValueError, AttributeError):
    """A fitted attribute or method of an estimator was used before ``fit`` (as scikit-learn's NotFittedError)."""


class SelectionWarning(UserWarning):
    """A degenerate selection in Python (nothing, or the whole pool, selected): :meth:`GIOSelector.fit` warns
    with it; the command line says the same in stderr, the manifest and the report, and exits 3."""
