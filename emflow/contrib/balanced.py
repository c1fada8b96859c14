"""Balanced variants: equal-size warm-start parts, and exact responsibilities reweighted to equal totals.

    schedule = balanced.schedule(train.e_step_schedule(config, num_dims, True), parts=True, e_step=True)
    fit(..., e_step_of_round=schedule)

``balanced_warm_start()`` gives the warm start's hard parts equal sizes (``balanced_assignment``:
each example to its nearest centroid up to one offset per part); ``balanced()`` reweights the exact
responsibilities of every round so that each component's total is N/K (a component better than the
others on every example by the same margin gains nothing from it). Measured on MNIST (the research
log, ``experiments.ablations.init_variants``): neither kept GenMM's generators alive, so they are
not in the core.
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

from emflow import checks
from emflow.batches import map_batches
from emflow.bijectors.base import Array
from emflow.em.e_steps import EStep, RoundData, lookup, table, without_likelihood
from emflow.mixtures import partition as partition_lib


def balanced_responsibilities(joint: Array, num_iterations: int = 100) -> Array:
    """Responsibilities with equal totals: ``gamma_ik ∝ w_k pi_k p_k(x_i)``, ``sum_i gamma_ik = N/K``.

    ``joint = log pi_k + log p_k(x_i): (N, K)``. The weights ``w`` (Sinkhorn iterations in log
    space) are those that would make every component's posterior mass equal: a component
    that is better than the others on every example by the same margin gains nothing from
    it, so each component gets the examples it models *relatively* best.
    """
    if jnp.ndim(joint) != 2:
        raise ValueError(f"balanced_responsibilities: joint must have shape (N, K), got {jnp.shape(joint)}")
    checks.integer("balanced_responsibilities", "num_iterations", num_iterations, 1)
    n, k = joint.shape
    log_col = jnp.log(n / k)

    def sinkhorn(_, g):
        log_gamma = jax.nn.log_softmax(joint + g[None, :], axis=1)
        return g + log_col - jax.nn.logsumexp(log_gamma, axis=0)

    g = jax.lax.fori_loop(0, num_iterations, sinkhorn, jnp.zeros((k,), joint.dtype))
    return jax.nn.softmax(joint + g[None, :], axis=1)



def balanced_assignment(d2: Array, num_stages: int = 24, iterations_per_stage: int = 40) -> Array:
    """Labels ``(N,)`` for costs ``d2: (N, K)`` with (nearly) equal part sizes ``N/K``: a balanced partition.

    Entropic optimal transport of the uniform distribution over the ``N`` rows onto ``K``
    equal parts: Sinkhorn iterations in log space on the costs scaled by their mean, with
    the temperature lowered geometrically from 1 to 1e-5 over ``num_stages`` stages
    (epsilon scaling, each stage warm-started from the last). Each row goes to its part of
    largest transport mass, ``argmax_k (g_k - d2_ik)``: the nearest-centroid partition with
    a per-part offset ``g``, moved at the parts' borders just enough to even the sizes out.
    """
    if jnp.ndim(d2) != 2:
        raise ValueError(f"balanced_assignment: d2 must have shape (N, K), got {jnp.shape(d2)}")
    checks.integer("balanced_assignment", "num_stages", num_stages, 1)
    checks.integer("balanced_assignment", "iterations_per_stage", iterations_per_stage, 1)
    n, k = d2.shape
    cost = d2 / jnp.mean(d2)
    log_row, log_col = -jnp.log(n) * jnp.ones((n,)), jnp.full((k,), -jnp.log(k))

    def stage(s, g):  # g: the column potential in cost units
        t = 10.0 ** (-5.0 * s / (num_stages - 1))

        def sinkhorn(_, g):
            f = t * log_row - t * jax.nn.logsumexp((g[None, :] - cost) / t, axis=1)
            return t * log_col - t * jax.nn.logsumexp((f[:, None] - cost) / t, axis=0)

        return jax.lax.fori_loop(0, iterations_per_stage, sinkhorn, g)

    g = jax.lax.fori_loop(0, num_stages, stage, jnp.zeros((k,)))
    return jnp.argmax(g[None, :] - cost, axis=1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("model", "preprocess"))
def _joint_on_raw(old_params, raw, key, *, model, preprocess):
    return jax.lax.stop_gradient(model.component_log_prob(old_params, preprocess(key, raw)))


@functools.partial(jax.jit, static_argnames=("model", "preprocess"))
def _distances_on_raw(old_params, raw, key, centroids, *, model, preprocess):
    return partition_lib.squared_distances(model.partition_features(old_params, preprocess(key, raw)), centroids)


def balanced(num_iterations: int = 100) -> EStep:
    """Exact responsibilities reweighted to equal totals N/K (``balanced_responsibilities``), from every example."""
    checks.integer("balanced", "num_iterations", num_iterations, 1)
    def init(data: RoundData) -> dict:
        fn = functools.partial(_joint_on_raw, model=data.model, preprocess=data.preprocess)
        joint = map_batches(fn, data.old_params, data.raw, data.key, data.batch_size)
        return table(balanced_responsibilities(joint, num_iterations), jax.nn.logsumexp(joint, axis=1))

    return EStep("balanced (equal totals)", init, lookup)


def balanced_warm_start() -> EStep:
    """The warm start on equal-size parts: one-hot of ``balanced_assignment`` to the partition's centroids."""
    def init(data: RoundData) -> dict:
        if data.centroids is None:
            raise ValueError("balanced.balanced_warm_start: the model was initialised without a partition "
                             "(RoundData.centroids is None)")
        fn = functools.partial(_distances_on_raw, model=data.model, preprocess=data.preprocess)
        d2 = map_batches(lambda p, raw, k: fn(p, raw, k, data.centroids), data.old_params, data.raw, data.key,
                         data.batch_size)
        labels = jax.jit(balanced_assignment)(d2)
        return without_likelihood(jax.nn.one_hot(labels, data.model.num_components, dtype=jnp.float32))

    return EStep("balanced warm start", init, lookup)


def schedule(then: Callable[[int], EStep], parts: bool = True, e_step: bool = False) -> Callable[[int], EStep]:
    """``then`` with its warm-start rounds on balanced parts (``parts``) and its exact rounds balanced (``e_step``)."""
    checks.callable_("balanced.schedule", "then", then, "a schedule em_round -> EStep")
    def pick(r: int) -> EStep:
        step = then(r)
        if parts and step.name == "warm start":
            return balanced_warm_start()
        if e_step and step.name == "beta 1 (joint)":
            return balanced()
        return step

    return pick
