"""gioselect plan: phases, time and peak memory before a run; non-zero exit when it does not fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gioselect.cli import main
from gioselect.optimize import GIOParams
from gioselect.pipeline import SelectConfig
from gioselect.plan import make_plan


def _files(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "pool.npy", rng.normal(size=(3000, 16)).astype(np.float64))  # float64: not memory-mapped
    np.save(tmp_path / "target.npy", rng.normal(size=(200, 16)).astype(np.float32))
    return tmp_path / "pool.npy", tmp_path / "target.npy"


def test_plan_sizes_and_memory(tmp_path: Path) -> None:
    pool, target = _files(tmp_path)
    cfg = SelectConfig(pool=pool, target=target, out=tmp_path / "o", clusters=0, params=GIOParams(max_iter=40),
                       memory_budget=1 << 30)
    plan = make_plan(cfg)
    assert (plan.pool_rows, plan.target_rows, plan.dim, plan.candidates, plan.picks) == (3000, 200, 16, 3000, 40)
    phases = {p.name: p for p in plan.phases}
    assert list(phases) == ["read", "quantise", "select", "write"]
    assert phases["quantise"].peak_bytes == 3000 * 16 * 4  # the whole pool as float32 with --clusters 0
    assert plan.peak_bytes >= 3000 * 16 * 4 and plan.fits
    assert all(p.seconds >= 0 for p in plan.phases)
    q = make_plan(SelectConfig(pool=pool, target=target, out=tmp_path / "o", clusters=50, budget="300",
                               params=GIOParams(max_iter=None), memory_budget=1 << 30))
    assert q.candidates == 50 and q.picks == 5  # 300 rows / 60 rows per cluster


def test_cli_plan_exit_codes(tmp_path: Path, capsys) -> None:
    pool, target = _files(tmp_path)
    args = ["plan", "--pool", str(pool), "--target", str(target), "--clusters", "0"]
    assert main([*args, "--memory-budget", "1G"]) == 0
    out = capsys.readouterr().out
    assert "select" in out and "fits the memory budget" in out
    assert main([*args, "--memory-budget", "100K"]) == 3
    assert "does NOT fit" in capsys.readouterr().out
    assert main([*args, "--pool", str(tmp_path / "missing.npy")]) == 2


def test_cli_plan_refuses_a_target_select_would_refuse(tmp_path: Path, capsys) -> None:
    pool, target = _files(tmp_path)
    np.save(tmp_path / "t8.npy", np.load(target)[:, :8])
    np.save(tmp_path / "t3.npy", np.load(target)[:3])
    base = ["plan", "--pool", str(pool), "--clusters", "0"]
    assert main([*base, "--target", str(tmp_path / "t8.npy")]) == 2  # printed a plan and exited 0 before
    assert "has dimension 8 but the pool" in capsys.readouterr().err
    assert main([*base, "--target", str(tmp_path / "t3.npy")]) == 2
    assert "more than k=5 are needed" in capsys.readouterr().err
