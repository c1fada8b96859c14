"""Rational-quadratic splines (emflow.bijectors.rational_quadratic) and the spline coupling."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from checks import assert_bijection, perturb

from emflow.bijectors import Coupling
from emflow.bijectors import rational_quadratic as rq

BOUND = 3.0


def _params(key, n, bins=8, scale=1.0, dtype=jnp.float32):
    return (scale * jax.random.normal(key, (n, rq.num_params(bins)))).astype(dtype)


def test_zero_parameters_give_the_identity():
    x = jnp.linspace(-5.0, 5.0, 101)
    y, log_det = rq.forward(jnp.zeros((101, rq.num_params(6))), x, BOUND)
    np.testing.assert_allclose(y, x, atol=2e-6)
    np.testing.assert_allclose(log_det, 0.0, atol=2e-6)


def test_log_derivative_is_the_derivative_of_the_map():
    """The closed-form log dy/dx against autodiff of y(x), in float64, at random knots and points."""
    with jax.enable_x64(True):
        params = _params(jax.random.PRNGKey(0), 500, scale=1.5, dtype=jnp.float64)
        x = 2.0 * BOUND * jax.random.uniform(jax.random.PRNGKey(1), (500,), jnp.float64) - BOUND
        _, log_det = rq.forward(params, x, BOUND)
        grad = jax.vmap(jax.grad(lambda p, v: rq.forward(p, v, BOUND)[0], argnums=1))(params, x)
        np.testing.assert_allclose(log_det, np.log(grad), rtol=0, atol=1e-10)
        _, inverse_log_det = rq.inverse(params, rq.forward(params, x, BOUND)[0], BOUND)
        np.testing.assert_allclose(inverse_log_det, -log_det, atol=1e-9)


@pytest.mark.parametrize("dtype, scale, tolerance", [
    # float64: exact to rounding. float32 at logits of std 0.5: measured 5e-6. At std 2 the map's
    # local slope falls to ~1e-5 in places, where one float32 step of y is ~0.05 of x (measured 0.08).
    ("float64", 2.0, 1e-8), ("float32", 0.5, 2e-5)])
def test_inverse_undoes_forward(dtype, scale, tolerance):
    with jax.enable_x64(dtype == "float64"):
        params = _params(jax.random.PRNGKey(2), 4000, scale=scale, dtype=dtype)
        x = (1.5 * BOUND * jax.random.normal(jax.random.PRNGKey(3), (4000,))).astype(dtype)
        y, log_det = rq.forward(params, x, BOUND)
        x_back, inverse_log_det = rq.inverse(params, y, BOUND)
        np.testing.assert_allclose(x_back, x, rtol=0, atol=tolerance)
        np.testing.assert_allclose(inverse_log_det, -log_det, rtol=0, atol=50 * tolerance)


def test_strictly_increasing_continuous_and_the_identity_outside_the_bound():
    with jax.enable_x64(True):
        params = jnp.repeat(_params(jax.random.PRNGKey(4), 1, scale=2.0, dtype=jnp.float64), 20001, axis=0)
        x = jnp.linspace(-2 * BOUND, 2 * BOUND, 20001)
        y, log_det = rq.forward(params, x, BOUND)
        assert np.all(np.diff(np.asarray(y)) > 0)
        # Continuous at every interior knot (knots computed here from the width logits, in numpy).
        logits = np.asarray(params[0, :8])
        widths = rq.MIN_BIN_SIZE + (1 - 8 * rq.MIN_BIN_SIZE) * np.exp(logits) / np.exp(logits).sum()
        knots = -BOUND + 2 * BOUND * np.cumsum(widths)[:-1]
        left, right = (rq.forward(params[:7], jnp.asarray(knots + side), BOUND)[0] for side in (-1e-10, 1e-10))
        np.testing.assert_allclose(left, right, atol=1e-6)
        outside = np.abs(np.asarray(x)) > BOUND
        np.testing.assert_array_equal(np.asarray(y)[outside], np.asarray(x)[outside])   # bitwise
        np.testing.assert_array_equal(np.asarray(log_det)[outside], 0.0)
        ends = rq.forward(params[:2], jnp.array([-BOUND, BOUND]), BOUND)[0]
        np.testing.assert_allclose(ends, [-BOUND, BOUND], atol=1e-12)
        # The boundary derivatives are 1: dy/dx -> 1 at both ends, so the map is C1 across them.
        near = jnp.array([-BOUND + 1e-7, BOUND - 1e-7])
        np.testing.assert_allclose(np.exp(rq.forward(params[:2], near, BOUND)[1]), 1.0, atol=1e-4)


class SplineCouplingTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_bijection_and_log_det_against_slogdet_of_the_jacobian(self):
        for shape in [(5,), (4, 4, 4)]:
            x = 2.0 * jax.random.normal(jax.random.PRNGKey(0), (3, *shape))
            layer = Coupling(shape, "spline", hidden=8, spline_bins=5, tail_bound=BOUND)
            params = perturb(layer.init(jax.random.PRNGKey(1)), jax.random.PRNGKey(2), scale=0.05)
            _, log_det = assert_bijection(self.variant, layer, params, x)
            assert np.all(np.abs(log_det) > 1e-3)

    def test_a_fresh_spline_coupling_is_the_identity(self):
        x = 2.0 * jax.random.normal(jax.random.PRNGKey(0), (3, 4, 4, 4))
        layer = Coupling((4, 4, 4), "spline", hidden=8)
        y, log_det = layer.forward(layer.init(jax.random.PRNGKey(1)), x)
        np.testing.assert_allclose(y, x, atol=1e-5)
        np.testing.assert_allclose(log_det, 0.0, atol=1e-4)

    def test_settings_that_cannot_work_are_refused_by_name(self):
        for bins, bound, message in ((1, 3.0, r"spline_bins must be an integer >= 2, got 1"),
                                     (2.5, 3.0, r"spline_bins must be an integer >= 2, got 2.5"),
                                     (8, 0.0, r"tail_bound must be a finite number > 0, got 0.0"),
                                     (8, -1.0, r"tail_bound must be a finite number > 0, got -1.0"),
                                     (8, float("nan"), r"tail_bound must be a finite number > 0, got nan")):
            with pytest.raises(ValueError, match=message):
                Coupling((4,), "spline", spline_bins=bins, tail_bound=bound)


def test_spline_flows_are_bijections_with_their_jacobian_log_det():
    """A VectorFlow and a Glow whose couplings are splines: log-det against slogdet(jacfwd), round trip."""
    import emflow

    for flow, x in ((emflow.VectorFlow(4, num_steps=2, hidden=8, coupling="spline", spline_bins=4, tail_bound=2.5),
                     2.0 * jax.random.normal(jax.random.PRNGKey(0), (3, 4))),
                    (emflow.Glow((4, 4, 1), num_levels=1, num_steps=2, hidden_channels=8, coupling="spline"),
                     jax.random.normal(jax.random.PRNGKey(0), (3, 4, 4, 1)))):
        params = perturb(flow.init(jax.random.PRNGKey(1), x), jax.random.PRNGKey(2), scale=0.05)
        z, log_det = flow.forward(params, x)
        x_back, _ = flow.inverse(params, z)
        np.testing.assert_allclose(x_back, x, atol=1e-4)
        flat = lambda v, flow=flow, params=params: jnp.concatenate(
            [p.reshape(-1) for p in jax.tree.leaves(flow.forward(params, v[None])[0])])
        jac = jax.jacfwd(flat)(x[0]).reshape(x[0].size, x[0].size)
        np.testing.assert_allclose(log_det[0], np.linalg.slogdet(np.asarray(jac, np.float64))[1], rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="spline_bins must be an integer >= 2, got 1"):
        emflow.VectorFlow(4, coupling="spline", spline_bins=1)
