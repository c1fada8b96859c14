"""emflow.em: E-step, M-step loss (eqs. 14, 25-27), prior update (eq. 16) and the EM lower bound,
against hand computations, for a GenMM and a LatMM."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from emflow import GenMM, LatMM, em
from toy_em import SMALL_FLOW, init_flow, np_perturb, small_flow_batch, stack

K = 3
X = jnp.asarray(np.random.default_rng(0).standard_normal((32, 2)).astype(np.float32) * [2.0, 1.0] + [1.0, 0.0])
# Weights for scalar functions of gamma (gradient checks).
WEIGHTS = jnp.asarray(np.random.default_rng(1).standard_normal((32, K)).astype(np.float32))


def _dirichlet_gamma(seed):
    """Arbitrary responsibilities (rows on the simplex), not from any model."""
    return jnp.asarray(np.random.default_rng(seed).dirichlet(np.ones(K), size=X.shape[0]).astype(np.float32))


def _generator(params, k):
    return jax.tree.map(lambda a: a[k], params["flows"])


def _independent_log_p_k(model, params):
    """``log p_k(x)`` of every component without the model's mixture code: ``(B, K)`` (JAX, jittable)."""
    if isinstance(model, GenMM):
        return jnp.stack([model.flow.log_prob(_generator(params, k), X) for k in range(K)], axis=1)
    latent, log_det = model.flow.forward(params["flow"], X)
    z = latent.top
    sigma = jnp.exp(params["log_stds"])
    scaled = (z[:, None, :] - params["means"][None]) / sigma[None]
    log_n = -0.5 * scaled**2 - jnp.log(sigma)[None] - 0.5 * np.log(2 * np.pi)
    return jnp.sum(log_n, axis=2) + log_det[:, None]


def _make_case(kind):
    base = init_flow(SMALL_FLOW, jax.random.PRNGKey(0), small_flow_batch())
    # (vmap: the smallest program to compile; the strategies' equivalence is test_genmm's.)
    model = GenMM(SMALL_FLOW, K, component_axis="vmap") if kind == "genmm" else LatMM(SMALL_FLOW, num_components=K)

    def params_from(seed, pi):
        """Params of the documented layout, made different per seed by perturbations."""
        log_pi = jnp.log(jnp.asarray(pi, jnp.float32))
        if kind == "genmm":
            return {"log_pi": log_pi, "flows": stack(*(np_perturb(base, 10 * seed + k, 0.2) for k in range(K)))}
        rng = np.random.default_rng(seed + 100)  # spread the latent Gaussians so the components differ
        return {"log_pi": log_pi, "flow": np_perturb(base, seed, 0.2),
                "means": rng.standard_normal((K, 2)).astype(np.float32),
                "log_stds": 0.3 * rng.standard_normal((K, 2)).astype(np.float32)}

    @jax.jit
    def evaluate(params, old, gamma):
        """Everything the tests compare, in one compiled program per model."""
        loss, grads = jax.value_and_grad(lambda p: em.m_step_loss(model, p, X, gamma))(params)
        e = em.e_step(model, old, X)
        posterior_gamma, posterior_log_p = em.posterior(model, old, X)
        return {
            "posterior_gamma": posterior_gamma,
            "posterior_log_p": posterior_log_p,
            "posterior_grad": jax.grad(lambda o: jnp.sum(WEIGHTS[:, 0] * em.posterior(model, o, X)[1]))(old),
            "log_p_old": model.log_prob(old, X),
            "loss": loss,
            "grads": grads,
            "e_step": e,
            "e_step_grad": jax.grad(lambda o: jnp.sum(WEIGHTS * em.e_step(model, o, X)))(old),
            "resp_grad": jax.grad(lambda o: jnp.sum(WEIGHTS * model.responsibilities(o, X)))(old),
            "resp_old": model.responsibilities(old, X),
            "component": model.component_log_prob(params, X),
            "component_old": model.component_log_prob(old, X),
            "log_p_k": _independent_log_p_k(model, params),
            "log_p": model.log_prob(params, X),
            "bound": em.lower_bound(model, params, old, X),
            "regularizer": model.regularizer(params),
            "q": em.expected_complete_log_likelihood(model, params, X, gamma),
        }

    return model, params_from, evaluate


@pytest.fixture(scope="module", params=["genmm", "latmm"])
def case(request):
    return _make_case(request.param)


def _np(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def test_e_step_and_posterior_are_responsibilities_without_gradient(case):
    _, params_from, evaluate = case
    params, old = params_from(1, [0.2, 0.3, 0.5]), params_from(2, [0.5, 0.25, 0.25])
    out = _np(evaluate(params, old, _dirichlet_gamma(0)))
    np.testing.assert_allclose(out["e_step"], out["resp_old"], atol=1e-6)
    np.testing.assert_allclose(out["posterior_gamma"], out["e_step"], atol=1e-7)
    np.testing.assert_allclose(out["posterior_log_p"], out["log_p_old"], rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(out["e_step"], scipy.special.softmax(out["component_old"], axis=1), atol=1e-5)
    assert np.ptp(out["e_step"], axis=1).max() > 0.1  # non-trivial responsibilities
    # No gradient reaches Phi_old through the E-step, while one does through plain responsibilities.
    for leaf in jax.tree.leaves((out["e_step_grad"], out["posterior_grad"])):
        np.testing.assert_array_equal(leaf, 0.0)
    assert max(np.abs(leaf).max() for leaf in jax.tree.leaves(out["resp_grad"])) > 1e-3


def _hand_regularizer(model, params):
    if isinstance(model, GenMM):
        return 0.0
    precision = np.exp(-np.asarray(params["log_stds"], np.float64))
    gamma_pdf = scipy.stats.gamma(a=model.gamma_shape, scale=1.0 / model.gamma_rate)
    return -np.sum(gamma_pdf.logpdf(precision)) / model.num_components


def test_m_step_loss_by_hand(case):
    model, params_from, evaluate = case
    pi = np.array([0.2, 0.3, 0.5])
    params, old = params_from(3, pi), params_from(4, [1 / 3, 1 / 3, 1 / 3])
    gamma = _dirichlet_gamma(1)
    out = evaluate(params, old, gamma)
    log_p_k = np.asarray(out["log_p_k"], np.float64)
    # The independent per-component densities agree with the model's joint minus log pi.
    np.testing.assert_allclose(np.asarray(out["component"]) - np.log(pi)[None], log_p_k, rtol=1e-5, atol=1e-4)
    g = np.asarray(gamma, np.float64)
    q = np.mean(np.sum(g * (np.log(pi)[None] + log_p_k), axis=1))
    regularizer = _hand_regularizer(model, params)
    np.testing.assert_allclose(float(out["q"]), q, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(out["regularizer"]), regularizer, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(out["loss"]), -q + regularizer, rtol=1e-5, atol=1e-5)
    if isinstance(model, LatMM):
        assert abs(regularizer) > 0.1  # the gamma prior really is in the loss
    # Mixture weights are constants of the M-step; everything else gets a gradient.
    np.testing.assert_array_equal(np.asarray(out["grads"]["log_pi"]), 0.0)
    others = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(out["grads"])
              if "log_pi" not in jax.tree_util.keystr(path)]
    assert all(np.all(np.isfinite(leaf)) for leaf in others)
    assert max(float(np.abs(leaf).max()) for leaf in others) > 1e-3


def test_m_step_loss_rejects_wrong_gamma_shape(case):
    model, params_from, _ = case
    params = params_from(3, [0.2, 0.3, 0.5])
    for shape in [(X.shape[0], K + 1), (X.shape[0] + 1, K), (X.shape[0],)]:
        expected = r"gamma must have shape \(batch, K\) = \(32, 3\), got " + re.escape(str(shape))
        with pytest.raises(ValueError, match=expected):
            em.m_step_loss(model, params, X, jnp.ones(shape) / K)


def test_update_prior_is_mean_responsibility():
    gamma = np.random.default_rng(2).dirichlet(np.ones(4), size=50)
    log_pi = np.asarray(em.update_prior(jnp.asarray(gamma.sum(axis=0), jnp.float32), 50))
    np.testing.assert_allclose(log_pi, np.log(gamma.mean(axis=0)), rtol=1e-5)
    np.testing.assert_allclose(np.exp(log_pi).sum(), 1.0, atol=1e-6)
    # Accumulated over several epochs: count is the number of examples seen.
    np.testing.assert_allclose(em.update_prior(jnp.asarray(3 * gamma.sum(axis=0), jnp.float32), 150), log_pi, rtol=1e-5)
    dead = np.asarray(em.update_prior(jnp.array([3.0, 0.0, 1.0]), 4))
    np.testing.assert_allclose(dead[[0, 2]], np.log([0.75, 0.25]), rtol=1e-6)
    assert dead[1] == -np.inf


def test_dead_component_stays_finite(case):
    _, params_from, evaluate = case
    log_pi = em.update_prior(jnp.array([30.0, 0.0, 10.0]), 40)  # component 1 got no responsibility
    params = em.with_log_pi(params_from(5, [1 / 3, 1 / 3, 1 / 3]), log_pi)
    old = em.with_log_pi(params_from(6, [1 / 3, 1 / 3, 1 / 3]), log_pi)
    gamma = evaluate(params, old, _dirichlet_gamma(0))["e_step"]  # responsibilities under old
    out = evaluate(params, old, gamma)
    np.testing.assert_array_equal(np.asarray(out["e_step"])[:, 1], 0.0)
    for name in ("loss", "log_p", "bound", "e_step", "q"):
        assert np.all(np.isfinite(np.asarray(out[name]))), name
    for leaf in jax.tree.leaves(out["grads"]):
        assert not np.any(np.isnan(np.asarray(leaf)))
    # The mixture is the two live components, renormalised: log p = logsumexp over k in {0, 2} of log pi_k + log p_k.
    live = np.asarray(out["log_p_k"], np.float64)[:, [0, 2]] + np.log([0.75, 0.25])[None]
    np.testing.assert_allclose(out["log_p"], scipy.special.logsumexp(live, axis=1), rtol=1e-5, atol=1e-4)


def test_lower_bound(case):
    _, params_from, evaluate = case
    old = params_from(7, [0.6, 0.3, 0.1])
    for seed, pi in [(8, [0.2, 0.3, 0.5]), (9, [0.1, 0.1, 0.8]), (7, [0.6, 0.3, 0.1])]:
        params = params_from(seed, pi)
        out = _np(evaluate(params, old, _dirichlet_gamma(0)))
        # B(Phi; Phi_old) = mean_i sum_k g_ik (log pi_k p_k(x_i) - log g_ik), g from Phi_old (by hand).
        g = scipy.special.softmax(out["component_old"], axis=1)
        bound = np.mean(np.sum(g * (out["component"] - np.log(g)), axis=1))
        np.testing.assert_allclose(out["bound"], bound, rtol=1e-5, atol=1e-4)
        mean_log_p = out["log_p"].mean()
        if seed == 7:  # params == old_params: the bound is tight
            np.testing.assert_allclose(out["bound"], mean_log_p, atol=1e-5)
        else:
            assert out["bound"] <= mean_log_p + 1e-6, (out["bound"], mean_log_p)
            assert mean_log_p - out["bound"] > 1e-3  # a real gap, so the inequality was tested


# --- E-step variants -------------------------------------------------------------------------

def test_tempered_e_step_beta_one_is_exact_and_both_temperings_match_their_closed_forms(case):
    model, params_from, _ = case
    old = params_from(2, [0.5, 0.25, 0.25])
    run = jax.jit(lambda o, beta: (em.posterior(model, o, X)[0], em.tempered_e_step(model, o, X, beta),
                                   em.tempered_e_step(model, o, X, beta, "likelihood"),
                                   model.component_log_prob(o, X)))
    exact, joint_1, lik_1, _ = run(old, 1.0)
    np.testing.assert_array_equal(joint_1, exact)  # bit for bit: the same formula as the exact E-step
    np.testing.assert_allclose(lik_1, exact, atol=1e-6)
    _, joint_b, lik_b, component = _np(run(old, 0.3))
    log_pi = np.log([0.5, 0.25, 0.25])
    np.testing.assert_allclose(joint_b, scipy.special.softmax(0.3 * component, axis=1), atol=1e-6)
    # The paper code's: pi_k p_k(x)^beta.
    np.testing.assert_allclose(lik_b, scipy.special.softmax(log_pi + 0.3 * (component - log_pi), axis=1), atol=1e-6)
    # Tempering flattens the responsibilities.
    assert np.mean(np.max(joint_b, axis=1)) < np.mean(np.max(np.asarray(exact), axis=1))


def test_tempered_e_step_refuses_beta_outside_zero_one(case):
    model, params_from, _ = case
    for beta in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=re.escape(f"beta must lie in (0, 1], got {beta}")):
            em.tempered_e_step(model, params_from(2, [0.5, 0.25, 0.25]), X, beta)

