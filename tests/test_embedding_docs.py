"""docs/guides/embedding.md, executed on a tiny MNIST run; every number it computes checked independently."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import rankdata

import emflow
from emflow import train
from emflow.data import load_dataset
from experiments import embedding_docs


@pytest.fixture(scope="module")
def page(data_dir, tmp_path_factory):
    mnist = load_dataset("mnist", data_dir)
    flow = emflow.Prefixed(emflow.Logit((28, 28, 1)), emflow.Glow((28, 28, 1), 1, 1, 8))
    config = train.TrainConfig(epochs=1, batch_size=64, em_every=1, init_batch_size=64, num_samples=0,
                               warmup_steps=2, learning_rate=1e-3)
    workdir = tmp_path_factory.mktemp("embedding") / "run"
    train.fit(emflow.GenMM(flow, 2), config, emflow.Dequantizer((28, 28, 1)), mnist.x_train[:1024], None,
              workdir=workdir, progress=False, log=lambda s: None)
    return embedding_docs.run_page({"workdir": str(workdir), "data_dir": str(data_dir), "num_eval": 200,
                                    "num_steps": 100})


def test_the_page_loads_the_run_it_was_given(page):
    assert page["model"].num_components == 2
    np.testing.assert_allclose(np.exp(np.asarray(page["params"]["log_pi"])).sum(), 1.0, rtol=1e-6)


def test_jit_equals_eager(page):
    np.testing.assert_allclose(np.asarray(page["bpd"]), np.asarray(page["bpd_eager"]), rtol=1e-6)


def test_the_gradient_matches_finite_differences_and_the_ascent_climbs(page):
    f, z = page["log_posterior"], page["z_start"]
    g = jax.grad(f)(z)
    # Along the gradient's own direction the slope must be |g| (less if g pointed elsewhere);
    # along a random direction it must be <g, v>. Steps of length 0.01 and 0.1 in z: f is ~1e4 in
    # float32, so a shorter step loses the slope to rounding.
    for v, step, rtol in ((g / jnp.linalg.norm(g), 1e-2, 1e-2),
                          (jax.random.normal(jax.random.PRNGKey(5), z.shape), 1e-1, 3e-2)):
        eps = step / float(jnp.linalg.norm(v))
        numeric = (f(z + eps * v) - f(z - eps * v)) / (2 * eps)
        np.testing.assert_allclose(float(jnp.vdot(g, v)), float(numeric), rtol=rtol)
    trace = page["trace"]
    assert trace[-1] > trace[0] and np.all(np.isfinite(trace))
    assert page["x_map"].shape == page["x"].shape and float(page["x_map"].min()) > 0.0


def test_vmap_gives_per_example_values_and_gradients(page):
    model, params, x = page["model"], page["params"], page["x"]
    np.testing.assert_allclose(np.asarray(page["per_example"]), np.asarray(model.log_prob(params, x)), rtol=1e-5)
    summed = np.asarray(jax.grad(lambda xs: jnp.sum(model.log_prob(params, xs)))(x))  # examples are independent
    # float32: the two reductions round differently. The error is relative to the scores' scale
    # (hundreds of nats per pixel near the logit map's edges), so the absolute tolerance is too:
    # measured 2.5e-3 where the largest score is 541 (4.7e-6 of it; the bound is 2e-5 of it).
    np.testing.assert_allclose(np.asarray(page["scores"]), summed, rtol=1e-4, atol=2e-5 * np.abs(summed).max())


def test_the_auroc_is_the_mann_whitney_statistic(page):
    inlier, outlier = page["inlier"], page["outlier"]
    ranks = rankdata(np.r_[inlier, outlier])
    u = ranks[len(inlier):].sum() - len(outlier) * (len(outlier) + 1) / 2
    assert page["auroc"] == pytest.approx(u / (len(inlier) * len(outlier)), abs=1e-12)
    assert page["auroc"] > 0.9  # even a 1-epoch model tells clothes from digits


def test_component_features_are_the_posterior_and_the_joint(page):
    model, params, x = page["model"], page["params"], page["x"]
    joint = model.component_log_prob(params, x)
    np.testing.assert_allclose(np.asarray(page["gamma"]), np.asarray(jax.nn.softmax(joint, axis=1)), atol=1e-5)
    np.testing.assert_allclose(np.asarray(page["features"](page["mnist"].x_test[:8])),
                               np.asarray(joint) / 784, rtol=1e-5, atol=1e-6)
    assert 0.1 < page["probe_accuracy"] <= 1.0


def test_the_bijector_example_learns_and_its_log_det_is_the_jacobian(page):
    assert page["nll_end"] < page["nll_start"] - 0.3
    np.testing.assert_allclose(np.asarray(page["back"]), np.asarray(page["moons"]), atol=1e-4)
    flow, p, v = page["flow"], page["flow_params"], page["moons"][:5]
    _, log_det = flow.forward(p, v)
    for i in range(5):
        jac = jax.jacfwd(lambda u: flow.forward(p, u[None])[0][0])(v[i])
        np.testing.assert_allclose(float(log_det[i]), float(jnp.linalg.slogdet(jac)[1]), atol=1e-4)


def test_run_page_refuses_unknown_settings():
    with pytest.raises(ValueError, match=r"unknown settings \['epochs'\]"):
        embedding_docs.run_page({"epochs": 3})
