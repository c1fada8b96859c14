"""Glow: the whole multi-scale flow, its latent layout, log-det, jit/vmap/grad, float32 round trip, bad input."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from checks import assert_bijection, assert_vmap_and_grad, perturb
from emflow import Glow
from emflow.flows import latent


def _flow_and_params(flow, key, x, scale=0.05):
    return perturb(jax.jit(flow.init)(key, x), jax.random.fold_in(key, 1), scale)


class GlowTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @pytest.mark.filterwarnings("ignore")
    def test_three_level_flow_bijection_and_log_det(self):
        flow = Glow((8, 8, 1), num_levels=3, num_steps=1, hidden_channels=4)
        x = jax.random.uniform(jax.random.PRNGKey(0), (3, 8, 8, 1))
        params = _flow_and_params(flow, jax.random.PRNGKey(1), x)
        z, log_det = assert_bijection(self.variant, flow, params, x, atol=2e-4)
        assert z.top.shape == (3, 1, 1, 16)
        assert [s.shape for s in z.splits] == [(3, 4, 4, 2), (3, 2, 2, 4)]
        assert latent.flatten(z).shape == (3, 64)

    @pytest.mark.filterwarnings("ignore")
    def test_other_layer_choices(self):
        x = jax.random.uniform(jax.random.PRNGKey(0), (2, 4, 4, 2))
        for kwargs in [dict(coupling="additive", linear="plain", split_prior="standard"),
                       dict(coupling="affine", linear="reverse", split_prior="conditional"),
                       dict(linear="reverse", top_prior="learned")]:
            flow = Glow((4, 4, 2), num_levels=2, num_steps=2, hidden_channels=4, **kwargs)
            params = _flow_and_params(flow, jax.random.PRNGKey(2), x)
            assert_bijection(jax.jit, flow, params, x, jacobian_examples=1)

    @pytest.mark.filterwarnings("ignore")
    def test_tabular_features_reshaped_to_images(self):
        # The paper's Letter (16 -> 4x4x1) and Satimage (36 -> 6x6x1) flows: 1 level.
        for side in (4, 6):
            flow = Glow((side, side, 1), num_levels=1, num_steps=3, hidden_channels=8)
            x = jax.random.uniform(jax.random.PRNGKey(side), (3, side, side, 1))
            params = _flow_and_params(flow, jax.random.PRNGKey(3), x)
            z, _ = assert_bijection(jax.jit, flow, params, x, jacobian_examples=1)
            assert z.top.shape == (3, side // 2, side // 2, 4) and z.splits == ()

    @pytest.mark.filterwarnings("ignore")
    def test_first_level_with_its_own_number_of_steps(self):
        # first_level_steps=0: level 0 is a squeeze and a split only (no "steps" params); 2 with num_steps=1: more.
        x = jax.random.uniform(jax.random.PRNGKey(0), (3, 8, 8, 1))
        for first, counts in [(0, (0, 1)), (2, (2, 1))]:
            flow = Glow((8, 8, 1), num_levels=2, num_steps=1, first_level_steps=first, hidden_channels=4)
            assert flow.steps_per_level == counts
            params = _flow_and_params(flow, jax.random.PRNGKey(4), x)
            assert ("steps" in params["levels"][0]) == bool(first)
            if first:
                assert params["levels"][0]["steps"]["actnorm"]["bias"].shape[0] == first
            z, _ = assert_bijection(jax.jit, flow, params, x, jacobian_examples=1)
            assert z.top.shape == (3, 2, 2, 8) and [s.shape for s in z.splits] == [(3, 4, 4, 2)]

    def test_without_first_level_steps_the_split_sees_the_squeezed_image(self):
        # No steps at level 0 and an N(0, I) split prior: the split-off half is the squeezed input's last 2 channels.
        flow = Glow((4, 4, 1), num_levels=2, num_steps=1, first_level_steps=0, hidden_channels=4,
                    split_prior="standard")
        x = jax.random.uniform(jax.random.PRNGKey(0), (2, 4, 4, 1))
        z, _ = flow.forward(flow.init(jax.random.PRNGKey(1), x), x)
        squeezed = np.asarray(x).reshape(2, 2, 2, 2, 2, 1).transpose(0, 1, 3, 5, 2, 4).reshape(2, 2, 2, 4)
        np.testing.assert_allclose(z.splits[0], squeezed[..., 2:], atol=1e-7)

    def test_init_normalises_the_first_actnorm(self):
        flow = Glow((8, 8, 1), num_levels=2, num_steps=2, hidden_channels=4)
        x = 0.3 + 0.1 * jax.random.normal(jax.random.PRNGKey(0), (32, 8, 8, 1))
        params = flow.init(jax.random.PRNGKey(1), x)
        first = jax.tree.map(lambda a: a[0], params["levels"][0]["steps"]["actnorm"])
        squeezed = x.reshape(32, 4, 2, 4, 2, 1).transpose(0, 1, 3, 5, 2, 4).reshape(32, 4, 4, 4)
        y = (squeezed + first["bias"]) * jnp.exp(first["log_scale"])
        np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
        np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1.0, atol=1e-4)

    def test_vmap_over_generators_and_grad(self):
        flow = Glow((4, 4, 1), num_levels=2, num_steps=1, hidden_channels=4)
        x = jax.random.uniform(jax.random.PRNGKey(0), (4, 4, 4, 1))
        keys = jax.random.split(jax.random.PRNGKey(1), 3)
        stack = jax.jit(jax.vmap(lambda k: perturb(flow.init(k, x), k, 0.05)))(keys)
        assert_vmap_and_grad(flow, stack, x)

    def test_matmul_convolutions_compute_the_same_flow(self):
        # conv_impl="matmul" (each 3x3 convolution one matrix product) against XLA's convolutions, same parameters:
        # log-densities, and their gradients under a vmap over generators (the reason it exists).
        x = jax.random.uniform(jax.random.PRNGKey(0), (4, 8, 8, 1))
        lax_flow = Glow((8, 8, 1), num_levels=2, num_steps=2, hidden_channels=6)
        matmul_flow = Glow((8, 8, 1), num_levels=2, num_steps=2, hidden_channels=6, conv_impl="matmul")
        keys = jax.random.split(jax.random.PRNGKey(1), 3)
        stack = jax.jit(jax.vmap(lambda k: perturb(lax_flow.init(k, x), k, 0.1)))(keys)

        def total_log_prob(flow):
            return jax.jit(jax.vmap(jax.value_and_grad(lambda p: flow.log_prob(p, x).sum())))(stack)

        (lp_lax, g_lax), (lp_matmul, g_matmul) = total_log_prob(lax_flow), total_log_prob(matmul_flow)
        np.testing.assert_allclose(lp_matmul, lp_lax, rtol=1e-5)
        chex.assert_trees_all_close(g_matmul, g_lax, rtol=1e-3, atol=1e-4)
        assert float(jnp.abs(g_lax["levels"][0]["split"]["kernel"]).max()) > 1e-3  # the split prior's conv is in play

    def test_learned_top_prior_is_a_diagonal_gaussian_on_the_top_latent(self):
        """log p(x) = log N(h; mean, diag std^2) + the rest, h the standard flow's top latent (scipy)."""
        from scipy import stats

        x = jax.random.uniform(jax.random.PRNGKey(0), (3, 8, 8, 1))
        learned = Glow((8, 8, 1), num_levels=2, num_steps=1, hidden_channels=4, top_prior="learned")
        standard = Glow((8, 8, 1), num_levels=2, num_steps=1, hidden_channels=4)
        params = _flow_and_params(learned, jax.random.PRNGKey(1), x, scale=0.3)
        rest = {"levels": params["levels"]}
        h, log_det = standard.forward(rest, x)
        # init: the batch's per-element mean and std of the top latent under the initialised steps
        init = jax.jit(learned.init)(jax.random.PRNGKey(1), x)
        h0 = np.asarray(standard.forward({"levels": init["levels"]}, x)[0].top, np.float64)
        np.testing.assert_allclose(init["top"]["mean"], h0.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.exp(init["top"]["log_std"]), h0.std(0), rtol=1e-4)
        mean, std = np.asarray(params["top"]["mean"], np.float64), np.exp(np.asarray(params["top"]["log_std"], np.float64))
        top = stats.norm.logpdf(np.asarray(h.top, np.float64), mean, std).reshape(3, -1).sum(1)
        splits = stats.norm.logpdf(np.asarray(h.splits[0], np.float64)).reshape(3, -1).sum(1)
        np.testing.assert_allclose(learned.log_prob(params, x), top + splits + np.asarray(log_det), rtol=1e-5)
        # Sampling at temperature 0 decodes the mean: the learned Gaussian's mode.
        zero = learned.sample(params, jax.random.PRNGKey(2), 2, temperature=0.0)
        expected, _ = standard.inverse(rest, latent.Latent(jnp.broadcast_to(params["top"]["mean"], (2, 2, 2, 8)),
                                                           (jnp.zeros((2, 4, 4, 2)),)))
        np.testing.assert_allclose(zero, expected, atol=1e-5)

    def test_generators_from_different_keys_differ(self):
        flow = Glow((4, 4, 1), num_levels=1, num_steps=2, hidden_channels=4)
        x = jax.random.uniform(jax.random.PRNGKey(0), (4, 4, 4, 1))
        a, b = (flow.init(jax.random.PRNGKey(i), x) for i in (1, 2))
        assert not np.allclose(flow.forward(a, x)[0].top, flow.forward(b, x)[0].top)

    def test_float32_round_trip_on_mnist_sized_flow(self):
        # A 28x28x1 Glow (2 levels: 28 -> 14 -> 7) with perturbed, i.e. non-identity, couplings.
        flow = Glow((28, 28, 1), num_levels=2, num_steps=4, hidden_channels=32)
        x = jax.random.uniform(jax.random.PRNGKey(0), (16, 28, 28, 1))
        params = _flow_and_params(flow, jax.random.PRNGKey(1), x, scale=0.02)
        z, log_det = jax.jit(flow.forward)(params, x)
        x_back, inv_log_det = jax.jit(flow.inverse)(params, z)
        err = float(jnp.max(jnp.abs(x_back - x)))
        ld_err = float(jnp.max(jnp.abs(log_det + inv_log_det) / jnp.abs(log_det)))
        print(f"28x28 Glow float32 round trip: max |x - f^-1(f(x))| = {err:.2e}, relative log-det error = {ld_err:.2e}")
        assert err < 1e-4
        assert ld_err < 1e-5

    def test_sample_shape_and_temperature(self):
        flow = Glow((4, 4, 1), num_levels=2, num_steps=1, hidden_channels=4)
        x = jax.random.uniform(jax.random.PRNGKey(0), (4, 4, 4, 1))
        params = _flow_and_params(flow, jax.random.PRNGKey(1), x)
        s = flow.sample(params, jax.random.PRNGKey(2), 5)
        assert s.shape == (5, 4, 4, 1) and np.all(np.isfinite(s))
        zero = flow.sample(params, jax.random.PRNGKey(3), 2, temperature=0.0)
        expected, _ = flow.inverse(params, latent.Latent(jnp.zeros((2, 1, 1, 8)), (jnp.zeros((2, 2, 2, 2)),)))
        np.testing.assert_allclose(zero, expected, atol=1e-6)

    def test_bad_configuration_and_input(self):
        with pytest.raises(ValueError, match=r"\(28, 28, 1\) cannot be squeezed 3 times"):
            Glow((28, 28, 1), num_levels=3)
        with pytest.raises(ValueError, match=r"first_level_steps \(or None\) must be an integer >= 0, got -1"):
            Glow((8, 8, 1), num_levels=2, first_level_steps=-1)
        with pytest.raises(ValueError, match="first_level_steps=0 needs num_levels >= 2"):
            Glow((8, 8, 1), num_levels=1, first_level_steps=0)
        with pytest.raises(ValueError, match="num_steps must be an integer >= 1"):
            Glow((8, 8, 1), num_steps=0)
        with pytest.raises(ValueError, match=r"top_prior must be one of \('standard', 'learned'\), got 'gmm'"):
            Glow((8, 8, 1), num_levels=2, top_prior="gmm")
        with pytest.raises(ValueError, match=r"conv_impl must be one of \('lax', 'matmul'\), got 'fft'"):
            Glow((8, 8, 1), conv_impl="fft")
        flow = Glow((8, 8, 1), num_levels=2, num_steps=1, hidden_channels=4)
        params = flow.init(jax.random.PRNGKey(0), jnp.ones((2, 8, 8, 1)) * jnp.arange(2.0)[:, None, None, None])
        with pytest.raises(ValueError, match=r"Glow.forward: expected a batch of shape \(batch, 8, 8, 1\), got shape \(2, 8, 8, 3\)"):
            jax.jit(flow.forward)(params, jnp.zeros((2, 8, 8, 3)))
        with pytest.raises(ValueError, match=r"got shape \(8, 8, 1\)"):
            flow.log_prob(params, jnp.zeros((8, 8, 1)))
        z, _ = flow.forward(params, jnp.zeros((2, 8, 8, 1)))
        with pytest.raises(ValueError, match="expected 1 split-off parts, got 0"):
            flow.inverse(params, latent.Latent(z.top, ()))
