"""Whiten (and Preceded, the flow that puts it in front): init statistics, the Gaussian start, bijection, log-det."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import emflow
from checks import assert_bijection, assert_vmap_and_grad, perturb
from emflow.bijectors import Whiten


def _correlated(n, d, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) * np.linspace(0.1, 3.0, d)
    return (rng.standard_normal((n, d)) @ mix + rng.standard_normal(d) * 5).astype(np.float32)


class WhitenTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_init_whitens_its_batch(self):
        x = jnp.asarray(_correlated(500, 6))
        layer = Whiten((6,), reg=0.0)
        y, _ = self.variant(layer.forward)(self.variant(layer.init)(None, x), x)
        np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=2e-5)
        np.testing.assert_allclose(jnp.cov(y.T, bias=True), np.eye(6), atol=2e-4)

    def test_the_layer_is_lower_triangular_with_positive_diagonal(self):
        params = Whiten((5,), reg=0.1).init(None, jnp.asarray(_correlated(50, 5)))
        t = np.asarray(Whiten.matrix(params))
        assert np.allclose(np.triu(t, 1), 0) and np.all(np.diag(t) > 0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_bijection_and_log_det(self):
        for shape in [(6,), (2, 2, 2)]:
            x = jnp.asarray(_correlated(8, int(np.prod(shape)))).reshape((8,) + shape)
            layer = Whiten(shape, reg=0.1)
            params = perturb(layer.init(None, x), jax.random.PRNGKey(3))
            _, log_det = assert_bijection(self.variant, layer, params, x)
            np.testing.assert_allclose(log_det, float(np.linalg.slogdet(np.asarray(Whiten.matrix(params)))[1]),
                                       rtol=1e-5)

    def test_vmap_and_grad(self):
        x = jnp.asarray(_correlated(16, 4))
        layer = Whiten((4,), reg=0.1)
        stack = jax.vmap(lambda k: perturb(layer.init(k, x), k))(jax.random.split(jax.random.PRNGKey(5), 3))
        assert_vmap_and_grad(layer, stack, x)

    def test_too_few_examples_stay_finite_with_reg(self):
        x = jnp.asarray(_correlated(3, 8))          # rank 2 covariance in 8 dimensions
        params = Whiten((8,), reg=0.1).init(None, x)
        assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(params))

    def test_bad_reg_is_a_clear_error(self):
        with pytest.raises(ValueError, match=r"reg must be a finite number >= 0, got -1"):
            Whiten((3,), reg=-1.0)


def _init_jacobian(flow, params, x_one):
    """The (affine) flow's Jacobian at one point, without the whitening layer: ``jax.jacfwd``."""
    f = lambda v: flow.flow.forward(params["flow"], v[None])[0].top[0]
    return np.asarray(jax.jacfwd(f)(x_one), np.float64)


@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_a_whitened_flow_starts_at_the_regularised_gaussian(reg):
    """Whitened(VectorFlow) at init is N(mean, cov + reg A^-1 A^-T), A the fresh flow's Jacobian: against scipy."""
    data = _correlated(420, 5, seed=1)
    x, test = data[:400], data[400:]
    flow = emflow.Whitened(emflow.VectorFlow(5, num_steps=3, hidden=16), reg)
    params = flow.init(jax.random.PRNGKey(0), jnp.asarray(x))
    a = _init_jacobian(flow, params, jnp.asarray(x[0]))
    np.testing.assert_allclose(_init_jacobian(flow, params, jnp.asarray(x[1])), a, rtol=1e-4, atol=1e-5)  # affine
    a_inv = np.linalg.inv(a)
    cov = np.cov(x.T.astype(np.float64), bias=True) + reg * a_inv @ a_inv.T
    expected = scipy.stats.multivariate_normal(x.astype(np.float64).mean(0), cov).logpdf(test)
    np.testing.assert_allclose(flow.log_prob(params, jnp.asarray(test)), expected, rtol=1e-4, atol=2e-3)


def test_whitened_round_trip_sampling_and_a_genmm_of_them():
    x = jnp.asarray(_correlated(64, 4))
    flow = emflow.Whitened(emflow.VectorFlow(4, num_steps=2, hidden=8), 0.1)
    params = perturb(flow.init(jax.random.PRNGKey(0), x), jax.random.PRNGKey(1))
    latent, log_det = flow.forward(params, x)
    x_back, inv_log_det = flow.inverse(params, latent)
    np.testing.assert_allclose(x_back, x, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(log_det, -inv_log_det, rtol=1e-4, atol=1e-4)
    model = emflow.GenMM(flow, 2)
    gp = model.init(jax.random.PRNGKey(2), x)
    assert gp["flows"]["whiten"]["lower"].shape == (2, 4, 4)
    # the two generators whiten different k-means parts: different means
    assert not np.allclose(gp["flows"]["whiten"]["shift"][0], gp["flows"]["whiten"]["shift"][1])
    assert model.sample(gp, jax.random.PRNGKey(3), 5).shape == (5, 4)


def test_a_generator_started_on_a_part_of_one_example_is_the_regularised_gaussian_there():
    """k-means++ gives a far outlier a part of its own; its generator inits on copies of that one example.

    The ActNorm layers see a constant batch and keep unit scale, so the generator starts at
    N(outlier, reg A^-1 A^-T) with finite densities everywhere (it used to overflow to NaN).
    """
    x = np.concatenate([_correlated(300, 6, seed=2), np.full((1, 6), 500.37, np.float32)])
    reg = 0.1
    model = emflow.GenMM(emflow.Whitened(emflow.VectorFlow(6, num_steps=4, hidden=16), reg), 4)
    params, part = model.init_with_partition(jax.random.PRNGKey(0), jnp.asarray(x))
    singleton = int(part.labels[-1])
    assert int(np.sum(np.asarray(part.labels) == singleton)) == 1  # the outlier's part is itself
    lp = np.asarray(model.generator_log_prob(params, jnp.asarray(x)))
    assert np.all(np.isfinite(lp))
    flow, gen = model.flow, model.generator(params, singleton)
    a = _init_jacobian(flow, gen, jnp.asarray(x[-1]))
    a_inv = np.linalg.inv(a)
    expected = scipy.stats.multivariate_normal(x[-1].astype(np.float64), reg * a_inv @ a_inv.T).logpdf(x[:5])
    np.testing.assert_allclose(lp[:5, singleton], expected, rtol=1e-4)


def test_whitened_saves_and_loads(tmp_path):
    flow = emflow.Whitened(emflow.VectorFlow(3, num_steps=1, hidden=4), 0.2)
    model = emflow.GenMM(flow, 2)
    params = model.init(jax.random.PRNGKey(0), jnp.asarray(_correlated(32, 3)))
    emflow.save(tmp_path / "m", model, params)
    loaded_model, loaded = emflow.load(tmp_path / "m")
    assert loaded_model == model
    for u, v in zip(jax.tree.leaves(params), jax.tree.leaves(loaded)):
        np.testing.assert_array_equal(u, v)


def test_a_splitting_flow_is_a_clear_error():
    with pytest.raises(ValueError, match=r"must have a single latent"):
        emflow.Whitened(emflow.Glow((4, 4, 1), num_levels=2, num_steps=1, hidden_channels=4))
