"""Generated inputs (Hypothesis) at the public API: each call returns a finite, correctly shaped result or
raises the documented error type with a message that names the argument.

The models are built once and their compiled functions shared; batch sizes stay small so that the
properties compile a handful of programs. ``EXAMPLES`` per property (the count CI runs).
"""
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import emflow  # noqa: E402
from emflow import train  # noqa: E402
from emflow.em import e_steps  # noqa: E402

EXAMPLES = 25
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, print_blob=True)
FLOW = emflow.VectorFlow(3, num_steps=1, hidden=4)
X = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
MODELS = {
    "genmm": emflow.GenMM(FLOW, 2),
    "latmm": emflow.LatMM(FLOW, 2),
    "hybrid": emflow.HybridMM(emflow.GenMM(FLOW, 2), emflow.LatMM(FLOW, 2)),
}
PARAMS = {name: model.init(jax.random.PRNGKey(0), X) for name, model in MODELS.items()}

anything = st.one_of(st.none(), st.booleans(), st.text(max_size=3), st.lists(st.integers(), max_size=2),
                     st.integers(-10, 10), st.floats(allow_nan=True, allow_infinity=True))


@PROPERTY
@given(name=st.sampled_from(sorted(MODELS)), batch=st.integers(0, 4),
       dtype=st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.uint8]),
       rank_change=st.sampled_from([None, "flat", "extra"]), poison=st.sampled_from([None, np.nan, np.inf]))
def test_log_prob_gives_the_batch_its_densities_or_names_the_shape(name, batch, dtype, rank_change, poison):
    """``log_prob``: ``(B, 3)`` of any real dtype -> ``(B,)``, finite where the row is; another shape -> ValueError
    naming the expected and the given shape; a non-finite input row gives a non-finite density on that row only
    (inside jit a value cannot be refused)."""
    model, params = MODELS[name], PARAMS[name]
    x = (X[:batch] * (10 if np.issubdtype(dtype, np.integer) else 1)).astype(dtype)
    if rank_change == "flat":
        x = x.reshape(-1)
    elif rank_change == "extra":
        x = x[..., None]
    if rank_change is not None:
        with pytest.raises(ValueError, match=r"expected a batch of shape \(batch, 3\), got shape"):
            model.log_prob(params, jnp.asarray(x))
        return
    if poison is not None and batch and np.issubdtype(dtype, np.floating):
        x = x.copy()
        x[0, 1] = poison
    out = np.asarray(model.log_prob(params, jnp.asarray(x)))
    assert out.shape == (batch,)
    finite_rows = np.all(np.isfinite(x.astype(np.float64)), axis=1)
    assert np.all(np.isfinite(out[finite_rows])) and not np.any(np.isfinite(out[~finite_rows]))


@PROPERTY
@given(name=st.sampled_from(sorted(MODELS)), n=st.one_of(st.integers(-3, 4), anything),
       temperature=st.one_of(st.floats(0, 2), st.floats(allow_nan=True, allow_infinity=True), anything))
def test_sample_gives_n_finite_samples_or_names_n_or_the_temperature(name, n, temperature):
    model, params = MODELS[name], PARAMS[name]
    try:
        out = model.sample(params, jax.random.PRNGKey(1), n, temperature)
    except (TypeError, ValueError) as err:
        assert "n must be" in str(err) or "temperature must be" in str(err), err
        n_ok = isinstance(n, int) and not isinstance(n, bool) and n >= 0
        assert not n_ok or not _temperature_ok(temperature)
        return
    assert out.shape == (n, 3) and np.all(np.isfinite(np.asarray(out)))
    assert n == 0 or _temperature_ok(temperature)


def _temperature_ok(t) -> bool:
    return isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t >= 0


NUMERIC_FIELDS = ("epochs", "batch_size", "em_every", "learning_rate", "warmup_steps", "min_learning_rate",
                  "clip_value", "clip_norm", "eval_batch_size", "init_batch_size", "partition_size", "num_samples",
                  "sample_temperature", "train_eval_size", "warm_start_rounds", "dead_fraction")


@PROPERTY
@given(field=st.sampled_from(NUMERIC_FIELDS), value=st.one_of(anything, st.floats(-1e3, 1e3), st.integers(-5, 5000)))
def test_train_config_takes_a_valid_value_or_names_the_field(field, value):
    try:
        config = train.TrainConfig(**{field: value})
    except ValueError as err:
        assert f"TrainConfig: {field} must" in str(err), err
        return
    got = getattr(config, field)
    assert got == value and not isinstance(value, (str, type(None), list))
    assert math.isfinite(float(got)) and float(got) >= 0


@PROPERTY
@given(beta=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2, 2)),
       tempering=st.sampled_from(["joint", "likelihood", "hot"]))
def test_a_tempered_e_step_takes_beta_in_0_1_or_names_it(beta, tempering):
    try:
        step = e_steps.tempered(beta, tempering)
    except ValueError as err:
        assert ("beta must lie in (0, 1]" in str(err)) or ("tempering must be one of" in str(err)), err
        assert not (0 < beta <= 1 and tempering != "hot")
        return
    assert 0 < beta <= 1 and step.name == f"beta {beta:.4g} ({tempering})"
    gamma, log_px = step.update(step.init(None), MODELS["genmm"], PARAMS["genmm"], jnp.asarray(X[:4]), jnp.arange(4))
    np.testing.assert_allclose(np.sum(np.asarray(gamma), axis=1), 1.0, rtol=1e-5)
    assert np.all(np.isfinite(np.asarray(log_px)))


@PROPERTY
@given(k=st.one_of(st.integers(-3, 4), anything))
def test_a_generator_index_is_in_range_or_named(k):
    model, params = MODELS["genmm"], PARAMS["genmm"]
    try:
        generator = model.generator(params, k)
    except (TypeError, ValueError) as err:
        assert "GenMM.generator" in str(err) and "k" in str(err), err
        assert not (isinstance(k, int) and not isinstance(k, bool) and 0 <= k < 2)
        return
    assert isinstance(k, int) and 0 <= k < 2
    for leaf, stacked in zip(jax.tree.leaves(generator), jax.tree.leaves(params["flows"])):
        np.testing.assert_array_equal(leaf, stacked[k])


SIZES = st.one_of(st.integers(-2, 5), st.floats(-2, 5), anything)


@PROPERTY
@given(num_features=SIZES, num_steps=SIZES, hidden=SIZES, num_hidden_layers=SIZES)
def test_a_vector_flow_is_built_from_valid_sizes_or_names_the_size(num_features, num_steps, hidden,
                                                                    num_hidden_layers):
    sizes = dict(num_features=num_features, num_steps=num_steps, hidden=hidden, num_hidden_layers=num_hidden_layers)
    valid = {name: isinstance(v, int) and not isinstance(v, bool) and v >= (2 if name == "num_features" else 1)
             for name, v in sizes.items()}
    try:
        flow = emflow.VectorFlow(**sizes)
    except (TypeError, ValueError) as err:
        named = [name for name in sizes if f"VectorFlow: {name} must be an integer" in str(err)]
        assert named and not valid[named[0]], err
        return
    assert all(valid.values()) and flow.event_shape == (num_features,)


@PROPERTY
@given(name=st.sampled_from(sorted(MODELS)), change=st.sampled_from(["none", "float64", "drop", "extra", "reshape",
                                                                     "other model"]), which=st.integers(0, 1000))
def test_log_prob_takes_the_models_params_in_any_float_dtype_or_names_the_misfit(name, change, which):
    model, params = MODELS[name], PARAMS[name]
    leaves, tree = jax.tree_util.tree_flatten(params)
    i = which % len(leaves)
    if change == "float64":
        params = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    elif change == "drop":
        params = {k: v for k, v in params.items() if k != sorted(params)[i % len(params)]}
    elif change == "extra":
        params = {**params, "extra": np.zeros(2, np.float32)}
    elif change == "reshape":
        params = jax.tree_util.tree_unflatten(tree, [np.asarray(a)[None] if j == i else a for j, a in enumerate(leaves)])
    elif change == "other model":
        params = PARAMS["latmm" if name != "latmm" else "genmm"]
    try:
        out = model.log_prob(params, jnp.asarray(X[:4]))
    except (TypeError, ValueError) as err:
        assert change not in ("none", "float64"), err
        assert re.search(r"params(\['log_pi'\] must have shape| do not fit the model| must be the dict)", str(err)), err
        return
    assert change in ("none", "float64")
    assert out.shape == (4,) and np.all(np.isfinite(np.asarray(out)))


KEYS = st.one_of(st.integers(0, 5).map(jax.random.PRNGKey), st.integers(0, 5).map(jax.random.key), anything,
                 st.sampled_from([np.zeros(3, np.uint32), np.zeros(2, np.float32), np.zeros((2, 2), np.uint32)]))


@PROPERTY
@given(name=st.sampled_from(sorted(MODELS)), key=KEYS)
def test_sample_takes_a_prng_key_or_names_the_key(name, key):
    model, params = MODELS[name], PARAMS[name]
    try:
        out = model.sample(params, key, 2)
    except TypeError as err:
        assert "key must be a JAX PRNG key" in str(err), err
        assert not (hasattr(key, "dtype") and (jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
                                               or tuple(np.shape(key)) == (2,) and key.dtype == np.uint32)), key
        return
    assert out.shape == (2, 3) and np.all(np.isfinite(np.asarray(out)))
