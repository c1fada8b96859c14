"""One ``train.fit`` on a tabular data set: its compilations, first-epoch time against a later epoch's, test NLL.

The protocol of the flowjax comparison: Letter (the first 16,000 rows train, the last 4,000 test)
or Satimage (``sat.trn`` / ``sat.tst``); the integer features plus U(0, 1) noise (fresh for every
batch, fixed for evaluation), standardized with the training set's mean and std; test NLL in nats
per example of the standardized features. Compilations are counted as XLA backend compiles
(``jax.monitoring``) and named from ``jax_log_compiles``.

    python -m benchmarks.tabular_fit --dataset letter --components 4 --epochs 3
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import time

import jax
import jax.numpy as jnp
import numpy as np

import emflow
from emflow import data as data_lib
from emflow import train
from emflow.data import download


class Standardize:
    """``(raw + U(0, noise) - mean) / std``, ``mean, std: (D,)`` of the noisy training set (``noise`` 1 for
    integer features, 0 for continuous ones)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, noise: float = 1.0):
        self.mean, self.std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
        self.noise = float(noise)

    def __call__(self, key, raw):
        return (raw.astype(jnp.float32) + self.noise * jax.random.uniform(key, raw.shape) - self.mean) / self.std


# Letter and Satimage (their standard splits), and two of scikit-learn's bundled sets (no download), split
# 80/20 by a fixed permutation: digits (8x8 images, integers 0..16) and breast_cancer (30 continuous features).
DATASETS = ("letter", "satimage", "digits", "breast_cancer")
INTEGER_FEATURES = {"letter": True, "satimage": True, "digits": True, "breast_cancer": False}


def load(dataset: str, data_dir: str | None):
    """``(x_train, x_test)`` of the protocol's split (int32 for integer features, float64 otherwise)."""
    if dataset in ("digits", "breast_cancer"):
        import sklearn.datasets

        x = getattr(sklearn.datasets, f"load_{dataset}")().data
        order = np.random.default_rng(0).permutation(len(x))
        cut = int(0.8 * len(x))
        x = x.astype(np.int32) if INTEGER_FEATURES[dataset] else x
        return x[order[:cut]], x[order[cut:]]
    ds = data_lib.load_dataset(dataset, download.ensure_dataset(dataset, data_dir))
    return np.asarray(ds.x_train), np.asarray(ds.x_test)


def noisy_standardizer(dataset: str, x_train: np.ndarray, rng: np.random.Generator) -> Standardize:
    """The protocol's preprocessor: the training set's mean and std after one draw of its noise."""
    noise = 1.0 if INTEGER_FEATURES[dataset] else 0.0
    noisy = x_train + noise * rng.uniform(size=x_train.shape)
    return Standardize(noisy.mean(0), noisy.std(0), noise)


def keep(records: list[dict], path: str | None) -> None:
    """Write ``records`` as JSON to ``path`` (after each run, so a stopped sweep keeps what it measured); None: nothing."""
    if path:
        with open(path, "w") as f:
            json.dump(records, f, indent=1)


class CompileCounter(logging.Handler):
    """Counts backend compiles and collects the compiled functions' names while it is installed."""

    def __init__(self):
        super().__init__()
        self.count, self.names, self.seconds = 0, collections.Counter(), collections.Counter()

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Compiling "):
            self.names[message.split()[1]] += 1
        elif message.startswith("Finished XLA compilation of "):
            words = message.split()
            self.seconds[words[4]] += float(words[-2])

    def __enter__(self):
        jax.config.update("jax_log_compiles", True)
        logging.getLogger("jax").addHandler(self)
        self._listener = self._listen   # one bound method: the same object is unregistered on exit
        jax.monitoring.register_event_duration_secs_listener(self._listener)
        return self

    def _listen(self, name, secs, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            self.count += 1

    def __exit__(self, *exc):
        logging.getLogger("jax").removeHandler(self)
        jax.config.update("jax_log_compiles", False)
        jax.monitoring.unregister_event_duration_listener(self._listener)


def run(dataset: str, components: int, epochs: int, seed: int, data_dir: str | None, flow_kwargs: dict,
        config_kwargs: dict) -> dict:
    x_train, x_test = load(dataset, data_dir)
    preprocess = noisy_standardizer(dataset, x_train, np.random.default_rng(seed))
    model = emflow.GenMM(emflow.VectorFlow(x_train.shape[1], **flow_kwargs), components)
    config = train.TrainConfig(epochs=epochs, seed=seed, num_samples=0, **config_kwargs)
    with CompileCounter() as counter:
        t0 = time.time()
        result = train.fit(model, config, preprocess, x_train, x_test, progress=False, log=lambda s: None)
        wall = time.time() - t0
    seconds = [r["seconds"] for r in result.history]
    nll = result.history[-1]["test_nll_nats_per_dim"] * x_train.shape[1]
    return {"dataset": dataset, "components": components, "epochs": epochs, "seed": seed,
            "compiles": counter.count, "compiled": dict(counter.names.most_common()),
            "compile_seconds": {k: round(v, 2) for k, v in counter.seconds.most_common(8)},
            "wall_seconds": round(wall, 2),
            "epoch_seconds": seconds, "first_over_later": round(seconds[0] / np.median(seconds[1:]), 2)
            if len(seconds) > 1 else None,
            "test_nll_nats_per_example": nll, "e_steps": [r["e_step"] for r in result.history]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=DATASETS, default="letter")
    p.add_argument("--components", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--coupling", default="affine")
    p.add_argument("--data_dir")
    p.add_argument("--out", help="write the record as JSON here")
    args = p.parse_args(argv)
    record = run(args.dataset, args.components, args.epochs, args.seed, args.data_dir,
                 {"coupling": args.coupling}, {})
    record.update(jax=jax.__version__, backend=jax.default_backend(), coupling=args.coupling)
    print(json.dumps(record, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1)
    return record


if __name__ == "__main__":
    main()
