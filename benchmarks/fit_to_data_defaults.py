"""How ``train.fit_to_data``'s defaults are chosen: variants of its settings scored on the validation split.

Each variant trains ``GenMM(VectorFlow(D), K)`` with ``fit_to_data`` on the flowjax comparison's protocol
(``benchmarks.tabular_fit.load`` and ``noisy_standardizer``) and records the best validation NLL
(nats per example, the split ``fit_to_data`` holds out itself), the epoch it came at, the training NLL
of that epoch (the running mean over its batches: the gap to the validation NLL shows overfitting) and
the wall time. The test set is not read: a default chosen here has not seen it.

    python -m benchmarks.fit_to_data_defaults --datasets satimage letter --components 1 4 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

VALIDATION_FRACTION = 0.1  # fit_to_data's held-out share, passed to it so that the sizes below agree


class Variant(NamedTuple):
    """What a variant changes: ``fit_to_data``'s keyword arguments, ``config_for_data``'s fields, the ``VectorFlow``'s."""

    fit: Mapping = MappingProxyType({})
    config: Mapping = MappingProxyType({})
    flow: Mapping = MappingProxyType({})


_CHANGES = {
    "defaults": Variant(),
    "patience 20": Variant(fit={"patience": 20}),
    "learning rate 5e-4": Variant(config={"learning_rate": 5e-4}),
    "learning rate 2e-3": Variant(config={"learning_rate": 2e-3}),
    "batch 128": Variant(config={"batch_size": 128}),
    "spline couplings": Variant(flow={"coupling": "spline"}),
    "spline couplings, 4 bins": Variant(flow={"coupling": "spline", "spline_bins": 4}),
    "hidden 32": Variant(flow={"hidden": 32}),
    "4 steps": Variant(flow={"num_steps": 4}),
    # the EM settings fit_to_data had before (TrainConfig's): E-step and pi every 5 epochs, a first round on
    # the k-means partition's hard responsibilities (the defaults renew them every epoch, with no such round)
    "EM every 5 epochs, a warm-start round": Variant(config={"em_every": 5, "warm_start_rounds": 1}),
    # a fixed window of about 100 steps for the parameters' moving average, whatever the epoch's length
    "average decay 0.99": Variant(fit={"average_decay": 0.99}),
}
# fit_to_data scores and returns a moving average of the parameters (average_decay); each variant also runs
# without it, as every variant did before that default ("no parameter average" is the defaults without it)
VARIANTS = {**_CHANGES, **{
    ("no parameter average" if name == "defaults" else f"{name}, no parameter average"):
        v._replace(fit={**v.fit, "average_decay": None}) for name, v in _CHANGES.items() if "average" not in name}}


def run(dataset: str, components: int, seed: int, variant: str, data_dir: str | None) -> dict:
    import emflow
    from benchmarks.tabular_fit import load, noisy_standardizer
    from emflow import train
    from emflow.train.hooks import validation_split

    fit_kwargs, changes, flow_kwargs = VARIANTS[variant]
    x_train, _ = load(dataset, data_dir)
    preprocess = noisy_standardizer(dataset, x_train, np.random.default_rng(seed))
    model = emflow.GenMM(emflow.VectorFlow(x_train.shape[1], **flow_kwargs), components)
    config = None
    if changes:
        n_fit = len(validation_split(x_train, VALIDATION_FRACTION, seed)[0])  # the examples fit_to_data trains on
        config = train.config_for_data(n_fit, seed=seed, **changes)
    t0 = time.time()
    result = train.fit_to_data(model, x_train, preprocess, config=config, validation_fraction=VALIDATION_FRACTION,
                               seed=seed, progress=False, log=lambda s: None, **fit_kwargs)
    wall = time.time() - t0
    validation = [r["validation_nll"] for r in result.history]
    best = int(np.argmin(validation))
    return {"dataset": dataset, "components": components, "seed": seed, "variant": variant,
            "best_validation_nll": float(validation[best]), "best_epoch": best + 1, "epochs": len(validation),
            "train_nll_at_best": float(result.history[best]["train_nll_nats_per_dim"] * x_train.shape[1]),
            "wall_seconds": round(wall, 1)}


def table(records: list[dict]) -> str:
    """Mean ± std over seeds of the best validation NLL, one row per setting and variant."""
    rows = ["| data | K | variant | best validation NLL (nats) | training NLL then | best epoch | wall s |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for dataset, k, variant in sorted({(r["dataset"], r["components"], r["variant"]) for r in records}):
        rs = [r for r in records if (r["dataset"], r["components"], r["variant"]) == (dataset, k, variant)]
        v = np.array([r["best_validation_nll"] for r in rs])
        train_nll = [r["train_nll_at_best"] for r in rs if "train_nll_at_best" in r]
        train_cell = f"{np.mean(train_nll):.3f}" if len(train_nll) == len(rs) else "–"
        rows.append(f"| {dataset} | {k} | {variant} | {v.mean():.3f} ± {v.std():.3f} | {train_cell} | "
                    f"{np.mean([r['best_epoch'] for r in rs]):.0f} | {np.mean([r['wall_seconds'] for r in rs]):.1f} |")
    return "\n".join(rows)


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["satimage", "letter"])
    p.add_argument("--components", nargs="+", type=int, default=[1, 4])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--data_dir")
    p.add_argument("--out")
    args = p.parse_args(argv)
    from benchmarks.tabular_fit import keep
    records = []
    for dataset in args.datasets:
        for k in args.components:
            for variant in args.variants:
                for seed in args.seeds:
                    records.append(run(dataset, k, seed, variant, args.data_dir))
                    r = records[-1]
                    print(f"{dataset:9s} K={k} {variant:20s} seed {seed}  validation NLL {r['best_validation_nll']:8.3f}"
                          f"  epoch {r['best_epoch']:3d}/{r['epochs']:3d}  {r['wall_seconds']:6.1f} s", flush=True)
                    keep(records, args.out)
    print(table(records))
    return records


if __name__ == "__main__":
    main()
