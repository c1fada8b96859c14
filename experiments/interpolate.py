"""Samples and latent interpolation (the paper's Figs. 6-7) from trained GenMM and LatMM runs.

    python -m experiments.interpolate [--dataset mnist] [--runs runs/evaluate_samples] [--genmm_k 3] [--latmm_k 3]
                                      [--pairs 8] [--points 8] [--temperature 0.7] [--out runs/interpolate]

Takes the runs ``<runs>/<dataset>_genmm_k<K>`` and ``<runs>/<dataset>_latmm_k<K>`` (as
``experiments.evaluate_samples`` leaves them; a missing one is trained with its sweep-size
flags). Writes:
- ``fig6_<dataset>_<model>_k<K>.png``: 8 x 8 samples at ``--temperature``;
- ``fig7a_<dataset>_genmm_k<K>.png``: GenMM, each end's argmax-gamma generator (switching at t = 0.5);
- ``fig7b_<dataset>_genmm_k<K>.png``: GenMM, the generator of every image drawn from pi;
- ``fig7c_<dataset>_latmm_k<K>.png``: LatMM;
- ``interpolation_<dataset>.json``: the test-image indices of the pairs (the same in every panel),
  their labels, the steps and each end's argmax-gamma generator.
In the interpolation figures every column is one pair: the first row is the real first image,
the last row the real second one, and the rows between decode ``(1 - t) z1 + t z2`` for the steps t.
"""
from __future__ import annotations

import argparse
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from emflow import data as data_lib
from emflow.data import download
from emflow.evaluation import interpolation, plots
from experiments import exit_on_refused_xla_flags
from experiments import evaluate_samples, image_experiment


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    p.add_argument("--runs", default="runs/evaluate_samples", help="folder of trained runs (evaluate_samples')")
    p.add_argument("--genmm_k", type=int, default=3)
    p.add_argument("--latmm_k", type=int, default=3)
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--points", type=int, default=8, help="interpolated rows between the two real rows")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/interpolate")
    image_experiment.add_sweep_size_arguments(p, epochs=3, em_every=1, num_train=20000, num_test=2000, warmup_steps=100)
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = pathlib.Path(args.runs)
    ds = data_lib.load_dataset(args.dataset, download.ensure_dataset(args.dataset, args.data_dir))
    rng = np.random.default_rng(args.seed)
    first, second = (rng.choice(len(ds.x_test), args.pairs, replace=False) for _ in range(2))
    ts = jnp.linspace(0.0, 1.0, args.points + 2)[1:-1]
    key = jax.random.PRNGKey(args.seed)
    record = {"dataset": args.dataset, "first": first.tolist(), "second": second.tolist(),
              "labels_first": ds.y_test[first].tolist(), "labels_second": ds.y_test[second].tolist(),
              "steps": [float(t) for t in ts], "temperature": args.temperature, "files": []}

    def save(name: str, images: np.ndarray, columns: int) -> None:
        plots.image_grid(images, out / name, columns=columns)
        record["files"].append(name)

    for model_name, k in (("genmm", args.genmm_k), ("latmm", args.latmm_k)):
        model, params, dequantizer, _ = evaluate_samples.trained_model(args.dataset, model_name, k, root, args,
                                                                      ds.x_train.shape[1:])
        samples = jax.jit(lambda p, kk: dequantizer.quantize(model.sample(p, kk, 64, args.temperature)))(
            params, jax.random.fold_in(key, k))
        save(f"fig6_{args.dataset}_{model_name}_k{k}.png", np.asarray(samples), 8)
        # the real pairs as model inputs, at the centres of their dequantization bins
        x1, x2 = mid_bin(dequantizer, ds.x_test[first]), mid_bin(dequantizer, ds.x_test[second])
        if model_name == "genmm":
            _, k1 = interpolation.genmm_latents(model, params, x1)
            _, k2 = interpolation.genmm_latents(model, params, x2)
            record["genmm_argmax_first"], record["genmm_argmax_second"] = np.asarray(k1).tolist(), np.asarray(k2).tolist()
            panels = {"fig7a": interpolation.interpolate_genmm(model, params, x1, x2, ts, generator="argmax"),
                      "fig7b": interpolation.interpolate_genmm(model, params, x1, x2, ts, jax.random.fold_in(key, 7),
                                                               generator="prior")}
        else:
            panels = {"fig7c": interpolation.interpolate_latmm(model, params, x1, x2, ts)}
        for fig, images in panels.items():
            middle = np.asarray(dequantizer.quantize(images.reshape(-1, *images.shape[2:])))
            real = lambda x: np.asarray(dequantizer.quantize(x))  # the real images as the model sees them
            rows = np.concatenate([real(x1), middle, real(x2)])
            save(f"{fig}_{args.dataset}_{model_name}_k{k}.png", rows, args.pairs)
    (out / f"interpolation_{args.dataset}.json").write_text(json.dumps(record, indent=2))
    print(f"wrote {', '.join(record['files'])} and interpolation_{args.dataset}.json to {out}")
    return record


def mid_bin(dequantizer, images: np.ndarray) -> jax.Array:
    """8-bit images as model inputs at the centre of their dequantization bins (no noise)."""
    if dequantizer.scheme == "uniform":
        return (jnp.asarray(images, jnp.float32) + 0.5) / 256.0
    return dequantizer.resize(jnp.asarray(images)).astype(jnp.float32) / 255.0 - 0.5


if __name__ == "__main__":
    exit_on_refused_xla_flags()
    main()
