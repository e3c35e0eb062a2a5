"""pandas, polars and datasets.Dataset in and out of GIOSelector, select and select_quantized (real libraries)."""

from __future__ import annotations

import numpy as np
import pytest

from gioselect import GIOSelector, select, select_quantized
from gioselect.errors import InvalidInputError
from gioselect.frames import nearest_targets, pick_gains, to_vectors

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")
datasets = pytest.importorskip("datasets")


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    c = _unit(rng.normal(size=(2, 8)))
    pool = _unit(np.vstack([c[0] + 0.15 * rng.normal(size=(150, 8)), c[1] + 0.15 * rng.normal(size=(150, 8))]))
    target = _unit(c[0] + 0.15 * rng.normal(size=(60, 8)))
    return pool, target


def _frames(pool: np.ndarray) -> dict[str, object]:
    labels = ["a" if i < 150 else "b" for i in range(pool.shape[0])]
    return {
        "pandas": pd.DataFrame({"emb": list(pool), "topic": labels}, index=np.arange(1000, 1000 + pool.shape[0])),
        "polars": pl.DataFrame({"emb": pool.tolist(), "topic": labels}),
        "datasets": datasets.Dataset.from_dict({"emb": pool.tolist(), "topic": labels}),
    }


def _column(frame: object, name: str) -> list:
    if isinstance(frame, pd.DataFrame):
        return frame[name].tolist()
    if isinstance(frame, pl.DataFrame):
        return frame[name].to_list()
    return list(frame[name])


@pytest.mark.parametrize("kind", ["pandas", "polars", "datasets"])
def test_frame_in_same_frame_out_matches_arrays(data, kind):
    pool, target = data
    frame = _frames(pool)[kind]
    oracle = GIOSelector(max_iter=25, seed=0).fit(pool, target)
    sel = GIOSelector(max_iter=25, seed=0).fit(frame, target)
    np.testing.assert_array_equal(sel.selected_indices_, oracle.selected_indices_)
    out = sel.transform(frame)
    assert type(out) is type(frame)
    ids = _column(out, "gio_row_id")
    assert ids == sorted(oracle.selected_indices_.tolist())  # ascending row order
    # the original columns travel with the rows
    assert _column(out, "topic") == ["a" if i < 150 else "b" for i in ids]
    np.testing.assert_allclose(np.asarray(_column(out, "emb"), dtype=np.float32), pool[ids], rtol=1e-6)
    # rank = position in selection order; gain = objective decrease of that pick
    order = {int(r): i for i, r in enumerate(oracle.selected_indices_)}
    assert _column(out, "gio_rank") == [order[i] for i in ids]
    gains = pick_gains(oracle.initial_kl_, oracle.kl_trace_)
    np.testing.assert_allclose(_column(out, "gio_gain"), [gains[order[i]] for i in ids])
    # nearest target ids, checked against a brute-force oracle
    d = ((pool[ids][:, None, :].astype(np.float64) - target[None].astype(np.float64)) ** 2).sum(-1)
    assert [list(r) for r in _column(out, "gio_nearest_target")] == np.argsort(d, axis=1)[:, :3].tolist()
    # the functional form hands back the same frame
    out2 = select(frame, target, max_iter=25, seed=0)
    assert _column(out2, "gio_row_id") == ids


def test_pandas_index_kept_and_gio_columns_replaced(data):
    pool, target = data
    df = _frames(pool)["pandas"]
    df["gio_rank"] = -1
    out = GIOSelector(max_iter=10, seed=0).fit_transform(df, target)
    assert (out.index.to_numpy() == 1000 + out["gio_row_id"].to_numpy()).all()
    assert (out["gio_rank"] >= 0).all()


def test_target_and_exclude_as_frames_and_text_free_numeric_columns(data):
    pool, target = data
    dfp = pd.DataFrame(pool, columns=[f"f{i}" for i in range(8)])
    dft = pl.DataFrame(target, schema=[f"f{i}" for i in range(8)])
    sel = GIOSelector(max_iter=20, seed=0).fit(dfp, dft, exclude=pd.DataFrame(pool[:3], columns=list(dfp.columns)))
    assert list(sel.feature_names_in_) == list(dfp.columns)
    assert sel.exclusion_ is not None and sel.exclusion_.n_excluded >= 3
    assert not np.isin(sel.selected_indices_, sel.exclusion_.row_ids).any()


def test_numeric_columns_of_the_target_are_matched_to_the_pools_by_name(data):
    pool, target = data
    names = [f"f{i}" for i in range(8)]
    dfp = pd.DataFrame(pool, columns=names)
    same = GIOSelector(budget=10, seed=0).fit(dfp, pd.DataFrame(target, columns=names)).selected_indices_
    # the same columns in another order: the same dimensions are compared (it compared them by position)
    shuffled = pd.DataFrame(target, columns=names)[names[::-1]]
    np.testing.assert_array_equal(GIOSelector(budget=10, seed=0).fit(dfp, shuffled).selected_indices_, same)
    with pytest.raises(InvalidInputError, match="are not the pool's"):
        GIOSelector(budget=10, seed=0).fit(dfp, pd.DataFrame(target, columns=[f"g{i}" for i in range(8)]))


@pytest.mark.parametrize("clusters", [0, 20])
def test_select_quantized_frames_and_exclude(data, clusters):
    pool, target = data
    ds = _frames(pool)["datasets"]
    plain = select_quantized(pool, target, clusters=clusters, seed=0)
    q = select_quantized(ds, target, clusters=clusters, seed=0)
    np.testing.assert_array_equal(q.ids, plain.ids)
    assert isinstance(q.frame, datasets.Dataset)
    assert list(q.frame["gio_row_id"]) == sorted(plain.ids.tolist())
    gains = np.asarray(q.frame["gio_gain"], dtype=np.float64)
    # Each row carries the gain of the pick that chose it: its own (clusters=0) or its cluster's.
    oracle = pick_gains(plain.result.initial_kl, plain.result.kl_trace)
    picks = plain.result.selected_indices.tolist()
    rows = np.sort(plain.ids)
    if clusters:
        assert plain.labels is not None and plain.labels.shape == (pool.shape[0],)
        assert q.labels is not None
        np.testing.assert_array_equal(q.labels, plain.labels)
        chosen = plain.labels[rows]
        assert set(chosen.tolist()) <= set(picks)  # every row belongs to a picked cluster
    else:
        assert plain.labels is None
        chosen = rows
    np.testing.assert_allclose(gains, [oracle[picks.index(int(c))] for c in chosen])
    assert np.isfinite(gains).all() and gains.max() > 0
    ex = pool[plain.ids[:5]]
    qx = select_quantized(ds, target, clusters=clusters, seed=0, exclude=ex)
    assert qx.exclusion.n_excluded >= 5
    assert not np.isin(qx.ids, qx.exclusion.row_ids).any()
    assert list(qx.frame["gio_row_id"]) == sorted(qx.ids.tolist())
    assert np.isfinite(np.asarray(qx.frame["gio_gain"], dtype=np.float64)).all()  # labels mapped past exclusion


def test_errors_name_the_column():
    df = pd.DataFrame({"emb": [[1.0, 2.0], [1.0]], "t": ["x", "y"]})
    with pytest.raises(InvalidInputError, match=r"column 'emb', row 1: has 1 numbers but row 0 has 2"):
        to_vectors(df, "pool", vector_column="emb")
    with pytest.raises(InvalidInputError, match=r"no column 'nope'"):
        to_vectors(df, "pool", vector_column="nope")
    two = pl.DataFrame({"a": [[1.0, 2.0]], "b": [[3.0, 4.0]]})
    with pytest.raises(InvalidInputError, match="several vector columns"):
        to_vectors(two, "pool")
    with pytest.raises(InvalidInputError, match="no vector column"):
        to_vectors(pd.DataFrame({"t": ["x"]}), "target")


def test_nearest_targets_ties_lowest_id():
    t = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert nearest_targets(np.array([[1.0, 0.0]]), t, n=2).tolist() == [[0, 1]]


def _readme_section_snippets() -> list[str]:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("### DataFrames, Hugging Face datasets and scikit-learn")[1].split("\n### ")[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.mark.parametrize("index", [0, 1])
def test_readme_frame_examples_run_and_print_what_they_say(index, capsys):
    code = _readme_section_snippets()[index]
    expected = [line[2:] for line in code.splitlines() if line.startswith("# ")]
    exec(compile(code, f"README snippet {index}", "exec"), {})
    assert capsys.readouterr().out.splitlines() == expected
