"""Semi-supervised classification: accuracy with a few labels, beside the baselines of the same split.

    python -m experiments.semisupervised --dataset letter [--fractions 0.05] [--seeds 0,1,2] [--workdir runs/semi]
    python -m experiments.semisupervised --dataset mnist --labels 100,1000 [--pca 50]

For each labelled-set size and seed (a stratified subset of the training labels, the rest given as -1):
``SemiSupervisedMixtureClassifier`` on all the training data, and the rulers of the same split:
the same model on the labelled part alone (the unlabelled data's contribution), our supervised
``MixtureClassifier`` on the labelled part, scikit-learn's ``LabelSpreading`` (k-NN kernel) and
``SelfTrainingClassifier`` (RBF SVC) on all of it, and an RBF SVC on the labelled part. MNIST's images are
reduced by PCA fitted on every training image (labels unused), as the features of every method.
Writes ``semisupervised_<dataset>.json`` / ``.md`` and ``accuracy_vs_labels_<dataset>.png`` in ``--workdir``.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import pathlib
import time

import numpy as np

from emflow import data as data_lib
from emflow.data import download
from experiments import exit_on_refused_xla_flags


def labelled_subset(y: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Indices of ``count`` labelled examples, balanced over the classes (the first ``count % C`` classes one more)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    per = [count // len(classes) + (1 if i < count % len(classes) else 0) for i in range(len(classes))]
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), n, replace=False) for c, n in zip(classes, per)]))


def features(dataset: str, data_dir, pca: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """``(x_train, y_train, x_test, y_test, preprocessing)`` as every method sees them."""
    ds = data_lib.load_dataset(dataset, download.ensure_dataset(dataset, data_dir))
    x_train, x_test = ds.x_train.reshape(len(ds.x_train), -1), ds.x_test.reshape(len(ds.x_test), -1)
    if ds.x_train.ndim == 4:  # images: PCA fitted on every training image, labels unused
        from sklearn.decomposition import PCA

        reducer = PCA(pca, random_state=0).fit(x_train / 255.0)
        return (reducer.transform(x_train / 255.0).astype(np.float32), ds.y_train,
                reducer.transform(x_test / 255.0).astype(np.float32), ds.y_test, "standardize")
    return x_train.astype(np.float32), ds.y_train, x_test.astype(np.float32), ds.y_test, "dequantize"


def run_split(args, x, y, x_test, y_test, preprocessing: str, count: int, seed: int) -> dict:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.preprocessing import StandardScaler
    from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier
    from sklearn.svm import SVC

    from emflow.classify import MixtureClassifier, SemiSupervisedMixtureClassifier, VectorFlowSpec

    rows = labelled_subset(y, count, seed)
    partial = np.full(len(y), -1, np.int64)
    partial[rows] = y[rows]
    scaler = StandardScaler().fit(x)
    xs, xs_test = scaler.transform(x), scaler.transform(x_test)
    feature_settings = dict(preprocessing=preprocessing, noise=args.noise,
                            feature_symmetries=args.feature_symmetries or None)
    settings = dict(model=args.model, components_per_class=args.components_per_class,
                    flow=VectorFlowSpec(num_steps=args.flow_steps, hidden=args.hidden), **feature_settings,
                    epochs=args.epochs, seed=seed, num_restarts=args.num_restarts,
                    unlabelled_weight=args.unlabelled_weight, labelled_epochs=args.labelled_epochs)
    out = {"count": count, "seed": seed}
    timed = [
        ("ours (semi-supervised EM)", lambda: SemiSupervisedMixtureClassifier(**settings).fit(x, partial)
         .score(x_test, y_test)),
        ("ours, labelled part only", lambda: SemiSupervisedMixtureClassifier(**settings).fit(x[rows], y[rows])
         .score(x_test, y_test)),
        ("MixtureClassifier on the labelled part", lambda: MixtureClassifier(
            **feature_settings, early_stopping=False, epochs=args.epochs, batch_size=min(64, count),
            seed=seed).fit(x[rows], y[rows]).score(x_test, y_test)),
        ("LabelSpreading (k-NN)", lambda: LabelSpreading(kernel="knn", n_neighbors=7).fit(xs, partial)
         .score(xs_test, y_test)),
        (self_training_name(args.self_training_unlabelled, len(y) - len(rows)), lambda: SelfTrainingClassifier(
            CalibratedClassifierCV(SVC(gamma="scale"), cv=3, ensemble=False))
         .fit(*self_training_split(xs, partial, args.self_training_unlabelled, seed)).score(xs_test, y_test)),
        ("RBF SVC on the labelled part", lambda: SVC(gamma="scale").fit(xs[rows], y[rows]).score(xs_test, y_test)),
    ]
    for name, fn in timed:
        if args.methods and not any(m in name for m in args.methods.split(",")):
            continue
        t0 = time.time()
        out[name] = {"accuracy": float(fn()), "seconds": round(time.time() - t0, 1)}
        print(f"{count} labels, seed {seed}: {name} {out[name]['accuracy']:.4f} ({out[name]['seconds']} s)", flush=True)
    if args.select:
        t0 = time.time()
        make = lambda changes: SemiSupervisedMixtureClassifier(**with_changes(settings, changes))
        grid = setting_grid(args.select)
        scores = [labelled_cv_accuracy(lambda: make(g), x, partial, args.select_folds, seed) for g in grid]
        best = grid[int(np.argmax(scores))]
        out[SELECTED] = {"accuracy": float(make(best).fit(x, partial).score(x_test, y_test)),
                         "seconds": round(time.time() - t0, 1), "chosen": best,
                         "cv_accuracy": [[g, round(a, 4)] for g, a in zip(grid, scores)]}
        print(f"{count} labels, seed {seed}: {SELECTED} {out[SELECTED]['accuracy']:.4f} with {best} "
              f"({out[SELECTED]['seconds']} s, the search included)", flush=True)
    return out


SELECTED = "ours, setting chosen by labelled-fold CV"


def setting_grid(text: str) -> list[dict]:
    """``"unlabelled_weight=0.3,1;flow_steps=2,6"`` -> every combination, as dicts (ints, then floats, else strings)."""
    def value(v: str):
        for kind in (int, float):
            try:
                return kind(v)
            except ValueError:
                pass
        return v

    axes = []
    for part in filter(None, text.split(";")):
        name, sep, values = part.partition("=")
        if not sep or not values:
            raise SystemExit(f"--select: expected NAME=V1,V2;..., got {part!r}")
        axes.append([(name.strip(), value(v.strip())) for v in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)]


def with_changes(settings: dict, changes: dict) -> dict:
    """``settings`` of ``SemiSupervisedMixtureClassifier`` with ``changes`` (``flow_steps`` / ``hidden`` go to the flow)."""
    flow = dataclasses.replace(settings["flow"], **{("num_steps" if k == "flow_steps" else k): v
                                                   for k, v in changes.items() if k in ("flow_steps", "hidden")})
    return {**settings, **{k: v for k, v in changes.items() if k not in ("flow_steps", "hidden")}, "flow": flow}


def labelled_cv_accuracy(make, x: np.ndarray, partial: np.ndarray, folds: int, seed: int) -> float:
    """Mean accuracy over ``folds`` stratified folds of the labelled rows of ``partial`` (-1: unlabelled): each fold's
    labels are hidden (-1) while ``make()`` fits on all of ``x``, then it is scored on them, so the search uses no
    label outside the labelled set and every fit sees the unlabelled data as it will in use."""
    from sklearn.model_selection import StratifiedKFold

    rows = np.flatnonzero(partial != -1)
    accuracies = []
    for _, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(rows, partial[rows]):
        hidden = partial.copy()
        hidden[rows[held]] = -1
        accuracies.append(make().fit(x, hidden).score(x[rows[held]], partial[rows[held]]))
    return float(np.mean(accuracies))


def self_training_name(unlabelled: int, available: int) -> str:
    """The SelfTraining row's name: with the number of unlabelled examples it saw when that is a subsample."""
    if 0 < unlabelled < available:
        return f"SelfTraining (RBF SVC, {unlabelled:,} unlabelled)"
    return "SelfTraining (RBF SVC)"


def self_training_split(xs: np.ndarray, partial: np.ndarray, unlabelled: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` for SelfTraining: every labelled example and ``unlabelled`` of the others, drawn with ``seed``,
    in their order; ``xs, partial`` themselves when ``unlabelled`` is 0 or at least the number of unlabelled
    examples. ``partial: (N,)`` labels with -1 for unlabelled."""
    free = np.flatnonzero(partial == -1)
    if unlabelled <= 0 or unlabelled >= len(free):
        return xs, partial
    keep = np.sort(np.concatenate([np.flatnonzero(partial != -1),
                                   np.random.default_rng(seed).choice(free, unlabelled, replace=False)]))
    return xs[keep], partial[keep]


def _methods(result: dict) -> list[str]:
    """Every method of any run, in the order they first appear."""
    return list(dict.fromkeys(k for r in result["runs"] for k in r if k not in ("count", "seed")))


def _cell(result: dict, method: str, count: int) -> list[dict]:
    """``method``'s records (accuracy, seconds) of the runs with ``count`` labels that ran it."""
    return [r[method] for r in result["runs"] if r["count"] == count and method in r]


def render(result: dict) -> str:
    """The accuracy table: mean ± std over seeds for every method and labelled-set size, with seconds."""
    counts = sorted({r["count"] for r in result["runs"]})
    methods = _methods(result)
    lines = [f"Semi-supervised accuracy on {result['dataset']} ({result['n_train']} training examples, test set of "
             f"{result['n_test']}); mean ± std over seeds {result['seeds']}; seconds per fit in brackets.", "",
             "| method | " + " | ".join(f"{c} labels" for c in counts) + " |",
             "| --- | " + " | ".join("---" for _ in counts) + " |"]
    for m in methods:
        cells = []
        for c in counts:
            cell = _cell(result, m, c)
            if not cell:  # a method run at some labelled-set sizes only
                cells.append("–")
                continue
            acc, sec = [x["accuracy"] for x in cell], np.mean([x["seconds"] for x in cell])
            cells.append(f"{np.mean(acc):.4f} ± {np.std(acc, ddof=1) if len(acc) > 1 else 0.0:.4f} ({sec:.0f} s)")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: pathlib.Path) -> None:
    """Accuracy against the number of labels, every method a line with its seeds' range."""
    from emflow.evaluation.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=120)
    for m in _methods(result):
        counts = sorted({r["count"] for r in result["runs"] if m in r})
        acc = [[x["accuracy"] for x in _cell(result, m, c)] for c in counts]
        ax.plot(counts, [np.mean(a) for a in acc], marker="o", label=m)
        ax.fill_between(counts, [min(a) for a in acc], [max(a) for a in acc], alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("labelled training examples")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{result['dataset']}: semi-supervised classification")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="letter", choices=["letter", "satimage", "mnist", "fashion_mnist"])
    p.add_argument("--labels", default=None, help="labelled-set sizes, e.g. 100,1000 (default: --fractions)")
    p.add_argument("--fractions", default="0.05", help="labelled fractions of the training set")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--model", default="latmm", choices=["latmm", "genmm"])
    p.add_argument("--components_per_class", type=int, default=1)
    p.add_argument("--flow_steps", type=int, default=6)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--noise", type=float, default=1.0,
                   help="integer features: width of the dequantization noise, in feature units (ours and MixtureClassifier)")
    p.add_argument("--feature_symmetries", default="", help="ours and MixtureClassifier: a name from "
                   "emflow.classify.features.SYMMETRIES, e.g. satimage_dihedral (default: none)")
    p.add_argument("--num_restarts", type=int, default=1)
    p.add_argument("--unlabelled_weight", type=float, default=1.0, help="EM-lambda: an unlabelled example's weight")
    p.add_argument("--labelled_epochs", type=int, default=0, help="ours: first this many epochs on the labelled part alone")
    p.add_argument("--methods", default="", help="only the methods whose names contain one of these, comma-separated")
    p.add_argument("--self_training_unlabelled", type=int, default=0,
                   help="SelfTraining sees every labelled example and this many unlabelled ones, a random subsample "
                        "(0: all; an SVC refitted on all 59,000 MNIST images does not fit a 30-minute budget)")
    p.add_argument("--select", default="", help="also fit ours with the setting of best labelled-fold CV accuracy "
                   "among every combination of e.g. 'unlabelled_weight=0.3,1.0;flow_steps=2,6;hidden=16,64' (on each split)")
    p.add_argument("--select_folds", type=int, default=3, help="--select: stratified folds of the labelled examples")
    p.add_argument("--pca", type=int, default=50, help="image datasets: PCA components")
    p.add_argument("--num_train", type=int, default=0, help="first N training examples (0: all)")
    p.add_argument("--num_test", type=int, default=0, help="first N test examples (0: all)")
    p.add_argument("--data_dir")
    p.add_argument("--workdir", default="runs/semisupervised")
    args = p.parse_args(argv)
    x, y, x_test, y_test, preprocessing = features(args.dataset, args.data_dir, args.pca)
    if args.num_train:
        x, y = x[: args.num_train], y[: args.num_train]
    if args.num_test:
        x_test, y_test = x_test[: args.num_test], y_test[: args.num_test]
    counts = ([int(c) for c in args.labels.split(",")] if args.labels else
              [int(round(float(f) * len(y))) for f in args.fractions.split(",")])
    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.time()
    runs = [run_split(args, x, y, x_test, y_test, preprocessing, c, s) for c in counts for s in seeds]
    result = {"dataset": args.dataset, "n_train": len(y), "n_test": len(y_test), "seeds": seeds, "args": vars(args),
              "seconds": round(time.time() - t0, 1), "runs": runs}
    root = pathlib.Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    (root / f"semisupervised_{args.dataset}.json").write_text(json.dumps(result, indent=2))
    (root / f"semisupervised_{args.dataset}.md").write_text(render(result))
    plot(result, root / f"accuracy_vs_labels_{args.dataset}.png")
    print(render(result))
    return result


if __name__ == "__main__":
    exit_on_refused_xla_flags()
    main()
