"""Where the time of one EM training step goes: a profile of a few steps, summed by operation.

    python -m benchmarks.profile_step [--components 4] [--batch 256] [--dtype float32]
        [--axis vmap] [--conv_impl lax] [--levels 3 --steps 4 --hidden 512 --size 32] [--top 25] [--out DIR]

Runs ``jax.profiler.trace`` around a few steps of ``benchmarks.throughput``'s EM step
(after warm-up), reads the Perfetto trace it writes, and prints the device operations
(GPU kernels, or XLA:CPU thunks on a CPU) with the largest total time per step, and
the share of the step they take. The trace stays in ``--out`` for Perfetto
(ui.perfetto.dev). Meant for a lent GPU, where a table like this says which change
to try first.
"""
from __future__ import annotations

import argparse
import collections
import gzip
import json
import pathlib
import re
import tempfile

import jax

import emflow
from benchmarks.throughput import add_glow_arguments, em_step
from emflow.bijectors.conditioners import CONV_IMPLS


def op_totals(trace_file: pathlib.Path, device_only: bool) -> tuple[collections.Counter, collections.Counter]:
    """Total duration (microseconds) and count of each XLA operation's events in a Chrome/Perfetto trace.

    XLA operations are the complete events that name their ``hlo_op``; ``device_only`` keeps
    those on a device's timeline (GPU kernels) and drops their host-side launches.
    """
    events = json.loads(gzip.open(trace_file).read())["traceEvents"]
    pids = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"}
    totals, counts = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") != "X" or "hlo_op" not in e.get("args", {}):
            continue
        where = pids.get(e.get("pid"), "")
        if device_only and "/device:" not in where:
            continue
        totals[e["name"]] += e.get("dur", 0.0)
        counts[e["name"]] += 1
    return totals, counts


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--components", type=int, default=4)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--axis", default="vmap", choices=["vmap", "unrolled", "scan"])
    p.add_argument("--conv_impl", default="lax", choices=CONV_IMPLS)
    add_glow_arguments(p)
    p.add_argument("--profiled_steps", type=int, default=3)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--out", help="folder for the trace (default: a temporary folder)")
    args = p.parse_args(argv)
    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="emflow_profile_"))
    flow = emflow.Glow((args.size, args.size, 1), args.levels, args.steps, args.hidden, compute_dtype=args.dtype,
                       conv_impl=args.conv_impl)
    model = emflow.GenMM(flow, args.components, component_axis=args.axis)
    x = jax.random.uniform(jax.random.PRNGKey(1), (args.batch, args.size, args.size, 1))
    state, step = em_step(model, jax.jit(model.init)(jax.random.PRNGKey(0), x))
    for _ in range(2):
        state, m = step(state, x)
    jax.block_until_ready(m)
    with jax.profiler.trace(str(out), create_perfetto_trace=True):
        for _ in range(args.profiled_steps):
            state, m = step(state, x)
        jax.block_until_ready(m)
    traces = sorted(out.rglob("*.trace.json.gz"))
    if not traces:
        raise SystemExit(f"no *.trace.json.gz under {out}: the profiler wrote nothing")
    device_only = jax.default_backend() != "cpu"
    totals, counts = op_totals(traces[-1], device_only)
    step_us = sum(totals.values()) / args.profiled_steps
    device = jax.devices()[0]
    print(f"GenMM K={args.components} batch {args.batch} {args.axis}/{args.dtype}/{args.conv_impl} conv on {device.device_kind}: "
          f"{step_us / 1e3:.2f} ms of XLA operations per step (serial sum); trace in {out}")
    kinds, kind_counts = collections.Counter(), collections.Counter()
    for name, us in totals.items():  # "loop_multiply_fusion.12" -> "loop_multiply_fusion"
        kind = re.sub(r"\.\d+$", "", name)
        kinds[kind] += us
        kind_counts[kind] += counts[name]
    for title, table, n in (("kind of operation", kinds, kind_counts), ("operation", totals, counts)):
        print(f"\n| {title} | ms per step | share | calls per step |")
        print("| --- | --- | --- | --- |")
        for name, us in table.most_common(args.top):
            print(f"| {name[:90]} | {us / args.profiled_steps / 1e3:.3f} | {100 * us / sum(table.values()):.1f}% "
                  f"| {n[name] / args.profiled_steps:g} |")


if __name__ == "__main__":
    main()
