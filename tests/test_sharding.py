"""Data- and component-parallel training equals the single-device run (8 CPU devices in a subprocess)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent('''
    import json, os, jax, numpy as np, emflow
    from emflow import train
    from emflow.parallel import sharding
    assert jax.device_count() == 8, jax.devices()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(64, 4, 4, 1), dtype=np.uint8)
    model = emflow.GenMM(emflow.Glow((4, 4, 1), 1, 2, 8), num_components=4, component_axis="vmap")
    config = train.TrainConfig(epochs=2, batch_size=16, em_every=1, warmup_steps=5, learning_rate=1e-2,
                               num_samples=0, eval_batch_size=32)
    deq = emflow.Dequantizer((4, 4, 1))
    quiet = dict(progress=False, log=lambda s: None)
    single = train.fit(model, config, deq, x, x[:32], **quiet)
    out = {}
    # 8 x 1 with the data copied to every device; 2 x 4 with the data spread over the 8 devices (each holds 8
    # examples, batches gathered in the step): one fit per layout and data placement keeps the compiles few
    for data, comps in [(8, 1), (2, 4)]:
        mesh = sharding.make_mesh(data=data, components=comps)
        workdir = os.path.join(os.environ["EMFLOW_TEST_OUT"], f"run_{data}x{comps}")  # loaded on 1 device by the test
        arrays = (x, x[:32]) if data == 8 else [sharding.from_process_rows(a, mesh, len(a)) for a in (x, x[:32])]
        run = train.fit(model, config, deq, *arrays, mesh=mesh, workdir=workdir, **quiet)
        np.savez(workdir + ".npz", *[np.asarray(a) for a in jax.tree.leaves(run.state.params)])
        flows = run.state.params["flows"]
        leaf = jax.tree.leaves(flows)[0]
        out[f"{data}x{comps}"] = {
            "max_param_diff": max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                                  for a, b in zip(jax.tree.leaves(single.state.params), jax.tree.leaves(run.state.params))),
            "test_nll": [r["test_nll_nats_per_dim"] for r in run.history],
            "flows_sharding": str(leaf.sharding.spec),
            "devices_per_leaf": len(leaf.sharding.device_set),
        }
    out["single_test_nll"] = [r["test_nll_nats_per_dim"] for r in single.history]
    mesh = sharding.make_mesh(data=2, components=4)
    spread = [sharding.from_process_rows(a, mesh, len(a)) for a in (x, x[:32])]
    out["spread data"] = {
        "rows": [sharding.process_rows(mesh, 64).start, sharding.process_rows(mesh, 64).stop],
        "devices": len(spread[0].sharding.device_set), "shard_rows": spread[0].addressable_shards[0].data.shape[0],
    }
    try:
        sharding.process_rows(mesh, 60)
    except ValueError as err:
        out["spread data"]["uneven_error"] = str(err)
    # the same with matmul convolutions (col2im and its custom derivative) in bfloat16, on the 2 x 4 mesh
    model = emflow.GenMM(emflow.Glow((4, 4, 1), 1, 2, 8, compute_dtype="bfloat16", conv_impl="matmul"),
                         num_components=4, component_axis="vmap")
    single = train.fit(model, config, deq, x, x[:32], **quiet)
    run = train.fit(model, config, deq, x, x[:32], mesh=sharding.make_mesh(data=2, components=4), **quiet)
    out["2x4 matmul bf16"] = {
        "max_param_diff": max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                              for a, b in zip(jax.tree.leaves(single.state.params), jax.tree.leaves(run.state.params))),
        "test_nll": [r["test_nll_nats_per_dim"] for r in run.history],
        "single_test_nll": [r["test_nll_nats_per_dim"] for r in single.history],
    }
    print("RESULT" + json.dumps(out))
''')


@pytest.fixture(scope="module")
def sharded_out(tmp_path_factory):
    return tmp_path_factory.mktemp("sharded")


@pytest.fixture(scope="module")
def sharded_runs(sharded_out):
    env = {**os.environ, "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu",
           "EMFLOW_TEST_OUT": str(sharded_out)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


@pytest.mark.parametrize("layout", ["8x1", "2x4", "2x4 matmul bf16"])
def test_sharded_training_equals_single_device(sharded_runs, layout):
    run = sharded_runs[layout]
    # float32: the same parameters to rounding. bfloat16 (8-bit mantissa): a sharded reduction rounds
    # differently, and Adam turns a near-zero gradient of another sign into a full step of the learning
    # rate (1e-2) on that parameter (jax 0.11.2 showed 0.0123); the likelihoods still agree to 1e-5.
    assert run["max_param_diff"] < (2.5e-2 if "bf16" in layout else 1e-4), run
    assert run["test_nll"] == pytest.approx(run.get("single_test_nll", sharded_runs["single_test_nll"]), rel=1e-5)


def test_generators_are_split_across_the_components_axis(sharded_runs):
    assert "components" in sharded_runs["2x4"]["flows_sharding"]
    assert sharded_runs["8x1"]["flows_sharding"] in ("PartitionSpec()", "P()")


def test_data_spread_over_the_devices_trains_what_copied_data_train(sharded_runs):
    """``from_process_rows``: each of the 8 devices holds 8 of the 64 examples; batches are gathered in the step.
    The 2 x 4 run trains on data spread that way and ends where the single-device run on copied data does."""
    out = sharded_runs["spread data"]
    assert out["devices"] == 8 and out["shard_rows"] == 8 and out["rows"] == [0, 64]
    assert sharded_runs["2x4"]["max_param_diff"] < 1e-5
    assert "60 examples cannot be split evenly over the mesh's 8 devices" in out["uneven_error"]


@pytest.mark.parametrize("layout", ["8x1", "2x4"])
def test_a_run_saved_across_8_devices_loads_on_one(sharded_runs, sharded_out, layout):
    """emflow.load on this 1-device process of a checkpoint written with its arrays sharded over 8 devices."""
    import jax
    import numpy as np

    import emflow

    assert jax.device_count() == 1
    model, params = emflow.load(sharded_out / f"run_{layout}")
    assert model.num_components == 4 and model.mesh is None
    saved = np.load(sharded_out / f"run_{layout}.npz")
    leaves = jax.tree.leaves(params)
    assert len(leaves) == len(saved.files)
    for i, leaf in enumerate(leaves):
        assert leaf.sharding.device_set == {jax.devices()[0]}
        np.testing.assert_array_equal(np.asarray(leaf), saved[f"arr_{i}"])
