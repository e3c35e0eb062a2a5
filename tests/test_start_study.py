"""The start of each gradient search (``GIOSearch.search_start``) and experiments/start_study.py's variants.

The override point: one method gives the first start and every start after a pick (a subclass that returns the
mean reproduces ``v_init='mean'`` pick for pick, though its ``v_init`` says ``'jump'``); the existing modes give
the picks and values the loop gave before the refactor (pinned on a seeded case, both the compiled and the numpy
path). The study's variants: shrinkage with a = 0 is ``jump`` and a = 1 is ``mean``; mean-then-jump is ``mean``
or ``jump`` at its two ends; best-of-two picks the better of the two searches' candidates; the density peaks of
two separated blobs are one row per blob, that blob's densest; through the suite's GIO path, a = 0 gives the
``gio`` row's picks (only the search's class is swapped) and the swap is undone after the run.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gioselect.optimize import GIOParams, GIOSearch

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
if str(EXPERIMENTS) not in sys.path:
    sys.path.insert(0, str(EXPERIMENTS))

study = importlib.import_module("start_study")


@pytest.fixture(autouse=True)
def _suite_registries_restored() -> Any:
    """register_variants adds methods to the suite's registry; each test leaves it as it found it."""
    suite = importlib.import_module("suite")
    methods = dict(suite.METHODS)
    yield
    suite.METHODS.clear()
    suite.METHODS.update(methods)


def _case() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    pool = rng.normal(size=(300, 8)).astype(np.float32)
    target = (rng.normal(size=(40, 8)) + 0.5).astype(np.float32)
    return pool, target


def _run(cls: Any = GIOSearch, budget: int = 25, fast: bool = True, seed: int = 3, **params: Any) -> GIOSearch:
    pool, target = _case()
    p = GIOParams(stop_criterion="data_size", **params).validate()
    s = cls(pool, target, p, np.random.default_rng(seed), budget=float(budget))
    if not fast:
        s.cands.use_fast = False
        s.objective.use_fast = False
    for _ in s.run():
        pass
    return s


# The picks, the last objective value and the generator's final state of the loop before search_start and
# descend_and_snap existed (the code of commit cc37114, run on _case() with _run's settings; the whole trace was
# bit-identical there, old against new). Key: (v_init, random_restart_prob, compiled path).
_MEAN = [100, 32, 44, 232, 123, 74, 11, 297, 239, 115, 256, 77, 48, 162, 22, 237, 87, 264, 139, 262, 37, 159, 129,
         153, 291]
_JUMP = [100, 32, 77, 162, 74, 255, 256, 48, 287, 165, 138, 234, 239, 161, 151, 222, 149, 232, 123, 198, 87, 155,
         158, 24, 22]
_PREV = [100, 32, 44, 232, 123, 74, 11, 297, 115, 239, 256, 48, 162, 77, 237, 22, 264, 139, 87, 37, 262, 222, 159,
         283, 129]
_RESTART = [100, 32, 44, 114, 287, 297, 232, 123, 87, 142, 74, 11, 110, 256, 78, 154, 48, 24, 115, 120, 77, 239, 176,
            93, 159]
_RESTART_NUMPY = [*_RESTART[:12], 162, *_RESTART[13:19], 173, *_RESTART[20:]]
_STATE_NO_DRAWS = 85986968354048329149828984643073526363
BEFORE = {
    ("mean", 0.0, True): (_MEAN, 0.6862332353669633, _STATE_NO_DRAWS),
    ("mean", 0.0, False): (_MEAN, 0.6862332353669633, _STATE_NO_DRAWS),
    ("jump", 0.0, True): (_JUMP, 1.015984334804236, 131089380654624831211354705235194446834),
    ("jump", 0.0, False): (_JUMP, 1.015984334804236, 131089380654624831211354705235194446834),
    ("jump", 0.3, True): (_RESTART, 0.8867749792274506, 307113002855941470047366908114287541706),
    ("jump", 0.3, False): (_RESTART_NUMPY, 0.8756931564668489, 307113002855941470047366908114287541706),
    ("prev_opt", 0.0, True): (_PREV, 0.6897319349536013, _STATE_NO_DRAWS),
    ("prev_opt", 0.0, False): (_PREV, 0.6897319349536013, _STATE_NO_DRAWS),
}


@pytest.mark.parametrize(("v_init", "restart", "fast"), list(BEFORE))
def test_existing_modes_unchanged(v_init: str, restart: float, fast: bool) -> None:
    if fast:
        pytest.importorskip("numba")
    s = _run(v_init=v_init, random_restart_prob=restart, fast=fast)
    picks, last, state = BEFORE[(v_init, restart, fast)]
    if restart > 0.0:
        # With random restarts a restarted search lands on near-tied candidates, so which one wins depends on the
        # CPU's floating-point rounding (BLAS kernels, FMA): the pinned trace is bit-identical on the machine it
        # was recorded on, and on another CPU it agrees for the first 8 picks and draws as many numbers.
        assert s.state.selected[:8] == picks[:8] and len(s.state.selected) == len(picks)
        assert s.rng.bit_generator.state["state"]["state"] == state
        return
    assert s.state.selected == picks
    assert s.state.kl_trace[-1] == last
    assert s.rng.bit_generator.state["state"]["state"] == state


class _MeanEverywhere(GIOSearch):
    calls = 0

    def search_start(self, after: np.ndarray | None) -> np.ndarray:
        type(self).calls += 1
        return self.target_mean.copy()


def test_search_start_is_the_override_point() -> None:
    _MeanEverywhere.calls = 0
    over = _run(_MeanEverywhere, v_init="jump")
    mean = _run(v_init="mean")
    jump = _run(v_init="jump")
    assert over.state.selected == mean.state.selected
    assert over.scale == mean.scale  # the first start sets the step scale
    assert over.state.selected != jump.state.selected
    assert _MeanEverywhere.calls == 1 + over.state.n_iter  # the first start, then one after every pick


@pytest.mark.parametrize("fast", [True, False])
def test_shrink_ends_are_jump_and_mean(fast: bool) -> None:
    jump, mean = _run(v_init="jump", fast=fast), _run(v_init="mean", fast=fast)
    a0 = _run(study._with(study.ShrinkStart, a=0.0), fast=fast)
    a1 = _run(study._with(study.ShrinkStart, a=1.0), fast=fast)
    half = _run(study._with(study.ShrinkStart, a=0.5), fast=fast)
    assert a0.state.selected == jump.state.selected and a0.state.kl_trace == jump.state.kl_trace
    assert a1.state.selected == mean.state.selected and a1.state.kl_trace == mean.state.kl_trace
    assert half.state.selected not in (jump.state.selected, mean.state.selected)


def test_mean_then_jump_ends() -> None:
    n = _case()[1].shape[0]
    assert _run(study._with(study.MeanThenJump, share=0.0)).state.selected == _run(v_init="jump").state.selected
    assert (_run(study._with(study.MeanThenJump, share=30 / n), budget=30).state.selected
            == _run(v_init="mean", budget=30).state.selected)
    # the first 5 searches from the mean: the first 5 picks are mean's, then it leaves mean's order
    mixed = _run(study._with(study.MeanThenJump, share=5 / n)).state.selected
    mean = _run(v_init="mean").state.selected
    assert mixed[:5] == mean[:5] and mixed != mean


def test_best_of_two_takes_the_better_candidate() -> None:
    pool, target = _case()
    p = GIOParams(stop_criterion="data_size").validate()
    s = study.BestOfTwo(pool, target, p, np.random.default_rng(3), budget=10.0)
    for _ in range(10):
        steps = p.grad_desc_iter * (3 if s.state.i == 0 else 1)
        options = [GIOSearch.descend_and_snap(s, start, steps) for start in (s.state.v.copy(), s.target_mean.copy())]
        values = [s.objective.value_if_added(o[2], o[3]) for o in options]
        ev = s.step()
        assert ev is not None and ev.accepted
        assert ev.candidate == options[int(np.argmin(values))][1]
        assert ev.kl == pytest.approx(min(values), rel=1e-12)


def test_density_peaks_of_two_blobs() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 4)) * 0.1
    b = rng.normal(size=(20, 4)) * 0.1 + 10.0
    x = np.vstack([a, b])
    roots = study.density_peaks(x, 5)
    _, rk = study.target_knn(x, 5)
    ra, rb = set(roots[:30].tolist()), set(roots[30:].tolist())
    assert len(ra) >= 1 and len(rb) >= 1 and ra.isdisjoint(rb)
    assert int(np.argmin(rk[:30])) in ra and 30 + int(np.argmin(rk[30:])) in rb  # each blob's densest row is a root
    assert all(roots[r] == r for r in roots)  # roots are their own peaks
    s = _run(study._with(study.PeakStart), budget=5)
    peaks = set(study.density_peaks(_case()[1], 5).tolist())
    assert any(np.array_equal(s.state.v, np.asarray(_case()[1][j], dtype=np.float64)) for j in peaks)


def test_dense_start_draws_from_the_dense_half() -> None:
    s = _run(study._with(study.DenseStart, q=0.5), budget=5)
    _, rk = study.target_knn(_case()[1], 5)
    assert set(s.rows.tolist()) == set(np.flatnonzero(rk <= np.median(rk)).tolist())
    assert any(np.array_equal(s.state.v, np.asarray(_case()[1][j], dtype=np.float64)) for j in s.rows)


def test_variants_through_the_suite_path() -> None:
    from suite import TASKS
    from suite.core import run_gio

    import gioselect.job.select as job_select

    task = TASKS["mixture"].build("small", 0)
    original = job_select.make_search
    ids, _ = run_gio(task, {}, 60, 0)
    same, _ = study.run_variant(study._with(study.ShrinkStart, a=0.0), task, 60, 0)
    mean, _ = run_gio(task, {"v_init": "mean"}, 60, 0)
    at_mean, _ = study.run_variant(study._with(study.ShrinkStart, a=1.0), task, 60, 0)
    assert job_select.make_search is original
    assert np.array_equal(ids, same) and np.array_equal(mean, at_mean) and not np.array_equal(ids, mean)
    names = study.register_variants()
    from suite import METHODS

    assert set(names) == set(study.VARIANTS) and all(METHODS[n].kind == "gio" and METHODS[n].params is None
                                                     for n in names)
    with pytest.raises(ValueError, match="no size of its own"):
        METHODS[names[0]].run(task, None, 0)


def test_command_line_refuses_workers_and_merges_records() -> None:
    assert study.main([]) == 2
    assert study.main(["run", "--jobs", "2"]) == 2
    rec = {"task_number": 0.5, "energy": 0.1, "size": 10}

    def instance(task: str, knn: dict[str, Any], **more: Any) -> dict[str, Any]:
        return {"task": task, "seed": 0, "budgets": {"fixed": 10},
                "runs": {"fixed": {"gio": dict(rec), "knn": knn, **more}}}

    recorded = {"methods": ["gio", "knn", "herding"], "results": [
        instance("mixture", {**rec, "task_number": 0.7}, herding=dict(rec)),
        instance("bbc-tech", dict(rec), herding=dict(rec))]}
    mine = {"results": [instance("mixture", {**rec, "task_number": 0.6}, **{"start-peak": {**rec, "task_number": 0.9}}),
                        instance("bbc-tech", {**rec, "energy": 0.2})]}
    combined, check = study.combine([mine], recorded)
    by_task = {r["task"]: r["runs"]["fixed"] for r in combined}
    # mixture: kNN's energy equal, so the recorded peers are taken (the study's own records kept, compared)
    assert by_task["mixture"]["herding"] == rec and by_task["mixture"]["start-peak"]["task_number"] == 0.9
    assert by_task["mixture"]["knn"]["task_number"] == 0.6
    assert [w for w, _ in check["mismatches"]] == ["mixture/0/fixed/knn"]
    # bbc-tech: kNN's energy differs (other data), so nothing is taken from the recorded run
    assert "herding" not in by_task["bbc-tech"] and check["not_filled"] == ["bbc-tech/0/fixed"]
