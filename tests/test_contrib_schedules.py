"""emflow.contrib's E-steps and schedules: shared rounds, balanced parts and responsibilities, annealing.

Each against a closed form, and each run through ``fit`` unchanged (``e_step_of_round``).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from emflow import train
from emflow.contrib import annealing, balanced, shared_rounds
from emflow.em import e_steps
from emflow.mixtures import partition
from test_e_steps import MODEL, _data, _params, _round
from test_partition import _blobs
from test_train import MODEL as TOY_MODEL, _config, _toy


def test_uniform_and_balanced_responsibilities():
    """A shared round gives 1/K; the balanced E-step has equal column totals, rows that are
    distributions, and ignores a per-component offset (a component better everywhere by a margin)."""
    np.testing.assert_array_equal(shared_rounds.uniform_responsibilities(5, 4), np.full((5, 4), 0.25, np.float32))
    rng = np.random.default_rng(0)
    joint = jnp.asarray(rng.normal(size=(600, 3)) * 3.0 + np.array([0.0, 20.0, -5.0]), jnp.float32)
    gamma = np.asarray(balanced.balanced_responsibilities(joint))
    np.testing.assert_allclose(gamma.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(gamma.sum(axis=0), 200.0, rtol=1e-3)
    shifted = np.asarray(balanced.balanced_responsibilities(joint - jnp.array([0.0, 20.0, -5.0])))
    np.testing.assert_allclose(shifted, gamma, atol=1e-4)
    # the closed form: gamma_ik ∝ w_k exp(joint_ik) for one weight per component
    ratio = gamma / scipy.special.softmax(np.asarray(joint, np.float64), axis=1)
    w = ratio / ratio[:, :1]
    np.testing.assert_allclose(w, np.broadcast_to(w[0], w.shape), rtol=2e-3)

def test_balanced_assignment_evens_out_the_parts_and_keeps_balanced_ones():
    x, labels = _blobs(n_per=(400, 300, 200, 100))
    part = partition.kmeans(jax.random.PRNGKey(0), jnp.asarray(x), 4)
    d2 = partition.squared_distances(jnp.asarray(x), part.centroids)
    counts = np.asarray(partition.part_counts(jax.jit(balanced.balanced_assignment)(d2), 4))
    assert counts.sum() == 1000 and counts.max() - counts.min() <= 10, counts
    # Already equal, well-separated parts: the balanced assignment is the nearest centroid.
    x, _ = _blobs(n_per=(50, 50, 50, 50))
    part = partition.kmeans(jax.random.PRNGKey(0), jnp.asarray(x), 4)
    d2 = partition.squared_distances(jnp.asarray(x), part.centroids)
    np.testing.assert_array_equal(balanced.balanced_assignment(d2), partition.nearest(part.centroids, jnp.asarray(x)))


def test_the_e_step_objects_uniform_balanced_and_balanced_warm_start():
    raw, params = _data(), _params()
    labels = jnp.asarray(np.arange(40) % 3, jnp.int32)
    idx = jnp.array([3, 0, 7])
    data = _round(raw, params, labels)
    uniform = shared_rounds.uniform()
    gamma, log_px = uniform.update(uniform.init(data), MODEL, params, None, idx)
    np.testing.assert_allclose(gamma, np.full((3, 3), 1 / 3), rtol=1e-7)
    assert np.all(np.isnan(log_px)) and e_steps.cached(uniform) is uniform
    table = balanced.balanced().init(data)
    np.testing.assert_allclose(np.sum(table["gamma"], axis=0), [40 / 3] * 3, rtol=1e-4)
    np.testing.assert_allclose(np.sum(table["gamma"], axis=1), 1.0, rtol=1e-5)
    joint = np.asarray(MODEL.component_log_prob(params, jnp.asarray(raw)), np.float64)
    np.testing.assert_allclose(table["log_px"], scipy.special.logsumexp(joint, axis=1), rtol=1e-5)
    # The balanced warm start: parts of sizes 14, 13, 13 by the partition's centroids (identity features).
    x = jnp.asarray(raw)
    part = partition.kmeans(jax.random.PRNGKey(0), x, 3)
    warm = balanced.balanced_warm_start().init(data._replace(centroids=part.centroids))
    counts = np.sort(np.asarray(warm["gamma"]).sum(axis=0))
    assert counts.sum() == 40 and counts[-1] - counts[0] <= 1, counts
    with pytest.raises(ValueError, match="initialised without a partition"):
        balanced.balanced_warm_start().init(data)


def test_schedules_wrap_the_config_schedule():
    d, base = 784, train.e_step_schedule(_config(warm_start_rounds=1, e_step="cached"), 784, True)
    shared = shared_rounds.schedule(2, base)
    assert [shared(r).name for r in range(4)] == ["shared (1/K)"] * 2 + ["warm start", "beta 1 (joint)"]
    annealed = annealing.schedule(0.1, 2, base)
    assert [annealed(r).name for r in range(4)] == [
        "warm start", "beta 0.1 (joint)", f"beta {0.1 ** 0.5:.4g} (joint)", "beta 1 (joint)"]
    assert annealed(1).update is e_steps.lookup  # cached as the base's exact rounds are
    assert annealing.schedule(0.1, 2, base)(2).name == annealed(2).name  # a resumed run asks for round 2 first
    both = balanced.schedule(base, parts=True, e_step=True)
    assert [both(r).name for r in range(2)] == ["balanced warm start", "balanced (equal totals)"]
    per_batch = annealing.schedule(0.5, 1, train.e_step_schedule(_config(), d, False))
    assert per_batch(0).name == "beta 0.5 (joint)" and per_batch(0).update is not e_steps.lookup
    for bad, message in [(lambda: annealing.schedule(0.0, 2, base), r"beta must lie in \(0, 1\], got 0.0"),
                         (lambda: annealing.schedule(0.1, 0, base), "rounds must be an integer >= 1, got 0"),
                         (lambda: shared_rounds.schedule(1.5, base), "num_shared must be an integer >= 0, got 1.5")]:
        with pytest.raises(ValueError, match=message):
            bad()


def _fit(schedule, **kw):
    config = _config(epochs=2, em_every=1, e_step="cached", **kw)
    base = train.e_step_schedule(config, 2, True)
    return train.fit(TOY_MODEL, config, None, _toy(), _toy(128, seed=1), progress=False, log=lambda s: None,
                     e_step_of_round=schedule(base))


def test_fit_runs_the_contrib_schedules_unchanged():
    """A shared round (gamma = 1/K) leaves pi exactly uniform; the balanced warm start and E-step give
    a run whose responsibilities have equal totals."""
    shared = _fit(lambda base: shared_rounds.schedule(1, base))
    assert shared.history[0]["e_step"] == "shared (1/K)" and shared.history[1]["e_step"] == "warm start"
    np.testing.assert_allclose(shared.history[0]["pi"], [0.5, 0.5], atol=1e-6)
    both = _fit(lambda base: balanced.schedule(base, parts=True, e_step=True))
    assert [h["e_step"] for h in both.history] == ["balanced warm start", "balanced (equal totals)"]
    np.testing.assert_allclose(both.history[0]["pi"], [0.5, 0.5], atol=0.02)  # balanced parts of the toy
    np.testing.assert_allclose(both.history[1]["pi"], [0.5, 0.5], atol=1e-3)
