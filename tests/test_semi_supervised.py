"""The semi-supervised E-step against closed forms: all labelled, none labelled, mixed, cached; bad labels."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

import emflow
from emflow import em, train
from emflow.em import e_steps
from emflow.em.semi_supervised import check_labels, semi_supervised
from toy_em import SMALL_FLOW, init_flow, np_perturb

MODEL = emflow.GenMM(SMALL_FLOW, num_components=4)
CLASSES = np.array([0, 0, 1, 2])  # class 0 owns two components


def _data(n=40, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 2)).astype(np.float32) * 2.0


def _params():
    base = init_flow(SMALL_FLOW, jax.random.PRNGKey(1), _data(16, 1))
    flows = [np_perturb(base, 10 + k, 0.3) for k in range(4)]
    return {"flows": jax.tree.map(lambda *leaves: jnp.stack(leaves), *flows),
            "log_pi": jnp.log(jnp.array([0.4, 0.3, 0.2, 0.1]))}


def _gamma(y, classes=CLASSES, model=MODEL, unlabelled_weight=1.0):
    x, params = jnp.asarray(_data()), _params()
    step = semi_supervised(y, classes, unlabelled_weight)
    data = e_steps.RoundData(model, params, x, train.identity_preprocess, jax.random.PRNGKey(0), 16)
    gamma, log_px = step.update(step.init(data), model, params, x, jnp.arange(len(x)))
    return np.asarray(gamma), np.asarray(log_px), np.asarray(model.component_log_prob(params, x), np.float64)


def test_none_labelled_is_unsupervised_em_and_all_labelled_is_the_class_posterior():
    gamma, log_px, joint = _gamma(np.full(40, -1))
    exact, exact_log_px = em.posterior(MODEL, _params(), jnp.asarray(_data()))
    np.testing.assert_array_equal(gamma, np.asarray(exact))  # the same numbers as unsupervised EM
    np.testing.assert_array_equal(log_px, np.asarray(exact_log_px))
    y = np.random.default_rng(3).integers(0, 3, 40)
    gamma, log_px, joint = _gamma(y)
    for i in range(40):  # zero outside the class's components, the posterior renormalised within them
        own = CLASSES == y[i]
        want = np.zeros(4)
        want[own] = scipy.special.softmax(joint[i, own])
        np.testing.assert_allclose(gamma[i], want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(log_px, scipy.special.logsumexp(joint, axis=1), rtol=1e-6)  # always the exact log p(x)
    # One component per class: a labelled example's responsibilities are its label's one-hot vector.
    model3 = emflow.GenMM(SMALL_FLOW, num_components=3)
    params3 = {**_params(), "flows": jax.tree.map(lambda a: a[:3], _params()["flows"]),
               "log_pi": jnp.log(jnp.array([0.5, 0.3, 0.2]))}
    step = semi_supervised(y, np.arange(3))
    x = jnp.asarray(_data())
    state = step.init(e_steps.RoundData(model3, params3, x, train.identity_preprocess, jax.random.PRNGKey(0), 16))
    gamma, _ = step.update(state, model3, params3, x, jnp.arange(40))
    np.testing.assert_array_equal(np.asarray(gamma), np.eye(3)[y])


def test_mixed_labels_and_the_cached_pass_read_each_examples_own_label():
    y = np.full(40, -1)
    y[::5] = np.arange(8) % 3  # 8 labelled, 32 unlabelled
    gamma, _, joint = _gamma(y)
    unlabelled = y == -1
    np.testing.assert_allclose(gamma[unlabelled], scipy.special.softmax(joint[unlabelled], axis=1), rtol=1e-5,
                               atol=1e-7)
    assert np.all(gamma[~unlabelled][CLASSES[None, :] != y[~unlabelled][:, None]] == 0.0)
    # cached: one pass in batches of 16 (the last one padded) looks up the same rows' labels
    x, params = jnp.asarray(_data()), _params()
    data = e_steps.RoundData(MODEL, params, x, train.identity_preprocess, jax.random.PRNGKey(0), 16)
    table = e_steps.cached(semi_supervised(y, CLASSES)).init(data)
    np.testing.assert_allclose(table["gamma"], gamma, rtol=1e-6, atol=1e-7)


def test_an_unlabelled_weight_scales_the_unlabelled_rows_only():
    y = np.full(40, -1)
    y[::5] = np.arange(8) % 3
    full, log_px, _ = _gamma(y)
    for weight in (0.0, 0.25):
        gamma, weighted_log_px, _ = _gamma(y, unlabelled_weight=weight)
        np.testing.assert_array_equal(gamma[y >= 0], full[y >= 0])
        np.testing.assert_allclose(gamma[y < 0], weight * full[y < 0], rtol=1e-6, atol=0)
        np.testing.assert_array_equal(weighted_log_px, log_px)  # the likelihood recorded is the exact one
    with pytest.raises(ValueError, match=r"semi_supervised: unlabelled_weight must be a finite number in \[0, 1\], got 1.5"):
        semi_supervised(y, CLASSES, 1.5)


def test_fit_runs_the_semi_supervised_e_step_and_pi_is_its_mean():
    x = _data(128, 4)
    y = np.full(128, -1)
    y[:12] = np.arange(12) % 3
    model = emflow.GenMM(SMALL_FLOW, num_components=3)
    config = train.TrainConfig(epochs=2, batch_size=32, em_every=1, warmup_steps=5, num_samples=0)
    result = train.fit(model, config, None, x, None, progress=False, log=lambda s: None,
                       e_step_of_round=lambda r: semi_supervised(y, np.arange(3)))
    assert [r["e_step"] for r in result.history] == ["semi-supervised (12 of 128 labelled)"] * 2
    np.testing.assert_allclose(result.history[0]["pi"], result.history[0]["mean_gamma"], rtol=1e-6)


def test_bad_labels_are_refused_with_what_came():
    with pytest.raises(ValueError, match=r"labels must be class indices >= 0 or -1 \(unlabelled\), got -2"):
        check_labels(np.array([0, -2]), np.arange(2))
    with pytest.raises(TypeError, match="y must be a 1-D array of integers, got shape \\(2,\\), dtype <U1"):
        check_labels(np.array(["a", "b"]), np.arange(2))
    with pytest.raises(ValueError, match=r"classes \[2\] have labelled examples but no component"):
        check_labels(np.array([0, 2, -1]), np.arange(2))
    step = semi_supervised(np.zeros(5, int), np.arange(4))
    data = e_steps.RoundData(MODEL, _params(), jnp.zeros((40, 2)), train.identity_preprocess, jax.random.PRNGKey(0), 8)
    with pytest.raises(ValueError, match="5 labels for 40 training examples"):
        step.init(data)
