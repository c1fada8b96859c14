"""The classifier's per-class init: one compiled, vmapped program vs the old eager class-by-class loop.

    python -m benchmarks.classifier_init [--dataset letter] [--components 4] [--repeats 3] [--json out.json]

Until the random rotations of the LU layers were computed without LAPACK
(``emflow.bijectors.small_linalg``), ``StackTrainer.init`` had to run eagerly, one class
at a time: compiled and batched, jaxlib's CPU LAPACK kernel deadlocked its thread pool
(26 classes x 4 components x 6 LU layers). This script runs both ways on the same
data and keys, in one process:

- **compiled**: ``StackTrainer.init`` (``jit(vmap(init_class))``). The first call
  includes its compilation; later calls reuse it.
- **eager**: the old code, ``init_class`` class by class under ``jax.disable_jit()``.

It checks that the two give the same parameters (to float32 rounding) and reports the
ratios. It also reports the old LAPACK-based rotation, compiled and batched, if asked
(``--try_lapack``). That can hang, so it runs in a subprocess with a timeout.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np

from emflow import data
from emflow.classify import MixtureClassifier, StackTrainer

LAPACK_PROBE = textwrap.dedent("""
    import jax, jax.numpy as jnp
    def rotation(key, n):   # the pre-fix random_rotation + LU: LAPACK geqrf / getrf custom calls
        q, r = jnp.linalg.qr(jax.random.normal(key, (n, n)))
        return jax.scipy.linalg.lu(q * jnp.sign(jnp.diag(r))[None, :])
    keys = jax.random.split(jax.random.PRNGKey(0), {count})
    out = jax.jit(jax.vmap(lambda k: rotation(k, {n})))(keys)
    jax.block_until_ready(out)
    print("finished")
""")


def build(dataset: str, components: int, data_dir: str | None):
    ds = data.load_dataset(dataset, data_dir)
    clf = MixtureClassifier(num_components=components)
    x = ds.x_train.astype(np.float32)
    classes, codes = np.unique(ds.y_train, return_inverse=True)
    from emflow.classify import FeaturePreprocessor

    pre = FeaturePreprocessor.fit(x, clf.preprocessing, clf.noise)
    model = clf._build_model(x.shape[1])
    trainer = StackTrainer(model, clf._train_config(), pre)
    counts = np.bincount(codes).astype(np.int32)
    padded = np.zeros((len(classes), counts.max(), x.shape[1]), np.float32)
    for j in range(len(classes)):
        padded[j, : counts[j]] = x[codes == j]
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(0), j) for j in range(len(classes))])
    return trainer, keys, jnp.asarray(padded), jnp.asarray(counts), model


def timed(fn):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - t0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="letter", choices=["letter", "satimage"])
    p.add_argument("--components", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--try_lapack", action="store_true", help="also run the old LAPACK rotations compiled and batched")
    p.add_argument("--lapack_timeout", type=float, default=120.0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    trainer, keys, x, counts, model = build(args.dataset, args.components, args.data_dir)
    num_classes = int(keys.shape[0])

    compiled_first_state, compiled_first = timed(lambda: trainer.init(keys, x, counts))
    init_fn = jax.jit(jax.vmap(trainer.init_class))
    jax.block_until_ready(init_fn(keys, x, counts))
    compiled_again = min(timed(lambda: init_fn(keys, x, counts))[1] for _ in range(args.repeats))

    def eager():
        with jax.disable_jit():
            states = [trainer.init_class(keys[c], x[c], counts[c]) for c in range(num_classes)]
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)

    eager_state, eager_seconds = timed(eager)
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in
               zip(jax.tree.leaves(compiled_first_state.params), jax.tree.leaves(eager_state.params)))
    result = {
        "dataset": args.dataset, "classes": num_classes, "components": args.components,
        "flow": f"VectorFlow {model.flow.num_steps} steps x {model.flow.hidden} hidden, linear {model.flow.linear}",
        "compiled_first_call_s": round(compiled_first, 3),
        "compiled_later_call_s": round(compiled_again, 4),
        "eager_s": round(eager_seconds, 3),
        "eager_over_compiled_first": round(eager_seconds / compiled_first, 2),
        "eager_over_compiled_later": round(eager_seconds / compiled_again, 1),
        "max_param_diff_compiled_vs_eager": diff,
        "jax": jax.__version__, "backend": jax.default_backend(),
    }
    if args.try_lapack:
        count = num_classes * args.components * model.flow.num_steps
        code = LAPACK_PROBE.format(count=count, n=x.shape[-1])
        try:
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  timeout=args.lapack_timeout)
            result["lapack_batched"] = "finished" if "finished" in proc.stdout else f"failed: {proc.stderr[-300:]}"
        except subprocess.TimeoutExpired:
            result["lapack_batched"] = f"no result within {args.lapack_timeout:.0f} s (hung)"
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
