"""Tiny ``train.fit`` runs whose end state is recorded, so that a rewrite of the loop can be held to it.

    python -m tests.fit_reference --write     # record tests/data/fit_reference.json with this code

Each case trains for a few epochs on fixed data and records, per parameter leaf, its shape
and float64 sum and sum of absolute values, and per epoch the test NLL and pi. The cases
cover the E-steps a run can take: the warm start, the cached and the per-batch exact E-step,
the paper code's tempered one, LatMM, a Glow on dequantized images, the closing pi update,
and the partition of more examples than the init batch (GenMM's centroids, LatMM's Gaussians).
``tests/test_fit_reference.py`` reruns them against the record.
"""
from __future__ import annotations

import argparse
import json
import pathlib

import jax
import numpy as np

import emflow
from emflow import train

PATH = pathlib.Path(__file__).resolve().parent / "data" / "fit_reference.json"


def _toy(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.3
    centres = np.where(labels[:, None], [-1.0, 0.5], [1.0, 0.0])  # overlapping: soft responsibilities
    return (centres + rng.standard_normal((n, 2))).astype(np.float32)


def _images(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    bright = rng.random(n) < 0.4
    base = np.where(bright[:, None, None, None], 180.0, 60.0)
    return np.clip(base + 40.0 * rng.standard_normal((n, 4, 4, 1)), 0, 255).astype(np.uint8)


def _config(**kw) -> train.TrainConfig:
    defaults = dict(epochs=3, batch_size=32, em_every=1, warmup_steps=10, seed=3, learning_rate=1e-2,
                    num_samples=0, init_batch_size=64)
    return train.TrainConfig(**{**defaults, **kw})


VECTOR = emflow.VectorFlow(2, num_steps=2, hidden=8)
CASES = {
    "genmm_cached_warm_final_pi": lambda: (emflow.GenMM(VECTOR, 2), _config(e_step="cached", final_prior_update=True),
                                           None, _toy(256, 0), _toy(128, 1)),
    "genmm_per_batch_no_warm": lambda: (emflow.GenMM(VECTOR, 2), _config(warm_start_rounds=0, partition_size=0), None,
                                        _toy(256, 0), _toy(128, 1)),
    "genmm_paper_tempering": lambda: (emflow.GenMM(VECTOR, 2), _config(e_step="cached", tempering="paper"), None,
                                      _toy(256, 0), _toy(128, 1)),
    "latmm_cached_warm": lambda: (emflow.LatMM(VECTOR, 2), _config(e_step="cached"), None, _toy(256, 0),
                                  _toy(128, 1)),
    "genmm_glow_dequantized": lambda: (
        emflow.GenMM(emflow.Glow((4, 4, 1), num_levels=2, num_steps=1, hidden_channels=4), 2),
        _config(e_step="cached", epochs=2), emflow.Dequantizer((4, 4, 1)),
        _images(192, 0), _images(64, 1)),
}


def run(name: str) -> dict:
    """The record of case ``name``: ``{"leaves": {path: [shape, sum, sum |.|]}, "test_nll": [...], "pi": [...]}``."""
    model, config, preprocess, x_train, x_test = CASES[name]()
    result = train.fit(model, config, preprocess, x_train, x_test, progress=False, log=lambda s: None)
    leaves = {jax.tree_util.keystr(path): [list(np.shape(leaf)), float(np.sum(np.asarray(leaf, np.float64))),
                                           float(np.sum(np.abs(np.asarray(leaf, np.float64))))]
              for path, leaf in jax.tree_util.tree_leaves_with_path(result.state.params)}
    return {"leaves": leaves, "test_nll": [r["test_nll_nats_per_dim"] for r in result.history],
            "pi": [r["pi"] for r in result.history], "e_step": [r["e_step"] for r in result.history]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help=f"record {PATH}")
    args = p.parse_args(argv)
    record = {name: run(name) for name in CASES}
    record["_recorded_with"] = {"jax": jax.__version__, "emflow": emflow.__version__}
    text = json.dumps(record, indent=1)
    if args.write:
        PATH.parent.mkdir(exist_ok=True)
        PATH.write_text(text + "\n")
    print(text[:2000])


if __name__ == "__main__":
    main()
