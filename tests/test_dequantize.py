"""Dequantization: noise ranges, the -N log 256 term, bits/dim, the paper's resize protocol."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emflow import Dequantizer


def _images(n=4, shape=(28, 28, 1), seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def test_uniform_noise_stays_in_the_bin_and_quantizes_back():
    k = _images()
    deq = Dequantizer((28, 28, 1))
    x = jax.jit(deq.__call__)(jax.random.PRNGKey(0), k)
    assert x.shape == k.shape and x.dtype == jnp.float32
    assert np.all(x >= k / 256.0) and np.all(x < (k.astype(np.float64) + 1) / 256.0)
    np.testing.assert_array_equal(deq.quantize(x), k)
    # Fresh noise per key; the mean noise is 1/2 bin.
    x2 = deq(jax.random.PRNGKey(1), k)
    assert not np.allclose(x, x2)
    np.testing.assert_allclose(float(jnp.mean(x * 256 - k)), 0.5, atol=0.01)


def test_uniform_density_is_8_bits_per_dim():
    # p(x) = 1 on [0, 1)^N  =>  P(k) = 256^-N  =>  exactly 8 bits/dim.
    deq = Dequantizer((28, 28, 1))
    assert deq.log_prob_offset == pytest.approx(-784 * math.log(256))
    np.testing.assert_allclose(deq.bits_per_dim(jnp.zeros(3)), 8.0, rtol=1e-6)
    np.testing.assert_allclose(deq.nats_per_dim(jnp.zeros(3)), math.log(256), rtol=1e-6)
    # A density 2^N on the lower half-cube is 1 bit/dim better.
    np.testing.assert_allclose(deq.bits_per_dim(jnp.full(3, 784 * math.log(2))), 7.0, rtol=1e-6)


def test_paper_scheme_resizes_to_32_and_centres():
    k = _images(2)
    deq = Dequantizer((28, 28, 1), scheme="paper")
    assert deq.model_shape == (32, 32, 1) and deq.num_model_dims == 1024
    x = deq(jax.random.PRNGKey(0), k)
    assert x.shape == (2, 32, 32, 1)
    resized = deq.resize(k)
    noise = np.asarray(x) - (np.asarray(resized) / 255.0 - 0.5)
    np.testing.assert_allclose(noise.std(), 1 / 256, rtol=0.05)
    np.testing.assert_array_equal(deq.quantize(x - jnp.asarray(noise)), resized)
    assert deq.log_prob_offset == pytest.approx(-1024 * math.log(256))


def test_paper_resize_of_a_constant_image_is_constant_and_corners_agree():
    k = np.full((1, 28, 28, 1), 77, np.uint8)
    np.testing.assert_array_equal(Dequantizer((28, 28, 1), "paper").resize(k), 77)
    k = _images(1)
    r = np.asarray(Dequantizer((28, 28, 1), "paper").resize(k))
    # Bilinear with half-pixel centres: output (0, 0) sits at input (-0.0625, -0.0625) -> clamps to input (0, 0).
    assert r[0, 0, 0, 0] == k[0, 0, 0, 0]


def test_bad_input_is_a_clear_error():
    deq = Dequantizer((28, 28, 1))
    with pytest.raises(ValueError, match=r"expected uint8 data of shape \(batch, 28, 28, 1\), got \(4, 32, 32, 1\)"):
        deq(jax.random.PRNGKey(0), _images(4, (32, 32, 1)))
    with pytest.raises(ValueError, match="expected uint8 data .* got dtype float32"):
        deq(jax.random.PRNGKey(0), _images().astype(np.float32))
    with pytest.raises(ValueError, match="scheme must be"):
        Dequantizer((28, 28, 1), scheme="logit")
