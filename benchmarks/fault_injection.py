"""Kill a training run with SIGKILL at random moments, resume it each time, and compare with an uninterrupted run.

    python -m benchmarks.fault_injection [--kills 10] [--epochs 8] [--workdir /tmp/faults] [--seed 0]

A small GenMM (VectorFlow, 2 components, 2-D toy data) trains in a subprocess with
``resume=True``. The parent kills it with SIGKILL, then starts it again, until it
finishes. Two kinds of kill alternate:

- **at a random moment**: after a uniform random delay, drawn between the start of the
  process and 80% of the duration of an uninterrupted run started as the restarts are,
  with JAX's compilation cache filled (imports, cache loads and training included). The
  20% margin absorbs run-to-run jitter, so that the kill lands before the run ends;
- **during a checkpoint write**: as soon as orbax's temporary checkpoint folder appears
  (polled every 0.2 ms).

The run must then end with exactly the parameters of an uninterrupted run (bit for
bit, compared with ``emflow.load``), and ``metrics.jsonl`` must hold each epoch exactly
once. ``tests/test_faults.py`` runs this with 2 kills. A kill that lands after the
child finished counts as not landed and is reported; the killed run then starts afresh
with the window halved (at most 3 times), so that both kinds of kill land in the run compared.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

CHILD = "--child"
KILL_WINDOW_FRACTION = 0.8  # random kills are drawn over this fraction of a restart's measured duration


def child(workdir: str, epochs: int) -> None:
    """The training run that gets killed: resumes whatever ``workdir`` holds (64 steps per epoch)."""
    import emflow
    from emflow import train

    rng = np.random.default_rng(0)
    labels = rng.random(2048) < 0.3
    x = (np.where(labels[:, None], [-2.0, 0.0], [2.0, 1.0]) + 0.5 * rng.standard_normal((2048, 2))).astype(np.float32)
    model = emflow.GenMM(emflow.VectorFlow(2, num_steps=2, hidden=128), 2)  # ~1 MB of state: a save lasts long enough to catch
    config = train.TrainConfig(epochs=epochs, batch_size=32, em_every=2, warmup_steps=10, seed=3, learning_rate=5e-3,
                               num_samples=0)
    train.fit(model, config, None, x, x[:128], workdir=workdir, resume=True, progress=False)


def _start(workdir: pathlib.Path, epochs: int, log_file) -> subprocess.Popen:
    # Every start compiles the same programs: JAX's persistent cache lets the restarts load them.
    env = {"JAX_COMPILATION_CACHE_DIR": str(workdir.parent / "jax_cache"), **os.environ, "JAX_PLATFORMS": "cpu",
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    return subprocess.Popen([sys.executable, "-m", "benchmarks.fault_injection", CHILD, str(workdir), str(epochs)],
                            stdout=log_file, stderr=subprocess.STDOUT, env=env,
                            cwd=pathlib.Path(__file__).resolve().parents[1])


def _saving(workdir: pathlib.Path) -> bool:
    folder = workdir / "checkpoints"
    try:
        return any("tmp" in name for name in os.listdir(folder))
    except FileNotFoundError:
        return False


def run_uninterrupted(workdir: pathlib.Path, epochs: int, timeout: float) -> float:
    t0 = time.time()
    with open(workdir.with_suffix(".log"), "w") as log_file:
        proc = _start(workdir, epochs, log_file)
        if proc.wait(timeout=timeout) != 0:
            raise RuntimeError(f"the uninterrupted run failed; see {workdir.with_suffix('.log')}")
    return time.time() - t0


def run_with_kills(workdir: pathlib.Path, epochs: int, kills: int, duration: float, seed: int,
                   timeout: float, retries: int = 3) -> tuple[list[dict], list[dict]]:
    """Start, kill, restart until finished. Returns ``(one record per start, missed kills)``.

    A kill that comes after its child finished (the restart ran faster than ``duration`` says)
    did not land: the killed run then starts afresh in an empty ``workdir`` with the window
    halved, at most ``retries`` times, so that every kind of kill lands in the run compared.
    """
    rng = random.Random(seed)
    events, missed = [], []
    deadline = time.time() + timeout
    with open(workdir.with_suffix(".log"), "w") as log_file:
        while True:
            proc = _start(workdir, epochs, log_file)
            t0 = time.time()
            kind = None
            if len(events) < kills:
                kind = "during a checkpoint write" if len(events) % 2 else "at a random moment"
                delay = rng.uniform(0.2, KILL_WINDOW_FRACTION * duration)
                while proc.poll() is None and time.time() < deadline:
                    if (kind == "at a random moment" and time.time() - t0 >= delay) or (
                            kind != "at a random moment" and _saving(workdir)):
                        proc.send_signal(signal.SIGKILL)
                        break
                    time.sleep(0.0002)
            code = proc.wait(timeout=max(1.0, deadline - time.time()))
            done = code == 0
            events.append({"kill": kind, "landed": code == -signal.SIGKILL, "after_s": round(time.time() - t0, 2),
                           "exit": code})
            if done and kind is not None and len(missed) < retries:
                missed.append({**events[-1], "window_s": round(duration, 2)})
                shutil.rmtree(workdir)
                events, duration = [], duration / 2
                continue
            if done:
                return events, missed
            if code != -signal.SIGKILL:
                raise RuntimeError(f"the run failed with exit code {code}; see {workdir.with_suffix('.log')}")
            if time.time() > deadline:
                raise TimeoutError(f"no finished run within {timeout} s")


def compare(whole: pathlib.Path, killed: pathlib.Path, epochs: int) -> dict:
    import jax

    import emflow

    _, a = emflow.load(whole)
    _, b = emflow.load(killed)
    equal = all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    lines = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines() if line.strip()]
    whole_lines = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines() if line.strip()]
    strip = lambda r: {k: v for k, v in r.items() if k not in ("seconds", "train_seconds")}
    return {
        "params_bitwise_equal": bool(equal),
        "metrics_epochs": [r["epoch"] for r in lines],
        "metrics_each_epoch_once": [r["epoch"] for r in lines] == list(range(1, epochs + 1)),
        "metrics_equal_to_uninterrupted": [strip(r) for r in lines] == [strip(r) for r in whole_lines],
    }


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == CHILD:
        child(argv[1], int(argv[2]))
        return {}
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--workdir", default="/tmp/emflow_faults")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds for all the runs together")
    p.add_argument("--window", type=float, default=None,
                   help="duration of a restart, in seconds; random kills are drawn over 80%% of it "
                        "(default: measured, by a second uninterrupted run)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.kills < 0 or args.epochs < 1:
        p.error(f"--kills must be >= 0 and --epochs >= 1, got {args.kills} and {args.epochs}")
    root = pathlib.Path(args.workdir)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    whole, killed = root / "uninterrupted", root / "killed"
    cold = run_uninterrupted(whole, args.epochs, args.timeout)            # compiles, and fills the cache
    again = None
    duration = args.window
    if duration is None:  # as long as a restart runs, measured
        duration = run_uninterrupted(root / "uninterrupted_again", args.epochs, args.timeout)
        again = compare(whole, root / "uninterrupted_again", args.epochs)["params_bitwise_equal"]
    events, missed = run_with_kills(killed, args.epochs, args.kills, duration, args.seed, args.timeout)
    result = {"epochs": args.epochs, "uninterrupted_s": round(cold, 1), "restart_s": round(duration, 1),
              "two_uninterrupted_runs_bitwise_equal": again, "starts": len(events),
              "kills_landed": sum(e["landed"] for e in events),
              "kills_during_checkpoint_write": sum(e["landed"] and e["kill"] == "during a checkpoint write"
                                                   for e in events),
              "events": events, "missed_kills_restarted": missed, **compare(whole, killed, args.epochs)}
    print(json.dumps(result, indent=2))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
