"""Squeeze (space-to-depth) and Split (multi-scale factoring out)."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from checks import assert_bijection, assert_vmap_and_grad, perturb
from emflow.bijectors import Split, Squeeze
from emflow.flows.latent import standard_normal_log_prob


class SqueezeTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_layout_and_bijection(self):
        x = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
        layer = Squeeze((4, 6, 3))
        y, log_det = assert_bijection(self.variant, layer, {}, x, jacobian_examples=1)
        assert y.shape == (2, 2, 3, 12)
        np.testing.assert_array_equal(log_det, 0.0)
        # Output channel 4c + 2i + j at (h, w) holds input (2h + i, 2w + j, c).
        for h, w, c, i, j in [(0, 0, 0, 0, 0), (1, 2, 2, 1, 0), (0, 1, 1, 1, 1)]:
            assert y[1, h, w, 4 * c + 2 * i + j] == x[1, 2 * h + i, 2 * w + j, c]

    def test_odd_size_is_a_clear_error(self):
        with pytest.raises(ValueError, match=r"even, got event_shape \(7, 7, 8\)"):
            Squeeze((7, 7, 8))


class SplitTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @pytest.mark.filterwarnings("ignore")
    def test_bijection_and_log_det(self):
        x = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 2, 4))
        for prior in ("conditional", "standard"):
            layer = Split((2, 2, 4), prior)
            params = perturb(layer.init(jax.random.PRNGKey(1)), jax.random.PRNGKey(2), scale=0.3)
            (kept, eps), _ = assert_bijection(self.variant, layer, params, x)
            assert kept.shape == (3, 2, 2, 2) and eps.shape == (3, 2, 2, 2)
            np.testing.assert_array_equal(kept, x[..., :2])

    def test_conditional_prior_is_the_gaussian_density(self):
        # log N(z2; mu, sigma) == log N(eps; 0, I) + log_det, with mu, log sigma recomputed independently.
        layer = Split((3, 3, 4), "conditional")
        params = perturb(layer.init(jax.random.PRNGKey(1)), jax.random.PRNGKey(2), scale=0.3)
        x = jax.random.normal(jax.random.PRNGKey(3), (2, 3, 3, 4))
        (kept, eps), log_det = layer.forward(params, x)
        h = jax.lax.conv_general_dilated(kept, params["kernel"], (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        h = (h + params["bias"]) * jnp.exp(3.0 * params["logs"])
        mu, log_sigma = h[..., 0::2], h[..., 1::2]
        z2 = x[..., 2:]
        expected = jnp.sum(-0.5 * ((z2 - mu) / jnp.exp(log_sigma)) ** 2 - log_sigma - 0.5 * np.log(2 * np.pi), axis=(1, 2, 3))
        np.testing.assert_allclose(standard_normal_log_prob(eps) + log_det, expected, rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    @pytest.mark.filterwarnings("ignore")
    def test_a_log_std_floor_keeps_the_bijection_and_bounds_the_prior(self):
        layer = Split((2, 2, 4), log_std_floor=-2.0)
        params = perturb(layer.init(jax.random.PRNGKey(1)), jax.random.PRNGKey(2), scale=0.3)
        x = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 2, 4))
        assert_bijection(self.variant, layer, params, x)   # log-det against slogdet(jacfwd)
        # The floor's map f + softplus(logs - f), against numpy; far above the floor it is logs itself.
        free = Split((2, 2, 4))
        big = {**params, "bias": params["bias"].at[1::2].set(-40.0)}   # every logs far below the floor
        (_, _), ld_free = free.forward(big, x)
        (_, _), ld = layer.forward(big, x)
        _, log_std_free = free._mean_and_log_std(big, x[..., :2])
        _, log_std = layer._mean_and_log_std(big, x[..., :2])
        np.testing.assert_allclose(log_std, -2.0 + np.logaddexp(0.0, np.asarray(log_std_free) + 2.0), rtol=1e-6)
        assert float(jnp.min(log_std)) >= -2.0 and float(jnp.max(log_std_free)) < -8
        np.testing.assert_allclose(ld, -jnp.sum(log_std, axis=(1, 2, 3)), rtol=1e-6)
        assert np.all(np.asarray(ld) < np.asarray(ld_free))
        _, zero = layer._mean_and_log_std(layer.init(None), x[..., :2])   # the zero init: log-std ~ 0
        np.testing.assert_allclose(zero, -2.0 + np.log1p(np.exp(2.0)), rtol=1e-6)
        with pytest.raises(ValueError, match="log_std_floor must be a finite number or None, got inf"):
            Split((2, 2, 4), log_std_floor=float("inf"))

    def test_vmap_and_grad(self):
        x = jax.random.normal(jax.random.PRNGKey(5), (4, 2, 2, 4))
        layer = Split((2, 2, 4))
        stack = jax.vmap(lambda k: perturb(layer.init(k), k, 0.05))(jax.random.split(jax.random.PRNGKey(6), 2))
        assert_vmap_and_grad(layer, stack, x)
