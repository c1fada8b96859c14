"""The trainer state and the pure updates of Algorithm 1: the M-step, the EM round, the closing pi update."""
from __future__ import annotations

from typing import Any

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from emflow import checks
from emflow import em
from emflow.batches import map_batches
from emflow.interfaces import Mixture

Array = jax.Array


@flax.struct.dataclass
class EMState:
    """Everything a run needs to continue; a pytree."""

    params: Any           # Phi
    old_params: Any       # Phi_old
    opt_state: Any
    step: Array           # gradient steps taken, int32 scalar
    gamma_sum: Array      # (K,) responsibilities summed over this epoch
    gamma_count: Array    # examples in gamma_sum, float32 scalar
    nll_sum: Array        # -log p(x; Phi_old) summed over this epoch (nats), float32 scalar
    nonfinite: Array      # a non-finite loss or gradient was met (that step was not applied)


def check_state(where: str, state) -> None:
    """An ``EMState``, or a ``TypeError`` naming ``where``."""
    checks.instance(where, "state", state, EMState, "an emflow.train.EMState (init_state(...))")


def init_state(model, optimizer: optax.GradientTransformation, params) -> EMState:
    """Algorithm 1, line 6: Phi_old <- Phi.

    Phi_old is a copy of Phi, with buffers of its own, so that a jitted step may donate the
    whole state (``donate_argnums``; a buffer cannot be donated twice in one call). Phi is
    ``params`` itself: a step that donates the state consumes those arrays.
    """
    checks.transformation("init_state", optimizer)
    if isinstance(model, Mixture):
        checks.params_fit("init_state", model, params)
    zero = lambda: jnp.zeros((), jnp.float32)  # a new array each time: no two leaves share a buffer
    k = model.num_components
    return EMState(
        params=params, old_params=jax.tree.map(jnp.copy, params), opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        gamma_sum=jnp.zeros((k,), jnp.float32), gamma_count=zero(), nll_sum=zero(),
        nonfinite=jnp.zeros((), bool),
    )


def train_step(model, optimizer, state: EMState, x: Array, posterior=None) -> tuple[EMState, dict]:
    """One EM iteration on a batch ``x: (B, *event_shape)`` (Algorithm 1, lines 9-13).

    ``posterior``: ``(gamma: (B, K), log p(x; Phi_old): (B,))`` of this batch when
    already known (the round's ``EStep.update``); else the exact one, computed here from
    ``state.old_params``.
    A non-finite loss or gradient leaves Phi and the optimizer untouched and sets ``state.nonfinite``.
    """
    gamma, old_log_px = em.posterior(model, state.old_params, x) if posterior is None else posterior
    return _gradient_step(optimizer, state, lambda p: em.m_step_loss(model, p, x, gamma), gamma, old_log_px)


def _gradient_step(optimizer, state: EMState, loss_fn, gamma: Array, old_log_px: Array) -> tuple[EMState, dict]:
    """One Adam step on ``loss_fn(params)``, skipped when non-finite; the epoch's accumulators from ``gamma: (B, K)``."""
    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    finite = jnp.isfinite(loss) & jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
    state = state.replace(
        params=keep(params, state.params), opt_state=keep(opt_state, state.opt_state), step=state.step + 1,
        gamma_sum=state.gamma_sum + jnp.sum(gamma, axis=0), gamma_count=state.gamma_count + gamma.shape[0],
        nll_sum=state.nll_sum - jnp.sum(old_log_px), nonfinite=state.nonfinite | ~finite,
    )
    return state, {"loss": loss, "nll": -jnp.mean(old_log_px)}


def em_update(state: EMState) -> EMState:
    """Algorithm 1, lines 16-17: pi <- mean gamma over the epoch; Phi_old <- Phi (a copy, as in ``init_state``)."""
    check_state("em_update", state)
    params = em.with_log_pi(state.params, em.update_prior(state.gamma_sum, state.gamma_count))
    return state.replace(params=params, old_params=jax.tree.map(jnp.copy, params))


def dead_components(log_pi: Array, threshold: float) -> list[int]:
    """Components with ``pi_k < threshold``, in index order."""
    pi = np.exp(np.asarray(log_pi, np.float64))
    return [int(j) for j in np.flatnonzero(pi < threshold)]


def em_round_update(model, state: EMState, dead_fraction: float) -> tuple[EMState, dict]:
    """``em_update`` plus the dead-component check: ``(state, {"dead": [...]})``, a component with
    ``pi_k < dead_fraction / K`` dead (``emflow.contrib.reseed`` re-seeds them in a user's own loop)."""
    checks.number("em_round_update", "dead_fraction", dead_fraction, 0.0)
    state = em_update(state)
    return state, {"dead": dead_components(state.params["log_pi"], dead_fraction / model.num_components)}


def closing_prior_update(model, state: EMState, posterior_fn, train_data: Array, key: Array,
                         batch_size: int) -> tuple[EMState, dict]:
    """One E-step with the current Phi over all of ``train_data``, then ``pi <- mean gamma``; Phi_old <- Phi.

    ``posterior_fn(params, raw_batch, key) -> (gamma: (B, K), log p(x): (B,))`` gives exact
    responsibilities. Returns the new state and ``{"pi_before", "pi_after",
    "train_log_px_gain_nats"}``: the gain in mean training log-likelihood under this pass's noise
    (>= 0: for fixed Phi, EM's update of pi cannot lower the likelihood).
    """
    check_state("closing_prior_update", state)
    checks.integer("closing_prior_update", "batch_size", batch_size, 1)
    gamma, log_px = map_batches(posterior_fn, state.params, train_data, key, batch_size)
    k = model.num_components
    chex.assert_shape(gamma, (train_data.shape[0], k))
    old_log_pi = state.params["log_pi"]
    log_pi = em.update_prior(jnp.sum(gamma, axis=0), gamma.shape[0])
    # log p(x) under the new pi, from the same pass: log sum_k gamma_ik p(x_i) pi_k' / pi_k
    new_log_px = log_px + jax.nn.logsumexp(jnp.log(gamma) + (log_pi - old_log_pi)[None, :], axis=1)
    params = em.with_log_pi(state.params, log_pi)
    state = state.replace(params=params, old_params=jax.tree.map(jnp.copy, params))
    return state, {"pi_before": [float(v) for v in np.exp(np.asarray(old_log_pi))],
                   "pi_after": [float(v) for v in np.exp(np.asarray(log_pi))],
                   "train_log_px_gain_nats": float(jnp.mean(new_log_px - log_px))}


def start_epoch(state: EMState) -> EMState:
    """Clear the per-epoch accumulators (each a new array, so that the state can be donated)."""
    check_state("start_epoch", state)
    return state.replace(gamma_sum=jnp.zeros_like(state.gamma_sum), gamma_count=jnp.zeros_like(state.gamma_count),
                         nll_sum=jnp.zeros_like(state.nll_sum))


class NonFiniteLossError(FloatingPointError):
    """Training met a NaN or Inf loss or gradient."""


def raise_if_nonfinite(state: EMState, epoch: int, index: int) -> None:
    """Raises ``NonFiniteLossError`` naming the epoch and step if a step of ``state`` met a non-finite loss or gradient."""
    if bool(state.nonfinite):
        raise NonFiniteLossError(
            f"non-finite loss or gradient in epoch {epoch + 1} (by step {index + 1} of the epoch, global step "
            f"{int(state.step)}); that update was skipped and training stopped. The last checkpoint is the "
            "last good state: lower the learning rate or check the data, then --resume."
        )
