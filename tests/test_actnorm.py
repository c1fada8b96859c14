"""ActNorm: data-dependent init statistics, bijection, log-det vs jacfwd, jit/vmap/grad."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from checks import assert_bijection, assert_vmap_and_grad, perturb
from emflow.bijectors import ActNorm


class ActNormTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_init_gives_zero_mean_unit_std_per_channel(self):
        x = 3.0 + 2.5 * jax.random.normal(jax.random.PRNGKey(0), (64, 4, 4, 3)) * jnp.array([1.0, 0.1, 10.0])
        layer = ActNorm((4, 4, 3))
        params = self.variant(layer.init)(jax.random.PRNGKey(1), x)
        y, _ = self.variant(layer.forward)(params, x)
        np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
        np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1.0, atol=1e-5)

    def test_constant_channel_keeps_unit_scale(self):
        x = jnp.concatenate([jnp.ones((8, 1)), jax.random.normal(jax.random.PRNGKey(0), (8, 1))], axis=1)
        params = ActNorm((2,)).init(None, x)
        assert np.all(np.isfinite(params["log_scale"]))
        assert float(params["log_scale"][0]) == 0.0

    @chex.variants(with_jit=True, without_jit=True)
    def test_copies_of_one_example_keep_unit_scale(self):
        """A batch of copies (a mixture part of one example): float32's jnp.std of 1,000 equal values is not 0."""
        row = jnp.array([21.37, 0.2778, -151.727], jnp.float32)
        x = jnp.tile(row, (1000, 1))
        assert np.all(np.asarray(jnp.std(x, axis=0)) > 0)  # the rounding error the shifted statistics avoid
        params = self.variant(ActNorm((3,)).init)(None, x)
        np.testing.assert_array_equal(params["log_scale"], 0.0)
        np.testing.assert_array_equal(params["bias"], -row)
        # Rows equal up to one ulp (batched arithmetic) are constant too; a resolvable spread is normalised.
        ulp = np.spacing(np.abs(np.asarray(row)))
        jitter = jnp.asarray(np.where(np.arange(1000)[:, None] % 2 == 0, 0.0, ulp), jnp.float32)
        params = self.variant(ActNorm((3,)).init)(None, x + jitter)
        np.testing.assert_array_equal(params["log_scale"], 0.0)
        spread = x + 1e-3 * jax.random.normal(jax.random.PRNGKey(0), x.shape)
        params = self.variant(ActNorm((3,)).init)(None, spread)
        y, _ = ActNorm((3,)).forward(params, spread)
        np.testing.assert_allclose(np.std(np.asarray(y), axis=0), 1.0, atol=1e-3)

    @chex.variants(with_jit=True, without_jit=True)
    @pytest.mark.filterwarnings("ignore")
    def test_bijection_and_log_det(self):
        for shape in [(3, 2, 2), (5,)]:
            x = jax.random.normal(jax.random.PRNGKey(2), (4, *shape))
            layer = ActNorm(shape)
            params = perturb(layer.init(None, x), jax.random.PRNGKey(3))
            _, log_det = assert_bijection(self.variant, layer, params, x)
            # Closed form: P * sum(log_scale).
            expected = np.prod(shape[:-1]) * float(jnp.sum(params["log_scale"]))
            np.testing.assert_allclose(log_det, expected, rtol=1e-6)

    def test_vmap_and_grad(self):
        x = jax.random.normal(jax.random.PRNGKey(4), (6, 2, 2, 3))
        layer = ActNorm((2, 2, 3))
        stack = jax.vmap(lambda k: perturb(layer.init(k, x), k))(jax.random.split(jax.random.PRNGKey(5), 3))
        assert_vmap_and_grad(layer, stack, x)

    def test_wrong_shape_is_a_clear_error(self):
        layer = ActNorm((4, 4, 3))
        with pytest.raises(ValueError, match=r"expected a batch of shape \(batch, 4, 4, 3\), got shape \(2, 4, 4, 2\)"):
            layer.forward({"bias": jnp.zeros(3), "log_scale": jnp.zeros(3)}, jnp.zeros((2, 4, 4, 2)))
