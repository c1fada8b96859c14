"""E-step variants as objects: how an EM round computes the responsibilities its M-steps use.

An ``EStep`` is a NamedTuple of two pure functions, as an optax transformation is:

    state = e_step.init(round_data)          # once per EM round, outside jit: Phi_old is fixed from here
    gamma, log_px = e_step.update(state, model, old_params, x, idx)   # per batch, inside the jitted step

``x: (B, *event_shape)`` is the batch the M-step sees and ``idx: (B,)`` its rows in the training
set; ``gamma: (B, K)`` are the responsibilities, ``log_px: (B,)`` the exact ``log p(x; Phi_old)``
(NaN where the E-step computes no likelihood: a warm start needs none). ``state`` is a pytree
of arrays, so one compiled step serves every round whose E-step has the same ``update``:
the variants' numbers (an inverse temperature, a table of responsibilities) travel in it.

The variants, each from ``emflow.em``'s pure functions:

    exact()                     eq. 13 / 24, from the batch, every step
    tempered(beta, tempering)   (pi_k p_k)^beta ("joint") or pi_k p_k^beta ("likelihood", the paper code's 1/D)
    warm_start()                hard: each example's part of the init partition (no likelihood computed)
    cached(e_step)              ``e_step`` evaluated once per round over the whole training set, looked up per batch

``fit`` takes a schedule, ``round -> EStep`` (``emflow.train.e_step_schedule`` builds the default
one from a ``TrainConfig``); a user's own loop calls ``init`` and ``update`` the same way. More
variants, not (yet) shown to help, are in ``emflow.contrib`` (shared rounds, balanced parts and
responsibilities, deterministic annealing, hard EM); ``emflow.em.semi_supervised`` follows labels.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from emflow import checks
from emflow.em import algorithm as em
from emflow.batches import map_batches
from emflow.bijectors.base import Array


class RoundData(NamedTuple):
    """What an E-step's ``init`` may read at the start of an EM round.

    Attributes:
      model: the mixture.
      old_params: Phi_old, fixed for the round.
      raw: ``(N, *data_shape)`` raw training data, on the device.
      preprocess: ``preprocess(key, raw_batch) -> x``.
      key: the round's noise key (a cached E-step's pass preprocesses batch ``i`` with ``fold_in(key, i)``).
      batch_size: the batch of a pass over ``raw``.
      part_labels: ``(N,)`` int32, each example's part of the init partition; None without one.
      centroids: ``(K, F)`` the init partition's centroids in the model's partition features; None without one.
    """

    model: Any
    old_params: Any
    raw: Array
    preprocess: Callable
    key: Array
    batch_size: int
    part_labels: Array | None = None
    centroids: Array | None = None


class EStep(NamedTuple):
    """An E-step variant: ``init(RoundData) -> state``; ``update(state, model, old_params, x, idx) -> (gamma, log_px)``.

    ``name`` is what the run's metrics record of the round. ``update`` must be a function that
    lives as long as the program (a module-level function), so that the jitted step that takes
    it as a static argument compiles once per variant, not once per round.
    """

    name: str
    init: Callable[[RoundData], Any]
    update: Callable[..., tuple[Array, Array]]


def _tempered_joint(state, model, old_params, x, idx):
    del idx
    return em.posterior(model, old_params, x, state["beta"], "joint")


def _tempered_likelihood(state, model, old_params, x, idx):
    del idx
    return em.posterior(model, old_params, x, state["beta"], "likelihood")


def lookup(state, model, old_params, x, idx):
    """The ``update`` of an E-step whose ``init`` made a table: the batch's rows of ``state["gamma"]``
    and ``state["log_px"]``."""
    del model, old_params, x
    return state["gamma"][idx], state["log_px"][idx]


_TEMPERED = {"joint": _tempered_joint, "likelihood": _tempered_likelihood}


def tempered(beta: float, tempering: em.Tempering = "joint") -> EStep:
    """``gamma ∝ (pi_k p_k(x))^beta`` (``"joint"``) or ``pi_k p_k(x)^beta`` (``"likelihood"``), ``beta`` in (0, 1]."""
    em.check_beta(beta, "e_steps.tempered")
    if tempering not in _TEMPERED:
        raise ValueError(f"e_steps.tempered: tempering must be one of {sorted(_TEMPERED)}, got {tempering!r}")
    return EStep(f"beta {beta:.4g} ({tempering})", lambda data: {"beta": jnp.float32(beta)}, _TEMPERED[tempering])


def _one_component(state, model, old_params, x, idx):
    del state, model, old_params, idx
    return jnp.ones((x.shape[0], 1), jnp.float32), jnp.full((x.shape[0],), jnp.nan, jnp.float32)


def one_component() -> EStep:
    """A mixture of one component: every responsibility is 1, known without computing anything (no pass
    over the data, no likelihood under Phi_old: the round's ``log_px`` is NaN). ``fit`` of a K = 1 model
    uses it in every round, so that fitting one flow is a plain maximum-likelihood fit."""
    return EStep("one component", lambda data: None, _one_component)


def exact() -> EStep:
    """The exact posterior under Phi_old, eq. 13 / 24 (``tempered`` at beta = 1, the same numbers)."""
    return tempered(1.0, "joint")


def table(gamma: Array, log_px: Array) -> dict:
    """The state of a table E-step: ``gamma: (N, K)`` and ``log_px: (N,)`` of every training example."""
    if jnp.ndim(gamma) != 2 or jnp.shape(log_px) != jnp.shape(gamma)[:1]:
        raise ValueError(f"table: expected gamma (N, K) and log_px (N,), got shapes {jnp.shape(gamma)} and "
                         f"{jnp.shape(log_px)}")
    return {"gamma": gamma, "log_px": log_px}


def without_likelihood(gamma: Array) -> dict:
    """``table(gamma, NaN)``: responsibilities that need no likelihood (a warm start)."""
    if jnp.ndim(gamma) != 2:
        raise ValueError(f"without_likelihood: gamma must have shape (N, K), got {jnp.shape(gamma)}")
    return table(gamma, jnp.full(gamma.shape[:1], jnp.nan, jnp.float32))


def warm_start() -> EStep:
    """Hard responsibilities: one-hot of each example's part of the init partition (``RoundData.part_labels``)."""
    def init(data: RoundData) -> dict:
        if data.part_labels is None:
            raise ValueError("e_steps.warm_start: the model was initialised without a partition (part_labels None)")
        return without_likelihood(jax.nn.one_hot(data.part_labels, data.model.num_components, dtype=jnp.float32))

    return EStep("warm start", init, lookup)


def cached(e_step: EStep) -> EStep:
    """``e_step`` evaluated once per round on every training example (batch ``i`` of the pass with noise
    ``fold_in(RoundData.key, i)``), its table looked up by the steps. A variant that already holds a
    table (``warm_start``, or any whose ``update`` is ``lookup``) is returned as it is."""
    checks.instance("cached", "e_step", e_step, EStep, "an EStep (e_steps.exact(), tempered(...), ...)")
    if e_step.update is lookup:
        return e_step

    def init(data: RoundData) -> dict:
        state = e_step.init(data)
        fn = lambda p, batch, k: _update_on_raw(state, p, batch[0], k, batch[1], model=data.model,
                                                preprocess=data.preprocess, update=e_step.update)
        rows = jnp.arange(data.raw.shape[0])  # each batch's rows: what an update that reads per-example state uses
        return table(*map_batches(fn, data.old_params, (data.raw, rows), data.key, data.batch_size))

    return EStep(e_step.name, init, lookup)


@functools.partial(jax.jit, static_argnames=("model", "preprocess", "update"))
def _update_on_raw(state, old_params, raw, key, rows, *, model, preprocess, update):
    """``update`` on a raw batch, preprocessed with ``key``: one compiled program per (model, preprocess, update)."""
    return update(state, model, old_params, preprocess(key, raw), rows)
