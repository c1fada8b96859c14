"""The paper's Table I protocol: lowest test NLL of GenMM for K in {1, 3, 5, 7} on MNIST and Fashion-MNIST.

    python -m experiments.table1 [--preset cpu|paper] [--components 1,3,5,7] [--datasets mnist,fashion_mnist]
                                 [--epochs N] [--num_train N] [--num_test N] [--workdir runs/table1] [--resume]

Each (dataset, K) is one ``image_experiment`` run in ``<workdir>/<dataset>_k<K>``
(resumable; a finished run is not repeated with --resume). Writes
``<workdir>/table1.md`` (our numbers beside the paper's), ``table1.json`` and
``fig3_<dataset>.png`` (test NLL vs epoch per K, the paper's Fig. 3 layout).

The defaults fit this project's 2-core CPU in about half an hour: the ``cpu``
preset's Glow, 2,000 training images, 6 epochs, t_EM = 2, 2,000 test images.
``--preset paper --num_train 10000 --epochs 400`` is the paper's own protocol
(a GPU job). NLL units differ: the paper's numbers are nats per pixel of the
32x32 resized input; the cpu preset's are nats per pixel of the 28x28 original,
so compare the *trend in K*, not the values.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time

from emflow import plots
from experiments import image_experiment
from experiments.configs import PAPER_TABLE1


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu", choices=["cpu", "paper"])
    p.add_argument("--components", default="1,3,5,7")
    p.add_argument("--datasets", default="mnist,fashion_mnist")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--em_every", type=int, default=2)
    p.add_argument("--num_train", type=int, default=2000)
    p.add_argument("--num_test", type=int, default=2000)
    p.add_argument("--data_dir")
    p.add_argument("--workdir", default="runs/table1")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no_progress", action="store_true")
    args = p.parse_args(argv)
    root = pathlib.Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    ks = [int(k) for k in args.components.split(",")]
    datasets = args.datasets.split(",")
    results: dict = {}
    t0 = time.time()
    for dataset in datasets:
        for k in ks:
            workdir = root / f"{dataset}_k{k}"
            summary_path = workdir / "summary.json"
            if args.resume and summary_path.exists():
                summary = json.loads(summary_path.read_text())
                if summary["epochs"] >= args.epochs:
                    results.setdefault(dataset, {})[k] = summary
                    print(f"{dataset} K={k}: done before, best {summary['best_test_nll_nats_per_dim']:.4f}")
                    continue
            flags = image_experiment.build_parser(dataset, "genmm").parse_args([
                "--preset", args.preset, "--components", str(k), "--epochs", str(args.epochs),
                "--em_every", str(args.em_every), "--num_train", str(args.num_train),
                "--num_test", str(args.num_test), "--workdir", str(workdir), "--seed", str(args.seed),
                *(["--data_dir", args.data_dir] if args.data_dir else []),
                *(["--resume"] if args.resume else []), *(["--no_progress"] if args.no_progress else []),
            ])
            results.setdefault(dataset, {})[k] = image_experiment.run(dataset, "genmm", args=flags)
        curves = {f"K={k}": ([h["epoch"] for h in s["history"]], [h["test_nll_nats_per_dim"] for h in s["history"]])
                  for k, s in results[dataset].items()}
        plots.nll_curves(curves, root / f"fig3_{dataset}.png", ylabel="test NLL (nats/dim)",
                         title=f"GenMM on {dataset} ({args.preset} preset, {args.num_train} images)")
    table = render(results, ks, args)
    (root / "table1.md").write_text(table)
    (root / "table1.json").write_text(json.dumps(
        {"args": vars(args), "seconds": round(time.time() - t0, 1),
         "results": {d: {str(k): {x: s[x] for x in s if x != "history"} for k, s in r.items()} for d, r in results.items()}},
        indent=2))
    print(table)
    return results


def render(results: dict, ks: list[int], args) -> str:
    one = next(iter(next(iter(results.values())).values()))
    lines = [
        f"Lowest test NLL of GenMM (nats/dim; {one['nll_unit']}), "
        f"preset `{args.preset}`: Glow {one['glow']['levels']}x{one['glow']['steps']}x{one['glow']['hidden']}, "
        f"{args.num_train} training images, {args.num_test or 10000} test images, {args.epochs} epochs, "
        f"t_EM {args.em_every}, batch {one['batch_size']}, seed {args.seed}, backend {one['backend']}.",
        "",
        "| dataset | " + " | ".join(f"K={k}" for k in ks) + " |",
        "| --- | " + " | ".join("---" for _ in ks) + " |",
    ]
    for dataset, by_k in results.items():
        lines.append(f"| {dataset} (emflow) | " + " | ".join(
            f"{by_k[k]['best_test_nll_nats_per_dim']:.4f}" if k in by_k else "–" for k in ks) + " |")
        paper = PAPER_TABLE1.get(dataset, {})
        lines.append(f"| {dataset} (paper, 32x32 nats/pixel) | " + " | ".join(
            f"{paper[k]:.4f}" if k in paper else "–" for k in ks) + " |")
    lines.append("")
    lines.append("Final mixture weights pi: " + "; ".join(
        f"{d} K={k}: " + " ".join(f"{p:.2f}" for p in s["final_pi"]) for d, r in results.items() for k, s in r.items()))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
