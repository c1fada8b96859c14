"""What the invertible 1x1 convolutions' precision does to log p(x), emulated on the CPU.

    python -m benchmarks.matmul_precision [--dataset mnist] [--components 3] [--levels 3 --steps 4 --hidden 64]
        [--epochs 2] [--num_train 10000] [--num_test 2000] [--seed 0] [--json out.json]

XLA's default precision for a float32 matrix product is TF32 on recent NVIDIA GPUs (inputs
rounded to 10 mantissa bits) and one bfloat16 pass on TPUs (7 bits). ``emflow`` runs the
flow's own channel mixing (``InvertibleLinear``) at ``Precision.HIGHEST`` on every backend
because of what this script measures: a GenMM is trained on the CPU (the paper's
dequantization, 32x32, so three levels fit), then the test set's log p(x) and
responsibilities are evaluated three times, with the channel mixing's operands as they are
and rounded to nearest TF32 or bfloat16 first, which is what a TF32 or single-pass bf16
product with float32 accumulation computes. The CPU ignores precision settings, so the
rounding is written out here; the coupling networks are left as they are (any conditioner
keeps a coupling exact).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

import emflow
from emflow import data as data_lib
from emflow import train
from benchmarks.throughput import add_glow_arguments
from emflow.bijectors import linear


def round_to_tf32(a: jax.Array) -> jax.Array:
    """float32 rounded to nearest on TF32's 10 mantissa bits (ties away from zero), still float32."""
    bits = jax.lax.bitcast_convert_type(a.astype(jnp.float32), jnp.uint32)
    return jax.lax.bitcast_convert_type((bits + jnp.uint32(0x1000)) & jnp.uint32(0xFFFFE000), jnp.float32)


def round_to_bfloat16(a: jax.Array) -> jax.Array:
    return a.astype(jnp.bfloat16).astype(jnp.float32)


ROUNDINGS = {"float32": None, "tf32": round_to_tf32, "bfloat16": round_to_bfloat16}


@contextlib.contextmanager
def channel_mixing_rounded(rounding):
    """Within the block, ``InvertibleLinear`` multiplies ``rounding(x)`` by ``rounding(W)`` (None: unchanged)."""
    full = linear.mix_channels
    if rounding is not None:
        linear.mix_channels = lambda x, w: full(rounding(x), rounding(w))
    try:
        yield
    finally:
        linear.mix_channels = full


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=["mnist", "fashion_mnist"], default="mnist")
    p.add_argument("--components", type=int, default=3)
    add_glow_arguments(p, hidden=64, size=None)  # the size is the paper's 32 x 32 input
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--num_train", type=int, default=10000)
    p.add_argument("--num_test", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data_dir", help="default: $EMFLOW_DATA_DIR")
    p.add_argument("--json")
    args = p.parse_args(argv)

    ds = data_lib.load_dataset(args.dataset, args.data_dir)
    deq = emflow.Dequantizer(ds.x_train.shape[1:], scheme="paper")
    model = emflow.GenMM(emflow.Glow(deq.model_shape, args.levels, args.steps, args.hidden), args.components)
    config = train.TrainConfig(epochs=args.epochs, em_every=1, seed=args.seed, num_samples=0)
    t = time.time()
    result = train.fit(model, config, deq, ds.x_train[: args.num_train], None, log=lambda s: None)
    print(f"trained {model.num_components} x Glow {args.levels}x{args.steps}x{args.hidden} on {args.num_train} "
          f"{args.dataset} images for {args.epochs} epochs in {time.time() - t:.0f} s", flush=True)

    x = deq(jax.random.PRNGKey(args.seed + 1), jnp.asarray(ds.x_test[: args.num_test]))
    evaluated = {}
    for name, rounding in ROUNDINGS.items():
        with channel_mixing_rounded(rounding):  # a new function each time, so jit traces it afresh
            joint = jax.jit(lambda p, x: model.component_log_prob(p, x))(result.state.params, x)
        evaluated[name] = np.asarray(joint, np.float64)

    dims = deq.num_model_dims
    exact = evaluated["float32"]
    log_px = jax.scipy.special.logsumexp(exact, axis=1)
    gamma = np.asarray(jax.nn.softmax(exact, axis=1))
    rows = []
    for name in ("tf32", "bfloat16"):
        other = evaluated[name]
        delta = np.asarray(jax.scipy.special.logsumexp(other, axis=1) - log_px)   # nats per image
        gamma_other = np.asarray(jax.nn.softmax(other, axis=1))
        tv = 0.5 * np.abs(gamma - gamma_other).sum(axis=1)
        rows.append({
            "rounding": name, "images": int(x.shape[0]),
            "mean_abs_delta_nats_per_image": float(np.mean(np.abs(delta))),
            "max_abs_delta_nats_per_image": float(np.max(np.abs(delta))),
            "mean_delta_nats_per_dim": float(np.mean(delta) / dims),
            "mean_abs_delta_nats_per_dim": float(np.mean(np.abs(delta)) / dims),
            "mean_gamma_total_variation": float(np.mean(tv)), "max_gamma_total_variation": float(np.max(tv)),
            "argmax_gamma_changed": float(np.mean(gamma.argmax(1) != gamma_other.argmax(1))),
        })
    nll = float(np.mean(deq.nats_per_dim(log_px)))
    pi = np.exp(np.asarray(result.state.params["log_pi"]))
    print(f"test NLL {nll:.4f} nats/dim (full precision), pi {np.round(pi, 3).tolist()}; {x.shape[0]} test images, "
          f"{dims} dimensions each")
    print("| 1x1 operands | mean abs change of log p(x) | max | mean change per dim | mean TV of gamma | max TV "
          "| argmax gamma changed |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['rounding']} | {r['mean_abs_delta_nats_per_image']:.3f} nats | "
              f"{r['max_abs_delta_nats_per_image']:.3f} nats | {r['mean_delta_nats_per_dim']:+.2e} | "
              f"{r['mean_gamma_total_variation']:.2e} | {r['max_gamma_total_variation']:.2e} | "
              f"{100 * r['argmax_gamma_changed']:.2f}% |")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({
            "jax": jax.__version__, "device": jax.devices()[0].device_kind, "args": vars(args),
            "test_nll_nats_per_dim": nll, "pi": pi.tolist(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
