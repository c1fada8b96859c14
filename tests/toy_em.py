"""Helpers shared by test_genmm.py, test_latmm.py and test_em.py: the 2-D two-cluster toy, Algorithm 1
written over emflow.em's pure functions, and cheap (compile-once) parameter construction.

The training loop is the tests' own; only the library's pure functions are called:
per batch, responsibilities from Phi_old (E-step), one Adam step on the M-step
loss (mixture weights held fixed), responsibilities accumulated; every ``t_em``
epochs ``log pi <- log(sum gamma / count)`` (eq. 16) and ``Phi_old <- Phi``.

XLA compilation dominates these tests on a CPU, so flows are initialised
through one cached ``jax.jit`` per flow configuration (``init_flow``) and
perturbed with NumPy noise (``np_perturb``) rather than JAX random programs.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from checks import CONSTANT_LEAVES
from emflow import Glow, VectorFlow, em

# Flows shared across the three files, so that each is initialised (compiled) once per session.
SMALL_FLOW = VectorFlow(2, num_steps=2, hidden=8)
TINIEST_FLOW = VectorFlow(2, num_steps=1, hidden=2, num_hidden_layers=1)  # for the models' init tests
TINY_GLOW = Glow((4, 4, 1), num_levels=2, num_steps=1, hidden_channels=4)  # top (1, 1, 8), one split (2, 2, 2)


def small_flow_batch() -> jax.Array:
    """The (512, 2) batch SMALL_FLOW is initialised on."""
    x = np.random.default_rng(1234).standard_normal((512, 2)) * [2.0, 1.0] + [1.0, 0.0]
    return jnp.asarray(x, jnp.float32)


def glow_batch() -> jax.Array:
    """The (6, 4, 4, 1) batch the Glow tests evaluate on."""
    return jnp.asarray(np.random.default_rng(4321).uniform(size=(6, 4, 4, 1)).astype(np.float32))


@functools.cache
def _jitted_init(flow):
    return jax.jit(flow.init)


def init_flow(flow, key, x):
    """``flow.init(key, x)``, compiled once per (flow configuration, batch shape) for the whole test session."""
    return _jitted_init(flow)(key, jnp.asarray(x))


def np_perturb(params, seed: int, scale: float):
    """``checks.perturb`` with NumPy noise: N(0, scale^2) on every trainable leaf (NumPy arrays out).

    Same purpose (zero-initialised layers are not trivial identities), without a
    JAX random-number program to compile per pytree structure.
    """
    rng = np.random.default_rng(seed)

    def noisy(path, leaf):
        leaf = np.asarray(leaf)
        if any(name in jax.tree_util.keystr(path) for name in CONSTANT_LEAVES):
            return leaf
        return leaf + (scale * rng.standard_normal(leaf.shape)).astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(noisy, params)


def random_flow_params(flow, x, seed: int, scale: float = 0.1):
    """Params with the layout ``flow.init`` gives, filled with NumPy noise, without compiling ``flow.init``.

    The layout comes from ``jax.eval_shape`` (traced only). Every leaf is N(0, scale^2)
    except the invertible linear layers': an LU layer's fixed permutation is the
    identity and its fixed signs are +1, a plain kernel is I + noise. For tests
    that compare a mixture with independent computations on the same flow params.
    """
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if name.endswith("['perm']"):
            return np.broadcast_to(np.eye(leaf.shape[-1], dtype=leaf.dtype), leaf.shape).copy()
        if name.endswith("['sign_s']"):
            return np.ones(leaf.shape, leaf.dtype)
        noise = (scale * rng.standard_normal(leaf.shape)).astype(leaf.dtype)
        if name.endswith("['linear']['kernel']"):
            return noise + np.eye(leaf.shape[-1], dtype=leaf.dtype)
        return noise

    return jax.tree_util.tree_map_with_path(fill, jax.eval_shape(flow.init, jax.random.PRNGKey(0), x))


def stack(*trees):
    """Stack pytrees leaf-wise on a new leading axis (K generators' params)."""
    return jax.tree.map(lambda *leaves: np.stack([np.asarray(a) for a in leaves]), *trees)


# --- the toy ---------------------------------------------------------------------------------

CENTRES = np.array([[-4.0, 0.0], [4.0, 0.0]], np.float32)
CLUSTER_STD = 0.5
WEIGHTS = np.array([0.25, 0.75])


def two_clusters(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points, exactly 25% around (-4, 0) and 75% around (4, 0), std 0.5: ``(x: (n, 2), labels: (n,))``."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], [n // 4, n - n // 4])
    rng.shuffle(labels)
    x = CENTRES[labels] + CLUSTER_STD * rng.standard_normal((n, 2)).astype(np.float32)
    return x.astype(np.float32), labels


def farthest_pair(x: np.ndarray, seed: int) -> np.ndarray:
    """Two seed points for EM: a random data point and the data point farthest from it, ``(2, D)``.

    EM from two identical components sits on a saddle and leaves it slowly: the
    library's ``init`` gives every generator the same ActNorm statistics (and
    LatMM means within 0.01 of each other), so both start as the same density.
    Seeding the components at two far-apart data points (greedy k-means++ style)
    breaks that symmetry; everything after it is plain Algorithm 1.
    """
    x = np.asarray(x)
    i0 = np.random.default_rng(seed).integers(len(x))
    i1 = int(np.argmax(np.sum((x - x[i0]) ** 2, axis=1)))
    return x[[i0, i1]]


def seeded_genmm_init(model, key, x, seed: int) -> dict:
    """GenMM params, generator k = ``model.flow.init`` (own key) on ``x`` re-centred at seed point k; pi uniform."""
    x = np.asarray(x)
    centres = farthest_pair(x, seed)
    assert model.num_components == len(centres)
    keys = jax.random.split(key, len(centres))
    flows = [init_flow(model.flow, k, x - x.mean(axis=0) + c) for k, c in zip(keys, centres)]
    return {"log_pi": jnp.log(jnp.full((2,), 0.5, jnp.float32)), "flows": stack(*flows)}


def seeded_latmm_init(model, key, x, seed: int) -> dict:
    """LatMM params: flow initialised on ``x``, unit stds, means at the codes of the two seed points; pi uniform."""
    assert model.num_components == 2
    flow_params = init_flow(model.flow, key, x)
    latent, _ = jax.jit(model.flow.forward)(flow_params, jnp.asarray(farthest_pair(x, seed)))
    m = latent.top.shape[1]
    return {"log_pi": jnp.log(jnp.full((2,), 0.5, jnp.float32)), "flow": flow_params, "means": latent.top,
            "log_stds": jnp.zeros((2, m), jnp.float32)}


def fit_em(model, x, key, *, num_rounds: int, t_em: int = 1, batch_size: int = 250,
           learning_rate=1e-2, params=None, track: bool = False, warm_centroids=None, warm_rounds: int = 0):
    """Algorithm 1 on ``x`` (length a multiple of ``batch_size``); ``learning_rate`` may be an optax schedule.

    Returns ``(params, history)``. With ``track``, ``history`` holds per EM round
    (lists of floats, on the whole of ``x``): ``log_px_old`` = mean log p(X; Phi_old)
    at the start of the round, ``bound_old`` = B(Phi_old; Phi_old), and at its end
    ``bound_new`` = B(Phi_new; Phi_old) and ``log_px_new`` = mean log p(X; Phi_new)
    (Phi_new with the updated pi). ``warm_centroids`` (K, F) with ``warm_rounds`` > 0: the first
    rounds' responsibilities are ``em.partition_e_step``'s (the warm start), then exact.
    """
    x = jnp.asarray(x)
    n = x.shape[0]
    assert n % batch_size == 0, (n, batch_size)
    num_batches = n // batch_size
    k_init, key = jax.random.split(key)
    if params is None:
        params = jax.jit(model.init)(k_init, x)
    # Strongly typed JAX arrays throughout, so that `epoch` compiles once (a weakly typed leaf would
    # retrace it when the first update makes it strong).
    params = jax.tree.map(lambda a: jnp.array(a, dtype=jnp.asarray(a).dtype), params)
    opt = optax.adam(learning_rate)
    opt_state = jax.jit(opt.init)(params)

    @jax.jit
    def epoch(params, old_params, opt_state, gamma_sum, perm_key, warm):
        batches = jax.random.permutation(perm_key, x).reshape(num_batches, batch_size, *x.shape[1:])

        def step(carry, xb):
            params, opt_state, gamma_sum = carry
            gamma = em.e_step(model, old_params, xb)
            if warm_centroids is not None:
                gamma = jnp.where(warm, em.partition_e_step(model, old_params, warm_centroids, xb), gamma)
            loss, grads = jax.value_and_grad(lambda p: em.m_step_loss(model, p, xb, gamma))(params)
            updates, opt_state = opt.update(grads, opt_state, params)
            new = em.with_log_pi(optax.apply_updates(params, updates), params["log_pi"])  # pi moves only by eq. 16
            return (new, opt_state, gamma_sum + jnp.sum(gamma, axis=0)), loss

        (params, opt_state, gamma_sum), losses = jax.lax.scan(step, (params, opt_state, gamma_sum), batches)
        return params, opt_state, gamma_sum, jnp.mean(losses)

    @jax.jit
    def diagnostics(params, old_params):
        return jnp.mean(model.log_prob(params, x)), em.lower_bound(model, params, old_params, x)

    history = {"log_px_old": [], "bound_old": [], "bound_new": [], "log_px_new": []}
    old_params = params
    for r in range(num_rounds):
        if track:
            log_px, bound = diagnostics(old_params, old_params)
            history["log_px_old"].append(float(log_px))
            history["bound_old"].append(float(bound))
        gamma_sum = jnp.zeros((model.num_components,), jnp.float32)
        for _ in range(t_em):
            key, k_perm = jax.random.split(key)
            params, opt_state, gamma_sum, _ = epoch(params, old_params, opt_state, gamma_sum, k_perm,
                                                    jnp.bool_(r < warm_rounds))
        params = em.with_log_pi(params, em.update_prior(gamma_sum, t_em * n))
        if track:
            log_px, bound = diagnostics(params, old_params)
            history["log_px_new"].append(float(log_px))
            history["bound_new"].append(float(bound))
        old_params = params
    return params, history


def grid_points(lim: float = 10.0, num: int = 400) -> tuple[np.ndarray, float]:
    """Cell centres of a ``num x num`` grid over ``[-lim, lim]^2`` (``(num^2, 2)``) and the cell area."""
    h = 2 * lim / num
    centres = -lim + h * (np.arange(num) + 0.5)
    xx, yy = np.meshgrid(centres, centres)
    return np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32), h * h


def evaluate_toy(model, params, x) -> tuple[np.ndarray, float]:
    """Responsibilities on ``x`` and the Riemann sum of ``exp(log p)`` over [-10, 10]^2 (400 x 400), in one program."""
    points, area = grid_points()
    x, points = jnp.asarray(x), jnp.asarray(points)
    gamma, log_p = jax.jit(lambda p: (model.responsibilities(p, x), model.log_prob(p, points)))(params)
    return np.asarray(gamma), float(np.sum(np.exp(np.asarray(log_p, np.float64))) * area)


def cluster_agreement(responsibilities: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of points whose argmax responsibility is their true cluster, up to swapping the two labels."""
    pred = np.argmax(np.asarray(responsibilities), axis=1)
    agree = float(np.mean(pred == labels))
    return max(agree, 1.0 - agree)


def assert_toy_recovered(params, gamma: np.ndarray, labels: np.ndarray) -> None:
    """The clusters are separated (> 95% agreement) and pi matches WEIGHTS within 0.05, in cluster order."""
    assert cluster_agreement(gamma, labels) > 0.95
    first = int(np.argmax(gamma[labels == 0].mean(axis=0)))  # the component that took cluster 0
    pi = np.exp(np.asarray(params["log_pi"], np.float64))
    np.testing.assert_allclose(pi.sum(), 1.0, atol=1e-5)
    np.testing.assert_allclose([pi[first], pi[1 - first]], WEIGHTS, atol=0.05)


def train_toy(model, seeded_init, seed: int, *, rounds: int = 20, t_em: int = 5, track: bool = False):
    """The toy run both model tests use: ``model`` on ``two_clusters()``, started from ``seeded_init``,
    full-batch Adam with a cosine learning rate 1e-2 -> 5e-4, ``rounds`` EM rounds of ``t_em`` epochs.

    Returns ``(params, history, gamma, mass, labels)``.
    """
    x, labels = two_clusters()
    init = seeded_init(model, jax.random.PRNGKey(seed), x, seed)
    schedule = optax.cosine_decay_schedule(1e-2, rounds * t_em, alpha=0.05)
    params, history = fit_em(model, x, jax.random.PRNGKey(seed + 1), num_rounds=rounds, t_em=t_em,
                             batch_size=len(x), learning_rate=schedule, params=init, track=track)
    gamma, mass = evaluate_toy(model, params, x)
    return params, history, gamma, mass, labels
