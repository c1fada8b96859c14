"""``MixtureClassifier()`` with no arguments, on tabular data it was not tuned for, beside its rulers.

    python -m experiments.classify_defaults [--datasets wine,breast_cancer,digits,iris] [--seeds 0,1,2,3,4,5]
                                            [--out experiments/results/classify_defaults.json]

The datasets are scikit-learn's bundled ones, so no download is needed: Wine (178 × 13),
Breast cancer (569 × 30), Digits (1,797 × 64, integer pixels 0–16) and Iris (150 × 4).
Each seed gives a stratified 75/25 split. On the same split, in the same run, three
models are fitted:

- ``MixtureClassifier()``: the defaults, untouched;
- the Gaussian Bayes classifier (one full-covariance Gaussian per class, reg_covar 0.1),
  the ruler a flow classifier should never fall below;
- an RBF SVC on standardised features with a 3-fold CV grid over C and gamma, the
  strongest simple baseline.

For each, the script reports the test accuracy (mean ± std over seeds) and the fit time.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

from experiments import exit_on_refused_xla_flags

DATASETS = ("wine", "breast_cancer", "digits", "iris")


def load(name: str):
    from sklearn import datasets

    loaders = {"wine": datasets.load_wine, "breast_cancer": datasets.load_breast_cancer,
               "digits": datasets.load_digits, "iris": datasets.load_iris}
    if name not in loaders:
        raise SystemExit(f"unknown dataset {name!r}; choose from {list(loaders)}")
    return loaders[name](return_X_y=True)


def models(seed: int, mixture_kwargs: dict) -> dict:
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from emflow.classify import MixtureClassifier
    from emflow.classify.gaussian_classifier import GaussianBayesClassifier

    return {
        "MixtureClassifier()": MixtureClassifier(seed=seed, **mixture_kwargs),
        "Gaussian Bayes (reg 0.1)": GaussianBayesClassifier(0.1),
        "RBF SVC (standardised, CV grid)": GridSearchCV(
            make_pipeline(StandardScaler(), SVC()), {"svc__C": [1, 10, 100], "svc__gamma": ["scale", 0.01, 0.1]},
            cv=3),
    }


def run(datasets, seeds, mixture_kwargs=None, log=print) -> dict:
    from sklearn.model_selection import train_test_split

    out = {}
    for name in datasets:
        x, y = load(name)
        rows: dict[str, dict] = {}
        for seed in seeds:
            x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=seed)
            for model_name, model in models(seed, mixture_kwargs or {}).items():
                t0 = time.time()
                acc = float(model.fit(x_tr, y_tr).score(x_te, y_te))
                row = rows.setdefault(model_name, {"accuracy": [], "seconds": []})
                row["accuracy"].append(acc)
                row["seconds"].append(round(time.time() - t0, 2))
                log(f"{name} seed {seed}: {model_name} {acc:.4f} ({row['seconds'][-1]} s)")
        out[name] = {"shape": list(x.shape), "classes": int(len(np.unique(y))),
                     "models": {m: {**r, "mean": float(np.mean(r["accuracy"])), "std": float(np.std(r["accuracy"]))}
                                for m, r in rows.items()}}
    return out


def table(result: dict) -> str:
    names = list(next(iter(result.values()))["models"])
    lines = ["| dataset | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for ds, r in result.items():
        cells = [f"{r['models'][m]['mean']:.4f} ± {r['models'][m]['std']:.4f} ({np.mean(r['models'][m]['seconds']):.1f} s)"
                 for m in names]
        lines.append(f"| {ds} {tuple(r['shape'])}, {r['classes']} classes | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--seeds", default="0,1,2,3,4,5")
    p.add_argument("--epochs", type=int, default=None, help="override MixtureClassifier's epochs (tests only)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    kwargs = {} if args.epochs is None else {"epochs": args.epochs}
    result = run(args.datasets.split(","), [int(s) for s in args.seeds.split(",")], kwargs)
    print(table(result))
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    exit_on_refused_xla_flags()
    main()
