"""Sample quality against K (the paper's Figs. 4-5): IS, FID, MMD and 1-NN of GenMM and LatMM samples.

    python -m experiments.evaluate_samples [--datasets mnist,fashion_mnist] [--models genmm,latmm]
        [--components 1,3,5,7,9] [--num_samples 1000] [--trials 5] [--temperatures 1.0,0.85,0.7,0.55]
        [--epochs 3 --num_train 20000 ...] [--workdir runs/evaluate_samples]

For every dataset, model and K: the model in ``<workdir>/<dataset>_<model>_k<K>`` is trained
(one ``image_experiment`` run with the sweep-size flags) unless that workdir already holds a
finished run, which is then loaded (``emflow.load``). Each trial draws ``num_samples`` images
from the model and ``num_samples`` real test images (the trial's own random subset); the
metrics (``emflow.evaluation.metrics``) use the dataset's feature network (``emflow.evaluation.feature_net``: its
softmax for IS, its penultimate features for FID, MMD and 1-NN), which is trained and cached
when missing.

Every table carries its rulers, computed in the same run with the same trials:
- **real vs real**: ``num_samples`` training images against the trial's test images (the best
  any model can do);
- **per-pixel histograms** and the **logit-space Gaussian** (``emflow.evaluation.baselines``) as samplers:
  the floors;
- the feature network's own test accuracy.

Temperatures: every model is scored at each of ``--temperatures``; the tables give T = 1 and
the T with the best mean FID, and the figure shows those two (solid: T = 1, dashed: best T).
Writes ``samples_<dataset>.md``, ``samples_<dataset>.json`` and ``figs45_<dataset>.png``
(mean over trials, shaded from the lowest to the highest trial, as the paper's figures).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

import emflow
from emflow.evaluation import baselines, feature_net, metrics
from emflow import data as data_lib
from emflow.data import download
from experiments import exit_on_refused_xla_flags
from experiments import image_experiment

METRICS = ("IS", "FID", "MMD", "1-NN")
BETTER = {"IS": "higher", "FID": "lower", "MMD": "lower", "1-NN": "closer to 0.5"}


def score(net_outputs_fake, net_outputs_real) -> dict:
    """The four metrics of one trial from ``(probs, features)`` of the generated and the real images."""
    (p_fake, f_fake), (_, f_real) = net_outputs_fake, net_outputs_real
    return {"IS": float(metrics.inception_score(p_fake, num_splits=10)[0]),
            "FID": float(metrics.frechet_distance(f_real, f_fake)),
            "MMD": float(metrics.mmd(f_real, f_fake)),
            "1-NN": float(metrics.one_nn_accuracy(f_real, f_fake))}


def summarise(trials: list[dict]) -> dict:
    return {m: {"mean": float(np.mean([t[m] for t in trials])), "min": float(np.min([t[m] for t in trials])),
                "max": float(np.max([t[m] for t in trials])), "trials": [t[m] for t in trials]} for m in METRICS}


def trained_model(dataset: str, model_name: str, k: int, root: pathlib.Path, args, data_shape) -> tuple:
    """``(model, params, dequantizer, summary)``: trained here, or loaded from a finished run.
    ``data_shape``: the dataset's image shape ``(H, W, C)``, for the dequantizer."""
    workdir = root / f"{dataset}_{model_name}_k{k}"
    if not (workdir / "summary.json").exists():
        image_experiment.run(dataset, model_name, [
            "--components", str(k), "--seed", str(args.seed), *image_experiment.sweep_size_flags(args),
            "--workdir", str(workdir), "--no_baselines", *(["--resume"] if (workdir / "checkpoints").exists() else [])])
    summary = json.loads((workdir / "summary.json").read_text())
    model, params = emflow.load(workdir)
    return model, params, emflow.Dequantizer(data_shape, scheme=summary["scheme"]), summary


def sampler(model, dequantizer, chunk: int = 500):
    """``draw(params, n, temperature, key) -> (n, H, W, 1)`` uint8 samples, compiled once per model."""
    sample = jax.jit(lambda p, k, t: dequantizer.quantize(model.sample(p, k, chunk, t)))

    def draw(params, n: int, temperature: float, key) -> np.ndarray:
        out = [np.asarray(sample(params, jax.random.fold_in(key, i), jnp.float32(temperature)))
               for i in range(-(-n // chunk))]
        return np.concatenate(out)[:n]

    return draw


def evaluate_dataset(dataset: str, args, root: pathlib.Path) -> dict:
    t0 = time.time()
    ds = data_lib.load_dataset(dataset, download.ensure_dataset(dataset, args.data_dir))
    net = feature_net.load_or_train(dataset, args.data_dir, args.cache_dir)
    n, trials = args.num_samples, args.trials
    if n > len(ds.x_test) or n < 2:
        raise SystemExit(f"--num_samples must lie in [2, {len(ds.x_test)}] (the test set), got {n}")
    rng = np.random.default_rng(args.seed)
    real_index = [rng.choice(len(ds.x_test), n, replace=False) for _ in range(trials)]
    test_out = net.apply(ds.x_test)
    real = [(test_out[0][i], test_out[1][i]) for i in real_index]
    x_train = ds.x_train[: args.num_train or None]

    def rows_from_images(images: np.ndarray) -> dict:
        out = net.apply(images)
        return summarise([score((out[0][t * n:(t + 1) * n], out[1][t * n:(t + 1) * n]), real[t])
                          for t in range(trials)])

    train_pick = rng.choice(len(ds.x_train), n * trials, replace=len(ds.x_train) < n * trials)
    rulers = {
        "real vs real (training vs test images)": rows_from_images(ds.x_train[train_pick]),
        "per-pixel histograms (sampler)": rows_from_images(baselines.sample_pixel_histogram(x_train, n * trials,
                                                                                             args.seed)),
    }
    if len(x_train) > np.prod(x_train.shape[1:]):  # a full covariance needs more images than pixels
        rulers["logit-space Gaussian (sampler)"] = rows_from_images(
            baselines.sample_logit_gaussian(x_train, n * trials, args.seed))
    else:
        print(f"logit-space Gaussian sampler not fitted: {len(x_train)} training images, a full covariance "
              f"needs more than {np.prod(x_train.shape[1:])}")
    models = {}
    for model_name in args.models.split(","):
        for k in [int(c) for c in args.components.split(",")]:
            model, params, dequantizer, summary = trained_model(dataset, model_name, k, root, args,
                                                                 ds.x_train.shape[1:])
            key = jax.random.PRNGKey(args.seed + 1000 * k)
            draw, by_t = sampler(model, dequantizer), {}
            for temperature in [float(t) for t in args.temperatures.split(",")]:
                images = draw(params, n * trials, temperature, jax.random.fold_in(key, int(temperature * 1000)))
                by_t[str(temperature)] = rows_from_images(images)
            best_t = min(by_t, key=lambda t: by_t[t]["FID"]["mean"])
            models[f"{model_name}_k{k}"] = {
                "model": model_name, "K": k, "by_temperature": by_t, "best_temperature": float(best_t),
                "test_bits_per_dim": summary["final_test_bits_per_dim"], "final_pi": summary["final_pi"]}
            at_one = f"{by_t['1.0']['FID']['mean']:.3f}" if "1.0" in by_t else "-"
            print(f"{dataset} {model_name} K={k}: FID {at_one} (T=1), best T {best_t}: FID "
                  f"{by_t[best_t]['FID']['mean']:.3f}")
    result = {"dataset": dataset, "num_samples": n, "trials": trials, "feature_net": net.record,
              "feature_net_test_accuracy": net.record["test_accuracy"], "rulers": rulers, "models": models,
              "settings": {k: v for k, v in vars(args).items()}, "seconds": round(time.time() - t0, 1),
              "backend": jax.default_backend()}
    (root / f"samples_{dataset}.json").write_text(json.dumps(result, indent=2))
    table = render(result)
    (root / f"samples_{dataset}.md").write_text(table)
    plot(result, root / f"figs45_{dataset}.png")
    print(table)
    return result


def _cell(stats: dict) -> str:
    return f"{stats['mean']:.3f} [{stats['min']:.3f}, {stats['max']:.3f}]"


def render(result: dict) -> str:
    s = result["settings"]
    lines = [
        f"{result['dataset']}: {result['num_samples']} generated vs {result['num_samples']} real test images, "
        f"{result['trials']} trials (mean [min, max]); models trained {s['epochs']} epochs on "
        f"{s['num_train'] or 'all'} training images, Glow {s['levels']}x{s['steps']}x{s['hidden']}; "
        f"feature network test accuracy {result['feature_net_test_accuracy']:.4f}.",
        "",
        "| model | T | test bits/dim | " + " | ".join(f"{m} ({BETTER[m]})" for m in METRICS) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in METRICS) + " |",
    ]
    for name, stats in result["rulers"].items():
        lines.append(f"| {name} | – | – | " + " | ".join(_cell(stats[m]) for m in METRICS) + " |")
    for name, m in result["models"].items():
        shown = ["1.0", str(m["best_temperature"])] if "1.0" in m["by_temperature"] else [str(m["best_temperature"])]
        for t in dict.fromkeys(shown):
            label = f"{m['model'].upper()} K={m['K']}" + (" (best T on FID)" if t != "1.0" else "")
            lines.append(f"| {label} | {t} | {m['test_bits_per_dim']:.4f} | "
                         + " | ".join(_cell(m["by_temperature"][t][x]) for x in METRICS) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: pathlib.Path) -> None:
    from emflow.evaluation.plots import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    colors = {"genmm": "tab:blue", "latmm": "tab:orange"}
    for ax, metric in zip(axes, METRICS):
        for model_name in sorted({m["model"] for m in result["models"].values()}):
            runs = sorted((m for m in result["models"].values() if m["model"] == model_name), key=lambda m: m["K"])
            ks = [m["K"] for m in runs]
            for style, pick in (("-", lambda m: "1.0"), ("--", lambda m: str(m["best_temperature"]))):
                if not all(pick(m) in m["by_temperature"] for m in runs):
                    continue
                stats = [m["by_temperature"][pick(m)][metric] for m in runs]
                ax.plot(ks, [v["mean"] for v in stats], style, marker="o", color=colors.get(model_name),
                        label=f"{model_name.upper()} " + ("T=1" if style == "-" else "best T"))
                ax.fill_between(ks, [v["min"] for v in stats], [v["max"] for v in stats], alpha=0.2,
                                color=colors.get(model_name))
        for (name, stats), c in zip(result["rulers"].items(), ("k", "tab:red", "tab:green")):
            ax.axhline(stats[metric]["mean"], color=c, lw=0.8, ls=":", label=name.split(" (")[0])
        ax.set_xlabel("K")
        ax.set_title(f"{metric} ({BETTER[metric]})")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{result['dataset']}: {result['num_samples']} samples vs {result['num_samples']} test images, "
                 f"{result['trials']} trials")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="mnist,fashion_mnist")
    p.add_argument("--models", default="genmm,latmm")
    p.add_argument("--components", default="1,3,5,7,9")
    p.add_argument("--num_samples", type=int, default=1000)
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--temperatures", default="1.0,0.85,0.7,0.55")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache_dir", help="feature-network cache root (default: $EMFLOW_CACHE_DIR, else ~/.cache/emflow)")
    image_experiment.add_sweep_size_arguments(p, epochs=3, em_every=1, num_train=20000, num_test=2000, warmup_steps=100)
    p.add_argument("--workdir", default="runs/evaluate_samples")
    args = p.parse_args(argv)
    root = pathlib.Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    return {d: evaluate_dataset(d, args, root) for d in args.datasets.split(",")}


if __name__ == "__main__":
    exit_on_refused_xla_flags()
    main()
