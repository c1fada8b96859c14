"""E-step objects: each variant against emflow.em's functions or a closed form; a new variant runs in fit unchanged."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

import emflow
from emflow import em, train
from emflow.em import e_steps
from toy_em import SMALL_FLOW, init_flow, np_perturb

MODEL = emflow.GenMM(SMALL_FLOW, num_components=3)


def _data(n=40, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 2)).astype(np.float32) * 2.0


def _params(seed=1):
    """Three distinct generators (perturbed inits) and pi = (0.5, 0.3, 0.2)."""
    base = init_flow(SMALL_FLOW, jax.random.PRNGKey(seed), _data(16, seed))
    flows = [np_perturb(base, seed + k, 0.3) for k in range(3)]
    return {"flows": jax.tree.map(lambda *leaves: jnp.stack(leaves), *flows),
            "log_pi": jnp.log(jnp.array([0.5, 0.3, 0.2]))}


def _round(raw, params, labels=None, batch_size=16):
    identity = train.identity_preprocess
    return e_steps.RoundData(MODEL, params, jnp.asarray(raw), identity, jax.random.PRNGKey(0), batch_size, labels)


def _numpy_joint(params, x):
    return np.asarray(MODEL.component_log_prob(params, x), np.float64)


def test_exact_and_tempered_updates_are_the_posteriors_of_emflow_em():
    x, params = jnp.asarray(_data()), _params()
    joint = _numpy_joint(params, x)
    idx = jnp.arange(len(x))
    gamma, log_px = e_steps.exact().update(e_steps.exact().init(None), MODEL, params, x, idx)
    np.testing.assert_allclose(gamma, scipy.special.softmax(joint, axis=1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(log_px, scipy.special.logsumexp(joint, axis=1), rtol=1e-6)
    for beta, tempering in [(0.3, "joint"), (1 / 784, "likelihood")]:
        step = e_steps.tempered(beta, tempering)
        gamma, _ = step.update(step.init(None), MODEL, params, x, idx)
        log_pi = np.log([0.5, 0.3, 0.2])
        t = beta * joint if tempering == "joint" else log_pi + beta * (joint - log_pi)
        np.testing.assert_allclose(gamma, scipy.special.softmax(t, axis=1), rtol=1e-5, atol=1e-7)
        assert step.name == f"beta {beta:.4g} ({tempering})"


def test_table_variants_warm_start_and_cached():
    raw, params = _data(), _params()
    labels = jnp.asarray(np.arange(40) % 3, jnp.int32)
    data = _round(raw, params, labels)
    idx = jnp.array([3, 0, 7])
    warm = e_steps.warm_start()
    gamma, log_px = warm.update(warm.init(data), MODEL, params, None, idx)
    np.testing.assert_array_equal(gamma, np.eye(3)[[0, 0, 1]])
    assert np.all(np.isnan(log_px))  # a warm start computes no likelihood
    # cached(exact): the table is the exact posterior of every example (identity preprocessing: no noise),
    # through a pass in batches of 16 that pads the last one.
    cached = e_steps.cached(e_steps.exact())
    table = cached.init(data)
    joint = _numpy_joint(params, jnp.asarray(raw))
    np.testing.assert_allclose(table["gamma"], scipy.special.softmax(joint, axis=1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(table["log_px"], scipy.special.logsumexp(joint, axis=1), rtol=1e-6)
    assert cached.name == "beta 1 (joint)" and e_steps.cached(warm) is warm


def test_bad_e_step_settings_are_named():
    with pytest.raises(ValueError, match=r"beta must lie in \(0, 1\], got 0.0"):
        e_steps.tempered(0.0)
    with pytest.raises(ValueError, match="tempering must be one of .*got 'hot'"):
        e_steps.tempered(0.5, "hot")
    with pytest.raises(ValueError, match="warm_start: the model was initialised without a partition"):
        e_steps.warm_start().init(_round(_data(), _params()))


def _flat_update(state, model, old_params, x, idx):
    """The posterior under equal weights, ``softmax_k log p_k(x)``, and the exact ``log p(x)``."""
    del state, idx
    gamma, _ = em.posterior(model, {**old_params, "log_pi": jnp.zeros_like(old_params["log_pi"])}, x)
    return gamma, em.posterior(model, old_params, x)[1]


def test_a_new_e_step_is_one_object_and_fit_runs_it_unchanged():
    """A variant defined in the test itself (exact responsibilities with pi held out), passed to fit."""
    flat = e_steps.EStep("flat", lambda data: {}, _flat_update)
    x = _data(128, 3)
    model = emflow.GenMM(SMALL_FLOW, num_components=2)
    config = train.TrainConfig(epochs=2, batch_size=32, em_every=1, warmup_steps=5, num_samples=0)
    result = train.fit(model, config, None, x, x[:32], progress=False, log=lambda s: None,
                       e_step_of_round=lambda r: flat)
    assert [r["e_step"] for r in result.history] == ["flat", "flat"]
    # Responsibilities of p_k alone (pi left out): pi after a round is their mean, as eq. 16 says.
    np.testing.assert_allclose(result.history[0]["pi"], result.history[0]["mean_gamma"], rtol=1e-6)
    assert abs(result.history[0]["pi"][0] - 0.5) > 1e-3
