"""Affine and additive coupling with conv and MLP conditioners."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from checks import assert_bijection, assert_vmap_and_grad, perturb
from emflow.bijectors import Coupling


class CouplingTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @pytest.mark.filterwarnings("ignore")
    def test_bijection_and_log_det(self):
        for kind in ("affine", "additive"):
            for shape in [(4, 4, 4), (5,)]:
                x = jax.random.normal(jax.random.PRNGKey(0), (3, *shape))
                layer = Coupling(shape, kind, hidden=8)
                params = perturb(layer.init(jax.random.PRNGKey(1)), jax.random.PRNGKey(2), scale=0.3)
                _, log_det = assert_bijection(self.variant, layer, params, x)
                if kind == "additive":
                    np.testing.assert_array_equal(log_det, 0.0)
                else:
                    assert np.all(np.abs(log_det) > 1e-3)

    def test_fresh_coupling_is_identity_up_to_glow_scale(self):
        x = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 4, 4))
        for kind, scale in (("additive", 1.0), ("affine", float(jax.nn.sigmoid(2.0)))):
            layer = Coupling((4, 4, 4), kind, hidden=8)
            y, log_det = layer.forward(layer.init(jax.random.PRNGKey(1)), x)
            np.testing.assert_allclose(y[..., :2], x[..., :2])
            np.testing.assert_allclose(y[..., 2:], scale * x[..., 2:], rtol=1e-6)
            np.testing.assert_allclose(log_det, 32 * np.log(scale), rtol=1e-5, atol=1e-6)

    def test_first_half_passes_unchanged_and_conditions_the_second(self):
        layer = Coupling((6,), "affine", hidden=8)
        params = perturb(layer.init(jax.random.PRNGKey(1)), jax.random.PRNGKey(2), scale=0.5)
        x = jax.random.normal(jax.random.PRNGKey(3), (2, 6))
        jac = jax.jacfwd(lambda v: layer.forward(params, v[None])[0][0])(x[0])
        np.testing.assert_allclose(jac[:3, :3], np.eye(3), atol=1e-6)
        np.testing.assert_allclose(jac[:3, 3:], 0.0, atol=1e-6)  # lower block-triangular
        assert np.abs(np.asarray(jac[3:, :3])).max() > 1e-3

    def test_vmap_and_grad(self):
        x = jax.random.normal(jax.random.PRNGKey(5), (4, 2, 2, 4))
        layer = Coupling((2, 2, 4), "affine", hidden=8)
        stack = jax.vmap(lambda k: perturb(layer.init(k), k, 0.3))(jax.random.split(jax.random.PRNGKey(6), 2))
        assert_vmap_and_grad(layer, stack, x)

    def test_bad_configuration(self):
        with pytest.raises(ValueError, match=r"kind must be one of \('affine', 'additive', 'spline'\), got 'cubic'"):
            Coupling((4,), "cubic")
        with pytest.raises(ValueError, match="at least 2 channels"):
            Coupling((4, 4, 1))


def test_conv1x1_is_the_1x1_convolution():
    """The coupling network's 1x1 layer runs as a matrix product; it must equal lax's convolution."""
    from emflow.bijectors.conditioners import conv1x1, conv2d

    kx, kk, kb = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, (3, 5, 4, 6))
    kernel, bias = jax.random.normal(kk, (1, 1, 6, 7)), jax.random.normal(kb, (7,))
    np.testing.assert_allclose(conv1x1(x, kernel, bias), conv2d(x, kernel, bias), rtol=1e-5, atol=1e-5)
    kernels = jax.random.normal(kk, (2, 1, 1, 6, 7))  # and under a vmap over generators (a batched matmul)
    np.testing.assert_allclose(jax.vmap(conv1x1, (None, 0, None))(x, kernels, bias),
                               jax.vmap(conv2d, (None, 0, None))(x, kernels, bias), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel_size, cin, cout", [(3, 2, 16), (3, 16, 4), (3, 5, 5), (1, 6, 7), (5, 3, 2), (5, 9, 2)])
def test_matmul_convolution_is_the_convolution(kernel_size, cin, cout):
    """conv2d(impl="matmul") against lax's 'SAME' convolution, values and gradients (kernel, input, bias).

    Cin <= Cout takes the im2col path (shifted inputs and a column of ones times the kernel with
    the bias as a last row), Cin > Cout the col2im path (the product first, then the shifted
    outputs summed); both are covered.
    """
    from emflow.bijectors.conditioners import conv2d

    kx, kk, kb = jax.random.split(jax.random.PRNGKey(kernel_size * 100 + cin), 3)
    x = jax.random.normal(kx, (2, 5, 7, cin))  # not square, so a swapped height and width would show
    kernel = jax.random.normal(kk, (kernel_size, kernel_size, cin, cout))
    bias = jax.random.normal(kb, (cout,))
    np.testing.assert_allclose(conv2d(x, kernel, bias, "matmul"), conv2d(x, kernel, bias, "lax"), rtol=1e-5, atol=1e-4)
    loss = lambda impl: jax.grad(lambda k, v, b: jnp.sum(jnp.sin(conv2d(v, k, b, impl))), argnums=(0, 1, 2))(
        kernel, x, bias)
    chex.assert_trees_all_close(loss("matmul"), loss("lax"), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="impl must be one of"):
        conv2d(x, kernel, bias, "fft")
    with pytest.raises(ValueError, match="odd kernel size, got 2x2"):
        conv2d(x, jnp.ones((2, 2, cin, cout)), bias, "matmul")


@pytest.mark.parametrize("cin, cout", [(2, 16), (16, 4)])
def test_bfloat16_matmul_convolution_is_rounded_once(cin, cout):
    """In bfloat16, both matmul paths return bfloat16 within one rounding of the exact float32 convolution."""
    from emflow.bijectors.conditioners import conv2d

    kx, kk = jax.random.split(jax.random.PRNGKey(cin))
    x = jax.random.normal(kx, (2, 6, 5, cin)).astype(jnp.bfloat16)
    kernel = jax.random.normal(kk, (3, 3, cin, cout)).astype(jnp.bfloat16)  # representable in both dtypes
    bias = jnp.zeros((cout,))
    exact = jax.lax.conv_general_dilated(x.astype(jnp.float32), kernel.astype(jnp.float32), (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                         precision=jax.lax.Precision.HIGHEST)
    y = conv2d(x, kernel, bias, "matmul")
    assert y.dtype == jnp.bfloat16
    # one rounding to bfloat16 (8 significant bits) is within 2**-8 relative; allow 2**-7 of the size
    np.testing.assert_array_less(np.abs(np.asarray(y, np.float32) - exact), 2.0 ** -7 * np.abs(exact) + 1e-2)


def test_bfloat16_col2im_gradients_stay_bfloat16():
    """The col2im path sums float32 partial products, yet its gradients are bfloat16 products.

    No array as wide as the input may be float32 in the backward pass (that would double the
    memory traffic of the widest tensors); the gradients stay within bfloat16 rounding of the
    float32 convolution's, and forward-mode differentiation agrees with reverse mode.
    """
    from emflow.bijectors.conditioners import conv2d

    kx, kk, kc = jax.random.split(jax.random.PRNGKey(7), 3)
    x = jax.random.normal(kx, (2, 6, 5, 16))
    kernel = jax.random.normal(kk, (3, 3, 16, 4))
    bias = jnp.zeros((4,))
    probe = jax.random.normal(kc, (2, 6, 5, 4))
    loss = lambda v, k, impl: jnp.sum(probe * conv2d(v, k, bias, impl).astype(jnp.float32))
    grad = jax.grad(loss, argnums=(0, 1))
    x16 = x.astype(jnp.bfloat16)
    jaxpr = jax.make_jaxpr(grad, static_argnums=2)(x16, kernel, "matmul")
    wide = [v.aval for e in jaxpr.eqns for v in e.outvars
            if v.aval.dtype == jnp.float32 and v.aval.shape[-1:] == (16,) and v.aval.size >= x.size]
    assert not wide, f"float32 arrays as wide as the bfloat16 input in the backward pass: {wide}"
    gx, gk = grad(x16, kernel, "matmul")
    assert gx.dtype == jnp.bfloat16 and gk.dtype == jnp.float32
    rx, rk = grad(x16.astype(jnp.float32), kernel.astype(jnp.bfloat16).astype(jnp.float32), "lax")
    np.testing.assert_allclose(np.asarray(gx, np.float32), rx, rtol=2.0 ** -6, atol=0.05 * float(jnp.abs(rx).max()))
    np.testing.assert_allclose(gk, rk, rtol=2.0 ** -6, atol=0.02 * float(jnp.abs(rk).max()))
    f32 = lambda v: conv2d(v, kernel, bias, "matmul")
    np.testing.assert_allclose(jax.jacfwd(f32)(x[:1, :3, :3]), jax.jacrev(f32)(x[:1, :3, :3]), rtol=1e-5, atol=1e-5)
