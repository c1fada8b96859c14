"""MixtureClassifier as scikit-learn meets it: its own conformance suite, GridSearchCV, Pipeline, clear refusals."""
import numpy as np
import pytest
import scipy.sparse
from sklearn.base import clone
from sklearn.datasets import load_wine
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from emflow.classify import MixtureClassifier

TINY = dict(epochs=1, flow_steps=1, hidden=4, batch_size=8, warmup_steps=1, eval_batch_size=64)

# Every check applies: none is expected to fail (an integer-valued feature set is just numbers here).
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks([MixtureClassifier(**TINY)], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_scikit_learn_conformance(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def wine():
    x, y = load_wine(return_X_y=True)
    return x, y


def test_grid_search_over_k_and_noise_in_a_pipeline(wine):
    x, y = wine
    pipe = make_pipeline(StandardScaler(), MixtureClassifier(preprocessing="none", epochs=3, flow_steps=2, hidden=16,
                                                             batch_size=16, warmup_steps=5, eval_batch_size=128))
    grid = {"mixtureclassifier__num_components": [1, 2], "mixtureclassifier__learning_rate": [2e-3, 1e-2]}
    cv = StratifiedKFold(2, shuffle=True, random_state=0)
    search = GridSearchCV(pipe, grid, cv=cv).fit(x, y)
    assert set(search.best_params_) == set(grid)
    # The search's clone + set_params is what a user gets by hand: the same folds give the same scores.
    by_hand = cross_val_score(clone(pipe).set_params(**search.best_params_), x, y, cv=cv)
    assert search.best_score_ == pytest.approx(by_hand.mean(), abs=1e-12)
    assert search.best_score_ > 0.6  # three classes: chance is 0.4


def test_refusals_are_scikit_learn_errors(wine):
    x, y = wine
    clf = MixtureClassifier(**TINY)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        clf.predict_proba(x)
    with pytest.raises(ValueError, match=r"need at least 2 classes, got 1 class \(\[0\]\)"):
        clf.fit(x[y == 0], y[y == 0])
    with pytest.raises(ValueError, match=r"at least num_components=3 examples; \(class, n_samples\) below that: \[\(2, 2\)\]"):
        keep = np.r_[np.flatnonzero(y != 2), np.flatnonzero(y == 2)[:2]]
        MixtureClassifier(num_components=3, **TINY).fit(x[keep], y[keep])
    with pytest.raises(ValueError, match="Found array with 0 sample"):
        clf.fit(x[:0], y[:0])
    with pytest.raises(TypeError, match="Sparse data was passed"):
        clf.fit(scipy.sparse.csr_matrix(x), y)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        clf.fit(x, y + 0.5)
