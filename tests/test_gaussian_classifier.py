"""The Gaussian Bayes ruler against scikit-learn's GaussianMixture(1, full, reg_covar) per class, and its contract."""
import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.datasets import load_wine
from sklearn.mixture import GaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

from emflow.classify.gaussian_classifier import GaussianBayesClassifier


@parametrize_with_checks([GaussianBayesClassifier()])
def test_scikit_learn_conformance(estimator, check):
    check(estimator)


def test_it_is_one_gaussian_mixture_of_one_component_per_class():
    x, y = load_wine(return_X_y=True)
    clf = GaussianBayesClassifier(reg_covar=0.1).fit(x, y)
    ll = clf.log_likelihood(x)
    for c in np.unique(y):
        gm = GaussianMixture(1, covariance_type="full", reg_covar=0.1).fit(x[y == c])
        np.testing.assert_allclose(ll[:, c], gm.score_samples(x), rtol=1e-6, atol=1e-6)
    prior = np.log(np.bincount(y) / len(y))
    joint = ll + prior
    np.testing.assert_allclose(clf.predict_proba(x), np.exp(joint - logsumexp(joint, axis=1, keepdims=True)),
                               rtol=1e-9)
    assert clf.score(x, y) > 0.95


def test_a_negative_regulariser_is_refused():
    with pytest.raises(ValueError, match="reg_covar must be >= 0, got -1"):
        GaussianBayesClassifier(reg_covar=-1).fit(np.ones((4, 2)) + np.arange(4)[:, None], [0, 0, 1, 1])
