"""The rounding that ``benchmarks.matmul_precision`` emulates, against numpy."""
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.matmul_precision import channel_mixing_rounded, round_to_bfloat16, round_to_tf32
from emflow.bijectors import InvertibleLinear, linear


def test_tf32_rounding_keeps_ten_mantissa_bits_to_nearest():
    a = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (10_000,)) * 100, np.float32)
    r = np.asarray(round_to_tf32(jnp.asarray(a)))
    assert np.all(r.view(np.uint32) & 0x1FFF == 0)                               # 13 low bits cleared
    mantissa, exponent = np.frexp(a.astype(np.float64))                          # a = mantissa * 2**exponent
    # mantissa in [0.5, 1): 11 bits after the point are TF32's implicit bit and 10 stored ones; ties away from 0.
    nearest = np.sign(a) * np.floor(np.abs(mantissa) * 2.0 ** 11 + 0.5) / 2.0 ** 11 * 2.0 ** exponent
    np.testing.assert_array_equal(r.astype(np.float64), nearest)
    assert float(round_to_tf32(jnp.float32(1 + 2 ** -12))) == 1.0
    assert float(round_to_tf32(jnp.float32(1 + 2 ** -10))) == 1 + 2 ** -10


def test_rounded_channel_mixing_is_the_product_of_rounded_operands_and_is_undone_after():
    layer = InvertibleLinear((2, 2, 4), "lu")
    params = layer.init(jax.random.PRNGKey(1))
    x = jax.random.normal(jax.random.PRNGKey(2), (3, 2, 2, 4))
    w = np.asarray(layer.matrix(params), np.float64)
    full = linear.mix_channels
    with channel_mixing_rounded(round_to_bfloat16):
        y, _ = layer.forward(params, x)
    rounded = lambda a: np.asarray(jnp.asarray(a, jnp.float32).astype(jnp.bfloat16), np.float64)
    np.testing.assert_allclose(np.asarray(y), np.einsum("...c,dc->...d", rounded(x), rounded(w)), rtol=1e-6, atol=1e-6)
    assert linear.mix_channels is full
    np.testing.assert_allclose(np.asarray(layer.forward(params, x)[0]), np.einsum("...c,dc->...d", np.asarray(x), w),
                               rtol=1e-6, atol=1e-6)
