"""Run the code of ``docs/guides/embedding.md`` against a trained run, and report what it measured.

    python -m experiments.embedding_docs --workdir runs/mnist_genmm [--data_dir D] [--num_eval 10000]

The page's ``python`` blocks run top to bottom in one namespace, as a reader would run
them. Only its settings lines (``workdir``, ``data_dir``, ``num_eval``, ``num_steps``) are
replaced. This script then writes the denoising figure
(``docs/figures/embedding_denoise.png`` by default) and a JSON of the numbers the page
quotes. ``tests/test_embedding_docs.py`` runs the same page through
``run_page`` on a tiny run.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import time

import numpy as np

from experiments import exit_on_refused_xla_flags

PAGE = pathlib.Path(__file__).resolve().parents[1] / "docs" / "guides" / "embedding.md"
SETTINGS = ("workdir", "data_dir", "num_eval", "num_steps")


def code_blocks(page: pathlib.Path = PAGE) -> list[str]:
    """The page's ```python blocks, in order."""
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


def run_page(settings: dict, page: pathlib.Path = PAGE) -> dict:
    """Execute the page with its settings lines replaced by ``settings``; returns the namespace."""
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ValueError(f"run_page: unknown settings {unknown}; the page has {list(SETTINGS)}")
    source = "\n".join(code_blocks(page))
    for name, value in settings.items():
        source, count = re.subn(rf"^{name} = .*$", f"{name} = {value!r}", source, count=1, flags=re.M)
        if count != 1:
            raise ValueError(f"run_page: {page} has no line '{name} = ...' to set")
    namespace: dict = {"__name__": "embedding_docs"}
    exec(compile(source, str(page), "exec"), namespace)
    return namespace


def denoise_figure(ns: dict, path: pathlib.Path) -> None:
    """Rows: clean, noisy, MAP-denoised images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("clean", ns["x"]), (f"noisy, σ = {ns['sigma']}", ns["y"]), ("MAP", ns["x_map"])]
    n = len(ns["x"])
    fig, axes = plt.subplots(3, n, figsize=(1.1 * n, 3.6))
    for r, (title, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(np.clip(np.asarray(images[c])[..., 0], 0, 1), cmap="gray", vmin=0, vmax=1)  # display only
            ax.set_xticks([]), ax.set_yticks([])
        axes[r, 0].set_ylabel(title, fontsize=8)
    fig.suptitle(f"MAP denoising by gradient ascent on log p(x): MSE {ns['mse_noisy']:.4f} -> {ns['mse_map']:.4f}",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def measured(ns: dict) -> dict:
    return {
        "components": int(ns["model"].num_components),
        "pi": [float(v) for v in np.exp(np.asarray(ns["params"]["log_pi"]))],
        "mse_noisy": ns["mse_noisy"], "mse_map": ns["mse_map"],
        "mnist_bits_per_dim": float(ns["inlier"].mean()), "fashion_bits_per_dim": float(ns["outlier"].mean()),
        "num_eval_each": int(len(ns["inlier"])), "auroc": float(ns["auroc"]),
        "probe_accuracy": float(ns["probe_accuracy"]),
        "moons_nll": [ns["nll_start"], ns["nll_end"]],
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="a train.fit workdir of an MNIST model (28x28x1)")
    parser.add_argument("--data_dir", default=None, help="default: $EMFLOW_DATA_DIR")
    parser.add_argument("--num_eval", type=int, default=10_000, help="test images per dataset for the AUROC")
    parser.add_argument("--figure", default=str(PAGE.parent / "figures" / "embedding_denoise.png"))
    parser.add_argument("--out", default=None, help="JSON of the measured numbers (default: print only)")
    args = parser.parse_args(argv)
    if args.num_eval < 1:
        parser.error(f"--num_eval must be >= 1, got {args.num_eval}")
    t0 = time.time()
    ns = run_page({"workdir": args.workdir, "data_dir": args.data_dir, "num_eval": args.num_eval})
    denoise_figure(ns, pathlib.Path(args.figure))
    result = {**measured(ns), "workdir": args.workdir, "seconds": round(time.time() - t0, 1)}
    print(json.dumps(result, indent=2))
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    exit_on_refused_xla_flags()
    main()
