"""Do generators trained on their own k-means parts prefer their own parts? The likelihood behind collapse.

    python -m experiments.part_likelihoods [--dataset mnist] [--components 3] [--epochs 4] [--num_train 10000]

Trains a GenMM with every EM round a warm-start round (each generator learns only
its own k-means part of the training images: hard partition responsibilities
throughout), then scores the test images, grouped by their nearest init centroid:
mean bits/dim of generator k on part j's test images, and the share of part j's
test images that generator k wins (the exact posterior's argmax). If generators
specialised in likelihood, each would win its own part (a dominant diagonal).
Writes ``part_likelihoods_<dataset>_k<K>.json`` into ``--workdir``.
"""
from __future__ import annotations

import argparse
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

import emflow
from emflow import data as data_lib
from emflow.data import download
from emflow import train
from emflow.mixtures import partition
from experiments import exit_on_refused_xla_flags
from experiments import image_experiment


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    p.add_argument("--components", type=int, default=3)
    image_experiment.add_sweep_size_arguments(p, epochs=4, em_every=1, num_train=10000, num_test=0, warmup_steps=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default="runs/part_likelihoods")
    args = p.parse_args(argv)
    if args.shared_first_level or args.final_prior_update:
        p.error("--shared_first_level and --final_prior_update are not available here: the generators are "
                "separate flows and every EM round is a warm-start round")
    ds = data_lib.load_dataset(args.dataset, download.ensure_dataset(args.dataset, args.data_dir))
    x_train, x_test = ds.x_train[: args.num_train or None], ds.x_test[: args.num_test or None]
    deq = emflow.Dequantizer(ds.x_train.shape[1:])
    flow = emflow.Prefixed(emflow.Logit(deq.model_shape),
                           emflow.Glow(deq.model_shape, args.levels, args.steps, args.hidden, top_prior=args.top_prior))
    model = emflow.GenMM(flow, args.components)
    rounds = -(-args.epochs // args.em_every)
    config = train.TrainConfig(epochs=args.epochs, batch_size=64, em_every=args.em_every, warmup_steps=args.warmup_steps,
                               schedule="cosine", warm_start_rounds=rounds, num_samples=0, e_step="cached",
                               seed=args.seed, partition_size=args.partition_size)
    result = train.fit(model, config, deq, x_train, x_test, progress=not args.no_progress)
    x = deq(jax.random.PRNGKey(args.seed + 1), jnp.asarray(x_test))
    parts = np.asarray(partition.nearest(result.partition.centroids, model.partition_features(None, x)))
    score = jax.jit(model.generator_log_prob)
    log_p = np.concatenate([np.asarray(score(result.state.params, x[i: i + 500])) for i in range(0, len(x), 500)])
    bits = -np.asarray(deq.discrete_log_prob(log_p)) / (deq.num_model_dims * np.log(2.0))
    k = args.components
    winner = log_p.argmax(axis=1)
    out = {
        "args": vars(args), "test_images_per_part": np.bincount(parts, minlength=k).tolist(),
        "bits_per_dim": [[float(bits[parts == j, g].mean()) if np.any(parts == j) else None for j in range(k)]
                         for g in range(k)],
        "wins": [[float(np.mean(winner[parts == j] == g)) if np.any(parts == j) else None for j in range(k)]
                 for g in range(k)],
        "training_share": np.asarray(result.history[-1]["mean_gamma"]).tolist(),
    }
    print(render(out))
    root = pathlib.Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    (root / f"part_likelihoods_{args.dataset}_k{k}.json").write_text(json.dumps(out, indent=2))
    return out


def render(out: dict) -> str:
    k = len(out["wins"])
    cell = lambda v, fmt: "–" if v is None else format(v, fmt)
    lines = [f"test images per part: {out['test_images_per_part']}; training share per generator: "
             + " ".join(f"{v:.3f}" for v in out["training_share"]), "",
             "| generator | " + " | ".join(f"part {j}: bits/dim, won" for j in range(k)) + " |",
             "| --- | " + " | ".join("---" for _ in range(k)) + " |"]
    for g in range(k):
        lines.append(f"| {g} | " + " | ".join(
            f"{cell(out['bits_per_dim'][g][j], '.4f')}, {cell(out['wins'][g][j], '.3f')}" for j in range(k)) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    exit_on_refused_xla_flags()
    main()
