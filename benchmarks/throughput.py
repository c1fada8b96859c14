"""Throughput of the complete EM training step, emflow vs a PyTorch eager per-generator loop.

    python -m benchmarks.throughput [--components 1,4,8] [--batches 64,256]
        [--levels 3 --steps 4 --hidden 512 --size 32] [--axes vmap,unrolled,scan]
        [--dtypes float32,bfloat16] [--conv_impls lax,matmul] [--repeats 10] [--no_torch] [--json out.json]

For every K and batch size: ms/step and images/s of one EM step (E-step with
Phi_old, M-step gradient, optimizer update) for each component-axis strategy,
conditioner dtype and 3x3-convolution implementation, the model FLOPs of the step (counted from the architecture:
Phi_old forward + Phi forward + backward = 4 forward passes of every generator),
the achieved TFLOP/s and, on a chip in ``DATASHEETS``, its share of the
datasheet dense peak; and, when torch is importable, the same step in PyTorch
eager looping over the generators (``benchmarks/torch_glow.py``), timed in the
same process before XLA starts.
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
from emflow.bijectors.conditioners import CONV_IMPLS


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


# Reads and writes of every hidden activation (the 512-channel outputs of a coupling network's first two
# layers) in one EM step, if every bias, ReLU and mask were fused into the matrix products:
#   Phi_old forward 4 (write h1, read h1, write h2, read h2); Phi forward 4 (the same, kept for the backward);
#   backward 10: dh2 written (1) and masked by h2 (1), the zero conv's kernel gradient reads h2 (1),
#   the 1x1 layer's input gradient reads dh2 and writes dh1 (2), masked by h1 (1), its kernel gradient
#   reads h1 and dh2 (2), the first conv's kernel and input gradients read dh1 (2).
HIDDEN_ACTIVATION_PASSES = 18


def em_step_hidden_bytes(flow: emflow.Glow, num_components: int, batch: int) -> float:
    """Memory traffic of one EM step's hidden activations (``HIDDEN_ACTIVATION_PASSES`` passes), in bytes.

    The activations of the few-channel flow itself, the parameters and the optimizer are left
    out: an estimate of the least a fused implementation that recomputes nothing has to move.
    """
    h, w, _ = flow.image_shape
    pixels = sum(flow.num_steps * (h // 2 ** (level + 1)) * (w // 2 ** (level + 1)) for level in range(flow.num_levels))
    itemsize = jax.numpy.dtype(flow.compute_dtype).itemsize
    return HIDDEN_ACTIVATION_PASSES * num_components * batch * pixels * flow.hidden_channels * itemsize


def roofline_fraction(flops: float, hidden_bytes: float, peak_tflops: float, bandwidth_tbps: float) -> float:
    """The largest share of ``peak_tflops`` a step can reach when it also has to move ``hidden_bytes``."""
    compute_s, memory_s = flops / (peak_tflops * 1e12), hidden_bytes / (bandwidth_tbps * 1e12)
    return compute_s / max(compute_s, memory_s)


# Datasheet figures per chip, matched against ``device_kind`` (the more specific names first): dense (no
# sparsity) tensor-core peaks in TFLOP/s, float32 running as TF32 (XLA's default precision) and bfloat16 as
# bf16, and the memory bandwidth in TB/s.
DATASHEETS = {
    "H100 PCIe": {"float32": 378.0, "bfloat16": 756.0, "bandwidth_tbps": 2.0},
    "H100": {"float32": 494.7, "bfloat16": 989.4, "bandwidth_tbps": 3.35},   # SXM (the "80GB HBM3" part)
    "H200": {"float32": 494.7, "bfloat16": 989.4, "bandwidth_tbps": 4.8},
    "A100": {"float32": 156.0, "bfloat16": 312.0, "bandwidth_tbps": 2.0},
}


def datasheet(device_kind: str) -> dict:
    """The chip's entry of ``DATASHEETS``, or ``{}`` when the device is not in the table."""
    return next((figures for name, figures in DATASHEETS.items() if name in device_kind), {})


def add_glow_arguments(parser, *, hidden: int = 512, size: int | None = 32) -> None:
    """``--levels --steps --hidden [--size]`` of a Glow, the paper's 3 x 4 x 512 on 32 x 32 by default."""
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=hidden)
    if size is not None:
        parser.add_argument("--size", type=int, default=size)


def em_step(model, params):
    """``(EMState, jitted step)``: the complete EM training step as ``emflow.train.fit`` runs it, state donated.

    The state holds a copy of ``params``, so the caller's ``params`` outlive the steps that donate it.
    """
    optimizer = train.make_optimizer(train.TrainConfig())
    step = jax.jit(lambda s, xb: train.train_step(model, optimizer, s, xb), donate_argnums=0)
    return train.init_state(model, optimizer, jax.tree.map(jax.numpy.copy, params)), step


def variant_for_compiling(variant: str, num_components: int, levels: int, steps: int, hidden: int, size: int):
    """``(flow, model, params)`` for ``"axis/conv_impl/dtype"`` (e.g. ``"vmap/lax/float32"``): a GenMM of Glows
    on ``size x size x 1``, with zero parameters of the right shapes, to compile (not to train)."""
    axis, conv, dtype = variant.split("/")
    flow = emflow.Glow((size, size, 1), levels, steps, hidden, compute_dtype=dtype, conv_impl=conv)
    model = emflow.GenMM(flow, num_components, component_axis=axis)
    x = jax.ShapeDtypeStruct((2, size, size, 1), jax.numpy.float32)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
    params = jax.tree.map(lambda s: jax.numpy.zeros(s.shape, s.dtype), shapes)
    return flow, model, params


def compile_em_step_for(device, model, params, x):
    """``em_step`` compiled ahead of time for ``device``, which need not be attached: a device of a
    described topology (``jax.experimental.topologies``) compiles from abstract arguments."""
    on_device = jax.sharding.SingleDeviceSharding(device)
    abstract = lambda tree: jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=on_device), tree)
    state, step = em_step(model, params)
    return step.lower(abstract(state), abstract(x)).compile()


def xla_cost(compiled) -> dict:
    """XLA's own estimate for a compiled step: FLOPs, bytes moved to and from memory, and temporary memory.

    ``bytes accessed`` sums every fused kernel's operands and results as the backend's
    compiler fused them, so on a GPU, divided by the step's time and compared with the
    chip's memory bandwidth, it says how close the step is to being memory bound.

    ``device_gbytes`` is the memory the step holds while it runs: its arguments, results and
    temporaries, less the results written over donated arguments.
    """
    cost = compiled.cost_analysis()
    cost = (cost[0] if cost else {}) if isinstance(cost, (list, tuple)) else (cost or {})
    memory = compiled.memory_analysis()
    size = lambda name: getattr(memory, f"{name}_size_in_bytes", 0) / 1e9
    return {"xla_gflop": cost.get("flops", 0.0) / 1e9, "xla_gbytes_accessed": cost.get("bytes accessed", 0.0) / 1e9,
            "temp_gbytes": size("temp") if memory is not None else None,
            "device_gbytes": size("argument") + size("output") + size("temp") - size("alias")
            if memory is not None else None}


def time_emflow(model, params, x, repeats):
    """``(seconds per EM step, FLOPs per step, seconds to compile, XLA's cost estimate)``.

    The step is compiled ahead of time (``lower(...).compile()``), its cost read from the
    executable, then timed as the mean over ``repeats`` steps after two untimed warm-up steps.
    """
    state, step = em_step(model, params)
    flops = em_step_flops(model.flow, model.num_components, x.shape[0])
    t = time.perf_counter()
    compiled = step.lower(state, x).compile()
    compile_seconds = time.perf_counter() - t
    for _ in range(2):  # warm-up steps, untimed
        state, m = compiled(state, x)
    jax.block_until_ready(m)
    t = time.perf_counter()
    for _ in range(repeats):
        state, m = compiled(state, x)
    jax.block_until_ready(m)
    if not bool(jax.numpy.isfinite(m["loss"])):
        raise FloatingPointError(f"non-finite loss {float(m['loss'])} in the benchmark step")
    return (time.perf_counter() - t) / repeats, flops, compile_seconds, xla_cost(compiled)


def time_torch(shape, levels, steps, hidden, k, batch, repeats):
    import torch

    from benchmarks.torch_glow import GenMMTrainer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True  # the strongest eager baseline: cuDNN picks its fastest algorithms
    trainer = GenMMTrainer(shape, levels, steps, hidden, k, device)
    x = torch.rand(batch, *shape, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(2):  # the second warm-up step runs with the algorithms cudnn.benchmark chose
        trainer.step(x)
    sync()
    t = time.perf_counter()
    for _ in range(repeats):
        trainer.step(x)
    sync()
    seconds = (time.perf_counter() - t) / repeats
    del trainer, x
    if device == "cuda":
        torch.cuda.empty_cache()  # leave the GPU's memory to XLA, which allocates after
    return seconds, torch.__version__, device


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--components", default="1,4,8")
    p.add_argument("--batches", default="64,256")
    add_glow_arguments(p)
    p.add_argument("--axes", default="vmap,unrolled,scan",
                   help="component-axis strategies (K = 1 runs only the first: they coincide)")
    p.add_argument("--dtypes", default="float32", help="conditioner compute dtypes: float32, bfloat16 or both")
    p.add_argument("--conv_impls", default="lax", help="3x3 convolutions: lax, matmul or both")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--no_torch", action="store_true")
    p.add_argument("--json", help="written after every row, so a run cut short keeps what it measured")
    args = p.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    components = [int(v) for v in args.components.split(",")]
    dtypes, convs = args.dtypes.split(","), args.conv_impls.split(",")
    for d in dtypes:
        if d not in ("float32", "bfloat16"):
            raise SystemExit(f"--dtypes: expected float32 and/or bfloat16, got {d!r}")
    for c in convs:
        if c not in CONV_IMPLS:
            raise SystemExit(f"--conv_impls: expected some of {CONV_IMPLS}, got {c!r}")
    rows = []
    meta = {"args": vars(args)}

    def record(row):
        rows.append(row)
        print(_fmt(row), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({**meta, "rows": rows}, f, indent=2)

    # PyTorch first, before XLA takes its share of the GPU's memory.
    if not args.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch not importable: no PyTorch baseline (pip install -e '.[benchmark]')")
        else:
            for batch in batches:
                for k in components:
                    seconds, version, tdev = time_torch((1, args.size, args.size), args.levels, args.steps,
                                                        args.hidden, k, batch, args.repeats)
                    record({"impl": f"torch {version} eager loop ({tdev})", "K": k, "batch": batch,
                            "ms_per_step": seconds * 1e3, "images_per_s": batch / seconds})

    device = jax.devices()[0]
    meta["device"] = f"{device.platform} {device.device_kind}"
    sheet = datasheet(device.device_kind)
    meta["jax"] = jax.__version__
    print(f"emflow (jax {jax.__version__}) on {device.platform} ({device.device_kind}); Glow {args.levels}x{args.steps}"
          f"x{args.hidden} on {args.size}x{args.size}x1", flush=True)
    flows = {(d, c): emflow.Glow((args.size, args.size, 1), args.levels, args.steps, args.hidden, compute_dtype=d,
                                 conv_impl=c) for d in dtypes for c in convs}
    for k in components:
        # One initialisation per K, shared by every batch size, dtype and strategy (the parameters are the same pytree).
        x0 = jax.random.uniform(jax.random.PRNGKey(1), (min(batches), args.size, args.size, 1))
        params = jax.jit(emflow.GenMM(flows[dtypes[0], convs[0]], k).init)(jax.random.PRNGKey(0), x0)
        for batch in batches:
            x = jax.random.uniform(jax.random.PRNGKey(2), (batch, args.size, args.size, 1))
            for (dtype, conv), flow in flows.items():
                for axis in args.axes.split(",")[: 1 if k == 1 else None]:
                    model = emflow.GenMM(flow, k, component_axis=axis)
                    seconds, flops, compile_s, cost = time_emflow(model, params, x, args.repeats)
                    peak, bandwidth = sheet.get(dtype), sheet.get("bandwidth_tbps")
                    achieved_tbps = cost["xla_gbytes_accessed"] / seconds / 1e3
                    hidden_bytes = em_step_hidden_bytes(flow, k, batch)
                    impl = f"emflow/{axis}/{dtype}" + ("/matmul-conv" if conv == "matmul" else "")
                    record({"impl": impl, "K": k, "batch": batch, "ms_per_step": seconds * 1e3,
                            "images_per_s": batch / seconds, "gflop_per_step": flops / 1e9,
                            "tflop_per_s": flops / seconds / 1e12,
                            "fraction_of_peak": flops / seconds / 1e12 / peak if peak else None,
                            "compile_seconds": compile_s, **cost, "xla_tbytes_per_s": achieved_tbps,
                            "fraction_of_bandwidth": achieved_tbps / bandwidth if bandwidth else None,
                            "hidden_gbytes": hidden_bytes / 1e9,
                            "roofline_fraction_of_peak": roofline_fraction(flops, hidden_bytes, peak, bandwidth)
                            if peak and bandwidth else None})
    print()
    print(table(rows))


def _fmt(r):
    extra = ""
    if "gflop_per_step" in r:
        extra = f"  {r['gflop_per_step']:8.1f} GFLOP  {r['tflop_per_s']:7.2f} TFLOP/s"
        extra += f" ({100 * r['fraction_of_peak']:.1f}% of peak)" if r.get("fraction_of_peak") else ""
        extra += f"  XLA: {r['xla_gbytes_accessed']:.1f} GB/step, {r['xla_tbytes_per_s']:.2f} TB/s"
        extra += f" ({100 * r['fraction_of_bandwidth']:.0f}% of bandwidth)" if r.get("fraction_of_bandwidth") else ""
        extra += f"  memory {r['device_gbytes']:.2f} GB" if r.get("device_gbytes") is not None else ""
        extra += f"  compile {r['compile_seconds']:.1f} s"
    return f"K={r['K']:2d} batch={r['batch']:4d}  {r['impl']:36s} {r['ms_per_step']:9.2f} ms/step " \
           f"{r['images_per_s']:9.1f} img/s{extra}"


def table(rows) -> str:
    lines = ["| impl | K | batch | ms/step | images/s | GFLOP/step | TFLOP/s | % of dense peak "
             "| roofline % of peak | XLA GB/step | % of bandwidth | vs torch |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    torch_ms = {(r["K"], r["batch"]): r["ms_per_step"] for r in rows if r["impl"].startswith("torch")}
    for r in rows:
        ref = torch_ms.get((r["K"], r["batch"]))
        speedup = f"{ref / r['ms_per_step']:.2f}x" if ref and not r["impl"].startswith("torch") else ""
        gf = f"{r['gflop_per_step']:.1f}" if "gflop_per_step" in r else ""
        tf = f"{r['tflop_per_s']:.2f}" if "tflop_per_s" in r else ""
        pk = f"{100 * r['fraction_of_peak']:.1f}%" if r.get("fraction_of_peak") else ""
        rf = f"{100 * r['roofline_fraction_of_peak']:.0f}%" if r.get("roofline_fraction_of_peak") else ""
        gb = f"{r['xla_gbytes_accessed']:.1f}" if "xla_gbytes_accessed" in r else ""
        bw = f"{100 * r['fraction_of_bandwidth']:.0f}%" if r.get("fraction_of_bandwidth") else ""
        lines.append(f"| {r['impl']} | {r['K']} | {r['batch']} | {r['ms_per_step']:.2f} | {r['images_per_s']:.1f} "
                     f"| {gf} | {tf} | {pk} | {rf} | {gb} | {bw} | {speedup} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
