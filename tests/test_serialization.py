"""emflow.save / emflow.load: configurations rebuilt exactly, parameters bit for bit, clear refusals."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import emflow
from emflow import serialization, train

KEY = jax.random.PRNGKey(0)
IMAGE = (4, 4, 1)
GENMM = emflow.GenMM(emflow.Prefixed(emflow.Logit(IMAGE), emflow.Glow(IMAGE, 1, 2, 8, linear="lu")), 3)
LATMM = emflow.LatMM(emflow.VectorFlow(3, num_steps=2, hidden=8, coupling="additive"), 2, gamma_shape=3.0)
MAF_GENMM = emflow.GenMM(emflow.AutoregressiveFlow(3, num_steps=2, hidden=8), 2)


def _images(n=16, seed=0):
    return jax.random.uniform(jax.random.PRNGKey(seed), (n, *IMAGE), minval=0.01, maxval=0.99)


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert u.dtype == v.dtype and u.shape == v.shape
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


@pytest.mark.parametrize("model", [GENMM, LATMM, emflow.Dequantizer((28, 28, 1))], ids=["genmm", "latmm", "dequantizer"])
def test_a_configuration_is_rebuilt_equal_and_hashable(model):
    rebuilt = serialization.model_from_config(json.loads(json.dumps(serialization.model_to_config(model))))
    assert rebuilt == model and hash(rebuilt) == hash(model)


@pytest.mark.parametrize("model,x", [(GENMM, _images()), (LATMM, jax.random.normal(KEY, (16, 3))),
                                     (MAF_GENMM, jax.random.normal(KEY, (16, 3)))], ids=["genmm", "latmm", "maf_genmm"])
def test_save_then_load_gives_the_same_model_and_log_prob(tmp_path, model, x):
    params = jax.jit(model.init)(KEY, x)
    emflow.save(tmp_path / "m", model, params)
    loaded_model, loaded = emflow.load(tmp_path / "m")
    assert loaded_model == model
    _assert_trees_equal(params, loaded)
    log_prob = jax.jit(model.log_prob)  # compiled: eager op-by-op Glow is slow; equal models compile alike
    np.testing.assert_array_equal(np.asarray(log_prob(params, x)), np.asarray(jax.jit(loaded_model.log_prob)(loaded, x)))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 3-epoch GenMM run on 4x4 uint8 images, checkpointed every epoch."""
    x = np.random.default_rng(0).integers(0, 256, size=(64, *IMAGE), dtype=np.uint8)
    model = emflow.GenMM(emflow.Glow(IMAGE, 1, 1, 4), 2)
    config = train.TrainConfig(epochs=3, batch_size=16, em_every=1, init_batch_size=32, num_samples=0,
                               warmup_steps=2, learning_rate=1e-2)
    workdir = tmp_path_factory.mktemp("run") / "w"
    result = train.fit(model, config, emflow.Dequantizer(IMAGE), x, None, workdir=workdir, progress=False,
                       log=lambda s: None)
    return model, workdir, result


def test_load_of_a_run_restores_phi_of_the_latest_or_the_given_epoch(run):
    model, workdir, result = run
    loaded_model, params = emflow.load(workdir)
    assert loaded_model == model
    _assert_trees_equal(result.state.params, params)  # Phi, not Phi_old nor the optimizer
    _, first = emflow.load(workdir, epoch=1)
    np.testing.assert_allclose(np.exp(np.asarray(first["log_pi"])), result.history[0]["pi"], rtol=1e-6)
    assert not np.array_equal(np.asarray(jax.tree.leaves(first["flows"])[0]),
                              np.asarray(jax.tree.leaves(params["flows"])[0]))


def test_load_places_arrays_on_the_given_sharding(run):
    _, workdir, _ = run
    cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    _, params = emflow.load(workdir, sharding=cpu)
    assert all(leaf.sharding == cpu for leaf in jax.tree.leaves(params))


def test_load_of_a_missing_epoch_names_the_kept_ones(run):
    _, workdir, _ = run
    with pytest.raises(FileNotFoundError, match=r"no checkpoint of epoch 9; it keeps epochs \[1, 2, 3\]"):
        emflow.load(workdir, epoch=9)


def test_load_of_a_folder_that_is_not_a_run_names_what_it_holds(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"neither a training run.*holds \['notes.txt'\]"):
        emflow.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        emflow.load(tmp_path / "nowhere")


def test_a_checkpoint_of_another_format_is_refused_naming_the_version(tmp_path):
    emflow.save(tmp_path / "m", LATMM, LATMM.init(KEY, jnp.ones((4, 3))))
    path = tmp_path / "m" / serialization.MODEL_FILE
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "format_version": 7, "emflow_version": "9.1.0"}))
    with pytest.raises(serialization.IncompatibleCheckpointError, match=r"emflow 9\.1\.0 in checkpoint format 7"):
        emflow.load(tmp_path / "m")


@pytest.mark.parametrize("edit,message", [
    (lambda m: {**m, "__class__": "Mystery"}, "unknown class 'Mystery'"),
    (lambda m: {**m, "flow": {**m["flow"], "depth": 3}}, r"VectorFlow has no field\(s\) \['depth'\]"),
    (lambda m: {**m, "num_components": 0}, "cannot rebuild model as LatMM"),
])
def test_a_config_that_cannot_be_rebuilt_is_refused_clearly(tmp_path, edit, message):
    emflow.save(tmp_path / "m", LATMM, LATMM.init(KEY, jnp.ones((4, 3))))
    path = tmp_path / "m" / serialization.MODEL_FILE
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "model": edit(record["model"])}))
    with pytest.raises(serialization.ConfigRebuildError, match=message):
        emflow.load(tmp_path / "m")


def test_save_never_overwrites_silently(tmp_path):
    params = LATMM.init(KEY, jnp.ones((4, 3)))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="something other than an emflow saved model"):
        emflow.save(tmp_path / "other", LATMM, params)
    assert (tmp_path / "other" / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        emflow.save(tmp_path / "file", LATMM, params)
    emflow.save(tmp_path / "m", LATMM, params)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        emflow.save(tmp_path / "m", LATMM, params)
    bigger = emflow.LatMM(LATMM.flow, 3)
    with pytest.raises(ValueError, match="params do not fit the model"):  # refused before the old save is removed
        emflow.save(tmp_path / "m", bigger, params, overwrite=True)
    assert emflow.load(tmp_path / "m")[0] == LATMM
    emflow.save(tmp_path / "m", bigger, bigger.init(KEY, jnp.ones((4, 3))), overwrite=True)
    assert emflow.load(tmp_path / "m")[0].num_components == 3


def test_load_of_a_saved_model_refuses_an_epoch(tmp_path):
    emflow.save(tmp_path / "m", LATMM, LATMM.init(KEY, jnp.ones((4, 3))))
    with pytest.raises(ValueError, match="epoch=2 applies to runs"):
        emflow.load(tmp_path / "m", epoch=2)
