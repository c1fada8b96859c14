"""Masked autoregressive layers (emflow.bijectors.autoregressive) and AutoregressiveFlow."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from checks import assert_bijection, assert_vmap_and_grad, perturb

import emflow
from emflow.bijectors.autoregressive import MaskedAutoregressive, made_masks


def _layer_and_params(kind, scale=0.1, features=5):
    layer = MaskedAutoregressive((features,), kind, hidden=16, num_hidden_layers=2)
    return layer, perturb(layer.init(jax.random.PRNGKey(1)), jax.random.PRNGKey(2), scale)


def test_made_masks_connect_each_output_to_the_inputs_before_it_only():
    """The product of the masks counts the paths from input j to feature i's outputs: none unless j < i."""
    masks = made_masks(num_features=6, hidden=10, num_hidden_layers=3, outputs_per_feature=2)
    paths = masks[0]
    for mask in masks[1:]:
        paths = paths @ mask
    paths = paths.reshape(6, 6, 2)   # (input j, feature i, output)
    for i in range(6):
        for j in range(6):
            assert (paths[j, i] > 0).all() == (j < i), (j, i)


class MaskedAutoregressiveTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @pytest.mark.filterwarnings("ignore")
    def test_bijection_and_log_det(self):
        x = jax.random.normal(jax.random.PRNGKey(0), (3, 5))
        for kind in ("spline", "affine"):
            layer, params = _layer_and_params(kind)
            _, log_det = assert_bijection(self.variant, layer, params, x, rtol=1e-4, atol=2e-4)
            assert np.all(np.abs(log_det) > 1e-3)

    def test_jacobian_is_lower_triangular_with_every_lower_entry_used(self):
        for kind in ("spline", "affine"):
            layer, params = _layer_and_params(kind, scale=0.3)
            x = jax.random.normal(jax.random.PRNGKey(3), (5,))
            jac = np.asarray(jax.jacfwd(lambda v: layer.forward(params, v[None])[0][0])(x))
            np.testing.assert_array_equal(np.triu(jac, 1), 0.0)
            assert np.abs(jac[np.tril_indices(5, -1)]).min() > 1e-4

    def test_a_fresh_layer_is_the_identity_or_glows_scale(self):
        x = jax.random.normal(jax.random.PRNGKey(0), (4, 6)) * 2.0
        for kind, scale in (("spline", 1.0), ("affine", float(jax.nn.sigmoid(2.0)))):
            layer = MaskedAutoregressive((6,), kind)
            y, log_det = layer.forward(layer.init(jax.random.PRNGKey(1)), x)
            np.testing.assert_allclose(y, scale * x, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(log_det, 6 * np.log(scale), rtol=1e-5, atol=1e-5)

    def test_inverse_in_float32_against_float64(self):
        """Sampling solves the features one after another, so float32 rounding of the first ones moves the later
        ones: measured here at logits perturbed with std 0.3 (float64 is exact to rounding). The median error is
        7e-7; the largest of the 512 values was 6.3e-4 with jax 0.10.2 and 1.4e-3 with jax 0.12.1."""
        layer, params = _layer_and_params("spline", scale=0.3, features=8)
        x = jax.random.normal(jax.random.PRNGKey(4), (64, 8))
        with jax.enable_x64(True):
            p64 = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
            y64, _ = layer.forward(p64, np.asarray(x, np.float64))
            x64, _ = layer.inverse(p64, y64)
            np.testing.assert_allclose(x64, np.asarray(x, np.float64), atol=1e-10)
        x32, _ = layer.inverse(params, jnp.asarray(y64, jnp.float32))
        error = np.abs(np.asarray(x32) - np.asarray(x))
        assert np.median(error) < 1e-5 and error.max() < 5e-3, (np.median(error), error.max())

    def test_vmap_and_grad(self):
        layer = MaskedAutoregressive((4,), "spline", hidden=8)
        x = jax.random.normal(jax.random.PRNGKey(0), (6, 4))
        stack = jax.vmap(lambda k: perturb(layer.init(k), k, 0.1))(jax.random.split(jax.random.PRNGKey(1), 3))
        assert_vmap_and_grad(layer, stack, x)

    def test_bad_configuration(self):
        with pytest.raises(ValueError, match="kind must be 'affine' or 'spline', got 'additive'"):
            MaskedAutoregressive((4,), "additive")
        with pytest.raises(ValueError, match="MaskedAutoregressive: spline_bins must be an integer >= 2, got 1"):
            MaskedAutoregressive((4,), spline_bins=1)
        with pytest.raises(ValueError, match="MaskedAutoregressive: tail_bound must be a finite number > 0"):
            MaskedAutoregressive((4,), tail_bound=-1.0)
        with pytest.raises(ValueError, match="MaskedAutoregressive: hidden must be an integer >= 1, got 0"):
            MaskedAutoregressive((4,), hidden=0)


class AutoregressiveFlowTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @pytest.mark.filterwarnings("ignore")
    def test_bijection_and_log_det(self):
        x = jax.random.normal(jax.random.PRNGKey(0), (3, 5))
        for kind in ("spline", "affine"):
            flow = emflow.AutoregressiveFlow(5, num_steps=3, hidden=16, kind=kind)
            params = perturb(flow.init(jax.random.PRNGKey(1), x), jax.random.PRNGKey(2), 0.05)
            z, _ = assert_bijection(self.variant, flow, params, x, rtol=1e-3, atol=1e-3)
            assert z.top.shape == (3, 5) and z.splits == ()

    def test_density_integrates_to_one(self):
        flow = emflow.AutoregressiveFlow(2, num_steps=4, hidden=16)
        x = jax.random.normal(jax.random.PRNGKey(0), (256, 2)) * jnp.array([0.5, 1.5])
        params = perturb(flow.init(jax.random.PRNGKey(1), x), jax.random.PRNGKey(2), 0.1)
        grid = jnp.linspace(-12, 12, 601)
        xx, yy = jnp.meshgrid(grid, grid)
        density = jnp.exp(jax.jit(flow.log_prob)(params, jnp.stack([xx.ravel(), yy.ravel()], axis=1)))
        mass = float(jnp.sum(density) * (grid[1] - grid[0]) ** 2)
        assert abs(mass - 1.0) < 2e-3, mass

    def test_a_genmm_of_autoregressive_flows_learns_a_bimodal_density(self):
        """Two clusters, K = 2, a few EM epochs: the test NLL falls well below one Gaussian's."""
        from emflow import train

        rng = np.random.default_rng(0)
        x = np.concatenate([rng.normal(-3.0, 0.5, (600, 3)), rng.normal(3.0, 0.5, (600, 3))]).astype(np.float32)
        model = emflow.GenMM(emflow.AutoregressiveFlow(3, num_steps=2, hidden=16), 2)
        result = train.fit(model, train.TrainConfig(epochs=4, batch_size=64, warmup_steps=20, num_samples=0,
                                                     learning_rate=3e-3), None, x[::2], x[1::2],
                           progress=False, log=lambda s: None)
        nll = result.history[-1]["test_nll_nats_per_dim"] * 3
        gaussian = 0.5 * 3 * np.log(2 * np.pi * np.e) + 0.5 * np.sum(np.log(x.var(0)))
        assert nll < gaussian - 2.0, (nll, gaussian)

    def test_bad_configuration_and_input(self):
        with pytest.raises(ValueError, match="num_features must be an integer >= 2"):
            emflow.AutoregressiveFlow(1)
        with pytest.raises(ValueError, match="kind must be 'affine' or 'spline'"):
            emflow.AutoregressiveFlow(3, kind="additive")
        flow = emflow.AutoregressiveFlow(16, num_steps=1, hidden=4)
        params = flow.init(jax.random.PRNGKey(0), jax.random.normal(jax.random.PRNGKey(1), (4, 16)))
        with pytest.raises(ValueError, match=r"expected a batch of shape \(batch, 16\), got shape \(4, 36\)"):
            flow.forward(params, jnp.zeros((4, 36)))
