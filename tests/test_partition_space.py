"""The partition space: the blur against scipy, unit norms, k-means restarts, and GenMM and LatMM using them."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from emflow import GenMM, Glow, LatMM, VectorFlow, em, train
from emflow.mixtures import partition, partition_space
from toy_em import TINIEST_FLOW


def test_gaussian_blur_equals_scipy_with_zeros_outside_the_image():
    x = np.random.default_rng(0).random((3, 9, 7, 2)).astype(np.float32)
    ours = np.asarray(partition_space.gaussian_blur(jnp.asarray(x)))
    ref = ndimage.gaussian_filter(x.astype(np.float64), sigma=(0, 1.0, 1.0, 0), mode="constant", truncate=3.0)
    np.testing.assert_allclose(ours, ref, atol=2e-6)
    kernel = np.asarray(partition_space.gaussian_kernel())
    assert kernel.shape == (7,) and abs(kernel.sum() - 1.0) < 1e-6


def test_unit_features_have_norm_one_and_an_all_zero_example_stays_at_the_origin():
    x = np.random.default_rng(1).random((4, 3, 3, 1)).astype(np.float32)
    x[2] = 0.0
    f = np.asarray(partition_space.features("unit", jnp.asarray(x), (3, 3, 1)))
    assert f.shape == (4, 9)
    flat = x.reshape(4, -1)
    for i in (0, 1, 3):
        np.testing.assert_allclose(f[i], flat[i] / np.linalg.norm(flat[i]), rtol=1e-6)
    np.testing.assert_array_equal(f[2], np.zeros(9))
    # brightness does not move an example in this space
    np.testing.assert_allclose(partition_space.features("unit", jnp.asarray(3.0 * x), (3, 3, 1)), f, rtol=1e-6)
    np.testing.assert_array_equal(partition_space.features("input", jnp.asarray(x), (3, 3, 1)), flat)
    blurred = np.asarray(partition_space.features("blurred_unit", jnp.asarray(x), (3, 3, 1)))
    ref = ndimage.gaussian_filter(x.astype(np.float64), sigma=(0, 1, 1, 0), mode="constant", truncate=3.0).reshape(4, -1)
    np.testing.assert_allclose(blurred[0], ref[0] / np.linalg.norm(ref[0]), atol=1e-6)


def test_kmeans_restarts_keep_the_start_of_least_inertia():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.standard_normal((60, 2)) + c for c in ([0, 0], [5, 0], [0, 5], [5, 5], [2.5, 2.5])])
    x = jnp.asarray(x.astype(np.float32))
    key = jax.random.PRNGKey(0)
    singles = [partition.kmeans(k, x, 6, min_part_fraction=0.0) for k in jax.random.split(key, 8)]
    inertias = [float(np.sum(np.min(((np.asarray(x)[:, None] - np.asarray(p.centroids)[None]) ** 2).sum(2), 1)))
                for p in singles]
    assert max(inertias) - min(inertias) > 1.0, "the starts must differ for this test to mean anything"
    best = jax.jit(lambda k, f: partition.kmeans(k, f, 6, min_part_fraction=0.0, num_starts=8))(key, x)
    np.testing.assert_allclose(best.centroids, singles[int(np.argmin(inertias))].centroids, atol=1e-5)
    np.testing.assert_allclose(float(partition.inertia(x, best.centroids)), min(inertias), rtol=1e-5)
    with pytest.raises(ValueError, match="num_starts must be >= 1, got 0"):
        partition.kmeans(key, x, 2, num_starts=0)


def _two_rays(n_per: int = 50):
    """Examples along two rays that differ in brightness along each: k-means on the input splits by
    brightness, k-means on directions by ray. ``(x (2 n_per, 3), ray (2 n_per,))``."""
    rng = np.random.default_rng(3)
    rays = np.array([[1.0, 0.6, 0.2], [0.6, 1.0, 0.2]], np.float32)
    ray = np.repeat([0, 1], n_per)
    x = (rays[ray] * rng.uniform(0.5, 10.0, (2 * n_per, 1)) + 0.02 * rng.standard_normal((2 * n_per, 3)))
    return x.astype(np.float32), ray


@pytest.mark.parametrize("cls", [GenMM, LatMM])
def test_a_mixture_partitions_its_input_in_its_partition_space(cls):
    x, ray = _two_rays()
    flow = VectorFlow(3, num_steps=1, hidden=2, num_hidden_layers=1)
    model = cls(flow, 2, partition_space="unit", kmeans_starts=3)
    params, part = jax.jit(model.init_with_partition)(jax.random.PRNGKey(0), jnp.asarray(x))
    labels = np.asarray(part.labels)
    assert len({(int(a), int(b)) for a, b in zip(labels, ray)}) == 2   # the rays, up to naming
    assert part.centroids.shape == (2, 3)                               # in the features' space
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(model.partition_features(params, jnp.asarray(x)), unit, rtol=1e-6)
    hard = np.asarray(em.partition_e_step(model, params, part.centroids, jnp.asarray(x)))
    np.testing.assert_array_equal(hard.argmax(1), labels)   # the warm start reads the same space
    # The default space (GenMM: the input; LatMM: its latents, about the input scaled) mixes the rays.
    default = np.asarray(cls(flow, 2).init_with_partition(jax.random.PRNGKey(0), jnp.asarray(x))[1].labels)
    assert len({(int(a), int(b)) for a, b in zip(default, ray)}) > 2


def _assert_gaussians_at_the_parts_latents(params, z, labels):
    """Each latent Gaussian: its part's latents' mean and per-dimension std (numpy, float64)."""
    for k in range(params["means"].shape[0]):
        np.testing.assert_allclose(params["means"][k], z[labels == k].mean(axis=0), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.exp(params["log_stds"][k]), z[labels == k].std(axis=0), rtol=1e-3, atol=1e-4)


def test_latmm_places_its_gaussians_at_the_latents_of_each_input_space_part():
    x, _ = _two_rays()
    model = LatMM(VectorFlow(3, num_steps=1, hidden=2, num_hidden_layers=1), 2, partition_space="unit")
    params, part = jax.jit(model.init_with_partition)(jax.random.PRNGKey(0), jnp.asarray(x))
    labels = np.asarray(part.labels)
    z = np.asarray(model.top_latents(params, jnp.asarray(x)), np.float64)
    _assert_gaussians_at_the_parts_latents(params, z, labels)


def test_latmm_places_its_gaussians_at_an_input_partition_of_more_examples():
    """``train.place_on_more_examples``: the partition of all 300 examples' unit features, not the init batch's."""
    x, _ = _two_rays(150)
    model = LatMM(VectorFlow(3, num_steps=1, hidden=2, num_hidden_layers=1), 2, partition_space="unit")
    init = jax.jit(model.init)(jax.random.PRNGKey(1), jnp.asarray(x[::10]))
    config = train.TrainConfig(partition_size=300, eval_batch_size=64)
    params, part = train.place_on_more_examples(model, init, jnp.asarray(x), jax.random.PRNGKey(2),
                                                train.identity_preprocess, config)
    features = model.partition_features(init, jnp.asarray(x))
    labels = np.asarray(partition.nearest(part.centroids, features))
    z = np.asarray(model.top_latents(init, jnp.asarray(x)), np.float64)
    _assert_gaussians_at_the_parts_latents(params, z, labels)
    with pytest.raises(ValueError, match=r"features must have one row per latent \(300\), got shape \(5, 3\)"):
        model.place_latent_gaussians(jax.random.PRNGKey(0), init, jnp.asarray(z, jnp.float32), features[:5])


@pytest.mark.parametrize("cls, spaces", [(GenMM, "'input', 'unit', 'blurred_unit'"),
                                         (LatMM, "'latent', 'input', 'unit', 'blurred_unit'")])
def test_bad_partition_space_or_starts_is_a_clear_error(cls, spaces):
    name = cls.__name__
    with pytest.raises(ValueError, match=rf"{name}: partition_space must be one of \({spaces}\), got 'pca'"):
        cls(TINIEST_FLOW, 2, partition_space="pca")
    with pytest.raises(ValueError, match=rf"{name}: partition_space='blurred_unit' blurs images of shape \(H, W, C\), "
                                         r"but the events have shape \(2,\)"):
        cls(TINIEST_FLOW, 2, partition_space="blurred_unit")
    with pytest.raises(ValueError, match=f"{name}: kmeans_starts must be >= 1, got 0"):
        cls(TINIEST_FLOW, 2, kmeans_starts=0)
    cls(Glow((4, 4, 1), 1, 1, 4), 2, partition_space="blurred_unit")   # images: fine
