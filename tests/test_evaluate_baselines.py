"""kernel_herding's three ways of reading the pool (one block kept, many blocks kept as float64, many blocks
read again at every pick) against a brute-force greedy MMD; and the budget-independence (prefix property) of
the baselines the suite serves from one run."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import brute_greedy_mmd
from gioselect.evaluate import kernel_herding
from gioselect.peers import dsir, facility_location


def herding_paths(pool: np.ndarray, target: np.ndarray, budget: int, **kw: object) -> dict[str, list[int]]:
    """The picks of kernel_herding through each of its pool paths."""
    row_bytes = 8 * pool.shape[1]
    return {
        "one block": kernel_herding(pool, target, budget, **kw).tolist(),  # type: ignore[arg-type]
        "blocks kept": kernel_herding(pool, target, budget, block_rows=7,  # type: ignore[arg-type]
                                      memory_budget=row_bytes * pool.shape[0], **kw).tolist(),
        "blocks read again": kernel_herding(pool, target, budget, block_rows=7,  # type: ignore[arg-type]
                                            memory_budget=row_bytes * pool.shape[0] - 1, **kw).tolist(),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernel_herding_every_path_equals_brute_force_greedy_mmd(seed: int) -> None:
    rng = np.random.default_rng([seed, 71])
    pool = (rng.normal(size=(45, 4)) * 1.3).astype(np.float32)
    target = (rng.normal(size=(20, 4)) + 0.6).astype(np.float32)
    want = brute_greedy_mmd(pool, target, 20, h=1.4, ties=1e-12)
    for path, got in herding_paths(pool, target, 20, bandwidth=1.4).items():
        assert got == want, path


def test_kernel_herding_ties_go_to_the_lowest_row() -> None:
    # every row appears three times (rows r, r + 12, r + 24): equal scores, so each pick is the lowest copy
    # still unused; the brute force agrees
    rng = np.random.default_rng(72)
    base = rng.normal(size=(12, 3)).astype(np.float32)
    pool = np.concatenate([base, base, base])
    target = (rng.normal(size=(15, 3)) * 0.8).astype(np.float32)
    want = brute_greedy_mmd(pool, target, 30, h=1.1, ties=1e-12)
    for path, got in herding_paths(pool, target, 30, bandwidth=1.1).items():
        assert got == want, path
    first = want[0]
    assert first < 12  # the lowest of the three copies


def test_kernel_herding_memory_budget_is_checked() -> None:
    pool = np.zeros((4, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="memory_budget"):
        kernel_herding(pool, pool, 2, bandwidth=1.0, memory_budget=0)


def test_budget_independent_baselines_are_prefixes_of_a_longer_run() -> None:
    """herding, facility and dsir: the first N picks at a larger budget are the picks at budget N (what lets
    the suite serve both of its budgets from one run; experiments/suite/core.py, prefix_consistent)."""
    rng = np.random.default_rng(73)
    pool = rng.normal(size=(120, 5)).astype(np.float32)
    target = (rng.normal(size=(25, 5)) + 0.4).astype(np.float32)
    long_h = kernel_herding(pool, target, 90, seed=3, block_rows=50)
    long_f = facility_location(pool, target, 120)  # to the whole pool: through the cover restarts
    words = [f"w{i}" for i in range(40)]
    pool_texts = [" ".join(rng.choice(words, size=6)) for _ in range(120)]
    target_texts = [" ".join(rng.choice(words[:15], size=6)) for _ in range(25)]
    long_d = dsir(pool_texts, target_texts, 100, seed=5)
    for n in (1, 7, 40, 89):
        assert np.array_equal(kernel_herding(pool, target, n, seed=3, block_rows=50), long_h[:n]), n
        assert np.array_equal(facility_location(pool, target, n), long_f[:n]), n
        assert np.array_equal(dsir(pool_texts, target_texts, n, seed=5), long_d[:n]), n
