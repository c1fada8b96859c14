"""Two ways of training the same model, from the same seeds: time per epoch and test NLL after the same epochs.

    python -m benchmarks.training_variants [--compare e_step|compute_dtype|conv_impl] [--dataset mnist]
        [--components 3] [--num_train 2000] [--num_test 1000] [--epochs 6] [--em_every 3]
        [--seeds 0,1,2] [--json out.json]

``--compare e_step``: per-batch vs cached E-step. ``--compare compute_dtype``: float32 vs
bfloat16 coupling networks (log-dets and accumulations stay float32). ``--compare conv_impl``:
XLA's 3x3 convolutions vs one matrix product each.

Per-batch (Algorithm 1 as written): every step also runs the K generators of Phi_old
forward on its batch for the responsibilities. Cached: Phi_old is fixed for the t_EM
epochs of an EM round, so gamma and log p(x; Phi_old) of every training example are
computed once per round (one forward pass over the data) and looked up by the steps.
The saving per round is t_EM - 1 forward passes of Phi_old over the data, so it grows
with t_EM and K and is at most the share of a step spent in the Phi_old forward pass.

Both variants run the ``experiments.mnist_genmm`` harness (``cpu`` preset model: Glow
2 levels x 2 steps x 32 channels on 28x28, uniform dequantization) from the same
seeds. "train s/epoch" is the mean ``train_seconds`` of the epochs after the first
(which compiles): E-step + M-steps, without the per-epoch evaluations. Test NLL is
after the last epoch; its spread over seeds is the run-to-run noise the second
variant's difference is compared with.
"""
from __future__ import annotations

import argparse
import json
import tempfile

import jax
import numpy as np

from experiments import image_experiment


VARIANTS = {"e_step": ("per_batch", "cached"), "compute_dtype": ("float32", "bfloat16"), "conv_impl": ("lax", "matmul")}


def run_one(args, variant: str, seed: int, workdir: str) -> dict:
    flags = [f"--{args.compare}", variant, "--components", str(args.components), "--num_train", str(args.num_train),
             "--num_test", str(args.num_test), "--epochs", str(args.epochs), "--em_every", str(args.em_every),
             "--seed", str(seed), "--workdir", workdir, "--no_progress", *image_experiment.SWEEP_PROTOCOL_FLAGS]
    if args.data_dir:
        flags += ["--data_dir", args.data_dir]
    summary = image_experiment.run(args.dataset, "genmm", flags)
    history = [json.loads(line) for line in open(f"{workdir}/metrics.jsonl")]
    return {"variant": variant, "seed": seed,
            "train_seconds_per_epoch": float(np.mean([r["train_seconds"] for r in history[1:]])),
            "final_test_nll_nats_per_dim": summary["final_test_nll_nats_per_dim"]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--compare", default="e_step", choices=sorted(VARIANTS))
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    p.add_argument("--components", type=int, default=3)
    p.add_argument("--num_train", type=int, default=2000)
    p.add_argument("--num_test", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--em_every", type=int, default=3)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--data_dir")
    p.add_argument("--json")
    args = p.parse_args(argv)
    if args.epochs < 2:
        raise SystemExit("--epochs must be >= 2 (the first epoch compiles and is not timed)")
    base, other = VARIANTS[args.compare]
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for variant in (base, other):  # interleaved, so a slow spell of the machine hits both
            with tempfile.TemporaryDirectory() as workdir:
                runs.append(run_one(args, variant, seed, workdir))
    rows = {}
    for variant in (base, other):
        mine = [r for r in runs if r["variant"] == variant]
        secs = np.array([r["train_seconds_per_epoch"] for r in mine])
        nll = np.array([r["final_test_nll_nats_per_dim"] for r in mine])
        rows[variant] = {"train_seconds_per_epoch": float(secs.mean()), "nll_mean": float(nll.mean()),
                         "nll_std": float(nll.std(ddof=1)) if len(nll) > 1 else 0.0, "nll": nll.tolist()}
    diffs = np.array([c["final_test_nll_nats_per_dim"] - b["final_test_nll_nats_per_dim"]
                      for b, c in zip(runs[0::2], runs[1::2])])
    result = {"settings": vars(args), "backend": jax.default_backend(), "device": str(jax.devices()[0]),
              "speedup": rows[base]["train_seconds_per_epoch"] / rows[other]["train_seconds_per_epoch"],
              f"paired_nll_difference_{other}_minus_{base}": diffs.tolist(), "variants": rows, "runs": runs}
    print(f"\nGenMM K={args.components} on {args.num_train} {args.dataset} images, t_EM {args.em_every}, "
          f"{args.epochs} epochs, seeds {args.seeds}, backend {result['backend']}")
    print(f"| {args.compare} | train s/epoch | final test NLL (nats/dim), mean ± std over seeds | per seed |")
    print("| --- | --- | --- | --- |")
    for variant, r in rows.items():
        print(f"| {variant} | {r['train_seconds_per_epoch']:.2f} | {r['nll_mean']:.4f} ± {r['nll_std']:.4f} | "
              f"{', '.join(f'{v:.4f}' for v in r['nll'])} |")
    print(f"speed-up of the training epochs: {result['speedup']:.2f}x; {other} - {base} NLL per seed: "
          f"{', '.join(f'{d:+.4f}' for d in diffs)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
