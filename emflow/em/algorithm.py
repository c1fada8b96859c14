"""EM learning for GenMM and LatMM (the paper's Algorithm 1) as pure functions: E-step, M-step loss, prior update."""
from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from emflow.mixtures import partition as partition_lib
from emflow.bijectors.base import Array

Tempering = Literal["joint", "likelihood"]


def e_step(model, old_params, x: Array) -> Array:
    """Responsibilities under ``Phi_old``: ``(B, *event_shape) -> (B, K)``, no gradient."""
    return posterior(model, old_params, x)[0]


def posterior(model, old_params, x: Array, beta=None, tempering: Tempering = "joint") -> tuple[Array, Array]:
    """``(gamma: (B, K), log p(x; Phi_old): (B,))`` from one evaluation of ``Phi_old``, no gradient.

    ``gamma`` is exact, or tempered with ``beta`` (``tempered_responsibilities``; may be traced);
    ``log p(x)`` is always the exact one.
    """
    if beta is not None:
        check_beta(beta, "posterior")
    joint = jax.lax.stop_gradient(model.component_log_prob(old_params, x))
    log_px = jax.nn.logsumexp(joint, axis=1)
    if beta is None:
        return jnp.exp(joint - log_px[:, None]), log_px
    return tempered_responsibilities(joint, jax.lax.stop_gradient(old_params["log_pi"]), beta, tempering), log_px


def tempered_responsibilities(joint: Array, log_pi: Array, beta, tempering: Tempering = "joint") -> Array:
    """Tempered posteriors from ``joint = log pi_k + log p_k(x): (B, K)``, ``log_pi: (K,)``.

    ``"joint"`` (deterministic annealing, Ueda and Nakano 1998): ``gamma_k ∝ (pi_k p_k(x))^beta``.
    ``"likelihood"`` (the paper's code, with ``beta = 1/D``): ``gamma_k ∝ pi_k p_k(x)^beta``.
    ``beta = 1`` is the exact posterior in both. ``beta`` may be traced (a schedule).
    """
    check_beta(beta, "tempered_responsibilities")
    if jnp.ndim(joint) != 2 or tuple(jnp.shape(log_pi)) != (jnp.shape(joint)[1],):
        raise ValueError(f"tempered_responsibilities: expected joint (B, K) and log_pi (K,), got shapes "
                         f"{tuple(jnp.shape(joint))} and {tuple(jnp.shape(log_pi))}")
    if tempering == "joint":
        tempered = beta * joint
    elif tempering == "likelihood":
        tempered = log_pi[None, :] + beta * (joint - log_pi[None, :])
    else:
        raise ValueError(f"tempered_responsibilities: tempering must be 'joint' or 'likelihood', got {tempering!r}")
    # exp(t - logsumexp(t)), as ``posterior`` computes it: beta = 1 gives its numbers bit for bit
    return jnp.exp(tempered - jax.nn.logsumexp(tempered, axis=1, keepdims=True))


def check_beta(beta: float, where: str = "tempered_e_step") -> None:
    """Refuse an inverse temperature outside (0, 1] (a concrete number; traced ones are not checked)."""
    if isinstance(beta, (int, float, np.integer, np.floating)) and not 0.0 < beta <= 1.0:
        raise ValueError(f"{where}: beta must lie in (0, 1], got {beta!r}")


def tempered_e_step(model, old_params, x: Array, beta, tempering: Tempering = "joint") -> Array:
    """Tempered responsibilities under ``Phi_old`` (``tempered_responsibilities``): ``(B, *event_shape) -> (B, K)``."""
    check_beta(beta)
    return posterior(model, old_params, x, beta, tempering)[0]


def partition_e_step(model, old_params, centroids: Array, x: Array) -> Array:
    """Hard responsibilities of a warm start: one-hot of the nearest k-means centroid, ``(B, K)``.

    ``centroids: (K, F)`` of the partition ``model.init_with_partition`` returned; the
    features are ``model.partition_features(old_params, x)`` (pixels for GenMM, top-level
    latents under Phi_old for LatMM). Generator k then first learns its own part.
    """
    features = jax.lax.stop_gradient(model.partition_features(old_params, x))
    if tuple(jnp.shape(centroids)) != (model.num_components, features.shape[1]):
        raise ValueError(f"partition_e_step: centroids must have shape (K, F) = {(model.num_components, features.shape[1])} "
                         f"(F: the width of model.partition_features), got {tuple(jnp.shape(centroids))}")
    labels = partition_lib.nearest(centroids, features)
    return jax.nn.one_hot(labels, model.num_components, dtype=jnp.float32)


def expected_complete_log_likelihood(model, params, x: Array, gamma: Array) -> Array:
    """``Q(Phi, Phi_old) / n = mean_i sum_k gamma_ik (log pi_k + log p_k(x_i))`` (eq. 14 / 25), a scalar.

    Terms with ``gamma_ik = 0`` contribute exactly 0, also where ``pi_k = 0``.
    """
    want = (jnp.shape(x)[0], model.num_components)
    if tuple(jnp.shape(gamma)) != want:
        raise ValueError(f"expected_complete_log_likelihood: gamma must have shape (batch, K) = {want}, "
                         f"got {tuple(jnp.shape(gamma))}")
    params = {**params, "log_pi": jax.lax.stop_gradient(params["log_pi"])}
    joint = model.component_log_prob(params, x)
    terms = jnp.where(gamma > 0, gamma * joint, 0.0)
    return jnp.mean(jnp.sum(terms, axis=1))


def m_step_loss(model, params, x: Array, gamma: Array) -> Array:
    """The M-step objective to minimise: ``-Q(Phi, Phi_old)/n + model.regularizer(params)`` (eqs. 14, 26, 27)."""
    if gamma.shape != (x.shape[0], model.num_components):
        raise ValueError(
            f"m_step_loss: gamma must have shape (batch, K) = {(x.shape[0], model.num_components)}, got {gamma.shape}"
        )
    return -expected_complete_log_likelihood(model, params, x, gamma) + model.regularizer(params)


def lower_bound(model, params, old_params, x: Array) -> Array:
    """The EM lower bound ``B(Phi) = Q(Phi, Phi_old)/n - mean_i sum_k gamma_ik log gamma_ik <= mean log p(x)``."""
    log_gamma = jax.nn.log_softmax(model.component_log_prob(old_params, x), axis=1)
    gamma = jnp.exp(log_gamma)
    entropy = -jnp.mean(jnp.sum(jnp.where(gamma > 0, gamma * log_gamma, 0.0), axis=1))
    return expected_complete_log_likelihood(model, params, x, gamma) + entropy


def update_prior(gamma_sum: Array, count) -> Array:
    """``log pi_k = log(sum_i gamma_ik / n)`` (eq. 16) from responsibilities summed over ``count`` examples: ``(K,)``."""
    if jnp.ndim(gamma_sum) != 1:
        raise ValueError(f"update_prior: gamma_sum must have shape (K,), got {tuple(jnp.shape(gamma_sum))}")
    if isinstance(count, (int, float, np.integer, np.floating)) and not count > 0:  # a traced count is not checked
        raise ValueError(f"update_prior: count must be > 0 (the number of examples summed), got {count!r}")
    return jnp.log(gamma_sum) - jnp.log(count)


def with_log_pi(params: dict, log_pi: Array) -> dict:
    """``params`` with new mixture weights (``log_pi`` of the shape of ``params["log_pi"]``, ``(K,)``)."""
    if tuple(jnp.shape(log_pi)) != tuple(jnp.shape(params["log_pi"])):
        raise ValueError(f"with_log_pi: log_pi must have the shape of params['log_pi'], "
                         f"{tuple(jnp.shape(params['log_pi']))}, got {tuple(jnp.shape(log_pi))}")
    return {**params, "log_pi": log_pi}
