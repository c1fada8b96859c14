"""emflow.evaluation.metrics against independent computations: closed forms, scipy, brute-force numpy loops."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from emflow.evaluation import metrics


def rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------- IS

def test_inception_score_identical_rows_is_one():
    p = np.tile(rng().dirichlet(np.ones(10)), (100, 1))
    mean, std = metrics.inception_score(p, num_splits=5)
    np.testing.assert_allclose(float(mean), 1.0, atol=1e-5)
    assert float(std) < 1e-5


def test_inception_score_one_hot_rows_is_num_classes():
    c = 7
    p = np.eye(c)[np.arange(70) % c]
    mean, std = metrics.inception_score(p, num_splits=10)
    np.testing.assert_allclose(float(mean), c, rtol=1e-5)
    assert float(std) < 1e-4


def test_inception_score_equals_numpy_formula():
    p = rng(1).dirichlet(np.ones(5) * 0.3, size=90)
    mean, std = metrics.inception_score(p, num_splits=3)
    scores = []
    for s in np.split(p, 3):
        py = s.mean(0)
        scores.append(np.exp(np.mean(np.sum(s * (np.log(s) - np.log(py)), axis=1))))
    np.testing.assert_allclose(float(mean), np.mean(scores), rtol=1e-5)
    np.testing.assert_allclose(float(std), np.std(scores), rtol=1e-3, atol=1e-6)


# --------------------------------------------------------------------------------------------- FID

def test_frechet_commuting_covariances_closed_form():
    # diagonal covariances commute: FID = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = rng(2).uniform(0.5, 2.0, 16), rng(3).uniform(0.5, 2.0, 16)
    mu1, mu2 = rng(4).normal(size=16), rng(5).normal(size=16)
    got = metrics.frechet_distance_from_statistics(mu1, np.diag(a), mu2, np.diag(b))
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_frechet_matches_scipy_sqrtm_on_random_features():
    """float32 against scipy's float64 sqrtm formula: the stated error bound (relative 1e-4)."""
    x = rng(6).normal(size=(500, 64)) @ rng(7).normal(size=(64, 64)) * 0.3
    y = rng(8).normal(size=(400, 64)) @ rng(9).normal(size=(64, 64)) * 0.3 + 0.2
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    want = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    got = float(metrics.frechet_distance(x.astype(np.float32), y.astype(np.float32)))
    assert abs(got - want) / want < 1e-4, (got, want)
    np.testing.assert_allclose(np.asarray(metrics.feature_statistics(x)[1]), s1, rtol=1e-3, atol=1e-4)


def test_frechet_of_a_set_with_itself_is_near_zero():
    x = rng(10).normal(size=(300, 20)).astype(np.float32)
    assert abs(float(metrics.frechet_distance(x, x))) < 1e-3


# --------------------------------------------------------------------------------------------- MMD

def brute_mmd(x, y, sigma=1.0):
    s = np.mean([[np.sum((a - b) ** 2) for b in x] for a in x])
    k = lambda u, v: np.mean([[np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2 * s)) for b in v] for a in u])
    return np.sqrt(max(k(x, x) + k(y, y) - 2 * k(x, y), 0.0))


def test_mmd_equals_brute_force_double_loop():
    x, y = rng(11).normal(size=(23, 4)), rng(12).normal(size=(17, 4)) + 0.5
    got = metrics.mmd(x, y, block_size=5)  # blocks that do not divide the sets
    np.testing.assert_allclose(float(got), brute_mmd(x, y), rtol=1e-4)


def test_mmd_identical_sets_and_symmetry():
    x, y = rng(13).normal(size=(40, 6)), rng(14).normal(size=(30, 6)) + 1.0
    assert float(metrics.mmd(x, x)) < 1e-3
    # symmetric for a fixed bandwidth: swap the sets and keep the real set's scale
    s_x = 2.0 * (np.mean(np.sum(x**2, 1)) - np.sum(x.mean(0) ** 2))
    sigma_swapped = np.sqrt(s_x / (2.0 * (np.mean(np.sum(y**2, 1)) - np.sum(y.mean(0) ** 2))))
    np.testing.assert_allclose(float(metrics.mmd(x, y)), float(metrics.mmd(y, x, sigma=sigma_swapped)), rtol=1e-4)


# -------------------------------------------------------------------------------------------- 1-NN

def brute_one_nn(x, y):
    both = np.concatenate([x, y])
    lab = np.r_[np.ones(len(x)), np.zeros(len(y))]
    d = ((both[:, None] - both[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return np.mean(lab[d.argmin(1)] == lab)


def test_one_nn_far_apart_clusters_is_one():
    x, y = rng(15).normal(size=(50, 3)), rng(16).normal(size=(60, 3)) + 100.0
    assert float(metrics.one_nn_accuracy(x, y)) == 1.0


def test_one_nn_equals_brute_force_count():
    x, y = rng(17).normal(size=(37, 5)), rng(18).normal(size=(29, 5)) * 1.3
    np.testing.assert_allclose(float(metrics.one_nn_accuracy(x, y, block_size=8)), brute_one_nn(x, y), atol=1e-6)


def test_metrics_run_under_jit():
    x, y = rng(19).normal(size=(30, 4)).astype(np.float32), rng(20).normal(size=(30, 4)).astype(np.float32)
    jitted = jax.jit(lambda a, b: (metrics.mmd(a, b, block_size=16), metrics.one_nn_accuracy(a, b, block_size=16),
                                   metrics.frechet_distance(a, b)))
    for got, want in zip(jitted(x, y), (metrics.mmd(x, y), metrics.one_nn_accuracy(x, y), metrics.frechet_distance(x, y))):
        np.testing.assert_allclose(float(got), float(want), rtol=1e-5, atol=1e-6)
    p = jax.nn.softmax(jnp.asarray(x), axis=1)
    np.testing.assert_allclose(float(jax.jit(lambda q: metrics.inception_score(q, 3)[0])(p)),
                               float(metrics.inception_score(p, 3)[0]), rtol=1e-6)


# --------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("fn", [metrics.frechet_distance, metrics.mmd, metrics.one_nn_accuracy])
def test_bad_features_are_refused(fn):
    x = np.zeros((10, 4))
    with pytest.raises(ValueError, match="same width"):
        fn(x, np.zeros((10, 5)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        fn(x, np.zeros((1, 4)))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        fn(x, bad)


def test_probabilities_that_do_not_sum_to_one_are_refused():
    with pytest.raises(ValueError, match="probability vector"):
        metrics.inception_score(np.full((10, 4), 0.3))
    with pytest.raises(ValueError, match="probability vector"):
        metrics.inception_score(np.c_[np.full((10, 1), -0.5), np.full((10, 1), 1.5)])
