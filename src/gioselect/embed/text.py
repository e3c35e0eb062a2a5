"""Texts to embeddings: :class:`TextEmbedder` (either backend), the on-disk :class:`EmbeddingCache` and
:func:`embed_texts`, which uses both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError, InvalidTypeError
from ..io.files import atomic_path
from ..validation import check_int
from .models import (
    DEFAULT_EMBED_BACKEND,
    EMBED_BACKENDS,
    backend_variant,
    import_text_stack,
    load_model,
    resolve_model,
)
from .onnx_backend import ONNX_BATCH_TOKENS, OnnxModel, load_onnx_model

__all__ = ["EmbeddingCache", "TextEmbedder", "check_texts", "embed_texts", "text_content_hash"]

logger = logging.getLogger(__name__)

#: Batches tokenised in one call of the ONNX backend (then sorted by token count): bounds the encodings held.
_TOKENIZE_BATCHES = 32

def check_texts(texts: Any, name: str = "texts") -> list[str]:
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
        Texts per batch; ``progress`` is called after each batch. sentence-transformers runs a batch in one
        forward pass; the ONNX backends cut every 32 batches' worth of texts, sorted by token count, into slices
        of at most ``onnx_batch_tokens`` tokens and ``batch_size`` texts (a slice is their batch).
    threads : int or None, default None
        Cores to use; ``None`` uses ``os.cpu_count()``. sentence-transformers: torch's CPU threads
        (``torch.set_num_threads``); the ONNX backends: ONNX Runtime calls run at once, one core each.
    normalize : bool, default True
        L2-normalise every row. With ``False`` the model's own output is returned (models that end in a
        ``Normalize`` layer, like all-MiniLM-L6-v2, still give unit rows).
    max_seq_length : int or None, default None
        Truncate texts to this many tokens; ``None`` keeps the model's setting (256 for all-MiniLM-L6-v2).
    backend : {"onnx", "onnx-int8", "sentence-transformers"}, default "onnx"
        ``"onnx"``: ONNX Runtime on the model exported locally (once, into :func:`onnx_cache_dir`);
        ``"sentence-transformers"``: ``SentenceTransformer.encode``. Both give the same vectors to float32
        rounding; see the module notes. ``"onnx-int8"``: the export with int8 weights in the feed-forward
        up-projection MatMuls (made once from the export, cached beside it): faster, with vectors that differ
        slightly (cosine to the float32 ones 0.9927 or more on the demo's sentences) and with the other texts
        of their ONNX Runtime call (activations are quantised per call; BENCHMARKS.md).
    onnx_batch_tokens : int, default :data:`~gioselect.embed.onnx_backend.ONNX_BATCH_TOKENS` (512)
        ONNX backends only: the token budget of one ONNX Runtime call (rows times padded width; a slice holds
        at least one text, so a longer text still runs). Changes speed only, not the vectors (beyond float32
        rounding).

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
        onnx_batch_tokens: int = ONNX_BATCH_TOKENS,
    ) -> None:
        self.model = model
        self.backend = backend
        self.onnx_batch_tokens = onnx_batch_tokens
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
        if self.backend.startswith("onnx"):
            return self._onnx().dim
        model, _ = load_model(self.model_path)
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        d = getter()
        if d is None:  # some models cannot tell without running
            d = int(np.asarray(model.encode(["dimension probe"], convert_to_numpy=True)).shape[1])
        return int(d)

    def _check_params(self) -> None:
        """Validate the stored parameters."""
        check_int(self.batch_size, "batch_size", low=1)
        check_int(self.onnx_batch_tokens, "onnx_batch_tokens", low=1)
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

    def _onnx(self) -> OnnxModel:
        """The ONNX session of this model (exported and opened on first use)."""
        return load_onnx_model(self.model_id, self.model_path, self._n_threads(),
                               int8=self.backend == "onnx-int8")

    def _onnx_batches(self, onnx_model: OnnxModel, items: list[str], order: np.ndarray
                      ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(row ids, vectors) of each ONNX batch.

        Texts are tokenised once, :data:`_TOKENIZE_BATCHES` x ``batch_size`` texts at a time (in the
        character-length order); the whole chunk is re-sorted by token count and cut into slices of at most
        ``onnx_batch_tokens`` tokens and ``batch_size`` texts, each padded to its own longest text
        (:meth:`OnnxModel.slices`), so no slice is cut short at a batch boundary; the slices of a chunk run
        ``threads`` at once, one core each (:meth:`OnnxModel.run_batches`). Each slice is one entry of the
        iteration (and one progress call).
        """
        length = self.max_seq_length if self.max_seq_length is not None else onnx_model.spec.max_seq_length
        bs = int(self.batch_size)
        chunk = bs * _TOKENIZE_BATCHES
        for c0 in range(0, len(items), chunk):
            rows = order[c0:c0 + chunk]
            encs = onnx_model.tokenize([items[i] for i in rows], length)
            parts = onnx_model.slices(encs, int(self.onnx_batch_tokens), bs)  # the whole chunk, longest first
            vectors = onnx_model.run_batches([[encs[j] for j in part] for part in parts], int(self.onnx_batch_tokens))
            yield from zip((rows[part] for part in parts), vectors, strict=True)

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
        items = check_texts(texts)
        self._check_params()
        n = len(items)
        bs = int(self.batch_size)
        # Longest first, as sentence-transformers does within one call: batches of similar lengths pad less.
        order = np.argsort(-np.fromiter((len(t) for t in items), dtype=np.int64, count=n), kind="stable")
        batches: Iterable[tuple[np.ndarray, np.ndarray]]
        if self.backend.startswith("onnx"):
            batches = self._onnx_batches(self._onnx(), items, order)  # the session opens here, not lazily
        else:
            torch, _ = import_text_stack()
            model, default_len = load_model(self.model_path)
            torch.set_num_threads(self._n_threads())
            # The loaded model is shared in the process, so set the length on every call.
            model.max_seq_length = self.max_seq_length if self.max_seq_length is not None else default_len

            def encode(batch: list[str]) -> np.ndarray:
                return np.asarray(model.encode(batch, batch_size=len(batch), convert_to_numpy=True,
                                               normalize_embeddings=bool(self.normalize), show_progress_bar=False))

            batches = ((order[a:a + bs], encode([items[i] for i in order[a:a + bs]])) for a in range(0, n, bs))
        out: np.ndarray | None = None
        t0 = time.perf_counter()
        for idx, batch_emb in batches:
            emb = np.asarray(batch_emb, dtype=np.float32)
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
        with atomic_path(path) as tmp:  # fsynced, renamed into place, removed on failure
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)
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
    onnx_batch_tokens: int = ONNX_BATCH_TOKENS,
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
    batch_size, threads, normalize, max_seq_length, backend, onnx_batch_tokens
        As in :class:`TextEmbedder`. ``"onnx"`` and ``"sentence-transformers"`` give the same vectors to float32
        rounding (see the module notes), so they share cache entries; ``"onnx-int8"`` has its own, per int8
        recipe.
        ``onnx_batch_tokens`` changes speed only, so it is not part of the cache key.
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
    items = check_texts(texts)
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
        backend=backend, onnx_batch_tokens=onnx_batch_tokens,
    )
    embedder._check_params()
    key = None
    if store is not None:
        # Backends that change the vectors get their own entries; the exact ones keep the key they always had.
        ident = backend_variant(backend)
        variant = {} if ident is None else {"backend": ident}
        key = store.key(
            embedder.model_id, text_content_hash(items), normalize=bool(normalize), max_seq_length=max_seq_length,
            **variant,
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
