"""Two processes train one GenMM with jax.distributed (gloo on the CPU), as jax's own tests/multiprocess do.

The commands are the README's ("Several processes"), with only the address changed: process 0
is the coordinator on a free localhost port. The first 2 epochs run data parallel over the two
processes (``--mesh_components 1``); the resume to epoch 3 splits the generators over them
(``--mesh_components 2``: each process holds and trains one of K = 2), so the checkpoint is
also restored into another layout than it was written from. The resume is launched the way
SLURM's ``srun --ntasks 2`` starts it: ``--distributed`` and the environment srun sets, from
which ``jax.distributed.initialize()`` finds the coordinator (the first node, localhost here),
the process count and each id. Checked:
- each process loads only the training and test examples its devices hold;
- the parameters after 2 epochs equal those of a single-process run of the same command;
- the checkpoint is written once and every process restores the same state (the resume log
  prints the sha256 of the whole restored state, gathered across processes);
- ``--resume`` from the two-process checkpoint (2 epochs, then 3) ends where one uninterrupted
  3-epoch process does (the noam schedule does not depend on the number of epochs).
"""
import os
import random
import re
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import emflow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 300
SLURM_PORTS = 65536 - 2 ** 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(workdir, data_dir, epochs, extra=()):
    return [sys.executable, "-m", "experiments.mnist_genmm", "--components", "2", "--epochs", str(epochs),
            "--num_train", "256", "--num_test", "64", "--levels", "1", "--steps", "1", "--hidden", "8",
            "--batch_size", "32", "--warmup_steps", "2", "--schedule", "noam", "--no_baselines", "--no_progress",
            "--no-final_prior_update",  # a closing update at epoch 2 would make the resume differ from one 3-epoch run
            "--data_dir", str(data_dir), "--workdir", str(workdir), *extra]


def _slurm_job_id() -> int:
    """A job id whose coordinator port (jax's SlurmCluster: 61440 + id % 4096) is free on localhost."""
    for port in random.Random().sample(range(SLURM_PORTS, 65536), 64):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return 4096 * 7 + port - SLURM_PORTS
    raise RuntimeError("no free port in 61440..65535")


def _launch_flags(i, port):
    return ["--coordinator_address", f"localhost:{port}", "--num_processes", "2", "--process_id", str(i)]


def _slurm_env(i, job_id):
    """What ``srun --ntasks 2`` sets for task i on one node (localhost)."""
    return {"SLURM_JOB_ID": str(job_id), "SLURM_STEP_NODELIST": "localhost", "SLURM_NTASKS": "2",
            "SLURM_PROCID": str(i), "SLURM_LOCALID": str(i), "SLURM_STEP_NUM_NODES": "1"}


def _run_processes(workdir, data_dir, epochs, mesh_components, resume=False, slurm=False):
    """Two processes: launched with explicit flags, or (``slurm``) with ``--distributed`` in srun's environment."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    if slurm:
        job_id = _slurm_job_id()
        launch = [(["--distributed"], {**env, **_slurm_env(i, job_id)}) for i in range(2)]
    else:
        port = _free_port()
        launch = [(_launch_flags(i, port), env) for i in range(2)]
    procs = [subprocess.Popen(_command(workdir, data_dir, epochs, [
        *flags, "--mesh_components", str(mesh_components), *(["--resume"] if resume else [])]),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=process_env)
        for flags, process_env in launch]
    try:
        outs = [p.communicate(timeout=TIMEOUT)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    return outs


def _run_single(workdir, data_dir, epochs, resume=False):
    proc = subprocess.run(_command(workdir, data_dir, epochs, ["--resume"] if resume else []), capture_output=True, text=True, timeout=TIMEOUT,
                          cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def _max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v)))) for u, v in zip(jax.tree.leaves(a),
                                                                                   jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("multiprocess")
    first = _run_processes(root / "two", data_dir, epochs=2, mesh_components=1)                # data parallel
    resumed = _run_processes(root / "two", data_dir, epochs=3, mesh_components=2, resume=True,  # generators split,
                             slurm=True)                                                     # launched as srun does
    _run_single(root / "one", data_dir, epochs=3)  # noam: the schedule does not depend on the epoch count
    return root, first, resumed


def test_two_processes_train_data_parallel_what_one_process_trains(runs):
    root, first, _ = runs
    assert all("mesh {'data': 2, 'components': 1} over 2 devices of 2 process(es)" in out for out in first), first[0]
    _, two = emflow.load(root / "two", epoch=2)
    _, one = emflow.load(root / "one", epoch=2)
    assert _max_diff(two, one) < 1e-4


def test_each_process_loads_only_the_examples_its_devices_hold(runs):
    _, first, resumed = runs
    for outs in (first, resumed):
        for i, out in enumerate(outs):
            assert (f"process {i} of 2 loaded training examples {128 * i}:{128 * (i + 1)} of 256 and test examples "
                    f"{32 * i}:{32 * (i + 1)} of 64") in out, out[-2000:]


def test_the_checkpoint_is_written_once_and_every_process_restores_the_same_state(runs):
    root, _, resumed = runs
    digests = [re.search(r"resumed .* after epoch 2 \(step \d+, state sha256 ([0-9a-f]{16})\)", out) for out in resumed]
    assert all(digests), resumed[0][-2000:]
    assert digests[0].group(1) == digests[1].group(1)
    assert sorted(p.name for p in (root / "two" / "checkpoints").iterdir() if p.name.isdigit()) == ["0", "1", "2"]
    lines = (root / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3


def test_resume_with_the_generators_split_ends_where_one_uninterrupted_process_does(runs):
    """The data-parallel checkpoint, restored into a layout with one generator per process, trains on."""
    root, _, resumed = runs
    assert all("mesh {'data': 1, 'components': 2} over 2 devices of 2 process(es)" in out for out in resumed)
    _, two = emflow.load(root / "two")
    _, one = emflow.load(root / "one")
    assert _max_diff(two, one) < 1e-4
