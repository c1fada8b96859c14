"""Per-component reports and closed-form baselines, against brute-force and scipy computations."""
import math

import numpy as np
import pytest
import scipy.special
import scipy.stats

from emflow.evaluation import baselines, diagnostics


def test_component_report_against_brute_force():
    rng = np.random.default_rng(0)
    joint = rng.standard_normal((200, 4)) * 3
    labels = rng.integers(0, 3, 200)
    report = diagnostics.component_report(joint, labels)
    gamma = scipy.special.softmax(joint, axis=1)
    np.testing.assert_allclose(report["posterior_share"], gamma.mean(axis=0), rtol=1e-12)
    winner = joint.argmax(axis=1)
    for k in range(4):
        for c in range(3):
            assert report["wins"][k][c] == sum(1 for i in range(200) if winner[i] == k and labels[i] == c)
    majority = sum(max(sum(1 for i in range(200) if winner[i] == k and labels[i] == c) for c in range(3))
                   for k in range(4))
    assert report["purity"] == majority / 200
    np.testing.assert_allclose(np.sum(report["class_share"], axis=1), 1.0, atol=1e-3)


def test_purity_extremes_and_bad_input():
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert diagnostics.purity(labels, labels) == 1.0
    assert diagnostics.purity(np.zeros(6, int), labels) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match=r"expected joint \(N, K\) and labels \(N,\)"):
        diagnostics.component_report(np.zeros((5, 2)), np.zeros(4, int))


def test_pixel_histogram_against_a_direct_count():
    rng = np.random.default_rng(1)
    train = rng.integers(0, 4, (50, 3)).astype(np.uint8)
    test = rng.integers(0, 6, (7, 3)).astype(np.uint8)
    total = 0.0
    for j in range(3):
        for v in test[:, j]:
            total += -math.log2((np.sum(train[:, j] == v) + 1) / (50 + 256))
    assert baselines.pixel_histogram_bits_per_dim(train, test) == pytest.approx(total / test.size, rel=1e-12)
    with pytest.raises(ValueError, match="expected uint8 images"):
        baselines.pixel_histogram_bits_per_dim(train.astype(np.float32), test)


def test_logit_gaussian_against_scipy():
    rng = np.random.default_rng(2)
    train = rng.integers(0, 256, (400, 5)).astype(np.uint8)
    test = rng.integers(0, 256, (20, 5)).astype(np.uint8)
    alpha = 1e-6
    got = baselines.logit_gaussian_bits_per_dim(train, test, alpha, seed=3)
    # The same dequantization draws, then scipy's Gaussian and the logit's Jacobian by hand.
    noise = np.random.default_rng(3)
    x_train = (train + noise.uniform(size=train.shape)) / 256
    x_test = (test + noise.uniform(size=test.shape)) / 256
    logit = lambda x: scipy.special.logit(alpha + (1 - 2 * alpha) * x)
    y_train, y_test = logit(x_train), logit(x_test)
    mvn = scipy.stats.multivariate_normal(y_train.mean(axis=0), np.cov(y_train.T, bias=True))
    s = alpha + (1 - 2 * alpha) * x_test
    log_det = np.sum(np.log((1 - 2 * alpha) / (s * (1 - s))), axis=1)
    expected = -np.mean(mvn.logpdf(y_test) + log_det - 5 * math.log(256)) / (5 * math.log(2))
    assert got == pytest.approx(expected, rel=1e-9)


def test_logit_gaussian_refuses_fewer_images_than_pixels():
    x = np.zeros((4, 5), np.uint8)
    with pytest.raises(ValueError, match="needs more than 5 training images, got 4"):
        baselines.logit_gaussian_bits_per_dim(x, x)


def test_baseline_samplers_reproduce_their_models():
    """The histogram sampler's pixel frequencies match the smoothed histograms (chi-square); the
    Gaussian sampler's logit-space moments match the fitted mean and covariance."""
    rng = np.random.default_rng(4)
    train = np.stack([rng.choice([0, 10, 255], 300, p=[0.5, 0.3, 0.2]), rng.integers(0, 256, 300)], 1)
    train = train.astype(np.uint8).reshape(300, 2, 1, 1)
    draws = baselines.sample_pixel_histogram(train, 20000, seed=5)
    assert draws.shape == (20000, 2, 1, 1) and draws.dtype == np.uint8
    counts = np.bincount(draws[:, 0, 0, 0], minlength=256)
    expected = (np.bincount(train[:, 0, 0, 0], minlength=256) + 1.0) / (300 + 256) * 20000
    assert scipy.stats.chisquare(counts, expected).pvalue > 1e-3
    images = rng.integers(40, 216, (2000, 3)).astype(np.uint8)
    images[:, 2] = np.clip(images[:, 0].astype(int) // 2 + 60, 0, 255)  # correlated pixels
    gauss = baselines.sample_logit_gaussian(images, 20000, seed=6)
    logit = lambda k: scipy.special.logit((k + 0.5) / 256)
    np.testing.assert_allclose(logit(gauss).mean(0), logit(images).mean(0), atol=0.03)
    np.testing.assert_allclose(np.corrcoef(logit(gauss).T), np.corrcoef(logit(images).T), atol=0.03)
