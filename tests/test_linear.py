"""Invertible 1x1 convolution / dense layer, plain and LU."""
import chex
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from checks import assert_bijection, assert_vmap_and_grad, perturb
from emflow.bijectors import InvertibleLinear


class InvertibleLinearTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @pytest.mark.filterwarnings("ignore")
    def test_bijection_and_log_det(self):
        for parametrization in ("plain", "lu"):
            for shape in [(2, 3, 4), (5,)]:
                x = jax.random.normal(jax.random.PRNGKey(0), (3, *shape))
                layer = InvertibleLinear(shape, parametrization)
                params = perturb(layer.init(jax.random.PRNGKey(1)), jax.random.PRNGKey(2), scale=0.3)
                _, log_det = assert_bijection(self.variant, layer, params, x)
                w = np.asarray(layer.matrix(params), np.float64)
                expected = np.prod(shape[:-1]) * np.linalg.slogdet(w)[1]
                np.testing.assert_allclose(log_det, expected, rtol=1e-5, atol=1e-5)

    def test_init_is_a_rotation_and_layers_differ_by_key(self):
        layer = InvertibleLinear((6,), "lu")
        w1 = np.asarray(layer.matrix(layer.init(jax.random.PRNGKey(0))))
        w2 = np.asarray(layer.matrix(layer.init(jax.random.PRNGKey(1))))
        np.testing.assert_allclose(w1 @ w1.T, np.eye(6), atol=1e-5)
        assert not np.allclose(w1, w2)

    def test_lu_and_plain_agree_for_the_same_matrix(self):
        w = jax.random.normal(jax.random.PRNGKey(3), (4, 4)) + 2 * jnp.eye(4)
        x = jax.random.normal(jax.random.PRNGKey(4), (5, 3, 3, 4))
        plain = InvertibleLinear((3, 3, 4), "plain")
        lu = InvertibleLinear((3, 3, 4), "lu")
        lu_params = InvertibleLinear.lu_params_from_matrix(w)
        np.testing.assert_allclose(lu.matrix(lu_params), w, atol=1e-5)
        y_plain, ld_plain = plain.forward({"kernel": w}, x)
        y_lu, ld_lu = lu.forward(lu_params, x)
        np.testing.assert_allclose(y_lu, y_plain, atol=1e-5)
        np.testing.assert_allclose(ld_lu, ld_plain, rtol=1e-5)
        np.testing.assert_allclose(lu.inverse(lu_params, y_lu)[0], plain.inverse({"kernel": w}, y_plain)[0], atol=1e-4)

    def test_lu_constants_get_no_gradient(self):
        layer = InvertibleLinear((4,), "lu")
        params = layer.init(jax.random.PRNGKey(0))
        x = jax.random.normal(jax.random.PRNGKey(1), (8, 4))
        grads = jax.grad(lambda p: jnp.sum(layer.forward(p, x)[0] ** 2))(params)
        assert np.all(np.asarray(grads["perm"]) == 0) and np.all(np.asarray(grads["sign_s"]) == 0)
        assert np.any(np.asarray(grads["log_s"]) != 0)

    def test_vmap_and_grad(self):
        x = jax.random.normal(jax.random.PRNGKey(5), (4, 2, 2, 3))
        for parametrization in ("plain", "lu"):
            layer = InvertibleLinear((2, 2, 3), parametrization)
            stack = jax.vmap(layer.init)(jax.random.split(jax.random.PRNGKey(6), 3))
            assert_vmap_and_grad(layer, stack, x)

    def test_bad_parametrization(self):
        with pytest.raises(ValueError, match="'plain' or 'lu'"):
            InvertibleLinear((4,), "qr")


def _dot_precisions(fn, *args) -> list:
    """The ``precision`` of every ``dot_general`` in ``fn``'s jaxpr, sub-jaxprs included."""
    found = []

    def visit(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                found.append(eqn.params["precision"])
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                visit(sub)

    visit(jax.make_jaxpr(fn)(*args).jaxpr)
    return found


@pytest.mark.parametrize("parametrization", ["plain", "lu"])
def test_matrix_products_run_at_full_precision_whatever_the_default(parametrization):
    # XLA's float32 default is TF32 on GPUs and one bf16 pass on TPUs; the layer must not inherit it,
    # in the forward, the inverse and the gradient. (This CPU ignores the setting, so the jaxpr is checked.)
    layer = InvertibleLinear((3, 3, 4), parametrization)
    params = layer.init(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 3, 4))
    loss = lambda p, x: jnp.sum(layer.forward(p, x)[0] ** 2) + jnp.sum(layer.inverse(p, x)[0] ** 2)
    full = jax.lax.Precision.HIGHEST
    with jax.default_matmul_precision("bfloat16"):
        for fn in (layer.forward, layer.inverse, jax.grad(loss, argnums=(0, 1))):
            precisions = _dot_precisions(fn, params, x)
            assert precisions and all(p == (full, full) for p in precisions), precisions
