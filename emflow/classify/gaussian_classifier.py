"""The Gaussian Bayes classifier: one full-covariance Gaussian per class, the ruler of ``MixtureClassifier``.

    p(x | y) = N(x; mu_y, Sigma_y + reg_covar * I),    predict = argmax_y log p(x | y) + log P(y)

This is what ``sklearn.mixture.GaussianMixture(1, covariance_type="full", reg_covar=reg_covar)``
fitted per class gives (tested against it), in closed form and in one pass. A flow
classifier that starts at this model can only be judged against it. So
``experiments.classify`` and ``experiments.classify_defaults`` report it beside every
``MixtureClassifier``.
"""
from __future__ import annotations

import numpy as np
import sklearn.base
from scipy.special import logsumexp
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data


class GaussianBayesClassifier(sklearn.base.ClassifierMixin, sklearn.base.BaseEstimator):
    """One regularised full-covariance Gaussian per class; class prior from the training frequencies.

    Args:
      reg_covar: added to every covariance's diagonal (as ``GaussianMixture``'s ``reg_covar``).

    Fitted attributes: ``classes_`` (C,), ``means_`` (C, D), ``covariances_`` (C, D, D),
    ``class_log_prior_`` (C,), ``n_features_in_``.
    """

    def __init__(self, reg_covar: float = 0.1):
        self.reg_covar = reg_covar

    def fit(self, X, y) -> "GaussianBayesClassifier":
        x, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        if not self.reg_covar >= 0:
            raise ValueError(f"GaussianBayesClassifier: reg_covar must be >= 0, got {self.reg_covar}")
        self.classes_, codes = np.unique(y, return_inverse=True)
        d = x.shape[1]
        means, covs, counts = [], [], []
        for c in range(len(self.classes_)):
            xc = x[codes == c]
            mu = xc.mean(axis=0)
            centred = xc - mu
            covs.append(centred.T @ centred / len(xc) + self.reg_covar * np.eye(d))  # the ML covariance
            means.append(mu)
            counts.append(len(xc))
        self.means_, self.covariances_ = np.stack(means), np.stack(covs)
        counts = np.asarray(counts, np.float64)
        self.class_log_prior_ = np.log(counts / counts.sum())
        self._cholesky = np.linalg.cholesky(self.covariances_)  # raises if a covariance is singular (reg_covar 0)
        return self

    def log_likelihood(self, X) -> np.ndarray:
        """``(n, C)`` log p(x | y) in nats."""
        check_is_fitted(self, "means_")
        x = validate_data(self, X, reset=False, dtype=np.float64)
        d = x.shape[1]
        out = np.empty((len(x), len(self.classes_)))
        for c, (mu, chol) in enumerate(zip(self.means_, self._cholesky)):
            z = np.linalg.solve(chol, (x - mu).T)                    # (D, n): chol^-1 (x - mu)
            out[:, c] = (-0.5 * np.sum(z * z, axis=0) - np.sum(np.log(np.diag(chol)))
                         - 0.5 * d * np.log(2 * np.pi))
        return out

    def predict_log_proba(self, X) -> np.ndarray:
        log_likelihood = self.log_likelihood(X)  # raises NotFittedError before fit
        joint = log_likelihood + self.class_log_prior_
        return joint - logsumexp(joint, axis=1, keepdims=True)

    def predict_proba(self, X) -> np.ndarray:
        return np.exp(self.predict_log_proba(X))

    def predict(self, X) -> np.ndarray:
        log_likelihood = self.log_likelihood(X)  # raises NotFittedError before fit
        return self.classes_[np.argmax(log_likelihood + self.class_log_prior_, axis=1)]
