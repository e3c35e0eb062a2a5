"""The exclusion set: near-duplicates of an evaluation set are never selected (Python and CLI)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gioselect import GIOSelector, select_quantized
from gioselect.cli import main
from gioselect.exclude import find_near_duplicates


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    c = _unit(rng.normal(size=(2, 16)))
    pool = _unit(np.vstack([c[0] + 0.2 * rng.normal(size=(300, 16)), c[1] + 0.2 * rng.normal(size=(300, 16))]))
    return pool, _unit(c[0] + 0.2 * rng.normal(size=(80, 16)))


def test_threshold_matches_brute_force_cosine(data):
    pool, _ = data
    rng = np.random.default_rng(0)
    ev = np.vstack([pool[[5, 17]], _unit(pool[[40]] + 0.05 * rng.normal(size=(1, 16))), rng.normal(size=(3, 16))])
    cos = (pool / np.linalg.norm(pool, axis=1, keepdims=True)) @ (ev / np.linalg.norm(ev, axis=1, keepdims=True)).T
    for thr in (0.9, 0.95, 0.99):
        ex = find_near_duplicates(pool, ev, threshold=thr, block_rows=64)  # several blocks
        np.testing.assert_array_equal(ex.row_ids, np.flatnonzero(cos.max(axis=1) >= thr))
        np.testing.assert_array_equal(ex.nearest, cos[ex.row_ids].argmax(axis=1))
    ex = find_near_duplicates(pool, ev)
    assert ex.n_duplicates >= 2 and {5, 17, 40} <= set(ex.row_ids.tolist())
    rec = ex.record("eval.parquet")
    assert rec["excluded_rows"] == ex.n_excluded and rec["duplicates"] + rec["near_duplicates"] == ex.n_excluded


@pytest.mark.parametrize("objective", ["relaxed", "exact"])
def test_excluded_rows_are_never_selected(data, objective):
    pool, target = data
    free = GIOSelector(max_iter=30, seed=0, objective=objective).fit(pool, target)
    ev = pool[free.selected_indices_[:10]]  # the rows GIO likes most, as an "eval set"
    sel = GIOSelector(max_iter=30, seed=0, objective=objective).fit(pool, target, exclude=ev)
    assert sel.exclusion_.n_excluded >= 10
    assert not np.isin(sel.selected_indices_, sel.exclusion_.row_ids).any()
    assert len(sel.selected_indices_) > 0


def test_blocked_rows_stay_blocked_after_resets(data):
    pool, target = data
    ev = pool[:300:3]
    sel = GIOSelector(max_iter=400, seed=0, stop_criterion="increase", resets_allowed=True, max_resets=3)
    sel.fit(pool[:320], target, exclude=ev)
    assert sel.n_resets_ >= 1
    assert not np.isin(sel.selected_indices_, sel.exclusion_.row_ids).any()


def test_select_quantized_exclude(data):
    pool, target = data
    q = select_quantized(pool, target, clusters=20, seed=0, exclude=pool[:50])
    assert not np.isin(q.ids, q.exclusion.row_ids).any() and len(q.ids) > 0


def test_cli_exclude_writes_manifest_and_keeps_rows_out(tmp_path: Path, data):
    pool, target = data
    pq.write_table(pa.table({"embedding": list(pool), "id": np.arange(600)}), tmp_path / "pool.parquet")
    pq.write_table(pa.table({"embedding": list(target)}), tmp_path / "target.parquet")
    base = ["select", "--pool", str(tmp_path / "pool.parquet"), "--target", str(tmp_path / "target.parquet"),
            "--clusters", "0", "--max-iter", "40", "-q", "--no-report"]
    assert main([*base, "--out", str(tmp_path / "free")]) == 0
    liked = np.load(tmp_path / "free" / "selected_ids.npy")[:8]
    np.save(tmp_path / "eval.npy", pool[liked])
    assert main([*base, "--out", str(tmp_path / "ex"), "--exclude", str(tmp_path / "eval.npy")]) == 0
    ids = np.load(tmp_path / "ex" / "selected_ids.npy")
    m = json.loads((tmp_path / "ex" / "manifest.json").read_text())
    excluded = [r["row"] for r in m["exclusion"]["rows"]]
    assert set(liked.tolist()) <= set(excluded) and m["exclusion"]["threshold"] == 0.95
    assert not np.isin(ids, excluded).any()
    # quantised: the chosen clusters' excluded rows are left out when exploded
    assert main([*base, "--out", str(tmp_path / "exq"), "--exclude", str(tmp_path / "eval.npy"),
                 "--clusters", "20"]) == 0
    assert not np.isin(np.load(tmp_path / "exq" / "selected_ids.npy"), excluded).any()
    assert main([*base, "--out", str(tmp_path / "bad"), "--exclude", str(tmp_path / "missing.npy")]) == 2


def test_cli_exclude_of_the_whole_pool_says_so(tmp_path: Path, data):
    pool, target = data
    np.save(tmp_path / "pool.npy", pool)
    np.save(tmp_path / "target.npy", target)
    assert main(["select", "--pool", str(tmp_path / "pool.npy"), "--target", str(tmp_path / "target.npy"),
                 "--out", str(tmp_path / "o"), "--exclude", str(tmp_path / "pool.npy"), "--budget", "20",
                 "--clusters", "0", "-q", "--no-report"]) == 3
    (w,) = json.loads((tmp_path / "o" / "manifest.json").read_text())["warnings"]
    # the generic advice ("pass --budget N") cannot help: the exclusion set blocked every row
    assert "--exclude blocked all 600 pool rows" in w and "pass --budget" not in w


def test_cli_exclude_threshold_without_exclude_is_refused(tmp_path: Path, data, capsys):
    pool, target = data
    np.save(tmp_path / "pool.npy", pool)
    np.save(tmp_path / "target.npy", target)
    assert main(["select", "--pool", str(tmp_path / "pool.npy"), "--target", str(tmp_path / "target.npy"),
                 "--out", str(tmp_path / "o"), "--exclude-threshold", "0.9", "--budget", "20",
                 "--clusters", "0", "-q", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "--exclude-threshold without --exclude would do nothing" in err and not (tmp_path / "o").exists()


def test_cli_out_holding_the_exclusion_file_is_refused(tmp_path: Path, data):
    pool, target = data
    np.save(tmp_path / "pool.npy", pool)
    np.save(tmp_path / "target.npy", target)
    base = ["select", "--pool", str(tmp_path / "pool.npy"), "--target", str(tmp_path / "target.npy"),
            "--budget", "10", "--clusters", "0", "-q", "--no-report"]
    assert main([*base, "--out", str(tmp_path / "sel")]) == 0
    ex = tmp_path / "sel" / "selected_rows.npy"
    before = ex.read_bytes()
    # the exclusion file lies in the previous result: --force replaced it (an input), as it never does the pool
    assert main([*base, "--out", str(tmp_path / "sel"), "--force", "--exclude", str(ex)]) == 2
    assert ex.read_bytes() == before


def _interrupting(desc: str, total: int | None, unit: str) -> Any:
    """A progress factory that stops the run (as Ctrl-C would) at its first phase after hashing the inputs."""
    if desc != "hashing inputs":
        raise KeyboardInterrupt
    return contextlib.nullcontext(lambda n: None)


def test_exclusion_file_is_in_the_resume_fingerprint_by_content(tmp_path: Path, data):
    from gioselect.errors import ResumeError
    from gioselect.pipeline import SelectConfig, run_select

    pool, target = data
    np.save(tmp_path / "pool.npy", pool)
    np.save(tmp_path / "target.npy", target)
    np.save(tmp_path / "eval.npy", pool[:5])
    out = tmp_path / "sel"

    def cfg(exclude: Path) -> SelectConfig:
        return SelectConfig(pool=tmp_path / "pool.npy", target=tmp_path / "target.npy", out=out, clusters=0,
                            exclude=exclude, report=False)

    with pytest.raises(KeyboardInterrupt):
        run_select(cfg(tmp_path / "eval.npy"), progress=_interrupting)
    fp = json.loads((tmp_path / "sel.partial" / "fingerprint.json").read_text())["fingerprint"]
    raw = (tmp_path / "eval.npy").read_bytes()
    assert fp["inputs"]["exclude"] == {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    assert "exclude" not in fp["config"] and fp["config"]["exclude_threshold"] == 0.95
    # Moved, same content: the same run, so it resumes.
    (tmp_path / "eval.npy").rename(tmp_path / "moved.npy")
    m = run_select(cfg(tmp_path / "moved.npy"), resume=True)
    assert m["exclusion"]["sha256"] == hashlib.sha256(raw).hexdigest() and m["exclusion"]["bytes"] == len(raw)
    assert not np.isin(np.load(out / "selected_ids.npy"), np.arange(5)).any()
    # Same path, other content: refused, and the message says what changed.
    with pytest.raises(KeyboardInterrupt):
        run_select(cfg(tmp_path / "moved.npy"), progress=_interrupting, force=True)
    np.save(tmp_path / "moved.npy", pool[:6])
    with pytest.raises(ResumeError, match="exclude"):
        run_select(cfg(tmp_path / "moved.npy"), resume=True, force=True)
