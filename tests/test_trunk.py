"""GlowTrunk and GenMM with a trunk: a bijection with the right log-det, densities of the composed map, init, sampling."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import emflow
from emflow import em, train
from emflow.evaluation import interpolation
from emflow.flows import latent as latent_lib

from checks import assert_bijection, brute_force_log_det, perturb

SHAPE = (4, 4, 1)
LOGIT = emflow.Logit(SHAPE, 1e-2)
TRUNK = emflow.GlowTrunk(SHAPE, num_steps=2, hidden_channels=8, prefix=LOGIT)
FLOW = emflow.Glow(SHAPE, num_levels=1, num_steps=1, hidden_channels=8)
MODEL = emflow.GenMM(FLOW, 2, component_axis="vmap", trunk=TRUNK)


def _images(n=16, seed=0):
    return jax.random.uniform(jax.random.PRNGKey(seed), (n,) + SHAPE, minval=0.05, maxval=0.95)


def _params(seed=0):
    params = MODEL.init(jax.random.PRNGKey(seed), _images(64, seed + 1))
    return perturb(params, jax.random.PRNGKey(seed + 2), 0.05)  # couplings start at zero: make them act


@pytest.mark.parametrize("prefix", [None, LOGIT])
def test_trunk_is_a_bijection_with_the_jacobian_log_det(prefix):
    trunk = emflow.GlowTrunk(SHAPE, num_steps=2, hidden_channels=8, prefix=prefix)
    x = _images(4)
    params = perturb(trunk.init(jax.random.PRNGKey(0), x), jax.random.PRNGKey(1), 0.1)
    y, _ = assert_bijection(jax.jit, trunk, params, x)
    assert y.shape == x.shape


def test_trunk_init_normalises_the_batch_in_its_first_actnorm():
    x = _images(256)
    params = TRUNK.init(jax.random.PRNGKey(0), x)
    first = jax.tree.map(lambda a: a[0], params)["actnorm"]
    squeezed = emflow.bijectors.squeeze.Squeeze(SHAPE).forward({}, LOGIT.forward({}, x)[0])[0]
    out = (squeezed + first["bias"]) * jnp.exp(first["log_scale"])
    np.testing.assert_allclose(np.mean(out, axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(np.std(out, axis=(0, 1, 2)), 1.0, atol=1e-3)


def test_each_generator_density_is_that_of_the_composed_map():
    """log p_k(x) = log N(z_k) + log|det dz_k/dx| for the whole map x -> trunk -> generator k,
    the log-det from the brute-force Jacobian."""
    params, x = _params(), _images(3, seed=7)
    log_p = MODEL.generator_log_prob(params, x)
    for k in range(2):
        gen = MODEL.generator(params, k)
        full = lambda p, v, gen=gen: FLOW.forward(gen, TRUNK.forward(p, v)[0])
        for i in range(3):
            z = latent_lib.flatten(full(params["trunk"], x[i:i + 1])[0])
            want = (latent_lib.standard_normal_log_prob(z)[0]
                    + brute_force_log_det(full, params["trunk"], x[i]))
            np.testing.assert_allclose(float(log_p[i, k]), want, rtol=1e-5, atol=2e-3)


def test_samples_decode_through_the_trunk():
    params = _params()
    key = jax.random.PRNGKey(3)
    samples = MODEL.component_samples(params, key, 5)  # (K, 5, *SHAPE)
    latents = latent_lib.sample(key, FLOW.latent_shapes, 5, 1.0)
    for k in range(2):
        z, _ = FLOW.forward(MODEL.generator(params, k), TRUNK.forward(params["trunk"], samples[k])[0])
        np.testing.assert_allclose(latent_lib.flatten(z), latent_lib.flatten(latents), atol=2e-3)
    drawn = MODEL.sample(params, key, 6)
    assert drawn.shape == (6,) + SHAPE and bool(jnp.all((drawn > 0) & (drawn < 1)))  # through the logit's inverse


def test_init_is_deterministic_and_only_the_generators_carry_the_k_axis():
    x = _images(64)
    a, part = MODEL.init_with_partition(jax.random.PRNGKey(0), x)
    b, _ = MODEL.init_with_partition(jax.random.PRNGKey(0), x)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    assert set(a) == {"log_pi", "flows", "trunk"} and part is not None
    assert all(leaf.shape[0] == 2 for leaf in jax.tree.leaves(a["flows"]))
    assert jax.tree.structure(a["trunk"]) == jax.tree.structure(TRUNK.init(jax.random.PRNGKey(1), x))
    no_trunk = emflow.GenMM(emflow.Prefixed(LOGIT, FLOW), 2).init(jax.random.PRNGKey(0), x)
    assert set(no_trunk) == {"log_pi", "flows"}


def test_the_m_step_trains_the_trunk_on_every_example():
    """gamma one-hot on generator 0: generator 1's params get no gradient, the trunk's do."""
    params, x = _params(), _images(8)
    gamma = jnp.tile(jnp.array([[1.0, 0.0]]), (8, 1))
    grads = jax.grad(lambda p: em.m_step_loss(MODEL, p, x, gamma))(params)
    assert all(float(jnp.max(jnp.abs(g[1]))) == 0.0 for g in jax.tree.leaves(grads["flows"]))
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads["trunk"])) > 0


def test_save_load_fit_and_interpolate_with_a_trunk(tmp_path):
    images = np.asarray(jax.random.randint(jax.random.PRNGKey(0), (64,) + SHAPE, 0, 256), np.uint8)
    config = train.TrainConfig(epochs=1, batch_size=16, em_every=1, warmup_steps=2, init_batch_size=32,
                               num_samples=4, e_step="cached")
    result = train.fit(MODEL, config, emflow.Dequantizer(SHAPE), images, images[:16], workdir=tmp_path / "run",
                       progress=False, log=lambda s: None)
    assert np.isfinite(result.history[-1]["test_nll_nats_per_dim"])
    model, params = emflow.load(tmp_path / "run")
    assert model == MODEL
    x = _images(4)
    np.testing.assert_allclose(model.log_prob(params, x), MODEL.log_prob(result.state.params, x), rtol=1e-6)
    images_t = interpolation.interpolate_genmm(MODEL, params, x[:2], x[2:], jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(images_t[0], x[:2], atol=2e-3)  # t = 0 decodes x1 through its generator and the trunk
    np.testing.assert_allclose(images_t[1], x[2:], atol=2e-3)


def test_a_shared_first_level_is_the_generators_own_first_level_tied(tmp_path):
    """Generators without first-level steps behind a trunk of m steps: generator k's density is that of one
    Glow whose first level has m steps with the trunk's params and whose other layers are generator k's."""
    shape = (8, 8, 1)
    trunk = emflow.GlowTrunk(shape, num_steps=2, hidden_channels=4)
    model = emflow.GenMM(emflow.Glow(shape, num_levels=2, num_steps=1, first_level_steps=0, hidden_channels=4), 2,
                         trunk=trunk)
    x = jax.random.uniform(jax.random.PRNGKey(0), (5,) + shape)
    params = perturb(jax.jit(model.init)(jax.random.PRNGKey(1), jax.random.uniform(jax.random.PRNGKey(2), (64,) + shape)),
                     jax.random.PRNGKey(3), 0.05)
    assert "steps" not in params["flows"]["levels"][0]
    tied = emflow.Glow(shape, num_levels=2, num_steps=1, first_level_steps=2, hidden_channels=4)
    tied_log_prob = jax.jit(tied.log_prob)
    log_p = jax.jit(model.generator_log_prob)(params, x)
    for k in range(2):
        own = model.generator(params, k)["levels"]
        glued = {"levels": [{"steps": params["trunk"], "split": own[0]["split"]}, own[1]]}
        np.testing.assert_allclose(log_p[:, k], tied_log_prob(glued, x), rtol=1e-6, atol=1e-4)
    emflow.save(tmp_path / "m", model, params)
    loaded_model, loaded = emflow.load(tmp_path / "m")
    assert loaded_model == model
    log_prob = jax.jit(model.log_prob)
    np.testing.assert_allclose(log_prob(loaded, x), log_prob(params, x), rtol=1e-6)


def test_refusals():
    with pytest.raises(ValueError, match=r"the trunk maps \(8, 8, 1\) but the generators take \(4, 4, 1\)"):
        emflow.GenMM(FLOW, 2, trunk=emflow.GlowTrunk((8, 8, 1), 1, 4))
    with pytest.raises(ValueError, match="num_steps must be an integer >= 1, got 0"):
        emflow.GlowTrunk(SHAPE, 0, 4)
    with pytest.raises(ValueError, match=r"the prefix acts on \(8, 8, 1\), the trunk on \(4, 4, 1\)"):
        emflow.GlowTrunk(SHAPE, 1, 4, prefix=emflow.Logit((8, 8, 1)))
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("components",))
    with pytest.raises(ValueError, match="a trunk with a mesh is not available"):
        emflow.GenMM(FLOW, 2, mesh=mesh, trunk=TRUNK)
