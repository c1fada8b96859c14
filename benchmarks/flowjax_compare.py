"""emflow beside flowjax on tabular density estimation, with each library's defaults or matched settings.

Protocol: Letter (the first 16,000 rows train, the last 4,000 test), Satimage (``sat.trn`` /
``sat.tst``), or scikit-learn's bundled digits and breast_cancer (80/20 by a fixed permutation;
``benchmarks.tabular_fit.load``); integer features plus U(0, 1) noise (continuous ones as they are),
standardized with the training statistics; test NLL in nats per example of the standardized
features (test noise fixed by the seed).

- emflow: ``GenMM(flow, K)`` (``--coupling``: ``VectorFlow(D)``'s affine couplings, the default, or its
  spline couplings, or ``maf``: ``AutoregressiveFlow(D)``, flowjax's model in emflow) trained by
  ``train.fit_to_data`` with its defaults (10% validation split, patience 10, a one-epoch warm-up,
  Noam decay, at most 200 epochs, the best parameters returned), or with ``--emflow_api fit`` by
  ``train.fit`` with ``TrainConfig()`` (the paper's 10 epochs and 1,000 warm-up steps); its
  preprocessor draws fresh noise for every batch.
- flowjax: its documented autoregressive spline flow, ``masked_autoregressive_flow(key,
  base_dist=Normal(zeros(D)), transformer=RationalQuadraticSpline(knots=8, interval=4))``,
  with ``fit_to_data``'s defaults (Adam 5e-4, batch 100, 10% validation split, patience 5,
  at most 100 epochs, the best parameters returned) on one noisy copy of the training set;
  K > 1 is a ``VmapMixture`` of K such flows with learned weights, fitted by gradient.

Matched settings (``--settings matched``): the same training protocol for both, each library's
default flow: Adam at a constant 5e-4, batches of 128 with fresh U(0, 1) noise for every batch,
a new permutation every epoch, a fixed number of epochs (``MATCHED_EPOCHS``), no validation split
and no early stopping; the final parameters are tested. emflow: ``train.fit`` with
``optimizer=optax.adam(5e-4)`` (for K > 1 EM as ``fit_to_data`` runs it: the responsibilities and pi
renewed every epoch from one E-step pass, no warm-start round; a plain fit for K = 1); flowjax: its own training
step (``flowjax.train.train_utils.step`` with ``MaximumLikelihoodLoss``) in the same loop.

    python -m benchmarks.flowjax_compare --datasets letter satimage --components 1 4 --seeds 0 1 2
    python -m benchmarks.flowjax_compare --settings matched

Needs ``pip install -e ".[benchmark]"`` (flowjax). Prints one row per run and a mean ± std table;
``--out`` keeps the records as JSON (emflow's with each epoch's training NLL on ``TrainConfig.train_eval_size``
training examples and, under ``fit_to_data``, its validation NLL, both in nats per example).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

# Matched settings: Adam's constant learning rate, the batch size, and the epochs of each data set.
MATCHED_LEARNING_RATE, MATCHED_BATCH = 5e-4, 128
MATCHED_EPOCHS = {"letter": 50, "satimage": 20, "digits": 50, "breast_cancer": 100}
EMFLOW_FLOWS = ("affine", "spline", "maf")


def emflow_flow(coupling: str, num_features: int):
    """emflow's flow of a ``--coupling`` on ``num_features`` features (each with its defaults)."""
    import emflow

    if coupling == "maf":
        return emflow.AutoregressiveFlow(num_features)
    return emflow.VectorFlow(num_features, coupling=coupling)


def emflow_run(dataset: str, components: int, seed: int, data_dir: str | None, coupling: str, api: str) -> dict:
    import jax

    import emflow
    from benchmarks.tabular_fit import load, noisy_standardizer
    from emflow import train

    x_train, x_test = load(dataset, data_dir)
    rng = np.random.default_rng(seed)
    preprocess = noisy_standardizer(dataset, x_train, rng)
    model = emflow.GenMM(emflow_flow(coupling, x_train.shape[1]), components)
    t0 = time.time()
    if api == "fit":
        result = train.fit(model, train.TrainConfig(seed=seed, num_samples=0), preprocess, x_train, None,
                           progress=False, log=lambda s: None)
    elif api == "matched":
        import optax

        config = train.TrainConfig(epochs=MATCHED_EPOCHS[dataset], batch_size=MATCHED_BATCH, e_step="cached",
                                   em_every=1, warm_start_rounds=0, seed=seed, num_samples=0)  # fit_to_data's EM
        result = train.fit(model, config, preprocess, x_train, None, optimizer=optax.adam(MATCHED_LEARNING_RATE),
                           progress=False, log=lambda s: None)
    else:
        result = train.fit_to_data(model, x_train, preprocess, seed=seed, progress=False, log=lambda s: None)
    wall = time.time() - t0
    x = (x_test + preprocess.noise * rng.uniform(size=x_test.shape) - np.asarray(preprocess.mean)) / np.asarray(preprocess.std)
    nll = -float(np.mean(np.asarray(jax.jit(model.log_prob)(result.state.params, x.astype(np.float32)))))
    seconds = [r["seconds"] for r in result.history]
    training = [r["train_seconds"] for r in result.history]
    curves = {"train_nll_by_epoch": [round(r["train_nll_nats_per_dim"] * x_train.shape[1], 3) for r in result.history]}
    if "validation_nll" in result.history[0]:
        curves["validation_nll_by_epoch"] = [round(r["validation_nll"], 3) for r in result.history]
    return {"test_nll": nll, "wall_seconds": wall, "epochs": len(seconds), "seconds_per_epoch": float(np.median(seconds[1:])),
            "train_seconds_per_epoch": float(np.median(training[1:])), **curves}


def flowjax_run(dataset: str, components: int, seed: int, data_dir: str | None, api: str) -> dict:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    from flowjax.bijections import RationalQuadraticSpline
    from flowjax.distributions import Normal, VmapMixture
    from flowjax.flows import masked_autoregressive_flow
    from flowjax.train import fit_to_data

    from benchmarks.tabular_fit import INTEGER_FEATURES, load

    x_train, x_test = load(dataset, data_dir)
    rng = np.random.default_rng(seed)
    noise = 1.0 if INTEGER_FEATURES[dataset] else 0.0
    noisy = x_train + noise * rng.uniform(size=x_train.shape)
    mean, std = noisy.mean(0), noisy.std(0)
    train_x = ((noisy - mean) / std).astype(np.float32)
    test_x = ((x_test + noise * rng.uniform(size=x_test.shape) - mean) / std).astype(np.float32)
    dim = x_train.shape[1]

    def make(key):
        return masked_autoregressive_flow(key, base_dist=Normal(jnp.zeros(dim)),
                                          transformer=RationalQuadraticSpline(knots=8, interval=4))

    key, fit_key = jax.random.split(jax.random.key(seed))
    if components == 1:
        dist = make(key)
    else:
        dist = VmapMixture(eqx.filter_vmap(make)(jax.random.split(key, components)), weights=jnp.ones(components))
    t0 = time.time()
    if api == "matched":
        dist, seconds = flowjax_matched(fit_key, dist, x_train, noise, mean, std, MATCHED_EPOCHS[dataset])
        wall, epochs, per_epoch = time.time() - t0, len(seconds), float(np.median(seconds[1:]))
        train_per_epoch = per_epoch  # its loop does nothing but the steps
    else:
        dist, losses = fit_to_data(fit_key, dist, train_x, show_progress=False)
        wall, epochs = time.time() - t0, len(losses["train"])
        per_epoch, train_per_epoch = wall / epochs, None  # its steps and validation losses are not timed apart
    nll = -float(jnp.mean(dist.log_prob(test_x)))
    return {"test_nll": nll, "wall_seconds": wall, "epochs": epochs, "seconds_per_epoch": per_epoch,
            "train_seconds_per_epoch": train_per_epoch}


def flowjax_matched(key, dist, x_train: np.ndarray, noise: float, mean: np.ndarray, std: np.ndarray,
                    epochs: int) -> tuple:
    """flowjax's own training step under the matched protocol; ``(dist, seconds of each epoch)``."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax
    import paramax
    from flowjax.train.losses import MaximumLikelihoodLoss
    from flowjax.train.train_utils import step

    params, static = eqx.partition(dist, eqx.is_inexact_array, is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable))
    optimizer, loss_fn = optax.adam(MATCHED_LEARNING_RATE), MaximumLikelihoodLoss()
    opt_state = optimizer.init(params)
    raw = jnp.asarray(x_train, jnp.float32)
    mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)

    @jax.jit
    def batch(perm, i, k):
        rows = raw[jax.lax.dynamic_slice_in_dim(perm, i * MATCHED_BATCH, MATCHED_BATCH)]
        return (rows + noise * jax.random.uniform(k, rows.shape) - mean) / std

    steps, seconds = len(x_train) // MATCHED_BATCH, []
    for epoch in range(epochs):
        t0 = time.time()
        key, k_perm, k_noise = jax.random.split(key, 3)
        perm = jax.random.permutation(k_perm, len(x_train))
        for i in range(steps):
            x = batch(perm, i, jax.random.fold_in(k_noise, i))
            params, opt_state, loss = step(params, static, x, optimizer=optimizer, opt_state=opt_state, loss_fn=loss_fn)
        jax.block_until_ready(loss)
        seconds.append(time.time() - t0)
    return eqx.combine(params, static), seconds


def one_run(argv) -> None:
    library, dataset, components, seed, data_dir, coupling, api = argv
    data_dir = data_dir or None
    if library == "emflow":
        record = emflow_run(dataset, int(components), int(seed), data_dir, coupling, api)
    else:
        record = flowjax_run(dataset, int(components), int(seed), data_dir, api)
    print("RECORD " + json.dumps(record))


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["letter", "satimage"])
    p.add_argument("--components", nargs="+", type=int, default=[1, 4])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--libraries", nargs="+", default=["emflow", "flowjax"])
    p.add_argument("--coupling", default="affine", choices=EMFLOW_FLOWS,
                   help="emflow's flow: VectorFlow's affine or spline couplings, or maf (AutoregressiveFlow)")
    p.add_argument("--emflow_api", choices=["fit_to_data", "fit"], default="fit_to_data",
                   help="emflow's training entry with each library's defaults")
    p.add_argument("--settings", choices=["defaults", "matched"], default="defaults",
                   help="each library's defaults, or the matched protocol (MATCHED_*) for both")
    p.add_argument("--data_dir", default="")
    p.add_argument("--out")
    args = p.parse_args(argv)
    from benchmarks.tabular_fit import keep
    api = "matched" if args.settings == "matched" else args.emflow_api
    records = []
    for dataset in args.datasets:
        for k in args.components:
            for seed in args.seeds:
                for library in args.libraries:
                    out = subprocess.run([sys.executable, "-m", "benchmarks.flowjax_compare", "--one", library, dataset,
                                          str(k), str(seed), args.data_dir, args.coupling, api],
                                         capture_output=True, text=True, check=True).stdout
                    record = json.loads(out.split("RECORD ", 1)[1])
                    label = library if library == "flowjax" or args.coupling == "affine" else f"emflow ({args.coupling})"
                    record.update(library=library, label=label, dataset=dataset, components=k, seed=seed,
                                  coupling=args.coupling if library == "emflow" else "spline (MAF)",
                                  settings=args.settings,
                                  api=api if library == "emflow" or api == "matched" else "fit_to_data")
                    records.append(record)
                    print(f"{dataset:9s} K={k} seed {seed} {library:8s} test NLL {record['test_nll']:8.3f}  "
                          f"{record['wall_seconds']:6.1f} s  {record['epochs']} epochs", flush=True)
                    keep(records, args.out)
    print(table(records))
    return records


def table(records: list[dict]) -> str:
    """Mean ± std over seeds of test NLL and wall time, one row per setting and library.

    ``s / epoch``: an epoch's wall time as each library's loop spends it (emflow's includes its per-epoch
    training-NLL pass over ``TrainConfig.train_eval_size`` examples); ``training s / epoch``: the
    gradient steps (and emflow's E-step) alone, ``–`` where a record did not time them apart."""
    rows = ["| data | K | library | test NLL (nats) | wall s | s / epoch | training s / epoch | epochs |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    name = lambda r: r.get("label", r["library"])  # "emflow (spline)" for emflow's spline couplings
    keys = sorted({(r["dataset"], r["components"], name(r)) for r in records})
    for dataset, k, library in keys:
        rs = [r for r in records if (r["dataset"], r["components"], name(r)) == (dataset, k, library)]
        f = lambda name, rs=rs: np.array([r[name] for r in rs], float)
        training = [r.get("train_seconds_per_epoch") for r in rs]
        training = "–" if None in training else f"{np.mean(training):.2f}"
        rows.append(f"| {dataset} | {k} | {library} | {f('test_nll').mean():.2f} ± {f('test_nll').std():.2f} | "
                    f"{f('wall_seconds').mean():.1f} | {f('seconds_per_epoch').mean():.2f} | {training} | "
                    f"{f('epochs').mean():.0f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        one_run(sys.argv[2:])
    else:
        main()
