"""Dead components and split re-seeding: the copy, the shared weight, the optimizer moments, the trainer's round update."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emflow import GenMM, LatMM, train
from emflow.bijectors.linear import CONSTANT_LEAVES
from emflow.contrib import reseed
from toy_em import SMALL_FLOW, init_flow, np_perturb, small_flow_batch, stack

K = 3
PI = np.array([0.6, 0.395, 0.005])


def _params(kind):
    base = init_flow(SMALL_FLOW, jax.random.PRNGKey(0), small_flow_batch())
    log_pi = jnp.log(jnp.asarray(PI, jnp.float32))
    if kind == "genmm":
        return GenMM(SMALL_FLOW, K), {"log_pi": log_pi,
                                      "flows": jax.tree.map(jnp.asarray, stack(*(np_perturb(base, k, 0.2) for k in range(K))))}
    rng = np.random.default_rng(0)
    return LatMM(SMALL_FLOW, K), {"log_pi": log_pi, "flow": jax.tree.map(jnp.asarray, base),
                                  "means": jnp.asarray(rng.standard_normal((K, 2)), jnp.float32),
                                  "log_stds": jnp.asarray(0.3 * rng.standard_normal((K, 2)), jnp.float32)}


@pytest.mark.parametrize("kind", ["genmm", "latmm"])
def test_a_reseeded_component_is_a_perturbed_copy_of_its_source_sharing_its_weight(kind):
    model, params = _params(kind)
    assert reseed.dead_components(params["log_pi"], 0.1 / K) == [2]
    new = reseed.split_component(model, params, source=0, target=2, key=jax.random.PRNGKey(1), scale=1e-3)
    pi = np.exp(np.asarray(new["log_pi"], np.float64))
    np.testing.assert_allclose(pi, [(0.6 + 0.005) / 2, 0.395, (0.6 + 0.005) / 2], rtol=1e-6)
    for field in reseed.component_fields(model):
        for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(new[field]), jax.tree.leaves(params[field])):
            a, b = np.asarray(a), np.asarray(b)
            np.testing.assert_array_equal(a[:2], b[:2])          # source and bystander untouched
            diff = np.abs(a[2] - b[0])
            if any(c in jax.tree_util.keystr(path) for c in CONSTANT_LEAVES):
                np.testing.assert_array_equal(diff, 0.0)           # fixed permutations and signs: exact copies
            else:
                assert diff.max() < 6e-3 and (diff.size < 4 or diff.max() > 0)
    # What is shared (LatMM's flow) is not touched.
    for other in set(params) - set(reseed.component_fields(model)) - {"log_pi"}:
        for a, b in zip(jax.tree.leaves(new[other]), jax.tree.leaves(params[other])):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="source and target must differ"):
        reseed.split_component(model, params, 1, 1, jax.random.PRNGKey(0))


def test_the_optimizer_moments_are_copied_and_reseed_dead_reseeds_after_the_round_update():
    model, params = _params("genmm")
    config = train.TrainConfig()
    optimizer = train.make_optimizer(config)
    state = train.init_state(model, optimizer, params)
    x = small_flow_batch()[:64]
    state, _ = jax.jit(lambda s, xb: train.train_step(model, optimizer, s, xb))(state, x)
    # Responsibilities summed over an epoch that left component 2 dead.
    state = state.replace(gamma_sum=jnp.asarray(PI * 1000, jnp.float32), gamma_count=jnp.float32(1000))
    logged, info = train.em_round_update(model, state, config.dead_fraction)
    assert info == {"dead": [2]}  # fit logs the dead components and re-seeds none
    np.testing.assert_allclose(np.exp(logged.params["log_pi"]), PI, rtol=1e-5)
    new, reseeded = reseed.reseed_dead(model, logged, jax.random.PRNGKey(3), config.dead_fraction / K)
    assert reseeded == [[2, 0]]
    np.testing.assert_allclose(np.exp(new.params["log_pi"]), [0.3025, 0.395, 0.3025], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(new.old_params)):
        np.testing.assert_array_equal(a, b)  # Phi_old <- Phi after the re-seed
    mu_new = new.opt_state.inner_states["train"].inner_state[2][0].mu["flows"]
    mu_old = state.opt_state.inner_states["train"].inner_state[2][0].mu["flows"]
    for a, b in zip(jax.tree.leaves(mu_new), jax.tree.leaves(mu_old)):
        np.testing.assert_array_equal(a[2], b[0])
        np.testing.assert_array_equal(a[:2], b[:2])
    # Every component dead: nothing to copy from.
    unchanged, reseeded = reseed.reseed_dead(model, logged, jax.random.PRNGKey(3), threshold=2.0)
    assert reseeded == [] and unchanged is logged
