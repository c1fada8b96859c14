"""Logit bijector and Prefixed flow: log-det vs jacfwd, closed form, round trip, 8-bit likelihoods, bad input."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from checks import assert_bijection, perturb
from emflow import Dequantizer, GenMM, Glow, Logit, Prefixed


class LogitTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @pytest.mark.filterwarnings("ignore")
    def test_bijection_and_log_det_against_jacfwd_and_closed_form(self):
        for alpha in (1e-6, 0.05):
            layer = Logit((3, 3, 1), alpha)
            x = jax.random.uniform(jax.random.PRNGKey(0), (4, 3, 3, 1))
            y, log_det = assert_bijection(self.variant, layer, {}, x, jacobian_examples=2)
            # Closed form in float64: d/dx logit(a + (1 - 2a) x) = (1 - 2a) / (s (1 - s)).
            s = alpha + (1 - 2 * alpha) * np.asarray(x, np.float64)
            np.testing.assert_allclose(y, np.log(s / (1 - s)), rtol=1e-5, atol=1e-5)
            expected = np.sum(np.log((1 - 2 * alpha) / (s * (1 - s))), axis=(1, 2, 3))
            np.testing.assert_allclose(log_det, expected, rtol=1e-6)

    def test_round_trip_of_8_bit_extremes_in_float32(self):
        layer = Logit((4,))
        x = jnp.array([[0.0, 1.0 / 256, 0.5, 255.5 / 256]], jnp.float32)
        y, ld = layer.forward({}, x)
        back, ld_back = layer.inverse({}, y)
        assert np.all(np.isfinite(y)) and np.isfinite(ld).all()
        np.testing.assert_allclose(back, x, atol=2e-7)
        np.testing.assert_allclose(ld + ld_back, 0.0, atol=1e-3)  # |log-det| ~ 60 here: float32 relative 1e-5

    def test_out_of_range_input_is_nan_not_clipped(self):
        y, _ = Logit((2,)).forward({}, jnp.array([[-0.1, 1.1]]))
        assert np.all(np.isnan(y))

    def test_bad_configuration(self):
        for alpha in (0.0, 0.5, -1e-3):
            with pytest.raises(ValueError, match=r"alpha must lie in \(0, 0.5\)"):
                Logit((2,), alpha)
        with pytest.raises(ValueError, match=r"the prefix acts on \(4, 4, 2\) but the flow on \(4, 4, 1\)"):
            Prefixed(Logit((4, 4, 2)), Glow((4, 4, 1), 1, 1, 4))


@pytest.mark.filterwarnings("ignore")
def test_prefixed_glow_log_prob_is_glow_on_logit_plus_the_logit_log_det():
    glow = Glow((4, 4, 1), num_levels=2, num_steps=1, hidden_channels=4)
    flow = Prefixed(Logit((4, 4, 1)), glow)
    x = jax.random.uniform(jax.random.PRNGKey(0), (5, 4, 4, 1))
    params = perturb(jax.jit(flow.init)(jax.random.PRNGKey(1), x), jax.random.PRNGKey(2), 0.05)
    y, ld_logit = Logit((4, 4, 1)).forward({}, x)
    np.testing.assert_allclose(flow.log_prob(params, x), glow.log_prob(params, y) + ld_logit, rtol=1e-5, atol=1e-4)
    assert_bijection(jax.jit, flow, params, x, atol=2e-4, jacobian_examples=1)
    assert flow.latent_shapes == glow.latent_shapes and flow.event_shape == (4, 4, 1)
    # Samples map back into [0, 1] and quantize to 8 bits.
    samples = GenMM(flow, 2).sample({"log_pi": jnp.log(jnp.array([0.5, 0.5])),
                                     "flows": jax.tree.map(lambda a: jnp.stack([a, a]), params)},
                                    jax.random.PRNGKey(3), 6)
    assert samples.shape == (6, 4, 4, 1) and float(samples.min()) >= 0.0 and float(samples.max()) <= 1.0
    assert Dequantizer((4, 4, 1)).quantize(samples).dtype == np.uint8


def test_prefixed_init_fits_actnorm_on_the_logit_of_the_batch():
    glow = Glow((4, 4, 1), num_levels=1, num_steps=1, hidden_channels=4)
    x = jax.random.uniform(jax.random.PRNGKey(0), (64, 4, 4, 1))
    params = Prefixed(Logit((4, 4, 1)), glow).init(jax.random.PRNGKey(1), x)
    y, _ = Logit((4, 4, 1)).forward({}, x)
    squeezed = np.asarray(y).reshape(64, 2, 2, 2, 2, 1).transpose(0, 1, 3, 2, 4, 5).reshape(64, 2, 2, 4)
    bias = np.asarray(params["levels"][0]["steps"]["actnorm"]["bias"][0])
    np.testing.assert_allclose(bias, -squeezed.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-4)
