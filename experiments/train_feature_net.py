"""Train the feature network of the sample-quality metrics (a small ResNet) and cache it.

    python -m experiments.train_feature_net --dataset mnist|fashion_mnist [--epochs N] [--cache_dir DIR]

Prints the test accuracy and where the weights went (``$EMFLOW_CACHE_DIR/feature_nets/<dataset>``,
default ``~/.cache/emflow``), with the seed and the accuracy in ``record.json`` beside them.
``emflow.evaluation.metrics`` uses its softmax (IS) and its penultimate-layer features (FID, MMD, 1-NN).
"""
from __future__ import annotations

import argparse
import dataclasses
import json

from emflow import data as data_lib
from emflow.data import download
from emflow.evaluation import feature_net
from experiments import exit_on_refused_xla_flags

TARGETS = {"mnist": 0.993, "fashion_mnist": 0.92}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=sorted(TARGETS))
    p.add_argument("--epochs", type=int, help="default: the dataset's (feature_net.DATASET_CONFIGS)")
    p.add_argument("--batch_size", type=int)
    p.add_argument("--num_train", type=int, default=0, help="first N training images (0: all)")
    p.add_argument("--num_test", type=int, default=0, help="first N test images (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data_dir")
    p.add_argument("--cache_dir", help="cache root (default: $EMFLOW_CACHE_DIR, else ~/.cache/emflow)")
    p.add_argument("--no_progress", action="store_true")
    args = p.parse_args(argv)
    ds = data_lib.load_dataset(args.dataset, download.ensure_dataset(args.dataset, args.data_dir))
    x_train, y_train = ds.x_train[: args.num_train or None], ds.y_train[: args.num_train or None]
    x_test, y_test = ds.x_test[: args.num_test or None], ds.y_test[: args.num_test or None]
    config = dataclasses.replace(feature_net.DATASET_CONFIGS[args.dataset], seed=args.seed, **{
        k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size)) if v is not None})
    trained = feature_net.train_feature_net(x_train, y_train, x_test, y_test, config, progress=not args.no_progress)
    trained.record["dataset"] = args.dataset
    directory = feature_net.save(trained, feature_net.cache_dir(args.dataset, args.cache_dir))
    acc, target = trained.record["test_accuracy"], TARGETS[args.dataset]
    print(f"{args.dataset}: test accuracy {acc:.4f} on {len(x_test)} images (target {target:.3f}: "
          f"{'met' if acc >= target else 'NOT met'}), {feature_net.num_parameters(trained):,} parameters, "
          f"{trained.record['seconds']:.0f} s; saved to {directory}")
    print(json.dumps(trained.record))
    return trained.record


if __name__ == "__main__":
    exit_on_refused_xla_flags()
    main()
