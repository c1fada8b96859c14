"""train.averaging: a moving average of the parameters in the optimizer's state, read back from a run's state."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import emflow
from emflow import train
from emflow.train.averaging import AverageState, averaged_params, parameter_average


def test_the_average_is_the_exponential_moving_average_of_the_parameters_after_each_step():
    """After T steps the average is d^T p_0 + (1 - d) sum_t d^(T - t) p_t (p_t: the parameters after step t),
    the closed form of the recursion, checked in float64 numpy; the updates are the wrapped optimizer's."""
    decay, lr, steps = 0.9, 0.1, 12
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(steps, 3)).astype(np.float32)
    params = {"w": jnp.asarray(rng.normal(size=3), jnp.float32)}
    averaging = parameter_average(optax.sgd(lr), decay)
    state = averaging.init(params)
    trajectory = [np.asarray(params["w"], np.float64)]
    for g in grads:
        updates, state = averaging.update({"w": jnp.asarray(g)}, state, params)
        np.testing.assert_allclose(updates["w"], -lr * g, rtol=1e-6)
        params = optax.apply_updates(params, updates)
        trajectory.append(np.asarray(params["w"], np.float64))
    weights = np.array([decay ** steps] + [(1 - decay) * decay ** (steps - t) for t in range(1, steps + 1)])
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(state.average["w"], weights @ np.array(trajectory), rtol=1e-5, atol=1e-6)


def _toy(n=256, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-2, 0.5, (n // 4, 2)), rng.normal(2, 0.5, (n - n // 4, 2))]).astype(np.float32)


def test_averaged_params_average_the_trained_leaves_and_keep_log_pi_and_the_lu_constants():
    """In a GenMM run, every leaf the optimizer trains comes from the average; ``log_pi`` (EM's) and an LU
    layer's permutation and signs (held by the trainer; AdamW's decay would move their average) are the
    run's current values."""
    model = emflow.GenMM(emflow.VectorFlow(2, num_steps=2, hidden=8), num_components=2)
    config = train.TrainConfig(epochs=2, batch_size=32, em_every=1, warmup_steps=5, seed=1, learning_rate=1e-2)
    result = train.fit(model, config, None, _toy(), progress=False, log=lambda s: None,
                       optimizer=parameter_average(optax.adamw(1e-2, weight_decay=1.0), 0.8))
    state = result.state
    averaged = averaged_params(state)
    assert jax.tree.structure(averaged) == jax.tree.structure(state.params)
    np.testing.assert_array_equal(averaged["log_pi"], state.params["log_pi"])
    assert not np.allclose(state.params["log_pi"], np.log(0.5))        # EM moved it: the check is not vacuous
    linear, averaged_linear = state.params["flows"]["steps"]["linear"], averaged["flows"]["steps"]["linear"]
    for name in ("perm", "sign_s"):
        np.testing.assert_array_equal(averaged_linear[name], linear[name])
    kept = [s for s in jax.tree.leaves(state.opt_state, is_leaf=lambda s: isinstance(s, AverageState))
            if isinstance(s, AverageState)][0]
    np.testing.assert_array_equal(averaged_linear["log_s"], kept.average["flows"]["steps"]["linear"]["log_s"])
    assert not np.allclose(averaged_linear["log_s"], linear["log_s"])  # the average is not the last step


def test_fit_to_data_scores_the_average_and_trains_as_without_it():
    """The same run with and without ``average_decay``: the same training NLLs (averaging only reads the
    parameters), different validation NLLs, and each returns the parameters whose validation NLL is its best."""
    x = _toy(400, seed=2)
    model = emflow.GenMM(emflow.VectorFlow(2, num_steps=2, hidden=8), 1)
    config = train.config_for_data(360, epochs=6, batch_size=32, seed=1, learning_rate=2e-2)
    runs = {decay: train.fit_to_data(model, x, config=config, patience=6, seed=1, average_decay=decay,
                                     progress=False, log=lambda s: None) for decay in (None, 0.9)}
    _, x_val = train.validation_split(x, 0.1, 1)
    for result in runs.values():
        nlls = [r["validation_nll"] for r in result.history]
        np.testing.assert_allclose(-np.mean(model.log_prob(result.state.params, x_val)), min(nlls), rtol=1e-5)
    train_nll = {d: [r["train_nll_nats_per_dim"] for r in result.history] for d, result in runs.items()}
    np.testing.assert_allclose(train_nll[0.9], train_nll[None], rtol=1e-5)
    assert not np.allclose([r["validation_nll"] for r in runs[0.9].history],
                           [r["validation_nll"] for r in runs[None].history], rtol=1e-4)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, 2, True, "0.9"])
def test_a_decay_outside_zero_one_is_refused(decay):
    with pytest.raises(ValueError, match=r"parameter_average: decay must be a number in \(0, 1\), got"):
        parameter_average(optax.adam(1e-3), decay)


def test_a_run_without_an_average_has_none_to_read():
    model = emflow.GenMM(emflow.VectorFlow(2, num_steps=1, hidden=4), 1)
    state = train.init_state(model, train.make_optimizer(train.TrainConfig()), model.init(jax.random.PRNGKey(0),
                                                                                          _toy(64)))
    with pytest.raises(ValueError, match=r"averaged_params: expected one parameter_average .* found 0"):
        averaged_params(state)


def test_an_update_without_params_is_refused():
    averaging = parameter_average(optax.sgd(0.1), 0.9)
    params = {"w": jnp.zeros(2)}
    with pytest.raises(ValueError, match=r"parameter_average: update needs params"):
        averaging.update({"w": jnp.ones(2)}, averaging.init(params))


def test_fit_to_data_averages_over_about_one_epoch_and_at_most_about_100_steps():
    assert train.average_decay_for_data(6) == pytest.approx(1 - 1 / 6)      # breast_cancer: 409 examples, batch 64
    assert train.average_decay_for_data(62) == pytest.approx(1 - 1 / 62)    # Satimage: 3,992
    assert train.average_decay_for_data(225) == 0.99                        # Letter: 14,400; capped
    assert train.average_decay_for_data(1) is None                          # one step an epoch: nothing to average


@pytest.mark.parametrize("decay", [1.0, 0.0, "auto", True])
def test_fit_to_data_refuses_an_average_decay_it_cannot_use(decay):
    model = emflow.GenMM(emflow.VectorFlow(2, num_steps=1, hidden=4), 1)
    with pytest.raises(ValueError, match=r"fit_to_data: average_decay must be 'epoch', None or a number in \(0, 1\)"):
        train.fit_to_data(model, _toy(64), average_decay=decay, progress=False)
