"""Which initialisation and E-step keep a GenMM's generators alive and specialised? Measured side by side.

    python -m experiments.ablations.init_variants [--dataset mnist] [--components 3] [--epochs 6] [--num_train 10000]
                                        [--variants shared,partition,partition+warm,...] [--workdir runs/init_variants]

Every variant is one ``image_experiment`` run of the same small model (the ``cpu``
preset's Glow size unless flags say otherwise, logit preprocessing, the same seed
and data); they differ only in ``--init``, ``--shared_rounds``, ``--warm_start_rounds``, ``--balanced_parts``,
``--balanced_e_step`` and ``--tempering``:

- ``shared``: the paper's init (every generator on the whole batch), exact EM;
- ``shared+annealed``: the same, with deterministic annealing (beta 0.1 -> 1 over 3 rounds);
- ``shared+paper``: the same, with the paper code's responsibilities (likelihood^(1/D));
- ``partition``: k-means parts, one per generator, exact EM from the first round;
- ``partition+warm``: the default: k-means parts and one warm-start round of hard partition responsibilities;
- ``shared-round+warm``: one round in which every generator learns every image (gamma = 1/K), then the warm start;
- ``balanced+warm``: the warm start on equal-size parts;
- ``balanced+warm+balanced-e-step``: the same, then responsibilities reweighted to equal totals every round.

Writes ``variants.md`` / ``variants.json``: final test bits/dim, pi, the exact
posterior share of the test set, the purity of the test images' argmax-gamma
assignment, and k-means purity on the same pixels as the ruler.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time


from experiments import exit_on_refused_xla_flags
from experiments import image_experiment
from experiments.kmeans_rulers import kmeans_purity

VARIANTS = {
    "shared": ["--init", "shared", "--warm_start_rounds", "0"],
    "shared+annealed": ["--init", "shared", "--warm_start_rounds", "0", "--tempering", "annealed"],
    "shared+paper": ["--init", "shared", "--warm_start_rounds", "0", "--tempering", "paper"],
    "partition": ["--init", "default", "--warm_start_rounds", "0"],
    "partition+warm": ["--init", "default", "--warm_start_rounds", "1"],
    "shared-round+warm": ["--init", "default", "--shared_rounds", "1", "--warm_start_rounds", "1"],
    "balanced+warm": ["--init", "default", "--warm_start_rounds", "1", "--balanced_parts"],
    "balanced+warm+balanced-e-step": ["--init", "default", "--warm_start_rounds", "1", "--balanced_parts",
                                      "--balanced_e_step"],
}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    p.add_argument("--components", type=int, default=3)
    p.add_argument("--variants", default=",".join(VARIANTS))
    image_experiment.add_sweep_size_arguments(p, epochs=6, em_every=2, num_train=10000, num_test=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default="runs/init_variants")
    args = p.parse_args(argv)
    root = pathlib.Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    results, t0 = {}, time.time()
    for name in args.variants.split(","):
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        results[name] = image_experiment.run(args.dataset, "genmm", [
            "--components", str(args.components), "--seed", str(args.seed), *image_experiment.sweep_size_flags(args),
            "--workdir", str(root / f"{args.dataset}_k{args.components}_{name}"), "--no_baselines", *VARIANTS[name]])
    ruler = kmeans_purity(args.dataset, args.data_dir, args.num_train, args.num_test, args.components, args.seed)
    table = render(results, ruler, args)
    (root / f"variants_{args.dataset}_k{args.components}.md").write_text(table)
    (root / f"variants_{args.dataset}_k{args.components}.json").write_text(json.dumps(
        {"args": vars(args), "seconds": round(time.time() - t0, 1), "kmeans_purity": ruler,
         "results": {n: {k: v for k, v in s.items() if k != "history"} for n, s in results.items()}}, indent=2))
    print(table)
    return results


def render(results: dict, ruler: float, args) -> str:
    one = next(iter(results.values()))
    lines = [
        f"GenMM K={args.components} on {args.dataset}: Glow {args.levels}x{args.steps}x{args.hidden} after logit, "
        f"{one['num_train']} training / {one['num_test']} test images, {args.epochs} epochs, t_EM {args.em_every}, "
        f"seed {args.seed}, backend {one['backend']}. Final epoch.",
        "",
        "| variant | test bits/dim | pi | exact posterior share (test) | purity (argmax gamma) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, s in results.items():
        c = s["final_components"]  # None when no EM round ended (epochs < t_EM)
        share, purity = ((" ".join(f"{v:.3f}" for v in c["posterior_share"]), f"{c['purity']:.3f}") if c
                         else ("–", "–"))
        lines.append(f"| {name} | {s['final_test_bits_per_dim']:.4f} | {' '.join(f'{v:.3f}' for v in s['final_pi'])} | "
                     f"{share} | {purity} |")
    lines.append(f"| k-means on pixels (ruler) | – | – | – | {ruler:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    exit_on_refused_xla_flags()
    main()
