"""emflow.checks: what each check accepts and the message of what it refuses."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import emflow
from emflow import checks


def test_integer_takes_python_and_numpy_ints_and_refuses_bools_floats_and_small_ones():
    assert checks.integer("f", "n", np.int64(3), 1) == 3 and type(checks.integer("f", "n", np.int32(3))) is int
    for bad in (True, 2.0, "2", None):
        with pytest.raises(TypeError, match=r"^f: n must be an integer >= 1, got .* of type"):
            checks.integer("f", "n", bad, 1)
    with pytest.raises(ValueError, match=r"^f: n must be an integer >= 1, got 0$"):
        checks.integer("f", "n", 0, 1)


@pytest.mark.parametrize("kw,value,interval", [
    (dict(low=0.0, high=1.0), 1.5, r"\[0, 1\]"),
    (dict(low=0.0, high=1.0, low_open=True, high_open=True), 0.0, r"\(0, 1\)"),
    (dict(low=0.0), float("inf"), r"\[0, inf\)"),
    (dict(high=2.0), float("nan"), r"\[-inf, 2\]"),
])
def test_number_names_its_interval(kw, value, interval):
    with pytest.raises(ValueError, match=rf"^f: x must be a finite number in {interval}, got"):
        checks.number("f", "x", value, **kw)
    assert checks.number("f", "x", np.float32(0.5), 0.0, 1.0) == 0.5


def test_event_shape_is_a_tuple_of_positive_ints_of_the_rank_asked():
    assert checks.event_shape("f", "s", [4, np.int64(4), 1], 3) == (4, 4, 1)
    for bad in ((), (4, 0), (4, 2.0), 4, (True, 2)):
        with pytest.raises(ValueError, match="f: s must be"):
            checks.event_shape("f", "s", bad)
    with pytest.raises(ValueError, match="a tuple of 3 positive ints"):
        checks.event_shape("f", "s", (4, 4), 3)


def test_key_takes_typed_and_raw_keys_and_nothing_else():
    assert checks.key("f", jax.random.key(0)) is not None and checks.key("f", jax.random.PRNGKey(0)) is not None
    for bad in (0, "k", np.zeros(3, np.uint32), np.zeros(2, np.float32), jax.random.split(jax.random.PRNGKey(0))):
        with pytest.raises(TypeError, match=r"f: key must be a JAX PRNG key"):
            checks.key("f", bad)


def test_params_fit_compares_the_tree_and_shapes_not_the_dtypes():
    model = emflow.GenMM(emflow.VectorFlow(2, num_steps=1, hidden=4), 2)
    params = model.init(jax.random.PRNGKey(0), jnp.ones((4, 2)))
    checks.params_fit("f", model, jax.tree.map(lambda a: np.asarray(a, np.float64), params))
    with pytest.raises(ValueError, match=r"f: params do not fit the model: \['log_pi'\] should have shape \(2,\), got \(3,\)"):
        checks.params_fit("f", model, {**params, "log_pi": jnp.zeros(3)})
    with pytest.raises(ValueError, match="f: params do not fit the model: expected the tree of GenMM.init"):
        checks.params_fit("f", model, {"log_pi": params["log_pi"]})


def test_kinds_of_object_are_named_with_what_they_lack():
    with pytest.raises(TypeError, match=r"f: flow must be a flow .* got int without \['event_shape', 'init', "):
        checks.flow("f", 3)
    with pytest.raises(TypeError, match="f: model must be a mixture model"):
        checks.mixture("f", emflow.VectorFlow(2))
    with pytest.raises(TypeError, match="f: optimizer must be an optax.GradientTransformation"):
        checks.transformation("f", "adam")
    with pytest.raises(TypeError, match=r"f: hooks must be a list or tuple of hooks"):
        checks.hooks("f", [object()])
    checks.hooks("f", iter([]))  # any iterable: a generator of hooks is not consumed here
    with pytest.raises(TypeError, match=r"f: x must be an array of numbers, got ndarray of dtype <U1"):
        checks.numbers("f", "x", np.array(["a"]))


def test_parameters_that_init_made_are_remembered_as_the_models_tree():
    model = emflow.LatMM(emflow.VectorFlow(3, num_steps=1, hidden=4), 2)
    params = model.init(jax.random.PRNGKey(0), jnp.ones((4, 3)))
    checks.remember_init_params(model, params)
    traced = jax.eval_shape(model.init, jax.random.PRNGKey(0), jax.ShapeDtypeStruct((2, 3), jnp.float32))
    assert jax.tree.map(lambda s: s.shape, checks.init_shapes(model)) == jax.tree.map(lambda s: s.shape, traced)
    checks.params_fit("f", model, params)
    with pytest.raises(ValueError, match=r"f: params do not fit the model: \['means'\] should have shape"):
        checks.params_fit("f", model, {**params, "means": params["means"][:1]})
