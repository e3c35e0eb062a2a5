"""Tests of gioselect.report: the HTML report, its plots, the 2-D PCA and the CLI summary text."""

from __future__ import annotations

import base64
import json
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from gioselect import report
from gioselect.errors import InvalidInputError, InvalidTypeError
from gioselect.report import pca_2d, plot_kl_trace, plot_projection, render_summary_text, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _manifest(**overrides: object) -> dict:
    m: dict = {
        "gioselect_version": "0.1.0",
        "command": ["gioselect", "select", "pool.npy", "target.npy"],
        "created_utc": "2024-05-01T12:00:00Z",
        "parameters": {"k": 5, "max_iter": 40, "stop": "kl_increase"},
        "seed": 7,
        "inputs": {
            "pool": {"path": "data/pool.npy", "format": "npy", "rows": 300, "dim": 4, "bytes": 4928,
                     "sha256": "0123456789abcdef" * 4},
            "target": {"path": "data/target.npy", "format": "npy", "rows": 40, "dim": 4, "bytes": 768,
                       "sha256": "fedcba9876543210" * 4},
        },
        "counts": {"pool_rows": 300, "target_rows": 40, "candidates": 300, "selected_rows": 1234,
                   "selected_candidates": 1234},
        "stop_reason": "kl_increase",
        "initial_kl": 2.5,
        "final_kl": 0.75,
        "timings_s": {"load": 0.25, "select": 3.0},
        "versions": {"numpy": "2.0.0", "matplotlib": "3.9.0"},
        "quantization": None,
        "outputs": {"manifest": "manifest.json", "report": "report.html"},
    }
    m.update(overrides)
    return m


@pytest.fixture(scope="module")
def samples() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    target = rng.normal(size=(40, 4)).astype(np.float32)
    pool = rng.normal(1.0, 2.0, size=(300, 4)).astype(np.float32)
    return target, pool, pool[:25]


def _write(path: Path, samples: tuple[np.ndarray, np.ndarray, np.ndarray] | None, **kw: object) -> str:
    t, p, s = samples if samples is not None else (None, None, None)
    args: dict = {"manifest": _manifest(), "kl_trace": [2.0, 1.5, 1.0, 0.75], "initial_kl": 2.5,
                  "target_sample": t, "pool_sample": p, "selected_sample": s}
    args.update(kw)
    write_report(path, **args)
    return path.read_text(encoding="utf-8")


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    return int(w), int(h)


def test_report_has_sections_values_and_embedded_pngs(tmp_path: Path, samples: tuple) -> None:
    out = tmp_path / "report.html"
    text = _write(out, samples)
    assert text.startswith("<!DOCTYPE html>")
    for heading in ("Summary", "Objective per pick", "2-D projection", "Parameters", "Inputs", "Timings",
                    "Package versions"):
        assert f">{heading}</h2>" in text
    # summary, inputs, timings and versions values come from the manifest
    for value in ("1,234", "kl_increase", "0.75", "3.25 s", "data/pool.npy", "0123456789abcdef",
                  "max_iter", "matplotlib", "3.9.0", "4.8 KiB"):
        assert value in text, value
    assert "0123456789abcdef0" not in text  # sha256 shown as a prefix only
    uris = DATA_URI.findall(text)
    assert len(uris) == 2
    for b64 in uris:
        w, h = _png_size(base64.b64decode(b64))
        assert w > 100 and h > 100
    # self-contained: nothing fetched from elsewhere
    assert "<script" not in text and "<link" not in text and "http" not in text


def test_report_escapes_user_values(tmp_path: Path, samples: tuple) -> None:
    evil = "<script>alert('x')</script>"
    m = _manifest(stop_reason=evil, parameters={evil: evil, "note": 'a"b&c'}, command=evil)
    m["inputs"]["pool"]["path"] = f"/data/{evil}.npy"
    text = _write(tmp_path / "r.html", samples, manifest=m,
                  extra_sections=[(f"Heading {evil}", "<p id='raw'>kept as given</p>")])
    assert "<script" not in text
    assert "&lt;script&gt;" in text
    assert "/data/&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;.npy" in text
    assert "a&quot;b&amp;c" in text
    # extra sections: heading escaped, body inserted as given, after the built-in sections
    assert "<h2>Heading &lt;script&gt;" in text
    assert text.index("<p id='raw'>kept as given</p>") > text.index(">Package versions</h2>")


def test_report_without_samples_and_with_empty_trace(tmp_path: Path) -> None:
    text = _write(tmp_path / "r.html", None, kl_trace=[], initial_kl=None, manifest={})
    assert "projection is skipped" in text
    assert "No objective values recorded" in text
    assert "n/a" in text
    assert DATA_URI.findall(text) == []


def test_report_empty_trace_with_initial_kl_still_plots(tmp_path: Path) -> None:
    text = _write(tmp_path / "r.html", None, kl_trace=[], initial_kl=1.5)
    assert len(DATA_URI.findall(text)) == 1


def test_report_tolerates_malformed_manifest_values(tmp_path: Path, samples: tuple) -> None:
    m = {"counts": "not a dict", "inputs": {"pool": None}, "timings_s": {"x": "slow"}, "parameters": [1, 2],
         "quantization": {"pool_clusters": 16}, "final_kl": float("nan")}
    text = _write(tmp_path / "r.html", samples, manifest=m, kl_trace=[1.0, float("inf"), 0.5])
    assert "16 pool clusters, n/a target clusters" in text
    assert ">slow<" in text
    assert len(DATA_URI.findall(text)) == 2


def test_report_is_byte_identical_for_identical_inputs(tmp_path: Path, samples: tuple) -> None:
    a, b = tmp_path / "a.html", tmp_path / "b.html"
    _write(a, samples)
    _write(b, samples)
    assert a.read_bytes() == b.read_bytes()
    _write(b, samples, kl_trace=[2.0, 1.5, 1.0, 0.7])
    assert a.read_bytes() != b.read_bytes()


def test_report_rejects_bad_arguments(tmp_path: Path, samples: tuple) -> None:
    with pytest.raises(InvalidTypeError, match="manifest"):
        _write(tmp_path / "r.html", samples, manifest=["not", "a", "dict"])
    with pytest.raises(InvalidInputError, match="kl_trace"):
        _write(tmp_path / "r.html", samples, kl_trace=[[1.0, 2.0]])
    with pytest.raises(InvalidTypeError, match="extra_sections"):
        _write(tmp_path / "r.html", samples, extra_sections=[("only heading",)])
    t, p, s = samples
    with pytest.raises(InvalidInputError, match="dimension"):
        _write(tmp_path / "r.html", (t, p, s[:, :3]))
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_write_is_atomic(tmp_path: Path, samples: tuple, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    out = tmp_path / "report.html"
    out.write_text("old report", encoding="utf-8")

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(OSError, match="disk full"):
        _write(out, None)
    monkeypatch.undo()
    assert out.read_text(encoding="utf-8") == "old report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temp file left behind

    new = tmp_path / "new" / "report.html"
    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(OSError):
        _write(new, None)
    monkeypatch.undo()
    assert list(new.parent.iterdir()) == []


def test_written_file_has_umask_permissions(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    _write(out, None)
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_plot_kl_trace_writes_deterministic_png(tmp_path: Path) -> None:
    a = plot_kl_trace([3.0, 2.0, 2.5, float("nan")], 4.0, tmp_path / "a.png", picks_label="clusters")
    b = plot_kl_trace([3.0, 2.0, 2.5, float("nan")], 4.0, tmp_path / "b.png", picks_label="clusters")
    assert a == tmp_path / "a.png"
    assert _png_size(a.read_bytes()) == (700, 460)
    assert a.read_bytes() == b.read_bytes()
    assert b"Software" not in a.read_bytes()  # no matplotlib version stamp
    c = plot_kl_trace([], None, tmp_path / "c.png")
    assert c.read_bytes()[:8] == PNG_MAGIC


def test_plot_projection_writes_png(tmp_path: Path, samples: tuple) -> None:
    t, p, s = samples
    out = plot_projection(t, p, s[:0], tmp_path / "sub" / "proj.png", title="<t>")
    assert out.read_bytes()[:8] == PNG_MAGIC
    again = plot_projection(t, p, s[:0], tmp_path / "proj2.png", title="<t>")
    assert out.read_bytes() == again.read_bytes()
    with pytest.raises(InvalidInputError, match="selected_sample"):
        plot_projection(t, p, s[:, :2], tmp_path / "bad.png")
    with pytest.raises(InvalidInputError, match="NaN"):
        plot_projection(t, np.full((3, 4), np.nan), s, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_pca_2d_projects_a_line_onto_the_first_axis() -> None:
    rng = np.random.default_rng(1)
    direction = rng.normal(size=5)
    direction /= np.linalg.norm(direction)
    t = rng.uniform(-10, 10, size=500)
    x = (t[:, None] * direction + np.arange(5.0) + 1e-3 * rng.normal(size=(500, 5))).astype(np.float32)
    (proj,) = pca_2d(x, x)
    assert proj.dtype == np.float64 and proj.shape == (500, 2)
    assert np.std(proj[:, 1]) < 1e-2 * np.std(proj[:, 0])
    assert abs(np.corrcoef(proj[:, 0], t)[0, 1]) > 0.9999
    assert abs(proj[:, 0].mean()) < 1e-3  # centred on the fit data


def test_pca_2d_subsample_is_seeded_and_signs_are_fixed() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 3)) * np.array([5.0, 2.0, 0.1])
    a = pca_2d(x, x[:10], x[:0], seed=3, max_fit_rows=100)
    b = pca_2d(x, x[:10], x[:0], seed=3, max_fit_rows=100)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1].shape == (0, 2)
    # axes follow the large-variance coordinates; the sign convention makes the loadings positive
    (e,) = pca_2d(x, np.eye(3) + x.mean(axis=0))
    assert e[0, 0] > 0.99 and e[1, 1] > 0.99
    (neg,) = pca_2d(-x, -x[:10], seed=3, max_fit_rows=100)
    (pos,) = pca_2d(x, x[:10], seed=3, max_fit_rows=100)
    np.testing.assert_allclose(neg, -pos, atol=1e-9)


def test_pca_2d_edge_cases() -> None:
    one_d = np.arange(6.0).reshape(6, 1)
    (p,) = pca_2d(one_d, one_d)
    np.testing.assert_allclose(np.abs(p[:, 0]), np.abs(one_d[:, 0] - 2.5))
    np.testing.assert_array_equal(p[:, 1], 0.0)
    (single,) = pca_2d(np.ones((1, 3)), np.ones((2, 3)))
    np.testing.assert_array_equal(single, 0.0)
    with pytest.raises(InvalidInputError, match="expected 3"):
        pca_2d(np.ones((4, 3)), np.ones((2, 2)))
    with pytest.raises(InvalidInputError, match="fit_on"):
        pca_2d(np.ones((0, 3)))
    with pytest.raises(InvalidInputError, match=r"arrays\[0\]: row 1"):
        pca_2d(np.ones((4, 3)), np.array([[0.0, 0, 0], [np.inf, 0, 0]]))


def test_render_summary_text() -> None:
    text = render_summary_text(_manifest())
    assert "1,234" in text and "300 pool rows" in text and "kl_increase" in text
    assert "2.5 -> 0.75" in text and "3.25 s" in text and "report.html" in text
    assert not text.endswith("\n")
    q = render_summary_text(_manifest(quantization={"pool_clusters": 64, "target_clusters": 8}))
    assert "1,234 (1,234 clusters)" in q and "64 pool clusters, 8 target clusters" in q
    no_report = render_summary_text(_manifest(outputs={"manifest": "manifest.json", "report": None}))
    assert no_report.splitlines()[-1] == "outputs: manifest.json"  # --no-report: no report listed, no "n/a"
    bare = render_summary_text({"stop_reason": "evil\x1b[31m"})
    assert "n/a" in bare and "\x1b" not in bare and "\\x1b[31m" in bare
    with pytest.raises(InvalidTypeError):
        render_summary_text("manifest.json")  # type: ignore[arg-type]


# --- picks, breakdown, stop reason, warnings and the t-SNE map -----------------------------------------------


def test_write_picks_gains_and_nearest_targets(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(40, 4)).astype(np.float32)
    target = rng.normal(size=(12, 4)).astype(np.float32)
    labels = np.arange(40) % 5  # 5 clusters
    picks = np.array([3, 1])  # clusters in pick order
    sel = np.concatenate([np.flatnonzero(labels == 3), np.flatnonzero(labels == 1)])
    cols = report.write_picks(tmp_path / "picks.csv", sel, picks, labels, 10.0, [7.5, 7.0], lambda i: pool[i],
                              target)
    np.testing.assert_allclose(cols["gio_gain"], np.where(labels[sel] == 3, 2.5, 0.5))
    d = ((pool[sel][:, None].astype(np.float64) - target[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(cols["gio_nearest_target"], np.argsort(d, axis=1)[:, :3])
    lines = (tmp_path / "picks.csv").read_text().splitlines()
    assert lines[0] == "gio_row_id,gio_rank,gio_gain,gio_nearest_target" and len(lines) == 1 + sel.shape[0]
    first = lines[1].split(",")
    assert int(first[0]) == sel[0] and float(first[2]) == 2.5
    assert first[3] == " ".join(map(str, cols["gio_nearest_target"][0]))


def test_report_lists_picks_breakdown_stop_reason_and_warnings(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    n = 30
    topic = ["tech" if i % 3 == 0 else "sport" for i in range(n)]
    pq.write_table(pa.table({"text": [f"<b>row {i}</b>" for i in range(n)], "topic": topic,
                             "embedding": list(rng.normal(size=(n, 4)).astype(np.float32))}),
                   tmp_path / "pool.parquet")
    ids = np.array([9, 0, 3])  # selection order
    table = pq.read_table(tmp_path / "pool.parquet").take(pa.array(np.sort(ids)))
    pq.write_table(table, tmp_path / "selected_rows.parquet")
    picks = {"gio_row_id": ids, "gio_rank": np.arange(3), "gio_gain": np.array([0.5, 0.25, np.nan]),
             "gio_nearest_target": np.array([[1, 2], [0, 1], [2, 0]])}
    manifest = {"stop_reason": "budget", "warnings": ["quantising leaves 3 rows per cluster <careful>"]}
    out = write_report(tmp_path / "r.html", manifest=manifest, kl_trace=[1.0, 0.5], initial_kl=2.0,
                       target_sample=None, pool_sample=None, selected_sample=None, picks=picks,
                       pool_path=tmp_path / "pool.parquet", selected_path=tmp_path / "selected_rows.parquet",
                       report_fields=["topic"], text_field="text")
    page = out.read_text()
    assert "the next pick would exceed the row budget" in page
    assert "quantising leaves 3 rows per cluster &lt;careful&gt;" in page
    picks_html = page.split('id="picks"')[1]
    # the preview of rank 0 is pool row 9's text, escaped, and its gain and nearest targets are listed
    assert picks_html.index("&lt;b&gt;row 9&lt;/b&gt;") < picks_html.index("&lt;b&gt;row 0&lt;/b&gt;")
    assert "<td>1 2</td>" in picks_html and "n/a" in picks_html
    breakdown = page.split("Selection by topic")[1]
    assert re.search(r"<td>tech</td><td[^>]*>3</td><td[^>]*>100.0%</td><td[^>]*>10</td><td[^>]*>33.3%</td>",
                     breakdown)
    assert "The run printed no warnings." in write_report(
        tmp_path / "r2.html", manifest={}, kl_trace=[], initial_kl=None, target_sample=None, pool_sample=None,
        selected_sample=None).read_text()


@pytest.mark.parametrize("name", ["selected_rows.tsv", "selected_rows.csv"])
def test_report_previews_headerless_tab_delimited_rows(tmp_path: Path, name: str) -> None:
    # grad-info-opt's layout (no header, tabs, also in a .csv) is kept in the selected rows; the preview reads it so
    rows = [f"{i}\tt{i}\t[0.{i}, 1.0]\t{i}\t{r}" for r, i in enumerate([2, 5, 7])]
    (tmp_path / name).write_text("\n".join(rows) + "\n")
    picks = {"gio_row_id": np.array([7, 2, 5]), "gio_rank": np.arange(3), "gio_gain": np.array([0.5, 0.25, 0.1]),
             "gio_nearest_target": np.array([[1], [0], [2]])}
    page = write_report(tmp_path / "r.html", manifest={}, kl_trace=[1.0], initial_kl=2.0, target_sample=None,
                        pool_sample=None, selected_sample=None, picks=picks, selected_path=tmp_path / name
                        ).read_text()
    picks_html = page.split('id="picks"')[1]
    assert picks_html.index("_c1=t7") < picks_html.index("_c1=t2") < picks_html.index("_c1=t5")


@pytest.mark.parametrize("name", ["selected_rows.ndjson", "selected_rows.pq"])
def test_report_previews_rows_of_every_accepted_extension(tmp_path: Path, name: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"text": f"row {i}", "gio_row_id": i, "gio_rank": r} for r, i in enumerate([2, 5, 7])]
    if name.endswith(".pq"):  # these were read as csv: a crash (exit 1) after the whole run
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / name)
    else:
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    picks = {"gio_row_id": np.array([7, 2, 5]), "gio_rank": np.arange(3), "gio_gain": np.array([0.5, 0.25, 0.1]),
             "gio_nearest_target": np.array([[1], [0], [2]])}
    page = write_report(tmp_path / "r.html", manifest={}, kl_trace=[1.0], initial_kl=2.0, target_sample=None,
                        pool_sample=None, selected_sample=None, picks=picks, selected_path=tmp_path / name,
                        text_field="text").read_text()
    picks_html = page.split('id="picks"')[1]
    assert picks_html.index("row 7") < picks_html.index("row 2") < picks_html.index("row 5")


def test_tsne_map_separates_what_pca_mixes() -> None:
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    # 8 tight clusters in 64-D: t-SNE keeps each cluster together in 2-D
    centres = rng.normal(size=(8, 64))
    lab = np.repeat(np.arange(8), 20)
    x = centres[lab] + 0.05 * rng.normal(size=(160, 64))
    (m,) = report.tsne_2d([x], seed=0, max_rows=400)
    assert m.shape == (160, 2)
    d = ((m[:, None] - m[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (lab[d.argmin(axis=1)] == lab).mean() > 0.95  # every point's 2-D neighbour is from its cluster
    a, b = report.tsne_2d([np.vstack([x] * 3), x[:20]], seed=0, max_rows=100)  # bounded, in proportion
    assert a.shape == (96, 2) and b.shape == (4, 2)


def test_cli_run_report_lists_picks_and_breakdown(tmp_path: Path) -> None:
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq

    from gioselect.cli import main

    rng = np.random.default_rng(2)
    c = rng.normal(size=(2, 8))
    lab = np.arange(400) % 2
    x = c[lab] + 0.2 * rng.normal(size=(400, 8))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    t = c[0] + 0.2 * rng.normal(size=(60, 8))
    pq.write_table(pa.table({"topic": np.where(lab == 0, "wanted", "other"), "embedding": list(x)}),
                   tmp_path / "pool.parquet")
    pq.write_table(pa.table({"embedding": list((t / np.linalg.norm(t, axis=1, keepdims=True)).astype(np.float32))}),
                   tmp_path / "target.parquet")
    out = tmp_path / "run"
    assert main(["select", "--pool", str(tmp_path / "pool.parquet"), "--target", str(tmp_path / "target.parquet"),
                 "--out", str(out), "--clusters", "0", "--max-iter", "30", "--report-field", "topic", "-q"]) == 0
    ids = np.load(out / "selected_ids.npy")
    with open(out / "picks.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["gio_row_id"]) for r in rows] == ids.tolist()
    with open(out / "kl_trace.csv") as fh:
        kl = [float(r["kl"]) for r in csv.DictReader(fh) if r["event"] in ("start", "accepted")]
    np.testing.assert_allclose([float(r["gio_gain"]) for r in rows], -np.diff(kl))
    page = (out / "report.html").read_text()
    listed = re.findall(r"<tr><td[^>]*>(\d+)</td><td[^>]*>(\d+)</td>", page.split('id="picks"')[1])
    assert [int(r) for _, r in listed[:30]] == ids[:30].tolist()
    share = (lab[ids] == 0).mean()
    assert f"{100 * share:.1f}%" in page.split("Selection by topic")[1]


def test_cli_report_field_is_checked_before_the_run_and_may_hold_lists(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gioselect.cli import main

    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    pq.write_table(pa.table({"topic": ["a", "b"] * 100, "embedding": list(x)}), tmp_path / "pool.parquet")
    np.save(tmp_path / "target.npy", x[:30])
    base = ["select", "--pool", str(tmp_path / "pool.parquet"), "--target", str(tmp_path / "target.npy"),
            "--clusters", "0", "--budget", "10", "-q"]
    picks: list[object] = []
    # a misspelt column was found only by the report, after the whole run
    assert main([*base, "--out", str(tmp_path / "a"), "--report-field", "topc"], on_pick=picks.append) == 2
    assert "has no column 'topc'" in capsys.readouterr().err and not picks and not (tmp_path / "a").exists()
    # a vector column crashed the report (exit 1) after the whole run
    assert main([*base, "--out", str(tmp_path / "b"), "--report-field", "embedding"]) == 0
    assert "Selection by embedding" in (tmp_path / "b" / "report.html").read_text()
    # a missing label failed the report (exit 2) after the whole run; it is a category of its own
    pq.write_table(pa.table({"topic": [None] + ["a", "b"] * 99 + ["a"], "embedding": list(x)}),
                   tmp_path / "pool.parquet")
    assert main([*base, "--out", str(tmp_path / "c"), "--report-field", "topic"]) == 0
    assert "<td>(missing)</td>" in (tmp_path / "c" / "report.html").read_text().split("Selection by topic")[1]


def test_evaluate_table_marks_the_better_direction() -> None:
    from gioselect.cli.evaluate import format_table
    from gioselect.evaluate import METRIC_DIRECTION, metric_header

    assert metric_header("mmd2") == "mmd2 ↓" and metric_header("coverage") == "coverage ↑"
    assert set(METRIC_DIRECTION) >= {"kl_target_sel", "coverage", "downstream_accuracy"}
    res = {"methods": {"gio": [{"size": 10, "mmd2": 0.1, "coverage": 0.8}]},
           "split": {"target_select": 5, "target_holdout": 5}, "gio": {"selected": 10, "stop_reason": "increase"}}
    text = format_table(res)
    assert "mmd2 ↓" in text and "coverage ↑" in text and "lower is better" in text


@pytest.mark.parametrize("target_rows", [1, 2, 7])
def test_picks_csv_lines_are_each_rows_own_values(target_rows: int, tmp_path: Path) -> None:
    """picks.csv formats column by column (one repr per distinct gain); every line is still the row's own id,
    rank, gain repr (-0.0 kept apart from 0.0, NaN for a row whose cluster was never picked) and nearest ids."""
    from gioselect.report import write_picks

    rng = np.random.default_rng(target_rows)
    pool = rng.normal(size=(60, 3))
    target = rng.normal(size=(target_rows, 3))
    labels = np.arange(60) % 6
    picks = np.array([1, 2, 2, 4])
    trace = [0.0, 0.0, 0.3, 0.1 + 0.2]  # gains: -0.0 (from -0.0 - 0.0), 0.0, -0.3, 0.3 - (0.1 + 0.2)
    ids = np.array([7, 1, 8, 2, 4, 5, 13, 0])  # clusters 1, 1, 2, 2, 4, 5 (never picked), 1, 0 (never picked)
    cols = write_picks(tmp_path / "picks.csv", ids, picks, labels, -0.0, trace, lambda i: pool[i], target)
    gain = {1: -0.0, 2: 0.0, 4: 0.3 - (0.1 + 0.2)}
    d2 = ((pool[ids][:, None, :] - target[None, :, :]) ** 2).sum(axis=2)
    near = np.argsort(d2, axis=1, kind="stable")[:, : min(3, target_rows)]
    want = ["gio_row_id,gio_rank,gio_gain,gio_nearest_target"] + [
        f"{i},{r},{gain.get(int(labels[i]), float('nan'))!r},{' '.join(map(str, near[r].tolist()))}"
        for r, i in enumerate(ids.tolist())]
    assert (tmp_path / "picks.csv").read_text().splitlines() == want
    assert "-0.0" in want[1] and ",0.0," in want[3] and ",nan," in want[6]
    np.testing.assert_array_equal(cols["gio_nearest_target"], near)
