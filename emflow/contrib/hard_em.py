"""Classification ("hard") EM as an E-step: each example wholly to its most probable component.

    fit(..., e_step_of_round=lambda r: hard())

The responsibilities are one-hot ``argmax_k pi_k p_k(x)`` under Phi_old: the M-step then maximises
each component's likelihood on its own examples (the classification likelihood of Celeux and
Govaert, 1992), not the mixture likelihood; pi becomes the share of examples each component wins.
A worked example of an E-step added without touching ``fit``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from emflow import em
from emflow.em.e_steps import EStep


def _hard_update(state, model, old_params, x, idx):
    """``(one_hot(argmax gamma): (B, K), log p(x; Phi_old): (B,))``."""
    del state, idx
    gamma, log_px = em.posterior(model, old_params, x)
    return jax.nn.one_hot(jnp.argmax(gamma, axis=1), model.num_components, dtype=jnp.float32), log_px


def hard() -> EStep:
    """The hard E-step (per batch; ``emflow.em.e_steps.cached(hard())`` evaluates it once per round)."""
    return EStep("hard", lambda data: {}, _hard_update)
