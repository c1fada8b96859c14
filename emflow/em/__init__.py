"""EM learning for GenMM and LatMM (the paper's Algorithm 1), as pure functions.

Two parameter sets: ``params`` (Phi, moved by gradient M-steps) and
``old_params`` (Phi_old, fixed for an EM round of ``t_EM`` epochs).

    gamma = e_step(model, old_params, x)                        # eq. 13 / 24, from Phi_old
    loss  = m_step_loss(model, params, x, gamma)                # -Q(Phi, Phi_old)/n + regularizer
    log_pi = update_prior(gamma_sum, count)                     # eq. 16, every t_EM epochs
    old_params = params (with the new log_pi)                   # Phi_old <- Phi

Mixture weights enter the M-step loss as constants (``stop_gradient``): they are
set only by ``update_prior``.

E-step variants (each changes the responsibilities only; every likelihood emflow
reports is the exact ``log p(x)``):

    gamma = partition_e_step(model, old_params, centroids, x)   # hard: nearest k-means centroid (warm start)
    gamma = tempered_e_step(model, old_params, x, beta)           # (pi_k p_k(x))^beta, deterministic annealing
    gamma = tempered_e_step(model, old_params, x, 1 / D, "likelihood")  # pi_k p_k(x)^(1/D), the paper's code

The same variants as objects of pure ``init``/``update`` functions, which ``fit`` and a
user's own loop call alike, are in ``emflow.em.e_steps``; responsibilities that follow
known labels are in ``emflow.em.semi_supervised``.
"""
from emflow.em.algorithm import (
    Tempering,
    check_beta,
    e_step,
    expected_complete_log_likelihood,
    lower_bound,
    m_step_loss,
    partition_e_step,
    posterior,
    tempered_e_step,
    tempered_responsibilities,
    update_prior,
    with_log_pi,
)
from emflow.em import e_steps, semi_supervised  # noqa: E402  (after algorithm: they build on it)

__all__ = [
    "Tempering",
    "check_beta",
    "e_step",
    "expected_complete_log_likelihood",
    "lower_bound",
    "m_step_loss",
    "partition_e_step",
    "posterior",
    "tempered_e_step",
    "tempered_responsibilities",
    "update_prior",
    "with_log_pi",
    "e_steps",
    "semi_supervised",
]
