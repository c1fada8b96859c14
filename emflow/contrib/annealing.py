"""Deterministic annealing (Ueda and Nakano): tempered responsibilities with beta rising to 1.

    schedule = annealing.schedule(0.1, 3, train.e_step_schedule(config, num_dims, has_partition))
    fit(..., e_step_of_round=schedule)

``gamma ∝ (pi_k p_k(x))^beta`` with beta rising geometrically from ``beta0`` to 1 over ``rounds``
rounds, then ``then``'s E-steps. The annealed rounds take the place of ``then``'s first exact
rounds (its warm-start rounds run first, as they are); each is cached when ``then``'s exact
round is. Measured on MNIST (the research log, ``experiments.ablations.init_variants``): it did
not keep GenMM's generators alive, so it is not in the core.
"""
from __future__ import annotations

from typing import Callable

from emflow import checks
from emflow.em import algorithm, e_steps
from emflow.em.e_steps import EStep


def beta_of_round(beta0: float, rounds: int, r: int) -> float:
    """``beta0 ** (1 - r / rounds)``: beta0 at round 0, rising geometrically to 1 at round ``rounds``."""
    algorithm.check_beta(beta0, "annealing.beta_of_round beta0")
    checks.integer("annealing.beta_of_round", "rounds", rounds, 1)
    checks.integer("annealing.beta_of_round", "r", r, 0)
    return float(beta0 ** (1.0 - r / rounds))


def schedule(beta0: float, rounds: int, then: Callable[[int], EStep]) -> Callable[[int], EStep]:
    """``then`` with its first ``rounds`` exact rounds annealed from ``beta0`` (see the module docstring)."""
    algorithm.check_beta(beta0, "annealing.schedule beta0")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"annealing.schedule: rounds must be an integer >= 1, got {rounds!r}")

    def pick(r: int) -> EStep:
        step = then(r)
        if step.name != "beta 1 (joint)":
            return step
        start = next(s for s in range(r + 1) if then(s).name == "beta 1 (joint)")  # then's first exact round
        if r - start >= rounds:
            return step
        annealed = e_steps.tempered(beta_of_round(beta0, rounds, r - start))
        return e_steps.cached(annealed) if step.update is e_steps.lookup else annealed

    return pick
