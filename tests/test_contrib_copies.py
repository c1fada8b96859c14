"""emflow.contrib.copies: a GenMM started from K copies of one flow."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emflow import GenMM, em
from emflow.contrib import copies
from toy_em import TINIEST_FLOW, small_flow_batch


def test_copies_init():
    """K identical generators and the default init's partition; a shared round keeps them copies, the warm start does not."""
    x = small_flow_batch()
    key = jax.random.PRNGKey(1)
    model = GenMM(TINIEST_FLOW, num_components=3)
    params, part = jax.jit(lambda k, xb: copies.init_copies(model, k, xb))(key, x)
    # K identical generators, each with its first ActNorm normalising the whole of x ...
    np.testing.assert_allclose(params["log_pi"], np.log(np.full(3, 1 / 3)), rtol=1e-6)
    for leaf in jax.tree.leaves(params["flows"]):
        assert leaf.shape[0] == 3
        np.testing.assert_array_equal(leaf[1], leaf[0])
        np.testing.assert_array_equal(leaf[2], leaf[0])
    actnorm = {name: np.asarray(v[0, 0]) for name, v in params["flows"]["steps"]["actnorm"].items()}
    y = (np.asarray(x) + actnorm["bias"]) * np.exp(actnorm["log_scale"])
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=0), 1.0, atol=1e-4)
    # ... and the same k-means partition as the default init from the same key, for the warm start.
    _, default_part = jax.jit(GenMM(TINIEST_FLOW, num_components=3).init_with_partition)(key, x)
    np.testing.assert_array_equal(part.labels, default_part.labels)
    # Uniform responsibilities (a shared round) give every copy the same gradient, so they stay copies;
    # the partition's hard responsibilities do not.
    grad = jax.jit(jax.grad(lambda p, g: em.m_step_loss(model, p, x, g)))
    same = grad(params, jnp.full((x.shape[0], 3), 1 / 3))["flows"]
    hard = grad(params, jax.nn.one_hot(part.labels, 3))["flows"]
    for leaf in jax.tree.leaves(same):
        np.testing.assert_array_equal(leaf[1], leaf[0])
    assert any(not np.allclose(leaf[0], leaf[1]) for leaf in jax.tree.leaves(hard))


def test_copies_refuses_a_model_without_a_partition():
    with pytest.raises(ValueError, match="expected a GenMM that partitions its input"):
        copies.init_copies(GenMM(TINIEST_FLOW, 2, init_strategy="shared"), jax.random.PRNGKey(0), small_flow_batch())
