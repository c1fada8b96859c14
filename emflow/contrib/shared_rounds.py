"""Shared rounds: EM rounds before the warm start in which every component learns every example.

    schedule = shared_rounds.schedule(1, train.e_step_schedule(config, num_dims, True))
    fit(..., e_step_of_round=schedule)

``gamma = 1/K`` for every example: each generator's M-step gradient is that of its own maximum
likelihood on the whole data set, scaled by 1/K, so no component enters the mixture having learned
from more data than another, and pi stays uniform (eq. 16). Measured on MNIST (the research log,
``experiments.ablations.init_variants``): it did not keep GenMM's generators alive, so it is not
in the core.
"""
from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

from emflow import checks
from emflow.bijectors.base import Array, check_batch
from emflow.em.e_steps import EStep, RoundData, lookup, without_likelihood


def uniform_responsibilities(batch: int, num_components: int) -> Array:
    """``gamma_ik = 1/K`` for every example: ``(batch, K)``."""
    checks.integer("uniform_responsibilities", "batch", batch, 0)
    checks.integer("uniform_responsibilities", "num_components", num_components, 1)
    return jnp.full((batch, num_components), 1.0 / num_components, jnp.float32)


def uniform_e_step(model, x: Array) -> Array:
    """Responsibilities of a shared round: ``1/K`` for every example, ``(B, K)``.

    Every component then learns the whole batch (each generator's M-step gradient is that of
    its own maximum likelihood, scaled by 1/K), so no component enters the mixture having
    learned from more data than another, and pi stays uniform (eq. 16).
    """
    check_batch(x, model.event_shape, "uniform_e_step")
    return uniform_responsibilities(x.shape[0], model.num_components)


def uniform() -> EStep:
    """The shared round's E-step: ``gamma = 1/K`` for every training example (a table, no likelihood)."""
    def init(data: RoundData) -> dict:
        return without_likelihood(uniform_responsibilities(data.raw.shape[0], data.model.num_components))

    return EStep("shared (1/K)", init, lookup)


def schedule(num_shared: int, then: Callable[[int], EStep]) -> Callable[[int], EStep]:
    """``num_shared`` uniform rounds, then ``then``'s schedule from its round 0."""
    if isinstance(num_shared, bool) or not isinstance(num_shared, int) or num_shared < 0:
        raise ValueError(f"shared_rounds.schedule: num_shared must be an integer >= 0, got {num_shared!r}")
    return lambda r: uniform() if r < num_shared else then(r - num_shared)
