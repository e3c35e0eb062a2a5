"""GIOSelector and scikit-learn's estimator contract: params, clone, tags, fitted checks, get_support, and the
applicable checks of sklearn.utils.estimator_checks (real scikit-learn)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gioselect import GIOSelector, NotFittedError

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError as SkNotFittedError  # noqa: E402
from sklearn.utils import get_tags  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402
from sklearn.utils.validation import check_is_fitted  # noqa: E402

_Y = "needs a target set: y is vectors of the pool's dimension, and the check passes 1-D class labels"
_NOT_LABELS = ("y is a 2-D target set, not labels; GIOSelector has no score, predict or labels to be "
               "invariant in")
# Every check below fails only because it fits with 1-D class labels as y (GIO's y is a target set of
# vectors), or asks for scikit-learn's own error wording for input GIO refuses with its own message.
EXPECTED_FAILED = {
    **{name: _Y for name in (
        "check_fit_score_takes_y", "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self", "check_readonly_memmap_input", "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_pipeline_consistency",
        "check_estimators_nan_inf", "check_estimators_pickle", "check_f_contiguous_array_estimator",
        "check_transformer_data_not_an_array", "check_transformer_general", "check_transformer_preserve_dtypes",
        "check_transformer_n_iter", "check_dict_unchanged", "check_fit_idempotent", "check_fit_check_is_fitted",
        "check_n_features_in", "check_fit2d_predict1d", "check_requires_y_none", "check_dtype_object",
        "check_fit2d_1sample", "check_fit2d_1feature")},
    "check_methods_sample_order_invariance": _NOT_LABELS,
    "check_methods_subset_invariance": _NOT_LABELS,
    "check_complex_data": "refused with gioselect's message ('complex values are not embeddings')",
    "check_estimators_empty_data_messages": "refused with gioselect's message ('has 0 columns')",
    "check_estimator_sparse_tag": "sparse input is refused with gioselect's message, not sklearn's wording",
    "check_estimator_sparse_array": "sparse input is refused with gioselect's message, not sklearn's wording",
    "check_estimator_sparse_matrix": "sparse input is refused with gioselect's message, not sklearn's wording",
}


@parametrize_with_checks([GIOSelector(seed=0, max_iter=5)], expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "does not inherit from BaseEstimator": the contract is met without it
        check(estimator)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    c = _unit(rng.normal(size=(2, 6)))
    pool = _unit(np.vstack([c[0] + 0.15 * rng.normal(size=(100, 6)), c[1] + 0.15 * rng.normal(size=(100, 6))]))
    return pool, _unit(c[0] + 0.15 * rng.normal(size=(40, 6)))


def test_params_clone_and_set_params():
    est = GIOSelector(k=3, v_init="mean", seed=7)
    assert est.get_params(deep=True) == est.get_params(deep=False)
    assert est.get_params()["k"] == 3
    twin = clone(est)
    assert twin is not est and twin.get_params() == est.get_params()
    assert est.set_params(lr=0.5, budget=10) is est and est.lr == 0.5 and est.budget == 10
    with pytest.raises(ValueError, match="unknown parameter 'nope'"):
        est.set_params(lr=0.1, nope=1)
    assert est.lr == 0.5  # nothing changed when one name is unknown


def test_tags_and_fitted_state(data):
    pool, target = data
    tags = get_tags(GIOSelector())
    assert tags.target_tags.required and tags.requires_fit and not tags.input_tags.allow_nan
    est = GIOSelector(max_iter=10, seed=0)
    with pytest.raises(SkNotFittedError):
        check_is_fitted(est)
    with pytest.raises(NotFittedError, match="not fitted"):
        est.get_support()
    est.fit(pool, target)
    check_is_fitted(est)
    assert est.n_features_in_ == 6


def test_get_support_mask_over_the_pool(data):
    pool, target = data
    est = GIOSelector(max_iter=15, seed=0).fit(pool, target)
    mask = est.get_support()
    assert mask.dtype == bool and mask.shape == (200,)
    assert set(np.flatnonzero(mask)) == set(est.selected_indices_.tolist())
    np.testing.assert_array_equal(est.get_support(indices=True), np.sort(est.selected_indices_))
    np.testing.assert_array_equal(est.transform(pool), pool[mask])
    # clone of a fitted estimator is unfitted and refits to the same selection
    again = clone(est).fit(pool, target)
    np.testing.assert_array_equal(again.selected_indices_, est.selected_indices_)


def test_pickle_leaves_the_pool_out(data):
    import pickle

    pool, target = data
    est = GIOSelector(max_iter=10, seed=0).fit(pool, target)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.get_support(), est.get_support())
    assert "_last_pool_vectors" not in vars(back)  # the fitted state does not carry the pool
    big = np.concatenate([pool] * 10)  # nor grows with it: a 10x pool pickles to far less than its bytes
    assert len(pickle.dumps(GIOSelector(max_iter=10, seed=0).fit(big, target))) < big.nbytes / 4
    with pytest.raises(ValueError, match="call transform"):
        back.pick_table()
    np.testing.assert_array_equal(back.transform(pool), est.transform(pool))
    np.testing.assert_array_equal(back.pick_table()["gio_row_id"], est.pick_table()["gio_row_id"])
