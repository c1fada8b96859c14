"""k-means partitions and the partition/k-means inits of GenMM and LatMM: against scikit-learn, determinism, bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.cluster import KMeans

from emflow import GenMM, LatMM, VectorFlow, em
from emflow.mixtures import partition
from toy_em import TINIEST_FLOW

CENTRES = np.array([[-6.0, 0.0, 1.0], [6.0, 0.0, -1.0], [0.0, 8.0, 0.0], [0.0, -8.0, 2.0]], np.float32)


def _blobs(n_per=(40, 60, 80, 20), seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(n_per)), n_per)
    x = CENTRES[labels] + rng.standard_normal((len(labels), 3)).astype(np.float32)
    return x.astype(np.float32), labels


def _same_partition(a, b) -> bool:
    """Two labellings agree up to a permutation of the part names."""
    pairs = {(int(i), int(j)) for i, j in zip(a, b)}
    return len(pairs) == len(set(a)) == len(set(b))


def test_kmeans_equals_scikit_learn_and_is_deterministic_for_a_key():
    x, labels = _blobs()
    fit = jax.jit(lambda k, f: partition.kmeans(k, f, 4))
    part = fit(jax.random.PRNGKey(0), jnp.asarray(x))
    ref = KMeans(4, n_init=10, random_state=0).fit(x)
    assert _same_partition(np.asarray(part.labels), ref.labels_) and _same_partition(np.asarray(part.labels), labels)
    order = [int(np.argmin(np.sum((ref.cluster_centers_ - c) ** 2, axis=1))) for c in np.asarray(part.centroids)]
    np.testing.assert_allclose(np.asarray(part.centroids), ref.cluster_centers_[order], atol=1e-4)
    again = fit(jax.random.PRNGKey(0), jnp.asarray(x))
    np.testing.assert_array_equal(again.labels, part.labels)
    np.testing.assert_array_equal(again.centroids, part.centroids)
    np.testing.assert_array_equal(partition.nearest(part.centroids, jnp.asarray(x)), part.labels)
    # without jit: the same numbers
    eager = partition.kmeans(jax.random.PRNGKey(0), jnp.asarray(x), 4)
    np.testing.assert_array_equal(eager.labels, part.labels)


def test_kmeans_plus_plus_seeds_are_distinct_data_points():
    x, _ = _blobs()
    seeds = np.asarray(partition.kmeans_plus_plus(jax.random.PRNGKey(3), jnp.asarray(x), 4))
    assert all(np.any(np.all(x == s, axis=1)) for s in seeds)
    assert len({tuple(s) for s in seeds}) == 4


def test_draw_from_parts_stays_in_each_part_evenly_and_an_empty_part_draws_from_all():
    labels = jnp.array([0, 0, 1, 1, 1, 0, 1, 0], jnp.int32)  # part 2 is empty
    index = np.asarray(partition.draw_from_parts(jax.random.PRNGKey(0), labels, 3, 50))
    assert index.shape == (3, 50)
    assert set(np.asarray(labels)[index[0]]) == {0} and set(np.asarray(labels)[index[1]]) == {1}
    assert len(set(index[2])) > 4  # the fallback: the whole batch
    for part, members in ((0, [0, 1, 5, 7]), (1, [2, 3, 4, 6]), (2, range(8))):   # as even as can be
        counts = np.bincount(index[part], minlength=8)[list(members)]
        assert counts.min() >= 50 // len(members) and counts.max() <= -(-50 // len(members)), counts
    exact = np.asarray(partition.draw_from_parts(jax.random.PRNGKey(1), jnp.zeros(8, jnp.int32), 1, 8))
    assert sorted(exact[0].tolist()) == list(range(8))   # size == n: each member exactly once
    np.testing.assert_array_equal(partition.part_counts(labels, 3), [4, 4, 0])


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot split 3 examples into K = 4 parts"):
        partition.kmeans(jax.random.PRNGKey(0), jnp.zeros((3, 2)), 4)
    with pytest.raises(ValueError, match=r"features must have shape \(batch, F\), got \(3,\)"):
        partition.kmeans(jax.random.PRNGKey(0), jnp.zeros((3,)), 2)
    for model in (GenMM(TINIEST_FLOW, 3), LatMM(TINIEST_FLOW, 3)):
        with pytest.raises(ValueError, match="the init batch has 2 examples, fewer than K = 3"):
            model.init(jax.random.PRNGKey(0), jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"init_strategy must be one of \('partition', 'shared'\)"):
        GenMM(TINIEST_FLOW, 2, init_strategy="kmeans")
    with pytest.raises(ValueError, match="init_strategy must be 'kmeans' or 'shared'"):
        LatMM(TINIEST_FLOW, 2, init_strategy="partition")


def test_genmm_partition_init_fits_each_generator_on_its_own_part():
    x, labels = _blobs()
    flow = VectorFlow(3, num_steps=1, hidden=2, num_hidden_layers=1)
    model = GenMM(flow, 4)
    params, part = jax.jit(model.init_with_partition)(jax.random.PRNGKey(1), jnp.asarray(x))
    assert _same_partition(np.asarray(part.labels), labels)
    np.testing.assert_allclose(params["log_pi"], np.log(np.full(4, 0.25)), rtol=1e-6)
    for k in range(4):
        members = x[np.asarray(part.labels) == k]
        bias = np.asarray(params["flows"]["steps"]["actnorm"]["bias"][k, 0])
        # ActNorm is fitted on draws (with replacement) from part k: its mean, up to resampling noise.
        np.testing.assert_allclose(-bias, members.mean(axis=0), atol=0.5)
    # Deterministic for the key, and `init` is its first half.
    again = jax.jit(model.init)(jax.random.PRNGKey(1), jnp.asarray(x))
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)
    # Each generator is the most likely one on its own part.
    gamma = np.asarray(model.responsibilities(params, jnp.asarray(x)))
    np.testing.assert_array_equal(gamma.argmax(axis=1), np.asarray(part.labels))
    # The warm start's hard responsibilities are the partition itself.
    hard = np.asarray(em.partition_e_step(model, params, part.centroids, jnp.asarray(x)))
    np.testing.assert_array_equal(hard, np.eye(4)[np.asarray(part.labels)])


def test_genmm_init_with_given_centroids_splits_the_batch_by_them():
    """Centroids fitted elsewhere (``train.partition_centroids``): the batch's parts are its nearest centroids."""
    x, labels = _blobs()
    flow = VectorFlow(3, num_steps=1, hidden=2, num_hidden_layers=1)
    model = GenMM(flow, 4)
    centroids = KMeans(4, n_init=10, random_state=0).fit(x).cluster_centers_.astype(np.float32)
    batch = x[::5]  # a batch the centroids were not fitted on
    params, part = jax.jit(model.init_with_partition)(jax.random.PRNGKey(1), jnp.asarray(batch),
                                                       jnp.asarray(centroids))
    np.testing.assert_array_equal(part.centroids, centroids)
    nearest = np.argmin(((batch[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
    np.testing.assert_array_equal(part.labels, nearest)
    for k in range(4):
        bias = np.asarray(params["flows"]["steps"]["actnorm"]["bias"][k, 0])
        # fitted on part k's members, each drawn floor or ceil of B / n_k times: its mean up to that rounding
        np.testing.assert_allclose(-bias, batch[nearest == k].mean(axis=0), atol=0.1)
    with pytest.raises(ValueError, match=r"centroids must have shape \(K, N\) = \(4, 3\), got \(3, 3\)"):
        model.init_with_partition(jax.random.PRNGKey(1), jnp.asarray(batch), jnp.asarray(centroids[:3]))
    with pytest.raises(ValueError, match="init_strategy='shared' uses no partition"):
        GenMM(flow, 4, init_strategy="shared").init_with_partition(jax.random.PRNGKey(1), jnp.asarray(batch),
                                                                  jnp.asarray(centroids))


def test_latmm_kmeans_init_places_the_latent_gaussians_at_the_parts_of_the_latents():
    x, labels = _blobs()
    flow = VectorFlow(3, num_steps=1, hidden=2, num_hidden_layers=1)
    model = LatMM(flow, 4)
    params, part = jax.jit(model.init_with_partition)(jax.random.PRNGKey(1), jnp.asarray(x))
    z = np.asarray(model.partition_features(params, jnp.asarray(x)), np.float64)
    ref = KMeans(4, n_init=10, random_state=0).fit(z)
    assert _same_partition(np.asarray(part.labels), ref.labels_)
    for k in range(4):
        members = z[np.asarray(part.labels) == k]
        np.testing.assert_allclose(params["means"][k], members.mean(axis=0), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.exp(params["log_stds"][k]), members.std(axis=0), rtol=1e-3, atol=1e-4)
    gamma = np.asarray(model.responsibilities(params, jnp.asarray(x)))
    assert np.mean(gamma.argmax(axis=1) == np.asarray(part.labels)) > 0.97


def _blobs_and_an_outlier():
    """Three 2-D blobs of 60, 80 and 100 points and one point far from all of them (label 3)."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), [60, 80, 100])
    x = np.array([[-6.0, 0.0], [6.0, 0.0], [0.0, 8.0]], np.float32)[labels] + rng.standard_normal((240, 2))
    return np.concatenate([x, [[40.0, 40.0]]]).astype(np.float32), np.append(labels, 3)


def test_a_one_example_part_is_repaired_into_the_partition_of_least_inertia():
    x, labels = _blobs_and_an_outlier()
    ref = KMeans(3, n_init=10, random_state=0).fit(x)   # the least-inertia partition: the three blobs
    assert _same_partition(ref.labels_[:-1], labels[:-1])
    unrepaired = [s for s in range(8) if np.asarray(partition.part_counts(
        partition.kmeans(jax.random.PRNGKey(s), jnp.asarray(x), 3, min_part_fraction=0.0).labels, 3)).min() == 1]
    assert len(unrepaired) >= 2, "D^2 seeding on the outlier: some key must leave it a part of its own"
    fit = jax.jit(lambda key, f: partition.kmeans(key, f, 3))
    for s in unrepaired:
        part = fit(jax.random.PRNGKey(s), jnp.asarray(x))
        assert _same_partition(np.asarray(part.labels), ref.labels_), s
        assert np.asarray(partition.part_counts(part.labels, 3)).min() >= 0.1 * len(x) / 3
        eager = partition.kmeans(jax.random.PRNGKey(s), jnp.asarray(x), 3)   # deterministic, with or without jit
        np.testing.assert_array_equal(eager.labels, part.labels)


def test_the_repair_leaves_a_partition_of_large_enough_parts_exactly_as_it_was():
    x, _ = _blobs()   # parts of 40, 60, 80 and 20: all above 0.1 * 200 / 4
    for s in range(3):
        on = partition.kmeans(jax.random.PRNGKey(s), jnp.asarray(x), 4)
        off = partition.kmeans(jax.random.PRNGKey(s), jnp.asarray(x), 4, min_part_fraction=0.0)
        np.testing.assert_array_equal(on.centroids, off.centroids)
        np.testing.assert_array_equal(on.labels, off.labels)


def test_split_largest_part_puts_two_centroids_one_std_either_side_along_its_principal_axis():
    rng = np.random.default_rng(1)
    big = rng.standard_normal((300, 3)) @ np.diag([3.0, 1.0, 0.5]) @ np.linalg.qr(rng.standard_normal((3, 3)))[0]
    big = (big + [1.0, -2.0, 0.5]).astype(np.float32)
    x = np.concatenate([big, [[50.0, 50.0, 50.0]], [[-50.0, 50.0, 0.0]] * 20]).astype(np.float32)
    centroids = np.stack([big.mean(0), x[300], x[301]]).astype(np.float32)   # parts of 300, 1 and 20
    moved = np.asarray(partition.split_largest_part(jnp.asarray(x), jnp.asarray(centroids)))
    mu, cov = big.mean(0), np.cov(big.T, bias=True)
    w, v = np.linalg.eigh(cov)
    axis, s = v[:, -1], np.sqrt(w[-1])
    sign = np.sign(np.dot(moved[0] - mu, axis))
    np.testing.assert_allclose(moved[0], mu + sign * s * axis, atol=2e-4)
    np.testing.assert_allclose(moved[1], mu - sign * s * axis, atol=2e-4)
    np.testing.assert_array_equal(moved[2], centroids[2])   # neither the largest nor the smallest part


def test_min_part_fraction_outside_its_range_is_a_clear_error():
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match=rf"min_part_fraction must be in \[0, 1\), got {bad}"):
            partition.kmeans(jax.random.PRNGKey(0), jnp.zeros((8, 2)), 2, min_part_fraction=bad)


def test_latmm_repairs_an_outlier_part_by_default_and_genmm_keeps_k_means_own_parts():
    x, _ = _blobs_and_an_outlier()
    x = jnp.asarray(x)
    repaired, unrepaired = LatMM(TINIEST_FLOW, 3), LatMM(TINIEST_FLOW, 3, min_part_fraction=0.0)
    assert repaired.min_part_fraction == 0.1 and GenMM(TINIEST_FLOW, 3).min_part_fraction == 0.0
    smallest = {m: [int(np.min(partition.part_counts(m.init_with_partition(jax.random.PRNGKey(s), x)[1].labels, 3)))
                    for s in range(8)] for m in (repaired, unrepaired)}
    assert min(smallest[unrepaired]) == 1 and min(smallest[repaired]) >= 0.1 * len(x) / 3, smallest


@pytest.mark.parametrize("cls", [GenMM, LatMM])
def test_a_model_refuses_a_min_part_fraction_outside_its_range(cls):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: min_part_fraction must be in \[0, 1\), got 1.0"):
        cls(TINIEST_FLOW, 3, min_part_fraction=1.0)


def test_place_latent_gaussians_on_more_latents_than_the_init_batch():
    """The init's flow from a small batch, the Gaussians at a k-means partition of many more latents."""
    x, labels = _blobs(n_per=(100, 150, 200, 50))
    model = LatMM(VectorFlow(3, num_steps=1, hidden=2, num_hidden_layers=1), 4)
    init = jax.jit(model.init)(jax.random.PRNGKey(1), jnp.asarray(x[::5]))  # 100 of the 500 examples
    z = jax.jit(model.top_latents)(init, jnp.asarray(x))
    params, part = jax.jit(model.place_latent_gaussians)(jax.random.PRNGKey(2), init, z)
    z = np.asarray(z, np.float64)
    assert part.labels.shape == (500,) and _same_partition(np.asarray(part.labels), labels)
    assert _same_partition(np.asarray(part.labels), KMeans(4, n_init=10, random_state=0).fit(z).labels_)
    for k in range(4):
        members = z[np.asarray(part.labels) == k]
        np.testing.assert_allclose(params["means"][k], members.mean(axis=0), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.exp(params["log_stds"][k]), members.std(axis=0), rtol=1e-3, atol=1e-4)
    # Only the latent Gaussians move: pi and the flow are the init's.
    for a, b in zip(jax.tree.leaves((init["log_pi"], init["flow"])), jax.tree.leaves((params["log_pi"], params["flow"]))):
        np.testing.assert_array_equal(a, b)
    # The init itself is this placement on its own batch's latents.
    small = jnp.asarray(x[::5])
    own, own_part = model.init_with_partition(jax.random.PRNGKey(1), small)
    _, k_mu, _ = jax.random.split(jax.random.PRNGKey(1), 3)
    again, again_part = model.place_latent_gaussians(k_mu, own, model.top_latents(own, small))
    np.testing.assert_array_equal(own_part.labels, again_part.labels)
    np.testing.assert_array_equal(own["means"], again["means"])
    with pytest.raises(ValueError, match=r"need at least K=4 latents to partition, got 3"):
        model.place_latent_gaussians(jax.random.PRNGKey(0), init, jnp.zeros((3, 3)))
    with pytest.raises(AssertionError, match=r"shape"):
        model.place_latent_gaussians(jax.random.PRNGKey(0), init, jnp.zeros((10, 5)))
