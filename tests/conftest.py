"""Small seeded fixtures shared by the tests."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def gaussian_mixture(
    n: int, dim: int, centers: np.ndarray, weights: np.ndarray | None = None, *, scale: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` float32 points from an isotropic Gaussian mixture, and each point's component."""
    rng = np.random.default_rng(seed)
    c = len(centers)
    w = np.full(c, 1.0 / c) if weights is None else np.asarray(weights, dtype=float) / np.sum(weights)
    comp = rng.choice(c, size=n, p=w)
    x = centers[comp] + rng.normal(0.0, scale, size=(n, dim))
    return x.astype(np.float32), comp


@pytest.fixture
def mixture8() -> dict[str, np.ndarray]:
    """8-D mixture: pool of 160 from 4 components, target of 60 from components 0 and 1."""
    rng = np.random.default_rng(7)
    centers = rng.normal(0.0, 4.0, size=(4, 8))
    pool, pool_comp = gaussian_mixture(160, 8, centers, seed=1)
    target, _ = gaussian_mixture(60, 8, centers[:2], seed=2)
    return {"pool": pool, "pool_comp": pool_comp, "target": target, "centers": centers}


@pytest.fixture
def blobs2d() -> dict[str, np.ndarray]:
    """2-D: pool of 100 from N((3,4), 0.5 I), target of 80 from the same distribution."""
    rng = np.random.default_rng(3)
    pool = rng.multivariate_normal([3, 4], np.eye(2) * 0.5, size=100).astype(np.float32)
    target = rng.multivariate_normal([3, 4], np.eye(2) * 0.5, size=80).astype(np.float32)
    return {"pool": pool, "target": target}


def brute_greedy_mmd(pool: np.ndarray, target: np.ndarray, budget: int, h: float, *, ties: float = 0.0) -> list[int]:
    """Brute-force greedy MMD (the oracle of kernel herding): each step adds the unused candidate giving the smallest
    biased MMD^2(S, X) with a Gaussian kernel of bandwidth ``h``; candidates within ``ties`` of the smallest are
    ties, resolved to the lowest row (``ties=0``: the first exact minimum)."""
    from scipy.spatial.distance import cdist

    p = pool.astype(np.float64)
    x = target.astype(np.float64)
    kpp = np.exp(-cdist(p, p, "sqeuclidean") / (2 * h * h))
    kpx = np.exp(-cdist(p, x, "sqeuclidean") / (2 * h * h))
    kxx = np.exp(-cdist(x, x, "sqeuclidean") / (2 * h * h)).mean()
    chosen: list[int] = []
    for _ in range(budget):
        vals = np.full(len(p), np.inf)
        for c in range(len(p)):
            if c not in chosen:
                s = [*chosen, c]
                vals[c] = kpp[np.ix_(s, s)].mean() - 2 * kpx[s].mean() + kxx
        chosen.append(int(np.flatnonzero(vals <= vals.min() + ties)[0]))
    return chosen
