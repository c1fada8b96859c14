"""Training settings: ``TrainConfig``, the learning-rate schedule, the optimizer, the E-step schedule."""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Literal

import jax
import jax.numpy as jnp
import optax

from emflow import checks
from emflow.bijectors.linear import is_constant_leaf
from emflow.em import e_steps

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; the defaults are those of the paper's own code.

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
        0.614 at the end of training). GenMM (init ``"partition"``): k-means of
        these examples' input in its ``partition_space`` gives the centroids,
        and the init batch is split by them (``partition_centroids``). A value
        ``<= init_batch_size`` keeps the init batch's own partition.
      num_samples: samples in the grid drawn after each EM round (0: none).
      sample_temperature: latent temperature of those samples (Glow's convention: 0.7).
      train_eval_size: training examples (the first ones) whose NLL under the current
        Phi is reported each epoch, beside the running NLL under Phi_old.
      e_step: ``"per_batch"`` (Algorithm 1: Phi_old evaluated on every batch) or
        ``"cached"``: Phi_old is fixed for an EM round, so every training example's
        responsibilities are computed once per round (one forward pass over the
        data, with that round's own dequantization noise) and looked up by the steps.
      warm_start_rounds: EM rounds, from the first, whose responsibilities are the
        init partition's (hard: one-hot of each example's nearest k-means centroid,
        ``em.partition_e_step``); 0 turns the warm start off. Ignored for a model
        initialised without a partition (``init_strategy="shared"``).
      tempering: the E-step after the warm start: ``"none"`` (exact, eq. 13 / 24) or ``"paper"``
        (the reference code's ``gamma ∝ pi_k p_k^(1/D)``, every round). Other schedules (shared
        rounds, annealing, balanced parts; ``emflow.contrib``) are passed to ``fit`` as
        ``e_step_of_round``.
      dead_fraction: a component with ``pi_k < dead_fraction / K`` after an EM round is dead (logged).
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
    warm_start_rounds: int = 1
    tempering: Literal["none", "paper"] = "none"
    dead_fraction: float = 0.1
    final_prior_update: bool = False

    def __post_init__(self):
        if self.e_step not in ("per_batch", "cached"):
            raise ValueError(f"TrainConfig: e_step must be 'per_batch' or 'cached', got {self.e_step!r}")
        if self.schedule not in ("noam", "cosine"):
            raise ValueError(f"TrainConfig: schedule must be 'noam' or 'cosine', got {self.schedule!r}")
        if self.tempering not in TEMPERINGS:
            raise ValueError(f"TrainConfig: tempering must be one of {TEMPERINGS}, got {self.tempering!r}")
        for name in ("epochs", "batch_size", "em_every", "eval_batch_size", "init_batch_size", "warmup_steps",
                     "train_eval_size"):
            _check_integer(self, name, 1)
        for name in ("warm_start_rounds", "partition_size", "num_samples"):
            _check_integer(self, name, 0)
        for name in ("learning_rate", "clip_value", "clip_norm", "sample_temperature"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"TrainConfig: {name} must be a finite number > 0, got {value!r}")
        if not (isinstance(self.min_learning_rate, (int, float)) and math.isfinite(self.min_learning_rate)
                and self.min_learning_rate >= 0):
            raise ValueError(f"TrainConfig: min_learning_rate must be a finite number >= 0, got {self.min_learning_rate!r}")
        if isinstance(self.dead_fraction, bool) or not isinstance(self.dead_fraction, (int, float)) \
                or not 0.0 <= self.dead_fraction < 1.0:
            raise ValueError(f"TrainConfig: dead_fraction must lie in [0, 1), got {self.dead_fraction!r}")


TEMPERINGS = ("none", "paper")


def _check_integer(config: TrainConfig, name: str, low: int) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < low:
        raise ValueError(f"TrainConfig: {name} must be an integer >= {low}, got {value!r}")


def e_step_schedule(config: TrainConfig, num_dims: int, has_partition: bool,
                    num_components: int | None = None) -> Callable[[int], e_steps.EStep]:
    """``em_round (0-based) -> EStep`` under ``config``, for data of ``num_dims`` dimensions.

    ``warm_start_rounds`` warm-start rounds (with a partition), then the ``tempering`` variant:
    exact, or the paper code's ``1/D``; each ``cached`` when ``config.e_step == "cached"``.
    ``num_components == 1``: ``e_steps.one_component()`` in every round (no E-step to compute).
    """
    num_dims = checks.integer("e_step_schedule", "num_dims", num_dims, 1)
    if num_components is not None:
        checks.integer("e_step_schedule", "num_components", num_components, 1)
    warm_rounds = config.warm_start_rounds if has_partition else 0
    if num_components == 1:
        return lambda em_round: e_steps.one_component()

    def schedule(em_round: int) -> e_steps.EStep:
        if em_round < warm_rounds:
            return e_steps.warm_start()
        step = e_steps.tempered(1.0 / num_dims, "likelihood") if config.tempering == "paper" else e_steps.exact()
        return e_steps.cached(step) if config.e_step == "cached" else step

    return schedule


def check_config(where: str, config, total_steps=None) -> None:
    """A ``TrainConfig`` (and ``total_steps`` None or an integer >= 1), or an error naming ``where``."""
    checks.instance(where, "config", config, TrainConfig, "an emflow.train.TrainConfig")
    if total_steps is not None:
        checks.integer(where, "total_steps (or None)", total_steps, 1)


def learning_rate_schedule(config: TrainConfig, total_steps: int | None = None) -> optax.Schedule:
    """The learning rate of step ``count``.

    ``"noam"`` (the reference code's): ``lr * min(s / warmup, sqrt(warmup / s))`` with
    ``s = count + 1``, floored at ``min_learning_rate`` after warm-up. ``"cosine"``: a linear
    warm-up to ``lr``, then a cosine decay to ``min_learning_rate`` at ``total_steps``
    (required; ``fit`` passes ``epochs * steps_per_epoch``); a warm-up as long as the run or
    longer ends one step before its last.
    """
    check_config("learning_rate_schedule", config, total_steps)
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
    """Value clip -> global-norm clip -> Adam(0.9, 0.9999, 1e-8) on the trained parameters (``without_log_pi``)."""
    check_config("make_optimizer", config, total_steps)
    return without_log_pi(adam_with_clipping(config, total_steps))


def adam_with_clipping(config: TrainConfig, total_steps: int | None = None) -> optax.GradientTransformation:
    """``make_optimizer``'s transformation before ``without_log_pi``: value clip -> global-norm clip -> Adam(0.9,
    0.9999, 1e-8) at ``learning_rate_schedule(config, total_steps)``, on every leaf it is given."""
    check_config("adam_with_clipping", config, total_steps)
    return optax.chain(
        optax.clip(config.clip_value),
        optax.clip_by_global_norm(config.clip_norm),
        optax.adam(learning_rate_schedule(config, total_steps), b1=0.9, b2=0.9999, eps=1e-8),
    )


def without_log_pi(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """``optimizer`` on the trained parameters only: not the mixture weights ``log_pi``, which only EM's prior
    update sets, nor the constants stored among the parameters (``is_constant_leaf``: an LU layer's permutation
    and signs), whose updates are set to zero after ``optimizer``'s (its state is unchanged)."""
    checks.transformation("without_log_pi", optimizer)
    labels = lambda params: {k: ("fixed" if k == "log_pi" else "train") for k in params}
    return _holding_constants(optax.multi_transform({"train": optimizer, "fixed": optax.set_to_zero()}, labels))


def _holding_constants(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """``optimizer`` with a zero update for every constant leaf (``is_constant_leaf``); the same state."""
    def update(updates, state, params=None):
        updates, state = optimizer.update(updates, state, params)
        return jax.tree_util.tree_map_with_path(
            lambda path, u: jnp.zeros_like(u) if is_constant_leaf(path) else u, updates), state

    return optax.GradientTransformation(optimizer.init, update)
