"""GenMM's partition space: the blur against scipy, unit norms, k-means restarts, and GenMM using them."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from emflow import GenMM, Glow, VectorFlow, em, partition, partition_space
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


def test_genmm_partitions_its_input_in_its_partition_space():
    # Two rays: examples differ in brightness along a ray, so k-means on the input splits by brightness
    # and k-means on directions splits by ray.
    rng = np.random.default_rng(3)
    rays = np.array([[1.0, 0.6, 0.2], [0.6, 1.0, 0.2]], np.float32)
    ray = np.repeat([0, 1], 50)
    x = (rays[ray] * rng.uniform(0.5, 10.0, (100, 1)) + 0.02 * rng.standard_normal((100, 3))).astype(np.float32)
    flow = VectorFlow(3, num_steps=1, hidden=2, num_hidden_layers=1)
    model = GenMM(flow, 2, partition_space="unit", kmeans_starts=3)
    params, part = jax.jit(model.init_with_partition)(jax.random.PRNGKey(0), jnp.asarray(x))
    labels = np.asarray(part.labels)
    assert len({(int(a), int(b)) for a, b in zip(labels, ray)}) == 2   # the rays, up to naming
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(model.partition_features(None, jnp.asarray(x)), unit, rtol=1e-6)
    hard = np.asarray(em.partition_e_step(model, params, part.centroids, jnp.asarray(x)))
    np.testing.assert_array_equal(hard.argmax(1), labels)   # the warm start reads the same space
    on_input = np.asarray(GenMM(flow, 2).init_with_partition(jax.random.PRNGKey(0), jnp.asarray(x))[1].labels)
    assert len({(int(a), int(b)) for a, b in zip(on_input, ray)}) > 2   # the input space mixes the rays


def test_bad_partition_space_or_starts_is_a_clear_error():
    with pytest.raises(ValueError, match=r"partition_space must be one of \('input', 'unit', 'blurred_unit'\), got 'pca'"):
        GenMM(TINIEST_FLOW, 2, partition_space="pca")
    with pytest.raises(ValueError, match=r"'blurred_unit' blurs images of shape \(H, W, C\), but the events have shape \(2,\)"):
        GenMM(TINIEST_FLOW, 2, partition_space="blurred_unit")
    with pytest.raises(ValueError, match="kmeans_starts must be >= 1, got 0"):
        GenMM(TINIEST_FLOW, 2, kmeans_starts=0)
    GenMM(Glow((4, 4, 1), 1, 1, 4), 2, partition_space="blurred_unit")   # images: fine
