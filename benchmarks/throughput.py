"""Throughput of the complete EM training step, emflow vs a PyTorch eager per-generator loop.

    python -m benchmarks.throughput [--components 1,4,8] [--batches 64,256]
        [--levels 3 --steps 4 --hidden 512 --size 32] [--repeats 10] [--no_torch] [--json out.json]

For every K and batch size: ms/step and images/s of one EM step (E-step with
Phi_old, M-step gradient, optimizer update) for each component-axis strategy,
the model FLOPs of the step (counted from the architecture: Phi_old forward +
Phi forward + backward = 4 forward passes of every generator) and the achieved
TFLOP/s; and, when torch is importable, the same step in PyTorch eager looping
over the generators (``benchmarks/torch_glow.py``), timed in the same process.
Defaults are the paper's Glow (3 x 4 x 512 on 32x32); on a CPU pass smaller
sizes. Numbers are ratios within one run on one machine.
"""
from __future__ import annotations

import argparse
import json
import time

import jax

import emflow
from emflow import train


def glow_forward_flops(flow: emflow.Glow) -> float:
    """Multiply-add FLOPs (2 per MAC) of one Glow forward pass for one image, counted from the architecture.

    Counts the convolutions and the invertible 1x1 convolutions; element-wise work is left out.
    (XLA's cost analysis counts the body of a ``lax.scan`` once, not once per step, so it
    undercounts a flow whose steps are scanned.)
    """
    h, w, c = flow.image_shape
    hidden = flow.hidden_channels
    macs = 0
    for level in range(flow.num_levels):
        h, w, c = h // 2, w // 2, 4 * c
        ca, cb = c // 2, c - c // 2
        out = 2 * cb if flow.coupling == "affine" else cb
        per_pixel = c * c + 9 * ca * hidden + hidden * hidden + 9 * hidden * out
        macs += flow.num_steps * per_pixel * h * w
        if level < flow.num_levels - 1:
            macs += 9 * (c // 2) * 2 * (c - c // 2) * h * w  # the split prior's conv
            c = c // 2
    return 2.0 * macs


def em_step_flops(flow: emflow.Glow, num_components: int, batch: int) -> float:
    """FLOPs of one EM training step: Phi_old forward + Phi forward + backward (2x forward), all K generators."""
    return 4.0 * glow_forward_flops(flow) * num_components * batch


def time_emflow(model, x, repeats):
    config = train.TrainConfig()
    optimizer = train.make_optimizer(config)
    state = train.init_state(model, optimizer, jax.jit(model.init)(jax.random.PRNGKey(0), x))
    step = jax.jit(lambda s, xb: train.train_step(model, optimizer, s, xb))
    flops = em_step_flops(model.flow, model.num_components, x.shape[0])
    state, m = step(state, x)
    jax.block_until_ready(m)
    t = time.perf_counter()
    for _ in range(repeats):
        state, m = step(state, x)
    jax.block_until_ready(m)
    return (time.perf_counter() - t) / repeats, flops


def time_torch(shape, levels, steps, hidden, k, batch, repeats):
    import torch

    from benchmarks.torch_glow import GenMMTrainer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    trainer = GenMMTrainer(shape, levels, steps, hidden, k, device)
    x = torch.rand(batch, *shape, device=device)
    trainer.step(x)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    for _ in range(repeats):
        trainer.step(x)
    sync()
    return (time.perf_counter() - t) / repeats, torch.__version__, device


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--components", default="1,4,8")
    p.add_argument("--batches", default="64,256")
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--axes", default="vmap,unrolled,scan")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--no_torch", action="store_true")
    p.add_argument("--json")
    args = p.parse_args(argv)
    flow = emflow.Glow((args.size, args.size, 1), args.levels, args.steps, args.hidden, compute_dtype=args.dtype)
    device = jax.devices()[0]
    print(f"emflow on {device.platform} ({device.device_kind}); Glow {args.levels}x{args.steps}x{args.hidden} "
          f"on {args.size}x{args.size}x1, conditioners in {args.dtype}")
    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        x = jax.random.uniform(jax.random.PRNGKey(1), (batch, args.size, args.size, 1))
        for k in [int(v) for v in args.components.split(",")]:
            for axis in args.axes.split(","):
                seconds, flops = time_emflow(emflow.GenMM(flow, k, component_axis=axis), x, args.repeats)
                rows.append({"impl": f"emflow/{axis}", "K": k, "batch": batch, "ms_per_step": seconds * 1e3,
                             "images_per_s": batch / seconds, "gflop_per_step": flops / 1e9,
                             "tflop_per_s": flops / seconds / 1e12})
                print(_fmt(rows[-1]), flush=True)
            if not args.no_torch:
                try:
                    seconds, version, tdev = time_torch((1, args.size, args.size), args.levels, args.steps,
                                                        args.hidden, k, batch, args.repeats)
                except ImportError:
                    args.no_torch = True
                    print("torch not importable: no PyTorch baseline (pip install -e '.[benchmark]')")
                else:
                    rows.append({"impl": f"torch {version} eager loop ({tdev})", "K": k, "batch": batch,
                                 "ms_per_step": seconds * 1e3, "images_per_s": batch / seconds})
                    print(_fmt(rows[-1]), flush=True)
    print()
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": f"{device.platform} {device.device_kind}", "args": vars(args), "rows": rows}, f,
                      indent=2)


def _fmt(r):
    extra = f"  {r['gflop_per_step']:8.1f} GFLOP  {r['tflop_per_s']:6.3f} TFLOP/s" if "gflop_per_step" in r else ""
    return f"K={r['K']:2d} batch={r['batch']:4d}  {r['impl']:34s} {r['ms_per_step']:9.1f} ms/step " \
           f"{r['images_per_s']:9.1f} img/s{extra}"


def table(rows) -> str:
    lines = ["| impl | K | batch | ms/step | images/s | GFLOP/step | TFLOP/s | vs torch |", "|---|---|---|---|---|---|---|---|"]
    torch_ms = {(r["K"], r["batch"]): r["ms_per_step"] for r in rows if r["impl"].startswith("torch")}
    for r in rows:
        ref = torch_ms.get((r["K"], r["batch"]))
        speedup = f"{ref / r['ms_per_step']:.2f}x" if ref and not r["impl"].startswith("torch") else ""
        gf = f"{r['gflop_per_step']:.1f}" if "gflop_per_step" in r else ""
        tf = f"{r['tflop_per_s']:.3f}" if "tflop_per_s" in r else ""
        lines.append(f"| {r['impl']} | {r['K']} | {r['batch']} | {r['ms_per_step']:.1f} | {r['images_per_s']:.1f} "
                     f"| {gf} | {tf} | {speedup} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
