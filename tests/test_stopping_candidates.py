"""experiments/stopping_candidates.py: the offline size rules on closed-form pick streams, and end to end on one
small ``stopping_study.py --suite`` record (the rule that is today's default gives the library's own size)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from gioselect.sizing import F1Prefix

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
if str(EXPERIMENTS) not in sys.path:
    sys.path.insert(0, str(EXPERIMENTS))

cand = importlib.import_module("stopping_candidates")


def test_prefix_rule_keeps_the_largest_prefix_within_two_percent() -> None:
    # m picks of posterior 1 then zeros, W = m: F1(n) = 2m / (n + m) past m, within 2% of 1 up to
    # n = m (2 / 0.98 - 1) = 104.08 for m = 100.
    w = np.concatenate([np.ones(100), np.zeros(400)])
    assert cand.prefix_rule(w, 100.0) == 104
    # a cap below the best cuts there
    assert cand.prefix_rule(w, 100.0, cap=60) == 60


def test_lift_rule_closed_form() -> None:
    # windows of 10: the mean over (n - 10, n] is 0.5 * (picks of 0.5 among them) / 10 once past the ones;
    # >= 0.4 needs at least 8 of them: last at n = 202 (positions 101..200 hold 0.5), first below at 203.
    w = np.concatenate([np.ones(100), np.full(100, 0.5), np.zeros(100)])
    assert cand.lift_rule(w, 0.4, window=10) == 202
    assert cand.lift_rule(w, 0.4, window=10, last=False) == 202
    # never below: the whole stream; never above: the first window
    assert cand.lift_rule(w[:150], 0.4, window=10, last=False) == 150
    assert cand.lift_rule(np.zeros(50), 0.4, window=10) == 10


def test_candidates_on_a_small_suite_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = importlib.import_module("stopping_study")
    assert study.main(["--size", "small", "--suite", "mixture", "--seeds", "1", "--out", str(tmp_path)]) == 0
    path = tmp_path / "stopping_suite_small.jsonl"
    rec = json.loads(path.read_text().splitlines()[0])
    sizes = cand.rules_for(rec, [])
    # today's rule offline is F1Prefix fed the recorded posteriors along GIO's order
    w = cand.en_posterior(np.asarray(rec["pool_scores"]), rec["estimate"]["diagnostics"]["c"])
    fp = F1Prefix(float(w.sum()))
    for i in rec["ids"]:
        fp.add(float(w[i]))
        if fp.done:
            break
    assert sizes["f1-2%"] == fp.kept_picks > 0
    # a cap at k x share x |G| keeps the rule's size below the cap, and at most the cap otherwise
    cap = int(1.25 * rec["estimate"]["share"] * rec["pool_rows"])
    assert sizes["cap-1.25"] <= min(sizes["f1-2%"], cap)
    if sizes["f1-2%"] < cap:
        assert sizes["cap-1.25"] == sizes["f1-2%"]
    assert all(1 <= n <= len(rec["ids"]) for n in sizes.values())
    capsys.readouterr()
    out_json = tmp_path / "cand.json"
    assert cand.main([str(path), "--json", str(out_json)]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| task | rule |") and "| mixture | f1-2% |" in table
    got = json.loads(out_json.read_text())
    n, gap = got["table"]["mixture"]["f1-2%"]["0"]
    best_n, best_f = got["best"]["mixture:0"]
    hits = np.asarray(rec["hits"], dtype=float)
    f = 2.0 * np.cumsum(hits) / (np.arange(1, hits.size + 1) + rec["true_rows"])
    assert best_n == int(np.argmax(f)) + 1
    assert best_f == pytest.approx(f.max()) and gap == pytest.approx(f.max() - f[n - 1]) and gap >= 0.0
