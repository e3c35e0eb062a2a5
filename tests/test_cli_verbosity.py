"""`-q`/`-v` on every subcommand: the same options, the same meaning (real runs on small files)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gioselect.cli import build_parser, main

COMMANDS = ("check", "embed", "evaluate", "plan", "select")


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("verbosity")
    rng = np.random.default_rng(1)
    c = _unit(rng.normal(size=(2, 8)))
    lab = np.arange(300) % 2
    np.save(d / "pool.npy", _unit(c[lab] + 0.2 * rng.normal(size=(300, 8))))
    np.save(d / "target.npy", _unit(c[0] + 0.2 * rng.normal(size=(60, 8))))
    np.save(d / "images.npy", rng.integers(0, 256, size=(20, 4, 4)).astype(np.uint8))
    return {"pool": d / "pool.npy", "target": d / "target.npy", "images": d / "images.npy"}


def _argv(cmd: str, files: dict[str, Path], out: Path) -> list[str]:
    pt = ["--pool", str(files["pool"]), "--target", str(files["target"])]
    return {
        "check": ["check", "quantization", "--target", str(files["target"]), "--clusters", "12"],
        "embed": ["embed", "--input", str(files["images"]), "--out", str(out / "e.npy")],
        "evaluate": ["evaluate", *pt, "--out", str(out / "ev"), "--methods", "gio,random", "--max-iter", "10",
                     "--random-seeds", "1"],
        "plan": ["plan", *pt, "--clusters", "0", "--max-iter", "10"],
        "select": ["select", *pt, "--out", str(out / "sel"), "--clusters", "0", "--max-iter", "10", "--no-report"],
    }[cmd]


def test_every_subcommand_has_the_same_quiet_and_verbose_options() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert set(COMMANDS) <= set(sub.choices)  # type: ignore[attr-defined]
    for cmd, p in sub.choices.items():  # type: ignore[attr-defined]
        opts = {s: a for a in p._actions for s in a.option_strings}
        for short, long, dest in (("-q", "--quiet", "quiet"), ("-v", "--verbose", "verbose")):
            assert opts[short] is opts[long] and opts[short].dest == dest, (cmd, short)
            assert opts[short].help == {"quiet": "no progress bars or summary, errors only",
                                        "verbose": "log each phase"}[dest]
        assert main([cmd, "-q", "-v"]) == 2  # mutually exclusive (and usage errors exit 2)


@pytest.mark.parametrize("cmd", COMMANDS)
def test_quiet_prints_nothing_and_default_prints_the_summary(cmd: str, files: dict[str, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "loud").mkdir()
    (tmp_path / "quiet").mkdir()
    assert main(_argv(cmd, files, tmp_path / "loud")) == 0
    assert capsys.readouterr().out.strip()
    assert main([*_argv(cmd, files, tmp_path / "quiet"), "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


@pytest.mark.parametrize("cmd", ["check", "select"])
def test_verbose_logs_the_phases(cmd: str, files: dict[str, Path], tmp_path: Path) -> None:
    # A fresh process: logging is configured once per process, which pytest's own handlers would hide.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "gioselect.cli", *_argv(cmd, files, tmp_path), "-v"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert re.search(r"^INFO ", run.stderr, re.M)  # the log level is INFO (check logs only its libraries')
    if cmd == "select":
        assert "INFO gioselect" in run.stderr
