"""VectorFlow: bijection, log-det, normalisation of its density on a 2-D grid, bad input."""
import chex
import jax
import jax.numpy as jnp
import pytest

from checks import assert_bijection, assert_vmap_and_grad, perturb
from emflow import VectorFlow


class VectorFlowTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @pytest.mark.filterwarnings("ignore")
    def test_bijection_and_log_det(self):
        x = jax.random.normal(jax.random.PRNGKey(0), (3, 5))
        for linear, coupling in [("lu", "affine"), ("plain", "additive"), ("reverse", "affine")]:
            flow = VectorFlow(5, num_steps=3, hidden=8, coupling=coupling, linear=linear)
            params = perturb(flow.init(jax.random.PRNGKey(1), x), jax.random.PRNGKey(2), 0.2)
            z, _ = assert_bijection(self.variant, flow, params, x)
            assert z.top.shape == (3, 5) and z.splits == ()

    def test_density_integrates_to_one(self):
        flow = VectorFlow(2, num_steps=4, hidden=16)
        x = jax.random.normal(jax.random.PRNGKey(0), (256, 2)) * jnp.array([0.5, 1.5])
        params = perturb(flow.init(jax.random.PRNGKey(1), x), jax.random.PRNGKey(2), 0.1)
        grid = jnp.linspace(-12, 12, 601)
        xx, yy = jnp.meshgrid(grid, grid)
        points = jnp.stack([xx.ravel(), yy.ravel()], axis=1)
        density = jnp.exp(jax.jit(flow.log_prob)(params, points))
        mass = float(jnp.sum(density) * (grid[1] - grid[0]) ** 2)
        assert abs(mass - 1.0) < 2e-3, mass

    def test_vmap_and_grad(self):
        flow = VectorFlow(4, num_steps=2, hidden=8)
        x = jax.random.normal(jax.random.PRNGKey(0), (6, 4))
        stack = jax.vmap(lambda k: perturb(flow.init(k, x), k, 0.2))(jax.random.split(jax.random.PRNGKey(1), 3))
        assert_vmap_and_grad(flow, stack, x)

    def test_bad_configuration_and_input(self):
        with pytest.raises(ValueError, match="num_features must be an integer >= 2"):
            VectorFlow(1)
        with pytest.raises(ValueError, match="'plain', 'lu' or 'reverse'"):
            VectorFlow(3, linear="shuffle")
        flow = VectorFlow(16, num_steps=1, hidden=4)
        params = flow.init(jax.random.PRNGKey(0), jax.random.normal(jax.random.PRNGKey(1), (4, 16)))
        with pytest.raises(ValueError, match=r"expected a batch of shape \(batch, 16\), got shape \(4, 36\)"):
            flow.forward(params, jnp.zeros((4, 36)))
