"""Never lose a user's data: the bad-input table of docs/bad-inputs.md, each row a case here.

Every case runs the CLI in-process on small real files in its own folder, checks the exit code and a fragment of
the message, and checks that the user's files (inputs, files beside and inside the output) are untouched. The
docs table and ``CASES`` must list the same cases with the same exit codes (``test_docs_table_matches_cases``).
Concurrency, stale locks and signals run the CLI as a real process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gioselect import GIOSelector
from gioselect.cli import main
from gioselect.errors import GIOError

DOCS = Path(__file__).resolve().parent.parent / "docs" / "bad-inputs.md"
BASE = ("--clusters", "0", "--max-iter", "5", "--no-report", "-q", "--seed", "0")


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _make_inputs(d: Path) -> None:
    """A 300-row 8-D pool from two directions and a 40-row target from the first, as .npy and jsonl."""
    rng = np.random.default_rng(0)
    c = unit(rng.normal(size=(2, 8)))
    lab = rng.integers(2, size=300)
    pool = unit(c[lab] + 0.2 * rng.normal(size=(300, 8)))
    target = unit(c[0] + 0.2 * rng.normal(size=(40, 8)))
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "pool.npy", pool)
    np.save(d / "target.npy", target)
    with open(d / "pool.jsonl", "w") as fh:
        for i, v in enumerate(pool):
            fh.write(json.dumps({"text": f"sentence {i}", "embedding": [float(a) for a in v]}) + "\n")


@dataclass
class Env:
    """One case's folder: ``data/`` holds the inputs; ``snapshot()`` records every file for the no-touch check."""

    root: Path
    capsys: pytest.CaptureFixture[str]
    cleanups: list[Callable[[], object]] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def pool(self) -> Path:
        return self.data / "pool.npy"

    @property
    def target(self) -> Path:
        return self.data / "target.npy"

    def run(self, *args: object) -> tuple[int, str]:
        self.capsys.readouterr()
        code = main([str(a) for a in args])
        return code, self.capsys.readouterr().err

    def select(self, out: object, *extra: object, pool: object = None, target: object = None) -> tuple[int, str]:
        return self.run("select", "--pool", pool or self.pool, "--target", target or self.target, "--out", out,
                        *BASE, *extra)

    def evaluate(self, out: object, *extra: object) -> tuple[int, str]:
        return self.run("evaluate", "--pool", self.pool, "--target", self.target, "--out", out, "--methods",
                        "gio,random", "--random-seeds", "2", "--max-iter", "5", "-q", *extra)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` (relative path -> content), links not followed."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if p.is_file() and not p.is_symlink():
                out[str(p.relative_to(root))] = p.read_bytes()
    return out


@dataclass(frozen=True)
class Case:
    id: str
    doc: str  # the case as the table says it
    code: int
    fragment: str  # part of the message (stderr) the case must print
    fn: Callable[[Env], tuple[int, str]]
    untouched: bool = True  # no file that existed before the run may change or vanish


CASES: list[Case] = []


def case(id: str, doc: str, code: int, fragment: str, *, untouched: bool = True) -> Callable[
        [Callable[[Env], tuple[int, str]]], Callable[[Env], tuple[int, str]]]:
    def deco(fn: Callable[[Env], tuple[int, str]]) -> Callable[[Env], tuple[int, str]]:
        CASES.append(Case(id, doc, code, fragment, fn, untouched))
        return fn
    return deco


def _user_folder(p: Path) -> Path:
    p.mkdir(parents=True)
    (p / "notes.txt").write_text("my notes")
    (p / "sub").mkdir()
    (p / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return p


def _previous_result(env: Env, out: Path) -> None:
    code, err = env.select(out)
    assert code == 0, err


# --- --force and data loss ---------------------------------------------------------------------------------

@case("force-foreign-folder", "`--out` is a folder of other files, with `--force`", 2,
      "not a previous gioselect result")
def _(env: Env) -> tuple[int, str]:
    out = _user_folder(env.root / "mine")
    return env.select(out, "--force")


@case("foreign-folder", "`--out` is a folder of other files, without `--force`", 2, "not a previous gioselect result")
def _(env: Env) -> tuple[int, str]:
    return env.select(_user_folder(env.root / "mine"))


@case("force-input-folder", "`--out` is the folder holding the pool and target, with `--force`", 2,
      "holds the pool input")
def _(env: Env) -> tuple[int, str]:
    return env.select(env.data, "--force")


@case("force-out-is-pool", "`--out` is the pool file itself, with `--force`", 2, "is the pool input")
def _(env: Env) -> tuple[int, str]:
    return env.select(env.pool, "--force")


@case("force-out-is-target", "`--out` is the target file itself, with `--force`", 2, "is the target input")
def _(env: Env) -> tuple[int, str]:
    return env.select(env.target, "--force")


@case("force-out-is-file", "`--out` is an unrelated regular file, with `--force`", 2, "is a file, not a folder")
def _(env: Env) -> tuple[int, str]:
    f = env.root / "results.txt"
    f.write_text("keep me")
    return env.select(f, "--force")


@case("force-out-parent-of-input", "`--out` is a parent folder of the inputs' folder, with `--force`", 2,
      "holds the pool input")
def _(env: Env) -> tuple[int, str]:
    return env.select(env.root, "--force")


@case("force-result-plus-user-file", "`--out` is a previous result to which the user added a file, `--force`", 2,
      "not a previous gioselect result")
def _(env: Env) -> tuple[int, str]:
    out = env.root / "sel"
    _previous_result(env, out)
    (out / "my_analysis.ipynb").write_text("{}")
    return env.select(out, "--force")


@case("work-folder-foreign", "`OUT.partial` exists and holds the user's files", 2, "not a gioselect work folder")
def _(env: Env) -> tuple[int, str]:
    _user_folder(env.root / "sel.partial")
    return env.select(env.root / "sel")


@case("work-folder-holds-input", "the pool lies inside `OUT.partial`", 2, "holds the pool input")
def _(env: Env) -> tuple[int, str]:
    w = env.root / "sel.partial"
    w.mkdir()
    pool = w / "pool.npy"
    pool.write_bytes(env.pool.read_bytes())
    return env.select(env.root / "sel", pool=pool)


@case("out-symlink", "`--out` is a symbolic link to a folder", 2, "symbolic link")
def _(env: Env) -> tuple[int, str]:
    real = env.root / "real"
    real.mkdir()
    (env.root / "link").symlink_to(real)
    return env.select(env.root / "link")


@case("previous-result-no-force", "`--out` is a previous gioselect result, without `--force`", 2, "pass --force")
def _(env: Env) -> tuple[int, str]:
    out = env.root / "sel"
    _previous_result(env, out)
    return env.select(out, "--seed", "1")


@case("force-previous-result", "`--out` is a previous gioselect result, `--force` (user files beside it)", 0, "",
      untouched=False)
def _(env: Env) -> tuple[int, str]:
    out = env.root / "sel"
    _previous_result(env, out)
    beside = _user_folder(env.root / "beside")
    before = snapshot(beside)
    code, err = env.select(out, "--force", "--seed", "1")
    assert json.loads((out / "manifest.json").read_text())["seed"] == 1
    assert snapshot(beside) == before
    assert sorted(p.name for p in env.root.iterdir()) == ["beside", "data", "sel"]  # no .old-PID, no .partial
    return code, err


@case("empty-folder", "`--out` is an existing empty folder", 0, "", untouched=False)
def _(env: Env) -> tuple[int, str]:
    out = env.root / "sel"
    out.mkdir()
    code, err = env.select(out)
    assert (out / "manifest.json").exists()
    return code, err


# --- crashes that were exit 1 -------------------------------------------------------------------------------

@case("out-dot", "`--out .`", 2, "not the current")
def _(env: Env) -> tuple[int, str]:
    return env.select(".")


@case("out-dotdot", "`--out ..`", 2, "not the current")
def _(env: Env) -> tuple[int, str]:
    return env.select("..")


@case("out-root", "`--out /`", 2, "not the current, parent or root")
def _(env: Env) -> tuple[int, str]:
    return env.select("/")


@case("out-empty", "`--out ''` (an empty name, read as `.`)", 2, "not the current")
def _(env: Env) -> tuple[int, str]:
    return env.select("")


@case("out-under-file", "`--out` under a regular file (`notes.txt/sel`)", 2, "is a regular file")
def _(env: Env) -> tuple[int, str]:
    f = env.root / "notes.txt"
    f.write_text("x")
    return env.select(f / "sel")


@case("out-read-only", "`--out` on a read-only file system", 2, "cannot write in")
def _(env: Env) -> tuple[int, str]:
    return env.select(_read_only_dir(env) / "sel")


@case("evaluate-out-read-only", "`evaluate --out` on a read-only file system: refused before any work", 2,
      "cannot write in")
def _(env: Env) -> tuple[int, str]:
    return env.evaluate(_read_only_dir(env) / "ev")


@case("evaluate-out-under-file", "`evaluate --out` under a regular file", 2, "is a regular file")
def _(env: Env) -> tuple[int, str]:
    f = env.root / "notes.txt"
    f.write_text("x")
    return env.evaluate(f / "ev")


@case("evaluate-force-foreign", "`evaluate --out` a folder of other files, `--force`", 2,
      "not a previous gioselect evaluation")
def _(env: Env) -> tuple[int, str]:
    return env.evaluate(_user_folder(env.root / "mine"), "--force")


@case("evaluate-random-seeds-0", "`evaluate --random-seeds 0`", 2, "--random-seeds must be >= 1")
def _(env: Env) -> tuple[int, str]:
    return env.evaluate(env.root / "ev", "--random-seeds", "0")


@case("evaluate-budget-percent", "`evaluate --budget 5%` (as `select` accepts)", 0, "", untouched=False)
def _(env: Env) -> tuple[int, str]:
    code, err = env.evaluate(env.root / "ev", "--budget", "5%")
    assert json.loads((env.root / "ev" / "evaluation.json").read_text())["sizes"] == [15]  # 5% of 300
    return code, err


@case("evaluate-budget-junk", "`evaluate --budget abc`", 2, "percentages like 5%")
def _(env: Env) -> tuple[int, str]:
    return env.evaluate(env.root / "ev", "--budget", "abc")


@case("embed-out-is-input", "`embed --out` is the input file, `--force`", 2, "is the --input input")
def _(env: Env) -> tuple[int, str]:
    imgs = env.data / "images.npy"
    np.save(imgs, np.random.default_rng(0).random((20, 4, 4)).astype(np.float32).reshape(20, 16))
    return env.run("embed", "--input", imgs, "--out", imgs, "--force", "-q")


@case("embed-force-foreign-file", "`embed --out x.parquet --force` where x.parquet is another table", 2,
      "does not look like a file gioselect embed wrote")
def _(env: Env) -> tuple[int, str]:
    imgs = env.data / "images.npy"
    np.save(imgs, np.random.default_rng(0).random((20, 4, 4)).astype(np.float32))
    other = env.root / "sales.parquet"
    pq.write_table(pa.table({"region": ["a", "b"], "amount": [1.0, 2.0]}), other)
    return env.run("embed", "--input", imgs, "--out", other, "--force", "-q")


@case("embed-force-own-output", "`embed --force` over its own earlier output", 0, "", untouched=False)
def _(env: Env) -> tuple[int, str]:
    imgs = env.data / "images.npy"
    np.save(imgs, np.random.default_rng(0).random((20, 4, 4)).astype(np.float32))
    out = env.root / "emb.parquet"
    assert env.run("embed", "--input", imgs, "--out", out, "-q")[0] == 0
    assert env.run("embed", "--input", imgs, "--out", out, "-q")[0] == 2
    return env.run("embed", "--input", imgs, "--out", out, "--force", "-q")


@case("embed-out-under-file", "`embed --out` under a regular file", 2, "is a regular file")
def _(env: Env) -> tuple[int, str]:
    imgs = env.data / "images.npy"
    np.save(imgs, np.random.default_rng(0).random((20, 4, 4)).astype(np.float32))
    f = env.root / "notes.txt"
    f.write_text("x")
    return env.run("embed", "--input", imgs, "--out", f / "e.npy", "-q")


@case("embed-table-without-text-field", "`embed` on a jsonl file without `--text-field`", 2, "--text-field")
def _(env: Env) -> tuple[int, str]:
    return env.run("embed", "--input", env.data / "pool.jsonl", "--out", env.root / "e.npy", "-q")


# --- silent successes ---------------------------------------------------------------------------------------

@case("max-iter-0", "`--max-iter 0`: nothing selected", 3, "nothing was selected", untouched=False)
def _(env: Env) -> tuple[int, str]:
    out = env.root / "sel"
    code, err = env.select(out, "--max-iter", "0")
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"]["selected_rows"] == 0 and any("nothing was selected" in w for w in m["warnings"])
    return code, err


@case("whole-pool", "a stop rule that never fires (`--stop min_kl` with its default) selects the whole pool", 3,
      "the whole pool was selected", untouched=False)
def _(env: Env) -> tuple[int, str]:
    small = env.data / "small.npy"
    np.save(small, np.load(env.pool)[:12])
    out = env.root / "sel"
    code, err = env.select(out, "--max-iter", "none", "--stop", "min_kl", pool=small)
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"]["selected_rows"] == 12 and any("whole pool" in w for w in m["warnings"])
    return code, err


@case("whole-pool-asked", "the whole pool selected because `--budget` asked for every row", 0, "",
      untouched=False)
def _(env: Env) -> tuple[int, str]:
    small = env.data / "small.npy"
    np.save(small, np.load(env.pool)[:12])
    out = env.root / "sel"
    code, err = env.select(out, "--budget", "12", "--max-iter", "none", pool=small)
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"]["selected_rows"] == 12 and "whole pool" not in err
    return code, err


@case("identical-pool", "a pool of identical rows", 3, "are identical", untouched=False)
def _(env: Env) -> tuple[int, str]:
    same = env.data / "same.npy"
    np.save(same, np.tile(np.load(env.target)[:1], (50, 1)))
    out = env.root / "sel"
    code, err = env.select(out, pool=same)
    assert any("identical" in w for w in json.loads((out / "manifest.json").read_text())["warnings"])
    return code, err


@case("identical-target", "a target of identical rows", 3, "target rows are identical", untouched=False)
def _(env: Env) -> tuple[int, str]:
    same = env.data / "same_target.npy"
    np.save(same, np.tile(np.load(env.target)[:1], (20, 1)))
    return env.select(env.root / "sel", target=same)


@case("clusters-ge-rows", "`--clusters` >= the pool's rows", 0, "quantisation is off", untouched=False)
def _(env: Env) -> tuple[int, str]:
    return env.select(env.root / "sel", "--clusters", "300")


@case("text-and-embedding-field", "`--text-field` with `--embedding-field`", 2, "not both")
def _(env: Env) -> tuple[int, str]:
    return env.select(env.root / "sel", "--text-field", "text", "--embedding-field", "embedding",
                      pool=env.data / "pool.jsonl")


@case("evaluate-text-and-embedding-field", "`evaluate --text-field` with `--embedding-field`", 2, "not both")
def _(env: Env) -> tuple[int, str]:
    return env.evaluate(env.root / "ev", "--text-field", "text", "--embedding-field", "embedding")


@case("exact-with-lr", "`--objective exact` with `--lr`", 2, "--lr would do nothing")
def _(env: Env) -> tuple[int, str]:
    return env.select(env.root / "sel", "--objective", "exact", "--lr", "0.05")


@case("exact-with-v-init", "`--objective exact` with `--v-init`", 2, "--v-init would do nothing")
def _(env: Env) -> tuple[int, str]:
    return env.select(env.root / "sel", "--objective", "exact", "--v-init", "mean")


@case("clusters-1", "`--clusters 1` (the target inherits it)", 2, "clusters (--clusters; the target uses it too")
def _(env: Env) -> tuple[int, str]:
    return env.select(env.root / "sel", "--clusters", "1")


@case("target-clusters-too-few", "`--target-clusters 3` with k = 5", 2, "target_clusters (--target-clusters) = 3")
def _(env: Env) -> tuple[int, str]:
    return env.select(env.root / "sel", "--clusters", "20", "--target-clusters", "3")


# --- resume -------------------------------------------------------------------------------------------------

def _killed_run(env: Env, out: Path) -> None:
    """A checkpoint as a killed run leaves it (a real run interrupted after its first checkpoint)."""
    work = out.with_name(out.name + ".partial")
    proc = _cli("select", "--pool", env.pool, "--target", env.target, "--out", out, *BASE[:2], "--max-iter",
                "none", "--stop", "data_size", "--max-data-size", "0.5", "-q", "--checkpoint-every", "1",
                pick_delay=0.2)
    _wait_for(work / "gio_state.npz", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@case("resume-relative-vs-absolute", "`--resume` naming the same inputs relatively instead of absolutely", 0, "",
      untouched=False)
def _(env: Env) -> tuple[int, str]:
    out = env.root / "sel"
    _killed_run(env, out)
    cwd = os.getcwd()
    os.chdir(env.root)
    try:
        return env.run("select", "--pool", "data/pool.npy", "--target", "./data/../data/target.npy", "--out", "sel",
                       *BASE[:2], "--max-iter", "none", "--stop", "data_size", "--max-data-size", "0.5", "-q",
                       "--resume")
    finally:
        os.chdir(cwd)


@case("resume-changed-pool", "`--resume` after the pool file changed", 2, "pool.sha256", untouched=False)
def _(env: Env) -> tuple[int, str]:
    out = env.root / "sel"
    _killed_run(env, out)
    arr = np.load(env.pool)
    arr[0, 0] += 0.5
    np.save(env.pool, arr)
    return env.run("select", "--pool", env.pool, "--target", env.target, "--out", out, *BASE[:2], "--max-iter",
                   "none", "--stop", "data_size", "--max-data-size", "0.5", "-q", "--resume")


@case("resume-changed-parameter", "`--resume` with another `--k`", 2, "k: 5 in the checkpoint, 4 now")
def _(env: Env) -> tuple[int, str]:
    out = env.root / "sel"
    _killed_run(env, out)
    return env.run("select", "--pool", env.pool, "--target", env.target, "--out", out, *BASE[:2], "--max-iter",
                   "none", "--stop", "data_size", "--max-data-size", "0.5", "-q", "--resume", "--k", "4")


@case("locked", "a second run on an `--out` whose lock is held", 2, "is writing this output")
def _(env: Env) -> tuple[int, str]:
    from gioselect.outdir import run_lock

    out = env.root / "sel"
    with run_lock(out.with_name("sel.partial.lock"), out):
        return env.select(out)


@case("stale-lock", "a lock file left by a killed run", 0, "did not finish", untouched=False)
def _(env: Env) -> tuple[int, str]:
    out = env.root / "sel"
    lock = out.with_name("sel.partial.lock")
    lock.write_text(json.dumps({"gioselect_lock": 1, "pid": 999999, "host": "h", "started_utc": "then"}))
    proc = _cli("select", "--pool", env.pool, "--target", env.target, "--out", out, *BASE[:-3])  # not -q
    _, err = proc.communicate(timeout=120)
    assert not lock.exists() and (out / "manifest.json").exists()
    return proc.returncode, err.decode()


@case("foreign-lock-file", "`OUT.partial.lock` is a user's file", 2, "not a gioselect lock file")
def _(env: Env) -> tuple[int, str]:
    (env.root / "sel.partial.lock").write_text("my shopping list")
    return env.select(env.root / "sel")


# --- misleading messages ------------------------------------------------------------------------------------

@case("string-column", "a jsonl pool whose only columns are text", 2, "--text-field")
def _(env: Env) -> tuple[int, str]:
    p = env.data / "texts.jsonl"
    p.write_text("".join(json.dumps({"text": f"t {i}", "title": "x"}) + "\n" for i in range(50)))
    return env.select(env.root / "sel", pool=p)


@case("string-embedding-field", "`--embedding-field text` naming a text column", 2, "--text-field text")
def _(env: Env) -> tuple[int, str]:
    return env.select(env.root / "sel", "--embedding-field", "text", pool=env.data / "pool.jsonl")


@case("symlink-loop", "the pool is a symbolic link loop", 2, "symbolic link loop")
def _(env: Env) -> tuple[int, str]:
    loop = env.data / "loop.npy"
    loop.symlink_to(loop)
    return env.select(env.root / "sel", pool=loop)


@case("dangling-symlink", "the pool is a link to a missing file", 2, "does not exist")
def _(env: Env) -> tuple[int, str]:
    link = env.data / "gone.npy"
    link.symlink_to(env.data / "deleted.npy")
    return env.select(env.root / "sel", pool=link)


@case("pool-is-folder", "the pool is a folder that is neither a datasets folder nor parquet shards", 2,
      "is a folder, not a file")
def _(env: Env) -> tuple[int, str]:
    (env.data / "dir.npy").mkdir()
    return env.select(env.root / "sel", pool=env.data / "dir.npy")


@case("pool-is-image-folder", "the pool is a folder of PNG files (select reads vectors)", 2,
      "a folder of images is embedded first (gioselect embed --input")
def _(env: Env) -> tuple[int, str]:
    (env.data / "imgs").mkdir()
    (env.data / "imgs" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return env.select(env.root / "sel", pool=env.data / "imgs")


@case("csv-not-utf8", "a csv pool with a byte that is not UTF-8 on its 4th line", 2,
      "line 4 of the file is not valid UTF-8")
def _(env: Env) -> tuple[int, str]:
    bad = env.data / "bad.csv"
    bad.write_bytes(b"a,b\n0.1,0.2\n0.3,0.4\n0.5,\xff0.6\n")
    return env.select(env.root / "sel", pool=bad)


@case("exclude-threshold-alone", "`--exclude-threshold` without `--exclude`", 2,
      "--exclude-threshold without --exclude would do nothing")
def _(env: Env) -> tuple[int, str]:
    return env.select(env.root / "sel", "--exclude-threshold", "0.9")


@case("refine-unquantised", "`--refine knn` with `--clusters 0` (no clusters to refine)", 2,
      "--clusters 0 selects from the rows themselves (no K-means), so --refine would do nothing")
def _(env: Env) -> tuple[int, str]:
    return env.select(env.root / "sel", "--refine", "knn")


@case("target-field-other-name", "parquet pool and target whose vector columns have different names", 2,
      "name the target's own with --target-embedding-field")
def _(env: Env) -> tuple[int, str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = np.load(env.pool)
    pq.write_table(pa.table({"emb": list(x)}), env.data / "p.parquet")
    pq.write_table(pa.table({"id": np.arange(40), "vec": list(x[:40])}), env.data / "t.parquet")
    return env.select(env.root / "sel", "--embedding-field", "emb", pool=env.data / "p.parquet",
                      target=env.data / "t.parquet")


@case("pool-under-file", "the pool path goes through a regular file", 2, "is a file, not a folder")
def _(env: Env) -> tuple[int, str]:
    return env.select(env.root / "sel", pool=env.pool / "x.npy")


def _api(fn: Callable[[], object]) -> tuple[int, str]:
    try:
        fn()
    except GIOError as exc:
        return 2, str(exc)
    return 0, ""


@case("api-sparse", "`GIOSelector.fit` given a scipy sparse matrix", 2, "sparse matrix")
def _(env: Env) -> tuple[int, str]:
    import scipy.sparse as sp

    return _api(lambda: GIOSelector().fit(sp.random(50, 8, density=0.5, format="csr", random_state=0),
                                          np.load(env.target)))


@case("api-none", "`GIOSelector.fit` given None", 2, "got None")
def _(env: Env) -> tuple[int, str]:
    return _api(lambda: GIOSelector().fit(None, np.load(env.target)))


# --- running the table ---------------------------------------------------------------------------------------

def _read_only_dir(env: Env) -> Path:
    """A folder in which no file can be created, even by root: an immutable folder (``chattr +i``) where the
    file system allows it, else permission bits (non-root), else ``/proc`` (no new files there)."""
    d = env.root / "ro"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        env.cleanups.append(lambda: d.chmod(0o755))
        return d
    if subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode == 0:
        env.cleanups.append(lambda: subprocess.run(["chattr", "-i", str(d)], check=True))
        return d
    return Path("/proc")  # pragma: no cover - file systems without chattr


@pytest.fixture
def env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Env]:
    _make_inputs(tmp_path / "data")
    e = Env(tmp_path, capsys)
    yield e
    for undo in e.cleanups:
        undo()


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input_table(c: Case, env: Env) -> None:
    before = snapshot(env.root)
    code, err = c.fn(env)
    assert code == c.code, (c.id, err)
    assert c.fragment in err, (c.id, err)
    if c.untouched:
        after = snapshot(env.root)
        assert {k: v for k, v in after.items() if k in before} == {
            k: v for k, v in before.items() if k in after} and set(before) <= set(after), c.id
    if c.code == 2:
        # A refused run leaves nothing of its own behind: no work folder, no lock, no .old-PID.
        left = [p.name for p in env.root.iterdir() if re.search(r"\.(partial|lock|old-\d+)", p.name)]
        assert left == [] or c.id.startswith(("resume-", "work-folder", "foreign-lock")), left


def test_docs_table_matches_cases() -> None:
    rows = [line for line in DOCS.read_text().splitlines() if line.startswith("| `") and "|" in line[1:]]
    table = {}
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        table[cells[0].strip("`")] = (int(cells[2]), cells[3])
    assert len(table) >= 40
    assert set(table) == {c.id for c in CASES}
    for c in CASES:
        assert table[c.id][0] == c.code, c.id


# --- real processes: concurrency and signals ------------------------------------------------------------------

# The CLI in a child process, each GIO pick slowed down by ``pick_delay`` seconds (through main's on_pick hook)
# so that a test can kill or interrupt it mid-run.
_SLOW_CLI = "import sys, time; from gioselect.cli import main; d = float(sys.argv[1]); " \
    "sys.exit(main(sys.argv[2:], on_pick=lambda ev: time.sleep(d)))"


def _cli(*args: object, pick_delay: float = 0.0) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _SLOW_CLI, str(pick_delay), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_second_concurrent_run_is_refused_at_once(tmp_path: Path) -> None:
    _make_inputs(tmp_path / "data")
    d = tmp_path / "data"
    out = tmp_path / "sel"
    args = ["select", "--pool", d / "pool.npy", "--target", d / "target.npy", "--out", out, "--clusters", "0",
            "--max-iter", "8", "--no-report", "-q"]
    first = _cli(*args, pick_delay=0.3)
    _wait_for(out.with_name("sel.partial") / "fingerprint.json", first)
    second = _cli(*args)
    _, err2 = second.communicate(timeout=120)
    assert second.returncode == 2, err2.decode()
    assert f"(pid {first.pid} on" in err2.decode() and "is writing this output" in err2.decode()
    _, err1 = first.communicate(timeout=120)
    assert first.returncode == 0, err1.decode()
    assert len(np.load(out / "selected_ids.npy")) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "sel"]  # lock and work folder gone


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGTERM, 143, "terminated"),
                                                   (signal.SIGINT, 130, "interrupted")])
def test_interrupt_names_the_resume_command(sig: int, code: int, word: str, tmp_path: Path) -> None:
    _make_inputs(tmp_path / "data")
    d = tmp_path / "data"
    out = tmp_path / "sel"
    args = ["select", "--pool", d / "pool.npy", "--target", d / "target.npy", "--out", out, "--clusters", "0",
            "--max-iter", "12", "--no-report", "-q", "--checkpoint-every", "1"]
    proc = _cli(*args, pick_delay=0.2)
    _wait_for(out.with_name("sel.partial") / "gio_state.npz", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == code, text
    assert word in text and "--resume" in text
    assert not out.with_name("sel.partial.lock").exists()  # the lock is released on the way out
    resume_line = text.strip().splitlines()[-1].strip()
    assert resume_line.startswith("gioselect select") and resume_line.endswith("--resume")
    done = _cli(*resume_line.split()[1:])
    _, err2 = done.communicate(timeout=120)
    assert done.returncode == 0, err2.decode()
    assert len(np.load(out / "selected_ids.npy")) == 12


def test_verbose_shows_the_traceback(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import gioselect.pipeline as pipeline

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(pipeline, "run_phases", boom)
    code, err = env.select(env.root / "sel")
    assert code == 1 and "kaboom" in err and "-v" in err and "Traceback" not in err
    code, err = env.run("select", "--pool", env.pool, "--target", env.target, "--out", env.root / "sel2",
                        *BASE[:-3], "-v")
    assert code == 1 and "Traceback (most recent call last)" in err and "kaboom" in err
    assert not (env.root / "sel2.partial.lock").exists()


def test_degenerate_warning_reaches_the_report(env: Env) -> None:
    out = env.root / "sel"
    code, _ = env.run("select", "--pool", env.pool, "--target", env.target, "--out", out, "--clusters", "0",
                      "--max-iter", "0", "-q")
    assert code == 3
    html = (out / "report.html").read_text()
    assert 'class="warnings"' in html and "nothing was selected" in html


def test_embed_force_replaces_its_own_npy_output_and_no_other_npy(env: Env) -> None:
    # the parquet case is in the table; a .npy output must be recognised too (numpy 2 dropped the header reader
    # it used, so every .npy looked foreign)
    imgs = env.data / "images.npy"
    np.save(imgs, np.random.default_rng(0).random((20, 4, 4)).astype(np.float32))
    out = env.root / "emb.npy"
    assert env.run("embed", "--input", imgs, "--out", out, "-q")[0] == 0
    assert env.run("embed", "--input", imgs, "--out", out, "--force", "-q")[0] == 0
    mine = env.root / "mine.npy"
    np.save(mine, np.zeros((3, 4, 4), dtype=np.float32))  # 3-D: not a file embed writes
    before = mine.read_bytes()
    assert env.run("embed", "--input", imgs, "--out", mine, "--force", "-q")[0] == 2
    assert mine.read_bytes() == before


def test_publish_keeps_unknown_files_of_an_old_result(tmp_path: Path) -> None:
    """Even if a user file appears inside the old result during the run, it is not deleted."""
    from gioselect.outdir import publish_result

    work = tmp_path / "sel.partial"
    (work / "result").mkdir(parents=True)
    (work / "result" / "manifest.json").write_text(json.dumps({"gioselect_version": "x"}))
    out = tmp_path / "sel"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"gioselect_version": "old"}))
    (out / "selected_ids.npy").write_bytes(b"old")
    publish_result(work / "result", out, work, force=True)
    assert json.loads((out / "manifest.json").read_text())["gioselect_version"] == "x"
    assert not (work / "old-result").exists()
    # Now an old result that is not purely ours is refused, and nothing moves.
    (work / "result").mkdir()
    (out / "mine.txt").write_text("mine")
    with pytest.raises(GIOError, match="may not be replaced"):
        publish_result(work / "result", out, work, force=True)
    assert (out / "mine.txt").read_text() == "mine" and (out / "manifest.json").exists()


def test_work_folder_removal_keeps_unknown_files(tmp_path: Path) -> None:
    from gioselect.outdir import remove_work_dir

    work = tmp_path / "sel.partial"
    (work / "result").mkdir(parents=True)
    (work / "fingerprint.json").write_text(json.dumps({"hash": "h"}))
    (work / "gio_state.npz").write_bytes(b"x")
    (work / "pool_assignment.parquet").mkdir()
    (work / "pool_assignment.parquet" / "part-0.parquet").write_bytes(b"x")
    (work / "result" / "kl_trace.csv").write_text("x")
    (work / "mine.txt").write_text("mine")
    (work / "result" / "mine.txt").write_text("mine")
    assert remove_work_dir(work) is False
    assert sorted(str(p.relative_to(work)) for p in work.rglob("*")) == ["mine.txt", "result", "result/mine.txt"]
