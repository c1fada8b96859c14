"""A resampled M-step: every GenMM generator learns from a batch of its own, drawn from its responsibilities.

The M-step objective (eq. 14) splits over the generators. With ``N_k = sum_i gamma_ik``,

    Q(Phi, Phi_old) / n = sum_k (N_k / n) E_{i ~ gamma_.k / N_k} [log pi_k + log p_k(x_i)].

The usual estimate evaluates every generator on one shared batch and weights example i by
``gamma_ik``: a generator with weight ``pi_k`` then learns from about ``pi_k B`` of the ``B``
examples, so its gradient is noisier than that of a generator with more data, and Adam
(which removes the gradient's scale, not its noise) moves it less far per step. Here each
generator gets ``B`` examples drawn with replacement from ``gamma_.k / N_k``: the same
objective in expectation (an unbiased estimate of it and of its gradient), with the same
number of examples behind every generator's step, whatever its weight. The compute is that
of the shared batch: a GenMM evaluates all K generators on B examples either way. (Measured
in the README, "Two more mechanisms against the drift": on MNIST it slows the drift towards
one generator from identical copies, but does not stop it.)

    idx = draw_component_batches(key, gamma, steps, batch)      # (steps, K, B) training indices
    loss = m_step_loss(model, params, x[idx[s]], component_weights(gamma))

It needs every training example's responsibilities (``TrainConfig(e_step="cached")``) and a
model whose components have parameters of their own (``GenMM``; a LatMM's components share
one flow, which would run K times over).
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

Array = jax.Array


def component_weights(gamma: Array) -> Array:
    """``N_k / n``, each component's share of the responsibilities: ``(n, K) -> (K,)``."""
    return jnp.mean(gamma, axis=0)


def draw_component_batches(key: Array, gamma: Array, num_steps: int, batch_size: int) -> Array:
    """Training indices ``(num_steps, K, batch_size)``: row ``[s, k]`` is drawn i.i.d. from ``gamma[:, k] / N_k``.

    ``gamma: (n, K)`` non-negative responsibilities (rows need not sum to one). Inverse-CDF
    sampling on the cumulative sums of each column. A column with no mass (a dead component,
    ``N_k = 0``) draws uniformly from all examples; ``component_weights`` gives it weight 0,
    so those examples do not enter its gradient.
    """
    n, k = gamma.shape
    if num_steps < 1 or batch_size < 1:
        raise ValueError(f"draw_component_batches: num_steps and batch_size must be >= 1, got {num_steps}, {batch_size}")
    total = jnp.sum(gamma, axis=0)                                     # (K,)
    live = total > 0
    cdf = jnp.cumsum(jnp.where(live[None, :], gamma, 1.0), axis=0)     # (n, K)
    cdf = cdf / cdf[-1:, :]
    u = jax.random.uniform(key, (num_steps, k, batch_size))
    idx = jax.vmap(lambda c, v: jnp.searchsorted(c, v, side="right"), in_axes=(1, 1), out_axes=1)(cdf, u)
    # cdf[-1, k] == 1 exactly and u < 1, so every index is < n; flat stretches of the cdf
    # (gamma_ik = 0) are never the first entry above u, so zero-mass examples are never drawn.
    idx = idx.astype(jnp.int32)
    chex.assert_shape(idx, (num_steps, k, batch_size))
    return idx


def m_step_loss(model, params, xs: Array, weights: Array) -> Array:
    """``-sum_k w_k (log pi_k + mean_b log p_k(xs[k, b])) + model.regularizer(params)``, a scalar.

    ``xs: (K, B, *event_shape)``, generator k's own batch; ``weights: (K,)`` = ``N_k / n``
    (``component_weights``). In expectation over ``draw_component_batches`` this equals
    ``em.m_step_loss`` on the whole training set. ``log_pi`` gets no gradient (EM sets it).
    """
    k = model.num_components
    if xs.shape[:1] != (k,) or xs.shape[2:] != tuple(model.event_shape):
        raise ValueError(f"resampled m_step_loss: xs must have shape (K, B, *event_shape) = "
                         f"({k}, B, {', '.join(map(str, model.event_shape))}), got {xs.shape}")
    chex.assert_shape(weights, (k,))
    log_pi = jax.lax.stop_gradient(params["log_pi"])
    log_p = model.generator_log_prob_per_batch(params, xs)             # (K, B)
    terms = jnp.where(weights > 0, weights * (log_pi + jnp.mean(log_p, axis=1)), 0.0)
    return -jnp.sum(terms) + model.regularizer(params)
