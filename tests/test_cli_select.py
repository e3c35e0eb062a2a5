"""End-to-end `gioselect select`: every format, outputs, budget, determinism, resume after kill -9, bad input."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import gaussian_mixture
from gioselect.cli import main

CLUSTERS = "60"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A 8-D mixture pool (3,000 rows, 6 components) and a target from components 0 and 1, in every format."""
    d = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 5, size=(6, 8))
    pool, comp = gaussian_mixture(3000, 8, centers, seed=1)
    target, _ = gaussian_mixture(300, 8, centers[:2], seed=2)
    np.save(d / "pool.npy", pool)
    np.save(d / "target.npy", target)
    texts = [f"row {i} of component {c}" for i, c in enumerate(comp)]
    pq.write_table(pa.table({"id": np.arange(3000), "text": texts,
                             "embedding": pa.array(pool.tolist(), type=pa.list_(pa.float32()))}),
                   d / "pool.parquet", row_group_size=700)
    with open(d / "pool.csv", "w", newline="") as fh:  # grad-info-opt's layout: no header, vector in _c2
        w = csv.writer(fh, delimiter="\t")
        for i, row in enumerate(pool):
            w.writerow([i, texts[i], str([float(x) for x in row])])
    with open(d / "pool.jsonl", "w") as fh:
        for i, row in enumerate(pool):
            fh.write(json.dumps({"id": i, "text": texts[i], "embedding": [float(x) for x in row]}) + "\n")
    return {"dir": d, "pool": pool, "target": target, "comp": comp}


def run(*args: object) -> int:
    return main([str(a) for a in args])


def select(data: dict[str, object], out: Path, pool: str = "pool.npy", *extra: object) -> int:
    d = data["dir"]
    assert isinstance(d, Path)
    return run("select", "--pool", d / pool, "--target", d / "target.npy", "--out", out, "--clusters", CLUSTERS,
               "--seed", 3, "-q", *extra)


@pytest.fixture(scope="module")
def npy_run(data: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "npy"
    assert select(data, out, "pool.npy", "--v-init", "jump") == 0
    return out


def test_outputs_and_selection_quality(npy_run: Path, data: dict[str, object]) -> None:
    assert sorted(p.name for p in npy_run.iterdir()) == [
        "f1_curve.csv", "kl_trace.csv", "manifest.json", "picks.csv", "report.html", "selected_ids.npy",
        "selected_row_ids.npy", "selected_rows.npy"]
    ids = np.load(npy_run / "selected_ids.npy", allow_pickle=False)
    assert ids.dtype == np.int64 and len(ids) > 0 and len(np.unique(ids)) == len(ids)
    comp = data["comp"]
    assert isinstance(comp, np.ndarray)
    share = np.isin(comp[ids], [0, 1]).mean()
    # the target's components are 1/3 of the pool (about 1,000 rows); the F1 rule's 2% tolerance along the row-level
    # pass goes past them, as the unquantised run's does (1,167 rows, 88% of them the target's components)
    assert share > 0.75
    rows = np.load(npy_run / "selected_rows.npy")
    pool = data["pool"]
    assert isinstance(pool, np.ndarray)
    np.testing.assert_array_equal(rows, pool[np.sort(ids)])
    np.testing.assert_array_equal(np.load(npy_run / "selected_row_ids.npy"), np.sort(ids))  # beside the vectors
    m = json.loads((npy_run / "manifest.json").read_text())
    assert m["counts"]["selected_rows"] == len(ids) and m["counts"]["pool_rows"] == 3000
    # The default stop is the F1 rule, quantised too: the argmax prefix's rows (the target-like third of the pool).
    assert m["quantization"]["pool_clusters"] <= 60 and m["stop_reason"] == "auto-f1"
    assert m["size_estimate"]["f1"]["best_rows"] == len(ids) and abs(len(ids) - 1000) < 300
    assert len(m["inputs"]["pool"]["sha256"]) == 64 and m["parameters"]["v_init"] == "jump"
    assert set(m["timings_s"]) >= {"read", "quantize_pool", "select", "explode", "write", "total"}
    with open(npy_run / "kl_trace.csv") as fh:
        trace = list(csv.DictReader(fh))
    assert trace[0]["event"] == "start"
    accepted = [r for r in trace if r["accepted"] == "1"]
    # The F1 rule: the trace has every pick of the run, past the argmax. The cluster-level rule's kept prefix holds
    # a size; GIO went on until its picks held the row-level pass's over times that (gio at this size, over 2), and
    # the same rule along the pass's ranking of their rows set the selection's size; the final objective is the
    # last pick it read's.
    f1, reach = m["size_estimate"]["f1"]["clusters"], m["counts"]["selected_candidates"]
    assert m["size_estimate"]["f1"]["rule"] == "f1_along_row_pass"
    assert m["refine_decision"]["refine"] == "gio" and m["refine_decision"]["refine_over"] == 2.0
    assert m["quantization"]["rows"].startswith("row-level pass (gio)")
    assert len(accepted) >= reach > f1["best_picks"] > 0
    assert sum(int(r["rows"]) for r in accepted[: f1["best_picks"]]) == f1["best_rows"]
    held = sum(int(r["rows"]) for r in accepted[:reach])
    assert held >= 2 * f1["best_rows"] > held - int(accepted[reach - 1]["rows"]) and held >= len(ids)
    assert float(accepted[reach - 1]["kl"]) == pytest.approx(m["final_kl"])
    html = (npy_run / "report.html").read_text()
    assert "data:image/png;base64," in html


def test_rows_of_a_cluster_come_in_ascending_order(data: dict[str, object], tmp_path: Path) -> None:
    # The paper's explode (--refine none): each chosen cluster whole, its rows ascending.
    out = tmp_path / "whole"
    assert select(data, out, "pool.npy", "--refine", "none") == 0
    ids = np.load(out / "selected_ids.npy")
    trace = list(csv.DictReader(open(out / "kl_trace.csv")))
    sizes = [int(r["rows"]) for r in trace if r["accepted"] == "1"]
    start = 0
    for s in sizes:
        block = ids[start : start + s]
        assert (np.diff(block) > 0).all()
        start += s


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_every_format_gives_the_same_selection(fmt: str, data: dict[str, object], tmp_path: Path,
                                               npy_run: Path) -> None:
    out = tmp_path / fmt
    assert select(data, out, f"pool.{fmt}", "--v-init", "jump") == 0
    np.testing.assert_array_equal(np.load(out / "selected_ids.npy"), np.load(npy_run / "selected_ids.npy"))
    ids = np.sort(np.load(out / "selected_ids.npy"))
    sel = out / f"selected_rows.{fmt}"
    if fmt == "parquet":
        t = pq.read_table(sel)
        assert t.column_names[:3] == ["id", "text", "embedding"] and "gio_row_id" in t.column_names
        np.testing.assert_array_equal(t.column("gio_row_id").to_numpy(), ids)
        np.testing.assert_array_equal(t.column("id").to_numpy(), ids)
    elif fmt == "csv":
        lines = list(csv.reader(open(sel), delimiter="\t"))
        assert len(lines) == len(ids)
        assert [int(line[0]) for line in lines] == ids.tolist()
        assert [int(line[3]) for line in lines] == ids.tolist()  # gio_row_id appended after the original columns
        assert lines[0][1].startswith("row ")
    else:
        objs = [json.loads(line) for line in open(sel)]
        assert [o["gio_row_id"] for o in objs] == ids.tolist() and all("text" in o for o in objs)


def test_same_seed_same_files(data: dict[str, object], tmp_path: Path, npy_run: Path) -> None:
    out = tmp_path / "again"
    assert select(data, out, "pool.npy", "--v-init", "jump") == 0
    for name in ("selected_ids.npy", "selected_rows.npy", "kl_trace.csv"):
        assert (out / name).read_bytes() == (npy_run / name).read_bytes(), name
    a = json.loads((out / "manifest.json").read_text())
    b = json.loads((npy_run / "manifest.json").read_text())
    for m in (a, b):
        for key in ("timings_s", "cpu_s", "created_utc", "command"):
            m.pop(key)
    assert a == b


def test_no_quantization_and_budget(data: dict[str, object], tmp_path: Path) -> None:
    d = data["dir"]
    assert isinstance(d, Path)
    out = tmp_path / "raw"
    assert run("select", "--pool", d / "pool.npy", "--target", d / "target.npy", "--out", out, "--clusters", 0,
               "--budget", 40, "--v-init", "jump", "-q") == 0
    ids = np.load(out / "selected_ids.npy")
    m = json.loads((out / "manifest.json").read_text())
    assert len(ids) == 40 and m["stop_reason"] == "budget" and m["quantization"] is None
    out2 = tmp_path / "pct"
    assert select(data, out2, "pool.npy", "--budget", "5%") == 0
    ids2 = np.load(out2 / "selected_ids.npy")
    assert 0 < len(ids2) <= 150
    out3 = tmp_path / "exact"
    assert select(data, out3, "pool.npy", "--budget", "5%", "--budget-exact") == 0
    assert len(np.load(out3 / "selected_ids.npy")) == 150


def test_one_cluster_warns_that_nothing_was_chosen_not_that_rows_are_identical(
        data: dict[str, object], tmp_path: Path) -> None:
    d = data["dir"]
    assert isinstance(d, Path)
    out = tmp_path / "one"
    assert run("select", "--pool", d / "pool.npy", "--target", d / "target.npy", "--out", out, "--clusters", 1,
               "--target-clusters", 0, "--budget", 20, "-q") == 0
    (w,) = json.loads((out / "manifest.json").read_text())["warnings"]
    assert "--clusters 1" in w and "identical" not in w  # the pool's rows are far from identical


def test_nothing_selected_under_a_budget_does_not_advise_a_budget(data: dict[str, object], tmp_path: Path) -> None:
    d = data["dir"]
    assert isinstance(d, Path)
    out = tmp_path / "mi0"
    assert run("select", "--pool", d / "pool.npy", "--target", d / "target.npy", "--out", out, "--clusters", 0,
               "--budget", 20, "--max-iter", 0, "-q") == 3
    (w,) = json.loads((out / "manifest.json").read_text())["warnings"]
    assert "nothing was selected" in w and "--max-iter" in w and "pass --budget" not in w


def test_nothing_selected_by_a_stop_rule_names_it(data: dict[str, object], tmp_path: Path) -> None:
    d = data["dir"]
    assert isinstance(d, Path)
    out = tmp_path / "md"
    assert run("select", "--pool", d / "pool.npy", "--target", d / "target.npy", "--out", out, "--clusters", 0,
               "--stop", "min_difference", "--min-difference", "1e9", "-q") == 3
    (w,) = json.loads((out / "manifest.json").read_text())["warnings"]
    assert "stop reason 'min_difference'" in w and "automatic size" not in w  # it blamed the automatic size
    out = tmp_path / "same"  # the pool as its own target: the F1 rule fired and kept every row
    assert run("select", "--pool", d / "target.npy", "--target", d / "target.npy", "--out", out, "-q") == 3
    (w,) = json.loads((out / "manifest.json").read_text())["warnings"]
    assert "the whole pool was selected" in w and "never fired" not in w


def test_existing_out_is_refused_then_forced(data: dict[str, object], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert select(data, out, "pool.npy") == 2
    assert "not a previous gioselect result" in capsys.readouterr().err and (out / "keep.txt").exists()
    # --force replaces only a previous gioselect result: a folder of other files is never removed.
    assert select(data, out, "pool.npy", "--force") == 2
    assert (out / "keep.txt").read_text() == "precious" and not (out / "selected_ids.npy").exists()
    res = tmp_path / "r"
    assert select(data, res, "pool.npy") == 0
    assert select(data, res, "pool.npy") == 2
    assert "pass --force" in capsys.readouterr().err
    assert select(data, res, "pool.npy", "--force", "--seed", 4) == 0
    assert json.loads((res / "manifest.json").read_text())["seed"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o", "r"]  # no leftovers beside them


def _bad(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Bad pool files and a fragment of the message each must produce."""
    cases: dict[str, tuple[Path, str]] = {}
    p = tmp_path / "missing.npy"
    cases["missing file"] = (p, "does not exist")
    p = tmp_path / "pool.txt"
    p.write_text("1 2 3\n")
    cases["unknown extension"] = (p, ".txt")
    p = tmp_path / "empty.jsonl"
    p.write_text("")
    cases["empty file"] = (p, "empty")
    p = tmp_path / "ragged.jsonl"
    p.write_text('{"embedding": [1, 2, 3, 4, 5, 6, 7, 8]}\n{"embedding": [1, 2]}\n')
    cases["ragged"] = (p, "row 1")
    p = tmp_path / "text.jsonl"
    p.write_text('{"embedding": [1, 2, 3, 4, 5, 6, 7, 8]}\n{"embedding": ["a", 2, 3, 4, 5, 6, 7, 8]}\n')
    cases["non-numeric"] = (p, "row 1")
    arr = np.random.default_rng(0).normal(size=(500, 8)).astype(np.float32)
    arr[321, 4] = np.nan
    p = tmp_path / "nan.npy"
    np.save(p, arr)
    cases["nan"] = (p, "row 321")
    p = tmp_path / "dim.npy"
    np.save(p, np.ones((50, 5), dtype=np.float32))
    cases["dimension mismatch"] = (p, "dimension")
    p = tmp_path / "nocol.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3]}), p)
    cases["missing embedding column"] = (p, "embedding")
    p = tmp_path / "pickle.npy"
    np.save(p, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    cases["pickle"] = (p, "pickle")
    p = tmp_path / "corrupt.parquet"
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"embedding": pa.array([[1.0] * 8] * 20)}), good)
    p.write_bytes(good.read_bytes()[:60])
    cases["corrupt parquet"] = (p, "corrupt.parquet")
    return cases


def test_bad_inputs_exit_2_and_leave_nothing(data: dict[str, object], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    d = data["dir"]
    assert isinstance(d, Path)
    for what, (path, fragment) in _bad(tmp_path).items():
        out = tmp_path / f"out-{what.replace(' ', '_')}"
        code = run("select", "--pool", path, "--target", d / "target.npy", "--out", out, "--clusters", 10, "-q")
        err = capsys.readouterr().err
        assert code == 2, (what, err)
        assert fragment.lower() in err.lower(), (what, err)
        assert not out.exists() and not out.with_name(out.name + ".partial").exists(), what


@pytest.mark.parametrize(("args", "fragment"), [
    (("--budget", "0"), "budget"),
    (("--budget", "4000"), "more than the pool"),
    (("--budget", "abc"), "budget"),
    (("--k", "0"), "k must be >= 1"),
    (("--lr", "-1"), "lr must be > 0"),
    (("--stop", "nope"), "invalid choice"),
    (("--budget-exact",), "needs a budget"),
])
def test_bad_options_exit_2(args: tuple[str, ...], fragment: str, data: dict[str, object], tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    assert select(data, out, "pool.npy", *args) == 2
    assert fragment in capsys.readouterr().err
    assert not out.exists()


def test_help_is_complete(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--help") == 0
    top = capsys.readouterr().out
    assert "select" in top and "check" in top and "Exit codes" in top
    assert run("select", "--help") == 0
    text = capsys.readouterr().out
    for opt in ("--pool", "--target", "--out", "--clusters", "--budget", "--budget-exact", "--k", "--stop",
                "--max-iter", "--v-init", "--grad-desc-iter", "--lr", "--scale-factor", "--resets-allowed",
                "--seed", "--resume", "--force", "--memory-budget", "--quiet", "--verbose", "--embedding-field"):
        assert opt in text, opt


def test_help_says_every_budget_is_exact(capsys: pytest.CaptureFixture[str]) -> None:
    # the help said a budget only capped the selection ("stop before ... would exceed N rows")
    assert run("select", "--help") == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "select exactly N rows or P% of the pool" in text and "would exceed" not in text
    assert "every budget is exact now" in text


# The CLI in a child process, each GIO pick slowed down by ``pick_delay`` seconds (through main's on_pick hook)
# so that a test can kill or interrupt it mid-run.
_SLOW_CLI = "import sys, time; from gioselect.cli import main; d = float(sys.argv[1]); " \
    "sys.exit(main(sys.argv[2:], on_pick=lambda ev: time.sleep(d)))"


def _cli(*args: object, pick_delay: float = 0.0) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _SLOW_CLI, str(pick_delay), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("kill_when", ["kmeans_done", "mid_selection"])
def test_resume_after_kill_9_gives_the_uninterrupted_selection(kill_when: str, data: dict[str, object],
                                                               tmp_path: Path, npy_run: Path) -> None:
    d = data["dir"]
    assert isinstance(d, Path)
    out = tmp_path / "killed"
    work = out.with_name("killed.partial")
    args = ["select", "--pool", d / "pool.npy", "--target", d / "target.npy", "--out", out, "--clusters", CLUSTERS,
            "--seed", 3, "--v-init", "jump", "-q", "--checkpoint-every", 1]
    proc = _cli(*args, pick_delay=0.3)
    marker = work / ("pool_quantization.npz" if kill_when == "kmeans_done" else "gio_state.npz")
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.02)
    if kill_when == "mid_selection":
        time.sleep(0.7)  # a few more picks
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and work.exists()
    done = _cli(*args, "--resume")
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err.decode()
    for name in ("selected_ids.npy", "selected_rows.npy", "kl_trace.csv"):
        assert (out / name).read_bytes() == (npy_run / name).read_bytes(), name
    assert not work.exists()


def test_resume_refuses_other_parameters(data: dict[str, object], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    d = data["dir"]
    assert isinstance(d, Path)
    out = tmp_path / "r"
    work = out.with_name("r.partial")
    work.mkdir()
    (work / "fingerprint.json").write_text(json.dumps({"hash": "something else"}))
    assert select(data, out, "pool.npy", "--resume") == 2
    assert "other inputs or parameters" in capsys.readouterr().err
    assert work.exists()  # the old checkpoint is not thrown away by a refused resume


def test_check_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("check", "self") == 0
    assert "PASS self-consistency" in capsys.readouterr().out
    assert run("check", "negative", "--json") == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True


def test_unquantized_pool_must_fit_the_memory_budget(data: dict[str, object], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # 3,000 x 8 float32 = 96,000 bytes: a jsonl pool is read into memory, so 80 KiB is refused...
    out = tmp_path / "o"
    assert select(data, out, "pool.jsonl", "--clusters", "0", "--memory-budget", "80K") == 2
    assert "memory budget" in capsys.readouterr().err and not out.exists()
    # ...while a float32 .npy pool stays memory-mapped and runs within the same budget.
    assert select(data, out, "pool.npy", "--clusters", "0", "--memory-budget", "80K", "--max-iter", "5") == 0
    assert len(np.load(out / "selected_ids.npy")) == 5


def test_resume_of_a_complete_run_is_a_no_op(data: dict[str, object], tmp_path: Path, npy_run: Path) -> None:
    import shutil

    out = tmp_path / "done"
    shutil.copytree(npy_run, out)
    leftover = out.with_name("done.partial")
    leftover.mkdir()  # as if killed after publishing, before removing the work folder
    before = (out / "selected_ids.npy").read_bytes()
    assert select(data, out, "pool.npy", "--v-init", "jump", "--resume") == 0
    assert (out / "selected_ids.npy").read_bytes() == before and not leftover.exists()
