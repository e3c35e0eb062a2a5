"""The peers: DSIR (hashed n-gram importance resampling) and facility location, against closed forms and oracles."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from gioselect.errors import InvalidInputError, InvalidParameterError, InvalidTypeError
from gioselect.peers import dsir, dsir_log_weights, facility_location, hashed_ngrams


def bucket(s: str, nb: int) -> int:
    return int(hashlib.sha256(s.encode("utf-8")).hexdigest(), 16) % nb


def random_texts(n: int, seed: int, vocab: list[str], lo: int = 3, hi: int = 14) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = rng.choice(vocab, size=int(rng.integers(lo, hi)))
        out.append(" ".join(words) + rng.choice([".", "!", "?", ", ok."]))
    return out


VOCAB_A = [f"alpha{i}" for i in range(40)] + ["the", "a", "of"]
VOCAB_B = [f"beta{i}" for i in range(40)] + ["the", "a", "of"]


# ---------------------------------------------------------------------------------------------------------
# DSIR
# ---------------------------------------------------------------------------------------------------------
def test_hashed_ngrams_are_sha256_buckets_of_wordpunct_unigrams_and_bigrams() -> None:
    b, lengths = hashed_ngrams(["Hello, World!", ""], ngrams=2, num_buckets=997)
    words = ["hello", ",", "world", "!"]
    expect = [bucket(w, 997) for w in words] + [bucket(f"{u} {v}", 997) for u, v in itertools.pairwise(words)]
    assert b.tolist() == expect
    assert lengths.tolist() == [4, 0]


def test_dsir_log_weights_closed_form() -> None:
    nb = 1000
    assert bucket("apple", nb) != bucket("pear", nb)
    w, lengths = dsir_log_weights(["apple", "pear", ""], ["apple"], ngrams=1, num_buckets=nb)
    # pool model: apple 1/2, pear 1/2; target model: apple 1
    assert w[0] == pytest.approx(math.log(1 + 1e-8) - math.log(0.5 + 1e-8), rel=1e-12)
    assert w[1] == pytest.approx(math.log(1e-8) - math.log(0.5 + 1e-8), rel=1e-12)
    assert w[2] == 0.0 and lengths.tolist() == [1, 1, 0]


def test_dsir_picks_the_target_like_text_and_respects_the_budget() -> None:
    pool = ["apple", "pear", "plum", "fig"]
    for seed in range(10):  # log-weight gap of ~18: the Gumbel noise never overturns it in practice
        ids = dsir(pool, ["apple"], 1, seed=seed, ngrams=1)
        assert ids.tolist() == [0] and ids.dtype == np.int64
    ids = dsir(pool, ["apple"], 10, seed=3)
    assert sorted(ids.tolist()) == [0, 1, 2, 3]
    assert dsir(pool, ["apple"], 0).shape == (0,)


def test_dsir_first_pick_is_distributed_as_the_importance_weights() -> None:
    # Gumbel top-k: the first pick is row i with probability w_i / sum w.
    pool = ["apple", "pear", "apple pear"]
    target = ["apple pear pear"]
    logw, _ = dsir_log_weights(pool, target, ngrams=1)
    p = np.exp(logw - logw.max())
    p /= p.sum()
    n = 3000
    first = np.bincount([int(dsir(pool, target, 1, seed=s, ngrams=1)[0]) for s in range(n)], minlength=3)
    sd = np.sqrt(n * p * (1 - p))
    assert np.all(np.abs(first - n * p) < 5 * sd + 1)


def test_dsir_min_example_length_filters_short_texts(caplog: pytest.LogCaptureFixture) -> None:
    pool = ["apple", "apple apple apple", "pear pear pear pear"]
    ids = dsir(pool, ["apple"], 3, min_example_length=3, top_k=True)
    assert ids.tolist() == [1, 2]
    assert "only 2 of 3" in caplog.text


@pytest.mark.parametrize(("pool", "target", "kw", "err", "fragment"), [
    ("just one string", ["a"], {}, InvalidTypeError, "pool_texts"),
    (["a", 3], ["a"], {}, InvalidTypeError, "row 1 is int"),
    ([], ["a"], {}, InvalidInputError, "pool_texts: is empty"),
    (["a"], [], {}, InvalidInputError, "target_texts: is empty"),
    (["  ", ""], ["a"], {}, InvalidInputError, "pool_texts: no text"),
    (["a"], [" "], {}, InvalidInputError, "target_texts: no text"),
    (["a"], ["a"], {"budget": -1}, InvalidParameterError, "budget"),
    (["a"], ["a"], {"ngrams": 0}, InvalidParameterError, "ngrams"),
    (["a"], ["a"], {"num_buckets": 0}, InvalidParameterError, "num_buckets"),
])
def test_dsir_bad_input(pool: object, target: object, kw: dict[str, int], err: type, fragment: str) -> None:
    kw = {"budget": 1, **kw}
    with pytest.raises(err, match=fragment):
        dsir(pool, target, **kw)  # type: ignore[arg-type]


def _package_weights(pool: list[str], target: list[str], d: Path, **kw: int) -> tuple[np.ndarray, object]:
    ds_mod = pytest.importorskip("data_selection")
    for name, texts in (("pool", pool), ("target", target)):
        with open(d / f"{name}.jsonl", "w") as fh:
            for t in texts:
                fh.write(json.dumps({"text": t}) + "\n")
    model = ds_mod.HashedNgramDSIR([str(d / "pool.jsonl")], [str(d / "target.jsonl")], cache_dir=str(d / "cache"),
                                   num_proc=1, **kw)
    model.fit_importance_estimator(num_tokens_to_fit="all")
    model.compute_importance_weights()
    return np.load(d / "cache" / "log_importance_weights" / "0.npy"), model


@pytest.mark.parametrize(("ngrams", "num_buckets"), [(2, 10_000), (1, 500), (3, 2000)])
def test_dsir_matches_the_data_selection_package(ngrams: int, num_buckets: int, tmp_path: Path) -> None:
    pool = random_texts(60, 1, VOCAB_A) + random_texts(60, 2, VOCAB_B) + ["Élan, naïve café's — ok?!", ""]
    target = random_texts(25, 3, VOCAB_A)
    w_pkg, model = _package_weights(pool, target, tmp_path, ngrams=ngrams, num_buckets=num_buckets,
                                    min_example_length=0)
    w, _ = dsir_log_weights(pool, target, ngrams=ngrams, num_buckets=num_buckets)
    np.testing.assert_allclose(w, w_pkg, rtol=1e-12, atol=1e-9)
    # The deterministic top-k set of the package's resample step (no ties at the boundary here).
    k = 30
    srt = np.sort(w)[::-1]
    assert srt[k - 1] - srt[k] > 1e-6
    model.resample(out_dir=str(tmp_path / "out"), num_to_sample=k, cache_dir=str(tmp_path / "rc"), top_k=True)
    chosen = [json.loads(line)["text"] for line in (tmp_path / "out" / "0.jsonl").read_text().splitlines()]
    mine = dsir(pool, target, k, ngrams=ngrams, num_buckets=num_buckets, top_k=True)
    assert sorted(chosen) == sorted(pool[i] for i in mine)
    # The target's words are VOCAB_A's (rows 0-59). Not every pick need be: a short text (even the empty one,
    # log weight 0) can outrank long ones, DSIR's known pull towards short texts.
    assert np.isin(mine, np.arange(60)).sum() >= 2 * k // 3


def test_dsir_length_filter_matches_the_package(tmp_path: Path) -> None:
    pool = random_texts(80, 5, VOCAB_A, lo=1, hi=9) + random_texts(40, 6, VOCAB_B, lo=1, hi=9)
    target = random_texts(20, 7, VOCAB_A)
    _, model = _package_weights(pool, target, tmp_path, min_example_length=5)
    mine = dsir(pool, target, 20, min_example_length=5, top_k=True)
    model.resample(out_dir=str(tmp_path / "out"), num_to_sample=20, cache_dir=str(tmp_path / "rc"), top_k=True)
    chosen = [json.loads(line)["text"] for line in (tmp_path / "out" / "0.jsonl").read_text().splitlines()]
    assert sorted(chosen) == sorted(pool[i] for i in mine)


# ---------------------------------------------------------------------------------------------------------
# facility location
# ---------------------------------------------------------------------------------------------------------
def _unit(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    n = np.linalg.norm(a, axis=1, keepdims=True)
    n[n == 0] = 1
    return a / n


def naive_greedy(pool: np.ndarray, target: np.ndarray, budget: int) -> list[int]:
    """Plain greedy facility location on the full similarity matrix; stops at zero gain."""
    s = np.maximum(_unit(pool) @ _unit(target).T, 0.0)
    best = np.zeros(s.shape[1])
    used = np.zeros(s.shape[0], dtype=bool)
    out: list[int] = []
    for _ in range(budget):
        g = np.maximum(s - best, 0.0).sum(axis=1)
        g[used] = -1.0
        j = int(np.argmax(g))
        if g[j] <= 0:
            break
        out.append(j)
        used[j] = True
        best = np.maximum(best, s[j])
    return out


def test_facility_closed_form_with_tie_and_fill() -> None:
    r = math.sqrt(0.5)
    pool = np.array([[1, 0], [0, 1], [r, r], [-1, 0]], dtype=np.float32)
    target = np.array([[1, 0], [0, 1]], dtype=np.float32)
    # gains: mid 2r > 1 = axes; then both axes gain 1 - r (tie: lower row); then every target row has its
    # nearest row, the cover restarts, and [-1, 0] (similarity 0 to both) is filled last.
    assert facility_location(pool, target, 1).tolist() == [2]
    assert facility_location(pool, target, 4).tolist() == [2, 0, 1, 3]
    assert facility_location(pool, target, 9, block_rows=1).tolist() == [2, 0, 1, 3]


def test_facility_restarts_the_cover_when_every_gain_is_zero() -> None:
    pool = np.array([[0, 1], [1, 0], [0.9, 0.1], [0.8, -0.6]], dtype=np.float32)
    target = np.array([[1, 0]], dtype=np.float32)
    # first cover: row 1 (cos 1); restart: row 2 (cos .994), then row 3 (.8), then row 0 (cos 0) last.
    assert facility_location(pool, target, 4).tolist() == [1, 2, 3, 0]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("block_rows", "memory_budget"), [
    (1, None), (None, None),  # the similarity matrix is kept
    (7, 20_000), (None, 8 * (25 + 6) * 10),  # it does not fit (150 x 25 x 8 bytes): recomputed in blocks
])
def test_facility_equals_naive_greedy(seed: int, block_rows: int | None, memory_budget: int | None) -> None:
    rng = np.random.default_rng(seed)
    pool = rng.normal(size=(150, 6)).astype(np.float32)
    target = rng.normal(size=(25, 6)).astype(np.float32) + 0.3
    ref = naive_greedy(pool, target, 150)
    assert 0 < len(ref) < 150
    got = facility_location(pool, target, len(ref), block_rows=block_rows, memory_budget=memory_budget)
    assert got.tolist() == ref
    full = facility_location(pool, target, 150, block_rows=block_rows, memory_budget=memory_budget)
    assert full[: len(ref)].tolist() == ref and np.unique(full).shape[0] == 150


@pytest.mark.slow  # apricot compiles its numba kernels on every fit (about 10 s)
def test_facility_equals_apricot_naive_greedy() -> None:
    apricot = pytest.importorskip("apricot")
    rng = np.random.default_rng(10)
    pool = rng.normal(size=(120, 5)).astype(np.float32)
    target = rng.normal(size=(30, 5)).astype(np.float32)
    sim = np.maximum(_unit(pool) @ _unit(target).T, 0.0)
    b = len(naive_greedy(pool, target, 120))  # apricot's naive optimiser, before gains vanish
    sel = apricot.FacilityLocationSelection(b, metric="ignore", optimizer="naive").fit(sim)
    assert facility_location(pool, target, b, memory_budget=4096).tolist() == [int(i) for i in sel.ranking]


def test_facility_on_a_memmap_and_validation(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(50, 4)).astype(np.float32)
    target = rng.normal(size=(9, 4)).astype(np.float32)
    np.save(tmp_path / "p.npy", pool)
    mm = np.load(tmp_path / "p.npy", mmap_mode="r")
    want = facility_location(pool, target, 12).tolist()
    assert facility_location(mm, target, 12, block_rows=8).tolist() == want
    assert facility_location(mm, target, 12, memory_budget=1000).tolist() == want  # streamed, 2-row blocks
    assert facility_location(pool, target, 0).shape == (0,)
    assert facility_location(pool, target, 80).shape == (50,)
    with pytest.raises(InvalidInputError, match="target"):
        facility_location(pool, target[:, :3], 5)
    with pytest.raises(InvalidParameterError, match="budget"):
        facility_location(pool, target, -1)
    with pytest.raises(InvalidParameterError, match="memory_budget"):
        facility_location(pool, target, 5, memory_budget=16)
    bad = pool.copy()
    bad[33, 1] = np.nan
    with pytest.raises(InvalidInputError, match="33"):
        facility_location(bad, target, 5, block_rows=10)
    with pytest.raises(InvalidInputError, match="33"):
        facility_location(bad, target, 5, memory_budget=2000)
