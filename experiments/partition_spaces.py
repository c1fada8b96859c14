"""Where should GenMM's k-means partition be computed? Test purity of k-means in each partition space.

    python -m experiments.partition_spaces [--dataset mnist] [--components 10] [--num_train 10000]
                                           [--num_test 2000] [--keys 6] [--starts 1,4] [--workdir runs/partition_spaces]

For every ``emflow.mixtures.partition_space`` space (the pixels, their direction, the direction of
the image blurred by one pixel) and every number of starts: ``partition.kmeans`` with
keys 0 .. keys-1 on the features of the first ``num_train`` dequantized training images,
each of the first ``num_test`` test images to its nearest centroid, and the purity of
that assignment (``diagnostics.purity``), with the correlation of one start's inertia with
its purity (over the one-start keys). The ruler: scikit-learn's k-means on the pixels of the same
images (3 inits; ``kmeans_rulers.kmeans_purities``) for the same keys as seeds, which is what
the Table I purity runs compare GenMM with. A partition fixes where a GenMM's generators
start, and EM keeps it (README), so this is the purity a K-generator GenMM starts from.
Writes ``partition_spaces_<dataset>_k<K>.{md,json}`` into ``--workdir``.
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
from emflow import data as data_lib
from emflow.data import download
from emflow.evaluation import diagnostics
from emflow.mixtures import partition, partition_space
from experiments import exit_on_refused_xla_flags
from experiments.kmeans_rulers import kmeans_purities_of


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    p.add_argument("--components", type=int, default=10)
    p.add_argument("--num_train", type=int, default=10000)
    p.add_argument("--num_test", type=int, default=2000)
    p.add_argument("--keys", type=int, default=6, help="k-means keys (and ruler seeds) 0 .. keys-1")
    p.add_argument("--starts", default="1,4", help="numbers of k-means starts to compare")
    p.add_argument("--data_dir", help="folder with mnist/ and fashion_mnist/ (default: $EMFLOW_DATA_DIR, else TFDS)")
    p.add_argument("--workdir", default="runs/partition_spaces")
    args = p.parse_args(argv)
    t0 = time.time()
    ds = data_lib.load_dataset(args.dataset, download.ensure_dataset(args.dataset, args.data_dir))
    deq = emflow.Dequantizer(ds.x_train.shape[1:])
    x_train = deq(jax.random.PRNGKey(0), jnp.asarray(ds.x_train[: args.num_train]))
    x_test = deq(jax.random.PRNGKey(1), jnp.asarray(ds.x_test[: args.num_test]))
    y_test = np.asarray(ds.y_test[: args.num_test])
    fit = jax.jit(partition.kmeans, static_argnums=2, static_argnames=("min_part_fraction", "num_starts"))
    rows = []
    for space in partition_space.PARTITION_SPACES:
        train_f, test_f = (partition_space.features(space, x, deq.model_shape) for x in (x_train, x_test))
        for starts in (int(s) for s in args.starts.split(",")):
            purities, inertias = [], []
            for key in range(args.keys):
                part = fit(jax.random.PRNGKey(key), train_f, args.components, min_part_fraction=0.0, num_starts=starts)
                purities.append(diagnostics.purity(np.asarray(partition.nearest(part.centroids, test_f)), y_test))
                inertias.append(float(partition.inertia(train_f, part.centroids)))
            corr = float(np.corrcoef(inertias, purities)[0, 1]) if starts == 1 and args.keys > 2 else None
            rows.append({"space": space, "starts": starts, "purity": purities, "inertia": inertias,
                         "inertia_purity_correlation": corr})
    ruler = kmeans_purities_of(ds, args.num_train, args.num_test, args.components, range(args.keys))
    out = {"args": vars(args), "rows": rows, "ruler_kmeans_on_pixels_sklearn": ruler,
           "seconds": round(time.time() - t0, 1)}
    table = render(out)
    root = pathlib.Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    stem = f"partition_spaces_{args.dataset}_k{args.components}"
    (root / f"{stem}.md").write_text(table)
    (root / f"{stem}.json").write_text(json.dumps(out, indent=2))
    print(table)
    return out


def render(out: dict) -> str:
    a = out["args"]
    lines = [f"Test purity of k-means at K = {a['components']} on {a['dataset']} ({a['num_train']} training images, "
             f"the first {a['num_test']} test images to their nearest centroid), keys 0..{a['keys'] - 1}:", "",
             "| features | starts | mean | min | max | corr(inertia, purity), one start |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in out["rows"]:
        v = np.asarray(r["purity"])
        corr = "–" if r["inertia_purity_correlation"] is None else f"{r['inertia_purity_correlation']:+.2f}"
        lines.append(f"| {r['space']} | {r['starts']} | {v.mean():.3f} | {v.min():.3f} | {v.max():.3f} | {corr} |")
    v = np.asarray(out["ruler_kmeans_on_pixels_sklearn"])
    lines.append(f"| the ruler: scikit-learn k-means on pixels | 3 | {v.mean():.3f} | {v.min():.3f} | {v.max():.3f} | – |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    exit_on_refused_xla_flags()
    main()
