"""Writes ``bbc_sample.npz``: a small real sample of BBC News sentence embeddings for the start-set tests.

all-MiniLM-L6-v2 embeddings (384-D, unit norm, stored as float16) from ``experiments/common.py``'s corpus: a pool
of 40 sentences from each of the five domains (``pool``, ``pool_domain``) and a target of 40 ``tech`` sentences
from articles none of the pool's sentences come from (``target``). Run from the repository root:
``PYTHONPATH=src python tests/data/make_bbc_sample.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))

from common import DOMAINS, bbc_corpus, bbc_corpus_embeddings  # noqa: E402


def main() -> None:
    recs = bbc_corpus()
    emb = bbc_corpus_embeddings(recs)
    dom = np.array([r["domain"] for r in recs])
    art = np.array([f"{r['domain']}/{r['article']}" for r in recs])
    rng = np.random.default_rng(17)
    tech_arts = np.unique(art[dom == "tech"])
    held = rng.choice(tech_arts, size=20, replace=False)
    in_t = np.isin(art, held)
    target = rng.choice(np.flatnonzero(in_t), 40, replace=False)
    pool = np.concatenate([rng.choice(np.flatnonzero((dom == d) & ~in_t), 40, replace=False) for d in DOMAINS])
    pool = rng.permutation(pool)
    np.savez_compressed(Path(__file__).with_name("bbc_sample.npz"), pool=emb[pool].astype(np.float16),
                        pool_domain=dom[pool], target=emb[target].astype(np.float16))


if __name__ == "__main__":
    main()
