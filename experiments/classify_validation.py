"""Validation sweeps for the classifier's settings, on an 80/20 stratified split of the TRAINING data.

    python -m experiments.classify_validation --dataset satimage \
        '{"num_components": 1, "epochs": 30, "noise": 8.0}' '{"num_components": 4, "epochs": 30, "noise": 16.0}'

Each JSON argument is a set of ``MixtureClassifier`` keyword arguments (plus an
optional ``"eval_list"`` of ``eval_samples`` values to score; ``"flow"`` may be a spec's record,
e.g. ``{"kind": "VectorFlowSpec", "coupling": "spline", "spline_bins": 4}``); one JSON line per
setting is printed with the validation accuracy. The test set is never read.
This is how the settings in the README's classification section were chosen.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from emflow import data
from emflow.data import download
from emflow.classify import MixtureClassifier, flow_specs
from experiments import exit_on_refused_xla_flags


def stratified_split(labels: np.ndarray, fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, validation)`` with ``fraction`` of every class in validation."""
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(fraction * len(idx)))
        val_idx += idx[:k].tolist()
        train_idx += idx[k:].tolist()
    return np.array(train_idx), np.array(val_idx)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=["letter", "satimage"])
    p.add_argument("--data_dir")
    p.add_argument("--splits", type=int, default=1,
                   help="repeat over this many different 80/20 splits (seeds 0..n-1); report the mean")
    p.add_argument("settings", nargs="+", help="JSON dicts of MixtureClassifier arguments")
    args = p.parse_args(argv)
    ds = data.load_dataset(args.dataset, download.ensure_dataset(args.dataset, args.data_dir))
    splits = [stratified_split(ds.y_train, seed=seed) for seed in range(args.splits)]
    for spec in args.settings:
        kw = json.loads(spec)
        eval_samples = kw.pop("eval_list", [0])
        if "flow" in kw:
            kw["flow"] = flow_specs.from_dict(kw["flow"])
        t = time.time()
        per_split = {s: [] for s in eval_samples}
        for tr, va in splits:
            clf = MixtureClassifier(**kw).fit(ds.x_train[tr], ds.y_train[tr])
            for s in eval_samples:
                clf.set_params(eval_samples=s)
                per_split[s].append(round(clf.score(ds.x_train[va], ds.y_train[va]), 4))
        scores = {s: round(float(np.mean(v)), 4) for s, v in per_split.items()}
        out = {"dataset": args.dataset, **kw, "flow": flow_specs.as_dict(kw.get("flow", "vector")), "val_acc": scores,
               "seconds": round(time.time() - t, 1)}
        if args.splits > 1:
            out["per_split"] = per_split
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    exit_on_refused_xla_flags()
    main()
