"""The ONNX Runtime backend: the model's transformer exported once, locally, then run with ONNX Runtime and the
model's own tokenizer, pooling and normalisation (see :mod:`gioselect.embed`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidParameterError, MissingDependencyError
from ..io.files import atomic_path
from ..validation import check_int
from .models import INT8_RECIPE, TEXT_INSTALL_HINT, import_text_stack, missing_text_dependency

__all__ = ["ONNX_BATCH_TOKENS", "OnnxModel", "load_onnx_model", "onnx_cache_dir"]

logger = logging.getLogger(__name__)


#: Version of the export recipe below; part of the exported model's folder name, so a changed recipe re-exports.
#: v2: the transformer runs its "eager" attention while traced (v1 traced the SDPA path), the graph pattern
#: ONNX Runtime's transformer optimiser fuses into its Attention operator (:func:`_fuse_onnx`).
_ONNX_EXPORT_VERSION = "v2"
_ONNX_OPSET = 17
#: Version of the fusion recipe (:func:`_fuse_onnx`); part of the fused file's name (``model-fusedv1.onnx``),
#: so a changed recipe never reuses a stale file.
_FUSED_VERSION = "v1"
#: Default token budget of one ONNX Runtime call: a batch is run in slices of at most this many tokens,
#: padding included (rows x padded width; at least one row). Small slices keep the activations in cache: on
#: the 2-core test machine 512 tokens (about 16 demo sentences) took about 25% less CPU than 64 rows
#: (BENCHMARKS.md).
ONNX_BATCH_TOKENS = 512
_POOLING_MODES = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}


def onnx_cache_dir() -> Path:
    """Folder of the exported ONNX models: ``$GIOSELECT_ONNX_DIR`` if set, else ``~/.cache/gioselect/onnx``.

    Each model gets a sub-folder named by its :func:`resolve_model` id (and the export recipe's version) that
    holds ``model.onnx`` (about the size of the model's weights: 90 MB for all-MiniLM-L6-v2), the fused copy
    the ``"onnx"`` backend runs (``model-fusedv1.onnx``, same size) and, once the ``"onnx-int8"`` backend has
    run, ``model-int8v2.onnx``. Deleting the folder is safe: the next run exports again (seconds).
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
    torch, _ = import_text_stack()
    try:
        import onnx  # noqa: F401  (torch.onnx writes the file through it)
        import transformers
    except ImportError as exc:
        raise missing_text_dependency(str(getattr(exc, "name", None) or "onnx"), exc) from exc
    import inspect
    import warnings

    t0 = time.perf_counter()
    hf_logging: Any = transformers.utils.logging
    bars_were_on = bool(hf_logging.is_progress_bar_enabled())
    hf_logging.disable_progress_bar()
    try:
        try:
            # Eager attention: the plain MatMul/Softmax graph that ONNX Runtime's optimiser fuses (the SDPA
            # path's graph it does not recognise). The same arithmetic, so the same vectors to float32 rounding.
            hf_model = transformers.AutoModel.from_pretrained(str(spec.transformer_dir),
                                                              attn_implementation="eager").float()
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
    with atomic_path(dest) as tmp, warnings.catch_warnings(), torch.no_grad():  # renamed into place when whole
        warnings.simplefilter("ignore")  # tracer warnings about Python branches on shapes (all static here)
        torch.onnx.export(_Hidden(hf_model), dummy, str(tmp), input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes=axes, opset_version=_ONNX_OPSET, dynamo=False)
    logger.info("exported %s to ONNX (%s) in %.1f s", spec.transformer_dir, dest, time.perf_counter() - t0)


def _fuse_onnx(spec: _OnnxSpec, src: Path, dest: Path) -> None:
    """Write a fused copy of the exported model ``src`` to ``dest``, atomically, with ONNX Runtime's transformer
    optimiser (``onnxruntime.transformers.optimizer.optimize_model``, ``model_type="bert"``, shipped in the
    onnxruntime wheel): each layer's attention becomes one ``Attention`` operator, and LayerNorm, GELU and the
    residual adds become ``SkipLayerNormalization`` / ``BiasGelu`` / ``EmbedLayerNormalization``. A local
    computation: nothing is downloaded. The number of heads and the hidden size come from the model's
    ``config.json``.
    """
    try:
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError as exc:
        raise missing_text_dependency(str(getattr(exc, "name", None) or "onnxruntime.transformers"), exc) from exc
    cfg_path = spec.transformer_dir / "config.json"
    cfg = _read_json(cfg_path) if cfg_path.is_file() else {}
    heads, hidden = cfg.get("num_attention_heads", 0), cfg.get("hidden_size", 0)
    if not (isinstance(heads, int) and isinstance(hidden, int) and heads >= 0 and hidden >= 0):
        raise InvalidParameterError(
            f"model file {str(cfg_path)!r} gives num_attention_heads={heads!r} and hidden_size={hidden!r}; "
            "expected non-negative integers"
        )
    t0 = time.perf_counter()
    # The optimiser's modules (imported as top-level names: onnx_model, fusion_*, ...) log every fusion and the
    # save at INFO/WARNING; the library's own log line below says what was fused.
    olog = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)
            if n.startswith(("onnx_model", "fusion_", "optimizer", "onnxruntime"))]
    levels = [lg.level for lg in olog]
    for lg in olog:
        lg.setLevel(max(lg.level, logging.ERROR))
    try:
        opt = optimize_model(str(src), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0)
        stats = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
        with atomic_path(dest) as tmp:
            opt.save_model_to_file(str(tmp))
    finally:
        for lg, lvl in zip(olog, levels, strict=True):
            lg.setLevel(lvl)
    if not stats.get("Attention"):
        logger.warning("the ONNX optimiser fused no attention layer of %s (fused: %s); it runs, more slowly",
                       src, stats)
    logger.info("fused %s into %s (%s) in %.1f s", src, dest, stats, time.perf_counter() - t0)


def _int8_nodes(model: Any) -> list[str]:
    """The MatMuls of an exported graph that the int8 recipe quantises: each layer's feed-forward
    up-projection (``.../intermediate/dense/MatMul``, the name torch.onnx gives a BERT-style encoder), the
    largest weight matrix of a layer (4x the hidden size wide).

    Everything else stays float32. Quantising the feed-forward down-projection as well lowered the cosine to the
    float32 vectors to 0.984 on the demo's sentences; the query, key and value projections as well (recipe v1)
    to 0.9891 on one demo sentence; the up-projections alone keep every demo sentence above 0.99
    (BENCHMARKS.md).
    """
    weights = {init.name for init in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type != "MatMul" or len(node.input) != 2 or node.input[1] not in weights:
            continue
        if "/intermediate/dense/" in node.name:
            out.append(node.name)
    return out


def _quantize_onnx(src: Path, dest: Path) -> None:
    """Write an int8 copy of the exported model ``src`` to ``dest`` (dynamic quantisation, int8 weights per
    output channel, on :func:`_int8_nodes`), atomically. A local computation: nothing is downloaded.
    """
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise missing_text_dependency(str(getattr(exc, "name", None) or "onnxruntime.quantization"), exc) from exc
    t0 = time.perf_counter()
    nodes = _int8_nodes(onnx.load(str(src), load_external_data=False))
    if not nodes:
        raise InvalidParameterError(
            f"the exported model {str(src)!r} has none of the feed-forward up-projection MatMuls the "
            "'onnx-int8' backend quantises (it knows BERT-style encoders only); use --embed-backend onnx"
        )
    qlog = logging.getLogger()  # quantize_dynamic warns on the root logger about pre-processing; not useful here
    level = qlog.level
    qlog.setLevel(max(level, logging.ERROR))
    try:
        with atomic_path(dest) as tmp:
            quantize_dynamic(str(src), str(tmp), nodes_to_quantize=nodes, per_channel=True,
                             weight_type=QuantType.QInt8)
    finally:
        qlog.setLevel(level)
    logger.info("quantised %d MatMuls of %s to int8 (%s) in %.1f s", len(nodes), src, dest,
                time.perf_counter() - t0)


class OnnxModel:
    """An ONNX Runtime session on an exported model, with its tokenizer and pooling."""

    def __init__(self, session: Any, tokenizer: Any, spec: _OnnxSpec, workers: int = 1) -> None:
        self.session = session
        self.workers = max(1, int(workers))
        self.tokenizer = tokenizer
        self.spec = spec
        self.input_names = [i.name for i in session.get_inputs()]
        pad = tokenizer.padding or {}
        self.pad_id = int(pad.get("pad_id", 0))
        self.pad_type_id = int(pad.get("pad_type_id", 0))
        tokenizer.no_padding()  # batches are padded in run(), to their longest encoding
        self.dim = int(session.get_outputs()[0].shape[-1])

    def tokenize(self, texts: list[str], max_seq_length: int) -> list[Any]:
        """The texts' token encodings (the tokenizer's fast batch call), truncated, not padded."""
        tok = self.tokenizer
        tok.enable_truncation(max_length=max_seq_length)
        clean = [t.strip() for t in texts]
        if self.spec.lower_case:
            clean = [t.lower() for t in clean]
        return list(tok.encode_batch(clean))

    def run(self, encodings: list[Any], max_tokens: int = ONNX_BATCH_TOKENS) -> np.ndarray:
        """Pooled (and, when the model has a Normalize layer, unit) float32 vectors of one batch of encodings.

        The encodings are sorted by length and run in slices of at most ``max_tokens`` tokens, padding included
        (at least one encoding per slice); each slice is padded to its own longest encoding only (the attention
        mask hides the padding). Rows come back in the order of ``encodings``.
        """
        return next(self.run_batches([encodings], max_tokens))

    @staticmethod
    def slices(encodings: list[Any], max_tokens: int, max_rows: int | None = None) -> list[np.ndarray]:
        """Positions in ``encodings``, longest first, cut into slices of at most ``max_tokens`` padded tokens
        (and at most ``max_rows`` encodings, when given; at least one)."""
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")
        cap = len(order) if max_rows is None else int(max_rows)
        parts = []
        a = 0
        while a < len(order):
            # the first encoding of a slice is its longest
            rows = max(1, min(cap, int(max_tokens) // int(lengths[order[a]])))
            parts.append(order[a:a + rows])
            a += rows
        return parts

    def run_batches(self, batches: Sequence[list[Any]], max_tokens: int = ONNX_BATCH_TOKENS
                    ) -> Iterator[np.ndarray]:
        """:meth:`run` on each batch, in order, the slices of all of them spread over ``workers`` threads.

        Each ONNX Runtime call runs on one core (the session has one intra-op thread) and ``workers`` calls run
        at once: on small calls this beats splitting every call over the cores, whose threads wait for each
        other at every operator (measured, BENCHMARKS.md). Every slice is the same call either way, so the
        vectors do not depend on ``workers``.
        """
        check_int(max_tokens, "max_tokens", low=1)
        plans = [(encs, self.slices(encs, max_tokens)) for encs in batches]
        if self.workers == 1:
            for encs, parts in plans:
                yield self._gather(encs, parts, (self._run_padded([encs[i] for i in p]) for p in parts))
            return
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="gioselect-onnx")
        try:  # every slice is queued at once, so no worker idles at a batch's end
            futures = [[pool.submit(self._run_padded, [encs[i] for i in p]) for p in parts] for encs, parts in plans]
            for (encs, parts), futs in zip(plans, futures, strict=True):
                yield self._gather(encs, parts, (f.result() for f in futs))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _gather(self, encodings: list[Any], parts: list[np.ndarray], vectors: Iterable[np.ndarray]) -> np.ndarray:
        out = np.empty((len(encodings), self.dim), dtype=np.float32)
        for part, vec in zip(parts, vectors, strict=True):
            out[part] = vec
        return out

    def _run_padded(self, encodings: list[Any]) -> np.ndarray:
        """One ONNX Runtime call on ``encodings``, padded to the longest; pooled (and normalised) rows."""
        lengths = [len(e.ids) for e in encodings]
        width = max(lengths)
        n = len(encodings)
        ids = np.full((n, width), self.pad_id, dtype=np.int64)
        types = np.full((n, width), self.pad_type_id, dtype=np.int64)
        attn = np.zeros((n, width), dtype=np.int64)
        for i, (e, k) in enumerate(zip(encodings, lengths, strict=True)):
            ids[i, :k] = e.ids
            types[i, :k] = e.type_ids
            attn[i, :k] = e.attention_mask
        feed_all = {"input_ids": ids, "attention_mask": attn, "token_type_ids": types}
        hidden = self.session.run(["last_hidden_state"], {n: feed_all[n] for n in self.input_names})[0]
        mask = attn.astype(np.float32)[:, :, None]
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

    def encode(self, texts: list[str], max_seq_length: int, max_tokens: int = ONNX_BATCH_TOKENS) -> np.ndarray:
        """Pooled (and, when the model has a Normalize layer, unit) float32 vectors of one batch of texts."""
        return self.run(self.tokenize(texts, max_seq_length), max_tokens)


# Sessions open in this process, by (model id, threads, int8).
_ONNX_MODELS: dict[tuple[str, int, bool], OnnxModel] = {}


def load_onnx_model(model_id: str, path: Path, threads: int, int8: bool = False) -> OnnxModel:
    """Open (once per process) the ONNX session of a model, exporting the model first if it is not cached.

    Without ``int8`` (the ``"onnx"`` backend) the session runs ``model-fusedv1.onnx`` beside the export, made
    from it once by :func:`_fuse_onnx` (the same vectors to float32 rounding, fewer and faster operators); if
    the optimiser fails on a model, the plain export runs instead (with a warning). With ``int8`` it runs
    ``model-int8v2.onnx``, made from the export once by :func:`_quantize_onnx` (the ``"onnx-int8"`` backend).
    """
    key = (model_id, threads, bool(int8))
    if key in _ONNX_MODELS:
        return _ONNX_MODELS[key]
    spec = _onnx_spec(path)
    ort = _import_onnxruntime()
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise missing_text_dependency("tokenizers", exc) from exc
    dest = onnx_cache_dir() / f"{model_id}-onnx{_ONNX_EXPORT_VERSION}" / "model.onnx"
    if not dest.is_file():
        _export_onnx(spec, dest)
    if int8:
        exported, dest = dest, dest.with_name(f"model-int8{INT8_RECIPE}.onnx")
        if not dest.is_file():
            _quantize_onnx(exported, dest)
    else:
        fused = dest.with_name(f"model-fused{_FUSED_VERSION}.onnx")
        if not fused.is_file():
            try:
                _fuse_onnx(spec, dest, fused)
            except (InvalidParameterError, MissingDependencyError):
                raise
            except Exception as exc:  # the optimiser's pattern matching is heuristic: fall back to the export
                logger.warning("ONNX Runtime's optimiser failed on %s (%s: %s); running the unfused export",
                               dest, type(exc).__name__, exc)
        if fused.is_file():
            dest = fused
    t0 = time.perf_counter()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # one core per call; `threads` calls run at once (OnnxModel.run_batches)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Every slice has its own shape, so a memory plan recorded for one call does not fit the next: planning
    # off (BENCHMARKS.md, "Text embedding").
    opts.enable_mem_pattern = False
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
    model = OnnxModel(session, tokenizer, spec, workers=threads)
    logger.info("loaded ONNX model %s in %.1f s (%d calls at once)", dest, time.perf_counter() - t0, threads)
    _ONNX_MODELS[key] = model
    return model
