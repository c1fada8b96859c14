"""Closed-form density baselines for 8-bit images: the rulers a flow's bits/dim must beat.

Both are fitted in seconds with NumPy and scored as discrete likelihoods of the
8-bit test data, in bits per dimension, like the flows:

- ``pixel_histogram_bits_per_dim``: every pixel independent, a 256-bin histogram of
  its training values with add-one (Laplace) smoothing; exact discrete probabilities.
- ``logit_gaussian_bits_per_dim``: one full-covariance Gaussian on
  ``y = logit(alpha + (1 - 2 alpha) x)`` of uniformly dequantized ``x = (k + u) / 256``,
  its log-det counted, minus ``N log 256`` (the dequantization bound, as for the flows);
  the maximum-likelihood mean and covariance of the training set's ``y``.
"""
from __future__ import annotations

import math

import numpy as np

from emflow import checks
from emflow.bijectors.logit import DEFAULT_ALPHA

NUM_BINS = 256


def _flat_uint8(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8 images (values 0..255), got dtype {x.dtype}")
    return x.reshape(len(x), -1)


def _pixel_counts(train: np.ndarray) -> np.ndarray:
    """How often each pixel takes each value: flat uint8 ``(N, D) -> (D, 256)`` int64."""
    d = train.shape[1]
    counts = np.zeros((d, NUM_BINS), np.int64)
    np.add.at(counts, (np.broadcast_to(np.arange(d), train.shape), train), 1)
    return counts


def pixel_histogram_bits_per_dim(x_train: np.ndarray, x_test: np.ndarray) -> float:
    """Test bits/dim of independent per-pixel 256-bin histograms (add-one smoothing) of ``x_train``."""
    train, test = _flat_uint8(x_train, "pixel_histogram"), _flat_uint8(x_test, "pixel_histogram")
    n, d = train.shape
    log2_p = np.log2(_pixel_counts(train) + 1.0) - np.log2(n + NUM_BINS)   # (D, 256)
    return float(-np.mean(log2_p[np.arange(d)[None, :], test]))


def _logit(x: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``(y, log|dy/dx|)`` elementwise, float64."""
    s = alpha + (1.0 - 2.0 * alpha) * x
    y = np.log(s) - np.log1p(-s)
    return y, math.log1p(-2.0 * alpha) - np.log(s) - np.log1p(-s)


def _fit_logit_gaussian(train: np.ndarray, rng: np.random.Generator, alpha: float,
                        name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(mean (D,), Cholesky factor (D, D))`` of the logit of uniformly dequantized flat uint8 ``train``
    (the maximum-likelihood covariance); the dequantization noise is drawn from ``rng``."""
    d = train.shape[1]
    if len(train) <= d:
        raise ValueError(f"{name}: a full covariance of {d} pixels needs more than {d} training images, "
                         f"got {len(train)}")
    y, _ = _logit((train + rng.uniform(size=train.shape)) / NUM_BINS, alpha)
    mean = y.mean(axis=0)
    centred = y - mean
    return mean, np.linalg.cholesky(centred.T @ centred / len(y))


def logit_gaussian_bits_per_dim(x_train: np.ndarray, x_test: np.ndarray, alpha: float = DEFAULT_ALPHA,
                                seed: int = 0) -> float:
    """Test bits/dim of one full-covariance Gaussian in logit space (see the module docstring).

    Raises:
      np.linalg.LinAlgError: the training covariance is singular (e.g. fewer images than pixels).
    """
    train, test = _flat_uint8(x_train, "logit_gaussian"), _flat_uint8(x_test, "logit_gaussian")
    rng = np.random.default_rng(seed)
    mean, chol = _fit_logit_gaussian(train, rng, alpha, "logit_gaussian")  # the training noise first, then the test's
    y_test, log_det = _logit((test + rng.uniform(size=test.shape)) / NUM_BINS, alpha)
    d = train.shape[1]
    white = np.linalg.solve(chol, (y_test - mean).T)                        # (D, N_test)
    log_p = (-0.5 * np.sum(white**2, axis=0) - np.sum(np.log(np.diag(chol)))
             - 0.5 * d * math.log(2 * math.pi) + log_det.sum(axis=1))
    log_p_discrete = log_p - d * math.log(NUM_BINS)
    return float(-np.mean(log_p_discrete) / (d * math.log(2.0)))


# ------------------------------------------------------------------------------------------ samplers
# The two baselines as samplers: the floors of the sample-quality tables (emflow.evaluation.metrics).


def sample_pixel_histogram(x_train: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` images whose pixels are drawn independently from their add-one-smoothed training histograms."""
    checks.integer("sample_pixel_histogram", "n", n, 0)
    train = _flat_uint8(x_train, "sample_pixel_histogram")
    d = train.shape[1]
    cdf = np.cumsum(_pixel_counts(train) + 1.0, axis=1)
    cdf /= cdf[:, -1:]
    u = np.random.default_rng(seed).uniform(size=(n, d))
    k = np.stack([np.searchsorted(cdf[j], u[:, j], side="right") for j in range(d)], axis=1)
    return np.minimum(k, NUM_BINS - 1).astype(np.uint8).reshape(n, *np.shape(x_train)[1:])


def sample_logit_gaussian(x_train: np.ndarray, n: int, seed: int = 0, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """``n`` images from the full-covariance logit-space Gaussian of ``x_train``, mapped back to 8 bits.

    ``y ~ N(mean, cov)``, ``x = (sigmoid(y) - alpha) / (1 - 2 alpha)``, ``k = floor(256 x)`` in 0..255
    (the inverse of the uniform dequantization and the logit map, as for the flows' samples).

    Raises:
      ValueError: no more training images than pixels (the covariance would be singular).
    """
    checks.integer("sample_logit_gaussian", "n", n, 0)
    train = _flat_uint8(x_train, "sample_logit_gaussian")
    rng = np.random.default_rng(seed)
    mean, chol = _fit_logit_gaussian(train, rng, alpha, "sample_logit_gaussian")
    draws = mean + rng.standard_normal((n, train.shape[1])) @ chol.T
    x = (1.0 / (1.0 + np.exp(-draws)) - alpha) / (1.0 - 2.0 * alpha)
    return np.clip(np.floor(x * NUM_BINS), 0, NUM_BINS - 1).astype(np.uint8).reshape(n, *np.shape(x_train)[1:])
