"""MixtureClassifier as scikit-learn meets it: its own conformance suite, GridSearchCV, Pipeline, clear refusals."""
import numpy as np
import pytest
import scipy.sparse
from sklearn.datasets import load_wine
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from emflow.classify import MixtureClassifier, VectorFlowSpec

TINY = dict(epochs=1, flow=VectorFlowSpec(num_steps=1, hidden=4), batch_size=8, warmup_steps=1, eval_batch_size=64)

# Every check applies: none is expected to fail (an integer-valued feature set is just numbers here).
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks([MixtureClassifier(**TINY)], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_scikit_learn_conformance(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def wine():
    x, y = load_wine(return_X_y=True)
    return x, y


SMALL = dict(epochs=2, flow=VectorFlowSpec(num_steps=1, hidden=8), batch_size=16, warmup_steps=5, eval_batch_size=128)


def test_grid_search_over_k_and_noise(wine):
    x, y = wine
    grid = [{"num_components": [1], "noise": [0.5]}, {"num_components": [2], "noise": [1.0]}]  # 2 candidates x 2 folds
    search = GridSearchCV(MixtureClassifier(**SMALL), grid, cv=StratifiedKFold(2, shuffle=True, random_state=0),
                          refit=False)
    search.fit(x, y)
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 2 and np.all(np.isfinite(scores))
    assert search.best_score_ == pytest.approx(scores.max()) and search.best_score_ > 0.6  # 3 classes: chance 0.4
    assert search.cv_results_["params"][search.best_index_] == search.best_params_
    assert len({round(s, 6) for s in scores}) > 1  # K and noise change the fitted classifier


def test_a_pipeline_with_a_scaler_cross_validates(wine):
    """cross_val_score clones the pipeline for each fold: clone, set_params and fit on scaled features."""
    x, y = wine
    pipe = make_pipeline(StandardScaler(), MixtureClassifier(preprocessing="none", **SMALL))
    scores = cross_val_score(pipe, x, y, cv=StratifiedKFold(2, shuffle=True, random_state=0))
    assert scores.shape == (2,) and scores.min() > 0.6


def test_refusals_are_scikit_learn_errors(wine):
    x, y = wine
    clf = MixtureClassifier(**TINY)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        clf.predict_proba(x)
    with pytest.raises(ValueError, match=r"need at least 2 classes, got 1 class \(\[0\]\)"):
        clf.fit(x[y == 0], y[y == 0])
    keep = np.r_[np.flatnonzero(y != 2), np.flatnonzero(y == 2)[:2]]
    with pytest.raises(ValueError, match=r"at least num_components=3 examples; \(class, n_samples\) below that: \[\(2, 2\)\]"):
        MixtureClassifier(num_components=3, early_stopping=False, **TINY).fit(x[keep], y[keep])
    with pytest.raises(ValueError, match=r"at least num_components=2 \(\+ 1 held out for early stopping\) examples; "
                                         r"\(class, n_samples\) below that: \[\(2, 2\)\]"):
        MixtureClassifier(num_components=2, **TINY).fit(x[keep], y[keep])
    with pytest.raises(ValueError, match=r"validation_fraction must be in \(0, 1\), got 1.5"):
        MixtureClassifier(validation_fraction=1.5, **TINY).fit(x, y)
    with pytest.raises(ValueError, match=r"patience must be an integer >= 1, got 0"):
        MixtureClassifier(patience=0, **TINY).fit(x, y)
    with pytest.raises(ValueError, match=r"gaussian_reg must be a finite number > 0, got 0.0"):
        MixtureClassifier(gaussian_reg=0.0, **TINY).fit(x, y)
    with pytest.raises(ValueError, match="Found array with 0 sample"):
        clf.fit(x[:0], y[:0])
    with pytest.raises(TypeError, match="Sparse data was passed"):
        clf.fit(scipy.sparse.csr_matrix(x), y)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        clf.fit(x, y + 0.5)
