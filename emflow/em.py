"""EM learning for GenMM and LatMM (the paper's Algorithm 1), as pure functions.

Two parameter sets: ``params`` (Phi, moved by gradient M-steps) and
``old_params`` (Phi_old, fixed for an EM round of ``t_EM`` epochs).

    gamma = e_step(model, old_params, x)                        # eq. 13 / 24, from Phi_old
    loss  = m_step_loss(model, params, x, gamma)                # -Q(Phi, Phi_old)/n + regularizer
    log_pi = update_prior(gamma_sum, count)                     # eq. 16, every t_EM epochs
    old_params = params (with the new log_pi)                   # Phi_old <- Phi

Mixture weights enter the M-step loss as constants (``stop_gradient``): they are
set only by ``update_prior``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from emflow.bijectors.base import Array


def e_step(model, old_params, x: Array) -> Array:
    """Responsibilities under ``Phi_old``: ``(B, *event_shape) -> (B, K)``, no gradient."""
    return posterior(model, old_params, x)[0]


def posterior(model, old_params, x: Array) -> tuple[Array, Array]:
    """``(gamma: (B, K), log p(x; Phi_old): (B,))`` from one evaluation of ``Phi_old``, no gradient."""
    joint = jax.lax.stop_gradient(model.component_log_prob(old_params, x))
    log_px = jax.nn.logsumexp(joint, axis=1)
    return jnp.exp(joint - log_px[:, None]), log_px


def expected_complete_log_likelihood(model, params, x: Array, gamma: Array) -> Array:
    """``Q(Phi, Phi_old) / n = mean_i sum_k gamma_ik (log pi_k + log p_k(x_i))`` (eq. 14 / 25), a scalar.

    Terms with ``gamma_ik = 0`` contribute exactly 0, also where ``pi_k = 0``.
    """
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
    return jnp.log(gamma_sum) - jnp.log(count)


def with_log_pi(params: dict, log_pi: Array) -> dict:
    """``params`` with new mixture weights."""
    return {**params, "log_pi": log_pi}
