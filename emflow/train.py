"""The EM trainer: Algorithm 1 with a jitted step, data resident on the device, checkpoints.

    trainer state (EMState): Phi (params), Phi_old (old_params), optimizer state,
                             step, and the epoch's accumulated responsibilities

    every step:     gamma = E-step with Phi_old;  one Adam step on -Q(Phi, Phi_old)/n
    every epoch:    test NLL, metrics line, NLL plot, checkpoint
    every t_EM:     pi <- mean gamma of the epoch (eq. 16);  Phi_old <- Phi;  sample grids;
                    dead components logged (and re-seeded, if asked);  per-component report (labelled data)
    after the last epoch (``final_prior_update``): pi <- mean gamma under the final Phi

The E-step of a round (``round_e_step``): the first ``shared_rounds`` rounds give every
component every example (gamma = 1/K: each generator learns the whole data set); the
next ``warm_start_rounds`` rounds use the init partition's hard responsibilities (each
generator first learns its own k-means part); after them, exact responsibilities, or
tempered ones when ``tempering`` asks (deterministic annealing, or the paper code's 1/D),
or exact ones reweighted to equal totals (``balanced_e_step``). Reported likelihoods are
always the exact ``log p(x)``.

The data order of epoch ``e`` is ``permutation(fold_in(key_data, e))`` and the
noise of step ``s`` is ``fold_in(key_noise, s)``, both from the seed: a resumed
run sees the same batches and noise as an uninterrupted one and ends with the
same parameters.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import pathlib
import time
from typing import Any, Callable, Literal

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from emflow import diagnostics, distributed, em, plots, resampled_m_step, reseed, sharding
from emflow import partition as partition_lib
from emflow.checkpoint import (Checkpointer, ConfigMismatchError, CorruptCheckpointError, WorkdirWriteError,
                               config_differences, global_digest, to_json_config, version_record)

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; the defaults are the reference code's (see ``paper-notes.md``).

    Attributes:
      epochs: total epochs T.
      batch_size: examples per gradient step (the last incomplete batch of an epoch is dropped).
      em_every: t_EM, epochs between prior updates and Phi_old <- Phi.
      learning_rate, warmup_steps, min_learning_rate: Adam's schedule.
      schedule: ``"noam"`` (the reference code's inverse-square-root decay) or ``"cosine"``
        (warm-up, then a cosine decay to ``min_learning_rate`` at the last step).
      clip_value, clip_norm: gradient value clip, then global-norm clip.
      seed: the one seed every key is derived from.
      eval_batch_size: batch for test-set likelihoods.
      init_batch_size: examples for the data-dependent ActNorm initialisation.
      partition_size: the partition a mixture starts from is a k-means partition of this many
        training examples (a random subset; all of them if fewer), computed in batches of
        ``eval_batch_size`` (``init_params``). LatMM: after the flow's init, the K latent
        Gaussians are placed at a partition of these examples (of their top-level latents, or of
        their input in the model's ``partition_space``: ``place_latent_gaussians``); the init
        batch's own 512 latents gave a less class-pure partition (MNIST, K = 10: 0.508 against
        0.614 at the end of training). GenMM (init ``"partition"`` or ``"copies"``): k-means of
        these examples' input in its ``partition_space`` gives the centroids,
        and the init batch is split by them (``partition_centroids``). A value
        ``<= init_batch_size`` keeps the init batch's own partition (GenMM's README results from
        before the night of 2026-12-05 were measured that way).
      num_samples: samples in the grid drawn after each EM round (0: none).
      sample_temperature: latent temperature of those samples (Glow's convention: 0.7).
      train_eval_size: training examples (the first ones) whose NLL under the current
        Phi is reported each epoch, beside the running NLL under Phi_old.
      e_step: ``"per_batch"`` (Algorithm 1: Phi_old evaluated on every batch) or
        ``"cached"``: Phi_old is fixed for an EM round, so every training example's
        responsibilities are computed once per round (one forward pass over the
        data, with that round's own dequantization noise) and looked up by the steps.
      shared_rounds: EM rounds, from the first, in which every component learns every
        example (``gamma = 1/K``, ``em.uniform_e_step``), so that no generator starts the
        mixture having seen more data than another; 0 (the default) skips them.
      warm_start_rounds: EM rounds, after the shared ones, whose responsibilities are the
        init partition's (hard: one-hot of each example's nearest k-means centroid,
        ``em.partition_e_step``); 0 turns the warm start off. Ignored for a model
        initialised without a partition (``init_strategy="shared"``).
      balanced_parts: the warm start's parts are made equal in size (``partition.balanced_assignment``:
        nearest centroid with a per-part offset), so that every generator first learns as many
        examples as every other; False: each example's nearest centroid.
      balanced_e_step: after the shared and warm rounds, the exact responsibilities reweighted
        so that every component's total is N/K (``em.balanced_responsibilities``): each
        component learns the examples it models best *relative to the others*. Needs the
        cached E-step (the weights come from every training example); ``tempering`` must be "none".
      resampled_m_step: every generator's M-step batch is its own, B examples drawn from its
        responsibilities (``emflow.resampled_m_step``): the same objective in expectation, but
        a generator with a small weight no longer learns from fewer examples per step than
        one with a large weight. GenMM only; needs the cached E-step.
      tempering: the E-step after the warm start: ``"none"`` (exact, eq. 13 / 24),
        ``"annealed"`` (``gamma ∝ (pi_k p_k)^beta``, beta rising geometrically from
        ``anneal_beta0`` to 1 over ``anneal_rounds`` rounds, then exact), or ``"paper"``
        (the reference code's ``gamma ∝ pi_k p_k^(1/D)``, every round).
      dead_fraction: a component with ``pi_k < dead_fraction / K`` after an EM round is dead (logged).
      reseed_dead: re-seed every dead component by splitting the most populated one
        (``emflow.reseed``), with N(0, ``reseed_scale``^2) noise on the copy.
      final_prior_update: after the last epoch, one more E-step with the final Phi (exact
        responsibilities of every training example) and ``pi <- mean gamma`` (``closing_prior_update``):
        the conditional maximum of the training likelihood over pi for the final generators, so that the
        reported pi is the final model's share of the data rather than the last round's Phi_old's.
        It never lowers the training likelihood (an EM step in pi alone). False: Algorithm 1 as written.
        The checkpoint holds the updated state, so a run resumed to more epochs continues from it: still
        EM (one extra E-step and pi update), but not bit for bit the run that had those epochs from the start.
    """

    epochs: int = 10
    batch_size: int = 64
    em_every: int = 5
    learning_rate: float = 1e-3
    warmup_steps: int = 1000
    min_learning_rate: float = 1e-4
    clip_value: float = 5.0
    clip_norm: float = 100.0
    seed: int = 0
    eval_batch_size: int = 500
    init_batch_size: int = 512
    partition_size: int = 10_000
    num_samples: int = 64
    sample_temperature: float = 0.7
    train_eval_size: int = 2000
    e_step: Literal["per_batch", "cached"] = "per_batch"
    schedule: Literal["noam", "cosine"] = "noam"
    shared_rounds: int = 0
    warm_start_rounds: int = 1
    balanced_parts: bool = False
    balanced_e_step: bool = False
    resampled_m_step: bool = False
    tempering: Literal["none", "annealed", "paper"] = "none"
    anneal_beta0: float = 0.1
    anneal_rounds: int = 3
    dead_fraction: float = 0.1
    reseed_dead: bool = False
    reseed_scale: float = 1e-3
    final_prior_update: bool = False

    def __post_init__(self):
        if self.e_step not in ("per_batch", "cached"):
            raise ValueError(f"TrainConfig: e_step must be 'per_batch' or 'cached', got {self.e_step!r}")
        if self.schedule not in ("noam", "cosine"):
            raise ValueError(f"TrainConfig: schedule must be 'noam' or 'cosine', got {self.schedule!r}")
        if self.tempering not in TEMPERINGS:
            raise ValueError(f"TrainConfig: tempering must be one of {TEMPERINGS}, got {self.tempering!r}")
        for name in ("epochs", "batch_size", "em_every", "eval_batch_size", "init_batch_size", "warmup_steps",
                     "anneal_rounds"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"TrainConfig: {name} must be an integer >= 1, got {value!r}")
        for name in ("shared_rounds", "warm_start_rounds", "partition_size"):
            value = getattr(self, name)
            if int(value) != value or value < 0:
                raise ValueError(f"TrainConfig: {name} must be an integer >= 0, got {value!r}")
        em.check_beta(self.anneal_beta0, "TrainConfig.anneal_beta0")
        if self.balanced_e_step and (self.e_step != "cached" or self.tempering != "none"):
            raise ValueError(f"TrainConfig: balanced_e_step needs e_step='cached' and tempering='none', got "
                             f"e_step={self.e_step!r}, tempering={self.tempering!r}")
        if self.resampled_m_step and self.e_step != "cached":
            raise ValueError(f"TrainConfig: resampled_m_step draws from every training example's responsibilities "
                             f"and needs e_step='cached', got e_step={self.e_step!r}")
        if not 0.0 <= self.dead_fraction < 1.0:
            raise ValueError(f"TrainConfig: dead_fraction must lie in [0, 1), got {self.dead_fraction!r}")
        if self.reseed_scale < 0:
            raise ValueError(f"TrainConfig: reseed_scale must be >= 0, got {self.reseed_scale!r}")


TEMPERINGS = ("none", "annealed", "paper")


@dataclasses.dataclass(frozen=True)
class RoundEStep:
    """How one EM round computes responsibilities: ``uniform`` (1/K: a shared round), ``warm``
    (the init partition's, hard), tempered with inverse temperature ``beta`` (``tempering``
    "joint" or "likelihood"; beta 1 = exact), or exact and ``balanced`` to equal totals."""

    warm: bool
    beta: float
    tempering: em.Tempering = "joint"
    uniform: bool = False
    balanced: bool = False

    def describe(self) -> str:
        if self.uniform:
            return "shared (1/K)"
        if self.balanced:
            return "balanced (equal totals)"
        return "warm start" if self.warm else f"beta {self.beta:.4g} ({self.tempering})"


def round_e_step(config: TrainConfig, em_round: int, num_dims: int, has_partition: bool) -> RoundEStep:
    """The E-step of EM round ``em_round`` (0-based) under ``config``, for data of ``num_dims`` dimensions."""
    if em_round < config.shared_rounds:
        return RoundEStep(False, 1.0, uniform=True)
    warm_rounds = config.warm_start_rounds if has_partition else 0
    if em_round < config.shared_rounds + warm_rounds:
        return RoundEStep(True, 1.0)
    r = em_round - config.shared_rounds - warm_rounds
    if config.tempering == "paper":
        return RoundEStep(False, 1.0 / num_dims, "likelihood")
    if config.tempering == "annealed" and r < config.anneal_rounds:
        return RoundEStep(False, float(config.anneal_beta0 ** (1.0 - r / config.anneal_rounds)))
    return RoundEStep(False, 1.0, balanced=config.balanced_e_step)


def learning_rate_schedule(config: TrainConfig, total_steps: int | None = None) -> optax.Schedule:
    """The learning rate of step ``count``.

    ``"noam"`` (the reference code's): ``lr * min(s / warmup, sqrt(warmup / s))`` with
    ``s = count + 1``, floored at ``min_learning_rate`` after warm-up. ``"cosine"``: a linear
    warm-up to ``lr``, then a cosine decay to ``min_learning_rate`` at ``total_steps``
    (required; ``fit`` passes ``epochs * steps_per_epoch``); a warm-up as long as the run or
    longer ends one step before its last.
    """
    if config.schedule == "cosine":
        if total_steps is None:
            raise ValueError("learning_rate_schedule: the cosine schedule needs total_steps")
        warmup = min(config.warmup_steps, max(total_steps - 1, 1))
        return optax.warmup_cosine_decay_schedule(
            0.0, config.learning_rate, warmup, max(total_steps, warmup + 1), end_value=config.min_learning_rate)

    def schedule(count):
        s = count + 1.0
        w = float(config.warmup_steps)
        lr = config.learning_rate * jnp.minimum(s / w, jnp.sqrt(w / s))
        return jnp.where(count > w, jnp.maximum(lr, config.min_learning_rate), lr)

    return schedule


def make_optimizer(config: TrainConfig, total_steps: int | None = None) -> optax.GradientTransformation:
    """Value clip -> global-norm clip -> Adam(0.9, 0.9999, 1e-8) on everything but ``log_pi`` (set by EM only)."""
    train = optax.chain(
        optax.clip(config.clip_value),
        optax.clip_by_global_norm(config.clip_norm),
        optax.adam(learning_rate_schedule(config, total_steps), b1=0.9, b2=0.9999, eps=1e-8),
    )
    labels = lambda params: {k: ("fixed" if k == "log_pi" else "train") for k in params}
    return optax.multi_transform({"train": train, "fixed": optax.set_to_zero()}, labels)


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
    gamma_cache: Array | None = None   # (N, K) responsibilities of every training example under Phi_old (cached E-step)
    log_px_cache: Array | None = None  # (N,) log p(x; Phi_old) of every training example (cached E-step)


def init_state(model, optimizer: optax.GradientTransformation, params, cache_size: int = 0) -> EMState:
    """Algorithm 1, line 6: Phi_old <- Phi. ``cache_size``: training examples for a cached E-step.

    Phi_old is a copy of Phi, with buffers of its own, so that a jitted step may donate the
    whole state (``donate_argnums``; a buffer cannot be donated twice in one call). Phi is
    ``params`` itself: a step that donates the state consumes those arrays.
    """
    zero = lambda: jnp.zeros((), jnp.float32)  # a new array each time: no two leaves share a buffer
    k = model.num_components
    return EMState(
        params=params, old_params=jax.tree.map(jnp.copy, params), opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        gamma_sum=jnp.zeros((k,), jnp.float32), gamma_count=zero(), nll_sum=zero(),
        nonfinite=jnp.zeros((), bool),
        gamma_cache=jnp.zeros((cache_size, k), jnp.float32) if cache_size else None,
        log_px_cache=jnp.zeros((cache_size,), jnp.float32) if cache_size else None,
    )


def train_step(model, optimizer, state: EMState, x: Array, posterior=None) -> tuple[EMState, dict]:
    """One EM iteration on a batch ``x: (B, *event_shape)`` (Algorithm 1, lines 9-13).

    ``posterior``: ``(gamma: (B, K), log p(x; Phi_old): (B,))`` of this batch when
    already known (a cached, warm-start or tempered E-step: ``round_posterior``); else the
    exact one, computed here from ``state.old_params``.
    A non-finite loss or gradient leaves Phi and the optimizer untouched and sets ``state.nonfinite``.
    """
    gamma, old_log_px = em.posterior(model, state.old_params, x) if posterior is None else posterior
    return _gradient_step(optimizer, state, lambda p: em.m_step_loss(model, p, x, gamma), gamma, old_log_px)


def resampled_train_step(model, optimizer, state: EMState, xs: Array, weights: Array,
                         posterior) -> tuple[EMState, dict]:
    """One EM iteration with the resampled M-step (``emflow.resampled_m_step``): generator k on ``xs[k]``.

    ``xs: (K, B, *event_shape)`` drawn from each generator's responsibilities, ``weights: (K,)``
    = ``N_k / n``; ``posterior``: the cached ``(gamma, log p(x; Phi_old))`` of the epoch's plain
    batch, which feeds the prior update and the logged NLL exactly as in ``train_step``.
    """
    gamma, old_log_px = posterior
    return _gradient_step(optimizer, state, lambda p: resampled_m_step.m_step_loss(model, p, xs, weights),
                          gamma, old_log_px)


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


def round_posterior(model, old_params, x: Array, beta, tempering: em.Tempering = "joint",
                    warm_gamma: Array | None = None, warm=False, uniform=False) -> tuple[Array, Array]:
    """``(gamma: (B, K), exact log p(x; Phi_old): (B,))`` of a round's E-step, from one evaluation of Phi_old.

    ``gamma`` is tempered with ``beta`` (``em.tempered_responsibilities``; beta = 1 exact) or,
    where ``warm`` (may be traced), the given hard ``warm_gamma``, or, where ``uniform``
    (may be traced), ``1/K`` for every example (a shared round).
    """
    gamma, log_px = em.posterior(model, old_params, x, beta, tempering)
    if warm_gamma is not None:
        gamma = jnp.where(warm, warm_gamma, gamma)
    gamma = jnp.where(uniform, em.uniform_responsibilities(x.shape[0], model.num_components), gamma)
    return gamma, log_px


def em_update(state: EMState) -> EMState:
    """Algorithm 1, lines 16-17: pi <- mean gamma over the epoch; Phi_old <- Phi (a copy, as in ``init_state``)."""
    params = em.with_log_pi(state.params, em.update_prior(state.gamma_sum, state.gamma_count))
    return state.replace(params=params, old_params=jax.tree.map(jnp.copy, params))


def em_round_update(model, state: EMState, config: TrainConfig, key: Array) -> tuple[EMState, dict]:
    """``em_update`` plus the dead-component check: ``(state, {"dead": [...], "reseeded": [[target, source], ...]})``.

    A component with ``pi_k < config.dead_fraction / K`` is dead. With ``config.reseed_dead``,
    each dead one becomes a perturbed copy of the then most populated component (params and
    optimizer moments; the two share its weight, ``emflow.reseed``) before Phi_old <- Phi.
    """
    k = model.num_components
    state = em_update(state)
    dead = reseed.dead_components(state.params["log_pi"], config.dead_fraction / k)
    if not (config.reseed_dead and dead and len(dead) < k):
        return state, {"dead": dead, "reseeded": []}
    params, opt_state, reseeded = state.params, state.opt_state, []
    for i, target in enumerate(dead):
        source = int(np.argmax(np.asarray(params["log_pi"])))
        params = reseed.split_component(model, params, source, target, jax.random.fold_in(key, i), config.reseed_scale)
        opt_state = reseed.split_optimizer_state(model, opt_state, source, target)
        reseeded.append([target, source])
    state = state.replace(params=params, opt_state=opt_state, old_params=jax.tree.map(jnp.copy, params))
    return state, {"dead": dead, "reseeded": reseeded}


def closing_prior_update(model, state: EMState, posterior_fn, train_data: Array, key: Array,
                         batch_size: int) -> tuple[EMState, dict]:
    """One E-step with the current Phi over all of ``train_data``, then ``pi <- mean gamma``; Phi_old <- Phi.

    ``posterior_fn(params, raw_batch, key) -> (gamma: (B, K), log p(x): (B,))`` gives exact
    responsibilities. Returns the new state and ``{"pi_before", "pi_after",
    "train_log_px_gain_nats"}``: the gain in mean training log-likelihood under this pass's noise
    (>= 0: for fixed Phi, EM's update of pi cannot lower the likelihood).
    """
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
    return state.replace(gamma_sum=jnp.zeros_like(state.gamma_sum), gamma_count=jnp.zeros_like(state.gamma_count),
                         nll_sum=jnp.zeros_like(state.nll_sum))


# Settings a resumed run may change (the state's structure does not depend on them);
# a run resumed with any of them changed no longer equals an uninterrupted one.
RESUMABLE_CHANGES = tuple(
    f"train.{name}" for name in
    ("epochs", "learning_rate", "warmup_steps", "min_learning_rate", "clip_value", "clip_norm", "eval_batch_size",
     "schedule", "final_prior_update")
)


class NonFiniteLossError(FloatingPointError):
    """Training met a NaN or Inf loss or gradient."""


def check_finite_data(x: np.ndarray | Array, name: str) -> None:
    """Refuse data with NaN or Inf before any training starts (a ``jax.Array`` is checked where it lies)."""
    if not np.issubdtype(x.dtype if isinstance(x, jax.Array) else np.asarray(x).dtype, np.floating):
        return
    bad = (int(jax.jit(lambda a: jnp.sum(~jnp.isfinite(a)))(x)) if isinstance(x, jax.Array) else
           int(np.sum(~np.isfinite(x))))
    if bad:
        raise ValueError(f"{name}: {bad} values are NaN or Inf; expected finite data")


def identity_preprocess(key: Array, x: Array) -> Array:
    """Use continuous data as they are."""
    del key
    return jnp.asarray(x, jnp.float32)


def map_batches(fn, params, data: Array, key: Array, batch_size: int):
    """``fn(params, raw_batch, key_i)`` over ``data`` in batches of one compiled shape, outputs concatenated."""
    n = data.shape[0]
    outputs = []
    for i, start in enumerate(range(0, n, batch_size)):
        chunk = data[start: start + batch_size]
        size = chunk.shape[0]
        if size < batch_size:  # pad to the compiled shape; padded rows are discarded
            chunk = jnp.concatenate([chunk, jnp.repeat(chunk[:1], batch_size - size, axis=0)])
        out = fn(params, chunk, jax.random.fold_in(key, i))
        outputs.append(jax.tree.map(lambda a, size=size: a[:size], out))
    return jax.tree.map(lambda *parts: jnp.concatenate(parts), *outputs)


def features_of_more_examples(model, params: dict | None, data: Array, subset_key: Array, noise_key: Array,
                              preprocess, config: TrainConfig, features_fn=None):
    """``model.partition_features`` of ``config.partition_size`` examples: ``(M, F)``.

    The examples: a random subset (``subset_key``) of the raw ``data (N, ...)`` (all of it if ``N`` is
    smaller), preprocessed with their own noise (``noise_key``), in batches of ``config.eval_batch_size``;
    ``params`` are the model's where its features depend on them (LatMM's latents), else None (GenMM's input).
    ``features_fn(params, x)``: what to compute instead of ``model.partition_features`` (any pytree of
    ``(B, ...)`` arrays, concatenated over the batches).
    """
    n = data.shape[0]
    raw = data[jax.random.permutation(subset_key, n)[: min(config.partition_size, n)]]
    features_fn = features_fn or model.partition_features
    features = jax.jit(lambda p, r, k: features_fn(p, preprocess(k, r)))
    return map_batches(features, params, raw, noise_key, config.eval_batch_size)


def place_on_more_examples(model, params: dict, data: Array, key: Array, preprocess,
                           config: TrainConfig) -> tuple[dict, partition_lib.Partition]:
    """LatMM's latent Gaussians re-placed at a k-means partition of ``config.partition_size`` examples.

    Their latents under the initialised flow, and their ``partition_features`` where the model
    partitions an input space (``features_of_more_examples``). Returns ``(params, partition)`` as
    ``model.place_latent_gaussians`` does; deterministic for ``key``.
    """
    def latents_and_features(p, x):
        z = model.top_latents(p, x)
        return z, (None if model.partition_space == "latent" else model.partition_features(p, x))

    k_subset, k_noise, k_means = jax.random.split(key, 3)
    z, features = features_of_more_examples(model, params, data, k_subset, k_noise, preprocess, config,
                                            latents_and_features)
    return jax.jit(model.place_latent_gaussians)(k_means, params, z, features)


def partition_centroids(model, data: Array, key: Array, preprocess, config: TrainConfig) -> Array:
    """GenMM: the centroids ``(K, N)`` of a k-means partition of ``config.partition_size`` examples' input
    (``model.partition_features``: the input in its ``partition_space``).

    ``model.init_with_partition(key, x, centroids)`` then splits the init batch by them, so that
    the generators start from the parts of many examples rather than of the init batch alone.
    """
    k_subset, k_noise, k_means = jax.random.split(key, 3)
    features = features_of_more_examples(model, None, data, k_subset, k_noise, preprocess, config)
    return jax.jit(model.kmeans)(k_means, features).centroids


def init_params(model, key: Array, init_x: Array, data: Array, preprocess, config: TrainConfig,
                log: Callable[[str], None]) -> tuple[dict, partition_lib.Partition | None]:
    """``(params, partition)`` of a new run from the init batch ``init_x``; the partition is None without one.

    When ``config.partition_size`` exceeds the init batch, the partition is one of that many
    training examples (``data``, raw): a model that partitions its input (``partitions_input``: GenMM)
    starts on the init batch split by it (``partition_centroids``); LatMM's latent Gaussians are placed
    at it after the flow's init (``place_on_more_examples``).
    """
    if not hasattr(model, "init_with_partition"):
        return jax.jit(model.init)(key, init_x), None
    size = min(config.partition_size, data.shape[0])
    more = size > init_x.shape[0]
    started = time.time()
    if more and getattr(model, "partitions_input", False):
        centroids = partition_centroids(model, data, jax.random.fold_in(key, 3), preprocess, config)
        params, part = jax.jit(model.init_with_partition)(key, init_x, centroids)
        log(f"generators initialised on the parts of a k-means partition of {size} examples "
            f"({time.time() - started:.1f} s)")
        return params, part
    params, part = jax.jit(model.init_with_partition)(key, init_x)
    if more and part is not None and hasattr(model, "place_latent_gaussians"):
        params, part = place_on_more_examples(model, params, data, jax.random.fold_in(key, 3), preprocess, config)
        space = model.partition_space
        log(f"latent Gaussians placed at a k-means partition of {size} examples' "
            f"{'latents' if space == 'latent' else space + ' features'} "
            f"({time.time() - started:.1f} s)")
    return params, part


def mean_log_prob(model, params, preprocess, data: Array, key: Array, batch_size: int, log_prob_fn=None) -> float:
    """Mean continuous ``log p(x)`` over ``data`` (raw, preprocessed with a fixed ``key``), in batches."""
    log_prob_fn = log_prob_fn or jax.jit(lambda p, raw, k: model.log_prob(p, preprocess(k, raw)))
    return float(jnp.mean(map_batches(log_prob_fn, params, data, key, batch_size)))


@dataclasses.dataclass
class FitResult:
    state: EMState
    history: list[dict]
    workdir: pathlib.Path | None
    partition: partition_lib.Partition | None = None  # the init batch's partition (None: the shared init)


def fit(
    model,
    config: TrainConfig,
    preprocess: Callable,
    x_train: np.ndarray,
    x_test: np.ndarray | None = None,
    *,
    workdir: str | pathlib.Path | None = None,
    resume: bool = False,
    run_info: dict | None = None,
    mesh=None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    y_test: np.ndarray | None = None,
) -> FitResult:
    """Train ``model`` with EM on raw ``x_train`` (e.g. uint8 images), evaluating on ``x_test`` each epoch.

    Args:
      model: a ``GenMM`` or ``LatMM``.
      config: the ``TrainConfig``.
      preprocess: ``preprocess(key, raw_batch) -> x`` (e.g. a ``Dequantizer``); its
        ``nats_per_dim`` / ``bits_per_dim`` convert log-likelihoods when present.
        ``None``: the data are used as they are (continuous, e.g. tabular features).
      x_train, x_test: raw data, ``(N, *data_shape)``: numpy (copied to every device), or a
        ``jax.Array`` already placed, e.g. spread over the mesh's devices by
        ``emflow.sharding.from_process_rows`` so that each process holds only its examples.
      workdir: where metrics (``metrics.jsonl``), plots and checkpoints go; None keeps nothing.
      resume: continue the run in ``workdir`` from its latest checkpoint.
      run_info: extra JSON-able facts recorded with the configuration (dataset, scheme, ...).
      mesh: a ``jax.sharding.Mesh`` from ``emflow.sharding.make_mesh`` to train data
        parallel and/or component parallel; None: one device.
      y_test: class labels of ``x_test`` (``(N_test,)`` ints, numpy or a ``jax.Array`` placed like
        ``x_test``): after every EM round the
        metrics get a per-component report (``emflow.diagnostics``) and ``components.png``.

    Raises:
      ValueError: non-finite data; ``ConfigMismatchError`` when resuming a different configuration.
      FileExistsError: ``workdir`` holds checkpoints and ``resume`` is False.
      NonFiniteLossError: a NaN/Inf loss; the last good checkpoint stays as it was.
    """
    if preprocess is None:
        preprocess = identity_preprocess
    for name, data in (("x_train", x_train), ("x_test", x_test)):
        if data is not None:
            check_finite_data(data, name)
            if hasattr(preprocess, "check"):  # e.g. Dequantizer: uint8 of the expected shape
                preprocess.check(data)
    if y_test is not None and (x_test is None or np.shape(y_test) != (len(x_test),)):
        raise ValueError(f"fit: y_test must hold one label per test example, (N_test,) = "
                         f"({None if x_test is None else len(x_test)},), got shape {np.shape(y_test)}")
    if config.resampled_m_step and not hasattr(model, "generator_log_prob_per_batch"):
        raise ValueError(f"fit: resampled_m_step needs components with parameters of their own (GenMM), got "
                         f"{type(model).__name__}")
    if config.resampled_m_step and mesh is not None:
        raise ValueError("fit: resampled_m_step is not available with a mesh (not measured there); use mesh=None")
    run_config = to_json_config({"model": model, "train": config, "run": run_info or {}})
    n = len(x_train)
    steps_per_epoch = n // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"fit: batch_size {config.batch_size} is larger than the training set ({n} examples)")
    workdir = pathlib.Path(workdir) if workdir is not None else None
    # Refuse a workdir (or a resume) before anything compiles.
    checkpointer, latest = _open_workdir(workdir, resume, run_config, log) if workdir is not None else (None, None)

    key = jax.random.PRNGKey(config.seed)
    key_init, key_data, key_noise, key_eval, key_sample, key_cache = jax.random.split(key, 6)
    optimizer = make_optimizer(config, total_steps=config.epochs * steps_per_epoch)
    if isinstance(x_train, jax.Array):  # placed by the caller (e.g. each process's own examples)
        train_device = x_train
    else:
        train_device = jnp.asarray(x_train) if mesh is None else jax.device_put(x_train, sharding.replicated(mesh))
    test_device = None if x_test is None else x_test if isinstance(x_test, jax.Array) else jnp.asarray(x_test)

    init_raw = train_device[jax.random.permutation(key_init, n)[: config.init_batch_size]]
    init_x = preprocess(jax.random.fold_in(key_init, 1), init_raw)
    params, part = init_params(model, key_init, init_x, train_device, preprocess, config, log)
    # The warm start's hard responsibilities: every training example's nearest centroid of the init partition.
    warm_labels = None
    if part is not None and config.warm_start_rounds > 0:
        distances = jax.jit(lambda p, raw, k: partition_lib.squared_distances(
            model.partition_features(p, preprocess(k, raw)), part.centroids))
        d2 = map_batches(distances, params, train_device, jax.random.fold_in(key_init, 2), config.eval_batch_size)
        warm_labels = (jax.jit(partition_lib.balanced_assignment)(d2) if config.balanced_parts else
                       jnp.argmin(d2, axis=1).astype(jnp.int32))
    cached = config.e_step == "cached"
    state = init_state(model, optimizer, params, cache_size=n if cached else 0)
    tempering = "likelihood" if config.tempering == "paper" else "joint"
    k_components = model.num_components

    if mesh is not None:  # placed before a resume, so that each process restores its own shards into place
        model = sharding.for_mesh(model, mesh)
        state = sharding.shard_tree(state, mesh, model.num_components)
        out_shardings = (sharding.tree_shardings(state, mesh, model.num_components), sharding.replicated(mesh))
    else:
        out_shardings = None

    history: list[dict] = []
    first_epoch = 0
    if latest is not None:
        state, first_epoch, history = _resume(checkpointer, workdir, state, log)

    # The state is donated: the new Phi, Phi_old and optimizer state are written over the old ones
    # (checkpoints are complete on disk before the next step runs: ``Checkpointer.save`` waits).
    @functools.partial(jax.jit, out_shardings=out_shardings, donate_argnums=0)
    def step_fn(state, train_data, warm_labels, perm, index, key, beta, warm, uniform):
        idx = jax.lax.dynamic_slice_in_dim(perm, index * config.batch_size, config.batch_size)
        x = preprocess(key, train_data[idx])
        if mesh is not None:
            x = jax.lax.with_sharding_constraint(x, sharding.batch_sharding(mesh, x.ndim))
        if cached:
            posterior = (state.gamma_cache[idx], state.log_px_cache[idx])
        else:
            warm_gamma = (None if warm_labels is None else
                          jax.nn.one_hot(warm_labels[idx], k_components, dtype=jnp.float32))
            posterior = round_posterior(model, state.old_params, x, beta, tempering, warm_gamma, warm, uniform)
        return train_step(model, optimizer, state, x, posterior)

    @functools.partial(jax.jit, donate_argnums=0)
    def resampled_step_fn(state, train_data, perm, index, component_idx, weights, key):
        idx = jax.lax.dynamic_slice_in_dim(perm, index * config.batch_size, config.batch_size)
        own = jax.lax.dynamic_index_in_dim(component_idx, index, keepdims=False)  # (K, B)
        xs = preprocess(key, train_data[own.reshape(-1)]).reshape(own.shape + tuple(model.event_shape))
        posterior = (state.gamma_cache[idx], state.log_px_cache[idx])  # the plain batch: prior update, logged NLL
        return resampled_train_step(model, optimizer, state, xs, weights, posterior)

    draw_batches = jax.jit(lambda k, g: resampled_m_step.draw_component_batches(k, g, steps_per_epoch,
                                                                               config.batch_size))
    posterior_fn = jax.jit(lambda p, raw, k, beta: round_posterior(model, p, preprocess(k, raw), beta, tempering))
    joint_fn = jax.jit(lambda p, raw, k: model.component_log_prob(p, preprocess(k, raw)))
    component_sample_fn = (jax.jit(lambda p, k: model.component_samples(p, k, 8, config.sample_temperature))
                           if config.num_samples and hasattr(model, "component_samples") else None)

    log_prob_fn = jax.jit(lambda p, raw, k: model.log_prob(p, preprocess(k, raw)))
    sample_fn = (jax.jit(lambda p, k: model.sample(p, k, config.num_samples, config.sample_temperature))
                 if config.num_samples else None)
    train_eval = train_device[: config.train_eval_size]
    to_nats = getattr(preprocess, "nats_per_dim", lambda lp: -lp / math.prod(model.event_shape))
    to_bits = getattr(preprocess, "bits_per_dim", lambda lp: to_nats(lp) / math.log(2.0))

    try:
        for epoch in range(first_epoch, config.epochs):
            t0 = time.time()
            state = start_epoch(state)
            e_spec = round_e_step(config, epoch // config.em_every, math.prod(model.event_shape), part is not None)
            beta, warm, uniform = jnp.float32(e_spec.beta), jnp.bool_(e_spec.warm), jnp.bool_(e_spec.uniform)
            if cached and epoch % config.em_every == 0:  # a new EM round: Phi_old is fixed until its end
                if e_spec.warm or e_spec.uniform:  # no pass over the data (log p unknown: NaN)
                    gamma = (em.uniform_responsibilities(n, k_components) if e_spec.uniform else
                             jax.nn.one_hot(warm_labels, k_components, dtype=jnp.float32))
                    log_px = jnp.full((n,), jnp.nan, jnp.float32)
                elif e_spec.balanced:  # equal totals need every example's joint
                    joint = map_batches(joint_fn, state.old_params, train_device,
                                        jax.random.fold_in(key_cache, epoch), config.eval_batch_size)
                    gamma, log_px = jax.jit(lambda j: (em.balanced_responsibilities(j),
                                                       jax.nn.logsumexp(j, axis=1)))(joint)
                else:
                    gamma, log_px = map_batches(lambda p, raw, k: posterior_fn(p, raw, k, beta), state.old_params,
                                                train_device, jax.random.fold_in(key_cache, epoch),
                                                config.eval_batch_size)
                state = state.replace(gamma_cache=gamma, log_px_cache=log_px)
            perm = jax.random.permutation(jax.random.fold_in(key_data, epoch), n)
            if config.resampled_m_step:  # every generator's batches for this epoch, from the round's gamma
                component_idx = draw_batches(jax.random.fold_in(jax.random.fold_in(key_data, epoch), 1),
                                             state.gamma_cache)
                weights = resampled_m_step.component_weights(state.gamma_cache)
            bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress or not distributed.is_primary(),
                       leave=False, dynamic_ncols=True)
            for i in bar:
                global_step = epoch * steps_per_epoch + i
                key_step = jax.random.fold_in(key_noise, global_step)
                if config.resampled_m_step:
                    state, metrics = resampled_step_fn(state, train_device, perm, i, component_idx, weights, key_step)
                else:
                    state, metrics = step_fn(state, train_device, warm_labels, perm, i, key_step, beta, warm, uniform)
                if i % 20 == 0 or i == steps_per_epoch - 1:
                    _raise_if_nonfinite(state, epoch, i)
                    bar.set_postfix(loss=f"{float(metrics['loss']):.2f}",
                                    nll=f"{float(to_nats(-metrics['nll'])):.4f} nats/dim")
            _raise_if_nonfinite(state, epoch, steps_per_epoch - 1)  # also waits for the last step
            train_seconds = time.time() - t0
            train_log_px = -float(state.nll_sum / state.gamma_count)
            pi_epoch = np.asarray(state.gamma_sum / state.gamma_count)
            em_round = (epoch + 1) % config.em_every == 0
            round_info = None
            if em_round:
                state, round_info = em_round_update(model, state, config,
                                                     jax.random.fold_in(jax.random.fold_in(key_init, 3), epoch))
            closing = None
            if config.final_prior_update and epoch == config.epochs - 1:
                closing_posterior = lambda p, raw, k: posterior_fn(p, raw, k, jnp.float32(1.0))
                state, closing = closing_prior_update(model, state, closing_posterior, train_device,
                                                      jax.random.fold_in(key_cache, config.epochs),
                                                      config.eval_batch_size)
            train_eval_log_px = mean_log_prob(model, state.params, preprocess, train_eval, key_eval,
                                              config.eval_batch_size, log_prob_fn)
            record = {
                "epoch": epoch + 1, "step": int(state.step),
                "train_nll_nats_per_dim": float(to_nats(train_eval_log_px)),
                "train_bits_per_dim": float(to_bits(train_eval_log_px)),
                # under Phi_old, over the epoch's batches (None in a cached warm-start round: not computed)
                "train_nll_old_nats_per_dim": float(to_nats(train_log_px)) if math.isfinite(train_log_px) else None,
                "mean_gamma": [float(v) for v in pi_epoch],
                "pi": [float(v) for v in np.exp(np.asarray(state.params["log_pi"]))],
                "em_update": em_round,
                "e_step": e_spec.describe(),
            }
            if round_info is not None:
                record["dead"] = round_info["dead"]
                record["reseeded"] = round_info["reseeded"]
                record["reseeds_total"] = len(round_info["reseeded"]) + sum(len(r.get("reseeded", [])) for r in history)
            if closing is not None:
                record["final_prior_update"] = closing
            report = None
            if test_device is not None:
                if y_test is not None:  # one pass gives both the test NLL and the per-component report
                    joint = map_batches(joint_fn, state.params, test_device, key_eval, config.eval_batch_size)
                    test_log_px = float(jnp.mean(jax.nn.logsumexp(joint, axis=1)))
                    if em_round:
                        report = diagnostics.component_report(_to_host(joint), _to_host(y_test))
                        record["components"] = report
                else:
                    test_log_px = mean_log_prob(model, state.params, preprocess, test_device, key_eval,
                                                config.eval_batch_size, log_prob_fn)
                record["test_nll_nats_per_dim"] = float(to_nats(test_log_px))
                record["test_bits_per_dim"] = float(to_bits(test_log_px))
            record["train_seconds"] = round(train_seconds, 3)  # E-step (cached or per batch) + M-steps
            record["seconds"] = round(time.time() - t0, 2)       # ... + this epoch's evaluations
            history.append(record)
            log(_format_record(record))
            if workdir is not None:
                grids = None  # sampled by every process (one SPMD program), written by the primary
                if em_round and sample_fn is not None and hasattr(preprocess, "quantize") and len(model.event_shape) == 3:
                    grids = _sample_grids(preprocess, sample_fn, component_sample_fn, state.params,
                                          jax.random.fold_in(key_sample, epoch))
                if distributed.is_primary():  # the run's files are written once; every process checkpoints
                    with _outputs_written(workdir, epoch, checkpointer):
                        _write_epoch_outputs(workdir, history, record)
                        if grids is not None:
                            _write_sample_grids(workdir, epoch, *grids)
                        if report is not None:
                            plots.component_classes(report["class_share"], [sum(w) for w in report["wins"]],
                                                    workdir / "components.png",
                                                    title=f"test examples won, epoch {epoch + 1}")
                checkpointer.save(epoch, state, {"epoch": epoch, "config": run_config, "seed": config.seed,
                                                 "history": history, **version_record()})
    finally:
        if checkpointer is not None:
            checkpointer.close()
    return FitResult(state, history, workdir, part)


def _open_workdir(workdir: pathlib.Path, resume: bool, run_config: dict, log) -> tuple[Checkpointer, int | None]:
    """Bind ``workdir`` to this run: refuse to overwrite a run, or to resume a different configuration.

    Returns ``(checkpointer, latest checkpointed epoch or None)``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    checkpointer = Checkpointer(workdir)
    latest = checkpointer.latest_epoch()
    if latest is not None and not resume:
        raise FileExistsError(
            f"{workdir} already holds checkpoints of a run (latest epoch {latest + 1}); "
            "pass --resume to continue it, or choose another --workdir"
        )
    if latest is not None:
        latest, saved = _newest_readable(checkpointer, checkpointer.record, log)
        diffs = config_differences(saved["config"], run_config)
        allowed = [d for d in diffs if d.split(":")[0] in RESUMABLE_CHANGES]
        refused = [d for d in diffs if d not in allowed]
        if refused:
            raise ConfigMismatchError(
                f"refusing to resume {workdir}: its checkpoint is of a different configuration: " + "; ".join(refused)
            )
        for d in allowed:
            log(f"resuming with a changed setting: {d}")
    if distributed.is_primary():
        (workdir / "config.json").write_text(json.dumps(run_config, indent=2))
    return checkpointer, latest


def _newest_readable(checkpointer: Checkpointer, read, log):
    """``(epoch, read(epoch))`` of the newest checkpoint that ``read`` accepts.

    An unreadable one (truncated, corrupted) is moved to ``corrupt_checkpoints/`` with a message
    naming it, and the next older one is tried; none is ever deleted.

    Raises:
      CorruptCheckpointError: checkpoints exist but none can be read.
    """
    tried = []
    for epoch in reversed(checkpointer.epochs()):
        try:
            return epoch, read(epoch)
        except Exception as err:  # orbax / tensorstore / json raise many types for a damaged file
            moved = checkpointer.quarantine(epoch)
            tried.append(f"epoch {epoch + 1} ({type(err).__name__}: {str(err)[:200]}) -> {moved}")
            log(f"checkpoint {checkpointer.directory / str(epoch)} is unreadable ({type(err).__name__}: "
                f"{str(err)[:200]}); moved it to {moved} and falling back to the one before")
    raise CorruptCheckpointError(
        f"no checkpoint in {checkpointer.directory} can be read; refusing to train from them. Moved aside, "
        f"not deleted: {'; '.join(tried)}. Resuming again starts the run from scratch.")


def _resume(checkpointer: Checkpointer, workdir: pathlib.Path, state: EMState, log):
    """Restore the newest readable checkpoint into ``state``'s structure (its record may be fine, its state not).

    Returns ``(state, first_epoch, history)``; the history is the one stored with the checkpoint
    (``metrics.jsonl`` may be ahead of it, or damaged, after a kill).
    """
    target = state
    _, (state, record) = _newest_readable(checkpointer, lambda e: checkpointer.restore(target, e), log)
    first_epoch = record["epoch"] + 1
    history = record.get("history")
    if history is None:  # checkpoints of emflow 0.1 stored no history
        history = _read_history(workdir, up_to_epoch=record["epoch"])
    log(f"resumed {workdir} after epoch {first_epoch} (step {int(state.step)}, state sha256 {global_digest(state)[:16]})")
    return state, first_epoch, history


def _raise_if_nonfinite(state: EMState, epoch: int, index: int) -> None:
    if bool(state.nonfinite):
        raise NonFiniteLossError(
            f"non-finite loss or gradient in epoch {epoch + 1} (by step {index + 1} of the epoch, global step "
            f"{int(state.step)}); that update was skipped and training stopped. The last checkpoint is the "
            "last good state: lower the learning rate or check the data, then --resume."
        )


def _format_record(r: dict) -> str:
    text = f"epoch {r['epoch']:4d}  train NLL {r['train_nll_nats_per_dim']:.4f}"
    if "test_nll_nats_per_dim" in r:
        text += f"  test NLL {r['test_nll_nats_per_dim']:.4f} nats/dim ({r['test_bits_per_dim']:.4f} bits/dim)"
    text += "  pi " + " ".join(f"{p:.3f}" for p in r["pi"]) + (" [EM update]" if r["em_update"] else "")
    if "final_prior_update" in r:
        text += " [final pi update, was " + " ".join(f"{p:.3f}" for p in r["final_prior_update"]["pi_before"]) + "]"
    if "components" in r:
        text += f"  purity {r['components']['purity']:.3f}"
    if r.get("dead"):
        text += f"  dead {r['dead']}" + (f" re-seeded (target, source) {r['reseeded']}" if r.get("reseeded") else "")
    return text + f"  {r['seconds']:.1f}s"


def _read_history(workdir: pathlib.Path, up_to_epoch: int) -> list[dict]:
    """Metrics lines of epochs <= up_to_epoch (0-based) — later ones belong to a run killed before its checkpoint."""
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["epoch"] <= up_to_epoch + 1]


def _to_host(x: Array) -> np.ndarray:
    """A numpy copy of ``x``, gathered from every process when it is spread over several."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def _sample_grids(preprocess, sample_fn, component_sample_fn, params, key: Array):
    """``(mixture samples, per-component rows or None, columns)`` as uint8 numpy images."""
    samples = _to_host(preprocess.quantize(sample_fn(params, key)))
    if component_sample_fn is None:
        return samples, None, None
    rows = component_sample_fn(params, jax.random.fold_in(key, 1))  # (K, n, H, W, C)
    k, m = rows.shape[:2]
    return samples, _to_host(preprocess.quantize(rows.reshape(k * m, *rows.shape[2:]))), m


def _write_sample_grids(workdir: pathlib.Path, epoch: int, samples: np.ndarray, rows: np.ndarray | None,
                        columns: int | None) -> None:
    """``samples/epoch_*.png`` (the mixture) and ``samples/components_epoch_*.png`` (one row per component)."""
    (workdir / "samples").mkdir(exist_ok=True)
    plots.image_grid(samples, workdir / "samples" / f"epoch_{epoch + 1:04d}.png")
    if rows is not None:
        plots.image_grid(rows, workdir / "samples" / f"components_epoch_{epoch + 1:04d}.png", columns=columns)


@contextlib.contextmanager
def _outputs_written(workdir: pathlib.Path, epoch: int, checkpointer: Checkpointer):
    """Turn an OS error while writing the epoch's metrics and plots into ``WorkdirWriteError``."""
    try:
        yield
    except OSError as err:
        raise WorkdirWriteError(
            f"could not write the outputs of epoch {epoch + 1} in {workdir} ({err}); the run stopped before "
            f"checkpointing that epoch. The checkpoints already there (epochs {[e + 1 for e in checkpointer.epochs()]}) "
            "are intact; free disk space or fix permissions, then resume.") from err


def _write_atomically(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: a kill leaves the old or the new file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def _write_epoch_outputs(workdir: pathlib.Path, history: list[dict], record: dict) -> None:
    _write_atomically(workdir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    epochs = [r["epoch"] for r in history]
    curves = {"train": (epochs, [r["train_nll_nats_per_dim"] for r in history])}
    if "test_nll_nats_per_dim" in record:
        curves["test"] = (epochs, [r["test_nll_nats_per_dim"] for r in history])
    plots.nll_curves(curves, workdir / "nll.png")
